//! `EmbeddedStore`: the store ports on SQLite (bundled, WAL), for `herald-local`.
//!
//! One file in the data directory, owned by one process (a lock file says so). Writes commit
//! with `synchronous = FULL`, so anything answered survives a crash or `kill -9`.
//!
//! How it stays fast on two cores:
//! - **Group commit.** Every write (the embedded queue's included) goes to one writing
//!   connection. Writes that arrive while a commit is in progress wait for it and then commit
//!   together: one `BEGIN IMMEDIATE .. COMMIT`, one fsync, for the whole group. Should a
//!   write fail, the group is rolled back and runs again with each write in a savepoint of
//!   its own, so one failure rolls back alone. A caller hears back only after the commit.
//! - **Readers apart.** Reads run on read-only connections (two for a file database), which
//!   in WAL mode see every committed write and never wait for the writer.
//! - **Checkpoints off the commit path.** A thread copies the log into the database every
//!   200 ms, passively, never blocking a reader or the writer; once it has copied everything,
//!   the next write starts the log over. The writer's own automatic checkpoint waits for
//!   16,384 pages of log (64 MiB), a backstop for when writes never pause.
//! - **Writes that sit together.** The rows one event adds are keyed so they land side by
//!   side: deliveries under their event, queue messages in queue order and indexed by their
//!   event (one short entry each, appended). Alerts are clustered by (user, id), so a user's
//!   bell is one seek; filed one by one that costs a page per recipient, so an event for many
//!   users files its alert once with its recipient list, merged into the users' alerts in
//!   batches (`embedded_alerts.rs`).
//! - **A cache** of what every event reads and rarely changes: system settings, the system
//!   and template documents, the administrators (with their personal settings). Writes that
//!   could change them empty it after they commit.
//!
//! Blocking SQLite calls run on Tokio's blocking pool.
//!
//! Access patterns and what serves them:
//! | pattern | served by |
//! |---|---|
//! | system settings, system and template documents | `documents` primary key |
//! | user by username (profile + personal settings) | `users` primary key |
//! | record a user's Slack member id (user must exist) | `UPDATE` on the `users` primary key |
//! | administrators | partial index `users_admin` |
//! | per-product settings of a user | `product_notifications` primary key |
//! | product / product type by id | primary keys |
//! | products of a type (refuse deleting a used type) | index `products_by_type` |
//! | membership checks | `product_members`, `product_type_members` primary keys |
//! | everyone who may view a product, with settings | one query over the member tables, the admin index and `product_notifications`; kept in the cache until a directory or settings write |
//! | a user's memberships and settings (delete user) | `ON DELETE CASCADE` with `*_by_user` indexes |
//! | administrators with their personal settings | partial index `users_admin` |
//! | named recipients with their personal settings | `users` primary key, one lookup each in one task |
//! | record an event once, with alerts, deliveries and their queue messages | one transaction: `INSERT .. ON CONFLICT(id) DO NOTHING` on `events` decides first or duplicate |
//! | an event's record | `events` primary key |
//! | events not yet marked enqueued, oldest first | partial index `events_not_enqueued` |
//! | an event's deliveries | `deliveries` primary key `(event_id, id)` |
//! | one delivery | `deliveries` primary key `(event_id, id)` |
//! | claim a delivery for one send | one `UPDATE .. SET lease_until WHERE status NOT IN (final) AND lease_until <= now RETURNING ..`; when it matches nothing, one primary-key read tells final, held and unknown apart |
//! | at start-up, end a dead process's claims and bring their queue messages back | one transaction: `UPDATE queue_messages SET visible_at = enqueued_at WHERE id IN (claimed deliveries)`, then `UPDATE deliveries SET lease_until = 0`; both scan, once per start |
//! | record an attempt unless the delivery is final (ending its claim) | one `UPDATE .. WHERE status NOT IN (final) RETURNING ..` on the primary key: the check, the write and the read-back are one statement |
//! | users' alerts | see `embedded_alerts.rs` |
//! | expired events and deliveries (the cleanup job) | index `events_by_expiry`; deliveries go with `ON DELETE CASCADE` |

use crate::domain::{
    Alert, AudienceMember, Channel, Delivery, DeliveryId, DeliveryMessage, DeliveryStatus,
    Destination, Event, EventId, NotificationSettings, Product, ProductAccess, ProductAudience,
    ProductType, ResourceId, SystemSettings, User, UserProfile, Username,
};
use crate::ports::{
    AttemptOutcome, Claim, DirectoryStore, EventRecord, EventStore, RecordOutcome, SettingsStore,
    StoreError, UserWrite,
};
use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

// Webhook endpoints and parked messages live in their own module and tables.
#[path = "embedded_webhooks.rs"]
mod webhooks;

// Engagements, findings, risk acceptances and sent reminders (the scheduled checks).
#[path = "embedded_schedule.rs"]
mod schedule;

// Users' alerts, and how one event's alerts are filed.
#[path = "embedded_alerts.rs"]
mod alerts;

