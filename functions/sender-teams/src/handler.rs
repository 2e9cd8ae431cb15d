//! The Lambda handler: one SQS batch from the Teams queue through the shared sender.

use crate::teams::TeamsTransport;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use herald_shared::ports::QueueConsumer;
use herald_shared::sender::Sender;
use lambda_runtime::{Error, LambdaEvent};

/// Handles one batch: every record is processed (concurrently), and the answer names each
/// record to retry (`ReportBatchItemFailures`). Never fails as a whole: a failed record is
/// reported, not raised.
pub async fn function_handler(
    sender: &Sender<TeamsTransport>,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error> {
    Ok(sender.consume(event.payload).await)
}
