//! The API's routes, one file per resource; each file's `routes()` lists its handlers with
//! their OpenAPI descriptions, and [`crate::router::api`] merges them. `page` serves the page
//! (not part of the OpenAPI document).

pub(crate) mod alerts;
pub(crate) mod catalogue;
pub(crate) mod defectdojo;
pub(crate) mod directory;
pub(crate) mod page;
pub(crate) mod records;
pub(crate) mod settings;
pub(crate) mod webhooks;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use herald_http::error::ApiError;
use serde::Serialize;

/// A created (201) or updated (200) resource.
pub(crate) fn written<T: Serialize>(created: bool, body: T) -> Response {
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, Json(body)).into_response()
}

/// 204 when the resource was there, else 404 with the message `what` makes.
pub(crate) fn deleted(found: bool, what: impl FnOnce() -> String) -> Result<StatusCode, ApiError> {
    if found {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(what()))
    }
}
