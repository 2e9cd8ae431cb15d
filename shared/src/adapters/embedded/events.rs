//! [`EventStore`] on the embedded store: events recorded once with their alerts, deliveries
//! and queue messages in one transaction, and the deliveries' claims and attempts.
use super::{EmbeddedStore, backend, integer, unsigned};
use crate::domain::{
    Alert, Channel, Delivery, DeliveryId, DeliveryMessage, DeliveryStatus, Destination, Event,
    EventId,
};
use crate::ports::{AttemptOutcome, Claim, EventRecord, EventStore, RecordOutcome, StoreError};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// When an event accepted at `accepted_at_ms` and its deliveries may be deleted, in seconds
/// since the Unix epoch (the same attribute as DynamoDB's TTL).
pub(super) fn event_expiry(accepted_at_ms: u64) -> i64 {
    let seconds = accepted_at_ms / 1000 + crate::domain::event::EVENT_RETENTION_DAYS * 86_400;
    i64::try_from(seconds).unwrap_or(i64::MAX)
}

pub(super) const EVENT_COLUMNS: &str =
    "id, body, accepted_at, delivery_count, alert_count, enqueued";

pub(super) fn read_event(conn: &Connection, id: &str) -> Result<Option<EventRecord>, StoreError> {
    let row = conn
        .query_row(
            &format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = ?1"),
            [id],
            |r| {
                Ok((
                    r.get::<_, String>(1)?,
                    unsigned::<u64>(r, 2)?,
                    unsigned::<u32>(r, 3)?,
                    unsigned::<u32>(r, 4)?,
                    r.get::<_, bool>(5)?,
                ))
            },
        )
        .optional()
        .map_err(backend)?;
    let Some((body, accepted_at, delivery_count, alert_count, enqueued)) = row else {
        return Ok(None);
    };
    let event = Event::from_stored(&body)
        .map_err(|e| StoreError::Backend(format!("unreadable stored event {id}: {e}")))?;
    Ok(Some(EventRecord {
        event,
        accepted_at,
        delivery_count,
        alert_count,
        enqueued,
        // One transaction writes everything.
        complete: true,
    }))
}

pub(super) const DELIVERY_COLUMNS: &str =
    "id, event_id, channel, destination, status, attempts, last_error, updated_at";

/// One `UPDATE deliveries {set_where} RETURNING` the delivery: it checks, writes and reads
/// back atomically; `None` when no row matched.
fn update_delivery(
    conn: &Connection,
    set_where: &str,
    params: &[&dyn rusqlite::ToSql],
) -> Result<Option<Delivery>, StoreError> {
    conn.prepare_cached(&format!(
        "UPDATE deliveries {set_where} RETURNING {DELIVERY_COLUMNS}"
    ))
    .and_then(|mut stmt| stmt.query_row(params, delivery_from_row).optional())
    .map_err(backend)?
    .transpose()
}

pub(super) fn delivery_from_row(
    row: &rusqlite::Row<'_>,
) -> rusqlite::Result<Result<Delivery, StoreError>> {
    let (id, event_id, channel, destination, status): (String, String, String, String, String) = (
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
    );
    let (attempts, last_error, updated_at) = (unsigned(row, 5)?, row.get(6)?, unsigned(row, 7)?);
    let unreadable = |what: &str, value: &str| {
        StoreError::Backend(format!("delivery {id} has an unreadable {what} `{value}`"))
    };
    let delivery = (|| {
        Ok(Delivery {
            channel: Channel::from_name(&channel).ok_or_else(|| unreadable("channel", &channel))?,
            destination: Destination::from_key(&destination)
                .ok_or_else(|| unreadable("destination", &destination))?,
            status: DeliveryStatus::from_name(&status)
                .ok_or_else(|| unreadable("status", &status))?,
            id: DeliveryId::from_stored(id.clone()),
            event_id: EventId(event_id),
            attempts,
            last_error,
            updated_at,
        })
    })();
    Ok(delivery)
}

#[async_trait]
impl EventStore for EmbeddedStore {
    async fn record_event(
        &self,
        record: &EventRecord,
        alerts: &[Alert],
        deliveries: &[Delivery],
    ) -> Result<RecordOutcome, StoreError> {
        self.record_event_shared(record.clone(), alerts.into(), deliveries.into())
            .await
    }

