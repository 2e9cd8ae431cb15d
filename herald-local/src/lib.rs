//! `herald-local`'s assembly: every Herald function's routes over one embedded store and
//! queue, served as one application. The binary (`main.rs`) adds flags, the secret and the
//! server; tests use [`LocalHerald`] directly.

use herald_shared::adapters::EmbeddedStore;
pub mod driver;
pub mod live;

use herald_http::Authenticator;
use herald_shared::adapters::{EmbeddedQueue, QueueConfig};
use herald_shared::intake::{IntakeError, recover_unenqueued};
use herald_shared::ports::{Clock, StoreError};
use herald_shared::scheduler::{Check, run_checks};
use herald_shared::webhooks::{RecoveryReport, recover_webhooks};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Waits `interval`; `false` when `shutdown` flipped (or its sender is gone) meanwhile, so the
/// caller's loop ends.
async fn pause(interval: Duration, shutdown: &mut tokio::sync::watch::Receiver<bool>) -> bool {
    tokio::select! {
        changed = shutdown.changed() => changed.is_ok() && !*shutdown.borrow(),
        () = tokio::time::sleep(interval) => true,
    }
}

/// How often `herald-local` checks resting webhook endpoints and re-queues parked messages.
pub const WEBHOOK_RECOVERY_INTERVAL: Duration = Duration::from_secs(15);

/// How often `herald-local` runs the scheduled checks by default (`--check-interval`).
pub const CHECK_INTERVAL: Duration = Duration::from_secs(60);

/// How often `serve` syncs from a configured DefectDojo by default
/// (`--defectdojo-sync-interval`): a user removed in DefectDojo loses access within 15 minutes.
pub const DEFECTDOJO_SYNC_INTERVAL: Duration = Duration::from_secs(900);

/// The scheduled checks `herald-local`'s interval runs: all but webhook recovery, which has
/// its own, faster loop ([`WEBHOOK_RECOVERY_INTERVAL`]).
pub const LOCAL_CHECKS: [Check; 4] = [
    Check::Engagements,
    Check::RiskAcceptances,
    Check::Sla,
    Check::AlertCleanup,
];

/// The file of the embedded store in the data directory.
pub const DATABASE_FILE: &str = "herald.db";

/// How `herald-local`'s senders are set up.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// Retries (`HERALD_RETRY_BASE_SECONDS`, `HERALD_MAX_ATTEMPTS`).
    pub policy: herald_shared::sender::RetryPolicy,
    /// Slack's Web API (`SLACK_API_URL`).
    pub slack_api_url: String,
    /// Whether Teams and webhook URLs may point at loopback or private addresses
    /// (`HERALD_ALLOW_PRIVATE_TARGETS=1`).
    pub allow_private: bool,
    /// Where email goes: one `.eml` file per message (`DATA_DIR/outbox`).
    pub outbox_dir: std::path::PathBuf,
}

/// Herald on one machine: the embedded store and queue, and the clock.
#[derive(Clone)]
pub struct LocalHerald {
    pub store: Arc<EmbeddedStore>,
    pub queue: Arc<EmbeddedQueue>,
    pub clock: Arc<dyn Clock>,
    /// Whether webhook pings may reach loopback or private addresses
    /// (`HERALD_ALLOW_PRIVATE_TARGETS=1`); off unless [`LocalHerald::allow_private_targets`].
    pub allow_private: bool,
    /// The DefectDojo `POST /v1/defectdojo/sync` and the scheduled sync read from
    /// ([`LocalHerald::with_defectdojo`]).
    pub defectdojo: herald_shared::defectdojo_sync::SyncService,
    /// The bell's open live streams ([`live`]), ended when the server stops.
    pub streams: live::Streams,
}

impl std::fmt::Debug for LocalHerald {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalHerald").finish_non_exhaustive()
    }
}

/// `herald-local`'s environment, read once at start ([`Config::from_env`]).
#[derive(Clone)]
pub struct Config {
    /// The queue (`HERALD_MAX_ATTEMPTS`).
    pub queue: QueueConfig,
    /// Retries (`HERALD_RETRY_BASE_SECONDS`, `HERALD_MAX_ATTEMPTS`).
    pub policy: herald_shared::sender::RetryPolicy,
    /// Slack's Web API (`SLACK_API_URL`).
    pub slack_api_url: String,
    /// Whether Teams, webhook and ping URLs may point at loopback or private addresses
    /// (`HERALD_ALLOW_PRIVATE_TARGETS=1`).
    pub allow_private: bool,
    /// The HS256 secret (`HERALD_JWT_SECRET`); none: the one kept in the data directory.
    pub jwt_secret: Option<herald_shared::domain::Secret>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("queue", &self.queue)
            .field("policy", &self.policy)
            .field("slack_api_url", &self.slack_api_url)
            .field("allow_private", &self.allow_private)
            .field("jwt_secret", &self.jwt_secret.as_ref().map(|_| "set"))
            .finish()
    }
}

