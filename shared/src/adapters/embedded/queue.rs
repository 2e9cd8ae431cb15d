//! `EmbeddedQueue`: the channels' delivery queues with SQS's semantics, in the embedded store's
//! SQLite database, for `herald-local`.
//!
//! The messages live in the table `queue_messages` of the same database file as
//! [`EmbeddedStore`], so recording an event and queueing its deliveries can commit in one
//! transaction ([`enqueue_in`]). One row per delivery: queueing a delivery again while it is
//! queued (or dead) adds nothing. Rows are numbered in the order they were queued (`seq`).
//! A row keeps its destination's key as `body`, next to its event and delivery ids; the JSON
//! body SQS would carry is made from them when the message is received.
//!
//! What SQS does, and how:
//! | SQS | here |
//! |---|---|
//! | `SendMessageBatch` | one `INSERT` per message not queued yet: the deliveries of each event already queued (or dead) are read once through the index `queue_messages_by_event`, whose short entries for one event's messages are appended side by side, so queueing a thousand of them touches a few pages, not a thousand |
//! | `ReceiveMessage` (≤ 10) | one write in the store's group commit (inside its `BEGIN IMMEDIATE`): pick visible, live messages in the order they became visible (index `queue_messages_ready`), hide each for the visibility timeout, count the receive, hand out a new receipt handle |
//! | redrive after `maxReceiveCount` | a picked message already received `max_receives` times is marked dead instead of delivered |
//! | `DeleteMessage`, `DeleteMessageBatch` | only the newest receipt handle works: the row's sequence is part of the handle, so the delete is a primary-key lookup; a batch is one write |
//! | `ChangeMessageVisibility` | same check; `0` makes the message visible at once |
//! | a retry with backoff ([`RedeliveryDelay`]) | `ChangeMessageVisibility` as of the queue's [`Clock`], at most 12 hours as on SQS; a stale receipt changes nothing and is not an error |
//! | dead-letter queue | rows with `dead = 1`, listed by [`EmbeddedQueue::dead_letters`] |
//! | `ApproximateNumberOfMessages*` | [`EmbeddedQueue::depth`] |
//!
//! Time is a parameter (milliseconds since the Unix epoch) of every consumer call and of
//! [`EmbeddedQueue::enqueue_at`], so tests control it; [`DeliveryQueue::enqueue`] and
//! [`RedeliveryDelay::delay_redelivery`] ask the queue's [`Clock`] (the system clock unless
//! [`EmbeddedQueue::with_clock`] says otherwise).

