//! The event port: accepted events and their deliveries.

use super::StoreError;
use crate::domain::{Alert, Delivery, DeliveryId, DeliveryStatus, Event, EventId};
use async_trait::async_trait;
use serde::Serialize;
use std::sync::Arc;

/// An accepted event as Herald keeps it (the idempotency record).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRecord {
    pub event: Event,
    /// When Herald accepted it, milliseconds since the Unix epoch. Alerts carry this time,
    /// so re-recording after a crash writes the very same alerts.
    pub accepted_at: u64,
    /// How many non-alert deliveries it has (the intake answer's `deliveries`).
    pub delivery_count: u32,
    /// How many alerts it wrote.
    pub alert_count: u32,
    /// Whether every delivery has been handed to its queue.
    pub enqueued: bool,
    /// Whether the event's alerts and deliveries are all written. `false` only when an
    /// earlier `record_event` stopped part-way (a crash between its writes, on a store that
    /// cannot write them atomically): then call `record_event` again with this record's
    /// `accepted_at` and the alerts and deliveries built from it, which completes it. Set by
    /// the store; `record_event` ignores the value passed in.
    pub complete: bool,
}

/// What recording an event did.
#[derive(Debug, Clone, PartialEq)]
// One value per call, moved once: boxing the record would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum RecordOutcome {
    /// First time: the event, its alerts and deliveries are now durable.
    Recorded,
    /// First time, and more: the store is also the delivery queue (the embedded store with
    /// its queue attached), so the deliveries' messages were queued and the event marked
    /// enqueued in the same transaction. Nothing is left to enqueue.
    Queued,
    /// The id was recorded before; nothing was written. The first record is returned so the
    /// caller can answer as the first time (and finish enqueueing if that was cut short).
    Duplicate(EventRecord),
}

/// Accepted events with their deliveries.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Records an event with its alerts and deliveries, once per event id. When this returns
    /// `Recorded`, everything is durable; a crash part-way leaves the record to be completed
    /// by the next attempt with the same id (every write is keyed deterministically).
    ///
    /// A known id returns `Duplicate(first)` and writes nothing, except when `first` is
    /// incomplete (`complete == false`) and `record.accepted_at` equals `first.accepted_at`:
    /// then the alerts and deliveries passed in (built from that time, so their keys are the
    /// ones the first attempt used) are written, the record is completed, and the answer is
    /// `Recorded`. A retry rewrites the same keys; it never adds duplicates. A `record` with
    /// `enqueued` set (nothing to queue) is never listed by `events_not_enqueued`.
    async fn record_event(
        &self,
        record: &EventRecord,
        alerts: &[Alert],
        deliveries: &[Delivery],
    ) -> Result<RecordOutcome, StoreError>;
    /// [`EventStore::record_event`] for a caller that hands its records over, shared rather
    /// than lent: a store that writes them on another thread keeps them without a copy (a
    /// thousand-member event's records cost more to copy and free than to route).
    async fn record_event_shared(
        &self,
        record: EventRecord,
        alerts: Arc<[Alert]>,
        deliveries: Arc<[Delivery]>,
    ) -> Result<RecordOutcome, StoreError> {
        self.record_event(&record, &alerts, &deliveries).await
    }
    /// Notes that every delivery of the event is on its queue. An unknown event (e.g. one
    /// expired meanwhile) is not an error: there is nothing left to enqueue.
    async fn mark_event_enqueued(&self, id: &EventId) -> Result<(), StoreError>;
    /// Events recorded but not marked enqueued (a crash between the two) that were accepted
    /// before `accepted_before_ms` (so one an intake is still finishing is left to it), oldest
    /// first; incomplete records among them. Read through an index, never a scan.
    async fn events_not_enqueued(
        &self,
        accepted_before_ms: u64,
        limit: usize,
    ) -> Result<Vec<EventId>, StoreError>;
    /// An event's record, `None` when unknown; check `complete` before trusting its
    /// deliveries.
    async fn event(&self, id: &EventId) -> Result<Option<EventRecord>, StoreError>;
    /// An event's deliveries, in a stable order.
    async fn deliveries(&self, id: &EventId) -> Result<Vec<Delivery>, StoreError>;
    /// One delivery, `None` when unknown (never recorded, or expired with its event).
    async fn delivery(
        &self,
        event: &EventId,
        id: &DeliveryId,
    ) -> Result<Option<Delivery>, StoreError>;
    /// Claims a delivery for one send until `now_ms + lease`: one conditional write that
    /// succeeds only while the delivery is not final and nobody else's claim is running.
    /// Two senders handed the same delivery at once (SQS delivers at least once; a fan-out
    /// finished twice queues a delivery twice) can then never both send it.
    /// [`EventStore::record_attempt`] ends the claim.
    async fn claim_delivery(
        &self,
        event: &EventId,
        id: &DeliveryId,
        now_ms: u64,
        lease: std::time::Duration,
    ) -> Result<Claim, StoreError>;
    /// Records the outcome of one attempt, ending its claim: `attempts + 1`, the outcome's
    /// status and error, `updated_at = now_ms`; only while the delivery is not final (a conditional write, so a
    /// redelivered message can never turn `sent` back into anything else). Returns the
    /// delivery as it now stands, or `None` when it was already final or is unknown.
    async fn record_attempt(
        &self,
        event: &EventId,
        id: &DeliveryId,
        outcome: &AttemptOutcome,
        now_ms: u64,
    ) -> Result<Option<Delivery>, StoreError>;
    /// Deliveries whose status is `status` (`retrying`, `failed` or `dead`; any other is
    /// `Invalid`) and last changed at or after `since_ms`, oldest change first, at most
    /// `limit`: what an operator looks at. Read through an index of those statuses, never a
    /// scan.
    async fn deliveries_with_status(
        &self,
        status: DeliveryStatus,
        since_ms: u64,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError>;
    /// Puts a `dead` delivery back to `queued` (its attempts and last error kept,
    /// `updated_at = now_ms`) so its message can be queued again: a conditional write, so of
    /// two replays one revives it, and a delivery sent, failed or replayed meanwhile is not
    /// touched (`None`, as for an unknown one).
    async fn revive_dead_delivery(
        &self,
        event: &EventId,
        id: &DeliveryId,
        now_ms: u64,
    ) -> Result<Option<Delivery>, StoreError>;
}

