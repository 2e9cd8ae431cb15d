//! Webhooks in DefectDojo's own format (an endpoint's `"format": "defectdojo"`): the body
//! DefectDojo's templates (`notifications/webhooks/<event>.tpl`) render for the event, so a
//! receiver written for DefectDojo works unchanged.
//!
//! Every body has `description` (DefectDojo's default "Event <event> has occurred."),
//! `title`, `user` (the endpoint's owner, `null` for a system endpoint) and, when known,
//! `url_ui` and `url_api`. By template:
//! - `product_type_added`: `product_type`;
//! - `product_added`: `product_type`, `product`;
//! - `engagement_added`: those and `engagement`;
//! - `test_added`: those and `test`;
//! - `scan_added`, `scan_added_empty`: those, `finding_count` (new + reactivated + mitigated)
//!   and `findings` with DefectDojo 3.2's seven lists;
//! - `review_requested`: the test's chain, `finding`, `requested_by`, `reviewers`;
//! - every other event: the base fields only (`other.tpl`).
//!
//! Product and product-type names the event leaves out come from Herald's directory. Ids are
//! JSON integers where DefectDojo's are. No Herald-only field (`event`, `event_id`) appears,
//! and no disclaimer (DefectDojo's renderer never sees it).

use crate::domain::message::absolute_url;
use crate::domain::webhook_body::{
    DirectoryNames, FindingItem, FindingLists, Parts, Reference, TestReference, id_value, text,
};
use crate::domain::{Event, SystemSettings, User};
use serde::Serialize;
use serde_json::{Map, Value};

/// DefectDojo's `user` object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DojoUser {
    pub id: Value,
    pub email: Option<String>,
    pub username: String,
    pub first_name: String,
    pub last_name: String,
    pub url_ui: Option<String>,
    pub url_api: Option<String>,
}

impl DojoUser {
    fn of(user: &User) -> Self {
        Self {
            id: id_value(user.username.as_str()),
            email: user.profile.email.clone(),
            username: user.username.to_string(),
            first_name: user.profile.first_name.clone(),
            last_name: user.profile.last_name.clone(),
            url_ui: None,
            url_api: None,
        }
    }
}

/// DefectDojo's lists of a scan, 3.2's duplicates included.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DojoFindings {
    pub new: Vec<FindingItem>,
    pub reactivated: Vec<FindingItem>,
    pub mitigated: Vec<FindingItem>,
    pub untouched: Vec<FindingItem>,
    pub new_duplicate: Value,
    pub reactivated_duplicate: Value,
    pub untouched_duplicate: Value,
}

/// A body in DefectDojo's format, keys in DefectDojo's order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DefectDojoBody {
    pub description: Option<String>,
    pub title: String,
    pub user: Option<DojoUser>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url_ui: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url_api: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_type: Option<Reference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product: Option<Reference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engagement: Option<Reference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test: Option<TestReference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finding_count: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub findings: Option<DojoFindings>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finding: Option<FindingItem>,
    /// `review_requested` only: `{id, username, first_name, last_name}` or `null`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<Value>,
    /// `review_requested` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reviewers: Option<Value>,
}

/// How much of the event's chain a template renders.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Depth {
    None,
    ProductType,
    Product,
    Engagement,
    Test,
}

fn template(event_type: &str) -> (Depth, bool) {
    match event_type {
        "product_type_added" => (Depth::ProductType, false),
        "product_added" => (Depth::Product, false),
        "engagement_added" => (Depth::Engagement, false),
        "test_added" | "review_requested" => (Depth::Test, false),
        "scan_added" | "scan_added_empty" => (Depth::Test, true),
        _ => (Depth::None, false),
    }
}

/// The body DefectDojo would send `owner`'s endpoint (`None`: a system endpoint) for `event`;
/// `requester` is the user named by `requested_by`, when known.
pub fn defectdojo_body(
    event: &Event,
    system: &SystemSettings,
    owner: Option<&User>,
    requester: Option<&User>,
    names: &DirectoryNames,
) -> DefectDojoBody {
    let parts = Parts::of(event, system, names);
    let data = event.data.clone().unwrap_or_default();
    let (depth, scan) = template(&event.event_type);
    let review = event.event_type == "review_requested";
    let finding_count = parts.finding_count(event);
    let extra = data
        .get("findings_extra")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let duplicates = |kind: &str| extra.get(kind).cloned().unwrap_or(Value::Array(vec![]));
    let findings = parts.findings.map(|f: FindingLists| DojoFindings {
        new: f.new,
        reactivated: f.reactivated,
        mitigated: f.mitigated,
        untouched: f.untouched,
        new_duplicate: duplicates("new_duplicate"),
        reactivated_duplicate: duplicates("reactivated_duplicate"),
        untouched_duplicate: duplicates("untouched_duplicate"),
    });
    // DefectDojo passes `url_api` with the events whose templates are about an object.
    let url_api = text(&data, "url_api").or_else(|| {
        (depth > Depth::None && !review)
            .then_some(parts.url_api)
            .flatten()
    });
    DefectDojoBody {
        description: Some(
            event
                .description
                .clone()
                .unwrap_or_else(|| format!("Event {} has occurred.", event.event_type)),
        ),
        title: event.title.clone(),
        user: owner.map(DojoUser::of),
        url_ui: event
            .url
            .as_deref()
            .map(|u| absolute_url(&system.site_url, u)),
        url_api,
        product_type: parts.product_type.filter(|_| depth >= Depth::ProductType),
        product: parts.product.filter(|_| depth >= Depth::Product),
        engagement: parts.engagement.filter(|_| depth >= Depth::Engagement),
        test: parts.test.filter(|_| depth >= Depth::Test),
        finding_count: finding_count.filter(|_| scan).or(scan.then_some(0)),
        findings: findings.filter(|_| scan),
        finding: parts.finding.filter(|_| review),
        requested_by: review.then(|| requested_by(&data, requester)),
        reviewers: review.then(|| {
            data.get("reviewers")
                .cloned()
                .unwrap_or(Value::Array(vec![]))
        }),
    }
}