use super::EmbeddedStore;
use crate::domain::{Channel, DeliveryId, DeliveryMessage, Destination, EventId};
use crate::ports::{Clock, DeliveryQueue, QueueError, RedeliveryDelay, StoreError, SystemClock};
use async_trait::async_trait;
use rusqlite::{Connection, params};
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The queue's table and its indexes. `EmbeddedStore::init` runs it with the store's schema;
/// [`EmbeddedQueue::new`] runs it too (it is idempotent).
pub const QUEUE_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS queue_messages (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    id TEXT NOT NULL,
    channel TEXT NOT NULL,
    body TEXT NOT NULL,
    visible_at INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt TEXT,
    enqueued_at INTEGER NOT NULL,
    dead INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS queue_messages_by_event ON queue_messages(event_id);
CREATE INDEX IF NOT EXISTS queue_messages_ready ON queue_messages(channel, dead, visible_at);
"#;

/// The most messages one receive returns, as in SQS.
pub const MAX_RECEIVE_BATCH: usize = 10;
/// The longest a redelivery can be delayed, as in SQS (12 hours).
pub const MAX_REDELIVERY_DELAY: Duration = Duration::from_secs(43_200);

/// Queues `messages` on `conn`, `now_ms` being the enqueue time. Call it inside the caller's
/// transaction (a `&rusqlite::Transaction` derefs to `&Connection`) so the messages commit
/// with it. A delivery already queued or dead is left as it is.
pub(crate) fn enqueue_in(
    conn: &Connection,
    messages: &[DeliveryMessage],
    now_ms: u64,
) -> Result<(), StoreError> {
    let mut queued_of_event = conn
        .prepare_cached("SELECT id FROM queue_messages WHERE event_id = ?1")
        .map_err(backend)?;
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO queue_messages (event_id, id, channel, body, visible_at, enqueued_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        )
        .map_err(backend)?;
    let now = sql_millis(now_ms);
    // The deliveries of each event already queued (or dead), read once per event: a
    // delivery is queued at most once, without a unique index on every message.
    let mut queued: HashMap<&str, (HashSet<String>, HashSet<&str>)> = HashMap::new();
    for message in messages {
        let channel = message.channel();
        if channel == Channel::Alert {
            return Err(StoreError::Backend(format!(
                "delivery {} is for the alert channel, which has no queue",
                message.delivery_id
            )));
        }
        let event_id = message.event_id.as_str();
        let (before, now_queued) = match queued.entry(event_id) {
            Entry::Occupied(ids) => ids.into_mut(),
            Entry::Vacant(slot) => slot.insert((
                queued_of_event
                    .query_map([event_id], |row| row.get::<_, String>(0))
                    .and_then(Iterator::collect)
                    .map_err(backend)?,
                HashSet::new(),
            )),
        };
        let id = message.delivery_id.as_str();
        if before.contains(id) || !now_queued.insert(id) {
            continue;
        }
        insert
            .execute(params![
                event_id,
                id,
                channel.name(),
                message.destination.key(),
                now
            ])
            .map_err(backend)?;
    }
    Ok(())
}

/// The JSON body SQS would carry for a row of `queue_messages`. The row's `body` holds the
/// destination's key (its event and delivery ids have columns of their own); rows queued
/// before held the JSON itself. A key no destination has is handed on as it is, so the
/// receiver finds an unreadable body, as it would in SQS.
fn message_body(event_id: String, id: String, stored: String) -> String {
    if stored.starts_with('{') {
        return stored;
    }
    let Some(destination) = Destination::from_key(&stored) else {
        return stored;
    };
    let message = DeliveryMessage {
        delivery_id: DeliveryId::from_stored(id),
        event_id: EventId(event_id),
        destination,
    };
    serde_json::to_string(&message).unwrap_or(stored)
}

/// How the queues treat received messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// How long a received message stays hidden from other receivers.
    pub visibility_timeout: Duration,
    /// How many receives a message gets; the next receive moves it to the dead letters
    /// (SQS's `maxReceiveCount`).
    pub max_receives: u32,
}

impl Default for QueueConfig {
    /// 60 s and 5 receives.
    fn default() -> Self {
        Self {
            visibility_timeout: Duration::from_secs(60),
            max_receives: 5,
        }
    }
}

/// A message handed to a receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// The message's id: its delivery id.
    pub message_id: String,
    /// Deletes the message or changes its visibility, until it is received again.
    pub receipt_handle: String,
    /// The [`DeliveryMessage`] as JSON, as SQS would carry it.
    pub body: String,
    /// How many times the message has been received, this time included.
    pub receive_count: u32,
}

impl ReceivedMessage {
    /// The body, parsed.
    pub fn message(&self) -> Result<DeliveryMessage, serde_json::Error> {
        serde_json::from_str(&self.body)
    }
}

/// A message that ran out of receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Its delivery id.
    pub message_id: String,
    /// The [`DeliveryMessage`] as JSON.
    pub body: String,
    /// How many times it was received.
    pub receive_count: u32,
    /// When it was queued, milliseconds since the Unix epoch.
    pub enqueued_at: u64,
}

impl DeadLetter {
    /// The body, parsed.
    pub fn message(&self) -> Result<DeliveryMessage, serde_json::Error> {
        serde_json::from_str(&self.body)
    }
}

/// How many messages a channel's queue holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueDepth {
    /// Ready to be received.
    pub visible: u64,
    /// Received and hidden until their visibility timeout ends.
    pub in_flight: u64,
    /// Out of receives.
    pub dead: u64,
}

/// The channels' delivery queues in the embedded store's database.
#[derive(Clone)]
pub struct EmbeddedQueue {
    store: EmbeddedStore,
    config: QueueConfig,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for EmbeddedQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedQueue")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl EmbeddedQueue {
    /// The queues in `store`'s database, creating their table if needed.
    pub fn new(store: &EmbeddedStore, config: QueueConfig) -> Result<Self, StoreError> {
        store.with_writer(|conn| conn.execute_batch(QUEUE_SCHEMA).map_err(backend))?;
        store.attach_queue();
        Ok(Self {
            store: store.clone(),
            config,
            clock: Arc::new(SystemClock),
        })
    }