/// The statuses [`EventStore::deliveries_with_status`] lists.
pub const LISTED_STATUSES: [DeliveryStatus; 3] = [
    DeliveryStatus::Retrying,
    DeliveryStatus::Failed,
    DeliveryStatus::Dead,
];

/// `Invalid` for a status [`EventStore::deliveries_with_status`] does not list.
pub fn require_listed(status: DeliveryStatus) -> Result<(), StoreError> {
    if LISTED_STATUSES.contains(&status) {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "deliveries are listed by status retrying, failed or dead, not {}",
            status.name()
        )))
    }
}

/// What claiming a delivery found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The caller's until the lease ends: send, then record the attempt.
    Claimed(Delivery),
    /// Another sender's claim runs until `until` (milliseconds since the Unix epoch).
    Held { until: u64 },
    /// Sent, failed or dead already: nothing to do.
    Final(Delivery),
    /// Never recorded, or expired with its event.
    Unknown,
}

/// How one attempt to send a delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// Delivered: status `sent`.
    Sent,
    /// Failed transiently; it will be tried again: status `retrying`.
    Retrying { error: String },
    /// Refused for good: status `failed`.
    Failed { error: String },
    /// Failed transiently on the last attempt: status `dead`.
    Dead { error: String },
}

impl AttemptOutcome {
    /// The status the delivery takes.
    pub fn status(&self) -> DeliveryStatus {
        match self {
            AttemptOutcome::Sent => DeliveryStatus::Sent,
            AttemptOutcome::Retrying { .. } => DeliveryStatus::Retrying,
            AttemptOutcome::Failed { .. } => DeliveryStatus::Failed,
            AttemptOutcome::Dead { .. } => DeliveryStatus::Dead,
        }
    }

    /// The error recorded with it, if any.
    pub fn error(&self) -> Option<&str> {
        match self {
            AttemptOutcome::Sent => None,
            AttemptOutcome::Retrying { error }
            | AttemptOutcome::Failed { error }
            | AttemptOutcome::Dead { error } => Some(error),
        }
    }
}
