//! API errors and their one mapping to HTTP status codes and the contract's JSON shape:
//! `{"error": {"code": "...", "message": "...", "field"?: "..."}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use herald_shared::domain::FieldError;
use herald_shared::ports::StoreError;
use serde::Serialize;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not valid JSON (400).
    #[error("{0}")]
    InvalidJson(String),
    /// A query parameter or path segment is malformed (400).
    #[error("{0}")]
    BadRequest(FieldError),
    /// The JSON is well formed but a field is wrong (422).
    #[error("{0}")]
    Validation(FieldError),
    /// No valid bearer token (401).
    #[error("{0}")]
    Unauthorized(String),
    /// A valid token that may not do this (403).
    #[error("{0}")]
    Forbidden(String),
    /// The thing named does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// The method is not served on this path (405).
    #[error("method not allowed on this path")]
    MethodNotAllowed,
    /// The change conflicts with the stored state (409).
    #[error("{0}")]
    Conflict(String),
    /// A field's value is already taken (409 naming the field).
    #[error("{0}")]
    FieldConflict(FieldError),
    /// An idempotency key (an event's `id`) reused for a different request (409
    /// `idempotency_key_reused` naming the field).
    #[error("{0}")]
    IdempotencyKeyReused(FieldError),
    /// The body is larger than the limit (413).
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// The body is not `application/json` (415).
    #[error("request body must be application/json")]
    UnsupportedMediaType,
    /// Something failed inside Herald (500); the cause is logged, never sent.
    #[error("internal error")]
    Internal(String),
    /// A service Herald called for this request failed (502): the message names it and how.
    #[error("{0}")]
    Upstream(String),
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::InvalidJson(_) => (StatusCode::BAD_REQUEST, "invalid_json"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Validation(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::Conflict(_) | ApiError::FieldConflict(_) => {
                (StatusCode::CONFLICT, "conflict")
            }
            ApiError::IdempotencyKeyReused(_) => (StatusCode::CONFLICT, "idempotency_key_reused"),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            ApiError::Upstream(_) => (StatusCode::BAD_GATEWAY, "upstream_failed"),
        }
    }
}

/// The error body of every failed request.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// A stable machine-readable code, e.g. `validation_failed`.
    pub code: String,
    /// A sentence for people.
    pub message: String,
    /// The offending field as a JSON path, for validation errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let field = match &self {
            ApiError::BadRequest(e)
            | ApiError::Validation(e)
            | ApiError::FieldConflict(e)
            | ApiError::IdempotencyKeyReused(e)
                if !e.field.is_empty() =>
            {
                Some(e.field.clone())
            }
            _ => None,
        };
        if let ApiError::Internal(cause) = &self {
            tracing::error!(error = %cause, "request failed");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.to_owned(),
                message: self.to_string(),
                field,
            },
        };
        (status, Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ApiError::NotFound(format!("{what} not found")),
            StoreError::Conflict(why) => ApiError::Conflict(why),
            StoreError::Invalid(why) => ApiError::BadRequest(FieldError::new("", why)),
            StoreError::Backend(cause) => ApiError::Internal(cause),
        }
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        ApiError::Validation(e)
    }
}
