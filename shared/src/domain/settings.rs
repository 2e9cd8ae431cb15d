//! Notification settings documents, their validation, and their merge with provenance.
//!
//! A document maps every event type of the catalogue to a set of channels. It exists at four
//! scopes: `system`, `template` (copied to users created afterwards), `personal` and
//! per-product (a user and a product). A user's effective channels for an event are the union
//! of their personal and per-product documents, plus the system document for the
//! "system level trump" events when the user is an explicit recipient.

use super::catalogue::{EVENT_TYPE_COUNT, EVENT_TYPES, EventType, channel_allowed_at_scope};
use super::channel::{Channel, ChannelSet};
use super::system::SystemSettings;
use super::validation::{
    FieldError, expect_object, join_path, json_type_name, reject_unknown_fields,
};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;
use std::collections::BTreeMap;

/// Where a settings document lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SettingsScope {
    /// Sends to the system destinations (Slack channel, Teams, system mail, system webhooks).
    System,
    /// Copied into the personal settings of each user created afterwards.
    Template,
    /// One user, every product.
    Personal,
    /// One user, one product.
    Product,
}

impl SettingsScope {
    /// Whether Teams may be chosen at this scope (system only).
    pub const fn is_system(self) -> bool {
        matches!(self, SettingsScope::System)
    }
}

/// One scope's channels for every event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotificationSettings {
    events: [ChannelSet; EVENT_TYPE_COUNT],
}

impl Default for NotificationSettings {
    fn default() -> Self {
        Self::defaults()
    }
}

impl NotificationSettings {
    /// Every event at its default channels (`alert`, or nothing for `scan_added_empty`).
    pub fn defaults() -> Self {
        let mut events = [ChannelSet::EMPTY; EVENT_TYPE_COUNT];
        for event in EVENT_TYPES {
            events[event.index()] = event.default_channels();
        }
        Self { events }
    }

    /// The channels chosen for `event`.
    pub fn channels(&self, event: EventType) -> ChannelSet {
        self.events[event.index()]
    }

    /// Chooses `channels` for `event`.
    pub fn set(&mut self, event: EventType, channels: ChannelSet) {
        self.events[event.index()] = channels;
    }

    /// Builder form of [`NotificationSettings::set`].
    #[must_use]
    pub fn with(mut self, event: EventType, channels: &[Channel]) -> Self {
        self.set(event, ChannelSet::of(channels));
        self
    }

    /// The union of two documents, event by event.
    #[must_use]
    pub fn union(&self, other: &NotificationSettings) -> NotificationSettings {
        let mut events = self.events;
        for (mine, theirs) in events.iter_mut().zip(other.events.iter()) {
            *mine = mine.union(*theirs);
        }
        NotificationSettings { events }
    }

    /// Validates a settings document sent by a client for `scope`:
    /// `{"events": {"scan_added": ["alert", "slack"], ...}}`. A `PUT` replaces the whole
    /// document, so an event left out takes its default. Errors name the offending field.
    pub fn from_request(body: &Value, scope: SettingsScope) -> Result<Self, FieldError> {
        let object = expect_object(body, "")?;
        reject_unknown_fields(object, "", &["events"])?;
        let mut settings = NotificationSettings::defaults();
        let Some(events) = object.get("events") else {
            return Ok(settings);
        };
        let events = expect_object(events, "events")?;
        for (name, channels) in events {
            let field = join_path("events", name);
            let event = EventType::from_name(name).ok_or_else(|| {
                FieldError::new(
                    &field,
                    "unknown event type; GET /v1/event-types lists them (any other event is governed by `other`)",
                )
            })?;
            let list = channels.as_array().ok_or_else(|| {
                FieldError::new(
                    &field,
                    format!(
                        "expected an array of channel names, got {}",
                        json_type_name(channels)
                    ),
                )
            })?;
            let mut set = ChannelSet::EMPTY;
            for (i, item) in list.iter().enumerate() {
                let item_field = format!("{field}[{i}]");
                let name = item.as_str().ok_or_else(|| {
                    FieldError::new(
                        &item_field,
                        format!("expected a channel name, got {}", json_type_name(item)),
                    )
                })?;
                let channel = Channel::from_name(name).ok_or_else(|| {
                    FieldError::new(
                        &item_field,
                        format!(
                            "unknown channel `{name}`; expected one of: alert, mail, slack, msteams, webhooks"
                        ),
                    )
                })?;
                if !channel_allowed_at_scope(channel, scope.is_system()) {
                    return Err(FieldError::new(
                        &item_field,
                        "msteams is available at system scope only (Teams offers no personal channel)",
                    ));
                }
                set = set.with(channel);
            }
            settings.set(event, set);
        }
        Ok(settings)
    }

