//! Event intake through the API and from EventBridge: routing, alerts, deliveries on the
//! queue, idempotency, and the alerts API with read state.

use event_intake::eventbridge;
use herald_shared::domain::Channel;
use herald_tests::TestApp;
use http::{Method, StatusCode};
use serde_json::{Value, json};

/// alice and bob may view product 7 (bob through its product type); carol may not; root is an
/// administrator; dave is inactive. Slack and mail are on; the system posts scans to #appsec.
async fn world() -> TestApp {
    let app = TestApp::new();
    app.admin(
        Method::PUT,
        "/v1/system/settings",
        Some(&json!({"enable_slack_notifications": true, "slack_channel": "#appsec", "slack_token": "xoxb-test",
            "enable_mail_notifications": true})),
    )
    .await;
    app.admin(
        Method::PUT,
        "/v1/notifications/system",
        Some(&json!({"events": {"scan_added": ["alert", "slack"]}})),
    )
    .await;
    for (user, extra) in [
        ("alice", json!({})),
        ("bob", json!({})),
        ("carol", json!({})),
        ("root", json!({"is_admin": true})),
        ("dave", json!({"is_active": false})),
    ] {
        let mut profile = json!({"email": format!("{user}@example.com"), "slack_email": format!("{user}@example.com")});
        if let (Some(p), Some(e)) = (profile.as_object_mut(), extra.as_object()) {
            p.extend(e.clone());
        }
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
        Some(&json!({"name": "Web shop", "product_type_id": "web"})),
    )
    .await;
    app.service_ok(Method::PUT, "/v1/products/7/members/alice", None)
        .await;
    app.service_ok(Method::PUT, "/v1/products/7/members/dave", None)
        .await;
    app.service_ok(Method::PUT, "/v1/product-types/web/members/bob", None)
        .await;
    app.user(
        "alice",
        Method::PUT,
        "/v1/users/alice/notifications",
        Some(&json!({"events": {"scan_added": ["alert", "mail"]}})),
    )
    .await;
    app
}

fn scan(id: &str) -> Value {
    json!({"id": id, "type": "scan_added", "title": format!("Scan {id}"), "product_id": 7})
}

async fn unread(app: &TestApp, user: &str) -> u64 {
    let r = app
        .admin(Method::GET, &format!("/v1/users/{user}/alerts/count"), None)
        .await;
    r.body["unread"].as_u64().unwrap_or(u64::MAX)
}

#[tokio::test]
async fn given_a_scan_then_viewers_get_alerts_and_each_destination_one_delivery_on_its_queue() {
    let app = world().await;
    let r = app
        .service(Method::POST, "/v1/events", Some(&scan("e1")))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    // alice, bob and root (system alert + own) get alerts; carol may not view; dave is inactive.
    assert_eq!(
        r.body,
        json!({"event_id": "e1", "deliveries": 2, "alerts": 3})
    );
    for (user, expected) in [
        ("alice", 1),
        ("bob", 1),
        ("root", 1),
        ("carol", 0),
        ("dave", 0),
    ] {
        assert_eq!(unread(&app, user).await, expected, "{user}");
    }

    let event = app.service(Method::GET, "/v1/events/e1", None).await;
    assert_eq!(event.status, StatusCode::OK, "{}", event.body);
    assert_eq!(event.body["event"]["type"], "scan_added");
    let mut destinations: Vec<String> = event.body["deliveries"]
        .as_array()
        .map(|d| {
            d.iter()
                .map(|x| format!("{} {} {}", x["channel"], x["destination"], x["status"]))
                .collect()
        })
        .unwrap_or_default();
    destinations.sort();
    assert_eq!(
        destinations,
        [
            r#""mail" "mail:alice@example.com" "queued""#,
            r#""slack" "slack:channel:#appsec" "queued""#
        ]
    );

    let now = app.herald.clock.now_ms();
    let slack = app
        .herald
        .queue
        .depth(Channel::Slack, now)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mail = app
        .herald
        .queue
        .depth(Channel::Mail, now)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((slack.visible, mail.visible), (1, 1));
}

#[tokio::test]
async fn given_the_same_id_twice_then_the_first_answer_comes_back_and_nothing_is_sent_twice() {
    let app = world().await;
    let first = app
        .service(Method::POST, "/v1/events", Some(&scan("dup")))
        .await;
    assert_eq!(first.status, StatusCode::ACCEPTED);
    assert!(first.headers.get("idempotent-replayed").is_none());
    let again = app
        .service(Method::POST, "/v1/events", Some(&scan("dup")))
        .await;
    assert_eq!(
        (again.status, &again.body),
        (StatusCode::ACCEPTED, &first.body)
    );
    assert_eq!(
        again
            .headers
            .get("idempotent-replayed")
            .map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );
    // The same id for another event is refused, naming `id`; the first event stands.
    let mut changed = scan("dup");
    changed["title"] = json!("a different title");
    let reused = app
        .service(Method::POST, "/v1/events", Some(&changed))
        .await;
    assert_eq!(
        (reused.status, reused.body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("idempotency_key_reused")),
        "{}",
        reused.body
    );
    assert_eq!(reused.error_field(), "id");
    assert!(reused.headers.get("idempotent-replayed").is_none());
    assert_eq!(unread(&app, "alice").await, 1);
    let now = app.herald.clock.now_ms();
    let slack = app
        .herald
        .queue
        .depth(Channel::Slack, now)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(slack.visible, 1);
}