/// 1: the first schema; 2: `deliveries.lease_until` (send claims); 3: `alerts` clustered by
/// its key without the unread index, queue messages unique by (event, delivery) (the writes of
/// one event sit together instead of one page per row); 4: `alert_fanout` (an event's alerts
/// filed once, merged into `alerts` in batches), `deliveries` clustered by its key (one
/// B-tree per row written instead of a table and an index); 5: queue messages indexed by
/// event alone instead of unique by (event, delivery), kept one per delivery by the queue
/// (a short entry appended per message instead of a long one inserted in place).
const SCHEMA_VERSION: i64 = 5;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS documents (
    name TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    username TEXT PRIMARY KEY,
    email TEXT,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    slack_email TEXT,
    slack_user_id TEXT,
    is_active INTEGER NOT NULL,
    is_admin INTEGER NOT NULL,
    personal TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS users_admin ON users(username) WHERE is_admin = 1;
CREATE TABLE IF NOT EXISTS product_types (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS products (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    product_type_id TEXT NOT NULL REFERENCES product_types(id),
    disable_sla_breach_notifications INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS products_by_type ON products(product_type_id);
CREATE TABLE IF NOT EXISTS product_type_members (
    product_type_id TEXT NOT NULL REFERENCES product_types(id) ON DELETE CASCADE,
    username TEXT NOT NULL REFERENCES users(username) ON DELETE CASCADE,
    PRIMARY KEY (product_type_id, username)
);
CREATE INDEX IF NOT EXISTS product_type_members_by_user ON product_type_members(username);
CREATE TABLE IF NOT EXISTS product_members (
    product_id TEXT NOT NULL REFERENCES products(id) ON DELETE CASCADE,
    username TEXT NOT NULL REFERENCES users(username) ON DELETE CASCADE,
    PRIMARY KEY (product_id, username)
);
CREATE INDEX IF NOT EXISTS product_members_by_user ON product_members(username);
CREATE TABLE IF NOT EXISTS product_notifications (
    username TEXT NOT NULL REFERENCES users(username) ON DELETE CASCADE,
    product_id TEXT NOT NULL REFERENCES products(id) ON DELETE CASCADE,
    body TEXT NOT NULL,
    PRIMARY KEY (username, product_id)
);
CREATE INDEX IF NOT EXISTS product_notifications_by_product ON product_notifications(product_id);
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    accepted_at INTEGER NOT NULL,
    delivery_count INTEGER NOT NULL,
    alert_count INTEGER NOT NULL,
    enqueued INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_not_enqueued ON events(accepted_at, id) WHERE enqueued = 0;
CREATE INDEX IF NOT EXISTS events_by_expiry ON events(expires_at);
CREATE TABLE IF NOT EXISTS deliveries (
    event_id TEXT NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    channel TEXT NOT NULL,
    destination TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    last_error TEXT,
    updated_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    lease_until INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (event_id, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alerts (
    username TEXT NOT NULL,
    id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    url TEXT NOT NULL,
    icon TEXT NOT NULL,
    source TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    read INTEGER NOT NULL,
    PRIMARY KEY (username, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alert_fanout (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    url TEXT NOT NULL,
    icon TEXT NOT NULL,
    source TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    recipient_count INTEGER NOT NULL,
    recipients TEXT NOT NULL
);
"#;

/// Upgrading from schema 1 or 2, first step: the tables whose layout changed are set aside
/// (with their named indexes dropped), so [`SCHEMA`] and the queue's schema create them anew.
const UPGRADE_FROM_2_SET_ASIDE: &str = r#"
DROP INDEX IF EXISTS alerts_unread;
ALTER TABLE alerts RENAME TO alerts_v2;
DROP INDEX IF EXISTS queue_messages_ready;
DROP INDEX IF EXISTS queue_messages_by_delivery;
ALTER TABLE queue_messages RENAME TO queue_messages_v2;
"#;

/// Upgrading from schema 1 or 2, last step: the rows move into the new tables (queue
/// messages keep their order: `seq` is the old rowid; the event id comes from the body).
const UPGRADE_FROM_2_MOVE: &str = r#"
INSERT INTO alerts (username, id, event_id, title, description, url, icon, source, created_at, read)
    SELECT username, id, event_id, title, description, url, icon, source, created_at, read
    FROM alerts_v2;
DROP TABLE alerts_v2;
INSERT INTO queue_messages (seq, event_id, id, channel, body, visible_at, receive_count, receipt, enqueued_at, dead)
    SELECT rowid, COALESCE(CASE WHEN json_valid(body) THEN json_extract(body, '$.event_id') END, ''),
           id, channel, body, visible_at,
           receive_count, receipt, enqueued_at, dead
    FROM queue_messages_v2 ORDER BY rowid;
DROP TABLE queue_messages_v2;
"#;

/// Upgrading from schema 1 to 3, first step: `deliveries` is set aside, so [`SCHEMA`]
/// creates it anew, clustered by its key.
const UPGRADE_FROM_3_SET_ASIDE: &str = "ALTER TABLE deliveries RENAME TO deliveries_v3;";

/// Upgrading from schema 1 to 3, last step: the deliveries move into the new table.
const UPGRADE_FROM_3_MOVE: &str = r#"
INSERT INTO deliveries (event_id, id, channel, destination, status, attempts, last_error, updated_at, expires_at, lease_until)
    SELECT event_id, id, channel, destination, status, attempts, last_error, updated_at, expires_at, lease_until
    FROM deliveries_v3;
DROP TABLE deliveries_v3;
"#;

/// Upgrading from schema 1 to 4: the queue's unique index by (event, delivery) goes; the
/// queue's schema creates its index by event instead (rows were unique already).
const UPGRADE_FROM_4: &str = "DROP INDEX IF EXISTS queue_messages_by_delivery;";

const DOC_SYSTEM_SETTINGS: &str = "system_settings";
const DOC_SYSTEM_NOTIFICATIONS: &str = "system_notifications";
const DOC_TEMPLATE_NOTIFICATIONS: &str = "template_notifications";

const USER_COLUMNS: &str =
    "username, email, first_name, last_name, slack_email, slack_user_id, is_active, is_admin";

/// The store ports on an embedded SQLite database.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// The one writing connection (the embedded queue shares it).
    conn: Arc<Mutex<Connection>>,
    /// Writes for the writer thread, which commits them in groups.
    writes: std::sync::mpsc::Sender<Box<dyn WriteJob>>,
    /// Read-only connections (a file database only; an in-memory one reads on `conn`).
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    /// Set when an [`EmbeddedQueue`](crate::adapters::EmbeddedQueue) serves this database:
    /// `record_event` then marks an event enqueued in the transaction that queues its
    /// messages, and says so with [`RecordOutcome::Queued`].
    queue_attached: AtomicBool,
    /// Tells the checkpoint thread to stop.
    stop: Arc<AtomicBool>,
    /// What every event reads and rarely changes (see [`Cache`]).
    cache: Mutex<Cache>,
    /// The data directory's lock, held while the store lives.
    lock: Option<std::fs::File>,
}

/// The system settings, system and template documents, the administrators and the audiences
/// of the products events named lately (members with their settings), parsed, as last read.
/// Every write that could change them empties the cache after it commits, and a
/// value read before such a write is never stored after it (the generation check), so a
/// caller told a write is done reads the new value. Sound because one process owns the
/// database: `open` locks the data directory's lock file.
#[derive(Default)]
struct Cache {
    generation: u64,
    system_settings: Option<SystemSettings>,
    system_notifications: Option<NotificationSettings>,
    template_notifications: Option<NotificationSettings>,
    administrators: Option<Vec<User>>,
    administrator_audience: Option<Vec<AudienceMember>>,
    /// Product audiences by product id, at most [`CACHED_AUDIENCES`] (emptied when full).
    audiences: std::collections::HashMap<String, ProductAudience>,
}

/// How many products' audiences the cache keeps.
const CACHED_AUDIENCES: usize = 256;

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EmbeddedStore")
    }
}

/// How many read-only connections a file database gets.
const READERS: usize = 2;
/// The writer's page cache, at most (KiB): the pages an event of a thousand recipients and
/// an alert merge touch stay in memory instead of being spilled mid-transaction. No more:
/// after a commit that split a B-tree page, SQLite walks the whole cache's hash table (a
/// page was numbered out of range for a moment), and with 64 MiB that walk took a tenth of
/// the writer's time under load.
const WRITER_CACHE_KIB: i64 = 16_384;
/// Each reader's page cache, at most (KiB).
const READER_CACHE_KIB: i64 = 16_384;
/// The writer checkpoints itself only past this many pages of log (64 MiB); below it the
/// checkpoint thread does the copying, off the commit path.
const WRITER_AUTOCHECKPOINT_PAGES: i64 = 16_384;
/// Prepared statements each connection keeps (rusqlite keeps 16 by default; the writer runs
/// more than that in turn under load, and preparing one again costs more than running it).
const STATEMENT_CACHE: usize = 64;
/// How often the checkpoint thread copies the write-ahead log into the database.
const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(200);

impl EmbeddedStore {
    /// Opens (creating if needed) the database file at `path`, for this process alone: a
    /// second process opening it while the first has it gets a clear error (the lock is
    /// `<path>.lock`, released when the store is dropped or the process ends, `kill -9`
    /// included).
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut lock_path = path.as_os_str().to_owned();
        lock_path.push(".lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| {
                StoreError::Backend(format!(
                    "cannot open the lock file {}: {e}",
                    Path::new(&lock_path).display()
                ))
            })?;
        // A store of this process dropped a moment ago may still be letting go (a blocking
        // task finishing): allow it a second before calling the directory taken.
        let mut attempts = 0;
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if attempts < 20 => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(StoreError::Backend(format!(
                        "{} is in use by another Herald process; stop it or choose another data directory",
                        path.display()
                    )));
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(StoreError::Backend(format!(
                        "cannot lock {}: {e}",
                        Path::new(&lock_path).display()
                    )));
                }
            }
        }
        let conn = Connection::open(path).map_err(backend)?;
        let mut store = Self::init(conn, READERS, path)?;
        if let Some(inner) = Arc::get_mut(&mut store.inner) {
            inner.lock = Some(lock);
        }
        store.start_checkpoints(path)?;
        Ok(store)
    }

    /// A private in-memory database, for tests and benchmarks.
    pub fn in_memory() -> Result<Self, StoreError> {
        let conn = Connection::open_in_memory().map_err(backend)?;
        Self::init(conn, 0, Path::new(":memory:"))
    }

    fn init(conn: Connection, readers: usize, path: &Path) -> Result<Self, StoreError> {
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(backend)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(backend)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(backend)?;
        conn.pragma_update(None, "temp_store", "MEMORY")
            .map_err(backend)?;
        conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)
            .map_err(backend)?;
        conn.pragma_update(None, "wal_autocheckpoint", WRITER_AUTOCHECKPOINT_PAGES)
            .map_err(backend)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(backend)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(backend)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Backend(format!(
                "the data directory was written by a newer Herald (schema {version}, this one knows {SCHEMA_VERSION})"
            )));
        }
        // One transaction: an upgrade is done whole or not at all.
        conn.execute_batch("BEGIN IMMEDIATE").map_err(backend)?;
        let upgraded = (|| {
            if version == 1 {
                // Schema 1 had no send claims: every delivery starts unclaimed.
                conn.execute_batch(
                    "ALTER TABLE deliveries ADD COLUMN lease_until INTEGER NOT NULL DEFAULT 0",
                )?;
            }
            let (from_2, from_3) = ((1..3).contains(&version), (1..4).contains(&version));
            if from_2 {
                conn.execute_batch(UPGRADE_FROM_2_SET_ASIDE)?;
            }
            if from_3 {
                conn.execute_batch(UPGRADE_FROM_3_SET_ASIDE)?;
            }
            if (1..5).contains(&version) {
                // Schema 5 keeps queue messages unique per delivery without an index on
                // (event, delivery): the queue's index by event replaces it.
                conn.execute_batch(UPGRADE_FROM_4)?;
            }
            conn.execute_batch(SCHEMA)?;
            // The embedded queue's table lives here too, so `record_event` can queue in its
            // transaction.
            conn.execute_batch(crate::adapters::embedded_queue::QUEUE_SCHEMA)?;
            if from_2 {
                conn.execute_batch(UPGRADE_FROM_2_MOVE)?;
            }
            if from_3 {
                conn.execute_batch(UPGRADE_FROM_3_MOVE)?;
            }
            conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
            conn.execute_batch("COMMIT")
        })();
        if let Err(e) = upgraded {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(StoreError::Backend(format!(
                "cannot bring the database from schema {version} to {SCHEMA_VERSION}: {e}"
            )));
        }
        conn.execute_batch(webhooks::WEBHOOK_SCHEMA)
            .map_err(backend)?;
        conn.execute_batch(schedule::SCHEDULE_SCHEMA)
            .map_err(backend)?;
        let readers = (0..readers)
            .map(|_| {
                let reader = Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(backend)?;
                reader
                    .busy_timeout(std::time::Duration::from_secs(5))
                    .map_err(backend)?;
                reader
                    .pragma_update(None, "cache_size", -READER_CACHE_KIB)
                    .map_err(backend)?;
                reader.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
                Ok(Mutex::new(reader))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let conn = Arc::new(Mutex::new(conn));
        let writes = spawn_writer(Arc::clone(&conn))?;
        Ok(Self {
            inner: Arc::new(Inner {
                conn,
                writes,
                readers,
                next_reader: AtomicUsize::new(0),
                queue_attached: AtomicBool::new(false),
                stop: Arc::new(AtomicBool::new(false)),
                cache: Mutex::new(Cache::default()),
                lock: None,
            }),
        })
    }

    /// Moves checkpoint work off the commit path: a thread of its own copies the log into the
    /// database, passively (never waiting for readers or writers), every
    /// [`CHECKPOINT_INTERVAL`], until the store is dropped. When it has copied the whole log,
    /// the next write starts the log over; when writes never pause long enough, the writer's
    /// automatic checkpoint ([`WRITER_AUTOCHECKPOINT_PAGES`]) does.
    fn start_checkpoints(&self, path: &Path) -> Result<(), StoreError> {
        let checkpointer = Connection::open(path).map_err(backend)?;
        let stop = Arc::clone(&self.inner.stop);
        std::thread::Builder::new()
            .name("herald-checkpoint".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(CHECKPOINT_INTERVAL);
                    if let Err(e) =
                        checkpointer.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::warn!(error = %e, "embedded store checkpoint failed; retrying");
                    }
                }
            })
            .map_err(|e| StoreError::Backend(format!("cannot start the checkpoint thread: {e}")))?;
        Ok(())
    }

    pub(crate) fn with_writer<T>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut guard = self.inner.conn.lock().map_err(|_| poisoned())?;
        work(&mut guard)
    }

    /// The writing connection, for tests that need a transaction of their own.
    #[cfg(test)]
    pub(crate) fn connection(&self) -> Arc<Mutex<Connection>> {
        Arc::clone(&self.inner.conn)
    }

    /// Ends every send claim; returns how many there were. Call at start-up only: one
    /// process owns the database, so a claim found then belonged to a process that died
    /// mid-send. Its delivery should not wait for the claim to lapse, nor its queue message
    /// (received by the dead process, so hidden) for the visibility timeout: the message
    /// becomes visible again at once, in the order it was first queued.
    pub async fn release_claims(&self) -> Result<usize, StoreError> {
        self.run(|conn| {
            let tx = conn.savepoint().map_err(backend)?;
            tx.execute(
                "UPDATE queue_messages SET visible_at = enqueued_at
                 WHERE dead = 0
                   AND (event_id, id) IN (SELECT event_id, id FROM deliveries WHERE lease_until > 0)",
                [],
            )
            .map_err(backend)?;
            let released = tx
                .execute(
                    "UPDATE deliveries SET lease_until = 0 WHERE lease_until > 0",
                    [],
                )
                .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(released)
        })
        .await
    }

    /// Notes that an embedded queue serves this database (see [`RecordOutcome::Queued`]).
    pub(crate) fn attach_queue(&self) {
        self.inner.queue_attached.store(true, Ordering::Relaxed);
    }

    /// Runs the write `work` in the writer thread's next group commit.
    ///
    /// Writes that arrive while one commit is in progress wait and then commit together: one
    /// `BEGIN IMMEDIATE .. COMMIT` (one fsync) for the whole group. A write that returns an
    /// error is rolled back whole, and the others commit: `work` may then run a second time,
    /// after a rollback, so it must not act outside the connection (the last run's result is
    /// the answer). The answer comes after the commit: what a caller is told is written is
    /// durable. Never use `transaction()` inside `work`.
    pub(crate) async fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let write = Box::new(Write {
            work,
            result: None,
            reply,
        });
        self.inner
            .writes
            .send(write)
            .map_err(|_| StoreError::Backend("the embedded store's writer stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Backend("the embedded store's writer stopped".into()))?
    }

    /// A primary-key lookup (tens of microseconds from the page cache): run at once on a
    /// free read-only connection, without a trip to the blocking pool; when none is free, as
    /// [`EmbeddedStore::read`].
    pub(crate) async fn lookup<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        for reader in &self.inner.readers {
            if let Ok(reader) = reader.try_lock() {
                return work(&reader);
            }
        }
        self.read(work).await
    }

    /// Runs the read `work` on a read-only connection (WAL: it sees every committed write
    /// and never waits for a writer), on Tokio's blocking pool.
    pub(crate) async fn read<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            if inner.readers.is_empty() {
                let guard = inner.conn.lock().map_err(|_| poisoned())?;
                return work(&guard);
            }
            let start = inner.next_reader.fetch_add(1, Ordering::Relaxed);
            let count = inner.readers.len();
            // A free reader if there is one, else wait for this call's turn.
            for i in 0..count {
                if let Ok(reader) = inner.readers[(start + i) % count].try_lock() {
                    return work(&reader);
                }
            }
            let reader = inner.readers[start % count]
                .lock()
                .map_err(|_| poisoned())?;
            work(&reader)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("embedded store task failed: {e}")))?
    }

    /// `get` from the cache, else `load` and keep it (unless a write came in between).
    async fn cached<T, L>(
        &self,
        get: fn(&Cache) -> &Option<T>,
        set: fn(&mut Cache) -> &mut Option<T>,
        load: L,
    ) -> Result<T, StoreError>
    where
        T: Clone,
        L: std::future::Future<Output = Result<T, StoreError>>,
    {
        self.cached_with(|c| get(c).clone(), |c, value| *set(c) = Some(value), load)
            .await
    }

    /// `get` from the cache, else `load` and `keep` it, unless a write came in between (the
    /// generation check): a value read before a write is never kept after it.
    async fn cached_with<T, L>(
        &self,
        get: impl FnOnce(&Cache) -> Option<T>,
        keep: impl FnOnce(&mut Cache, T),
        load: L,
    ) -> Result<T, StoreError>
    where
        T: Clone,
        L: std::future::Future<Output = Result<T, StoreError>>,
    {
        let generation = {
            let cache = self.inner.cache.lock().map_err(|_| poisoned())?;
            if let Some(value) = get(&cache) {
                return Ok(value);
            }
            cache.generation
        };
        let value = load.await?;
        let mut cache = self.inner.cache.lock().map_err(|_| poisoned())?;
        if cache.generation == generation {
            keep(&mut cache, value.clone());
        }
        Ok(value)
    }

    /// Empties the cache; call after a write to documents or users has committed (or
    /// failed).
    fn invalidate(&self) {
        let mut cache = match self.inner.cache.lock() {
            Ok(cache) => cache,
            Err(poisoned) => poisoned.into_inner(),
        };
        let generation = cache.generation.wrapping_add(1);
        *cache = Cache {
            generation,
            ..Cache::default()
        };
    }

    /// A write to documents or users, followed by [`EmbeddedStore::invalidate`].
    async fn run_invalidating<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let result = self.run(work).await;
        self.invalidate();
        result
    }

    async fn document(&self, name: &'static str) -> Result<Option<String>, StoreError> {
        self.lookup(move |conn| {
            conn.query_row("SELECT body FROM documents WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn put_document(&self, name: &'static str, body: String) -> Result<(), StoreError> {
        self.run_invalidating(move |conn| {
            conn.execute(
                "INSERT INTO documents (name, body) VALUES (?1, ?2)
                 ON CONFLICT(name) DO UPDATE SET body = excluded.body",
                params![name, body],
            )
            .map(|_| ())
            .map_err(backend)
        })
        .await
    }

    /// Everyone who may view `product_id`, with their settings, from the database.
    async fn read_product_audience(
        &self,
        product_id: String,
    ) -> Result<Option<ProductAudience>, StoreError> {
        self.read(move |conn| {
            let Some(product) = read_product(conn, &product_id)? else {
                return Ok(None);
            };
            let mut stmt = conn
                .prepare_cached(
                    "SELECT u.username, u.email, u.first_name, u.last_name, u.slack_email,
                        u.slack_user_id, u.is_active, u.is_admin, u.personal, pn.body FROM users u
                     LEFT JOIN product_notifications pn ON pn.username = u.username AND pn.product_id = ?1
                     WHERE u.is_admin = 1
                        OR u.username IN (SELECT username FROM product_members WHERE product_id = ?1)
                        OR u.username IN (SELECT username FROM product_type_members WHERE product_type_id = ?2)
                     ORDER BY u.username",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![product_id, product.product_type_id.as_str()], |row| {
                    Ok((user_from_row(row)?, row.get::<_, String>(8)?, row.get::<_, Option<String>>(9)?))
                })
                .map_err(backend)?;
            let mut members = Vec::new();
            for row in rows {
                let (user, personal, product_settings) = row.map_err(backend)?;
                members.push(AudienceMember {
                    user,
                    personal: parse_settings(&personal)?,
                    product_settings: product_settings.as_deref().map(parse_settings).transpose()?,
                });
            }
            Ok(Some(ProductAudience { product, members }))
        })
        .await
    }

    async fn notifications_document(
        &self,
        name: &'static str,
    ) -> Result<NotificationSettings, StoreError> {
        match self.document(name).await? {
            Some(body) => parse_settings(&body),
            None => Ok(NotificationSettings::defaults()),
        }
    }
}

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn poisoned() -> StoreError {
    StoreError::Backend("embedded store lock poisoned".into())
}

/// One write waiting for a group commit.
trait WriteJob: Send {
    /// Runs the write inside the group's transaction; `false` when it failed. It may run
    /// again after a rollback (the last run's result is the answer).
    fn run(&mut self, conn: &mut Connection) -> bool;
    /// Answers the caller once the group's fate is known: `commit` is the commit's outcome
    /// (or why the group could not run at all).
    fn finish(self: Box<Self>, commit: Result<(), &StoreError>);
}

struct Write<T, F> {
    work: F,
    result: Option<Result<T, StoreError>>,
    reply: tokio::sync::oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> WriteJob for Write<T, F>
where
    T: Send,
    F: FnMut(&mut Connection) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, conn: &mut Connection) -> bool {
        let result = (self.work)(conn);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, commit: Result<(), &StoreError>) {
        let Write {
            work,
            result,
            reply,
        } = *self;
        // What the write holds (records shared with its caller) is let go before the answer,
        // so the caller frees them, not the writer thread.
        drop(work);
        let answer = match (result, commit) {
            // A write that failed answers with its own error, whatever became of the group.
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (Some(Ok(_)) | None, Err(e)) => Err(StoreError::Backend(format!(
                "the write was not committed: {e}"
            ))),
            (None, Ok(())) => Err(StoreError::Backend("the write never ran".into())),
        };
        // The caller may have gone away (a dropped request); the write stands regardless.
        let _ = reply.send(answer);
    }
}