    /// Reads a stored document leniently: unknown events and channels (from a newer version)
    /// are ignored and missing events take their defaults.
    pub fn from_stored(json: &str) -> Result<Self, serde_json::Error> {
        #[derive(Deserialize)]
        struct Stored {
            #[serde(default)]
            events: BTreeMap<String, Vec<String>>,
        }
        let stored: Stored = serde_json::from_str(json)?;
        let mut settings = NotificationSettings::defaults();
        for (name, channels) in stored.events {
            if let Some(event) = EventType::from_name(&name) {
                let set = channels
                    .iter()
                    .filter_map(|c| Channel::from_name(c))
                    .fold(ChannelSet::EMPTY, ChannelSet::with);
                settings.set(event, set);
            }
        }
        Ok(settings)
    }

    /// The stored (and wire) form: `{"events": {...}}` listing every event type.
    pub fn to_stored(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }
}

impl Serialize for NotificationSettings {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        struct Events<'a>(&'a NotificationSettings);
        impl Serialize for Events<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(EVENT_TYPE_COUNT))?;
                for event in EVENT_TYPES {
                    map.serialize_entry(event.name(), &self.0.channels(event))?;
                }
                map.end()
            }
        }
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry("events", &Events(self))?;
        map.end()
    }
}

/// Which scopes contributed a channel to a user's effective settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Provenance(u8);

impl Provenance {
    const PERSONAL: u8 = 1;
    const PRODUCT: u8 = 2;
    const SYSTEM: u8 = 4;

    /// The scopes, in the order personal, product, system.
    pub fn scopes(self) -> Vec<SettingsScope> {
        let mut scopes = Vec::with_capacity(3);
        if self.0 & Self::PERSONAL != 0 {
            scopes.push(SettingsScope::Personal);
        }
        if self.0 & Self::PRODUCT != 0 {
            scopes.push(SettingsScope::Product);
        }
        if self.0 & Self::SYSTEM != 0 {
            scopes.push(SettingsScope::System);
        }
        scopes
    }
}

/// A user's merged channels for every event, with the scopes that contributed each channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveSettings {
    channels: [ChannelSet; EVENT_TYPE_COUNT],
    provenance: [[Provenance; Channel::ALL.len()]; EVENT_TYPE_COUNT],
}

impl EffectiveSettings {
    /// The union of a user's personal settings and, when given, their settings for one product.
    pub fn merge(personal: &NotificationSettings, product: Option<&NotificationSettings>) -> Self {
        let mut merged = EffectiveSettings {
            channels: [ChannelSet::EMPTY; EVENT_TYPE_COUNT],
            provenance: [[Provenance::default(); Channel::ALL.len()]; EVENT_TYPE_COUNT],
        };
        merged.add(personal, Provenance::PERSONAL, &EVENT_TYPES);
        if let Some(product) = product {
            merged.add(product, Provenance::PRODUCT, &EVENT_TYPES);
        }
        merged
    }

