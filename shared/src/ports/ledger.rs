//! The sync ledger port: which objects an outside source's sync (DefectDojo's) put into
//! Herald, so that what the source no longer has can be removed from Herald without touching
//! what anyone else wrote.

use super::StoreError;
use async_trait::async_trait;

/// Ids, per source and kind (`users`, `products`, `product_members`, ...), of what a sync
/// wrote. A sync records an id *before* it writes the object and forgets it only *after*
/// removing the object, so a crash between the two leaves an id recorded for an object that
/// may be missing (the next sync removes nothing and forgets it), never an object the ledger
/// does not know.
#[async_trait]
pub trait SyncLedger: Send + Sync {
    /// Every id recorded for `source` and `kind`, sorted, without reading anything else.
    async fn synced_ids(&self, source: &str, kind: &str) -> Result<Vec<String>, StoreError>;
    /// Records `ids`; ids already recorded stay as they are.
    async fn record_synced(
        &self,
        source: &str,
        kind: &str,
        ids: &[String],
    ) -> Result<(), StoreError>;
    /// Forgets `ids`; ids not recorded are ignored.
    async fn forget_synced(
        &self,
        source: &str,
        kind: &str,
        ids: &[String],
    ) -> Result<(), StoreError>;
}
