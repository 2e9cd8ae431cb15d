//! DefectDojo's own webhook posts (`POST /v1/defectdojo/webhook`), with the bodies of
//! `events/defectdojo/webhooks/`, read from DefectDojo's templates: each one accepted and
//! routed by Herald's settings, pings and personal copies answered without recording
//! anything, and every malformed post refused naming the header or field.

use axum::body::Body;
use herald_http::Role;
use herald_tests::{TestApp, TestResponse};
use http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use std::path::PathBuf;

const INSTANCE: &str = "https://defectdojo.example.com";

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events/defectdojo/webhooks")
}

/// The body DefectDojo sends for `name` (a file of `events/defectdojo/webhooks/`).
fn fixture(name: &str) -> String {
    let path = fixtures_dir().join(format!("{name}.json"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every fixture: (file stem, body).
fn fixtures() -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = std::fs::read_dir(fixtures_dir())
        .unwrap_or_else(|e| panic!("{}: {e}", fixtures_dir().display()))
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .filter_map(|p| {
            let stem = p.file_stem()?.to_str()?.to_owned();
            Some((stem.clone(), fixture(&stem)))
        })
        .collect();
    all.sort();
    all
}

/// Posts `body` as DefectDojo does: its headers, the service token in the endpoint's custom
/// header, the body bytes as given.
async fn post(app: &TestApp, event: Option<&str>, body: &str, role: Option<Role>) -> TestResponse {
    let mut builder = Request::builder()
        .method(Method::POST)
        .uri("/v1/defectdojo/webhook")
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .header("user-agent", "DefectDojo-3.2.0")
        .header("x-defectdojo-instance", INSTANCE);
    if let Some(event) = event {
        builder = builder.header("x-defectdojo-event", event);
    }
    if let Some(role) = role {
        let token = app.token("defectdojo", role);
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    let request = builder
        .body(Body::from(body.to_owned()))
        .unwrap_or_else(|e| panic!("{e}"));
    app.send_raw(request).await
}

async fn post_as_service(app: &TestApp, event: &str, body: &str) -> TestResponse {
    post(app, Some(event), body, Some(Role::Service)).await
}

/// The fixtures' world: product type 1 "Web Apps" with product 7 "Shop"; alice (a member of
/// product 7) and bob; carol may not view product 7; root is an administrator.
async fn world(app: &TestApp) {
    for (user, extra) in [
        ("alice", json!({})),
        ("bob", json!({})),
        ("carol", json!({})),
        ("root", json!({"is_admin": true})),
    ] {
        let mut profile = json!({"email": format!("{user}@example.com")});
        if let (Some(p), Some(e)) = (profile.as_object_mut(), extra.as_object()) {
            p.extend(e.clone());
        }
        app.service_ok(Method::PUT, &format!("/v1/users/{user}"), Some(&profile))
            .await;
    }
    app.service_ok(
        Method::PUT,
        "/v1/product-types/1",
        Some(&json!({"name": "Web Apps"})),
    )
    .await;
    app.service_ok(
        Method::PUT,
        "/v1/products/7",
        Some(&json!({"name": "Shop", "product_type_id": "1"})),
    )
    .await;
    app.service_ok(Method::PUT, "/v1/products/7/members/alice", None)
        .await;
}

async fn unread(app: &TestApp, user: &str) -> u64 {
    let r = app
        .admin(Method::GET, &format!("/v1/users/{user}/alerts/count"), None)
        .await;
    r.body["unread"].as_u64().unwrap_or(u64::MAX)
}

#[tokio::test]
async fn every_body_defectdojo_sends_is_accepted_as_it_is_sent() {
    let app = TestApp::new();
    world(&app).await;
    let all = fixtures();
    assert!(
        all.len() >= 19,
        "expected a fixture per DefectDojo event, found {}",
        all.len()
    );
    for (name, body) in all {
        let event = name.strip_suffix("_personal_copy").unwrap_or(&name);
        let r = post_as_service(&app, event, &body).await;
        let parsed: Value = serde_json::from_str(&body).unwrap_or_default();
        let personal_copy =
            !parsed["user"].is_null() && !["user_mentioned", "review_requested"].contains(&event);
        if event == "ping" || personal_copy {
            assert_eq!(r.status, StatusCode::OK, "{name}: {}", r.body);
            assert!(r.body["outcome"].is_string(), "{name}: {}", r.body);
            continue;
        }
        assert_eq!(r.status, StatusCode::ACCEPTED, "{name}: {}", r.body);
        let id = r.body["event_id"].as_str().unwrap_or_default().to_owned();
        let got = app
            .service(Method::GET, &format!("/v1/events/{id}"), None)
            .await;
        assert_eq!(got.status, StatusCode::OK, "{name}: {}", got.body);
        let stored = &got.body["event"];
        assert_eq!(stored["type"], event, "{name}");
        assert!(
            !stored["title"].as_str().unwrap_or_default().is_empty(),
            "{name}"
        );
        if let Some(url) = parsed["url_ui"].as_str() {
            // DefectDojo doubles the site URL on some links; Herald keeps the link meant.
            let meant = &url[url.rfind("https://").unwrap_or(0)..];
            assert_eq!(stored["url"], meant, "{name}");
        }
        if let Some(product) = parsed["product"]["id"].as_u64() {
            assert_eq!(stored["product_id"], product.to_string(), "{name}");
            assert_eq!(stored["data"]["product"], parsed["product"], "{name}");
        }
        for kind in ["new", "reactivated", "mitigated", "untouched"] {
            assert_eq!(
                stored["findings"][kind], parsed["findings"][kind],
                "{name} {kind}"
            );
        }
        if let Some(count) = parsed["finding_count"].as_u64() {
            assert_eq!(stored["data"]["finding_count"], count, "{name}");
        }
    }
}

#[tokio::test]
async fn a_scan_is_routed_by_heralds_settings_and_each_post_is_a_new_event() {
    let app = TestApp::new();
    world(&app).await;
    let body = fixture("scan_added");
    let first = post_as_service(&app, "scan_added", &body).await;
    let second = post_as_service(&app, "scan_added", &body).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.body);
    assert_eq!(second.status, StatusCode::ACCEPTED, "{}", second.body);
    assert_ne!(first.body["event_id"], second.body["event_id"]);
    // alice views product 7 and root is an administrator; bob and carol may not view it.
    assert_eq!(unread(&app, "alice").await, 2);
    assert_eq!(unread(&app, "root").await, 2);
    assert_eq!(unread(&app, "bob").await, 0);
    assert_eq!(unread(&app, "carol").await, 0);
}

#[tokio::test]
async fn a_mention_on_a_users_own_endpoint_reaches_that_user_alone() {
    let app = TestApp::new();
    world(&app).await;
    let body = fixture("user_mentioned");
    let parsed: Value = serde_json::from_str(&body).unwrap_or_default();
    assert_eq!(parsed["user"]["username"], "alice");
    let r = post_as_service(&app, "user_mentioned", &body).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(r.body["alerts"], 1, "{}", r.body);
    assert_eq!(unread(&app, "alice").await, 1);
    for other in ["bob", "carol", "root"] {
        assert_eq!(unread(&app, other).await, 0, "{other}");
    }
}

#[tokio::test]
async fn a_ping_and_a_personal_copy_answer_200_and_record_nothing() {
    let app = TestApp::on_disk();
    world(&app).await;
    let before = app.store_dump();
    let ping = post_as_service(&app, "ping", &fixture("ping")).await;
    assert_eq!(ping.status, StatusCode::OK, "{}", ping.body);
    assert_eq!(ping.body["outcome"], "ping");
    let copy = post_as_service(&app, "scan_added", &fixture("scan_added_personal_copy")).await;
    assert_eq!(copy.status, StatusCode::OK, "{}", copy.body);
    assert_eq!(copy.body["outcome"], "personal_copy");
    assert!(
        copy.body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("nothing is routed"),
        "{}",
        copy.body
    );
    assert_eq!(app.store_dump(), before);
}

#[tokio::test]
async fn the_instance_header_must_name_the_configured_defectdojo() {
    let app = TestApp::new();
    world(&app).await;
    let body = fixture("product_added");
    // None configured: any instance is accepted.
    assert_eq!(
        post_as_service(&app, "product_added", &body).await.status,
        StatusCode::ACCEPTED
    );
    let set = app
        .admin(
            Method::PUT,
            "/v1/system/settings",
            Some(&json!({"defectdojo_instance": "https://other.example.com/"})),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    assert_eq!(set.body["defectdojo_instance"], "https://other.example.com");
    let refused = post_as_service(&app, "product_added", &body).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("X-DefectDojo-Instance")
    );
    app.admin(
        Method::PUT,
        "/v1/system/settings",
        Some(&json!({"defectdojo_instance": format!("{INSTANCE}/")})),
    )
    .await;
    assert_eq!(
        post_as_service(&app, "product_added", &body).await.status,
        StatusCode::ACCEPTED
    );
}

#[tokio::test]
async fn only_the_service_or_an_administrator_may_post() {
    let app = TestApp::new();
    let body = fixture("ping");
    assert_eq!(
        post(&app, Some("ping"), &body, None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post(&app, Some("ping"), &body, Some(Role::User))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post(&app, Some("ping"), &body, Some(Role::Admin))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_post_not_in_defectdojos_shape_is_refused_naming_the_field_and_records_nothing() {
    let app = TestApp::on_disk();
    world(&app).await;
    let before = app.store_dump();
    let scan: Value = serde_json::from_str(&fixture("scan_added")).unwrap_or_default();
    let with = |pointer: &str, value: Value| {
        let mut body = scan.clone();
        if let Some(slot) = body.pointer_mut(pointer) {
            *slot = value;
        }
        body.to_string()
    };
    let cases: Vec<(Option<&str>, String, StatusCode, &str)> = vec![
        (
            None,
            scan.to_string(),
            StatusCode::BAD_REQUEST,
            "X-DefectDojo-Event",
        ),
        (
            Some("finding_exploded"),
            scan.to_string(),
            StatusCode::BAD_REQUEST,
            "X-DefectDojo-Event",
        ),
        (
            Some("scan_added"),
            with("/product/id", json!("7")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "product.id",
        ),
        (
            Some("scan_added"),
            with("/title", json!(5)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "title",
        ),
        (
            Some("scan_added"),
            with("/finding_count", json!("one")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "finding_count",
        ),
        (
            Some("scan_added"),
            with("/findings/new", json!({})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "findings.new",
        ),
        (
            Some("scan_added"),
            with("/test", json!([])),
            StatusCode::UNPROCESSABLE_ENTITY,
            "test",
        ),
        (
            Some("scan_added"),
            "[1]".to_owned(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "",
        ),
    ];
    for (event, body, status, field) in cases {
        let r = post(&app, event, &body, Some(Role::Service)).await;
        assert_eq!(r.status, status, "{event:?} {field}: {}", r.body);
        assert_eq!(r.error_field(), field, "{}", r.body);
    }
    // Over 4 MiB, as a long description.
    let huge = with("/description", json!("x".repeat(4 * 1024 * 1024 + 1)));
    let r = post_as_service(&app, "scan_added", &huge).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.body);
    assert_eq!(app.store_dump(), before);
}

#[tokio::test]
async fn a_reimport_listing_thousands_of_findings_is_accepted_with_its_lists_cut() {
    // DefectDojo deactivates an endpoint for good on a 413 or 422, so a large re-import
    // (every untouched finding listed: about 1.5 MB here) must not be refused.
    let app = TestApp::new();
    world(&app).await;
    let mut scan: Value = serde_json::from_str(&fixture("scan_added")).unwrap_or_default();
    let item = scan["findings"]["new"][0].clone();
    scan["findings"]["untouched"] = Value::Array(vec![item; 8_000]);
    scan["description"] = json!("d".repeat(50_000));
    let body = scan.to_string();
    assert!(body.len() > 1024 * 1024, "{}", body.len());
    let r = post_as_service(&app, "scan_added", &body).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let id = r.body["event_id"].as_str().unwrap_or_default().to_owned();
    let got = app
        .service(Method::GET, &format!("/v1/events/{id}"), None)
        .await;
    let stored = &got.body["event"];
    assert_eq!(
        stored["findings"]["untouched"].as_array().map(Vec::len),
        Some(100)
    );
    assert_eq!(stored["data"]["findings_omitted"]["untouched"], 7_900);
    assert_eq!(stored["data"]["finding_count"], scan["finding_count"]);
    assert_eq!(
        stored["description"].as_str().map(|d| d.chars().count()),
        Some(20_000)
    );
}

#[tokio::test]
async fn a_webhook_key_short_enough_for_defectdojos_header_authenticates_the_post() {
    let app = TestApp::new();
    world(&app).await;
    let key = "k3y-0123456789abcdef0123456789abcdef0123";
    let set = app
        .admin(
            Method::PUT,
            "/v1/system/settings",
            Some(&json!({"defectdojo_webhook_key": key})),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    assert_eq!(set.body["defectdojo_webhook_key_set"], true);
    assert!(!set.raw.contains(key), "the key is write-only: {}", set.raw);
    // DefectDojo keeps at most 100 characters of a custom header's value.
    assert!(format!("Bearer {key}").len() <= 100);
    let with = |authorization: &str| {
        Request::builder()
            .method(Method::POST)
            .uri("/v1/defectdojo/webhook")
            .header("content-type", "application/json")
            .header("x-defectdojo-event", "product_added")
            .header("authorization", authorization.to_owned())
            .body(Body::from(fixture("product_added")))
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let r = app.send_raw(with(&format!("Bearer {key}"))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let wrong = app
        .send_raw(with("Bearer k3y-not-the-right-one-0123456789abcdef"))
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.body);
    let short = app
        .admin(
            Method::PUT,
            "/v1/system/settings",
            Some(&json!({"defectdojo_webhook_key": "short"})),
        )
        .await;
    assert_eq!(
        short.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        short.body
    );
    assert_eq!(short.error_field(), "defectdojo_webhook_key");
    // A non-ASCII event header is named, not taken for a missing one.
    let mut odd = with(&format!("Bearer {key}"));
    odd.headers_mut().insert(
        "x-defectdojo-event",
        http::HeaderValue::from_bytes(b"scan\xe9").unwrap_or_else(|e| panic!("{e}")),
    );
    let r = app.send_raw(odd).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("ASCII")
    );
}
