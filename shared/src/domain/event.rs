//! Events posted by the platform: their shape, validation, and the product they concern.

use super::catalogue::EventType;
use super::directory::{INVALID_ID, ResourceId, Username, is_valid_id};
use super::system::single_line;
use super::validation::{FieldError, expect_object, json_type_name, reject_unknown_fields};
use serde::Serialize;
use serde_json::{Map, Value};
use std::fmt;

/// How many days Herald remembers an event id (and keeps its delivery records).
pub const EVENT_RETENTION_DAYS: u64 = 7;

/// An event's idempotency key: posting the same id again returns the first answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct EventId(pub(crate) String);

impl EventId {
    /// Validates an id: 1 to 128 letters, digits or `. _ : -`.
    pub fn parse(field: &str, value: &str) -> Result<Self, FieldError> {
        if is_valid_id(value) {
            Ok(Self(value.to_owned()))
        } else {
            Err(FieldError::new(field, INVALID_ID))
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> serde::Deserialize<'de> for EventId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let id = String::deserialize(deserializer)?;
        EventId::parse("event_id", &id).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Longest event title kept (alerts keep 250 of it).
pub const MAX_TITLE: usize = 1_000;
/// Longest description kept (alerts keep 2,000 of it).
pub const MAX_DESCRIPTION: usize = 20_000;
/// Longest event link kept.
pub const MAX_URL: usize = 2_000;
/// Most explicit recipients one event may name.
pub const MAX_RECIPIENTS: usize = 10_000;

/// An event as Herald keeps it after validation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub id: EventId,
    /// The name as posted; names outside the catalogue are governed by `other`.
    #[serde(rename = "type")]
    pub event_type: String,
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_type_id: Option<ResourceId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_id: Option<ResourceId>,
    /// `{id, name, product_id?, ...}` as posted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engagement: Option<Map<String, Value>>,
    /// `{id, title, product_id?, ...}` as posted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test: Option<Map<String, Value>>,
    /// `{id, title, severity, product_id?, ...}` as posted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finding: Option<Map<String, Value>>,
    /// `{new, reactivated, mitigated, untouched}`, each a list of findings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub findings: Option<Map<String, Value>>,
    /// Explicit recipients: only these users hear about the event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipients: Option<Vec<Username>>,
    /// System destinations only.
    pub no_users: bool,
    /// In-app alerts only.
    pub alert_only: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<Username>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Map<String, Value>>,
}

const FIELDS: &[&str] = &[
    "id",
    "type",
    "title",
    "description",
    "url",
    "product_type_id",
    "product_id",
    "engagement",
    "test",
    "finding",
    "findings",
    "recipients",
    "no_users",
    "alert_only",
    "requested_by",
    "data",
];

impl Event {
    /// Validates a posted event. `generate_id` supplies an id when the platform sent none
    /// (such an event cannot be deduplicated). Errors name the field.
    pub fn from_request(
        body: &Value,
        generate_id: impl FnOnce() -> String,
    ) -> Result<Event, FieldError> {
        let object = expect_object(body, "")?;
        reject_unknown_fields(object, "", FIELDS)?;
        let id = match object.get("id") {
            None | Some(Value::Null) => EventId(generate_id()),
            Some(Value::String(s)) => EventId::parse("id", s)?,
            Some(Value::Number(n)) if n.as_u64().is_some() => EventId::parse("id", &n.to_string())?,
            Some(other) => {
                return Err(FieldError::new(
                    "id",
                    format!("expected a string, got {}", json_type_name(other)),
                ));
            }
        };
        let event_type = required_string(object, "type")?;
        let valid_type = event_type.len() <= 64
            && event_type
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && event_type.starts_with(|c: char| c.is_ascii_lowercase());
        if !valid_type {
            return Err(FieldError::new(
                "type",
                "must be a snake_case event name such as scan_added (at most 64 characters)",
            ));
        }
        let title = required_string(object, "title")?;
        single_line("title", &title, MAX_TITLE)?;
        let description = optional_string(object, "description")?;
        if let Some(d) = &description
            && d.chars().count() > MAX_DESCRIPTION
        {
            return Err(FieldError::new(
                "description",
                format!("must be at most {MAX_DESCRIPTION} characters"),
            ));
        }
        let url = optional_string(object, "url")?;
        if let Some(u) = &url {
            single_line("url", u, MAX_URL)?;
            if !(u.starts_with('/') || u.starts_with("https://") || u.starts_with("http://")) {
                return Err(FieldError::new(
                    "url",
                    "must be a path starting with / or an http(s) URL",
                ));
            }
        }
        let recipients = match object.get("recipients") {
            None | Some(Value::Null) => None,
            Some(Value::Array(list)) => {
                if list.len() > MAX_RECIPIENTS {
                    return Err(FieldError::new(
                        "recipients",
                        format!("at most {MAX_RECIPIENTS} recipients"),
                    ));
                }
                let mut names = Vec::with_capacity(list.len());
                // Each name kept once, in the order first given, in linear time.
                let mut seen = std::collections::HashSet::with_capacity(list.len());
                for (i, item) in list.iter().enumerate() {
                    let field = format!("recipients[{i}]");
                    let name = item.as_str().ok_or_else(|| {
                        FieldError::new(
                            &field,
                            format!("expected a username, got {}", json_type_name(item)),
                        )
                    })?;
                    if seen.insert(name) {
                        names.push(Username::parse(&field, name)?);
                    }
                }
                Some(names)
            }
            Some(other) => {
                return Err(FieldError::new(
                    "recipients",
                    format!(
                        "expected an array of usernames, got {}",
                        json_type_name(other)
                    ),
                ));
            }
        };
        let requested_by = optional_string(object, "requested_by")?
            .map(|u| Username::parse("requested_by", &u))
            .transpose()?;
        Ok(Event {
            id,
            event_type,
            title,
            description,
            url,
            product_type_id: optional_id(object, "product_type_id")?,
            product_id: optional_id(object, "product_id")?,
            engagement: reference_object(object, "engagement")?,
            test: reference_object(object, "test")?,
            finding: reference_object(object, "finding")?,
            findings: findings(object)?,
            recipients,
            no_users: flag(object, "no_users")?,
            alert_only: flag(object, "alert_only")?,
            requested_by,
            data: match object.get("data") {
                None | Some(Value::Null) => None,
                Some(value) => Some(expect_object(value, "data")?.clone()),
            },
        })
    }

    /// The JSON kept by the stores: the event as posted after validation, `id` included.
    pub fn to_stored(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }

    /// Reads [`Event::to_stored`] back. The stored form is a valid request body, so it goes
    /// through the same validation and comes back equal.
    pub fn from_stored(json: &str) -> Result<Event, String> {
        let body: Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
        let mut missing_id = false;
        let event = Event::from_request(&body, || {
            missing_id = true;
            String::new()
        })
        .map_err(|e| e.to_string())?;
        if missing_id {
            return Err("the stored event has no id".to_owned());
        }
        Ok(event)
    }

    /// The catalogue entry whose settings govern this event.
    pub fn governing_type(&self) -> EventType {
        EventType::governing(&self.event_type)
    }

    /// The product the event concerns: its `product_id`, else its engagement's, else its
    /// test's, else its finding's.
    pub fn product(&self) -> Option<ResourceId> {
        if let Some(id) = &self.product_id {
            return Some(id.clone());
        }
        [&self.engagement, &self.test, &self.finding]
            .into_iter()
            .flatten()
            .find_map(|object| {
                object
                    .get("product_id")
                    .and_then(|v| ResourceId::from_json("product_id", v).ok())
            })
    }
}

fn required_string(object: &Map<String, Value>, field: &str) -> Result<String, FieldError> {
    match object.get(field) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        Some(Value::String(_)) => Err(FieldError::new(field, "must not be empty")),
        None | Some(Value::Null) => Err(FieldError::new(field, "is required")),
        Some(other) => Err(FieldError::new(
            field,
            format!("expected a string, got {}", json_type_name(other)),
        )),
    }
}

/// A string field; absent, `null` and `""` are `None`.
pub(crate) fn optional_string(
    object: &Map<String, Value>,
    field: &str,
) -> Result<Option<String>, FieldError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(FieldError::new(
            field,
            format!("expected a string, got {}", json_type_name(other)),
        )),
    }
}

