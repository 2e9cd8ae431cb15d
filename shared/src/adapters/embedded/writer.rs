//! The writer thread: every write goes to one connection and commits in groups, one
//! transaction and one fsync per group, each write in a savepoint of its own should one fail.
use super::{backend, poisoned};
use crate::ports::StoreError;
use rusqlite::Connection;
use std::sync::{Arc, Mutex};

/// One write waiting for a group commit.
pub(super) trait WriteJob: Send {
    /// Runs the write inside the group's transaction; `false` when it failed. It may run
    /// again after a rollback (the last run's result is the answer).
    fn run(&mut self, conn: &mut Connection) -> bool;
    /// Answers the caller once the group's fate is known: `commit` is the commit's outcome
    /// (or why the group could not run at all).
    fn finish(self: Box<Self>, commit: Result<(), &StoreError>);
}

pub(super) struct Write<T, F> {
    pub(super) work: F,
    pub(super) result: Option<Result<T, StoreError>>,
    pub(super) reply: tokio::sync::oneshot::Sender<Result<T, StoreError>>,
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
pub(super) fn spawn_writer(
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
pub(super) fn commit_group(conn: &mut Connection, mut jobs: Vec<Box<dyn WriteJob>>) {
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
