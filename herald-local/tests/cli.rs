//! `herald-local` as a user runs it: start the binary on a fresh data directory, mint a token
//! with its `token` subcommand, use the API, stop it, start it again on the same directory.

mod common;

use common::{BIN, Server};
use herald_shared::testing::{FakeHttp, Reply};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn start(data_dir: &Path) -> Server {
    common::start(data_dir, &[], &[])
}

fn start_with(data_dir: &Path, env: &[(&str, &str)]) -> Server {
    common::start(data_dir, &[], env)
}

fn token(data_dir: &Path, sub: &str, role: &str) -> String {
    common::token(data_dir, sub, role, &[])
}

#[tokio::test]
async fn given_a_fresh_data_dir_then_herald_local_serves_the_api_with_tokens_it_mints_and_keeps_data()
 {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));

    let server = start(dir.path());
    let health = client
        .get(format!("{}/health", server.base))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(health.status(), 200);

    let admin = token(dir.path(), "admin", "admin");
    let put = client
        .put(format!("{}/v1/system/settings", server.base))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"team_name": "AppSec", "slack_token": "xoxb-cli-test"}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(put.status(), 200);
    let text = put.text().await.unwrap_or_default();
    assert!(
        text.contains("\"slack_token_set\":true") && !text.contains("xoxb-cli-test"),
        "{text}"
    );

    let anonymous = client
        .get(format!("{}/v1/system/settings", server.base))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(anonymous.status(), 401);
    drop(server);

    // The same data directory after a restart: the settings and the secret are still there.
    let server = start(dir.path());
    let read = client
        .get(format!("{}/v1/system/settings", server.base))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read.status(), 200);
    let body: serde_json::Value = read.json().await.unwrap_or_default();
    assert_eq!(body["team_name"], "AppSec");
}

#[test]
fn given_a_bad_role_then_the_token_command_fails_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let output = Command::new(BIN)
        .args(["token", "--sub", "alice", "--role", "root", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("expected admin, service or user"));
}

/// A fake Slack Web API on loopback: answers every call (`chat.postMessage`) with `ok: true`.
async fn fake_slack() -> (String, FakeHttp) {
    let slack = FakeHttp::start(|_| {
        Reply::ok(serde_json::json!({"ok": true, "channel": "C1", "ts": "1.2"}))
    })
    .await;
    (slack.url("/api"), slack)
}

