//! `POST /v1/defectdojo/sync` (admin): one sync of the directory and the scheduled checks'
//! records from DefectDojo's API v2, now, answered with its counts (see
//! `herald_shared::defectdojo_sync`). The DefectDojo is the host's configured one, or the one
//! the body names (`url` with `api_token`, which is used for this run only and never kept,
//! logged or echoed).

use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use herald_http::auth::Caller;
use herald_http::error::{ApiError, ErrorBody};
use herald_http::extract::JsonBody;
use herald_shared::defectdojo_sync::{
    DefectDojoSource, SyncError, SyncReport, SyncRequest, SyncRunError,
};
use herald_shared::domain::validation::{expect_object, reject_unknown_fields};
use herald_shared::domain::{FieldError, Secret};
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The DefectDojo routes of the settings API.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(sync_defectdojo))
}

/// The largest page a request may ask for.
const MAX_PAGE_SIZE: u64 = 10_000;

/// Runs one sync from DefectDojo now and answers what it did per kind (created, updated,
/// removed, unchanged) and what it could not carry over. No body (or `{}`) syncs from the
/// configured DefectDojo; `{"url", "api_token"}` from another; `page_size` (1–10,000)
/// overrides the page size; `"import_settings": true` imports DefectDojo's notification
/// settings and the notification fields of its system settings too;
/// `"register_user_webhooks": "<Herald's public URL>"` registers each active user's webhook in
/// DefectDojo (needs `defectdojo_webhook_key`). A request while a sync runs waits for it, then runs. DefectDojo failing (403, 5xx, a timeout, a malformed page) is 502
/// naming the URL and status, and nothing in Herald changed.
#[utoipa::path(post, path = "/v1/defectdojo/sync", tag = "defectdojo", security(("bearer" = [])),
    request_body(content = Option<Object>, example = json!({"url": "https://defectdojo.example.com", "api_token": "<API v2 key>"})),
    responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 502, body = ErrorBody)))]
async fn sync_defectdojo(
    State(state): State<AppState>,
    caller: Caller,
    body: JsonBody,
) -> Result<Json<SyncReport>, ApiError> {
    caller.require_admin()?;
    let request = match body.parse_optional()? {
        None => SyncRequest::default(),
        Some(body) => sync_request(&body)?,
    };
    // A DefectDojo the request names is called only where webhooks may be: not on loopback,
    // private or metadata addresses unless this host allows them.
    if let Some(source) = &request.source {
        herald_shared::url_guard::check_url(&source.url, state.webhooks.allows_private())
            .await
            .map_err(|e| FieldError::new("url", e.to_string()))?;
    }
    match state
        .defectdojo
        .run(state.store.as_ref(), request, &|_, _, _| {})
        .await
    {
        Ok(report) => Ok(Json(report)),
        Err(e @ SyncRunError::NotConfigured) => Err(ApiError::Conflict(e.to_string())),
        Err(SyncRunError::Registration(why)) => Err(ApiError::Validation(FieldError::new(
            "register_user_webhooks",
            why,
        ))),
        Err(SyncRunError::Sync(SyncError::Store(e))) => Err(e.into()),
        // Herald's own disk, not DefectDojo: logged, never sent.
        Err(SyncRunError::Sync(SyncError::Staging(e))) => Err(ApiError::Internal(e.to_string())),
        Err(e @ (SyncRunError::Token(_) | SyncRunError::Sync(_))) => {
            Err(ApiError::Upstream(e.to_string()))
        }
    }
}

/// What a body asks for.
fn sync_request(body: &Value) -> Result<SyncRequest, ApiError> {
    let object = expect_object(body, "")?;
    reject_unknown_fields(
        object,
        "",
        &[
            "url",
            "api_token",
            "page_size",
            "import_settings",
            "register_user_webhooks",
        ],
    )?;
    let import_settings = match object.get("import_settings") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(FieldError::new("import_settings", "expected true or false").into()),
    };
    let text = |field: &str| -> Result<Option<String>, FieldError> {
        match object.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_owned())),
            Some(_) => Err(FieldError::new(field, "expected a non-empty string")),
        }
    };
    let page_size = match object.get("page_size") {
        None | Some(Value::Null) => None,
        Some(value) => Some(
            value
                .as_u64()
                .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
                .ok_or_else(|| {
                    FieldError::new(
                        "page_size",
                        format!("expected an integer from 1 to {MAX_PAGE_SIZE}"),
                    )
                })? as usize,
        ),
    };
    let source = match (text("url")?, text("api_token")?) {
        (Some(url), Some(token)) => {
            let source = DefectDojoSource::new(url, Secret::new(token));
            source
                .api()
                .map_err(|e| FieldError::new("url", e.to_string()))?;
            Some(source)
        }
        (Some(_), None) => return Err(FieldError::new("api_token", "required with url").into()),
        (None, Some(_)) => return Err(FieldError::new("url", "required with api_token").into()),
        (None, None) => None,
    };
    Ok(SyncRequest {
        source,
        page_size,
        import_settings,
        register_webhooks: text("register_user_webhooks")?,
    })
}
