//! [`DirectoryStore`] on the embedded store: users, product types, products, memberships,
//! and the audiences read from them.
use super::cache::CACHED_AUDIENCES;
use super::{EmbeddedStore, backend, parse_settings};
use crate::domain::{
    AudienceMember, NotificationSettings, Product, ProductAccess, ProductAudience, ProductType,
    ResourceId, User, UserProfile, Username, ViewableProduct,
};
use crate::ports::{DirectoryStore, StoreError, UserWrite};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

pub(super) const USER_COLUMNS: &str =
    "username, email, first_name, last_name, slack_email, slack_user_id, is_active, is_admin";

pub(super) fn user_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
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

pub(super) fn exists(conn: &Connection, sql: &str, key: &str) -> Result<bool, StoreError> {
    conn.query_row(sql, [key], |_| Ok(()))
        .optional()
        .map(|found| found.is_some())
        .map_err(backend)
}

pub(super) fn require(
    conn: &Connection,
    sql: &str,
    key: &str,
    what: &str,
) -> Result<(), StoreError> {
    if exists(conn, sql, key)? {
        Ok(())
    } else {
        Err(StoreError::NotFound(what.to_owned()))
    }
}

pub(super) const USER_EXISTS: &str = "SELECT 1 FROM users WHERE username = ?1";
pub(super) const PRODUCT_EXISTS: &str = "SELECT 1 FROM products WHERE id = ?1";
pub(super) const PRODUCT_TYPE_EXISTS: &str = "SELECT 1 FROM product_types WHERE id = ?1";

