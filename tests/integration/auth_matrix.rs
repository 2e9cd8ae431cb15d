//! Every route × every kind of caller, generated from the router's own OpenAPI route list so
//! that a new route cannot be forgotten: a route missing from [`POLICY`] fails the test.

use base64::Engine;
use herald_tests::{
    TEST_SECRET, TestApp, TestResponse, WebhookReceiver, now, scheduled_records, send_to,
};
use http::{Method, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use settings_api::Role;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Allowed {
    /// No token needed.
    Anyone,
    /// Any valid token.
    AnyRole,
    /// Administrators.
    Admin,
    /// The platform's service account and administrators.
    ServiceOrAdmin,
    /// The user named in the path, and administrators.
    SelfOrAdmin,
    /// The user named in the path, the service account and administrators.
    SelfServiceOrAdmin,
    /// Administrators and users (each for their own things); not the service account.
    PersonOrAdmin,
    /// Administrators and the user who owns the thing; another user gets 404, as if it did
    /// not exist; the service account 403.
    OwnerOrAdmin,
}

/// The access policy of every route, as the contract states it.
const POLICY: &[(&str, &str, Allowed)] = &[
    ("GET", "/health", Allowed::Anyone),
    ("GET", "/openapi.json", Allowed::Anyone),
    ("GET", "/v1/event-types", Allowed::AnyRole),
    ("GET", "/v1/system/settings", Allowed::Admin),
    ("PUT", "/v1/system/settings", Allowed::Admin),
    ("GET", "/v1/notifications/system", Allowed::Admin),
    ("PUT", "/v1/notifications/system", Allowed::Admin),
    ("GET", "/v1/notifications/template", Allowed::Admin),
    ("PUT", "/v1/notifications/template", Allowed::Admin),
    (
        "GET",
        "/v1/users/{username}/notifications",
        Allowed::SelfOrAdmin,
    ),
    (
        "PUT",
        "/v1/users/{username}/notifications",
        Allowed::SelfOrAdmin,
    ),
    (
        "GET",
        "/v1/users/{username}/notifications/products/{product_id}",
        Allowed::SelfOrAdmin,
    ),
    (
        "PUT",
        "/v1/users/{username}/notifications/products/{product_id}",
        Allowed::SelfOrAdmin,
    ),
    (
        "DELETE",
        "/v1/users/{username}/notifications/products/{product_id}",
        Allowed::SelfOrAdmin,
    ),
    (
        "GET",
        "/v1/users/{username}/notifications/effective",
        Allowed::SelfOrAdmin,
    ),
    ("GET", "/v1/users/{username}/products", Allowed::SelfOrAdmin),
    ("GET", "/v1/deliveries", Allowed::Admin),
    ("POST", "/v1/deliveries/replay", Allowed::Admin),
    ("GET", "/v1/users/{username}", Allowed::SelfServiceOrAdmin),
    ("PUT", "/v1/users/{username}", Allowed::ServiceOrAdmin),
    ("DELETE", "/v1/users/{username}", Allowed::ServiceOrAdmin),
    ("GET", "/v1/product-types/{id}", Allowed::ServiceOrAdmin),
    ("PUT", "/v1/product-types/{id}", Allowed::ServiceOrAdmin),
    ("DELETE", "/v1/product-types/{id}", Allowed::ServiceOrAdmin),
    (
        "PUT",
        "/v1/product-types/{id}/members/{username}",
        Allowed::ServiceOrAdmin,
    ),
    (
        "DELETE",
        "/v1/product-types/{id}/members/{username}",
        Allowed::ServiceOrAdmin,
    ),
    ("GET", "/v1/products/{id}", Allowed::ServiceOrAdmin),
    ("PUT", "/v1/products/{id}", Allowed::ServiceOrAdmin),
    ("DELETE", "/v1/products/{id}", Allowed::ServiceOrAdmin),
    (
        "PUT",
        "/v1/products/{id}/members/{username}",
        Allowed::ServiceOrAdmin,
    ),
    (
        "DELETE",
        "/v1/products/{id}/members/{username}",
        Allowed::ServiceOrAdmin,
    ),
    ("POST", "/v1/events", Allowed::ServiceOrAdmin),
    ("POST", "/v1/defectdojo/webhook", Allowed::ServiceOrAdmin),
    ("POST", "/v1/defectdojo/sync", Allowed::Admin),
    ("GET", "/v1/events/{event_id}", Allowed::ServiceOrAdmin),
    ("GET", "/v1/users/{username}/alerts", Allowed::SelfOrAdmin),
    (
        "DELETE",
        "/v1/users/{username}/alerts",
        Allowed::SelfOrAdmin,
    ),
    (
        "GET",
        "/v1/users/{username}/alerts/count",
        Allowed::SelfOrAdmin,
    ),
    (
        "POST",
        "/v1/users/{username}/alerts/read",
        Allowed::SelfOrAdmin,
    ),
    (
        "DELETE",
        "/v1/users/{username}/alerts/{id}",
        Allowed::SelfOrAdmin,
    ),
    ("GET", "/v1/webhooks", Allowed::PersonOrAdmin),
    ("POST", "/v1/webhooks", Allowed::PersonOrAdmin),
    ("GET", "/v1/webhooks/{id}", Allowed::OwnerOrAdmin),
    ("PUT", "/v1/webhooks/{id}", Allowed::OwnerOrAdmin),
    ("DELETE", "/v1/webhooks/{id}", Allowed::OwnerOrAdmin),
    ("GET", "/v1/engagements/{id}", Allowed::ServiceOrAdmin),
    ("PUT", "/v1/engagements/{id}", Allowed::ServiceOrAdmin),
    ("DELETE", "/v1/engagements/{id}", Allowed::ServiceOrAdmin),
    ("GET", "/v1/findings/{id}", Allowed::ServiceOrAdmin),
    ("PUT", "/v1/findings/{id}", Allowed::ServiceOrAdmin),
    ("DELETE", "/v1/findings/{id}", Allowed::ServiceOrAdmin),
    ("GET", "/v1/risk-acceptances/{id}", Allowed::ServiceOrAdmin),
    ("PUT", "/v1/risk-acceptances/{id}", Allowed::ServiceOrAdmin),
    (
        "DELETE",
        "/v1/risk-acceptances/{id}",
        Allowed::ServiceOrAdmin,
    ),
    ("POST", "/v1/scheduler/run", Allowed::Admin),
];

/// Every (method, path template) the router serves, read from its OpenAPI document.
pub fn router_routes() -> Vec<(String, String)> {
    let doc = serde_json::to_value(herald_local::openapi()).unwrap_or_default();
    let mut routes = Vec::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, item) in paths {
            let methods: Vec<&str> = ["get", "put", "post", "delete", "patch"]
                .into_iter()
                .filter(|m| item.get(*m).is_some())
                .collect();
            if methods.is_empty() && path == "/openapi.json" {
                routes.push(("GET".to_owned(), path.clone()));
            }
            for m in methods {
                routes.push((m.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    routes
}

/// The kinds of caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallerKind {
    Admin,
    Service,
    TheUserThemself,
    AnotherUser,
    Anonymous,
    Forged,
    Expired,
    NotYetValid,
    AlgNone,
    WrongAlgorithm,
    MissingRole,
    UnknownRole,
    Garbage,
    /// `alg: RS256` in the header, signed with HMAC-SHA256 and the shared secret (the
    /// public-key/HMAC confusion).
    KeyConfusion,
    /// `alg: none` in the header, with a valid HMAC-SHA256 signature after it.
    AlgNoneSigned,
    /// A valid signature, but no `exp`.
    MissingExpiry,
    /// A valid signature, `role: admin`, and an empty `sub`.
    EmptySubject,
}

const CALLERS: [CallerKind; 17] = [
    CallerKind::Admin,
    CallerKind::Service,
    CallerKind::TheUserThemself,
    CallerKind::AnotherUser,
    CallerKind::Anonymous,
    CallerKind::Forged,
    CallerKind::Expired,
    CallerKind::NotYetValid,
    CallerKind::AlgNone,
    CallerKind::WrongAlgorithm,
    CallerKind::MissingRole,
    CallerKind::UnknownRole,
    CallerKind::Garbage,
    CallerKind::KeyConfusion,
    CallerKind::AlgNoneSigned,
    CallerKind::MissingExpiry,
    CallerKind::EmptySubject,
];

fn sign(claims: &Value, algorithm: Algorithm, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(algorithm),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap_or_default()
}

/// A token with `alg: none` and no signature.
fn unsigned(claims: &Value) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.",
        b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
        b64.encode(claims.to_string())
    )
}

/// `claims` under the raw JSON `header`, signed with HMAC-SHA256 and the test secret whatever
/// the header says.
fn hmac_signed(header: &str, claims: &Value) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let message = format!("{}.{}", b64.encode(header), b64.encode(claims.to_string()));
    let signature = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(TEST_SECRET),
        Algorithm::HS256,
    )
    .unwrap_or_default();
    format!("{message}.{signature}")
}

