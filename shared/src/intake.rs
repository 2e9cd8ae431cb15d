//! The intake use case: an event comes in; Herald decides who hears about it, records the
//! alerts and deliveries durably, and hands every delivery to its channel's queue, once.
//!
//! The order makes it crash-safe and idempotent:
//! 1. a known event id answers as the first time (and finishes enqueueing if a crash cut it
//!    short);
//! 2. routing reads a constant number of store requests (the audience in one go);
//! 3. `record_event` makes the event, its alerts and its deliveries durable, once per id;
//! 4. the deliveries go to their queues (senders skip a delivery already sent, so a repeated
//!    enqueue never sends twice);
//! 5. the event is marked enqueued.
//!
//! Where the store is also the queue (`herald-local`'s embedded store and queue), steps 3 to 5
//! are one transaction ([`RecordOutcome::Queued`]).
//!
//! An event that says something about an engagement (`engagement_added` with its dates,
//! `close_engagement`, `engagement_closed`, `engagement_reopened`) also updates Herald's copy
//! of it, for the scheduled checks; best effort, after the event is accepted.
//!
//! Routing names webhook *groups* (the system's endpoints, a user's endpoints); step 2 also
//! reads the endpoint list, once, and replaces each group with one delivery per endpoint
//! that is not deactivated for good ([`expand_webhook_groups`]).

use crate::domain::alert::AlertTemplate;
use crate::domain::check_records::{EngagementNews, engagement_news};
use crate::domain::{
    Alert, Audience, AudienceMember, AudienceQuery, Delivery, Destination, Event, EventId,
    SystemScope, WebhookStatus, audience_query, route,
};
use crate::ports::{
    DeliveryQueue, EventRecord, HeraldStore, QueueError, RecordOutcome, StoreError, WebhookOwner,
    WebhookStore,
};
use serde::Serialize;
use std::sync::Arc;

/// The answer to an accepted event (the same for every repeat of its id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct IntakeAnswer {
    #[schema(value_type = String)]
    pub event_id: EventId,
    /// Non-alert deliveries queued.
    pub deliveries: u32,
    /// In-app alerts written.
    pub alerts: u32,
    /// Whether this id had been posted before (the answer is the first one's); the HTTP API
    /// says so in `Idempotent-Replayed`.
    #[serde(skip)]
    pub replayed: bool,
}

impl IntakeAnswer {
    fn from_record(record: &EventRecord) -> Self {
        Self {
            event_id: record.event.id.clone(),
            deliveries: record.delivery_count,
            alerts: record.alert_count,
            replayed: false,
        }
    }
}

/// Why an event could not be accepted.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The queue failed; the event is recorded and will be enqueued by a retry with the same
    /// id or by the recovery pass.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The id was accepted before for an event that differs from this one: a retry must send
    /// the same event, and a new event needs a new id (or none).
    #[error(
        "id: {0} was already used for a different event; send the same event to retry it, or a new id for a new event"
    )]
    IdempotencyKeyReused(EventId),
}

/// Accepts `event` at `now_ms` (milliseconds since the Unix epoch).
pub async fn accept_event<S, Q>(
    store: &S,
    queue: &Q,
    event: Event,
    now_ms: u64,
) -> Result<IntakeAnswer, IntakeError>
where
    S: HeraldStore + ?Sized,
    Q: DeliveryQueue + ?Sized,
{
    let news = engagement_news(&event);
    let (mut event, mut accepted_at) = (event, now_ms);
    let mut replayed = false;
    if let Some(first) = store.event(&event.id).await? {
        if first.event != event {
            return Err(IntakeError::IdempotencyKeyReused(event.id));
        }
        replayed = true;
        if first.complete {
            return finish_duplicate(store, queue, &first).await;
        }
        // An earlier attempt stopped part-way: complete it as of its own time, so the alerts
        // and deliveries get the keys it used.
        (event, accepted_at) = (first.event, first.accepted_at);
    }
    // Twice at most: a concurrent first attempt with the same id may have started recording
    // between our read and our write; then we complete it as of its time.
    for _ in 0..2 {
        match route_and_record(store, queue, event, accepted_at).await? {
            Recording::Done(mut answer) => {
                answer.replayed |= replayed;
                if let Some(news) = news.filter(|_| !answer.replayed) {
                    keep_engagement_current(store, news).await;
                }
                return Ok(answer);
            }
            Recording::CompleteFirst(first) => {
                (event, accepted_at) = (first.event, first.accepted_at)
            }
        }
    }
    Err(IntakeError::Store(StoreError::Conflict(
        "the event is being recorded by another request; retry with the same id".into(),
    )))
}