impl EmbeddedStore {
    /// Everyone who may view `product_id`, with their settings, from the database.
    pub(super) async fn read_product_audience(
        &self,
        product_id: String,
    ) -> Result<Option<ProductAudience>, StoreError> {
        self.read(move |conn| {
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

    pub(super) async fn read_administrator_audience(
        &self,
    ) -> Result<Vec<AudienceMember>, StoreError> {
        self.read(move |conn| {
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

    pub(super) async fn read_administrators(&self) -> Result<Vec<User>, StoreError> {
        self.read(move |conn| {
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

    pub(super) async fn put_member(
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
        self.run_invalidating(move |conn| {
            let tx = conn.savepoint().map_err(backend)?;
            require(&tx, parent_exists, &key, &parent_label)?;
            require(&tx, USER_EXISTS, &username, &user_label)?;
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

    pub(super) async fn delete_member(
        &self,
        table: &'static str,
        column: &'static str,
        id: &ResourceId,
        user: &Username,
    ) -> Result<bool, StoreError> {
        let (key, username) = (id.as_str().to_owned(), user.as_str().to_owned());
        self.run_invalidating(move |conn| {
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
        self.run_invalidating(move |conn| {
            let tx = conn.savepoint().map_err(backend)?;
            let existed = exists(&tx, USER_EXISTS, &username)?;
            tx.execute(
                "INSERT INTO users (username, email, first_name, last_name, slack_email, slack_user_id, is_active, is_admin, personal)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT(username) DO UPDATE SET
                    email = excluded.email, first_name = excluded.first_name, last_name = excluded.last_name,
                    slack_email = excluded.slack_email,
                    -- Named: set. Not named: kept while slack_email stays (the right-hand
                    -- sides read the row as it was), cleared when it changes.
                    slack_user_id = CASE
                        WHEN excluded.slack_user_id IS NOT NULL THEN excluded.slack_user_id
                        WHEN users.slack_email IS excluded.slack_email THEN users.slack_user_id
                        ELSE NULL END,
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
        self.lookup(move |conn| {
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
        self.run_invalidating(move |conn| {
            conn.execute("DELETE FROM users WHERE username = ?1", [&username])
                .map(|n| n > 0)
                .map_err(backend)
        })
        .await
    }

    async fn set_slack_user_id(
        &self,
        user: &Username,
        slack_email: &str,
        slack_user_id: &str,
    ) -> Result<bool, StoreError> {
        let (username, email, id) = (
            user.as_str().to_owned(),
            slack_email.to_owned(),
            slack_user_id.to_owned(),
        );
        self.run_invalidating(move |conn| {
            conn.execute(
                "UPDATE users SET slack_user_id = ?2 WHERE username = ?1 AND slack_email = ?3",
                params![username, id, email],
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
            let tx = conn.savepoint().map_err(backend)?;
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
        self.lookup(move |conn| {
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
        self.run_invalidating(move |conn| {
            let tx = conn.savepoint().map_err(backend)?;
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
        self.run_invalidating(move |conn| {
            let tx = conn.savepoint().map_err(backend)?;
            require(
                &tx,
                PRODUCT_TYPE_EXISTS,
                p.product_type_id.as_str(),
                &format!("product type {}", p.product_type_id),
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
        self.lookup(move |conn| read_product(conn, &id)).await
    }

    async fn delete_product(&self, id: &ResourceId) -> Result<bool, StoreError> {
        let id = id.as_str().to_owned();
        self.run_invalidating(move |conn| {
            conn.execute("DELETE FROM products WHERE id = ?1", [&id])
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
        self.lookup(move |conn| {
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

    async fn viewable_products(
        &self,
        user: &Username,
    ) -> Result<Option<Vec<ViewableProduct>>, StoreError> {
        let username = user.as_str().to_owned();
        self.read(move |conn| {
            let is_admin = conn
                .query_row("SELECT is_admin FROM users WHERE username = ?1", [&username], |r| r.get::<_, bool>(0))
                .optional()
                .map_err(backend)?;
            let Some(is_admin) = is_admin else {
                return Ok(None);
            };
            // Each product once, with the three reasons; an administrator sees every product.
            let mut stmt = conn
                .prepare_cached(
                    "SELECT p.id, p.name, p.product_type_id, p.disable_sla_breach_notifications,
                        pm.username IS NOT NULL, tm.username IS NOT NULL, pn.username IS NOT NULL
                     FROM products p
                     LEFT JOIN product_members pm ON pm.product_id = p.id AND pm.username = ?1
                     LEFT JOIN product_type_members tm
                        ON tm.product_type_id = p.product_type_id AND tm.username = ?1
                     LEFT JOIN product_notifications pn ON pn.product_id = p.id AND pn.username = ?1
                     WHERE ?2 OR p.id IN (SELECT product_id FROM product_members WHERE username = ?1)
                        OR p.product_type_id IN
                           (SELECT product_type_id FROM product_type_members WHERE username = ?1)",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![username, is_admin], |r| {
                    Ok(ViewableProduct {
                        product: Product {
                            id: ResourceId(r.get(0)?),
                            name: r.get(1)?,
                            product_type_id: ResourceId(r.get(2)?),
                            disable_sla_breach_notifications: r.get(3)?,
                        },
                        access: ProductAccess {
                            is_admin,
                            is_product_member: r.get(4)?,
                            is_product_type_member: r.get(5)?,
                        },
                        has_settings: r.get(6)?,
                    })
                })
                .map_err(backend)?;
            let mut products = rows.collect::<Result<Vec<_>, _>>().map_err(backend)?;
            ViewableProduct::sort(&mut products);
            Ok(Some(products))
        })
        .await
    }

    async fn product_audience(
        &self,
        product: &ResourceId,
    ) -> Result<Option<ProductAudience>, StoreError> {
        let product_id = product.as_str().to_owned();
        self.cached_with(
            |c| c.audiences.get(product.as_str()).cloned().map(Some),
            |c, audience| {
                if let Some(audience) = audience {
                    if c.audiences.len() >= CACHED_AUDIENCES {
                        c.audiences.clear();
                    }
                    c.audiences
                        .insert(audience.product.id.as_str().to_owned(), audience);
                }
            },
            self.read_product_audience(product_id),
        )
        .await
    }

    async fn administrator_audience(&self) -> Result<Vec<AudienceMember>, StoreError> {
        self.cached(
            |c| &c.administrator_audience,
            |c| &mut c.administrator_audience,
            self.read_administrator_audience(),
        )
        .await
    }

    async fn recipients(&self, users: &[Username]) -> Result<Vec<AudienceMember>, StoreError> {
        let names: Vec<String> = users.iter().map(|u| u.as_str().to_owned()).collect();
        self.read(move |conn| {
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
        self.cached(
            |c| &c.administrators,
            |c| &mut c.administrators,
            self.read_administrators(),
        )
        .await
    }
}

pub(super) fn read_product(conn: &Connection, id: &str) -> Result<Option<Product>, StoreError> {
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
