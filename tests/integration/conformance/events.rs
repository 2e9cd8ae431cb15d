//! The conformance suite of `EventStore` (recording events, reading deliveries, recording
//! attempts and claims) and the directory's audience reads intake routes with
//! (`administrator_audience`, `recipients`).

use super::alerts::event;
use super::alerts::record;
use super::alerts::username;
use super::{Harness, TestResult};
use aws_sdk_dynamodb::types::AttributeValue;
use herald_shared::adapters::{EmbeddedQueue, EmbeddedStore, QueueConfig};
use herald_shared::domain::{
    Alert, Channel, Delivery, DeliveryId, DeliveryStatus, Destination, EventId, EventType,
    NotificationSettings, UserProfile, Username,
};
use herald_shared::ports::{
    AlertCounts, AttemptOutcome, Claim, EventRecord, EventStore, HeraldStore, RecordOutcome,
    StoreError,
};

conformance! {
    given_admins_then_administrator_audience_lists_them_with_their_settings,
    given_names_then_recipients_come_in_that_order_without_unknown_ones,
    given_250_recipients_then_they_are_read_in_batches,
    given_a_new_event_then_it_is_recorded_once_and_a_repeat_is_a_duplicate,
    given_events_then_those_not_enqueued_are_listed_oldest_first_until_marked,
    given_an_event_with_100_alerts_and_10_deliveries_then_it_is_written_in_batches,
    given_recorded_events_and_alerts_then_they_survive_a_reopen,
    given_a_queued_delivery_then_attempts_move_it_to_retrying_then_sent_and_sent_is_final,
    given_failed_and_dead_deliveries_then_they_are_final_too,
    given_an_unknown_delivery_then_it_reads_and_records_as_none,
    given_a_claimed_delivery_then_a_second_claim_waits_until_the_attempt_or_the_lease_ends,
    given_retrying_failed_and_dead_deliveries_then_they_are_listed_by_status_and_a_dead_one_revives_once,
}

fn event_id(id: &str) -> EventId {
    EventId::parse("id", id).unwrap_or_else(|e| panic!("{e}"))
}

fn profile(first_name: &str, is_admin: bool) -> UserProfile {
    UserProfile {
        email: Some(format!("{}@example.com", first_name.to_lowercase())),
        first_name: first_name.to_owned(),
        last_name: "Tester".to_owned(),
        is_admin,
        ..UserProfile::default()
    }
}

fn template() -> NotificationSettings {
    NotificationSettings::defaults().with(EventType::ScanAdded, &[Channel::Alert, Channel::Mail])
}

async fn add_user(
    store: &dyn HeraldStore,
    name: &str,
    is_admin: bool,
) -> Result<Username, StoreError> {
    let user = username(name);
    store
        .put_user(&user, &profile(name, is_admin), &template())
        .await?;
    Ok(user)
}

fn deliveries_for(event: &EventId, count: usize, now_ms: u64) -> Vec<Delivery> {
    (0..count)
        .map(|i| {
            Delivery::queued(
                event,
                Destination::Email(format!("user{i}@example.com")),
                now_ms,
            )
        })
        .collect()
}

fn member_names(members: &[herald_shared::domain::AudienceMember]) -> Vec<&str> {
    members.iter().map(|m| m.user.username.as_str()).collect()
}

async fn given_admins_then_administrator_audience_lists_them_with_their_settings(
    h: &mut Harness,
) -> TestResult {
    let store = h.store();
    assert!(store.administrator_audience().await?.is_empty());
    let zoe = add_user(store, "zoe", true).await?;
    add_user(store, "bob", false).await?;
    add_user(store, "carl", true).await?;
    let own = NotificationSettings::defaults().with(EventType::ScanAdded, &[Channel::Slack]);
    store.put_personal_notifications(&zoe, &own).await?;

    let audience = store.administrator_audience().await?;
    assert_eq!(
        member_names(&audience),
        ["carl", "zoe"],
        "sorted by username"
    );
    assert_eq!(audience[0].personal, template());
    assert_eq!(audience[1].personal, own);
    assert!(audience[1].user.profile.is_admin);
    assert!(audience.iter().all(|m| m.product_settings.is_none()));

    // Demoted and deleted administrators drop out.
    store
        .put_user(&username("carl"), &profile("carl", false), &template())
        .await?;
    assert_eq!(
        member_names(&store.administrator_audience().await?),
        ["zoe"]
    );
    store.delete_user(&zoe).await?;
    assert!(store.administrator_audience().await?.is_empty());
    Ok(())
}

