//! The webhook body: DefectDojo's webhook JSON, built with serde from the event, plus `event`
//! and `event_id`.
//!
//! `{event, event_id, title, description, user, url_ui, url_api, disclaimer}` always (`null`
//! when Herald has nothing to say), and as they apply `product_type`, `product`,
//! `engagement` (`{id, name, url_ui, url_api}`), `test` (`{id, title, url_ui, url_api}`),
//! `finding`, and with finding lists `finding_count` and
//! `findings{new, reactivated, mitigated, untouched}`, items
//! `{id, title, severity, url_ui, url_api}`. `user` is the person who triggered the event
//! (`requested_by`), `null` for scheduled or platform events. Every URL is absolute when the
//! system settings have a `site_url`; API URLs are DefectDojo's `/api/v2/...` paths.

use super::message::{FINDING_KINDS, absolute_url};
use super::{Event, Product, ProductType, ResourceId, SystemSettings, User};
use serde::Serialize;
use serde_json::{Map, Value};

/// The event name of the ping sent when an endpoint is added or edited.
pub const PING_EVENT: &str = "ping";

/// A webhook body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookBody {
    pub event: String,
    pub event_id: String,
    pub title: String,
    pub description: Option<String>,
    pub user: Option<UserObject>,
    pub url_ui: Option<String>,
    pub url_api: Option<String>,
    pub disclaimer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_type: Option<Reference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product: Option<Reference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engagement: Option<Reference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test: Option<TestReference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finding: Option<FindingItem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finding_count: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub findings: Option<FindingLists>,
}

/// The person who triggered the event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserObject {
    /// Herald knows users by username, which is also their id here.
    pub id: String,
    pub username: String,
    pub email: Option<String>,
    pub first_name: String,
    pub last_name: String,
    pub url_ui: Option<String>,
    pub url_api: Option<String>,
}

/// A product type, product or engagement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reference {
    pub id: Value,
    pub name: Option<String>,
    pub url_ui: Option<String>,
    pub url_api: Option<String>,
}

/// A test.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TestReference {
    pub id: Value,
    pub title: Option<String>,
    pub url_ui: Option<String>,
    pub url_api: Option<String>,
}

/// A finding in a list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FindingItem {
    pub id: Value,
    pub title: Option<String>,
    pub severity: Option<String>,
    pub url_ui: Option<String>,
    pub url_api: Option<String>,
}

/// The findings of a scan, by kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FindingLists {
    pub new: Vec<FindingItem>,
    pub reactivated: Vec<FindingItem>,
    pub mitigated: Vec<FindingItem>,
    pub untouched: Vec<FindingItem>,
}

/// How DefectDojo names each kind of object in its UI and API paths.
#[derive(Clone, Copy)]
enum Kind {
    ProductType,
    Product,
    Engagement,
    Test,
    Finding,
}

impl Kind {
    fn ui_path(self, id: &str) -> String {
        match self {
            Kind::ProductType => format!("/product/type/{id}"),
            Kind::Product => format!("/product/{id}"),
            Kind::Engagement => format!("/engagement/{id}"),
            Kind::Test => format!("/test/{id}"),
            Kind::Finding => format!("/finding/{id}"),
        }
    }

    fn api_path(self, id: &str) -> String {
        let collection = match self {
            Kind::ProductType => "product_types",
            Kind::Product => "products",
            Kind::Engagement => "engagements",
            Kind::Test => "tests",
            Kind::Finding => "findings",
        };
        format!("/api/v2/{collection}/{id}/")
    }
}

/// An id as text, for paths: strings and whole numbers only.
fn id_text(id: &Value) -> Option<String> {
    match id {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        _ => None,
    }
}

