//! The scheduled checks (DefectDojo's Celery beat jobs), as pure functions of the directory's
//! records, the system settings and the day they run for.
//!
//! Each check returns [`Reminder`]s: an event to post through intake and the key of what it
//! reminds of. The event's id is derived from the key, so posting the same reminder twice, or
//! from two runs at once, is one event (intake accepts an id once); a reminder whose situation
//! lasts longer than intake remembers ids (stale engagements) needs its key recorded for as
//! long. "Today" is the UTC date of the trigger's time, never the wall clock.
//!
//! | check | when | event, to whom | once per |
//! |---|---|---|---|
//! | upcoming engagement | not started, `target_start` today or in the next 3 days | `upcoming_engagement` to the lead | engagement and start date |
//! | stale engagement | in progress, `target_end` passed | `stale_engagement` to the lead | engagement and end date |
//! | auto-close (when enabled) | in progress, `engagement_auto_close_days` or more past `target_end` | the engagement is closed; `auto_close_engagement` to the lead | engagement and end date |
//! | SLA (when enabled) | active (and verified, if that switch is on) findings, not Info, of products with SLA notifications on: 1–3 days left (pre-breach), 0 (breaching), overdue up to 7 days (breached; with the exponential backoff switch only on overdue days 1, 2, 4) | `sla_breach` per finding, and one `sla_breach_combined` per product and kind, to the product's audience | finding and day; product, kind and day |
//! | risk acceptance | `risk_acceptance_notify_before_expiration` days or fewer before expiry; expiry day or later | `risk_acceptance_expiration` to the product's audience | acceptance, expiry date and notice |
//!
//! DefectDojo compared datetimes with dates here, so its upcoming and stale checks never
//! matched; these work on dates throughout.

use super::delivery::short_hash;
use super::directory::{Product, ProductType, ResourceId, Username};
use super::system::SystemSettings;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use time::Date;

/// How long a reminder's record is kept at least: past the longest a check looks back
/// (a year), so a reminder is never sent again because its record expired.
pub const REMINDER_RETENTION_DAYS: u64 = 400;

/// Days before `target_start` an upcoming engagement is announced.
pub const UPCOMING_DAYS: i64 = 3;
/// The SLA pre-breach window: a notice with 1 to 3 days left.
pub const SLA_PRE_BREACH_DAYS: i64 = 3;
/// The SLA post-breach window: notices for up to 7 days overdue.
pub const SLA_POST_BREACH_DAYS: i64 = 7;

/// An engagement's status, with DefectDojo's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngagementStatus {
    NotStarted,
    Scheduled,
    InProgress,
    OnHold,
    Blocked,
    WaitingForResource,
    Completed,
    Cancelled,
}

impl EngagementStatus {
    /// Every status, in the order of [`EngagementStatus::label`].
    pub const ALL: [EngagementStatus; 8] = [
        EngagementStatus::NotStarted,
        EngagementStatus::Scheduled,
        EngagementStatus::InProgress,
        EngagementStatus::OnHold,
        EngagementStatus::Blocked,
        EngagementStatus::WaitingForResource,
        EngagementStatus::Completed,
        EngagementStatus::Cancelled,
    ];

    /// DefectDojo's label ("In Progress").
    pub fn label(self) -> &'static str {
        match self {
            EngagementStatus::NotStarted => "Not Started",
            EngagementStatus::Scheduled => "Scheduled",
            EngagementStatus::InProgress => "In Progress",
            EngagementStatus::OnHold => "On Hold",
            EngagementStatus::Blocked => "Blocked",
            EngagementStatus::WaitingForResource => "Waiting for Resource",
            EngagementStatus::Completed => "Completed",
            EngagementStatus::Cancelled => "Cancelled",
        }
    }

    /// Parses a label, ignoring case, and `_` or `-` for spaces ("in_progress" works too).
    pub fn parse(value: &str) -> Option<EngagementStatus> {
        let wanted = normalise(value);
        Self::ALL
            .into_iter()
            .find(|status| normalise(status.label()) == wanted)
    }

    /// Not begun yet: the statuses an upcoming-engagement notice is for.
    pub fn is_pending(self) -> bool {
        matches!(
            self,
            EngagementStatus::NotStarted
                | EngagementStatus::Scheduled
                | EngagementStatus::WaitingForResource
        )
    }
}