/// Applies what an event said about an engagement to the directory (the scheduled checks
/// read it). Best effort: the event is accepted already, and a failure here is logged, never
/// the event's failure; an unknown engagement or product is ignored.
async fn keep_engagement_current<S>(store: &S, news: EngagementNews)
where
    S: HeraldStore + ?Sized,
{
    let result = match news {
        EngagementNews::Put(engagement) => store.put_engagement(&engagement).await.map(|_| ()),
        EngagementNews::Status(id, status) => match store.engagement(&id).await {
            Ok(Some(mut engagement)) if engagement.status != status => {
                engagement.status = status;
                store.put_engagement(&engagement).await.map(|_| ())
            }
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) | Err(StoreError::NotFound(_)) => {}
        Err(e) => tracing::warn!(error = %e, "the engagement named by an event was not updated"),
    }
}

enum Recording {
    Done(IntakeAnswer),
    CompleteFirst(Box<EventRecord>),
}

async fn route_and_record<S, Q>(
    store: &S,
    queue: &Q,
    event: Event,
    now_ms: u64,
) -> Result<Recording, IntakeError>
where
    S: HeraldStore + ?Sized,
    Q: DeliveryQueue + ?Sized,
{
    let (settings, notifications, administrators) = tokio::try_join!(
        store.system_settings(),
        store.system_notifications(),
        store.administrators(),
    )?;
    let trump = settings.trump_events();
    let scope = SystemScope {
        settings: &settings,
        notifications: &notifications,
        trump: &trump,
        administrators: &administrators,
    };
    let query = audience_query(&event);
    let members: Vec<AudienceMember> = match &query {
        AudienceQuery::SystemOnly => Vec::new(),
        AudienceQuery::Recipients(users) => store.recipients(users).await?,
        AudienceQuery::Product(product) => match store.product_audience(product).await? {
            Some(audience) => audience.members,
            None => {
                tracing::warn!(event_id = %event.id, %product, "event names an unknown product; only administrators are notified");
                store.administrator_audience().await?
            }
        },
        AudienceQuery::Administrators => store.administrator_audience().await?,
    };
    let audience = match query {
        AudienceQuery::SystemOnly => Audience::SystemOnly,
        AudienceQuery::Recipients(_) => Audience::Recipients(&members),
        AudienceQuery::Product(_) | AudienceQuery::Administrators => Audience::Broadcast(&members),
    };
    let plan = route(&event, scope, audience);

    let template = AlertTemplate::new(&event, now_ms);
    let alerts: Arc<[Alert]> = plan
        .alerts
        .iter()
        .map(|user| template.for_user(user))
        .collect();
    let deliveries: Arc<[Delivery]> = expand_webhook_groups(store, plan.deliveries)
        .await?
        .into_iter()
        .map(|destination| Delivery::queued(&event.id, destination, now_ms))
        .collect();
    let record = EventRecord {
        event,
        accepted_at: now_ms,
        delivery_count: u32::try_from(deliveries.len()).unwrap_or(u32::MAX),
        alert_count: u32::try_from(alerts.len()).unwrap_or(u32::MAX),
        enqueued: false,
        complete: false,
    };
    let recording =
        store.record_event_shared(record.clone(), Arc::clone(&alerts), Arc::clone(&deliveries));
    match recording.await? {
        outcome @ (RecordOutcome::Recorded | RecordOutcome::Queued) => {
            if outcome == RecordOutcome::Recorded {
                enqueue(store, queue, &record.event.id, &deliveries).await?;
            }
            tracing::info!(
                event_id = %record.event.id,
                event_type = %record.event.event_type,
                alerts = record.alert_count,
                deliveries = record.delivery_count,
                "event accepted"
            );
            Ok(Recording::Done(IntakeAnswer::from_record(&record)))
        }
        // Another request with the same id won the race: answer as it did, if it was this event.
        RecordOutcome::Duplicate(first) if first.event != record.event => {
            Err(IntakeError::IdempotencyKeyReused(record.event.id))
        }
        RecordOutcome::Duplicate(first) if first.complete => finish_duplicate(store, queue, &first)
            .await
            .map(Recording::Done),
        RecordOutcome::Duplicate(first) => Ok(Recording::CompleteFirst(Box::new(first))),
    }
}

