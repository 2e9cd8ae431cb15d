//! Tests of the embedded store beyond the conformance suites: group commit when a write
//! fails, schema upgrades, and the cache after a write.

use super::events::event_expiry;
use super::schema::SCHEMA_VERSION;
use super::*;
use crate::domain::{
    Alert, Channel, Delivery, Destination, Event, EventId, NotificationSettings, Product,
    ProductAudience, ProductType, ResourceId, UserProfile, Username,
};
use crate::ports::{
    AlertCounts, AlertStore, Claim, DirectoryStore, EventRecord, EventStore, SettingsStore,
    StoreError,
};
use rusqlite::params;
use std::sync::Arc;
use std::sync::atomic::Ordering;

fn profile() -> UserProfile {
    UserProfile {
        email: None,
        first_name: String::new(),
        last_name: String::new(),
        slack_email: None,
        slack_user_id: None,
        is_active: true,
        is_admin: false,
    }
}

/// A write alone in its group that fails after a first statement keeps nothing of it.
#[tokio::test]
async fn given_a_lone_write_that_fails_midway_then_none_of_it_is_kept()
-> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = EmbeddedStore::open(&dir.path().join("herald.db"))?;
    let failed = store
        .run(|conn| {
            conn.execute(
                "INSERT INTO documents (name, body) VALUES ('half', 'written')",
                [],
            )
            .map_err(backend)?;
            Err::<(), _>(StoreError::Invalid("the second statement failed".into()))
        })
        .await;
    assert!(matches!(failed, Err(StoreError::Invalid(_))));
    assert_eq!(store.document("half").await?, None);
    // The writer goes on.
    store.put_document("whole", "written".into()).await?;
    assert_eq!(store.document("whole").await?.as_deref(), Some("written"));
    Ok(())
}

/// Writes that share a group commit: one that fails after a first statement keeps nothing
/// of it (the group is rolled back and runs again, each write in a savepoint of its own),
/// and the writes before and after it commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_group_with_a_write_that_fails_midway_then_only_that_write_is_lost()
-> Result<(), Box<dyn std::error::Error>> {
    use std::sync::atomic::AtomicUsize;
    let dir = tempfile::tempdir()?;
    let store = EmbeddedStore::open(&dir.path().join("herald.db"))?;
    let put = |name: &'static str| {
        let store = store.clone();
        tokio::spawn(async move { store.put_document(name, "written".into()).await })
    };
    let pause = || tokio::time::sleep(std::time::Duration::from_millis(50));
    // Holding the writer's connection: the writer takes the first write and waits for it,
    // while the next three queue up and then commit as one group.
    let connection = store.connection();
    let (locked, release) = (std::sync::mpsc::channel(), std::sync::mpsc::channel::<()>());
    let holder = std::thread::spawn(move || {
        let held = connection.lock();
        let _ = locked.0.send(held.is_ok());
        let _ = release.1.recv();
    });
    assert!(locked.1.recv()?, "the writer's connection is held");
    let alone = put("alone");
    pause().await;
    let before = put("before");
    pause().await;
    let runs = Arc::new(AtomicUsize::new(0));
    let failing = tokio::spawn({
        let (store, runs) = (store.clone(), Arc::clone(&runs));
        async move {
            store
                .run(move |conn| {
                    runs.fetch_add(1, Ordering::SeqCst);
                    conn.execute(
                        "INSERT INTO documents (name, body) VALUES ('half', 'written')",
                        [],
                    )
                    .map_err(backend)?;
                    Err::<(), _>(StoreError::Invalid("the second statement failed".into()))
                })
                .await
        }
    });
    pause().await;
    let after = put("after");
    pause().await;
    release.0.send(())?;
    holder.join().map_err(|_| "the holder panicked")?;
    for write in [alone, before, after] {
        write.await??;
    }
    assert!(matches!(failing.await?, Err(StoreError::Invalid(_))));
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "run once in the group, once alone"
    );
    for name in ["alone", "before", "after"] {
        assert_eq!(
            store.document(name).await?.as_deref(),
            Some("written"),
            "{name}"
        );
    }
    assert_eq!(store.document("half").await?, None);
    Ok(())
}

