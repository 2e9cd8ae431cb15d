//! In-app alerts (the bell), with read state.

use super::catalogue::alert_source;
use super::delivery::short_hash;
use super::directory::Username;
use super::event::{Event, EventId};
use serde::Serialize;

/// Longest alert title (DefectDojo's column).
pub const MAX_ALERT_TITLE: usize = 250;
/// Longest alert description (DefectDojo's column).
pub const MAX_ALERT_DESCRIPTION: usize = 2_000;
/// The url of an alert whose event has none.
pub const DEFAULT_ALERT_URL: &str = "/alerts";
/// How long an alert is kept at most (DynamoDB expires it with TTL; the clean-up keeps the
/// newest `max_alerts_per_user` before that).
pub const ALERT_RETENTION_DAYS: u64 = 365;
/// The icon of an alert.
pub const DEFAULT_ALERT_ICON: &str = "icon-user-check";

/// One alert for one user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alert {
    /// `{created_at:013}-{hash}`: ids sort by creation time, and the hash of (event, user)
    /// makes re-recording an event never duplicate its alerts.
    pub id: String,
    pub username: Username,
    pub event_id: EventId,
    pub title: String,
    pub description: String,
    pub url: String,
    pub icon: String,
    pub source: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: u64,
    pub read: bool,
}

impl Alert {
    /// `user`'s alert for `event`, created at `now_ms`.
    pub fn for_event(event: &Event, user: &Username, now_ms: u64) -> Alert {
        AlertTemplate::new(event, now_ms).for_user(user)
    }

    /// An alert raised by Herald itself (e.g. a failed delivery) for `user`.
    pub fn system(
        key: &str,
        user: &Username,
        title: &str,
        description: &str,
        source: &str,
        now_ms: u64,
    ) -> Alert {
        Alert {
            id: alert_id(now_ms, &[key, "alert", user.as_str()]),
            username: user.clone(),
            event_id: EventId(key.to_owned()),
            title: truncate(title, MAX_ALERT_TITLE),
            description: truncate(description, MAX_ALERT_DESCRIPTION),
            url: DEFAULT_ALERT_URL.to_owned(),
            icon: DEFAULT_ALERT_ICON.to_owned(),
            source: source.to_owned(),
            created_at: now_ms,
            read: false,
        }
    }

    /// Whether `id` has the shape of an alert id (`{created_at:013}-{32 hex digits}`), so a
    /// pagination cursor or an id from a request can be checked before it reaches a store.
    pub fn is_valid_id(id: &str) -> bool {
        let bytes = id.as_bytes();
        bytes.len() == 46
            && bytes[..13].iter().all(u8::is_ascii_digit)
            && bytes[13] == b'-'
            && bytes[14..]
                .iter()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    }
}

/// What every alert of one event shares, computed once per event rather than per user.
#[derive(Debug, Clone)]
pub struct AlertTemplate {
    event_id: EventId,
    title: String,
    description: String,
    url: String,
    source: String,
    created_at: u64,
}

impl AlertTemplate {
    /// The alerts of `event`, created at `now_ms`.
    pub fn new(event: &Event, now_ms: u64) -> Self {
        Self {
            event_id: event.id.clone(),
            title: truncate(&event.title, MAX_ALERT_TITLE),
            description: truncate(
                event.description.as_deref().unwrap_or_default(),
                MAX_ALERT_DESCRIPTION,
            ),
            url: event
                .url
                .clone()
                .unwrap_or_else(|| DEFAULT_ALERT_URL.to_owned()),
            source: alert_source(&event.event_type),
            created_at: now_ms,
        }
    }

    /// `user`'s alert.
    pub fn for_user(&self, user: &Username) -> Alert {
        Alert {
            id: alert_id(
                self.created_at,
                &[self.event_id.as_str(), "alert", user.as_str()],
            ),
            username: user.clone(),
            event_id: self.event_id.clone(),
            title: self.title.clone(),
            description: self.description.clone(),
            url: self.url.clone(),
            icon: DEFAULT_ALERT_ICON.to_owned(),
            source: self.source.clone(),
            created_at: self.created_at,
            read: false,
        }
    }
}

fn alert_id(created_at: u64, parts: &[&str]) -> String {
    format!("{created_at:013}-{}", short_hash(parts))
}

/// At most `max` characters of `text`, with "..." when cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(3)).collect();
    cut.push_str("...");
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn given_strings_then_only_alert_shaped_ones_are_valid_ids() {
        assert!(Alert::is_valid_id(
            "0001700000000-0123456789abcdef0123456789abcdef"
        ));
        for bad in [
            "",
            "0001700000000",
            "000170000000x-0123456789abcdef0123456789abcdef",
            "0001700000000_0123456789abcdef0123456789abcdef",
            "0001700000000-0123456789ABCDEF0123456789abcdef",
            "0001700000000-0123456789abcdef0123456789abcdef0",
            "0001700000000-0123456789abcdef0123456789abcde",
        ] {
            assert!(!Alert::is_valid_id(bad), "{bad}");
        }
    }

    #[test]
    fn given_a_long_event_then_its_alert_keeps_defectdojos_limits_and_its_label() {
        let event = Event::from_request(
            &json!({"type": "user_mentioned", "title": "t".repeat(400), "description": "d".repeat(3000)}),
            || "e1".into(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let alice = Username::parse("u", "alice").unwrap_or_else(|e| panic!("{e}"));
        let alert = Alert::for_event(&event, &alice, 1);
        assert_eq!(alert.title.chars().count(), 250);
        assert!(alert.title.ends_with("..."));
        assert_eq!(alert.description.chars().count(), 2000);
        assert_eq!(alert.source, "User Mentioned");
        assert_eq!(alert.url, "/alerts");
        assert!(!alert.read);
        assert_eq!(alert.id, Alert::for_event(&event, &alice, 1).id);
        assert!(
            Alert::for_event(&event, &alice, 2).id > alert.id,
            "ids sort by time"
        );
        assert!(Alert::is_valid_id(&alert.id));
    }
}
