//! The event catalogue: DefectDojo's 18 event types, their labels, what each is for and their
//! default channels.
//!
//! Any event name without its own entry is governed by [`EventType::Other`].

use super::channel::{Channel, ChannelSet};
use serde::{Serialize, Serializer};
use std::fmt;

macro_rules! catalogue {
    ($( $variant:ident => $name:literal, $label:literal, $help:literal, $default:expr; )*) => {
        /// An event type with its own settings entry.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventType { $( #[doc = $label] $variant, )* }

        /// Every event type, in catalogue order.
        pub const EVENT_TYPES: [EventType; catalogue!(@count $($variant)*)] = [ $( EventType::$variant, )* ];

        impl EventType {
            /// The wire name, e.g. `scan_added`.
            pub const fn name(self) -> &'static str {
                match self { $( EventType::$variant => $name, )* }
            }

            /// The human label, also used (title-cased) as an alert's source.
            pub const fn label(self) -> &'static str {
                match self { $( EventType::$variant => $label, )* }
            }

            /// One sentence saying when the event is raised, for people choosing channels.
            pub const fn help(self) -> &'static str {
                match self { $( EventType::$variant => $help, )* }
            }

            /// The channels a settings document gives this event when it does not name it.
            pub fn default_channels(self) -> ChannelSet {
                match self { $( EventType::$variant => $default, )* }
            }
        }
    };
    (@count) => { 0usize };
    (@count $head:ident $($tail:ident)*) => { 1usize + catalogue!(@count $($tail)*) };
}

catalogue! {
    ProductTypeAdded => "product_type_added", "Product Type Added", "A product type was added.", ChannelSet::ALERT;
    ProductAdded => "product_added", "Product Added", "A product was added.", ChannelSet::ALERT;
    EngagementAdded => "engagement_added", "Engagement Added", "An engagement was added to a product.", ChannelSet::ALERT;
    TestAdded => "test_added", "Test Added", "A test was added to an engagement.", ChannelSet::ALERT;
    ScanAdded => "scan_added", "Scan Added", "An import or re-import created, reactivated or closed findings.", ChannelSet::ALERT;
    ScanAddedEmpty => "scan_added_empty", "Scan Added Empty", "An import or re-import changed no findings.", ChannelSet::EMPTY;
    JiraUpdate => "jira_update", "JIRA Problems", "Syncing with JIRA failed: its errors are reported here, so keep one channel on.", ChannelSet::ALERT;
    UpcomingEngagement => "upcoming_engagement", "Upcoming Engagement", "An engagement starts soon.", ChannelSet::ALERT;
    StaleEngagement => "stale_engagement", "Stale Engagement", "An engagement is past its end date and still open.", ChannelSet::ALERT;
    AutoCloseEngagement => "auto_close_engagement", "Auto Close Engagement", "An engagement was closed because its end date passed.", ChannelSet::ALERT;
    CloseEngagement => "close_engagement", "Close Engagement", "An engagement was closed.", ChannelSet::ALERT;
    UserMentioned => "user_mentioned", "User Mentioned", "Someone mentioned you in a note.", ChannelSet::ALERT;
    CodeReview => "code_review", "Code Review", "A code review was asked for.", ChannelSet::ALERT;
    ReviewRequested => "review_requested", "Review Requested", "Someone asked you to review a finding.", ChannelSet::ALERT;
    Other => "other", "Other", "Anything else, including event types not listed here.", ChannelSet::ALERT;
    SlaBreach => "sla_breach", "SLA Breach", "A finding is about to breach its SLA, or has.", ChannelSet::ALERT;
    SlaBreachCombined => "sla_breach_combined", "SLA Breach (Combined)", "SLA breaches, one message per product.", ChannelSet::ALERT;
    RiskAcceptanceExpiration => "risk_acceptance_expiration", "Risk Acceptance Expiration", "A risk acceptance is about to expire, or has.", ChannelSet::ALERT;
}

/// How many event types the catalogue has.
pub const EVENT_TYPE_COUNT: usize = EVENT_TYPES.len();

impl EventType {
    /// The catalogue entry with this exact wire name.
    pub fn from_name(name: &str) -> Option<EventType> {
        EVENT_TYPES.into_iter().find(|e| e.name() == name)
    }

    /// The entry whose settings govern an event called `name`: its own, else `other`.
    pub fn governing(name: &str) -> EventType {
        EventType::from_name(name).unwrap_or(EventType::Other)
    }

    /// The position of this type in [`EVENT_TYPES`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The events whose system-scope channels are unioned into each explicit recipient's own
    /// ("system level trump") unless an administrator configures otherwise.
    pub const DEFAULT_SYSTEM_LEVEL_TRUMP: [EventType; 2] =
        [EventType::UserMentioned, EventType::ReviewRequested];
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for EventType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// The alert source for an event called `name`: its label for a catalogue type, else the name
/// title-cased (`finding_added` → "Finding Added").
pub fn alert_source(name: &str) -> String {
    match EventType::from_name(name) {
        Some(event) => event.label().to_owned(),
        None => title_case(name),
    }
}

/// `snake_case` or `kebab-case` words → "Title Case".
pub fn title_case(name: &str) -> String {
    name.split(['_', '-', ' '])
        .filter(|w| !w.is_empty())
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => first
                    .to_uppercase()
                    .chain(chars.flat_map(char::to_lowercase))
                    .collect(),
                None => String::new(),
            }
        })
        .collect::<Vec<String>>()
        .join(" ")
}

/// Whether `channel` may be set at `scope`: Teams is offered at system scope only.
pub fn channel_allowed_at_scope(channel: Channel, is_system_scope: bool) -> bool {
    channel != Channel::Msteams || is_system_scope
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_has_defectdojos_eighteen_types() {
        assert_eq!(EVENT_TYPE_COUNT, 18);
        for (i, e) in EVENT_TYPES.iter().enumerate() {
            assert_eq!(e.index(), i);
            assert_eq!(EventType::from_name(e.name()), Some(*e));
        }
    }

    #[test]
    fn given_scan_added_empty_then_its_default_is_empty_and_every_other_default_is_alert() {
        for e in EVENT_TYPES {
            let expected = if e == EventType::ScanAddedEmpty {
                ChannelSet::EMPTY
            } else {
                ChannelSet::ALERT
            };
            assert_eq!(e.default_channels(), expected, "{e}");
        }
    }

    #[test]
    fn given_an_unknown_name_then_other_governs_it() {
        assert_eq!(EventType::governing("engagement_closed"), EventType::Other);
        assert_eq!(EventType::governing("scan_added"), EventType::ScanAdded);
    }

    #[test]
    fn given_event_names_then_alert_sources_are_labels_or_title_cased_names() {
        assert_eq!(alert_source("user_mentioned"), "User Mentioned");
        assert_eq!(alert_source("finding_added"), "Finding Added");
        assert_eq!(alert_source("PRODUCT_deleted"), "Product Deleted");
    }
}