    /// Unions the system document into the `trump` events (the system can add channels to an
    /// explicit recipient's settings, never remove them). Returns a fresh value: nothing leaks
    /// from one recipient to the next.
    #[must_use]
    pub fn with_system_trump(mut self, system: &NotificationSettings, trump: &[EventType]) -> Self {
        self.add(system, Provenance::SYSTEM, trump);
        self
    }

    fn add(&mut self, settings: &NotificationSettings, source: u8, events: &[EventType]) {
        for &event in events {
            let i = event.index();
            let set = settings.channels(event);
            self.channels[i] = self.channels[i].union(set);
            for channel in set.iter() {
                self.provenance[i][channel as usize].0 |= source;
            }
        }
    }

    /// The merged channels for `event`.
    pub fn channels(&self, event: EventType) -> ChannelSet {
        self.channels[event.index()]
    }

    /// Which scopes contributed `channel` for `event`.
    pub fn provenance(&self, event: EventType, channel: Channel) -> Provenance {
        self.provenance[event.index()][channel as usize]
    }

    /// The view the API returns: per event, each channel with its scopes and whether the
    /// system switch lets it through (every channel but `alert` needs its switch on).
    pub fn to_view(
        &self,
        system: &SystemSettings,
    ) -> BTreeMap<&'static str, Vec<EffectiveChannel>> {
        EVENT_TYPES
            .into_iter()
            .map(|event| {
                let channels = self
                    .channels(event)
                    .iter()
                    .map(|channel| EffectiveChannel {
                        channel,
                        scopes: self.provenance(event, channel).scopes(),
                        enabled_by_system: system.channel_enabled(channel),
                    })
                    .collect();
                (event.name(), channels)
            })
            .collect()
    }
}

