//! The intake HTTP API: one axum router, hosted by Lambda, by `herald-local` and by tests.

use crate::state::{IntakeState, intake_error, new_event_id};
use crate::views::DeliveryView;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use herald_http::auth::Caller;
use herald_http::error::{ApiError, ErrorBody};
use herald_http::extract::JsonBody;
use herald_http::rfc3339;
use herald_shared::domain::{Event, EventId};
use herald_shared::intake::{IntakeAnswer, accept_event};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(OpenApi)]
#[openapi(components(schemas(ErrorBody)))]
struct IntakeDoc;

/// Every intake route with its OpenAPI description.
pub fn api() -> OpenApiRouter<IntakeState> {
    OpenApiRouter::with_openapi(IntakeDoc::openapi())
        .routes(routes!(post_event))
        .routes(routes!(get_event))
        .routes(routes!(crate::defectdojo::post_defectdojo_webhook))
        .merge(crate::checks::routes())
        .merge(crate::deliveries::routes())
}

/// The intake routes' OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    herald_http::document(api().split_for_parts().1)
}

/// The intake API as Lambda serves it.
pub fn router(state: IntakeState) -> axum::Router {
    let (routes, doc) = api().split_for_parts();
    herald_http::app(routes.with_state(state), doc)
}

/// Accepts an event: who hears about it is decided, alerts are written and deliveries queued
/// before the answer. Posting the same `id` again answers as the first time and sends nothing
/// twice (`Idempotent-Replayed: true`).
#[utoipa::path(post, path = "/v1/events", tag = "events", security(("bearer" = [])),
    request_body(content = Object, description = "The event", example = json!({
        "id": "dd-import-4711", "type": "scan_added", "title": "Created/Updated 3 findings for Shop: Q3: ZAP",
        "product_id": 7, "engagement": {"id": 12, "name": "Q3"}, "test": {"id": 99, "title": "ZAP"},
        "findings": {"new": [{"id": 1, "title": "XSS", "severity": "High"}]}
    })),
    responses((status = 202, body = IntakeAnswer), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn post_event(
    State(state): State<IntakeState>,
    caller: Caller,
    body: JsonBody,
) -> Result<Response, ApiError> {
    caller.require_service_or_admin()?;
    let body = body.parse()?;
    let event = Event::from_request(&body, new_event_id)?;
    let answer = accept_event(
        state.store.as_ref(),
        state.queue.as_ref(),
        event,
        state.clock.now_ms(),
    )
    .await
    .map_err(intake_error)?;
    let replayed = answer.replayed;
    let mut response = (StatusCode::ACCEPTED, Json(answer)).into_response();
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// An accepted event and where each delivery stands.
#[derive(Debug, Serialize, ToSchema)]
struct EventView {
    #[schema(value_type = Object)]
    event: serde_json::Value,
    accepted_at: String,
    alerts: u32,
    deliveries: Vec<DeliveryView>,
}

/// The event and each delivery: channel, destination, status, attempts, last error.
#[utoipa::path(get, path = "/v1/events/{event_id}", tag = "events", security(("bearer" = [])),
    params(("event_id" = String, Path)),
    responses((status = 200, body = EventView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_event(
    State(state): State<IntakeState>,
    caller: Caller,
    Path(event_id): Path<String>,
) -> Result<Json<EventView>, ApiError> {
    caller.require_service_or_admin()?;
    let id = EventId::parse("event_id", &event_id).map_err(ApiError::BadRequest)?;
    let record = state
        .store
        .event(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("event {id} not found")))?;
    let deliveries = state.store.deliveries(&id).await?;
    let event =
        serde_json::to_value(&record.event).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(EventView {
        event,
        accepted_at: rfc3339(record.accepted_at),
        alerts: record.alert_count,
        deliveries: deliveries.iter().map(DeliveryView::from).collect(),
    }))
}
