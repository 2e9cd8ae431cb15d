//! `SqsQueue`: the `DeliveryQueue` port on Amazon SQS, one standard queue per non-alert
//! channel (`mail`, `slack`, `msteams`, `webhooks`; alerts are written by intake, never
//! queued).
//!
//! `enqueue` groups the messages by channel and sends them with `SendMessageBatch`, 10 a
//! call, so a fan-out of `N_c` deliveries on channel `c` costs `Σ ⌈N_c / 10⌉` requests when
//! nothing fails. Batches run concurrently (at most [`MAX_CONCURRENT_BATCHES`] at a time).
//! Each entry's id is its delivery id, its body the [`DeliveryMessage`] as JSON, and it carries
//! the message attribute `delivery_id`. Entries SQS reports failed are sent again, alone, with
//! exponential backoff, up to [`MAX_ATTEMPTS`] calls per batch; entries failed by the sender's
//! fault are not retried. Whatever still failed is reported in one `QueueError::Backend`
//! naming the channel and the deliveries. A whole-call error (network, throttling) has
//! already been retried by the SDK and fails its batch.
//!
//! A delivery appearing twice in one call is sent once (SQS rejects a batch with duplicate
//! entry ids). Sending a delivery again in a later call puts a second message on the queue:
//! senders skip deliveries already sent.
//!
//! `delay_redelivery` ([`RedeliveryDelay`]) is one `ChangeMessageVisibility` on the channel's
//! queue, the delay rounded up to whole seconds and capped at SQS's 12 hours. A receipt handle
//! that no longer works is not an error: SQS answers `ReceiptHandleIsInvalid` or
//! `MessageNotInflight` (moto does too), or, for an expired or superseded handle,
//! `InvalidParameterValue` "Value .. for parameter ReceiptHandle is invalid"; the message then
//! comes back after its visibility timeout.

use crate::config::{ConfigError, required};
use crate::domain::{Channel, DeliveryMessage};
use crate::ports::{DeliveryQueue, QueueError, RedeliveryDelay};
use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// The most entries one `SendMessageBatch` call takes.
pub const SEND_BATCH_LIMIT: usize = 10;
/// `SendMessageBatch` calls per batch of 10, the first included, before giving up on the
/// entries that keep failing.
pub const MAX_ATTEMPTS: u32 = 4;
/// How many `SendMessageBatch` calls one `enqueue` has in flight at once: 1,280 messages go
/// out together (one round trip), the 1,001 of a 1,000-member event included. Each
/// connection the pool has to open costs a TLS handshake, once per Lambda instance.
pub const MAX_CONCURRENT_BATCHES: usize = 128;
/// How many failed delivery ids an error names before it says "and N more".
const NAMED_FAILURES: usize = 5;
/// The longest visibility timeout SQS accepts, in seconds (12 hours).
pub const MAX_VISIBILITY_TIMEOUT_SECONDS: u64 = 43_200;

/// The queue URL of each non-alert channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelQueues {
    /// `HERALD_QUEUE_URL_MAIL`.
    pub mail: String,
    /// `HERALD_QUEUE_URL_SLACK`.
    pub slack: String,
    /// `HERALD_QUEUE_URL_MSTEAMS`.
    pub msteams: String,
    /// `HERALD_QUEUE_URL_WEBHOOKS`.
    pub webhooks: String,
}

impl ChannelQueues {
    /// Reads the four queue URLs; names the first missing variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            mail: required("HERALD_QUEUE_URL_MAIL")?,
            slack: required("HERALD_QUEUE_URL_SLACK")?,
            msteams: required("HERALD_QUEUE_URL_MSTEAMS")?,
            webhooks: required("HERALD_QUEUE_URL_WEBHOOKS")?,
        })
    }

    /// The queue URL of `channel`; `None` for `alert`, which has no queue.
    pub fn url(&self, channel: Channel) -> Option<&str> {
        match channel {
            Channel::Alert => None,
            Channel::Mail => Some(&self.mail),
            Channel::Slack => Some(&self.slack),
            Channel::Msteams => Some(&self.msteams),
            Channel::Webhooks => Some(&self.webhooks),
        }
    }
}

/// The channels' delivery queues on SQS.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    queues: Arc<ChannelQueues>,
    requests: Arc<AtomicU64>,
}