    async fn record_event_shared(
        &self,
        record: EventRecord,
        alerts: Arc<[Alert]>,
        deliveries: Arc<[Delivery]>,
    ) -> Result<RecordOutcome, StoreError> {
        let queued = self.inner.queue_attached.load(Ordering::Relaxed);
        self.run(move |conn| {
            let id = record.event.id.as_str().to_owned();
            let expires_at = event_expiry(record.accepted_at);
            // One write (rolled back whole if any statement fails): the event, its alerts,
            // its deliveries and their queue messages are durable together or not at all.
            let inserted = conn
                .prepare_cached(
                    "INSERT INTO events (id, body, accepted_at, delivery_count, alert_count, enqueued, expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(id) DO NOTHING",
                )
                .and_then(|mut insert| insert.execute(
                    params![
                        id,
                        record.event.to_stored(),
                        integer(record.accepted_at),
                        record.delivery_count,
                        record.alert_count,
                        record.enqueued || queued,
                        expires_at
                    ],
                ))
                .map_err(backend)?;
            if inserted == 0 {
                let first = read_event(conn, &id)?
                    .ok_or_else(|| StoreError::Backend(format!("event {id} vanished while recording")))?;
                return Ok(RecordOutcome::Duplicate(first));
            }
            {
                super::alerts::file_event_alerts(conn, &alerts)?;
                let mut insert_delivery = conn
                    .prepare_cached(&format!(
                        "INSERT INTO deliveries ({DELIVERY_COLUMNS}, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                         ON CONFLICT(event_id, id) DO NOTHING"
                    ))
                    .map_err(backend)?;
                for d in deliveries.iter() {
                    insert_delivery
                        .execute(params![
                            d.id.as_str(),
                            id,
                            d.channel.name(),
                            d.destination.key(),
                            d.status.name(),
                            d.attempts,
                            d.last_error,
                            integer(d.updated_at),
                            expires_at
                        ])
                        .map_err(backend)?;
                }
            }
            // The queue messages commit with the event: an event answered 202 is never lost.
            let messages: Vec<DeliveryMessage> = deliveries.iter().map(Delivery::message).collect();
            super::queue::enqueue_in(conn, &messages, record.accepted_at)?;
            Ok(if queued {
                RecordOutcome::Queued
            } else {
                RecordOutcome::Recorded
            })
        })
        .await
    }

    async fn mark_event_enqueued(&self, id: &EventId) -> Result<(), StoreError> {
        let id = id.as_str().to_owned();
        self.run(move |conn| {
            // An unknown (or expired and deleted) event is fine: nothing is left to enqueue.
            conn.execute("UPDATE events SET enqueued = 1 WHERE id = ?1", [&id])
                .map(|_| ())
                .map_err(backend)
        })
        .await
    }