async fn given_names_then_recipients_come_in_that_order_without_unknown_ones(
    h: &mut Harness,
) -> TestResult {
    let store = h.store();
    let alice = add_user(store, "alice", true).await?;
    let bob = add_user(store, "bob", false).await?;
    let dave = add_user(store, "dave", false).await?;
    let own = NotificationSettings::defaults().with(EventType::UserMentioned, &[Channel::Mail]);
    store.put_personal_notifications(&bob, &own).await?;

    let asked = [dave.clone(), username("ghost"), bob.clone(), alice.clone()];
    let members = store.recipients(&asked).await?;
    assert_eq!(member_names(&members), ["dave", "bob", "alice"]);
    assert_eq!(members[1].personal, own);
    assert_eq!(members[0].personal, template());
    assert_eq!(members[2].user.profile, profile("alice", true));
    assert!(members.iter().all(|m| m.product_settings.is_none()));

    assert!(store.recipients(&[]).await?.is_empty());
    assert!(store.recipients(&[username("ghost")]).await?.is_empty());
    Ok(())
}

async fn given_250_recipients_then_they_are_read_in_batches(h: &mut Harness) -> TestResult {
    let mut names = Vec::new();
    for i in 0..250 {
        names.push(add_user(h.store(), &format!("user{i:03}"), false).await?);
    }
    // Asked in reverse, with unknown names in between.
    let mut asked: Vec<Username> = names.iter().rev().cloned().collect();
    asked.insert(10, username("ghost1"));
    asked.push(username("ghost2"));

    let before = h.request_count();
    let members = h.store().recipients(&asked).await?;
    let expected: Vec<&str> = names.iter().rev().map(Username::as_str).collect();
    assert_eq!(member_names(&members), expected);
    if let (Some(before), Some(after)) = (before, h.request_count()) {
        // 252 keys, 100 a BatchGetItem.
        println!(
            "recipients of 252 names: {} DynamoDB requests",
            after - before
        );
        assert_eq!(after - before, 3);
    }
    Ok(())
}

async fn given_a_new_event_then_it_is_recorded_once_and_a_repeat_is_a_duplicate(
    h: &mut Harness,
) -> TestResult {
    let store = h.store();
    let (alice, bob) = (username("alice"), username("bob"));
    let e1 = event("e-1");
    let alerts = vec![
        Alert::for_event(&e1, &alice, 5_000),
        Alert::for_event(&e1, &bob, 5_000),
    ];
    let deliveries = vec![
        Delivery::queued(
            &e1.id,
            Destination::Email("alice@example.com".into()),
            5_000,
        ),
        Delivery::queued(&e1.id, Destination::SlackChannel("#appsec".into()), 5_000),
        Delivery::queued(&e1.id, Destination::SystemWebhooks, 5_000),
    ];
    let first = record(e1.clone(), 5_000, &alerts, &deliveries);

    assert_eq!(store.event(&e1.id).await?, None);
    assert!(store.deliveries(&e1.id).await?.is_empty());
    let outcome = store.record_event(&first, &alerts, &deliveries).await?;
    assert_eq!(outcome, RecordOutcome::Recorded);

    let stored = store.event(&e1.id).await?;
    assert_eq!(
        stored.as_ref(),
        Some(&first),
        "the record, the event with every field, reads back"
    );
    let mut listed = deliveries.clone();
    listed.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(
        store.deliveries(&e1.id).await?,
        listed,
        "ordered by delivery id"
    );
    let page = store.alerts(&alice, false, 10, None).await?;
    assert_eq!(page.items, vec![alerts[0].clone()]);

    // The same id again, later and with another plan: nothing is written.
    let carl = username("carl");
    let later_alerts = vec![Alert::for_event(&e1, &carl, 9_000)];
    let later_deliveries = deliveries_for(&e1.id, 1, 9_000);
    let again = record(e1.clone(), 9_000, &later_alerts, &later_deliveries);
    let outcome = store
        .record_event(&again, &later_alerts, &later_deliveries)
        .await?;
    assert_eq!(outcome, RecordOutcome::Duplicate(first.clone()));
    assert_eq!(
        store.alert_counts(&carl).await?,
        AlertCounts {
            unread: 0,
            total: 0
        }
    );
    assert_eq!(store.deliveries(&e1.id).await?, listed);
    assert_eq!(store.event(&e1.id).await?, Some(first));

    // An event with nothing to deliver is recorded too.
    let quiet = record(event("e-quiet"), 6_000, &[], &[]);
    assert_eq!(
        store.record_event(&quiet, &[], &[]).await?,
        RecordOutcome::Recorded
    );
    assert_eq!(store.event(&quiet.event.id).await?, Some(quiet.clone()));
    assert_eq!(
        store.record_event(&quiet, &[], &[]).await?,
        RecordOutcome::Duplicate(quiet)
    );
    Ok(())
}