/// Starts the writer thread: it waits for a write, takes every other write already waiting,
/// commits them as one group, and again, until the store is dropped (every sender gone).
fn spawn_writer(
    conn: Arc<Mutex<Connection>>,
) -> Result<std::sync::mpsc::Sender<Box<dyn WriteJob>>, StoreError> {
    let (writes, queued) = std::sync::mpsc::channel::<Box<dyn WriteJob>>();
    std::thread::Builder::new()
        .name("herald-writer".into())
        .spawn(move || {
            while let Ok(first) = queued.recv() {
                let mut group = vec![first];
                group.extend(queued.try_iter());
                match conn.lock() {
                    Ok(mut conn) => commit_group(&mut conn, group),
                    Err(_) => {
                        for write in group {
                            write.finish(Err(&poisoned()));
                        }
                    }
                }
            }
        })
        .map_err(|e| StoreError::Backend(format!("cannot start the writer thread: {e}")))?;
    Ok(writes)
}

/// Commits `jobs` as one transaction. Writes seldom fail, so the group first runs without
/// savepoints (a savepoint copies every page a write changes to the statement journal
/// first): when all succeed, that is the commit. When one fails, the whole transaction is
/// rolled back and the group runs again with a savepoint per write, so the failed one is
/// rolled back alone and the others commit (a write alone is simply rolled back).
fn commit_group(conn: &mut Connection, mut jobs: Vec<Box<dyn WriteJob>>) {
    let outcome = (|| {
        conn.execute_batch("BEGIN IMMEDIATE").map_err(backend)?;
        if jobs.iter_mut().all(|job| job.run(conn)) {
            return conn.execute_batch("COMMIT").map_err(backend);
        }
        if !conn.is_autocommit() {
            conn.execute_batch("ROLLBACK").map_err(backend)?;
        }
        if jobs.len() == 1 {
            return Ok(());
        }
        conn.execute_batch("BEGIN IMMEDIATE").map_err(backend)?;
        for job in &mut jobs {
            conn.execute_batch("SAVEPOINT herald_write")
                .map_err(backend)?;
            if !job.run(conn) {
                conn.execute_batch("ROLLBACK TO herald_write")
                    .map_err(backend)?;
            }
            conn.execute_batch("RELEASE herald_write")
                .map_err(backend)?;
        }
        conn.execute_batch("COMMIT").map_err(backend)
    })();
    if outcome.is_err()
        && !conn.is_autocommit()
        && let Err(e) = conn.execute_batch("ROLLBACK")
    {
        tracing::error!(error = %e, "embedded store rollback failed");
    }
    if let Err(e) = &outcome {
        tracing::error!(error = %e, writes = jobs.len(), "embedded store group commit failed");
    }
    for job in jobs {
        job.finish(outcome.as_ref().map(|_| ()));
    }
}

