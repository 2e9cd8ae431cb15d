//! A corpus of malformed requests across the API, table-driven: bad JSON, wrong types, unknown
//! fields, bad enum values, bad dates, bad ids and usernames in paths, bad query parameters,
//! missing required fields, negative and huge numbers, wrong content types, empty and
//! pathological bodies. Each answers the 4xx written next to it in the contract's error shape,
//! naming the field where there is one, and changes nothing: the whole store is dumped before
//! and after every request.

use axum::body::Body;
use herald_tests::{TestApp, WebhookReceiver};
use http::{Method, Request, StatusCode};
use serde_json::{Value, json};

/// Who sends a request.
#[derive(Debug, Clone, Copy)]
enum Who {
    Admin,
    Service,
    Alice,
}

/// What a request carries.
#[derive(Debug, Clone)]
enum Payload {
    /// No body, no content type.
    None,
    /// JSON with `Content-Type: application/json`.
    Json(Value),
    /// These bytes with this content type (`None`: no `Content-Type` header).
    Raw(Option<&'static str>, Vec<u8>),
}

/// One malformed request and the answer it must get.
struct Case {
    method: &'static str,
    path: String,
    who: Who,
    payload: Payload,
    status: StatusCode,
    code: &'static str,
    /// The field the error names (`None`: the error is about the request as a whole).
    field: Option<&'static str>,
}

fn case(
    method: &'static str,
    path: impl Into<String>,
    who: Who,
    payload: Payload,
    expect: (StatusCode, &'static str, Option<&'static str>),
) -> Case {
    Case {
        method,
        path: path.into(),
        who,
        payload,
        status: expect.0,
        code: expect.1,
        field: expect.2,
    }
}

fn json_body(value: Value) -> Payload {
    Payload::Json(value)
}

fn raw(content_type: &'static str, bytes: &[u8]) -> Payload {
    Payload::Raw(Some(content_type), bytes.to_vec())
}

const INVALID_JSON: (StatusCode, &str, Option<&str>) =
    (StatusCode::BAD_REQUEST, "invalid_json", None);
const MEDIA_TYPE: (StatusCode, &str, Option<&str>) = (
    StatusCode::UNSUPPORTED_MEDIA_TYPE,
    "unsupported_media_type",
    None,
);

/// A validation error (422) naming `field`.
fn invalid(field: &'static str) -> (StatusCode, &'static str, Option<&'static str>) {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
        Some(field),
    )
}

/// A malformed path segment or query parameter (400) naming `field`.
fn bad_param(field: &'static str) -> (StatusCode, &'static str, Option<&'static str>) {
    (StatusCode::BAD_REQUEST, "bad_request", Some(field))
}

fn engagement(extra: Value) -> Value {
    merged(
        json!({"product_id": 1, "name": "Q1", "target_start": "2026-12-01",
            "target_end": "2026-12-05"}),
        extra,
    )
}

fn finding(extra: Value) -> Value {
    merged(
        json!({"product_id": 1, "title": "XSS", "severity": "High",
            "sla_expiration_date": "2026-12-31"}),
        extra,
    )
}

fn event(extra: Value) -> Value {
    merged(json!({"type": "scan_added", "title": "Scan"}), extra)
}

/// `base` with `extra`'s fields set (a `null` in `extra` removes the field).
fn merged(mut base: Value, extra: Value) -> Value {
    if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            if v.is_null() {
                b.remove(k);
            } else {
                b.insert(k.clone(), v.clone());
            }
        }
    }
    base
}

