//! `SlackTransport` against a fake Slack Web API: a small axum app on 127.0.0.1:0 that
//! records every request and answers from a script. Direct messages and the Lambda handler
//! run through the shared `Sender` over the embedded store, with the real sample payloads
//! from `events/`.

use aws_lambda_events::event::sqs::SqsEvent;
use axum::http::Method;
use herald_shared::adapters::EmbeddedStore;
use herald_shared::domain::{
    Delivery, DeliveryStatus, Destination, Event, Secret, SystemSettings, User, UserProfile,
    Username,
};
use herald_shared::ports::{
    DirectoryStore, EventRecord, EventStore, FixedClock, HeraldStore, SettingsStore,
};
use herald_shared::ports::{SendError, SendRequest, Transport};
use herald_shared::sender::{RetryPolicy, Sender};
use herald_shared::testing::{FakeHttp, NoRedelivery, Reply, Request};
use lambda_runtime::{Context, LambdaEvent};
use sender_slack::SlackTransport;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

const TOKEN: &str = "xoxb-111-222-SeCrEtToKeN";
const NOW_MS: u64 = 1_795_771_800_000;

/// The fake Slack Web API, serving `/api/<method>`: scripted replies per method, then what
/// Slack answers when all is well.
struct FakeSlack {
    http: FakeHttp,
    api_url: String,
}

impl FakeSlack {
    async fn start() -> FakeSlack {
        let http = FakeHttp::start(|request| match request.path.as_str() {
            "/api/users.lookupByEmail" => {
                Reply::ok(json!({"ok": true, "user": {"id": "U0ALICE42"}}))
            }
            _ => Reply::ok(json!({"ok": true, "channel": "C0APPSEC", "ts": "1795771800.000100"})),
        })
        .await;
        let api_url = http.url("/api");
        FakeSlack { http, api_url }
    }

    fn will(&self, method: &str, replies: Vec<Reply>) {
        self.http.will_at(&format!("/api/{method}"), replies);
    }

    fn requests(&self) -> Vec<Request> {
        self.http.requests()
    }

    fn calls(&self, method: &str) -> Vec<Request> {
        self.http.requests_to(&format!("/api/{method}"))
    }
}

fn system() -> SystemSettings {
    SystemSettings {
        enable_slack_notifications: true,
        slack_token: Some(Secret::new(TOKEN)),
        slack_channel: "#appsec".into(),
        slack_username: "Herald".into(),
        team_name: "AppSec".into(),
        site_url: "https://dojo.example.com".into(),
        ..SystemSettings::default()
    }
}

