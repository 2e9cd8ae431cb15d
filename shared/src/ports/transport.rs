//! The transport port: one channel's way of sending a delivery.

use crate::domain::{Channel, Delivery, Event, SystemSettings, User};
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

/// Why a transport could not deliver.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth trying again: a timeout, a connection error, 5xx, 429. `retry_after` is the
    /// destination's own wish (`Retry-After`), if it said one.
    #[error("{reason}")]
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Never going to work as it is: 4xx other than 429, an unknown channel, a bad token.
    #[error("{reason}")]
    Permanent { reason: String },
    /// Not now, and not worth a retry: the destination is resting (a webhook endpoint after
    /// temporary errors). The message is parked for the destination's recovery.
    #[error("{reason}")]
    Parked { reason: String },
}

/// What a transport needs to send one delivery.
#[derive(Debug, Clone, Copy)]
pub struct SendRequest<'a> {
    pub event: &'a Event,
    pub delivery: &'a Delivery,
    pub system: &'a SystemSettings,
    /// The user a personal destination belongs to (Slack DM, user webhooks).
    pub recipient: Option<&'a User>,
}

/// One channel's way of sending.
#[async_trait]
pub trait Transport: Send + Sync {
    /// The channel it sends on.
    fn channel(&self) -> Channel;
    /// Sends one delivery. Error texts are recorded and shown to administrators: they must
    /// never contain a secret (token, signing secret, header value).
    async fn send(&self, request: &SendRequest<'_>) -> Result<(), SendError>;
}

#[async_trait]
impl<T: Transport + ?Sized> Transport for Arc<T> {
    fn channel(&self) -> Channel {
        (**self).channel()
    }

    async fn send(&self, request: &SendRequest<'_>) -> Result<(), SendError> {
        (**self).send(request).await
    }
}
