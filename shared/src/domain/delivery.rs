//! Deliveries: one message on one non-alert channel to one destination, with a deterministic
//! id so that every retry and redelivery of the same work is recognised.

use super::channel::Channel;
use super::directory::Username;
use super::event::EventId;
use super::webhook::WebhookId;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// Where a delivery goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Destination {
    /// An email address: a user's, or the system's `mail_notifications_to`.
    Email(String),
    /// The system Slack channel.
    SlackChannel(String),
    /// A direct Slack message to a user (the sender resolves their Slack id).
    SlackUser(Username),
    /// The system Microsoft Teams webhook.
    Teams,
    /// Every system-owned webhook endpoint.
    SystemWebhooks,
    /// Every webhook endpoint a user owns.
    UserWebhooks(Username),
    /// One webhook endpoint. Intake replaces the two groups above with one of these per
    /// endpoint; the groups stay parseable for deliveries recorded before.
    Webhook(WebhookId),
}

impl Destination {
    /// An email destination. Addresses are lower-cased, so one mailbox is one destination
    /// however the platform spelt it.
    pub fn email(address: &str) -> Destination {
        Destination::Email(address.trim().to_lowercase())
    }

    /// The channel this destination belongs to.
    pub fn channel(&self) -> Channel {
        match self {
            Destination::Email(_) => Channel::Mail,
            Destination::SlackChannel(_) | Destination::SlackUser(_) => Channel::Slack,
            Destination::Teams => Channel::Msteams,
            Destination::SystemWebhooks
            | Destination::UserWebhooks(_)
            | Destination::Webhook(_) => Channel::Webhooks,
        }
    }

    /// A stable text form: `mail:a@example.com`, `slack:channel:#appsec`, `slack:user:alice`,
    /// `msteams:system`, `webhooks:system`, `webhooks:user:alice`, `webhooks:endpoint:wh_1f`.
    pub fn key(&self) -> String {
        match self {
            Destination::Email(address) => format!("mail:{address}"),
            Destination::SlackChannel(channel) => format!("slack:channel:{channel}"),
            Destination::SlackUser(user) => format!("slack:user:{user}"),
            Destination::Teams => "msteams:system".to_owned(),
            Destination::SystemWebhooks => "webhooks:system".to_owned(),
            Destination::UserWebhooks(user) => format!("webhooks:user:{user}"),
            Destination::Webhook(id) => format!("webhooks:endpoint:{id}"),
        }
    }

    /// Parses [`Destination::key`].
    pub fn from_key(key: &str) -> Option<Destination> {
        if let Some(address) = key.strip_prefix("mail:") {
            return Some(Destination::email(address));
        }
        if let Some(channel) = key.strip_prefix("slack:channel:") {
            return Some(Destination::SlackChannel(channel.to_owned()));
        }
        if let Some(user) = key.strip_prefix("slack:user:") {
            return Some(Destination::SlackUser(Username(user.to_owned())));
        }
        if let Some(id) = key.strip_prefix("webhooks:endpoint:") {
            return WebhookId::parse("destination", id)
                .ok()
                .map(Destination::Webhook);
        }
        if let Some(user) = key.strip_prefix("webhooks:user:") {
            return Some(Destination::UserWebhooks(Username(user.to_owned())));
        }
        match key {
            "msteams:system" => Some(Destination::Teams),
            "webhooks:system" => Some(Destination::SystemWebhooks),
            _ => None,
        }
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

impl Serialize for Destination {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.key())
    }
}

impl<'de> Deserialize<'de> for Destination {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let key = String::deserialize(deserializer)?;
        Destination::from_key(&key)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown destination `{key}`")))
    }
}

/// A delivery's id: the first 128 bits of SHA-256 over (event, destination), in hex. The same
/// event and destination always give the same id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeliveryId(String);

impl DeliveryId {
    /// The id of `event`'s delivery to `destination`.
    pub fn new(event: &EventId, destination: &Destination) -> Self {
        Self(short_hash(&[
            event.as_str(),
            "delivery",
            &destination.key(),
        ]))
    }