    async fn events_not_enqueued(
        &self,
        accepted_before_ms: u64,
        limit: usize,
    ) -> Result<Vec<EventId>, StoreError> {
        let (before, limit) = (integer(accepted_before_ms), integer(limit as u64));
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id FROM events WHERE enqueued = 0 AND accepted_at < ?1
                     ORDER BY accepted_at, id LIMIT ?2",
                )
                .map_err(backend)?;
            let ids = stmt
                .query_map(params![before, limit], |r| {
                    r.get::<_, String>(0).map(EventId)
                })
                .map_err(backend)?
                .collect::<rusqlite::Result<Vec<EventId>>>()
                .map_err(backend)?;
            Ok(ids)
        })
        .await
    }

    async fn event(&self, id: &EventId) -> Result<Option<EventRecord>, StoreError> {
        let id = id.as_str().to_owned();
        self.lookup(move |conn| read_event(conn, &id)).await
    }

    async fn deliveries(&self, id: &EventId) -> Result<Vec<Delivery>, StoreError> {
        let id = id.as_str().to_owned();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE event_id = ?1 ORDER BY id"
                ))
                .map_err(backend)?;
            let rows = stmt.query_map([id], delivery_from_row).map_err(backend)?;
            rows.map(|row| row.map_err(backend)?).collect()
        })
        .await
    }

    async fn delivery(
        &self,
        event: &EventId,
        id: &DeliveryId,
    ) -> Result<Option<Delivery>, StoreError> {
        let (event, id) = (event.as_str().to_owned(), id.as_str().to_owned());
        self.lookup(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE event_id = ?1 AND id = ?2"
            ))
            .and_then(|mut stmt| {
                stmt.query_row(params![event, id], delivery_from_row)
                    .optional()
            })
            .map_err(backend)?
            .transpose()
        })
        .await
    }

    async fn claim_delivery(
        &self,
        event: &EventId,
        id: &DeliveryId,
        now_ms: u64,
        lease: std::time::Duration,
    ) -> Result<Claim, StoreError> {
        let (event, id) = (event.as_str().to_owned(), id.as_str().to_owned());
        let until =
            integer(now_ms.saturating_add(u64::try_from(lease.as_millis()).unwrap_or(u64::MAX)));
        self.run(move |conn| {
            // The check and the claim are one statement.
            let claimed = conn
                .prepare_cached(&format!(
                    "UPDATE deliveries SET lease_until = ?3
                     WHERE event_id = ?1 AND id = ?2 AND status NOT IN (?5, ?6, ?7) AND lease_until <= ?4
                     RETURNING {DELIVERY_COLUMNS}"
                ))
                .and_then(|mut stmt| {
                    stmt.query_row(
                        params![
                            event,
                            id,
                            until,
                            integer(now_ms),
                            DeliveryStatus::Sent.name(),
                            DeliveryStatus::Failed.name(),
                            DeliveryStatus::Dead.name()
                        ],
                        delivery_from_row,
                    )
                    .optional()
                })
                .map_err(backend)?
                .transpose()?;
            if let Some(delivery) = claimed {
                return Ok(Claim::Claimed(delivery));
            }
            let found = conn
                .prepare_cached(&format!(
                    "SELECT {DELIVERY_COLUMNS}, lease_until FROM deliveries WHERE event_id = ?1 AND id = ?2"
                ))
                .and_then(|mut stmt| {
                    stmt.query_row(params![event, id], |row| {
                        Ok((delivery_from_row(row)?, unsigned::<u64>(row, 8)?))
                    })
                    .optional()
                })
                .map_err(backend)?;
            match found {
                None => Ok(Claim::Unknown),
                Some((delivery, until)) => {
                    let delivery = delivery?;
                    if delivery.status.is_final() {
                        Ok(Claim::Final(delivery))
                    } else {
                        Ok(Claim::Held { until })
                    }
                }
            }
        })
        .await
    }

    async fn record_attempt(
        &self,
        event: &EventId,
        id: &DeliveryId,
        outcome: &AttemptOutcome,
        now_ms: u64,
    ) -> Result<Option<Delivery>, StoreError> {
        let (event, id) = (event.as_str().to_owned(), id.as_str().to_owned());
        let (status, error) = (outcome.status().name(), outcome.error().map(str::to_owned));
        self.run(move |conn| {
            // One statement checks, writes and reads back, atomically: a final delivery (or an
            // unknown one) matches no row.
            update_delivery(
                conn,
                "SET status = ?3, attempts = attempts + 1, last_error = ?4, updated_at = ?5,
                     lease_until = 0
                 WHERE event_id = ?1 AND id = ?2 AND status NOT IN (?6, ?7, ?8)",
                params![
                    event,
                    id,
                    status,
                    error,
                    integer(now_ms),
                    DeliveryStatus::Sent.name(),
                    DeliveryStatus::Failed.name(),
                    DeliveryStatus::Dead.name()
                ],
            )
        })
        .await
    }

    async fn deliveries_with_status(
        &self,
        status: DeliveryStatus,
        since_ms: u64,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        crate::ports::require_listed(status)?;
        let (since, limit) = (integer(since_ms), integer(limit as u64));
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {DELIVERY_COLUMNS} FROM deliveries
                     WHERE status = ?1 AND updated_at >= ?2
                     ORDER BY updated_at, event_id, id LIMIT ?3"
                ))
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![status.name(), since, limit], delivery_from_row)
                .map_err(backend)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(backend)?;
            rows.into_iter().collect()
        })
        .await
    }

    async fn revive_dead_delivery(
        &self,
        event: &EventId,
        id: &DeliveryId,
        now_ms: u64,
    ) -> Result<Option<Delivery>, StoreError> {
        let (event, id) = (event.as_str().to_owned(), id.as_str().to_owned());
        self.run(move |conn| {
            update_delivery(
                conn,
                "SET status = ?3, updated_at = ?4, lease_until = 0
                 WHERE event_id = ?1 AND id = ?2 AND status = ?5",
                params![
                    event,
                    id,
                    DeliveryStatus::Queued.name(),
                    integer(now_ms),
                    DeliveryStatus::Dead.name()
                ],
            )
        })
        .await
    }
}
