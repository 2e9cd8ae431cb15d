//! Routing and alert writing per event, end to end on the embedded store: `accept_event` for
//! one `scan_added` of a product with 10, 100 and 1,000 members, each with personal and
//! per-product settings (alert + mail), Slack on at system scope. Each iteration is a new
//! event id: the known-id check, the settings and audience reads, routing, and one durable
//! commit (`synchronous = FULL`) of every alert, delivery and queue message. DefectDojo's
//! figures for the same work are 16, 133 and 980 ms (14, 104 and 1,004 SQL queries).
//!
//! Some events also merge the pending alerts of earlier ones into users' alerts (the store
//! files an event's alerts once when it has 4 recipients or more): every sample runs the
//! same number of events (flat sampling), so the mean is each event's share of that work.
//!
//! Then a user's bell read with 1 and with 32 events' alerts pending (the read scans each
//! pending event's recipient list: the cost of batching the merge).
//!
//! `cargo bench -p herald-shared --bench intake`

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use herald_shared::adapters::{EmbeddedQueue, EmbeddedStore, QueueConfig};
use herald_shared::domain::directory::UserProfile;
use herald_shared::domain::{
    Channel, Event, EventType, NotificationSettings, Product, ProductType, ResourceId,
    SystemSettings, Username,
};
use herald_shared::intake::accept_event;
use herald_shared::ports::{DirectoryStore, SettingsStore};
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};

fn id(value: &str) -> ResourceId {
    ResourceId::parse("id", value).unwrap_or_else(|e| panic!("{e}"))
}

/// A fresh store with a product of `members` members.
async fn seeded(dir: &std::path::Path, members: usize) -> EmbeddedStore {
    let store = EmbeddedStore::open(&dir.join("herald.db")).unwrap_or_else(|e| panic!("{e}"));
    let ok = |r: Result<_, herald_shared::ports::StoreError>| r.unwrap_or_else(|e| panic!("{e}"));
    ok(store
        .put_system_settings(&SystemSettings {
            enable_mail_notifications: true,
            enable_slack_notifications: true,
            slack_channel: "#appsec".into(),
            ..SystemSettings::default()
        })
        .await);
    ok(store
        .put_system_notifications(
            &NotificationSettings::defaults().with(EventType::ScanAdded, &[Channel::Slack]),
        )
        .await);
    ok(store
        .put_product_type(&ProductType {
            id: id("web"),
            name: "Web".into(),
        })
        .await
        .map(|_| ()));
    ok(store
        .put_product(&Product {
            id: id("7"),
            name: "Shop".into(),
            product_type_id: id("web"),
            disable_sla_breach_notifications: false,
        })
        .await
        .map(|_| ()));
    let personal = NotificationSettings::defaults().with(EventType::ScanAdded, &[Channel::Alert]);
    let per_product = NotificationSettings::defaults()
        .with(EventType::ScanAdded, &[Channel::Alert, Channel::Mail]);
    for i in 0..members {
        let name = format!("user{i:04}");
        let user = Username::parse("u", &name).unwrap_or_else(|e| panic!("{e}"));
        let profile = UserProfile {
            email: Some(format!("{name}@example.com")),
            ..UserProfile::default()
        };
        ok(store.put_user(&user, &profile, &personal).await.map(|_| ()));
        ok(store.put_product_member(&id("7"), &user).await.map(|_| ()));
        ok(store
            .put_product_notifications(&user, &id("7"), &per_product)
            .await);
    }
    store
}

/// The runtime the benches drive the store with: two workers, as on the 2-core machine.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn bench_intake(c: &mut Criterion) {
    let runtime = runtime();
    let next = AtomicU64::new(0);
    let mut group = c.benchmark_group("intake");
    group.sampling_mode(SamplingMode::Flat);
    for size in [10usize, 100, 1_000] {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = runtime.block_on(seeded(dir.path(), size));
        let queue =
            EmbeddedQueue::new(&store, QueueConfig::default()).unwrap_or_else(|e| panic!("{e}"));
        group.bench_function(
            format!("accept scan_added, {size} members (route + durable write)"),
            |b| {
                b.iter(|| {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let body = json!({"id": format!("bench-{n}"), "type": "scan_added",
                        "title": "Scan", "product_id": 7});
                    let event =
                        Event::from_request(&body, String::new).unwrap_or_else(|e| panic!("{e}"));
                    let answer = runtime
                        .block_on(accept_event(&store, &queue, event, 1_800_000_000_000 + n))
                        .unwrap_or_else(|e| panic!("{e}"));
                    assert_eq!(
                        (answer.alerts as usize, answer.deliveries as usize),
                        (size, size + 1),
                        "an alert and a mail per member, and the Slack post"
                    );
                    answer
                })
            },
        );
    }
    group.finish();
}

/// A user's bell (the first page of 20 alerts) in a product of 1,000 members, with 1 and with
/// 32 of its events' alerts still pending (not merged yet): 32 is the most a batch holds at
/// 1,002 recipients an event, so the second case is the slowest read between two merges.
fn bench_bell(c: &mut Criterion) {
    use herald_shared::ports::AlertStore;
    let runtime = runtime();
    let mut group = c.benchmark_group("bell");
    for pending in [1_u64, 32] {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = runtime.block_on(seeded(dir.path(), 1_000));
        let queue =
            EmbeddedQueue::new(&store, QueueConfig::default()).unwrap_or_else(|e| panic!("{e}"));
        for n in 0..pending {
            let body = json!({"id": format!("bell-{n}"), "type": "scan_added",
                "title": "Scan", "product_id": 7});
            let event = Event::from_request(&body, String::new).unwrap_or_else(|e| panic!("{e}"));
            runtime
                .block_on(accept_event(&store, &queue, event, 1_800_000_000_000 + n))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let user = Username::parse("u", "user0500").unwrap_or_else(|e| panic!("{e}"));
        group.bench_function(
            format!("first page of 20, 1000 members, {pending} events pending"),
            |b| {
                b.iter(|| {
                    let page = runtime
                        .block_on(store.alerts(&user, false, 20, None))
                        .unwrap_or_else(|e| panic!("{e}"));
                    assert_eq!(page.items.len() as u64, pending.min(20));
                    page
                })
            },
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench_intake, bench_bell
}
criterion_main!(benches);
