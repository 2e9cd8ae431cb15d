//! The conformance suite of `AlertStore`: paging, counts, read state, deletes and trims.

use super::{Harness, TestResult};
use herald_shared::domain::{Alert, Delivery, Event, Username};
use herald_shared::ports::{AlertCounts, EventRecord, HeraldStore, RecordOutcome, StoreError};
use serde_json::json;

conformance! {
    given_25_alerts_then_pages_of_10_come_newest_first_with_cursors,
    given_a_bad_cursor_then_alerts_are_invalid,
    given_alerts_then_marking_read_changes_counts_and_unread_pages,
    given_alerts_then_delete_one_all_and_trim_keep_the_newest,
    given_events_for_100_members_then_each_member_pages_marks_and_deletes_their_alerts,
    given_alerts_added_outside_intake_then_each_is_added_once_and_keeps_its_read_state,
}

pub(super) fn username(name: &str) -> Username {
    Username::parse("username", name).unwrap_or_else(|e| panic!("{e}"))
}

/// An event using every field, so the stored form's round trip is checked in full.
pub(super) fn event(id: &str) -> Event {
    let body = json!({
        "id": id, "type": "scan_added", "title": format!("Scan {id}"), "description": "Nightly",
        "url": "/engagement/3", "product_type_id": 1, "product_id": "7",
        "engagement": {"id": 3, "name": "Q3"}, "test": {"id": 4, "title": "ZAP"},
        "finding": {"id": 5, "severity": "High"}, "findings": {"new": [{"id": 6}]},
        "recipients": ["alice"], "requested_by": "bob", "data": {"k": [1, 2]}
    });
    Event::from_request(&body, || unreachable!("the body has an id"))
        .unwrap_or_else(|e| panic!("{e}"))
}

pub(super) fn record(
    event: Event,
    accepted_at: u64,
    alerts: &[Alert],
    deliveries: &[Delivery],
) -> EventRecord {
    EventRecord {
        event,
        accepted_at,
        delivery_count: u32::try_from(deliveries.len()).unwrap_or(u32::MAX),
        alert_count: u32::try_from(alerts.len()).unwrap_or(u32::MAX),
        enqueued: false,
        complete: true,
    }
}

/// `count` alerts for `user`, created at `start`, `start + 1`, ... (oldest first).
fn alerts_for(user: &Username, key: &str, start: u64, count: u64) -> Vec<Alert> {
    (0..count)
        .map(|i| {
            Alert::system(
                &format!("{key}-{i}"),
                user,
                &format!("Alert {i}"),
                "d",
                "Herald",
                start + i,
            )
        })
        .collect()
}

/// Records a carrier event whose only purpose is to hold `alerts`.
async fn record_alerts(store: &dyn HeraldStore, id: &str, alerts: &[Alert]) -> TestResult {
    let outcome = store
        .record_event(&record(event(id), 1_000, alerts, &[]), alerts, &[])
        .await?;
    assert_eq!(outcome, RecordOutcome::Recorded);
    Ok(())
}

/// The ids of alice's alerts created in `range`, newest first.
fn alice_ids_created(alerts: &[Alert], range: std::ops::RangeInclusive<u64>) -> Vec<String> {
    alerts
        .iter()
        .rev()
        .filter(|a| a.username.as_str() == "alice" && range.contains(&a.created_at))
        .map(|a| a.id.clone())
        .collect()
}

fn ids(alerts: &[Alert]) -> Vec<String> {
    alerts.iter().map(|a| a.id.clone()).collect()
}

