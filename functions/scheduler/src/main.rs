//! `scheduler` on AWS Lambda: the scheduled checks, run by EventBridge schedules.
//!
//! Each schedule's payload carries the instant the checks run as of (`time`, never the wall
//! clock) and, optionally, which checks (`detail.checks`): EventBridge Scheduler fills
//! `"time": "<aws.scheduler.scheduled-time>"` in; an EventBridge rule's "Scheduled Event" has
//! `time` already. The answer is the run's report; a failed run is an error, so the schedule
//! retries it, and a retry sends nothing twice (every reminder is remembered once).

use herald_shared::adapters::{DynamoDbStore, SqsQueue};
use herald_shared::lambda::QueueingConfig;
use herald_shared::scheduler::handle_scheduled_event;
use herald_shared::telemetry::{self, LogFormat};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init(LogFormat::Json);
    let QueueingConfig { function, queues } = QueueingConfig::from_env()?;
    let aws = aws_config::load_from_env().await;
    let store = DynamoDbStore::new(aws_sdk_dynamodb::Client::new(&aws), function.table_name);
    let queue = SqsQueue::new(aws_sdk_sqs::Client::new(&aws), queues);
    let (store, queue) = (&store, &queue);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let report = handle_scheduled_event(store, queue, &event.payload).await?;
        tracing::info!(
            time = %report.time,
            checks = ?report.checks,
            sent = ?report.sent,
            already_sent = report.already_sent,
            failed = report.failed,
            "scheduled checks ran"
        );
        Ok::<Value, Error>(serde_json::to_value(report)?)
    }))
    .await
}
