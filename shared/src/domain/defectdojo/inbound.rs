//! DefectDojo's webhooks, received: the body DefectDojo posts to a webhook endpoint
//! (`dojo/notifications/helper.py`, `send_webhooks_notification`) read into a Herald event.
//!
//! DefectDojo names the event only in the `X-DefectDojo-Event` header. The body carries
//! `title`, `description`, `url_ui`, `url_api`, `user` (the endpoint's owner, not the actor),
//! the nested `product_type` / `product` / `engagement` / `test` objects with integer ids, and
//! for scans `finding_count` and `findings.{new, reactivated, mitigated, untouched}`. Fields
//! Herald has no place for are kept in the event's `data`, so a newer DefectDojo that adds
//! fields is not refused.
//!
//! Addressing follows how DefectDojo fans a notification out to endpoints: the system
//! endpoint's copy (`user` null) is routed by Herald as a broadcast; `user_mentioned` and
//! `review_requested` go only to each recipient's own endpoint, so such a post is addressed to
//! that user; any other post with `user` set is a personal copy of a broadcast Herald already
//! routes from the system copy, and is answered without routing anything.

use super::{DEFECTDOJO_EVENTS, EVENT_HEADER, PING};
use crate::domain::directory::Username;
use crate::domain::event::{Event, MAX_DESCRIPTION, MAX_TITLE, MAX_URL, optional_string};
use crate::domain::message::FINDING_KINDS;
use crate::domain::validation::{FieldError, expect_object, join_path, json_type_name};
use serde_json::{Map, Value};

/// Most findings kept per list (`findings.new`, ...); DefectDojo lists every finding of a
/// re-import, and the event keeps the count of the rest in `data.findings_omitted`.
pub const MAX_LISTED: usize = 100;

/// The events DefectDojo sends only to each recipient's own endpoint.
const ADDRESSED_EVENTS: &[&str] = &["user_mentioned", "review_requested"];

/// The body fields that become fields of the Herald event.
const MAPPED_FIELDS: &[&str] = &[
    "title",
    "description",
    "url_ui",
    "user",
    "product_type",
    "product",
    "engagement",
    "test",
    "finding",
    "findings",
    "requested_by",
];

/// What a DefectDojo webhook post asks of Herald.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// The endpoint was saved in DefectDojo: answer, record nothing.
    Ping,
    /// A user's own copy of a broadcast that Herald routes from the system endpoint's copy.
    PersonalCopy { event_type: String, owner: Username },
    /// An event to accept, routed by Herald's settings.
    Event(Box<Event>),
}

/// Why a post was refused: a header (400) or the body (422), naming it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboundError {
    Header(FieldError),
    Body(FieldError),
}

/// Reads a DefectDojo webhook post. `event_header` is [`EVENT_HEADER`]'s value;
/// `generate_id` gives the new event its id (every post is a new event: DefectDojo does not
/// retry, and two identical re-imports are two notifications).
pub fn from_webhook(
    event_header: Option<&str>,
    body: &Value,
    generate_id: impl FnOnce() -> String,
) -> Result<Inbound, InboundError> {
    let event_type = event_name(event_header).map_err(InboundError::Header)?;
    let object = expect_object(body, "").map_err(InboundError::Body)?;
    if event_type == PING {
        return Ok(Inbound::Ping);
    }
    let owner = match object.get("user") {
        None | Some(Value::Null) => None,
        Some(value) => Some(person(value, "user").map_err(InboundError::Body)?),
    };
    let addressed = ADDRESSED_EVENTS.contains(&event_type.as_str());
    if let Some(owner) = &owner
        && !addressed
    {
        return Ok(Inbound::PersonalCopy {
            event_type,
            owner: owner.clone(),
        });
    }
    let request = herald_request(&event_type, object, owner).map_err(InboundError::Body)?;
    Event::from_request(&request, generate_id)
        .map(|event| Inbound::Event(Box::new(event)))
        .map_err(|e| InboundError::Body(defectdojo_field(e)))
}

fn event_name(header: Option<&str>) -> Result<String, FieldError> {
    let name = header.map(str::trim).unwrap_or_default();
    if name.is_empty() {
        return Err(FieldError::new(
            EVENT_HEADER,
            "is required: DefectDojo names the event in this header",
        ));
    }
    if !DEFECTDOJO_EVENTS.contains(&name) {
        return Err(FieldError::new(
            EVENT_HEADER,
            format!(
                "unknown DefectDojo event `{}`; expected one of: {}",
                name.chars().take(64).collect::<String>(),
                DEFECTDOJO_EVENTS.join(", ")
            ),
        ));
    }
    Ok(name.to_owned())
}