fn normalise(value: &str) -> String {
    value
        .trim()
        .chars()
        .map(|c| match c {
            '_' | '-' => ' ',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// A finding's severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
    Info,
}

impl Severity {
    /// DefectDojo's label ("High").
    pub fn label(self) -> &'static str {
        match self {
            Severity::Critical => "Critical",
            Severity::High => "High",
            Severity::Medium => "Medium",
            Severity::Low => "Low",
            Severity::Info => "Info",
        }
    }

    /// Parses a label, ignoring case ("Informational" is Info).
    pub fn parse(value: &str) -> Option<Severity> {
        match value.trim().to_ascii_lowercase().as_str() {
            "critical" => Some(Severity::Critical),
            "high" => Some(Severity::High),
            "medium" => Some(Severity::Medium),
            "low" => Some(Severity::Low),
            "info" | "informational" => Some(Severity::Info),
            _ => None,
        }
    }
}

/// An engagement as the platform keeps it in Herald's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Engagement {
    pub id: ResourceId,
    pub product_id: ResourceId,
    pub name: String,
    pub lead: Option<Username>,
    pub target_start: Date,
    pub target_end: Date,
    pub status: EngagementStatus,
}

/// A finding with its SLA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub id: ResourceId,
    pub product_id: ResourceId,
    pub title: String,
    pub severity: Severity,
    pub active: bool,
    pub verified: bool,
    pub sla_expiration_date: Option<Date>,
}

/// A risk acceptance with its expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiskAcceptance {
    pub id: ResourceId,
    pub product_id: ResourceId,
    pub engagement_id: Option<ResourceId>,
    pub name: String,
    pub expiration_date: Option<Date>,
    pub accepted_findings: Vec<ResourceId>,
}

/// One notice to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Reminder {
    /// What it reminds of; the same situation always gives the same key.
    pub key: String,
    /// The event to post through intake (its `id` is derived from `key`).
    pub event: Value,
    /// An engagement to close first (auto-close).
    pub close_engagement: Option<ResourceId>,
}

impl Reminder {
    fn new(key: String, mut event: Map<String, Value>) -> Self {
        event.insert("id".into(), Value::String(reminder_event_id(&key)));
        Self {
            key,
            event: Value::Object(event),
            close_engagement: None,
        }
    }
}

/// The event id of the reminder `key`: `reminder-` and 32 hex digits.
pub fn reminder_event_id(key: &str) -> String {
    format!("reminder-{}", short_hash(&[key]))
}

fn days(from: Date, to: Date) -> i64 {
    (to - from).whole_days()
}

fn engagement_json(e: &Engagement) -> Value {
    json!({
        "id": e.id.as_str(),
        "name": e.name,
        "product_id": e.product_id.as_str(),
        "lead": e.lead.as_ref().map(Username::as_str),
        "status": e.status.label(),
        "target_start": e.target_start.to_string(),
        "target_end": e.target_end.to_string(),
    })
}

fn engagement_event(kind: &str, title: String, e: &Engagement, data: Value) -> Map<String, Value> {
    let mut event = Map::new();
    event.insert("type".into(), json!(kind));
    event.insert("title".into(), json!(title));
    event.insert("url".into(), json!(format!("/engagement/{}", e.id)));
    event.insert("product_id".into(), json!(e.product_id.as_str()));
    event.insert("engagement".into(), engagement_json(e));
    // The lead hears of it; an engagement without a lead reaches nobody but the system
    // destinations.
    match &e.lead {
        Some(lead) => event.insert("recipients".into(), json!([lead.as_str()])),
        None => event.insert("no_users".into(), json!(true)),
    };
    event.insert("data".into(), data);
    event
}

