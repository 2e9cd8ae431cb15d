//! `settings-api` on AWS Lambda, behind API Gateway's HTTP API with a JWT authorizer.

use herald_shared::adapters::DynamoDbStore;
use herald_shared::adapters::WebhookClient;
use herald_shared::config::{AwsFunctionConfig, ConfigError};
use herald_shared::ports::SystemClock;
use herald_shared::telemetry::{self, LogFormat};
use herald_shared::url_guard::allow_private_from_env;
use settings_api::{AppState, Authenticator, router};
use std::sync::Arc;

/// The environment this function reads, once: the table, the role claim, and whether pings
/// may reach private addresses (`HERALD_ALLOW_PRIVATE_TARGETS`).
struct Config {
    function: AwsFunctionConfig,
    allow_private: bool,
}

impl Config {
    /// Names the first missing variable.
    fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            function: AwsFunctionConfig::from_env()?,
            allow_private: allow_private_from_env(),
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    telemetry::init(LogFormat::Json);
    let Config {
        function,
        allow_private,
    } = Config::from_env()?;
    let aws = herald_shared::budget::sdk_config().await;
    // POST /v1/defectdojo/sync runs within API Gateway's 30 s; the schedule runs larger syncs.
    let defectdojo = herald_shared::defectdojo_sync::SyncService::from_env(
        &aws_sdk_secretsmanager::Client::new(&aws),
    )?;
    let store = DynamoDbStore::new(aws_sdk_dynamodb::Client::new(&aws), function.table_name);
    let state = AppState {
        store: Arc::new(store),
        auth: Authenticator::ApiGatewayClaims {
            role_claim: function.role_claim,
        },
        webhooks: WebhookClient::new(allow_private),
        clock: Arc::new(SystemClock),
        defectdojo,
    };
    lambda_http::run(router(state)).await
}
