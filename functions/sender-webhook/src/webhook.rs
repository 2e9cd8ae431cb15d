//! [`WebhookTransport`] is the `Transport` of the webhooks channel, built on the shared
//! [`WebhookClient`] (the guarded, signed POST; see its docs for the headers and how answers
//! map). A temporary failure rests the endpoint as `inactive_tmp` and the delivery is retried;
//! a permanent one deactivates the endpoint and fails the delivery.
//!
//! Before sending, the transport looks the endpoint up: deleted or `inactive_permanent` →
//! permanent failure; `inactive_tmp` → the message is parked until the endpoint recovers.
//!
//! Error texts and logs never contain the URL, the custom header's value, the secret or a body.

use async_trait::async_trait;
use herald_shared::adapters::webhook_client::{Post, PostError, WebhookClient};
use herald_shared::domain::webhook_body::webhook_body;
use herald_shared::domain::{Channel, Destination, WebhookOutcome, WebhookStatus};
use herald_shared::ports::{Clock, HeraldStore};
use herald_shared::ports::{SendError, SendRequest, Transport};
use herald_shared::webhooks::record_webhook_outcome;
use std::sync::Arc;

/// Sends webhook deliveries (see the module docs).
pub struct WebhookTransport {
    store: Arc<dyn HeraldStore>,
    client: WebhookClient,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for WebhookTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookTransport")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl WebhookTransport {
    /// A transport over `store` (endpoints, their state, requesters) posting with `client`.
    pub fn new(store: Arc<dyn HeraldStore>, client: WebhookClient, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            client,
            clock,
        }
    }
}

fn permanent(reason: impl Into<String>) -> SendError {
    SendError::Permanent {
        reason: reason.into(),
    }
}

fn store_failed(error: &herald_shared::ports::StoreError) -> SendError {
    tracing::error!(%error, "the store failed while sending a webhook");
    SendError::Transient {
        reason: "the webhook endpoint could not be read".into(),
        retry_after: None,
    }
}

#[async_trait]
impl Transport for WebhookTransport {
    fn channel(&self) -> Channel {
        Channel::Webhooks
    }

    async fn send(&self, request: &SendRequest<'_>) -> Result<(), SendError> {
        let Destination::Webhook(id) = &request.delivery.destination else {
            return Err(permanent(format!(
                "{} names no single webhook endpoint",
                request.delivery.destination
            )));
        };
        if !request.system.enable_webhooks_notifications {
            return Err(permanent(
                "webhook notifications are disabled in the system settings",
            ));
        }
        let endpoint = self
            .store
            .webhook(id)
            .await
            .map_err(|e| store_failed(&e))?
            .ok_or_else(|| permanent(herald_shared::webhooks::DELETED_ENDPOINT))?;
        match endpoint.state.status {
            WebhookStatus::InactivePermanent => {
                return Err(permanent(
                    "the webhook endpoint is deactivated after errors; edit it to activate it again",
                ));
            }
            WebhookStatus::InactiveTmp => {
                return Err(SendError::Parked {
                    reason: "the webhook endpoint is resting after errors; the message waits for it to recover".into(),
                });
            }
            WebhookStatus::Active | WebhookStatus::ActiveTmp => {}
        }
        let requester = match &request.event.requested_by {
            Some(user) => self.store.user(user).await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "the requester could not be read; the body names none");
                None
            }),
            None => None,
        };
        let body = serde_json::to_vec(&webhook_body(
            request.event,
            request.system,
            requester.as_ref(),
        ))
        .map_err(|_| permanent("the webhook body could not be built"))?;
        let now_ms = self.clock.now_ms();
        let message_id = format!("msg_{}", request.delivery.id);
        let posted = self
            .client
            .post(
                &endpoint,
                request.system,
                Post {
                    event_type: &request.event.event_type,
                    message_id: &message_id,
                    body: &body,
                    now_ms,
                },
            )
            .await;
        let outcome = match &posted {
            Ok(()) => WebhookOutcome::Delivered,
            Err(e) => e.outcome(),
        };
        if let Err(e) =
            record_webhook_outcome(self.store.as_ref(), &endpoint, &outcome, now_ms).await
        {
            tracing::error!(webhook = %endpoint.id, error = %e, "the endpoint's state could not be recorded");
        }
        posted.map_err(|e| match e {
            PostError::Temporary {
                reason,
                retry_after,
            } => SendError::Transient {
                reason,
                retry_after,
            },
            PostError::Permanent { reason } => SendError::Permanent { reason },
        })
    }
}
