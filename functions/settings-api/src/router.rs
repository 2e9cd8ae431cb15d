//! The settings and directory HTTP API: one axum `Router`, hosted by `lambda_http` on Lambda,
//! by `axum::serve` in `herald-local`, and by `oneshot` in tests. The OpenAPI document is
//! generated from the same route list, so the two cannot drift apart.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use herald::domain::catalogue::EVENT_TYPES;
use herald::domain::directory::{product_from_request, product_type_from_request};
use herald::domain::validation::join_path;
use herald::domain::{
    Channel, EffectiveSettings, FieldError, NotificationSettings, ProductType, ResourceId,
    SettingsScope, User, UserProfile, Username,
};
use herald::ports::{AlertCounts, AlertPage, HeraldStore, StoreError, UserWrite};
use herald_http::auth::{Authenticator, Caller, Role};
use herald_http::error::{ApiError, ErrorBody};
use herald_http::extract::{JsonBody, bad_query, path_id, path_username};
use herald_http::rfc3339;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn HeraldStore>,
    pub auth: Authenticator,
    /// Pings webhook endpoints before they are saved.
    pub webhooks: sender_webhook::WebhookClient,
    /// "Now" for timestamps the API writes (webhook endpoints).
    pub clock: Arc<dyn herald::ports::Clock>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl AsRef<Authenticator> for AppState {
    fn as_ref(&self) -> &Authenticator {
        &self.auth
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Herald",
        description = "Notifications for application-security platforms: settings, directory, events and alerts.",
        license(name = "Apache-2.0")
    ),
    modifiers(&BearerAuth),
    components(schemas(ErrorBody))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Every route with its OpenAPI description, before the state is attached.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health))
        .routes(routes!(list_event_types))
        .routes(routes!(get_system_settings, put_system_settings))
        .routes(routes!(get_system_notifications, put_system_notifications))
        .routes(routes!(
            get_template_notifications,
            put_template_notifications
        ))
        .routes(routes!(
            get_personal_notifications,
            put_personal_notifications
        ))
        .routes(routes!(
            get_product_notifications,
            put_product_notifications,
            delete_product_notifications
        ))
        .routes(routes!(get_effective_notifications))
        .routes(routes!(get_user, put_user, delete_user))
        .routes(routes!(
            get_product_type,
            put_product_type,
            delete_product_type
        ))
        .routes(routes!(put_product_type_member, delete_product_type_member))
        .routes(routes!(get_product, put_product, delete_product))
        .routes(routes!(put_product_member, delete_product_member))
        .routes(routes!(list_alerts, delete_all_alerts))
        .routes(routes!(count_alerts))
        .routes(routes!(mark_alerts_read))
        .routes(routes!(delete_alert))
        .merge(crate::webhooks::routes())
        .merge(crate::schedule::routes())
}

/// The OpenAPI 3.1 document of every route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    herald_http::document(api().split_for_parts().1)
}