impl Config {
    /// Reads every variable `herald-local` uses; names the first malformed one.
    pub fn from_env() -> Result<Self, String> {
        Ok(Self {
            queue: queue_config_from_env()?,
            policy: herald_shared::sender::RetryPolicy::from_env().map_err(|e| e.to_string())?,
            slack_api_url: sender_slack::slack_api_url_from_env(),
            allow_private: herald_shared::url_guard::allow_private_from_env(),
            jwt_secret: std::env::var("HERALD_JWT_SECRET")
                .ok()
                .filter(|s| !s.is_empty())
                .map(herald_shared::domain::Secret::new),
        })
    }
}

/// Queue settings from the environment: `HERALD_MAX_ATTEMPTS` (default 5) receives before
/// the dead-letter state, and a 60 s visibility timeout.
pub fn queue_config_from_env() -> Result<QueueConfig, String> {
    let max_receives = match std::env::var("HERALD_MAX_ATTEMPTS") {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| {
                format!("HERALD_MAX_ATTEMPTS must be a whole number from 1 to 100, not {v:?}")
            })?,
        _ => 5,
    };
    Ok(QueueConfig {
        visibility_timeout: Duration::from_secs(60),
        max_receives,
    })
}

impl LocalHerald {
    /// Opens (creating if needed) the store and queue in `data_dir`.
    pub fn open(
        data_dir: &Path,
        queue: QueueConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StoreError> {
        let store = EmbeddedStore::open(&data_dir.join(DATABASE_FILE))?;
        Self::with_store(store, queue, clock)
    }

    /// Herald over an already opened store.
    pub fn with_store(
        store: EmbeddedStore,
        queue: QueueConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StoreError> {
        let queue = EmbeddedQueue::new(&store, queue)?.with_clock(Arc::clone(&clock));
        Ok(Self {
            store: Arc::new(store),
            queue: Arc::new(queue),
            clock,
            allow_private: false,
            defectdojo: herald_shared::defectdojo_sync::SyncService::default(),
            streams: live::Streams::default(),
        })
    }

    /// Syncs from `source` when asked (`POST /v1/defectdojo/sync`) and on schedule.
    pub fn with_defectdojo(
        mut self,
        source: Option<herald_shared::defectdojo_sync::DefectDojoSource>,
    ) -> Self {
        self.defectdojo = herald_shared::defectdojo_sync::SyncService::new(source);
        self
    }

    /// Lets the API's webhook pings reach loopback and private addresses.
    pub fn allow_private_targets(mut self, allow: bool) -> Self {
        self.allow_private = allow;
        self
    }

    /// Finishes the fan-out of events a crash interrupted, and ends the send claims of a
    /// process that died mid-send, their queue messages visible again at once; run before
    /// serving.
    pub async fn recover(&self) -> Result<usize, IntakeError> {
        let released = self.store.release_claims().await?;
        if released > 0 {
            tracing::info!(
                released,
                "released the send claims of a process that stopped mid-send; their messages are back on the queue"
            );
        }
        recover_unenqueued(self.store.as_ref(), self.queue.as_ref(), u64::MAX).await
    }

    /// Starts a queue driver for every channel with a sender, each running the same `Sender`
    /// as the channel's Lambda function, until `shutdown` flips to `true`: Slack, Microsoft
    /// Teams, email (written to the outbox) and webhooks; and the webhook recovery check
    /// (once at start, then every [`WEBHOOK_RECOVERY_INTERVAL`]).
    pub fn start_senders(
        &self,
        config: &SenderConfig,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Result<Vec<tokio::task::JoinHandle<()>>, String> {
        let store: Arc<dyn herald_shared::ports::HeraldStore> = self.store.clone();
        let slack = sender_slack::SlackTransport::new(store, &config.slack_api_url)
            .map_err(|e| e.to_string())?;
        let teams =
            sender_teams::TeamsTransport::new(config.allow_private).map_err(|e| e.to_string())?;
        let outbox = Arc::new(herald_shared::adapters::OutboxMailer::new(
            config.outbox_dir.clone(),
        ));
        let email = sender_email::EmailTransport::new(outbox).map_err(|e| e.to_string())?;
        let webhooks = sender_webhook::WebhookTransport::new(
            self.store.clone(),
            herald_shared::adapters::WebhookClient::new(config.allow_private),
            Arc::clone(&self.clock),
        );
        let parts = self.sender_parts(config.policy);
        let consumers: Vec<(
            herald_shared::domain::Channel,
            Arc<dyn herald_shared::ports::QueueConsumer>,
        )> = vec![
            (
                herald_shared::domain::Channel::Slack,
                Arc::new(parts.sender(slack)),
            ),
            (
                herald_shared::domain::Channel::Msteams,
                Arc::new(parts.sender(teams)),
            ),
            (
                herald_shared::domain::Channel::Mail,
                Arc::new(parts.sender(email)),
            ),
            (
                herald_shared::domain::Channel::Webhooks,
                Arc::new(parts.sender(webhooks)),
            ),
        ];
        let mut tasks: Vec<tokio::task::JoinHandle<()>> = consumers
            .into_iter()
            .map(|(channel, consumer)| {
                let driver = driver::QueueDriver::new(
                    self.queue.clone(),
                    Arc::clone(&self.clock),
                    channel,
                    consumer,
                );
                let mut stop = shutdown.clone();
                tokio::spawn(driver.run(Duration::from_millis(200), async move {
                    while !*stop.borrow() {
                        if stop.changed().await.is_err() {
                            return;
                        }
                    }
                }))
            })
            .collect();
        tasks.push(tokio::spawn(
            self.clone()
                .run_webhook_recovery(WEBHOOK_RECOVERY_INTERVAL, shutdown),
        ));
        Ok(tasks)
    }

    /// Runs [`recover_webhooks`] now and then every `interval` until `shutdown` flips to
    /// `true`. A failed pass is logged; the next one picks up where it stopped.
    pub async fn run_webhook_recovery(
        self,
        interval: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            match recover_webhooks(
                self.store.as_ref(),
                self.queue.as_ref(),
                self.clock.now_ms(),
            )
            .await
            {
                Ok(report) if report != RecoveryReport::default() => {
                    tracing::info!(
                        transitions = report.transitions,
                        requeued = report.requeued,
                        "webhook recovery"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "webhook recovery failed"),
            }
            if !pause(interval, &mut shutdown).await {
                return;
            }
        }
    }

    /// Runs the scheduled checks ([`LOCAL_CHECKS`]) as of this process's clock, now and then
    /// every `interval`, until `shutdown` flips to `true`. Each reminder is sent once however
    /// often this runs; a failed run is logged and the next one tries again.
    pub async fn run_scheduled_checks(
        self,
        interval: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            let now_ms = self.clock.now_ms();
            match run_checks(
                self.store.as_ref(),
                self.queue.as_ref(),
                now_ms,
                &LOCAL_CHECKS,
            )
            .await
            {
                Ok(report) if !report.sent.is_empty() || report.alerts_removed > 0 => {
                    tracing::info!(
                        sent = ?report.sent,
                        already_sent = report.already_sent,
                        failed = report.failed,
                        engagements_closed = report.engagements_closed,
                        alerts_removed = report.alerts_removed,
                        "scheduled checks"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "scheduled checks failed"),
            }
            if !pause(interval, &mut shutdown).await {
                return;
            }
        }
    }

    /// Syncs from the configured DefectDojo now and then every `interval`, until `shutdown`;
    /// a failed sync is logged (it changed nothing) and the next one tries again.
    pub async fn run_defectdojo_sync(
        self,
        interval: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            // The service logs each run's outcome.
            let _ = self
                .defectdojo
                .run(
                    self.store.as_ref(),
                    herald_shared::defectdojo_sync::SyncRequest::default(),
                    &|_, _, _| {},
                )
                .await;
            if !pause(interval, &mut shutdown).await {
                return;
            }
        }
    }

    /// The `Sender` for `transport` over this store and queue.
    /// The parts every channel's sender shares here: the store, the embedded queue for
    /// delayed retries, `policy` and the clock.
    fn sender_parts(
        &self,
        policy: herald_shared::sender::RetryPolicy,
    ) -> herald_shared::sender::SenderParts {
        herald_shared::sender::SenderParts {
            store: self.store.clone(),
            redelivery: self.queue.clone(),
            policy,
            clock: Arc::clone(&self.clock),
        }
    }

    /// Every function's routes as one application, with one OpenAPI document.
    pub fn router(&self, auth: Authenticator) -> axum::Router {
        let settings = settings_api::AppState {
            store: self.store.clone(),
            auth: auth.clone(),
            webhooks: settings_api::WebhookClient::new(self.allow_private),
            clock: Arc::clone(&self.clock),
            defectdojo: self.defectdojo.clone(),
        };
        let intake = event_intake::IntakeState {
            store: self.store.clone(),
            queue: self.queue.clone(),
            clock: Arc::clone(&self.clock),
            auth,
        };
        let (settings_routes, mut doc) = settings_api::api().split_for_parts();
        let (intake_routes, intake_doc) = event_intake::api().split_for_parts();
        doc.merge(intake_doc);
        herald_http::app(
            settings_routes
                .merge(settings_api::page())
                .merge(live::routes(self.streams.clone()))
                .with_state(settings)
                .merge(intake_routes.with_state(intake)),
            doc,
        )
    }
}

/// The OpenAPI document of everything `herald-local` serves.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = settings_api::api().split_for_parts().1;
    doc.merge(event_intake::api().split_for_parts().1);
    herald_http::document(doc)
}