fn token_for(app: &TestApp, caller: CallerKind) -> Option<String> {
    let alice = |extra: Value| {
        let mut claims = json!({"sub": "alice", "role": "user", "exp": now() + 600});
        if let (Some(c), Some(e)) = (claims.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                c.insert(k.clone(), v.clone());
            }
        }
        claims
    };
    match caller {
        CallerKind::Admin => Some(app.token("root", Role::Admin)),
        CallerKind::Service => Some(app.token("platform", Role::Service)),
        CallerKind::TheUserThemself => Some(app.token("alice", Role::User)),
        CallerKind::AnotherUser => Some(app.token("bob", Role::User)),
        CallerKind::Anonymous => None,
        CallerKind::Forged => Some(sign(
            &alice(json!({"role": "admin"})),
            Algorithm::HS256,
            b"not-the-secret-not-the-secret-123",
        )),
        CallerKind::Expired => Some(sign(
            &alice(json!({"exp": now() - 3600})),
            Algorithm::HS256,
            TEST_SECRET,
        )),
        CallerKind::NotYetValid => Some(sign(
            &alice(json!({"nbf": now() + 3600})),
            Algorithm::HS256,
            TEST_SECRET,
        )),
        CallerKind::AlgNone => Some(unsigned(&alice(json!({"role": "admin"})))),
        CallerKind::WrongAlgorithm => Some(sign(&alice(json!({})), Algorithm::HS384, TEST_SECRET)),
        CallerKind::MissingRole => Some(sign(
            &json!({"sub": "alice", "exp": now() + 600}),
            Algorithm::HS256,
            TEST_SECRET,
        )),
        CallerKind::UnknownRole => Some(sign(
            &alice(json!({"role": "superuser"})),
            Algorithm::HS256,
            TEST_SECRET,
        )),
        CallerKind::Garbage => Some("not.a.token".to_owned()),
        CallerKind::KeyConfusion => Some(hmac_signed(
            r#"{"alg":"RS256","typ":"JWT"}"#,
            &alice(json!({"role": "admin"})),
        )),
        CallerKind::AlgNoneSigned => Some(hmac_signed(
            r#"{"alg":"none","typ":"JWT"}"#,
            &alice(json!({"role": "admin"})),
        )),
        CallerKind::MissingExpiry => Some(sign(
            &json!({"sub": "root", "role": "admin"}),
            Algorithm::HS256,
            TEST_SECRET,
        )),
        CallerKind::EmptySubject => Some(sign(
            &json!({"sub": "", "role": "admin", "exp": now() + 600}),
            Algorithm::HS256,
            TEST_SECRET,
        )),
    }
}