/// One channel of a user's effective settings for one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EffectiveChannel {
    /// The channel.
    pub channel: Channel,
    /// The scopes that chose it: `personal`, `product`, `system` (trump-list events only).
    pub scopes: Vec<SettingsScope>,
    /// Whether the system switch for this channel is on; messages on a switched-off channel
    /// are not sent.
    pub enabled_by_system: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn given_an_empty_document_when_validated_then_every_event_takes_its_default() {
        let s = NotificationSettings::from_request(&json!({}), SettingsScope::Personal);
        assert_eq!(s, Ok(NotificationSettings::defaults()));
    }

    #[test]
    fn given_a_partial_document_when_validated_then_events_left_out_take_their_defaults() {
        let s = NotificationSettings::from_request(
            &json!({"events": {"scan_added": ["mail", "slack", "mail"]}}),
            SettingsScope::Personal,
        )
        .unwrap_or_default();
        assert_eq!(
            s.channels(EventType::ScanAdded),
            ChannelSet::of(&[Channel::Mail, Channel::Slack])
        );
        assert_eq!(s.channels(EventType::Other), ChannelSet::ALERT);
        assert_eq!(s.channels(EventType::ScanAddedEmpty), ChannelSet::EMPTY);
    }

    #[test]
    fn given_bad_documents_when_validated_then_the_error_names_the_field() {
        let cases = [
            (json!([]), ""),
            (json!({"event": {}}), "event"),
            (json!({"events": []}), "events"),
            (
                json!({"events": {"scan_addedd": ["alert"]}}),
                "events.scan_addedd",
            ),
            (
                json!({"events": {"scan_added": "alert"}}),
                "events.scan_added",
            ),
            (
                json!({"events": {"scan_added": ["alert", 3]}}),
                "events.scan_added[1]",
            ),
            (
                json!({"events": {"scan_added": ["alert", "sms"]}}),
                "events.scan_added[1]",
            ),
            (json!({"events": {"other": ["msteams"]}}), "events.other[0]"),
            // Empty keys are named `""`: an empty field would mean the whole body.
            (json!({"": {}}), "\"\""),
            (json!({"events": {"": ["alert"]}}), "events.\"\""),
        ];
        for (body, field) in cases {
            let err = NotificationSettings::from_request(&body, SettingsScope::Personal)
                .err()
                .map(|e| e.field);
            assert_eq!(err.as_deref(), Some(field), "{body}");
        }
    }

    #[test]
    fn given_msteams_at_system_scope_then_it_is_accepted() {
        let s = NotificationSettings::from_request(
            &json!({"events": {"other": ["msteams"]}}),
            SettingsScope::System,
        );
        assert_eq!(
            s.map(|s| s.channels(EventType::Other)),
            Ok(ChannelSet::of(&[Channel::Msteams]))
        );
    }

    #[test]
    fn given_a_document_when_stored_and_read_back_then_it_is_unchanged() {
        let s = NotificationSettings::defaults()
            .with(EventType::SlaBreach, &[Channel::Mail, Channel::Webhooks])
            .with(EventType::ScanAdded, &[]);
        let back = NotificationSettings::from_stored(&s.to_stored()).ok();
        assert_eq!(back, Some(s));
    }

    #[test]
    fn given_a_stored_document_from_a_newer_version_then_unknown_names_are_ignored() {
        let s = NotificationSettings::from_stored(
            r#"{"events":{"future_event":["alert"],"scan_added":["mail","pager"]}}"#,
        )
        .ok();
        assert_eq!(
            s.map(|s| s.channels(EventType::ScanAdded)),
            Some(ChannelSet::of(&[Channel::Mail]))
        );
    }

    #[test]
    fn given_personal_and_product_settings_when_merged_then_channels_are_the_union_with_provenance()
    {
        let personal =
            NotificationSettings::defaults().with(EventType::ScanAdded, &[Channel::Alert]);
        let product = NotificationSettings::defaults()
            .with(EventType::ScanAdded, &[Channel::Alert, Channel::Slack]);
        let merged = EffectiveSettings::merge(&personal, Some(&product));
        assert_eq!(
            merged.channels(EventType::ScanAdded),
            ChannelSet::of(&[Channel::Alert, Channel::Slack])
        );
        assert_eq!(
            merged
                .provenance(EventType::ScanAdded, Channel::Alert)
                .scopes(),
            vec![SettingsScope::Personal, SettingsScope::Product]
        );
        assert_eq!(
            merged
                .provenance(EventType::ScanAdded, Channel::Slack)
                .scopes(),
            vec![SettingsScope::Product]
        );
    }

    #[test]
    fn given_system_trump_then_only_trump_events_gain_system_channels() {
        let personal = NotificationSettings::defaults();
        let system = NotificationSettings::defaults()
            .with(EventType::UserMentioned, &[Channel::Mail])
            .with(EventType::ScanAdded, &[Channel::Mail]);
        let merged = EffectiveSettings::merge(&personal, None)
            .with_system_trump(&system, &EventType::DEFAULT_SYSTEM_LEVEL_TRUMP);
        assert_eq!(
            merged.channels(EventType::UserMentioned),
            ChannelSet::of(&[Channel::Alert, Channel::Mail])
        );
        assert_eq!(
            merged
                .provenance(EventType::UserMentioned, Channel::Mail)
                .scopes(),
            vec![SettingsScope::System]
        );
        assert_eq!(merged.channels(EventType::ScanAdded), ChannelSet::ALERT);
    }

    #[test]
    fn given_two_recipients_when_trump_merged_then_one_opt_in_does_not_leak_to_the_other() {
        let system = NotificationSettings::defaults();
        let alice =
            NotificationSettings::defaults().with(EventType::UserMentioned, &[Channel::Slack]);
        let bob = NotificationSettings::defaults();
        let _a = EffectiveSettings::merge(&alice, None)
            .with_system_trump(&system, &EventType::DEFAULT_SYSTEM_LEVEL_TRUMP);
        let b = EffectiveSettings::merge(&bob, None)
            .with_system_trump(&system, &EventType::DEFAULT_SYSTEM_LEVEL_TRUMP);
        assert_eq!(b.channels(EventType::UserMentioned), ChannelSet::ALERT);
    }
}