async fn given_events_then_those_not_enqueued_are_listed_oldest_first_until_marked(
    h: &mut Harness,
) -> TestResult {
    let store = h.store();
    assert!(store.events_not_enqueued(u64::MAX, 10).await?.is_empty());
    for (id, at) in [("e-b", 2_000), ("e-a", 1_000), ("e-c", 3_000)] {
        let e = event(id);
        let deliveries = deliveries_for(&e.id, 2, at);
        store
            .record_event(&record(e, at, &[], &deliveries), &[], &deliveries)
            .await?;
    }
    let (a, b, c) = (event_id("e-a"), event_id("e-b"), event_id("e-c"));
    assert_eq!(
        store.events_not_enqueued(u64::MAX, 10).await?,
        [a.clone(), b.clone(), c.clone()]
    );
    assert_eq!(
        store.events_not_enqueued(u64::MAX, 2).await?,
        [a.clone(), b.clone()]
    );
    // Only those accepted before the cut-off (an intake may still be finishing the others).
    assert_eq!(
        store.events_not_enqueued(2_000, 10).await?,
        std::slice::from_ref(&a)
    );
    assert_eq!(
        store.events_not_enqueued(2_001, 10).await?,
        [a.clone(), b.clone()]
    );
    assert!(store.events_not_enqueued(1_000, 10).await?.is_empty());

    store.mark_event_enqueued(&b).await?;
    assert_eq!(
        store.events_not_enqueued(u64::MAX, 10).await?,
        [a.clone(), c.clone()]
    );
    assert!(
        store
            .event(&b)
            .await?
            .is_some_and(|r| r.enqueued && r.complete)
    );
    assert!(store.event(&a).await?.is_some_and(|r| !r.enqueued));
    // Again, and for an unknown event: nothing to do, no error.
    store.mark_event_enqueued(&b).await?;
    store.mark_event_enqueued(&event_id("e-unknown")).await?;
    assert_eq!(store.event(&event_id("e-unknown")).await?, None);

    // An event recorded as enqueued already is never listed.
    let done = EventRecord {
        enqueued: true,
        ..record(event("e-done"), 500, &[], &[])
    };
    store.record_event(&done, &[], &[]).await?;
    assert_eq!(
        store.events_not_enqueued(u64::MAX, 10).await?,
        [a.clone(), c.clone()]
    );

    store.mark_event_enqueued(&a).await?;
    store.mark_event_enqueued(&c).await?;
    assert!(store.events_not_enqueued(u64::MAX, 10).await?.is_empty());
    Ok(())
}

async fn given_an_event_with_100_alerts_and_10_deliveries_then_it_is_written_in_batches(
    h: &mut Harness,
) -> TestResult {
    let e = event("e-big");
    let users: Vec<Username> = (0..100).map(|i| username(&format!("user{i:03}"))).collect();
    let alerts: Vec<Alert> = users
        .iter()
        .map(|u| Alert::for_event(&e, u, 7_000))
        .collect();
    let deliveries = deliveries_for(&e.id, 10, 7_000);
    let big = record(e.clone(), 7_000, &alerts, &deliveries);

    let before = h.request_count();
    let outcome = h.store().record_event(&big, &alerts, &deliveries).await?;
    let after = h.request_count();
    assert_eq!(outcome, RecordOutcome::Recorded);
    if let (Some(before), Some(after)) = (before, after) {
        let expected = 2 + (alerts.len() + deliveries.len()).div_ceil(25) as u64;
        println!(
            "record_event with {} alerts and {} deliveries: {} DynamoDB requests (expected {expected})",
            alerts.len(),
            deliveries.len(),
            after - before
        );
        assert_eq!(after - before, expected);
    }

    let store = h.store();
    assert_eq!(store.deliveries(&e.id).await?.len(), 10);
    for user in &users {
        let page = store.alerts(user, false, 10, None).await?;
        assert_eq!(page.items.len(), 1, "{user}");
        assert_eq!(page.items[0].event_id, e.id);
    }

    let before = h.request_count();
    let again = h.store().record_event(&big, &alerts, &deliveries).await?;
    assert!(matches!(again, RecordOutcome::Duplicate(first) if first == big));
    if let (Some(before), Some(after)) = (before, h.request_count()) {
        println!(
            "record_event of a duplicate: {} DynamoDB request(s)",
            after - before
        );
        assert_eq!(
            after - before,
            1,
            "the failed conditional put returns the first record"
        );
    }
    Ok(())
}

