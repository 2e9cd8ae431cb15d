//! [`SettingsStore`] on the embedded store: the `documents` table (system settings, the
//! system and template documents) and personal and per-product notification settings.
use super::directory::{PRODUCT_EXISTS, USER_EXISTS, require};
use super::{EmbeddedStore, backend, parse_settings};
use crate::domain::{NotificationSettings, ResourceId, SystemSettings, Username};
use crate::ports::{SettingsStore, StoreError};
use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

pub(super) const DOC_SYSTEM_SETTINGS: &str = "system_settings";
pub(super) const DOC_SYSTEM_NOTIFICATIONS: &str = "system_notifications";
pub(super) const DOC_TEMPLATE_NOTIFICATIONS: &str = "template_notifications";

impl EmbeddedStore {
    pub(super) async fn document(&self, name: &'static str) -> Result<Option<String>, StoreError> {
        self.lookup(move |conn| {
            conn.query_row("SELECT body FROM documents WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()
            .map_err(backend)
        })
        .await
    }

    pub(super) async fn put_document(
        &self,
        name: &'static str,
        body: String,
    ) -> Result<(), StoreError> {
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

    pub(super) async fn notifications_document(
        &self,
        name: &'static str,
    ) -> Result<NotificationSettings, StoreError> {
        match self.document(name).await? {
            Some(body) => parse_settings(&body),
            None => Ok(NotificationSettings::defaults()),
        }
    }
}

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
