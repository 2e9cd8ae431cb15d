//! Webhook endpoints: `GET, POST /v1/webhooks` and `GET, PUT, DELETE /v1/webhooks/{id}`.
//!
//! Administrators see and manage every endpoint and create system endpoints (`owner` absent or
//! `null`) or endpoints for a named user. A user sees and manages only their own (`owner`
//! omitted means themself; naming anyone else is 403); another user's endpoint answers 404,
//! as if it did not exist. The platform's service account has no business here (403).
//!
//! Names are unique per owner (409 naming `name`), as DefectDojo's are. An endpoint's
//! `format` is `herald` (the default) or `defectdojo` (DefectDojo's own body and headers).
//!
//! `POST` and `PUT` validate the body, then **ping** the endpoint (`X-Herald-Event: ping`, or
//! DefectDojo's ping for the `defectdojo` format,
//! signed when it has a secret, through the outbound URL guard, with the system timeout): only
//! a 2xx answer saves it, and a saved edit makes the endpoint `active` again. A failed ping
//! answers 422 naming `url`, with the reason (never the URL or a secret). `PUT` changes the
//! fields it names: an omitted `secret` or `header_value` keeps the stored one, `null` clears
//! it. Answers never contain the header value or the secret, only `header_value_set` and
//! `secret_set`.

use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use herald_http::auth::{Caller, Role};
use herald_http::error::{ApiError, ErrorBody};
use herald_http::extract::JsonBody;
use herald_http::rfc3339;
use herald_shared::adapters::Post;
use herald_shared::domain::defectdojo::outbound::defectdojo_ping_body;
use herald_shared::domain::webhook::{Change, WebhookFormat, redacted_url};
use herald_shared::domain::webhook_body::{PING_EVENT, ping_body};
use herald_shared::domain::{
    FieldError, Username, WebhookEndpoint, WebhookId, WebhookRequest, WebhookStatus,
};
use herald_shared::ports::WebhookOwner;
use herald_shared::webhooks::delete_webhook_endpoint;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The most endpoints one owner (a user, or the system) may have.
pub const MAX_WEBHOOKS_PER_OWNER: usize = 50;

/// The webhook routes, merged into the settings API.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_webhooks, create_webhook))
        .routes(routes!(get_webhook, put_webhook, delete_webhook))
}

/// A webhook endpoint as the API shows it: never the header value or the secret.
#[derive(Debug, Serialize, ToSchema)]
struct WebhookView {
    id: String,
    name: String,
    url: String,
    header_name: Option<String>,
    /// Whether a custom header value is stored (the value is write-only).
    header_value_set: bool,
    /// Whether a signing secret is stored (the secret is write-only).
    secret_set: bool,
    /// The owning user; `null` for a system endpoint.
    owner: Option<String>,
    /// `herald` (Herald's body and headers) or `defectdojo` (DefectDojo's own).
    format: WebhookFormat,
    status: WebhookStatus,
    first_error: Option<String>,
    last_error: Option<String>,
    /// The latest error.
    note: Option<String>,
    created_at: String,
    updated_at: String,
}

impl From<&WebhookEndpoint> for WebhookView {
    fn from(e: &WebhookEndpoint) -> Self {
        Self {
            id: e.id.to_string(),
            name: e.name.clone(),
            url: redacted_url(&e.url),
            header_name: e.header_name.clone(),
            header_value_set: e.header_value.is_some(),
            secret_set: e.secret.is_some(),
            owner: e.owner.as_ref().map(ToString::to_string),
            format: e.format,
            status: e.state.status,
            first_error: e.state.first_error.map(rfc3339),
            last_error: e.state.last_error.map(rfc3339),
            note: e.state.note.clone(),
            created_at: rfc3339(e.created_at),
            updated_at: rfc3339(e.updated_at),
        }
    }
}

/// Webhook endpoints.
#[derive(Debug, Serialize, ToSchema)]
struct WebhookList {
    items: Vec<WebhookView>,
}

/// What `POST` and `PUT` take. `PUT` changes the fields it names; `null` clears an optional
/// one.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
struct WebhookInput {
    /// 1 to 100 characters. Required on `POST`.
    name: String,
    /// An http(s) URL. Required on `POST`.
    url: String,
    /// A custom header's name (an HTTP token; not one Herald sets).
    header_name: Option<String>,
    /// Its value (write-only; at most 1,000 printable characters, no CR, LF or NUL).
    header_value: Option<String>,
    /// Standard Webhooks signing secret, `whsec_` and base64 of 24 to 64 bytes (write-only).
    secret: Option<String>,
    /// Administrators: a username, or `null` for a system endpoint. Users: themself.
    owner: Option<String>,
    /// `herald` (the default) or `defectdojo`: DefectDojo's own body and headers, so a
    /// receiver written for DefectDojo works unchanged. An edit that leaves it out keeps it.
    format: Option<WebhookFormat>,
}

