//! Oversize bodies: every route that takes a JSON body (read from the router's own OpenAPI
//! document, so a new one cannot be forgotten) answers a body one byte over the limit with
//! 413 in the contract's error shape, whether the size is declared (`Content-Length`) or only
//! found while reading (chunked), and stores nothing. The same body within the limit is
//! accepted, so it is the size that is refused.

use axum::body::Body;
use herald_http::extract::{MAX_BODY_BYTES, MAX_DEFECTDOJO_BODY_BYTES};
use herald_tests::{TestApp, TestResponse, WebhookReceiver};
use http::{Request, StatusCode};
use serde_json::{Value, json};

/// Every (method, path template) whose operation declares a request body.
fn json_routes() -> Vec<(String, String)> {
    let doc = serde_json::to_value(herald_local::openapi()).unwrap_or_default();
    let mut routes = Vec::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, item) in paths {
            for method in ["get", "put", "post", "delete", "patch"] {
                if item[method].get("requestBody").is_some() {
                    routes.push((method.to_ascii_uppercase(), path.clone()));
                }
            }
        }
    }
    routes
}

/// A body `route` accepts. A route missing here fails the test.
fn valid_body(method: &str, template: &str, receiver: &WebhookReceiver) -> Value {
    match (method, template) {
        ("PUT", "/v1/system/settings") => json!({"team_name": "AppSec"}),
        ("PUT", "/v1/users/{username}") => json!({"email": "alice@example.com"}),
        ("PUT", "/v1/product-types/{id}") => json!({"name": "Web"}),
        ("PUT", "/v1/products/{id}") => json!({"name": "Shop", "product_type_id": "1"}),
        ("POST", "/v1/events") => json!({"type": "scan_added", "title": "Scan", "product_id": 1}),
        ("POST", "/v1/defectdojo/webhook") => {
            json!({"title": "Shop", "user": null, "product": {"id": 1, "name": "Shop"}})
        }
        ("POST", "/v1/users/{username}/alerts/read") => json!({"ids": []}),
        ("POST", "/v1/webhooks") => json!({"name": "hook", "url": receiver.url("/new")}),
        ("PUT", "/v1/webhooks/{id}") => json!({"name": "renamed"}),
        ("PUT", "/v1/engagements/{id}") => json!({"product_id": 1, "name": "Q4",
            "target_start": "2026-12-01", "target_end": "2026-12-05"}),
        ("PUT", "/v1/findings/{id}") => json!({"product_id": 1, "title": "XSS",
            "severity": "High", "sla_expiration_date": "2026-12-31"}),
        ("PUT", "/v1/risk-acceptances/{id}") => {
            json!({"product_id": 1, "name": "Legacy TLS", "expiration_date": "2027-01-10"})
        }
        ("POST", "/v1/scheduler/run") => json!({"time": "2026-11-27T07:30:00Z"}),
        ("POST", "/v1/deliveries/replay") => json!({"channel": "slack"}),
        ("POST", "/v1/defectdojo/sync") => json!({"page_size": 100}),
        ("PUT", t) if t.starts_with("/v1/notifications/") || t.contains("/notifications") => {
            json!({"events": {"scan_added": ["alert", "mail"]}})
        }
        _ => panic!("{method} {template} takes a JSON body but has no example in this test"),
    }
}

/// The route's limit: DefectDojo's webhooks take more (a re-import lists every finding).
fn limit_of(template: &str) -> usize {
    if template == "/v1/defectdojo/webhook" {
        MAX_DEFECTDOJO_BODY_BYTES
    } else {
        MAX_BODY_BYTES
    }
}

fn concrete(template: &str, webhook_path: &str) -> String {
    if template == "/v1/webhooks/{id}" {
        return webhook_path.to_owned();
    }
    template
        .replace("{username}", "alice")
        .replace("{product_id}", "1")
        .replace("{id}", "1")
}

/// `body` followed by spaces up to `size` bytes: still the same JSON.
fn padded(body: &Value, size: usize) -> Vec<u8> {
    let mut bytes = body.to_string().into_bytes();
    assert!(bytes.len() <= size);
    bytes.resize(size, b' ');
    bytes
}

/// How the oversize body is sent.
#[derive(Debug, Clone, Copy)]
enum Framing {
    /// In one piece with its `Content-Length`.
    Declared,
    /// In 16 KiB chunks with no length, as `Transfer-Encoding: chunked` would.
    Chunked,
    /// A small `Content-Length` header that the body overruns is not trusted either; a
    /// huge declared length is refused before reading.
    DeclaredHuge,
}

