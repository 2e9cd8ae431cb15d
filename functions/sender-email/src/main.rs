//! `sender-email` on AWS Lambda: the mail queue's SQS trigger, one batch per invocation,
//! sending with Amazon SES.

use herald_shared::adapters::SesMailer;
use herald_shared::lambda::{AwsSender, SenderConfig};
use herald_shared::sender::run_on_lambda;
use herald_shared::telemetry::{self, LogFormat};
use lambda_runtime::Error;
use sender_email::EmailTransport;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init(LogFormat::Json);
    let aws = AwsSender::connect(SenderConfig::from_env()?).await;
    let mailer = Arc::new(SesMailer::new(aws_sdk_sesv2::Client::new(&aws.sdk)));
    run_on_lambda(aws.parts.sender(EmailTransport::new(mailer)?)).await
}
