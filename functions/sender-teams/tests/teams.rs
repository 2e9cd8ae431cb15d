//! `TeamsTransport` against a fake Teams webhook: a small axum app on 127.0.0.1:0 that records
//! every request and answers from a script. Loopback is only reachable with private targets
//! allowed, as `HERALD_ALLOW_PRIVATE_TARGETS=1` does locally; without it the guard refuses
//! the URL before any request. The Lambda handler runs through the shared `Sender` over the
//! embedded store, with the sample event from `events/`.

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use herald_shared::adapters::EmbeddedStore;
use herald_shared::domain::{Delivery, DeliveryStatus, Destination, Event, SystemSettings};
use herald_shared::ports::{EventRecord, EventStore, FixedClock, HeraldStore, SettingsStore};
use herald_shared::ports::{SendError, SendRequest, Transport};
use herald_shared::sender::{RetryPolicy, Sender};
use herald_shared::testing::{FakeHttp, NoRedelivery, Reply, Request};
use lambda_runtime::{Context, LambdaEvent};
use sender_teams::TeamsTransport;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

const NOW_MS: u64 = 1_795_771_800_000;
/// Workflows URLs carry a signature in the query: it must never show up in an error.
const SIGNATURE: &str = "sig=TopSecretSignature123";

/// The fake Teams workflow: scripted replies, then 202 (what Workflows answers).
struct FakeTeams {
    http: FakeHttp,
    url: String,
}

impl FakeTeams {
    async fn start() -> FakeTeams {
        let http = FakeHttp::start(|_| Reply::status(202)).await;
        let url = http.url(&format!(
            "/workflows/abc/triggers/manual/run?api-version=1&{SIGNATURE}"
        ));
        FakeTeams { http, url }
    }

    fn will(&self, reply: Reply) {
        self.http.will([reply]);
    }

    fn requests(&self) -> Vec<Request> {
        self.http.requests()
    }
}