/// The fallback text of every post `slack` got.
fn post_texts(slack: &FakeHttp) -> Vec<String> {
    slack
        .requests_to("/api/chat.postMessage")
        .into_iter()
        .map(|r| r.body["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// `kill -9` in the middle of a burst of accepted events, then a restart on the same data
/// directory: every accepted event is there, and every one of its deliveries still goes out,
/// through the same Slack sender the Lambda function runs, to a fake Slack on loopback.
#[tokio::test]
async fn given_a_kill_9_during_a_burst_then_a_restart_delivers_every_accepted_event() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (slack_url, posts) = fake_slack().await;
    let env = [("SLACK_API_URL", slack_url.as_str())];
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let admin = token(dir.path(), "admin", "admin");
    let service = token(dir.path(), "defectdojo", "service");
    let server = start_with(dir.path(), &env);
    for (path, body) in [
        (
            "/v1/system/settings",
            serde_json::json!({"enable_slack_notifications": true, "slack_channel": "#appsec", "slack_token": "xoxb-test", "team_name": "AppSec"}),
        ),
        (
            "/v1/notifications/system",
            serde_json::json!({"events": {"other": ["slack"]}}),
        ),
    ] {
        let r = client
            .put(format!("{}{path}", server.base))
            .bearer_auth(&admin)
            .json(&body)
            .send()
            .await;
        assert!(r.is_ok_and(|r| r.status().is_success()), "{path}");
    }

    const EVENTS: usize = 200;
    for i in 0..EVENTS {
        let body = serde_json::json!({"id": format!("crash-{i}"), "type": "report_created", "title": format!("Report {i}")});
        let r = client
            .post(format!("{}/v1/events", server.base))
            .bearer_auth(&service)
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status(), 202);
    }
    // Child::kill is SIGKILL: no shutdown, no flush, senders stopped wherever they were.
    drop(server);

    let server = start_with(dir.path(), &env);
    // Messages a sender had claimed when the process died come back at the restart; any it
    // had received but not yet claimed stay hidden for the 60 s visibility timeout, as on SQS.
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let mut unsent = Vec::new();
    while std::time::Instant::now() < deadline {
        unsent.clear();
        for i in 0..EVENTS {
            let r = client
                .get(format!("{}/v1/events/crash-{i}", server.base))
                .bearer_auth(&service)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                r.status(),
                200,
                "accepted event crash-{i} is known after the restart"
            );
            let body: serde_json::Value = r.json().await.unwrap_or_default();
            if body["deliveries"][0]["status"] != "sent" {
                unsent.push(i);
            }
        }
        if unsent.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(unsent.is_empty(), "deliveries never sent: {unsent:?}");
    let posts = post_texts(&posts);
    for i in 0..EVENTS {
        let text = format!("AppSec notification: Report {i}");
        assert!(posts.contains(&text), "Report {i} never reached Slack");
    }
    // A post that succeeded just before the kill, with its `sent` not yet recorded, is sent
    // again (the documented crash window): at most the batches in flight.
    assert!(
        posts.len() <= EVENTS + 10,
        "{} posts for {EVENTS} deliveries",
        posts.len()
    );
}

/// Email on `herald-local`: the same email sender as on Lambda, writing one RFC 5322 message
/// per delivery to `DATA_DIR/outbox`.
#[tokio::test]
async fn given_a_mail_delivery_then_herald_local_writes_it_to_the_outbox() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let admin = token(dir.path(), "admin", "admin");
    let server = start(dir.path());
    for (path, body) in [
        (
            "/v1/system/settings",
            serde_json::json!({"enable_mail_notifications": true, "mail_notifications_to": "appsec@example.com",
                "email_from": "herald@example.com", "team_name": "AppSec"}),
        ),
        (
            "/v1/notifications/system",
            serde_json::json!({"events": {"other": ["mail"]}}),
        ),
    ] {
        let r = client
            .put(format!("{}{path}", server.base))
            .bearer_auth(&admin)
            .json(&body)
            .send()
            .await;
        assert!(r.is_ok_and(|r| r.status().is_success()), "{path}");
    }
    let event =
        serde_json::json!({"id": "mail-1", "type": "report_created", "title": "Quarterly report"});
    let r = client
        .post(format!("{}/v1/events", server.base))
        .bearer_auth(&admin)
        .json(&event)
        .send()
        .await;
    assert!(r.is_ok_and(|r| r.status() == 202));

    let outbox = dir.path().join("outbox");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut files = Vec::new();
    while files.is_empty() && std::time::Instant::now() < deadline {
        files = std::fs::read_dir(&outbox)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                    .collect()
            })
            .unwrap_or_default();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(files.len(), 1, "one .eml in {}", outbox.display());
    let mail = std::fs::read_to_string(&files[0]).unwrap_or_default();
    assert!(mail.contains("To: appsec@example.com\r\n"), "{mail}");
    assert!(mail.contains("From: herald@example.com\r\n"), "{mail}");
    assert!(
        mail.contains("Subject: AppSec notification: Quarterly report\r\n"),
        "{mail}"
    );
}

/// A webhook receiver on loopback: answers 204 to everything.
async fn fake_webhook_receiver() -> (String, FakeHttp) {
    let receiver = FakeHttp::start(|_| Reply::status(204)).await;
    (receiver.url("/hook"), receiver)
}

/// Each request `receiver` got: its `X-Herald-Event` and its JSON body.
fn webhook_posts(receiver: &FakeHttp) -> Vec<(String, serde_json::Value)> {
    receiver
        .requests_to("/hook")
        .into_iter()
        .map(|r| {
            let event = r.header("x-herald-event").unwrap_or_default().to_owned();
            (event, r.body)
        })
        .collect()
}

