//! A user's alerts (the bell): pages newest first, counts, marking read, deleting.

use super::deleted;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use herald_http::auth::Caller;
use herald_http::error::{ApiError, ErrorBody};
use herald_http::extract::{JsonBody, bad_query, path_username};
use herald_http::rfc3339;
use herald_shared::domain::validation::join_path;
use herald_shared::domain::{FieldError, Username};
use herald_shared::ports::{AlertCounts, AlertPage, StoreError};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// This resource's routes.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_alerts, delete_all_alerts))
        .routes(routes!(count_alerts))
        .routes(routes!(mark_alerts_read))
        .routes(routes!(delete_alert))
}

// ---------------------------------------------------------------------------------------------
// Alerts

/// The most alerts one page returns.
const MAX_ALERT_PAGE: usize = 100;
/// The page size when `limit` is not given.
const DEFAULT_ALERT_PAGE: usize = 25;

/// One alert as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
struct AlertView {
    id: String,
    title: String,
    description: String,
    url: String,
    icon: String,
    source: String,
    event_id: String,
    created_at: String,
    read: bool,
}

impl From<herald_shared::domain::Alert> for AlertView {
    fn from(a: herald_shared::domain::Alert) -> Self {
        Self {
            id: a.id,
            title: a.title,
            description: a.description,
            url: a.url,
            icon: a.icon,
            source: a.source,
            event_id: a.event_id.to_string(),
            created_at: rfc3339(a.created_at),
            read: a.read,
        }
    }
}

/// A page of alerts, newest first.
#[derive(Debug, Serialize, ToSchema)]
struct AlertList {
    items: Vec<AlertView>,
    /// Pass as `cursor` for the next page; `null` at the end.
    next_cursor: Option<String>,
}

async fn alert_owner(caller: &Caller, username: &str) -> Result<Username, ApiError> {
    caller.require_self_or_admin(username)?;
    path_username(username)
}

/// A user's alerts, newest first: `?unread_only=true`, `limit` (1 to 100, default 25) and the
/// opaque `cursor` of the previous page.
#[utoipa::path(get, path = "/v1/users/{username}/alerts", tag = "alerts", security(("bearer" = [])),
    params(("username" = String, Path), ("unread_only" = Option<bool>, Query), ("limit" = Option<u32>, Query),
        ("cursor" = Option<String>, Query)),
    responses((status = 200, body = AlertList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
async fn list_alerts(
    State(state): State<AppState>,
    caller: Caller,
    Path(username): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<AlertList>, ApiError> {
    let user = alert_owner(&caller, &username).await?;
    let unread_only = match query.get("unread_only").map(String::as_str) {
        None | Some("" | "false" | "0") => false,
        Some("true" | "1") => true,
        Some(_) => return Err(bad_query("unread_only", "must be true or false")),
    };
    let limit = match query.get("limit") {
        None => DEFAULT_ALERT_PAGE,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_ALERT_PAGE).contains(n))
            .ok_or_else(|| bad_query("limit", "must be a whole number from 1 to 100"))?,
    };
    let cursor = query
        .get("cursor")
        .map(String::as_str)
        .filter(|c| !c.is_empty());
    let page: AlertPage = match state.store.alerts(&user, unread_only, limit, cursor).await {
        Err(StoreError::Invalid(_)) => {
            return Err(bad_query("cursor", "is not a cursor this API returned"));
        }
        other => other?,
    };
    Ok(Json(AlertList {
        items: page.items.into_iter().map(AlertView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// How many alerts a user has, and how many are unread (the bell's number).
#[utoipa::path(get, path = "/v1/users/{username}/alerts/count", tag = "alerts", security(("bearer" = [])),
    params(("username" = String, Path)),
    responses((status = 200, body = Object, example = json!({"unread": 3, "total": 12})), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
async fn count_alerts(
    State(state): State<AppState>,
    caller: Caller,
    Path(username): Path<String>,
) -> Result<Json<AlertCounts>, ApiError> {
    let user = alert_owner(&caller, &username).await?;
    Ok(Json(state.store.alert_counts(&user).await?))
}

/// Marks alerts read: `{"ids": [...]}`, or no body for all. Answers how many changed.
#[utoipa::path(post, path = "/v1/users/{username}/alerts/read", tag = "alerts", security(("bearer" = [])),
    params(("username" = String, Path)),
    request_body(content = Option<Object>, example = json!({"ids": ["1795772200000-8f14e45fceea167a5a36dedd4bea2543"]})),
    responses((status = 200, body = Object, example = json!({"marked_read": 1})), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn mark_alerts_read(
    State(state): State<AppState>,
    caller: Caller,
    Path(username): Path<String>,
    body: JsonBody,
) -> Result<Json<Value>, ApiError> {
    let user = alert_owner(&caller, &username).await?;
    let ids = match body.parse_optional()? {
        None => None,
        Some(body) => Some(alert_ids(&body)?),
    };
    let changed = state.store.mark_alerts_read(&user, ids.as_deref()).await?;
    Ok(Json(json!({"marked_read": changed})))
}

fn alert_ids(body: &Value) -> Result<Vec<String>, ApiError> {
    let object = body.as_object().ok_or_else(|| {
        ApiError::Validation(FieldError::new("", "expected an object {\"ids\": [...]}"))
    })?;
    if let Some(key) = object.keys().find(|k| k.as_str() != "ids") {
        return Err(ApiError::Validation(FieldError::new(
            join_path("", key),
            "unknown field; expected ids",
        )));
    }
    let list = object.get("ids").and_then(Value::as_array).ok_or_else(|| {
        ApiError::Validation(FieldError::new("ids", "expected an array of alert ids"))
    })?;
    if list.len() > 1_000 {
        return Err(ApiError::Validation(FieldError::new(
            "ids",
            "at most 1000 ids at a time",
        )));
    }
    list.iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_str()
                .filter(|s| !s.is_empty() && s.len() <= 64)
                .map(str::to_owned)
                .ok_or_else(|| {
                    ApiError::Validation(FieldError::new(
                        format!("ids[{i}]"),
                        "expected an alert id",
                    ))
                })
        })
        .collect()
}

/// Deletes every alert of a user.
#[utoipa::path(delete, path = "/v1/users/{username}/alerts", tag = "alerts", security(("bearer" = [])),
    params(("username" = String, Path)),
    responses((status = 200, body = Object, example = json!({"deleted": 12})), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
async fn delete_all_alerts(
    State(state): State<AppState>,
    caller: Caller,
    Path(username): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let user = alert_owner(&caller, &username).await?;
    let deleted = state.store.delete_alerts(&user).await?;
    Ok(Json(json!({"deleted": deleted})))
}

/// Deletes one alert.
#[utoipa::path(delete, path = "/v1/users/{username}/alerts/{id}", tag = "alerts", security(("bearer" = [])),
    params(("username" = String, Path), ("id" = String, Path)),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn delete_alert(
    State(state): State<AppState>,
    caller: Caller,
    Path((username, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let user = alert_owner(&caller, &username).await?;
    deleted(state.store.delete_alert(&user, &id).await?, || {
        format!("alert {id} not found")
    })
}