/// Replaces the webhook groups among `destinations` (`webhooks:system`,
/// `webhooks:user:<name>`) with one destination per endpoint of that owner that is not
/// `inactive_permanent`; an owner without endpoints gets none. Reads the endpoint list once,
/// and only when there is a group to expand.
pub async fn expand_webhook_groups<S>(
    store: &S,
    destinations: Vec<Destination>,
) -> Result<Vec<Destination>, StoreError>
where
    S: WebhookStore + ?Sized,
{
    let is_group = |d: &Destination| {
        matches!(
            d,
            Destination::SystemWebhooks | Destination::UserWebhooks(_)
        )
    };
    if !destinations.iter().any(is_group) {
        return Ok(destinations);
    }
    let endpoints = store.webhooks(&WebhookOwner::All).await?;
    let mut expanded = Vec::with_capacity(destinations.len() + endpoints.len());
    for destination in destinations {
        let owner = match destination {
            Destination::SystemWebhooks => WebhookOwner::System,
            Destination::UserWebhooks(user) => WebhookOwner::User(user),
            other => {
                expanded.push(other);
                continue;
            }
        };
        expanded.extend(
            endpoints
                .iter()
                .filter(|e| owner.includes(e) && e.state.status != WebhookStatus::InactivePermanent)
                .map(|e| Destination::Webhook(e.id.clone())),
        );
    }
    Ok(expanded)
}

async fn finish_duplicate<S, Q>(
    store: &S,
    queue: &Q,
    first: &EventRecord,
) -> Result<IntakeAnswer, IntakeError>
where
    S: HeraldStore + ?Sized,
    Q: DeliveryQueue + ?Sized,
{
    if !first.enqueued {
        let deliveries = store.deliveries(&first.event.id).await?;
        let pending: Vec<Delivery> = deliveries
            .into_iter()
            .filter(|d| !d.status.is_final())
            .collect();
        enqueue(store, queue, &first.event.id, &pending).await?;
    }
    Ok(IntakeAnswer {
        replayed: true,
        ..IntakeAnswer::from_record(first)
    })
}

async fn enqueue<S, Q>(
    store: &S,
    queue: &Q,
    event: &EventId,
    deliveries: &[Delivery],
) -> Result<(), IntakeError>
where
    S: HeraldStore + ?Sized,
    Q: DeliveryQueue + ?Sized,
{
    if !deliveries.is_empty() {
        let messages: Vec<_> = deliveries.iter().map(Delivery::message).collect();
        queue.enqueue(&messages).await?;
    }
    store.mark_event_enqueued(event).await?;
    Ok(())
}

/// Finishes one event recorded but never queued; `false` when it is gone (expired).
async fn finish_one<S, Q>(store: &S, queue: &Q, id: &EventId) -> Result<bool, IntakeError>
where
    S: HeraldStore + ?Sized,
    Q: DeliveryQueue + ?Sized,
{
    let Some(record) = store.event(id).await? else {
        store.mark_event_enqueued(id).await?;
        return Ok(false);
    };
    if record.complete {
        finish_duplicate(store, queue, &record).await?;
    } else {
        accept_event(store, queue, record.event, record.accepted_at).await?;
    }
    Ok(true)
}

/// How long an intake may still be finishing an event it recorded: the recovery sweep on AWS
/// leaves events younger than this to it (intake's function timeout is 10 s).
pub const RECOVERY_GRACE_MS: u64 = 60_000;

/// Finishes the fan-out of events recorded but never marked enqueued (a crash between the
/// two) that were accepted before `accepted_before_ms`: `herald-local` at start-up (every
/// event, nothing else runs yet), and the scheduled checks on AWS every minute (events older
/// than [`RECOVERY_GRACE_MS`]). Returns how many events it finished. Each event is finished
/// once per sweep, even while an eventually consistent index still lists it.
pub async fn recover_unenqueued<S, Q>(
    store: &S,
    queue: &Q,
    accepted_before_ms: u64,
) -> Result<usize, IntakeError>
where
    S: HeraldStore + ?Sized,
    Q: DeliveryQueue + ?Sized,
{
    let mut finished = 0;
    let mut seen = std::collections::HashSet::new();
    loop {
        let ids: Vec<EventId> = store
            .events_not_enqueued(accepted_before_ms, 100)
            .await?
            .into_iter()
            .filter(|id| seen.insert(id.clone()))
            .collect();
        if ids.is_empty() {
            return Ok(finished);
        }
        for id in ids {
            // One event that cannot be finished is logged and left for the next sweep; the
            // others behind it are finished now.
            match finish_one(store, queue, &id).await {
                Ok(true) => finished += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(event_id = %id, error = %e, "an event recorded but never queued could not be finished; the next sweep tries again");
                }
            }
        }
    }
}
