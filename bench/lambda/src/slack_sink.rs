//! A stand-in for Slack's Web API on loopback, answering as slowly as Slack is assumed to.
//!
//! `POST /api/chat.postMessage` with the expected bearer token and a JSON body naming a
//! `channel` answers `{"ok":true,"channel":"C1","ts":"1.2"}` after the configured delay (a
//! tokio sleep, so concurrent posts overlap as they would against Slack) and is counted. Any
//! other call is answered `{"ok":false,"error":...}` and counted as unexpected, so a function
//! that looks users up, or sends a wrong token, is caught by the counts.

use crate::BenchResult;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::task::JoinHandle;

#[derive(Debug, Default)]
struct Counts {
    posts: AtomicU64,
    unexpected: AtomicU64,
}

struct SinkState {
    delay: Duration,
    authorization: String,
    counts: Counts,
}

/// A running Slack stand-in. Dropping it stops the server.
pub struct SlackSink {
    address: SocketAddr,
    state: Arc<SinkState>,
    server: JoinHandle<()>,
}

impl std::fmt::Debug for SlackSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackSink")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Drop for SlackSink {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl SlackSink {
    /// Serves on a free port of 127.0.0.1; posts must carry `Bearer {token}`.
    pub async fn start(delay: Duration, token: &str) -> BenchResult<SlackSink> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let state = Arc::new(SinkState {
            delay,
            authorization: format!("Bearer {token}"),
            counts: Counts::default(),
        });
        let app = Router::new()
            .route("/api/chat.postMessage", post(post_message))
            .fallback(unexpected)
            .with_state(state.clone());
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("[bench] the Slack stand-in stopped: {e}");
            }
        });
        Ok(SlackSink {
            address,
            state,
            server,
        })
    }

    /// The value for `SLACK_API_URL`.
    pub fn api_url(&self) -> String {
        format!("http://{}/api", self.address)
    }

    /// Well-formed, authorized `chat.postMessage` calls answered so far.
    pub fn posts(&self) -> u64 {
        self.state.counts.posts.load(Ordering::SeqCst)
    }

    /// Any other calls so far.
    pub fn unexpected(&self) -> u64 {
        self.state.counts.unexpected.load(Ordering::SeqCst)
    }
}

fn slack_answer(answer: Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        answer.to_string(),
    )
        .into_response()
}

async fn post_message(
    State(state): State<Arc<SinkState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let authorized = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(state.authorization.as_str());
    if !authorized {
        state.counts.unexpected.fetch_add(1, Ordering::SeqCst);
        return slack_answer(json!({"ok": false, "error": "invalid_auth"}));
    }
    let names_a_channel = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|b| b.get("channel").and_then(Value::as_str).map(str::to_owned))
        .is_some_and(|c| !c.is_empty());
    if !names_a_channel {
        state.counts.unexpected.fetch_add(1, Ordering::SeqCst);
        return slack_answer(json!({"ok": false, "error": "channel_not_found"}));
    }
    tokio::time::sleep(state.delay).await;
    state.counts.posts.fetch_add(1, Ordering::SeqCst);
    slack_answer(json!({"ok": true, "channel": "C1", "ts": "1.2"}))
}

async fn unexpected(State(state): State<Arc<SinkState>>) -> Response {
    state.counts.unexpected.fetch_add(1, Ordering::SeqCst);
    slack_answer(json!({"ok": false, "error": "unknown_method"}))
}
