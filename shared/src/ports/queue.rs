//! The queue ports: the channels' delivery queues, redelivery with a delay, and what a
//! channel's sender does with a batch of queued deliveries.

use crate::domain::DeliveryMessage;
use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};

/// Why a queue operation failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The backing queue failed; the text is for logs.
    #[error("queue backend error: {0}")]
    Backend(String),
}

/// Delays the next delivery of a received message (a retry with backoff).
#[async_trait]
pub trait RedeliveryDelay: Send + Sync {
    /// Makes the message received with `receipt_handle` on `channel`'s queue visible again
    /// after `delay` (SQS `ChangeMessageVisibility`). A stale receipt is not an error: the
    /// message then simply comes back after its visibility timeout.
    async fn delay_redelivery(
        &self,
        channel: crate::domain::Channel,
        receipt_handle: &str,
        delay: std::time::Duration,
    ) -> Result<(), QueueError>;
}

/// The channels' delivery queues.
#[async_trait]
pub trait DeliveryQueue: Send + Sync {
    /// Puts each message on its channel's queue. Sending a message again is harmless: the
    /// embedded queue keeps one message per delivery id, and senders skip deliveries already
    /// sent.
    async fn enqueue(&self, messages: &[DeliveryMessage]) -> Result<(), QueueError>;
    /// Puts the messages of deliveries an operator replays on their queues again: on SQS a
    /// new message each (the old one stays in the dead-letter queue); the embedded queue,
    /// which keeps one message per delivery, makes a dead letter visible again instead.
    async fn requeue(&self, messages: &[DeliveryMessage]) -> Result<(), QueueError> {
        self.enqueue(messages).await
    }
}

/// Handles batches from a channel's queue, as Lambda's SQS trigger hands them over: the same
/// code runs on Lambda and in `herald-local`, whose queue driver builds the same `SqsEvent`.
#[async_trait]
pub trait QueueConsumer: Send + Sync {
    /// Handles one batch (at most 10 records, processed concurrently) and names the records
    /// that failed: they stay on the queue and come back after the visibility timeout. Every
    /// other record is deleted.
    async fn consume(&self, batch: SqsEvent) -> SqsBatchResponse;
}