    /// The same queues, telling time for [`DeliveryQueue::enqueue`] and
    /// [`RedeliveryDelay::delay_redelivery`] by `clock`.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The configuration.
    pub fn config(&self) -> QueueConfig {
        self.config
    }

    /// Queues `messages` as of `now_ms`, in one transaction: all or none.
    pub async fn enqueue_at(
        &self,
        messages: &[DeliveryMessage],
        now_ms: u64,
    ) -> Result<(), QueueError> {
        let messages = messages.to_vec();
        self.run(move |conn| {
            let tx = conn.savepoint().map_err(backend)?;
            enqueue_in(&tx, &messages, now_ms)?;
            tx.commit().map_err(backend)
        })
        .await
    }

    /// Receives up to `max_messages` (1 to 10) of `channel`'s visible messages at `now_ms`,
    /// in the order they became visible. Each is hidden for the visibility timeout and gets a
    /// new receipt handle; one already received `max_receives` times becomes a dead letter
    /// instead. Concurrent receivers never get the same message while it is hidden.
    pub async fn receive(
        &self,
        channel: Channel,
        max_messages: usize,
        now_ms: u64,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        if !(1..=MAX_RECEIVE_BATCH).contains(&max_messages) {
            return Err(QueueError::Backend(format!(
                "a receive takes 1 to {MAX_RECEIVE_BATCH} messages, not {max_messages}"
            )));
        }
        let config = self.config;
        self.run(move |conn| {
            // Inside the group commit's `BEGIN IMMEDIATE`: no other writer can pick the same
            // messages between the select and the updates.
            let tx = conn.savepoint().map_err(backend)?;
            let received = receive_in(&tx, channel, max_messages, now_ms, config)?;
            tx.commit().map_err(backend)?;
            Ok(received)
        })
        .await
    }

    /// Deletes the message `receipt_handle` was handed out with. `false` when the handle is
    /// not the message's newest (it was received again since) or the message is gone or dead.
    pub async fn delete(&self, receipt_handle: &str) -> Result<bool, QueueError> {
        let Some(seq) = message_seq_of(receipt_handle) else {
            return Ok(false);
        };
        let receipt = receipt_handle.to_owned();
        self.run(move |conn| {
            conn.prepare_cached(
                "DELETE FROM queue_messages WHERE seq = ?1 AND receipt = ?2 AND dead = 0",
            )
            .and_then(|mut delete| delete.execute(params![seq, receipt]))
            .map(|deleted| deleted == 1)
            .map_err(backend)
        })
        .await
    }

    /// Deletes the messages `receipt_handles` were handed out with, in one write; returns
    /// how many were deleted (see [`EmbeddedQueue::delete`] for when one is not).
    pub async fn delete_batch(&self, receipt_handles: &[String]) -> Result<usize, QueueError> {
        let targets: Vec<(i64, String)> = receipt_handles
            .iter()
            .filter_map(|receipt| message_seq_of(receipt).map(|seq| (seq, receipt.clone())))
            .collect();
        if targets.is_empty() {
            return Ok(0);
        }
        self.run(move |conn| {
            let mut delete = conn
                .prepare_cached(
                    "DELETE FROM queue_messages WHERE seq = ?1 AND receipt = ?2 AND dead = 0",
                )
                .map_err(backend)?;
            let mut deleted = 0;
            for (seq, receipt) in &targets {
                deleted += delete.execute(params![seq, receipt]).map_err(backend)?;
            }
            Ok(deleted)
        })
        .await
    }

    /// Hides the message `receipt_handle` was handed out with until `now_ms + timeout`
    /// (`Duration::ZERO` makes it visible at once). `false` on the same terms as
    /// [`EmbeddedQueue::delete`].
    pub async fn change_visibility(
        &self,
        receipt_handle: &str,
        timeout: Duration,
        now_ms: u64,
    ) -> Result<bool, QueueError> {
        self.change_visibility_on(None, receipt_handle, timeout, now_ms)
            .await
    }