/// Upcoming, stale and auto-closed engagements, as of `today`.
pub fn engagement_reminders(
    engagements: &[Engagement],
    settings: &SystemSettings,
    today: Date,
) -> Vec<Reminder> {
    let mut reminders = Vec::new();
    for e in engagements {
        let until_start = days(today, e.target_start);
        if e.status.is_pending() && (0..=UPCOMING_DAYS).contains(&until_start) {
            let event = engagement_event(
                "upcoming_engagement",
                format!("Upcoming engagement: {}", e.name),
                e,
                json!({"days_to_start": until_start}),
            );
            reminders.push(Reminder::new(
                format!("upcoming_engagement:{}:{}", e.id, e.target_start),
                event,
            ));
        }
        if e.status != EngagementStatus::InProgress {
            continue;
        }
        let overdue = days(e.target_end, today);
        if overdue <= 0 {
            continue;
        }
        let auto_close_days = i64::from(settings.engagement_auto_close_days);
        if settings.engagement_auto_close && overdue >= auto_close_days {
            let event = engagement_event(
                "auto_close_engagement",
                format!("Engagement closed: {}", e.name),
                e,
                json!({"days_past_target_end": overdue}),
            );
            let mut reminder = Reminder::new(
                format!("auto_close_engagement:{}:{}", e.id, e.target_end),
                event,
            );
            reminder.close_engagement = Some(e.id.clone());
            reminders.push(reminder);
        } else {
            let event = engagement_event(
                "stale_engagement",
                format!("Stale engagement: {}", e.name),
                e,
                json!({"days_past_target_end": overdue}),
            );
            reminders.push(Reminder::new(
                format!("stale_engagement:{}:{}", e.id, e.target_end),
                event,
            ));
        }
    }
    reminders
}

/// Where a finding stands against its SLA on one day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SlaKind {
    /// 1 to 3 days left.
    PreBreach,
    /// Due today.
    Breaching,
    /// Overdue (1 to 7 days).
    Breached,
}

impl SlaKind {
    /// The name used in keys and event data (`prebreach`, `breaching`, `breached`).
    pub fn name(self) -> &'static str {
        match self {
            SlaKind::PreBreach => "prebreach",
            SlaKind::Breaching => "breaching",
            SlaKind::Breached => "breached",
        }
    }
}

/// The SLA notice due for a finding on `today`, with the days left (negative: overdue).
pub fn sla_notice(
    finding: &Finding,
    settings: &SystemSettings,
    today: Date,
) -> Option<(SlaKind, i64)> {
    let sla_on = settings.enable_notify_sla_active || settings.enable_notify_sla_active_verified;
    if !sla_on || !finding.active || finding.severity == Severity::Info {
        return None;
    }
    if settings.enable_notify_sla_active_verified && !finding.verified {
        return None;
    }
    let left = days(today, finding.sla_expiration_date?);
    let kind = match left {
        1..=SLA_PRE_BREACH_DAYS => SlaKind::PreBreach,
        0 => SlaKind::Breaching,
        l if l < 0 && -l <= SLA_POST_BREACH_DAYS => {
            let overdue = -l;
            // Backoff: overdue days 1, 2, 4 (powers of two) only.
            if settings.enable_notify_sla_exponential_backoff && overdue & (overdue - 1) != 0 {
                return None;
            }
            SlaKind::Breached
        }
        _ => return None,
    };
    Some((kind, left))
}

fn sla_title(finding: &Finding, kind: SlaKind, left: i64) -> String {
    match kind {
        SlaKind::PreBreach => format!(
            "Finding {} - SLA pre-breach warning - {} day(s) left",
            finding.id, left
        ),
        SlaKind::Breaching => format!("Finding {} - SLA is breaching today", finding.id),
        SlaKind::Breached => format!(
            "Finding {} - SLA breached by {} days! Overdue notice",
            finding.id, -left
        ),
    }
}

