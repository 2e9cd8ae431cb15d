//! [`WebhookStore`] on the embedded store's SQLite database (a child module of `embedded`,
//! so it shares its connection and helpers).
//!
//! Access patterns and what serves them:
//! | pattern | served by |
//! |---|---|
//! | endpoint by id | `webhook_endpoints` primary key |
//! | every endpoint, or one owner's, ordered by id | one scan of `webhook_endpoints` (a handful of rows), filtered by `owner` |
//! | add or edit an endpoint, bumping its version | `INSERT .. ON CONFLICT(id) DO UPDATE .. RETURNING version` |
//! | change the state unless the endpoint changed since it was read | `UPDATE .. WHERE id = ? AND version = ?` |
//! | delete an endpoint with its parked messages | one savepoint: both `DELETE`s |
//! | park a message (once per delivery) | `INSERT .. ON CONFLICT DO NOTHING` on `webhook_parked` `(endpoint_id, delivery_id)` |
//! | an endpoint's parked messages, oldest first | index `webhook_parked_by_time` |
//! | unpark messages | one savepoint of primary-key `DELETE`s |

use super::{EmbeddedStore, backend};
use crate::domain::{DeliveryMessage, WebhookEndpoint, WebhookId};
use crate::ports::{ParkedMessage, StoreError, WebhookOwner, WebhookStore};
use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