/// The Herald event request for a DefectDojo body, its types checked with DefectDojo's field
/// names.
fn herald_request(
    event_type: &str,
    object: &Map<String, Value>,
    recipient: Option<Username>,
) -> Result<Value, FieldError> {
    let title = optional_string(object, "title")?;
    // Too long for Herald is cut, not refused: DefectDojo deactivates an endpoint for good on
    // a 4xx, and never retries.
    let description = optional_string(object, "description")?.map(|d| {
        if d.chars().count() > MAX_DESCRIPTION {
            let mut cut: String = d.chars().take(MAX_DESCRIPTION - 1).collect();
            cut.push('…');
            cut
        } else {
            d
        }
    });
    let url = optional_string(object, "url_ui")?
        .map(|u| undoubled(&u))
        .filter(|u| u.len() <= MAX_URL);
    let product_type = dojo_object(object, "product_type", "name")?;
    let product = dojo_object(object, "product", "name")?;
    let engagement = dojo_object(object, "engagement", "name")?;
    let test = dojo_object(object, "test", "title")?;
    let finding = dojo_object(object, "finding", "title")?;
    let findings = finding_lists(object)?;
    let requested_by = match object.get("requested_by") {
        None | Some(Value::Null) => None,
        Some(value) => Some(person(value, "requested_by")?),
    };
    if let Some(count) = object.get("finding_count").filter(|v| !v.is_null())
        && count.as_u64().is_none()
    {
        return Err(FieldError::new(
            "finding_count",
            format!(
                "expected a non-negative integer, got {}",
                json_type_name(count)
            ),
        ));
    }

    let mut request = Map::new();
    request.insert("type".into(), Value::String(event_type.to_owned()));
    request.insert(
        "title".into(),
        Value::String(title_for(event_type, title, description.as_deref())),
    );
    if let Some(d) = description {
        request.insert("description".into(), Value::String(d));
    }
    if let Some(u) = url {
        request.insert("url".into(), Value::String(u));
    }
    let product_id = product.as_ref().and_then(|p| p.get("id").cloned());
    if let Some(pt) = &product_type {
        request.insert("product_type_id".into(), pt["id"].clone());
    }
    if let Some(id) = &product_id {
        request.insert("product_id".into(), id.clone());
    }
    for (key, value) in [
        ("engagement", engagement),
        ("test", test),
        ("finding", finding),
    ] {
        if let Some(mut inner) = value {
            if let Some(id) = &product_id {
                inner.entry("product_id").or_insert_with(|| id.clone());
            }
            request.insert(key.into(), Value::Object(inner));
        }
    }
    let mut findings_extra = Map::new();
    let mut omitted = Map::new();
    let findings = findings.map(|mut lists| {
        for (kind, list) in lists.iter_mut() {
            if let Value::Array(items) = list
                && items.len() > MAX_LISTED
            {
                omitted.insert(kind.clone(), Value::from(items.len() - MAX_LISTED));
                items.truncate(MAX_LISTED);
            }
        }
        lists
    });
    if let Some(mut findings) = findings {
        // DefectDojo 3.2 adds `new_duplicate`, `reactivated_duplicate` and
        // `untouched_duplicate`; Herald's event has the four kinds, the rest go to `data`.
        findings.retain(|kind, list| {
            let kept = FINDING_KINDS.contains(&kind.as_str());
            if !kept {
                findings_extra.insert(kind.clone(), list.clone());
            }
            kept
        });
        request.insert("findings".into(), Value::Object(findings));
    }
    if let Some(recipient) = recipient {
        request.insert(
            "recipients".into(),
            Value::Array(vec![Value::String(recipient.to_string())]),
        );
    }
    if let Some(by) = requested_by {
        request.insert("requested_by".into(), Value::String(by.to_string()));
    }

    // Everything else, and the objects Herald's event names only by id, go to `data`.
    let mut data = Map::new();
    for (key, value) in object {
        if !MAPPED_FIELDS.contains(&key.as_str()) && !value.is_null() {
            data.insert(key.clone(), value.clone());
        }
    }
    for (key, value) in [("product_type", product_type), ("product", product)] {
        if let Some(inner) = value {
            data.insert(key.into(), Value::Object(inner));
        }
    }
    if let Some(by) = object.get("requested_by").filter(|v| !v.is_null()) {
        data.insert("requested_by".into(), by.clone());
    }
    if !findings_extra.is_empty() {
        data.insert("findings_extra".into(), Value::Object(findings_extra));
    }
    if !omitted.is_empty() {
        data.insert("findings_omitted".into(), Value::Object(omitted));
    }
    if let Some(long) = object
        .get("url_ui")
        .and_then(Value::as_str)
        .filter(|u| undoubled(u).len() > MAX_URL)
    {
        data.insert(
            "url_ui_omitted".into(),
            Value::String(format!("{} characters", long.len())),
        );
    }
    if !data.is_empty() {
        request.insert("data".into(), Value::Object(data));
    }
    Ok(Value::Object(request))
}

