//! [`WebhookTransport`] is the `Transport` of the webhooks channel, built on the shared
//! [`WebhookClient`] (the guarded, signed POST; see its docs for the headers and how answers
//! map). A temporary failure rests the endpoint as `inactive_tmp` and the delivery is retried;
//! a permanent one deactivates the endpoint and fails the delivery.
//!
//! The body is in the endpoint's format: Herald's ([`webhook_body`]) or DefectDojo's own
//! ([`defectdojo_body`], `user` the endpoint's owner); either names the product and product
//! type from the directory when the event does not.
//!
//! Before sending, the transport looks the endpoint up: deleted or `inactive_permanent` →
//! permanent failure; `inactive_tmp` → the message is parked until the endpoint recovers.
//!
//! Error texts and logs never contain the URL, the custom header's value, the secret or a body.

use async_trait::async_trait;
use herald_shared::adapters::webhook_client::{Post, PostError, WebhookClient};
use herald_shared::domain::defectdojo::outbound::defectdojo_body;
use herald_shared::domain::webhook::WebhookFormat;
use herald_shared::domain::webhook_body::{DirectoryNames, webhook_body};
use herald_shared::domain::{
    Channel, Destination, Event, User, Username, WebhookEndpoint, WebhookOutcome, WebhookStatus,
};
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

impl WebhookTransport {
    /// A user of the directory, or `None` (logged) when the store cannot say.
    async fn user(&self, user: Option<&Username>) -> Option<User> {
        let user = user?;
        self.store.user(user).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "a user could not be read; the body names none");
            None
        })
    }

    /// What the directory knows of the event's product and product type (best effort: a
    /// name the store cannot read is left out).
    async fn names(&self, event: &Event) -> DirectoryNames {
        let product = match event.product() {
            Some(id) => self.store.product(&id).await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "the product could not be read; the body names none");
                None
            }),
            None => None,
        };
        let product_type = match DirectoryNames::product_type_id(event, product.as_ref()) {
            Some(id) => self.store.product_type(&id).await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "the product type could not be read; the body names none");
                None
            }),
            None => None,
        };
        DirectoryNames {
            product,
            product_type,
        }
    }

    /// The body in the endpoint's format. In DefectDojo's, `user` is the endpoint's owner:
    /// a personal endpoint's body never goes out with `user: null` (which a DefectDojo
    /// receiver takes for the system copy), so an owner the store cannot read is a retry and
    /// one no longer in the directory a failure.
    async fn body(
        &self,
        endpoint: &WebhookEndpoint,
        request: &SendRequest<'_>,
    ) -> Result<Vec<u8>, SendError> {
        let event = request.event;
        let requester = self.user(event.requested_by.as_ref()).await;
        let names = self.names(event).await;
        let body = match endpoint.format {
            WebhookFormat::Herald => serde_json::to_vec(&webhook_body(
                event,
                request.system,
                requester.as_ref(),
                &names,
            )),
            WebhookFormat::Defectdojo => {
                let owner = match &endpoint.owner {
                    Some(user) => Some(
                        self.store
                            .user(user)
                            .await
                            .map_err(|e| store_failed(&e))?
                            .ok_or_else(|| {
                                permanent("the webhook's owner is no longer in the directory")
                            })?,
                    ),
                    None => None,
                };
                serde_json::to_vec(&defectdojo_body(
                    event,
                    request.system,
                    owner.as_ref(),
                    requester.as_ref(),
                    &names,
                ))
            }
        };
        body.map_err(|_| permanent("the webhook body could not be built"))
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
        let body = self.body(&endpoint, request).await?;
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
