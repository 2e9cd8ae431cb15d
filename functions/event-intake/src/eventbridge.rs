//! Events from EventBridge: `detail-type` `herald.event`, the event as `detail`.

use crate::state::{IntakeState, new_event_id};
use herald_shared::domain::Event;
use herald_shared::intake::{IntakeAnswer, accept_event};
use serde_json::Value;

/// The `detail-type` Herald accepts.
pub const DETAIL_TYPE: &str = "herald.event";

/// Why an EventBridge event was not accepted. The invocation fails, so Lambda retries it and
/// then hands it to the rule's dead-letter queue: nothing is dropped silently.
#[derive(Debug, thiserror::Error)]
pub enum EventBridgeError {
    /// Not a `herald.event`.
    #[error("unexpected detail-type {0:?}; expected \"herald.event\"")]
    DetailType(String),
    /// The detail is not a valid event.
    #[error("invalid event: {0}")]
    Invalid(String),
    /// Intake failed (store or queue).
    #[error("intake failed: {0}")]
    Intake(String),
}

/// Whether a Lambda payload is an EventBridge event (rather than an HTTP request).
pub fn is_eventbridge(payload: &Value) -> bool {
    payload.get("detail-type").is_some() && payload.get("detail").is_some()
}

/// Accepts one EventBridge event.
pub async fn handle(
    state: &IntakeState,
    payload: &Value,
) -> Result<IntakeAnswer, EventBridgeError> {
    let detail_type = payload
        .get("detail-type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if detail_type != DETAIL_TYPE {
        return Err(EventBridgeError::DetailType(detail_type.to_owned()));
    }
    let detail = payload.get("detail").cloned().unwrap_or(Value::Null);
    let event = Event::from_request(&detail, new_event_id)
        .map_err(|e| EventBridgeError::Invalid(e.to_string()))?;
    accept_event(
        state.store.as_ref(),
        state.queue.as_ref(),
        event,
        state.clock.now_ms(),
    )
    .await
    .map_err(|e| EventBridgeError::Intake(e.to_string()))
}