/// DefectDojo may send an empty title (`""`); Herald needs one line: the description's first
/// line, else DefectDojo's own default sentence.
fn title_for(event_type: &str, title: Option<String>, description: Option<&str>) -> String {
    // Each candidate as one line (control characters become spaces); the first not blank.
    let one_line = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect::<String>()
            .trim()
            .to_owned()
    };
    let from_description = description
        .and_then(|d| d.lines().map(one_line).find(|l| !l.is_empty()))
        .unwrap_or_default();
    let chosen = [
        title.as_deref().map(one_line).unwrap_or_default(),
        from_description,
    ]
    .into_iter()
    .find(|t| !t.is_empty())
    .unwrap_or_else(|| format!("Event {event_type} has occurred."));
    if chosen.chars().count() > MAX_TITLE {
        let mut cut: String = chosen.chars().take(MAX_TITLE - 1).collect();
        cut.push('…');
        cut
    } else {
        chosen
    }
}

/// DefectDojo prefixes its site URL to links that are already absolute (`user_mentioned`,
/// `jira_config_*`): `https://dojo.example.comhttps://dojo.example.com/finding/1`. The last
/// absolute URL in such a link is the one meant.
fn undoubled(url: &str) -> String {
    let last = ["https://", "http://"]
        .iter()
        .filter_map(|scheme| url.rfind(scheme))
        .max()
        .unwrap_or(0);
    url[last..].to_owned()
}

/// DefectDojo's ids are integers.
fn dojo_id(value: Option<&Value>, field: &str) -> Result<Value, FieldError> {
    match value {
        Some(Value::Number(n)) if n.as_u64().is_some() => Ok(Value::Number(n.clone())),
        None | Some(Value::Null) => Err(FieldError::new(field, "is required")),
        Some(other) => Err(FieldError::new(
            field,
            format!(
                "expected DefectDojo's integer id, got {}",
                json_type_name(other)
            ),
        )),
    }
}

/// A nested `{id, <label>, url_ui, url_api, ...}` object, kept as sent.
fn dojo_object(
    object: &Map<String, Value>,
    field: &str,
    label: &str,
) -> Result<Option<Map<String, Value>>, FieldError> {
    let Some(value) = object.get(field).filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let inner = expect_object(value, field)?;
    dojo_id(inner.get("id"), &format!("{field}.id"))?;
    for key in [label, "url_ui", "url_api"] {
        optional_string(inner, key)
            .map_err(|e| FieldError::new(join_path(field, key), e.message))?;
    }
    Ok(Some(inner.clone()))
}

/// `findings.{new, reactivated, mitigated, untouched}`, each a list of finding objects.
fn finding_lists(object: &Map<String, Value>) -> Result<Option<Map<String, Value>>, FieldError> {
    let Some(value) = object.get("findings").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let lists = expect_object(value, "findings")?;
    for (kind, list) in lists {
        let field = join_path("findings", kind);
        let items = list.as_array().ok_or_else(|| {
            FieldError::new(
                &field,
                format!(
                    "expected an array of findings, got {}",
                    json_type_name(list)
                ),
            )
        })?;
        for (i, item) in items.iter().enumerate() {
            let item_field = format!("{field}[{i}]");
            let finding = expect_object(item, &item_field)?;
            dojo_id(finding.get("id"), &format!("{item_field}.id"))?;
            for key in ["title", "severity", "url_ui", "url_api"] {
                optional_string(finding, key)
                    .map_err(|e| FieldError::new(format!("{item_field}.{key}"), e.message))?;
            }
        }
    }
    Ok(Some(lists.clone()))
}

