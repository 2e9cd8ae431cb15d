//! `POST /v1/scheduler/run` (administrators): runs the scheduled checks as of the `time` in
//! the body, the same work an EventBridge schedule triggers. It lives with intake because the
//! checks' reminders go through intake's queues.

use crate::state::IntakeState;
use axum::Json;
use axum::extract::State;
use herald_http::auth::Caller;
use herald_http::error::{ApiError, ErrorBody};
use herald_http::extract::JsonBody;
use herald_shared::domain::FieldError;
use herald_shared::domain::validation::{expect_object, reject_unknown_fields};
use herald_shared::scheduler::{CheckReport, SchedulerError, parse_checks, parse_time, run_checks};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The route that runs the scheduled checks, merged into the intake API.
pub fn routes() -> OpenApiRouter<IntakeState> {
    OpenApiRouter::new().routes(routes!(run_scheduler))
}

/// Runs the scheduled checks as of `time` (RFC 3339; never the server's clock): upcoming,
/// stale and auto-closed engagements, risk acceptance expiry, SLA notices, alert clean-up and
/// webhook recovery, or only the `checks` named (`engagements`, `risk_acceptances`, `sla`,
/// `alert_cleanup`, `webhook_recovery`). Each reminder is sent once however often this runs;
/// the answer counts what this run did.
#[utoipa::path(post, path = "/v1/scheduler/run", tag = "scheduler", security(("bearer" = [])),
    request_body(content = Object, example = json!({"time": "2026-11-27T07:30:00Z", "checks": ["engagements", "sla"]})),
    responses((status = 200, body = CheckReport), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn run_scheduler(
    State(state): State<IntakeState>,
    caller: Caller,
    body: JsonBody,
) -> Result<Json<CheckReport>, ApiError> {
    caller.require_admin()?;
    let body = body.parse()?;
    let object = expect_object(&body, "")?;
    reject_unknown_fields(object, "", &["time", "checks"])?;
    let time = object
        .get("time")
        .ok_or_else(|| FieldError::new("time", "is required"))?;
    let now_ms = parse_time("time", time)?;
    let checks = parse_checks("checks", object.get("checks"))?;
    let report = run_checks(state.store.as_ref(), state.queue.as_ref(), now_ms, &checks)
        .await
        .map_err(|e| match e {
            SchedulerError::Store(e) => ApiError::from(e),
            other => ApiError::Internal(other.to_string()),
        })?;
    Ok(Json(report))
}
