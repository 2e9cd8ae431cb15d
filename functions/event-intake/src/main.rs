//! `event-intake` on AWS Lambda: HTTP requests from API Gateway's HTTP API (JWT authorizer)
//! and `herald.event` events from an EventBridge rule, in one function.

use event_intake::{IntakeState, eventbridge, router};
use herald_http::Authenticator;
use herald_shared::adapters::{DynamoDbStore, SqsQueue};
use herald_shared::lambda::QueueingConfig;
use herald_shared::ports::SystemClock;
use herald_shared::telemetry::{self, LogFormat};
use lambda_http::request::LambdaRequest;
use lambda_http::{Adapter, LambdaEvent, Service, service_fn};
use serde_json::Value;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    telemetry::init(LogFormat::Json);
    let QueueingConfig { function, queues } = QueueingConfig::from_env()?;
    let aws = herald_shared::budget::sdk_config().await;
    let state = IntakeState {
        store: Arc::new(DynamoDbStore::new(
            aws_sdk_dynamodb::Client::new(&aws),
            function.table_name,
        )),
        queue: Arc::new(SqsQueue::new(aws_sdk_sqs::Client::new(&aws), queues)),
        clock: Arc::new(SystemClock),
        auth: Authenticator::ApiGatewayClaims {
            role_claim: function.role_claim,
        },
    };
    let http = Adapter::from(router(state.clone()));
    let state = &state;
    let http = &http;
    lambda_http::lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        if eventbridge::is_eventbridge(&event.payload) {
            let answer = eventbridge::handle(state, &event.payload).await?;
            return Ok::<Value, lambda_http::Error>(serde_json::to_value(answer)?);
        }
        let request: LambdaRequest = serde_json::from_value(event.payload)?;
        let response = http
            .clone()
            .call(LambdaEvent::new(request, event.context))
            .await?;
        Ok(serde_json::to_value(response)?)
    }))
    .await
}
