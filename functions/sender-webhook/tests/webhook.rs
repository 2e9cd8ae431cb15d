//! The webhook sender against fake receivers on loopback, over a real embedded store, with the
//! sample payloads from `events/`: the Lambda handler's batch answer, the URL guard, redirects
//! and connection failures.

use aws_lambda_events::event::sqs::SqsEvent;
use herald_shared::adapters::EmbeddedStore;
use herald_shared::adapters::WebhookClient;
use herald_shared::domain::{
    Delivery, DeliveryStatus, Destination, Event, SystemSettings, WebhookEndpoint, WebhookId,
    WebhookRequest, WebhookStatus,
};
use herald_shared::ports::{
    EventRecord, EventStore, FixedClock, HeraldStore, SettingsStore, WebhookStore,
};
use herald_shared::ports::{SendError, SendRequest, Transport};
use herald_shared::sender::{RetryPolicy, Sender};
use herald_shared::testing::{FakeHttp, NoRedelivery, Reply};
use lambda_runtime::{Context, LambdaEvent};
use sender_webhook::WebhookTransport;
use serde_json::{Value, json};
use std::sync::Arc;

const NOW_MS: u64 = 1_795_771_800_000;

/// A receiver answering by path: `/ok` 204, `/busy` 503, `/moved` 302 to `/ok`.
async fn receiver() -> (String, FakeHttp) {
    let fake = FakeHttp::start(|request| match request.path.as_str() {
        "/ok" => Reply::status(204),
        "/busy" => Reply::status(503),
        "/moved" => Reply::status(302).header("location", "/ok"),
        _ => Reply::status(404),
    })
    .await;
    (fake.base.clone(), fake)
}

/// What the receiver got: each request's path and `X-Herald-Event`.
fn received(fake: &FakeHttp) -> Vec<(String, String)> {
    fake.requests()
        .into_iter()
        .map(|r| {
            let event = r.header("x-herald-event").unwrap_or_default().to_owned();
            (r.path, event)
        })
        .collect()
}