fn parse_settings(body: &str) -> Result<NotificationSettings, StoreError> {
    NotificationSettings::from_stored(body)
        .map_err(|e| StoreError::Backend(format!("unreadable settings document: {e}")))
}

fn user_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        username: Username(row.get(0)?),
        profile: UserProfile {
            email: row.get(1)?,
            first_name: row.get(2)?,
            last_name: row.get(3)?,
            slack_email: row.get(4)?,
            slack_user_id: row.get(5)?,
            is_active: row.get(6)?,
            is_admin: row.get(7)?,
        },
    })
}

fn exists(conn: &Connection, sql: &str, key: &str) -> Result<bool, StoreError> {
    conn.query_row(sql, [key], |_| Ok(()))
        .optional()
        .map(|found| found.is_some())
        .map_err(backend)
}

fn require(conn: &Connection, sql: &str, key: &str, what: &str) -> Result<(), StoreError> {
    if exists(conn, sql, key)? {
        Ok(())
    } else {
        Err(StoreError::NotFound(what.to_owned()))
    }
}

const USER_EXISTS: &str = "SELECT 1 FROM users WHERE username = ?1";
const PRODUCT_EXISTS: &str = "SELECT 1 FROM products WHERE id = ?1";
const PRODUCT_TYPE_EXISTS: &str = "SELECT 1 FROM product_types WHERE id = ?1";

