//! `sender-slack` on AWS Lambda: the Slack queue's SQS trigger, one batch per invocation.

use herald_shared::adapters::SecretsManagerToken;
use herald_shared::lambda::AwsSender;
use herald_shared::sender::run_on_lambda;
use herald_shared::telemetry::{self, LogFormat};
use lambda_runtime::Error;
use sender_slack::{Config, SlackTransport};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init(LogFormat::Json);
    let config = Config::from_env()?;
    let aws = AwsSender::connect(config.sender).await;
    let mut transport = SlackTransport::new(aws.parts.store.clone(), &config.slack_api_url)?;
    if let Some(secret_id) = config.token_secret {
        let secret =
            SecretsManagerToken::new(aws_sdk_secretsmanager::Client::new(&aws.sdk), secret_id);
        tracing::info!(
            secret = secret.secret_id(),
            "the Slack token comes from AWS Secrets Manager"
        );
        transport = transport.with_token_secret(secret);
    }
    run_on_lambda(aws.parts.sender(transport)).await
}
