//! `POST /v1/defectdojo/webhook`: DefectDojo's own webhook posts, read by
//! [`herald_shared::domain::defectdojo`] and accepted as `POST /v1/events` accepts an event.

use crate::state::{IntakeState, intake_error, new_event_id};
use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use herald_http::auth::Caller;
use herald_http::error::{ApiError, ErrorBody};
use herald_http::extract::{JsonBodyOf, MAX_DEFECTDOJO_BODY_BYTES};
use herald_shared::domain::FieldError;
use herald_shared::domain::defectdojo::{
    EVENT_HEADER, INSTANCE_HEADER, Inbound, InboundError, from_webhook,
};
use herald_shared::intake::{IntakeAnswer, accept_event};
use serde::Serialize;
use utoipa::ToSchema;

/// The answer to a post Herald receives but routes nothing for.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotRouted {
    /// `ping`, or `personal_copy` (a user's own copy of a broadcast).
    pub outcome: &'static str,
    /// The event named by `X-DefectDojo-Event`.
    pub event: String,
    /// Why nothing was routed, in a sentence.
    pub message: String,
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Receives a webhook post from DefectDojo. Its endpoint's custom header is `Authorization:
/// Bearer <key>` with the system setting `defectdojo_webhook_key` (DefectDojo keeps at most
/// 100 characters of a header value, too few for a token); a service or administrator token
/// is accepted too where it fits (`herald-local`). The event comes from `X-DefectDojo-Event`;
/// `X-DefectDojo-Instance` must match the system setting `defectdojo_instance` when one is
/// set. A `ping` and a user's own copy of a broadcast answer 200 and record nothing; an event
/// answers 202 as `POST /v1/events` does. Every post is a new event.
#[utoipa::path(post, path = "/v1/defectdojo/webhook", tag = "defectdojo", security(("bearer" = [])),
    params(("X-DefectDojo-Event" = String, Header, description = "The DefectDojo event, e.g. scan_added"),
        ("X-DefectDojo-Instance" = Option<String>, Header, description = "The DefectDojo site URL")),
    request_body(content = Object, description = "DefectDojo's webhook body", example = json!({
        "description": "Event scan_added has occurred.", "title": "Created/Updated 1 findings for Shop: Q3: ZAP Scan",
        "user": null, "url_ui": "https://defectdojo.example.com/test/99",
        "product_type": {"name": "Web Apps", "id": 1}, "product": {"name": "Shop", "id": 7},
        "engagement": {"name": "Q3", "id": 12}, "test": {"title": "ZAP Scan", "id": 99}, "finding_count": 1,
        "findings": {"new": [{"id": 101, "title": "XSS", "severity": "High"}], "reactivated": [], "mitigated": [], "untouched": []}
    })),
    responses((status = 202, body = IntakeAnswer), (status = 200, body = NotRouted),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn post_defectdojo_webhook(
    State(state): State<IntakeState>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    // The caller first (the webhook key, else a token), then the body: nobody unauthorized
    // has Herald read up to 4 MiB.
    let (mut parts, body) = request.into_parts();
    let system = state.store.system_settings().await?;
    if !system.is_defectdojo_webhook_key(header(&parts.headers, "authorization")) {
        Caller::from_request_parts(&mut parts, &state)
            .await?
            .require_service_or_admin()?;
    }
    let headers = parts.headers.clone();
    let body = JsonBodyOf::<MAX_DEFECTDOJO_BODY_BYTES>::from_request(
        axum::extract::Request::from_parts(parts, body),
        &state,
    )
    .await?;
    let event_header = match headers.get(EVENT_HEADER) {
        Some(value) if value.to_str().is_err() => {
            return Err(ApiError::BadRequest(FieldError::new(
                EVENT_HEADER,
                "must be an event name in ASCII",
            )));
        }
        _ => header(&headers, EVENT_HEADER),
    };
    if !system.accepts_defectdojo_instance(header(&headers, INSTANCE_HEADER)) {
        return Err(ApiError::Forbidden(format!(
            "{INSTANCE_HEADER} does not name the DefectDojo this Herald accepts (system setting defectdojo_instance)"
        )));
    }
    let body = body.parse()?;
    let inbound = from_webhook(event_header, &body, new_event_id).map_err(|e| match e {
        InboundError::Header(e) => ApiError::BadRequest(e),
        InboundError::Body(e) => ApiError::Validation(e),
    })?;
    let not_routed = |outcome, event: String, message: String| {
        (
            StatusCode::OK,
            Json(NotRouted {
                outcome,
                event,
                message,
            }),
        )
            .into_response()
    };
    match inbound {
        Inbound::Ping => Ok(not_routed(
            "ping",
            "ping".into(),
            "Herald receives this endpoint's posts; the ping is not recorded".into(),
        )),
        Inbound::PersonalCopy { event_type, owner } => Ok(not_routed(
            "personal_copy",
            event_type,
            format!(
                "this is {owner}'s own copy of a broadcast; Herald routes the system endpoint's copy by its own settings, so nothing is routed from this one"
            ),
        )),
        Inbound::Event(event) => {
            let answer: IntakeAnswer = accept_event(
                state.store.as_ref(),
                state.queue.as_ref(),
                *event,
                state.clock.now_ms(),
            )
            .await
            .map_err(intake_error)?;
            Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
        }
    }
}
