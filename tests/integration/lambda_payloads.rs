//! The API as Lambda runs it: API Gateway HTTP API (v2) payloads from `events/`, the caller
//! taken from the JWT authorizer's claims.

use herald_shared::adapters::EmbeddedStore;
use herald_tests::{TestResponse, send_to};
use http::StatusCode;
use settings_api::{AppState, Authenticator, router};
use std::sync::Arc;

fn lambda_router() -> axum::Router {
    let store = match EmbeddedStore::in_memory() {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    router(AppState {
        store: Arc::new(store),
        auth: Authenticator::ApiGatewayClaims {
            role_claim: "role".into(),
        },
        webhooks: settings_api::WebhookClient::new(false),
        clock: Arc::new(herald_shared::ports::SystemClock),
        defectdojo: Default::default(),
    })
}

async fn invoke(router: &axum::Router, payload: &str) -> TestResponse {
    let request = match lambda_http::request::from_str(payload) {
        Ok(r) => r,
        Err(e) => panic!("the sample payload does not parse as an API Gateway v2 request: {e}"),
    };
    let request = request.map(|body| axum::body::Body::from(body.to_vec()));
    send_to(router, request).await
}

const GET_EVENT_TYPES: &str = include_str!("../../events/apigw-http/get-event-types.json");
const PUT_USER: &str = include_str!("../../events/apigw-http/put-user-as-service.json");
const PUT_PERSONAL: &str = include_str!("../../events/apigw-http/put-personal-notifications.json");
const GET_EFFECTIVE: &str =
    include_str!("../../events/apigw-http/get-effective-notifications.json");
const PUT_SYSTEM_AS_USER: &str =
    include_str!("../../events/apigw-http/put-system-settings-as-user.json");
const PUT_SYSTEM_AS_ADMIN: &str =
    include_str!("../../events/apigw-http/put-system-settings-as-admin.json");
const NO_AUTHORIZER: &str =
    include_str!("../../events/apigw-http/get-event-types-without-authorizer.json");
const NO_ROLE: &str = include_str!("../../events/apigw-http/get-event-types-without-role.json");

#[tokio::test]
async fn given_authorizer_claims_then_the_caller_is_taken_from_them() {
    let router = lambda_router();
    let r = invoke(&router, GET_EVENT_TYPES).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["items"].as_array().map(Vec::len), Some(18));

    let r = invoke(&router, PUT_USER).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);

    let r = invoke(&router, PUT_PERSONAL).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body["events"]["scan_added"],
        serde_json::json!(["alert", "mail"])
    );

    let r = invoke(&router, GET_EFFECTIVE).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["username"], "alice");
}

#[tokio::test]
async fn given_claims_without_the_right_role_then_403_and_without_claims_401() {
    let router = lambda_router();
    assert_eq!(
        invoke(&router, PUT_SYSTEM_AS_USER).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        invoke(&router, NO_AUTHORIZER).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        invoke(&router, NO_ROLE).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn given_an_admin_payload_with_a_token_then_the_answer_hides_it() {
    let router = lambda_router();
    let r = invoke(&router, PUT_SYSTEM_AS_ADMIN).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["slack_token_set"], true);
    assert!(!r.body.to_string().contains("xoxb-from-lambda-test"));
}
