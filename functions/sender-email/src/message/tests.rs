//! Snapshots of every event type's email, and the escaping of hostile text.

use super::*;
use herald_shared::domain::EVENT_TYPES;
use herald_shared::domain::samples::{event, sample_event, sample_system};
use serde_json::json;

fn templates() -> Templates {
    Templates::new().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_catalogue_type_has_its_own_templates_and_other_names_use_the_fallback() {
    for event_type in EVENT_TYPES {
        assert_eq!(
            Templates::template_name(event_type.name()),
            event_type.name()
        );
    }
    assert_eq!(Templates::template_name("finding_added"), FALLBACK_TEMPLATE);
    assert_eq!(
        TEMPLATES.len(),
        2 * (EVENT_TYPES.len() + 2),
        "HTML and text for 18 types, the layout, the macros"
    );
}

#[test]
fn given_each_event_type_then_the_email_matches_its_snapshot() {
    let templates = templates();
    for name in EVENT_TYPES
        .iter()
        .map(|e| e.name())
        .chain(["finding_added"])
    {
        let message = templates
            .render(&sample_event(name), &sample_system())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let shown = format!(
            "Subject: {}\n\n----- text -----\n{}\n----- html -----\n{}",
            message.subject, message.text, message.html
        );
        insta::assert_snapshot!(name, shown);
    }
}

#[test]
fn given_a_scan_then_at_most_ten_findings_per_kind_are_listed_with_the_rest_counted() {
    let message = templates()
        .render(&sample_event("scan_added"), &sample_system())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        message.subject,
        "AppSec notification: Created/Updated 16 findings for Shop: Q3 pentest: ZAP Scan"
    );
    assert!(
        message.text.contains("New findings (12):"),
        "{}",
        message.text
    );
    assert!(message.text.contains("…and 2 more"));
    assert!(message.html.contains(
        r#"<a href="https://dojo.example.com/finding/101" style="color: #0969da;">SQL injection in /api/v1/search</a>"#
    ), "{}", message.html);
    assert!(message.html.contains("Reflected XSS in &lt;search&gt;"));
    assert!(message.text.contains("Reflected XSS in <search>"));
    let disclaimer = message.html.rfind("Disclaimer").unwrap_or_default();
    assert!(disclaimer > message.html.rfind("</ul>").unwrap_or_default());
    assert!(
        message
            .text
            .trim_end()
            .ends_with("This message may contain confidential findings.")
    );
    assert!(
        message
            .text
            .contains("View it in DefectDojo: https://dojo.example.com/test/33")
    );
}

#[test]
fn given_no_team_name_then_the_subject_starts_with_notification() {
    assert_eq!(subject("Scan added", ""), "Notification: Scan added");
    assert_eq!(
        subject("Scan\nadded", "AppSec"),
        "AppSec notification: Scan added"
    );
}

#[test]
fn given_hostile_text_in_every_field_then_the_html_is_escaped_and_links_are_web_only() {
    let nasty = "<script>alert(1)</script> \"quoted\" & {{ not_a_tag }} {% raw %}";
    let templates = templates();
    let system = SystemSettings {
        team_name: nasty.into(),
        disclaimer_notifications: format!("{nasty}\nsecond line"),
        site_url: "https://dojo.example.com".into(),
        ..SystemSettings::default()
    };
    for name in EVENT_TYPES
        .iter()
        .map(|e| e.name())
        .chain(["finding_added"])
    {
        let thing = json!({"id": 1, "name": nasty, "title": nasty, "severity": nasty, "url": "javascript:alert(1)",
                           "lead": nasty, "status": nasty, "target_start": nasty, "target_end": nasty,
                           "test_type": nasty, "environment": nasty, "sla_expiration_date": nasty});
        let body = json!({
            "type": name, "title": nasty, "description": format!("{nasty}\nline two"),
            "url": "https://dojo.example.com/a?b=1&c=\"2\"", "engagement": thing, "test": thing, "finding": thing,
            "findings": {"new": [thing, thing], "mitigated": [thing]}, "requested_by": "bob",
            "data": {"product": thing, "product_type": nasty, "note": nasty, "kind": nasty,
                     "findings": [thing], "jira_issue": thing, "sla_age": 3,
                     "risk_acceptance": {"id": 2, "name": nasty, "accepted_findings": [thing], "expiration_date": nasty}}});
        let message = templates
            .render(&event(body), &system)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            !message.html.contains("<script>"),
            "{name}: {}",
            message.html
        );
        assert!(
            message.html.contains("&lt;script&gt;"),
            "{name}: {}",
            message.html
        );
        assert!(
            !message.html.contains("javascript:"),
            "{name}: {}",
            message.html
        );
        assert!(
            message
                .html
                .contains(r#"href="https://dojo.example.com/a?b=1&amp;c=&quot;2&quot;""#),
            "{name}: {}",
            message.html
        );
        assert!(message.text.contains("<script>alert(1)</script>"), "{name}");
        assert!(!message.subject.contains('\n'));
    }
}
