//! DefectDojo's notification settings as Herald's documents (`--import-settings`): the rows of
//! `/api/v2/notifications/` and the notification fields of `/api/v2/system_settings/`.
//!
//! A row is the system document when it has no user, no product and `template: false`; the
//! template when `template: true`; a user's personal document with a user and no product; a
//! user's document for a product with both. Each event field is a list of channels
//! (DefectDojo up to 2.50.3 sent a one-channel `scan_added_empty` as a bare string: both are
//! read). Nothing is dropped silently: an event or channel Herald does not have, Teams below
//! system scope (DefectDojo offers it only there too), a row of a user or product not synced,
//! and the notification-related system settings Herald has no counterpart for are listed in
//! [`ImportedSettings::skipped`].

use crate::domain::catalogue::{EventType, channel_allowed_at_scope};
use crate::domain::channel::{Channel, ChannelSet};
use crate::domain::directory::{ResourceId, Username};
use crate::domain::settings::NotificationSettings;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

use super::resource_id;

/// What was read from DefectDojo for the settings.
#[derive(Debug, Clone, Default)]
pub struct DojoSettings {
    /// `/api/v2/notifications/` rows.
    pub notifications: Vec<Value>,
    /// The one `/api/v2/system_settings/` object, if DefectDojo answered one.
    pub system_settings: Option<Value>,
}

/// DefectDojo's settings as Herald's documents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportedSettings {
    pub system: Option<NotificationSettings>,
    pub template: Option<NotificationSettings>,
    pub personal: BTreeMap<Username, NotificationSettings>,
    pub per_product: BTreeMap<(ResourceId, Username), NotificationSettings>,
    /// The fields of Herald's system settings DefectDojo has, as a patch
    /// (`SystemSettings::apply_patch`).
    pub system_settings: Map<String, Value>,
    /// What could not be carried over, one sentence each.
    pub skipped: Vec<String>,
}

/// The system settings fields both have, by the same name and meaning.
const SYSTEM_FIELDS: &[&str] = &[
    "enable_mail_notifications",
    "mail_notifications_to",
    "email_from",
    "team_name",
    "enable_slack_notifications",
    "slack_token",
    "slack_channel",
    "slack_username",
    "enable_msteams_notifications",
    "msteams_url",
    "enable_webhooks_notifications",
    "webhooks_notifications_timeout",
    "disclaimer_notifications",
    "engagement_auto_close",
    "engagement_auto_close_days",
    "enable_notify_sla_active",
    "enable_notify_sla_active_verified",
    "enable_notify_sla_exponential_backoff",
    "risk_acceptance_notify_before_expiration",
];

/// DefectDojo's notification settings Herald has nothing for, and why.
const SYSTEM_FIELDS_NOT_CARRIED: &[(&str, &str)] = &[
    (
        "enable_notify_sla_jira_only",
        "Herald does not know which findings have Jira issues, so SLA notices are not limited to them",
    ),
    (
        "enable_finding_sla",
        "Herald sends SLA notices for every finding with an SLA date; switch them off with enable_notify_sla_active",
    ),
];

/// Row fields that are not events.
const ROW_FIELDS: &[&str] = &["id", "user", "product", "template"];

impl DojoSettings {
    /// Herald's documents; `users` maps DefectDojo's user ids to the synced usernames,
    /// `products` holds the synced products' ids.
    pub fn to_settings(
        &self,
        users: &BTreeMap<u64, Username>,
        products: &BTreeSet<u64>,
    ) -> ImportedSettings {
        let mut out = ImportedSettings::default();
        let mut unknown_events = BTreeSet::new();
        for row in &self.notifications {
            let id = row
                .get("id")
                .map_or_else(|| "?".to_owned(), Value::to_string);
            let user = row.get("user").and_then(Value::as_u64);
            let product = row.get("product").and_then(Value::as_u64);
            let template = row.get("template").and_then(Value::as_bool) == Some(true);
            let system_scope = !template && user.is_none() && product.is_none();
            let (document, dropped) = document(row, system_scope, &mut unknown_events);
            for channel in dropped {
                out.skipped.push(format!(
                    "notifications row {id}: {channel} is offered at system scope only, as in DefectDojo's own page"
                ));
            }
            match (template, user, product) {
                (true, _, _) => out.template = Some(document),
                (false, None, None) => out.system = Some(document),
                (false, Some(user), product) => {
                    let Some(username) = users.get(&user) else {
                        out.skipped.push(format!(
                            "notifications row {id}: user {user} was not synced"
                        ));
                        continue;
                    };
                    match product {
                        None => {
                            out.personal.insert(username.clone(), document);
                        }
                        Some(p) if products.contains(&p) => {
                            out.per_product
                                .insert((resource_id(p), username.clone()), document);
                        }
                        Some(p) => out.skipped.push(format!(
                            "notifications row {id}: product {p} was not synced"
                        )),
                    }
                }
                (false, None, Some(p)) => out.skipped.push(format!(
                    "notifications row {id}: settings for product {p} without a user have no scope in Herald"
                )),
            }
        }
        for event in unknown_events {
            out.skipped.push(format!(
                "notifications: `{event}` is not an event Herald sends (it is governed by `other`)"
            ));
        }
        if let Some(system) = self.system_settings.as_ref().and_then(Value::as_object) {
            for field in SYSTEM_FIELDS {
                if let Some(value) = system.get(*field) {
                    out.system_settings
                        .insert((*field).to_owned(), value.clone());
                }
            }
            for (field, why) in SYSTEM_FIELDS_NOT_CARRIED {
                if system.contains_key(*field) {
                    out.skipped.push(format!("system settings: {field}: {why}"));
                }
            }
        }
        out
    }
}

