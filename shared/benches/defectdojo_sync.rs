//! The DefectDojo sync at scale: 10,000 users, 2,000 products (200 product types), 100,000
//! active findings, 2,000 engagements and risk acceptances, served by the fake DefectDojo on
//! loopback in pages of 500, synced into the embedded store on a file (as herald-local
//! keeps it). Prints the time of the first sync (everything created), of a second one
//! (nothing changed) and the sync's peak memory: the fake DefectDojo runs in this process, the
//! sync in a child process of its own (this binary again), whose peak resident set
//! (`VmHWM`) is what is reported.
//!
//!     cargo bench -p herald-shared --features testing --bench defectdojo_sync
//!
//! `HERALD_BENCH_FINDINGS` changes the number of findings (100,000 by default), to see how
//! the sync's memory grows with them. Targets: the first sync under 2 minutes; memory
//! bounded by a page, not by the number of findings.

use herald_shared::adapters::EmbeddedStore;
use herald_shared::defectdojo_sync::{DefectDojoSource, SyncRequest, SyncService};
use herald_shared::domain::Secret;
use serde_json::{Value, json};
use std::time::Instant;

fn findings() -> u64 {
    std::env::var("HERALD_BENCH_FINDINGS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000)
}

const USERS: u64 = 10_000;
const PRODUCT_TYPES: u64 = 200;
const PRODUCTS: u64 = 2_000;
const MEMBERS_PER_PRODUCT: u64 = 5;
const TOKEN: &str = "bench-token";

fn write(dir: &std::path::Path, endpoint: &str, rows: Vec<Value>) {
    let path = dir.join(format!("{endpoint}.json"));
    std::fs::write(&path, Value::Array(rows).to_string()).unwrap_or_else(|e| panic!("{e}"));
}

fn world(dir: &std::path::Path) {
    write(
        dir,
        "users",
        (1..=USERS)
            .map(|id| {
                json!({"id": id, "username": format!("user{id}"), "first_name": "First",
                       "last_name": format!("Last {id}"), "email": format!("user{id}@example.com"),
                       "is_active": true, "is_staff": false, "is_superuser": id == 1})
            })
            .collect(),
    );
    write(
        dir,
        "user_contact_infos",
        (1..=USERS)
            .map(|id| json!({"id": id, "user": id, "slack_username": format!("user{id}@example.com"), "slack_user_id": null}))
            .collect(),
    );
    write(
        dir,
        "product_types",
        (1..=PRODUCT_TYPES)
            .map(|id| json!({"id": id, "name": format!("Type {id}"), "authorized_users": [1 + id % USERS, 1 + (id * 7) % USERS]}))
            .collect(),
    );
    write(
        dir,
        "products",
        (1..=PRODUCTS)
            .map(|id| {
                let members: Vec<u64> = (0..MEMBERS_PER_PRODUCT)
                    .map(|k| 1 + (id * 5 + k) % USERS)
                    .collect();
                json!({"id": id, "name": format!("Product {id}"), "prod_type": 1 + id % PRODUCT_TYPES,
                       "disable_sla_breach_notifications": false, "authorized_users": members})
            })
            .collect(),
    );
    write(
        dir,
        "engagements",
        (1..=PRODUCTS)
            .map(|id| {
                json!({"id": id, "name": format!("Engagement {id}"), "product": id, "lead": 1 + id % USERS,
                       "target_start": "2026-11-01", "target_end": "2026-12-31", "status": "In Progress",
                       "risk_acceptance": [id]})
            })
            .collect(),
    );
    write(
        dir,
        "risk_acceptance",
        (1..=PRODUCTS)
            .map(|id| json!({"id": id, "name": format!("Accepted {id}"), "expiration_date": "2027-01-01T00:00:00Z", "accepted_findings": [id * 50]}))
            .collect(),
    );
    let severities = ["Critical", "High", "Medium", "Low", "Info"];
    let total = findings();
    write(
        dir,
        "findings_related_fields",
        (1..=total)
            .map(|id| {
                let product = 1 + (id - 1) % PRODUCTS;
                json!({"id": id, "title": format!("Finding {id}"), "severity": severities[(id % 5) as usize],
                       "active": true, "verified": id % 2 == 0, "sla_expiration_date": "2026-12-20",
                       "related_fields": {"test": {"id": product, "engagement": {"id": product,
                           "product": {"id": product, "name": format!("Product {product}"),
                                       "prod_type": {"id": 1 + product % PRODUCT_TYPES, "name": "Type"}}}},
                           "jira": null}})
            })
            .collect(),
    );
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// In the child: syncs from the fake at `base` into the store at `db` once, printing the
/// run's time and the process's peak resident set.
async fn sync_child(base: &str, db: &std::path::Path, run: &str) {
    let store = EmbeddedStore::open(db).unwrap_or_else(|e| panic!("{e}"));
    let sync = SyncService::new(Some(DefectDojoSource::new(base, Secret::new(TOKEN))));
    let started = Instant::now();
    let report = sync
        .run(&store, SyncRequest::default(), &|_, _, _| {})
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "defectdojo_sync {run}: {seconds:.1} s, peak memory of the sync's process {:.0} MiB; users {:?}; findings {:?}; skipped {}",
        peak_rss_mib(),
        report.users,
        report.findings,
        report.skipped.len()
    );
}

const CHILD: &str = "HERALD_BENCH_SYNC_FROM";

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    if let Ok(base) = std::env::var(CHILD) {
        let db = std::env::var("HERALD_BENCH_DB").unwrap_or_else(|e| panic!("{e}"));
        let run = std::env::var("HERALD_BENCH_RUN").unwrap_or_else(|e| panic!("{e}"));
        runtime.block_on(sync_child(&base, std::path::Path::new(&db), &run));
        return;
    }
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let fixtures = dir.path().join("defectdojo");
        std::fs::create_dir_all(&fixtures).unwrap_or_else(|e| panic!("{e}"));
        world(&fixtures);
        let fake = herald_shared::testing::fake_defectdojo_api(&fixtures, TOKEN).await;
        println!(
            "defectdojo_sync: {} findings; the fake DefectDojo's process holds {:.0} MiB",
            findings(),
            peak_rss_mib()
        );
        let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
        // Each run in a process of its own, so each one's peak is its own.
        for run in ["first (everything created)", "second (nothing changed)"] {
            let (exe, base, db) = (exe.clone(), fake.base.clone(), dir.path().join("herald.db"));
            let child = tokio::task::spawn_blocking(move || {
                std::process::Command::new(exe)
                    .env(CHILD, base)
                    .env("HERALD_BENCH_DB", db)
                    .env("HERALD_BENCH_RUN", run)
                    .status()
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{e}"));
            assert!(child.success(), "the sync's process failed: {child}");
        }
    });
}