fn system(url: &str) -> SystemSettings {
    SystemSettings {
        enable_msteams_notifications: true,
        msteams_url: Some(herald_shared::domain::Secret::new(url)),
        team_name: "AppSec".into(),
        site_url: "https://dojo.example.com".into(),
        webhooks_notifications_timeout: 10,
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

fn transport(allow_private: bool) -> TeamsTransport {
    TeamsTransport::new(allow_private).unwrap_or_else(|e| panic!("{e}"))
}

/// Sends the sample event to the Teams webhook directly through the transport.
async fn send(transport: &TeamsTransport, system: &SystemSettings) -> Result<(), SendError> {
    let event = sample_event();
    let delivery = Delivery::queued(&event.id, Destination::Teams, NOW_MS);
    let request = SendRequest {
        event: &event,
        delivery: &delivery,
        system,
        recipient: None,
    };
    transport.send(&request).await
}

fn assert_transient(result: &Result<(), SendError>, retry_after: Option<Duration>) {
    match result {
        Err(SendError::Transient {
            retry_after: got, ..
        }) => assert_eq!(*got, retry_after, "{result:?}"),
        other => panic!("expected a transient error, got {other:?}"),
    }
}

fn assert_no_secret(result: &Result<(), SendError>) {
    if let Err(e) = result {
        assert!(!e.to_string().contains(SIGNATURE), "{e}");
        assert!(!e.to_string().contains("/workflows/"), "{e}");
    }
}

#[tokio::test]
async fn given_a_workflows_webhook_then_it_posts_the_adaptive_card_envelope_as_json() {
    let teams = FakeTeams::start().await;
    let result = send(&transport(true), &system(&teams.url)).await;
    assert_eq!(result, Ok(()));
    let requests = teams.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert!(request.path_and_query().ends_with(SIGNATURE), "{request:?}");
    assert_eq!(request.body["type"], "message");
    let attachments = request.body["attachments"]
        .as_array()
        .unwrap_or_else(|| panic!("no attachments: {}", request.body));
    assert_eq!(attachments.len(), 1);
    assert_eq!(
        attachments[0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let card = &attachments[0]["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(card["version"], "1.4");
    let actions = card["actions"].as_array().cloned().unwrap_or_default();
    assert_eq!(actions.len(), 1, "{card}");
    assert_eq!(actions[0]["type"], "Action.OpenUrl");
    assert_eq!(actions[0]["title"], "View in AppSec");
}

#[tokio::test]
async fn given_200_then_it_is_sent_too() {
    let teams = FakeTeams::start().await;
    teams.will(Reply::status(200));
    assert_eq!(send(&transport(true), &system(&teams.url)).await, Ok(()));
}

#[tokio::test]
async fn given_500_then_it_is_transient() {
    let teams = FakeTeams::start().await;
    teams.will(Reply::status(500));
    let result = send(&transport(true), &system(&teams.url)).await;
    assert_transient(&result, None);
    assert_eq!(
        result.as_ref().map_err(ToString::to_string),
        Err("Teams answered HTTP 500".to_owned())
    );
}

#[tokio::test]
async fn given_429_with_retry_after_then_it_is_transient_with_that_delay() {
    let teams = FakeTeams::start().await;
    teams.will(Reply::status(429).header("retry-after", "3"));
    let result = send(&transport(true), &system(&teams.url)).await;
    assert_transient(&result, Some(Duration::from_secs(3)));
    assert_no_secret(&result);
}

#[tokio::test]
async fn given_400_or_a_redirect_then_it_fails_for_good() {
    let teams = FakeTeams::start().await;
    teams.will(Reply::status(400));
    teams.will(Reply::status(302).header("location", "http://169.254.169.254/"));
    let transport = transport(true);
    let result = send(&transport, &system(&teams.url)).await;
    assert_eq!(
        result,
        Err(SendError::Permanent {
            reason: "Teams answered HTTP 400".into()
        })
    );
    let result = send(&transport, &system(&teams.url)).await;
    assert_eq!(
        result,
        Err(SendError::Permanent {
            reason: "Teams answered HTTP 302".into()
        })
    );
    assert_eq!(teams.requests().len(), 2, "the redirect is not followed");
}

#[tokio::test]
async fn given_teams_answers_too_late_then_it_is_transient() {
    let teams = FakeTeams::start().await;
    teams.will(Reply::status(202).after(Duration::from_secs(3)));
    let system = SystemSettings {
        webhooks_notifications_timeout: 1,
        ..system(&teams.url)
    };
    let result = send(&transport(true), &system).await;
    assert_transient(&result, None);
    let text = result.as_ref().map_err(ToString::to_string);
    assert_eq!(
        text,
        Err("the Teams webhook: timed out after 1 s".to_owned())
    );
}

#[tokio::test]
async fn given_nothing_listening_then_it_is_transient() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let address = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    drop(listener);
    let url = format!("http://{address}/hook?{SIGNATURE}");
    let result = send(&transport(true), &system(&url)).await;
    assert_transient(&result, None);
    assert_no_secret(&result);
}

#[tokio::test]
async fn given_private_targets_not_allowed_then_a_loopback_url_fails_for_good_before_any_request() {
    let teams = FakeTeams::start().await;
    let port = teams
        .url
        .split(':')
        .nth(2)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default()
        .to_owned();
    let transport = transport(false);
    for url in [
        teams.url.clone(),
        format!("http://localhost:{port}/hook?{SIGNATURE}"),
        format!("http://2130706433:{port}/hook?{SIGNATURE}"),
        format!("http://[::ffff:127.0.0.1]:{port}/hook?{SIGNATURE}"),
    ] {
        let result = send(&transport, &system(&url)).await;
        assert!(
            matches!(result, Err(SendError::Permanent { .. })),
            "{url}: {result:?}"
        );
        assert_no_secret(&result);
    }
    assert!(teams.requests().is_empty(), "no request may leave");
}

#[tokio::test]
async fn given_teams_switched_off_no_url_or_a_bad_scheme_then_it_fails_for_good_without_a_request()
{
    let teams = FakeTeams::start().await;
    let transport = transport(true);
    let off = SystemSettings {
        enable_msteams_notifications: false,
        ..system(&teams.url)
    };
    for system in [off, system(""), system("   "), system("ftp://8.8.8.8/hook")] {
        let result = send(&transport, &system).await;
        assert!(
            matches!(result, Err(SendError::Permanent { .. })),
            "{result:?}"
        );
    }
    assert!(teams.requests().is_empty());
}

#[tokio::test]
async fn given_a_batch_then_the_handler_sends_and_records_each_outcome() {
    let teams = FakeTeams::start().await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = Arc::new(
        EmbeddedStore::open(&dir.path().join("herald.db")).unwrap_or_else(|e| panic!("{e}")),
    );
    store
        .put_system_settings(&system(&teams.url))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut batch = SqsEvent::default();
    let mut deliveries = Vec::new();
    for id in ["dd-import-1", "dd-import-2"] {
        let mut body = serde_json::to_value(sample_event()).unwrap_or_default();
        body["id"] = json!(id);
        let event =
            Event::from_request(&body, || "unused".into()).unwrap_or_else(|e| panic!("{e}"));
        let delivery = Delivery::queued(&event.id, Destination::Teams, NOW_MS);
        let record = EventRecord {
            event,
            accepted_at: NOW_MS,
            delivery_count: 1,
            alert_count: 0,
            enqueued: true,
            complete: true,
        };
        store
            .record_event(&record, &[], std::slice::from_ref(&delivery))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut message = SqsMessage::default();
        message.message_id = Some(id.into());
        message.body = Some(serde_json::to_string(&delivery.message()).unwrap_or_default());
        batch.records.push(message);
        deliveries.push(delivery);
    }
    // One answer for each, in whichever order they arrive: one sent, one refused for good.
    teams.will(Reply::status(202));
    teams.will(Reply::status(404));
    let sender = Sender {
        store: store.clone() as Arc<dyn HeraldStore>,
        transport: transport(true),
        redelivery: Arc::new(NoRedelivery),
        policy: RetryPolicy::default(),
        clock: Arc::new(FixedClock(NOW_MS)),
    };

    let answer =
        herald_shared::sender::lambda_handler(&sender, LambdaEvent::new(batch, Context::default()))
            .await
            .unwrap_or_else(|e| panic!("{e}"));

    assert!(answer.batch_item_failures.is_empty(), "{answer:?}");
    let mut outcomes = Vec::new();
    for delivery in &deliveries {
        let stored = store
            .delivery(&delivery.event_id, &delivery.id)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no delivery {}", delivery.id));
        outcomes.push((stored.status, stored.last_error));
    }
    outcomes.sort_by_key(|(status, _)| status.name());
    assert_eq!(
        outcomes,
        [
            (
                DeliveryStatus::Failed,
                Some("Teams answered HTTP 404".to_owned())
            ),
            (DeliveryStatus::Sent, None),
        ]
    );
    assert_eq!(teams.requests().len(), 2);
}

#[tokio::test]
async fn given_a_host_name_then_the_request_goes_to_the_pinned_vetted_address() {
    let teams = FakeTeams::start().await;
    let url = teams.url.replace("127.0.0.1", "localhost");
    // localhost may resolve to ::1 first while the fake listens on 127.0.0.1 only: the pinned
    // list holds every vetted address, and the client tries them in turn.
    let result = send(&transport(true), &system(&url)).await;
    assert_eq!(result, Ok(()));
    assert_eq!(teams.requests().len(), 1);
}