#[tokio::test]
async fn given_a_system_webhook_then_herald_local_pings_it_and_posts_each_event_to_it() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let (url, posts) = fake_webhook_receiver().await;
    let admin = token(dir.path(), "admin", "admin");
    let server = start_with(dir.path(), &[("HERALD_ALLOW_PRIVATE_TARGETS", "1")]);
    for (path, body) in [
        (
            "/v1/system/settings",
            serde_json::json!({"enable_webhooks_notifications": true}),
        ),
        (
            "/v1/notifications/system",
            serde_json::json!({"events": {"other": ["webhooks"]}}),
        ),
    ] {
        let r = client
            .put(format!("{}{path}", server.base))
            .bearer_auth(&admin)
            .json(&body)
            .send()
            .await;
        assert!(r.is_ok_and(|r| r.status().is_success()), "{path}");
    }
    let r = client
        .post(format!("{}/v1/webhooks", server.base))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"name": "Receiver", "url": url}))
        .send()
        .await;
    assert!(r.is_ok_and(|r| r.status() == 201));
    let event =
        serde_json::json!({"id": "hook-1", "type": "report_created", "title": "Quarterly report"});
    let r = client
        .post(format!("{}/v1/events", server.base))
        .bearer_auth(&admin)
        .json(&event)
        .send()
        .await;
    assert!(r.is_ok_and(|r| r.status() == 202));

    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let received = loop {
        let received = webhook_posts(&posts);
        if received.len() >= 2 || std::time::Instant::now() > deadline {
            break received;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(received.len(), 2, "{received:?}");
    assert_eq!(received[0].0, "ping");
    assert_eq!(received[1].0, "report_created");
    assert_eq!(received[1].1["event_id"], "hook-1");
    assert_eq!(received[1].1["title"], "Quarterly report");
}

#[tokio::test]
async fn given_a_check_interval_then_herald_local_runs_the_checks_and_reminds_once() {
    // GIVEN herald-local running the checks every second, and an engagement led by alice
    // starting in three days (by this machine's clock)
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let service = token(dir.path(), "dojo", "service");
    let alice = token(dir.path(), "alice", "user");
    let server = common::start(dir.path(), &["--check-interval", "1"], &[]);
    let start = time::OffsetDateTime::now_utc().date() + time::Duration::days(3);
    let end = start + time::Duration::days(7);
    for (path, body) in [
        (
            "/v1/users/alice",
            serde_json::json!({"email": "alice@example.com"}),
        ),
        ("/v1/product-types/web", serde_json::json!({"name": "Web"})),
        (
            "/v1/products/7",
            serde_json::json!({"name": "Shop", "product_type_id": "web"}),
        ),
        (
            "/v1/engagements/12",
            serde_json::json!({"product_id": 7, "name": "Q4 pentest", "lead": "alice",
                "target_start": start.to_string(), "target_end": end.to_string(),
                "status": "not_started"}),
        ),
    ] {
        let r = client
            .put(format!("{}{path}", server.base))
            .bearer_auth(&service)
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(r.status().is_success(), "{path}: {}", r.status());
    }
    let alerts = || async {
        let r = client
            .get(format!("{}/v1/users/alice/alerts", server.base))
            .bearer_auth(&alice)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let body: serde_json::Value = r.json().await.unwrap_or_else(|e| panic!("{e}"));
        body["items"].as_array().cloned().unwrap_or_default()
    };

    // WHEN the interval passes a few times
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut items = alerts().await;
    while items.is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        items = alerts().await;
    }
    tokio::time::sleep(Duration::from_millis(3_000)).await;

    // THEN alice was reminded of the upcoming engagement, once
    let items = alerts().await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert!(
        items[0]["title"]
            .as_str()
            .is_some_and(|t| t.contains("Q4 pentest")),
        "{items:?}"
    );
}

/// `herald-local sync defectdojo ...` on `data_dir`, as it ran.
fn sync_defectdojo(data_dir: &Path, url: &str, token_file: &Path) -> std::process::Output {
    sync_defectdojo_with(data_dir, url, token_file, &[])
}

