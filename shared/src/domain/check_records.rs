//! The records the scheduled checks read (engagements, findings, risk acceptances) as JSON:
//! validated from a request body naming the offending field, and written back in the same
//! shape (the API's answers and the stores' `body`).

use super::checks::{Engagement, EngagementStatus, Finding, RiskAcceptance, Severity};
use super::directory::{ResourceId, Username};
use super::system::line;
use super::validation::{FieldError, expect_object, json_type_name, reject_unknown_fields};
use serde_json::{Map, Value, json};
use time::Date;
use time::macros::format_description;

/// Parses a `YYYY-MM-DD` date; `field` names it in the error.
pub fn parse_date(field: &str, value: &Value) -> Result<Date, FieldError> {
    let text = value.as_str().ok_or_else(|| {
        FieldError::new(
            field,
            format!(
                "expected a date (YYYY-MM-DD), got {}",
                json_type_name(value)
            ),
        )
    })?;
    Date::parse(text, format_description!("[year]-[month]-[day]"))
        .map_err(|_| FieldError::new(field, "must be a date as YYYY-MM-DD"))
}

/// The date as `YYYY-MM-DD`.
pub fn format_date(date: Date) -> String {
    date.to_string()
}

fn optional_date(field: &str, value: Option<&Value>) -> Result<Option<Date>, FieldError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(value) => parse_date(field, value).map(Some),
    }
}

fn required<'a>(object: &'a Map<String, Value>, field: &str) -> Result<&'a Value, FieldError> {
    match object.get(field) {
        None | Some(Value::Null) => Err(FieldError::new(field, "is required")),
        Some(value) => Ok(value),
    }
}

fn flag(object: &Map<String, Value>, field: &str, default: bool) -> Result<bool, FieldError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(default),
        Some(value) => value.as_bool().ok_or_else(|| {
            FieldError::new(
                field,
                format!("expected a boolean, got {}", json_type_name(value)),
            )
        }),
    }
}

/// The body's object, refusing unknown fields and an `id` that differs from the path's.
fn body<'a>(
    value: &'a Value,
    id: &ResourceId,
    fields: &[&str],
) -> Result<&'a Map<String, Value>, FieldError> {
    let object = expect_object(value, "")?;
    let mut allowed = vec!["id"];
    allowed.extend_from_slice(fields);
    reject_unknown_fields(object, "", &allowed)?;
    if let Some(sent) = object.get("id") {
        let sent = ResourceId::from_json("id", sent)?;
        if &sent != id {
            return Err(FieldError::new("id", "must match the id in the path"));
        }
    }
    Ok(object)
}

impl Engagement {
    const FIELDS: &'static [&'static str] = &[
        "product_id",
        "name",
        "lead",
        "target_start",
        "target_end",
        "status",
    ];

    /// Validates an engagement sent for `id`: `product_id`, `name`, `target_start` and
    /// `target_end` are required; `lead` may be null; `status` defaults to "Not Started".
    pub fn from_request(id: &ResourceId, value: &Value) -> Result<Self, FieldError> {
        let object = body(value, id, Self::FIELDS)?;
        let product_id = ResourceId::from_json("product_id", required(object, "product_id")?)?;
        let name = line("name", required(object, "name")?, 400)?;
        let lead = match object.get("lead") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => Some(Username::parse("lead", s)?),
            Some(other) => {
                return Err(FieldError::new(
                    "lead",
                    format!("expected a username, got {}", json_type_name(other)),
                ));
            }
        };
        let target_start = parse_date("target_start", required(object, "target_start")?)?;
        let target_end = parse_date("target_end", required(object, "target_end")?)?;
        if target_end < target_start {
            return Err(FieldError::new(
                "target_end",
                "must not be before target_start",
            ));
        }
        let status = match object.get("status") {
            None | Some(Value::Null) => EngagementStatus::NotStarted,
            Some(value) => value
                .as_str()
                .and_then(EngagementStatus::parse)
                .ok_or_else(|| {
                    FieldError::new(
                        "status",
                        format!(
                            "must be one of: {}",
                            EngagementStatus::ALL
                                .map(EngagementStatus::label)
                                .join(", ")
                        ),
                    )
                })?,
        };
        Ok(Self {
            id: id.clone(),
            product_id,
            name,
            lead,
            target_start,
            target_end,
            status,
        })
    }

    /// The engagement as the API shows it.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id.as_str(),
            "product_id": self.product_id.as_str(),
            "name": self.name,
            "lead": self.lead.as_ref().map(Username::as_str),
            "target_start": format_date(self.target_start),
            "target_end": format_date(self.target_end),
            "status": self.status.label(),
        })
    }

    /// Reads what [`Engagement::to_json`] wrote (a stored body).
    pub fn from_stored(body: &str) -> Result<Self, FieldError> {
        let value: Value =
            serde_json::from_str(body).map_err(|e| FieldError::new("", e.to_string()))?;
        let id = ResourceId::from_json("id", value.get("id").unwrap_or(&Value::Null))?;
        Self::from_request(&id, &value)
    }
}

