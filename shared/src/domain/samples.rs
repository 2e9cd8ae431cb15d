//! Sample events for the channel senders' snapshot tests: one realistic event of each type of
//! the catalogue, as the platform would post it, and the system settings they render with.
//!
//! Pure and small, compiled only with the `samples` feature, which the senders enable for
//! their tests alone (`[dev-dependencies]`), so the snapshots of every channel render exactly
//! the same events.

use serde_json::json;

use super::{Event, SystemSettings};

/// The system settings every sample is rendered with.
pub fn sample_system() -> SystemSettings {
    SystemSettings {
        team_name: "AppSec".into(),
        site_url: "https://dojo.example.com".into(),
        disclaimer_notifications: "This message may contain confidential findings.".into(),
        ..SystemSettings::default()
    }
}

/// The event posted with `body`, its id generated as `generated` when it has none.
///
/// # Panics
///
/// When `body` is not a valid event.
pub fn event(body: serde_json::Value) -> Event {
    Event::from_request(&body, || "generated".into()).unwrap_or_else(|e| panic!("{e}"))
}

fn finding(id: u64, title: &str, severity: &str) -> serde_json::Value {
    json!({"id": id, "title": title, "severity": severity, "url": format!("/finding/{id}")})
}

const SHOP: &str = r#"{"product_type": {"id": 3, "name": "Web", "url": "/product/type/3"}, "product": {"id": 7, "name": "Shop", "url": "/product/7"}}"#;

fn shop_data(extra: serde_json::Value) -> serde_json::Value {
    let mut data: serde_json::Value = serde_json::from_str(SHOP).unwrap_or_default();
    if let (Some(data), Some(extra)) = (data.as_object_mut(), extra.as_object()) {
        data.extend(extra.clone());
    }
    data
}

fn engagement() -> serde_json::Value {
    json!({"id": 12, "name": "Q3 pentest", "url": "/engagement/12", "product_id": 7,
           "lead": "alice", "status": "In Progress",
           "target_start": "2026-09-01", "target_end": "2026-09-30"})
}