fn sync_defectdojo_with(
    data_dir: &Path,
    url: &str,
    token_file: &Path,
    extra: &[&str],
) -> std::process::Output {
    Command::new(BIN)
        .args([
            "sync",
            "defectdojo",
            "--url",
            url,
            "--page-size",
            "2",
            "--api-token-file",
        ])
        .arg(token_file)
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra)
        .env_remove("HERALD_JWT_SECRET")
        .output()
        .unwrap_or_else(|e| panic!("cannot run the sync: {e}"))
}

fn text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

// Multi-threaded: the fake DefectDojo serves while the test waits for the binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_defectdojo_then_sync_fills_the_directory_once_and_a_server_serves_it() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/defectdojo/api/v3");
    let dojo = herald_shared::testing::fake_defectdojo_api(&fixtures, "dd-key-42").await;
    let token_file = dir.path().join("dd-token");
    std::fs::write(&token_file, "dd-key-42\n").unwrap_or_else(|e| panic!("{e}"));
    let data = dir.path().join("data");

    let first = sync_defectdojo(&data, &dojo.base, &token_file);
    assert!(first.status.success(), "{}", text(&first));
    let out = text(&first);
    let row = |out: &str, kind: &str| -> Vec<String> {
        out.lines()
            .find(|l| l.starts_with(kind) && l[kind.len()..].starts_with(' '))
            .map(|l| {
                l[kind.len()..]
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    // created, updated, removed, unchanged
    assert_eq!(row(&out, "users"), ["4", "0", "0", "0"], "{out}");
    assert_eq!(row(&out, "products"), ["2", "0", "0", "0"], "{out}");
    assert_eq!(row(&out, "findings"), ["3", "0", "0", "0"], "{out}");
    assert!(!out.contains("dd-key-42"), "{out}");

    let second = sync_defectdojo(&data, &dojo.base, &token_file);
    let out = text(&second);
    assert!(second.status.success(), "{out}");
    assert_eq!(row(&out, "users"), ["0", "0", "0", "4"], "{out}");
    assert!(out.contains("nothing changed"), "{out}");
    assert!(out.contains("were not imported"), "{out}");

    let imported = sync_defectdojo_with(&data, &dojo.base, &token_file, &["--import-settings"]);
    let out = text(&imported);
    assert!(imported.status.success(), "{out}");
    assert_eq!(
        row(&out, "notification settings"),
        ["1", "3", "0", "1"],
        "{out}"
    );
    assert_eq!(row(&out, "system settings"), ["0", "1", "0", "0"], "{out}");

    // A server on the same directory serves what the sync wrote; while it runs, the sync is
    // run by the server, which sees the result at once. The fake DefectDojo is on loopback,
    // which a DefectDojo named in a request may be only where private targets are allowed.
    let server = start_with(&data, &[("HERALD_ALLOW_PRIVATE_TARGETS", "1")]);
    let admin = token(&data, "admin", "admin");
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    client
        .delete(format!("{}/v1/users/carol", server.base))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let through = sync_defectdojo(&data, &dojo.base, &token_file);
    let out = text(&through);
    assert!(through.status.success(), "{out}");
    assert!(out.contains("holds the store; it runs the sync"), "{out}");
    assert_eq!(
        row(&out, "users"),
        ["1", "0", "0", "3"],
        "carol is back: {out}"
    );
    assert!(!out.contains("dd-key-42"), "{out}");
    let carol = client
        .get(format!("{}/v1/users/carol", server.base))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(carol.status(), 200);
    assert!(
        !server.output().contains("dd-key-42"),
        "the token is never logged"
    );
    let alice: serde_json::Value = client
        .get(format!("{}/v1/users/alice", server.base))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    assert_eq!(alice["slack_email"], "alice@example.com", "{alice}");
    drop(server);

    // A wrong token: DefectDojo's 403, named with the URL; nothing changes.
    std::fs::write(&token_file, "wrong").unwrap_or_else(|e| panic!("{e}"));
    let refused = sync_defectdojo(&data, &dojo.base, &token_file);
    let out = text(&refused);
    assert!(!refused.status.success(), "{out}");
    assert!(out.contains("answered 403: Invalid token."), "{out}");
    assert!(out.contains("nothing was changed in Herald"), "{out}");
    assert!(out.contains("/api/v2/"), "{out}");
}

// Multi-threaded: the fake DefectDojo serves while the test waits for the binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_configured_defectdojo_then_serve_syncs_from_it_on_start_and_when_asked() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/defectdojo/api/v3");
    let dojo = herald_shared::testing::fake_defectdojo_api(&fixtures, "dd-key-77").await;
    let token_file = dir.path().join("dd-token");
    std::fs::write(&token_file, "dd-key-77").unwrap_or_else(|e| panic!("{e}"));
    let data = dir.path().join("data");
    let token_path = token_file.to_string_lossy().into_owned();

    // The URL alone is refused before anything starts.
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_herald-local"))
        .args(["--data-dir"])
        .arg(&data)
        .args(["--defectdojo-url", &dojo.base])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--defectdojo-token-file"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    let server = common::start(
        &data,
        &[
            "--defectdojo-url",
            &dojo.base,
            "--defectdojo-token-file",
            &token_path,
        ],
        &[],
    );
    let admin = token(&data, "admin", "admin");
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let alice = client
            .get(format!("{}/v1/users/alice", server.base))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        if alice.status() == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the sync on start did not bring alice: {}",
            server.output()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let asked: serde_json::Value = client
        .post(format!("{}/v1/defectdojo/sync", server.base))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    assert_eq!(asked["users"]["unchanged"], 4, "{asked}");
    assert!(
        !server.output().contains("dd-key-77"),
        "{}",
        server.output()
    );
}

