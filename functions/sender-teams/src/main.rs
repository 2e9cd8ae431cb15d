//! `sender-teams` on AWS Lambda: the Teams queue's SQS trigger, one batch per invocation.

use herald_shared::lambda::{AwsSender, SenderConfig};
use herald_shared::sender::run_on_lambda;
use herald_shared::telemetry::{self, LogFormat};
use lambda_runtime::Error;
use sender_teams::TeamsTransport;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init(LogFormat::Json);
    let config = SenderConfig::from_env()?;
    let allow_private = config.allow_private;
    let aws = AwsSender::connect(config).await;
    run_on_lambda(aws.parts.sender(TeamsTransport::new(allow_private)?)).await
}
