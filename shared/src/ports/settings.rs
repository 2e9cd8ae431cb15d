//! The settings port: settings at every scope, and the system settings.

use super::StoreError;
use crate::domain::{NotificationSettings, ResourceId, SystemSettings, Username};
use async_trait::async_trait;

/// Settings at every scope, and the system settings.
#[async_trait]
pub trait SettingsStore: Send + Sync {
    /// The system settings, or the defaults when none were ever saved.
    async fn system_settings(&self) -> Result<SystemSettings, StoreError>;
    /// Replaces the system settings (the caller merges partial updates).
    async fn put_system_settings(&self, settings: &SystemSettings) -> Result<(), StoreError>;

    /// The system-scope document, or the defaults.
    async fn system_notifications(&self) -> Result<NotificationSettings, StoreError>;
    /// Replaces the system-scope document.
    async fn put_system_notifications(
        &self,
        settings: &NotificationSettings,
    ) -> Result<(), StoreError>;

    /// The template copied to new users, or the defaults.
    async fn template_notifications(&self) -> Result<NotificationSettings, StoreError>;
    /// Replaces the template; existing users are untouched.
    async fn put_template_notifications(
        &self,
        settings: &NotificationSettings,
    ) -> Result<(), StoreError>;

    /// A user's personal settings. `NotFound` when the user does not exist.
    async fn personal_notifications(
        &self,
        user: &Username,
    ) -> Result<NotificationSettings, StoreError>;
    /// Replaces a user's personal settings. `NotFound` when the user does not exist.
    async fn put_personal_notifications(
        &self,
        user: &Username,
        settings: &NotificationSettings,
    ) -> Result<(), StoreError>;

    /// A user's settings for one product, `None` when they have none.
    async fn product_notifications(
        &self,
        user: &Username,
        product: &ResourceId,
    ) -> Result<Option<NotificationSettings>, StoreError>;
    /// Replaces a user's settings for one product. `NotFound` when the user or the product
    /// does not exist.
    async fn put_product_notifications(
        &self,
        user: &Username,
        product: &ResourceId,
        settings: &NotificationSettings,
    ) -> Result<(), StoreError>;
    /// Removes a user's settings for one product; `false` when there were none.
    async fn delete_product_notifications(
        &self,
        user: &Username,
        product: &ResourceId,
    ) -> Result<bool, StoreError>;
}