fn expected_allowed(policy: Allowed, caller: CallerKind) -> bool {
    use CallerKind as C;
    matches!(
        (policy, caller),
        (Allowed::Anyone, _)
            | (
                Allowed::AnyRole,
                C::Admin | C::Service | C::TheUserThemself | C::AnotherUser
            )
            | (Allowed::Admin, C::Admin)
            | (Allowed::ServiceOrAdmin, C::Admin | C::Service)
            | (Allowed::SelfOrAdmin, C::Admin | C::TheUserThemself)
            | (
                Allowed::SelfServiceOrAdmin,
                C::Admin | C::Service | C::TheUserThemself
            )
            | (
                Allowed::PersonOrAdmin,
                C::Admin | C::TheUserThemself | C::AnotherUser
            )
            | (Allowed::OwnerOrAdmin, C::Admin | C::TheUserThemself)
    )
}

/// What `caller` should hear from a route under `policy`: `2xx`, `404`, `403` or `401`.
fn expected_answer(policy: Allowed, caller: CallerKind) -> &'static str {
    if expected_allowed(policy, caller) {
        "2xx"
    } else if policy == Allowed::OwnerOrAdmin && caller == CallerKind::AnotherUser {
        "404"
    } else if has_valid_token(caller) {
        "403"
    } else {
        "401"
    }
}

