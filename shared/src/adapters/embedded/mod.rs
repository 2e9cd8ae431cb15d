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
//!   batches (`alerts.rs`).
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
//! | users' alerts | see `alerts.rs` |
//! | expired events and deliveries (the cleanup job) | index `events_by_expiry`; deliveries go with `ON DELETE CASCADE` |
//! | what a sync wrote, per source and kind | `sync_ledger` primary key (see `ledger.rs`) |
//!
//! Files, one per port with what they share beside them: `schema.rs` (the schema and its
//! upgrades), `writer.rs` (group commit), `cache.rs`, `settings.rs`, `directory.rs`,
//! `events.rs`, `alerts.rs`, `webhooks.rs`, `schedule.rs`, `ledger.rs`, and `queue.rs` (the
//! [`EmbeddedQueue`](queue::EmbeddedQueue) on the same database); `tests.rs` holds the tests
//! of what the conformance suites cannot see (upgrades, the cache, group commit).

use crate::domain::NotificationSettings;
use crate::ports::StoreError;
use cache::Cache;
use rusqlite::{Connection, OpenFlags};
use schema::{
    SCHEMA, SCHEMA_VERSION, UPGRADE_FROM_2_MOVE, UPGRADE_FROM_2_SET_ASIDE, UPGRADE_FROM_3_MOVE,
    UPGRADE_FROM_3_SET_ASIDE, UPGRADE_FROM_4,
};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use writer::{Write, WriteJob, spawn_writer};

mod alerts;
mod cache;
mod directory;
mod events;
mod ledger;
pub mod queue;
mod schedule;
mod schema;
mod settings;
#[cfg(test)]
mod tests;
mod webhooks;
mod writer;

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
    /// messages, and says so with [`RecordOutcome::Queued`](crate::ports::RecordOutcome::Queued).
    queue_attached: AtomicBool,
    /// Tells the checkpoint thread to stop.
    stop: Arc<AtomicBool>,
    /// What every event reads and rarely changes (see [`Cache`]).
    cache: Mutex<Cache>,
    /// The data directory's lock, held while the store lives.
    lock: Option<std::fs::File>,
}

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
            conn.execute_batch(queue::QUEUE_SCHEMA)?;
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
        conn.execute_batch(ledger::LEDGER_SCHEMA).map_err(backend)?;
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

    /// Notes that an embedded queue serves this database (see [`RecordOutcome::Queued`](crate::ports::RecordOutcome::Queued)).
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
}

pub(super) fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

pub(super) fn poisoned() -> StoreError {
    StoreError::Backend("embedded store lock poisoned".into())
}

fn parse_settings(body: &str) -> Result<NotificationSettings, StoreError> {
    NotificationSettings::from_stored(body)
        .map_err(|e| StoreError::Backend(format!("unreadable settings document: {e}")))
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
