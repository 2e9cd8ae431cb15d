//! Delivery channels and compact sets of them.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A way Herald can tell somebody about an event.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// In-app alert (the bell): the default channel.
    Alert,
    /// Email through SES (locally: `.eml` files).
    Mail,
    /// Slack: the system channel, or a direct message to a user.
    Slack,
    /// Microsoft Teams incoming or Workflows webhook; system scope only.
    Msteams,
    /// Generic webhooks, system-owned or user-owned.
    Webhooks,
}

impl Channel {
    /// Every channel, in the order Herald lists them.
    pub const ALL: [Channel; 5] = [
        Channel::Alert,
        Channel::Mail,
        Channel::Slack,
        Channel::Msteams,
        Channel::Webhooks,
    ];

    /// The name people read (`Alert`, `Mail`, `Slack`, `Microsoft Teams`, `Webhooks`).
    pub const fn label(self) -> &'static str {
        match self {
            Channel::Alert => "Alert",
            Channel::Mail => "Mail",
            Channel::Slack => "Slack",
            Channel::Msteams => "Microsoft Teams",
            Channel::Webhooks => "Webhooks",
        }
    }

    /// The wire name (`alert`, `mail`, `slack`, `msteams`, `webhooks`).
    pub const fn name(self) -> &'static str {
        match self {
            Channel::Alert => "alert",
            Channel::Mail => "mail",
            Channel::Slack => "slack",
            Channel::Msteams => "msteams",
            Channel::Webhooks => "webhooks",
        }
    }

    /// Parses a wire name.
    pub fn from_name(name: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.name() == name)
    }

    const fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of channels, one bit each: merging settings is a bitwise OR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ChannelSet(u8);

impl ChannelSet {
    /// No channel.
    pub const EMPTY: ChannelSet = ChannelSet(0);
    /// Only the in-app alert.
    pub const ALERT: ChannelSet = ChannelSet(Channel::Alert.bit());

    /// A set holding `channels`.
    pub fn of(channels: &[Channel]) -> ChannelSet {
        channels
            .iter()
            .fold(ChannelSet::EMPTY, |set, c| set.with(*c))
    }

    /// This set plus `channel`.
    #[must_use]
    pub const fn with(self, channel: Channel) -> ChannelSet {
        ChannelSet(self.0 | channel.bit())
    }

    /// This set without `channel`.
    #[must_use]
    pub const fn without(self, channel: Channel) -> ChannelSet {
        ChannelSet(self.0 & !channel.bit())
    }

    /// Whether `channel` is in the set.
    pub const fn contains(self, channel: Channel) -> bool {
        self.0 & channel.bit() != 0
    }

    /// The union of two sets.
    #[must_use]
    pub const fn union(self, other: ChannelSet) -> ChannelSet {
        ChannelSet(self.0 | other.0)
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The channels in the set, in [`Channel::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Channel> {
        Channel::ALL.into_iter().filter(move |c| self.contains(*c))
    }
}

impl Serialize for ChannelSet {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for ChannelSet {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let channels = Vec::<Channel>::deserialize(deserializer)?;
        Ok(ChannelSet::of(&channels))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_two_sets_when_unioned_then_every_channel_of_either_is_in() {
        let a = ChannelSet::of(&[Channel::Alert, Channel::Slack]);
        let b = ChannelSet::of(&[Channel::Mail, Channel::Slack]);
        let u = a.union(b);
        assert_eq!(
            u.iter().collect::<Vec<_>>(),
            vec![Channel::Alert, Channel::Mail, Channel::Slack]
        );
        assert!(!u.contains(Channel::Msteams));
    }

    #[test]
    fn given_a_set_when_serialized_then_it_is_a_list_of_names_in_canonical_order() {
        let set = ChannelSet::of(&[Channel::Webhooks, Channel::Alert]);
        assert_eq!(
            serde_json::to_string(&set).unwrap_or_default(),
            r#"["alert","webhooks"]"#
        );
    }

    #[test]
    fn every_channel_name_round_trips() {
        for c in Channel::ALL {
            assert_eq!(Channel::from_name(c.name()), Some(c));
        }
        assert_eq!(Channel::from_name("sms"), None);
    }
}
