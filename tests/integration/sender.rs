//! The sender use case end to end over the embedded store and queue, driven as Lambda's SQS
//! trigger drives it: statuses, retries with backoff, dead letters, permanent failures, admin
//! alerts at most once per channel and hour, and no double send on redelivery.

use async_trait::async_trait;
use herald_local::driver::QueueDriver;
use herald_shared::domain::Channel;
use herald_shared::ports::{Clock, EventStore, HeraldStore, QueueConsumer};
use herald_shared::ports::{SendError, SendRequest, Transport};
use herald_shared::sender::{RetryPolicy, Sender};
use herald_tests::TestApp;
use http::Method;
use serde_json::json;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A clock the test moves by hand.
struct ManualClock(AtomicU64);

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A transport that answers from a script per destination and counts sends.
#[derive(Default)]
struct ScriptedTransport {
    script: Mutex<HashMap<String, VecDeque<Result<(), SendError>>>>,
    sent: Mutex<HashMap<String, u32>>,
}

impl ScriptedTransport {
    fn will(&self, destination: &str, outcomes: Vec<Result<(), SendError>>) {
        self.script
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(destination.to_owned(), outcomes.into());
    }

    fn sends(&self, destination: &str) -> u32 {
        self.sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(destination)
            .copied()
            .unwrap_or(0)
    }
}

#[async_trait]
impl Transport for ScriptedTransport {
    fn channel(&self) -> Channel {
        Channel::Slack
    }

    async fn send(&self, request: &SendRequest<'_>) -> Result<(), SendError> {
        let key = request.delivery.destination.key();
        *self
            .sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.clone())
            .or_default() += 1;
        let next = self
            .script
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&key)
            .and_then(VecDeque::pop_front);
        next.unwrap_or(Ok(()))
    }
}

fn transient(reason: &str) -> Result<(), SendError> {
    Err(SendError::Transient {
        reason: reason.into(),
        retry_after: None,
    })
}

struct World {
    app: TestApp,
    clock: Arc<ManualClock>,
    transport: Arc<ScriptedTransport>,
    driver: QueueDriver,
}

/// alice and bob get Slack DMs for scans of product 7; root is an administrator.
async fn world(max_attempts: u32) -> World {
    let clock = Arc::new(ManualClock(AtomicU64::new(1_800_000_000_000)));
    let app = TestApp::with_clock(clock.clone(), max_attempts);
    app.admin(
        Method::PUT,
        "/v1/system/settings",
        Some(&json!({"enable_slack_notifications": true, "slack_token": "xoxb-secret-token"})),
    )
    .await;
    for (user, admin) in [("alice", false), ("bob", false), ("root", true)] {
        let profile = json!({"email": format!("{user}@example.com"), "slack_user_id": format!("U{}", user.to_uppercase()), "is_admin": admin});
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
            Some(&json!({"events": {"scan_added": ["alert", "slack"]}})),
        )
        .await;
    }
    let transport = Arc::new(ScriptedTransport::default());
    let sender = Sender {
        store: app.herald.store.clone() as Arc<dyn HeraldStore>,
        transport: transport.clone(),
        redelivery: app.herald.queue.clone(),
        policy: RetryPolicy {
            base: Duration::from_secs(10),
            max_attempts,
        },
        clock: clock.clone(),
    };
    let consumer: Arc<dyn QueueConsumer> = Arc::new(sender);
    let driver = QueueDriver::new(
        app.herald.queue.clone(),
        clock.clone(),
        Channel::Slack,
        consumer,
    );
    World {
        app,
        clock,
        transport,
        driver,
    }
}

impl World {
    async fn post_scan(&self, id: &str) {
        let event =
            json!({"id": id, "type": "scan_added", "title": format!("Scan {id}"), "product_id": 7});
        self.app
            .service_ok(Method::POST, "/v1/events", Some(&event))
            .await;
    }

