//! Request extraction with the contract's errors: bodies are read under a size limit and
//! parsed only after the caller has been authorized, so a caller who may not act learns
//! nothing from a body error.

use crate::error::ApiError;
use axum::body::Body;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use herald_shared::domain::{FieldError, ResourceId, Username};
use http_body_util::BodyExt;
use serde_json::Value;

/// The largest request body accepted: 256 KiB.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// The largest DefectDojo webhook body accepted: 4 MiB (a re-import lists every finding, and
/// DefectDojo deactivates an endpoint for good on a 413). Lambda takes up to 6 MB.
pub const MAX_DEFECTDOJO_BODY_BYTES: usize = 4 * 1024 * 1024;

/// A request body of at most `LIMIT` bytes, read but not parsed yet.
#[derive(Debug)]
pub struct JsonBodyOf<const LIMIT: usize> {
    bytes: Bytes,
    is_json: bool,
}

/// A request body of at most [`MAX_BODY_BYTES`].
pub type JsonBody = JsonBodyOf<MAX_BODY_BYTES>;

impl<const LIMIT: usize> JsonBodyOf<LIMIT> {
    /// The body as JSON; an empty body is an error.
    pub fn parse(&self) -> Result<Value, ApiError> {
        if self.bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::InvalidJson(
                "request body is empty; expected a JSON object".into(),
            ));
        }
        if !self.is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        serde_json::from_slice(&self.bytes)
            .map_err(|e| ApiError::InvalidJson(format!("request body is not valid JSON: {e}")))
    }

    /// The body as JSON, or `None` when there is none (for endpoints where it is optional).
    pub fn parse_optional(&self) -> Result<Option<Value>, ApiError> {
        if self.bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        self.parse().map(Some)
    }
}

impl<S: Send + Sync, const LIMIT: usize> FromRequest<S> for JsonBodyOf<LIMIT> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > LIMIT) {
            return Err(ApiError::PayloadTooLarge(LIMIT));
        }
        let is_json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                let mime = v
                    .split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase();
                mime == "application/json"
                    || (mime.starts_with("application/") && mime.ends_with("+json"))
            })
            .unwrap_or(false);
        let body: Body = req.into_body();
        let limited = http_body_util::Limited::new(body, LIMIT);
        let bytes = match limited.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e)
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some() =>
            {
                return Err(ApiError::PayloadTooLarge(LIMIT));
            }
            Err(_) => {
                return Err(ApiError::InvalidJson(
                    "could not read the request body".into(),
                ));
            }
        };
        Ok(JsonBodyOf { bytes, is_json })
    }
}

/// A username from the path; malformed → 400 naming `username`.
pub fn path_username(value: &str) -> Result<Username, ApiError> {
    Username::parse("username", value).map_err(ApiError::BadRequest)
}

/// An id from the path; malformed → 400 naming the parameter.
pub fn path_id(field: &str, value: &str) -> Result<ResourceId, ApiError> {
    ResourceId::parse(field, value).map_err(ApiError::BadRequest)
}

/// A query parameter error.
pub fn bad_query(field: &str, message: &str) -> ApiError {
    ApiError::BadRequest(FieldError::new(field, message))
}
