//! The sender use case: a queued delivery goes to its channel's transport, once, or ends
//! visibly failed.
//!
//! Every channel's function (and `herald-local`'s queue driver) runs the same [`Sender`], a
//! [`QueueConsumer`] over one channel's [`Transport`]. For each record of a batch, processed
//! concurrently:
//! - the delivery is claimed first (a conditional write): one already final (`sent`,
//!   `failed`, `dead`) is skipped, and one another sender is sending right now (a duplicate
//!   message) comes back when that claim ends, so a redelivered message never sends twice;
//! - success → `sent`;
//! - a permanent error (the destination refused it) → `failed` at once, and the message is
//!   acknowledged;
//! - a transient error (timeout, connection, 5xx, 429) → `retrying`, and the message comes
//!   back after an exponential backoff with jitter (or the destination's `Retry-After`); on the
//!   last attempt → `dead`, and the queue moves it to the dead-letter queue;
//! - a parked delivery (a webhook endpoint resting after errors) → `retrying` with the
//!   reason; the message is kept in the store for the endpoint's recovery to queue again, and
//!   acknowledged, so waiting costs none of its attempts;
//! - each `failed` or `dead` delivery raises an alert for every administrator, at most one
//!   per administrator, channel and hour, so an outage never floods the bell.
//!
//! The one crash window left: a send that succeeded but whose `sent` was never recorded (the
//! process died in between) is sent again when the message comes back, after its claim
//! ([`SEND_LEASE`]) lapses. Everything else is decided by conditional writes on the delivery
//! record.

use crate::config::ConfigError;
use crate::domain::{
    Alert, Channel, Delivery, DeliveryMessage, Destination, Event, EventId, SystemSettings,
};
use crate::ports::{
    AttemptOutcome, Claim, Clock, HeraldStore, QueueConsumer, RedeliveryDelay, SendError,
    SendRequest, StoreError, Transport,
};
use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// How often and how patiently deliveries are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first retry's delay (`HERALD_RETRY_BASE_SECONDS`, default 30 s); each next one
    /// doubles.
    pub base: Duration,
    /// Attempts before a delivery is `dead` (`HERALD_MAX_ATTEMPTS`, default 5). The queue's
    /// `maxReceiveCount` must be the same number.
    pub max_attempts: u32,
}

/// How long a sender's claim on a delivery lasts: longer than any one send (the webhook
/// timeout is at most 60 s), so a slow send is never duplicated; a sender that dies holding a
/// claim delays that delivery's next attempt by at most this long.
pub const SEND_LEASE: Duration = Duration::from_secs(120);

/// The longest delay SQS allows on a message (12 hours).
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(43_200);

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(30),
            max_attempts: 5,
        }
    }
}

impl RetryPolicy {
    /// Reads `HERALD_RETRY_BASE_SECONDS` and `HERALD_MAX_ATTEMPTS`, naming a bad one.
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut policy = RetryPolicy::default();
        if let Ok(v) = std::env::var("HERALD_RETRY_BASE_SECONDS")
            && !v.trim().is_empty()
        {
            let seconds = v
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && (0.0..=3_600.0).contains(s))
                .ok_or_else(|| ConfigError::Invalid {
                    name: "HERALD_RETRY_BASE_SECONDS",
                    problem: format!("expected seconds from 0 to 3600, got {v:?}"),
                })?;
            policy.base = Duration::from_secs_f64(seconds);
        }
        if let Ok(v) = std::env::var("HERALD_MAX_ATTEMPTS")
            && !v.trim().is_empty()
        {
            policy.max_attempts = v
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=100).contains(n))
                .ok_or_else(|| ConfigError::Invalid {
                    name: "HERALD_MAX_ATTEMPTS",
                    problem: format!("expected a whole number from 1 to 100, got {v:?}"),
                })?;
        }
        Ok(policy)
    }

    /// The delay after failed attempt number `attempt` (1 = the first): `base × 2^(attempt−1)`,
    /// of which the first half is fixed and the second half scaled by `jitter` (0.0 to 1.0),
    /// at most [`MAX_RETRY_DELAY`].
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let exponent = attempt.saturating_sub(1).min(30);
        let full = self
            .base
            .checked_mul(1u32 << exponent)
            .unwrap_or(MAX_RETRY_DELAY)
            .min(MAX_RETRY_DELAY);
        let half = full / 2;
        half + half.mul_f64(jitter.clamp(0.0, 1.0))
    }
}