    /// Polls until nothing is visible, then moves the clock by `ms`.
    async fn drain_then_wait(&self, ms: u64) {
        loop {
            let outcome = self
                .driver
                .poll_once()
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            if outcome.received == 0 {
                break;
            }
        }
        self.clock.0.fetch_add(ms, Ordering::SeqCst);
    }

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

    async fn admin_alerts(&self) -> Vec<serde_json::Value> {
        let r = self
            .app
            .user("root", Method::GET, "/v1/users/root/alerts?limit=100", None)
            .await;
        r.body["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|a| a["source"] == "Slack Notification")
            .collect()
    }
}

#[tokio::test]
async fn given_a_transient_failure_then_the_delivery_retries_after_the_backoff_and_is_sent_once() {
    let w = world(5).await;
    w.transport.will(
        "slack:user:alice",
        vec![transient("HTTP 503"), transient("timeout")],
    );
    w.post_scan("e1").await;

    w.drain_then_wait(4_000).await;
    let s = w.statuses("e1").await;
    assert_eq!(
        s["slack:user:alice"],
        ("retrying".into(), 1, "HTTP 503".into())
    );
    assert_eq!(s["slack:user:bob"], ("sent".into(), 1, String::new()));

    // The first retry waits 5 to 10 s: nothing before 5 s.
    w.drain_then_wait(7_000).await;
    w.drain_then_wait(25_000).await;
    w.drain_then_wait(0).await;
    let s = w.statuses("e1").await;
    assert_eq!(s["slack:user:alice"], ("sent".into(), 3, String::new()));
    assert_eq!(w.transport.sends("slack:user:alice"), 3);
    assert_eq!(
        w.transport.sends("slack:user:bob"),
        1,
        "bob's message was sent once"
    );
    assert!(
        w.admin_alerts().await.is_empty(),
        "no alert for a delivery that succeeded"
    );
}

#[tokio::test]
async fn given_a_permanent_failure_then_the_delivery_fails_at_once_and_administrators_hear_once_an_hour()
 {
    let w = world(5).await;
    let refused = || {
        Err(SendError::Permanent {
            reason: "Slack answered channel_not_found".into(),
        })
    };
    w.transport
        .will("slack:user:alice", vec![refused(), refused()]);
    w.transport.will("slack:user:bob", vec![refused()]);
    w.post_scan("e1").await;
    w.drain_then_wait(60_000).await;
    w.drain_then_wait(0).await;
    let s = w.statuses("e1").await;
    assert_eq!(
        s["slack:user:alice"],
        (
            "failed".into(),
            1,
            "Slack answered channel_not_found".into()
        )
    );
    assert_eq!(s["slack:user:bob"].0, "failed");
    assert_eq!(
        w.transport.sends("slack:user:alice"),
        1,
        "a failed delivery is not retried"
    );
    let alerts = w.admin_alerts().await;
    assert_eq!(
        alerts.len(),
        1,
        "two failures in one hour raise one alert: {alerts:?}"
    );
    assert_eq!(alerts[0]["title"], "Notification issue");
    assert!(
        !alerts[0]["description"]
            .as_str()
            .unwrap_or_default()
            .contains("xoxb-secret-token")
    );

    // An hour later, a new failure raises a new alert.
    w.clock.0.fetch_add(3_600_000, Ordering::SeqCst);
    w.transport.will("slack:user:alice", vec![refused()]);
    w.post_scan("e2").await;
    w.drain_then_wait(0).await;
    assert_eq!(w.admin_alerts().await.len(), 2);
}

#[tokio::test]
async fn given_a_failure_mid_hour_then_its_alert_is_dated_when_raised_and_sorts_newest_first() {
    let w = world(5).await;
    // 20 minutes into the hour root is mentioned; 10 minutes later a delivery fails.
    w.clock.0.fetch_add(20 * 60_000, Ordering::SeqCst);
    let mention = json!({"id": "m1", "type": "user_mentioned", "title": "root was mentioned", "recipients": ["root"]});
    w.app
        .service_ok(Method::POST, "/v1/events", Some(&mention))
        .await;
    w.clock.0.fetch_add(10 * 60_000, Ordering::SeqCst);
    let refused = || {
        Err(SendError::Permanent {
            reason: "Slack answered channel_not_found".into(),
        })
    };
    w.transport
        .will("slack:user:alice", vec![refused(), refused()]);
    w.post_scan("e1").await;
    w.drain_then_wait(5 * 60_000).await;
    // A second failure later in the hour names the same alert.
    w.transport.will("slack:user:bob", vec![refused()]);
    w.post_scan("e2").await;
    w.drain_then_wait(0).await;

    let all = w
        .app
        .user("root", Method::GET, "/v1/users/root/alerts?limit=100", None)
        .await;
    let items = all.body["items"].as_array().cloned().unwrap_or_default();
    let titles: Vec<&str> = items
        .iter()
        .filter_map(|a| a["title"].as_str())
        .filter(|t| *t == "Notification issue" || *t == "root was mentioned")
        .collect();
    assert_eq!(
        titles,
        ["Notification issue", "root was mentioned"],
        "newest first: {items:?}"
    );
    let failure = items
        .iter()
        .find(|a| a["title"] == "Notification issue")
        .cloned()
        .unwrap_or_default();
    // 1_800_000_000_000 ms is 2027-01-15T08:00:00Z; the failure came at 08:30.
    assert_eq!(failure["created_at"], "2027-01-15T08:30:00Z", "{failure}");
    assert_eq!(w.admin_alerts().await.len(), 1, "one alert for the hour");
}

#[tokio::test]
async fn given_only_transient_failures_then_the_last_attempt_is_dead_and_the_message_a_dead_letter()
{
    let w = world(3).await;
    w.transport.will(
        "slack:user:alice",
        (0..10).map(|_| transient("HTTP 500")).collect(),
    );
    w.post_scan("e1").await;
    for _ in 0..6 {
        w.drain_then_wait(120_000).await;
    }
    let s = w.statuses("e1").await;
    assert_eq!(s["slack:user:alice"], ("dead".into(), 3, "HTTP 500".into()));
    assert_eq!(
        w.transport.sends("slack:user:alice"),
        3,
        "max attempts, then no more"
    );
    let dead = w
        .app
        .herald
        .queue
        .dead_letters(Channel::Slack)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(dead.len(), 1);
    assert_eq!(w.admin_alerts().await.len(), 1);
}

#[tokio::test]
async fn given_a_claim_held_elsewhere_through_the_last_receive_then_the_message_leaves_for_that_sender_not_for_the_dead_letters()
 {
    let w = world(2).await;
    w.post_scan("e1").await;
    let store = w.app.herald.store.clone();
    let event = herald_shared::domain::EventId::parse("id", "e1").unwrap_or_else(|e| panic!("{e}"));
    let deliveries = store
        .deliveries(&event)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let alice = deliveries
        .iter()
        .find(|d| d.destination.to_string() == "slack:user:alice")
        .unwrap_or_else(|| panic!("alice's delivery: {deliveries:?}"));
    // Another sender holds alice's delivery for a day (its own message in hand).
    let claim = store
        .claim_delivery(
            &event,
            &alice.id,
            w.clock.now_ms(),
            Duration::from_secs(86_400),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(claim, herald_shared::ports::Claim::Claimed(_)),
        "{claim:?}"
    );
    // Receive 1 waits for the claim (12 h at most); receive 2 is the last one.
    w.drain_then_wait(43_200_000).await;
    w.drain_then_wait(43_200_000).await;
    w.drain_then_wait(0).await;
    let dead = w
        .app
        .herald
        .queue
        .dead_letters(Channel::Slack)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        dead.is_empty(),
        "no message reaches the dead letters without its delivery dead: {dead:?}"
    );
    assert_eq!(
        w.transport.sends("slack:user:alice"),
        0,
        "the holder sends it"
    );
    assert_eq!(w.transport.sends("slack:user:bob"), 1);
    let s = w.statuses("e1").await;
    assert_ne!(
        s["slack:user:alice"].0, "dead",
        "left to the sender holding it"
    );
}