/// `requested_by` as DefectDojo sent it, else the requester Herald knows, else `null`.
fn requested_by(data: &Map<String, Value>, requester: Option<&User>) -> Value {
    if let Some(by) = data.get("requested_by").filter(|v| v.is_object()) {
        return by.clone();
    }
    match requester {
        Some(user) => serde_json::json!({
            "id": id_value(user.username.as_str()),
            "username": user.username.as_str(),
            "first_name": user.profile.first_name,
            "last_name": user.profile.last_name,
        }),
        None => Value::Null,
    }
}

/// DefectDojo's ping: `{"description": "Test webhook notification", "title": "", "user"}`.
pub fn defectdojo_ping_body(owner: Option<&User>) -> Value {
    serde_json::json!({
        "description": "Test webhook notification",
        "title": "",
        "user": owner.map(DojoUser::of),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::defectdojo::{Inbound, from_webhook};
    use crate::domain::{Product, ProductType, ResourceId};
    use serde_json::json;

    fn fixture(name: &str) -> Value {
        let path = format!(
            "{}/../events/defectdojo/webhooks/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn received(name: &str) -> Event {
        match from_webhook(Some(name), &fixture(name), || "e1".to_owned()) {
            Ok(Inbound::Event(e)) => *e,
            other => panic!("{name}: {other:?}"),
        }
    }

    fn system() -> SystemSettings {
        SystemSettings {
            site_url: "https://defectdojo.example.com".into(),
            ..SystemSettings::default()
        }
    }

    #[test]
    fn given_what_defectdojo_sent_then_herald_sends_the_same_body_on() {
        // A system endpoint's copy goes out as DefectDojo sent it: same keys, same values.
        for name in [
            "product_type_added",
            "product_added",
            "engagement_added",
            "test_added",
            "scan_added",
            "scan_added_empty",
            "sla_breach",
            "jira_update",
            "engagement_closed",
        ] {
            let sent = fixture(name);
            let body = defectdojo_body(
                &received(name),
                &system(),
                None,
                None,
                &DirectoryNames::default(),
            );
            let ours = serde_json::to_value(&body).unwrap_or_default();
            assert_eq!(ours, sent, "{name}");
        }
    }

    #[test]
    fn given_a_review_request_then_the_finding_reviewers_and_owner_are_defectdojos() {
        let sent = fixture("review_requested");
        let event = received("review_requested");
        let body = serde_json::to_value(defectdojo_body(
            &event,
            &system(),
            None,
            None,
            &DirectoryNames::default(),
        ))
        .unwrap_or_default();
        for key in [
            "description",
            "title",
            "url_ui",
            "product_type",
            "product",
            "engagement",
            "test",
            "finding",
            "requested_by",
            "reviewers",
        ] {
            assert_eq!(body[key], sent[key], "{key}");
        }
        assert!(body.get("url_api").is_none());
    }

    #[test]
    fn given_a_herald_event_then_names_come_from_the_directory_and_ids_are_integers() {
        let event = Event::from_request(
            &json!({"id": "a", "type": "product_added", "title": "Shop added", "product_id": "7"}),
            String::new,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let names = DirectoryNames {
            product: Some(Product {
                id: ResourceId::parse("id", "7").unwrap_or_else(|e| panic!("{e}")),
                name: "Shop".into(),
                product_type_id: ResourceId::parse("id", "1").unwrap_or_else(|e| panic!("{e}")),
                disable_sla_breach_notifications: false,
            }),
            product_type: Some(ProductType {
                id: ResourceId::parse("id", "1").unwrap_or_else(|e| panic!("{e}")),
                name: "Web Apps".into(),
            }),
        };
        let body = serde_json::to_value(defectdojo_body(&event, &system(), None, None, &names))
            .unwrap_or_default();
        assert_eq!(body["product"]["id"], 7);
        assert_eq!(body["product"]["name"], "Shop");
        assert_eq!(body["product_type"]["id"], 1);
        assert_eq!(body["product_type"]["name"], "Web Apps");
        assert_eq!(body["description"], "Event product_added has occurred.");
        assert!(body.get("event").is_none() && body.get("event_id").is_none());
        assert_eq!(body["user"], Value::Null);
    }

    #[test]
    fn the_ping_is_defectdojos() {
        assert_eq!(
            defectdojo_ping_body(None),
            json!({"description": "Test webhook notification", "title": "", "user": null})
        );
    }
}
