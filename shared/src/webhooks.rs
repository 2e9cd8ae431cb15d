//! The webhook use cases around the endpoint state machine ([`crate::domain::webhook`]):
//! recording what a request to an endpoint did, and the periodic recovery that wakes resting
//! endpoints and queues their parked messages again.
//!
//! **Recovery** ([`recover_webhooks`], every 15 s in `herald-local`; on AWS the scheduler
//! will call it): for each endpoint, the recovery transitions (`inactive_tmp` quiet for 60 s →
//! `active_tmp`; `active_tmp` quiet for 24 h → `active`), then, for every endpoint that is
//! `active` or `active_tmp`, its parked messages are queued on the webhooks queue and then
//! removed from the store.
//!
//! Messages parked for an endpoint that became `inactive_permanent` (errors for over 24 h)
//! will not be sent: their deliveries are recorded `failed` and the messages removed. Each pass
//! reads the endpoint list once and, per endpoint that is not resting, its parked messages
//! (one request each).
//!
//! Crash window: a message queued again whose removal did not happen (a crash in between) is
//! queued once more by the next pass. That is harmless: the embedded queue keeps one message
//! per delivery id, and the sender skips a delivery that is already final, so it is sent once.
//!
//! A message is queued again only once it has been parked for [`PARK_SETTLE_MS`]: the sender
//! parks a message *before* the queue forgets the received copy, and the embedded queue would
//! ignore a copy queued in between (same delivery id) and then delete the received one.

use crate::domain::{WebhookEndpoint, WebhookId, WebhookOutcome, WebhookStatus};
use crate::ports::{
    AttemptOutcome, DeliveryQueue, EventStore, QueueError, StoreError, WebhookOwner, WebhookStore,
};

/// How long a message stays parked at least before recovery queues it again.
pub const PARK_SETTLE_MS: u64 = 30_000;
/// Parked messages queued per request.
const RECOVERY_BATCH: usize = 100;
/// Attempts of a conditional state update that keeps meeting concurrent updates.
const STATE_UPDATE_ATTEMPTS: usize = 5;

/// Why recovery stopped; the next pass picks up where it left off.
#[derive(Debug, thiserror::Error)]
pub enum WebhookRecoveryError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The queue failed; the messages stay parked.
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// What one recovery pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Endpoints whose state changed (`inactive_tmp` → `active_tmp`, `active_tmp` → `active`).
    pub transitions: usize,
    /// Parked messages queued again.
    pub requeued: usize,
    /// Parked messages whose deliveries failed (their endpoint is deactivated for good).
    pub failed: usize,
}

/// One recovery pass at `now_ms` (see the module docs).
pub async fn recover_webhooks<S, Q>(
    store: &S,
    queue: &Q,
    now_ms: u64,
) -> Result<RecoveryReport, WebhookRecoveryError>
where
    S: WebhookStore + EventStore + ?Sized,
    Q: DeliveryQueue + ?Sized,
{
    let mut report = RecoveryReport::default();
    for mut endpoint in store.webhooks(&WebhookOwner::All).await? {
        if let Some(state) = endpoint.state.recovered(now_ms) {
            let recovered = WebhookEndpoint {
                state,
                ..endpoint.clone()
            };
            if !store.update_webhook_if_unchanged(&recovered).await? {
                // Edited or updated meanwhile: the next pass sees the new state.
                continue;
            }
            tracing::info!(webhook = %endpoint.id, status = recovered.state.status.name(), "webhook endpoint recovered");
            report.transitions += 1;
            endpoint = recovered;
        }
        match endpoint.state.status {
            WebhookStatus::InactiveTmp => continue,
            WebhookStatus::InactivePermanent => {
                report.failed +=
                    fail_parked(store, &endpoint.id, DEACTIVATED_ENDPOINT, now_ms).await?;
                continue;
            }
            WebhookStatus::Active | WebhookStatus::ActiveTmp => {}
        }
        loop {
            let parked = store
                .parked_webhook_messages(&endpoint.id, RECOVERY_BATCH)
                .await?;
            let fetched = parked.len();
            let ready: Vec<_> = parked
                .into_iter()
                .take_while(|p| p.parked_at.saturating_add(PARK_SETTLE_MS) <= now_ms)
                .collect();
            if ready.is_empty() {
                break;
            }
            let messages: Vec<_> = ready.iter().map(|p| p.message.clone()).collect();
            queue.enqueue(&messages).await?;
            store.unpark_webhook_messages(&endpoint.id, &ready).await?;
            report.requeued += ready.len();
            tracing::info!(webhook = %endpoint.id, messages = ready.len(), "parked webhook messages queued again");
            if ready.len() < fetched || fetched < RECOVERY_BATCH {
                break;
            }
        }
    }
    Ok(report)
}