    /// Wraps a stored id.
    pub fn from_stored(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeliveryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// 32 hex digits of SHA-256 over `parts` joined by newlines.
pub(crate) fn short_hash(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hasher.update(b"\n");
        }
        hasher.update(part.as_bytes());
    }
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(32);
    for byte in &hasher.finalize()[..16] {
        hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    hex
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// On its channel's queue, not attempted yet.
    Queued,
    /// Failed transiently; will be tried again.
    Retrying,
    /// Delivered.
    Sent,
    /// Failed permanently (the destination refused it).
    Failed,
    /// Gave up after the last attempt; the message is on the dead-letter queue.
    Dead,
}

impl DeliveryStatus {
    /// The wire name.
    pub const fn name(self) -> &'static str {
        match self {
            DeliveryStatus::Queued => "queued",
            DeliveryStatus::Retrying => "retrying",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Dead => "dead",
        }
    }

    /// Parses a wire name.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::Queued,
            Self::Retrying,
            Self::Sent,
            Self::Failed,
            Self::Dead,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }

    /// Whether nothing more will happen to the delivery.
    pub const fn is_final(self) -> bool {
        matches!(
            self,
            DeliveryStatus::Sent | DeliveryStatus::Failed | DeliveryStatus::Dead
        )
    }
}

/// A delivery and where it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    pub id: DeliveryId,
    pub event_id: EventId,
    pub channel: Channel,
    pub destination: Destination,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub updated_at: u64,
}

impl Delivery {
    /// A new, queued delivery of `event` to `destination`.
    pub fn queued(event: &EventId, destination: Destination, now_ms: u64) -> Self {
        Self {
            id: DeliveryId::new(event, &destination),
            event_id: event.clone(),
            channel: destination.channel(),
            destination,
            status: DeliveryStatus::Queued,
            attempts: 0,
            last_error: None,
            updated_at: now_ms,
        }
    }

    /// The message put on the channel's queue for this delivery.
    pub fn message(&self) -> DeliveryMessage {
        DeliveryMessage {
            delivery_id: self.id.clone(),
            event_id: self.event_id.clone(),
            destination: self.destination.clone(),
        }
    }
}

/// What a channel's queue carries: enough to find the event and the destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryMessage {
    pub delivery_id: DeliveryId,
    pub event_id: EventId,
    pub destination: Destination,
}

impl DeliveryMessage {
    /// The channel whose queue carries this message.
    pub fn channel(&self) -> Channel {
        self.destination.channel()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str) -> EventId {
        EventId(id.to_owned())
    }

    /// Ids stored by earlier versions must come out the same: SHA-256 of `scan_added-1\nalice`
    /// (as `sha256sum` prints it), its first 16 bytes in lowercase hex.
    #[test]
    fn short_hash_is_the_first_half_of_the_sha256_in_lowercase_hex() {
        assert_eq!(
            short_hash(&["scan_added-1", "alice"]),
            "c51a8166547e6621e9ee9127d08afa0d"
        );
    }

    #[test]
    fn given_the_same_event_and_destination_then_the_delivery_id_is_the_same() {
        let d = Destination::email("Alice@Example.com");
        assert_eq!(d, Destination::email("alice@example.com"));
        assert_eq!(
            DeliveryId::new(&event("e1"), &d),
            DeliveryId::new(&event("e1"), &Destination::email("alice@example.com"))
        );
        assert_ne!(
            DeliveryId::new(&event("e1"), &d),
            DeliveryId::new(&event("e2"), &d)
        );
        assert_eq!(DeliveryId::new(&event("e1"), &d).as_str().len(), 32);
    }

    #[test]
    fn every_destination_key_round_trips() {
        let all = [
            Destination::Email("a@example.com".into()),
            Destination::SlackChannel("#appsec".into()),
            Destination::SlackUser(Username("alice".into())),
            Destination::Teams,
            Destination::SystemWebhooks,
            Destination::UserWebhooks(Username("bob".into())),
            Destination::Webhook(WebhookId::from_random([0xab; 8])),
        ];
        for d in all {
            assert_eq!(Destination::from_key(&d.key()), Some(d.clone()));
        }
        assert_eq!(Destination::from_key("sms:1"), None);
        assert_eq!(Destination::from_key("webhooks:endpoint:a b"), None);
    }
}