/// Many writes at once commit in groups; the ones that fail (unknown product) roll back
/// alone, and every other one is committed and answered as such.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn given_concurrent_writes_some_failing_then_each_answer_matches_what_was_committed()
-> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = EmbeddedStore::open(&dir.path().join("herald.db"))?;
    let template = NotificationSettings::defaults();
    store
        .put_product_type(&ProductType {
            id: ResourceId("pt".into()),
            name: "PT".into(),
        })
        .await?;
    store
        .put_product(&Product {
            id: ResourceId("p1".into()),
            name: "P1".into(),
            product_type_id: ResourceId("pt".into()),
            disable_sla_breach_notifications: false,
        })
        .await?;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let writer = store.clone();
        tasks.spawn(async move {
            let user = Username(format!("user{i:03}"));
            writer.put_user(&user, &profile(), &template).await?;
            // Every third one names a product that does not exist: a failing write.
            let product = ResourceId(if i % 3 == 0 {
                "missing".into()
            } else {
                "p1".into()
            });
            let outcome = writer
                .put_product_notifications(&user, &product, &template)
                .await;
            Ok::<_, StoreError>((user, product, outcome.is_ok()))
        });
    }
    let mut checked = 0;
    while let Some(joined) = tasks.join_next().await {
        let (user, product, ok) = joined??;
        assert_eq!(ok, product.as_str() == "p1", "{user}");
        let stored = store.product_notifications(&user, &product).await?;
        assert_eq!(stored.is_some(), ok, "{user}");
        assert!(store.user(&user).await?.is_some(), "{user}");
        checked += 1;
    }
    assert_eq!(checked, 200);
    Ok(())
}

/// A data directory written by the first schema opens, gains the send claims, and keeps
/// its deliveries.
#[tokio::test]
async fn given_a_schema_1_database_then_opening_it_migrates_the_deliveries()
-> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("herald.db");
    let body = serde_json::json!({"id": "e1", "type": "scan_added", "title": "Scan"});
    let event = Event::from_request(&body, || "generated".to_owned())?;
    let delivery = Delivery::queued(&event.id, Destination::Teams, 1_000);
    {
        let store = EmbeddedStore::open(&path)?;
        let record = EventRecord {
            event: event.clone(),
            accepted_at: 1_000,
            delivery_count: 1,
            alert_count: 0,
            enqueued: true,
            complete: false,
        };
        store
            .record_event(&record, &[], std::slice::from_ref(&delivery))
            .await?;
        // Back to schema 1: no claim column.
        store.with_writer(|conn| {
            conn.execute_batch(
                "ALTER TABLE deliveries DROP COLUMN lease_until; PRAGMA user_version = 1;",
            )
            .map_err(backend)
        })?;
    }
    let store = EmbeddedStore::open(&path)?;
    let lease = std::time::Duration::from_secs(120);
    let claim = store
        .claim_delivery(&event.id, &delivery.id, 2_000, lease)
        .await?;
    assert!(matches!(claim, Claim::Claimed(d) if d.id == delivery.id));
    assert_eq!(
        store
            .claim_delivery(&event.id, &delivery.id, 2_000, lease)
            .await?,
        Claim::Held { until: 122_000 }
    );
    assert_eq!(store.release_claims().await?, 1);
    Ok(())
}

/// Schema 2's tables, as that version created them (for the upgrade test).
const SCHEMA_2_TABLES: &str = r#"
    CREATE TABLE alerts (
        username TEXT NOT NULL, id TEXT NOT NULL, event_id TEXT NOT NULL,
        title TEXT NOT NULL, description TEXT NOT NULL, url TEXT NOT NULL,
        icon TEXT NOT NULL, source TEXT NOT NULL, created_at INTEGER NOT NULL,
        read INTEGER NOT NULL, PRIMARY KEY (username, id));
    CREATE INDEX alerts_unread ON alerts(username, id) WHERE read = 0;
    CREATE TABLE queue_messages (
        id TEXT PRIMARY KEY, channel TEXT NOT NULL, body TEXT NOT NULL,
        visible_at INTEGER NOT NULL, receive_count INTEGER NOT NULL DEFAULT 0,
        receipt TEXT, enqueued_at INTEGER NOT NULL, dead INTEGER NOT NULL DEFAULT 0);
    CREATE INDEX queue_messages_ready ON queue_messages(channel, dead, visible_at);
    CREATE TABLE deliveries (
        event_id TEXT NOT NULL REFERENCES events(id) ON DELETE CASCADE, id TEXT NOT NULL,
        channel TEXT NOT NULL, destination TEXT NOT NULL, status TEXT NOT NULL,
        attempts INTEGER NOT NULL, last_error TEXT, updated_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL, lease_until INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (event_id, id));
"#;