/// The sample event of `events/eventbridge/herald-event.json` (the `detail`).
fn sample_event() -> Event {
    let bridge: Value = serde_json::from_slice(include_bytes!(
        "../../../events/eventbridge/herald-event.json"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    Event::from_request(&bridge["detail"], || "unused".into()).unwrap_or_else(|e| panic!("{e}"))
}

fn username(name: &str) -> Username {
    Username::parse("username", name).unwrap_or_else(|e| panic!("{e}"))
}

fn alice() -> User {
    User {
        username: username("alice"),
        profile: UserProfile {
            email: Some("alice@example.com".into()),
            slack_email: Some("alice@corp.example".into()),
            ..UserProfile::default()
        },
    }
}

struct World {
    _dir: tempfile::TempDir,
    store: Arc<EmbeddedStore>,
    slack: FakeSlack,
}

impl World {
    async fn new() -> World {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store =
            EmbeddedStore::open(&dir.path().join("herald.db")).unwrap_or_else(|e| panic!("{e}"));
        store
            .put_system_settings(&system())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        World {
            _dir: dir,
            store: Arc::new(store),
            slack: FakeSlack::start().await,
        }
    }

    fn transport(&self) -> SlackTransport {
        self.transport_with_timeout(Duration::from_secs(10))
    }

    fn transport_with_timeout(&self, timeout: Duration) -> SlackTransport {
        SlackTransport::with_timeout(self.store.clone(), &self.slack.api_url, timeout)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Sends `event` to the system channel directly through the transport.
    async fn send_to_channel(
        &self,
        transport: &SlackTransport,
        system: &SystemSettings,
    ) -> Result<(), SendError> {
        let event = sample_event();
        let delivery = Delivery::queued(
            &event.id,
            Destination::SlackChannel(system.slack_channel.clone()),
            NOW_MS,
        );
        let request = SendRequest {
            event: &event,
            delivery: &delivery,
            system,
            recipient: None,
        };
        transport.send(&request).await
    }

    async fn add_user(&self, user: &User) {
        let template = self
            .store
            .template_notifications()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        self.store
            .put_user(&user.username, &user.profile, &template)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    async fn user(&self, name: &str) -> User {
        self.store
            .user(&username(name))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no user {name}"))
    }

    /// Records `event` with one queued delivery per destination, as intake would.
    async fn record(&self, event: &Event, destinations: &[Destination]) -> Vec<Delivery> {
        let deliveries: Vec<Delivery> = destinations
            .iter()
            .map(|d| Delivery::queued(&event.id, d.clone(), NOW_MS))
            .collect();
        let record = EventRecord {
            event: event.clone(),
            accepted_at: NOW_MS,
            delivery_count: deliveries.len() as u32,
            alert_count: 0,
            enqueued: true,
            complete: true,
        };
        self.store
            .record_event(&record, &[], &deliveries)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        deliveries
    }

    fn sender(&self, transport: SlackTransport) -> Sender<SlackTransport> {
        Sender {
            store: self.store.clone() as Arc<dyn HeraldStore>,
            transport,
            redelivery: Arc::new(NoRedelivery),
            policy: RetryPolicy::default(),
            clock: Arc::new(FixedClock(NOW_MS)),
        }
    }

    async fn status(&self, delivery: &Delivery) -> (DeliveryStatus, Option<String>) {
        let stored = self
            .store
            .delivery(&delivery.event_id, &delivery.id)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no delivery {}", delivery.id));
        (stored.status, stored.last_error)
    }
}

/// The SQS batch of `events/sqs/slack-deliveries.json`.
fn sample_batch() -> SqsEvent {
    serde_json::from_slice(include_bytes!("../../../events/sqs/slack-deliveries.json"))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn transient_delay(result: &Result<(), SendError>) -> Option<Option<Duration>> {
    match result {
        Err(SendError::Transient { retry_after, .. }) => Some(*retry_after),
        _ => None,
    }
}

#[tokio::test]
async fn given_the_system_channel_then_it_posts_blocks_and_text_with_the_bearer_token() {
    let w = World::new().await;

    let result = w.send_to_channel(&w.transport(), &system()).await;

    assert_eq!(result, Ok(()));
    let posts = w.slack.calls("chat.postMessage");
    assert_eq!(posts.len(), 1, "{:?}", w.slack.requests());
    let post = &posts[0];
    assert_eq!(post.method, Method::POST);
    assert_eq!(
        post.header("authorization"),
        Some(&*format!("Bearer {TOKEN}"))
    );
    assert_eq!(
        post.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(post.body["channel"], "#appsec");
    assert_eq!(post.body["username"], "Herald");
    assert_eq!(
        post.body["text"],
        "AppSec notification: Created/Updated 2 findings for Web shop: Q3 pentest: ZAP Scan"
    );
    let blocks = post.body["blocks"].as_array().cloned().unwrap_or_default();
    assert!(blocks.len() >= 3, "{blocks:?}");
    assert_eq!(
        blocks[0]["text"]["text"],
        "*<https://dojo.example.com/test/99|Created/Updated 2 findings for Web shop: Q3 pentest: ZAP Scan>*"
    );
    assert!(
        post.body.to_string().contains("Reflected XSS"),
        "the findings are listed"
    );
    assert!(
        w.slack.calls("users.lookupByEmail").is_empty(),
        "no lookup for a channel"
    );
}

#[tokio::test]
async fn given_no_slack_username_then_none_is_sent() {
    let w = World::new().await;
    let system = SystemSettings {
        slack_username: String::new(),
        ..system()
    };

    assert_eq!(w.send_to_channel(&w.transport(), &system).await, Ok(()));

    let post = &w.slack.calls("chat.postMessage")[0];
    assert!(post.body.get("username").is_none(), "{}", post.body);
}

#[tokio::test]
async fn given_a_user_with_only_a_slack_email_then_it_is_looked_up_once_and_kept() {
    let w = World::new().await;
    w.add_user(&alice()).await;
    let sender = w.sender(w.transport());

    // First event: the id is looked up, stored, and the DM goes to it.
    let first = sample_event();
    let deliveries = w
        .record(&first, &[Destination::SlackUser(username("alice"))])
        .await;
    let mut batch = sample_batch();
    batch
        .records
        .retain(|r| r.message_id.as_deref() == Some("5d2e9f3a-8b61-4c07-b1e2-7a9c0d4f6e21"));
    let answer =
        herald_shared::sender::lambda_handler(&sender, LambdaEvent::new(batch, Context::default()))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    assert!(answer.batch_item_failures.is_empty(), "{answer:?}");
    assert_eq!(w.status(&deliveries[0]).await, (DeliveryStatus::Sent, None));
    let lookups = w.slack.calls("users.lookupByEmail");
    assert_eq!(lookups.len(), 1);
    assert_eq!(lookups[0].method, Method::GET);
    assert_eq!(
        lookups[0].query.as_deref(),
        Some("email=alice%40corp.example")
    );
    assert_eq!(
        lookups[0].header("authorization"),
        Some(&*format!("Bearer {TOKEN}"))
    );
    assert_eq!(
        w.user("alice").await.profile.slack_user_id.as_deref(),
        Some("U0ALICE42"),
        "the id is stored on the user"
    );
    let posts = w.slack.calls("chat.postMessage");
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].body["channel"], "U0ALICE42");

    // Second event: no lookup, straight to the stored id.
    let mut second = serde_json::to_value(sample_event()).unwrap_or_default();
    second["id"] = json!("dd-import-4712");
    let second = Event::from_request(&second, || "unused".into()).unwrap_or_else(|e| panic!("{e}"));
    let deliveries = w
        .record(&second, &[Destination::SlackUser(username("alice"))])
        .await;
    let mut batch = SqsEvent::default();
    let mut record = aws_lambda_events::event::sqs::SqsMessage::default();
    record.message_id = Some("second".into());
    record.body = Some(serde_json::to_string(&deliveries[0].message()).unwrap_or_default());
    batch.records.push(record);
    let answer =
        herald_shared::sender::lambda_handler(&sender, LambdaEvent::new(batch, Context::default()))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    assert!(answer.batch_item_failures.is_empty(), "{answer:?}");
    assert_eq!(w.status(&deliveries[0]).await, (DeliveryStatus::Sent, None));
    assert_eq!(
        w.slack.calls("users.lookupByEmail").len(),
        1,
        "no second lookup"
    );
    let posts = w.slack.calls("chat.postMessage");
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[1].body["channel"], "U0ALICE42");
}

#[tokio::test]
async fn given_the_sample_batch_then_the_handler_sends_both_and_reports_no_failure() {
    let w = World::new().await;
    w.add_user(&User {
        username: username("alice"),
        profile: UserProfile {
            slack_user_id: Some("U0ALICE1".into()),
            ..UserProfile::default()
        },
    })
    .await;
    let deliveries = w
        .record(
            &sample_event(),
            &[
                Destination::SlackChannel("#appsec".into()),
                Destination::SlackUser(username("alice")),
            ],
        )
        .await;
    let sender = w.sender(w.transport());

    let answer = herald_shared::sender::lambda_handler(
        &sender,
        LambdaEvent::new(sample_batch(), Context::default()),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    assert!(answer.batch_item_failures.is_empty(), "{answer:?}");
    for delivery in &deliveries {
        assert_eq!(w.status(delivery).await, (DeliveryStatus::Sent, None));
    }
    let mut channels: Vec<String> = w
        .slack
        .calls("chat.postMessage")
        .iter()
        .map(|p| p.body["channel"].as_str().unwrap_or_default().to_owned())
        .collect();
    channels.sort();
    assert_eq!(channels, ["#appsec", "U0ALICE1"]);
    assert!(w.slack.calls("users.lookupByEmail").is_empty());
}

#[tokio::test]
async fn given_an_unknown_slack_email_then_the_delivery_fails_for_good() {
    let w = World::new().await;
    let transport = w.transport();
    w.slack.will(
        "users.lookupByEmail",
        vec![Reply::ok(json!({"ok": false, "error": "users_not_found"}))],
    );
    let event = sample_event();
    let delivery = Delivery::queued(&event.id, Destination::SlackUser(username("alice")), NOW_MS);
    let alice = alice();
    let system = system();
    let request = SendRequest {
        event: &event,
        delivery: &delivery,
        system: &system,
        recipient: Some(&alice),
    };

    let result = transport.send(&request).await;

    assert_eq!(
        result,
        Err(SendError::Permanent {
            reason: "Slack answered users_not_found (looking up alice's slack_email)".into()
        })
    );
    assert!(w.slack.calls("chat.postMessage").is_empty());
}

#[tokio::test]
async fn given_a_user_without_slack_address_or_a_missing_user_then_it_fails_for_good() {
    let w = World::new().await;
    let transport = w.transport();
    let event = sample_event();
    let delivery = Delivery::queued(&event.id, Destination::SlackUser(username("bob")), NOW_MS);
    let bob = User {
        username: username("bob"),
        profile: UserProfile::default(),
    };
    let system = system();
    for (recipient, expected) in [
        (
            Some(&bob),
            "user bob has neither a slack_user_id nor a slack_email",
        ),
        (None, "user bob is not in the directory"),
    ] {
        let request = SendRequest {
            event: &event,
            delivery: &delivery,
            system: &system,
            recipient,
        };
        assert_eq!(
            transport.send(&request).await,
            Err(SendError::Permanent {
                reason: expected.into()
            })
        );
    }
    assert!(w.slack.requests().is_empty());
}

#[tokio::test]
async fn given_429_with_retry_after_then_it_is_transient_with_that_delay() {
    let w = World::new().await;
    w.slack.will(
        "chat.postMessage",
        vec![
            Reply::json(429, json!({"ok": false, "error": "ratelimited"}))
                .header("retry-after", "7"),
        ],
    );

    let result = w.send_to_channel(&w.transport(), &system()).await;

    assert_eq!(
        transient_delay(&result),
        Some(Some(Duration::from_secs(7))),
        "{result:?}"
    );
}

#[tokio::test]
async fn given_ok_false_ratelimited_then_it_is_transient_with_slacks_retry_after() {
    let w = World::new().await;
    w.slack.will(
        "chat.postMessage",
        vec![Reply::ok(json!({"ok": false, "error": "ratelimited"})).header("retry-after", "30")],
    );

    let result = w.send_to_channel(&w.transport(), &system()).await;

    assert_eq!(
        result,
        Err(SendError::Transient {
            reason: "Slack answered ratelimited".into(),
            retry_after: Some(Duration::from_secs(30)),
        })
    );
}

#[tokio::test]
async fn given_5xx_or_a_transient_slack_error_then_it_is_transient() {
    let w = World::new().await;
    let transport = w.transport();
    w.slack.will(
        "chat.postMessage",
        vec![
            Reply::json(500, json!({})),
            Reply::json(503, json!({})),
            Reply::ok(json!({"ok": false, "error": "internal_error"})),
            Reply::ok(json!({"ok": false, "error": "service_unavailable"})),
        ],
    );

    for expected in [
        "Slack answered chat.postMessage with HTTP 500 Internal Server Error",
        "Slack answered chat.postMessage with HTTP 503 Service Unavailable",
        "Slack answered internal_error",
        "Slack answered service_unavailable",
    ] {
        let result = w.send_to_channel(&transport, &system()).await;
        assert_eq!(
            result,
            Err(SendError::Transient {
                reason: expected.into(),
                retry_after: None
            })
        );
    }
}

#[tokio::test]
async fn given_slack_refuses_then_it_is_permanent_with_slacks_error() {
    let w = World::new().await;
    let transport = w.transport();
    w.slack.will(
        "chat.postMessage",
        vec![
            Reply::ok(json!({"ok": false, "error": "channel_not_found"})),
            Reply::ok(json!({"ok": false, "error": "not_in_channel"})),
            Reply::ok(json!({"ok": false, "error": "invalid_auth"})),
            Reply::json(400, json!({"ok": false, "error": "invalid_blocks"})),
            Reply::json(302, json!({})).header("location", "https://login.example.com/"),
            Reply::ok(json!({"ok": false})),
            Reply::ok(json!({"message": "ok"})),
        ],
    );

    for expected in [
        "Slack answered channel_not_found",
        "Slack answered not_in_channel",
        "Slack answered invalid_auth",
        "Slack answered chat.postMessage with HTTP 400 Bad Request",
        "Slack answered chat.postMessage with HTTP 302 Found",
        "Slack answered unknown_error",
        "Slack answered unknown_error",
    ] {
        let result = w.send_to_channel(&transport, &system()).await;
        assert_eq!(
            result,
            Err(SendError::Permanent {
                reason: expected.into()
            })
        );
    }
    assert_eq!(w.slack.requests().len(), 7, "the redirect was not followed");
}

#[tokio::test]
async fn given_ok_true_with_the_word_error_in_the_reply_then_it_is_a_success() {
    let w = World::new().await;
    w.slack.will(
        "chat.postMessage",
        vec![Reply::ok(json!({
            "ok": true, "channel": "C0APPSEC", "ts": "1.2",
            "message": {"text": "error: 3 errors found in scan"},
            "warning": "missing_charset", "response_metadata": {"warnings": ["error_prone"]}
        }))],
    );

    assert_eq!(w.send_to_channel(&w.transport(), &system()).await, Ok(()));
}

#[tokio::test]
async fn given_slack_answers_too_late_then_it_is_transient() {
    let w = World::new().await;
    let mut slow = Reply::ok(json!({"ok": true}));
    slow.delay = Duration::from_secs(3);
    w.slack.will("chat.postMessage", vec![slow]);
    let transport = w.transport_with_timeout(Duration::from_millis(200));

    let result = w.send_to_channel(&transport, &system()).await;

    assert_eq!(
        result,
        Err(SendError::Transient {
            reason: "Slack chat.postMessage: timed out after 0.2 s".into(),
            retry_after: None
        })
    );
}

#[tokio::test]
async fn given_nothing_listening_then_it_is_transient() {
    let w = World::new().await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let address = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    drop(listener);
    let transport = SlackTransport::new(w.store.clone(), &format!("http://{address}/api"))
        .unwrap_or_else(|e| panic!("{e}"));

    let result = w.send_to_channel(&transport, &system()).await;

    assert_eq!(
        result,
        Err(SendError::Transient {
            reason: "Slack chat.postMessage: could not connect".into(),
            retry_after: None
        })
    );
}

#[tokio::test]
async fn given_no_token_or_slack_switched_off_then_it_fails_for_good_without_a_request() {
    let w = World::new().await;
    let transport = w.transport();
    let cases = [
        (
            SystemSettings {
                slack_token: None,
                ..system()
            },
            "no Slack token is configured (system settings slack_token)",
        ),
        (
            SystemSettings {
                enable_slack_notifications: false,
                ..system()
            },
            "Slack notifications are disabled in the system settings",
        ),
        (
            SystemSettings {
                slack_channel: String::new(),
                ..system()
            },
            "no Slack channel is configured (system settings slack_channel)",
        ),
    ];
    for (system, expected) in cases {
        assert_eq!(
            w.send_to_channel(&transport, &system).await,
            Err(SendError::Permanent {
                reason: expected.into()
            })
        );
    }
    assert!(w.slack.requests().is_empty());
}

#[tokio::test]
async fn given_any_failure_then_the_error_text_never_contains_the_token() {
    let w = World::new().await;
    let transport = w.transport_with_timeout(Duration::from_millis(200));
    let mut slow = Reply::ok(json!({"ok": true}));
    slow.delay = Duration::from_secs(3);
    w.slack.will(
        "chat.postMessage",
        vec![
            Reply::json(429, json!({"ok": false, "error": TOKEN})).header("retry-after", "1"),
            Reply::json(500, json!({"error": TOKEN})),
            Reply::json(401, json!({"ok": false, "error": TOKEN})),
            Reply::ok(json!({"ok": false, "error": TOKEN})),
            Reply::ok(json!({"ok": false, "error": TOKEN.to_lowercase().replace('-', "_")})),
            Reply::ok(json!({"ok": false, "error": "invalid_auth", "token": TOKEN})),
            slow,
        ],
    );
    // A token made only of characters an error code may have, echoed back as the error.
    let plain_token = TOKEN.to_lowercase().replace('-', "_");
    for token in [TOKEN, TOKEN, TOKEN, TOKEN, &plain_token, TOKEN, TOKEN] {
        let system = SystemSettings {
            slack_token: Some(Secret::new(token)),
            ..system()
        };
        let result = w.send_to_channel(&transport, &system).await;
        let text = format!(
            "{result:?} {}",
            result
                .as_ref()
                .err()
                .map(ToString::to_string)
                .unwrap_or_default()
        );
        assert!(result.is_err(), "{text}");
        assert!(!text.to_lowercase().contains(&plain_token), "{text}");
        assert!(!text.contains(TOKEN), "{text}");
        assert!(!text.to_lowercase().contains("bearer"), "{text}");
    }
    assert!(format!("{transport:?}").find(TOKEN).is_none());
}

/// A Secrets Manager client for moto (`HERALD_TEST_MOTO_URL`, started by
/// `scripts/services.sh start`).
async fn moto_secrets() -> aws_sdk_secretsmanager::Client {
    let url = match std::env::var("HERALD_TEST_MOTO_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "HERALD_TEST_MOTO_URL is not set: start the emulators with `scripts/services.sh \
             start` and `source target/test-services/dev.env`, or run `scripts/test.sh`"
        ),
    };
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(url)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
            "test",
            "test",
            None,
            None,
            "herald-tests",
        ))
        .load()
        .await;
    aws_sdk_secretsmanager::Client::new(&config)
}

#[tokio::test]
async fn given_a_token_secret_then_it_wins_over_the_settings_and_is_kept_for_its_ttl() {
    // GIVEN a secret holding a token other than the settings' one
    let w = World::new().await;
    let secrets = moto_secrets().await;
    let name = format!("herald/slack-{NOW_MS}-{}", std::process::id());
    let arn = secrets
        .create_secret()
        .name(&name)
        .secret_string(r#"{"token": "xoxb-from-secrets-manager"}"#)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"))
        .arn
        .unwrap_or_else(|| panic!("no ARN"));
    let cached =
        w.transport()
            .with_token_secret(herald_shared::adapters::SecretsManagerToken::new(
                secrets.clone(),
                &arn,
            ));
    let fresh =
        w.transport()
            .with_token_secret(herald_shared::adapters::SecretsManagerToken::with_ttl(
                secrets.clone(),
                &arn,
                Duration::ZERO,
            ));

    // WHEN both send, the secret is rotated, and both send again
    assert_eq!(w.send_to_channel(&cached, &system()).await, Ok(()));
    assert_eq!(w.send_to_channel(&fresh, &system()).await, Ok(()));
    secrets
        .put_secret_value()
        .secret_id(&arn)
        .secret_string("xoxb-rotated")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(w.send_to_channel(&cached, &system()).await, Ok(()));
    assert_eq!(w.send_to_channel(&fresh, &system()).await, Ok(()));

    // THEN the secret's token was used, never the settings' one; the cached transport keeps
    // the first value for its TTL, the other reads the rotated one
    let tokens: Vec<String> = w
        .slack
        .calls("chat.postMessage")
        .iter()
        .map(|p| p.header("authorization").unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        tokens,
        [
            "Bearer xoxb-from-secrets-manager",
            "Bearer xoxb-from-secrets-manager",
            "Bearer xoxb-from-secrets-manager",
            "Bearer xoxb-rotated",
        ]
    );
}

#[tokio::test]
async fn given_a_missing_or_unusable_token_secret_then_the_send_is_transient_without_a_request() {
    let w = World::new().await;
    let secrets = moto_secrets().await;
    let missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:herald/none-AbCdEf";
    let name = format!("herald/slack-empty-{NOW_MS}-{}", std::process::id());
    secrets
        .create_secret()
        .name(&name)
        .secret_string(r#"{"password": "xoxb-not-here"}"#)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));

    for (secret_id, expected) in [
        (missing, "could not be read from AWS Secrets Manager"),
        (name.as_str(), "is unusable: its JSON object has no string"),
    ] {
        let transport =
            w.transport()
                .with_token_secret(herald_shared::adapters::SecretsManagerToken::new(
                    secrets.clone(),
                    secret_id,
                ));
        let result = w.send_to_channel(&transport, &system()).await;
        let Err(SendError::Transient { reason, .. }) = result else {
            panic!("{secret_id}: {result:?}");
        };
        assert!(
            reason.contains(expected) && reason.contains(secret_id),
            "{reason}"
        );
        assert!(!reason.contains("xoxb"), "{reason}");
    }
    assert!(w.slack.requests().is_empty(), "{:?}", w.slack.requests());
}
