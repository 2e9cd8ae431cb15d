//! The queue consumer port: what a channel's sender does with a batch of queued deliveries.

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};

/// Handles batches from a channel's queue, as Lambda's SQS trigger hands them over: the same
/// code runs on Lambda and in `herald-local`, whose queue driver builds the same `SqsEvent`.
#[async_trait]
pub trait QueueConsumer: Send + Sync {
    /// Handles one batch (at most 10 records, processed concurrently) and names the records
    /// that failed: they stay on the queue and come back after the visibility timeout. Every
    /// other record is deleted.
    async fn consume(&self, batch: SqsEvent) -> SqsBatchResponse;
}
