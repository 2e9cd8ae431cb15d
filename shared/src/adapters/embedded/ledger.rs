//! [`SyncLedger`] on the embedded store's SQLite database (a child module of `embedded`,
//! sharing its connection and helpers).
//!
//! One table, `sync_ledger`, keyed by `(source, kind, id)` and stored in key order
//! (`WITHOUT ROWID`): listing a kind is one range of the primary key, recording and
//! forgetting are `INSERT OR IGNORE` and `DELETE` by key, many ids in one group commit.

use super::{EmbeddedStore, backend};
use crate::ports::{StoreError, SyncLedger};
use async_trait::async_trait;
use rusqlite::params;

/// The table; `EmbeddedStore::init` runs this with the store's own schema.
pub(super) const LEDGER_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS sync_ledger (
    source TEXT NOT NULL,
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    PRIMARY KEY (source, kind, id)
) WITHOUT ROWID;
"#;

impl EmbeddedStore {
    async fn change_ledger(
        &self,
        sql: &'static str,
        source: &str,
        kind: &str,
        ids: &[String],
    ) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let (source, kind, ids) = (source.to_owned(), kind.to_owned(), ids.to_vec());
        self.run(move |conn| {
            let mut statement = conn.prepare_cached(sql).map_err(backend)?;
            for id in &ids {
                statement
                    .execute(params![source, kind, id])
                    .map_err(backend)?;
            }
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl SyncLedger for EmbeddedStore {
    async fn synced_ids(&self, source: &str, kind: &str) -> Result<Vec<String>, StoreError> {
        let (source, kind) = (source.to_owned(), kind.to_owned());
        self.read(move |conn| {
            let mut statement = conn
                .prepare_cached(
                    "SELECT id FROM sync_ledger WHERE source = ?1 AND kind = ?2 ORDER BY id",
                )
                .map_err(backend)?;
            let ids = statement
                .query_map(params![source, kind], |row| row.get(0))
                .map_err(backend)?
                .collect::<Result<Vec<String>, _>>()
                .map_err(backend)?;
            Ok(ids)
        })
        .await
    }

    async fn record_synced(
        &self,
        source: &str,
        kind: &str,
        ids: &[String],
    ) -> Result<(), StoreError> {
        self.change_ledger(
            "INSERT OR IGNORE INTO sync_ledger (source, kind, id) VALUES (?1, ?2, ?3)",
            source,
            kind,
            ids,
        )
        .await
    }

    async fn forget_synced(
        &self,
        source: &str,
        kind: &str,
        ids: &[String],
    ) -> Result<(), StoreError> {
        self.change_ledger(
            "DELETE FROM sync_ledger WHERE source = ?1 AND kind = ?2 AND id = ?3",
            source,
            kind,
            ids,
        )
        .await
    }
}
