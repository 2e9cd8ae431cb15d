//! What the fuzz targets share: reading the input as JSON, the check that a validation error
//! names a field, and the structured inputs (built with `arbitrary`) of the `render` target.

use arbitrary::Arbitrary;
use herald_shared::domain::{EVENT_TYPES, FieldError};
use serde_json::{Map, Value, json};

/// The input as JSON, as the HTTP layer reads a request body; `None` when it is not JSON (the
/// API answers 400 before any domain code runs).
pub fn json(data: &[u8]) -> Option<Value> {
    serde_json::from_slice(data).ok()
}

/// Checks that a validation error says where the problem is: a body that is not an object is
/// named as the whole body (the empty field); otherwise the field is a key of the body (`""` for
/// the empty key), a path inside one (`key.inner`, `key[3]`), or one of `required` (a field that
/// is missing). The message is
/// never empty.
///
/// # Panics
///
/// When it does not: the fuzz target then reports the input as a crash.
pub fn assert_names_a_field(error: &FieldError, body: &Value, required: &[&str]) {
    assert!(
        !error.message.is_empty(),
        "an error without a message: {error:?}"
    );
    let Some(object) = body.as_object() else {
        assert_eq!(
            error.field, "",
            "a body that is not an object is wrong as a whole: {error:?}"
        );
        return;
    };
    assert!(
        !error.field.is_empty(),
        "an error about an object body names no field: {error:?} for {body}"
    );
    // An empty key is named `""` (an empty field would mean the whole body).
    let named = object
        .keys()
        .map(|key| if key.is_empty() { "\"\"" } else { key.as_str() })
        .chain(required.iter().copied())
        .any(|key| is_path_under(&error.field, key));
    assert!(
        named,
        "the error names no field of the body: {error:?} for {body}"
    );
}

/// Whether `field` is `key` or a path inside it (`key.x`, `key[0]`).
fn is_path_under(field: &str, key: &str) -> bool {
    !key.is_empty()
        && field
            .strip_prefix(key)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

/// Names the templates and the webhook body read from the objects an event carries, so that
/// structured inputs hit them far more often than random strings would.
const KEYS: &[&str] = &[
    "id",
    "name",
    "title",
    "url",
    "severity",
    "product_id",
    "lead",
    "status",
    "target_start",
    "target_end",
    "test_type",
    "scan_type",
    "environment",
    "note",
    "kind",
    "findings",
    "accepted_findings",
    "expiration_date",
    "is_expired",
    "sla_age",
    "sla_expiration_date",
    "jira_issue",
    "key",
    "risk_acceptance",
    "product",
    "product_type",
    "engagement",
    "test",
    "new",
    "reactivated",
    "mitigated",
    "untouched",
    "description",
];

/// Strings with a meaning for some channel: paths and URLs, Slack and Teams markup, HTML,
/// line breaks, characters that take more than one byte.
const TEXTS: &[&str] = &[
    "",
    " ",
    "Shop",
    "/finding/1",
    "/",
    "https://dojo.example.com",
    "https://dojo.example.com/",
    "http://a.example/x?y=1&z=<2>|3 4",
    "javascript:alert(1)",
    "<!channel>",
    "<https://evil.example|click>",
    "[x](https://evil.example)",
    "*bold* _it_ ~s~ `c`",
    "& < > \" '",
    "<script>alert(1)</script>",
    "a\nb\r\nc\td",
    "\u{2028}\u{2029}\u{0}\u{7f}",
    "ünïcödé ✓ 🦀",
    "Critical",
    "High",
    "Medium",
    "Low",
    "Info",
    "2026-11-28",
    "In Progress",
    "breached",
];

/// The longest repeated text, in bytes: above every limit a channel cuts at.
const MAX_REPEATED: usize = 30_000;

/// The largest event body the API and EventBridge take (256 KiB); larger ones never reach a
/// sender, so the `render` target skips them.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// A string: a known one, any one, or a short one repeated (long texts, up to the limits
/// every channel cuts at, from a small input).
#[derive(Debug, Arbitrary)]
pub enum Text {
    Known(u8),
    Any(String),
    Repeated(String, u16),
}

impl Text {
    /// The string.
    pub fn build(&self) -> String {
        match self {
            Text::Known(i) => TEXTS[usize::from(*i) % TEXTS.len()].to_owned(),
            Text::Any(s) => s.clone(),
            Text::Repeated(s, n) => {
                let most = MAX_REPEATED / s.len().max(1);
                s.repeat(usize::from(*n).min(most))
            }
        }
    }
}

/// An object key: one the templates read, or any string.
#[derive(Debug, Arbitrary)]
pub enum Key {
    Known(u8),
    Any(String),
}

impl Key {
    /// The key.
    pub fn build(&self) -> String {
        match self {
            Key::Known(i) => KEYS[usize::from(*i) % KEYS.len()].to_owned(),
            Key::Any(s) => s.clone(),
        }
    }
}

/// Any JSON value.
#[derive(Debug, Arbitrary)]
pub enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(Text),
    Array(Vec<Json>),
    Object(Vec<(Key, Json)>),
    /// An object as the platform posts it (`{id, name, title, url, ...}`).
    Reference(Box<Reference>),
}

