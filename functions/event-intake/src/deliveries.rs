//! Operators' view of deliveries (administrators): `GET /v1/deliveries?status=dead` lists the
//! retrying, failed or dead ones, `POST /v1/deliveries/replay` queues the dead ones again
//! (`herald-local deliveries` and `herald-local replay --dead` call them). They live with
//! intake because a replay goes through intake's queues.

use crate::state::IntakeState;
use crate::views::DeliveryView;
use axum::Json;
use axum::extract::{Query, State};
use herald_http::auth::Caller;
use herald_http::error::{ApiError, ErrorBody};
use herald_http::extract::{JsonBody, bad_query};
use herald_shared::domain::validation::{expect_object, reject_unknown_fields};
use herald_shared::domain::{Channel, DeliveryStatus, EventId, FieldError};
use herald_shared::ports::LISTED_STATUSES;
use herald_shared::replay::{
    ReplayError, ReplayFilter, ReplayReport, deliveries_matching, replay_dead,
};
use herald_shared::scheduler::parse_time;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The operators' delivery routes, merged into the intake API.
pub fn routes() -> OpenApiRouter<IntakeState> {
    OpenApiRouter::new()
        .routes(routes!(list_deliveries))
        .routes(routes!(replay_deliveries))
}

/// The most deliveries one list answers.
const MAX_LIMIT: usize = 1_000;

/// A delivery with its event.
#[derive(Debug, Serialize, ToSchema)]
struct ListedDelivery {
    event_id: String,
    #[serde(flatten)]
    delivery: DeliveryView,
}

/// Deliveries by status.
#[derive(Debug, Serialize, ToSchema)]
struct DeliveryList {
    items: Vec<ListedDelivery>,
}

/// The deliveries with `status` (`retrying`, `failed` or `dead`) last changed at or after
/// `since` (RFC 3339), oldest change first, at most `limit` (100 by default, 1,000 at most),
/// of one `channel` if named.
#[utoipa::path(get, path = "/v1/deliveries", tag = "events", security(("bearer" = [])),
    params(("status" = String, Query, description = "retrying, failed or dead"),
        ("since" = Option<String>, Query, description = "RFC 3339"),
        ("channel" = Option<String>, Query), ("limit" = Option<usize>, Query)),
    responses((status = 200, body = DeliveryList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
async fn list_deliveries(
    State(state): State<IntakeState>,
    caller: Caller,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<DeliveryList>, ApiError> {
    caller.require_admin()?;
    for key in query.keys() {
        if !["status", "since", "channel", "limit"].contains(&key.as_str()) {
            return Err(bad_query(key, "is not a parameter of this list"));
        }
    }
    let status = query
        .get("status")
        .and_then(|s| DeliveryStatus::from_name(s))
        .filter(|s| LISTED_STATUSES.contains(s))
        .ok_or_else(|| bad_query("status", "must be retrying, failed or dead"))?;
    let since = match query.get("since") {
        None => 0,
        Some(since) => {
            parse_time("since", &Value::String(since.clone())).map_err(ApiError::BadRequest)?
        }
    };
    let channel = match query.get("channel") {
        None => None,
        Some(name) => Some(channel(name).map_err(ApiError::BadRequest)?),
    };
    let limit = match query.get("limit") {
        None => 100,
        Some(limit) => limit
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| bad_query("limit", "must be 1 to 1000"))?,
    };
    // A channel's list reads on past the others' deliveries, a page at a time.
    let items = deliveries_matching(state.store.as_ref(), status, since, limit, |d| {
        channel.is_none_or(|c| c == d.channel)
    })
    .await?
    .iter()
    .map(|d| ListedDelivery {
        event_id: d.event_id.to_string(),
        delivery: DeliveryView::from(d),
    })
    .collect();
    Ok(Json(DeliveryList { items }))
}

fn channel(name: &str) -> Result<Channel, FieldError> {
    Channel::from_name(name)
        .filter(|c| *c != Channel::Alert)
        .ok_or_else(|| FieldError::new("channel", "must be mail, slack, msteams or webhooks"))
}

/// Queues the dead deliveries again, of one `channel` and or one `event_id` if named: each is
/// put back to `queued` and tried afresh. One sent, failed or replayed meanwhile is left
/// alone (`skipped`), and none is sent twice.
#[utoipa::path(post, path = "/v1/deliveries/replay", tag = "events", security(("bearer" = [])),
    request_body(content = Object, example = json!({"channel": "slack"})),
    responses((status = 200, body = ReplayReport), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn replay_deliveries(
    State(state): State<IntakeState>,
    caller: Caller,
    body: JsonBody,
) -> Result<Json<ReplayReport>, ApiError> {
    caller.require_admin()?;
    let body = body.parse()?;
    let object = expect_object(&body, "")?;
    reject_unknown_fields(object, "", &["channel", "event_id"])?;
    let mut filter = ReplayFilter::default();
    match object.get("channel") {
        None | Some(Value::Null) => {}
        Some(Value::String(name)) => filter.channel = Some(channel(name)?),
        Some(_) => return Err(FieldError::new("channel", "must be a string").into()),
    }
    match object.get("event_id") {
        None | Some(Value::Null) => {}
        Some(Value::String(id)) => filter.event = Some(EventId::parse("event_id", id)?),
        Some(_) => return Err(FieldError::new("event_id", "must be a string").into()),
    }
    let report = replay_dead(
        state.store.as_ref(),
        state.queue.as_ref(),
        &filter,
        state.clock.now_ms(),
    )
    .await
    .map_err(|e| match e {
        ReplayError::Store(e) => ApiError::from(e),
        other => ApiError::Internal(other.to_string()),
    })?;
    Ok(Json(report))
}