/// Only administrators and users.
fn require_person_or_admin(caller: &Caller) -> Result<(), ApiError> {
    match caller.role {
        Role::Admin | Role::User => Ok(()),
        Role::Service => Err(ApiError::Forbidden(
            "forbidden: webhooks belong to administrators and users".into(),
        )),
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("webhook {id} not found"))
}

/// The endpoint `id` if the caller may see it; otherwise 404, whether or not it exists.
async fn visible_endpoint(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<WebhookEndpoint, ApiError> {
    require_person_or_admin(caller)?;
    let id = WebhookId::parse("id", id).map_err(|_| not_found(id))?;
    let endpoint = state
        .store
        .webhook(&id)
        .await?
        .ok_or_else(|| not_found(id.as_str()))?;
    if caller.role == Role::Admin
        || endpoint.owner.as_ref().map(Username::as_str) == Some(caller.subject.as_str())
    {
        Ok(endpoint)
    } else {
        Err(not_found(id.as_str()))
    }
}

/// 8 random bytes from the system's generator (for ids).
fn random_bytes() -> [u8; 8] {
    use std::io::Read;
    let mut bytes = [0u8; 8];
    let filled = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if filled.is_err() {
        // Unique within this process; ids are checked against the store before use.
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        bytes = (t ^ n.rotate_left(48)).to_be_bytes();
    }
    bytes
}

/// A random id no endpoint has (saving is an upsert, so a clash must be ruled out first).
async fn new_webhook_id(state: &AppState) -> Result<WebhookId, ApiError> {
    for _ in 0..3 {
        let id = WebhookId::from_random(random_bytes());
        if state.store.webhook(&id).await?.is_none() {
            return Ok(id);
        }
    }
    Err(ApiError::Internal(
        "no free webhook id after three random draws".into(),
    ))
}

/// Refuses a name another endpoint of the same owner has (DefectDojo's names are unique).
fn check_unique_name(
    endpoint: &WebhookEndpoint,
    of_owner: &[WebhookEndpoint],
) -> Result<(), ApiError> {
    if of_owner
        .iter()
        .any(|other| other.id != endpoint.id && other.name == endpoint.name)
    {
        return Err(ApiError::FieldConflict(FieldError::new(
            "name",
            format!(
                "this owner already has a webhook named {:?}; names are unique per owner",
                endpoint.name
            ),
        )));
    }
    Ok(())
}

fn owner_of(endpoint: &WebhookEndpoint) -> WebhookOwner {
    match &endpoint.owner {
        Some(user) => WebhookOwner::User(user.clone()),
        None => WebhookOwner::System,
    }
}

/// Pings `endpoint`; a failure is a 422 naming `url`.
async fn ping(state: &AppState, endpoint: &WebhookEndpoint) -> Result<(), ApiError> {
    let system = state.store.system_settings().await?;
    let ping_id = format!(
        "ping_{}",
        random_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let body = match endpoint.format {
        WebhookFormat::Herald => serde_json::to_vec(&ping_body(&ping_id, &system)),
        WebhookFormat::Defectdojo => {
            let owner = match &endpoint.owner {
                Some(user) => state.store.user(user).await?,
                None => None,
            };
            serde_json::to_vec(&defectdojo_ping_body(owner.as_ref()))
        }
    }
    .map_err(|e| ApiError::Internal(format!("serializing the ping: {e}")))?;
    let message_id = format!("msg_{ping_id}");
    state
        .webhooks
        .post(
            endpoint,
            &system,
            Post {
                event_type: PING_EVENT,
                message_id: &message_id,
                body: &body,
                now_ms: state.clock.now_ms(),
            },
        )
        .await
        .map_err(|e| {
            ApiError::Validation(FieldError::new(
                "url",
                format!("the ping failed, so the webhook was not saved: {e}"),
            ))
        })
}

/// The caller's webhooks: every one for an administrator, their own for a user.
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks", security(("bearer" = [])),
    responses((status = 200, body = WebhookList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_webhooks(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<WebhookList>, ApiError> {
    require_person_or_admin(&caller)?;
    let owner = match caller.role {
        Role::Admin => WebhookOwner::All,
        _ => WebhookOwner::User(caller_username(&caller)?),
    };
    let endpoints = state.store.webhooks(&owner).await?;
    Ok(Json(WebhookList {
        items: endpoints.iter().map(WebhookView::from).collect(),
    }))
}

fn caller_username(caller: &Caller) -> Result<Username, ApiError> {
    Username::parse("sub", &caller.subject)
        .map_err(|_| ApiError::Forbidden("forbidden: the token's subject is not a username".into()))
}

/// Adds a webhook after a successful ping (201). Administrators name the `owner` (a user, or
/// `null`/absent for a system endpoint); a user's webhooks are their own.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", security(("bearer" = [])),
    request_body = WebhookInput,
    responses((status = 201, body = WebhookView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, description = "Too many webhooks for this owner, or the name is taken", body = ErrorBody),
        (status = 422, description = "Invalid, or the ping failed", body = ErrorBody)))]
async fn create_webhook(
    State(state): State<AppState>,
    caller: Caller,
    body: JsonBody,
) -> Result<Response, ApiError> {
    require_person_or_admin(&caller)?;
    let request = WebhookRequest::from_request(&body.parse()?)?;
    let owner = match (caller.role, &request.owner) {
        (Role::Admin, Change::Keep | Change::Clear) => None,
        (Role::Admin, Change::Set(user)) => {
            if state.store.user(user).await?.is_none() {
                return Err(ApiError::Validation(FieldError::new(
                    "owner",
                    format!("user {user} not found"),
                )));
            }
            Some(user.clone())
        }
        (_, Change::Keep) => Some(caller_username(&caller)?),
        (_, Change::Set(user)) if user.as_str() == caller.subject => Some(user.clone()),
        (_, _) => {
            return Err(ApiError::Forbidden(
                "forbidden: a user may add webhooks only for themself".into(),
            ));
        }
    };
    let of_owner = match &owner {
        Some(user) => WebhookOwner::User(user.clone()),
        None => WebhookOwner::System,
    };
    let existing = state.store.webhooks(&of_owner).await?;
    if existing.len() >= MAX_WEBHOOKS_PER_OWNER {
        return Err(ApiError::Conflict(format!(
            "at most {MAX_WEBHOOKS_PER_OWNER} webhooks per owner"
        )));
    }
    let mut endpoint =
        request.create(new_webhook_id(&state).await?, owner, state.clock.now_ms())?;
    check_unique_name(&endpoint, &existing)?;
    ping(&state, &endpoint).await?;
    endpoint.version = state.store.put_webhook(&endpoint).await?;
    tracing::info!(webhook = %endpoint.id, "webhook added");
    Ok((StatusCode::CREATED, Json(WebhookView::from(&endpoint))).into_response())
}

/// One webhook.
#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = WebhookView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn get_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<WebhookView>, ApiError> {
    let endpoint = visible_endpoint(&state, &caller, &id).await?;
    Ok(Json(WebhookView::from(&endpoint)))
}

/// Edits a webhook after a successful ping; it is `active` again. Omitted fields are kept
/// (`secret` and `header_value` included); `null` clears `header_name`, `header_value` or
/// `secret`. The owner cannot change.
#[utoipa::path(put, path = "/v1/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = WebhookInput,
    responses((status = 200, body = WebhookView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "Edited by someone else meanwhile, or the name is taken", body = ErrorBody),
        (status = 422, description = "Invalid, or the ping failed", body = ErrorBody)))]
