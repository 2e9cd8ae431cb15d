//! The scheduled checks through the API on `herald-local`'s stack: the directory routes for
//! engagements, findings and risk acceptances, and `POST /v1/scheduler/run` as of a given
//! time, run again and run concurrently.

use herald_tests::TestApp;
use http::{Method, StatusCode};
use serde_json::{Value, json};

/// alice (lead, member of product 7 of type "web"), and the SLA check switched on.
async fn directory() -> TestApp {
    let app = TestApp::new();
    app.service_ok(
        Method::PUT,
        "/v1/users/alice",
        Some(&json!({"email": "alice@example.com"})),
    )
    .await;
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
    app.service_ok(Method::PUT, "/v1/products/7/members/alice", None)
        .await;
    let settings = app
        .admin(
            Method::PUT,
            "/v1/system/settings",
            Some(&json!({"enable_notify_sla_active": true})),
        )
        .await;
    assert_eq!(settings.status, StatusCode::OK, "{}", settings.body);
    app
}

async fn run(app: &TestApp, body: Value) -> Value {
    let r = app
        .admin(Method::POST, "/v1/scheduler/run", Some(&body))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body
}

async fn alert_titles(app: &TestApp) -> Vec<String> {
    let r = app
        .admin(Method::GET, "/v1/users/alice/alerts?limit=100", None)
        .await;
    r.body["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|a| a["title"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn records_round_trip_and_bad_fields_are_named() {
    let app = directory().await;
    let engagement = json!({"product_id": 7, "name": "Q4 pentest", "lead": "alice",
        "target_start": "2026-12-01", "target_end": "2026-12-12", "status": "in_progress"});
    let created = app
        .service(Method::PUT, "/v1/engagements/12", Some(&engagement))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["status"], "In Progress");
    assert_eq!(created.body["product_id"], "7");
    let replaced = app
        .service(Method::PUT, "/v1/engagements/12", Some(&engagement))
        .await;
    assert_eq!(replaced.status, StatusCode::OK);
    let read = app.service(Method::GET, "/v1/engagements/12", None).await;
    assert_eq!(read.body, created.body);

    for (path, body, field) in [
        (
            "/v1/engagements/12",
            json!({"product_id": 7, "name": "E", "target_start": "2026-02-30", "target_end": "2026-03-01"}),
            "target_start",
        ),
        (
            "/v1/engagements/12",
            json!({"product_id": 7, "name": "E", "target_start": "2026-02-01", "target_end": "2026-03-01", "status": "Done"}),
            "status",
        ),
        (
            "/v1/findings/101",
            json!({"product_id": 7, "title": "XSS", "severity": "Severe"}),
            "severity",
        ),
        (
            "/v1/findings/101",
            json!({"product_id": 7, "title": "XSS", "severity": "High", "sla_expiration_date": "31.12.2026"}),
            "sla_expiration_date",
        ),
        (
            "/v1/risk-acceptances/5",
            json!({"product_id": 7, "name": "TLS", "expiration_date": "tomorrow"}),
            "expiration_date",
        ),
    ] {
        let r = app.service(Method::PUT, path, Some(&body)).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path}: {}",
            r.body
        );
        assert_eq!(r.error_field(), field, "{path}: {}", r.body);
    }
    // A record of an unknown product: 404 naming it.
    let orphan = app
        .service(
            Method::PUT,
            "/v1/findings/101",
            Some(&json!({"product_id": 99, "title": "XSS", "severity": "High"})),
        )
        .await;
    assert_eq!(orphan.status, StatusCode::NOT_FOUND);
    assert!(orphan.raw.contains("product 99"), "{}", orphan.raw);

    let deleted = app
        .service(Method::DELETE, "/v1/engagements/12", None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = app.service(Method::GET, "/v1/engagements/12", None).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_run_needs_a_valid_time_and_known_checks() {
    let app = directory().await;
    for (body, field) in [
        (json!({}), "time"),
        (json!({"time": "2026-11-27 07:30"}), "time"),
        (json!({"time": 1_795_000_000}), "time"),
        (
            json!({"time": "2026-11-27T07:30:00Z", "checks": ["coffee"]}),
            "checks[0]",
        ),
        (
            json!({"time": "2026-11-27T07:30:00Z", "when": "now"}),
            "when",
        ),
    ] {
        let r = app
            .admin(Method::POST, "/v1/scheduler/run", Some(&body))
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            r.body
        );
        assert_eq!(r.error_field(), field, "{body}: {}", r.body);
    }
    let only = run(
        &app,
        json!({"time": "2026-11-27T07:30:00Z", "checks": ["sla"]}),
    )
    .await;
    assert_eq!(only["checks"], json!(["sla"]));
    assert_eq!(only["date"], "2026-11-27");
}

