//! An emulated Lambda Runtime API on loopback: the part of Lambda a function binary talks to.
//!
//! A function built on `lambda_runtime` asks `GET /2018-06-01/runtime/invocation/next` for
//! work, and answers on `POST .../invocation/{id}/response` (or `.../{id}/error`); a function
//! that fails to start posts `/runtime/init/error`. This server hands out the payloads queued
//! with [`RuntimeApi::invoke`], one per `next`, and holds a `next` open (long polling, as
//! Lambda does) while there is nothing to hand out. Every request is reported, with the
//! instant it arrived, as a [`RuntimeEvent`], so a benchmark can time the function from the
//! outside without changing it.
//!
//! It knows nothing about any one function: the payload is whatever JSON the trigger would
//! send.

use crate::BenchResult;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;

/// What the function did, as seen by the Runtime API; timed events carry the instant the
/// request arrived.
#[derive(Debug)]
pub enum RuntimeEvent {
    /// The function asked for its next invocation (`GET .../invocation/next`).
    Polled { at: Instant },
    /// An invocation was handed out: its `next` is being answered.
    Handed { request_id: String, at: Instant },
    /// The function's answer to an invocation.
    Response {
        request_id: String,
        body: Bytes,
        at: Instant,
    },
    /// The function reported an invocation as failed.
    InvocationError {
        request_id: String,
        error_type: String,
        body: Bytes,
    },
    /// The function could not start (`/runtime/init/error`).
    InitError { error_type: String, body: Bytes },
    /// A request this emulation does not know (answered 404).
    Unexpected { method: String, path: String },
}

/// One queued invocation.
#[derive(Debug)]
struct Invocation {
    request_id: String,
    payload: Bytes,
}

/// What the handlers share.
struct ServerState {
    invocations: Mutex<mpsc::UnboundedReceiver<Invocation>>,
    events: mpsc::UnboundedSender<RuntimeEvent>,
    function_arn: String,
    timeout: Duration,
}

/// A running emulated Runtime API. Dropping it stops the server.
pub struct RuntimeApi {
    address: SocketAddr,
    invocations: mpsc::UnboundedSender<Invocation>,
    events: mpsc::UnboundedReceiver<RuntimeEvent>,
    server: JoinHandle<()>,
    label: String,
    next_request: u64,
}

impl std::fmt::Debug for RuntimeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeApi")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl RuntimeApi {
    /// Serves the Runtime API on a free port of 127.0.0.1 for the function `function_name`,
    /// whose invocations may take `timeout` (the `Lambda-Runtime-Deadline-Ms` handed out).
    pub async fn start(function_name: &str, timeout: Duration) -> BenchResult<RuntimeApi> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let (invocations_tx, invocations_rx) = mpsc::unbounded_channel();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let state = Arc::new(ServerState {
            invocations: Mutex::new(invocations_rx),
            events: events_tx,
            function_arn: format!("arn:aws:lambda:us-east-1:123456789012:function:{function_name}"),
            timeout,
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
            .route(
                "/2018-06-01/runtime/invocation/{request_id}/response",
                post(invocation_response),
            )
            .route(
                "/2018-06-01/runtime/invocation/{request_id}/error",
                post(invocation_error),
            )
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .fallback(unexpected)
            .with_state(state);
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("[bench] the Runtime API server stopped: {e}");
            }
        });
        Ok(RuntimeApi {
            address,
            invocations: invocations_tx,
            events: events_rx,
            server,
            label: format!("{}-{}", std::process::id(), unix_ms()),
            next_request: 0,
        })
    }

    /// Where the function finds it: the value of `AWS_LAMBDA_RUNTIME_API` (`127.0.0.1:PORT`).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Queues `payload` for the function's next `next`; returns the invocation's request id.
    pub fn invoke(&mut self, payload: &serde_json::Value) -> BenchResult<String> {
        self.next_request += 1;
        let request_id = format!("bench-{}-{:06}", self.label, self.next_request);
        let payload = Bytes::from(serde_json::to_vec(payload)?);
        self.invocations
            .send(Invocation {
                request_id: request_id.clone(),
                payload,
            })
            .map_err(|_| "the Runtime API server has stopped")?;
        Ok(request_id)
    }

    /// The next thing the function did, or `None` after `timeout`.
    pub async fn next_event(&mut self, timeout: Duration) -> Option<RuntimeEvent> {
        tokio::time::timeout(timeout, self.events.recv())
            .await
            .ok()
            .flatten()
    }
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

async fn next_invocation(State(state): State<Arc<ServerState>>) -> Response {
    let _ = state
        .events
        .send(RuntimeEvent::Polled { at: Instant::now() });
    // One poller at a time takes the queue; receiving is cancel-safe, so a poll that goes
    // away while waiting loses nothing.
    let invocation = {
        let mut invocations = state.invocations.lock().await;
        invocations.recv().await
    };
    let Some(invocation) = invocation else {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    };
    let deadline = unix_ms() + state.timeout.as_millis() as u64;
    let mut headers = HeaderMap::new();
    let values = [
        (
            "lambda-runtime-aws-request-id",
            invocation.request_id.clone(),
        ),
        ("lambda-runtime-deadline-ms", deadline.to_string()),
        (
            "lambda-runtime-invoked-function-arn",
            state.function_arn.clone(),
        ),
        (
            "lambda-runtime-trace-id",
            format!(
                "Root=1-{:08x}-{:024x};Parent={:016x};Sampled=0",
                deadline / 1000,
                deadline,
                deadline
            ),
        ),
    ];
    for (name, value) in values {
        match HeaderValue::from_str(&value) {
            Ok(value) => {
                headers.insert(name, value);
            }
            Err(_) => {
                return (StatusCode::INTERNAL_SERVER_ERROR, "bad header value").into_response();
            }
        }
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let _ = state.events.send(RuntimeEvent::Handed {
        request_id: invocation.request_id,
        at: Instant::now(),
    });
    (StatusCode::OK, headers, invocation.payload).into_response()
}

/// Lambda's answer to a posted response or error.
fn accepted() -> Response {
    (
        StatusCode::ACCEPTED,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"status":"OK"}"#,
    )
        .into_response()
}

fn error_type(headers: &HeaderMap) -> String {
    headers
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown")
        .to_owned()
}

async fn invocation_response(
    State(state): State<Arc<ServerState>>,
    Path(request_id): Path<String>,
    body: Bytes,
) -> Response {
    let at = Instant::now();
    let _ = state.events.send(RuntimeEvent::Response {
        request_id,
        body,
        at,
    });
    accepted()
}

async fn invocation_error(
    State(state): State<Arc<ServerState>>,
    Path(request_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let _ = state.events.send(RuntimeEvent::InvocationError {
        request_id,
        error_type: error_type(&headers),
        body,
    });
    accepted()
}

async fn init_error(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let _ = state.events.send(RuntimeEvent::InitError {
        error_type: error_type(&headers),
        body,
    });
    accepted()
}

async fn unexpected(
    State(state): State<Arc<ServerState>>,
    request: axum::extract::Request,
) -> Response {
    let _ = state.events.send(RuntimeEvent::Unexpected {
        method: request.method().to_string(),
        path: request.uri().path().to_owned(),
    });
    (
        StatusCode::NOT_FOUND,
        "not part of the emulated Runtime API",
    )
        .into_response()
}
