//! `settings-api` on AWS Lambda, behind API Gateway's HTTP API with a JWT authorizer.

use herald_shared::adapters::DynamoDbStore;
use herald_shared::adapters::WebhookClient;
use herald_shared::config::AwsFunctionConfig;
use herald_shared::outbound::allow_private_from_env;
use herald_shared::ports::SystemClock;
use herald_shared::telemetry::{self, LogFormat};
use settings_api::{AppState, Authenticator, router};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    telemetry::init(LogFormat::Json);
    let config = AwsFunctionConfig::from_env()?;
    let aws = aws_config::load_from_env().await;
    let store = DynamoDbStore::new(aws_sdk_dynamodb::Client::new(&aws), config.table_name);
    let state = AppState {
        store: Arc::new(store),
        auth: Authenticator::ApiGatewayClaims {
            role_claim: config.role_claim,
        },
        webhooks: WebhookClient::new(allow_private_from_env()),
        clock: Arc::new(SystemClock),
    };
    lambda_http::run(router(state)).await
}
