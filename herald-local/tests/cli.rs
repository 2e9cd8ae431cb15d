//! `herald-local` as a user runs it: start the binary on a fresh data directory, mint a token
//! with its `token` subcommand, use the API, stop it, start it again on the same directory.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_herald-local");

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `herald-local` on a free loopback port and waits for its "listening" line.
fn start(data_dir: &std::path::Path) -> Server {
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env_remove("HERALD_JWT_SECRET")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"));
    let stderr = child.stderr.take().unwrap_or_else(|| panic!("no stderr"));
    let mut lines = BufReader::new(stderr).lines();
    let base = loop {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(rest) = line.strip_prefix("herald-local listening on ") {
                    break rest
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned();
                }
            }
            other => panic!("herald-local stopped before listening: {other:?}"),
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Server { child, base }
}

fn token(data_dir: &std::path::Path, sub: &str, role: &str) -> String {
    let output = Command::new(BIN)
        .args(["token", "--sub", sub, "--role", role, "--data-dir"])
        .arg(data_dir)
        .env_remove("HERALD_JWT_SECRET")
        .output()
        .unwrap_or_else(|e| panic!("cannot run the token command: {e}"));
    assert!(
        output.status.success(),
        "token failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
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

/// `kill -9` right after a burst of accepted events, then a restart on the same data
/// directory: every accepted event is there with its deliveries, and every delivery is still
/// on its queue, waiting for its sender.
#[tokio::test]
async fn given_a_kill_9_after_accepted_events_then_a_restart_loses_no_delivery() {
    use herald::domain::Channel;
    use herald::ports::SystemClock;
    use herald_local::{LocalHerald, queue_config_from_env};

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let admin = token(dir.path(), "admin", "admin");
    let service = token(dir.path(), "defectdojo", "service");
    let server = start(dir.path());
    let put = |path: &str, body: serde_json::Value| {
        client
            .put(format!("{}{path}", server.base))
            .bearer_auth(&admin)
            .json(&body)
            .send()
    };
    let ok = |r: reqwest::Response| assert!(r.status().is_success(), "{}", r.status());
    ok(put(
        "/v1/system/settings",
        serde_json::json!({"enable_slack_notifications": true, "slack_channel": "#appsec"}),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}")));
    ok(put(
        "/v1/notifications/system",
        serde_json::json!({"events": {"other": ["slack"]}}),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}")));

    const EVENTS: usize = 200;
    let mut accepted = Vec::new();
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
        accepted.push(format!("crash-{i}"));
    }
    // Child::kill is SIGKILL: no shutdown, no flush.
    drop(server);

    let server = start(dir.path());
    for id in accepted.iter().step_by(37) {
        let r = client
            .get(format!("{}/v1/events/{id}", server.base))
            .bearer_auth(&service)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status(), 200, "{id}");
        let body: serde_json::Value = r.json().await.unwrap_or_default();
        assert_eq!(
            body["deliveries"][0]["destination"], "slack:channel:#appsec",
            "{id}"
        );
    }
    drop(server);

    let herald = LocalHerald::open(
        dir.path(),
        queue_config_from_env().unwrap_or_default(),
        Arc::new(SystemClock),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let depth = herald
        .queue
        .depth(Channel::Slack, herald.clock.now_ms())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        depth.visible, EVENTS as u64,
        "every accepted delivery is still queued"
    );
}