async fn given_recorded_events_and_alerts_then_they_survive_a_reopen(
    h: &mut Harness,
) -> TestResult {
    let alice = username("alice");
    let e = event("e-durable");
    let alerts = vec![Alert::for_event(&e, &alice, 8_000)];
    let deliveries = deliveries_for(&e.id, 2, 8_000);
    let first = record(e.clone(), 8_000, &alerts, &deliveries);
    h.store().record_event(&first, &alerts, &deliveries).await?;
    h.reopen().await?;

    let store = h.store();
    assert_eq!(store.event(&e.id).await?, Some(first.clone()));
    assert_eq!(store.deliveries(&e.id).await?.len(), 2);
    assert_eq!(store.alerts(&alice, false, 10, None).await?.items, alerts);
    assert_eq!(
        store.events_not_enqueued(u64::MAX, 10).await?,
        std::slice::from_ref(&e.id)
    );
    assert_eq!(
        store.record_event(&first, &alerts, &deliveries).await?,
        RecordOutcome::Duplicate(first)
    );
    Ok(())
}

/// Records an event with `count` queued deliveries at `at`; returns them, ordered by id.
async fn record_deliveries(
    store: &dyn HeraldStore,
    id: &str,
    count: usize,
    at: u64,
) -> Result<Vec<Delivery>, StoreError> {
    let e = event(id);
    let mut deliveries = deliveries_for(&e.id, count, at);
    store
        .record_event(&record(e, at, &[], &deliveries), &[], &deliveries)
        .await?;
    deliveries.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(deliveries)
}

/// `delivery` after an attempt.
fn attempted(
    delivery: &Delivery,
    status: DeliveryStatus,
    attempts: u32,
    last_error: Option<&str>,
    updated_at: u64,
) -> Delivery {
    Delivery {
        status,
        attempts,
        last_error: last_error.map(str::to_owned),
        updated_at,
        ..delivery.clone()
    }
}

fn retrying(error: &str) -> AttemptOutcome {
    AttemptOutcome::Retrying {
        error: error.to_owned(),
    }
}

async fn given_a_queued_delivery_then_attempts_move_it_to_retrying_then_sent_and_sent_is_final(
    h: &mut Harness,
) -> TestResult {
    let deliveries = record_deliveries(h.store(), "e-attempts", 2, 1_000).await?;
    let (d, other) = (&deliveries[0], &deliveries[1]);
    let e = d.event_id.clone();
    assert_eq!(h.store().delivery(&e, &d.id).await?.as_ref(), Some(d));

    // A transient failure: retrying, one attempt, the error kept.
    let before = h.request_count();
    let after_first = h
        .store()
        .record_attempt(&e, &d.id, &retrying("Slack answered 503"), 2_000)
        .await?;
    if let (Some(before), Some(after)) = (before, h.request_count()) {
        println!("record_attempt: {} DynamoDB request(s)", after - before);
        assert_eq!(after - before, 1, "one conditional UpdateItem");
    }
    let first = attempted(
        d,
        DeliveryStatus::Retrying,
        1,
        Some("Slack answered 503"),
        2_000,
    );
    assert_eq!(after_first.as_ref(), Some(&first));
    let before = h.request_count();
    assert_eq!(h.store().delivery(&e, &d.id).await?.as_ref(), Some(&first));
    if let (Some(before), Some(after)) = (before, h.request_count()) {
        assert_eq!(after - before, 1, "one GetItem");
    }

    // Delivered on the second attempt: sent, the error cleared.
    let store = h.store();
    let sent = attempted(d, DeliveryStatus::Sent, 2, None, 3_000);
    assert_eq!(
        store
            .record_attempt(&e, &d.id, &AttemptOutcome::Sent, 3_000)
            .await?,
        Some(sent.clone())
    );
    assert_eq!(store.delivery(&e, &d.id).await?.as_ref(), Some(&sent));

    // A redelivered message can no longer change it, whatever it reports.
    for outcome in [
        AttemptOutcome::Sent,
        retrying("late"),
        AttemptOutcome::Failed {
            error: "late".into(),
        },
        AttemptOutcome::Dead {
            error: "late".into(),
        },
    ] {
        let before = h.request_count();
        assert_eq!(
            h.store().record_attempt(&e, &d.id, &outcome, 4_000).await?,
            None,
            "{outcome:?}"
        );
        if let (Some(before), Some(after)) = (before, h.request_count()) {
            assert_eq!(after - before, 1, "one failed conditional UpdateItem");
        }
    }
    let store = h.store();
    assert_eq!(store.delivery(&e, &d.id).await?.as_ref(), Some(&sent));
    // The event's other delivery is untouched; the list shows both as they stand.
    assert_eq!(store.delivery(&e, &other.id).await?.as_ref(), Some(other));
    assert_eq!(store.deliveries(&e).await?, [sent, other.clone()]);
    Ok(())
}

