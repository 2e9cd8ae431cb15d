//! Header injection: every request field that ends up in an HTTP or mail header (a webhook's
//! custom header, the Slack token and channel, Teams and site URLs, mail addresses, the team
//! name and event titles in the subject) refuses CR, LF, NUL and whatever else would let a
//! value break out of its header. Each refusal is a 422 naming the field, nothing is sent,
//! and nothing is stored.

use herald_tests::{TestApp, TestResponse, WebhookReceiver};
use http::{Method, StatusCode};
use serde_json::{Value, json};

/// Asserts a validation error naming `field` in the contract's shape.
fn assert_names_field(r: &TestResponse, field: &str, what: &str) {
    assert_eq!(
        (r.status, r.error_code(), r.error_field()),
        (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", field),
        "{what}: {}",
        r.body
    );
    let message = r.body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with(&format!("{field}:")),
        "{what}: the message does not name {field}: {message}"
    );
}

/// Custom header names and values that must be refused, with the field each error names.
fn bad_custom_headers() -> Vec<(&'static str, Value)> {
    let long_name = "X-".to_owned() + &"a".repeat(99);
    let long_value = "v".repeat(1_001);
    vec![
        (
            "header_value",
            json!({"header_name": "X-Token", "header_value": "a\r\nX-Evil: 1"}),
        ),
        (
            "header_value",
            json!({"header_name": "X-Token", "header_value": "a\rX-Evil: 1"}),
        ),
        (
            "header_value",
            json!({"header_name": "X-Token", "header_value": "a\nX-Evil: 1"}),
        ),
        (
            "header_value",
            json!({"header_name": "X-Token", "header_value": "a\u{0}b"}),
        ),
        (
            "header_value",
            json!({"header_name": "X-Token", "header_value": "a\r\n\r\nGET / HTTP/1.1"}),
        ),
        (
            "header_value",
            json!({"header_name": "X-Token", "header_value": "a\u{7f}b"}),
        ),
        (
            "header_value",
            json!({"header_name": "X-Token", "header_value": "a\u{1b}[31m"}),
        ),
        (
            "header_value",
            json!({"header_name": "X-Token", "header_value": "tök€n"}),
        ),
        (
            "header_value",
            json!({"header_name": "X-Token", "header_value": "a\u{2028}b"}),
        ),
        (
            "header_value",
            json!({"header_name": "X-Token", "header_value": long_value}),
        ),
        (
            "header_value",
            json!({"header_name": "X-Token", "header_value": 42}),
        ),
        ("header_value", json!({"header_name": "X-Token"})),
        (
            "header_name",
            json!({"header_name": "X-Token\r\nX-Evil", "header_value": "a"}),
        ),
        (
            "header_name",
            json!({"header_name": "X-Token\n", "header_value": "a"}),
        ),
        (
            "header_name",
            json!({"header_name": "X-Token\r", "header_value": "a"}),
        ),
        (
            "header_name",
            json!({"header_name": "X-To\u{0}ken", "header_value": "a"}),
        ),
        (
            "header_name",
            json!({"header_name": "X-Token: injected", "header_value": "a"}),
        ),
        (
            "header_name",
            json!({"header_name": "X Token", "header_value": "a"}),
        ),
        (
            "header_name",
            json!({"header_name": "X-Token:", "header_value": "a"}),
        ),
        (
            "header_name",
            json!({"header_name": "(X-Token)", "header_value": "a"}),
        ),
        (
            "header_name",
            json!({"header_name": "X-Tökén", "header_value": "a"}),
        ),
        (
            "header_name",
            json!({"header_name": "X-Token\t", "header_value": "a"}),
        ),
        (
            "header_name",
            json!({"header_name": long_name, "header_value": "a"}),
        ),
        (
            "header_name",
            json!({"header_name": ["X-Token"], "header_value": "a"}),
        ),
        ("header_name", json!({"header_value": "a"})),
        // Headers Herald sets itself: replacing them would forge the request's framing, its
        // signature or its event type.
        (
            "header_name",
            json!({"header_name": "Host", "header_value": "169.254.169.254"}),
        ),
        (
            "header_name",
            json!({"header_name": "Content-Length", "header_value": "0"}),
        ),
        (
            "header_name",
            json!({"header_name": "transfer-encoding", "header_value": "chunked"}),
        ),
        (
            "header_name",
            json!({"header_name": "Content-Type", "header_value": "text/plain"}),
        ),
        (
            "header_name",
            json!({"header_name": "X-Herald-Event", "header_value": "ping"}),
        ),
        (
            "header_name",
            json!({"header_name": "webhook-signature", "header_value": "v1,forged"}),
        ),
        (
            "header_name",
            json!({"header_name": "Webhook-Timestamp", "header_value": "0"}),
        ),
    ]
}

