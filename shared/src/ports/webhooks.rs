//! The webhook store port: registered endpoints, and the messages parked while an endpoint
//! rests.

use super::StoreError;
use crate::domain::{DeliveryMessage, Username, WebhookEndpoint, WebhookId};
use async_trait::async_trait;

/// Which endpoints to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookOwner {
    /// Every endpoint.
    All,
    /// System endpoints only.
    System,
    /// The endpoints of one user.
    User(Username),
}

impl WebhookOwner {
    /// Whether `endpoint` is one of these.
    pub fn includes(&self, endpoint: &WebhookEndpoint) -> bool {
        match self {
            WebhookOwner::All => true,
            WebhookOwner::System => endpoint.owner.is_none(),
            WebhookOwner::User(user) => endpoint.is_owned_by(user),
        }
    }
}

/// A delivery message kept for an endpoint that is resting (`inactive_tmp`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedMessage {
    pub message: DeliveryMessage,
    /// When it was parked (ms since the Unix epoch).
    pub parked_at: u64,
}

/// Webhook endpoints and their parked messages.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Creates or replaces an endpoint (an add or an edit), state included, and returns the
    /// version it now has (the stored version plus one; `1` for a new endpoint).
    async fn put_webhook(&self, endpoint: &WebhookEndpoint) -> Result<u64, StoreError>;
    /// One endpoint, `None` when unknown.
    async fn webhook(&self, id: &WebhookId) -> Result<Option<WebhookEndpoint>, StoreError>;
    /// Every endpoint of `owner`, ordered by id, in one backend request per page (never one
    /// per endpoint).
    async fn webhooks(&self, owner: &WebhookOwner) -> Result<Vec<WebhookEndpoint>, StoreError>;
    /// Replaces `endpoint` only while its stored version is still `endpoint.version` (what
    /// the caller read), so a status change computed from a stale read never overwrites an
    /// edit or another outcome. `false` when the version moved on or the endpoint is gone.
    async fn update_webhook_if_unchanged(
        &self,
        endpoint: &WebhookEndpoint,
    ) -> Result<bool, StoreError>;
    /// Removes an endpoint with its parked messages; `false` when unknown.
    async fn delete_webhook(&self, id: &WebhookId) -> Result<bool, StoreError>;

    /// Keeps `message` for endpoint `id` until it recovers. Parking the same delivery again
    /// is harmless.
    async fn park_webhook_message(
        &self,
        id: &WebhookId,
        message: &DeliveryMessage,
        now_ms: u64,
    ) -> Result<(), StoreError>;
    /// Up to `limit` of the messages parked for endpoint `id`, oldest first.
    async fn parked_webhook_messages(
        &self,
        id: &WebhookId,
        limit: usize,
    ) -> Result<Vec<ParkedMessage>, StoreError>;
    /// Removes parked messages (after they were queued again); unknown ones are ignored.
    async fn unpark_webhook_messages(
        &self,
        id: &WebhookId,
        messages: &[ParkedMessage],
    ) -> Result<(), StoreError>;
}