/// A number in [0, 1) from the process's random hasher keys: jitter, not cryptography.
fn jitter() -> f64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(0x5eed);
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// The alert source for failures on `channel` (DefectDojo's names).
pub fn failure_source(channel: Channel) -> &'static str {
    match channel {
        Channel::Slack => "Slack Notification",
        Channel::Msteams => "Microsoft Teams Notification",
        Channel::Mail => "Email Notification",
        Channel::Webhooks => "Webhooks Notification",
        Channel::Alert => "Alert Notification",
    }
}

/// What became of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordResult {
    /// Acknowledge (delete) the message.
    Done,
    /// Leave the message on the queue: it comes back (or goes to the dead-letter queue).
    Retry,
}

/// A channel's queue consumer: the same code on Lambda and in `herald-local`.
pub struct Sender<T> {
    pub store: Arc<dyn HeraldStore>,
    pub transport: T,
    pub redelivery: Arc<dyn RedeliveryDelay>,
    pub policy: RetryPolicy,
    pub clock: Arc<dyn Clock>,
}

/// What every channel's [`Sender`] shares besides its transport: the store, the queue that
/// delays a retry, the retry policy and the clock. One builder for Lambda and `herald-local`.
#[derive(Clone)]
pub struct SenderParts {
    pub store: Arc<dyn HeraldStore>,
    pub redelivery: Arc<dyn RedeliveryDelay>,
    pub policy: RetryPolicy,
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for SenderParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SenderParts")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl SenderParts {
    /// The sender of one channel over these parts.
    pub fn sender<T: Transport>(&self, transport: T) -> Sender<T> {
        Sender {
            store: Arc::clone(&self.store),
            transport,
            redelivery: Arc::clone(&self.redelivery),
            policy: self.policy,
            clock: Arc::clone(&self.clock),
        }
    }
}

/// The Lambda handler of every sender function: one SQS batch through `sender`. Every record
/// is processed (concurrently), and the answer names each record to retry
/// (`ReportBatchItemFailures`). Never fails as a whole: a failed record is reported, not
/// raised.
pub async fn lambda_handler<T: Transport>(
    sender: &Sender<T>,
    event: lambda_runtime::LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    Ok(sender.consume(event.payload).await)
}

/// Runs `sender` as the Lambda function of its queue's SQS trigger, one batch per invocation,
/// until the runtime stops.
pub async fn run_on_lambda<T: Transport>(sender: Sender<T>) -> Result<(), lambda_runtime::Error> {
    let sender = &sender;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<SqsEvent>| async move {
            lambda_handler(sender, event).await
        },
    ))
    .await
}

impl<T> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// An event read once for a batch (`None`: it is gone).
type EventCell = tokio::sync::OnceCell<Option<Arc<Event>>>;

/// What the records of one batch read alike: the system settings, and each event once
/// however many of its deliveries the batch holds (a fan-out's messages travel together).
#[derive(Default)]
struct BatchReads {
    system: tokio::sync::OnceCell<SystemSettings>,
    events: std::sync::Mutex<HashMap<EventId, Arc<EventCell>>>,
}

impl BatchReads {
    async fn system(&self, store: &dyn HeraldStore) -> Result<&SystemSettings, StoreError> {
        self.system
            .get_or_try_init(|| store.system_settings())
            .await
    }

    async fn event(
        &self,
        store: &dyn HeraldStore,
        id: &EventId,
    ) -> Result<Option<Arc<Event>>, StoreError> {
        let cell = {
            let mut events = match self.events.lock() {
                Ok(events) => events,
                Err(poisoned) => poisoned.into_inner(),
            };
            Arc::clone(events.entry(id.clone()).or_default())
        };
        cell.get_or_try_init(|| async {
            Ok(store.event(id).await?.map(|record| Arc::new(record.event)))
        })
        .await
        .cloned()
    }
}