/// The tables; `EmbeddedStore::init` runs this with the store's own schema.
pub(super) const WEBHOOK_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS webhook_endpoints (
    id TEXT PRIMARY KEY,
    owner TEXT,
    body TEXT NOT NULL,
    version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS webhook_parked (
    endpoint_id TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    body TEXT NOT NULL,
    parked_at INTEGER NOT NULL,
    PRIMARY KEY (endpoint_id, delivery_id)
);
CREATE INDEX IF NOT EXISTS webhook_parked_by_time ON webhook_parked(endpoint_id, parked_at, delivery_id);
"#;

fn endpoint_from_row(body: &str, version: i64) -> Result<WebhookEndpoint, StoreError> {
    WebhookEndpoint::from_stored(body, u64::try_from(version).unwrap_or(0))
        .map_err(|e| StoreError::Backend(format!("unreadable webhook endpoint: {e}")))
}

fn sql_integer(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[async_trait]
impl WebhookStore for EmbeddedStore {
    async fn put_webhook(&self, endpoint: &WebhookEndpoint) -> Result<u64, StoreError> {
        let (id, owner, body) = (
            endpoint.id.as_str().to_owned(),
            endpoint.owner.as_ref().map(|u| u.as_str().to_owned()),
            endpoint.to_stored(),
        );
        self.run(move |conn| {
            let version: i64 = conn
                .query_row(
                    "INSERT INTO webhook_endpoints (id, owner, body, version) VALUES (?1, ?2, ?3, 1)
                     ON CONFLICT(id) DO UPDATE SET owner = excluded.owner, body = excluded.body,
                         version = webhook_endpoints.version + 1
                     RETURNING version",
                    params![id, owner, body],
                    |row| row.get(0),
                )
                .map_err(backend)?;
            Ok(u64::try_from(version).unwrap_or(0))
        })
        .await
    }

    async fn webhook(&self, id: &WebhookId) -> Result<Option<WebhookEndpoint>, StoreError> {
        let id = id.as_str().to_owned();
        self.run(move |conn| {
            let row: Option<(String, i64)> = conn
                .query_row(
                    "SELECT body, version FROM webhook_endpoints WHERE id = ?1",
                    [&id],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()
                .map_err(backend)?;
            row.map(|(body, version)| endpoint_from_row(&body, version))
                .transpose()
        })
        .await
    }

    async fn webhooks(&self, owner: &WebhookOwner) -> Result<Vec<WebhookEndpoint>, StoreError> {
        let owner = owner.clone();
        self.run(move |conn| {
            let mut statement = conn
                .prepare_cached("SELECT body, version FROM webhook_endpoints ORDER BY id")
                .map_err(backend)?;
            let rows = statement
                .query_map([], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
                })
                .map_err(backend)?;
            let mut endpoints = Vec::new();
            for row in rows {
                let (body, version) = row.map_err(backend)?;
                let endpoint = endpoint_from_row(&body, version)?;
                if owner.includes(&endpoint) {
                    endpoints.push(endpoint);
                }
            }
            Ok(endpoints)
        })
        .await
    }

    async fn update_webhook_if_unchanged(
        &self,
        endpoint: &WebhookEndpoint,
    ) -> Result<bool, StoreError> {
        let (id, body, version) = (
            endpoint.id.as_str().to_owned(),
            endpoint.to_stored(),
            sql_integer(endpoint.version),
        );
        self.run(move |conn| {
            let changed = conn
                .execute(
                    "UPDATE webhook_endpoints SET body = ?2, version = version + 1
                     WHERE id = ?1 AND version = ?3",
                    params![id, body, version],
                )
                .map_err(backend)?;
            Ok(changed == 1)
        })
        .await
    }

    async fn delete_webhook(&self, id: &WebhookId) -> Result<bool, StoreError> {
        let id = id.as_str().to_owned();
        self.run(move |conn| {
            let savepoint = conn.savepoint().map_err(backend)?;
            let deleted = savepoint
                .execute("DELETE FROM webhook_endpoints WHERE id = ?1", [&id])
                .map_err(backend)?;
            savepoint
                .execute("DELETE FROM webhook_parked WHERE endpoint_id = ?1", [&id])
                .map_err(backend)?;
            savepoint.commit().map_err(backend)?;
            Ok(deleted == 1)
        })
        .await
    }

    async fn park_webhook_message(
        &self,
        id: &WebhookId,
        message: &DeliveryMessage,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let body = serde_json::to_string(message)
            .map_err(|e| StoreError::Backend(format!("serializing a parked message: {e}")))?;
        let (id, delivery) = (
            id.as_str().to_owned(),
            message.delivery_id.as_str().to_owned(),
        );
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO webhook_parked (endpoint_id, delivery_id, body, parked_at)
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT(endpoint_id, delivery_id) DO NOTHING",
                params![id, delivery, body, sql_integer(now_ms)],
            )
            .map(|_| ())
            .map_err(backend)
        })
        .await
    }

    async fn parked_webhook_messages(
        &self,
        id: &WebhookId,
        limit: usize,
    ) -> Result<Vec<ParkedMessage>, StoreError> {
        let id = id.as_str().to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(move |conn| {
            let mut statement = conn
                .prepare_cached(
                    "SELECT body, parked_at FROM webhook_parked WHERE endpoint_id = ?1
                     ORDER BY parked_at, delivery_id LIMIT ?2",
                )
                .map_err(backend)?;
            let rows = statement
                .query_map(params![id, limit], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
                })
                .map_err(backend)?;
            let mut parked = Vec::new();
            for row in rows {
                let (body, parked_at) = row.map_err(backend)?;
                let message: DeliveryMessage = serde_json::from_str(&body)
                    .map_err(|e| StoreError::Backend(format!("unreadable parked message: {e}")))?;
                parked.push(ParkedMessage {
                    message,
                    parked_at: u64::try_from(parked_at).unwrap_or(0),
                });
            }
            Ok(parked)
        })
        .await
    }

    async fn unpark_webhook_messages(
        &self,
        id: &WebhookId,
        messages: &[ParkedMessage],
    ) -> Result<(), StoreError> {
        let id = id.as_str().to_owned();
        let deliveries: Vec<String> = messages
            .iter()
            .map(|m| m.message.delivery_id.as_str().to_owned())
            .collect();
        self.run(move |conn| {
            let savepoint = conn.savepoint().map_err(backend)?;
            {
                let mut delete = savepoint
                    .prepare_cached(
                        "DELETE FROM webhook_parked WHERE endpoint_id = ?1 AND delivery_id = ?2",
                    )
                    .map_err(backend)?;
                for delivery in &deliveries {
                    delete.execute(params![id, delivery]).map_err(backend)?;
                }
            }
            savepoint.commit().map_err(backend)?;
            Ok(())
        })
        .await
    }
}