impl Json {
    /// The value.
    pub fn build(&self) -> Value {
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Int(n) => json!(n),
            // Not-a-number and the infinities become null, as serde_json writes them.
            Json::Float(x) => json!(x),
            Json::Text(t) => Value::String(t.build()),
            Json::Array(items) => Value::Array(items.iter().map(Json::build).collect()),
            Json::Object(pairs) => Value::Object(object(pairs)),
            Json::Reference(r) => Value::Object(r.build()),
        }
    }
}

fn object(pairs: &[(Key, Json)]) -> Map<String, Value> {
    pairs.iter().map(|(k, v)| (k.build(), v.build())).collect()
}

/// A product type, product, engagement, test or finding as the platform posts it: a valid
/// `id` (events refuse others), maybe a `product_id`, and any other fields.
#[derive(Debug, Arbitrary)]
pub struct Reference {
    pub id: u32,
    pub product_id: Option<u32>,
    pub name: Option<Text>,
    pub url: Option<Text>,
    pub fields: Vec<(Key, Json)>,
}

impl Reference {
    /// The object.
    pub fn build(&self) -> Map<String, Value> {
        let mut map = Map::new();
        for (key, value) in &self.fields {
            let key = key.build();
            if key != "id" && key != "product_id" {
                map.insert(key, value.build());
            }
        }
        map.insert("id".into(), json!(self.id));
        if let Some(p) = self.product_id {
            map.insert("product_id".into(), json!(p));
        }
        if let Some(name) = &self.name {
            map.insert("name".into(), Value::String(name.build()));
        }
        if let Some(url) = &self.url {
            map.insert("url".into(), Value::String(url.build()));
        }
        map
    }
}

/// The event name: one of the catalogue (`scan_added`, ...) or any other.
#[derive(Debug, Arbitrary)]
pub enum EventName {
    Catalogue(u8),
    Any(String),
}

/// An event and the system settings it is rendered with, built from fuzzer bytes.
#[derive(Debug, Arbitrary)]
pub struct RenderInput {
    pub event_type: EventName,
    pub title: Text,
    pub description: Option<Text>,
    pub url: Option<Text>,
    pub product_type_id: Option<u32>,
    pub product_id: Option<u32>,
    pub engagement: Option<Reference>,
    pub test: Option<Reference>,
    pub finding: Option<Reference>,
    pub findings: Option<[Vec<Reference>; 4]>,
    pub requested_by: Option<String>,
    pub data: Vec<(Key, Json)>,
    pub team_name: Option<Text>,
    pub site_url: Option<Text>,
    pub disclaimer: Option<Text>,
}

impl RenderInput {
    /// The event as a `POST /v1/events` body (which may still be invalid).
    pub fn event_body(&self) -> Value {
        let event_type = match &self.event_type {
            EventName::Catalogue(i) => EVENT_TYPES[usize::from(*i) % EVENT_TYPES.len()]
                .name()
                .to_owned(),
            EventName::Any(s) => s.clone(),
        };
        let mut body = Map::new();
        body.insert("id".into(), json!("fuzz-1"));
        body.insert("type".into(), json!(event_type));
        body.insert("title".into(), json!(self.title.build()));
        let mut put = |key: &str, value: Option<Value>| {
            if let Some(value) = value {
                body.insert(key.into(), value);
            }
        };
        put(
            "description",
            self.description.as_ref().map(|t| json!(t.build())),
        );
        put("url", self.url.as_ref().map(|t| json!(t.build())));
        put("product_type_id", self.product_type_id.map(|n| json!(n)));
        put("product_id", self.product_id.map(|n| json!(n)));
        let reference = |r: &Option<Reference>| r.as_ref().map(|r| Value::Object(r.build()));
        put("engagement", reference(&self.engagement));
        put("test", reference(&self.test));
        put("finding", reference(&self.finding));
        put(
            "findings",
            self.findings.as_ref().map(|lists| {
                let kinds = ["new", "reactivated", "mitigated", "untouched"];
                Value::Object(
                    kinds
                        .iter()
                        .zip(lists)
                        .map(|(kind, list)| {
                            let items = list.iter().map(|r| Value::Object(r.build())).collect();
                            ((*kind).to_owned(), Value::Array(items))
                        })
                        .collect(),
                )
            }),
        );
        put("requested_by", self.requested_by.as_ref().map(|u| json!(u)));
        put("data", Some(Value::Object(object(&self.data))));
        Value::Object(body)
    }

    /// The system settings fields as separate patches (each applied only if valid).
    pub fn system_patches(&self) -> Vec<Value> {
        [
            ("team_name", &self.team_name),
            ("site_url", &self.site_url),
            ("disclaimer_notifications", &self.disclaimer),
        ]
        .into_iter()
        .filter_map(|(field, text)| text.as_ref().map(|t| json!({ field: t.build() })))
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_under_a_key_is_that_key_or_inside_it() {
        assert!(is_path_under("events", "events"));
        assert!(is_path_under("events.scan_added[0]", "events"));
        assert!(is_path_under("recipients[2]", "recipients"));
        assert!(!is_path_under("eventsx", "events"));
        assert!(!is_path_under("x", ""));
    }
}
