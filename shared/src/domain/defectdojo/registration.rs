//! `--register-user-webhooks`: what to write in DefectDojo so that it sends Herald the two
//! events it sends only to each recipient's own endpoints (`user_mentioned`,
//! `review_requested`; see [`crate::domain::defectdojo::inbound`]).
//!
//! For every active user: one webhook endpoint they own (`/api/v2/notification_webhooks/`),
//! named `Herald (<username>)` (names are unique across DefectDojo), posting to Herald's
//! `/v1/defectdojo/webhook` with `Authorization: Bearer <defectdojo_webhook_key>`; and
//! `webhooks` added to `user_mentioned` and `review_requested` in their personal
//! notification row (created when they have none). An endpoint is recognised by its owner
//! and URL, so a second run writes nothing, and one whose name or header changed is
//! corrected. A name taken by an endpoint that is not Herald's is left alone and listed.

use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The events DefectDojo sends to personal endpoints only.
pub const PERSONAL_EVENTS: [&str; 2] = ["user_mentioned", "review_requested"];

/// One write in DefectDojo: `PATCH <endpoint>/<id>/` or `POST <endpoint>/`.
#[derive(Debug, Clone, PartialEq)]
pub struct DojoWrite {
    pub endpoint: &'static str,
    pub id: Option<u64>,
    pub body: Value,
    /// What it does, for the report ("alice's endpoint").
    pub what: String,
}

/// The writes, and what was already in place or cannot be done.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Registration {
    pub writes: Vec<DojoWrite>,
    /// Endpoints created, updated and already right.
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Users' notification rows created, updated and already sending webhooks.
    pub rows_created: u64,
    pub rows_updated: u64,
    pub rows_unchanged: u64,
    pub skipped: Vec<String>,
}

/// A user to register: DefectDojo's id and Herald's username.
#[derive(Debug, Clone)]
pub struct Registrant<'a> {
    pub id: u64,
    pub username: &'a str,
}