pub(crate) fn text(object: &Map<String, Value>, key: &str) -> Option<String> {
    match object.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

/// `(url_ui, url_api)` of an object: its own `url` or DefectDojo's UI path, and the API path.
fn urls(
    site: &str,
    kind: Kind,
    object: &Map<String, Value>,
    id: &Value,
) -> (Option<String>, Option<String>) {
    let id = id_text(id);
    let ui = text(object, "url")
        .or_else(|| text(object, "url_ui"))
        .or_else(|| id.as_deref().map(|id| kind.ui_path(id)));
    let api = text(object, "url_api").or_else(|| id.as_deref().map(|id| kind.api_path(id)));
    (
        ui.map(|u| absolute_url(site, &u)),
        api.map(|u| absolute_url(site, &u)),
    )
}

fn reference(site: &str, kind: Kind, object: &Map<String, Value>) -> Option<Reference> {
    let id = object.get("id").cloned().unwrap_or(Value::Null);
    if id.is_null() {
        return None;
    }
    let (url_ui, url_api) = urls(site, kind, object, &id);
    Some(Reference {
        name: text(object, "name"),
        id,
        url_ui,
        url_api,
    })
}

fn finding_item(site: &str, object: &Map<String, Value>) -> FindingItem {
    let id = object.get("id").cloned().unwrap_or(Value::Null);
    let (url_ui, url_api) = urls(site, Kind::Finding, object, &id);
    FindingItem {
        title: text(object, "title"),
        severity: text(object, "severity"),
        id,
        url_ui,
        url_api,
    }
}

/// A reference to the object the event names only by id (`product_id`, `product_type_id`).
fn by_id(site: &str, kind: Kind, id: &str) -> Reference {
    Reference {
        id: id_value(id),
        name: None,
        url_ui: Some(absolute_url(site, &kind.ui_path(id))),
        url_api: Some(absolute_url(site, &kind.api_path(id))),
    }
}

/// An id as JSON: a number when it is one (DefectDojo's ids are integers), else the text.
pub fn id_value(id: &str) -> Value {
    match id.parse::<u64>() {
        Ok(n) if n.to_string() == id => Value::from(n),
        _ => Value::String(id.to_owned()),
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.trim().is_empty()).then(|| s.to_owned())
}

/// What Herald's directory knows about the product an event concerns, for the names an
/// event leaves out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirectoryNames {
    pub product: Option<Product>,
    pub product_type: Option<ProductType>,
}

impl DirectoryNames {
    /// The product type whose name the body needs: the event's own, else its product's.
    pub fn product_type_id(event: &Event, product: Option<&Product>) -> Option<ResourceId> {
        event
            .product_type_id
            .clone()
            .or_else(|| product.map(|p| p.product_type_id.clone()))
    }
}

/// The objects an event is about, as both body formats show them.
pub(crate) struct Parts {
    pub product_type: Option<Reference>,
    pub product: Option<Reference>,
    pub engagement: Option<Reference>,
    pub test: Option<TestReference>,
    pub finding: Option<FindingItem>,
    pub findings: Option<FindingLists>,
    /// The API URL of the most specific object the event is about.
    pub url_api: Option<String>,
}