impl<T: Transport> Sender<T> {
    /// Handles one record on its own; never panics on its content.
    pub async fn handle_record(&self, record: &SqsMessage) -> RecordResult {
        self.handle_batch_record(record, &BatchReads::default())
            .await
    }

    async fn handle_batch_record(&self, record: &SqsMessage, reads: &BatchReads) -> RecordResult {
        let message_id = record.message_id.as_deref().unwrap_or_default();
        let span = tracing::info_span!("delivery", message_id, channel = %self.transport.channel());
        // Instrumented, not entered: a guard held across `.await` would nest the spans of
        // every record this task polls afterwards.
        self.handle_record_in_span(record, reads)
            .instrument(span)
            .await
    }

    async fn handle_record_in_span(&self, record: &SqsMessage, reads: &BatchReads) -> RecordResult {
        let message: DeliveryMessage = match serde_json::from_str(
            record.body.as_deref().unwrap_or_default(),
        ) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(error = %e, "unreadable queue message; it will go to the dead-letter queue");
                return RecordResult::Retry;
            }
        };
        let receive_count = record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(1);
        match self
            .deliver(
                &message,
                receive_count,
                record.receipt_handle.as_deref(),
                reads,
            )
            .await
        {
            Ok(result) => result,
            Err(e) if receive_count >= self.policy.max_attempts => {
                // The message's last receive: it goes to the dead-letter queue now, so the
                // delivery is `dead` with why (if the store takes even that).
                tracing::error!(delivery_id = %message.delivery_id, error = %e, "store failed on the message's last receive; dead");
                let outcome = AttemptOutcome::Dead {
                    error: format!("the store failed on the last of {receive_count} receives: {e}"),
                };
                let now = self.clock.now_ms();
                match self
                    .store
                    .record_attempt(&message.event_id, &message.delivery_id, &outcome, now)
                    .await
                {
                    Ok(Some(delivery)) => {
                        let reason = outcome.error().unwrap_or_default().to_owned();
                        if let Err(e) = self.alert_administrators(&delivery, &reason, now).await {
                            tracing::error!(delivery_id = %delivery.id, error = %e, "could not alert the administrators");
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::error!(delivery_id = %message.delivery_id, error = %e, "could not record the delivery dead");
                    }
                }
                RecordResult::Retry
            }
            Err(e) => {
                tracing::error!(delivery_id = %message.delivery_id, error = %e, "store failed; the message will come back");
                RecordResult::Retry
            }
        }
    }

    async fn deliver(
        &self,
        message: &DeliveryMessage,
        receive_count: u32,
        receipt: Option<&str>,
        reads: &BatchReads,
    ) -> Result<RecordResult, StoreError> {
        let claimed_at = self.clock.now_ms();
        let delivery = match self
            .store
            .claim_delivery(
                &message.event_id,
                &message.delivery_id,
                claimed_at,
                SEND_LEASE,
            )
            .await?
        {
            Claim::Claimed(delivery) => delivery,
            Claim::Unknown => {
                tracing::warn!(delivery_id = %message.delivery_id, "no such delivery (expired?); dropping the message");
                return Ok(RecordResult::Done);
            }
            Claim::Final(delivery) => {
                tracing::info!(delivery_id = %delivery.id, status = delivery.status.name(), "already final; not sending again");
                return Ok(RecordResult::Done);
            }
            Claim::Held { until } if receive_count >= self.policy.max_attempts => {
                // The last receive of a duplicate message: the sender holding the claim
                // finishes the delivery with its own message (which comes back if that sender
                // dies), so this one is acknowledged rather than left to reach the
                // dead-letter queue with no outcome.
                tracing::info!(delivery_id = %message.delivery_id, until, "another sender holds this delivery on this message's last receive; leaving it to that sender");
                return Ok(RecordResult::Done);
            }
            Claim::Held { until } => {
                // Another sender has it (a duplicate message): look again when its claim
                // ends; by then it is final, or the claim lapsed with its sender.
                let wait = Duration::from_millis(until.saturating_sub(claimed_at))
                    .max(Duration::from_secs(1));
                tracing::info!(delivery_id = %message.delivery_id, wait_ms = wait.as_millis() as u64, "another sender holds this delivery; looking again when its claim ends");
                self.delay(receipt, wait.min(MAX_RETRY_DELAY)).await;
                return Ok(RecordResult::Retry);
            }
        };
        let Some(event) = reads.event(self.store.as_ref(), &message.event_id).await? else {
            tracing::warn!(event_id = %message.event_id, "the delivery's event is gone (expired?); dropping the message");
            return Ok(RecordResult::Done);
        };
        let system = reads.system(self.store.as_ref()).await?;
        let recipient = match &delivery.destination {
            Destination::SlackUser(user) | Destination::UserWebhooks(user) => {
                self.store.user(user).await?
            }
            _ => None,
        };
        let request = SendRequest {
            event: &event,
            delivery: &delivery,
            system,
            recipient: recipient.as_ref(),
        };
        let now = self.clock.now_ms();
        let result = match self.transport.send(&request).await {
            // Only webhook endpoints rest; anything else is retried as usual (and is `dead`
            // after its last attempt, like any transient failure).
            Err(SendError::Parked { reason })
                if !matches!(delivery.destination, Destination::Webhook(_)) =>
            {
                tracing::warn!(delivery_id = %delivery.id, %reason, "parking is for webhook endpoints; retrying instead");
                Err(SendError::Transient {
                    reason,
                    retry_after: None,
                })
            }
            other => other,
        };
        match result {
            Ok(()) => {
                if let Err(e) = self
                    .store
                    .record_attempt(&delivery.event_id, &delivery.id, &AttemptOutcome::Sent, now)
                    .await
                {
                    // Sent but not recorded: never `dead` for it. The message comes back; the
                    // claim, ours until it lapses, keeps it from being sent again before then.
                    tracing::error!(delivery_id = %delivery.id, error = %e, "sent, but the store failed to record it; the message will come back");
                    return Ok(RecordResult::Retry);
                }
                tracing::info!(delivery_id = %delivery.id, destination = %delivery.destination, "sent");
                Ok(RecordResult::Done)
            }
            Err(SendError::Permanent { reason }) => {
                tracing::warn!(delivery_id = %delivery.id, %reason, "refused for good");
                let outcome = AttemptOutcome::Failed {
                    error: reason.clone(),
                };
                if self
                    .store
                    .record_attempt(&delivery.event_id, &delivery.id, &outcome, now)
                    .await?
                    .is_some()
                {
                    self.alert_administrators(&delivery, &reason, now).await?;
                }
                Ok(RecordResult::Done)
            }
            Err(SendError::Parked { reason }) => {
                let Destination::Webhook(endpoint) = &delivery.destination else {
                    // Turned into a transient failure above.
                    return Ok(RecordResult::Retry);
                };
                // Park first: a crash before the acknowledgement brings the message back, and
                // parking it again is harmless.
                self.store
                    .park_webhook_message(endpoint, message, now)
                    .await?;
                let outcome = AttemptOutcome::Retrying {
                    error: reason.clone(),
                };
                self.store
                    .record_attempt(&delivery.event_id, &delivery.id, &outcome, now)
                    .await?;
                tracing::info!(delivery_id = %delivery.id, %reason, "parked until the destination recovers");
                Ok(RecordResult::Done)
            }
            Err(SendError::Transient {
                reason,
                retry_after,
            }) => {
                if receive_count >= self.policy.max_attempts {
                    tracing::warn!(delivery_id = %delivery.id, %reason, attempts = receive_count, "last attempt failed; dead");
                    let outcome = AttemptOutcome::Dead {
                        error: reason.clone(),
                    };
                    if self
                        .store
                        .record_attempt(&delivery.event_id, &delivery.id, &outcome, now)
                        .await?
                        .is_some()
                    {
                        self.alert_administrators(&delivery, &reason, now).await?;
                    }
                    // Back straight away, so the queue moves it to the dead-letter queue.
                    self.delay(receipt, Duration::ZERO).await;
                    return Ok(RecordResult::Retry);
                }
                let outcome = AttemptOutcome::Retrying {
                    error: reason.clone(),
                };
                self.store
                    .record_attempt(&delivery.event_id, &delivery.id, &outcome, now)
                    .await?;
                // A `Retry-After` of nothing (or a date already past) would spend every attempt
                // at once: the backoff applies then.
                let delay = retry_after
                    .filter(|wait| !wait.is_zero())
                    .unwrap_or_else(|| self.policy.delay(receive_count, jitter()))
                    .min(MAX_RETRY_DELAY);
                tracing::info!(delivery_id = %delivery.id, %reason, delay_ms = delay.as_millis() as u64, "will retry");
                self.delay(receipt, delay).await;
                Ok(RecordResult::Retry)
            }
        }
    }

    async fn delay(&self, receipt: Option<&str>, delay: Duration) {
        let Some(receipt) = receipt else { return };
        if let Err(e) = self
            .redelivery
            .delay_redelivery(self.transport.channel(), receipt, delay)
            .await
        {
            // The message still comes back after its visibility timeout.
            tracing::warn!(error = %e, "could not set the retry delay");
        }
    }

    /// One alert per administrator, channel and hour, dated when the hour's first failure
    /// raised it: that time is recorded once for the channel and hour
    /// ([`crate::ports::ScheduleStore::first_time`]), the id is derived from it, and adding an alert that
    /// exists is a no-op, so later failures in the hour and a retry after a crash write
    /// nothing new.
    async fn alert_administrators(
        &self,
        delivery: &Delivery,
        reason: &str,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let hour = now_ms - now_ms % 3_600_000;
        let channel = delivery.channel;
        let key = format!("delivery-failure:{channel}:{hour}");
        let raised_at = self
            .store
            .first_time(&key, now_ms, hour + 2 * 3_600_000)
            .await?;
        let description = format!(
            "A {channel} notification to {} could not be delivered: {reason}. Further failures on this channel within the hour are not repeated here; GET /v1/events/{} shows every delivery.",
            delivery.destination, delivery.event_id
        );
        let alerts: Vec<Alert> = self
            .store
            .administrators()
            .await?
            .iter()
            .filter(|a| a.profile.is_active)
            .map(|admin| {
                Alert::system(
                    &key,
                    &admin.username,
                    "Notification issue",
                    &description,
                    failure_source(channel),
                    raised_at,
                )
            })
            .collect();
        self.store.add_alerts(&alerts).await?;
        Ok(())
    }
}

