//! Replaying dead deliveries, for operators (`POST /v1/deliveries/replay`, `herald-local
//! replay --dead`): each dead delivery is put back to `queued` with a conditional write, then
//! its message goes on its channel's queue again, so it is tried afresh. A delivery sent,
//! failed or replayed meanwhile is left alone, and the sender's claim makes sure a message
//! queued twice still sends once.

use crate::domain::{Channel, Delivery, DeliveryStatus, EventId};
use crate::ports::{AttemptOutcome, DeliveryQueue, HeraldStore, StoreError};
use serde::Serialize;
use std::collections::HashSet;

/// Which dead deliveries to replay: all, one channel's, one event's, or both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayFilter {
    pub channel: Option<Channel>,
    pub event: Option<EventId>,
}

impl ReplayFilter {
    fn matches(&self, delivery: &Delivery) -> bool {
        self.channel.is_none_or(|c| c == delivery.channel)
            && self.event.as_ref().is_none_or(|e| *e == delivery.event_id)
    }
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ReplayReport {
    /// Dead deliveries queued again.
    pub replayed: u64,
    /// Dead deliveries another replay (or a send) took first.
    pub skipped: u64,
}

/// Why a replay stopped part-way; what it replayed until then stays replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The queue refused a revived delivery's message; the delivery is `dead` again.
    #[error("the {channel} queue refused a replayed delivery: {reason}")]
    Queue { channel: Channel, reason: String },
}

/// Deliveries read per page.
const PAGE: usize = 500;

/// Up to `limit` deliveries with `status` changed at or after `since_ms` that `keep` picks,
/// oldest change first, read page by page through the status index (the pages step over the
/// deliveries `keep` leaves out).
pub async fn deliveries_matching<S>(
    store: &S,
    status: DeliveryStatus,
    since_ms: u64,
    limit: usize,
    keep: impl Fn(&Delivery) -> bool,
) -> Result<Vec<Delivery>, StoreError>
where
    S: HeraldStore + ?Sized,
{
    let (mut since, mut seen, mut kept) = (since_ms, HashSet::new(), Vec::new());
    while kept.len() < limit {
        let fresh: Vec<Delivery> = store
            .deliveries_with_status(status, since, PAGE)
            .await?
            .into_iter()
            .filter(|d| seen.insert((d.event_id.clone(), d.id.clone())))
            .collect();
        let Some(last) = fresh.last() else { break };
        since = last.updated_at;
        kept.extend(fresh.into_iter().filter(|d| keep(d)));
    }
    kept.truncate(limit);
    Ok(kept)
}

/// Replays the dead deliveries `filter` picks, as of `now_ms`.
pub async fn replay_dead<S, Q>(
    store: &S,
    queue: &Q,
    filter: &ReplayFilter,
    now_ms: u64,
) -> Result<ReplayReport, ReplayError>
where
    S: HeraldStore + ?Sized,
    Q: DeliveryQueue + ?Sized,
{
    let mut report = ReplayReport::default();
    // One event's deliveries are read from it; otherwise every dead one, oldest change first.
    let dead = match &filter.event {
        Some(event) => store
            .deliveries(event)
            .await?
            .into_iter()
            .filter(|d| d.status == DeliveryStatus::Dead && filter.matches(d))
            .collect(),
        None => {
            deliveries_matching(store, DeliveryStatus::Dead, 0, usize::MAX, |d| {
                filter.matches(d)
            })
            .await?
        }
    };
    for delivery in &dead {
        replay_one(store, queue, delivery, now_ms, &mut report).await?;
    }
    Ok(report)
}

async fn replay_one<S, Q>(
    store: &S,
    queue: &Q,
    delivery: &Delivery,
    now_ms: u64,
    report: &mut ReplayReport,
) -> Result<(), ReplayError>
where
    S: HeraldStore + ?Sized,
    Q: DeliveryQueue + ?Sized,
{
    let Some(revived) = store
        .revive_dead_delivery(&delivery.event_id, &delivery.id, now_ms)
        .await?
    else {
        report.skipped += 1;
        return Ok(());
    };
    if let Err(e) = queue.requeue(&[revived.message()]).await {
        // Queued with no message would wait forever: it is dead again, with why.
        let outcome = AttemptOutcome::Dead {
            error: format!("the replay could not queue it: {e}"),
        };
        store
            .record_attempt(&revived.event_id, &revived.id, &outcome, now_ms)
            .await?;
        return Err(ReplayError::Queue {
            channel: revived.channel,
            reason: e.to_string(),
        });
    }
    tracing::info!(delivery_id = %revived.id, event_id = %revived.event_id, "dead delivery replayed");
    report.replayed += 1;
    Ok(())
}
