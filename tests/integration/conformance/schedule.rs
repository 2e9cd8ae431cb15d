//! The conformance suite of `ScheduleStore` (engagements, findings, risk acceptances, their
//! due lists and the reminders sent).

use super::{Harness, TestResult};
use herald_shared::domain::Event;
use herald_shared::domain::{
    DeliveryMessage, Engagement, EngagementStatus, Finding, NotificationSettings, Product,
    ProductType, ResourceId, RiskAcceptance, Severity, SystemSettings, UserProfile, Username,
};
use herald_shared::intake::accept_event;
use herald_shared::ports::{DeliveryQueue, QueueError, ScheduleStore, StoreError};
use herald_shared::scheduler::{Check, parse_time, run_all, run_checks};
use serde_json::json;
use time::Date;
use time::macros::date;

conformance! {
    given_nothing_stored_then_reads_are_empty_and_deletes_report_nothing,
    given_records_then_they_round_trip_survive_a_reopen_and_need_their_product,
    given_records_on_due_lists_then_ranges_return_only_the_due_ones_in_date_order,
    given_an_engagement_in_progress_then_only_the_first_close_succeeds,
    given_a_reminder_then_only_the_first_of_concurrent_remembers_wins,
    given_concurrent_first_times_then_every_caller_gets_the_first_time_recorded,
    given_due_records_then_concurrent_and_repeated_runs_send_each_reminder_once,
    given_alerts_of_an_admin_and_a_member_then_the_cleanup_trims_both_to_the_maximum,
}

fn id(value: &str) -> ResourceId {
    ResourceId::parse("id", value).unwrap_or_else(|e| panic!("{e}"))
}

async fn product(harness: &Harness) -> TestResult {
    harness
        .store()
        .put_product_type(&ProductType {
            id: id("web"),
            name: "Web".into(),
        })
        .await?;
    harness
        .store()
        .put_product(&Product {
            id: id("7"),
            name: "Shop".into(),
            product_type_id: id("web"),
            disable_sla_breach_notifications: false,
        })
        .await?;
    Ok(())
}

fn engagement(key: &str, status: EngagementStatus, start: Date, end: Date) -> Engagement {
    Engagement {
        id: id(key),
        product_id: id("7"),
        name: format!("Engagement {key}"),
        lead: Username::parse("lead", "alice").ok(),
        target_start: start,
        target_end: end,
        status,
    }
}

fn finding(key: &str, severity: Severity, active: bool, sla: Option<Date>) -> Finding {
    Finding {
        id: id(key),
        product_id: id("7"),
        title: format!("Finding {key}"),
        severity,
        active,
        verified: true,
        sla_expiration_date: sla,
    }
}

fn acceptance(key: &str, expiry: Option<Date>) -> RiskAcceptance {
    RiskAcceptance {
        id: id(key),
        product_id: id("7"),
        engagement_id: Some(id("12")),
        name: format!("Acceptance {key}"),
        expiration_date: expiry,
        accepted_findings: vec![id("101"), id("102")],
    }
}

fn ids<T>(records: &[T], id: impl Fn(&T) -> &ResourceId) -> Vec<String> {
    records.iter().map(|r| id(r).as_str().to_owned()).collect()
}

async fn given_nothing_stored_then_reads_are_empty_and_deletes_report_nothing(
    harness: &mut Harness,
) -> TestResult {
    let store = harness.store();
    assert_eq!(store.engagement(&id("1")).await?, None);
    assert_eq!(store.finding(&id("1")).await?, None);
    assert_eq!(store.risk_acceptance(&id("1")).await?, None);
    assert!(!store.delete_engagement(&id("1")).await?);
    assert!(!store.delete_finding(&id("1")).await?);
    assert!(!store.delete_risk_acceptance(&id("1")).await?);
    assert!(!store.close_engagement(&id("1")).await?);
    let (from, to) = (date!(2000 - 01 - 01), date!(2100 - 12 - 31));
    assert!(store.engagements_starting(from, to).await?.is_empty());
    assert!(store.engagements_ending(from, to).await?.is_empty());
    assert!(store.findings_due(from, to).await?.is_empty());
    assert!(store.risk_acceptances_expiring(from, to).await?.is_empty());
    store.forget_reminder("never:remembered").await?;
    assert!(store.users_with_alerts().await?.is_empty());
    Ok(())
}