#[tokio::test]
async fn reminders_are_sent_once_across_repeated_and_concurrent_runs() {
    // GIVEN an engagement starting at the month end, a finding due on a leap day, a risk
    // acceptance expiring in a week
    let app = directory().await;
    app.service_ok(
        Method::PUT,
        "/v1/engagements/12",
        Some(
            &json!({"product_id": 7, "name": "Q4 pentest", "lead": "alice",
            "target_start": "2026-11-30", "target_end": "2026-12-12", "status": "Scheduled"}),
        ),
    )
    .await;
    app.service_ok(
        Method::PUT,
        "/v1/findings/101",
        Some(
            &json!({"product_id": 7, "title": "SQL injection", "severity": "Critical",
            "sla_expiration_date": "2026-11-28"}),
        ),
    )
    .await;
    app.service_ok(
        Method::PUT,
        "/v1/risk-acceptances/5",
        Some(
            &json!({"product_id": 7, "name": "Legacy TLS", "expiration_date": "2026-12-04",
            "accepted_findings": [101]}),
        ),
    )
    .await;
    // WHEN two runs start at once
    let time = json!({"time": "2026-11-27T07:30:00Z"});
    let (a, b) = tokio::join!(run(&app, time.clone()), run(&app, time.clone()));
    // THEN the four reminders (upcoming engagement, SLA pre-breach and its summary, risk
    // acceptance heads-up) are sent once between them
    let sent = |r: &Value| -> u64 {
        r["sent"]
            .as_object()
            .map(|m| m.values().filter_map(Value::as_u64).sum())
            .unwrap_or(0)
    };
    assert_eq!(sent(&a) + sent(&b), 4, "{a} {b}");
    let titles = alert_titles(&app).await;
    assert_eq!(titles.len(), 4, "{titles:?}");
    assert!(
        titles.contains(&"Upcoming engagement: Q4 pentest".to_owned()),
        "{titles:?}"
    );
    // AND an hour later nothing new is sent
    let later = run(&app, json!({"time": "2026-11-27T08:30:00Z"})).await;
    assert_eq!(sent(&later), 0, "{later}");
    assert_eq!(later["already_sent"], 4);
    assert_eq!(alert_titles(&app).await.len(), 4);
    // AND the next day brings only what is new that day (the SLA notice for 1 day left)
    let tomorrow = run(&app, json!({"time": "2026-11-28T00:00:00+01:00"})).await;
    assert_eq!(
        tomorrow["date"], "2026-11-27",
        "+01:00 is still the 27th in UTC"
    );
    let next_day = run(&app, json!({"time": "2026-11-28T07:30:00Z"})).await;
    assert_eq!(next_day["sent"]["sla_breach"], 1, "{next_day}");
}