async fn given_25_alerts_then_pages_of_10_come_newest_first_with_cursors(
    h: &mut Harness,
) -> TestResult {
    let store = h.store();
    let (alice, bob) = (username("alice"), username("bob"));
    let mut alerts = alerts_for(&alice, "a", 1_000, 25);
    alerts.extend(alerts_for(&bob, "b", 1_000, 3));
    record_alerts(store, "e-alerts", &alerts).await?;
    let mut newest_first: Vec<Alert> = alerts[..25].to_vec();
    newest_first.reverse();

    let first = store.alerts(&alice, false, 10, None).await?;
    assert_eq!(first.items, newest_first[..10]);
    assert_eq!(
        first.next_cursor.as_deref(),
        Some(newest_first[9].id.as_str())
    );
    let second = store
        .alerts(&alice, false, 10, first.next_cursor.as_deref())
        .await?;
    assert_eq!(second.items, newest_first[10..20]);
    assert_eq!(
        second.next_cursor.as_deref(),
        Some(newest_first[19].id.as_str())
    );
    let third = store
        .alerts(&alice, false, 10, second.next_cursor.as_deref())
        .await?;
    assert_eq!(third.items, newest_first[20..]);
    assert_eq!(third.next_cursor, None, "nothing follows the last page");

    // A page that ends exactly at the end has no cursor either.
    let all = store.alerts(&alice, false, 25, None).await?;
    assert_eq!(
        (ids(&all.items), all.next_cursor),
        (ids(&newest_first), None)
    );
    let more_than_all = store.alerts(&alice, false, 100, None).await?;
    assert_eq!(more_than_all.items.len(), 25);
    // Any well-formed cursor just positions the page: after it come the older alerts.
    let made_up = format!("{:013}-{}", 1_010, "f".repeat(32));
    let older = store.alerts(&alice, false, 5, Some(&made_up)).await?;
    let expected: Vec<String> = alice_ids_created(&alerts, 1_006..=1_010);
    assert_eq!(ids(&older.items), expected);
    assert!(older.next_cursor.is_some());

    assert_eq!(store.alerts(&bob, false, 10, None).await?.items.len(), 3);
    let nobody = store.alerts(&username("nobody"), false, 10, None).await?;
    assert!(nobody.items.is_empty() && nobody.next_cursor.is_none());
    Ok(())
}

async fn given_a_bad_cursor_then_alerts_are_invalid(h: &mut Harness) -> TestResult {
    let store = h.store();
    let alice = username("alice");
    record_alerts(store, "e-cursor", &alerts_for(&alice, "a", 1_000, 3)).await?;
    for cursor in [
        "",
        "abc",
        "0000000001000",
        "0000000001000-ZZZZ56789abcdef0123456789abcdef",
        "ALERT#0000000001000-0123456789abcdef0123456789abcdef",
        "0000000001000-0123456789abcdef0123456789abcdef' OR '1'='1",
    ] {
        let result = store.alerts(&alice, false, 10, Some(cursor)).await;
        assert!(
            matches!(result, Err(StoreError::Invalid(_))),
            "{cursor:?}: {result:?}"
        );
        let result = store.alerts(&alice, true, 10, Some(cursor)).await;
        assert!(
            matches!(result, Err(StoreError::Invalid(_))),
            "{cursor:?}: {result:?}"
        );
    }
    Ok(())
}