fn corpus(webhook_path: &str, receiver: &WebhookReceiver) -> Vec<Case> {
    use Who::{Admin, Alice, Service};
    let hook_url = receiver.url("/new");
    let deeply_nested = "[".repeat(5_000) + &"]".repeat(5_000);
    let long_username = "a".repeat(151);
    let long_id = "1".repeat(129);
    vec![
        // ---- Bodies that are not JSON, or not the JSON expected.
        case(
            "PUT",
            "/v1/system/settings",
            Admin,
            raw("application/json", b"{\"team_name\":"),
            INVALID_JSON,
        ),
        case(
            "PUT",
            "/v1/notifications/system",
            Admin,
            raw(
                "application/json",
                b"{\"events\": {\"scan_added\": [\"alert\",]}}",
            ),
            INVALID_JSON,
        ),
        case(
            "POST",
            "/v1/events",
            Service,
            raw("application/json", b"not json"),
            INVALID_JSON,
        ),
        case(
            "PUT",
            "/v1/users/carol",
            Service,
            raw("application/json", b"{'email': 'c@example.com'}"),
            INVALID_JSON,
        ),
        case(
            "POST",
            "/v1/webhooks",
            Admin,
            raw("application/json", b"{\"name\": \"x\"} {\"name\": \"y\"}"),
            INVALID_JSON,
        ),
        case(
            "PUT",
            "/v1/system/settings",
            Admin,
            raw("application/json", b"{\"team_name\": \"\xff\xfe\"}"),
            INVALID_JSON,
        ),
        case(
            "PUT",
            "/v1/system/settings",
            Admin,
            raw("application/json", b"\xef\xbb\xbf{\"team_name\": \"x\"}"),
            INVALID_JSON,
        ),
        case(
            "PUT",
            "/v1/notifications/template",
            Admin,
            raw("application/json", deeply_nested.as_bytes()),
            INVALID_JSON,
        ),
        case(
            "PUT",
            "/v1/products/2",
            Service,
            raw(
                "application/json",
                b"{\"name\": \"X\", \"product_type_id\": NaN}",
            ),
            INVALID_JSON,
        ),
        // Empty bodies where one is required.
        case(
            "PUT",
            "/v1/system/settings",
            Admin,
            raw("application/json", b""),
            INVALID_JSON,
        ),
        case(
            "POST",
            "/v1/events",
            Service,
            raw("application/json", b""),
            INVALID_JSON,
        ),
        case(
            "PUT",
            "/v1/engagements/2",
            Service,
            raw("application/json", b"  \n\t "),
            INVALID_JSON,
        ),
        case(
            "POST",
            "/v1/scheduler/run",
            Admin,
            Payload::None,
            INVALID_JSON,
        ),
        case(
            "PUT",
            "/v1/users/alice/notifications",
            Alice,
            Payload::None,
            INVALID_JSON,
        ),
        // JSON that is not an object.
        case(
            "PUT",
            "/v1/notifications/template",
            Admin,
            json_body(json!([])),
            (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", None),
        ),
        case(
            "PUT",
            "/v1/system/settings",
            Admin,
            json_body(json!("team_name")),
            (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", None),
        ),
        case(
            "POST",
            "/v1/events",
            Service,
            json_body(json!(null)),
            (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", None),
        ),
        case(
            "POST",
            "/v1/webhooks",
            Alice,
            json_body(json!(42)),
            (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", None),
        ),
        // ---- Wrong content types.
        case(
            "PUT",
            "/v1/system/settings",
            Admin,
            raw("text/plain", b"{\"team_name\": \"x\"}"),
            MEDIA_TYPE,
        ),
        case(
            "POST",
            "/v1/events",
            Service,
            raw(
                "application/x-www-form-urlencoded",
                b"type=scan_added&title=x",
            ),
            MEDIA_TYPE,
        ),
        case(
            "PUT",
            "/v1/products/2",
            Service,
            Payload::Raw(None, b"{\"name\": \"X\", \"product_type_id\": 1}".to_vec()),
            MEDIA_TYPE,
        ),
        case(
            "PUT",
            "/v1/users/carol",
            Service,
            raw("application/jsonp", b"{\"email\": \"c@example.com\"}"),
            MEDIA_TYPE,
        ),
        case(
            "POST",
            "/v1/webhooks",
            Admin,
            raw("multipart/form-data; boundary=x", b"--x--"),
            MEDIA_TYPE,
        ),
        // ---- Wrong types.
        case(
            "PUT",
            "/v1/system/settings",
            Admin,
            json_body(json!({"enable_mail_notifications": "yes"})),
            invalid("enable_mail_notifications"),
        ),
        case(
            "PUT",
            "/v1/system/settings",
            Admin,
            json_body(json!({"webhooks_notifications_timeout": "10"})),
            invalid("webhooks_notifications_timeout"),
        ),
        case(
            "PUT",
            "/v1/system/settings",
            Admin,
            json_body(json!({"team_name": 5})),
            invalid("team_name"),
        ),
        case(
            "PUT",
            "/v1/system/settings",
            Admin,
            json_body(json!({"max_alerts_per_user": 1.5})),
            invalid("max_alerts_per_user"),
        ),
        case(
            "PUT",
            "/v1/system/settings",
            Admin,
            json_body(json!({"system_level_trump": "scan_added"})),
            invalid("system_level_trump"),
        ),
        case(
            "PUT",
            "/v1/users/carol",
            Service,
            json_body(json!({"is_admin": "true"})),
            invalid("is_admin"),
        ),
        case(
            "PUT",
            "/v1/users/carol",
            Service,
            json_body(json!({"email": ["c@example.com"]})),
            invalid("email"),
        ),
        case(
            "PUT",
            "/v1/products/2",
            Service,
            json_body(json!({"name": "X", "product_type_id": true})),
            invalid("product_type_id"),
        ),
        case(
            "PUT",
            "/v1/product-types/3",
            Service,
            json_body(json!({"name": {"en": "Web"}})),
            invalid("name"),
        ),
        case(
            "POST",
            "/v1/events",
            Service,
            json_body(event(json!({"title": 5}))),
            invalid("title"),
        ),
        case(
            "POST",
            "/v1/events",
            Service,
            json_body(event(json!({"recipients": "alice"}))),
            invalid("recipients"),
        ),
        case(
            "POST",
            "/v1/events",
            Service,
            json_body(event(json!({"no_users": "yes"}))),
            invalid("no_users"),
        ),
        case(
            "POST",
            "/v1/events",
            Service,
            json_body(event(json!({"id": {"a": 1}}))),
            invalid("id"),
        ),
        case(
            "PUT",
            "/v1/findings/2",
            Service,
            json_body(finding(json!({"active": "yes"}))),
            invalid("active"),
        ),
        case(
            "POST",
            "/v1/users/alice/alerts/read",
            Alice,
            json_body(json!({"ids": "all"})),
            invalid("ids"),
        ),
        case(
            "POST",
            "/v1/users/alice/alerts/read",
            Alice,
            json_body(json!({"ids": [1]})),
            invalid("ids[0]"),
        ),
        case(
            "PUT",
            "/v1/notifications/system",
            Admin,
            json_body(json!({"events": {"scan_added": "alert"}})),
            invalid("events.scan_added"),
        ),
        case(
            "PUT",
            "/v1/users/alice/notifications",
            Alice,
            json_body(json!({"events": {"scan_added": [1]}})),
            invalid("events.scan_added[0]"),
        ),
        case(
            "PUT",
            "/v1/users/alice/notifications",
            Alice,
            json_body(json!({"events": ["scan_added"]})),
            invalid("events"),
        ),
        case(
            "PUT",
            webhook_path,
            Alice,
            json_body(json!({"name": 5})),
            invalid("name"),
        ),
        case(
            "POST",
            "/v1/webhooks",
            Alice,
            json_body(json!({"name": "x", "url": ["http://a"]})),
            invalid("url"),
        ),
        // ---- Unknown fields.
        case(
            "PUT",
            "/v1/system/settings",
            Admin,
            json_body(json!({"team_nam": "x"})),
            invalid("team_nam"),
        ),
        case(
            "PUT",
            "/v1/notifications/system",
            Admin,
            json_body(json!({"event": {}})),
            invalid("event"),
        ),
        case(
            "POST",
            "/v1/events",
            Service,
            json_body(event(json!({"colour": "red"}))),
            invalid("colour"),
        ),
        case(
            "PUT",
            "/v1/engagements/2",
            Service,
            json_body(engagement(json!({"owner": "alice"}))),
            invalid("owner"),
        ),
        case(
            "POST",
            "/v1/webhooks",
            Admin,
            json_body(json!({"name": "x", "url": hook_url, "method": "GET"})),
            invalid("method"),
        ),
        case(
            "POST",
            "/v1/scheduler/run",
            Admin,
            json_body(json!({"time": "2026-11-27T07:30:00Z", "dry_run": true})),
            invalid("dry_run"),
        ),
        case(
            "PUT",
            "/v1/users/carol",
            Service,
            json_body(json!({"email": "c@example.com", "password": "x"})),
            invalid("password"),
        ),
        case(
            "PUT",
            "/v1/product-types/3",
            Service,
            json_body(json!({"name": "Web", "colour": "red"})),
            invalid("colour"),
        ),
        case(
            "POST",
            "/v1/users/alice/alerts/read",
            Alice,
            json_body(json!({"ids": [], "all": true})),
            invalid("all"),
        ),
        // ---- Values outside their enumeration.
        case(
            "PUT",
            "/v1/notifications/system",
            Admin,
            json_body(json!({"events": {"scan_added": ["pigeon"]}})),
            invalid("events.scan_added[0]"),
        ),
        case(
            "PUT",
            "/v1/notifications/system",
            Admin,
            json_body(json!({"events": {"no_such_event": ["alert"]}})),
            invalid("events.no_such_event"),
        ),
        case(
            "PUT",
            "/v1/users/alice/notifications",
            Alice,
            json_body(json!({"events": {"scan_added": ["msteams"]}})),
            invalid("events.scan_added[0]"),
        ),
        case(
            "PUT",
            "/v1/users/alice/notifications/products/1",
            Alice,
            json_body(json!({"events": {"scan_added": ["ALERT"]}})),
            invalid("events.scan_added[0]"),
        ),
        case(
            "POST",
            "/v1/events",
            Service,
            json_body(event(json!({"type": "Scan Added"}))),
            invalid("type"),
        ),
        case(
            "PUT",
            "/v1/findings/2",
            Service,
            json_body(finding(json!({"severity": "Catastrophic"}))),
            invalid("severity"),
        ),
        case(
            "PUT",
            "/v1/engagements/2",
            Service,
            json_body(engagement(json!({"status": "Paused"}))),
            invalid("status"),
        ),
        case(
            "POST",
            "/v1/scheduler/run",
            Admin,
            json_body(json!({"time": "2026-11-27T07:30:00Z", "checks": ["everything"]})),
            invalid("checks[0]"),
        ),
        case(
            "PUT",
            "/v1/system/settings",
            Admin,
            json_body(json!({"system_level_trump": ["nope"]})),
            invalid("system_level_trump[0]"),
        ),
        // ---- Dates and times.
        case(
            "PUT",
            "/v1/engagements/2",
            Service,
            json_body(engagement(json!({"target_start": "2026-13-01"}))),
            invalid("target_start"),
        ),
        case(
            "PUT",
            "/v1/engagements/2",
            Service,
            json_body(engagement(json!({"target_start": "01/12/2026"}))),
            invalid("target_start"),
        ),
        case(
            "PUT",
            "/v1/engagements/2",
            Service,
            json_body(engagement(json!({"target_end": "2026-11-30"}))),
            invalid("target_end"),
        ),
        case(
            "PUT",
            "/v1/findings/2",
            Service,
            json_body(finding(json!({"sla_expiration_date": "2026-02-30"}))),
            invalid("sla_expiration_date"),
        ),
        case(
            "PUT",
            "/v1/risk-acceptances/2",
            Service,
            json_body(json!({"product_id": 1, "name": "R", "expiration_date": 20_270_110})),
            invalid("expiration_date"),
        ),
        case(
            "POST",
            "/v1/scheduler/run",
            Admin,
            json_body(json!({"time": "yesterday"})),
            invalid("time"),
        ),
        case(
            "POST",
            "/v1/scheduler/run",
            Admin,
            json_body(json!({"time": "2026-11-27"})),
            invalid("time"),
        ),
        case(
            "POST",
            "/v1/scheduler/run",
            Admin,
            json_body(json!({"time": 1_764_230_400})),
            invalid("time"),
        ),
        // ---- Bad ids and usernames in paths.
        case(
            "PUT",
            "/v1/users/al%20ice",
            Service,
            json_body(json!({"email": "a@example.com"})),
            bad_param("username"),
        ),
        case(
            "GET",
            "/v1/users/al%2Fice",
            Service,
            Payload::None,
            bad_param("username"),
        ),
        case(
            "PUT",
            format!("/v1/users/{long_username}"),
            Service,
            json_body(json!({})),
            bad_param("username"),
        ),
        case(
            "DELETE",
            "/v1/users/%3Cscript%3E",
            Service,
            Payload::None,
            bad_param("username"),
        ),
        case(
            "PUT",
            "/v1/product-types/a%23b",
            Service,
            json_body(json!({"name": "x"})),
            bad_param("id"),
        ),
        case(
            "PUT",
            "/v1/products/..%2F..%2Fetc",
            Service,
            json_body(json!({"name": "X", "product_type_id": 1})),
            bad_param("id"),
        ),
        case(
            "GET",
            "/v1/users/alice/notifications/products/a%20b",
            Admin,
            Payload::None,
            bad_param("product_id"),
        ),
        case(
            "PUT",
            format!("/v1/engagements/{long_id}"),
            Service,
            json_body(engagement(json!({}))),
            bad_param("id"),
        ),
        case(
            "PUT",
            "/v1/products/1/members/bad%20user",
            Service,
            Payload::None,
            bad_param("username"),
        ),
        case(
            "DELETE",
            "/v1/product-types/1/members/%00",
            Service,
            Payload::None,
            bad_param("username"),
        ),
        case(
            "GET",
            "/v1/events/bad%20id",
            Service,
            Payload::None,
            bad_param("event_id"),
        ),
        case(
            "GET",
            "/v1/webhooks/not%20an%20id",
            Admin,
            Payload::None,
            (StatusCode::NOT_FOUND, "not_found", None),
        ),
        // ---- Bad query parameters.
        case(
            "GET",
            "/v1/users/alice/alerts?limit=0",
            Alice,
            Payload::None,
            bad_param("limit"),
        ),
        case(
            "GET",
            "/v1/users/alice/alerts?limit=101",
            Alice,
            Payload::None,
            bad_param("limit"),
        ),
        case(
            "GET",
            "/v1/users/alice/alerts?limit=-1",
            Alice,
            Payload::None,
            bad_param("limit"),
        ),
        case(
            "GET",
            "/v1/users/alice/alerts?limit=abc",
            Alice,
            Payload::None,
            bad_param("limit"),
        ),
        case(
            "GET",
            "/v1/users/alice/alerts?limit=99999999999999999999999",
            Alice,
            Payload::None,
            bad_param("limit"),
        ),
        case(
            "GET",
            "/v1/users/alice/alerts?unread_only=maybe",
            Alice,
            Payload::None,
            bad_param("unread_only"),
        ),
        case(
            "GET",
            "/v1/users/alice/alerts?cursor=garbage",
            Alice,
            Payload::None,
            bad_param("cursor"),
        ),
        case(
            "GET",
            "/v1/users/alice/notifications/effective?product_id=",
            Alice,
            Payload::None,
            bad_param("product_id"),
        ),
        case(
            "GET",
            "/v1/users/alice/notifications/effective?product_id=a%20b",
            Admin,
            Payload::None,
            bad_param("product_id"),
        ),
        // ---- Missing required fields.
        case(
            "PUT",
            "/v1/products/2",
            Service,
            json_body(json!({"name": "X"})),
            invalid("product_type_id"),
        ),
        case(
            "PUT",
            "/v1/product-types/3",
            Service,
            json_body(json!({})),
            invalid("name"),
        ),
        case(
            "POST",
            "/v1/events",
            Service,
            json_body(json!({"title": "x"})),
            invalid("type"),
        ),
        case(
            "POST",
            "/v1/events",
            Service,
            json_body(json!({"type": "scan_added"})),
            invalid("title"),
        ),
        case(
            "POST",
            "/v1/webhooks",
            Admin,
            json_body(json!({"name": "x"})),
            invalid("url"),
        ),
        case(
            "POST",
            "/v1/webhooks",
            Alice,
            json_body(json!({"url": hook_url})),
            invalid("name"),
        ),
        case(
            "PUT",
            "/v1/engagements/2",
            Service,
            json_body(engagement(json!({"target_end": null}))),
            invalid("target_end"),
        ),
        case(
            "PUT",
            "/v1/findings/2",
            Service,
            json_body(json!({"product_id": 1})),
            invalid("title"),
        ),
        case(
            "PUT",
            "/v1/risk-acceptances/2",
            Service,
            json_body(json!({"product_id": 1, "expiration_date": "2027-01-10"})),
            invalid("name"),
        ),
        case(
            "POST",
            "/v1/scheduler/run",
            Admin,
            json_body(json!({})),
            invalid("time"),
        ),
        // ---- Negative and huge numbers.
        case(
            "PUT",
            "/v1/system/settings",
            Admin,
            json_body(json!({"webhooks_notifications_timeout": -1})),
            invalid("webhooks_notifications_timeout"),
        ),
        case(
            "PUT",
            "/v1/system/settings",
            Admin,
            json_body(json!({"webhooks_notifications_timeout": 1e30})),
            invalid("webhooks_notifications_timeout"),
        ),
        case(
            "PUT",
            "/v1/system/settings",
            Admin,
            json_body(json!({"max_alerts_per_user": 0})),
            invalid("max_alerts_per_user"),
        ),
        case(
            "PUT",
            "/v1/system/settings",
            Admin,
            raw(
                "application/json",
                b"{\"engagement_auto_close_days\": 99999999999999999999999}",
            ),
            invalid("engagement_auto_close_days"),
        ),
        case(
            "PUT",
            "/v1/system/settings",
            Admin,
            json_body(json!({"risk_acceptance_notify_before_expiration": 366})),
            invalid("risk_acceptance_notify_before_expiration"),
        ),
        case(
            "POST",
            "/v1/events",
            Service,
            json_body(event(json!({"product_id": -3}))),
            invalid("product_id"),
        ),
        case(
            "PUT",
            "/v1/products/2",
            Service,
            json_body(json!({"name": "X", "product_type_id": 1.5})),
            invalid("product_type_id"),
        ),
        case(
            "PUT",
            "/v1/engagements/2",
            Service,
            json_body(engagement(json!({"product_id": -1}))),
            invalid("product_id"),
        ),
        case(
            "PUT",
            "/v1/products/2",
            Service,
            raw(
                "application/json",
                b"{\"name\": \"X\", \"product_type_id\": 1e400}",
            ),
            INVALID_JSON,
        ),
        // ---- Other values a field cannot hold.
        case(
            "PUT",
            "/v1/users/carol",
            Service,
            json_body(json!({"username": "dave", "email": "d@example.com"})),
            invalid("username"),
        ),
        case(
            "PUT",
            "/v1/users/carol",
            Service,
            json_body(json!({"email": "not-an-email"})),
            invalid("email"),
        ),
        case(
            "PUT",
            "/v1/engagements/2",
            Service,
            json_body(engagement(json!({"id": 3}))),
            invalid("id"),
        ),
        case(
            "PUT",
            "/v1/product-types/3",
            Service,
            json_body(json!({"name": "   "})),
            invalid("name"),
        ),
        case(
            "POST",
            "/v1/webhooks",
            Admin,
            json_body(json!({"name": "x", "url": "ftp://example.com/"})),
            invalid("url"),
        ),
        case(
            "POST",
            "/v1/webhooks",
            Admin,
            json_body(json!({"name": "x", "url": hook_url, "secret": "not-a-secret"})),
            invalid("secret"),
        ),
        case(
            "POST",
            "/v1/webhooks",
            Admin,
            json_body(json!({"name": "x", "url": hook_url, "owner": "bad user"})),
            invalid("owner"),
        ),
        case(
            "POST",
            "/v1/webhooks",
            Admin,
            json_body(json!({"name": "x".repeat(101), "url": hook_url})),
            invalid("name"),
        ),
        case(
            "POST",
            "/v1/events",
            Service,
            json_body(event(json!({"url": "javascript:alert(1)"}))),
            invalid("url"),
        ),
        case(
            "PUT",
            "/v1/system/settings",
            Admin,
            json_body(json!({"email_from": ""})),
            invalid("email_from"),
        ),
        case(
            "PUT",
            "/v1/system/settings",
            Admin,
            json_body(json!({"site_url": "dojo.example.com"})),
            invalid("site_url"),
        ),
        // ---- Methods a path does not serve.
        case(
            "PATCH",
            "/v1/system/settings",
            Admin,
            json_body(json!({"team_name": "x"})),
            (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", None),
        ),
        case(
            "DELETE",
            "/v1/system/settings",
            Admin,
            Payload::None,
            (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", None),
        ),
        case(
            "POST",
            "/v1/users/carol",
            Service,
            json_body(json!({"email": "c@example.com"})),
            (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", None),
        ),
    ]
}

fn request(app: &TestApp, c: &Case) -> Request<Body> {
    let token = match c.who {
        Who::Admin => app.token("root", settings_api::Role::Admin),
        Who::Service => app.token("platform", settings_api::Role::Service),
        Who::Alice => app.token("alice", settings_api::Role::User),
    };
    let builder = Request::builder()
        .method(Method::from_bytes(c.method.as_bytes()).unwrap_or(Method::GET))
        .uri(&c.path)
        .header("authorization", format!("Bearer {token}"));
    let built = match &c.payload {
        Payload::None => builder.body(Body::empty()),
        Payload::Json(value) => builder
            .header("content-type", "application/json")
            .body(Body::from(value.to_string())),
        Payload::Raw(content_type, bytes) => match content_type {
            Some(ct) => builder
                .header("content-type", *ct)
                .body(Body::from(bytes.clone())),
            None => builder.body(Body::from(bytes.clone())),
        },
    };
    built.unwrap_or_else(|e| panic!("bad test request {} {}: {e}", c.method, c.path))
}

#[tokio::test]
async fn bad_input_corpus_answers_4xx_in_the_error_shape_naming_the_field_and_changes_nothing() {
    let receiver = WebhookReceiver::start().await;
    let app = TestApp::on_disk();
    let webhook_path = app.seed_alice(&receiver).await;
    let cases = corpus(&webhook_path, &receiver);
    assert!(
        cases.len() >= 50,
        "the corpus has only {} entries",
        cases.len()
    );
    let before = app.store_dump();
    let pings = receiver.requests().len();
    let mut failures = Vec::new();
    for c in &cases {
        let what = format!("{} {} as {:?} ({:?})", c.method, c.path, c.who, c.payload);
        let what: String = what.chars().take(300).collect();
        let r = app.send_raw(request(&app, c)).await;
        let error = &r.body["error"];
        let message = error["message"].as_str().unwrap_or_default();
        let mut problems = Vec::new();
        if !r.status.is_client_error() {
            problems.push(format!("status {} is not a 4xx", r.status));
        }
        if r.status != c.status {
            problems.push(format!("status {} instead of {}", r.status, c.status));
        }
        if error["code"] != c.code {
            problems.push(format!("code {} instead of {}", error["code"], c.code));
        }
        if message.is_empty() {
            problems.push("no message".to_owned());
        }
        let shape_keys: Vec<&String> = r
            .body
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        if shape_keys != ["error"] {
            problems.push(format!(
                "top-level keys {shape_keys:?} instead of [\"error\"]"
            ));
        }
        match c.field {
            Some(field) => {
                if error["field"] != field {
                    problems.push(format!("field {} instead of {field}", error["field"]));
                }
                if !message.starts_with(&format!("{field}:")) {
                    problems.push(format!("the message does not name {field}"));
                }
            }
            None => {
                if error.get("field").is_some() {
                    problems.push(format!("unexpected field {}", error["field"]));
                }
            }
        }
        if !problems.is_empty() {
            failures.push(format!("{what}: {} — {}", problems.join("; "), r.raw));
        }
        let after = app.store_dump();
        if after != before {
            let changed: Vec<&String> = after.iter().filter(|l| !before.contains(l)).collect();
            let removed: Vec<&String> = before.iter().filter(|l| !after.contains(l)).collect();
            panic!("{what} changed the store: added {changed:?}, removed {removed:?}");
        }
    }
    assert_eq!(
        receiver.requests().len(),
        pings,
        "a malformed webhook request was pinged"
    );
    assert!(
        failures.is_empty(),
        "{} of {} malformed requests were answered wrongly:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