    /// [`EmbeddedQueue::change_visibility`], of a message on `channel`'s queue only when a
    /// channel is given (as SQS's receipts belong to one queue).
    async fn change_visibility_on(
        &self,
        channel: Option<Channel>,
        receipt_handle: &str,
        timeout: Duration,
        now_ms: u64,
    ) -> Result<bool, QueueError> {
        let Some(seq) = message_seq_of(receipt_handle) else {
            return Ok(false);
        };
        let receipt = receipt_handle.to_owned();
        let visible_at = sql_millis(now_ms.saturating_add(duration_millis(timeout)));
        let channel = channel.map(|c| c.name());
        self.run(move |conn| {
            conn.prepare_cached(
                "UPDATE queue_messages SET visible_at = ?3
                 WHERE seq = ?1 AND receipt = ?2 AND dead = 0 AND (?4 IS NULL OR channel = ?4)",
            )
            .and_then(|mut update| update.execute(params![seq, receipt, visible_at, channel]))
            .map(|changed| changed == 1)
            .map_err(backend)
        })
        .await
    }

    /// `channel`'s dead letters, oldest first.
    pub async fn dead_letters(&self, channel: Channel) -> Result<Vec<DeadLetter>, QueueError> {
        self.read(move |conn| {
            let mut select = conn
                .prepare_cached(
                    "SELECT id, body, receive_count, enqueued_at, event_id FROM queue_messages
                     WHERE channel = ?1 AND dead = 1 ORDER BY enqueued_at, id",
                )
                .map_err(backend)?;
            let rows = select
                .query_map([channel.name()], |row| {
                    let message_id: String = row.get(0)?;
                    Ok(DeadLetter {
                        body: message_body(row.get(4)?, message_id.clone(), row.get(1)?),
                        message_id,
                        receive_count: row.get(2)?,
                        enqueued_at: u64::try_from(row.get::<_, i64>(3)?).unwrap_or(0),
                    })
                })
                .map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
        .await
    }

    /// How many of `channel`'s messages are visible, in flight and dead at `now_ms`.
    pub async fn depth(&self, channel: Channel, now_ms: u64) -> Result<QueueDepth, QueueError> {
        let now = sql_millis(now_ms);
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT
                     COALESCE(SUM(dead = 0 AND visible_at <= ?2), 0),
                     COALESCE(SUM(dead = 0 AND visible_at > ?2), 0),
                     COALESCE(SUM(dead = 1), 0)
                 FROM queue_messages WHERE channel = ?1",
            )
            .and_then(|mut count| {
                count.query_row(params![channel.name(), now], |row| {
                    let count = |i| row.get::<_, i64>(i).map(|n| u64::try_from(n).unwrap_or(0));
                    Ok(QueueDepth {
                        visible: count(0)?,
                        in_flight: count(1)?,
                        dead: count(2)?,
                    })
                })
            })
            .map_err(backend)
        })
        .await
    }

    /// Runs the write `work` in the store's next group commit (the queue shares the
    /// store's database and writer; see `EmbeddedStore::run`).
    async fn run<T, F>(&self, work: F) -> Result<T, QueueError>
    where
        T: Send + 'static,
        F: FnMut(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.store
            .run(work)
            .await
            .map_err(|e| QueueError::Backend(e.to_string()))
    }

    /// Runs the read `work` on one of the store's read-only connections.
    async fn read<T, F>(&self, work: F) -> Result<T, QueueError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.store
            .read(work)
            .await
            .map_err(|e| QueueError::Backend(e.to_string()))
    }
}

#[async_trait]
impl DeliveryQueue for EmbeddedQueue {
    async fn enqueue(&self, messages: &[DeliveryMessage]) -> Result<(), QueueError> {
        self.enqueue_at(messages, self.clock.now_ms()).await
    }

    /// A replay: each delivery's dead letter is visible again with its receive count back
    /// to 0 (a redrive); a delivery with no message at all gets one.
    async fn requeue(&self, messages: &[DeliveryMessage]) -> Result<(), QueueError> {
        let messages = messages.to_vec();
        let now = sql_millis(self.clock.now_ms());
        let now_ms = self.clock.now_ms();
        self.run(move |conn| {
            let tx = conn.savepoint().map_err(backend)?;
            {
                let mut redrive = tx
                    .prepare_cached(
                        "UPDATE queue_messages
                         SET dead = 0, receive_count = 0, receipt = NULL, visible_at = ?3
                         WHERE event_id = ?1 AND id = ?2 AND dead = 1",
                    )
                    .map_err(backend)?;
                for message in &messages {
                    redrive
                        .execute(params![
                            message.event_id.as_str(),
                            message.delivery_id.as_str(),
                            now
                        ])
                        .map_err(backend)?;
                }
            }
            enqueue_in(&tx, &messages, now_ms)?;
            tx.commit().map_err(backend)
        })
        .await
    }
}