#[tokio::test]
async fn an_engagement_added_event_keeps_the_directory_and_auto_close_closes_it() {
    let app = directory().await;
    let settings = app
        .admin(
            Method::PUT,
            "/v1/system/settings",
            Some(&json!({"engagement_auto_close": true, "engagement_auto_close_days": 3})),
        )
        .await;
    assert_eq!(settings.status, StatusCode::OK);
    // The platform posts engagement_added with the engagement's dates: Herald keeps it.
    let event = json!({"id": "dd-eng-12", "type": "engagement_added",
        "title": "Engagement created for \"Shop\": Q4", "product_id": 7,
        "engagement": {"id": 12, "name": "Q4", "lead": "alice", "status": "In Progress",
            "target_start": "2028-02-01", "target_end": "2028-02-26"}});
    app.service_ok(Method::POST, "/v1/events", Some(&event))
        .await;
    let kept = app.service(Method::GET, "/v1/engagements/12", None).await;
    assert_eq!(kept.status, StatusCode::OK, "{}", kept.body);
    assert_eq!(kept.body["target_end"], "2028-02-26");
    // Three days past the end, across a leap day: closed and announced once.
    let report = run(&app, json!({"time": "2028-02-29T10:00:00Z"})).await;
    assert_eq!(report["sent"]["auto_close_engagement"], 1, "{report}");
    assert_eq!(report["engagements_closed"], 1);
    let closed = app.service(Method::GET, "/v1/engagements/12", None).await;
    assert_eq!(closed.body["status"], "Completed");
    let again = run(&app, json!({"time": "2028-03-01T10:00:00Z"})).await;
    assert_eq!(again["engagements_closed"], 0, "{again}");
}

#[tokio::test]
async fn herald_locals_interval_runs_the_checks_as_of_its_clock_and_stops_on_shutdown() {
    // GIVEN herald-local's clock at 2026-11-27T07:30:00Z and an engagement starting on the 30th
    let now = herald_shared::scheduler::parse_time("time", &json!("2026-11-27T07:30:00Z"))
        .unwrap_or_else(|e| panic!("{e}"));
    let clock = std::sync::Arc::new(herald_shared::ports::FixedClock(now));
    let app = TestApp::with_clock(clock, 5);
    app.service_ok(Method::PUT, "/v1/users/alice", Some(&json!({})))
        .await;
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
    app.service_ok(
        Method::PUT,
        "/v1/engagements/12",
        Some(
            &json!({"product_id": 7, "name": "Q4 pentest", "lead": "alice",
            "target_start": "2026-11-30", "target_end": "2026-12-12"}),
        ),
    )
    .await;
    // WHEN the loop runs every 20 ms for a while
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let checks = tokio::spawn(
        app.herald
            .clone()
            .run_scheduled_checks(std::time::Duration::from_millis(20), shutdown),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while alert_titles(&app).await.is_empty() {
        assert!(std::time::Instant::now() < deadline, "the loop never ran");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let _ = stop.send(true);
    tokio::time::timeout(std::time::Duration::from_secs(5), checks)
        .await
        .unwrap_or_else(|_| panic!("the loop did not stop"))
        .unwrap_or_else(|e| panic!("{e}"));
    // THEN the lead heard of it once, however many runs there were
    assert_eq!(
        alert_titles(&app).await,
        ["Upcoming engagement: Q4 pentest"]
    );
}

#[tokio::test]
async fn the_eventbridge_scheduled_event_runs_the_checks_as_of_its_time() {
    // GIVEN an engagement starting three days after the sample event's time
    let app = directory().await;
    app.service_ok(
        Method::PUT,
        "/v1/engagements/12",
        Some(
            &json!({"product_id": 7, "name": "Q4 pentest", "lead": "alice",
            "target_start": "2026-11-30", "target_end": "2026-12-12"}),
        ),
    )
    .await;
    let payload: Value = serde_json::from_slice(include_bytes!(
        "../../events/eventbridge/scheduled-event.json"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    // WHEN the scheduled event is handled, twice (EventBridge delivers at least once)
    for _ in 0..2 {
        herald_shared::scheduler::handle_scheduled_event(
            app.herald.store.as_ref(),
            app.herald.queue.as_ref(),
            &payload,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }
    // THEN the lead heard of it once; a payload without a time runs nothing
    assert_eq!(
        alert_titles(&app).await,
        ["Upcoming engagement: Q4 pentest"]
    );
    let untimed = herald_shared::scheduler::handle_scheduled_event(
        app.herald.store.as_ref(),
        app.herald.queue.as_ref(),
        &json!({"detail-type": "Scheduled Event", "detail": {}}),
    )
    .await;
    assert!(untimed.is_err());
}