/// Whether `response` is the `expected` answer, with the matching error code.
fn answers_as_expected(response: &TestResponse, expected: &str) -> bool {
    match expected {
        "2xx" => response.status.is_success(),
        "404" => response.status == StatusCode::NOT_FOUND && response.error_code() == "not_found",
        "403" => response.status == StatusCode::FORBIDDEN && response.error_code() == "forbidden",
        _ => response.status == StatusCode::UNAUTHORIZED && response.error_code() == "unauthorized",
    }
}

fn has_valid_token(caller: CallerKind) -> bool {
    matches!(
        caller,
        CallerKind::Admin
            | CallerKind::Service
            | CallerKind::TheUserThemself
            | CallerKind::AnotherUser
    )
}

/// [`TestApp::seed_alice`], and an empty product type 2 with bob as its member.
async fn seeded_app(receiver: &WebhookReceiver) -> TestApp {
    let app = TestApp::with_private_targets()
        .with_empty_defectdojo()
        .await;
    app.seed_alice(receiver).await;
    app.service_ok(
        Method::PUT,
        "/v1/product-types/2",
        Some(&json!({"name": "Empty"})),
    )
    .await;
    app.service_ok(Method::PUT, "/v1/product-types/2/members/bob", None)
        .await;
    app
}

/// The path of alice's webhook.
async fn seeded_webhook_path(app: &TestApp) -> String {
    let list = app.user("alice", Method::GET, "/v1/webhooks", None).await;
    let id = list.body["items"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!id.is_empty(), "alice has no webhook: {}", list.body);
    format!("/v1/webhooks/{id}")
}

/// The path of alice's alert for the seed event.
async fn seeded_alert_path(app: &TestApp) -> String {
    let list = app.admin(Method::GET, "/v1/users/alice/alerts", None).await;
    let id = list.body["items"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        !id.is_empty(),
        "the seed event gave alice no alert: {}",
        list.body
    );
    format!("/v1/users/alice/alerts/{id}")
}

/// `template` with the seeded ids filled in.
async fn seeded_path(app: &TestApp, template: &str) -> String {
    if template == "/v1/users/{username}/alerts/{id}" {
        seeded_alert_path(app).await
    } else if template == "/v1/webhooks/{id}" {
        seeded_webhook_path(app).await
    } else {
        concrete(template)
    }
}