/// A realistic event of each type, as the platform would post it.
/// A realistic event of each type, as the platform would post it: `event_type` names one of
/// the catalogue, `other`, or any other name (then a finding-added event with that type).
///
/// # Panics
///
/// Never for these bodies: each is a valid event.
pub fn sample_event(event_type: &str) -> Event {
    let id = format!("{event_type}-1");
    let test = json!({"id": 33, "title": "ZAP Scan", "test_type": "ZAP Scan", "url": "/test/33", "environment": "Production"});
    let body = match event_type {
        "product_type_added" => json!({
            "type": event_type, "title": "Product type Web added",
            "url": "/product/type/3", "product_type_id": 3,
            "data": {"product_type": {"id": 3, "name": "Web", "url": "/product/type/3"}}}),
        "product_added" => json!({
            "type": event_type, "title": "Product Shop added", "url": "/product/7",
            "description": "Shop was added to Web by alice.", "product_id": 7,
            "data": shop_data(json!({}))}),
        "engagement_added" => json!({
            "type": event_type, "title": "Engagement created for \"Shop\": Q3 pentest",
            "url": "/engagement/12", "engagement": engagement(), "data": shop_data(json!({}))}),
        "test_added" => json!({
            "type": event_type, "title": "Test created for Shop: Q3 pentest: ZAP Scan",
            "url": "/test/33", "engagement": engagement(), "test": test,
            "data": shop_data(json!({}))}),
        "scan_added" => {
            let new: Vec<_> = (1..=12)
                .map(|i| {
                    finding(
                        100 + i,
                        &format!("SQL injection in /api/v{i}/search"),
                        ["Critical", "High", "Medium"][i as usize % 3],
                    )
                })
                .collect();
            json!({
                "type": event_type, "title": "Created/Updated 16 findings for Shop: Q3 pentest: ZAP Scan",
                "url": "/test/33", "engagement": engagement(), "test": test,
                "findings": {"new": new, "reactivated": [finding(90, "Reflected XSS in <search>", "High")],
                             "mitigated": [finding(80, "Missing HSTS header", "Low"), finding(81, "Server banner disclosure", "Info")],
                             "untouched": [finding(70, "Outdated jQuery & friends", "Medium")]},
                "data": shop_data(json!({}))})
        }
        "scan_added_empty" => json!({
            "type": event_type, "title": "Created/Updated 0 findings for Shop: Q3 pentest: ZAP Scan",
            "url": "/test/33", "engagement": engagement(), "test": test,
            "findings": {"new": [], "reactivated": [], "mitigated": [], "untouched": []},
            "data": shop_data(json!({}))}),
        "jira_update" => json!({
            "type": event_type, "title": "JIRA problem: could not push finding 101",
            "description": "JIRA answered 400: Field 'priority' cannot be set.",
            "url": "/finding/101", "finding": finding(101, "SQL injection in /api/v1/search", "Critical"),
            "product_id": 7,
            "data": shop_data(json!({"jira_issue": {"key": "SEC-42", "url": "https://jira.example.com/browse/SEC-42"}}))}),
        "upcoming_engagement" => json!({
            "type": event_type, "title": "Upcoming engagement: Q3 pentest",
            "url": "/engagement/12", "engagement": engagement(), "recipients": ["alice"],
            "data": shop_data(json!({}))}),
        "stale_engagement" => json!({
            "type": event_type, "title": "Stale engagement: Q3 pentest",
            "description": "The engagement is still in progress 5 days after its target end.",
            "url": "/engagement/12", "engagement": engagement(), "data": shop_data(json!({}))}),
        "auto_close_engagement" => json!({
            "type": event_type, "title": "Engagement closed automatically: Q3 pentest",
            "url": "/engagement/12", "engagement": engagement(), "data": shop_data(json!({}))}),
        "close_engagement" => json!({
            "type": event_type, "title": "Engagement closed: Q3 pentest", "requested_by": "bob",
            "url": "/engagement/12", "engagement": engagement(), "data": shop_data(json!({}))}),
        "user_mentioned" => json!({
            "type": event_type, "title": "bob jotted a note", "url": "/finding/101",
            "recipients": ["alice"], "requested_by": "bob", "finding": finding(101, "SQL injection in /api/v1/search", "Critical"),
            "data": shop_data(json!({"note": "@alice can you confirm this one?\nI think <script> tags get through & the WAF misses it."}))}),
        "code_review" => json!({
            "type": event_type, "title": "Code review requested: SQL injection in /api/v1/search",
            "url": "/finding/101", "recipients": ["alice"], "requested_by": "bob",
            "finding": finding(101, "SQL injection in /api/v1/search", "Critical"),
            "data": shop_data(json!({"note": "Fix is in PR 314."}))}),
        "review_requested" => json!({
            "type": event_type, "title": "bob requested your review", "url": "/finding/101",
            "recipients": ["alice", "carol"], "requested_by": "bob",
            "findings": {"new": [finding(101, "SQL injection in /api/v1/search", "Critical"), finding(102, "Open redirect", "Medium")]},
            "data": shop_data(json!({"note": "Please review before Friday's release."}))}),
        "other" => json!({
            "type": event_type, "title": "Report \"Q3 summary\" is ready",
            "description": "The PDF report you asked for has been generated.", "url": "/reports/5",
            "data": {}}),
        "sla_breach" => json!({
            "type": event_type, "title": "Finding 101 - SLA breached by 2 days! Overdue notice",
            "url": "/finding/101", "product_id": 7,
            "finding": {"id": 101, "title": "SQL injection in /api/v1/search", "severity": "Critical",
                        "url": "/finding/101", "sla_expiration_date": "2026-09-10"},
            "data": shop_data(json!({"sla_age": -2}))}),
        "sla_breach_combined" => json!({
            "type": event_type, "title": "SLA alert (breached): Product Type 'Web', Product 'Shop'",
            "url": "/product/7/finding/open", "product_id": 7,
            "data": shop_data(json!({"kind": "breached", "findings": [
                finding(101, "SQL injection in /api/v1/search", "Critical"),
                finding(102, "Open redirect", "Medium")]}))}),
        "risk_acceptance_expiration" => json!({
            "type": event_type, "title": "Risk acceptance \"Legacy TLS\" expires in 10 days",
            "url": "/risk_acceptance/8", "product_id": 7,
            "data": shop_data(json!({"risk_acceptance": {"id": 8, "name": "Legacy TLS",
                "url": "/risk_acceptance/8", "expiration_date": "2026-10-01", "is_expired": false,
                "accepted_findings": [finding(80, "TLS 1.0 enabled", "Medium"), finding(83, "Weak cipher suites", "Low")]}}))}),
        other => json!({
            "type": other, "title": "Finding added: Hard-coded AWS key", "url": "/finding/104",
            "finding": finding(104, "Hard-coded AWS key", "High"), "product_id": 7,
            "data": shop_data(json!({}))}),
    };
    let mut body = body;
    body["id"] = json!(id);
    event(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::EVENT_TYPES;

    #[test]
    fn every_catalogue_type_and_other_names_have_a_sample_of_their_type() {
        for name in EVENT_TYPES
            .iter()
            .map(|e| e.name())
            .chain(["finding_added"])
        {
            let event = sample_event(name);
            assert_eq!(event.event_type, name);
        }
    }
}
