//! System settings and notification settings at every scope: the system and template
//! documents, a user's personal settings, their settings per product, and the effective
//! settings that result.

use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use herald_http::auth::{Caller, Role};
use herald_http::error::{ApiError, ErrorBody};
use herald_http::extract::{JsonBody, bad_query, path_id, path_username};
use herald_shared::domain::{
    Channel, EffectiveSettings, FieldError, NotificationSettings, ResourceId, SettingsScope,
    Username,
};
use herald_shared::ports::StoreError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// This resource's routes.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
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
        .routes(routes!(get_viewable_products))
}

// ---------------------------------------------------------------------------------------------
// System settings

/// The system settings; secrets show only whether they are set (`slack_token_set`,
/// `msteams_url_set`, `defectdojo_webhook_key_set`).
#[utoipa::path(get, path = "/v1/system/settings", tag = "settings", security(("bearer" = [])),
    responses((status = 200, body = Object), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn get_system_settings(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    Ok(Json(state.store.system_settings().await?.to_view()))
}

/// Changes the fields named and keeps the others. `slack_token`, `msteams_url` and
/// `defectdojo_webhook_key` are write-only (`null` clears them).
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
        let url = next.msteams_url.as_ref().map_or("", |url| url.expose());
        check_teams_url(url, state.webhooks.allows_private()).await?;
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
    match herald_shared::url_guard::check_url(url, allow_private).await {
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

/// One product a user may view.
#[derive(Debug, Serialize, ToSchema)]
struct ViewableProductView {
    id: String,
    name: String,
    product_type_id: String,
    /// Why they may view it: `product_member`, `product_type_member`, `administrator`.
    access: Vec<&'static str>,
    /// Whether they keep settings of their own for this product.
    has_settings: bool,
}

/// The products a user may view.
#[derive(Debug, Serialize, ToSchema)]
struct ViewableProductsView {
    username: String,
    products: Vec<ViewableProductView>,
}

/// Every product the user may view (as a member of it or of its product type; an
/// administrator every product), sorted by name, with why and whether they have settings of
/// their own for it: the products whose settings they may keep.
#[utoipa::path(get, path = "/v1/users/{username}/products", tag = "settings",
    security(("bearer" = [])), params(("username" = String, Path)),
    responses((status = 200, body = ViewableProductsView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_viewable_products(
    State(state): State<AppState>,
    caller: Caller,
    Path(username): Path<String>,
) -> Result<Json<ViewableProductsView>, ApiError> {
    caller.require_self_or_admin(&username)?;
    let user = path_username(&username)?;
    let products = state
        .store
        .viewable_products(&user)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("user {user} not found")))?;
    let products = products
        .into_iter()
        .map(|p| {
            let access = [
                (p.access.is_product_member, "product_member"),
                (p.access.is_product_type_member, "product_type_member"),
                (p.access.is_admin, "administrator"),
            ]
            .into_iter()
            .filter_map(|(holds, name)| holds.then_some(name))
            .collect();
            ViewableProductView {
                id: p.product.id.to_string(),
                name: p.product.name,
                product_type_id: p.product.product_type_id.to_string(),
                access,
                has_settings: p.has_settings,
            }
        })
        .collect();
    Ok(Json(ViewableProductsView {
        username: user.to_string(),
        products,
    }))
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
