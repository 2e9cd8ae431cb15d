//! `herald-local` as a user runs it: start the binary on a fresh data directory, mint a token
//! with its `token` subcommand, use the API, stop it, start it again on the same directory.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
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
