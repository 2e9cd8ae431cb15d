//! The records the scheduled checks read, kept by the platform like the rest of the directory
//! (service or admin): `PUT, GET, DELETE /v1/engagements/{id}`, `/v1/findings/{id}` and
//! `/v1/risk-acceptances/{id}`. Dates are `YYYY-MM-DD`; a bad date, status or severity is 422
//! naming the field; a record of an unknown product is 404 naming the product. `PUT` answers
//! 201 when it created the record, 200 when it replaced it.

use super::{deleted, written};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use herald_http::auth::Caller;
use herald_http::error::{ApiError, ErrorBody};
use herald_http::extract::{JsonBody, path_id};
use herald_shared::domain::{Engagement, Finding, RiskAcceptance};
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The engagement, finding and risk acceptance routes, merged into the settings API.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_engagement, put_engagement, delete_engagement))
        .routes(routes!(get_finding, put_finding, delete_finding))
        .routes(routes!(
            get_risk_acceptance,
            put_risk_acceptance,
            delete_risk_acceptance
        ))
}

// ---------------------------------------------------------------------------------------------
// Engagements

/// An engagement.
#[utoipa::path(get, path = "/v1/engagements/{id}", tag = "directory", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn get_engagement(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require_service_or_admin()?;
    let id = path_id("id", &id)?;
    state
        .store
        .engagement(&id)
        .await?
        .map(|e| Json(e.to_json()))
        .ok_or_else(|| ApiError::NotFound(format!("engagement {id} not found")))
}

/// Creates (201) or replaces (200) an engagement. `status` is one of DefectDojo's ("Not
/// Started", "Scheduled", "In Progress", "On Hold", "Blocked", "Waiting for Resource",
/// "Completed", "Cancelled"; `in_progress` works too), default "Not Started"; the lead hears of
/// upcoming, stale and auto-closed engagements.
#[utoipa::path(put, path = "/v1/engagements/{id}", tag = "directory", security(("bearer" = [])),
    params(("id" = String, Path)),
    request_body(content = Object, example = json!({"product_id": 7, "name": "Q4 pentest", "lead": "alice",
        "target_start": "2026-12-01", "target_end": "2026-12-12", "status": "Not Started"})),
    responses((status = 200, body = Object), (status = 201, body = Object), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn put_engagement(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonBody,
) -> Result<Response, ApiError> {
    caller.require_service_or_admin()?;
    let id = path_id("id", &id)?;
    let engagement = Engagement::from_request(&id, &body.parse()?)?;
    let created = state.store.put_engagement(&engagement).await?;
    Ok(written(created, engagement.to_json()))
}

/// Removes an engagement.
#[utoipa::path(delete, path = "/v1/engagements/{id}", tag = "directory", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 204, description = "Removed"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn delete_engagement(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_service_or_admin()?;
    let id = path_id("id", &id)?;
    deleted(state.store.delete_engagement(&id).await?, || {
        format!("engagement {id} not found")
    })
}

// ---------------------------------------------------------------------------------------------
// Findings

/// A finding.
#[utoipa::path(get, path = "/v1/findings/{id}", tag = "directory", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn get_finding(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require_service_or_admin()?;
    let id = path_id("id", &id)?;
    state
        .store
        .finding(&id)
        .await?
        .map(|f| Json(f.to_json()))
        .ok_or_else(|| ApiError::NotFound(format!("finding {id} not found")))
}

/// Creates (201) or replaces (200) a finding. `severity` is Critical, High, Medium, Low or
/// Info; `active` defaults to true, `verified` to false; `sla_expiration_date` may be null.
/// The SLA check reads active findings that are not Info.
#[utoipa::path(put, path = "/v1/findings/{id}", tag = "directory", security(("bearer" = [])),
    params(("id" = String, Path)),
    request_body(content = Object, example = json!({"product_id": 7, "title": "SQL injection in /search",
        "severity": "High", "active": true, "verified": true, "sla_expiration_date": "2026-12-31"})),
    responses((status = 200, body = Object), (status = 201, body = Object), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn put_finding(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonBody,
) -> Result<Response, ApiError> {
    caller.require_service_or_admin()?;
    let id = path_id("id", &id)?;
    let finding = Finding::from_request(&id, &body.parse()?)?;
    let created = state.store.put_finding(&finding).await?;
    Ok(written(created, finding.to_json()))
}

/// Removes a finding.
#[utoipa::path(delete, path = "/v1/findings/{id}", tag = "directory", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 204, description = "Removed"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn delete_finding(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_service_or_admin()?;
    let id = path_id("id", &id)?;
    deleted(state.store.delete_finding(&id).await?, || {
        format!("finding {id} not found")
    })
}

// ---------------------------------------------------------------------------------------------
// Risk acceptances

/// A risk acceptance.
#[utoipa::path(get, path = "/v1/risk-acceptances/{id}", tag = "directory", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn get_risk_acceptance(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require_service_or_admin()?;
    let id = path_id("id", &id)?;
    state
        .store
        .risk_acceptance(&id)
        .await?
        .map(|ra| Json(ra.to_json()))
        .ok_or_else(|| ApiError::NotFound(format!("risk acceptance {id} not found")))
}

/// Creates (201) or replaces (200) a risk acceptance; `engagement_id` and `expiration_date`
/// may be null, `accepted_findings` lists finding ids. The product's audience hears of it
/// `risk_acceptance_notify_before_expiration` days before it expires, and when it does.
#[utoipa::path(put, path = "/v1/risk-acceptances/{id}", tag = "directory", security(("bearer" = [])),
    params(("id" = String, Path)),
    request_body(content = Object, example = json!({"product_id": 7, "engagement_id": 12, "name": "Legacy TLS",
        "expiration_date": "2027-01-10", "accepted_findings": [101, 102]})),
    responses((status = 200, body = Object), (status = 201, body = Object), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn put_risk_acceptance(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonBody,
) -> Result<Response, ApiError> {
    caller.require_service_or_admin()?;
    let id = path_id("id", &id)?;
    let acceptance = RiskAcceptance::from_request(&id, &body.parse()?)?;
    let created = state.store.put_risk_acceptance(&acceptance).await?;
    Ok(written(created, acceptance.to_json()))
}

/// Removes a risk acceptance.
#[utoipa::path(delete, path = "/v1/risk-acceptances/{id}", tag = "directory", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 204, description = "Removed"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn delete_risk_acceptance(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_service_or_admin()?;
    let id = path_id("id", &id)?;
    deleted(state.store.delete_risk_acceptance(&id).await?, || {
        format!("risk acceptance {id} not found")
    })
}
