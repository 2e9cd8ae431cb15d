//! The scheduled checks as one use case: "now" comes from the trigger (an EventBridge
//! schedule's `time`, `POST /v1/scheduler/run`'s `time`, `herald-local`'s clock), never from
//! the wall clock here, so a run can be repeated for any instant.
//!
//! | check | DefectDojo ran it | what it does |
//! |---|---|---|
//! | `engagements` | hourly | upcoming, stale and auto-closed engagements ([`engagement_reminders`]) |
//! | `risk_acceptances` | every 3 h | heads-up and expiry of risk acceptances |
//! | `sla` | daily | SLA notices per finding and per product and kind |
//! | `alert_cleanup` | every 8 h | keeps each user's newest `max_alerts_per_user` alerts |
//! | `webhook_recovery` | every minute | [`recover_webhooks`] |
//!
//! Each check reads only what is due, through the stores' due-date indexes (see
//! [`ScheduleStore`](crate::ports::ScheduleStore)): engagements starting in the next [`UPCOMING_DAYS`], in progress and
//! past their end within [`LOOKBACK_DAYS`], findings within the SLA windows, risk acceptances
//! expiring within the notice period or expired within [`LOOKBACK_DAYS`].
//!
//! **Each reminder is sent once**, however often and however concurrently the checks run:
//! 1. `remember_reminder(key)`, a conditional write, is `true` for one run only; the others
//!    skip the reminder. Records are kept [`REMINDER_RETENTION_DAYS`], longer than any check
//!    looks back.
//! 2. An auto-close closes the engagement (conditional on it still being in progress).
//! 3. The reminder's event goes through intake with an id derived from its key, so even a
//!    record lost in between could not make intake send it twice within its retention.
//!
//! A run that fails to send a reminder forgets its record, so the next run tries again. A
//! crash between (1) and (3) loses that one reminder: the trade for never sending one twice.
//!
//! **Alert clean-up** trims every user who may have alerts, listed without reading every
//! alert or scanning: the embedded store seeks from user to user in its alerts index;
//! DynamoDB lists the directory's users from its `GSI1` rosters (one Query of a user's
//! alert keys each). Alerts also expire after `ALERT_RETENTION_DAYS` (a TTL on DynamoDB).

use crate::domain::checks::REMINDER_RETENTION_DAYS;
use crate::domain::checks::{
    Reminder, SLA_POST_BREACH_DAYS, SLA_PRE_BREACH_DAYS, UPCOMING_DAYS, engagement_reminders,
    risk_acceptance_reminders, sla_reminders,
};
use crate::domain::{Event, FieldError, Username};
use crate::intake::{IntakeError, RECOVERY_GRACE_MS, accept_event, recover_unenqueued};
use crate::ports::{DeliveryQueue, HeraldStore, StoreError};
use crate::webhooks::{WebhookRecoveryError, recover_webhooks};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use time::format_description::well_known::Rfc3339;
use time::{Date, Duration, OffsetDateTime};

/// How far back the checks look for engagements past their end and expired risk
/// acceptances: a reminder not sent within a year of its date is not sent.
pub const LOOKBACK_DAYS: i64 = 365;

const DAY_MS: u64 = 86_400_000;

/// One of the scheduled checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Check {
    Engagements,
    RiskAcceptances,
    Sla,
    AlertCleanup,
    WebhookRecovery,
    /// Finishes events recorded but never queued (an intake stopped between the two).
    IntakeRecovery,
}

impl Check {
    /// Every check, in the order a run does them.
    pub const ALL: [Check; 6] = [
        Check::Engagements,
        Check::RiskAcceptances,
        Check::Sla,
        Check::AlertCleanup,
        Check::WebhookRecovery,
        Check::IntakeRecovery,
    ];