#[tokio::test]
async fn given_explicit_recipients_then_only_they_hear_about_it() {
    let app = world().await;
    let mention = json!({"id": "m1", "type": "user_mentioned", "title": "root jotted a note", "recipients": ["carol", "nobody"]});
    let r = app
        .service(Method::POST, "/v1/events", Some(&mention))
        .await;
    assert_eq!(
        r.body,
        json!({"event_id": "m1", "deliveries": 0, "alerts": 1})
    );
    assert_eq!(unread(&app, "carol").await, 1);
    assert_eq!(unread(&app, "root").await, 0);
    let empty = json!({"id": "m2", "type": "user_mentioned", "title": "x", "recipients": []});
    let r = app.service(Method::POST, "/v1/events", Some(&empty)).await;
    assert_eq!(
        r.body,
        json!({"event_id": "m2", "deliveries": 0, "alerts": 0})
    );
}

#[tokio::test]
async fn given_bad_events_then_4xx_names_the_field_and_nothing_is_recorded() {
    let app = world().await;
    for (body, status, field) in [
        (
            json!({"type": "scan_added"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "title",
        ),
        (
            json!({"type": "Scan", "title": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "type",
        ),
        (
            json!({"type": "scan_added", "title": "x", "product_id": {}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "product_id",
        ),
        (
            json!({"type": "scan_added", "title": "x", "recipients": [1]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "recipients[0]",
        ),
        (
            json!({"type": "scan_added", "title": "x".repeat(300 * 1024)}),
            StatusCode::PAYLOAD_TOO_LARGE,
            "",
        ),
    ] {
        let r = app.service(Method::POST, "/v1/events", Some(&body)).await;
        assert_eq!((r.status, r.error_field()), (status, field));
    }
    assert_eq!(unread(&app, "alice").await, 0);
    assert_eq!(
        app.service(Method::GET, "/v1/events/nope", None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.service(Method::GET, "/v1/events/a%20b", None)
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
}

/// The intake function's state over the test app's store, queue and clock, as Lambda builds it.
fn intake_state(app: &TestApp) -> event_intake::IntakeState {
    event_intake::IntakeState {
        store: app.herald.store.clone(),
        queue: app.herald.queue.clone(),
        clock: app.herald.clock.clone(),
        auth: herald_http::Authenticator::ApiGatewayClaims {
            role_claim: "role".into(),
        },
    }
}

#[tokio::test]
async fn given_an_eventbridge_event_then_it_takes_the_same_path_and_a_wrong_detail_type_fails_loudly()
 {
    let app = world().await;
    let state = intake_state(&app);
    let payload: Value =
        serde_json::from_str(include_str!("../../events/eventbridge/herald-event.json"))
            .unwrap_or_default();
    assert!(eventbridge::is_eventbridge(&payload));
    let answer = eventbridge::handle(&state, &payload)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (answer.event_id.as_str(), answer.alerts),
        ("dd-import-4711", 3)
    );
    let again = eventbridge::handle(&state, &payload)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(again.replayed && !answer.replayed);
    assert_eq!(
        (again.event_id, again.deliveries, again.alerts),
        (answer.event_id, answer.deliveries, answer.alerts)
    );

    let wrong: Value = serde_json::from_str(include_str!(
        "../../events/eventbridge/wrong-detail-type.json"
    ))
    .unwrap_or_default();
    assert!(eventbridge::handle(&state, &wrong).await.is_err());
}

#[tokio::test]
async fn given_an_eventbridge_event_without_an_id_then_a_retried_invocation_is_a_replay_not_a_second_event()
 {
    let app = world().await;
    let state = intake_state(&app);
    let mut payload: Value =
        serde_json::from_str(include_str!("../../events/eventbridge/herald-event.json"))
            .unwrap_or_default();
    if let Some(detail) = payload["detail"].as_object_mut() {
        detail.remove("id");
    }
    // The rule retries an invocation with the same envelope, `id` included.
    let first = eventbridge::handle(&state, &payload)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let retried = eventbridge::handle(&state, &payload)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        first.event_id.as_str(),
        "eventbridge:6a7e8feb-b491-4cf7-a9f1-bf3703467718"
    );
    assert!(!first.replayed && retried.replayed, "{first:?} {retried:?}");
    assert_eq!(
        (&retried.event_id, retried.deliveries, retried.alerts),
        (&first.event_id, first.deliveries, first.alerts)
    );
    let alice = app
        .user("alice", Method::GET, "/v1/users/alice/alerts/count", None)
        .await;
    assert_eq!(alice.body["total"], 1, "one alert, not one per invocation");

    // The same envelope id with another detail cannot be accepted, and retrying cannot help:
    // the invocation succeeds (so EventBridge stops retrying) and nothing new is recorded.
    let mut changed = payload.clone();
    changed["detail"]["title"] = json!("another title");
    let reused = eventbridge::handle(&state, &changed)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(reused.replayed);
    assert_eq!(reused.event_id, first.event_id);
    let alice = app
        .user("alice", Method::GET, "/v1/users/alice/alerts/count", None)
        .await;
    assert_eq!(alice.body["total"], 1);

    // Another EventBridge event (another envelope id) is another Herald event.
    payload["id"] = json!("0b7e8feb-0000-4cf7-a9f1-bf3703467718");
    let other = eventbridge::handle(&state, &payload)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!other.replayed);
    assert_ne!(other.event_id, first.event_id);
}

#[tokio::test]
async fn given_alerts_then_the_bell_pages_newest_first_and_read_state_and_deletes_work() {
    let app = world().await;
    for i in 0..30 {
        app.service_ok(Method::POST, "/v1/events", Some(&scan(&format!("s{i:02}"))))
            .await;
        // Alerts are ordered by the millisecond they were raised in: one event per
        // millisecond makes "newest first" a single answer.
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    assert_eq!(unread(&app, "alice").await, 30);

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/users/alice/alerts?limit=12&cursor={c}"),
            None => "/v1/users/alice/alerts?limit=12".to_owned(),
        };
        let page = app.user("alice", Method::GET, &path, None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let items = page.body["items"].as_array().cloned().unwrap_or_default();
        seen.extend(
            items
                .iter()
                .map(|a| a["title"].as_str().unwrap_or_default().to_owned()),
        );
        cursor = page.body["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen.len(), 30);
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "newest first");
    assert_eq!(seen.first().map(String::as_str), Some("Scan s29"));

    let page = app
        .user("alice", Method::GET, "/v1/users/alice/alerts?limit=2", None)
        .await;
    let ids: Vec<String> = page.body["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let r = app
        .user(
            "alice",
            Method::POST,
            "/v1/users/alice/alerts/read",
            Some(&json!({"ids": ids})),
        )
        .await;
    assert_eq!(r.body, json!({"marked_read": 2}));
    let counts = app
        .user("alice", Method::GET, "/v1/users/alice/alerts/count", None)
        .await;
    assert_eq!(counts.body, json!({"unread": 28, "total": 30}));
    let unread_page = app
        .user(
            "alice",
            Method::GET,
            "/v1/users/alice/alerts?unread_only=true&limit=100",
            None,
        )
        .await;
    assert_eq!(unread_page.body["items"].as_array().map(Vec::len), Some(28));

    // bob cannot mark alice's alerts, even with their ids.
    let r = app
        .user(
            "bob",
            Method::POST,
            "/v1/users/bob/alerts/read",
            Some(&json!({"ids": [ids[0].clone()]})),
        )
        .await;
    assert_eq!(r.body, json!({"marked_read": 0}));

    let r = app
        .user("alice", Method::POST, "/v1/users/alice/alerts/read", None)
        .await;
    assert_eq!(r.body, json!({"marked_read": 28}));
    assert_eq!(unread(&app, "alice").await, 0);

    let one = app
        .user(
            "alice",
            Method::DELETE,
            &format!("/v1/users/alice/alerts/{}", ids[0]),
            None,
        )
        .await;
    assert_eq!(one.status, StatusCode::NO_CONTENT);
    let again = app
        .user(
            "alice",
            Method::DELETE,
            &format!("/v1/users/alice/alerts/{}", ids[0]),
            None,
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    let all = app
        .user("alice", Method::DELETE, "/v1/users/alice/alerts", None)
        .await;
    assert_eq!(all.body, json!({"deleted": 29}));

    for bad in [
        "limit=0",
        "limit=101",
        "limit=x",
        "unread_only=maybe",
        "cursor=not-a-cursor",
    ] {
        let r = app
            .user(
                "alice",
                Method::GET,
                &format!("/v1/users/alice/alerts?{bad}"),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(
            r.error_field(),
            bad.split('=').next().unwrap_or_default(),
            "{bad}"
        );
    }
    let r = app
        .user(
            "alice",
            Method::POST,
            "/v1/users/alice/alerts/read",
            Some(&json!({"ids": "all"})),
        )
        .await;
    assert_eq!(
        (r.status, r.error_field()),
        (StatusCode::UNPROCESSABLE_ENTITY, "ids")
    );
}