/// The sample event of `events/eventbridge/herald-event.json` (the `detail`).
fn sample_event() -> Event {
    let bridge: Value = serde_json::from_slice(include_bytes!(
        "../../../events/eventbridge/herald-event.json"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    Event::from_request(&bridge["detail"], || "unused".into()).unwrap_or_else(|e| panic!("{e}"))
}

/// The SQS batch of `events/sqs/webhook-deliveries.json`.
fn sample_batch() -> SqsEvent {
    serde_json::from_slice(include_bytes!(
        "../../../events/sqs/webhook-deliveries.json"
    ))
    .unwrap_or_else(|e| panic!("{e}"))
}

fn endpoint(id: &str, url: &str) -> WebhookEndpoint {
    WebhookRequest::from_request(&json!({"name": id, "url": url}))
        .and_then(|r| {
            r.create(
                WebhookId::parse("id", id).unwrap_or_else(|e| panic!("{e}")),
                None,
                NOW_MS,
            )
        })
        .unwrap_or_else(|e| panic!("{e}"))
}

fn id(value: &str) -> WebhookId {
    WebhookId::parse("id", value).unwrap_or_else(|e| panic!("{e}"))
}

async fn store_with_webhooks_on() -> Arc<EmbeddedStore> {
    let store = Arc::new(EmbeddedStore::in_memory().unwrap_or_else(|e| panic!("{e}")));
    let system = SystemSettings {
        enable_webhooks_notifications: true,
        webhooks_notifications_timeout: 5,
        ..SystemSettings::default()
    };
    store
        .put_system_settings(&system)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    store
}

fn transport(store: &Arc<EmbeddedStore>, allow_private: bool) -> WebhookTransport {
    WebhookTransport::new(
        store.clone() as Arc<dyn HeraldStore>,
        WebhookClient::new(allow_private),
        Arc::new(FixedClock(NOW_MS)),
    )
}

#[tokio::test]
async fn given_the_sample_batch_then_it_answers_with_exactly_the_records_to_retry() {
    let (base, fake) = receiver().await;
    let store = store_with_webhooks_on().await;
    // wh_0123… answers 204, wh_5e1e… is busy (503), wh_fedc… was never registered (deleted).
    for (endpoint_id, path) in [
        ("wh_0123456789abcdef", "/ok"),
        ("wh_5e1ec7ed5e1ec7ed", "/busy"),
    ] {
        store
            .put_webhook(&endpoint(endpoint_id, &format!("{base}{path}")))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let event = sample_event();
    let deliveries: Vec<Delivery> = [
        "wh_0123456789abcdef",
        "wh_fedcba9876543210",
        "wh_5e1ec7ed5e1ec7ed",
    ]
    .into_iter()
    .map(|e| Delivery::queued(&event.id, Destination::Webhook(id(e)), NOW_MS))
    .collect();
    let record = EventRecord {
        event,
        accepted_at: NOW_MS,
        delivery_count: 3,
        alert_count: 0,
        enqueued: true,
        complete: true,
    };
    store
        .record_event(&record, &[], &deliveries)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let sender = Sender {
        store: store.clone() as Arc<dyn HeraldStore>,
        transport: transport(&store, true),
        redelivery: Arc::new(NoRedelivery),
        policy: RetryPolicy::default(),
        clock: Arc::new(FixedClock(NOW_MS)),
    };

    let answer = herald_shared::sender::lambda_handler(
        &sender,
        LambdaEvent::new(sample_batch(), Context::default()),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    let retried: Vec<&str> = answer
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(retried, ["9e3f4a5b-6c7d-4e8f-a01b-2c3d4e5f6071"]);
    let mut outcomes = Vec::new();
    for delivery in &deliveries {
        let stored = store
            .delivery(&delivery.event_id, &delivery.id)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no delivery {}", delivery.id));
        outcomes.push((stored.status, stored.last_error));
    }
    assert_eq!(
        outcomes,
        [
            (DeliveryStatus::Sent, None),
            (
                DeliveryStatus::Failed,
                Some("webhook endpoint was deleted".to_owned())
            ),
            (
                DeliveryStatus::Retrying,
                Some("the webhook endpoint answered HTTP 503".to_owned())
            ),
        ]
    );
    let busy = store
        .webhook(&id("wh_5e1ec7ed5e1ec7ed"))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .map(|e| e.state.status);
    assert_eq!(busy, Some(WebhookStatus::InactiveTmp));
    let mut paths: Vec<(String, String)> = received(&fake);
    paths.sort();
    assert_eq!(
        paths,
        [
            ("/busy".to_owned(), "scan_added".to_owned()),
            ("/ok".to_owned(), "scan_added".to_owned())
        ]
    );
}

/// Sends the sample event to `url` through the transport, as a registered system endpoint.
async fn send_to(url: &str, allow_private: bool) -> (Result<(), SendError>, WebhookEndpoint) {
    let store = store_with_webhooks_on().await;
    let hook = endpoint("wh_0123456789abcdef", url);
    store
        .put_webhook(&hook)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let event = sample_event();
    let delivery = Delivery::queued(&event.id, Destination::Webhook(hook.id.clone()), NOW_MS);
    let system = store
        .system_settings()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let request = SendRequest {
        event: &event,
        delivery: &delivery,
        system: &system,
        recipient: None,
    };
    let result = transport(&store, allow_private).send(&request).await;
    let after = store
        .webhook(&hook.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("the endpoint is gone"));
    (result, after)
}

#[tokio::test]
async fn given_a_loopback_url_without_permission_then_nothing_is_sent_and_no_url_is_shown() {
    let (base, fake) = receiver().await;
    let url = format!("{base}/ok?token=s3cret-in-url");
    let (result, after) = send_to(&url, false).await;
    match &result {
        Err(SendError::Permanent { reason }) => {
            assert!(reason.contains("non-public address"), "{reason}");
            assert!(
                !reason.contains("s3cret-in-url") && !reason.contains("127.0.0.1"),
                "{reason}"
            );
        }
        other => panic!("expected a permanent refusal, got {other:?}"),
    }
    assert_eq!(after.state.status, WebhookStatus::InactivePermanent);
    assert!(received(&fake).is_empty());
}

#[tokio::test]
async fn given_a_redirect_then_it_is_not_followed_and_fails_for_good() {
    let (base, fake) = receiver().await;
    let (result, after) = send_to(&format!("{base}/moved"), true).await;
    assert_eq!(
        result,
        Err(SendError::Permanent {
            reason: "the webhook endpoint answered HTTP 302".into()
        })
    );
    assert_eq!(after.state.status, WebhookStatus::InactivePermanent);
    let paths: Vec<String> = received(&fake).into_iter().map(|(p, _)| p).collect();
    assert_eq!(paths, ["/moved"]);
}

#[tokio::test]
async fn given_nothing_listening_then_the_connection_error_is_temporary() {
    // Bind and drop: the port is free, so the connection is refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"));
    let (result, after) = send_to(&format!("http://127.0.0.1:{port}/hook"), true).await;
    match &result {
        Err(SendError::Transient { reason, .. }) => {
            assert_eq!(reason, "the webhook endpoint could not connect");
        }
        other => panic!("expected a transient error, got {other:?}"),
    }
    assert_eq!(after.state.status, WebhookStatus::InactiveTmp);
    assert_eq!(
        after.state.note.as_deref(),
        Some("the webhook endpoint could not connect")
    );
}