async fn given_alerts_then_marking_read_changes_counts_and_unread_pages(
    h: &mut Harness,
) -> TestResult {
    let store = h.store();
    let (alice, bob) = (username("alice"), username("bob"));
    let alice_alerts = alerts_for(&alice, "a", 1_000, 25);
    let bob_alerts = alerts_for(&bob, "b", 1_000, 3);
    let all: Vec<Alert> = alice_alerts.iter().chain(&bob_alerts).cloned().collect();
    record_alerts(store, "e-read", &all).await?;
    assert_eq!(
        store.alert_counts(&alice).await?,
        AlertCounts {
            unread: 25,
            total: 25
        }
    );
    assert_eq!(
        store.alert_counts(&username("nobody")).await?,
        AlertCounts {
            unread: 0,
            total: 0
        }
    );

    // The three newest, named twice, with bob's and malformed ids that are ignored.
    let newest: Vec<String> = alice_alerts[22..].iter().map(|a| a.id.clone()).collect();
    let mut asked = newest.clone();
    asked.extend([
        newest[0].clone(),
        bob_alerts[0].id.clone(),
        "garbage".into(),
        String::new(),
    ]);
    assert_eq!(store.mark_alerts_read(&alice, Some(&asked)).await?, 3);
    assert_eq!(
        store.mark_alerts_read(&alice, Some(&asked)).await?,
        0,
        "already read"
    );
    assert_eq!(store.mark_alerts_read(&alice, Some(&[])).await?, 0);
    assert_eq!(
        store.alert_counts(&alice).await?,
        AlertCounts {
            unread: 22,
            total: 25
        }
    );
    assert_eq!(
        store.alert_counts(&bob).await?,
        AlertCounts {
            unread: 3,
            total: 3
        }
    );

    let page = store.alerts(&alice, false, 3, None).await?;
    assert!(
        page.items.iter().all(|a| a.read),
        "the read ones still list, read"
    );
    // Unread only: the 22 others, newest first, in full pages.
    let unread: Vec<String> = alice_alerts[..22]
        .iter()
        .rev()
        .map(|a| a.id.clone())
        .collect();
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut sizes = Vec::new();
    loop {
        let page = store.alerts(&alice, true, 10, cursor.as_deref()).await?;
        assert!(page.items.iter().all(|a| !a.read));
        sizes.push(page.items.len());
        seen.extend(ids(&page.items));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(sizes, [10, 10, 2]);
    assert_eq!(seen, unread);

    // All of alice's: the 22 unread change; bob's stay unread.
    assert_eq!(store.mark_alerts_read(&alice, None).await?, 22);
    assert_eq!(store.mark_alerts_read(&alice, None).await?, 0);
    assert_eq!(
        store.alert_counts(&alice).await?,
        AlertCounts {
            unread: 0,
            total: 25
        }
    );
    assert_eq!(
        store.alert_counts(&bob).await?,
        AlertCounts {
            unread: 3,
            total: 3
        }
    );
    let none_unread = store.alerts(&alice, true, 10, None).await?;
    assert!(none_unread.items.is_empty() && none_unread.next_cursor.is_none());
    Ok(())
}

async fn given_alerts_then_delete_one_all_and_trim_keep_the_newest(h: &mut Harness) -> TestResult {
    let store = h.store();
    let (alice, bob) = (username("alice"), username("bob"));
    let alice_alerts = alerts_for(&alice, "a", 1_000, 25);
    let bob_alerts = alerts_for(&bob, "b", 1_000, 3);
    let all: Vec<Alert> = alice_alerts.iter().chain(&bob_alerts).cloned().collect();
    record_alerts(store, "e-delete", &all).await?;

    let newest = &alice_alerts[24].id;
    assert!(store.delete_alert(&alice, newest).await?);
    assert!(!store.delete_alert(&alice, newest).await?, "gone already");
    assert!(
        !store.delete_alert(&alice, &bob_alerts[0].id).await?,
        "bob's"
    );
    assert!(!store.delete_alert(&alice, "garbage").await?);
    assert_eq!(store.alert_counts(&bob).await?.total, 3);

    // 24 left: keep the newest 10.
    assert_eq!(store.trim_alerts(&alice, 10).await?, 14);
    assert_eq!(store.trim_alerts(&alice, 10).await?, 0);
    assert_eq!(store.trim_alerts(&alice, 50).await?, 0);
    let kept = store.alerts(&alice, false, 100, None).await?;
    let expected: Vec<String> = alice_alerts[14..24]
        .iter()
        .rev()
        .map(|a| a.id.clone())
        .collect();
    assert_eq!(ids(&kept.items), expected);

    assert_eq!(store.delete_alerts(&alice).await?, 10);
    assert_eq!(store.delete_alerts(&alice).await?, 0);
    assert_eq!(
        store.alert_counts(&alice).await?,
        AlertCounts {
            unread: 0,
            total: 0
        }
    );
    assert_eq!(
        store.alert_counts(&bob).await?,
        AlertCounts {
            unread: 3,
            total: 3
        }
    );
    assert_eq!(store.trim_alerts(&bob, 0).await?, 3);
    assert_eq!(store.alert_counts(&bob).await?.total, 0);
    Ok(())
}

/// Records event `id` created at `at` with an alert for each of `users`; returns alice's.
async fn record_for_all(
    store: &dyn HeraldStore,
    id: &str,
    at: u64,
    users: &[Username],
) -> Result<Alert, StoreError> {
    let e = event(id);
    let alerts: Vec<Alert> = users.iter().map(|u| Alert::for_event(&e, u, at)).collect();
    let outcome = store
        .record_event(&record(e, at, &alerts, &[]), &alerts, &[])
        .await?;
    assert_eq!(outcome, RecordOutcome::Recorded);
    alerts
        .into_iter()
        .find(|a| a.username.as_str() == "alice")
        .ok_or_else(|| StoreError::Backend("alice is not among the users".into()))
}

/// Events with large audiences mixed with alerts added one by one: every read, change and
/// reopen sees each alert once, in order (the embedded store files such events' alerts once
/// and merges them into the users' alerts later; this is what must not show).
async fn given_events_for_100_members_then_each_member_pages_marks_and_deletes_their_alerts(
    h: &mut Harness,
) -> TestResult {
    let mut users: Vec<Username> = (1..100).map(|i| username(&format!("user{i:03}"))).collect();
    users.push(username("alice"));
    let (alice, other) = (username("alice"), username("user050"));
    let own = alerts_for(&alice, "own", 1_500, 1);
    let store = h.store();
    // Alice's own alerts at 1,500 and 2,500 sit between the events' at 1,000 .. 3,000.
    assert_eq!(store.add_alerts(&own).await?, 1);
    let e1 = record_for_all(store, "e-wide-1", 1_000, &users).await?;
    let e2 = record_for_all(store, "e-wide-2", 2_000, &users).await?;
    let own2 = alerts_for(&alice, "own2", 2_500, 1);
    let e3 = record_for_all(store, "e-wide-3", 3_000, &users).await?;
    // Added after the events: alerts raised outside intake are counted once each.
    assert_eq!(store.add_alerts(&own2).await?, 1);
    let e4 = record_for_all(store, "e-wide-4", 4_000, &users).await?;
    let newest_first = [&e4, &e3, &own2[0], &e2, &own[0], &e1].map(|a| a.id.clone());

    let first = store.alerts(&alice, false, 4, None).await?;
    assert_eq!(ids(&first.items), newest_first[..4]);
    assert_eq!(first.items[0], e4, "read back whole");
    let second = store
        .alerts(&alice, false, 4, first.next_cursor.as_deref())
        .await?;
    assert_eq!(
        (ids(&second.items), second.next_cursor),
        (newest_first[4..].to_vec(), None)
    );
    assert_eq!(
        store.alert_counts(&alice).await?,
        AlertCounts {
            total: 6,
            unread: 6
        }
    );
    assert_eq!(
        store.alert_counts(&other).await?,
        AlertCounts {
            total: 4,
            unread: 4
        }
    );

    // Marking one read and deleting another touches alice's alerts only.
    assert_eq!(
        store
            .mark_alerts_read(&alice, Some(std::slice::from_ref(&e2.id)))
            .await?,
        1
    );
    assert!(store.delete_alert(&alice, &e3.id).await?);
    let e5 = record_for_all(store, "e-wide-5", 5_000, &users).await?;
    let unread = store.alerts(&alice, true, 10, None).await?;
    assert_eq!(
        ids(&unread.items),
        [&e5, &e4, &own2[0], &own[0], &e1].map(|a| a.id.clone())
    );
    assert_eq!(
        store.alert_counts(&alice).await?,
        AlertCounts {
            total: 6,
            unread: 5
        }
    );
    let others = store.alerts(&other, false, 10, None).await?;
    assert_eq!(others.items.len(), 5);
    assert!(others.items.iter().all(|a| !a.read));

    // A repeat of an event adds nothing; a reopen keeps everything.
    let e5_again: Vec<Alert> = users
        .iter()
        .map(|u| Alert::for_event(&event("e-wide-5"), u, 5_000))
        .collect();
    let repeat = store
        .record_event(
            &record(event("e-wide-5"), 5_000, &e5_again, &[]),
            &e5_again,
            &[],
        )
        .await?;
    assert!(matches!(repeat, RecordOutcome::Duplicate(_)));
    h.reopen().await?;
    let store = h.store();
    assert_eq!(
        store.alert_counts(&alice).await?,
        AlertCounts {
            total: 6,
            unread: 5
        }
    );
    assert_eq!(store.alert_counts(&other).await?.total, 5);

    // Mark all read, trim and delete all, after new alerts came in.
    let e6 = record_for_all(store, "e-wide-6", 6_000, &users).await?;
    assert_eq!(store.mark_alerts_read(&alice, None).await?, 6);
    assert_eq!(store.alert_counts(&alice).await?.unread, 0);
    let e7 = record_for_all(store, "e-wide-7", 7_000, &users).await?;
    assert_eq!(store.trim_alerts(&alice, 2).await?, 6);
    let kept = store.alerts(&alice, false, 10, None).await?;
    assert_eq!(ids(&kept.items), [e7.id.clone(), e6.id.clone()]);
    assert!(!kept.items[0].read && kept.items[1].read);
    record_for_all(store, "e-wide-8", 8_000, &users).await?;
    assert_eq!(store.delete_alerts(&other).await?, 8);
    assert_eq!(store.alert_counts(&other).await?.total, 0);
    assert_eq!(store.alert_counts(&username("user099")).await?.total, 8);
    Ok(())
}

async fn given_alerts_added_outside_intake_then_each_is_added_once_and_keeps_its_read_state(
    h: &mut Harness,
) -> TestResult {
    let (alice, bob) = (username("alice"), username("bob"));
    let failed = |user: &Username, key: &str| {
        Alert::system(
            key,
            user,
            "Delivery failed",
            "Slack answered 404",
            "Herald",
            5_000,
        )
    };
    let raised = vec![
        failed(&alice, "failed-slack"),
        failed(&alice, "failed-mail"),
        failed(&bob, "failed-slack"),
    ];
    assert_eq!(h.store().add_alerts(&[]).await?, 0);

    let before = h.request_count();
    assert_eq!(h.store().add_alerts(&raised).await?, 3);
    if let (Some(before), Some(after)) = (before, h.request_count()) {
        println!(
            "add_alerts of 3 alerts: {} DynamoDB requests",
            after - before
        );
        assert_eq!(after - before, 3, "one conditional PutItem each");
    }
    let store = h.store();
    let mut alice_newest_first = vec![raised[0].clone(), raised[1].clone()];
    alice_newest_first.sort_by(|a, b| b.id.cmp(&a.id));
    assert_eq!(
        store.alerts(&alice, false, 10, None).await?.items,
        alice_newest_first
    );
    assert_eq!(
        store.alerts(&bob, false, 10, None).await?.items,
        [raised[2].clone()]
    );

    // Alice reads one; the same alerts raised again add nothing and keep it read.
    let read = &raised[0];
    assert_eq!(
        store
            .mark_alerts_read(&alice, Some(std::slice::from_ref(&read.id)))
            .await?,
        1
    );
    assert_eq!(store.add_alerts(&raised).await?, 0);
    assert_eq!(
        store.alert_counts(&alice).await?,
        AlertCounts {
            unread: 1,
            total: 2
        }
    );
    let page = store.alerts(&alice, false, 10, None).await?;
    let stored = page.items.iter().find(|a| a.id == read.id);
    assert_eq!(stored.map(|a| a.read), Some(true), "still read");

    // Only the new ones count: a fresh alert for carl, one twice in the same call, and one
    // intake wrote already.
    let carl = username("carl");
    let intake = alerts_for(&carl, "intake", 6_000, 1);
    record_alerts(store, "e-intake", &intake).await?;
    let fresh = failed(&carl, "failed-teams");
    let mixed = [
        raised[1].clone(),
        fresh.clone(),
        fresh.clone(),
        intake[0].clone(),
    ];
    assert_eq!(store.add_alerts(&mixed).await?, 1);
    assert_eq!(
        store.alert_counts(&carl).await?,
        AlertCounts {
            unread: 2,
            total: 2
        }
    );
    Ok(())
}