fn concrete(template: &str) -> String {
    if template.starts_with("/v1/product-types/") {
        // Product type 2 has no products (so it can be deleted) and bob as a member.
        return template.replace("{id}", "2").replace("{username}", "bob");
    }
    template
        .replace("{username}", "alice")
        .replace("{product_id}", "1")
        .replace("{event_id}", "seed")
        .replace("{id}", "1")
        // A list needs its status.
        .replace("/v1/deliveries", "/v1/deliveries?status=dead")
        .replace("?status=dead/replay", "/replay")
}

/// The headers a route needs besides the token: DefectDojo names its event in one.
fn extra_headers(path: &str) -> &'static [(&'static str, &'static str)] {
    if path == "/v1/defectdojo/webhook" {
        &[("x-defectdojo-event", "product_added")]
    } else {
        &[]
    }
}

fn body_for(method: &str, template: &str, receiver: &WebhookReceiver) -> Option<Value> {
    if method == "POST" && template == "/v1/webhooks" {
        return Some(json!({"name": "New hook", "url": receiver.url("/new")}));
    }
    if method == "PUT" && template == "/v1/webhooks/{id}" {
        return Some(json!({"name": "Renamed hook"}));
    }
    if method == "POST" && template == "/v1/events" {
        return Some(json!({"type": "scan_added", "title": "Another scan", "product_id": 1}));
    }
    if method == "POST" && template == "/v1/defectdojo/webhook" {
        return Some(json!({"title": "Shop", "user": null, "product": {"id": 1, "name": "Shop"}}));
    }
    if method == "POST" && template == "/v1/scheduler/run" {
        return Some(json!({"time": "2026-11-27T07:30:00Z"}));
    }
    if method == "POST" && template == "/v1/deliveries/replay" {
        return Some(json!({}));
    }
    let scheduled = scheduled_records().into_iter().find(|(path, _)| {
        path.strip_suffix('1')
            .map(|p| format!("{p}{{id}}"))
            .as_deref()
            == Some(template)
    });
    if let Some((_, record)) = scheduled.filter(|_| method == "PUT") {
        return Some(record);
    }
    if method == "POST" && template.ends_with("/alerts/read") {
        return None;
    }
    if method != "PUT" {
        return None;
    }
    Some(match template {
        "/v1/system/settings" => json!({"team_name": "AppSec"}),
        "/v1/users/{username}" => json!({"email": "alice@example.com"}),
        "/v1/product-types/{id}" => json!({"name": "Web"}),
        "/v1/products/{id}" => json!({"name": "Shop", "product_type_id": "1"}),
        t if t.contains("/members/") => return None,
        _ => json!({"events": {"scan_added": ["alert", "mail"]}}),
    })
}

#[tokio::test]
async fn every_route_has_a_policy_and_every_policy_a_route() {
    let routes = router_routes();
    for (method, path) in &routes {
        assert!(
            POLICY.iter().any(|(m, p, _)| m == method && p == path),
            "route {method} {path} has no entry in the authorization matrix"
        );
    }
    for (method, path, _) in POLICY {
        assert!(
            routes.iter().any(|(m, p)| m == method && p == path),
            "policy {method} {path} names a route the router does not serve"
        );
    }
}