impl Parts {
    pub(crate) fn of(event: &Event, system: &SystemSettings, names: &DirectoryNames) -> Parts {
        let site = system.site_url.as_str();
        let data = event.data.clone().unwrap_or_default();
        let object = |key: &str| data.get(key).and_then(Value::as_object);
        let named = |mut r: Reference, known: Option<(&ResourceId, &str)>| {
            if r.name.is_none()
                && let Some((id, name)) = known
                && id_value(id.as_str()) == r.id
            {
                r.name = Some(name.to_owned());
            }
            r
        };
        let product = object("product")
            .and_then(|o| reference(site, Kind::Product, o))
            .or_else(|| {
                event
                    .product()
                    .map(|id| by_id(site, Kind::Product, id.as_str()))
            })
            .map(|r| named(r, names.product.as_ref().map(|p| (&p.id, p.name.as_str()))));
        let product_type = object("product_type")
            .and_then(|o| reference(site, Kind::ProductType, o))
            .or_else(|| {
                DirectoryNames::product_type_id(event, names.product.as_ref())
                    .filter(|_| event.product_type_id.is_some() || product.is_some())
                    .map(|id| by_id(site, Kind::ProductType, id.as_str()))
            })
            .map(|r| {
                named(
                    r,
                    names
                        .product_type
                        .as_ref()
                        .map(|t| (&t.id, t.name.as_str())),
                )
            });
        let engagement = event
            .engagement
            .as_ref()
            .and_then(|o| reference(site, Kind::Engagement, o));
        let test = event.test.as_ref().and_then(|o| {
            let id = o.get("id").cloned().unwrap_or(Value::Null);
            if id.is_null() {
                return None;
            }
            let (url_ui, url_api) = urls(site, Kind::Test, o, &id);
            Some(TestReference {
                title: text(o, "title"),
                id,
                url_ui,
                url_api,
            })
        });
        let finding = event.finding.as_ref().map(|o| finding_item(site, o));
        let findings = event.findings.as_ref().map(|lists| {
            let list = |kind: &str| -> Vec<FindingItem> {
                lists
                    .get(kind)
                    .and_then(Value::as_array)
                    .map(|items| {
                        items
                            .iter()
                            .filter_map(Value::as_object)
                            .map(|o| finding_item(site, o))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let [new, reactivated, mitigated, untouched] = FINDING_KINDS.map(list);
            FindingLists {
                new,
                reactivated,
                mitigated,
                untouched,
            }
        });
        let url_api = text(&data, "url_api")
            .or_else(|| test.as_ref().and_then(|t| t.url_api.clone()))
            .or_else(|| finding.as_ref().and_then(|f| f.url_api.clone()))
            .or_else(|| engagement.as_ref().and_then(|e| e.url_api.clone()))
            .or_else(|| product.as_ref().and_then(|p| p.url_api.clone()))
            .or_else(|| product_type.as_ref().and_then(|p| p.url_api.clone()));
        Parts {
            product_type,
            product,
            engagement,
            test,
            finding,
            findings,
            url_api,
        }
    }

    /// DefectDojo's `finding_count`: the findings created, reactivated or mitigated (the
    /// untouched are listed but not counted), or the count the event carries.
    pub(crate) fn finding_count(&self, event: &Event) -> Option<usize> {
        let carried = event
            .data
            .as_ref()
            .and_then(|d| d.get("finding_count"))
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok());
        self.findings
            .as_ref()
            .map(|f| carried.unwrap_or(f.new.len() + f.reactivated.len() + f.mitigated.len()))
    }
}

/// The body for `event`; `requester` is the user named by `requested_by`, when known, and
/// `names` what the directory knows of the event's product.
pub fn webhook_body(
    event: &Event,
    system: &SystemSettings,
    requester: Option<&User>,
    names: &DirectoryNames,
) -> WebhookBody {
    let site = system.site_url.as_str();
    let parts = Parts::of(event, system, names);
    let finding_count = parts.finding_count(event);
    WebhookBody {
        event: event.event_type.clone(),
        event_id: event.id.to_string(),
        title: event.title.clone(),
        description: event.description.clone(),
        user: requester.map(|user| UserObject {
            id: user.username.to_string(),
            username: user.username.to_string(),
            email: user.profile.email.clone(),
            first_name: user.profile.first_name.clone(),
            last_name: user.profile.last_name.clone(),
            url_ui: None,
            url_api: None,
        }),
        url_ui: event.url.as_deref().map(|u| absolute_url(site, u)),
        url_api: parts.url_api,
        disclaimer: non_empty(&system.disclaimer_notifications),
        product_type: parts.product_type,
        product: parts.product,
        engagement: parts.engagement,
        test: parts.test,
        finding: parts.finding,
        finding_count,
        findings: parts.findings,
    }
}

/// The ping sent when an endpoint is added or edited: `{"event": "ping", "event_id",
/// "title": "Herald ping", "description", "user": null, "url_ui", "url_api": null,
/// "disclaimer"}`.
pub fn ping_body(event_id: &str, system: &SystemSettings) -> WebhookBody {
    WebhookBody {
        event: PING_EVENT.to_owned(),
        event_id: event_id.to_owned(),
        title: "Herald ping".to_owned(),
        description: Some(
            "Herald checks that this webhook answers before saving it. Answer with any 2xx status."
                .to_owned(),
        ),
        user: None,
        url_ui: non_empty(&system.site_url),
        url_api: None,
        disclaimer: non_empty(&system.disclaimer_notifications),
        product_type: None,
        product: None,
        engagement: None,
        test: None,
        finding: None,
        finding_count: None,
        findings: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::samples::{sample_event, sample_system};
    use crate::domain::{EVENT_TYPES, UserProfile, Username};

    fn bob() -> User {
        User {
            username: Username::parse("username", "bob").unwrap_or_else(|e| panic!("{e}")),
            profile: UserProfile {
                email: Some("bob@example.com".into()),
                first_name: "Bob".into(),
                last_name: "Builder".into(),
                ..UserProfile::default()
            },
        }
    }

    #[test]
    fn given_each_event_type_then_the_body_matches_its_snapshot() {
        for name in EVENT_TYPES
            .iter()
            .map(|e| e.name())
            .chain(["finding_added"])
        {
            let event = sample_event(name);
            let requester = event.requested_by.as_ref().map(|_| bob());
            let body = webhook_body(
                &event,
                &sample_system(),
                requester.as_ref(),
                &DirectoryNames::default(),
            );
            insta::assert_json_snapshot!(name, body);
        }
    }

    #[test]
    fn given_a_scan_then_counts_lists_and_absolute_urls_are_defectdojos() {
        let body = webhook_body(
            &sample_event("scan_added"),
            &sample_system(),
            None,
            &DirectoryNames::default(),
        );
        let json = serde_json::to_value(&body).unwrap_or_default();
        assert_eq!(json["event"], "scan_added");
        assert_eq!(json["event_id"], "scan_added-1");
        // DefectDojo counts the new, reactivated and mitigated findings, not the untouched.
        assert_eq!(json["finding_count"], 15);
        assert_eq!(json["findings"]["new"].as_array().map(Vec::len), Some(12));
        assert_eq!(
            json["findings"]["reactivated"][0],
            serde_json::json!({"id": 90, "title": "Reflected XSS in <search>", "severity": "High",
                "url_ui": "https://dojo.example.com/finding/90",
                "url_api": "https://dojo.example.com/api/v2/findings/90/"})
        );
        assert_eq!(
            json["test"],
            serde_json::json!({"id": 33, "title": "ZAP Scan", "url_ui": "https://dojo.example.com/test/33",
                "url_api": "https://dojo.example.com/api/v2/tests/33/"})
        );
        assert_eq!(json["url_api"], "https://dojo.example.com/api/v2/tests/33/");
        assert_eq!(json["user"], Value::Null);
        assert_eq!(
            json["disclaimer"],
            "This message may contain confidential findings."
        );
    }

    #[test]
    fn given_no_site_url_then_urls_stay_paths_and_the_ping_has_no_link() {
        let system = SystemSettings::default();
        let body = webhook_body(
            &sample_event("product_added"),
            &system,
            None,
            &DirectoryNames::default(),
        );
        assert_eq!(body.url_ui.as_deref(), Some("/product/7"));
        assert_eq!(
            body.product.and_then(|p| p.url_api).as_deref(),
            Some("/api/v2/products/7/")
        );
        let ping = serde_json::to_value(ping_body("ping-1", &system)).unwrap_or_default();
        assert_eq!(ping["event"], "ping");
        assert_eq!(ping["title"], "Herald ping");
        assert_eq!(ping["url_ui"], Value::Null);
        assert!(ping.get("findings").is_none());
    }
}
