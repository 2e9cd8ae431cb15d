//! The queue driver: drives the embedded queue the way Lambda's SQS trigger drives SQS.
//!
//! For each channel with a consumer: receive up to 10 visible messages (each receive counts;
//! past `max_receives` a message becomes a dead letter), hand them to the consumer as an
//! `SqsEvent`, delete every record the answer does not name as failed, and leave the failed
//! ones to reappear after the visibility timeout. As on Lambda, an answer naming a record
//! that was not in the batch fails the whole batch.

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use herald_shared::adapters::{EmbeddedQueue, ReceivedMessage};
use herald_shared::domain::Channel;
use herald_shared::ports::{Clock, QueueConsumer, QueueError};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// The most messages one batch carries (SQS's limit).
pub const BATCH_SIZE: usize = 10;

/// What one poll did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PollOutcome {
    /// Messages handed to the consumer.
    pub received: usize,
    /// Messages deleted after success.
    pub deleted: usize,
    /// Messages left on the queue to be retried.
    pub failed: usize,
}

/// Drives one channel's queue into its consumer.
#[derive(Clone)]
pub struct QueueDriver {
    queue: Arc<EmbeddedQueue>,
    clock: Arc<dyn Clock>,
    channel: Channel,
    consumer: Arc<dyn QueueConsumer>,
}

impl std::fmt::Debug for QueueDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueDriver")
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

impl QueueDriver {
    /// A driver feeding `channel`'s queue to `consumer`.
    pub fn new(
        queue: Arc<EmbeddedQueue>,
        clock: Arc<dyn Clock>,
        channel: Channel,
        consumer: Arc<dyn QueueConsumer>,
    ) -> Self {
        Self {
            queue,
            clock,
            channel,
            consumer,
        }
    }

    /// Receives one batch, hands it over and settles it.
    pub async fn poll_once(&self) -> Result<PollOutcome, QueueError> {
        let received = self
            .queue
            .receive(self.channel, BATCH_SIZE, self.clock.now_ms())
            .await?;
        if received.is_empty() {
            return Ok(PollOutcome::default());
        }
        let receipts: HashMap<String, String> = received
            .iter()
            .map(|m| (m.message_id.clone(), m.receipt_handle.clone()))
            .collect();
        let mut batch = SqsEvent::default();
        batch.records = received
            .iter()
            .map(|m| sqs_message(self.channel, m))
            .collect();
        let answer = self.consumer.consume(batch).await;
        let failed: HashSet<&str> = answer
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        if failed.iter().any(|id| !receipts.contains_key(*id)) {
            tracing::warn!(channel = %self.channel, "the consumer named a record that was not in the batch; the whole batch will be retried");
            return Ok(PollOutcome {
                received: received.len(),
                deleted: 0,
                failed: received.len(),
            });
        }
        let mut outcome = PollOutcome {
            received: received.len(),
            ..PollOutcome::default()
        };
        let mut done = Vec::with_capacity(receipts.len());
        for (id, receipt) in receipts {
            if failed.contains(id.as_str()) {
                outcome.failed += 1;
            } else {
                done.push(receipt);
            }
        }
        outcome.deleted = self.queue.delete_batch(&done).await?;
        Ok(outcome)
    }

    /// Polls until `shutdown` resolves: straight away while there is work, else every `idle`.
    pub async fn run(self, idle: Duration, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let wait = match self.poll_once().await {
                Ok(outcome) if outcome.received > 0 => Duration::ZERO,
                Ok(_) => idle,
                Err(e) => {
                    tracing::error!(channel = %self.channel, error = %e, "queue poll failed");
                    idle
                }
            };
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// A received message as Lambda's SQS trigger presents it.
fn sqs_message(channel: Channel, message: &ReceivedMessage) -> SqsMessage {
    let mut attributes = HashMap::new();
    attributes.insert(
        "ApproximateReceiveCount".to_owned(),
        message.receive_count.to_string(),
    );
    let mut record = SqsMessage::default();
    record.message_id = Some(message.message_id.clone());
    record.receipt_handle = Some(message.receipt_handle.clone());
    record.body = Some(message.body.clone());
    record.attributes = attributes;
    record.event_source = Some("aws:sqs".to_owned());
    record.event_source_arn = Some(format!(
        "arn:herald-local:sqs:local:000000000000:herald-{channel}"
    ));
    record.aws_region = Some("local".to_owned());
    record
}
