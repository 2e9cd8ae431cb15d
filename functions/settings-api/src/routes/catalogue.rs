//! The meta routes: `GET /health` and the event catalogue, `GET /v1/event-types`.

use crate::state::AppState;
use axum::Json;
use herald_http::auth::Caller;
use herald_http::error::ErrorBody;
use herald_shared::domain::Channel;
use herald_shared::domain::catalogue::EVENT_TYPES;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// This resource's routes.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(list_event_types))
}

// ---------------------------------------------------------------------------------------------
// Health and catalogue

/// `{"status": "ok"}`, for load balancers and humans.
#[utoipa::path(get, path = "/health", tag = "meta",
    responses((status = 200, description = "Herald is up", body = Object, example = json!({"status": "ok"}))))]
async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// One event type of the catalogue.
#[derive(Debug, Serialize, ToSchema)]
struct EventTypeInfo {
    name: &'static str,
    label: &'static str,
    default_channels: Vec<Channel>,
}

/// The event catalogue.
#[derive(Debug, Serialize, ToSchema)]
struct EventTypeList {
    items: Vec<EventTypeInfo>,
    /// The event type whose settings govern any event name not in `items`.
    fallback: &'static str,
}

/// The event types with their labels and default channels; any other name is governed by `other`.
#[utoipa::path(get, path = "/v1/event-types", tag = "meta", security(("bearer" = [])),
    responses((status = 200, body = EventTypeList), (status = 401, body = ErrorBody)))]
async fn list_event_types(_caller: Caller) -> Json<EventTypeList> {
    let items = EVENT_TYPES
        .into_iter()
        .map(|e| EventTypeInfo {
            name: e.name(),
            label: e.label(),
            default_channels: e.default_channels().iter().collect(),
        })
        .collect();
    Json(EventTypeList {
        items,
        fallback: "other",
    })
}