async fn put_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonBody,
) -> Result<Json<WebhookView>, ApiError> {
    let current = visible_endpoint(&state, &caller, &id).await?;
    let mut request = WebhookRequest::from_request(&body.parse()?)?;
    // The URL as a GET showed it (credentials hidden), sent back unchanged: keep the stored one.
    if request.url.as_deref() == Some(redacted_url(&current.url).as_str()) {
        request.url = None;
    }
    let mut edited = request.edit(&current, state.clock.now_ms())?;
    if edited.name != current.name {
        check_unique_name(&edited, &state.store.webhooks(&owner_of(&current)).await?)?;
    }
    ping(&state, &edited).await?;
    // Saved only over what was read: the edit wins over state changes that happened during
    // the ping, never over a deletion or another edit.
    for _ in 0..5 {
        if state.store.update_webhook_if_unchanged(&edited).await? {
            edited.version += 1;
            tracing::info!(webhook = %edited.id, "webhook edited");
            return Ok(Json(WebhookView::from(&edited)));
        }
        match state.store.webhook(&current.id).await? {
            None => return Err(not_found(&id)),
            Some(fresh) if fresh.updated_at != current.updated_at => {
                return Err(ApiError::Conflict(
                    "the webhook was edited meanwhile; read it again and retry".into(),
                ));
            }
            Some(fresh) => edited.version = fresh.version,
        }
    }
    Err(ApiError::Conflict(
        "the webhook keeps changing; retry".into(),
    ))
}

/// Removes a webhook. Deliveries waiting for it (parked while it rested) are `failed`.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 204, description = "Removed"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn delete_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let endpoint = visible_endpoint(&state, &caller, &id).await?;
    if delete_webhook_endpoint(state.store.as_ref(), &endpoint.id, state.clock.now_ms()).await? {
        tracing::info!(webhook = %endpoint.id, "webhook removed");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(&id))
    }
}