#[tokio::test]
async fn every_route_answers_every_kind_of_caller_as_the_contract_says() {
    let mut failures = Vec::new();
    let mut checked = 0;
    let receiver = WebhookReceiver::start().await;
    for (method, template, policy) in POLICY {
        for caller in CALLERS {
            // A fresh, seeded app per call: DELETEs must not change what the next caller sees.
            let app = seeded_app(&receiver).await;
            let token = token_for(&app, caller);
            let method_value = Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);
            let path = seeded_path(&app, template).await;
            let body = body_for(method, template, &receiver);
            let response = app
                .send_with(
                    method_value,
                    &path,
                    token.as_deref(),
                    body.as_ref(),
                    extra_headers(template),
                )
                .await;
            checked += 1;
            let expected = expected_answer(*policy, caller);
            if !answers_as_expected(&response, expected) {
                failures.push(format!(
                    "{method} {path} as {caller:?}: expected {expected}, got {} {}",
                    response.status, response.body
                ));
            }
            if !response.status.is_success() {
                let text = response.body.to_string();
                assert!(
                    !text.contains("alice@example.com"),
                    "an error leaked user data: {text}"
                );
            }
        }
    }
    assert_eq!(checked, POLICY.len() * CALLERS.len());
    assert!(
        failures.is_empty(),
        "{} of {checked} calls were wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn a_user_never_sees_another_users_data() {
    let receiver = WebhookReceiver::start().await;
    let app = seeded_app(&receiver).await;
    for path in [
        "/v1/users/alice",
        "/v1/users/alice/notifications",
        "/v1/users/alice/notifications/products/1",
        "/v1/users/alice/notifications/effective",
        "/v1/users/alice/products",
    ] {
        let response = app.user("bob", Method::GET, path, None).await;
        assert_eq!(response.status, StatusCode::FORBIDDEN, "{path}");
        assert!(response.body.get("events").is_none() && response.body.get("email").is_none());
    }
}

/// Callers as API Gateway presents them to the functions on Lambda: the JWT authorizer has
/// checked the token, and the function reads the caller from the authorizer's claims.
#[derive(Debug, Clone, Copy)]
enum ClaimsCaller {
    Admin,
    Service,
    TheUserThemself,
    AnotherUser,
    /// No authorizer context at all (the function reached without API Gateway's authorizer).
    NoAuthorizer,
    /// No authorizer context, with a bearer token claiming `admin` in the header: the
    /// function never trusts a token it has not seen verified.
    BearerWithoutAuthorizer,
    MissingRole,
    UnknownRole,
    EmptySubject,
}

impl ClaimsCaller {
    const ALL: [ClaimsCaller; 9] = [
        ClaimsCaller::Admin,
        ClaimsCaller::Service,
        ClaimsCaller::TheUserThemself,
        ClaimsCaller::AnotherUser,
        ClaimsCaller::NoAuthorizer,
        ClaimsCaller::BearerWithoutAuthorizer,
        ClaimsCaller::MissingRole,
        ClaimsCaller::UnknownRole,
        ClaimsCaller::EmptySubject,
    ];

    /// The bearer-token caller that must be answered the same way.
    fn equivalent(self) -> CallerKind {
        match self {
            ClaimsCaller::Admin => CallerKind::Admin,
            ClaimsCaller::Service => CallerKind::Service,
            ClaimsCaller::TheUserThemself => CallerKind::TheUserThemself,
            ClaimsCaller::AnotherUser => CallerKind::AnotherUser,
            ClaimsCaller::NoAuthorizer => CallerKind::Anonymous,
            ClaimsCaller::BearerWithoutAuthorizer => CallerKind::AlgNone,
            ClaimsCaller::MissingRole => CallerKind::MissingRole,
            ClaimsCaller::UnknownRole => CallerKind::UnknownRole,
            ClaimsCaller::EmptySubject => CallerKind::EmptySubject,
        }
    }

    /// The authorizer's claims (`None`: no authorizer context).
    fn claims(self) -> Option<Value> {
        let claims = |sub: &str, role: Option<&str>| {
            let mut claims = json!({"iss": "https://idp.example.com/", "aud": "herald",
                "exp": (now() + 600).to_string(), "sub": sub});
            if let (Some(role), Some(map)) = (role, claims.as_object_mut()) {
                map.insert("role".into(), json!(role));
            }
            Some(claims)
        };
        match self {
            ClaimsCaller::Admin => claims("root", Some("admin")),
            ClaimsCaller::Service => claims("platform", Some("service")),
            ClaimsCaller::TheUserThemself => claims("alice", Some("user")),
            ClaimsCaller::AnotherUser => claims("bob", Some("user")),
            ClaimsCaller::NoAuthorizer | ClaimsCaller::BearerWithoutAuthorizer => None,
            ClaimsCaller::MissingRole => claims("alice", None),
            ClaimsCaller::UnknownRole => claims("alice", Some("superuser")),
            ClaimsCaller::EmptySubject => claims("", Some("admin")),
        }
    }
}

