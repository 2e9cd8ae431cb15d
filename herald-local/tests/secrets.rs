//! Secrets never leave in an answer or a log line. The real `herald-local` binary runs with
//! `RUST_LOG=trace` against fake Slack, Teams and webhook servers on loopback that echo every
//! header they get back in their answers (and reject or fail most requests); the Slack token,
//! the webhook signing secrets, the custom header values and the JWT secret go through
//! creates, updates, reads, validation errors, pings and deliveries that fail and are retried.
//! Then every response body and all of the process's stdout and stderr are searched for them.

mod common;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use common::{Server, lock};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const JWT_SECRET: &str = "jwt-SECRET-for-the-secrets-suite-0123456789";
const SLACK_TOKEN: &str = "xoxb-SECRET-slack-7f3a9c5e";
const SLACK_TOKEN_2: &str = "xoxb-SECRET-slack-rotated-b1d0";
const REJECTED_SLACK_TOKEN: &str = "xoxb-SECRET-rejected with-a-space";
const WEBHOOK_SECRET: &str = "whsec_aGVyYWxkLXNlY3JldHMtc3VpdGUtc2lnbmluZy1rZXktNDcxMQ==";
const WEBHOOK_KEY: &str = "aGVyYWxkLXNlY3JldHMtc3VpdGUtc2lnbmluZy1rZXktNDcxMQ";
const REJECTED_WEBHOOK_SECRET: &str = "whsec_SECRET-rejected-not-base64!!";
const HEADER_VALUE: &str = "Bearer hdr-SECRET-4d2e8b";
/// The signature in the Teams webhook's URL: whoever has the URL may post to the channel.
const TEAMS_SIG: &str = "teams-SIG-SECRET-5e1f0c";
const HEADER_VALUE_2: &str = "Bearer hdr-SECRET-rotated-91ac";
const REJECTED_HEADER_VALUE: &str = "hdr-SECRET-rejected\r\nX-Evil: 1";

/// Every value that must never appear (the rejected ones included: a refusal must not echo
/// what was refused).
fn secrets() -> Vec<&'static str> {
    vec![
        JWT_SECRET,
        SLACK_TOKEN,
        SLACK_TOKEN_2,
        REJECTED_SLACK_TOKEN,
        "SECRET-rejected",
        WEBHOOK_SECRET,
        WEBHOOK_KEY,
        REJECTED_WEBHOOK_SECRET,
        HEADER_VALUE,
        "hdr-SECRET",
        TEAMS_SIG,
    ]
}

/// The fakes' shared state: every request they got (path and headers).
#[derive(Default)]
struct Fakes {
    received: Mutex<Vec<(String, HeaderMap)>>,
}

/// Every header as `name: value` lines: what an echoing server would put in its answer.
fn echo(headers: &HeaderMap) -> String {
    headers
        .iter()
        .map(|(k, v)| format!("{k}: {}", String::from_utf8_lossy(v.as_bytes())))
        .collect::<Vec<_>>()
        .join("\n")
}

/// One handler for Slack, Teams and the webhooks, told apart by path:
/// - `/api/users.lookupByEmail`: `ok: false`, the error being the echoed headers;
/// - `/api/chat.postMessage`: HTTP 500 with the headers in the body, then `ok: false` with
///   the token as the error code;
/// - `/teams`: HTTP 500 with the headers in the body;
/// - `/hook/ok/*`: 200 to pings, 500 with the headers in the body to everything else;
/// - `/hook/reject/*`: 401 with the headers in the body, pings included.
async fn fake(State(fakes): State<Arc<Fakes>>, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path().to_owned();
    let echoed = echo(&headers);
    let is_ping = headers
        .get("x-herald-event")
        .is_some_and(|v| v.as_bytes() == b"ping");
    let seen_before = lock(&fakes.received)
        .iter()
        .filter(|(p, _)| *p == path)
        .count();
    lock(&fakes.received).push((path.clone(), headers.clone()));
    let bearer = headers
        .get("authorization")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    if path.ends_with("users.lookupByEmail") {
        return axum::Json(json!({"ok": false, "error": echoed, "token": bearer})).into_response();
    }
    if path.ends_with("chat.postMessage") {
        if seen_before % 2 == 0 {
            return (StatusCode::INTERNAL_SERVER_ERROR, echoed).into_response();
        }
        let token = bearer.trim_start_matches("Bearer ").to_owned();
        return axum::Json(json!({"ok": false, "error": token, "warning": echoed})).into_response();
    }
    if path.starts_with("/hook/ok/") && is_ping {
        return StatusCode::OK.into_response();
    }
    if path.starts_with("/hook/reject/") {
        return (StatusCode::UNAUTHORIZED, echoed).into_response();
    }
    (StatusCode::INTERNAL_SERVER_ERROR, echoed).into_response()
}