/// Two senders handed the same delivery: only one may send; the other is told until when the
/// claim runs. The attempt ends the claim; a claim whose sender vanished lapses.
async fn given_a_claimed_delivery_then_a_second_claim_waits_until_the_attempt_or_the_lease_ends(
    h: &mut Harness,
) -> TestResult {
    let store = h.store();
    let deliveries = record_deliveries(store, "e-claim", 2, 1_000).await?;
    let (first, second) = (&deliveries[0], &deliveries[1]);
    let lease = std::time::Duration::from_secs(120);

    let Claim::Claimed(claimed) = store
        .claim_delivery(&first.event_id, &first.id, 2_000, lease)
        .await?
    else {
        panic!("a queued delivery is claimable");
    };
    assert_eq!(claimed.id, first.id);
    assert_eq!(claimed.status, DeliveryStatus::Queued);
    // A duplicate at the same moment, and just before the lease ends: held.
    for now in [2_000, 121_999] {
        assert_eq!(
            store
                .claim_delivery(&first.event_id, &first.id, now, lease)
                .await?,
            Claim::Held { until: 122_000 }
        );
    }
    // Another delivery is not affected.
    assert!(matches!(
        store
            .claim_delivery(&second.event_id, &second.id, 2_000, lease)
            .await?,
        Claim::Claimed(_)
    ));
    // The holder's transient failure ends its claim: the retry can claim at once.
    let retrying = AttemptOutcome::Retrying {
        error: "503".into(),
    };
    store
        .record_attempt(&first.event_id, &first.id, &retrying, 3_000)
        .await?;
    assert!(matches!(
        store
            .claim_delivery(&first.event_id, &first.id, 3_001, lease)
            .await?,
        Claim::Claimed(d) if d.status == DeliveryStatus::Retrying
    ));
    // Sent: final for every later claim.
    store
        .record_attempt(&first.event_id, &first.id, &AttemptOutcome::Sent, 4_000)
        .await?;
    assert!(matches!(
        store
            .claim_delivery(&first.event_id, &first.id, 500_000, lease)
            .await?,
        Claim::Final(d) if d.status == DeliveryStatus::Sent
    ));
    // A claim whose sender never came back lapses with its lease.
    assert_eq!(
        store
            .claim_delivery(&second.event_id, &second.id, 121_999, lease)
            .await?,
        Claim::Held { until: 122_000 }
    );
    assert!(matches!(
        store
            .claim_delivery(&second.event_id, &second.id, 122_000, lease)
            .await?,
        Claim::Claimed(_)
    ));
    // Unknown deliveries say so.
    assert_eq!(
        store
            .claim_delivery(
                &first.event_id,
                &DeliveryId::from_stored("nope"),
                2_000,
                lease
            )
            .await?,
        Claim::Unknown
    );
    Ok(())
}