#[tokio::test]
async fn given_a_schema_4_database_then_its_queue_loses_the_unique_index_and_not_a_message()
-> Result<(), Box<dyn std::error::Error>> {
    use crate::adapters::{EmbeddedQueue, QueueConfig};
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("herald.db");
    let event = EventId("e1".into());
    let delivery = Delivery::queued(&event, Destination::Teams, 1_000);
    {
        let store = EmbeddedStore::open(&path)?;
        EmbeddedQueue::new(&store, QueueConfig::default())?
            .enqueue_at(std::slice::from_ref(&delivery.message()), 1_000)
            .await?;
        store.with_writer(|conn| {
            conn.execute_batch(
                "DROP INDEX queue_messages_by_event;
                 CREATE UNIQUE INDEX queue_messages_by_delivery ON queue_messages(event_id, id);
                 PRAGMA user_version = 4;",
            )
            .map_err(backend)
        })?;
    }
    let store = EmbeddedStore::open(&path)?;
    let (version, indexes) = store.with_writer(|conn| {
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(backend)?;
        let mut names = conn
            .prepare(
                "SELECT name FROM sqlite_master WHERE type = 'index'
                 AND tbl_name = 'queue_messages' AND sql IS NOT NULL ORDER BY name",
            )
            .map_err(backend)?;
        let names = names
            .query_map([], |row| row.get::<_, String>(0))
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(backend)?;
        Ok((version, names))
    })?;
    assert_eq!(version, SCHEMA_VERSION);
    assert_eq!(indexes, ["queue_messages_by_event", "queue_messages_ready"]);
    // The message is there once, and queueing it again adds nothing.
    queued_once(&store, &delivery).await?;
    Ok(())
}

/// Queues `delivery`'s message again (at 1,500) on an upgraded store, then receives its
/// channel (at 2,000): it must come back once, with the body it was first queued with.
async fn queued_once(
    store: &EmbeddedStore,
    delivery: &Delivery,
) -> Result<
    (
        crate::adapters::EmbeddedQueue,
        Vec<crate::adapters::ReceivedMessage>,
    ),
    Box<dyn std::error::Error>,
> {
    use crate::adapters::{EmbeddedQueue, QueueConfig};
    let queue = EmbeddedQueue::new(store, QueueConfig::default())?;
    queue
        .enqueue_at(std::slice::from_ref(&delivery.message()), 1_500)
        .await?;
    let received = queue.receive(delivery.channel, 10, 2_000).await?;
    assert_eq!(received.len(), 1, "one message, not queued a second time");
    assert_eq!(received[0].message_id, delivery.id.as_str());
    assert_eq!(
        received[0].message()?,
        delivery.message(),
        "the body as it was queued"
    );
    Ok((queue, received))
}

