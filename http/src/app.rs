//! Turning a function's routes into the served application: the OpenAPI document at
//! `/openapi.json`, JSON errors for unknown paths and methods, and a tracing span per request.

use crate::error::ApiError;
use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem};
use utoipa::openapi::{OpenApi, ResponseBuilder};

/// `doc` with `GET /openapi.json` itself described.
pub fn document(mut doc: OpenApi) -> OpenApi {
    let operation = OperationBuilder::new()
        .summary(Some("This OpenAPI 3.1 document"))
        .tag("meta")
        .response(
            "200",
            ResponseBuilder::new().description("The document").build(),
        )
        .build();
    doc.paths.paths.insert(
        "/openapi.json".into(),
        PathItem::new(HttpMethod::Get, operation),
    );
    doc
}

/// The served application: `routes` (state attached), `/openapi.json`, JSON 404 and 405,
/// JSON bodies for axum's own rejections, and request tracing.
pub fn app(routes: axum::Router, doc: OpenApi) -> axum::Router {
    let doc = Arc::new(document(doc));
    routes
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let doc = Arc::clone(&doc);
                async move { Json(doc.as_ref().clone()) }
            }),
        )
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::middleware::map_response(json_errors))
        .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(
            |req: &axum::http::Request<axum::body::Body>| {
                let route = req
                    .extensions()
                    .get::<axum::extract::MatchedPath>()
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_default();
                tracing::info_span!("request", method = %req.method(), route, caller = tracing::field::Empty)
            },
        ))
}

/// Turns axum's plain-text rejections (bad path segments, ...) into the contract's JSON errors.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if (status.is_client_error() || status.is_server_error()) && !is_json {
        let code = match status {
            StatusCode::BAD_REQUEST => "bad_request",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            s if s.is_server_error() => "internal",
            _ => "request_rejected",
        };
        let message = status
            .canonical_reason()
            .unwrap_or("request rejected")
            .to_ascii_lowercase();
        let mut replaced = (
            status,
            Json(json!({"error": {"code": code, "message": message}})),
        )
            .into_response();
        if let Some(allow) = response.headers().get(header::ALLOW) {
            replaced.headers_mut().insert(header::ALLOW, allow.clone());
        }
        return replaced;
    }
    response
}