#[async_trait]
impl RedeliveryDelay for EmbeddedQueue {
    /// As on SQS, a receipt counts only on the queue of `channel` that handed it out, and the
    /// alert channel has no queue.
    async fn delay_redelivery(
        &self,
        channel: Channel,
        receipt_handle: &str,
        delay: Duration,
    ) -> Result<(), QueueError> {
        if channel == Channel::Alert {
            return Err(QueueError::Backend(format!(
                "no queue for channel {channel}"
            )));
        }
        let delay = delay.min(MAX_REDELIVERY_DELAY);
        let changed = self
            .change_visibility_on(Some(channel), receipt_handle, delay, self.clock.now_ms())
            .await?;
        if !changed {
            // Received again, deleted or dead since: it comes back (or not) on its own terms.
            tracing::debug!(%channel, "stale receipt handle: redelivery not delayed");
        }
        Ok(())
    }
}

/// The receive, inside the caller's `IMMEDIATE` transaction (no other writer can pick the
/// same messages between the select and the updates).
fn receive_in(
    conn: &Connection,
    channel: Channel,
    max_messages: usize,
    now_ms: u64,
    config: QueueConfig,
) -> Result<Vec<ReceivedMessage>, StoreError> {
    let now = sql_millis(now_ms);
    let hidden_until =
        sql_millis(now_ms.saturating_add(duration_millis(config.visibility_timeout)));
    let mut select = conn
        .prepare_cached(
            "SELECT seq, id, body, receive_count, event_id FROM queue_messages
             WHERE channel = ?1 AND dead = 0 AND visible_at <= ?2
             ORDER BY visible_at, seq LIMIT ?3",
        )
        .map_err(backend)?;
    let mut hide = conn
        .prepare_cached(
            "UPDATE queue_messages
             SET visible_at = ?2, receive_count = receive_count + 1, receipt = ?3
             WHERE seq = ?1",
        )
        .map_err(backend)?;
    let mut bury = conn
        .prepare_cached("UPDATE queue_messages SET dead = 1, receipt = NULL WHERE seq = ?1")
        .map_err(backend)?;

    let mut received = Vec::with_capacity(max_messages);
    // Rows received in this call: with a zero visibility timeout they are still visible.
    let mut picked = HashSet::new();
    loop {
        let wanted = max_messages - received.len();
        let limit = i64::try_from(wanted + picked.len()).unwrap_or(i64::MAX);
        let candidates = select
            .query_map(params![channel.name(), now, limit], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, u32>(3)?,
                    row.get::<_, String>(4)?,
                ))
            })
            .map_err(backend)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)?;
        let mut buried_any = false;
        let mut fresh_any = false;
        for (seq, id, body, receive_count, event_id) in candidates {
            if received.len() == max_messages {
                break;
            }
            if !picked.insert(seq) {
                continue;
            }
            fresh_any = true;
            if receive_count >= config.max_receives {
                bury.execute([seq]).map_err(backend)?;
                buried_any = true;
                continue;
            }
            let receipt_handle = new_receipt_handle(seq);
            hide.execute(params![seq, hidden_until, receipt_handle])
                .map_err(backend)?;
            received.push(ReceivedMessage {
                body: message_body(event_id, id.clone(), body),
                message_id: id,
                receipt_handle,
                receive_count: receive_count.saturating_add(1),
            });
        }
        // Dead letters left room for more; otherwise the batch is full or the queue is empty.
        if !buried_any || !fresh_any || received.len() == max_messages {
            return Ok(received);
        }
    }
}

/// A receipt handle: `{row sequence}.{128 random bits in hex}`. The sequence lets delete and
/// change visibility find the row by primary key; the random part makes every receive's handle
/// new (a sequence reused after a delete never matches an old handle).
fn new_receipt_handle(seq: i64) -> String {
    use std::hash::{BuildHasher, Hasher};
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    // `RandomState` is seeded from the OS per thread; SipHash under it is unpredictable.
    let random = |salt: u64| {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(sequence);
        hasher.write_u64(salt);
        hasher.write_u64(SystemClock.now_ms());
        hasher.finish()
    };
    format!("{seq}.{:016x}{:016x}", random(0), random(1))
}

