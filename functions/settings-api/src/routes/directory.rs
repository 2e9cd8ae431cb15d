//! The directory the platform keeps here: users, product types, products and their
//! members.

use super::{deleted, written};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use herald_http::auth::Caller;
use herald_http::error::{ApiError, ErrorBody};
use herald_http::extract::{JsonBody, path_id, path_username};
use herald_shared::domain::directory::{product_from_request, product_type_from_request};
use herald_shared::domain::{FieldError, ProductType, User, UserProfile};
use herald_shared::ports::{StoreError, UserWrite};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// This resource's routes.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_user, put_user, delete_user))
        .routes(routes!(
            get_product_type,
            put_product_type,
            delete_product_type
        ))
        .routes(routes!(put_product_type_member, delete_product_type_member))
        .routes(routes!(get_product, put_product, delete_product))
        .routes(routes!(put_product_member, delete_product_member))
}

// ---------------------------------------------------------------------------------------------
// Directory: users

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
    responses((status = 200, body = herald_shared::domain::Product), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_product(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<herald_shared::domain::Product>, ApiError> {
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
    responses((status = 200, body = herald_shared::domain::Product), (status = 201, body = herald_shared::domain::Product),
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