#[async_trait]
impl SettingsStore for EmbeddedStore {
    async fn system_settings(&self) -> Result<SystemSettings, StoreError> {
        self.cached(|c| &c.system_settings, |c| &mut c.system_settings, async {
            match self.document(DOC_SYSTEM_SETTINGS).await? {
                Some(body) => SystemSettings::from_stored(&body)
                    .map_err(|e| StoreError::Backend(format!("unreadable system settings: {e}"))),
                None => Ok(SystemSettings::default()),
            }
        })
        .await
    }

    async fn put_system_settings(&self, settings: &SystemSettings) -> Result<(), StoreError> {
        self.put_document(DOC_SYSTEM_SETTINGS, settings.to_stored())
            .await
    }

    async fn system_notifications(&self) -> Result<NotificationSettings, StoreError> {
        self.cached(
            |c| &c.system_notifications,
            |c| &mut c.system_notifications,
            self.notifications_document(DOC_SYSTEM_NOTIFICATIONS),
        )
        .await
    }

    async fn put_system_notifications(
        &self,
        settings: &NotificationSettings,
    ) -> Result<(), StoreError> {
        self.put_document(DOC_SYSTEM_NOTIFICATIONS, settings.to_stored())
            .await
    }

    async fn template_notifications(&self) -> Result<NotificationSettings, StoreError> {
        self.cached(
            |c| &c.template_notifications,
            |c| &mut c.template_notifications,
            self.notifications_document(DOC_TEMPLATE_NOTIFICATIONS),
        )
        .await
    }

    async fn put_template_notifications(
        &self,
        settings: &NotificationSettings,
    ) -> Result<(), StoreError> {
        self.put_document(DOC_TEMPLATE_NOTIFICATIONS, settings.to_stored())
            .await
    }

    async fn personal_notifications(
        &self,
        user: &Username,
    ) -> Result<NotificationSettings, StoreError> {
        let username = user.as_str().to_owned();
        let body: Option<String> = self
            .lookup(move |conn| {
                conn.query_row(
                    "SELECT personal FROM users WHERE username = ?1",
                    [&username],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)
            })
            .await?;
        match body {
            Some(body) => parse_settings(&body),
            None => Err(StoreError::NotFound(format!("user {user}"))),
        }
    }

    async fn put_personal_notifications(
        &self,
        user: &Username,
        settings: &NotificationSettings,
    ) -> Result<(), StoreError> {
        let username = user.as_str().to_owned();
        let body = settings.to_stored();
        let changed = self
            .run_invalidating(move |conn| {
                conn.execute(
                    "UPDATE users SET personal = ?2 WHERE username = ?1",
                    params![username, body],
                )
                .map_err(backend)
            })
            .await?;
        if changed == 0 {
            return Err(StoreError::NotFound(format!("user {user}")));
        }
        Ok(())
    }