/// The row sequence a receipt handle names.
fn message_seq_of(receipt_handle: &str) -> Option<i64> {
    receipt_handle
        .split_once('.')
        .and_then(|(seq, _)| seq.parse().ok())
}

fn duration_millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Milliseconds as SQLite's signed integer.
fn sql_millis(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_a_receipt_handle_then_it_names_its_message() {
        let handle = new_receipt_handle(4711);
        assert_eq!(message_seq_of(&handle), Some(4711));
        assert_ne!(handle, new_receipt_handle(4711));
        assert_eq!(message_seq_of("no-dot"), None);
        assert_eq!(message_seq_of(".abc"), None);
        assert_eq!(message_seq_of("d0.abc"), None);
    }

    /// A row keeps the destination's key and hands out the JSON body SQS would carry; a
    /// row queued with the JSON body itself hands that out; an unknown key is passed on.
    #[test]
    fn given_a_stored_body_then_the_message_body_is_the_delivery_message_as_json()
    -> Result<(), Box<dyn std::error::Error>> {
        let message = messages(1).remove(0);
        let (event_id, id) = (message.event_id.as_str(), message.delivery_id.as_str());
        let body = message_body(event_id.into(), id.into(), message.destination.key());
        assert_eq!(serde_json::from_str::<DeliveryMessage>(&body)?, message);
        let json = serde_json::to_string(&message)?;
        assert_eq!(message_body(event_id.into(), id.into(), json.clone()), json);
        let unknown = message_body(event_id.into(), id.into(), "pigeon:home".into());
        assert_eq!(unknown, "pigeon:home");
        assert!(serde_json::from_str::<DeliveryMessage>(&unknown).is_err());
        Ok(())
    }

    /// A Teams message for delivery `delivery` of event `event`.
    fn message(event: &str, delivery: &str) -> DeliveryMessage {
        DeliveryMessage {
            delivery_id: crate::domain::DeliveryId::from_stored(delivery.to_owned()),
            event_id: crate::domain::EventId(event.to_owned()),
            destination: crate::domain::Destination::Teams,
        }
    }

    fn messages(n: usize) -> Vec<DeliveryMessage> {
        (0..n)
            .map(|i| message(&format!("e{i}"), &format!("d{i}")))
            .collect()
    }

    fn queued(conn: &Connection) -> i64 {
        conn.query_row("SELECT COUNT(*) FROM queue_messages", [], |row| row.get(0))
            .unwrap_or(-1)
    }

    #[test]
    fn given_enqueue_in_inside_a_transaction_then_the_messages_commit_or_roll_back_with_it()
    -> Result<(), Box<dyn std::error::Error>> {
        let store = EmbeddedStore::in_memory()?;
        EmbeddedQueue::new(&store, QueueConfig::default())?;
        let conn = store.connection();
        let mut conn = conn.lock().map_err(|_| "poisoned")?;

        // GIVEN a transaction that queues two messages and is dropped THEN nothing is queued.
        {
            let tx = conn.transaction()?;
            enqueue_in(&tx, &messages(2), 1)?;
        }
        assert_eq!(queued(&conn), 0);

        // GIVEN one that commits THEN both are, once, however often they are queued.
        let tx = conn.transaction()?;
        enqueue_in(&tx, &messages(2), 1)?;
        enqueue_in(&tx, &messages(2), 2)?;
        tx.commit()?;
        assert_eq!(queued(&conn), 2);
        let visible_at: i64 = conn.query_row(
            "SELECT visible_at FROM queue_messages WHERE id = 'd0'",
            [],
            |row| row.get(0),
        )?;
        assert_eq!(visible_at, 1);
        Ok(())
    }

    #[test]
    fn given_deliveries_queued_dead_or_repeated_then_each_is_queued_once()
    -> Result<(), Box<dyn std::error::Error>> {
        let store = EmbeddedStore::in_memory()?;
        EmbeddedQueue::new(&store, QueueConfig::default())?;
        let conn = store.connection();
        let mut conn = conn.lock().map_err(|_| "poisoned")?;
        // GIVEN d0 and d1 of event e queued, and d0 dead since
        let tx = conn.transaction()?;
        enqueue_in(&tx, &[message("e", "d0"), message("e", "d1")], 1)?;
        tx.commit()?;
        conn.execute("UPDATE queue_messages SET dead = 1 WHERE id = 'd0'", [])?;

        // WHEN both are queued again with d2 twice and event x's own d0
        let tx = conn.transaction()?;
        let again = [
            message("e", "d0"),
            message("e", "d1"),
            message("e", "d2"),
            message("e", "d2"),
            message("x", "d0"),
        ];
        enqueue_in(&tx, &again, 2)?;
        tx.commit()?;

        // THEN each delivery has one row; the dead one stays dead, the others as they were
        let mut rows = conn.prepare(
            "SELECT event_id, id, dead, visible_at FROM queue_messages ORDER BY event_id, id",
        )?;
        let rows: Vec<(String, String, bool, i64)> = rows
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<Result<_, _>>()?;
        let expected = [
            ("e", "d0", true, 1),
            ("e", "d1", false, 1),
            ("e", "d2", false, 2),
            ("x", "d0", false, 2),
        ]
        .map(|(e, d, dead, at)| (e.to_owned(), d.to_owned(), dead, at));
        assert_eq!(rows, expected);
        Ok(())
    }

    /// A process killed mid-send leaves its message hidden for the visibility timeout and its
    /// delivery claimed. At the next start the claim ends and the message is visible at once,
    /// while a message merely waiting for its retry keeps waiting.
    #[tokio::test]
    async fn given_claims_of_a_dead_process_then_releasing_them_makes_their_messages_visible()
    -> Result<(), Box<dyn std::error::Error>> {
        use crate::domain::{Delivery, Destination, Event};
        use crate::ports::{Claim, EventRecord, EventStore};
        let store = EmbeddedStore::in_memory()?;
        let queue = EmbeddedQueue::new(&store, QueueConfig::default())?;
        let mut deliveries = Vec::new();
        for id in ["sending", "waiting"] {
            let body = serde_json::json!({"id": id, "type": "scan_added", "title": "Scan"});
            let event = Event::from_request(&body, || "generated".to_owned())?;
            let delivery = Delivery::queued(&event.id, Destination::Teams, 1_000);
            let record = EventRecord {
                event,
                accepted_at: 1_000,
                delivery_count: 1,
                alert_count: 0,
                enqueued: false,
                complete: true,
            };
            store
                .record_event(&record, &[], std::slice::from_ref(&delivery))
                .await?;
            deliveries.push(delivery);
        }
        // GIVEN both messages received; the first claimed for its send, the second failed
        // and delayed for its retry.
        let received = queue.receive(Channel::Msteams, 10, 2_000).await?;
        assert_eq!(received.len(), 2);
        let lease = Duration::from_secs(120);
        let (sending, waiting) = (&deliveries[0], &deliveries[1]);
        let claim = store
            .claim_delivery(&sending.event_id, &sending.id, 2_000, lease)
            .await?;
        assert!(matches!(claim, Claim::Claimed(_)));
        let retry = received
            .iter()
            .find(|m| m.message_id == waiting.id.as_str())
            .ok_or("the waiting message was not received")?;
        queue
            .change_visibility(&retry.receipt_handle, Duration::from_secs(600), 2_000)
            .await?;

        // WHEN the next process starts, THEN the claimed message comes back at once, alone.
        assert_eq!(store.release_claims().await?, 1);
        let again = queue.receive(Channel::Msteams, 10, 3_000).await?;
        assert_eq!(
            again
                .iter()
                .map(|m| m.message_id.as_str())
                .collect::<Vec<_>>(),
            [sending.id.as_str()]
        );
        let claim = store
            .claim_delivery(&sending.event_id, &sending.id, 3_000, lease)
            .await?;
        assert!(matches!(claim, Claim::Claimed(_)));
        Ok(())
    }

    #[tokio::test]
    async fn given_a_fixed_clock_then_enqueue_queues_at_its_time()
    -> Result<(), Box<dyn std::error::Error>> {
        let store = EmbeddedStore::in_memory()?;
        let queue = EmbeddedQueue::new(&store, QueueConfig::default())?
            .with_clock(Arc::new(crate::ports::FixedClock(1_000)));
        queue.enqueue(&messages(1)).await?;
        assert!(queue.receive(Channel::Msteams, 10, 999).await?.is_empty());
        assert_eq!(queue.receive(Channel::Msteams, 10, 1_000).await?.len(), 1);
        Ok(())
    }
}