#[tokio::test]
async fn given_a_dead_delivery_then_an_operator_lists_it_and_a_replay_sends_it_once() {
    let w = world(2).await;
    w.transport.will(
        "slack:user:alice",
        vec![transient("HTTP 500"), transient("HTTP 500")],
    );
    w.post_scan("e1").await;
    for _ in 0..4 {
        w.drain_then_wait(120_000).await;
    }
    assert_eq!(w.statuses("e1").await["slack:user:alice"].0, "dead");
    let list = w
        .app
        .admin(
            Method::GET,
            "/v1/deliveries?status=dead&channel=slack",
            None,
        )
        .await;
    assert_eq!(list.status, http::StatusCode::OK, "{}", list.body);
    let items = list.body["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(
        (
            &items[0]["event_id"],
            &items[0]["destination"],
            &items[0]["last_error"]
        ),
        (&json!("e1"), &json!("slack:user:alice"), &json!("HTTP 500"))
    );
    let none = w
        .app
        .admin(Method::GET, "/v1/deliveries?status=dead&channel=mail", None)
        .await;
    assert_eq!(none.body["items"], json!([]));
    let bad = w
        .app
        .admin(Method::GET, "/v1/deliveries?status=sent", None)
        .await;
    assert_eq!(
        (bad.status, bad.error_field()),
        (http::StatusCode::BAD_REQUEST, "status")
    );

    // Replayed: queued again and sent; a second replay finds nothing, and nothing is sent twice.
    let replay = w
        .app
        .admin(
            Method::POST,
            "/v1/deliveries/replay",
            Some(&json!({"channel": "slack"})),
        )
        .await;
    assert_eq!(
        replay.body,
        json!({"replayed": 1, "skipped": 0}),
        "{}",
        replay.body
    );
    w.drain_then_wait(0).await;
    let s = w.statuses("e1").await;
    assert_eq!(s["slack:user:alice"].0, "sent");
    assert_eq!(
        w.transport.sends("slack:user:alice"),
        3,
        "two failures, then the replay"
    );
    let again = w
        .app
        .admin(
            Method::POST,
            "/v1/deliveries/replay",
            Some(&json!({"event_id": "e1"})),
        )
        .await;
    assert_eq!(again.body, json!({"replayed": 0, "skipped": 0}));
    w.drain_then_wait(0).await;
    assert_eq!(w.transport.sends("slack:user:alice"), 3);
    let bad = w
        .app
        .admin(
            Method::POST,
            "/v1/deliveries/replay",
            Some(&json!({"channel": "alert"})),
        )
        .await;
    assert_eq!(bad.error_field(), "channel");
}

#[tokio::test]
async fn given_a_sent_delivery_queued_again_then_it_is_not_sent_twice() {
    let w = world(5).await;
    w.post_scan("e1").await;
    w.drain_then_wait(0).await;
    assert_eq!(w.transport.sends("slack:user:alice"), 1);
    // The same messages again (an SQS redelivery, or intake finishing a fan-out twice).
    let deliveries = w
        .app
        .herald
        .store
        .deliveries(
            &herald_shared::domain::EventId::parse("id", "e1").unwrap_or_else(|e| panic!("{e}")),
        )
        .await
        .unwrap_or_default();
    let messages: Vec<_> = deliveries
        .iter()
        .map(herald_shared::domain::Delivery::message)
        .collect();
    w.app
        .herald
        .queue
        .enqueue_at(&messages, w.clock.now_ms())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    w.drain_then_wait(0).await;
    assert_eq!(w.transport.sends("slack:user:alice"), 1);
    assert_eq!(w.transport.sends("slack:user:bob"), 1);
}
