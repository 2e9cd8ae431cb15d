//! What every channel's template sees: one context built from the event and the system
//! settings, so Slack, Teams, email and webhooks say the same thing.

use super::catalogue::alert_source;
use super::event::Event;
use super::system::SystemSettings;
use serde_json::{Map, Value, json};

/// The finding lists a scan event may carry, in DefectDojo's order.
pub const FINDING_KINDS: [&str; 4] = ["new", "reactivated", "mitigated", "untouched"];

/// `path` made absolute with `site_url` (`/finding/1` → `https://dojo.example.com/finding/1`);
/// absolute URLs and paths without a site URL are returned as they are.
pub fn absolute_url(site_url: &str, path: &str) -> String {
    if path.starts_with('/') && !site_url.is_empty() {
        format!("{}{path}", site_url.trim_end_matches('/'))
    } else {
        path.to_owned()
    }
}

/// The template context of `event`:
/// `{event: {id, type, label, title, description, url, product_type, product, engagement, test,
/// finding, findings: {new: [...], ...}, finding_count, requested_by, note, data}, team_name,
/// disclaimer, site_url}`. Every `url` is absolute when `site_url` is set.
pub fn template_context(event: &Event, system: &SystemSettings) -> Value {
    let site = system.site_url.as_str();
    let with_url = |object: &Map<String, Value>| {
        let mut object = object.clone();
        if let Some(Value::String(url)) = object.get("url") {
            let absolute = absolute_url(site, url);
            object.insert("url".into(), Value::String(absolute));
        }
        Value::Object(object)
    };
    let mut findings = Map::new();
    let mut finding_count = 0usize;
    if let Some(lists) = &event.findings {
        for kind in FINDING_KINDS {
            let list: Vec<Value> = lists
                .get(kind)
                .and_then(Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .filter_map(Value::as_object)
                        .map(&with_url)
                        .collect()
                })
                .unwrap_or_default();
            finding_count += list.len();
            findings.insert(kind.to_owned(), Value::Array(list));
        }
    }
    let data = event.data.clone().unwrap_or_default();
    json!({
        "event": {
            "id": event.id.as_str(),
            "type": event.event_type,
            "label": alert_source(&event.event_type),
            "title": event.title,
            "description": event.description.clone().unwrap_or_default(),
            "url": event.url.as_deref().map(|u| absolute_url(site, u)),
            "product_type_id": event.product_type_id.as_ref().map(|p| p.as_str()),
            "product_id": event.product().map(|p| p.as_str().to_owned()),
            "product_type": data.get("product_type").cloned().unwrap_or(Value::Null),
            "product": data.get("product").cloned().unwrap_or(Value::Null),
            "engagement": event.engagement.as_ref().map(with_url),
            "test": event.test.as_ref().map(with_url),
            "finding": event.finding.as_ref().map(with_url),
            "findings": findings,
            "finding_count": finding_count,
            "requested_by": event.requested_by.as_ref().map(|u| u.as_str()),
            "note": data.get("note").cloned().unwrap_or(Value::Null),
            "data": data,
        },
        "team_name": system.team_name,
        "disclaimer": system.disclaimer_notifications,
        "site_url": site,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_a_scan_then_the_context_has_absolute_urls_counts_and_the_label() {
        let event = Event::from_request(
            &json!({"type": "scan_added", "title": "Scan", "url": "/test/9",
                "test": {"id": 9, "title": "ZAP", "url": "/test/9"},
                "findings": {"new": [{"id": 1, "title": "XSS", "severity": "High", "url": "/finding/1"}],
                             "mitigated": [{"id": 2, "title": "Old"}]},
                "data": {"product": {"id": 7, "name": "Shop"}, "note": "see ticket"}}),
            || "e1".into(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let system = SystemSettings {
            site_url: "https://dojo.example.com".into(),
            team_name: "AppSec".into(),
            ..SystemSettings::default()
        };
        let ctx = template_context(&event, &system);
        assert_eq!(ctx["event"]["url"], "https://dojo.example.com/test/9");
        assert_eq!(ctx["event"]["label"], "Scan Added");
        assert_eq!(ctx["event"]["finding_count"], 2);
        assert_eq!(
            ctx["event"]["findings"]["new"][0]["url"],
            "https://dojo.example.com/finding/1"
        );
        assert_eq!(ctx["event"]["findings"]["reactivated"], json!([]));
        assert_eq!(ctx["event"]["product"]["name"], "Shop");
        assert_eq!(ctx["event"]["note"], "see ticket");
        assert_eq!(ctx["team_name"], "AppSec");
    }

    #[test]
    fn given_no_site_url_then_paths_stay_relative() {
        assert_eq!(absolute_url("", "/x"), "/x");
        assert_eq!(
            absolute_url("https://a.example/", "/x"),
            "https://a.example/x"
        );
        assert_eq!(
            absolute_url("https://a.example", "https://b.example/y"),
            "https://b.example/y"
        );
    }
}