impl Finding {
    const FIELDS: &'static [&'static str] = &[
        "product_id",
        "title",
        "severity",
        "active",
        "verified",
        "sla_expiration_date",
    ];

    /// Validates a finding sent for `id`: `product_id`, `title` and `severity` are required;
    /// `active` defaults to true, `verified` to false, `sla_expiration_date` to none.
    pub fn from_request(id: &ResourceId, value: &Value) -> Result<Self, FieldError> {
        let object = body(value, id, Self::FIELDS)?;
        let product_id = ResourceId::from_json("product_id", required(object, "product_id")?)?;
        let title = line("title", required(object, "title")?, 511)?;
        let severity = required(object, "severity")?
            .as_str()
            .and_then(Severity::parse)
            .ok_or_else(|| {
                FieldError::new(
                    "severity",
                    "must be one of: Critical, High, Medium, Low, Info",
                )
            })?;
        Ok(Self {
            id: id.clone(),
            product_id,
            title,
            severity,
            active: flag(object, "active", true)?,
            verified: flag(object, "verified", false)?,
            sla_expiration_date: optional_date(
                "sla_expiration_date",
                object.get("sla_expiration_date"),
            )?,
        })
    }

    /// The finding as the API shows it.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id.as_str(),
            "product_id": self.product_id.as_str(),
            "title": self.title,
            "severity": self.severity.label(),
            "active": self.active,
            "verified": self.verified,
            "sla_expiration_date": self.sla_expiration_date.map(format_date),
        })
    }

    /// Reads what [`Finding::to_json`] wrote.
    pub fn from_stored(body: &str) -> Result<Self, FieldError> {
        let value: Value =
            serde_json::from_str(body).map_err(|e| FieldError::new("", e.to_string()))?;
        let id = ResourceId::from_json("id", value.get("id").unwrap_or(&Value::Null))?;
        Self::from_request(&id, &value)
    }

    /// Whether the SLA check may ever concern it: active, not Info, with an SLA date.
    pub fn is_sla_tracked(&self) -> bool {
        self.active && self.severity != Severity::Info && self.sla_expiration_date.is_some()
    }
}