async fn given_records_then_they_round_trip_survive_a_reopen_and_need_their_product(
    harness: &mut Harness,
) -> TestResult {
    // GIVEN no product 7 yet: every put is refused, naming the product.
    let e = engagement(
        "12",
        EngagementStatus::InProgress,
        date!(2026 - 11 - 01),
        date!(2026 - 11 - 30),
    );
    let f = finding("101", Severity::High, true, Some(date!(2026 - 12 - 31)));
    let ra = acceptance("5", Some(date!(2027 - 01 - 10)));
    match harness.store().put_engagement(&e).await {
        Err(StoreError::NotFound(what)) => assert_eq!(what, "product 7"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(matches!(
        harness.store().put_finding(&f).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        harness.store().put_risk_acceptance(&ra).await,
        Err(StoreError::NotFound(_))
    ));
    // WHEN the product exists: created, then replaced.
    product(harness).await?;
    let store = harness.store();
    assert!(store.put_engagement(&e).await?);
    assert!(!store.put_engagement(&e).await?);
    assert!(store.put_finding(&f).await?);
    assert!(store.put_risk_acceptance(&ra).await?);
    // THEN they read back as written, after a restart too.
    harness.reopen().await?;
    let store = harness.store();
    assert_eq!(store.engagement(&id("12")).await?, Some(e));
    assert_eq!(store.finding(&id("101")).await?, Some(f));
    assert_eq!(store.risk_acceptance(&id("5")).await?, Some(ra));
    assert!(store.delete_engagement(&id("12")).await?);
    assert!(store.delete_finding(&id("101")).await?);
    assert!(store.delete_risk_acceptance(&id("5")).await?);
    assert_eq!(store.engagement(&id("12")).await?, None);
    assert!(
        store
            .risk_acceptances_expiring(date!(2027 - 01 - 01), date!(2027 - 12 - 31))
            .await?
            .is_empty()
    );
    Ok(())
}

async fn given_records_on_due_lists_then_ranges_return_only_the_due_ones_in_date_order(
    harness: &mut Harness,
) -> TestResult {
    product(harness).await?;
    let store = harness.store();
    // Engagements: pending ones by start, the one in progress by end, finished ones nowhere.
    for e in [
        engagement(
            "e1",
            EngagementStatus::NotStarted,
            date!(2028 - 03 - 01),
            date!(2028 - 03 - 10),
        ),
        engagement(
            "e2",
            EngagementStatus::Scheduled,
            date!(2028 - 02 - 29),
            date!(2028 - 03 - 10),
        ),
        engagement(
            "e3",
            EngagementStatus::WaitingForResource,
            date!(2028 - 03 - 04),
            date!(2028 - 03 - 10),
        ),
        engagement(
            "e4",
            EngagementStatus::InProgress,
            date!(2028 - 02 - 01),
            date!(2028 - 02 - 28),
        ),
        engagement(
            "e5",
            EngagementStatus::Completed,
            date!(2028 - 02 - 29),
            date!(2028 - 02 - 29),
        ),
        engagement(
            "e6",
            EngagementStatus::Cancelled,
            date!(2028 - 03 - 01),
            date!(2028 - 03 - 02),
        ),
    ] {
        store.put_engagement(&e).await?;
    }
    let starting = store
        .engagements_starting(date!(2028 - 02 - 29), date!(2028 - 03 - 03))
        .await?;
    assert_eq!(ids(&starting, |e| &e.id), ["e2", "e1"]);
    let ending = store
        .engagements_ending(date!(2027 - 03 - 01), date!(2028 - 02 - 28))
        .await?;
    assert_eq!(ids(&ending, |e| &e.id), ["e4"]);
    assert!(
        store
            .engagements_ending(date!(2028 - 02 - 29), date!(2028 - 12 - 31))
            .await?
            .is_empty()
    );
    // Started: it leaves the start list for the end list.
    let started = engagement(
        "e1",
        EngagementStatus::InProgress,
        date!(2028 - 03 - 01),
        date!(2028 - 03 - 10),
    );
    store.put_engagement(&started).await?;
    let starting = store
        .engagements_starting(date!(2028 - 02 - 29), date!(2028 - 03 - 03))
        .await?;
    assert_eq!(ids(&starting, |e| &e.id), ["e2"]);
    let ending = store
        .engagements_ending(date!(2028 - 03 - 10), date!(2028 - 03 - 10))
        .await?;
    assert_eq!(ids(&ending, |e| &e.id), ["e1"]);

    // Findings: active, not Info, with an SLA date; inclusive bounds across a month end.
    for f in [
        finding("f1", Severity::High, true, Some(date!(2026 - 11 - 30))),
        finding("f2", Severity::Critical, true, Some(date!(2026 - 12 - 01))),
        finding("f3", Severity::Low, true, Some(date!(2026 - 12 - 04))),
        finding("f4", Severity::Info, true, Some(date!(2026 - 12 - 01))),
        finding("f5", Severity::High, false, Some(date!(2026 - 12 - 01))),
        finding("f6", Severity::High, true, None),
        finding("f0", Severity::Medium, true, Some(date!(2026 - 12 - 01))),
    ] {
        store.put_finding(&f).await?;
    }
    let before = harness.request_count();
    let due = store
        .findings_due(date!(2026 - 11 - 30), date!(2026 - 12 - 03))
        .await?;
    assert_eq!(ids(&due, |f| &f.id), ["f1", "f0", "f2"]);
    if let (Some(before), Some(after)) = (before, harness.request_count()) {
        assert_eq!(after - before, 1, "one Query of the due list, never a Scan");
    }
    // Closed: off the list.
    store
        .put_finding(&finding(
            "f2",
            Severity::Critical,
            false,
            Some(date!(2026 - 12 - 01)),
        ))
        .await?;
    let due = store
        .findings_due(date!(2026 - 12 - 01), date!(2026 - 12 - 01))
        .await?;
    assert_eq!(ids(&due, |f| &f.id), ["f0"]);

    // Risk acceptances with an expiry.
    for ra in [
        acceptance("r1", Some(date!(2026 - 12 - 31))),
        acceptance("r2", Some(date!(2027 - 01 - 01))),
        acceptance("r3", None),
        acceptance("r4", Some(date!(2025 - 12 - 31))),
    ] {
        store.put_risk_acceptance(&ra).await?;
    }
    let expiring = store
        .risk_acceptances_expiring(date!(2026 - 01 - 01), date!(2027 - 01 - 01))
        .await?;
    assert_eq!(ids(&expiring, |r| &r.id), ["r1", "r2"]);
    // An empty range.
    assert!(
        store
            .risk_acceptances_expiring(date!(2027 - 01 - 02), date!(2027 - 01 - 01))
            .await?
            .is_empty()
    );
    Ok(())
}

async fn given_an_engagement_in_progress_then_only_the_first_close_succeeds(
    harness: &mut Harness,
) -> TestResult {
    product(harness).await?;
    let store = harness.store();
    let e = engagement(
        "12",
        EngagementStatus::InProgress,
        date!(2026 - 11 - 01),
        date!(2026 - 11 - 20),
    );
    store.put_engagement(&e).await?;
    let twelve = id("12");
    let (a, b) = tokio::join!(
        store.close_engagement(&twelve),
        store.close_engagement(&twelve)
    );
    assert_eq!(
        [a?, b?].iter().filter(|closed| **closed).count(),
        1,
        "one close wins"
    );
    let closed = store.engagement(&id("12")).await?;
    assert_eq!(closed.map(|e| e.status), Some(EngagementStatus::Completed));
    assert!(
        store
            .engagements_ending(date!(2026 - 01 - 01), date!(2026 - 12 - 31))
            .await?
            .is_empty()
    );
    // Not in progress: nothing to close.
    let pending = engagement(
        "13",
        EngagementStatus::NotStarted,
        date!(2026 - 12 - 01),
        date!(2026 - 12 - 20),
    );
    store.put_engagement(&pending).await?;
    assert!(!store.close_engagement(&id("13")).await?);
    assert_eq!(store.engagement(&id("13")).await?, Some(pending));
    Ok(())
}

async fn given_a_reminder_then_only_the_first_of_concurrent_remembers_wins(
    harness: &mut Harness,
) -> TestResult {
    let store = harness.store();
    let key = "upcoming_engagement:12:2026-12-01";
    let expires = 1_830_000_000_000;
    let attempts = futures_like_join(store, key, expires).await;
    assert_eq!(attempts?.iter().filter(|won| **won).count(), 1);
    assert!(!store.remember_reminder(key, expires).await?);
    // Survives a restart.
    harness.reopen().await?;
    let store = harness.store();
    assert!(!store.remember_reminder(key, expires).await?);
    // Forgotten (a failed send): the next run may send it.
    store.forget_reminder(key).await?;
    assert!(store.remember_reminder(key, expires).await?);
    assert!(store.remember_reminder("another:key", expires).await?);
    Ok(())
}

async fn given_concurrent_first_times_then_every_caller_gets_the_first_time_recorded(
    harness: &mut Harness,
) -> TestResult {
    let store = harness.store();
    let key = "delivery-failure:slack:1800000000000";
    let expires = 1_800_007_200_000;
    let (a, b, c, d) = tokio::join!(
        store.first_time(key, 1_800_000_100_000, expires),
        store.first_time(key, 1_800_000_200_000, expires),
        store.first_time(key, 1_800_000_300_000, expires),
        store.first_time(key, 1_800_000_400_000, expires),
    );
    let answers = [a?, b?, c?, d?];
    assert!(
        answers.iter().all(|t| *t == answers[0]),
        "one time for everyone: {answers:?}"
    );
    assert!(
        [
            1_800_000_100_000,
            1_800_000_200_000,
            1_800_000_300_000,
            1_800_000_400_000
        ]
        .contains(&answers[0]),
        "{answers:?}"
    );
    // A later call, and one after a restart, get the same time; another key its own.
    assert_eq!(
        store.first_time(key, 1_800_001_000_000, expires).await?,
        answers[0]
    );
    harness.reopen().await?;
    let store = harness.store();
    assert_eq!(
        store.first_time(key, 1_800_002_000_000, expires).await?,
        answers[0]
    );
    assert_eq!(
        store
            .first_time(
                "delivery-failure:mail:1800000000000",
                1_800_000_500_000,
                expires
            )
            .await?,
        1_800_000_500_000
    );
    Ok(())
}

/// Four remembers of the same key at once.
async fn futures_like_join(
    store: &dyn ScheduleStore,
    key: &str,
    expires: u64,
) -> Result<Vec<bool>, StoreError> {
    let (a, b, c, d) = tokio::join!(
        store.remember_reminder(key, expires),
        store.remember_reminder(key, expires),
        store.remember_reminder(key, expires),
        store.remember_reminder(key, expires),
    );
    Ok(vec![a?, b?, c?, d?])
}

struct NoQueue;

#[async_trait::async_trait]
impl DeliveryQueue for NoQueue {
    async fn enqueue(&self, _: &[DeliveryMessage]) -> Result<(), QueueError> {
        Ok(())
    }
}

async fn given_due_records_then_concurrent_and_repeated_runs_send_each_reminder_once(
    harness: &mut Harness,
) -> TestResult {
    // GIVEN alice, lead of an engagement starting in three days and member of product 7, with
    // a finding breaching its SLA and a risk acceptance expiring
    product(harness).await?;
    let alice = Username::parse("user", "alice")?;
    harness
        .store()
        .put_user(
            &alice,
            &UserProfile::default(),
            &NotificationSettings::defaults(),
        )
        .await?;
    harness.store().put_product_member(&id("7"), &alice).await?;
    let settings = SystemSettings {
        enable_notify_sla_active: true,
        ..SystemSettings::default()
    };
    harness.store().put_system_settings(&settings).await?;
    let store = harness.store();
    store
        .put_engagement(&engagement(
            "12",
            EngagementStatus::NotStarted,
            date!(2026 - 11 - 30),
            date!(2026 - 12 - 12),
        ))
        .await?;
    store
        .put_finding(&finding(
            "101",
            Severity::High,
            true,
            Some(date!(2026 - 11 - 27)),
        ))
        .await?;
    store
        .put_risk_acceptance(&acceptance("5", Some(date!(2026 - 11 - 27))))
        .await?;
    // WHEN two runs start at once, and another follows an hour later
    let herald = harness.store();
    let now = parse_time("time", &json!("2026-11-27T07:30:00Z"))?;
    let (a, b) = tokio::join!(
        run_all(herald, &NoQueue, now),
        run_all(herald, &NoQueue, now + 1)
    );
    let (a, b) = (a?, b?);
    let later = run_all(herald, &NoQueue, now + 3_600_000).await?;
    // THEN the four reminders went out once: upcoming engagement, SLA notice and summary,
    // risk acceptance expiry
    let sent = |r: &herald_shared::scheduler::CheckReport| r.sent.values().sum::<u64>();
    assert_eq!(sent(&a) + sent(&b), 4, "{a:?} {b:?}");
    assert_eq!((sent(&later), later.already_sent), (0, 4), "{later:?}");
    assert_eq!(herald.alert_counts(&alice).await?.total, 4);
    Ok(())
}

async fn given_alerts_of_an_admin_and_a_member_then_the_cleanup_trims_both_to_the_maximum(
    harness: &mut Harness,
) -> TestResult {
    // GIVEN an administrator, a member of product 7 and a user with no alerts; three scans of
    // product 7 give the first two three alerts each
    product(harness).await?;
    let directory = harness.store();
    let profile = |is_admin| UserProfile {
        is_admin,
        ..UserProfile::default()
    };
    let (root, bob, carol) = (
        Username::parse("user", "root")?,
        Username::parse("user", "bob")?,
        Username::parse("user", "carol")?,
    );
    for (user, is_admin) in [(&root, true), (&bob, false), (&carol, false)] {
        directory
            .put_user(user, &profile(is_admin), &NotificationSettings::defaults())
            .await?;
    }
    directory.put_product_member(&id("7"), &bob).await?;
    let herald = harness.store();
    herald
        .put_system_settings(&SystemSettings {
            max_alerts_per_user: 1,
            ..SystemSettings::default()
        })
        .await?;
    let now = parse_time("time", &json!("2026-11-27T07:00:00Z"))?;
    for n in 0..3_u64 {
        let body = json!({"id": format!("scan-{n}"), "type": "scan_added", "title": "Scan", "product_id": 7});
        let event = Event::from_request(&body, String::new)?;
        accept_event(herald, &NoQueue, event, now + n).await?;
    }
    assert_eq!(herald.alert_counts(&bob).await?.total, 3);
    // WHEN the clean-up runs
    let listed = harness.store().users_with_alerts().await?;
    assert!(
        listed.contains(&root) && listed.contains(&bob),
        "{listed:?}"
    );
    let report = run_checks(herald, &NoQueue, now + 3_600_000, &[Check::AlertCleanup]).await?;
    // THEN each keeps their newest alert, and carol is untouched
    assert_eq!(report.alerts_removed, 4, "{report:?}");
    for user in [&root, &bob] {
        let counts = herald.alert_counts(user).await?;
        assert_eq!(counts.total, 1, "{user}");
    }
    assert_eq!(herald.alert_counts(&carol).await?.total, 0);
    Ok(())
}
