//! `sender-slack` on AWS Lambda: the Slack queue's SQS trigger, one batch per invocation.

use herald_shared::adapters::SecretsManagerToken;
use herald_shared::adapters::{DynamoDbStore, SqsQueue, sqs::ChannelQueues};
use herald_shared::config::AwsFunctionConfig;
use herald_shared::ports::SystemClock;
use herald_shared::sender::{RetryPolicy, Sender};
use herald_shared::telemetry::{self, LogFormat};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use sender_slack::{SlackTransport, function_handler, slack_api_url_from_env};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init(LogFormat::Json);
    let config = AwsFunctionConfig::from_env()?;
    // All four are required by ChannelQueues; this function only changes the visibility of
    // messages on the Slack queue.
    let queues = ChannelQueues::from_env()?;
    let policy = RetryPolicy::from_env()?;
    let aws = aws_config::load_from_env().await;
    let store = Arc::new(DynamoDbStore::new(
        aws_sdk_dynamodb::Client::new(&aws),
        config.table_name,
    ));
    let mut transport = SlackTransport::new(store.clone(), &slack_api_url_from_env())?;
    if let Some(secret) = SecretsManagerToken::from_env(&aws) {
        tracing::info!(
            secret = secret.secret_id(),
            "the Slack token comes from AWS Secrets Manager"
        );
        transport = transport.with_token_secret(secret);
    }
    let sender = Sender {
        store,
        transport,
        redelivery: Arc::new(SqsQueue::new(aws_sdk_sqs::Client::new(&aws), queues)),
        policy,
        clock: Arc::new(SystemClock),
    };
    let sender = &sender;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| async move {
        function_handler(sender, event).await
    }))
    .await
}