fn with_name_and_url(mut body: Value, url: &str) -> Value {
    if let Some(object) = body.as_object_mut() {
        object.insert("name".into(), json!("hook"));
        object.insert("url".into(), json!(url));
    }
    body
}

#[tokio::test]
async fn security_webhook_custom_headers_that_could_inject_are_refused_and_nothing_is_sent_or_stored()
 {
    let receiver = WebhookReceiver::start().await;
    let app = TestApp::on_disk();
    let before = app.store_dump();
    let cases = bad_custom_headers();
    for (field, headers) in &cases {
        let body = with_name_and_url(headers.clone(), &receiver.url("/hook"));
        let r = app.admin(Method::POST, "/v1/webhooks", Some(&body)).await;
        assert_names_field(&r, field, &format!("POST {headers}"));
        let r = app
            .user("alice", Method::POST, "/v1/webhooks", Some(&body))
            .await;
        assert_names_field(&r, field, &format!("POST as alice {headers}"));
    }
    assert!(
        receiver.requests().is_empty(),
        "a refused webhook was pinged: {:?}",
        receiver.requests()
    );
    assert_eq!(
        app.store_dump(),
        before,
        "a refused webhook changed the store"
    );

    // Edits: an endpoint with a good header, then every bad one. Nothing changes and the
    // endpoint is not pinged again.
    let good = json!({"name": "hook", "url": receiver.url("/hook"),
        "header_name": "X-Token", "header_value": "good-value"});
    let created = app.admin(Method::POST, "/v1/webhooks", Some(&good)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let path = format!(
        "/v1/webhooks/{}",
        created.body["id"].as_str().unwrap_or_default()
    );
    let pings = receiver.requests().len();
    let stored = app.store_dump();
    for (field, headers) in &cases {
        if headers.get("header_name").is_none() || headers.get("header_value").is_none() {
            // An edit may name one of the pair: the stored other half completes it.
            continue;
        }
        let r = app.admin(Method::PUT, &path, Some(headers)).await;
        assert_names_field(&r, field, &format!("PUT {headers}"));
    }
    for (field, edit) in [
        ("header_value", json!({"header_value": "x\r\nX-Evil: 1"})),
        ("header_name", json!({"header_name": "X-Evil\r\nX-More"})),
        // Clearing the name would leave a value with no header to carry it.
        ("header_name", json!({"header_name": null})),
    ] {
        let r = app.admin(Method::PUT, &path, Some(&edit)).await;
        assert_names_field(&r, field, &format!("PUT {edit}"));
    }
    assert_eq!(
        receiver.requests().len(),
        pings,
        "a refused edit was pinged"
    );
    assert_eq!(app.store_dump(), stored, "a refused edit changed the store");

    // The good header really goes out as one header, unchanged.
    let ping = &receiver.requests()[0];
    assert_eq!(ping.header("x-token"), "good-value");
    assert!(ping.headers.get("x-evil").is_none());
}

#[tokio::test]
async fn security_settings_that_end_up_in_headers_refuse_line_breaks_and_nothing_changes() {
    let app = TestApp::on_disk();
    let before = app.store_dump();
    let settings_before = app
        .admin(Method::GET, "/v1/system/settings", None)
        .await
        .body;
    let cases: Vec<(&str, Value)> = vec![
        // Slack: the token goes into the `Authorization` header; the channel and the bot's
        // name into every message.
        ("slack_token", json!("xoxb-1\r\nX-Evil: 1")),
        ("slack_token", json!("xoxb-1\nX-Evil: 1")),
        ("slack_token", json!("xoxb-1\u{0}")),
        ("slack_token", json!("xoxb 1")),
        ("slack_channel", json!("#alerts\r\nX-Evil: 1")),
        ("slack_channel", json!("#alerts\n")),
        ("slack_channel", json!("#alerts\u{0}")),
        ("slack_username", json!("Herald\r\nX-Evil: 1")),
        // Teams and the instance URL (sent as `X-Herald-Instance`).
        (
            "msteams_url",
            json!("https://example.webhook.office.com/x\r\nX-Evil: 1"),
        ),
        (
            "msteams_url",
            json!("https://example.webhook.office.com/x\u{0}"),
        ),
        ("site_url", json!("https://dojo.example.com\r\nX-Evil: 1")),
        ("site_url", json!("https://dojo.example.com\n")),
        // Mail headers: From, To and the subject's team name.
        (
            "email_from",
            json!("herald@example.com\r\nBcc: victim@example.com"),
        ),
        (
            "email_from",
            json!("herald@example.com\nBcc: victim@example.com"),
        ),
        (
            "email_from",
            json!("herald@example.com, victim@example.com"),
        ),
        (
            "mail_notifications_to",
            json!("appsec@example.com\r\nBcc: victim@example.com"),
        ),
        ("mail_notifications_to", json!("appsec@example.com\u{0}")),
        ("team_name", json!("AppSec\r\nBcc: victim@example.com")),
        ("team_name", json!("AppSec\u{0}")),
    ];
    for (field, value) in &cases {
        let r = app
            .admin(
                Method::PUT,
                "/v1/system/settings",
                Some(&json!({ *field: value, "enable_slack_notifications": true })),
            )
            .await;
        assert_names_field(&r, field, &format!("{field} = {value}"));
    }
    assert_eq!(
        app.store_dump(),
        before,
        "a refused setting changed the store"
    );
    let settings_after = app
        .admin(Method::GET, "/v1/system/settings", None)
        .await
        .body;
    assert_eq!(settings_after, settings_before);
}

#[tokio::test]
async fn security_directory_and_event_fields_that_end_up_in_headers_refuse_line_breaks() {
    let app = TestApp::on_disk();
    app.service_ok(
        Method::PUT,
        "/v1/users/alice",
        Some(&json!({"email": "alice@example.com"})),
    )
    .await;
    let before = app.store_dump();
    for (field, body) in [
        (
            "email",
            json!({"email": "alice@example.com\r\nBcc: victim@example.com"}),
        ),
        (
            "email",
            json!({"email": "alice@example.com\nBcc: victim@example.com"}),
        ),
        ("email", json!({"email": "alice@example.com\u{0}"})),
        (
            "slack_email",
            json!({"slack_email": "alice@example.com\r\nX-Evil: 1"}),
        ),
        (
            "first_name",
            json!({"first_name": "Alice\r\nBcc: victim@example.com"}),
        ),
        ("last_name", json!({"last_name": "Smith\n"})),
    ] {
        let r = app
            .service(Method::PUT, "/v1/users/alice", Some(&body))
            .await;
        assert_names_field(&r, field, &format!("user {body}"));
    }
    // An event's title becomes the mail subject and the Slack and Teams headline.
    for title in [
        "Scan\r\nBcc: victim@example.com",
        "Scan\nX-Evil: 1",
        "Scan\rX",
        "Scan\u{0}",
    ] {
        let r = app
            .service(
                Method::POST,
                "/v1/events",
                Some(&json!({"type": "scan_added", "title": title})),
            )
            .await;
        assert!(r.status.is_client_error(), "title {title:?}: {}", r.body);
        assert_eq!(r.error_field(), "title", "{}", r.body);
        assert!(
            r.body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("title:")),
            "{}",
            r.body
        );
    }
    assert_eq!(
        app.store_dump(),
        before,
        "a refused request changed the store"
    );
}