fn request(
    method: &str,
    path: &str,
    token: &str,
    bytes: Vec<u8>,
    framing: Framing,
) -> Request<Body> {
    let builder = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        // What DefectDojo's webhook route reads; every other route ignores it.
        .header("x-defectdojo-event", "product_added");
    let result = match framing {
        Framing::Declared => builder
            .header("content-length", bytes.len())
            .body(Body::from(bytes)),
        Framing::DeclaredHuge => builder
            .header("content-length", "107374182400")
            .body(Body::from(bytes)),
        Framing::Chunked => {
            let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
                bytes.chunks(16 * 1024).map(|c| Ok(c.to_vec())).collect();
            builder.body(Body::from_stream(futures_util::stream::iter(chunks)))
        }
    };
    result.unwrap_or_else(|e| panic!("bad test request: {e}"))
}

fn assert_too_large(r: &TestResponse, what: &str, limit: usize) {
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        "{what}: {}",
        r.body
    );
    assert!(
        r.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains(&limit.to_string())),
        "{what}: the message does not say the limit: {}",
        r.body
    );
}

#[tokio::test]
async fn security_every_json_route_refuses_a_body_over_the_limit_with_413_and_stores_nothing() {
    let routes = json_routes();
    assert!(
        routes.len() >= 16,
        "only {} routes take a JSON body according to the OpenAPI document: {routes:?}",
        routes.len()
    );
    let receiver = WebhookReceiver::start().await;
    let app = TestApp::on_disk();
    let webhook_path = app.seed_alice(&receiver).await;
    let token = app.token("root", settings_api::Role::Admin);
    let before = app.store_dump();
    let pings = receiver.requests().len();
    for (method, template) in &routes {
        let path = concrete(template, &webhook_path);
        let body = valid_body(method, template, &receiver);
        for framing in [Framing::Declared, Framing::Chunked, Framing::DeclaredHuge] {
            let bytes = padded(&body, limit_of(template) + 1);
            let r = app
                .send_raw(request(method, &path, &token, bytes, framing))
                .await;
            assert_too_large(
                &r,
                &format!("{method} {path} ({framing:?})"),
                limit_of(template),
            );
        }
        // Far over the limit, in chunks: refused just the same (and not read to the end).
        let r = app
            .send_raw(request(
                method,
                &path,
                &token,
                padded(&body, 8 * limit_of(template)),
                Framing::Chunked,
            ))
            .await;
        assert_too_large(
            &r,
            &format!("{method} {path} (8 times the limit)"),
            limit_of(template),
        );
    }
    assert_eq!(
        app.store_dump(),
        before,
        "an oversize body changed the store"
    );
    assert_eq!(
        receiver.requests().len(),
        pings,
        "an oversize webhook was pinged"
    );

    // At the limit exactly, the same bodies are accepted: only the size was refused.
    for (method, template) in &routes {
        // A fresh app per framing: the same webhook twice would be a name taken (409).
        for framing in [Framing::Declared, Framing::Chunked] {
            let app = TestApp::on_disk().with_empty_defectdojo().await;
            let webhook_path = app.seed_alice(&receiver).await;
            let token = app.token("root", settings_api::Role::Admin);
            let path = concrete(template, &webhook_path);
            let bytes = padded(&valid_body(method, template, &receiver), limit_of(template));
            let r = app
                .send_raw(request(method, &path, &token, bytes.clone(), framing))
                .await;
            assert!(
                r.status.is_success(),
                "{method} {path} ({framing:?}) at the limit answered {}: {}",
                r.status,
                r.body
            );
        }
    }
}

#[tokio::test]
async fn security_oversize_bodies_are_refused_for_every_caller_before_anything_else() {
    // The token is checked first (anonymous: 401), then the size while reading, before the
    // body is parsed or the role is weighed: every authenticated caller gets 413.
    let app = TestApp::on_disk();
    let before = app.store_dump();
    let bytes = padded(&json!({"team_name": "x"}), MAX_BODY_BYTES + 1);
    let anonymous = Request::builder()
        .method("PUT")
        .uri("/v1/system/settings")
        .header("content-type", "application/json")
        .body(Body::from(bytes.clone()))
        .unwrap_or_else(|e| panic!("{e}"));
    let r = app.send_raw(anonymous).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    for (sub, role) in [
        ("root", settings_api::Role::Admin),
        ("platform", settings_api::Role::Service),
        ("alice", settings_api::Role::User),
    ] {
        let token = app.token(sub, role);
        let r = app
            .send_raw(request(
                "POST",
                "/v1/events",
                &token,
                bytes.clone(),
                Framing::Chunked,
            ))
            .await;
        assert_too_large(&r, sub, MAX_BODY_BYTES);
    }
    assert_eq!(app.store_dump(), before);
}