/// Records `outcome` of a request sent to `sent_to` (the endpoint as read before sending) at
/// `now_ms`, with a conditional write that is retried on concurrent outcomes. An outcome
/// that changes nothing writes nothing. When the endpoint was edited after `sent_to` was read,
/// the outcome belongs to the old settings and is dropped. Returns the endpoint as it now
/// stands (`None` when it was deleted).
pub async fn record_webhook_outcome<S>(
    store: &S,
    sent_to: &WebhookEndpoint,
    outcome: &WebhookOutcome,
    now_ms: u64,
) -> Result<Option<WebhookEndpoint>, StoreError>
where
    S: WebhookStore + ?Sized,
{
    let mut current = sent_to.clone();
    for _ in 0..STATE_UPDATE_ATTEMPTS {
        let state = current.state.after(outcome, now_ms);
        if state == current.state {
            return Ok(Some(current));
        }
        let next = WebhookEndpoint {
            state,
            ..current.clone()
        };
        if store.update_webhook_if_unchanged(&next).await? {
            return Ok(Some(WebhookEndpoint {
                version: next.version + 1,
                ..next
            }));
        }
        match store.webhook(&sent_to.id).await? {
            None => return Ok(None),
            Some(fresh) if fresh.updated_at != sent_to.updated_at || fresh.url != sent_to.url => {
                return Ok(Some(fresh));
            }
            Some(fresh) => current = fresh,
        }
    }
    tracing::warn!(webhook = %sent_to.id, "the endpoint's state kept changing; this outcome was not recorded");
    Ok(Some(current))
}

/// The error recorded on deliveries whose endpoint was deleted.
pub const DELETED_ENDPOINT: &str = "webhook endpoint was deleted";
/// The error recorded on parked deliveries whose endpoint was deactivated for good.
pub const DEACTIVATED_ENDPOINT: &str =
    "the webhook endpoint was deactivated after errors lasting over 24 hours";

/// Records every delivery parked for endpoint `id` as `failed` with `error`, and removes the
/// messages. Returns how many there were.
async fn fail_parked<S>(
    store: &S,
    id: &WebhookId,
    error: &str,
    now_ms: u64,
) -> Result<usize, StoreError>
where
    S: WebhookStore + EventStore + ?Sized,
{
    let mut failed = 0;
    loop {
        let parked = store.parked_webhook_messages(id, RECOVERY_BATCH).await?;
        if parked.is_empty() {
            return Ok(failed);
        }
        for p in &parked {
            let outcome = AttemptOutcome::Failed {
                error: error.to_owned(),
            };
            store
                .record_attempt(
                    &p.message.event_id,
                    &p.message.delivery_id,
                    &outcome,
                    now_ms,
                )
                .await?;
        }
        store.unpark_webhook_messages(id, &parked).await?;
        failed += parked.len();
    }
}