async fn given_failed_and_dead_deliveries_then_they_are_final_too(h: &mut Harness) -> TestResult {
    let store = h.store();
    let deliveries = record_deliveries(store, "e-final", 2, 1_000).await?;
    let e = deliveries[0].event_id.clone();
    let refused = AttemptOutcome::Failed {
        error: "410 Gone".into(),
    };
    let given_up = AttemptOutcome::Dead {
        error: "timed out".into(),
    };

    // Failed at once; dead after a retry.
    let failed = attempted(
        &deliveries[0],
        DeliveryStatus::Failed,
        1,
        Some("410 Gone"),
        2_000,
    );
    assert_eq!(
        store
            .record_attempt(&e, &deliveries[0].id, &refused, 2_000)
            .await?,
        Some(failed.clone())
    );
    store
        .record_attempt(&e, &deliveries[1].id, &retrying("timed out"), 2_000)
        .await?;
    let dead = attempted(
        &deliveries[1],
        DeliveryStatus::Dead,
        2,
        Some("timed out"),
        3_000,
    );
    assert_eq!(
        store
            .record_attempt(&e, &deliveries[1].id, &given_up, 3_000)
            .await?,
        Some(dead.clone())
    );

    for final_delivery in [&failed, &dead] {
        for outcome in [AttemptOutcome::Sent, retrying("again"), refused.clone()] {
            assert_eq!(
                store
                    .record_attempt(&e, &final_delivery.id, &outcome, 9_000)
                    .await?,
                None,
                "{outcome:?} after {:?}",
                final_delivery.status
            );
        }
        assert_eq!(
            store.delivery(&e, &final_delivery.id).await?.as_ref(),
            Some(final_delivery)
        );
    }
    Ok(())
}

async fn given_an_unknown_delivery_then_it_reads_and_records_as_none(
    h: &mut Harness,
) -> TestResult {
    let store = h.store();
    let deliveries = record_deliveries(store, "e-known", 1, 1_000).await?;
    let known = &deliveries[0];
    let ghost_event = event_id("e-ghost");
    let ghost = DeliveryId::new(&ghost_event, &Destination::Teams);

    for (e, id) in [
        (&ghost_event, &ghost),
        // A known event, an id it has no delivery with.
        (&known.event_id, &ghost),
        // A known delivery id under another event.
        (&ghost_event, &known.id),
    ] {
        assert_eq!(store.delivery(e, id).await?, None, "{e} / {id}");
        assert_eq!(
            store
                .record_attempt(e, id, &AttemptOutcome::Sent, 2_000)
                .await?,
            None,
            "{e} / {id}"
        );
        assert_eq!(store.delivery(e, id).await?, None, "nothing was created");
    }
    assert!(store.deliveries(&ghost_event).await?.is_empty());
    assert_eq!(
        store.delivery(&known.event_id, &known.id).await?.as_ref(),
        Some(known)
    );
    Ok(())
}

/// The embedded store queues an event's deliveries in the transaction that records it, so an
/// event answered 202 has its messages on disk even if the process dies right after.
#[tokio::test]
async fn embedded_record_event_queues_the_deliveries_in_the_same_transaction() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("herald.db");
    let e = event("e-queued");
    let mut deliveries = deliveries_for(&e.id, 2, 1_000);
    deliveries.push(Delivery::queued(
        &e.id,
        Destination::SlackChannel("#appsec".into()),
        1_000,
    ));
    {
        let store = EmbeddedStore::open(&path)?;
        let first = record(e.clone(), 1_000, &[], &deliveries);
        store.record_event(&first, &[], &deliveries).await?;
        // A duplicate queues nothing more.
        store.record_event(&first, &[], &deliveries).await?;
    }
    let store = EmbeddedStore::open(&path)?;
    let queue = EmbeddedQueue::new(&store, QueueConfig::default())?;
    assert_eq!(queue.depth(Channel::Mail, 2_000).await?.visible, 2);
    assert_eq!(queue.depth(Channel::Slack, 2_000).await?.visible, 1);
    assert_eq!(queue.depth(Channel::Webhooks, 2_000).await?.visible, 0);
    Ok(())
}

