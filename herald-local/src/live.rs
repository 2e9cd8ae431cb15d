//! The bell, live: `GET /v1/users/{username}/alerts/stream` (self, admin) answers server-sent
//! events, a `count` event (`{"unread", "total"}`) at once and again whenever the count
//! changes, so the page shows a new alert without reloading. Only `herald-local` serves it:
//! API Gateway's HTTP API buffers a Lambda's answer whole, so on AWS the route does not exist
//! and the page reads the count every 30 seconds instead.
//!
//! The count is read from the store every [`POLL`] per open page (the embedded store's count:
//! its alert rows' index and any recipients' alerts still being merged in), which catches
//! every writer (intake, the senders' failure alerts, the scheduled checks, another
//! process) without any of them knowing about the stream. Streams end when the server shuts
//! down ([`Streams::end`]), so they never hold up a graceful shutdown. The token is checked
//! when the stream opens, and the stream ends when the token expires (a token already past
//! its `exp` opens none, though other requests allow 30 s of clock skew), so a page holds no
//! live count past its sign-in; the page closes its stream while its tab is hidden and opens
//! a new one, checked again, when it is shown.

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use herald_http::{ApiError, Caller};
use herald_shared::domain::Username;
use herald_shared::ports::{AlertCounts, HeraldStore};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often an open stream reads the count.
pub const POLL: Duration = Duration::from_secs(1);

/// Ends every open stream at once (the server is shutting down).
#[derive(Debug, Clone)]
pub struct Streams {
    end: Arc<watch::Sender<bool>>,
}

impl Default for Streams {
    fn default() -> Self {
        Self {
            end: Arc::new(watch::channel(false).0),
        }
    }
}

impl Streams {
    /// Ends the open streams and every one opened from now on.
    pub fn end(&self) {
        self.end.send_replace(true);
    }

    fn ended(&self) -> watch::Receiver<bool> {
        self.end.subscribe()
    }
}

/// The live routes, over the settings API's state.
pub fn routes(streams: Streams) -> axum::Router<settings_api::AppState> {
    axum::Router::new().route(
        "/v1/users/{username}/alerts/stream",
        axum::routing::get(
            move |state: State<settings_api::AppState>, caller: Caller, path: Path<String>| {
                alert_stream(state, caller, path, streams.clone())
            },
        ),
    )
}

async fn alert_stream(
    State(state): State<settings_api::AppState>,
    caller: Caller,
    Path(username): Path<String>,
    streams: Streams,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    caller.require_self_or_admin(&username)?;
    let user = Username::parse("username", &username).map_err(ApiError::BadRequest)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let expires = match caller.expires_at {
        Some(exp) if exp <= now => {
            return Err(ApiError::Unauthorized(
                "invalid token: the token has expired".into(),
            ));
        }
        Some(exp) => Some(tokio::time::Instant::now() + Duration::from_secs(exp - now)),
        None => None,
    };
    // The first count is read now, so a store that fails answers an error, not a stream.
    let first = state.store.alert_counts(&user).await?;
    let watch = Watch {
        store: state.store.clone(),
        user,
        last: None,
        pending: Some(first),
        ended: streams.ended(),
        expires,
    };
    Ok(Sse::new(stream::unfold(watch, Watch::next)).keep_alive(KeepAlive::default()))
}

/// One open stream's state.
struct Watch {
    store: Arc<dyn HeraldStore>,
    user: Username,
    last: Option<AlertCounts>,
    pending: Option<AlertCounts>,
    ended: watch::Receiver<bool>,
    /// When the caller's token expires: the stream ends then.
    expires: Option<tokio::time::Instant>,
}

/// Waits until `deadline`; forever when there is none.
async fn until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

impl Watch {
    /// The next `count` event: when the count differs from the last one sent; `None` (the
    /// stream ends) when the server shuts down or the caller's token expires.
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        loop {
            if *self.ended.borrow()
                || self
                    .expires
                    .is_some_and(|at| tokio::time::Instant::now() >= at)
            {
                return None;
            }
            if let Some(counts) = self.pending.take().filter(|c| Some(*c) != self.last) {
                self.last = Some(counts);
                let event = Event::default()
                    .event("count")
                    .json_data(counts)
                    .unwrap_or_else(|_| Event::default().event("count"));
                return Some((Ok(event), self));
            }
            tokio::select! {
                () = tokio::time::sleep(POLL) => {}
                _ = self.ended.changed() => return None,
                () = until(self.expires) => return None,
            }
            match self.store.alert_counts(&self.user).await {
                Ok(counts) => self.pending = Some(counts),
                // Tried again at the next tick; the page keeps the last count meanwhile.
                Err(e) => tracing::warn!(error = %e, "reading the alert count for a live bell"),
            }
        }
    }
}