    async fn product_notifications(
        &self,
        user: &Username,
        product: &ResourceId,
    ) -> Result<Option<NotificationSettings>, StoreError> {
        let (username, product_id) = (user.as_str().to_owned(), product.as_str().to_owned());
        let body: Option<String> = self
            .lookup(move |conn| {
                conn.query_row(
                    "SELECT body FROM product_notifications WHERE username = ?1 AND product_id = ?2",
                    params![username, product_id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)
            })
            .await?;
        body.map(|b| parse_settings(&b)).transpose()
    }

    async fn put_product_notifications(
        &self,
        user: &Username,
        product: &ResourceId,
        settings: &NotificationSettings,
    ) -> Result<(), StoreError> {
        let (username, product_id) = (user.as_str().to_owned(), product.as_str().to_owned());
        let (user_label, product_label) = (format!("user {user}"), format!("product {product}"));
        let body = settings.to_stored();
        self.run_invalidating(move |conn| {
            let tx = conn.savepoint().map_err(backend)?;
            require(&tx, USER_EXISTS, &username, &user_label)?;
            require(&tx, PRODUCT_EXISTS, &product_id, &product_label)?;
            tx.execute(
                "INSERT INTO product_notifications (username, product_id, body) VALUES (?1, ?2, ?3)
                 ON CONFLICT(username, product_id) DO UPDATE SET body = excluded.body",
                params![username, product_id, body],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn delete_product_notifications(
        &self,
        user: &Username,
        product: &ResourceId,
    ) -> Result<bool, StoreError> {
        let (username, product_id) = (user.as_str().to_owned(), product.as_str().to_owned());
        self.run_invalidating(move |conn| {
            conn.execute(
                "DELETE FROM product_notifications WHERE username = ?1 AND product_id = ?2",
                params![username, product_id],
            )
            .map(|n| n > 0)
            .map_err(backend)
        })
        .await
    }
}

#[async_trait]
impl DirectoryStore for EmbeddedStore {
    async fn put_user(
        &self,
        user: &Username,
        profile: &UserProfile,
        template: &NotificationSettings,
    ) -> Result<UserWrite, StoreError> {
        let username = user.as_str().to_owned();
        let p = profile.clone();
        let template = template.to_stored();
        self.run_invalidating(move |conn| {
            let tx = conn.savepoint().map_err(backend)?;
            let existed = exists(&tx, USER_EXISTS, &username)?;
            tx.execute(
                "INSERT INTO users (username, email, first_name, last_name, slack_email, slack_user_id, is_active, is_admin, personal)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT(username) DO UPDATE SET
                    email = excluded.email, first_name = excluded.first_name, last_name = excluded.last_name,
                    slack_email = excluded.slack_email, slack_user_id = excluded.slack_user_id,
                    is_active = excluded.is_active, is_admin = excluded.is_admin",
                params![
                    username, p.email, p.first_name, p.last_name, p.slack_email, p.slack_user_id,
                    p.is_active, p.is_admin, template
                ],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(if existed { UserWrite::Updated } else { UserWrite::Created })
        })
        .await
    }

    async fn user(&self, user: &Username) -> Result<Option<User>, StoreError> {
        let username = user.as_str().to_owned();
        self.lookup(move |conn| {
            conn.query_row(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE username = ?1"),
                [username],
                user_from_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn delete_user(&self, user: &Username) -> Result<bool, StoreError> {
        let username = user.as_str().to_owned();
        self.run_invalidating(move |conn| {
            conn.execute("DELETE FROM users WHERE username = ?1", [&username])
                .map(|n| n > 0)
                .map_err(backend)
        })
        .await
    }

    async fn set_slack_user_id(
        &self,
        user: &Username,
        slack_user_id: &str,
    ) -> Result<bool, StoreError> {
        let (username, id) = (user.as_str().to_owned(), slack_user_id.to_owned());
        self.run_invalidating(move |conn| {
            conn.execute(
                "UPDATE users SET slack_user_id = ?2 WHERE username = ?1",
                params![username, id],
            )
            .map(|n| n > 0)
            .map_err(backend)
        })
        .await
    }

    async fn put_product_type(&self, product_type: &ProductType) -> Result<bool, StoreError> {
        let (id, name) = (
            product_type.id.as_str().to_owned(),
            product_type.name.clone(),
        );
        self.run(move |conn| {
            let tx = conn.savepoint().map_err(backend)?;
            let existed = exists(&tx, PRODUCT_TYPE_EXISTS, &id)?;
            tx.execute(
                "INSERT INTO product_types (id, name) VALUES (?1, ?2)
                 ON CONFLICT(id) DO UPDATE SET name = excluded.name",
                params![id, name],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(!existed)
        })
        .await
    }

    async fn product_type(&self, id: &ResourceId) -> Result<Option<ProductType>, StoreError> {
        let id = id.as_str().to_owned();
        self.lookup(move |conn| {
            conn.query_row(
                "SELECT id, name FROM product_types WHERE id = ?1",
                [id],
                |r| {
                    Ok(ProductType {
                        id: ResourceId(r.get(0)?),
                        name: r.get(1)?,
                    })
                },
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn delete_product_type(&self, id: &ResourceId) -> Result<bool, StoreError> {
        let key = id.as_str().to_owned();
        let label = id.to_string();
        self.run_invalidating(move |conn| {
            let tx = conn.savepoint().map_err(backend)?;
            if exists(
                &tx,
                "SELECT 1 FROM products WHERE product_type_id = ?1 LIMIT 1",
                &key,
            )? {
                return Err(StoreError::Conflict(format!(
                    "product type {label} still has products; delete or move them first"
                )));
            }
            let n = tx
                .execute("DELETE FROM product_types WHERE id = ?1", [&key])
                .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }

    async fn put_product_type_member(
        &self,
        id: &ResourceId,
        user: &Username,
    ) -> Result<bool, StoreError> {
        self.put_member(
            "product_type_members",
            "product_type_id",
            PRODUCT_TYPE_EXISTS,
            "product type",
            id,
            user,
        )
        .await
    }

    async fn delete_product_type_member(
        &self,
        id: &ResourceId,
        user: &Username,
    ) -> Result<bool, StoreError> {
        self.delete_member("product_type_members", "product_type_id", id, user)
            .await
    }

    async fn put_product(&self, product: &Product) -> Result<bool, StoreError> {
        let p = product.clone();
        self.run_invalidating(move |conn| {
            let tx = conn.savepoint().map_err(backend)?;
            require(
                &tx,
                PRODUCT_TYPE_EXISTS,
                p.product_type_id.as_str(),
                &format!("product type {}", p.product_type_id),
            )?;
            let existed = exists(&tx, PRODUCT_EXISTS, p.id.as_str())?;
            tx.execute(
                "INSERT INTO products (id, name, product_type_id, disable_sla_breach_notifications) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(id) DO UPDATE SET name = excluded.name, product_type_id = excluded.product_type_id,
                    disable_sla_breach_notifications = excluded.disable_sla_breach_notifications",
                params![p.id.as_str(), p.name, p.product_type_id.as_str(), p.disable_sla_breach_notifications],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(!existed)
        })
        .await
    }

    async fn product(&self, id: &ResourceId) -> Result<Option<Product>, StoreError> {
        let id = id.as_str().to_owned();
        self.lookup(move |conn| read_product(conn, &id)).await
    }

    async fn delete_product(&self, id: &ResourceId) -> Result<bool, StoreError> {
        let id = id.as_str().to_owned();
        self.run_invalidating(move |conn| {
            conn.execute("DELETE FROM products WHERE id = ?1", [&id])
                .map(|n| n > 0)
                .map_err(backend)
        })
        .await
    }

    async fn put_product_member(
        &self,
        id: &ResourceId,
        user: &Username,
    ) -> Result<bool, StoreError> {
        self.put_member(
            "product_members",
            "product_id",
            PRODUCT_EXISTS,
            "product",
            id,
            user,
        )
        .await
    }

    async fn delete_product_member(
        &self,
        id: &ResourceId,
        user: &Username,
    ) -> Result<bool, StoreError> {
        self.delete_member("product_members", "product_id", id, user)
            .await
    }

    async fn product_access(
        &self,
        user: &Username,
        product: &ResourceId,
    ) -> Result<ProductAccess, StoreError> {
        let (username, product_id) = (user.as_str().to_owned(), product.as_str().to_owned());
        let label = format!("product {product}");
        self.lookup(move |conn| {
            let product = read_product(conn, &product_id)?.ok_or(StoreError::NotFound(label))?;
            let is_admin = conn
                .query_row("SELECT is_admin FROM users WHERE username = ?1", [&username], |r| r.get::<_, bool>(0))
                .optional()
                .map_err(backend)?
                .unwrap_or(false);
            let is_product_member = conn
                .query_row(
                    "SELECT 1 FROM product_members WHERE product_id = ?1 AND username = ?2",
                    params![product_id, username],
                    |_| Ok(()),
                )
                .optional()
                .map_err(backend)?
                .is_some();
            let is_product_type_member = conn
                .query_row(
                    "SELECT 1 FROM product_type_members WHERE product_type_id = ?1 AND username = ?2",
                    params![product.product_type_id.as_str(), username],
                    |_| Ok(()),
                )
                .optional()
                .map_err(backend)?
                .is_some();
            Ok(ProductAccess { is_admin, is_product_member, is_product_type_member })
        })
        .await
    }

    async fn product_audience(
        &self,
        product: &ResourceId,
    ) -> Result<Option<ProductAudience>, StoreError> {
        let product_id = product.as_str().to_owned();
        self.cached_with(
            |c| c.audiences.get(product.as_str()).cloned().map(Some),
            |c, audience| {
                if let Some(audience) = audience {
                    if c.audiences.len() >= CACHED_AUDIENCES {
                        c.audiences.clear();
                    }
                    c.audiences
                        .insert(audience.product.id.as_str().to_owned(), audience);
                }
            },
            self.read_product_audience(product_id),
        )
        .await
    }

    async fn administrator_audience(&self) -> Result<Vec<AudienceMember>, StoreError> {
        self.cached(
            |c| &c.administrator_audience,
            |c| &mut c.administrator_audience,
            self.read_administrator_audience(),
        )
        .await
    }

    async fn recipients(&self, users: &[Username]) -> Result<Vec<AudienceMember>, StoreError> {
        let names: Vec<String> = users.iter().map(|u| u.as_str().to_owned()).collect();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {USER_COLUMNS}, personal FROM users WHERE username = ?1"
                ))
                .map_err(backend)?;
            let mut members = Vec::with_capacity(names.len());
            for name in &names {
                let row = stmt
                    .query_row([name], |row| {
                        Ok((user_from_row(row)?, row.get::<_, String>(8)?))
                    })
                    .optional()
                    .map_err(backend)?;
                if let Some((user, personal)) = row {
                    members.push(AudienceMember {
                        user,
                        personal: parse_settings(&personal)?,
                        product_settings: None,
                    });
                }
            }
            Ok(members)
        })
        .await
    }

    async fn administrators(&self) -> Result<Vec<User>, StoreError> {
        self.cached(
            |c| &c.administrators,
            |c| &mut c.administrators,
            self.read_administrators(),
        )
        .await
    }
}

fn read_product(conn: &Connection, id: &str) -> Result<Option<Product>, StoreError> {
    conn.query_row(
        "SELECT id, name, product_type_id, disable_sla_breach_notifications FROM products WHERE id = ?1",
        [id],
        |r| {
            Ok(Product {
                id: ResourceId(r.get(0)?),
                name: r.get(1)?,
                product_type_id: ResourceId(r.get(2)?),
                disable_sla_breach_notifications: r.get(3)?,
            })
        },
    )
    .optional()
    .map_err(backend)
}

impl EmbeddedStore {
    async fn read_administrator_audience(&self) -> Result<Vec<AudienceMember>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {USER_COLUMNS}, personal FROM users WHERE is_admin = 1 ORDER BY username"
                ))
                .map_err(backend)?;
            let rows = stmt
                .query_map([], |row| Ok((user_from_row(row)?, row.get::<_, String>(8)?)))
                .map_err(backend)?;
            rows.map(|row| {
                let (user, personal) = row.map_err(backend)?;
                Ok(AudienceMember { user, personal: parse_settings(&personal)?, product_settings: None })
            })
            .collect()
        })
        .await
    }

    async fn read_administrators(&self) -> Result<Vec<User>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {USER_COLUMNS} FROM users WHERE is_admin = 1 ORDER BY username"
                ))
                .map_err(backend)?;
            let users = stmt
                .query_map([], user_from_row)
                .map_err(backend)?
                .collect::<rusqlite::Result<Vec<User>>>()
                .map_err(backend)?;
            Ok(users)
        })
        .await
    }

    async fn put_member(
        &self,
        table: &'static str,
        column: &'static str,
        parent_exists: &'static str,
        parent_kind: &'static str,
        id: &ResourceId,
        user: &Username,
    ) -> Result<bool, StoreError> {
        let (key, username) = (id.as_str().to_owned(), user.as_str().to_owned());
        let (parent_label, user_label) = (format!("{parent_kind} {id}"), format!("user {user}"));
        self.run_invalidating(move |conn| {
            let tx = conn.savepoint().map_err(backend)?;
            require(&tx, parent_exists, &key, &parent_label)?;
            require(&tx, USER_EXISTS, &username, &user_label)?;
            let n = tx
                .execute(
                    &format!("INSERT OR IGNORE INTO {table} ({column}, username) VALUES (?1, ?2)"),
                    params![key, username],
                )
                .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }

    async fn delete_member(
        &self,
        table: &'static str,
        column: &'static str,
        id: &ResourceId,
        user: &Username,
    ) -> Result<bool, StoreError> {
        let (key, username) = (id.as_str().to_owned(), user.as_str().to_owned());
        self.run_invalidating(move |conn| {
            conn.execute(
                &format!("DELETE FROM {table} WHERE {column} = ?1 AND username = ?2"),
                params![key, username],
            )
            .map(|n| n > 0)
            .map_err(backend)
        })
        .await
    }
}

/// When an event accepted at `accepted_at_ms` and its deliveries may be deleted, in seconds
/// since the Unix epoch (the same attribute as DynamoDB's TTL).
fn event_expiry(accepted_at_ms: u64) -> i64 {
    let seconds = accepted_at_ms / 1000 + crate::intake::EVENT_RETENTION_DAYS * 86_400;
    i64::try_from(seconds).unwrap_or(i64::MAX)
}

/// A `u64` for an SQLite INTEGER column (which is signed).
fn integer(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// An INTEGER column read back as the unsigned count or time it was written from.
fn unsigned<T: TryFrom<i64>>(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<T> {
    let value: i64 = row.get(index)?;
    T::try_from(value).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(index, value))
}

const EVENT_COLUMNS: &str = "id, body, accepted_at, delivery_count, alert_count, enqueued";

fn read_event(conn: &Connection, id: &str) -> Result<Option<EventRecord>, StoreError> {
    let row = conn
        .query_row(
            &format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = ?1"),
            [id],
            |r| {
                Ok((
                    r.get::<_, String>(1)?,
                    unsigned::<u64>(r, 2)?,
                    unsigned::<u32>(r, 3)?,
                    unsigned::<u32>(r, 4)?,
                    r.get::<_, bool>(5)?,
                ))
            },
        )
        .optional()
        .map_err(backend)?;
    let Some((body, accepted_at, delivery_count, alert_count, enqueued)) = row else {
        return Ok(None);
    };
    let event = Event::from_stored(&body)
        .map_err(|e| StoreError::Backend(format!("unreadable stored event {id}: {e}")))?;
    Ok(Some(EventRecord {
        event,
        accepted_at,
        delivery_count,
        alert_count,
        enqueued,
        // One transaction writes everything.
        complete: true,
    }))
}

const DELIVERY_COLUMNS: &str =
    "id, event_id, channel, destination, status, attempts, last_error, updated_at";

fn delivery_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Delivery, StoreError>> {
    let (id, event_id, channel, destination, status): (String, String, String, String, String) = (
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
    );
    let (attempts, last_error, updated_at) = (unsigned(row, 5)?, row.get(6)?, unsigned(row, 7)?);
    let unreadable = |what: &str, value: &str| {
        StoreError::Backend(format!("delivery {id} has an unreadable {what} `{value}`"))
    };
    let delivery = (|| {
        Ok(Delivery {
            channel: Channel::from_name(&channel).ok_or_else(|| unreadable("channel", &channel))?,
            destination: Destination::from_key(&destination)
                .ok_or_else(|| unreadable("destination", &destination))?,
            status: DeliveryStatus::from_name(&status)
                .ok_or_else(|| unreadable("status", &status))?,
            id: DeliveryId::from_stored(id.clone()),
            event_id: EventId(event_id),
            attempts,
            last_error,
            updated_at,
        })
    })();
    Ok(delivery)
}

#[async_trait]
impl EventStore for EmbeddedStore {
    async fn record_event(
        &self,
        record: &EventRecord,
        alerts: &[Alert],
        deliveries: &[Delivery],
    ) -> Result<RecordOutcome, StoreError> {
        self.record_event_shared(record.clone(), alerts.into(), deliveries.into())
            .await
    }

    async fn record_event_shared(
        &self,
        record: EventRecord,
        alerts: Arc<[Alert]>,
        deliveries: Arc<[Delivery]>,
    ) -> Result<RecordOutcome, StoreError> {
        let queued = self.inner.queue_attached.load(Ordering::Relaxed);
        self.run(move |conn| {
            let id = record.event.id.as_str().to_owned();
            let expires_at = event_expiry(record.accepted_at);
            // One write (rolled back whole if any statement fails): the event, its alerts,
            // its deliveries and their queue messages are durable together or not at all.
            let inserted = conn
                .prepare_cached(
                    "INSERT INTO events (id, body, accepted_at, delivery_count, alert_count, enqueued, expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(id) DO NOTHING",
                )
                .and_then(|mut insert| insert.execute(
                    params![
                        id,
                        record.event.to_stored(),
                        integer(record.accepted_at),
                        record.delivery_count,
                        record.alert_count,
                        record.enqueued || queued,
                        expires_at
                    ],
                ))
                .map_err(backend)?;
            if inserted == 0 {
                let first = read_event(conn, &id)?
                    .ok_or_else(|| StoreError::Backend(format!("event {id} vanished while recording")))?;
                return Ok(RecordOutcome::Duplicate(first));
            }
            {
                alerts::file_event_alerts(conn, &alerts)?;
                let mut insert_delivery = conn
                    .prepare_cached(&format!(
                        "INSERT INTO deliveries ({DELIVERY_COLUMNS}, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                         ON CONFLICT(event_id, id) DO NOTHING"
                    ))
                    .map_err(backend)?;
                for d in deliveries.iter() {
                    insert_delivery
                        .execute(params![
                            d.id.as_str(),
                            id,
                            d.channel.name(),
                            d.destination.key(),
                            d.status.name(),
                            d.attempts,
                            d.last_error,
                            integer(d.updated_at),
                            expires_at
                        ])
                        .map_err(backend)?;
                }
            }
            // The queue messages commit with the event: an event answered 202 is never lost.
            let messages: Vec<DeliveryMessage> = deliveries.iter().map(Delivery::message).collect();
            crate::adapters::embedded_queue::enqueue_in(conn, &messages, record.accepted_at)?;
            Ok(if queued {
                RecordOutcome::Queued
            } else {
                RecordOutcome::Recorded
            })
        })
        .await
    }

    async fn mark_event_enqueued(&self, id: &EventId) -> Result<(), StoreError> {
        let id = id.as_str().to_owned();
        self.run(move |conn| {
            // An unknown (or expired and deleted) event is fine: nothing is left to enqueue.
            conn.execute("UPDATE events SET enqueued = 1 WHERE id = ?1", [&id])
                .map(|_| ())
                .map_err(backend)
        })
        .await
    }

    async fn events_not_enqueued(&self, limit: usize) -> Result<Vec<EventId>, StoreError> {
        let limit = integer(limit as u64);
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id FROM events WHERE enqueued = 0 ORDER BY accepted_at, id LIMIT ?1",
                )
                .map_err(backend)?;
            let ids = stmt
                .query_map([limit], |r| r.get::<_, String>(0).map(EventId))
                .map_err(backend)?
                .collect::<rusqlite::Result<Vec<EventId>>>()
                .map_err(backend)?;
            Ok(ids)
        })
        .await
    }

    async fn event(&self, id: &EventId) -> Result<Option<EventRecord>, StoreError> {
        let id = id.as_str().to_owned();
        self.lookup(move |conn| read_event(conn, &id)).await
    }

    async fn deliveries(&self, id: &EventId) -> Result<Vec<Delivery>, StoreError> {
        let id = id.as_str().to_owned();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE event_id = ?1 ORDER BY id"
                ))
                .map_err(backend)?;
            let rows = stmt.query_map([id], delivery_from_row).map_err(backend)?;
            rows.map(|row| row.map_err(backend)?).collect()
        })
        .await
    }

