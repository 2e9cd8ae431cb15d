//! The meta routes: `GET /health` and the event catalogue, `GET /v1/event-types`.

use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use herald_http::auth::Caller;
use herald_http::error::{ApiError, ErrorBody};
use herald_shared::domain::Channel;
use herald_shared::domain::catalogue::{EVENT_TYPES, channel_allowed_at_scope};
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
    /// When the event is raised, in one sentence.
    help: &'static str,
    default_channels: Vec<Channel>,
}

/// One channel, and whether the administrator switched it on (the bell always is).
#[derive(Debug, Serialize, ToSchema)]
struct ChannelInfo {
    name: Channel,
    label: &'static str,
    enabled: bool,
    /// Whether personal, per-product and template settings may choose it (Teams: system only).
    personal: bool,
}

/// The event catalogue.
#[derive(Debug, Serialize, ToSchema)]
struct EventTypeList {
    items: Vec<EventTypeInfo>,
    /// The event type whose settings govern any event name not in `items`.
    fallback: &'static str,
    /// Every channel, in Herald's order.
    channels: Vec<ChannelInfo>,
}

/// The event types with their labels, what each is for and their default channels (any other
/// name is governed by `other`), and the channels with the system switch of each.
#[utoipa::path(get, path = "/v1/event-types", tag = "meta", security(("bearer" = [])),
    responses((status = 200, body = EventTypeList), (status = 401, body = ErrorBody)))]
async fn list_event_types(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Json<EventTypeList>, ApiError> {
    let system = state.store.system_settings().await?;
    let items = EVENT_TYPES
        .into_iter()
        .map(|e| EventTypeInfo {
            name: e.name(),
            label: e.label(),
            help: e.help(),
            default_channels: e.default_channels().iter().collect(),
        })
        .collect();
    let channels = Channel::ALL
        .into_iter()
        .map(|c| ChannelInfo {
            name: c,
            label: c.label(),
            enabled: system.channel_enabled(c),
            personal: channel_allowed_at_scope(c, false),
        })
        .collect();
    Ok(Json(EventTypeList {
        items,
        fallback: "other",
        channels,
    }))
}
