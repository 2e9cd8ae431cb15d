//! The webhooks channel end to end, against real loopback receivers: endpoints added through
//! the API (each pinged first), events fanned out to each endpoint, signed posts, retries,
//! endpoint states, parking and recovery, and who may see what.

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use base64::Engine;
use herald_local::driver::QueueDriver;
use herald_shared::adapters::WebhookClient;
use herald_shared::domain::Channel;
use herald_shared::domain::webhook::sign;
use herald_shared::domain::{Secret, WebhookId};
use herald_shared::ports::{Clock, EventStore, HeraldStore, QueueConsumer, WebhookStore};
use herald_shared::sender::{RetryPolicy, Sender};
use herald_shared::webhooks::recover_webhooks;
use herald_tests::{Reply, TestApp, TestResponse, WebhookReceiver};
use http::{Method, StatusCode};
use sender_webhook::WebhookTransport;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const T0: u64 = 1_800_000_000_000;
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const HEADER_VALUE: &str = "Bearer hdr-s3cret-value";

/// A clock the test moves by hand.
struct ManualClock(AtomicU64);

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

struct World {
    app: TestApp,
    clock: Arc<ManualClock>,
    receiver: WebhookReceiver,
    sender: Arc<Sender<WebhookTransport>>,
    driver: QueueDriver,
}

/// Webhooks switched on (timeout `timeout_s`), root an administrator, alice and bob members
/// of product 7 who want scans on webhooks, and the system scope sending scans to webhooks.
async fn world(timeout_s: u32) -> World {
    let clock = Arc::new(ManualClock(AtomicU64::new(T0)));
    let app = TestApp::with_options(clock.clone(), 5, true);
    let settings = json!({"enable_webhooks_notifications": true, "webhooks_notifications_timeout": timeout_s,
        "site_url": "https://dojo.example.com"});
    let r = app
        .admin(Method::PUT, "/v1/system/settings", Some(&settings))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let system = json!({"events": {"scan_added": ["webhooks"]}});
    let r = app
        .admin(Method::PUT, "/v1/notifications/system", Some(&system))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    for (user, admin) in [("alice", false), ("bob", false), ("root", true)] {
        let profile =
            json!({"email": format!("{user}@example.com"), "first_name": user, "is_admin": admin});
        app.service_ok(Method::PUT, &format!("/v1/users/{user}"), Some(&profile))
            .await;
    }
    app.service_ok(
        Method::PUT,
        "/v1/product-types/web",
        Some(&json!({"name": "Web"})),
    )
    .await;
    app.service_ok(
        Method::PUT,
        "/v1/products/7",
        Some(&json!({"name": "Shop", "product_type_id": "web"})),
    )
    .await;
    for user in ["alice", "bob"] {
        app.service_ok(Method::PUT, &format!("/v1/products/7/members/{user}"), None)
            .await;
        app.user(
            user,
            Method::PUT,
            &format!("/v1/users/{user}/notifications"),
            Some(&json!({"events": {"scan_added": ["alert", "webhooks"]}})),
        )
        .await;
    }
    let store: Arc<dyn HeraldStore> = app.herald.store.clone();
    let sender = Arc::new(Sender {
        store: Arc::clone(&store),
        transport: WebhookTransport::new(store, WebhookClient::new(true), clock.clone()),
        redelivery: app.herald.queue.clone(),
        policy: RetryPolicy {
            base: Duration::from_secs(10),
            max_attempts: 5,
        },
        clock: clock.clone(),
    });
    let driver = QueueDriver::new(
        app.herald.queue.clone(),
        clock.clone(),
        Channel::Webhooks,
        sender.clone(),
    );
    World {
        app,
        clock,
        receiver: WebhookReceiver::start().await,
        sender,
        driver,
    }
}

impl World {
    fn advance(&self, ms: u64) {
        self.clock.0.fetch_add(ms, Ordering::SeqCst);
    }

    fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Adds a webhook as `who` (`"root"` is the administrator), asserting 201.
    async fn add(&self, who: &str, body: Value) -> Value {
        let r = self
            .as_(who, Method::POST, "/v1/webhooks", Some(&body))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body
    }