impl RiskAcceptance {
    const FIELDS: &'static [&'static str] = &[
        "product_id",
        "engagement_id",
        "name",
        "expiration_date",
        "accepted_findings",
    ];

    /// Validates a risk acceptance sent for `id`: `product_id` and `name` are required;
    /// `engagement_id` and `expiration_date` may be null; `accepted_findings` is a list of
    /// finding ids (default empty).
    pub fn from_request(id: &ResourceId, value: &Value) -> Result<Self, FieldError> {
        let object = body(value, id, Self::FIELDS)?;
        let product_id = ResourceId::from_json("product_id", required(object, "product_id")?)?;
        let name = line("name", required(object, "name")?, 300)?;
        let engagement_id = match object.get("engagement_id") {
            None | Some(Value::Null) => None,
            Some(value) => Some(ResourceId::from_json("engagement_id", value)?),
        };
        let accepted_findings = match object.get("accepted_findings") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| ResourceId::from_json(&format!("accepted_findings[{i}]"), item))
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(FieldError::new(
                    "accepted_findings",
                    format!(
                        "expected an array of finding ids, got {}",
                        json_type_name(other)
                    ),
                ));
            }
        };
        Ok(Self {
            id: id.clone(),
            product_id,
            engagement_id,
            name,
            expiration_date: optional_date("expiration_date", object.get("expiration_date"))?,
            accepted_findings,
        })
    }

    /// The risk acceptance as the API shows it.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id.as_str(),
            "product_id": self.product_id.as_str(),
            "engagement_id": self.engagement_id.as_ref().map(ResourceId::as_str),
            "name": self.name,
            "expiration_date": self.expiration_date.map(format_date),
            "accepted_findings": self.accepted_findings.iter().map(ResourceId::as_str).collect::<Vec<_>>(),
        })
    }

    /// Reads what [`RiskAcceptance::to_json`] wrote.
    pub fn from_stored(body: &str) -> Result<Self, FieldError> {
        let value: Value =
            serde_json::from_str(body).map_err(|e| FieldError::new("", e.to_string()))?;
        let id = ResourceId::from_json("id", value.get("id").unwrap_or(&Value::Null))?;
        Self::from_request(&id, &value)
    }
}

/// What an event tells the directory about an engagement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngagementNews {
    /// `engagement_added` with a complete engagement: create or replace it.
    Put(Engagement),
    /// The engagement was closed (`close_engagement`, `engagement_closed`) or reopened
    /// (`engagement_reopened`): its status changes, if Herald knows it.
    Status(ResourceId, EngagementStatus),
}