async fn start_fakes() -> (String, Arc<Fakes>) {
    let fakes = Arc::new(Fakes::default());
    let app = axum::Router::new()
        .fallback(fake)
        .with_state(Arc::clone(&fakes));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let address = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{address}"), fakes)
}

fn start(data_dir: &std::path::Path, fakes_base: &str) -> Server {
    let slack = format!("{fakes_base}/api");
    common::start(
        data_dir,
        &["--check-interval", "1"],
        &[
            ("HERALD_JWT_SECRET", JWT_SECRET),
            ("RUST_LOG", "trace"),
            ("HERALD_ALLOW_PRIVATE_TARGETS", "1"),
            ("HERALD_RETRY_BASE_SECONDS", "1"),
            ("HERALD_MAX_ATTEMPTS", "3"),
            ("SLACK_API_URL", &slack),
        ],
    )
}

fn token(data_dir: &std::path::Path, sub: &str, role: &str) -> String {
    let env = [("HERALD_JWT_SECRET", JWT_SECRET), ("RUST_LOG", "trace")];
    let output = common::token_output(data_dir, sub, role, &env);
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for secret in secrets() {
        assert!(
            !stderr.contains(secret),
            "the token command logged {secret}"
        );
    }
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A client that records every answer's status and body.
struct Client {
    http: reqwest::Client,
    base: String,
    answers: Vec<String>,
}

impl Client {
    async fn call(
        &mut self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status().as_u16();
        let headers = format!("{:?}", response.headers());
        let text = response.text().await.unwrap_or_default();
        self.answers
            .push(format!("{method} {path} -> {status} {headers} {text}"));
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn raw(&mut self, method: reqwest::Method, path: &str, token: &str, body: &str) -> u16 {
        let response = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        self.answers
            .push(format!("{method} {path} -> {status} {text}"));
        status
    }
}

fn expect(answer: (u16, Value), status: u16, what: &str) -> Value {
    assert_eq!(answer.0, status, "{what}: {}", answer.1);
    answer.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_appear_in_any_answer_or_log_line() {
    use reqwest::Method as M;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (fakes_base, fakes) = start_fakes().await;
    let admin = token(dir.path(), "root", "admin");
    let service = token(dir.path(), "defectdojo", "service");
    let alice = token(dir.path(), "alice", "user");
    let server = start(dir.path(), &fakes_base);
    let mut c = Client {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .no_proxy()
            .build()
            .unwrap_or_else(|e| panic!("{e}")),
        base: server.base.clone(),
        answers: Vec::new(),
    };

    // System settings: every channel on, the Slack token set, read back, rejected, rotated.
    let settings = json!({
        "enable_slack_notifications": true, "slack_token": SLACK_TOKEN, "slack_channel": "#appsec",
        "enable_msteams_notifications": true, "msteams_url": format!("{fakes_base}/teams?sig={TEAMS_SIG}"),
        "enable_webhooks_notifications": true, "webhooks_notifications_timeout": 2,
        "enable_mail_notifications": true, "mail_notifications_to": "appsec@example.com",
        "team_name": "AppSec"});
    let put = c
        .call(M::PUT, "/v1/system/settings", Some(&admin), Some(settings))
        .await;
    let put = expect(put, 200, "settings");
    assert_eq!(
        (&put["slack_token_set"], &put["msteams_url_set"]),
        (&json!(true), &json!(true))
    );
    let read = expect(
        c.call(M::GET, "/v1/system/settings", Some(&admin), None)
            .await,
        200,
        "read settings",
    );
    assert_eq!(read["msteams_url_set"], true, "{read}");
    assert!(read.get("msteams_url").is_none(), "{read}");
    expect(
        c.call(
            M::PUT,
            "/v1/system/settings",
            Some(&admin),
            Some(json!({"slack_token": REJECTED_SLACK_TOKEN})),
        )
        .await,
        422,
        "a token with a space",
    );
    expect(
        c.call(
            M::PUT,
            "/v1/system/settings",
            Some(&service),
            Some(json!({"slack_token": SLACK_TOKEN_2})),
        )
        .await,
        403,
        "the service may not change settings",
    );
    let raw = c
        .raw(
            M::PUT,
            "/v1/system/settings",
            &admin,
            &format!("{{\"slack_token\": \"{SLACK_TOKEN_2}\", "),
        )
        .await;
    assert_eq!(raw, 400, "truncated JSON");
    for (path, channels) in [
        (
            "/v1/notifications/system",
            json!(["slack", "msteams", "webhooks", "mail"]),
        ),
        (
            "/v1/notifications/template",
            json!(["alert", "slack", "webhooks", "mail"]),
        ),
    ] {
        let doc = json!({"events": {"scan_added": channels}});
        expect(
            c.call(M::PUT, path, Some(&admin), Some(doc)).await,
            200,
            path,
        );
    }

    // The directory: alice (with a Slack email to look up) on product 1.
    for (path, body) in [
        (
            "/v1/users/alice",
            json!({"email": "alice@example.com", "slack_email": "alice@example.com"}),
        ),
        ("/v1/product-types/1", json!({"name": "Web"})),
        (
            "/v1/products/1",
            json!({"name": "Shop", "product_type_id": 1}),
        ),
    ] {
        let answer = c.call(M::PUT, path, Some(&service), Some(body)).await;
        assert!(answer.0 == 200 || answer.0 == 201, "{path}: {}", answer.1);
    }
    let member = c
        .call(M::PUT, "/v1/products/1/members/alice", Some(&service), None)
        .await;
    assert!(member.0 == 200 || member.0 == 201, "{}", member.1);

    // Webhooks: a system one and alice's, each signed and with a secret header; a ping that
    // is rejected; invalid secrets and header values; reads and edits.
    let system_hook = expect(
        c.call(
            M::POST,
            "/v1/webhooks",
            Some(&admin),
            Some(json!({"name": "SIEM", "url": format!("{fakes_base}/hook/ok/system"),
                "secret": WEBHOOK_SECRET, "header_name": "Authorization", "header_value": HEADER_VALUE})),
        )
        .await,
        201,
        "system webhook",
    );
    let alice_hook = expect(
        c.call(
            M::POST,
            "/v1/webhooks",
            Some(&alice),
            Some(json!({"name": "mine", "url": format!("{fakes_base}/hook/ok/alice"),
                "secret": WEBHOOK_SECRET, "header_name": "X-Api-Key", "header_value": HEADER_VALUE})),
        )
        .await,
        201,
        "alice's webhook",
    );
    expect(
        c.call(
            M::POST,
            "/v1/webhooks",
            Some(&admin),
            Some(json!({"name": "rejects", "url": format!("{fakes_base}/hook/reject/ping"),
                "secret": WEBHOOK_SECRET, "header_name": "X-Api-Key", "header_value": HEADER_VALUE})),
        )
        .await,
        422,
        "a rejected ping",
    );
    for (field, value) in [
        ("secret", REJECTED_WEBHOOK_SECRET),
        ("header_value", REJECTED_HEADER_VALUE),
    ] {
        let mut body = json!({"name": "bad", "url": format!("{fakes_base}/hook/ok/bad"),
            "header_name": "X-Api-Key", "header_value": HEADER_VALUE});
        body[field] = json!(value);
        expect(
            c.call(M::POST, "/v1/webhooks", Some(&admin), Some(body))
                .await,
            422,
            field,
        );
    }
    let system_path = format!(
        "/v1/webhooks/{}",
        system_hook["id"].as_str().unwrap_or_default()
    );
    let alice_path = format!(
        "/v1/webhooks/{}",
        alice_hook["id"].as_str().unwrap_or_default()
    );
    expect(
        c.call(M::GET, "/v1/webhooks", Some(&admin), None).await,
        200,
        "list",
    );
    expect(
        c.call(M::GET, &alice_path, Some(&alice), None).await,
        200,
        "read",
    );
    expect(
        c.call(
            M::PUT,
            &alice_path,
            Some(&alice),
            Some(json!({"header_value": HEADER_VALUE_2})),
        )
        .await,
        200,
        "rotate the header value",
    );
    expect(
        c.call(
            M::PUT,
            &system_path,
            Some(&admin),
            Some(json!({"name": "SIEM 2"})),
        )
        .await,
        200,
        "rename",
    );
    expect(
        c.call(M::GET, &system_path, Some(&alice), None).await,
        404,
        "another's webhook",
    );

    // Events: every channel fails (500s echoing headers, Slack errors carrying the token) and
    // is retried.
    let mut event_ids = Vec::new();
    for n in 0..2 {
        let answer = expect(
            c.call(
                M::POST,
                "/v1/events",
                Some(&service),
                Some(
                    json!({"id": format!("secret-test-{n}"), "type": "scan_added",
                    "title": format!("Scan {n}"), "product_id": 1}),
                ),
            )
            .await,
            202,
            "event",
        );
        event_ids.push(answer["event_id"].as_str().unwrap_or_default().to_owned());
    }
    // Until every Slack and Teams delivery was tried at least twice (or is final), and each
    // webhook got a delivery (a failing endpoint then rests, its messages parked).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut settled = true;
        for id in &event_ids {
            let (_, view) = c
                .call(M::GET, &format!("/v1/events/{id}"), Some(&service), None)
                .await;
            let deliveries = view["deliveries"].as_array().cloned().unwrap_or_default();
            settled &= !deliveries.is_empty()
                && deliveries
                    .iter()
                    .filter(|d| matches!(d["channel"].as_str(), Some("slack" | "msteams")))
                    .all(|d| {
                        d["attempts"].as_u64().unwrap_or(0) >= 2
                            || matches!(d["status"].as_str(), Some("sent" | "failed" | "dead"))
                    });
        }
        for hook in ["/hook/ok/system", "/hook/ok/alice"] {
            settled &= lock(&fakes.received).iter().any(|(p, h)| {
                p == hook
                    && h.get("x-herald-event")
                        .is_some_and(|v| v.as_bytes() != b"ping")
            });
        }
        if settled {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the deliveries were not tried in time: {}",
            c.answers.last().cloned().unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for path in [
        "/v1/users/alice/alerts".to_owned(),
        "/v1/users/alice".to_owned(),
        alice_path.clone(),
        system_path.clone(),
    ] {
        expect(c.call(M::GET, &path, Some(&admin), None).await, 200, &path);
    }
    expect(
        c.call(M::DELETE, &system_path, Some(&admin), None).await,
        204,
        "delete",
    );
    // Give the last log lines a moment, then stop the process.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut server = server;
    let _ = server.child.kill();
    let _ = server.child.wait();
    tokio::time::sleep(Duration::from_millis(200)).await;

    // The secrets were really used: otherwise their absence would prove nothing.
    let received = lock(&fakes.received).clone();
    let header = |path_part: &str, name: &str| -> Vec<String> {
        received
            .iter()
            .filter(|(p, _)| p.contains(path_part))
            .filter_map(|(_, h)| h.get(name))
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect()
    };
    assert!(
        header("chat.postMessage", "authorization")
            .iter()
            .any(|v| v == &format!("Bearer {SLACK_TOKEN}")),
        "Slack never got the token: {received:?}"
    );
    assert!(header("/hook/ok/system", "authorization").contains(&HEADER_VALUE.to_owned()));
    assert!(header("/hook/ok/alice", "x-api-key").contains(&HEADER_VALUE_2.to_owned()));
    assert!(
        header("/hook/ok/", "webhook-signature")
            .iter()
            .any(|s| s.starts_with("v1,")),
        "no signed webhook request"
    );
    assert!(
        received.iter().filter(|(p, _)| p == "/teams").count() >= 2,
        "Teams was not tried twice"
    );

    let stdout = lock(&server.stdout).clone();
    let stderr = lock(&server.stderr).clone();
    assert!(
        stderr.contains("TRACE") && stderr.contains("DEBUG"),
        "the log is not at trace level"
    );
    assert!(
        stderr.lines().count() > 100,
        "too few log lines to mean anything: {stderr}"
    );
    let mut leaks = Vec::new();
    for secret in secrets() {
        for (source, text) in [("stdout", &stdout), ("stderr", &stderr)] {
            for line in text.lines().filter(|l| l.contains(secret)) {
                leaks.push(format!("{source} contains {secret:?}: {line}"));
            }
        }
        for answer in c.answers.iter().filter(|a| a.contains(secret)) {
            leaks.push(format!("an answer contains {secret:?}: {answer}"));
        }
    }
    // Callers' bearer tokens are credentials too: never logged.
    for (who, jwt) in [("admin", &admin), ("service", &service), ("alice", &alice)] {
        let signature = jwt.rsplit('.').next().unwrap_or(jwt.as_str());
        assert!(signature.len() > 20, "{who}'s token has no signature");
        for (source, text) in [("stdout", &stdout), ("stderr", &stderr)] {
            for line in text.lines().filter(|l| l.contains(signature)) {
                leaks.push(format!("{source} contains {who}'s bearer token: {line}"));
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "{} leaks:\n{}",
        leaks.len(),
        leaks.join("\n")
    );
}
