//! `sender-webhook` on AWS Lambda: the webhooks queue's SQS trigger, one batch per invocation.

use herald_shared::adapters::WebhookClient;
use herald_shared::lambda::{AwsSender, SenderConfig};
use herald_shared::sender::run_on_lambda;
use herald_shared::telemetry::{self, LogFormat};
use lambda_runtime::Error;
use sender_webhook::WebhookTransport;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init(LogFormat::Json);
    let config = SenderConfig::from_env()?;
    let client = WebhookClient::new(config.allow_private);
    let aws = AwsSender::connect(config).await;
    let transport = WebhookTransport::new(
        Arc::clone(&aws.parts.store),
        client,
        Arc::clone(&aws.parts.clock),
    );
    run_on_lambda(aws.parts.sender(transport)).await
}