fn optional_id(object: &Map<String, Value>, field: &str) -> Result<Option<ResourceId>, FieldError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => ResourceId::from_json(field, value).map(Some),
    }
}

fn flag(object: &Map<String, Value>, field: &str) -> Result<bool, FieldError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(FieldError::new(
            field,
            format!("expected a boolean, got {}", json_type_name(other)),
        )),
    }
}

/// An `{id, ...}` object; `id` and, if present, `product_id` must be valid ids.
fn reference_object(
    object: &Map<String, Value>,
    field: &str,
) -> Result<Option<Map<String, Value>>, FieldError> {
    let Some(value) = object.get(field).filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let inner = expect_object(value, field)?;
    let id = inner
        .get("id")
        .ok_or_else(|| FieldError::new(format!("{field}.id"), "is required"))?;
    ResourceId::from_json(&format!("{field}.id"), id)?;
    if let Some(product_id) = inner.get("product_id").filter(|v| !v.is_null()) {
        ResourceId::from_json(&format!("{field}.product_id"), product_id)?;
    }
    Ok(Some(inner.clone()))
}

fn findings(object: &Map<String, Value>) -> Result<Option<Map<String, Value>>, FieldError> {
    let Some(value) = object.get("findings").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let inner = expect_object(value, "findings")?;
    reject_unknown_fields(
        inner,
        "findings",
        &["new", "reactivated", "mitigated", "untouched"],
    )?;
    for (kind, list) in inner {
        let list = list.as_array().ok_or_else(|| {
            FieldError::new(
                format!("findings.{kind}"),
                format!(
                    "expected an array of findings, got {}",
                    json_type_name(list)
                ),
            )
        })?;
        for (i, item) in list.iter().enumerate() {
            let field = format!("findings.{kind}[{i}]");
            let finding = expect_object(item, &field)?;
            let id = finding
                .get("id")
                .ok_or_else(|| FieldError::new(format!("{field}.id"), "is required"))?;
            ResourceId::from_json(&format!("{field}.id"), id)?;
        }
    }
    Ok(Some(inner.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(body: Value) -> Result<Event, FieldError> {
        Event::from_request(&body, || "generated".to_owned())
    }

    #[test]
    fn given_a_minimal_event_then_it_is_accepted_with_a_generated_id() {
        let e = parse(json!({"type": "scan_added", "title": "Scan"}));
        let e = e.unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(e.id.as_str(), "generated");
        assert_eq!(e.governing_type(), EventType::ScanAdded);
        assert!(!e.no_users && !e.alert_only);
    }

    #[test]
    fn given_an_unknown_type_then_other_governs_it() {
        let e = parse(json!({"type": "finding_added", "title": "x"}));
        assert_eq!(e.map(|e| e.governing_type()), Ok(EventType::Other));
    }

    #[test]
    fn given_bad_events_then_the_error_names_the_field() {
        let cases = [
            (json!({"title": "x"}), "type"),
            (json!({"type": "Scan Added", "title": "x"}), "type"),
            (json!({"type": "scan_added"}), "title"),
            (json!({"type": "scan_added", "title": " "}), "title"),
            (json!({"type": "scan_added", "title": "a\nb"}), "title"),
            (
                json!({"type": "scan_added", "title": "x", "id": "a b"}),
                "id",
            ),
            (json!({"type": "scan_added", "title": "x", "id": {}}), "id"),
            (
                json!({"type": "scan_added", "title": "x", "product_id": -3}),
                "product_id",
            ),
            (
                json!({"type": "scan_added", "title": "x", "recipients": "alice"}),
                "recipients",
            ),
            (
                json!({"type": "scan_added", "title": "x", "recipients": ["al ice"]}),
                "recipients[0]",
            ),
            (
                json!({"type": "scan_added", "title": "x", "no_users": "yes"}),
                "no_users",
            ),
            (
                json!({"type": "scan_added", "title": "x", "engagement": {"name": "e"}}),
                "engagement.id",
            ),
            (
                json!({"type": "scan_added", "title": "x", "findings": {"new": {}}}),
                "findings.new",
            ),
            (
                json!({"type": "scan_added", "title": "x", "findings": {"new": [{"title": "f"}]}}),
                "findings.new[0].id",
            ),
            (
                json!({"type": "scan_added", "title": "x", "findings": {"old": []}}),
                "findings.old",
            ),
            (
                json!({"type": "scan_added", "title": "x", "url": "javascript:alert(1)"}),
                "url",
            ),
            (
                json!({"type": "scan_added", "title": "x", "colour": "red"}),
                "colour",
            ),
            (
                json!({"type": "scan_added", "title": "x", "data": []}),
                "data",
            ),
        ];
        for (body, field) in cases {
            let got = parse(body.clone()).err().map(|e| e.field);
            assert_eq!(got.as_deref(), Some(field), "{body}");
        }
    }

    #[test]
    fn given_references_then_the_product_comes_from_product_engagement_test_or_finding() {
        let from = |body: Value| parse(body).ok().and_then(|e| e.product()).map(|p| p.0);
        let base = json!({"type": "test_added", "title": "t"});
        let with = |k: &str, v: Value| {
            let mut b = base.clone();
            b[k] = v;
            b
        };
        assert_eq!(from(with("product_id", json!(7))), Some("7".into()));
        assert_eq!(
            from(with("engagement", json!({"id": 1, "product_id": 8}))),
            Some("8".into())
        );
        assert_eq!(
            from(with("test", json!({"id": 1, "product_id": "9"}))),
            Some("9".into())
        );
        assert_eq!(
            from(with("finding", json!({"id": 1, "product_id": 10}))),
            Some("10".into())
        );
        assert_eq!(from(base.clone()), None);
    }

    #[test]
    fn given_a_full_event_then_its_stored_form_reads_back_equal() {
        let e = parse(json!({
            "id": 42, "type": "scan_added", "title": "Scan", "description": "d", "url": "/x",
            "product_type_id": 1, "product_id": "p-2", "engagement": {"id": 3, "name": "E"},
            "test": {"id": 4, "title": "T"}, "finding": {"id": 5, "severity": "High"},
            "findings": {"new": [{"id": 6}]}, "recipients": ["alice", "bob"], "no_users": true,
            "alert_only": true, "requested_by": "carol", "data": {"k": [1, 2]}
        }))
        .unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(Event::from_stored(&e.to_stored()), Ok(e.clone()));
        assert_eq!(e.id.as_str(), "42");
        assert!(Event::from_stored(r#"{"type": "scan_added", "title": "x"}"#).is_err());
    }

    #[test]
    fn given_an_unknown_empty_key_then_the_error_names_it_rather_than_the_whole_body() {
        // The `event` fuzz target's input: an empty key was reported as field "", which means
        // the whole body.
        let e = parse(
            json!({"type": "user_mentioned", "title": "bob jotted a note",
            "": "/u rlfinding/101", "recipients": ["alice", "carol"]}),
        );
        assert_eq!(e.err().map(|e| e.field).as_deref(), Some("\"\""));
        let e = parse(json!({"type": "scan_added", "title": "x", "findings": {"": []}}));
        assert_eq!(e.err().map(|e| e.field).as_deref(), Some("findings.\"\""));
    }

    #[test]
    fn given_a_huge_number_in_data_then_its_stored_form_reads_back_equal() {
        // The `event` fuzz target's input: a 98-digit integer in `data` was read as a float
        // that, written out and read again, was another float (serde_json reads floats
        // correctly rounded only with its `float_roundtrip` feature).
        let text = format!(
            r#"{{"type": "scan_added", "title": "x", "data": {{"id": 3{}}}}}"#,
            "6".repeat(97)
        );
        let body: Value = serde_json::from_str(&text).unwrap_or_else(|err| panic!("{err}"));
        let e = parse(body).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(Event::from_stored(&e.to_stored()), Ok(e.clone()));
    }

    #[test]
    fn given_duplicate_recipients_then_each_is_kept_once() {
        let e =
            parse(json!({"type": "user_mentioned", "title": "x", "recipients": ["a", "b", "a"]}));
        assert_eq!(e.ok().and_then(|e| e.recipients).map(|r| r.len()), Some(2));

        // The most allowed, a tenth of them twice: each once, in the order first given.
        let names: Vec<String> = (0..MAX_RECIPIENTS)
            .map(|i| format!("u{}", (i * 7) % 9_000))
            .collect();
        let e = parse(json!({"type": "user_mentioned", "title": "x", "recipients": names}));
        let kept: Vec<String> = e
            .ok()
            .and_then(|e| e.recipients)
            .unwrap_or_default()
            .iter()
            .map(|u| u.as_str().to_owned())
            .collect();
        let mut expected = Vec::new();
        for name in &names {
            if !expected.contains(name) {
                expected.push(name.clone());
            }
        }
        assert_eq!(kept.len(), 9_000);
        assert_eq!(kept, expected);
    }
}
