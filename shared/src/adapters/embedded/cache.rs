//! The cache of what every event reads and rarely changes, and the generation check that
//! keeps a value read before a write from being kept after it.
use super::{EmbeddedStore, poisoned};
use crate::domain::{AudienceMember, NotificationSettings, ProductAudience, SystemSettings, User};
use crate::ports::StoreError;
use rusqlite::Connection;

/// The system settings, system and template documents, the administrators and the audiences
/// of the products events named lately (members with their settings), parsed, as last read.
/// Every write that could change them empties the cache after it commits, and a
/// value read before such a write is never stored after it (the generation check), so a
/// caller told a write is done reads the new value. Sound because one process owns the
/// database: `open` locks the data directory's lock file.
#[derive(Default)]
pub(super) struct Cache {
    pub(super) generation: u64,
    pub(super) system_settings: Option<SystemSettings>,
    pub(super) system_notifications: Option<NotificationSettings>,
    pub(super) template_notifications: Option<NotificationSettings>,
    pub(super) administrators: Option<Vec<User>>,
    pub(super) administrator_audience: Option<Vec<AudienceMember>>,
    /// Product audiences by product id, at most [`CACHED_AUDIENCES`] (emptied when full).
    pub(super) audiences: std::collections::HashMap<String, ProductAudience>,
}

/// How many products' audiences the cache keeps.
pub(super) const CACHED_AUDIENCES: usize = 256;

impl EmbeddedStore {
    /// `get` from the cache, else `load` and keep it (unless a write came in between).
    pub(super) async fn cached<T, L>(
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
    pub(super) async fn cached_with<T, L>(
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
    pub(super) fn invalidate(&self) {
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
    pub(super) async fn run_invalidating<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let result = self.run(work).await;
        self.invalidate();
        result
    }
}