/// The document of one row, and the channels left out for the scope.
fn document(
    row: &Value,
    system_scope: bool,
    unknown_events: &mut BTreeSet<String>,
) -> (NotificationSettings, BTreeSet<&'static str>) {
    let mut settings = NotificationSettings::defaults();
    let mut dropped = BTreeSet::new();
    let Some(object) = row.as_object() else {
        return (settings, dropped);
    };
    for (field, value) in object {
        if ROW_FIELDS.contains(&field.as_str()) {
            continue;
        }
        let Some(event) = EventType::from_name(field) else {
            unknown_events.insert(field.clone());
            continue;
        };
        let names: Vec<&str> = match value {
            Value::String(one) if one.is_empty() => vec![],
            Value::String(one) => one.split(',').map(str::trim).collect(),
            Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let mut channels = Vec::new();
        for name in names {
            match Channel::from_name(name) {
                Some(channel) if channel_allowed_at_scope(channel, system_scope) => {
                    channels.push(channel)
                }
                Some(channel) => {
                    dropped.insert(channel.name());
                }
                None => {
                    unknown_events.insert(format!("{field}: {name}"));
                }
            }
        }
        settings.set(event, ChannelSet::of(&channels));
    }
    (settings, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rows(generation: &str, file: &str) -> Value {
        super::super::fixture(generation, file)
    }

    fn imported(generation: &str) -> ImportedSettings {
        let Value::Array(notifications) = rows(generation, "notifications") else {
            panic!("not an array")
        };
        let system = rows(generation, "system_settings");
        let dojo = DojoSettings {
            notifications,
            system_settings: system
                .as_array()
                .and_then(|a| a.first())
                .cloned()
                .or(Some(system)),
        };
        let users = BTreeMap::from([(1, Username("admin".into())), (2, Username("alice".into()))]);
        dojo.to_settings(&users, &BTreeSet::from([7, 8]))
    }

    fn channels(settings: &NotificationSettings, event: &str) -> Vec<&'static str> {
        let event = EventType::from_name(event).unwrap_or_else(|| panic!("{event}"));
        let mut names: Vec<&'static str> =
            settings.channels(event).iter().map(|c| c.name()).collect();
        names.sort_unstable();
        names
    }

    #[test]
    fn given_both_generations_then_every_scope_and_the_system_settings_carry_over() {
        for generation in ["v3", "v2"] {
            let s = imported(generation);
            let alice = &s.personal[&Username("alice".into())];
            assert_eq!(
                channels(alice, "scan_added"),
                ["alert", "slack"],
                "{generation}"
            );
            assert_eq!(channels(alice, "sla_breach"), ["mail"], "{generation}");
            assert_eq!(s.personal.len(), 2, "{generation}");
            assert!(s.system.is_some() && s.template.is_some(), "{generation}");
            let shop = s
                .per_product
                .get(&(ResourceId("7".into()), Username("alice".into())));
            assert!(shop.is_some(), "{generation}: {:?}", s.per_product.keys());
            assert_eq!(
                s.system_settings["slack_channel"], "#security-alerts",
                "{generation}"
            );
            assert_eq!(s.system_settings["team_name"], "AppSec", "{generation}");
            assert!(
                !s.system_settings.contains_key("enable_jira"),
                "{generation}"
            );
            let skipped = s.skipped.join("\n");
            assert!(
                skipped.contains("enable_notify_sla_jira_only"),
                "{generation}: {skipped}"
            );
        }
    }

    #[test]
    fn given_a_bare_string_teams_below_system_and_unknown_users_then_they_are_read_or_listed() {
        let dojo = DojoSettings {
            notifications: vec![
                json!({"id": 1, "user": 2, "product": null, "template": false,
                       "scan_added_empty": "webhooks", "scan_added": ["msteams", "mail"],
                       "new_thing": ["alert"]}),
                json!({"id": 2, "user": 99, "product": null, "template": false}),
                json!({"id": 3, "user": 2, "product": 42, "template": false}),
            ],
            system_settings: None,
        };
        let users = BTreeMap::from([(2, Username("alice".into()))]);
        let s = dojo.to_settings(&users, &BTreeSet::from([7]));
        let alice = &s.personal[&Username("alice".into())];
        assert_eq!(channels(alice, "scan_added_empty"), ["webhooks"]);
        assert_eq!(channels(alice, "scan_added"), ["mail"]);
        let skipped = s.skipped.join("\n");
        for expected in [
            "row 1: msteams is offered at system scope only",
            "row 2: user 99 was not synced",
            "row 3: product 42 was not synced",
            "`new_thing` is not an event Herald sends",
        ] {
            assert!(skipped.contains(expected), "{expected}: {skipped}");
        }
    }
}