/// A DefectDojo user object (`{id, username, ...}`): its username.
fn person(value: &Value, field: &str) -> Result<Username, FieldError> {
    let inner = expect_object(value, field)?;
    let username_field = format!("{field}.username");
    match inner.get("username") {
        Some(Value::String(name)) => Username::parse(&username_field, name),
        None | Some(Value::Null) => Err(FieldError::new(username_field, "is required")),
        Some(other) => Err(FieldError::new(
            username_field,
            format!("expected a string, got {}", json_type_name(other)),
        )),
    }
}

/// Names a field of the Herald event by DefectDojo's name for it.
fn defectdojo_field(e: FieldError) -> FieldError {
    let field = match e.field.as_str() {
        "url" => "url_ui".to_owned(),
        "product_type_id" => "product_type.id".to_owned(),
        "product_id" => "product.id".to_owned(),
        "recipients[0]" => "user.username".to_owned(),
        other => other.to_owned(),
    };
    FieldError::new(field, e.message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(event: &str, body: Value) -> Result<Inbound, InboundError> {
        from_webhook(Some(event), &body, || "dd-1".to_owned())
    }

    fn event(event: &str, body: Value) -> Event {
        match read(event, body) {
            Ok(Inbound::Event(e)) => *e,
            other => panic!("expected an event, got {other:?}"),
        }
    }

    fn alice() -> Value {
        json!({"id": 2, "email": "alice@example.com", "username": "alice", "first_name": "Alice",
            "last_name": "Adams", "url_ui": "https://dojo/user/2", "url_api": "https://dojo/api/v2/users/2/"})
    }

    #[test]
    fn given_a_scan_then_ids_objects_and_findings_become_the_event() {
        let e = event(
            "scan_added",
            json!({"description": "Event scan_added has occurred.", "title": "Created/Updated 1 findings for Shop: Q3: ZAP",
                "user": null, "url_ui": "https://dojo/test/99", "url_api": "https://dojo/api/v2/tests/99/",
                "product_type": {"name": "Web", "id": 1, "url_ui": "u", "url_api": "a"},
                "product": {"name": "Shop", "id": 7, "url_ui": "u", "url_api": "a"},
                "engagement": {"name": "Q3", "id": 12, "url_ui": "u", "url_api": "a"},
                "test": {"title": "ZAP", "id": 99, "url_ui": "u", "url_api": "a"},
                "finding_count": 1,
                "findings": {"new": [{"id": 101, "title": "XSS", "severity": "High", "url_ui": "u", "url_api": "a"}],
                    "reactivated": [], "mitigated": [], "untouched": []},
                "x_new_field": {"k": 1}}),
        );
        assert_eq!(e.id.as_str(), "dd-1");
        assert_eq!(e.event_type, "scan_added");
        assert_eq!(e.title, "Created/Updated 1 findings for Shop: Q3: ZAP");
        assert_eq!(e.url.as_deref(), Some("https://dojo/test/99"));
        assert_eq!(e.product().map(|p| p.to_string()).as_deref(), Some("7"));
        assert_eq!(
            e.product_type_id.map(|p| p.to_string()).as_deref(),
            Some("1")
        );
        assert_eq!(
            e.test.as_ref().and_then(|t| t.get("product_id")),
            Some(&json!(7))
        );
        let data = e.data.unwrap_or_default();
        assert_eq!(data["product"]["name"], "Shop");
        assert_eq!(data["finding_count"], 1);
        assert_eq!(data["x_new_field"], json!({"k": 1}));
        assert_eq!(data["url_api"], "https://dojo/api/v2/tests/99/");
        assert_eq!(e.recipients, None);
    }

    #[test]
    fn given_duplicate_lists_and_a_doubled_link_then_the_event_keeps_both_readable() {
        let e = event(
            "scan_added",
            json!({"title": "t", "url_ui": "https://dojo.example.comhttps://dojo.example.com/finding/1",
                "findings": {"new": [], "new_duplicate": [{"id": 5, "title": "x", "severity": "Low"}]}}),
        );
        assert_eq!(e.url.as_deref(), Some("https://dojo.example.com/finding/1"));
        assert_eq!(
            e.findings.map(|f| f.keys().cloned().collect::<Vec<_>>()),
            Some(vec!["new".to_owned()])
        );
        assert_eq!(
            e.data.unwrap_or_default()["findings_extra"]["new_duplicate"][0]["id"],
            5
        );
    }

    #[test]
    fn given_a_huge_reimport_then_lists_and_text_are_cut_not_refused() {
        let many: Vec<Value> = (0..250)
            .map(|i| json!({"id": i, "title": "f", "severity": "Low"}))
            .collect();
        let e = event(
            "scan_added",
            json!({"title": "t", "description": "d".repeat(30_000),
                "url_ui": format!("https://dojo/{}", "x".repeat(3_000)),
                "findings": {"new": [], "untouched": many}}),
        );
        let findings = e.findings.clone().unwrap_or_default();
        assert_eq!(
            findings["untouched"].as_array().map(Vec::len),
            Some(MAX_LISTED)
        );
        let data = e.data.clone().unwrap_or_default();
        assert_eq!(data["findings_omitted"]["untouched"], 150);
        assert_eq!(
            e.description.map(|d| d.chars().count()),
            Some(MAX_DESCRIPTION)
        );
        assert_eq!(e.url, None);
        assert_eq!(data["url_ui_omitted"], "3013 characters");
    }

    #[test]
    fn given_a_ping_then_nothing_is_routed() {
        let ping = json!({"description": "Test webhook notification", "title": "", "user": null});
        assert_eq!(read("ping", ping), Ok(Inbound::Ping));
    }

    #[test]
    fn given_a_mention_on_a_users_endpoint_then_it_is_addressed_to_that_user() {
        let e = event(
            "user_mentioned",
            json!({"description": "Event user_mentioned has occurred.", "title": "Bob (bob) jotted a note",
                "user": alice(), "url_ui": "https://dojo/finding/101"}),
        );
        assert_eq!(
            e.recipients
                .map(|r| r.iter().map(|u| u.to_string()).collect::<Vec<_>>()),
            Some(vec!["alice".to_owned()])
        );
    }

    #[test]
    fn given_a_broadcast_on_a_users_endpoint_then_it_is_a_personal_copy() {
        let got = read(
            "scan_added",
            json!({"title": "t", "user": alice(), "findings": {"new": []}}),
        );
        assert!(
            matches!(got, Ok(Inbound::PersonalCopy { event_type, owner })
            if event_type == "scan_added" && owner.to_string() == "alice")
        );
    }

    #[test]
    fn given_an_empty_title_then_the_description_or_defectdojos_sentence_stands_in() {
        let e = event(
            "sla_breach",
            json!({"title": "", "description": "\n  Finding 5 breached\nmore"}),
        );
        assert_eq!(e.title, "Finding 5 breached");
        let e = event("other", json!({"title": ""}));
        assert_eq!(e.title, "Event other has occurred.");
        // Found by the `defectdojo_webhook` fuzz target: a description of control characters
        // only left an empty title.
        let e = event(
            "sla_breach",
            json!({"title": "\u{1}", "description": "\u{1}"}),
        );
        assert_eq!(e.title, "Event sla_breach has occurred.");
    }

    #[test]
    fn given_bad_posts_then_the_error_names_the_header_or_field() {
        let header = |h: Option<&str>| match from_webhook(h, &json!({}), String::new) {
            Err(InboundError::Header(e)) => e.field,
            other => panic!("{other:?}"),
        };
        assert_eq!(header(None), EVENT_HEADER);
        assert_eq!(header(Some("finding_exploded")), EVENT_HEADER);
        let cases = [
            (json!([]), ""),
            (json!({"title": 3}), "title"),
            (json!({"user": "alice"}), "user"),
            (json!({"user": {"id": 2}}), "user.username"),
            (json!({"product": {"id": "7"}}), "product.id"),
            (json!({"product": {"name": "Shop"}}), "product.id"),
            (
                json!({"engagement": {"id": 1, "name": 5}}),
                "engagement.name",
            ),
            (json!({"test": {"id": -1}}), "test.id"),
            (json!({"finding_count": "3"}), "finding_count"),
            (json!({"findings": {"new": {}}}), "findings.new"),
            (
                json!({"findings": {"new": [{"id": 1, "severity": 4}]}}),
                "findings.new[0].severity",
            ),
            (json!({"url_ui": "javascript:x"}), "url_ui"),
            (json!({"user": {"username": 5}}), "user.username"),
        ];
        for (body, field) in cases {
            match read("scan_added", body.clone()) {
                Err(InboundError::Body(e)) => assert_eq!(e.field, field, "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
    }
}