/// `sla_breach` per finding and `sla_breach_combined` per product and kind, as of `today`.
/// Findings of products not in `products`, or with SLA notifications disabled, are skipped.
pub fn sla_reminders(
    findings: &[Finding],
    products: &BTreeMap<ResourceId, (Product, Option<ProductType>)>,
    settings: &SystemSettings,
    today: Date,
) -> Vec<Reminder> {
    let mut reminders = Vec::new();
    let mut combined: BTreeMap<(ResourceId, SlaKind), Vec<Value>> = BTreeMap::new();
    for finding in findings {
        let Some((product, _)) = products.get(&finding.product_id) else {
            continue;
        };
        if product.disable_sla_breach_notifications {
            continue;
        }
        let Some((kind, left)) = sla_notice(finding, settings, today) else {
            continue;
        };
        let summary = json!({
            "id": finding.id.as_str(),
            "title": finding.title,
            "severity": finding.severity.label(),
            "sla_expiration_date": finding.sla_expiration_date.map(|d| d.to_string()),
            "url": format!("/finding/{}", finding.id),
        });
        let mut event = Map::new();
        event.insert("type".into(), json!("sla_breach"));
        event.insert("title".into(), json!(sla_title(finding, kind, left)));
        event.insert("url".into(), json!(format!("/finding/{}", finding.id)));
        event.insert("product_id".into(), json!(product.id.as_str()));
        event.insert(
            "finding".into(),
            json!({
                "id": finding.id.as_str(), "title": finding.title,
                "severity": finding.severity.label(), "product_id": product.id.as_str(),
            }),
        );
        event.insert(
            "data".into(),
            json!({"kind": kind.name(), "sla_age": left, "sla_expiration_date": finding.sla_expiration_date.map(|d| d.to_string())}),
        );
        reminders.push(Reminder::new(
            format!("sla_breach:{}:{}:{}", finding.id, kind.name(), today),
            event,
        ));
        combined
            .entry((product.id.clone(), kind))
            .or_default()
            .push(summary);
    }
    for ((product_id, kind), listed) in combined {
        let Some((product, product_type)) = products.get(&product_id) else {
            continue;
        };
        let type_name = product_type.as_ref().map_or("", |t| t.name.as_str());
        let mut event = Map::new();
        event.insert("type".into(), json!("sla_breach_combined"));
        event.insert(
            "title".into(),
            json!(format!(
                "SLA alert ({}): Product Type '{}', Product '{}'",
                kind.name(),
                type_name,
                product.name
            )),
        );
        event.insert(
            "url".into(),
            json!(format!("/product/{}/finding/open", product.id)),
        );
        event.insert("product_id".into(), json!(product.id.as_str()));
        event.insert(
            "data".into(),
            json!({"kind": kind.name(), "findings": listed}),
        );
        reminders.push(Reminder::new(
            format!(
                "sla_breach_combined:{}:{}:{}",
                product.id,
                kind.name(),
                today
            ),
            event,
        ));
    }
    reminders
}

