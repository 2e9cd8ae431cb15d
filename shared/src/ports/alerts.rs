//! The alert port: users' in-app alerts with read state.

use super::StoreError;
use crate::domain::{Alert, Username};
use async_trait::async_trait;
use serde::Serialize;

/// A page of alerts, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertPage {
    pub items: Vec<Alert>,
    /// Pass back to get the next page; `None` at the end.
    pub next_cursor: Option<String>,
}

/// A user's alert counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AlertCounts {
    pub unread: u64,
    pub total: u64,
}

/// `cursor` unless it cannot be a previous page's `next_cursor` (an alert id):
/// `StoreError::Invalid` then, as [`AlertStore::alerts`] answers.
pub fn alert_cursor(cursor: Option<&str>) -> Result<Option<&str>, StoreError> {
    match cursor {
        Some(cursor) if !Alert::is_valid_id(cursor) => Err(StoreError::Invalid(format!(
            "`{cursor}` is not a cursor from a previous page"
        ))),
        cursor => Ok(cursor),
    }
}

/// Users' in-app alerts with read state.
#[async_trait]
pub trait AlertStore: Send + Sync {
    /// A page of `user`'s alerts, newest first, starting after `cursor` (a previous page's
    /// `next_cursor`; an unreadable cursor is `StoreError::Invalid`).
    async fn alerts(
        &self,
        user: &Username,
        unread_only: bool,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<AlertPage, StoreError>;
    /// How many alerts `user` has, and how many are unread.
    async fn alert_counts(&self, user: &Username) -> Result<AlertCounts, StoreError>;
    /// Marks the alerts named (or all, with `None`) read; returns how many changed. Ids of
    /// other users' alerts are ignored.
    async fn mark_alerts_read(
        &self,
        user: &Username,
        ids: Option<&[String]>,
    ) -> Result<u64, StoreError>;
    /// Deletes one alert; `false` when `user` has no alert with that id.
    async fn delete_alert(&self, user: &Username, id: &str) -> Result<bool, StoreError>;
    /// Deletes all of `user`'s alerts; returns how many.
    async fn delete_alerts(&self, user: &Username) -> Result<u64, StoreError>;
    /// Keeps only `user`'s newest `keep` alerts; returns how many were removed.
    async fn trim_alerts(&self, user: &Username, keep: usize) -> Result<u64, StoreError>;
    /// Adds alerts raised outside intake (e.g. a failed delivery), each only if its user has
    /// no alert with its id yet, so a repeated call adds nothing and keeps the read state.
    /// Returns how many were added.
    async fn add_alerts(&self, alerts: &[Alert]) -> Result<u64, StoreError>;
}