#[tokio::test]
async fn given_a_schema_2_database_then_opening_it_keeps_its_alerts_deliveries_and_queue()
-> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("herald.db");
    let user = Username("ann".into());
    let body = serde_json::json!({"id": "e1", "type": "scan_added", "title": "Scan"});
    let event = Event::from_request(&body, || "generated".to_owned())?;
    let (old, new) = (
        Alert::for_event(&event, &user, 1_000),
        Alert::for_event(&event, &user, 2_000),
    );
    let delivery = Delivery::queued(&event.id, Destination::Teams, 1_000);
    {
        let store = EmbeddedStore::open(&path)?;
        store.with_writer(|conn| {
            conn.execute_batch(&format!(
                "DROP TABLE alerts; DROP TABLE queue_messages; DROP TABLE deliveries;
                 {SCHEMA_2_TABLES} PRAGMA user_version = 2;"
            ))
            .map_err(backend)?;
            conn.execute(
                "INSERT INTO events (id, body, accepted_at, delivery_count, alert_count, enqueued, expires_at)
                 VALUES (?1, ?2, 1000, 1, 2, 1, ?3)",
                params![event.id.as_str(), event.to_stored(), event_expiry(1_000)],
            )
            .map_err(backend)?;
            conn.execute(
                "INSERT INTO deliveries (event_id, id, channel, destination, status, attempts, updated_at, expires_at)
                 VALUES (?1, ?2, 'msteams', ?3, 'queued', 0, 1000, ?4)",
                params![
                    event.id.as_str(),
                    delivery.id.as_str(),
                    delivery.destination.key(),
                    event_expiry(1_000)
                ],
            )
            .map_err(backend)?;
            super::alerts::insert_alerts(conn, &[old.clone(), new.clone()])?;
            conn.execute(
                "UPDATE alerts SET read = 1 WHERE id = ?1",
                [old.id.as_str()],
            )
            .map_err(backend)?;
            conn.execute(
                "INSERT INTO queue_messages (id, channel, body, visible_at, enqueued_at)
                 VALUES (?1, 'msteams', ?2, 1000, 1000)",
                params![
                    delivery.id.as_str(),
                    serde_json::to_string(&delivery.message())
                        .map_err(|e| { StoreError::Backend(e.to_string()) })?
                ],
            )
            .map_err(backend)
        })?;
    }
    let store = EmbeddedStore::open(&path)?;
    let version: i64 = store.with_writer(|conn| {
        conn.pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(backend)
    })?;
    assert_eq!(version, SCHEMA_VERSION);
    // The alerts, their read state and order.
    let page = store.alerts(&user, false, 10, None).await?;
    assert_eq!(page.items.len(), 2);
    assert_eq!(
        (page.items[0].id.as_str(), page.items[0].read),
        (new.id.as_str(), false)
    );
    assert_eq!(
        (page.items[1].id.as_str(), page.items[1].read),
        (old.id.as_str(), true)
    );
    assert_eq!(
        store.alert_counts(&user).await?,
        AlertCounts {
            total: 2,
            unread: 1
        }
    );
    // The delivery, whole, and claimable.
    assert_eq!(
        store.delivery(&event.id, &delivery.id).await?,
        Some(delivery.clone())
    );
    let lease = std::time::Duration::from_secs(60);
    assert!(matches!(
        store
            .claim_delivery(&event.id, &delivery.id, 2_000, lease)
            .await?,
        Claim::Claimed(_)
    ));
    // The queued message: still there once, receivable and deletable by its new handle.
    let (queue, received) = queued_once(&store, &delivery).await?;
    assert!(queue.delete(&received[0].receipt_handle).await?);
    assert!(
        queue
            .receive(Channel::Msteams, 10, 200_000)
            .await?
            .is_empty()
    );
    Ok(())
}

/// A write is seen by the very next read, on a reader connection, and by the cache.
#[tokio::test]
async fn given_a_write_then_the_next_read_and_the_cache_see_it()
-> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = EmbeddedStore::open(&dir.path().join("herald.db"))?;
    assert!(store.administrators().await?.is_empty());
    let admin = Username("root".into());
    let mut p = profile();
    p.is_admin = true;
    store
        .put_user(&admin, &p, &NotificationSettings::defaults())
        .await?;
    assert_eq!(store.administrators().await?.len(), 1);
    assert_eq!(store.administrator_audience().await?.len(), 1);
    p.is_admin = false;
    store
        .put_user(&admin, &p, &NotificationSettings::defaults())
        .await?;
    assert!(store.administrators().await?.is_empty());
    assert!(store.administrator_audience().await?.is_empty());

    let mut settings = store.system_settings().await?;
    settings.team_name = "AppSec".into();
    store.put_system_settings(&settings).await?;
    assert_eq!(store.system_settings().await?.team_name, "AppSec");

    // A product's audience is cached; membership and settings writes are seen at once.
    let (shop, ann) = (ResourceId("7".into()), Username("ann".into()));
    store
        .put_product_type(&ProductType {
            id: ResourceId("web".into()),
            name: "Web".into(),
        })
        .await?;
    let product = Product {
        id: shop.clone(),
        name: "Shop".into(),
        product_type_id: ResourceId("web".into()),
        disable_sla_breach_notifications: false,
    };
    store.put_product(&product).await?;
    store
        .put_user(&ann, &profile(), &NotificationSettings::defaults())
        .await?;
    let members = |a: Option<ProductAudience>| -> Vec<(String, bool)> {
        a.map(|a| a.members)
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                (
                    m.user.username.as_str().to_owned(),
                    m.product_settings.is_some(),
                )
            })
            .collect()
    };
    assert!(members(store.product_audience(&shop).await?).is_empty());
    store.put_product_member(&shop, &ann).await?;
    assert_eq!(
        members(store.product_audience(&shop).await?),
        [("ann".to_owned(), false)]
    );
    let per_product = NotificationSettings::defaults()
        .with(crate::domain::EventType::ScanAdded, &[Channel::Mail]);
    store
        .put_product_notifications(&ann, &shop, &per_product)
        .await?;
    assert_eq!(
        members(store.product_audience(&shop).await?),
        [("ann".to_owned(), true)]
    );
    store.delete_product_member(&shop, &ann).await?;
    assert!(members(store.product_audience(&shop).await?).is_empty());
    Ok(())
}