/// The API with its state, its OpenAPI document, JSON errors and request tracing.
pub fn router(state: AppState) -> axum::Router {
    let (routes, doc) = api().split_for_parts();
    herald_http::app(routes.with_state(state), doc)
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

// ---------------------------------------------------------------------------------------------
// System settings

/// The system settings; secrets show only whether they are set (`slack_token_set`).
#[utoipa::path(get, path = "/v1/system/settings", tag = "settings", security(("bearer" = [])),
    responses((status = 200, body = Object), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn get_system_settings(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    Ok(Json(state.store.system_settings().await?.to_view()))
}

/// Changes the fields named and keeps the others. `slack_token` is write-only (`null` clears it).
/// A new `msteams_url` must not point at a loopback, private, link-local or metadata address
/// (unless private targets are allowed).
#[utoipa::path(put, path = "/v1/system/settings", tag = "settings", security(("bearer" = [])),
    request_body(content = Object, description = "Any of DefectDojo's system settings fields"),
    responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn put_system_settings(
    State(state): State<AppState>,
    caller: Caller,
    body: JsonBody,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    let patch = body.parse()?;
    let current = state.store.system_settings().await?;
    let next = current.apply_patch(&patch)?;
    if next.msteams_url != current.msteams_url {
        check_teams_url(&next.msteams_url, state.webhooks.allows_private()).await?;
    }
    state.store.put_system_settings(&next).await?;
    Ok(Json(next.to_view()))
}

/// Refuses a Teams URL the sender would never post to: through the outbound URL guard, so a
/// loopback, private, link-local or metadata address (in any spelling) is a 422 naming
/// `msteams_url`. A name that does not resolve now is accepted: the sender checks the URL
/// again before every post.
async fn check_teams_url(url: &str, allow_private: bool) -> Result<(), ApiError> {
    if url.trim().is_empty() {
        return Ok(());
    }
    match herald::outbound::check_url(url, allow_private).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_transient() => Ok(()),
        Err(e) => Err(ApiError::Validation(FieldError::new(
            "msteams_url",
            e.to_string(),
        ))),
    }
}

// ---------------------------------------------------------------------------------------------
// Notification settings documents

/// A settings document: every event type with its channels.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"events": {"scan_added": ["alert", "slack"], "other": ["alert"]}}))]
struct SettingsDocument {
    events: HashMap<String, Vec<Channel>>,
}

/// The system-scope settings (sent to the system destinations).
#[utoipa::path(get, path = "/v1/notifications/system", tag = "settings", security(("bearer" = [])),
    responses((status = 200, body = SettingsDocument), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn get_system_notifications(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<NotificationSettings>, ApiError> {
    caller.require_admin()?;
    Ok(Json(state.store.system_notifications().await?))
}

/// Replaces the system-scope settings; an event left out takes its default.
#[utoipa::path(put, path = "/v1/notifications/system", tag = "settings", security(("bearer" = [])),
    request_body = SettingsDocument,
    responses((status = 200, body = SettingsDocument), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn put_system_notifications(
    State(state): State<AppState>,
    caller: Caller,
    body: JsonBody,
) -> Result<Json<NotificationSettings>, ApiError> {
    caller.require_admin()?;
    let settings = NotificationSettings::from_request(&body.parse()?, SettingsScope::System)?;
    state.store.put_system_notifications(&settings).await?;
    Ok(Json(settings))
}

/// The template copied into the personal settings of each user created afterwards.
#[utoipa::path(get, path = "/v1/notifications/template", tag = "settings", security(("bearer" = [])),
    responses((status = 200, body = SettingsDocument), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn get_template_notifications(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<NotificationSettings>, ApiError> {
    caller.require_admin()?;
    Ok(Json(state.store.template_notifications().await?))
}

/// Replaces the template; existing users keep their settings.
#[utoipa::path(put, path = "/v1/notifications/template", tag = "settings", security(("bearer" = [])),
    request_body = SettingsDocument,
    responses((status = 200, body = SettingsDocument), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn put_template_notifications(
    State(state): State<AppState>,
    caller: Caller,
    body: JsonBody,
) -> Result<Json<NotificationSettings>, ApiError> {
    caller.require_admin()?;
    let settings = NotificationSettings::from_request(&body.parse()?, SettingsScope::Template)?;
    state.store.put_template_notifications(&settings).await?;
    Ok(Json(settings))
}

/// A user's personal settings (every product).
#[utoipa::path(get, path = "/v1/users/{username}/notifications", tag = "settings", security(("bearer" = [])),
    params(("username" = String, Path)),
    responses((status = 200, body = SettingsDocument), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn get_personal_notifications(
    State(state): State<AppState>,
    caller: Caller,
    Path(username): Path<String>,
) -> Result<Json<NotificationSettings>, ApiError> {
    caller.require_self_or_admin(&username)?;
    let user = path_username(&username)?;
    Ok(Json(state.store.personal_notifications(&user).await?))
}

/// Replaces a user's personal settings; an event left out takes its default.
#[utoipa::path(put, path = "/v1/users/{username}/notifications", tag = "settings", security(("bearer" = [])),
    params(("username" = String, Path)), request_body = SettingsDocument,
    responses((status = 200, body = SettingsDocument), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn put_personal_notifications(
    State(state): State<AppState>,
    caller: Caller,
    Path(username): Path<String>,
    body: JsonBody,
) -> Result<Json<NotificationSettings>, ApiError> {
    caller.require_self_or_admin(&username)?;
    let user = path_username(&username)?;
    let settings = NotificationSettings::from_request(&body.parse()?, SettingsScope::Personal)?;
    state
        .store
        .put_personal_notifications(&user, &settings)
        .await?;
    Ok(Json(settings))
}

/// Checks that the caller may touch `username`'s settings for `product_id`: an admin (the
/// product must exist), or the user themself if they may view the product. A user learns
/// nothing about products they may not view, not even whether they exist.
async fn authorize_product_settings(
    state: &AppState,
    caller: &Caller,
    username: &str,
    product_id: &str,
) -> Result<(Username, ResourceId), ApiError> {
    caller.require_self_or_admin(username)?;
    let user = path_username(username)?;
    let product = path_id("product_id", product_id)?;
    if caller.role == Role::Admin {
        if state.store.product(&product).await?.is_none() {
            return Err(ApiError::NotFound(format!("product {product} not found")));
        }
    } else {
        let may_view = match state.store.product_access(&user, &product).await {
            Ok(access) => access.may_view(),
            Err(StoreError::NotFound(_)) => false,
            Err(e) => return Err(e.into()),
        };
        if !may_view {
            return Err(ApiError::Forbidden(format!(
                "forbidden: you may not view product {product}"
            )));
        }
    }
    Ok((user, product))
}

/// A user's settings for one product.
#[utoipa::path(get, path = "/v1/users/{username}/notifications/products/{product_id}", tag = "settings",
    security(("bearer" = [])), params(("username" = String, Path), ("product_id" = String, Path)),
    responses((status = 200, body = SettingsDocument), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "No settings for this product", body = ErrorBody)))]
async fn get_product_notifications(
    State(state): State<AppState>,
    caller: Caller,
    Path((username, product_id)): Path<(String, String)>,
) -> Result<Json<NotificationSettings>, ApiError> {
    let (user, product) =
        authorize_product_settings(&state, &caller, &username, &product_id).await?;
    state
        .store
        .product_notifications(&user, &product)
        .await?
        .map(Json)
        .ok_or_else(|| {
            ApiError::NotFound(format!("user {user} has no settings for product {product}"))
        })
}

/// Replaces a user's settings for one product; an event left out takes its default.
#[utoipa::path(put, path = "/v1/users/{username}/notifications/products/{product_id}", tag = "settings",
    security(("bearer" = [])), params(("username" = String, Path), ("product_id" = String, Path)),
    request_body = SettingsDocument,
    responses((status = 200, body = SettingsDocument), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn put_product_notifications(
    State(state): State<AppState>,
    caller: Caller,
    Path((username, product_id)): Path<(String, String)>,
    body: JsonBody,
) -> Result<Json<NotificationSettings>, ApiError> {
    let (user, product) =
        authorize_product_settings(&state, &caller, &username, &product_id).await?;
    let settings = NotificationSettings::from_request(&body.parse()?, SettingsScope::Product)?;
    state
        .store
        .put_product_notifications(&user, &product, &settings)
        .await?;
    Ok(Json(settings))
}

/// Removes a user's settings for one product (their personal settings apply again).
#[utoipa::path(delete, path = "/v1/users/{username}/notifications/products/{product_id}", tag = "settings",
    security(("bearer" = [])), params(("username" = String, Path), ("product_id" = String, Path)),
    responses((status = 204, description = "Removed"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn delete_product_notifications(
    State(state): State<AppState>,
    caller: Caller,
    Path((username, product_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (user, product) =
        authorize_product_settings(&state, &caller, &username, &product_id).await?;
    if state
        .store
        .delete_product_notifications(&user, &product)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!(
            "user {user} has no settings for product {product}"
        )))
    }
}

/// A user's merged settings.
#[derive(Debug, Serialize, ToSchema)]
struct EffectiveView {
    username: String,
    product_id: Option<String>,
    /// The events for which system-scope channels are added when the user is an explicit
    /// recipient (mentions, review requests).
    system_level_trump: Vec<String>,
    /// Per event: each channel, the scopes that chose it, and whether its system switch is on.
    #[schema(value_type = Object)]
    events: Value,
}

/// The merged channels per event (personal ∪ per-product, and the system scope for the
/// "system level trump" events), with the scopes that contributed each channel.
#[utoipa::path(get, path = "/v1/users/{username}/notifications/effective", tag = "settings",
    security(("bearer" = [])),
    params(("username" = String, Path), ("product_id" = Option<String>, Query, description = "Merge this product's settings in")),
    responses((status = 200, body = EffectiveView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_effective_notifications(
    State(state): State<AppState>,
    caller: Caller,
    Path(username): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<EffectiveView>, ApiError> {
    caller.require_self_or_admin(&username)?;
    let user = path_username(&username)?;
    let product = match query.get("product_id").map(String::as_str) {
        None => None,
        Some("") => return Err(bad_query("product_id", "must not be empty")),
        Some(id) => Some(
            authorize_product_settings(&state, &caller, &username, id)
                .await?
                .1,
        ),
    };
    let personal = state.store.personal_notifications(&user).await?;
    let product_settings = match &product {
        Some(p) => state.store.product_notifications(&user, p).await?,
        None => None,
    };
    let system = state.store.system_settings().await?;
    let system_notifications = state.store.system_notifications().await?;
    let effective = EffectiveSettings::merge(&personal, product_settings.as_ref())
        .with_system_trump(&system_notifications, &system.trump_events());
    let events = serde_json::to_value(effective.to_view(&system))
        .map_err(|e| ApiError::Internal(format!("serializing effective settings: {e}")))?;
    Ok(Json(EffectiveView {
        username: user.to_string(),
        product_id: product.map(|p| p.to_string()),
        system_level_trump: system.system_level_trump.clone(),
        events,
    }))
}

// ---------------------------------------------------------------------------------------------
// Directory: users

/// A created (201) or updated (200) resource.
fn written<T: Serialize>(created: bool, body: T) -> Response {
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, Json(body)).into_response()
}

/// A user.
#[utoipa::path(get, path = "/v1/users/{username}", tag = "directory", security(("bearer" = [])),
    params(("username" = String, Path)),
    responses((status = 200, body = User), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn get_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(username): Path<String>,
) -> Result<Json<User>, ApiError> {
    if !caller.is_self(&username) {
        caller.require_service_or_admin()?;
    }
    let user = path_username(&username)?;
    state
        .store
        .user(&user)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("user {user} not found")))
}

/// Creates (201; personal settings copied from the template) or updates (200) a user.
#[utoipa::path(put, path = "/v1/users/{username}", tag = "directory", security(("bearer" = [])),
    params(("username" = String, Path)), request_body = UserProfile,
    responses((status = 200, body = User), (status = 201, body = User), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn put_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(username): Path<String>,
    body: JsonBody,
) -> Result<Response, ApiError> {
    caller.require_service_or_admin()?;
    let user = path_username(&username)?;
    let profile = UserProfile::from_request(&body.parse()?, &user)?;
    let template = state.store.template_notifications().await?;
    let outcome = state.store.put_user(&user, &profile, &template).await?;
    Ok(written(
        outcome == UserWrite::Created,
        User {
            username: user,
            profile,
        },
    ))
}

/// Removes a user with their settings and memberships.
#[utoipa::path(delete, path = "/v1/users/{username}", tag = "directory", security(("bearer" = [])),
    params(("username" = String, Path)),
    responses((status = 204, description = "Removed"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn delete_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(username): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_service_or_admin()?;
    let user = path_username(&username)?;
    deleted(state.store.delete_user(&user).await?, || {
        format!("user {user} not found")
    })
}

fn deleted(found: bool, what: impl FnOnce() -> String) -> Result<StatusCode, ApiError> {
    if found {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(what()))
    }
}

// ---------------------------------------------------------------------------------------------
// Directory: product types and products

/// A product type.
#[utoipa::path(get, path = "/v1/product-types/{id}", tag = "directory", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = ProductType), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn get_product_type(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ProductType>, ApiError> {
    caller.require_service_or_admin()?;
    let id = path_id("id", &id)?;
    state
        .store
        .product_type(&id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("product type {id} not found")))
}

/// Creates (201) or renames (200) a product type: `{"name": "..."}`.
#[utoipa::path(put, path = "/v1/product-types/{id}", tag = "directory", security(("bearer" = [])),
    params(("id" = String, Path)), request_body(content = Object, example = json!({"name": "Web"})),
    responses((status = 200, body = ProductType), (status = 201, body = ProductType), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn put_product_type(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonBody,
) -> Result<Response, ApiError> {
    caller.require_service_or_admin()?;
    let id = path_id("id", &id)?;
    let product_type = product_type_from_request(id, &body.parse()?)?;
    let created = state.store.put_product_type(&product_type).await?;
    Ok(written(created, product_type))
}

/// Removes a product type and its memberships (409 while products still belong to it).
#[utoipa::path(delete, path = "/v1/product-types/{id}", tag = "directory", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 204, description = "Removed"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_product_type(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_service_or_admin()?;
    let id = path_id("id", &id)?;
    deleted(state.store.delete_product_type(&id).await?, || {
        format!("product type {id} not found")
    })
}

/// A membership.
#[derive(Debug, Serialize, ToSchema)]
struct Membership {
    #[serde(skip_serializing_if = "Option::is_none")]
    product_type_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    product_id: Option<String>,
    username: String,
}

/// Makes a user a member of a product type (201, or 200 if they already were).
#[utoipa::path(put, path = "/v1/product-types/{id}/members/{username}", tag = "directory",
    security(("bearer" = [])), params(("id" = String, Path), ("username" = String, Path)),
    responses((status = 200, body = Membership), (status = 201, body = Membership), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn put_product_type_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, username)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    caller.require_service_or_admin()?;
    let (id, user) = (path_id("id", &id)?, path_username(&username)?);
    let created = state.store.put_product_type_member(&id, &user).await?;
    Ok(written(
        created,
        Membership {
            product_type_id: Some(id.to_string()),
            product_id: None,
            username: user.to_string(),
        },
    ))
}

/// Ends a product type membership.
#[utoipa::path(delete, path = "/v1/product-types/{id}/members/{username}", tag = "directory",
    security(("bearer" = [])), params(("id" = String, Path), ("username" = String, Path)),
    responses((status = 204, description = "Removed"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn delete_product_type_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, username)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    caller.require_service_or_admin()?;
    let (id, user) = (path_id("id", &id)?, path_username(&username)?);
    deleted(
        state.store.delete_product_type_member(&id, &user).await?,
        || format!("user {user} is not a member of product type {id}"),
    )
}

/// A product.
#[utoipa::path(get, path = "/v1/products/{id}", tag = "directory", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = herald::domain::Product), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_product(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<herald::domain::Product>, ApiError> {
    caller.require_service_or_admin()?;
    let id = path_id("id", &id)?;
    state
        .store
        .product(&id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("product {id} not found")))
}

/// Creates (201) or updates (200) a product: `{"name", "product_type_id"}`; the product type
/// must exist.
#[utoipa::path(put, path = "/v1/products/{id}", tag = "directory", security(("bearer" = [])),
    params(("id" = String, Path)),
    request_body(content = Object, example = json!({"name": "Web shop", "product_type_id": "3"})),
    responses((status = 200, body = herald::domain::Product), (status = 201, body = herald::domain::Product),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn put_product(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonBody,
) -> Result<Response, ApiError> {
    caller.require_service_or_admin()?;
    let id = path_id("id", &id)?;
    let product = product_from_request(id, &body.parse()?)?;
    let created = match state.store.put_product(&product).await {
        Ok(created) => created,
        Err(StoreError::NotFound(_)) => {
            return Err(ApiError::Validation(FieldError::new(
                "product_type_id",
                format!(
                    "product type {} not found; create it first",
                    product.product_type_id
                ),
            )));
        }
        Err(e) => return Err(e.into()),
    };
    Ok(written(created, product))
}

/// Removes a product with its memberships and every user's settings for it.
#[utoipa::path(delete, path = "/v1/products/{id}", tag = "directory", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 204, description = "Removed"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn delete_product(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_service_or_admin()?;
    let id = path_id("id", &id)?;
    deleted(state.store.delete_product(&id).await?, || {
        format!("product {id} not found")
    })
}

/// Makes a user a member of a product (201, or 200 if they already were).
#[utoipa::path(put, path = "/v1/products/{id}/members/{username}", tag = "directory",
    security(("bearer" = [])), params(("id" = String, Path), ("username" = String, Path)),
    responses((status = 200, body = Membership), (status = 201, body = Membership), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn put_product_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, username)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    caller.require_service_or_admin()?;
    let (id, user) = (path_id("id", &id)?, path_username(&username)?);
    let created = state.store.put_product_member(&id, &user).await?;
    Ok(written(
        created,
        Membership {
            product_type_id: None,
            product_id: Some(id.to_string()),
            username: user.to_string(),
        },
    ))
}

/// Ends a product membership.
#[utoipa::path(delete, path = "/v1/products/{id}/members/{username}", tag = "directory",
    security(("bearer" = [])), params(("id" = String, Path), ("username" = String, Path)),
    responses((status = 204, description = "Removed"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn delete_product_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, username)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    caller.require_service_or_admin()?;
    let (id, user) = (path_id("id", &id)?, path_username(&username)?);
    deleted(state.store.delete_product_member(&id, &user).await?, || {
        format!("user {user} is not a member of product {id}")
    })
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

impl From<herald::domain::Alert> for AlertView {
    fn from(a: herald::domain::Alert) -> Self {
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
