//! `EmbeddedStore`: the store ports on SQLite (bundled, WAL), for `herald-local`.
//!
//! One file in the data directory. Writes commit with `synchronous = FULL`, so anything
//! answered survives a crash or `kill -9`. Blocking SQLite calls run on Tokio's blocking pool
//! behind one connection; WAL lets readers proceed while a write commits.
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
//! | everyone who may view a product, with settings | one query over the member tables, the admin index and `product_notifications` |
//! | a user's memberships and settings (delete user) | `ON DELETE CASCADE` with `*_by_user` indexes |
//! | administrators with their personal settings | partial index `users_admin` |
//! | named recipients with their personal settings | `users` primary key, one lookup each in one task |
//! | record an event once, with alerts, deliveries and their queue messages | one transaction: `INSERT .. ON CONFLICT(id) DO NOTHING` on `events` decides first or duplicate |
//! | an event's record | `events` primary key |
//! | events not yet marked enqueued, oldest first | partial index `events_not_enqueued` |
//! | an event's deliveries | `deliveries` primary key `(event_id, id)` |
//! | one delivery | `deliveries` primary key `(event_id, id)` |
//! | record an attempt unless the delivery is final | one `UPDATE .. WHERE status NOT IN (final) RETURNING ..` on the primary key: the check, the write and the read-back are one statement |
//! | expired events and deliveries (the cleanup job) | index `events_by_expiry`; deliveries go with `ON DELETE CASCADE` |
//! | a user's alerts, newest first, from a cursor | `alerts` primary key `(username, id)` read backwards (ids sort by time) |
//! | a user's unread alerts and counts | partial index `alerts_unread` |
//! | add alerts raised outside intake, once each | one transaction of `INSERT .. ON CONFLICT(username, id) DO NOTHING`, counting the rows inserted |

use crate::domain::{
    Alert, AudienceMember, Channel, Delivery, DeliveryId, DeliveryMessage, DeliveryStatus,
    Destination, Event, EventId, NotificationSettings, Product, ProductAccess, ProductAudience,
    ProductType, ResourceId, SystemSettings, User, UserProfile, Username,
};
use crate::ports::{
    AlertCounts, AlertPage, AlertStore, AttemptOutcome, DirectoryStore, EventRecord, EventStore,
    RecordOutcome, SettingsStore, StoreError, UserWrite,
};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use std::sync::{Arc, Mutex};

// Webhook endpoints and parked messages live in their own module and tables.
#[path = "embedded_webhooks.rs"]
mod webhooks;