    async fn delivery(
        &self,
        event: &EventId,
        id: &DeliveryId,
    ) -> Result<Option<Delivery>, StoreError> {
        let (event, id) = (event.as_str().to_owned(), id.as_str().to_owned());
        self.lookup(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE event_id = ?1 AND id = ?2"
            ))
            .and_then(|mut stmt| {
                stmt.query_row(params![event, id], delivery_from_row)
                    .optional()
            })
            .map_err(backend)?
            .transpose()
        })
        .await
    }

    async fn claim_delivery(
        &self,
        event: &EventId,
        id: &DeliveryId,
        now_ms: u64,
        lease: std::time::Duration,
    ) -> Result<Claim, StoreError> {
        let (event, id) = (event.as_str().to_owned(), id.as_str().to_owned());
        let until =
            integer(now_ms.saturating_add(u64::try_from(lease.as_millis()).unwrap_or(u64::MAX)));
        self.run(move |conn| {
            // The check and the claim are one statement.
            let claimed = conn
                .prepare_cached(&format!(
                    "UPDATE deliveries SET lease_until = ?3
                     WHERE event_id = ?1 AND id = ?2 AND status NOT IN (?5, ?6, ?7) AND lease_until <= ?4
                     RETURNING {DELIVERY_COLUMNS}"
                ))
                .and_then(|mut stmt| {
                    stmt.query_row(
                        params![
                            event,
                            id,
                            until,
                            integer(now_ms),
                            DeliveryStatus::Sent.name(),
                            DeliveryStatus::Failed.name(),
                            DeliveryStatus::Dead.name()
                        ],
                        delivery_from_row,
                    )
                    .optional()
                })
                .map_err(backend)?
                .transpose()?;
            if let Some(delivery) = claimed {
                return Ok(Claim::Claimed(delivery));
            }
            let found = conn
                .prepare_cached(&format!(
                    "SELECT {DELIVERY_COLUMNS}, lease_until FROM deliveries WHERE event_id = ?1 AND id = ?2"
                ))
                .and_then(|mut stmt| {
                    stmt.query_row(params![event, id], |row| {
                        Ok((delivery_from_row(row)?, unsigned::<u64>(row, 8)?))
                    })
                    .optional()
                })
                .map_err(backend)?;
            match found {
                None => Ok(Claim::Unknown),
                Some((delivery, until)) => {
                    let delivery = delivery?;
                    if delivery.status.is_final() {
                        Ok(Claim::Final(delivery))
                    } else {
                        Ok(Claim::Held { until })
                    }
                }
            }
        })
        .await
    }

    async fn record_attempt(
        &self,
        event: &EventId,
        id: &DeliveryId,
        outcome: &AttemptOutcome,
        now_ms: u64,
    ) -> Result<Option<Delivery>, StoreError> {
        let (event, id) = (event.as_str().to_owned(), id.as_str().to_owned());
        let (status, error) = (outcome.status().name(), outcome.error().map(str::to_owned));
        self.run(move |conn| {
            // One statement checks, writes and reads back, atomically: a final delivery (or an
            // unknown one) matches no row.
            conn.prepare_cached(&format!(
                "UPDATE deliveries
                 SET status = ?3, attempts = attempts + 1, last_error = ?4, updated_at = ?5,
                     lease_until = 0
                 WHERE event_id = ?1 AND id = ?2 AND status NOT IN (?6, ?7, ?8)
                 RETURNING {DELIVERY_COLUMNS}"
            ))
            .and_then(|mut stmt| {
                stmt.query_row(
                    params![
                        event,
                        id,
                        status,
                        error,
                        integer(now_ms),
                        DeliveryStatus::Sent.name(),
                        DeliveryStatus::Failed.name(),
                        DeliveryStatus::Dead.name()
                    ],
                    delivery_from_row,
                )
                .optional()
            })
            .map_err(backend)?
            .transpose()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{AlertCounts, AlertStore};

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
                alerts::insert_alerts(conn, &[old.clone(), new.clone()])?;
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
}