/// What `event` says about an engagement, if anything. An `engagement_added` whose
/// engagement lacks a field the checks need (`id`, `name`, `target_start`, `target_end`, a
/// product) says nothing: the platform may keep the directory through the API instead.
pub fn engagement_news(event: &super::Event) -> Option<EngagementNews> {
    let object = event.engagement.as_ref()?;
    let id = ResourceId::from_json("id", object.get("id")?).ok()?;
    match event.event_type.as_str() {
        "engagement_added" => {
            let mut fields = Map::new();
            for field in Engagement::FIELDS {
                if let Some(value) = object.get(*field) {
                    fields.insert((*field).to_owned(), value.clone());
                }
            }
            if !fields.contains_key("product_id") {
                let product = event.product()?;
                fields.insert(
                    "product_id".into(),
                    Value::String(product.as_str().to_owned()),
                );
            }
            Engagement::from_request(&id, &Value::Object(fields))
                .ok()
                .map(EngagementNews::Put)
        }
        "close_engagement" | "engagement_closed" => {
            Some(EngagementNews::Status(id, EngagementStatus::Completed))
        }
        "engagement_reopened" => Some(EngagementNews::Status(id, EngagementStatus::InProgress)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn id(value: &str) -> ResourceId {
        ResourceId(value.to_owned())
    }

    #[test]
    fn an_engagement_round_trips_and_defaults_to_not_started() {
        // GIVEN a body without a status
        let body = json!({"product_id": 7, "name": "Q4 pentest", "lead": "alice",
            "target_start": "2028-02-28", "target_end": "2028-02-29"});
        // WHEN it is parsed
        let e = Engagement::from_request(&id("12"), &body);
        // THEN it is not started, and what it writes reads back the same
        let e = e.unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(e.status, EngagementStatus::NotStarted);
        assert_eq!(e.target_end, date!(2028 - 02 - 29));
        let stored = e.to_json().to_string();
        assert_eq!(Engagement::from_stored(&stored).ok(), Some(e));
    }

    #[test]
    fn bad_engagement_fields_are_named() {
        let base = json!({"product_id": "7", "name": "E", "target_start": "2026-11-01",
            "target_end": "2026-11-30", "status": "In Progress"});
        for (field, value) in [
            ("target_start", json!("2026-02-30")),
            ("target_end", json!("30/11/2026")),
            ("target_end", json!("2026-10-01")),
            ("status", json!("Done")),
            ("product_id", json!(null)),
            ("lead", json!(5)),
            ("colour", json!("red")),
        ] {
            let mut body = base.clone();
            body[field] = value;
            let error = Engagement::from_request(&id("12"), &body).err();
            assert_eq!(error.map(|e| e.field), Some(field.to_owned()), "{field}");
        }
        let other_id = json!({"id": "13", "product_id": "7", "name": "E",
            "target_start": "2026-11-01", "target_end": "2026-11-30"});
        assert_eq!(
            Engagement::from_request(&id("12"), &other_id)
                .err()
                .map(|e| e.field),
            Some("id".to_owned())
        );
    }

    #[test]
    fn findings_and_risk_acceptances_validate_and_round_trip() {
        let f = Finding::from_request(
            &id("101"),
            &json!({"product_id": "7", "title": "SQLi", "severity": "high",
                "sla_expiration_date": "2026-12-31"}),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(f.active && !f.verified && f.is_sla_tracked());
        assert_eq!(Finding::from_stored(&f.to_json().to_string()).ok(), Some(f));
        let bad = Finding::from_request(
            &id("101"),
            &json!({"product_id": "7", "title": "SQLi", "severity": "urgent"}),
        );
        assert_eq!(bad.err().map(|e| e.field), Some("severity".to_owned()));

        let ra = RiskAcceptance::from_request(
            &id("5"),
            &json!({"product_id": "7", "name": "Legacy TLS", "engagement_id": 12,
                "expiration_date": "2027-01-10", "accepted_findings": [101, "102"]}),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ra.accepted_findings, vec![id("101"), id("102")]);
        assert_eq!(
            RiskAcceptance::from_stored(&ra.to_json().to_string()).ok(),
            Some(ra)
        );
        let bad = RiskAcceptance::from_request(
            &id("5"),
            &json!({"product_id": "7", "name": "x", "accepted_findings": ["ok", "#"]}),
        );
        assert_eq!(
            bad.err().map(|e| e.field),
            Some("accepted_findings[1]".to_owned())
        );
    }

    fn event(body: Value) -> super::super::Event {
        super::super::Event::from_request(&body, || "e-1".to_owned())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn events_with_engagements_keep_the_directory_current() {
        // GIVEN an engagement_added event with a complete engagement, product from the event
        let added = event(
            json!({"type": "engagement_added", "title": "x", "product_id": 7,
            "engagement": {"id": 12, "name": "Q4", "lead": "alice", "url": "/e/12",
                "target_start": "2026-12-01", "target_end": "2026-12-05"}}),
        );
        // THEN it is put, not started
        match engagement_news(&added) {
            Some(EngagementNews::Put(e)) => {
                assert_eq!((e.id.as_str(), e.product_id.as_str()), ("12", "7"));
                assert_eq!(e.status, EngagementStatus::NotStarted);
            }
            other => panic!("{other:?}"),
        }
        // An engagement without dates, or other event types, say nothing.
        let partial = event(
            json!({"type": "engagement_added", "title": "x", "product_id": 7,
            "engagement": {"id": 12, "name": "Q4"}}),
        );
        assert_eq!(engagement_news(&partial), None);
        let scan = event(json!({"type": "scan_added", "title": "x",
            "engagement": {"id": 12, "name": "Q4"}}));
        assert_eq!(engagement_news(&scan), None);
        // Closed and reopened change the status.
        let closed = event(json!({"type": "close_engagement", "title": "x",
            "engagement": {"id": 12, "name": "Q4"}}));
        assert_eq!(
            engagement_news(&closed),
            Some(EngagementNews::Status(
                id("12"),
                EngagementStatus::Completed
            ))
        );
        let reopened = event(json!({"type": "engagement_reopened", "title": "x",
            "engagement": {"id": "12", "name": "Q4"}}));
        assert_eq!(
            engagement_news(&reopened),
            Some(EngagementNews::Status(
                id("12"),
                EngagementStatus::InProgress
            ))
        );
    }
}