    /// The name in requests and reports (`engagements`, `sla`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Check::Engagements => "engagements",
            Check::RiskAcceptances => "risk_acceptances",
            Check::Sla => "sla",
            Check::AlertCleanup => "alert_cleanup",
            Check::WebhookRecovery => "webhook_recovery",
            Check::IntakeRecovery => "intake_recovery",
        }
    }

    /// The check named `name`.
    pub fn parse(name: &str) -> Option<Check> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// What a run did, in counts per check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CheckReport {
    /// The instant the checks ran as of (RFC 3339).
    pub time: String,
    /// Its UTC date, the "today" of the checks.
    pub date: String,
    /// The checks that ran.
    pub checks: Vec<String>,
    /// Reminders sent, per event type (`upcoming_engagement`, `sla_breach`, ...).
    pub sent: BTreeMap<String, u64>,
    /// Reminders due but sent before (by an earlier or a concurrent run).
    pub already_sent: u64,
    /// Reminders that could not be sent; the next run tries them again.
    pub failed: u64,
    /// Engagements closed by auto-close.
    pub engagements_closed: u64,
    /// Alerts removed by the clean-up.
    pub alerts_removed: u64,
    /// Webhook endpoints whose state changed.
    pub webhook_transitions: u64,
    /// Parked webhook messages queued again.
    pub webhook_requeued: u64,
    /// Parked webhook messages failed (endpoint deactivated for good).
    pub webhook_failed: u64,
    /// Events recorded but never queued, queued now.
    pub events_recovered: u64,
}

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// The store failed while reading what is due.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Webhook recovery failed; the next run picks up where it left off.
    #[error(transparent)]
    WebhookRecovery(#[from] WebhookRecoveryError),
    /// Finishing an event recorded but never queued failed; the next run tries again.
    #[error("intake recovery: {0}")]
    IntakeRecovery(IntakeError),
}

/// The UTC date of `now_ms` (ms since the Unix epoch).
pub fn utc_date(now_ms: u64) -> Date {
    instant(now_ms).date()
}