    async fn as_(
        &self,
        who: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> TestResponse {
        if who == "root" {
            self.app.admin(method, path, body).await
        } else {
            self.app.user(who, method, path, body).await
        }
    }

    async fn post_scan(&self, id: &str) -> Value {
        let event = json!({"id": id, "type": "scan_added", "title": format!("Scan {id}"),
            "product_id": 7, "url": "/test/33", "requested_by": "bob"});
        self.app
            .service_ok(Method::POST, "/v1/events", Some(&event))
            .await
            .body
    }

    /// Polls until nothing is visible.
    async fn drain(&self) -> usize {
        let mut received = 0;
        loop {
            let outcome = self
                .driver
                .poll_once()
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            if outcome.received == 0 {
                return received;
            }
            received += outcome.received;
        }
    }

    /// Each delivery of event `id`: destination → (status, attempts, last error).
    async fn statuses(&self, id: &str) -> HashMap<String, (String, u64, String)> {
        let r = self
            .app
            .service(Method::GET, &format!("/v1/events/{id}"), None)
            .await;
        r.body["deliveries"]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|d| {
                        (
                            d["destination"].as_str().unwrap_or_default().to_owned(),
                            (
                                d["status"].as_str().unwrap_or_default().to_owned(),
                                d["attempts"].as_u64().unwrap_or(0),
                                d["last_error"].as_str().unwrap_or_default().to_owned(),
                            ),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    async fn endpoint(&self, id: &str) -> Value {
        self.app
            .admin(Method::GET, &format!("/v1/webhooks/{id}"), None)
            .await
            .body
    }

    async fn recover(&self) -> herald_shared::webhooks::RecoveryReport {
        recover_webhooks(
            self.app.herald.store.as_ref(),
            self.app.herald.queue.as_ref(),
            self.now(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
    }
}

fn id_of(view: &Value) -> String {
    view["id"].as_str().unwrap_or_default().to_owned()
}

fn destination(id: &str) -> String {
    format!("webhooks:endpoint:{id}")
}

#[tokio::test]
async fn given_system_and_user_endpoints_then_each_gets_one_signed_post_with_its_header() {
    let w = world(5).await;
    let system = w
        .add(
            "root",
            json!({"name": "SIEM", "url": w.receiver.url("/siem?token=url-t0ken"), "secret": SECRET,
                "header_name": "Authorization", "header_value": HEADER_VALUE}),
        )
        .await;
    let alices = w
        .add(
            "alice",
            json!({"name": "Mine", "url": w.receiver.url("/alice")}),
        )
        .await;
    // Two pings so far, the first signed.
    let pings = w.receiver.requests();
    assert_eq!(pings.len(), 2);
    assert_eq!(pings[0].header("x-herald-event"), "ping");
    assert_eq!(pings[0].json()["event"], "ping");
    assert_eq!(pings[0].json()["title"], "Herald ping");
    assert!(pings[0].header("webhook-signature").starts_with("v1,"));
    assert_eq!(pings[1].header("webhook-signature"), "");

    let answer = w.post_scan("e1").await;
    // The system endpoint and alice's; bob wants webhooks but has none.
    assert_eq!(answer["deliveries"], 2, "{answer}");
    assert_eq!(w.drain().await, 2);
    let statuses = w.statuses("e1").await;
    assert_eq!(statuses[&destination(&id_of(&system))].0, "sent");
    assert_eq!(statuses[&destination(&id_of(&alices))].0, "sent");
    assert_eq!(statuses.len(), 2, "{statuses:?}");

    let posts = w.receiver.deliveries();
    assert_eq!(posts.len(), 2);
    let to_siem = posts
        .iter()
        .find(|p| p.path.starts_with("/siem"))
        .unwrap_or_else(|| panic!("nothing reached the system endpoint"));
    assert_eq!(to_siem.method, "POST");
    assert_eq!(to_siem.header("content-type"), "application/json");
    assert_eq!(to_siem.header("accept"), "application/json");
    assert!(to_siem.header("user-agent").starts_with("Herald/"));
    assert_eq!(to_siem.header("x-herald-event"), "scan_added");
    assert_eq!(
        to_siem.header("x-herald-instance"),
        "https://dojo.example.com"
    );
    assert_eq!(to_siem.header("authorization"), HEADER_VALUE);
    // Standard Webhooks: the id is the delivery's, the timestamp now, the signature checks.
    let delivery_id = w
        .app
        .herald
        .store
        .deliveries(
            &herald_shared::domain::EventId::parse("id", "e1").unwrap_or_else(|e| panic!("{e}")),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .find(|d| d.destination.key() == destination(&id_of(&system)))
        .map(|d| d.id.to_string())
        .unwrap_or_default();
    assert_eq!(to_siem.header("webhook-id"), format!("msg_{delivery_id}"));
    assert_eq!(to_siem.header("webhook-timestamp"), (T0 / 1000).to_string());
    let expected = sign(
        &Secret::new(SECRET),
        to_siem.header("webhook-id"),
        T0 / 1000,
        &to_siem.body,
    );
    assert_eq!(
        Some(to_siem.header("webhook-signature")),
        expected.as_deref()
    );
    let body = to_siem.json();
    assert_eq!(body["event"], "scan_added");
    assert_eq!(body["event_id"], "e1");
    assert_eq!(body["title"], "Scan e1");
    assert_eq!(body["url_ui"], "https://dojo.example.com/test/33");
    assert_eq!(body["user"]["username"], "bob");
    assert_eq!(
        body["product"]["url_api"],
        "https://dojo.example.com/api/v2/products/7/"
    );

    let to_alice = posts
        .iter()
        .find(|p| p.path == "/alice")
        .unwrap_or_else(|| panic!("nothing reached alice's endpoint"));
    assert_eq!(to_alice.header("webhook-signature"), "");
    assert_eq!(to_alice.header("authorization"), "");
}

#[tokio::test]
async fn given_header_fields_with_line_breaks_then_422_names_the_field_and_nothing_is_pinged() {
    let w = world(5).await;
    for (field, body) in [
        (
            "header_value",
            json!({"name": "x", "url": w.receiver.url("/x"), "header_name": "X-Token", "header_value": "a\r\nX-Evil: 1"}),
        ),
        (
            "header_name",
            json!({"name": "x", "url": w.receiver.url("/x"), "header_name": "X-Token\r\nX-Evil", "header_value": "a"}),
        ),
        (
            "header_value",
            json!({"name": "x", "url": w.receiver.url("/x"), "header_name": "X-Token", "header_value": "a\nb"}),
        ),
    ] {
        let r = w
            .as_("root", Method::POST, "/v1/webhooks", Some(&body))
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert_eq!(r.error_field(), field, "{}", r.body);
    }
    assert!(w.receiver.requests().is_empty());
    let list = w.as_("root", Method::GET, "/v1/webhooks", None).await;
    assert_eq!(list.body["items"], json!([]));
}

#[tokio::test]
async fn given_a_500_then_the_endpoint_rests_the_message_is_parked_and_recovery_delivers_it_once() {
    let w = world(5).await;
    let hook = w
        .add(
            "root",
            json!({"name": "SIEM", "url": w.receiver.url("/siem")}),
        )
        .await;
    let id = id_of(&hook);
    w.receiver.will([Reply::status(500)]);
    w.post_scan("e1").await;
    // alice has no endpoint: only the system's delivery.
    assert_eq!(w.drain().await, 1);
    let (status, attempts, error) = w.statuses("e1").await[&destination(&id)].clone();
    assert_eq!((status.as_str(), attempts), ("retrying", 1));
    assert_eq!(error, "the webhook endpoint answered HTTP 500");
    let endpoint = w.endpoint(&id).await;
    assert_eq!(endpoint["status"], "inactive_tmp");
    assert_eq!(endpoint["note"], "the webhook endpoint answered HTTP 500");
    assert!(endpoint["first_error"].is_string() && endpoint["last_error"].is_string());

    // The retry (5 to 10 s later) finds the endpoint resting: the message is parked, not sent,
    // and leaves the queue.
    w.advance(10_000);
    assert_eq!(w.drain().await, 1);
    assert_eq!(w.receiver.deliveries().len(), 1);
    let (status, attempts, error) = w.statuses("e1").await[&destination(&id)].clone();
    assert_eq!((status.as_str(), attempts), ("retrying", 2));
    assert!(error.contains("resting"), "{error}");
    let webhook_id = WebhookId::parse("id", &id).unwrap_or_else(|e| panic!("{e}"));
    let parked = w
        .app
        .herald
        .store
        .parked_webhook_messages(&webhook_id, 10)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(parked.len(), 1);
    let depth = w
        .app
        .herald
        .queue
        .depth(Channel::Webhooks, w.now() + 3_600_000)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((depth.visible, depth.in_flight), (0, 0));

    // 59 s after the error nothing recovers; at 60 s the endpoint is tried again.
    w.advance(50_000 - 1);
    let report = w.recover().await;
    assert_eq!((report.transitions, report.requeued), (0, 0));
    w.advance(1);
    let report = w.recover().await;
    assert_eq!((report.transitions, report.requeued), (1, 1));
    assert_eq!(w.endpoint(&id).await["status"], "active_tmp");
    assert_eq!(w.drain().await, 1);
    assert_eq!(w.statuses("e1").await[&destination(&id)].0, "sent");
    assert_eq!(w.receiver.deliveries().len(), 2);
    // Exactly once: nothing parked or queued is left to send again.
    w.advance(60_000);
    assert_eq!(w.recover().await.requeued, 0);
    assert_eq!(w.drain().await, 0);
    assert_eq!(w.receiver.deliveries().len(), 2);
    // Quiet for 24 hours: active again, errors cleared.
    w.advance(24 * 3_600_000);
    assert_eq!(w.recover().await.transitions, 1);
    let endpoint = w.endpoint(&id).await;
    assert_eq!(endpoint["status"], "active");
    assert_eq!(endpoint["first_error"], Value::Null);
}

#[tokio::test]
async fn given_a_429_then_the_retry_waits_for_its_retry_after() {
    let w = world(5).await;
    let hook = w
        .add(
            "root",
            json!({"name": "SIEM", "url": w.receiver.url("/siem")}),
        )
        .await;
    let id = id_of(&hook);
    w.receiver
        .will([Reply::status(429).header("retry-after", "120")]);
    w.post_scan("e1").await;
    assert_eq!(w.drain().await, 1);
    let (status, _, error) = w.statuses("e1").await[&destination(&id)].clone();
    assert_eq!(status, "retrying");
    assert!(error.contains("429"), "{error}");
    assert_eq!(w.endpoint(&id).await["status"], "inactive_tmp");
    w.advance(119_000);
    assert_eq!(w.drain().await, 0, "the retry came before Retry-After");
    w.advance(2_000);
    w.recover().await;
    assert_eq!(w.drain().await, 1);
    assert_eq!(w.statuses("e1").await[&destination(&id)].0, "sent");
    assert_eq!(w.receiver.deliveries().len(), 2);
}

#[tokio::test]
async fn given_a_429_with_an_http_date_then_the_retry_waits_until_that_date() {
    let w = world(5).await;
    let hook = w
        .add(
            "root",
            json!({"name": "SIEM", "url": w.receiver.url("/siem")}),
        )
        .await;
    let id = id_of(&hook);
    // RFC 9110's other form: a date, 120 to 121 s from now (dates have whole seconds).
    let at = std::time::SystemTime::now() + Duration::from_secs(121);
    w.receiver
        .will([Reply::status(429).header("retry-after", &httpdate::fmt_http_date(at))]);
    w.post_scan("e1").await;
    assert_eq!(w.drain().await, 1);
    assert_eq!(w.statuses("e1").await[&destination(&id)].0, "retrying");
    w.advance(119_000);
    assert_eq!(
        w.drain().await,
        0,
        "the retry came before the Retry-After date"
    );
    w.advance(3_000);
    w.recover().await;
    assert_eq!(w.drain().await, 1);
    assert_eq!(w.statuses("e1").await[&destination(&id)].0, "sent");
}

#[tokio::test]
async fn given_a_slow_endpoint_then_the_timeout_is_temporary() {
    let w = world(1).await;
    let hook = w
        .add(
            "root",
            json!({"name": "SIEM", "url": w.receiver.url("/siem")}),
        )
        .await;
    let id = id_of(&hook);
    w.receiver
        .will([Reply::status(200).after(Duration::from_secs(3))]);
    w.post_scan("e1").await;
    assert_eq!(w.drain().await, 1);
    let (status, _, error) = w.statuses("e1").await[&destination(&id)].clone();
    assert_eq!(status, "retrying");
    assert_eq!(error, "the webhook endpoint timed out after 1 s");
    assert_eq!(w.endpoint(&id).await["status"], "inactive_tmp");
}

#[tokio::test]
async fn given_a_404_then_the_delivery_fails_at_once_and_the_endpoint_is_deactivated() {
    let w = world(5).await;
    let hook = w
        .add(
            "root",
            json!({"name": "SIEM", "url": w.receiver.url("/siem")}),
        )
        .await;
    let id = id_of(&hook);
    w.receiver.will([Reply::status(404)]);
    w.post_scan("e1").await;
    assert_eq!(w.drain().await, 1);
    let (status, attempts, error) = w.statuses("e1").await[&destination(&id)].clone();
    assert_eq!((status.as_str(), attempts), ("failed", 1));
    assert_eq!(error, "the webhook endpoint answered HTTP 404");
    let endpoint = w.endpoint(&id).await;
    assert_eq!(endpoint["status"], "inactive_permanent");
    assert_eq!(endpoint["note"], "the webhook endpoint answered HTTP 404");
    let alerts = w
        .app
        .user("root", Method::GET, "/v1/users/root/alerts", None)
        .await;
    assert!(
        alerts.body["items"]
            .as_array()
            .is_some_and(|a| a.iter().any(|a| a["source"] == "Webhooks Notification")),
        "{}",
        alerts.body
    );
    // A deactivated endpoint gets no deliveries, and recovery leaves it alone.
    let answer = w.post_scan("e2").await;
    assert_eq!(answer["deliveries"], 0, "{answer}");
    w.advance(48 * 3_600_000);
    assert_eq!(w.recover().await.transitions, 0);
    // An edit (with a successful ping) makes it active again.
    let r = w
        .as_(
            "root",
            Method::PUT,
            &format!("/v1/webhooks/{id}"),
            Some(&json!({"name": "SIEM 2"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["status"], "active");
    assert_eq!(r.body["note"], Value::Null);
    assert_eq!(w.post_scan("e3").await["deliveries"], 1);
}

#[tokio::test]
async fn given_the_same_queue_message_twice_then_it_is_posted_once() {
    let w = world(5).await;
    w.add(
        "root",
        json!({"name": "SIEM", "url": w.receiver.url("/siem")}),
    )
    .await;
    w.post_scan("e1").await;
    let received = w
        .app
        .herald
        .queue
        .receive(Channel::Webhooks, 10, w.now())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(received.len(), 1);
    let record = |n: u32| {
        let mut record = SqsMessage::default();
        record.message_id = Some(format!("copy-{n}"));
        record.body = Some(received[0].body.clone());
        record.attributes = HashMap::from([("ApproximateReceiveCount".to_owned(), n.to_string())]);
        record
    };
    for n in 1..=2 {
        let mut batch = SqsEvent::default();
        batch.records = vec![record(n)];
        let answer = w.sender.consume(batch).await;
        assert!(answer.batch_item_failures.is_empty());
    }
    assert_eq!(w.receiver.deliveries().len(), 1);
}

#[tokio::test]
async fn given_a_failing_ping_then_422_names_url_and_nothing_is_saved() {
    let w = world(5).await;
    w.receiver.will([Reply::status(500)]);
    let url = w.receiver.url("/hook?token=url-t0ken");
    let r = w
        .as_(
            "root",
            Method::POST,
            "/v1/webhooks",
            Some(&json!({"name": "SIEM", "url": url, "secret": SECRET})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.error_field(), "url");
    let text = r.body.to_string();
    assert!(text.contains("HTTP 500"), "{text}");
    assert!(
        !text.contains("url-t0ken") && !text.contains(SECRET),
        "{text}"
    );
    let list = w.as_("root", Method::GET, "/v1/webhooks", None).await;
    assert_eq!(list.body["items"], json!([]));

    // An edit whose ping fails changes nothing either.
    let hook = w.add("root", json!({"name": "SIEM", "url": url})).await;
    w.receiver.will([Reply::status(503)]);
    let r = w
        .as_(
            "root",
            Method::PUT,
            &format!("/v1/webhooks/{}", id_of(&hook)),
            Some(&json!({"name": "Renamed", "url": w.receiver.url("/elsewhere")})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.error_field(), "url");
    let now = w.endpoint(&id_of(&hook)).await;
    assert_eq!(now["name"], "SIEM");
    assert_eq!(
        now["url"],
        url.replace("url-t0ken", "***"),
        "unchanged, shown redacted"
    );

    // Without HERALD_ALLOW_PRIVATE_TARGETS a loopback URL is refused before any request.
    let strict = TestApp::new();
    let before = w.receiver.requests().len();
    let r = strict
        .admin(
            Method::POST,
            "/v1/webhooks",
            Some(&json!({"name": "x", "url": w.receiver.url("/x")})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.error_field(), "url");
    assert!(
        r.body.to_string().contains("non-public address"),
        "{}",
        r.body
    );
    assert_eq!(w.receiver.requests().len(), before);
}

#[tokio::test]
async fn given_two_users_then_neither_sees_nor_touches_the_others_endpoints() {
    let w = world(5).await;
    let bobs = w
        .add(
            "bob",
            json!({"name": "Bob's", "url": w.receiver.url("/bob")}),
        )
        .await;
    assert_eq!(bobs["owner"], "bob");
    let alices = w
        .add(
            "alice",
            json!({"name": "Alice's", "url": w.receiver.url("/alice"), "owner": "alice"}),
        )
        .await;
    let bob_path = format!("/v1/webhooks/{}", id_of(&bobs));
    for method in [Method::GET, Method::DELETE] {
        let r = w.as_("alice", method.clone(), &bob_path, None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{method}: {}", r.body);
        assert!(!r.body.to_string().contains("Bob's"));
    }
    let r = w
        .as_(
            "alice",
            Method::PUT,
            &bob_path,
            Some(&json!({"name": "Mine now"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    let list = w.as_("alice", Method::GET, "/v1/webhooks", None).await;
    let ids: Vec<String> = list.body["items"]
        .as_array()
        .map(|items| items.iter().map(id_of).collect())
        .unwrap_or_default();
    assert_eq!(ids, vec![id_of(&alices)]);
    // A user may not add webhooks for someone else, nor system ones.
    for owner in [json!("bob"), Value::Null] {
        let r = w
            .as_(
                "alice",
                Method::POST,
                "/v1/webhooks",
                Some(&json!({"name": "x", "url": w.receiver.url("/x"), "owner": owner})),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    }
    // The service account has no business here; the administrator sees both.
    let r = w.app.service(Method::GET, "/v1/webhooks", None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let all = w.as_("root", Method::GET, "/v1/webhooks", None).await;
    assert_eq!(all.body["items"].as_array().map(Vec::len), Some(2));
    // An administrator may add one for a user, who then sees it.
    let for_bob = w
        .add(
            "root",
            json!({"name": "From root", "url": w.receiver.url("/b2"), "owner": "bob"}),
        )
        .await;
    assert_eq!(for_bob["owner"], "bob");
    let r = w
        .as_(
            "bob",
            Method::GET,
            &format!("/v1/webhooks/{}", id_of(&for_bob)),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = w
        .as_(
            "root",
            Method::POST,
            "/v1/webhooks",
            Some(&json!({"name": "x", "url": w.receiver.url("/x"), "owner": "nobody"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.error_field(), "owner");
    // bob deletes his own.
    let r = w.as_("bob", Method::DELETE, &bob_path, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = w.as_("bob", Method::GET, &bob_path, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn secrets_and_header_values_never_appear_in_any_answer() {
    let w = world(5).await;
    let assert_clean = |r: &TestResponse| {
        let raw = &r.raw;
        assert!(
            !raw.contains(SECRET) && !raw.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            "{raw}"
        );
        assert!(
            !raw.contains(HEADER_VALUE) && !raw.contains("hdr-s3cret"),
            "{raw}"
        );
    };
    let body = json!({"name": "SIEM", "url": w.receiver.url("/siem"), "secret": SECRET,
        "header_name": "Authorization", "header_value": HEADER_VALUE});
    let created = w
        .as_("root", Method::POST, "/v1/webhooks", Some(&body))
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_clean(&created);
    assert_eq!(created.body["secret_set"], true);
    assert_eq!(created.body["header_value_set"], true);
    assert!(created.body.get("secret").is_none() && created.body.get("header_value").is_none());
    let path = format!("/v1/webhooks/{}", id_of(&created.body));
    assert_clean(&w.as_("root", Method::GET, &path, None).await);
    assert_clean(&w.as_("root", Method::GET, "/v1/webhooks", None).await);

    // A GET → PUT round trip keeps the secrets (omitted fields are kept).
    let view = w.as_("root", Method::GET, &path, None).await.body;
    let edited = w.as_("root", Method::PUT, &path, Some(&view)).await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.body);
    assert_clean(&edited);
    assert_eq!(edited.body["secret_set"], true);
    let last_ping = w
        .receiver
        .requests()
        .pop()
        .unwrap_or_else(|| panic!("no ping"));
    assert!(last_ping.header("webhook-signature").starts_with("v1,"));
    assert_eq!(last_ping.header("authorization"), HEADER_VALUE);

    // Explicit nulls clear them.
    let cleared = w
        .as_(
            "root",
            Method::PUT,
            &path,
            Some(&json!({"secret": null, "header_name": null, "header_value": null})),
        )
        .await;
    assert_eq!(cleared.status, StatusCode::OK, "{}", cleared.body);
    assert_eq!(cleared.body["secret_set"], false);
    assert_eq!(cleared.body["header_value_set"], false);
    let last_ping = w
        .receiver
        .requests()
        .pop()
        .unwrap_or_else(|| panic!("no ping"));
    assert_eq!(last_ping.header("webhook-signature"), "");

    // Errors do not echo them either.
    let bad = w
        .as_("root", Method::POST, "/v1/webhooks",
            Some(&json!({"name": "x", "url": w.receiver.url("/x"), "secret": "whsec_hdr-s3cret", "header_name": "X-A", "header_value": HEADER_VALUE})))
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.error_field(), "secret");
    assert_clean(&bad);
}

#[tokio::test]
async fn given_credentials_in_a_webhook_url_then_it_is_shown_redacted_and_a_round_trip_keeps_it() {
    let w = world(5).await;
    // The receiver on loopback, reached with a user, a password and a query token.
    let plain = w.receiver.url("/siem");
    let with_credentials =
        plain.replacen("http://", "http://ops:pa55-SECRET@", 1) + "?token=tok-SECRET&v=2";
    let body = json!({"name": "SIEM", "url": with_credentials});
    let created = w
        .as_("root", Method::POST, "/v1/webhooks", Some(&body))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let shown = plain.replacen("http://", "http://ops:***@", 1) + "?token=***&v=***";
    assert_eq!(created.body["url"], shown);
    let path = format!("/v1/webhooks/{}", id_of(&created.body));
    for answer in [
        w.as_("root", Method::GET, &path, None).await,
        w.as_("root", Method::GET, "/v1/webhooks", None).await,
    ] {
        assert!(!answer.raw.contains("SECRET"), "{}", answer.raw);
    }

    // A GET → PUT round trip sends the redacted URL back: the stored one is kept, and the
    // ping goes to it with its credentials.
    let mut view = w.as_("root", Method::GET, &path, None).await.body;
    view["name"] = json!("SIEM (prod)");
    let edited = w.as_("root", Method::PUT, &path, Some(&view)).await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.body);
    assert_eq!(edited.body["url"], shown);
    let ping = w
        .receiver
        .requests()
        .pop()
        .unwrap_or_else(|| panic!("no ping"));
    assert!(ping.path.contains("token=tok-SECRET"), "{}", ping.path);
    assert_eq!(
        ping.header("authorization"),
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("ops:pa55-SECRET")
        )
    );
}

#[tokio::test]
async fn given_messages_parked_for_an_endpoint_then_deleting_it_fails_their_deliveries() {
    let w = world(5).await;
    let hook = w
        .add(
            "root",
            json!({"name": "SIEM", "url": w.receiver.url("/siem")}),
        )
        .await;
    let id = id_of(&hook);
    w.receiver.will([Reply::status(502)]);
    w.post_scan("e1").await;
    w.drain().await;
    w.advance(10_000);
    w.drain().await;
    assert_eq!(w.statuses("e1").await[&destination(&id)].0, "retrying");
    let r = w
        .as_("root", Method::DELETE, &format!("/v1/webhooks/{id}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let (status, _, error) = w.statuses("e1").await[&destination(&id)].clone();
    assert_eq!(
        (status.as_str(), error.as_str()),
        ("failed", "webhook endpoint was deleted")
    );
    // An event queued before the deletion fails the same way when its message arrives.
    let other = w
        .add(
            "root",
            json!({"name": "Other", "url": w.receiver.url("/other")}),
        )
        .await;
    w.post_scan("e2").await;
    let r = w
        .as_(
            "root",
            Method::DELETE,
            &format!("/v1/webhooks/{}", id_of(&other)),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    w.drain().await;
    let (status, _, error) = w.statuses("e2").await[&destination(&id_of(&other))].clone();
    assert_eq!(
        (status.as_str(), error.as_str()),
        ("failed", "webhook endpoint was deleted")
    );
}

#[tokio::test]
async fn given_messages_parked_for_an_endpoint_deactivated_for_good_then_recovery_fails_them() {
    let w = world(5).await;
    let hook = w
        .add(
            "root",
            json!({"name": "SIEM", "url": w.receiver.url("/siem")}),
        )
        .await;
    let id = id_of(&hook);
    w.receiver.will([Reply::status(503)]);
    w.post_scan("e1").await;
    w.drain().await;
    w.advance(10_000);
    w.drain().await;
    // Errors went on past 24 hours elsewhere: the endpoint is deactivated for good.
    let webhook_id = WebhookId::parse("id", &id).unwrap_or_else(|e| panic!("{e}"));
    let store = w.app.herald.store.as_ref();
    let mut endpoint = store
        .webhook(&webhook_id)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("the endpoint is gone"));
    endpoint.state.status = herald_shared::domain::WebhookStatus::InactivePermanent;
    assert!(
        store
            .update_webhook_if_unchanged(&endpoint)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    );
    w.advance(60_000);
    let report = w.recover().await;
    assert_eq!((report.requeued, report.failed), (0, 1));
    let (status, _, error) = w.statuses("e1").await[&destination(&id)].clone();
    assert_eq!(status, "failed");
    assert!(error.contains("deactivated"), "{error}");
    assert_eq!(w.drain().await, 0);
    assert_eq!(w.receiver.deliveries().len(), 1);
}

#[tokio::test]
async fn given_herald_locals_recovery_loop_then_it_wakes_the_endpoint_and_stops_on_shutdown() {
    let w = world(5).await;
    let hook = w
        .add(
            "root",
            json!({"name": "SIEM", "url": w.receiver.url("/siem")}),
        )
        .await;
    w.receiver.will([Reply::status(500)]);
    w.post_scan("e1").await;
    w.drain().await;
    w.advance(10_000);
    w.drain().await;
    w.advance(60_000);
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let recovery = tokio::spawn(
        w.app
            .herald
            .clone()
            .run_webhook_recovery(Duration::from_millis(20), shutdown),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while w.endpoint(&id_of(&hook)).await["status"] != "active_tmp" {
        assert!(std::time::Instant::now() < deadline, "the loop never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(true);
    tokio::time::timeout(Duration::from_secs(5), recovery)
        .await
        .unwrap_or_else(|_| panic!("the loop did not stop"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(w.drain().await, 1);
    assert_eq!(
        w.statuses("e1").await[&destination(&id_of(&hook))].0,
        "sent"
    );
}

#[tokio::test]
async fn given_a_webhook_deleted_while_its_edit_is_pinging_then_the_edit_does_not_bring_it_back() {
    let w = world(5).await;
    let hook = w
        .add(
            "root",
            json!({"name": "SIEM", "url": w.receiver.url("/siem")}),
        )
        .await;
    let path = format!("/v1/webhooks/{}", id_of(&hook));
    w.receiver
        .will([Reply::status(200).after(Duration::from_millis(500))]);
    let renamed = json!({"name": "Renamed"});
    let edit = w.as_("root", Method::PUT, &path, Some(&renamed));
    let delete = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        w.as_("root", Method::DELETE, &path, None).await
    };
    let (edit, delete) = tokio::join!(edit, delete);
    assert_eq!(delete.status, StatusCode::NO_CONTENT);
    assert_eq!(edit.status, StatusCode::NOT_FOUND, "{}", edit.body);
    let r = w.as_("root", Method::GET, &path, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn given_the_defectdojo_format_then_the_receiver_gets_defectdojos_headers_and_body() {
    let w = world(5).await;
    let system = w
        .add(
            "root",
            json!({"name": "Dojo receiver", "url": w.receiver.url("/dojo"), "format": "defectdojo"}),
        )
        .await;
    assert_eq!(system["format"], "defectdojo");
    let alices = w
        .add(
            "alice",
            json!({"name": "Mine", "url": w.receiver.url("/alice"), "format": "defectdojo"}),
        )
        .await;
    // DefectDojo's ping, with the owner as `user`.
    let pings = w.receiver.requests();
    assert_eq!(pings[0].header("x-defectdojo-event"), "ping");
    assert_eq!(
        pings[0].json(),
        json!({"description": "Test webhook notification", "title": "", "user": null})
    );
    assert_eq!(pings[1].json()["user"]["username"], "alice");
    assert_eq!(pings[1].header("x-herald-event"), "");

    w.post_scan("d1").await;
    assert_eq!(w.drain().await, 2);
    let statuses = w.statuses("d1").await;
    assert_eq!(statuses[&destination(&id_of(&system))].0, "sent");
    assert_eq!(statuses[&destination(&id_of(&alices))].0, "sent");
    let posts = w.receiver.deliveries();
    let to_dojo = posts
        .iter()
        .find(|p| p.path == "/dojo")
        .unwrap_or_else(|| panic!("nothing reached the system endpoint"));
    assert_eq!(to_dojo.header("user-agent"), "DefectDojo-3.2.0");
    assert_eq!(to_dojo.header("x-defectdojo-event"), "scan_added");
    assert_eq!(
        to_dojo.header("x-defectdojo-instance"),
        "https://dojo.example.com"
    );
    assert_eq!(to_dojo.header("x-herald-event"), "");
    let body = to_dojo.json();
    // No Herald-only field; ids as integers; names from the directory; `user` the owner.
    assert!(
        body.get("event").is_none() && body.get("event_id").is_none(),
        "{body}"
    );
    assert_eq!(body["user"], Value::Null);
    assert_eq!(body["title"], "Scan d1");
    assert_eq!(body["description"], "Event scan_added has occurred.");
    assert_eq!(body["product"]["id"], 7);
    assert_eq!(body["product"]["name"], "Shop");
    assert_eq!(body["product_type"]["name"], "Web");
    assert_eq!(body["product_type"]["id"], "web");
    let to_alice = posts
        .iter()
        .find(|p| p.path == "/alice")
        .unwrap_or_else(|| panic!("nothing reached alice's endpoint"));
    assert_eq!(to_alice.json()["user"]["username"], "alice");
    assert_eq!(to_alice.json()["user"]["email"], "alice@example.com");
}

#[tokio::test]
async fn given_the_herald_format_then_numeric_ids_are_numbers_and_names_come_from_the_directory() {
    let w = world(5).await;
    w.add(
        "root",
        json!({"name": "SIEM", "url": w.receiver.url("/siem")}),
    )
    .await;
    w.post_scan("h1").await;
    assert_eq!(w.drain().await, 1);
    let body = w.receiver.deliveries()[0].json();
    assert_eq!(body["product"]["id"], 7);
    assert_eq!(body["product"]["name"], "Shop");
    assert_eq!(body["product_type"]["name"], "Web");
}

#[tokio::test]
async fn given_a_name_the_owner_already_uses_then_409_names_name_and_nothing_is_saved() {
    let w = world(5).await;
    let first = w
        .add(
            "alice",
            json!({"name": "Mine", "url": w.receiver.url("/a")}),
        )
        .await;
    let pings = w.receiver.requests().len();
    let again = w
        .as_(
            "alice",
            Method::POST,
            "/v1/webhooks",
            Some(&json!({"name": "Mine", "url": w.receiver.url("/b")})),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    assert_eq!(again.error_field(), "name");
    assert_eq!(w.receiver.requests().len(), pings, "nothing is pinged");
    // Another owner may use the name; so may the system.
    w.add("bob", json!({"name": "Mine", "url": w.receiver.url("/c")}))
        .await;
    w.add("root", json!({"name": "Mine", "url": w.receiver.url("/d")}))
        .await;
    // Renaming onto a taken name is refused too; keeping one's own name is not.
    let second = w
        .add(
            "alice",
            json!({"name": "Other", "url": w.receiver.url("/e")}),
        )
        .await;
    let rename = w
        .as_(
            "alice",
            Method::PUT,
            &format!("/v1/webhooks/{}", id_of(&second)),
            Some(&json!({"name": "Mine"})),
        )
        .await;
    assert_eq!(rename.status, StatusCode::CONFLICT, "{}", rename.body);
    assert_eq!(rename.error_field(), "name");
    let same = w
        .as_(
            "alice",
            Method::PUT,
            &format!("/v1/webhooks/{}", id_of(&first)),
            Some(&json!({"name": "Mine", "format": "defectdojo"})),
        )
        .await;
    assert_eq!(same.status, StatusCode::OK, "{}", same.body);
    assert_eq!(same.body["format"], "defectdojo");
    let bad = w
        .as_(
            "alice",
            Method::PUT,
            &format!("/v1/webhooks/{}", id_of(&first)),
            Some(&json!({"format": "slack"})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    assert_eq!(bad.error_field(), "format");
}
