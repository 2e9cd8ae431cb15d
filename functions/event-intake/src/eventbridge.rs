//! Events from EventBridge: `detail-type` `herald.event`, the event as `detail`.
//!
//! EventBridge delivers at least once and the rule retries a failed invocation (up to 185
//! times over 24 hours by default), always with the same envelope `id`. An event whose
//! `detail` has no `id` takes its id from the envelope's (`eventbridge:{id}`), so a retried
//! invocation is an idempotent replay, never a second event.

use crate::state::{IntakeState, new_event_id};
use herald_shared::domain::{Event, EventId};
use herald_shared::intake::{IntakeAnswer, IntakeError, accept_event};
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

/// The id of an event that names none: derived from the envelope's `id`, the same on every
/// retry of one EventBridge event (a fresh one only for an envelope without an id).
fn envelope_event_id(payload: &Value) -> String {
    const PREFIX: &str = "eventbridge:";
    match payload.get("id").and_then(Value::as_str) {
        Some(id) if EventId::parse("id", &format!("{PREFIX}{id}")).is_ok() => {
            format!("{PREFIX}{id}")
        }
        // Not an id Herald can keep as it is: its digest, as stable as the id itself.
        Some(id) if !id.is_empty() => {
            use sha2::Digest;
            let digest = sha2::Sha256::digest(id.as_bytes());
            let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
            format!("{PREFIX}{hex}")
        }
        _ => new_event_id(),
    }
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
    let event = Event::from_request(&detail, || envelope_event_id(payload))
        .map_err(|e| EventBridgeError::Invalid(e.to_string()))?;
    match accept_event(
        state.store.as_ref(),
        state.queue.as_ref(),
        event,
        state.clock.now_ms(),
    )
    .await
    {
        Ok(answer) => Ok(answer),
        // Retrying cannot help: the id is taken by another event. Logged and answered as the
        // first event (the invocation succeeds, so EventBridge stops retrying it).
        Err(IntakeError::IdempotencyKeyReused(id)) => {
            tracing::warn!(event_id = %id, "an EventBridge event reused the id of a different event; it was not accepted");
            let first = state
                .store
                .event(&id)
                .await
                .map_err(|e| EventBridgeError::Intake(e.to_string()))?;
            Ok(IntakeAnswer {
                deliveries: first.as_ref().map_or(0, |r| r.delivery_count),
                alerts: first.as_ref().map_or(0, |r| r.alert_count),
                event_id: id,
                replayed: true,
            })
        }
        Err(e) => Err(EventBridgeError::Intake(e.to_string())),
    }
}
