//! `sender-webhook` on AWS Lambda: the webhooks queue's SQS trigger, one batch per invocation.

use herald_shared::adapters::WebhookClient;
use herald_shared::adapters::{DynamoDbStore, SqsQueue, sqs::ChannelQueues};
use herald_shared::config::AwsFunctionConfig;
use herald_shared::outbound::allow_private_from_env;
use herald_shared::ports::{Clock, HeraldStore, SystemClock};
use herald_shared::sender::{RetryPolicy, Sender};
use herald_shared::telemetry::{self, LogFormat};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use sender_webhook::{WebhookTransport, function_handler};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init(LogFormat::Json);
    let config = AwsFunctionConfig::from_env()?;
    // All four are required by ChannelQueues; this function only changes the visibility of
    // messages on the webhooks queue.
    let queues = ChannelQueues::from_env()?;
    let policy = RetryPolicy::from_env()?;
    let aws = aws_config::load_from_env().await;
    let store: Arc<dyn HeraldStore> = Arc::new(DynamoDbStore::new(
        aws_sdk_dynamodb::Client::new(&aws),
        config.table_name,
    ));
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let sender = Sender {
        store: Arc::clone(&store),
        transport: WebhookTransport::new(
            store,
            WebhookClient::new(allow_private_from_env()),
            Arc::clone(&clock),
        ),
        redelivery: Arc::new(SqsQueue::new(aws_sdk_sqs::Client::new(&aws), queues)),
        policy,
        clock,
    };
    let sender = &sender;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| async move {
        function_handler(sender, event).await
    }))
    .await
}