/// A crash between DynamoDB's writes leaves the event `recording` with some alerts missing:
/// it reads back incomplete, another time is told so, and the same time completes it.
#[tokio::test]
async fn dynamodb_an_event_cut_short_is_completed_by_a_retry_at_its_time() -> TestResult {
    let harness = Harness::dynamodb().await?;
    let Harness::DynamoDb { client, table, .. } = &harness else {
        unreachable!("a DynamoDB harness");
    };
    let e = event("e-crash");
    let users: Vec<Username> = (0..30).map(|i| username(&format!("user{i:02}"))).collect();
    let alerts: Vec<Alert> = users
        .iter()
        .map(|u| Alert::for_event(&e, u, 4_000))
        .collect();
    let deliveries = deliveries_for(&e.id, 3, 4_000);
    let first = record(e.clone(), 4_000, &alerts, &deliveries);
    harness
        .store()
        .record_event(&first, &alerts, &deliveries)
        .await?;

    // Simulate the crash: back to `recording`, and the last batch of alerts never written.
    client
        .update_item()
        .table_name(table)
        .key("PK", AttributeValue::S("EVENT#e-crash".into()))
        .key("SK", AttributeValue::S("EVENT".into()))
        .update_expression("SET #status = :recording")
        .expression_attribute_names("#status", "status")
        .expression_attribute_values(":recording", AttributeValue::S("recording".into()))
        .send()
        .await?;
    for alert in &alerts[25..] {
        client
            .delete_item()
            .table_name(table)
            .key(
                "PK",
                AttributeValue::S(format!("ALERTS#{}", alert.username)),
            )
            .key("SK", AttributeValue::S(format!("ALERT#{}", alert.id)))
            .send()
            .await?;
    }
    let store = harness.store();
    let incomplete = EventRecord {
        complete: false,
        ..first.clone()
    };
    assert_eq!(store.event(&e.id).await?, Some(incomplete.clone()));
    assert_eq!(
        store.events_not_enqueued(u64::MAX, 10).await?,
        std::slice::from_ref(&e.id)
    );

    // Another attempt at another time writes nothing and learns the first one's time.
    let later: Vec<Alert> = users
        .iter()
        .map(|u| Alert::for_event(&e, u, 9_000))
        .collect();
    let outcome = store
        .record_event(
            &record(e.clone(), 9_000, &later, &deliveries),
            &later,
            &deliveries,
        )
        .await?;
    assert_eq!(outcome, RecordOutcome::Duplicate(incomplete));
    assert_eq!(store.alert_counts(&users[29]).await?.total, 0);

    // At that time, it completes the record.
    let outcome = store.record_event(&first, &alerts, &deliveries).await?;
    assert_eq!(outcome, RecordOutcome::Recorded);
    assert_eq!(store.event(&e.id).await?, Some(first.clone()));
    for (user, alert) in users.iter().zip(&alerts) {
        assert_eq!(
            store.alerts(user, false, 10, None).await?.items,
            std::slice::from_ref(alert)
        );
    }
    assert_eq!(store.deliveries(&e.id).await?.len(), 3);
    assert_eq!(
        store.record_event(&first, &alerts, &deliveries).await?,
        RecordOutcome::Duplicate(first)
    );
    harness.finish().await
}

/// Events and deliveries carry the table's TTL attribute, `expires_at`, in seconds, seven
/// days after the event was accepted; alerts, from intake or `add_alerts`, expire after
/// `ALERT_RETENTION_DAYS`.
#[tokio::test]
async fn dynamodb_events_and_deliveries_expire_after_seven_days() -> TestResult {
    let harness = Harness::dynamodb().await?;
    let Harness::DynamoDb { client, table, .. } = &harness else {
        unreachable!("a DynamoDB harness");
    };
    let ttl = client
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await?;
    let description = ttl.time_to_live_description();
    assert_eq!(
        description.and_then(|d| d.attribute_name()),
        Some("expires_at")
    );

    let accepted_at = 1_700_000_000_123;
    let e = event("e-ttl");
    let alerts = vec![Alert::for_event(&e, &username("alice"), accepted_at)];
    let deliveries = deliveries_for(&e.id, 1, accepted_at);
    harness
        .store()
        .record_event(
            &record(e.clone(), accepted_at, &alerts, &deliveries),
            &alerts,
            &deliveries,
        )
        .await?;
    let expected = (1_700_000_000 + 7 * 86_400).to_string();
    let partition = client
        .query()
        .table_name(table)
        .key_condition_expression("PK = :pk")
        .expression_attribute_values(":pk", AttributeValue::S("EVENT#e-ttl".into()))
        .send()
        .await?;
    let items = partition.items();
    assert_eq!(items.len(), 2, "the event and its delivery");
    for item in items {
        assert_eq!(
            item.get("expires_at"),
            Some(&AttributeValue::N(expected.clone())),
            "{item:?}"
        );
    }
    let alert = client
        .get_item()
        .table_name(table)
        .key("PK", AttributeValue::S("ALERTS#alice".into()))
        .key("SK", AttributeValue::S(format!("ALERT#{}", alerts[0].id)))
        .send()
        .await?;
    let alert_expiry =
        (1_700_000_000 + herald_shared::domain::alert::ALERT_RETENTION_DAYS * 86_400).to_string();
    assert_eq!(
        alert.item().and_then(|item| item.get("expires_at")),
        Some(&AttributeValue::N(alert_expiry.clone()))
    );

    // An alert added outside intake expires the same way.
    let raised = Alert::system(
        "failed-slack",
        &username("root"),
        "Delivery failed",
        "d",
        "Herald",
        accepted_at,
    );
    harness
        .store()
        .add_alerts(std::slice::from_ref(&raised))
        .await?;
    let alert = client
        .get_item()
        .table_name(table)
        .key("PK", AttributeValue::S("ALERTS#root".into()))
        .key("SK", AttributeValue::S(format!("ALERT#{}", raised.id)))
        .send()
        .await?;
    assert_eq!(
        alert.item().and_then(|item| item.get("expires_at")),
        Some(&AttributeValue::N(alert_expiry))
    );
    harness.finish().await
}