/// Deletes endpoint `id`. The deliveries of the messages parked for it are recorded `failed`
/// first, so none of them stays `retrying` for ever. `false` when the endpoint is unknown.
pub async fn delete_webhook_endpoint<S>(
    store: &S,
    id: &WebhookId,
    now_ms: u64,
) -> Result<bool, StoreError>
where
    S: WebhookStore + EventStore + ?Sized,
{
    fail_parked(store, id, DELETED_ENDPOINT, now_ms).await?;
    store.delete_webhook(id).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::EmbeddedStore;
    use crate::domain::{WebhookRequest, WebhookStatus};

    const T0: u64 = 1_800_000_000_000;

    fn temporary(reason: &str) -> WebhookOutcome {
        WebhookOutcome::Temporary {
            reason: reason.to_owned(),
        }
    }

    async fn stored_endpoint(store: &EmbeddedStore) -> WebhookEndpoint {
        let endpoint = WebhookRequest::from_request(
            &serde_json::json!({"name": "SIEM", "url": "https://siem.example.com/hook"}),
        )
        .and_then(|r| r.create(WebhookId::from_random([9; 8]), None, T0))
        .unwrap_or_else(|e| panic!("{e}"));
        let version = store
            .put_webhook(&endpoint)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        WebhookEndpoint {
            version,
            ..endpoint
        }
    }

    async fn read(store: &EmbeddedStore, id: &WebhookId) -> WebhookEndpoint {
        store
            .webhook(id)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("the endpoint is gone"))
    }

    #[tokio::test]
    async fn given_two_outcomes_from_one_read_then_both_are_recorded_in_turn() {
        let store = EmbeddedStore::in_memory().unwrap_or_else(|e| panic!("{e}"));
        let sent_to = stored_endpoint(&store).await;
        record_webhook_outcome(&store, &sent_to, &temporary("HTTP 502"), T0 + 10)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // The second was computed from the same (now stale) read: retried on the fresh one.
        record_webhook_outcome(&store, &sent_to, &temporary("HTTP 503"), T0 + 20)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let now = read(&store, &sent_to.id).await;
        assert_eq!(now.state.status, WebhookStatus::InactiveTmp);
        assert_eq!(now.state.first_error, Some(T0 + 10));
        assert_eq!(now.state.last_error, Some(T0 + 20));
        assert_eq!(now.state.note.as_deref(), Some("HTTP 503"));
    }

    #[tokio::test]
    async fn given_an_edit_after_the_send_began_then_its_outcome_does_not_touch_the_edited_endpoint()
     {
        let store = EmbeddedStore::in_memory().unwrap_or_else(|e| panic!("{e}"));
        let sent_to = stored_endpoint(&store).await;
        let edited = WebhookRequest::from_request(
            &serde_json::json!({"url": "https://new.example.com/hook"}),
        )
        .and_then(|r| r.edit(&sent_to, T0))
        .unwrap_or_else(|e| panic!("{e}"));
        store
            .put_webhook(&edited)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let after = record_webhook_outcome(
            &store,
            &sent_to,
            &WebhookOutcome::Permanent {
                reason: "HTTP 404".into(),
            },
            T0 + 5,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let now = read(&store, &sent_to.id).await;
        assert_eq!(now.state.status, WebhookStatus::Active);
        assert_eq!(now.url, "https://new.example.com/hook");
        assert_eq!(after.map(|e| e.url), Some(now.url));
    }

    #[tokio::test]
    async fn given_a_success_on_a_healthy_endpoint_then_nothing_is_written() {
        let store = EmbeddedStore::in_memory().unwrap_or_else(|e| panic!("{e}"));
        let sent_to = stored_endpoint(&store).await;
        record_webhook_outcome(&store, &sent_to, &WebhookOutcome::Delivered, T0 + 1)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read(&store, &sent_to.id).await.version, sent_to.version);
        // A deleted endpoint: the outcome reports it gone.
        assert!(
            store
                .delete_webhook(&sent_to.id)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
        );
        let after = record_webhook_outcome(&store, &sent_to, &temporary("HTTP 500"), T0 + 2)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(after, None);
    }
}
