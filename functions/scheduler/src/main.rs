//! `scheduler` on AWS Lambda: the scheduled checks, run by EventBridge schedules.
//!
//! Each schedule's payload carries the instant the checks run as of (`time`, never the wall
//! clock) and, optionally, which checks (`detail.checks`): EventBridge Scheduler fills
//! `"time": "<aws.scheduler.scheduled-time>"` in; an EventBridge rule's "Scheduled Event" has
//! `time` already. The answer is the run's report; a failed run is an error, so the schedule
//! retries it, and a retry sends nothing twice (every reminder is remembered once).
//!
//! The `DefectDojoSync` schedule's payload (`{"detail": {"sync": "defectdojo"}}`) runs the sync
//! from DefectDojo instead (`HERALD_DEFECTDOJO_URL`, the token in the secret
//! `HERALD_DEFECTDOJO_TOKEN_SECRET_ARN`): its answer is the sync's counts; a DefectDojo that
//! fails changes nothing and fails the invocation.

use herald_shared::adapters::{DynamoDbStore, SqsQueue};
use herald_shared::defectdojo_sync::{SyncRequest, SyncService, is_sync_event};
use herald_shared::lambda::QueueingConfig;
use herald_shared::scheduler::handle_scheduled_event;
use herald_shared::telemetry::{self, LogFormat};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init(LogFormat::Json);
    let QueueingConfig { function, queues } = QueueingConfig::from_env()?;
    let aws = herald_shared::budget::sdk_config().await;
    let store = DynamoDbStore::new(aws_sdk_dynamodb::Client::new(&aws), function.table_name);
    let queue = SqsQueue::new(aws_sdk_sqs::Client::new(&aws), queues);
    let sync = SyncService::from_env(&aws_sdk_secretsmanager::Client::new(&aws))?;
    let (store, queue, sync) = (&store, &queue, &sync);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        if is_sync_event(&event.payload) {
            // The service logs the run's outcome.
            let report = sync
                .run(store, SyncRequest::default(), &|_, _, _| {})
                .await?;
            return Ok::<Value, Error>(serde_json::to_value(report)?);
        }
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