async fn given_retrying_failed_and_dead_deliveries_then_they_are_listed_by_status_and_a_dead_one_revives_once(
    h: &mut Harness,
) -> TestResult {
    let store = h.store();
    let d = record_deliveries(store, "e-ops", 4, 1_000).await?;
    let e = d[0].event_id.clone();
    let dead = |error: &str| AttemptOutcome::Dead {
        error: error.to_owned(),
    };
    store
        .record_attempt(&e, &d[0].id, &retrying("HTTP 503"), 2_000)
        .await?;
    store
        .record_attempt(&e, &d[1].id, &dead("timed out"), 3_000)
        .await?;
    let refused = AttemptOutcome::Failed {
        error: "410 Gone".into(),
    };
    store.record_attempt(&e, &d[2].id, &refused, 4_000).await?;
    // d[3] stays queued: never listed.
    let ids = |list: Vec<Delivery>| list.into_iter().map(|x| x.id).collect::<Vec<_>>();
    let listed = |status, since| store.deliveries_with_status(status, since, 10);
    assert_eq!(
        ids(listed(DeliveryStatus::Dead, 0).await?),
        [d[1].id.clone()]
    );
    assert_eq!(
        ids(listed(DeliveryStatus::Retrying, 0).await?),
        [d[0].id.clone()]
    );
    assert_eq!(
        ids(listed(DeliveryStatus::Failed, 4_000).await?),
        [d[2].id.clone()]
    );
    assert!(
        listed(DeliveryStatus::Failed, 4_001).await?.is_empty(),
        "changed before since"
    );
    let queued = listed(DeliveryStatus::Queued, 0).await;
    assert!(matches!(queued, Err(StoreError::Invalid(_))), "{queued:?}");
    let dead_one = listed(DeliveryStatus::Dead, 0).await?;
    assert_eq!(dead_one[0].last_error.as_deref(), Some("timed out"));

    // Retrying, then dead: listed under dead, oldest change first, and no longer retrying.
    store
        .record_attempt(&e, &d[0].id, &dead("HTTP 503"), 5_000)
        .await?;
    assert_eq!(
        ids(listed(DeliveryStatus::Dead, 0).await?),
        [d[1].id.clone(), d[0].id.clone()]
    );
    assert!(listed(DeliveryStatus::Retrying, 0).await?.is_empty());
    assert_eq!(
        ids(store
            .deliveries_with_status(DeliveryStatus::Dead, 0, 1)
            .await?),
        [d[1].id.clone()]
    );

    // A replay revives a dead delivery once; sent, failed or unknown ones are not touched.
    let revived = store.revive_dead_delivery(&e, &d[1].id, 6_000).await?;
    assert_eq!(
        revived,
        Some(attempted(
            &d[1],
            DeliveryStatus::Queued,
            1,
            Some("timed out"),
            6_000
        ))
    );
    assert_eq!(store.revive_dead_delivery(&e, &d[1].id, 6_001).await?, None);
    assert_eq!(store.revive_dead_delivery(&e, &d[2].id, 6_000).await?, None);
    assert_eq!(
        store
            .revive_dead_delivery(&e, &DeliveryId::from_stored("nope"), 6_000)
            .await?,
        None
    );
    assert_eq!(
        ids(listed(DeliveryStatus::Dead, 0).await?),
        [d[0].id.clone()]
    );
    // Revived, it is attempted as any queued delivery, and sent is final.
    let sent = store
        .record_attempt(&e, &d[1].id, &AttemptOutcome::Sent, 7_000)
        .await?;
    assert_eq!(
        sent.map(|x| (x.status, x.attempts)),
        Some((DeliveryStatus::Sent, 2))
    );
    assert_eq!(store.revive_dead_delivery(&e, &d[1].id, 8_000).await?, None);
    Ok(())
}
