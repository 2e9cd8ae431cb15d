//! How the intake API shows deliveries (`GET /v1/events/{event_id}`, `GET /v1/deliveries`).

use herald_http::rfc3339;
use herald_shared::domain::Delivery;
use serde::Serialize;
use utoipa::ToSchema;

/// A delivery as `GET /v1/events/{event_id}` shows it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DeliveryView {
    id: String,
    channel: String,
    destination: String,
    status: String,
    attempts: u32,
    last_error: Option<String>,
    updated_at: String,
}

impl From<&Delivery> for DeliveryView {
    fn from(d: &Delivery) -> Self {
        Self {
            id: d.id.to_string(),
            channel: d.channel.to_string(),
            destination: d.destination.key(),
            status: d.status.name().to_owned(),
            attempts: d.attempts,
            last_error: d.last_error.clone(),
            updated_at: rfc3339(d.updated_at),
        }
    }
}