const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS documents (
    name TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    username TEXT PRIMARY KEY,
    email TEXT,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    slack_email TEXT,
    slack_user_id TEXT,
    is_active INTEGER NOT NULL,
    is_admin INTEGER NOT NULL,
    personal TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS users_admin ON users(username) WHERE is_admin = 1;
CREATE TABLE IF NOT EXISTS product_types (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS products (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    product_type_id TEXT NOT NULL REFERENCES product_types(id),
    disable_sla_breach_notifications INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS products_by_type ON products(product_type_id);
CREATE TABLE IF NOT EXISTS product_type_members (
    product_type_id TEXT NOT NULL REFERENCES product_types(id) ON DELETE CASCADE,
    username TEXT NOT NULL REFERENCES users(username) ON DELETE CASCADE,
    PRIMARY KEY (product_type_id, username)
);
CREATE INDEX IF NOT EXISTS product_type_members_by_user ON product_type_members(username);
CREATE TABLE IF NOT EXISTS product_members (
    product_id TEXT NOT NULL REFERENCES products(id) ON DELETE CASCADE,
    username TEXT NOT NULL REFERENCES users(username) ON DELETE CASCADE,
    PRIMARY KEY (product_id, username)
);
CREATE INDEX IF NOT EXISTS product_members_by_user ON product_members(username);
CREATE TABLE IF NOT EXISTS product_notifications (
    username TEXT NOT NULL REFERENCES users(username) ON DELETE CASCADE,
    product_id TEXT NOT NULL REFERENCES products(id) ON DELETE CASCADE,
    body TEXT NOT NULL,
    PRIMARY KEY (username, product_id)
);
CREATE INDEX IF NOT EXISTS product_notifications_by_product ON product_notifications(product_id);
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    accepted_at INTEGER NOT NULL,
    delivery_count INTEGER NOT NULL,
    alert_count INTEGER NOT NULL,
    enqueued INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_not_enqueued ON events(accepted_at, id) WHERE enqueued = 0;
CREATE INDEX IF NOT EXISTS events_by_expiry ON events(expires_at);
CREATE TABLE IF NOT EXISTS deliveries (
    event_id TEXT NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    channel TEXT NOT NULL,
    destination TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    last_error TEXT,
    updated_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (event_id, id)
);
CREATE TABLE IF NOT EXISTS alerts (
    username TEXT NOT NULL,
    id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    url TEXT NOT NULL,
    icon TEXT NOT NULL,
    source TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    read INTEGER NOT NULL,
    PRIMARY KEY (username, id)
);
CREATE INDEX IF NOT EXISTS alerts_unread ON alerts(username, id) WHERE read = 0;
"#;

const DOC_SYSTEM_SETTINGS: &str = "system_settings";
const DOC_SYSTEM_NOTIFICATIONS: &str = "system_notifications";
const DOC_TEMPLATE_NOTIFICATIONS: &str = "template_notifications";

const USER_COLUMNS: &str =
    "username, email, first_name, last_name, slack_email, slack_user_id, is_active, is_admin";

/// The store ports on an embedded SQLite database.
#[derive(Clone)]
pub struct EmbeddedStore {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EmbeddedStore")
    }
}

impl EmbeddedStore {
    /// Opens (creating if needed) the database file at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(backend)?;
        Self::init(conn)
    }

    /// A private in-memory database, for tests and benchmarks.
    pub fn in_memory() -> Result<Self, StoreError> {
        let conn = Connection::open_in_memory().map_err(backend)?;
        Self::init(conn)
    }

    fn init(conn: Connection) -> Result<Self, StoreError> {
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(backend)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(backend)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(backend)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(backend)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(backend)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Backend(format!(
                "the data directory was written by a newer Herald (schema {version}, this one knows {SCHEMA_VERSION})"
            )));
        }
        conn.execute_batch(SCHEMA).map_err(backend)?;
        // The embedded queue's table lives here too, so `record_event` can queue in its
        // transaction.
        conn.execute_batch(crate::adapters::embedded_queue::QUEUE_SCHEMA)
            .map_err(backend)?;
        conn.execute_batch(webhooks::WEBHOOK_SCHEMA)
            .map_err(backend)?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(backend)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// The shared connection, for adapters that keep their tables in the same database
    /// (the embedded queue), so their writes can join the store's transactions.
    pub(crate) fn connection(&self) -> Arc<Mutex<Connection>> {
        Arc::clone(&self.conn)
    }

    /// Runs `work` on the connection on Tokio's blocking pool.
    async fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut guard = conn
                .lock()
                .map_err(|_| StoreError::Backend("embedded store lock poisoned".into()))?;
            work(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("embedded store task failed: {e}")))?
    }

    async fn document(&self, name: &'static str) -> Result<Option<String>, StoreError> {
        self.run(move |conn| {
            conn.query_row("SELECT body FROM documents WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn put_document(&self, name: &'static str, body: String) -> Result<(), StoreError> {
        self.run(move |conn| {
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

    async fn notifications_document(
        &self,
        name: &'static str,
    ) -> Result<NotificationSettings, StoreError> {
        match self.document(name).await? {
            Some(body) => parse_settings(&body),
            None => Ok(NotificationSettings::defaults()),
        }
    }
}

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn parse_settings(body: &str) -> Result<NotificationSettings, StoreError> {
    NotificationSettings::from_stored(body)
        .map_err(|e| StoreError::Backend(format!("unreadable settings document: {e}")))
}

fn user_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        username: Username(row.get(0)?),
        profile: UserProfile {
            email: row.get(1)?,
            first_name: row.get(2)?,
            last_name: row.get(3)?,
            slack_email: row.get(4)?,
            slack_user_id: row.get(5)?,
            is_active: row.get(6)?,
            is_admin: row.get(7)?,
        },
    })
}

fn exists(conn: &Connection, sql: &str, key: &str) -> Result<bool, StoreError> {
    conn.query_row(sql, [key], |_| Ok(()))
        .optional()
        .map(|found| found.is_some())
        .map_err(backend)
}

fn require(conn: &Connection, sql: &str, key: &str, what: String) -> Result<(), StoreError> {
    if exists(conn, sql, key)? {
        Ok(())
    } else {
        Err(StoreError::NotFound(what))
    }
}

const USER_EXISTS: &str = "SELECT 1 FROM users WHERE username = ?1";
const PRODUCT_EXISTS: &str = "SELECT 1 FROM products WHERE id = ?1";
const PRODUCT_TYPE_EXISTS: &str = "SELECT 1 FROM product_types WHERE id = ?1";

#[async_trait]
impl SettingsStore for EmbeddedStore {
    async fn system_settings(&self) -> Result<SystemSettings, StoreError> {
        match self.document(DOC_SYSTEM_SETTINGS).await? {
            Some(body) => SystemSettings::from_stored(&body)
                .map_err(|e| StoreError::Backend(format!("unreadable system settings: {e}"))),
            None => Ok(SystemSettings::default()),
        }
    }

    async fn put_system_settings(&self, settings: &SystemSettings) -> Result<(), StoreError> {
        self.put_document(DOC_SYSTEM_SETTINGS, settings.to_stored())
            .await
    }

    async fn system_notifications(&self) -> Result<NotificationSettings, StoreError> {
        self.notifications_document(DOC_SYSTEM_NOTIFICATIONS).await
    }

    async fn put_system_notifications(
        &self,
        settings: &NotificationSettings,
    ) -> Result<(), StoreError> {
        self.put_document(DOC_SYSTEM_NOTIFICATIONS, settings.to_stored())
            .await
    }

    async fn template_notifications(&self) -> Result<NotificationSettings, StoreError> {
        self.notifications_document(DOC_TEMPLATE_NOTIFICATIONS)
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
            .run(move |conn| {
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
            .run(move |conn| {
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
            .run(move |conn| {
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
        self.run(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            require(&tx, USER_EXISTS, &username, user_label)?;
            require(&tx, PRODUCT_EXISTS, &product_id, product_label)?;
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
        self.run(move |conn| {
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

#[async_trait]
impl DirectoryStore for EmbeddedStore {
    async fn put_user(
        &self,
        user: &Username,
        profile: &UserProfile,
        template: &NotificationSettings,
    ) -> Result<UserWrite, StoreError> {
        let username = user.as_str().to_owned();
        let p = profile.clone();
        let template = template.to_stored();
        self.run(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            let existed = exists(&tx, USER_EXISTS, &username)?;
            tx.execute(
                "INSERT INTO users (username, email, first_name, last_name, slack_email, slack_user_id, is_active, is_admin, personal)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT(username) DO UPDATE SET
                    email = excluded.email, first_name = excluded.first_name, last_name = excluded.last_name,
                    slack_email = excluded.slack_email, slack_user_id = excluded.slack_user_id,
                    is_active = excluded.is_active, is_admin = excluded.is_admin",
                params![
                    username, p.email, p.first_name, p.last_name, p.slack_email, p.slack_user_id,
                    p.is_active, p.is_admin, template
                ],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(if existed { UserWrite::Updated } else { UserWrite::Created })
        })
        .await
    }

    async fn user(&self, user: &Username) -> Result<Option<User>, StoreError> {
        let username = user.as_str().to_owned();
        self.run(move |conn| {
            conn.query_row(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE username = ?1"),
                [username],
                user_from_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn delete_user(&self, user: &Username) -> Result<bool, StoreError> {
        let username = user.as_str().to_owned();
        self.run(move |conn| {
            conn.execute("DELETE FROM users WHERE username = ?1", [username])
                .map(|n| n > 0)
                .map_err(backend)
        })
        .await
    }

    async fn set_slack_user_id(
        &self,
        user: &Username,
        slack_user_id: &str,
    ) -> Result<bool, StoreError> {
        let (username, id) = (user.as_str().to_owned(), slack_user_id.to_owned());
        self.run(move |conn| {
            conn.execute(
                "UPDATE users SET slack_user_id = ?2 WHERE username = ?1",
                params![username, id],
            )
            .map(|n| n > 0)
            .map_err(backend)
        })
        .await
    }

    async fn put_product_type(&self, product_type: &ProductType) -> Result<bool, StoreError> {
        let (id, name) = (
            product_type.id.as_str().to_owned(),
            product_type.name.clone(),
        );
        self.run(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            let existed = exists(&tx, PRODUCT_TYPE_EXISTS, &id)?;
            tx.execute(
                "INSERT INTO product_types (id, name) VALUES (?1, ?2)
                 ON CONFLICT(id) DO UPDATE SET name = excluded.name",
                params![id, name],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(!existed)
        })
        .await
    }

    async fn product_type(&self, id: &ResourceId) -> Result<Option<ProductType>, StoreError> {
        let id = id.as_str().to_owned();
        self.run(move |conn| {
            conn.query_row(
                "SELECT id, name FROM product_types WHERE id = ?1",
                [id],
                |r| {
                    Ok(ProductType {
                        id: ResourceId(r.get(0)?),
                        name: r.get(1)?,
                    })
                },
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn delete_product_type(&self, id: &ResourceId) -> Result<bool, StoreError> {
        let key = id.as_str().to_owned();
        let label = id.to_string();
        self.run(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            if exists(
                &tx,
                "SELECT 1 FROM products WHERE product_type_id = ?1 LIMIT 1",
                &key,
            )? {
                return Err(StoreError::Conflict(format!(
                    "product type {label} still has products; delete or move them first"
                )));
            }
            let n = tx
                .execute("DELETE FROM product_types WHERE id = ?1", [&key])
                .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }

    async fn put_product_type_member(
        &self,
        id: &ResourceId,
        user: &Username,
    ) -> Result<bool, StoreError> {
        self.put_member(
            "product_type_members",
            "product_type_id",
            PRODUCT_TYPE_EXISTS,
            "product type",
            id,
            user,
        )
        .await
    }

    async fn delete_product_type_member(
        &self,
        id: &ResourceId,
        user: &Username,
    ) -> Result<bool, StoreError> {
        self.delete_member("product_type_members", "product_type_id", id, user)
            .await
    }

    async fn put_product(&self, product: &Product) -> Result<bool, StoreError> {
        let p = product.clone();
        self.run(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            require(
                &tx,
                PRODUCT_TYPE_EXISTS,
                p.product_type_id.as_str(),
                format!("product type {}", p.product_type_id),
            )?;
            let existed = exists(&tx, PRODUCT_EXISTS, p.id.as_str())?;
            tx.execute(
                "INSERT INTO products (id, name, product_type_id, disable_sla_breach_notifications) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(id) DO UPDATE SET name = excluded.name, product_type_id = excluded.product_type_id,
                    disable_sla_breach_notifications = excluded.disable_sla_breach_notifications",
                params![p.id.as_str(), p.name, p.product_type_id.as_str(), p.disable_sla_breach_notifications],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(!existed)
        })
        .await
    }

    async fn product(&self, id: &ResourceId) -> Result<Option<Product>, StoreError> {
        let id = id.as_str().to_owned();
        self.run(move |conn| read_product(conn, &id)).await
    }

    async fn delete_product(&self, id: &ResourceId) -> Result<bool, StoreError> {
        let id = id.as_str().to_owned();
        self.run(move |conn| {
            conn.execute("DELETE FROM products WHERE id = ?1", [id])
                .map(|n| n > 0)
                .map_err(backend)
        })
        .await
    }

    async fn put_product_member(
        &self,
        id: &ResourceId,
        user: &Username,
    ) -> Result<bool, StoreError> {
        self.put_member(
            "product_members",
            "product_id",
            PRODUCT_EXISTS,
            "product",
            id,
            user,
        )
        .await
    }

    async fn delete_product_member(
        &self,
        id: &ResourceId,
        user: &Username,
    ) -> Result<bool, StoreError> {
        self.delete_member("product_members", "product_id", id, user)
            .await
    }

    async fn product_access(
        &self,
        user: &Username,
        product: &ResourceId,
    ) -> Result<ProductAccess, StoreError> {
        let (username, product_id) = (user.as_str().to_owned(), product.as_str().to_owned());
        let label = format!("product {product}");
        self.run(move |conn| {
            let product = read_product(conn, &product_id)?.ok_or(StoreError::NotFound(label))?;
            let is_admin = conn
                .query_row("SELECT is_admin FROM users WHERE username = ?1", [&username], |r| r.get::<_, bool>(0))
                .optional()
                .map_err(backend)?
                .unwrap_or(false);
            let is_product_member = conn
                .query_row(
                    "SELECT 1 FROM product_members WHERE product_id = ?1 AND username = ?2",
                    params![product_id, username],
                    |_| Ok(()),
                )
                .optional()
                .map_err(backend)?
                .is_some();
            let is_product_type_member = conn
                .query_row(
                    "SELECT 1 FROM product_type_members WHERE product_type_id = ?1 AND username = ?2",
                    params![product.product_type_id.as_str(), username],
                    |_| Ok(()),
                )
                .optional()
                .map_err(backend)?
                .is_some();
            Ok(ProductAccess { is_admin, is_product_member, is_product_type_member })
        })
        .await
    }

    async fn product_audience(
        &self,
        product: &ResourceId,
    ) -> Result<Option<ProductAudience>, StoreError> {
        let product_id = product.as_str().to_owned();
        self.run(move |conn| {
            let Some(product) = read_product(conn, &product_id)? else {
                return Ok(None);
            };
            let mut stmt = conn
                .prepare_cached(
                    "SELECT u.username, u.email, u.first_name, u.last_name, u.slack_email,
                        u.slack_user_id, u.is_active, u.is_admin, u.personal, pn.body FROM users u
                     LEFT JOIN product_notifications pn ON pn.username = u.username AND pn.product_id = ?1
                     WHERE u.is_admin = 1
                        OR u.username IN (SELECT username FROM product_members WHERE product_id = ?1)
                        OR u.username IN (SELECT username FROM product_type_members WHERE product_type_id = ?2)
                     ORDER BY u.username",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![product_id, product.product_type_id.as_str()], |row| {
                    Ok((user_from_row(row)?, row.get::<_, String>(8)?, row.get::<_, Option<String>>(9)?))
                })
                .map_err(backend)?;
            let mut members = Vec::new();
            for row in rows {
                let (user, personal, product_settings) = row.map_err(backend)?;
                members.push(AudienceMember {
                    user,
                    personal: parse_settings(&personal)?,
                    product_settings: product_settings.as_deref().map(parse_settings).transpose()?,
                });
            }
            Ok(Some(ProductAudience { product, members }))
        })
        .await
    }

    async fn administrator_audience(&self) -> Result<Vec<AudienceMember>, StoreError> {
        self.run(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {USER_COLUMNS}, personal FROM users WHERE is_admin = 1 ORDER BY username"
                ))
                .map_err(backend)?;
            let rows = stmt
                .query_map([], |row| Ok((user_from_row(row)?, row.get::<_, String>(8)?)))
                .map_err(backend)?;
            rows.map(|row| {
                let (user, personal) = row.map_err(backend)?;
                Ok(AudienceMember { user, personal: parse_settings(&personal)?, product_settings: None })
            })
            .collect()
        })
        .await
    }

    async fn recipients(&self, users: &[Username]) -> Result<Vec<AudienceMember>, StoreError> {
        let names: Vec<String> = users.iter().map(|u| u.as_str().to_owned()).collect();
        self.run(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {USER_COLUMNS}, personal FROM users WHERE username = ?1"
                ))
                .map_err(backend)?;
            let mut members = Vec::with_capacity(names.len());
            for name in &names {
                let row = stmt
                    .query_row([name], |row| {
                        Ok((user_from_row(row)?, row.get::<_, String>(8)?))
                    })
                    .optional()
                    .map_err(backend)?;
                if let Some((user, personal)) = row {
                    members.push(AudienceMember {
                        user,
                        personal: parse_settings(&personal)?,
                        product_settings: None,
                    });
                }
            }
            Ok(members)
        })
        .await
    }

    async fn administrators(&self) -> Result<Vec<User>, StoreError> {
        self.run(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {USER_COLUMNS} FROM users WHERE is_admin = 1 ORDER BY username"
                ))
                .map_err(backend)?;
            let users = stmt
                .query_map([], user_from_row)
                .map_err(backend)?
                .collect::<rusqlite::Result<Vec<User>>>()
                .map_err(backend)?;
            Ok(users)
        })
        .await
    }
}

fn read_product(conn: &Connection, id: &str) -> Result<Option<Product>, StoreError> {
    conn.query_row(
        "SELECT id, name, product_type_id, disable_sla_breach_notifications FROM products WHERE id = ?1",
        [id],
        |r| {
            Ok(Product {
                id: ResourceId(r.get(0)?),
                name: r.get(1)?,
                product_type_id: ResourceId(r.get(2)?),
                disable_sla_breach_notifications: r.get(3)?,
            })
        },
    )
    .optional()
    .map_err(backend)
}

impl EmbeddedStore {
    async fn put_member(
        &self,
        table: &'static str,
        column: &'static str,
        parent_exists: &'static str,
        parent_kind: &'static str,
        id: &ResourceId,
        user: &Username,
    ) -> Result<bool, StoreError> {
        let (key, username) = (id.as_str().to_owned(), user.as_str().to_owned());
        let (parent_label, user_label) = (format!("{parent_kind} {id}"), format!("user {user}"));
        self.run(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            require(&tx, parent_exists, &key, parent_label)?;
            require(&tx, USER_EXISTS, &username, user_label)?;
            let n = tx
                .execute(
                    &format!("INSERT OR IGNORE INTO {table} ({column}, username) VALUES (?1, ?2)"),
                    params![key, username],
                )
                .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }

    async fn delete_member(
        &self,
        table: &'static str,
        column: &'static str,
        id: &ResourceId,
        user: &Username,
    ) -> Result<bool, StoreError> {
        let (key, username) = (id.as_str().to_owned(), user.as_str().to_owned());
        self.run(move |conn| {
            conn.execute(
                &format!("DELETE FROM {table} WHERE {column} = ?1 AND username = ?2"),
                params![key, username],
            )
            .map(|n| n > 0)
            .map_err(backend)
        })
        .await
    }
}

/// When an event accepted at `accepted_at_ms` and its deliveries may be deleted, in seconds
/// since the Unix epoch (the same attribute as DynamoDB's TTL).
fn event_expiry(accepted_at_ms: u64) -> i64 {
    let seconds = accepted_at_ms / 1000 + crate::intake::EVENT_RETENTION_DAYS * 86_400;
    i64::try_from(seconds).unwrap_or(i64::MAX)
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

const EVENT_COLUMNS: &str = "id, body, accepted_at, delivery_count, alert_count, enqueued";

fn read_event(conn: &Connection, id: &str) -> Result<Option<EventRecord>, StoreError> {
    let row = conn
        .query_row(
            &format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = ?1"),
            [id],
            |r| {
                Ok((
                    r.get::<_, String>(1)?,
                    unsigned::<u64>(r, 2)?,
                    unsigned::<u32>(r, 3)?,
                    unsigned::<u32>(r, 4)?,
                    r.get::<_, bool>(5)?,
                ))
            },
        )
        .optional()
        .map_err(backend)?;
    let Some((body, accepted_at, delivery_count, alert_count, enqueued)) = row else {
        return Ok(None);
    };
    let event = Event::from_stored(&body)
        .map_err(|e| StoreError::Backend(format!("unreadable stored event {id}: {e}")))?;
    Ok(Some(EventRecord {
        event,
        accepted_at,
        delivery_count,
        alert_count,
        enqueued,
        // One transaction writes everything.
        complete: true,
    }))
}

const DELIVERY_COLUMNS: &str =
    "id, event_id, channel, destination, status, attempts, last_error, updated_at";

fn delivery_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Delivery, StoreError>> {
    let (id, event_id, channel, destination, status): (String, String, String, String, String) = (
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
    );
    let (attempts, last_error, updated_at) = (unsigned(row, 5)?, row.get(6)?, unsigned(row, 7)?);
    let unreadable = |what: &str, value: &str| {
        StoreError::Backend(format!("delivery {id} has an unreadable {what} `{value}`"))
    };
    let delivery = (|| {
        Ok(Delivery {
            channel: Channel::from_name(&channel).ok_or_else(|| unreadable("channel", &channel))?,
            destination: Destination::from_key(&destination)
                .ok_or_else(|| unreadable("destination", &destination))?,
            status: DeliveryStatus::from_name(&status)
                .ok_or_else(|| unreadable("status", &status))?,
            id: DeliveryId::from_stored(id.clone()),
            event_id: EventId(event_id),
            attempts,
            last_error,
            updated_at,
        })
    })();
    Ok(delivery)
}

const ALERT_COLUMNS: &str =
    "id, username, event_id, title, description, url, icon, source, created_at, read";

/// Inserts each of `alerts` unless its user has an alert with its id already (the read state
/// of that one stays); returns how many were inserted.
fn insert_alerts(conn: &Connection, alerts: &[Alert]) -> Result<u64, StoreError> {
    let mut insert = conn
        .prepare_cached(&format!(
            "INSERT INTO alerts ({ALERT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT(username, id) DO NOTHING"
        ))
        .map_err(backend)?;
    let mut inserted = 0;
    for a in alerts {
        inserted += insert
            .execute(params![
                a.id,
                a.username.as_str(),
                a.event_id.as_str(),
                a.title,
                a.description,
                a.url,
                a.icon,
                a.source,
                integer(a.created_at),
                a.read
            ])
            .map_err(backend)? as u64;
    }
    Ok(inserted)
}

fn alert_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Alert> {
    Ok(Alert {
        id: row.get(0)?,
        username: Username(row.get(1)?),
        event_id: EventId(row.get(2)?),
        title: row.get(3)?,
        description: row.get(4)?,
        url: row.get(5)?,
        icon: row.get(6)?,
        source: row.get(7)?,
        created_at: unsigned(row, 8)?,
        read: row.get(9)?,
    })
}

#[async_trait]
impl EventStore for EmbeddedStore {
    async fn record_event(
        &self,
        record: &EventRecord,
        alerts: &[Alert],
        deliveries: &[Delivery],
    ) -> Result<RecordOutcome, StoreError> {
        let (record, alerts, deliveries) = (record.clone(), alerts.to_vec(), deliveries.to_vec());
        self.run(move |conn| {
            let id = record.event.id.as_str().to_owned();
            let expires_at = event_expiry(record.accepted_at);
            // One transaction: the event, its alerts, its deliveries and their queue messages
            // are durable together or not at all.
            let tx = conn.transaction().map_err(backend)?;
            let inserted = tx
                .execute(
                    "INSERT INTO events (id, body, accepted_at, delivery_count, alert_count, enqueued, expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(id) DO NOTHING",
                    params![
                        id,
                        record.event.to_stored(),
                        integer(record.accepted_at),
                        record.delivery_count,
                        record.alert_count,
                        record.enqueued,
                        expires_at
                    ],
                )
                .map_err(backend)?;
            if inserted == 0 {
                let first = read_event(&tx, &id)?
                    .ok_or_else(|| StoreError::Backend(format!("event {id} vanished while recording")))?;
                return Ok(RecordOutcome::Duplicate(first));
            }
            {
                insert_alerts(&tx, &alerts)?;
                let mut insert_delivery = tx
                    .prepare_cached(&format!(
                        "INSERT INTO deliveries ({DELIVERY_COLUMNS}, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                         ON CONFLICT(event_id, id) DO NOTHING"
                    ))
                    .map_err(backend)?;
                for d in &deliveries {
                    insert_delivery
                        .execute(params![
                            d.id.as_str(),
                            id,
                            d.channel.name(),
                            d.destination.key(),
                            d.status.name(),
                            d.attempts,
                            d.last_error,
                            integer(d.updated_at),
                            expires_at
                        ])
                        .map_err(backend)?;
                }
            }
            // The queue messages commit with the event: an event answered 202 is never lost.
            let messages: Vec<DeliveryMessage> = deliveries.iter().map(Delivery::message).collect();
            crate::adapters::embedded_queue::enqueue_in(&tx, &messages, record.accepted_at)?;
            tx.commit().map_err(backend)?;
            Ok(RecordOutcome::Recorded)
        })
        .await
    }

    async fn mark_event_enqueued(&self, id: &EventId) -> Result<(), StoreError> {
        let id = id.as_str().to_owned();
        self.run(move |conn| {
            // An unknown (or expired and deleted) event is fine: nothing is left to enqueue.
            conn.execute("UPDATE events SET enqueued = 1 WHERE id = ?1", [id])
                .map(|_| ())
                .map_err(backend)
        })
        .await
    }

    async fn events_not_enqueued(&self, limit: usize) -> Result<Vec<EventId>, StoreError> {
        let limit = integer(limit as u64);
        self.run(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id FROM events WHERE enqueued = 0 ORDER BY accepted_at, id LIMIT ?1",
                )
                .map_err(backend)?;
            let ids = stmt
                .query_map([limit], |r| r.get::<_, String>(0).map(EventId))
                .map_err(backend)?
                .collect::<rusqlite::Result<Vec<EventId>>>()
                .map_err(backend)?;
            Ok(ids)
        })
        .await
    }

    async fn event(&self, id: &EventId) -> Result<Option<EventRecord>, StoreError> {
        let id = id.as_str().to_owned();
        self.run(move |conn| read_event(conn, &id)).await
    }

    async fn deliveries(&self, id: &EventId) -> Result<Vec<Delivery>, StoreError> {
        let id = id.as_str().to_owned();
        self.run(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE event_id = ?1 ORDER BY id"
                ))
                .map_err(backend)?;
            let rows = stmt.query_map([id], delivery_from_row).map_err(backend)?;
            rows.map(|row| row.map_err(backend)?).collect()
        })
        .await
    }

    async fn delivery(
        &self,
        event: &EventId,
        id: &DeliveryId,
    ) -> Result<Option<Delivery>, StoreError> {
        let (event, id) = (event.as_str().to_owned(), id.as_str().to_owned());
        self.run(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE event_id = ?1 AND id = ?2"
            ))
            .and_then(|mut stmt| {
                stmt.query_row(params![event, id], delivery_from_row)
                    .optional()
            })
            .map_err(backend)?
            .transpose()
        })
        .await
    }

    async fn record_attempt(
        &self,
        event: &EventId,
        id: &DeliveryId,
        outcome: &AttemptOutcome,
        now_ms: u64,
    ) -> Result<Option<Delivery>, StoreError> {
        let (event, id) = (event.as_str().to_owned(), id.as_str().to_owned());
        let (status, error) = (outcome.status().name(), outcome.error().map(str::to_owned));
        self.run(move |conn| {
            // One statement checks, writes and reads back, atomically: a final delivery (or an
            // unknown one) matches no row.
            conn.prepare_cached(&format!(
                "UPDATE deliveries
                 SET status = ?3, attempts = attempts + 1, last_error = ?4, updated_at = ?5
                 WHERE event_id = ?1 AND id = ?2 AND status NOT IN (?6, ?7, ?8)
                 RETURNING {DELIVERY_COLUMNS}"
            ))
            .and_then(|mut stmt| {
                stmt.query_row(
                    params![
                        event,
                        id,
                        status,
                        error,
                        integer(now_ms),
                        DeliveryStatus::Sent.name(),
                        DeliveryStatus::Failed.name(),
                        DeliveryStatus::Dead.name()
                    ],
                    delivery_from_row,
                )
                .optional()
            })
            .map_err(backend)?
            .transpose()
        })
        .await
    }
}

#[async_trait]
impl AlertStore for EmbeddedStore {
    async fn alerts(
        &self,
        user: &Username,
        unread_only: bool,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<AlertPage, StoreError> {
        if let Some(cursor) = cursor.filter(|c| !Alert::is_valid_id(c)) {
            return Err(StoreError::Invalid(format!(
                "`{cursor}` is not a cursor from a previous page"
            )));
        }
        let limit = limit.max(1);
        let (username, cursor) = (user.as_str().to_owned(), cursor.map(str::to_owned));
        self.run(move |conn| {
            let mut sql = format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE username = ?1");
            if cursor.is_some() {
                sql.push_str(" AND id < ?2");
            }
            if unread_only {
                sql.push_str(" AND read = 0");
            }
            // One more than asked tells whether another page follows.
            sql.push_str(&format!(
                " ORDER BY id DESC LIMIT {}",
                limit.saturating_add(1)
            ));
            let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
            let rows = match &cursor {
                Some(cursor) => stmt.query_map(params![username, cursor], alert_from_row),
                None => stmt.query_map(params![username], alert_from_row),
            }
            .map_err(backend)?;
            let mut items = rows
                .collect::<rusqlite::Result<Vec<Alert>>>()
                .map_err(backend)?;
            let more = items.len() > limit;
            items.truncate(limit);
            let next_cursor = if more {
                items.last().map(|a| a.id.clone())
            } else {
                None
            };
            Ok(AlertPage { items, next_cursor })
        })
        .await
    }

    async fn alert_counts(&self, user: &Username) -> Result<AlertCounts, StoreError> {
        let username = user.as_str().to_owned();
        self.run(move |conn| {
            conn.query_row(
                "SELECT COUNT(*), COALESCE(SUM(read = 0), 0) FROM alerts WHERE username = ?1",
                [username],
                |r| {
                    Ok(AlertCounts {
                        total: unsigned(r, 0)?,
                        unread: unsigned(r, 1)?,
                    })
                },
            )
            .map_err(backend)
        })
        .await
    }

    async fn mark_alerts_read(
        &self,
        user: &Username,
        ids: Option<&[String]>,
    ) -> Result<u64, StoreError> {
        let username = user.as_str().to_owned();
        let ids: Option<Vec<String>> = ids.map(|ids| {
            ids.iter()
                .filter(|id| Alert::is_valid_id(id))
                .cloned()
                .collect()
        });
        self.run(move |conn| {
            let Some(ids) = ids else {
                return conn
                    .execute(
                        "UPDATE alerts SET read = 1 WHERE username = ?1 AND read = 0",
                        [username],
                    )
                    .map(|n| n as u64)
                    .map_err(backend);
            };
            let tx = conn.transaction().map_err(backend)?;
            let mut changed = 0;
            {
                let mut stmt = tx
                    .prepare_cached(
                        "UPDATE alerts SET read = 1 WHERE username = ?1 AND id = ?2 AND read = 0",
                    )
                    .map_err(backend)?;
                for id in &ids {
                    changed += stmt.execute(params![username, id]).map_err(backend)? as u64;
                }
            }
            tx.commit().map_err(backend)?;
            Ok(changed)
        })
        .await
    }

    async fn delete_alert(&self, user: &Username, id: &str) -> Result<bool, StoreError> {
        let (username, id) = (user.as_str().to_owned(), id.to_owned());
        self.run(move |conn| {
            conn.execute(
                "DELETE FROM alerts WHERE username = ?1 AND id = ?2",
                params![username, id],
            )
            .map(|n| n > 0)
            .map_err(backend)
        })
        .await
    }

    async fn delete_alerts(&self, user: &Username) -> Result<u64, StoreError> {
        let username = user.as_str().to_owned();
        self.run(move |conn| {
            conn.execute("DELETE FROM alerts WHERE username = ?1", [username])
                .map(|n| n as u64)
                .map_err(backend)
        })
        .await
    }

    async fn trim_alerts(&self, user: &Username, keep: usize) -> Result<u64, StoreError> {
        let (username, keep) = (user.as_str().to_owned(), integer(keep as u64));
        self.run(move |conn| {
            conn.execute(
                "DELETE FROM alerts WHERE username = ?1 AND id NOT IN
                    (SELECT id FROM alerts WHERE username = ?1 ORDER BY id DESC LIMIT ?2)",
                params![username, keep],
            )
            .map(|n| n as u64)
            .map_err(backend)
        })
        .await
    }
    async fn add_alerts(&self, alerts: &[Alert]) -> Result<u64, StoreError> {
        if alerts.is_empty() {
            return Ok(0);
        }
        let alerts = alerts.to_vec();
        self.run(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            let added = insert_alerts(&tx, &alerts)?;
            tx.commit().map_err(backend)?;
            Ok(added)
        })
        .await
    }
}
