//! The embedded store's schema, its version, and the upgrades from every earlier version.

/// 1: the first schema; 2: `deliveries.lease_until` (send claims); 3: `alerts` clustered by
/// its key without the unread index, queue messages unique by (event, delivery) (the writes of
/// one event sit together instead of one page per row); 4: `alert_fanout` (an event's alerts
/// filed once, merged into `alerts` in batches), `deliveries` clustered by its key (one
/// B-tree per row written instead of a table and an index); 5: queue messages indexed by
/// event alone instead of unique by (event, delivery), kept one per delivery by the queue
/// (a short entry appended per message instead of a long one inserted in place).
pub(super) const SCHEMA_VERSION: i64 = 5;

pub(super) const SCHEMA: &str = r#"
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
    lease_until INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (event_id, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS deliveries_by_status ON deliveries(status, updated_at)
    WHERE status IN ('retrying', 'failed', 'dead');
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
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alert_fanout (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    url TEXT NOT NULL,
    icon TEXT NOT NULL,
    source TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    recipient_count INTEGER NOT NULL,
    recipients TEXT NOT NULL
);
"#;

/// Upgrading from schema 1 or 2, first step: the tables whose layout changed are set aside
/// (with their named indexes dropped), so [`SCHEMA`] and the queue's schema create them anew.
pub(super) const UPGRADE_FROM_2_SET_ASIDE: &str = r#"
DROP INDEX IF EXISTS alerts_unread;
ALTER TABLE alerts RENAME TO alerts_v2;
DROP INDEX IF EXISTS queue_messages_ready;
DROP INDEX IF EXISTS queue_messages_by_delivery;
ALTER TABLE queue_messages RENAME TO queue_messages_v2;
"#;

/// Upgrading from schema 1 or 2, last step: the rows move into the new tables (queue
/// messages keep their order: `seq` is the old rowid; the event id comes from the body).
pub(super) const UPGRADE_FROM_2_MOVE: &str = r#"
INSERT INTO alerts (username, id, event_id, title, description, url, icon, source, created_at, read)
    SELECT username, id, event_id, title, description, url, icon, source, created_at, read
    FROM alerts_v2;
DROP TABLE alerts_v2;
INSERT INTO queue_messages (seq, event_id, id, channel, body, visible_at, receive_count, receipt, enqueued_at, dead)
    SELECT rowid, COALESCE(CASE WHEN json_valid(body) THEN json_extract(body, '$.event_id') END, ''),
           id, channel, body, visible_at,
           receive_count, receipt, enqueued_at, dead
    FROM queue_messages_v2 ORDER BY rowid;
DROP TABLE queue_messages_v2;
"#;

/// Upgrading from schema 1 to 3, first step: `deliveries` is set aside, so [`SCHEMA`]
/// creates it anew, clustered by its key.
pub(super) const UPGRADE_FROM_3_SET_ASIDE: &str = "ALTER TABLE deliveries RENAME TO deliveries_v3;";

/// Upgrading from schema 1 to 3, last step: the deliveries move into the new table.
pub(super) const UPGRADE_FROM_3_MOVE: &str = r#"
INSERT INTO deliveries (event_id, id, channel, destination, status, attempts, last_error, updated_at, expires_at, lease_until)
    SELECT event_id, id, channel, destination, status, attempts, last_error, updated_at, expires_at, lease_until
    FROM deliveries_v3;
DROP TABLE deliveries_v3;
"#;

/// Upgrading from schema 1 to 4: the queue's unique index by (event, delivery) goes; the
/// queue's schema creates its index by event instead (rows were unique already).
pub(super) const UPGRADE_FROM_4: &str = "DROP INDEX IF EXISTS queue_messages_by_delivery;";