/// Heads-up before a risk acceptance expires, and the notice when it has, as of `today`.
pub fn risk_acceptance_reminders(
    acceptances: &[RiskAcceptance],
    settings: &SystemSettings,
    today: Date,
) -> Vec<Reminder> {
    let before = i64::from(settings.risk_acceptance_notify_before_expiration);
    let mut reminders = Vec::new();
    for ra in acceptances {
        let Some(expiry) = ra.expiration_date else {
            continue;
        };
        let left = days(today, expiry);
        let count = ra.accepted_findings.len();
        let (notice, title) = if left <= 0 {
            (
                "expired",
                format!(
                    "Risk acceptance {} with {count} accepted findings has expired",
                    ra.name
                ),
            )
        } else if before > 0 && left <= before {
            (
                "heads_up",
                format!(
                    "Risk acceptance {} with {count} accepted findings will expire on {expiry}",
                    ra.name
                ),
            )
        } else {
            continue;
        };
        let mut event = Map::new();
        event.insert("type".into(), json!("risk_acceptance_expiration"));
        event.insert("title".into(), json!(title));
        event.insert("url".into(), json!(format!("/risk_acceptance/{}", ra.id)));
        event.insert("product_id".into(), json!(ra.product_id.as_str()));
        event.insert(
            "data".into(),
            json!({"risk_acceptance": {
                "id": ra.id.as_str(), "name": ra.name,
                "expiration_date": expiry.to_string(),
                "engagement_id": ra.engagement_id.as_ref().map(ResourceId::as_str),
                "accepted_findings": ra.accepted_findings.iter().map(ResourceId::as_str).collect::<Vec<_>>(),
                "days_left": left,
            }, "notice": notice}),
        );
        reminders.push(Reminder::new(
            format!("risk_acceptance_expiration:{}:{expiry}:{notice}", ra.id),
            event,
        ));
    }
    reminders
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;
    use time::macros::date;

    fn id(value: &str) -> ResourceId {
        ResourceId(value.to_owned())
    }

    fn engagement(status: EngagementStatus, start: Date, end: Date) -> Engagement {
        Engagement {
            id: id("12"),
            product_id: id("7"),
            name: "Q4 pentest".into(),
            lead: Some(Username("lead".into())),
            target_start: start,
            target_end: end,
            status,
        }
    }

    fn types(reminders: &[Reminder]) -> Vec<&str> {
        reminders
            .iter()
            .map(|r| r.event["type"].as_str().unwrap_or_default())
            .collect()
    }

    #[test]
    fn statuses_parse_from_labels_and_snake_case() {
        for status in EngagementStatus::ALL {
            assert_eq!(EngagementStatus::parse(status.label()), Some(status));
        }
        assert_eq!(
            EngagementStatus::parse("in_progress"),
            Some(EngagementStatus::InProgress)
        );
        assert_eq!(
            EngagementStatus::parse("waiting-for-resource"),
            Some(EngagementStatus::WaitingForResource)
        );
        assert_eq!(EngagementStatus::parse("done"), None);
        assert_eq!(Severity::parse("informational"), Some(Severity::Info));
        assert_eq!(Severity::parse("bogus"), None);
    }

    /// Table: the day the check runs → whether an upcoming notice is due, across a month end
    /// and a leap day.
    #[test]
    fn upcoming_engagement_is_due_from_three_days_before_the_start_to_the_start() {
        let settings = SystemSettings::default();
        let start = date!(2028 - 03 - 01); // 2028 is a leap year: Feb 29 exists.
        for (today, due) in [
            (date!(2028 - 02 - 25), false),
            // Four days before (Feb 29 is a day too): not yet.
            (date!(2028 - 02 - 26), false),
            (date!(2028 - 02 - 27), true),
            (date!(2028 - 02 - 29), true),
            (date!(2028 - 03 - 01), true),
            (date!(2028 - 03 - 02), false),
        ] {
            let e = engagement(EngagementStatus::NotStarted, start, date!(2028 - 03 - 10));
            let reminders = engagement_reminders(&[e], &settings, today);
            assert_eq!(
                types(&reminders) == ["upcoming_engagement"],
                due,
                "{today}: {reminders:?}"
            );
        }
        // Started already, or cancelled: no notice.
        for status in [EngagementStatus::InProgress, EngagementStatus::Cancelled] {
            let e = engagement(status, start, date!(2028 - 03 - 10));
            assert!(engagement_reminders(&[e], &settings, date!(2028 - 02 - 28)).is_empty());
        }
    }

    #[test]
    fn upcoming_notice_goes_to_the_lead_with_a_stable_id() {
        let e = engagement(
            EngagementStatus::Scheduled,
            date!(2026 - 12 - 01),
            date!(2026 - 12 - 05),
        );
        let settings = SystemSettings::default();
        let one = engagement_reminders(std::slice::from_ref(&e), &settings, date!(2026 - 11 - 28));
        let two = engagement_reminders(std::slice::from_ref(&e), &settings, date!(2026 - 11 - 29));
        assert_eq!(one.len(), 1);
        assert_eq!(
            one[0].key, two[0].key,
            "one notice per engagement and start"
        );
        assert_eq!(one[0].event["id"], two[0].event["id"]);
        assert_eq!(one[0].event["recipients"], json!(["lead"]));
        assert_eq!(one[0].event["title"], "Upcoming engagement: Q4 pentest");
        assert_eq!(one[0].event["engagement"]["target_start"], "2026-12-01");
        // Moved to another date: a new notice.
        let mut moved = e.clone();
        moved.target_start = date!(2026 - 12 - 02);
        let three = engagement_reminders(&[moved], &settings, date!(2026 - 11 - 29));
        assert_ne!(three[0].key, one[0].key);
    }

    #[test]
    fn stale_and_auto_close_follow_the_end_date_and_the_switch() {
        let end = date!(2026 - 11 - 30);
        let e = engagement(EngagementStatus::InProgress, date!(2026 - 11 - 01), end);
        let mut settings = SystemSettings::default();
        // On the end date: not stale yet; the day after: stale.
        assert!(engagement_reminders(std::slice::from_ref(&e), &settings, end).is_empty());
        let stale =
            engagement_reminders(std::slice::from_ref(&e), &settings, date!(2026 - 12 - 01));
        assert_eq!(types(&stale), ["stale_engagement"]);
        assert_eq!(stale[0].close_engagement, None);
        // Auto-close on, 3 days: stale on days 1 and 2, closed from day 3.
        settings.engagement_auto_close = true;
        settings.engagement_auto_close_days = 3;
        for (today, expected) in [
            (date!(2026 - 12 - 02), "stale_engagement"),
            (date!(2026 - 12 - 03), "auto_close_engagement"),
            (date!(2027 - 01 - 15), "auto_close_engagement"),
        ] {
            let got = engagement_reminders(std::slice::from_ref(&e), &settings, today);
            assert_eq!(types(&got), [expected], "{today}");
            if expected == "auto_close_engagement" {
                assert_eq!(got[0].close_engagement, Some(id("12")));
            }
        }
        // One stale notice per engagement and end date, whichever day the check runs.
        let a = engagement_reminders(
            std::slice::from_ref(&e),
            &SystemSettings::default(),
            date!(2026 - 12 - 01),
        );
        let b = engagement_reminders(&[e], &SystemSettings::default(), date!(2026 - 12 - 20));
        assert_eq!(a[0].key, b[0].key);
    }

    fn finding(severity: Severity, sla: Date) -> Finding {
        Finding {
            id: id("101"),
            product_id: id("7"),
            title: "SQL injection".into(),
            severity,
            active: true,
            verified: true,
            sla_expiration_date: Some(sla),
        }
    }

    fn sla_on() -> SystemSettings {
        SystemSettings {
            enable_notify_sla_active: true,
            ..SystemSettings::default()
        }
    }

    /// Table: days left → the notice, with and without exponential backoff.
    #[test]
    fn sla_notices_by_days_left() {
        let sla = date!(2026 - 12 - 31);
        let mut backoff = sla_on();
        backoff.enable_notify_sla_exponential_backoff = true;
        let cases: &[(i64, Option<SlaKind>, Option<SlaKind>)] = &[
            (4, None, None),
            (3, Some(SlaKind::PreBreach), Some(SlaKind::PreBreach)),
            (1, Some(SlaKind::PreBreach), Some(SlaKind::PreBreach)),
            (0, Some(SlaKind::Breaching), Some(SlaKind::Breaching)),
            (-1, Some(SlaKind::Breached), Some(SlaKind::Breached)),
            (-2, Some(SlaKind::Breached), Some(SlaKind::Breached)),
            (-3, Some(SlaKind::Breached), None),
            (-4, Some(SlaKind::Breached), Some(SlaKind::Breached)),
            (-5, Some(SlaKind::Breached), None),
            (-7, Some(SlaKind::Breached), None),
            (-8, None, None),
        ];
        for &(left, plain, with_backoff) in cases {
            let today = sla - Duration::days(left);
            let f = finding(Severity::High, sla);
            assert_eq!(
                sla_notice(&f, &sla_on(), today).map(|n| n.0),
                plain,
                "{left}"
            );
            assert_eq!(
                sla_notice(&f, &backoff, today).map(|n| n.0),
                with_backoff,
                "{left} with backoff"
            );
        }
    }

    #[test]
    fn sla_skips_info_inactive_unverified_and_switched_off() {
        let sla = date!(2026 - 12 - 01);
        let today = date!(2026 - 12 - 01);
        assert!(sla_notice(&finding(Severity::Info, sla), &sla_on(), today).is_none());
        let mut inactive = finding(Severity::High, sla);
        inactive.active = false;
        assert!(sla_notice(&inactive, &sla_on(), today).is_none());
        assert!(
            sla_notice(
                &finding(Severity::High, sla),
                &SystemSettings::default(),
                today
            )
            .is_none()
        );
        let verified_only = SystemSettings {
            enable_notify_sla_active_verified: true,
            ..SystemSettings::default()
        };
        let mut unverified = finding(Severity::High, sla);
        unverified.verified = false;
        assert!(sla_notice(&unverified, &verified_only, today).is_none());
        assert!(sla_notice(&finding(Severity::Low, sla), &verified_only, today).is_some());
    }

    #[test]
    fn sla_reminders_combine_per_product_and_kind_and_respect_the_product_switch() {
        let today = date!(2026 - 12 - 01);
        let product = Product {
            id: id("7"),
            name: "Shop".into(),
            product_type_id: id("web"),
            disable_sla_breach_notifications: false,
        };
        let product_type = ProductType {
            id: id("web"),
            name: "Web".into(),
        };
        let mut products = BTreeMap::from([(id("7"), (product.clone(), Some(product_type)))]);
        let mut second = finding(Severity::Critical, date!(2026 - 11 - 30));
        second.id = id("102");
        let findings = [finding(Severity::High, date!(2026 - 11 - 30)), second];
        let reminders = sla_reminders(&findings, &products, &sla_on(), today);
        assert_eq!(
            types(&reminders),
            ["sla_breach", "sla_breach", "sla_breach_combined"]
        );
        assert_eq!(
            reminders[0].event["title"],
            "Finding 101 - SLA breached by 1 days! Overdue notice"
        );
        assert_eq!(
            reminders[2].event["title"],
            "SLA alert (breached): Product Type 'Web', Product 'Shop'"
        );
        assert_eq!(
            reminders[2].event["data"]["findings"]
                .as_array()
                .map(Vec::len),
            Some(2)
        );
        // Run again the same day: the same keys. The next day: new ones.
        let again = sla_reminders(&findings, &products, &sla_on(), today);
        assert_eq!(
            again.iter().map(|r| &r.key).collect::<Vec<_>>(),
            reminders.iter().map(|r| &r.key).collect::<Vec<_>>()
        );
        let tomorrow = sla_reminders(&findings, &products, &sla_on(), today + Duration::days(1));
        assert!(
            tomorrow
                .iter()
                .all(|r| !reminders.iter().any(|s| s.key == r.key))
        );
        // SLA notifications off for the product: nothing.
        if let Some((p, _)) = products.get_mut(&id("7")) {
            p.disable_sla_breach_notifications = true;
        }
        assert!(sla_reminders(&findings, &products, &sla_on(), today).is_empty());
    }

    #[test]
    fn risk_acceptance_heads_up_then_expiry_once_each() {
        let ra = RiskAcceptance {
            id: id("5"),
            product_id: id("7"),
            engagement_id: Some(id("12")),
            name: "Legacy TLS".into(),
            expiration_date: Some(date!(2027 - 01 - 10)),
            accepted_findings: vec![id("101"), id("102")],
        };
        let settings = SystemSettings::default(); // 10 days before
        let all = std::slice::from_ref(&ra);
        assert!(risk_acceptance_reminders(all, &settings, date!(2026 - 12 - 30)).is_empty());
        let heads_up = risk_acceptance_reminders(all, &settings, date!(2026 - 12 - 31));
        assert_eq!(heads_up[0].event["data"]["notice"], "heads_up");
        assert_eq!(
            heads_up[0].event["title"],
            "Risk acceptance Legacy TLS with 2 accepted findings will expire on 2027-01-10"
        );
        let later = risk_acceptance_reminders(all, &settings, date!(2027 - 01 - 09));
        assert_eq!(later[0].key, heads_up[0].key, "one heads-up");
        let expired = risk_acceptance_reminders(all, &settings, date!(2027 - 01 - 10));
        assert_eq!(expired[0].event["data"]["notice"], "expired");
        assert_ne!(expired[0].key, heads_up[0].key);
        let much_later = risk_acceptance_reminders(all, &settings, date!(2027 - 03 - 01));
        assert_eq!(much_later[0].key, expired[0].key, "one expiry notice");
        // No heads-up when the setting is 0; no expiry date: nothing.
        let off = SystemSettings {
            risk_acceptance_notify_before_expiration: 0,
            ..SystemSettings::default()
        };
        assert!(risk_acceptance_reminders(all, &off, date!(2027 - 01 - 05)).is_empty());
        let mut open_ended = ra.clone();
        open_ended.expiration_date = None;
        assert!(
            risk_acceptance_reminders(&[open_ended], &settings, date!(2027 - 03 - 01)).is_empty()
        );
    }

    #[test]
    fn reminder_events_are_valid_intake_events() {
        let e = engagement(
            EngagementStatus::NotStarted,
            date!(2026 - 12 - 01),
            date!(2026 - 12 - 05),
        );
        let mut reminders =
            engagement_reminders(&[e], &SystemSettings::default(), date!(2026 - 11 - 30));
        let product = Product {
            id: id("7"),
            name: "Shop".into(),
            product_type_id: id("web"),
            disable_sla_breach_notifications: false,
        };
        let products = BTreeMap::from([(id("7"), (product, None))]);
        let findings = [finding(Severity::High, date!(2026 - 11 - 28))];
        reminders.extend(sla_reminders(
            &findings,
            &products,
            &sla_on(),
            date!(2026 - 11 - 30),
        ));
        let ra = RiskAcceptance {
            id: id("5"),
            product_id: id("7"),
            engagement_id: None,
            name: "Legacy TLS".into(),
            expiration_date: Some(date!(2026 - 11 - 30)),
            accepted_findings: vec![],
        };
        reminders.extend(risk_acceptance_reminders(
            &[ra],
            &SystemSettings::default(),
            date!(2026 - 11 - 30),
        ));
        assert_eq!(reminders.len(), 4);
        for r in reminders {
            let event = crate::domain::Event::from_request(&r.event, || "unused".to_owned());
            assert!(event.is_ok(), "{:?}", event.err());
        }
    }
}