impl SqsQueue {
    /// Queues on the SQS queues at `queues`' URLs.
    pub fn new(client: Client, queues: ChannelQueues) -> Self {
        Self {
            client,
            queues: Arc::new(queues),
            requests: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The queue URLs.
    pub fn queues(&self) -> &ChannelQueues {
        &self.queues
    }

    /// How many SQS requests this queue (and its clones) has made (`SendMessageBatch` calls,
    /// retries of failed entries included, and `ChangeMessageVisibility` calls), for tests and
    /// benchmarks.
    pub fn request_count(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Sends one batch of at most 10 entries to `queue_url`, retrying the entries that failed
    /// for reasons other than the sender's. `Err` lists the entries that were not sent.
    async fn send_batch(
        &self,
        queue_url: &str,
        mut entries: Vec<SendMessageBatchRequestEntry>,
    ) -> Result<(), BatchFailure> {
        let mut failures = Vec::new();
        let mut attempt = 0;
        while !entries.is_empty() {
            if attempt >= MAX_ATTEMPTS {
                failures.extend(entries.into_iter().map(|entry| FailedEntry {
                    id: entry.id,
                    reason: format!("still failing after {MAX_ATTEMPTS} attempts"),
                }));
                break;
            }
            if attempt > 0 {
                backoff(attempt).await;
            }
            attempt += 1;
            self.requests.fetch_add(1, Ordering::Relaxed);
            let output = match self
                .client
                .send_message_batch()
                .queue_url(queue_url)
                .set_entries(Some(entries.clone()))
                .send()
                .await
            {
                Ok(output) => output,
                Err(e) => {
                    let reason = format!("SendMessageBatch failed: {}", DisplayErrorContext(&e));
                    failures.extend(entries.into_iter().map(|entry| FailedEntry {
                        id: entry.id,
                        reason: reason.clone(),
                    }));
                    break;
                }
            };
            let mut retry = HashSet::new();
            for failed in output.failed {
                let reason = match failed.message {
                    Some(message) => format!("{}: {message}", failed.code),
                    None => failed.code,
                };
                if failed.sender_fault {
                    failures.push(FailedEntry {
                        id: failed.id,
                        reason: format!("{reason} (sender fault, not retried)"),
                    });
                } else {
                    retry.insert(failed.id);
                }
            }
            entries.retain(|entry| retry.contains(&entry.id));
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(BatchFailure(failures))
        }
    }
}

#[async_trait]
impl DeliveryQueue for SqsQueue {
    async fn enqueue(&self, messages: &[DeliveryMessage]) -> Result<(), QueueError> {
        let by_channel = entries_by_channel(messages)?;
        let permits = Arc::new(Semaphore::new(MAX_CONCURRENT_BATCHES));
        let mut batches = JoinSet::new();
        for (channel, entries) in by_channel {
            let queue_url = self
                .queues
                .url(channel)
                .ok_or_else(|| QueueError::Backend(format!("no queue for channel {channel}")))?
                .to_owned();
            let mut entries = entries.into_iter().peekable();
            while entries.peek().is_some() {
                let batch: Vec<_> = entries.by_ref().take(SEND_BATCH_LIMIT).collect();
                let (queue, queue_url, permits) =
                    (self.clone(), queue_url.clone(), Arc::clone(&permits));
                batches.spawn(async move {
                    let _permit = permits.acquire_owned().await;
                    (channel, queue.send_batch(&queue_url, batch).await)
                });
            }
        }
        let mut failed: BTreeMap<Channel, Vec<FailedEntry>> = BTreeMap::new();
        let mut crashed = Vec::new();
        while let Some(joined) = batches.join_next().await {
            match joined {
                Ok((_, Ok(()))) => {}
                Ok((channel, Err(BatchFailure(entries)))) => {
                    failed.entry(channel).or_default().extend(entries);
                }
                Err(e) => crashed.push(e.to_string()),
            }
        }
        if failed.is_empty() && crashed.is_empty() {
            return Ok(());
        }
        let mut problems: Vec<String> = failed
            .into_iter()
            .map(|(channel, entries)| describe_failures(channel, &entries))
            .collect();
        problems.extend(
            crashed
                .into_iter()
                .map(|e| format!("a batch task failed: {e}")),
        );
        Err(QueueError::Backend(format!("SQS: {}", problems.join("; "))))
    }
}

#[async_trait]
impl RedeliveryDelay for SqsQueue {
    async fn delay_redelivery(
        &self,
        channel: Channel,
        receipt_handle: &str,
        delay: Duration,
    ) -> Result<(), QueueError> {
        let queue_url = self
            .queues
            .url(channel)
            .ok_or_else(|| QueueError::Backend(format!("no queue for channel {channel}")))?;
        self.requests.fetch_add(1, Ordering::Relaxed);
        let result = self
            .client
            .change_message_visibility()
            .queue_url(queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(visibility_timeout_seconds(delay))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(is_stale_receipt) => {
                tracing::debug!(
                    %channel,
                    error = %DisplayErrorContext(&e),
                    "stale receipt handle: redelivery not delayed"
                );
                Ok(())
            }
            Err(e) => Err(QueueError::Backend(format!(
                "SQS ChangeMessageVisibility on the {channel} queue: {}",
                DisplayErrorContext(&e)
            ))),
        }
    }
}

/// `delay` as a visibility timeout: whole seconds, rounded up (never earlier than asked),
/// at most [`MAX_VISIBILITY_TIMEOUT_SECONDS`].
fn visibility_timeout_seconds(delay: Duration) -> i32 {
    let seconds = delay
        .as_secs()
        .saturating_add(u64::from(delay.subsec_nanos() > 0))
        .min(MAX_VISIBILITY_TIMEOUT_SECONDS);
    i32::try_from(seconds).unwrap_or(i32::MAX)
}

/// Whether SQS refused a receipt handle that no longer works (the message was received again,
/// deleted, or its handle expired).
fn is_stale_receipt(
    error: &aws_sdk_sqs::operation::change_message_visibility::ChangeMessageVisibilityError,
) -> bool {
    error.is_receipt_handle_is_invalid()
        || error.is_message_not_inflight()
        || (error.code() == Some("InvalidParameterValue")
            && error.message().is_some_and(|m| m.contains("ReceiptHandle")))
}

/// Entries that were not sent.
struct BatchFailure(Vec<FailedEntry>);

struct FailedEntry {
    /// The entry id: the delivery id.
    id: String,
    reason: String,
}

/// `slack queue: 3 deliveries not sent: a1 (InternalError: ...), ...`.
fn describe_failures(channel: Channel, entries: &[FailedEntry]) -> String {
    let mut named: Vec<String> = entries
        .iter()
        .take(NAMED_FAILURES)
        .map(|entry| format!("{} ({})", entry.id, entry.reason))
        .collect();
    if entries.len() > NAMED_FAILURES {
        named.push(format!("and {} more", entries.len() - NAMED_FAILURES));
    }
    format!(
        "{channel} queue: {} deliveries not sent: {}",
        entries.len(),
        named.join(", ")
    )
}

/// The batch entries for `messages`, per channel, each delivery once. Refuses the whole call
/// if any message is for the alert channel: that is a bug in the caller.
fn entries_by_channel(
    messages: &[DeliveryMessage],
) -> Result<BTreeMap<Channel, Vec<SendMessageBatchRequestEntry>>, QueueError> {
    if let Some(alert) = messages.iter().find(|m| m.channel() == Channel::Alert) {
        return Err(QueueError::Backend(format!(
            "delivery {} is for the alert channel, which has no queue",
            alert.delivery_id
        )));
    }
    let mut seen = HashSet::new();
    let mut by_channel: BTreeMap<Channel, Vec<SendMessageBatchRequestEntry>> = BTreeMap::new();
    for message in messages {
        if !seen.insert(message.delivery_id.as_str()) {
            continue;
        }
        by_channel
            .entry(message.channel())
            .or_default()
            .push(entry(message)?);
    }
    Ok(by_channel)
}

fn entry(message: &DeliveryMessage) -> Result<SendMessageBatchRequestEntry, QueueError> {
    let body = serde_json::to_string(message)
        .map_err(|e| QueueError::Backend(format!("unwritable queue message: {e}")))?;
    let delivery_id = MessageAttributeValue::builder()
        .data_type("String")
        .string_value(message.delivery_id.as_str())
        .build()
        .map_err(build_error)?;
    SendMessageBatchRequestEntry::builder()
        .id(message.delivery_id.as_str())
        .message_body(body)
        .message_attributes("delivery_id", delivery_id)
        .build()
        .map_err(build_error)
}

fn build_error(e: aws_sdk_sqs::error::BuildError) -> QueueError {
    QueueError::Backend(format!("SQS request could not be built: {e}"))
}

/// Exponential backoff before retry `attempt` (1-based): 25 ms, 50 ms, 100 ms, ...
async fn backoff(attempt: u32) {
    let doublings = attempt.saturating_sub(1).min(7);
    tokio::time::sleep(Duration::from_millis(25u64 << doublings)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_a_delay_then_the_visibility_timeout_is_whole_seconds_rounded_up_and_capped() {
        assert_eq!(visibility_timeout_seconds(Duration::ZERO), 0);
        assert_eq!(visibility_timeout_seconds(Duration::from_millis(1)), 1);
        assert_eq!(visibility_timeout_seconds(Duration::from_secs(30)), 30);
        assert_eq!(
            visibility_timeout_seconds(Duration::from_millis(30_001)),
            31
        );
        assert_eq!(
            visibility_timeout_seconds(Duration::from_secs(43_200)),
            43_200
        );
        assert_eq!(
            visibility_timeout_seconds(Duration::from_secs(86_400)),
            43_200
        );
        assert_eq!(visibility_timeout_seconds(Duration::MAX), 43_200);
    }
}