#[async_trait]
impl<T: Transport> QueueConsumer for Sender<T> {
    async fn consume(&self, batch: SqsEvent) -> SqsBatchResponse {
        let reads = BatchReads::default();
        let results = futures_util::future::join_all(
            batch
                .records
                .iter()
                .map(|r| self.handle_batch_record(r, &reads)),
        )
        .await;
        let mut response = SqsBatchResponse::default();
        for (record, result) in batch.records.iter().zip(results) {
            if result == RecordResult::Retry {
                response.add_failure(record.message_id.clone().unwrap_or_default());
            }
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_attempts_then_delays_double_with_half_of_each_jittered_and_a_cap() {
        let policy = RetryPolicy {
            base: Duration::from_secs(10),
            max_attempts: 5,
        };
        assert_eq!(policy.delay(1, 0.0), Duration::from_secs(5));
        assert_eq!(policy.delay(1, 1.0), Duration::from_secs(10));
        assert_eq!(policy.delay(2, 1.0), Duration::from_secs(20));
        assert_eq!(policy.delay(4, 0.5), Duration::from_secs(60));
        assert_eq!(policy.delay(40, 1.0), MAX_RETRY_DELAY);
        let j = jitter();
        assert!((0.0..1.0).contains(&j));
    }

    #[test]
    fn every_channel_has_defectdojos_failure_source() {
        assert_eq!(failure_source(Channel::Slack), "Slack Notification");
        assert_eq!(
            failure_source(Channel::Msteams),
            "Microsoft Teams Notification"
        );
        assert_eq!(failure_source(Channel::Mail), "Email Notification");
        assert_eq!(failure_source(Channel::Webhooks), "Webhooks Notification");
    }
}
