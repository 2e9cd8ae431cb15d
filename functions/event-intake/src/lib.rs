//! Herald's event intake (`event-intake`): `POST /v1/events`, `GET /v1/events/{event_id}`
//! and DefectDojo's own webhooks (`POST /v1/defectdojo/webhook`, [`defectdojo`]) through
//! API Gateway, and `herald.event` events from EventBridge, all into one use case
//! ([`herald_shared::intake::accept_event`]); and `POST /v1/scheduler/run` ([`checks`]), whose
//! reminders go through the same intake.

pub mod checks;
pub mod defectdojo;
pub mod deliveries;
pub mod eventbridge;
pub mod router;
pub mod state;
mod views;

pub use router::{api, openapi, router};
pub use state::IntakeState;