fn instant(now_ms: u64) -> OffsetDateTime {
    let nanos = i128::from(now_ms) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Parses an RFC 3339 instant into ms since the Unix epoch; `field` names it in the error.
pub fn parse_time(field: &str, value: &Value) -> Result<u64, FieldError> {
    let text = value.as_str().ok_or_else(|| {
        FieldError::new(
            field,
            "expected an RFC 3339 time such as 2026-11-27T07:30:00Z",
        )
    })?;
    let parsed = OffsetDateTime::parse(text, &Rfc3339).map_err(|_| {
        FieldError::new(
            field,
            "must be an RFC 3339 time such as 2026-11-27T07:30:00Z",
        )
    })?;
    u64::try_from(parsed.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| FieldError::new(field, "must not be before 1970"))
}

/// Parses a list of check names; `field` names it in the error. Empty means all.
pub fn parse_checks(field: &str, value: Option<&Value>) -> Result<Vec<Check>, FieldError> {
    let items = match value {
        None | Some(Value::Null) => return Ok(Check::ALL.to_vec()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(FieldError::new(field, "expected an array of check names")),
    };
    let mut checks = BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        let check = item.as_str().and_then(Check::parse).ok_or_else(|| {
            FieldError::new(
                format!("{field}[{i}]"),
                format!("must be one of: {}", Check::ALL.map(Check::name).join(", ")),
            )
        })?;
        checks.insert(check);
    }
    if checks.is_empty() {
        return Ok(Check::ALL.to_vec());
    }
    Ok(checks.into_iter().collect())
}

/// Runs every check as of `now_ms`.
pub async fn run_all<S, Q>(store: &S, queue: &Q, now_ms: u64) -> Result<CheckReport, SchedulerError>
where
    S: HeraldStore + ?Sized,
    Q: DeliveryQueue + ?Sized,
{
    run_checks(store, queue, now_ms, &Check::ALL).await
}

/// Runs `checks` as of `now_ms` (ms since the Unix epoch), in [`Check::ALL`]'s order.
pub async fn run_checks<S, Q>(
    store: &S,
    queue: &Q,
    now_ms: u64,
    checks: &[Check],
) -> Result<CheckReport, SchedulerError>
where
    S: HeraldStore + ?Sized,
    Q: DeliveryQueue + ?Sized,
{
    let today = utc_date(now_ms);
    let mut report = CheckReport {
        time: instant(now_ms)
            .format(&Rfc3339)
            .unwrap_or_else(|_| now_ms.to_string()),
        date: today.to_string(),
        ..CheckReport::default()
    };
    let wanted = |check: Check| checks.contains(&check);
    let settings = store.system_settings().await?;
    let back = |days: i64| today.checked_sub(Duration::days(days)).unwrap_or(Date::MIN);
    let ahead = |days: i64| today.checked_add(Duration::days(days)).unwrap_or(Date::MAX);

    let mut reminders: Vec<Reminder> = Vec::new();
    if wanted(Check::Engagements) {
        let (starting, ending) = tokio::try_join!(
            store.engagements_starting(today, ahead(UPCOMING_DAYS)),
            store.engagements_ending(back(LOOKBACK_DAYS), back(1)),
        )?;
        let engagements: Vec<_> = starting.into_iter().chain(ending).collect();
        reminders.extend(engagement_reminders(&engagements, &settings, today));
    }
    if wanted(Check::RiskAcceptances) {
        let before = i64::from(settings.risk_acceptance_notify_before_expiration);
        let expiring = store
            .risk_acceptances_expiring(back(LOOKBACK_DAYS), ahead(before))
            .await?;
        reminders.extend(risk_acceptance_reminders(&expiring, &settings, today));
    }
    if wanted(Check::Sla)
        && (settings.enable_notify_sla_active || settings.enable_notify_sla_active_verified)
    {
        let findings = store
            .findings_due(back(SLA_POST_BREACH_DAYS), ahead(SLA_PRE_BREACH_DAYS))
            .await?;
        // Product and product type names for the summaries: one read per product with due
        // findings.
        let mut products = BTreeMap::new();
        for product_id in findings
            .iter()
            .map(|f| f.product_id.clone())
            .collect::<BTreeSet<_>>()
        {
            if let Some(product) = store.product(&product_id).await? {
                let product_type = store.product_type(&product.product_type_id).await?;
                products.insert(product_id, (product, product_type));
            }
        }
        reminders.extend(sla_reminders(&findings, &products, &settings, today));
    }

    let expires_at = now_ms.saturating_add(REMINDER_RETENTION_DAYS * DAY_MS);
    for reminder in reminders {
        if !store.remember_reminder(&reminder.key, expires_at).await? {
            report.already_sent += 1;
            continue;
        }
        match send_reminder(store, queue, &reminder, now_ms).await {
            Ok(outcome) => {
                if outcome.closed {
                    report.engagements_closed += 1;
                }
                if outcome.sent {
                    let kind = reminder.event["type"].as_str().unwrap_or("other");
                    *report.sent.entry(kind.to_owned()).or_default() += 1;
                }
            }
            Err(error) => {
                tracing::error!(key = %reminder.key, %error, "a reminder could not be sent; the next run tries again");
                report.failed += 1;
                if let Err(error) = store.forget_reminder(&reminder.key).await {
                    tracing::error!(key = %reminder.key, %error, "a reminder that was not sent could not be forgotten");
                }
            }
        }
    }

    if wanted(Check::AlertCleanup) && settings.max_alerts_per_user >= 0 {
        let keep = usize::try_from(settings.max_alerts_per_user).unwrap_or(usize::MAX);
        let users: BTreeSet<Username> = store.users_with_alerts().await?.into_iter().collect();
        for user in users {
            report.alerts_removed += store.trim_alerts(&user, keep).await?;
        }
    }
    if wanted(Check::WebhookRecovery) {
        let recovery = recover_webhooks(store, queue, now_ms).await?;
        report.webhook_transitions = recovery.transitions as u64;
        report.webhook_requeued = recovery.requeued as u64;
        report.webhook_failed = recovery.failed as u64;
    }
    if wanted(Check::IntakeRecovery) {
        // Events younger than the grace are left to the intake that is finishing them.
        let before = now_ms.saturating_sub(RECOVERY_GRACE_MS);
        let recovered = recover_unenqueued(store, queue, before)
            .await
            .map_err(SchedulerError::IntakeRecovery)?;
        if recovered > 0 {
            tracing::warn!(
                recovered,
                "queued the deliveries of events an intake recorded but never queued"
            );
        }
        report.events_recovered = recovered as u64;
    }
    report.checks = Check::ALL
        .into_iter()
        .filter(|c| wanted(*c))
        .map(|c| c.name().to_owned())
        .collect();
    Ok(report)
}

struct Sent {
    sent: bool,
    closed: bool,
}

#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error("the reminder's event is invalid: {0}")]
    Invalid(FieldError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Intake(#[from] IntakeError),
}

async fn send_reminder<S, Q>(
    store: &S,
    queue: &Q,
    reminder: &Reminder,
    now_ms: u64,
) -> Result<Sent, SendError>
where
    S: HeraldStore + ?Sized,
    Q: DeliveryQueue + ?Sized,
{
    let mut closed = false;
    if let Some(id) = &reminder.close_engagement {
        closed = store.close_engagement(id).await?;
        if !closed {
            // No longer in progress (closed or edited since it was read): nothing to announce.
            return Ok(Sent {
                sent: false,
                closed,
            });
        }
    }
    let event = Event::from_request(&reminder.event, || reminder_id(&reminder.key))
        .map_err(SendError::Invalid)?;
    match accept_event(store, queue, event, now_ms).await {
        // A rerun after a crash whose reminder reads differently now (a title edited
        // meanwhile): its event was accepted already, once.
        Ok(_) | Err(IntakeError::IdempotencyKeyReused(_)) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(Sent { sent: true, closed })
}

fn reminder_id(key: &str) -> String {
    crate::domain::checks::reminder_event_id(key)
}

/// Runs the checks an EventBridge scheduled event asks for, as of its `time`: the whole
/// `detail` may name `{"checks": [...]}`; none means all. A payload without a readable
/// `time` is refused (the checks never fall back to the wall clock).
pub async fn handle_scheduled_event<S, Q>(
    store: &S,
    queue: &Q,
    payload: &Value,
) -> Result<CheckReport, ScheduledEventError>
where
    S: HeraldStore + ?Sized,
    Q: DeliveryQueue + ?Sized,
{
    let (now_ms, checks) = parse_scheduled_event(payload)?;
    Ok(run_checks(store, queue, now_ms, &checks).await?)
}

/// The instant and the checks of an EventBridge scheduled event (`detail-type`
/// "Scheduled Event"): `time`, and `detail.checks` if any.
pub fn parse_scheduled_event(payload: &Value) -> Result<(u64, Vec<Check>), FieldError> {
    let now_ms = parse_time("time", payload.get("time").unwrap_or(&Value::Null))?;
    let checks = parse_checks("detail.checks", payload.pointer("/detail/checks"))?;
    Ok((now_ms, checks))
}

/// Why a scheduled event did not run.
#[derive(Debug, thiserror::Error)]
pub enum ScheduledEventError {
    /// The payload is not a scheduled event Herald can run (no `time`, unknown check).
    #[error("invalid scheduled event: {0}")]
    Invalid(#[from] FieldError),
    /// The run failed.
    #[error(transparent)]
    Run(#[from] SchedulerError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::EmbeddedStore;
    use crate::domain::checks::{Engagement, EngagementStatus, Finding, Severity};
    use crate::domain::{
        DeliveryMessage, NotificationSettings, Product, ProductType, ResourceId, UserProfile,
    };
    use crate::ports::{AlertStore, DirectoryStore, QueueError, ScheduleStore, SettingsStore};
    use serde_json::json;
    use time::macros::date;

    struct NoQueue;

    #[async_trait::async_trait]
    impl DeliveryQueue for NoQueue {
        async fn enqueue(&self, _: &[DeliveryMessage]) -> Result<(), QueueError> {
            Ok(())
        }
    }

    fn at(time: &str) -> u64 {
        parse_time("time", &json!(time)).unwrap_or_else(|e| panic!("{e}"))
    }

    fn id(value: &str) -> ResourceId {
        ResourceId::parse("id", value).unwrap_or_else(|e| panic!("{e}"))
    }

    fn user(name: &str) -> Username {
        Username::parse("user", name).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A store with product 7 ("Shop", type "Web"), its member alice, and `settings`.
    async fn directory(settings: impl FnOnce(&mut crate::domain::SystemSettings)) -> EmbeddedStore {
        let store = EmbeddedStore::in_memory().unwrap_or_else(|e| panic!("{e}"));
        let mut system = crate::domain::SystemSettings::default();
        settings(&mut system);
        let setup = async {
            store.put_system_settings(&system).await?;
            store
                .put_user(
                    &user("alice"),
                    &UserProfile::default(),
                    &NotificationSettings::defaults(),
                )
                .await?;
            store
                .put_product_type(&ProductType {
                    id: id("web"),
                    name: "Web".into(),
                })
                .await?;
            store
                .put_product(&Product {
                    id: id("7"),
                    name: "Shop".into(),
                    product_type_id: id("web"),
                    disable_sla_breach_notifications: false,
                })
                .await?;
            store.put_product_member(&id("7"), &user("alice")).await?;
            Ok::<_, StoreError>(())
        };
        setup.await.unwrap_or_else(|e| panic!("{e}"));
        store
    }

    fn engagement(status: EngagementStatus, start: Date, end: Date) -> Engagement {
        Engagement {
            id: id("12"),
            product_id: id("7"),
            name: "Q4 pentest".into(),
            lead: Some(user("alice")),
            target_start: start,
            target_end: end,
            status,
        }
    }

    async fn run(store: &EmbeddedStore, time: &str) -> CheckReport {
        run_all(store, &NoQueue, at(time))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    async fn alert_count(store: &EmbeddedStore, name: &str) -> u64 {
        store
            .alert_counts(&user(name))
            .await
            .map(|c| c.total)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn given_an_upcoming_engagement_then_a_repeated_run_an_hour_later_sends_nothing_again() {
        // GIVEN an engagement starting in three days, across the month end
        let store = directory(|_| {}).await;
        let e = engagement(
            EngagementStatus::NotStarted,
            date!(2026 - 12 - 01),
            date!(2026 - 12 - 05),
        );
        store
            .put_engagement(&e)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // WHEN the checks run, and again an hour later
        let first = run(&store, "2026-11-28T07:30:00Z").await;
        let second = run(&store, "2026-11-28T08:30:00Z").await;
        // THEN the lead hears of it once
        assert_eq!(first.sent.get("upcoming_engagement"), Some(&1), "{first:?}");
        assert_eq!(first.date, "2026-11-28");
        assert!(second.sent.is_empty(), "{second:?}");
        assert_eq!(second.already_sent, 1);
        assert_eq!(alert_count(&store, "alice").await, 1);
    }

    #[tokio::test]
    async fn given_two_concurrent_runs_then_each_reminder_is_sent_once() {
        let store = directory(|s| s.enable_notify_sla_active = true).await;
        let e = engagement(
            EngagementStatus::Scheduled,
            date!(2026 - 11 - 29),
            date!(2026 - 12 - 05),
        );
        store
            .put_engagement(&e)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let finding = Finding {
            id: id("101"),
            product_id: id("7"),
            title: "SQL injection".into(),
            severity: Severity::High,
            active: true,
            verified: false,
            sla_expiration_date: Some(date!(2026 - 11 - 26)),
        };
        store
            .put_finding(&finding)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let (a, b) = tokio::join!(
            run(&store, "2026-11-27T07:30:00Z"),
            run(&store, "2026-11-27T07:30:01Z")
        );
        let sent = |r: &CheckReport| r.sent.values().sum::<u64>();
        // upcoming_engagement, sla_breach, sla_breach_combined: three, split between the runs.
        assert_eq!(sent(&a) + sent(&b), 3, "{a:?} {b:?}");
        assert_eq!(a.already_sent + b.already_sent, 3);
        // alice: the engagement notice, the finding's notice, the product summary.
        assert_eq!(alert_count(&store, "alice").await, 3);
    }

    #[tokio::test]
    async fn given_auto_close_then_the_engagement_is_closed_and_announced_once() {
        let store = directory(|s| {
            s.engagement_auto_close = true;
            s.engagement_auto_close_days = 3;
        })
        .await;
        let e = engagement(
            EngagementStatus::InProgress,
            date!(2026 - 11 - 01),
            date!(2026 - 11 - 24),
        );
        store
            .put_engagement(&e)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let report = run(&store, "2026-11-27T07:30:00Z").await;
        assert_eq!(
            report.sent.get("auto_close_engagement"),
            Some(&1),
            "{report:?}"
        );
        assert_eq!(report.engagements_closed, 1);
        let stored = store
            .engagement(&id("12"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(stored.map(|e| e.status), Some(EngagementStatus::Completed));
        // Closed: no longer in progress, so the next run finds nothing.
        let again = run(&store, "2026-11-27T08:30:00Z").await;
        assert_eq!((again.sent.len(), again.already_sent), (0, 0), "{again:?}");
    }

    #[tokio::test]
    async fn given_a_leap_day_sla_then_notices_follow_the_calendar() {
        let store = directory(|s| s.enable_notify_sla_active = true).await;
        let finding = Finding {
            id: id("101"),
            product_id: id("7"),
            title: "SQL injection".into(),
            severity: Severity::Critical,
            active: true,
            verified: true,
            sla_expiration_date: Some(date!(2028 - 02 - 29)),
        };
        store
            .put_finding(&finding)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // Four days before (Feb 25): nothing; Feb 27: two days left; Feb 29: due; Mar 1: breached.
        let none = run(&store, "2028-02-25T23:59:59Z").await;
        assert!(none.sent.is_empty(), "{none:?}");
        for (time, days) in [
            ("2028-02-27T00:00:00Z", "2 day(s) left"),
            ("2028-02-29T12:00:00Z", "breaching today"),
            ("2028-03-01T00:00:00+00:00", "breached by 1 days"),
        ] {
            let report = run(&store, time).await;
            assert_eq!(
                report.sent.get("sla_breach"),
                Some(&1),
                "{time}: {report:?}"
            );
            let page = store
                .alerts(&user("alice"), false, 2, None)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let titles: Vec<_> = page.items.iter().map(|a| a.title.as_str()).collect();
            assert!(
                titles.iter().any(|t| t.contains(days)),
                "{time}: {titles:?}"
            );
        }
        // An Info finding is on no due list at all.
        let info = Finding {
            id: id("102"),
            severity: Severity::Info,
            ..finding
        };
        store
            .put_finding(&info)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let due = store
            .findings_due(date!(2028 - 01 - 01), date!(2028 - 12 - 31))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            due.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(),
            ["101"]
        );
    }

    #[tokio::test]
    async fn given_max_alerts_then_the_cleanup_trims_the_users_reminded() {
        let store = directory(|s| s.max_alerts_per_user = 1).await;
        let e = engagement(
            EngagementStatus::NotStarted,
            date!(2026 - 11 - 28),
            date!(2026 - 12 - 05),
        );
        store
            .put_engagement(&e)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut other = engagement(
            EngagementStatus::NotStarted,
            date!(2026 - 11 - 29),
            date!(2026 - 12 - 05),
        );
        other.id = id("13");
        store
            .put_engagement(&other)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let report = run(&store, "2026-11-27T07:30:00Z").await;
        assert_eq!(report.sent.get("upcoming_engagement"), Some(&2));
        assert_eq!(report.alerts_removed, 1);
        assert_eq!(alert_count(&store, "alice").await, 1);
    }

    #[tokio::test]
    async fn given_alerts_from_ordinary_events_then_the_embedded_cleanup_trims_them_too() {
        // GIVEN alice with three alerts from scans, none from reminders
        let store = directory(|s| s.max_alerts_per_user = 2).await;
        for n in 0..3 {
            let body = json!({"id": format!("scan-{n}"), "type": "scan_added", "title": "Scan", "product_id": 7});
            let event = Event::from_request(&body, String::new).unwrap_or_else(|e| panic!("{e}"));
            accept_event(&store, &NoQueue, event, at("2026-11-27T07:00:00Z") + n)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        assert_eq!(
            store
                .users_with_alerts()
                .await
                .unwrap_or_else(|e| panic!("{e}")),
            vec![user("alice")]
        );
        // WHEN only the clean-up runs
        let report = run_checks(
            &store,
            &NoQueue,
            at("2026-11-27T08:00:00Z"),
            &[Check::AlertCleanup],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        // THEN her newest two are kept
        assert_eq!(report.alerts_removed, 1);
        assert_eq!(report.checks, ["alert_cleanup"]);
        assert_eq!(alert_count(&store, "alice").await, 2);
    }

    #[test]
    fn the_eventbridge_scheduled_event_gives_now_from_its_time() {
        let payload: Value = serde_json::from_slice(include_bytes!(
            "../../events/eventbridge/scheduled-event.json"
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        let (now_ms, checks) = parse_scheduled_event(&payload).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(now_ms, at("2026-11-27T07:30:00Z"));
        assert_eq!(checks, Check::ALL.to_vec());
        let one: Value = json!({"time": "2026-11-27T07:30:00Z", "detail": {"checks": ["sla"]}});
        assert_eq!(
            parse_scheduled_event(&one).map(|p| p.1).ok(),
            Some(vec![Check::Sla])
        );
        let bad = parse_scheduled_event(&json!({"detail": {}}));
        assert_eq!(bad.err().map(|e| e.field), Some("time".to_owned()));
        let unknown = parse_scheduled_event(
            &json!({"time": "2026-11-27T07:30:00Z", "detail": {"checks": ["nope"]}}),
        );
        assert_eq!(
            unknown.err().map(|e| e.field),
            Some("detail.checks[0]".to_owned())
        );
    }
}