/// Reads `stream` until a whole server-sent event with `data:` arrives; answers its data.
async fn next_event(stream: &mut reqwest::Response, buffer: &mut String) -> String {
    loop {
        if let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            if let Some(data) = block.lines().find_map(|l| l.strip_prefix("data:")) {
                return data.trim().to_owned();
            }
            continue;
        }
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.chunk())
            .await
            .unwrap_or_else(|_| panic!("no event in 10 s; so far: {buffer:?}"))
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("the stream ended; so far: {buffer:?}"));
        buffer.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test]
async fn the_bell_s_stream_tells_a_new_alert_at_once_and_ends_when_the_server_stops() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut server = start(dir.path());
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let service = token(dir.path(), "platform", "service");
    let put = client
        .put(format!("{}/v1/users/alice", server.base))
        .bearer_auth(&service)
        .json(&serde_json::json!({"email": "alice@example.com"}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(put.status().is_success(), "{}", put.status());
    let url = format!("{}/v1/users/alice/alerts/stream", server.base);
    let bob = token(dir.path(), "bob", "user");
    let refused = client.get(&url).bearer_auth(&bob).send().await;
    assert_eq!(refused.map(|r| r.status().as_u16()).ok(), Some(403));

    let alice = token(dir.path(), "alice", "user");
    let mut stream = client
        .get(&url)
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stream.status(), 200);
    assert_eq!(
        stream
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    let mut buffer = String::new();
    assert_eq!(
        next_event(&mut stream, &mut buffer).await,
        r#"{"unread":0,"total":0}"#
    );
    let posted = client
        .post(format!("{}/v1/events", server.base))
        .bearer_auth(&service)
        .json(&serde_json::json!({"type": "user_mentioned", "title": "Look", "recipients": ["alice"]}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(posted.status(), 202);
    assert_eq!(
        next_event(&mut stream, &mut buffer).await,
        r#"{"unread":1,"total":1}"#
    );

    // SIGTERM: the open stream ends and the server exits, not held up by it.
    let pid = server.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status();
    assert!(killed.is_ok_and(|s| s.success()));
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the stream ended on shutdown");
    let started = std::time::Instant::now();
    while server.child.try_wait().ok().flatten().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the server exits: {}",
            server.output()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_bell_s_stream_ends_when_its_token_expires_and_an_expired_token_opens_none() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let server = start(dir.path());
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let service = token(dir.path(), "platform", "service");
    let put = client
        .put(format!("{}/v1/users/alice", server.base))
        .bearer_auth(&service)
        .json(&serde_json::json!({"email": "alice@example.com"}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(put.status().is_success(), "{}", put.status());
    let output = common::command(&[])
        .args(["token", "--sub", "alice", "--role", "user", "--ttl", "2"])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(output.status.success());
    let short = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let url = format!("{}/v1/users/alice/alerts/stream", server.base);
    let opened = std::time::Instant::now();
    let mut stream = client
        .get(&url)
        .bearer_auth(&short)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stream.status(), 200);
    let mut buffer = String::new();
    assert_eq!(
        next_event(&mut stream, &mut buffer).await,
        r#"{"unread":0,"total":0}"#
    );
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the stream ended when the token expired");
    let lasted = opened.elapsed();
    assert!(
        lasted >= Duration::from_millis(500) && lasted < Duration::from_secs(5),
        "the stream lasted {lasted:?} for a token of 2 s"
    );
    // Past its `exp` (inside the 30 s other requests allow), the token opens no stream.
    let again = client
        .get(&url)
        .bearer_auth(&short)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.status(), 401);
    let body: serde_json::Value = again.json().await.unwrap_or_default();
    assert_eq!(
        body["error"]["message"], "invalid token: the token has expired",
        "{body}"
    );
}

/// Runs a `herald-local` subcommand on `dir`; its stdout, or its stderr as the panic.
fn run_cli(dir: &Path, args: &[&str]) -> String {
    let output = common::command(&[])
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        output.status.success(),
        "herald-local {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn an_operator_lists_dead_deliveries_and_replays_them_through_the_running_server() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // Slack is unreachable (a closed loopback port) and one attempt is all there is.
    let server = common::start(
        dir.path(),
        &[],
        &[
            ("HERALD_MAX_ATTEMPTS", "1"),
            ("HERALD_RETRY_BASE_SECONDS", "0.05"),
        ],
    );
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let admin = token(dir.path(), "root", "admin");
    for (path, body) in [
        (
            "/v1/system/settings",
            serde_json::json!({"enable_slack_notifications": true, "slack_token": "xoxb-1", "slack_channel": "#appsec"}),
        ),
        (
            "/v1/notifications/system",
            serde_json::json!({"events": {"scan_added": ["slack"]}}),
        ),
    ] {
        let r = client
            .put(format!("{}{path}", server.base))
            .bearer_auth(&admin)
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(r.status().is_success(), "{path}: {}", r.status());
    }
    let posted = client
        .post(format!("{}/v1/events", server.base))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"id": "ops-1", "type": "scan_added", "title": "Scan", "no_users": true}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(posted.status(), 202);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let listed = loop {
        let listed = run_cli(dir.path(), &["deliveries", "--status", "dead"]);
        if listed.contains("1 deliveries") {
            break listed;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no dead delivery: {listed}\n{}",
            server.output()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        listed.contains("ops-1") && listed.contains("slack:channel:#appsec"),
        "{listed}"
    );
    let none = run_cli(
        dir.path(),
        &["deliveries", "--status", "dead", "--channel", "mail"],
    );
    assert!(none.contains("0 deliveries"), "{none}");
    let replayed = run_cli(dir.path(), &["replay", "--dead", "--channel", "slack"]);
    assert!(
        replayed.contains("replayed 1 dead deliveries"),
        "{replayed}"
    );
    // Tried once more (Slack is still unreachable), so dead again, and replayable again.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let event: serde_json::Value = client
            .get(format!("{}/v1/events/ops-1", server.base))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .json()
            .await
            .unwrap_or_default();
        let delivery = &event["deliveries"][0];
        if delivery["status"] == "dead" && delivery["attempts"] == 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{event}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