/// Plans the writes for `users` (active, synced) against DefectDojo's `webhooks` and
/// `notifications` rows; Herald's endpoint is `url`, sent `header_value` in `Authorization`.
pub fn plan(
    users: &[Registrant<'_>],
    webhooks: &[Value],
    notifications: &[Value],
    url: &str,
    header_value: &str,
) -> Registration {
    let mut out = Registration::default();
    let by_name: BTreeMap<&str, &Value> = webhooks
        .iter()
        .filter_map(|w| Some((w.get("name")?.as_str()?, w)))
        .collect();
    for user in users {
        let name: String = format!("Herald ({})", user.username)
            .chars()
            .take(100)
            .collect();
        let wanted = json!({
            "name": name,
            "url": url,
            "header_name": "Authorization",
            "header_value": header_value,
            "owner": user.id,
        });
        let ours = webhooks.iter().find(|w| {
            w.get("owner").and_then(Value::as_u64) == Some(user.id)
                && w.get("url").and_then(Value::as_str) == Some(url)
        });
        match ours {
            Some(existing) => {
                let same = ["name", "header_name", "header_value"]
                    .iter()
                    .all(|k| existing.get(*k) == wanted.get(*k));
                let taken = by_name
                    .get(name.as_str())
                    .is_some_and(|other| other.get("id") != existing.get("id"));
                if same {
                    out.unchanged += 1;
                } else if taken {
                    out.skipped.push(format!(
                        "{}: the name {name:?} belongs to another DefectDojo webhook, so Herald's endpoint keeps its name",
                        user.username
                    ));
                    out.unchanged += 1;
                } else {
                    out.updated += 1;
                    out.writes.push(DojoWrite {
                        endpoint: "notification_webhooks",
                        id: existing.get("id").and_then(Value::as_u64),
                        body: wanted,
                        what: format!("{}'s webhook", user.username),
                    });
                }
            }
            None if by_name.contains_key(name.as_str()) => out.skipped.push(format!(
                "{}: a DefectDojo webhook not Herald's is named {name:?}; rename it to register Herald's",
                user.username
            )),
            None => {
                out.created += 1;
                out.writes.push(DojoWrite {
                    endpoint: "notification_webhooks",
                    id: None,
                    body: wanted,
                    what: format!("{}'s webhook", user.username),
                });
            }
        }
        let personal = notifications.iter().find(|n| {
            n.get("user").and_then(Value::as_u64) == Some(user.id)
                && n.get("product").is_none_or(Value::is_null)
                && n.get("template").and_then(Value::as_bool) != Some(true)
        });
        let mut body = serde_json::Map::new();
        for event in PERSONAL_EVENTS {
            let mut channels: Vec<String> = match personal.and_then(|n| n.get(event)) {
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(|c| c.as_str().map(str::to_owned))
                    .collect(),
                Some(Value::String(one)) if !one.is_empty() => vec![one.clone()],
                // DefectDojo's default for a new row.
                _ if personal.is_none() => vec!["alert".to_owned()],
                _ => vec![],
            };
            if !channels.iter().any(|c| c == "webhooks") {
                channels.push("webhooks".to_owned());
                body.insert(event.to_owned(), json!(channels));
            }
        }
        if body.is_empty() {
            out.rows_unchanged += 1;
        } else {
            let id = personal.and_then(|n| n.get("id")).and_then(Value::as_u64);
            if id.is_none() {
                body.insert("user".to_owned(), json!(user.id));
                out.rows_created += 1;
            } else {
                out.rows_updated += 1;
            }
            out.writes.push(DojoWrite {
                endpoint: "notifications",
                id,
                body: Value::Object(body),
                what: format!("{}'s notification settings", user.username),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://herald.example.com/v1/defectdojo/webhook";

    fn alice() -> Registrant<'static> {
        Registrant {
            id: 2,
            username: "alice",
        }
    }

    #[test]
    fn given_nothing_registered_then_an_endpoint_and_the_two_events_are_written() {
        let notifications = vec![
            json!({"id": 9, "user": 2, "product": null, "template": false,
            "user_mentioned": ["mail"], "review_requested": "alert"}),
        ];
        let r = plan(&[alice()], &[], &notifications, URL, "Bearer k");
        assert_eq!((r.created, r.updated, r.unchanged), (1, 0, 0));
        assert_eq!((r.rows_created, r.rows_updated), (0, 1));
        assert_eq!(
            r.writes[0].body,
            json!({"name": "Herald (alice)", "url": URL, "header_name": "Authorization",
                   "header_value": "Bearer k", "owner": 2})
        );
        assert_eq!(r.writes[0].id, None);
        assert_eq!(r.writes[1].id, Some(9));
        assert_eq!(
            r.writes[1].body,
            json!({"user_mentioned": ["mail", "webhooks"], "review_requested": ["alert", "webhooks"]})
        );
    }

    #[test]
    fn given_everything_in_place_then_nothing_is_written_and_a_changed_key_is_corrected() {
        let webhooks = vec![json!({"id": 4, "name": "Herald (alice)", "url": URL,
            "header_name": "Authorization", "header_value": "Bearer k", "owner": 2})];
        let notifications = vec![
            json!({"id": 9, "user": 2, "product": null, "template": false,
            "user_mentioned": ["webhooks"], "review_requested": ["alert", "webhooks"]}),
        ];
        let r = plan(&[alice()], &webhooks, &notifications, URL, "Bearer k");
        assert!(r.writes.is_empty(), "{r:?}");
        assert_eq!((r.unchanged, r.rows_unchanged), (1, 1));
        let r = plan(&[alice()], &webhooks, &notifications, URL, "Bearer new");
        assert_eq!((r.updated, r.writes.len()), (1, 1));
        assert_eq!(r.writes[0].id, Some(4));
    }

    #[test]
    fn given_a_taken_name_or_no_personal_row_then_it_is_listed_or_created() {
        let webhooks = vec![
            json!({"id": 1, "name": "Herald (alice)", "url": "https://elsewhere.example/",
            "owner": null}),
        ];
        let r = plan(&[alice()], &webhooks, &[], URL, "Bearer k");
        assert_eq!(r.created, 0);
        assert!(r.skipped[0].contains("rename it"), "{:?}", r.skipped);
        assert_eq!(
            r.writes[0].body,
            json!({"user_mentioned": ["alert", "webhooks"], "review_requested": ["alert", "webhooks"], "user": 2})
        );
        assert_eq!(r.writes[0].id, None);
        assert_eq!(r.rows_created, 1);
    }
}