/// An API Gateway HTTP API (v2) payload for `method path` as `caller`, parsed the way
/// `lambda_http` parses what Lambda hands the function.
fn gateway_request(
    method: &str,
    path: &str,
    caller: ClaimsCaller,
    body: Option<&Value>,
) -> http::Request<axum::body::Body> {
    let mut headers = json!({"accept": "application/json", "content-type": "application/json",
        "host": "h3r4ld.execute-api.eu-west-1.amazonaws.com"});
    for (name, value) in extra_headers(path) {
        headers[name] = json!(value);
    }
    if let ClaimsCaller::BearerWithoutAuthorizer = caller {
        let forged = unsigned(&json!({"sub": "root", "role": "admin", "exp": now() + 600}));
        headers["authorization"] = json!(format!("Bearer {forged}"));
    }
    let (raw_path, query) = path.split_once('?').unwrap_or((path, ""));
    let mut context = json!({
        "accountId": "123456789012", "apiId": "h3r4ld",
        "domainName": "h3r4ld.execute-api.eu-west-1.amazonaws.com", "domainPrefix": "h3r4ld",
        "http": {"method": method, "path": raw_path, "protocol": "HTTP/1.1",
            "sourceIp": "192.0.2.10", "userAgent": "herald-tests"},
        "requestId": "matrix", "routeKey": "$default", "stage": "$default",
        "time": "27/Nov/2026:09:30:00 +0000", "timeEpoch": 1_795_772_200_000u64,
    });
    if let Some(claims) = caller.claims() {
        context["authorizer"] = json!({"jwt": {"claims": claims, "scopes": null}});
    }
    let payload = json!({
        "version": "2.0", "routeKey": "$default", "rawPath": raw_path, "rawQueryString": query,
        "headers": headers, "requestContext": context, "isBase64Encoded": false,
        "body": body.map(Value::to_string),
    });
    match lambda_http::request::from_str(&payload.to_string()) {
        Ok(request) => request.map(|body| axum::body::Body::from(body.to_vec())),
        Err(e) => panic!("the payload for {method} {path} does not parse: {e}"),
    }
}

/// The same matrix through the Lambda path: every route × every kind of authorizer context,
/// on a router that trusts API Gateway's claims (as the functions do) over the same seeded
/// store. The answers must be those of the bearer-token caller each one stands for.
#[tokio::test]
async fn every_route_answers_every_kind_of_authorizer_context_as_the_contract_says() {
    let mut failures = Vec::new();
    let mut checked = 0;
    let receiver = WebhookReceiver::start().await;
    for (method, template, policy) in POLICY {
        for caller in ClaimsCaller::ALL {
            let app = seeded_app(&receiver).await;
            let lambda = app
                .herald
                .router(settings_api::Authenticator::ApiGatewayClaims {
                    role_claim: "role".into(),
                });
            let path = seeded_path(&app, template).await;
            let body = body_for(method, template, &receiver);
            let request = gateway_request(method, &path, caller, body.as_ref());
            let response = send_to(&lambda, request).await;
            checked += 1;
            let expected = expected_answer(*policy, caller.equivalent());
            if !answers_as_expected(&response, expected) {
                failures.push(format!(
                    "{method} {path} as {caller:?}: expected {expected}, got {} {}",
                    response.status, response.body
                ));
            }
        }
    }
    assert_eq!(checked, POLICY.len() * ClaimsCaller::ALL.len());
    assert!(
        failures.is_empty(),
        "{} of {checked} calls were wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
