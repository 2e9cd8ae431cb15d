//! [`SyncLedger`] on the DynamoDB table (a child module of `dynamodb`, sharing its client,
//! key helpers and request counting).
//!
//! Items (`{src}` the source, `{kind}` the kind, `{n}` a shard `00`–`07`, `{i}` an id):
//!
//! | item | `PK` | `SK` |
//! |---|---|---|
//! | an id a sync wrote | `SYNCED#{src}#{kind}#{n}` | `{i}` |
//!
//! A kind's ids are spread over [`SHARDS`] partitions by a hash of the id, so recording
//! 100,000 findings is not throttled by one partition's write limit.
//!
//! | access pattern | served by | requests |
//! |---|---|---|
//! | every id of a kind | Query each shard, keys only | `SHARDS` per 1 MB |
//! | record or forget ids | BatchWriteItem puts or deletes, 25 a call, concurrently | ⌈N/25⌉ |

use super::attributes::s;
use super::keys::{Key, PK, SK};
use super::{DynamoDbStore, Item};
use crate::ports::{StoreError, SyncLedger};
use async_trait::async_trait;
use std::collections::BTreeSet;

/// Partitions per kind.
const SHARDS: u32 = 8;

fn shard_pk(source: &str, kind: &str, shard: u32) -> String {
    format!("SYNCED#{source}#{kind}#{shard:02}")
}

/// The id's partition: FNV-1a of its bytes, so it is the same in every process.
fn key(source: &str, kind: &str, id: &str) -> Key {
    let hash = id.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    Key::new(shard_pk(source, kind, hash % SHARDS), id)
}

#[async_trait]
impl SyncLedger for DynamoDbStore {
    async fn synced_ids(&self, source: &str, kind: &str) -> Result<Vec<String>, StoreError> {
        let mut ids = Vec::new();
        for shard in 0..SHARDS {
            let items = self
                .query_partition(&shard_pk(source, kind, shard), None, Some(&[PK, SK]))
                .await?;
            for item in &items {
                ids.push(Key::from_item(item)?.sk);
            }
        }
        ids.sort();
        Ok(ids)
    }

    async fn record_synced(
        &self,
        source: &str,
        kind: &str,
        ids: &[String],
    ) -> Result<(), StoreError> {
        let items = ids
            .iter()
            .map(|id| {
                let key = key(source, kind, id);
                Item::from([(PK.to_owned(), s(key.pk)), (SK.to_owned(), s(key.sk))])
            })
            .collect();
        self.batch_put(items).await
    }

    async fn forget_synced(
        &self,
        source: &str,
        kind: &str,
        ids: &[String],
    ) -> Result<(), StoreError> {
        let keys: BTreeSet<Key> = ids.iter().map(|id| key(source, kind, id)).collect();
        self.batch_delete(keys).await
    }
}
