//! [`ScheduleStore`] on the embedded store's SQLite database (a child module of `embedded`,
//! sharing its connection and helpers).
//!
//! Engagements, findings and risk acceptances share one table, `scheduled_records`, keyed by
//! `(kind, id)`, each with the due list it is on and its date there (see
//! `crate::adapters::due`: a pending engagement by start, one in progress by end, an active
//! finding that is not Info by SLA date, a risk acceptance by expiry; anything else on none).
//! A record goes with its product (`ON DELETE CASCADE`).
//!
//! Access patterns and what serves them:
//! | pattern | served by |
//! |---|---|
//! | a record by id | `scheduled_records` primary key |
//! | put a record (product must exist) | one savepoint: the product's primary key, then `INSERT .. ON CONFLICT DO UPDATE` |
//! | the records due in a range of dates, of one list | partial index `scheduled_by_due (due_list, due, id)` |
//! | close an engagement still in progress | one savepoint: primary-key read, check, update |
//! | remember a reminder once | `INSERT .. ON CONFLICT(key) DO NOTHING` on `reminders`, counting the rows inserted |
//! | expired reminder records | index `reminders_by_expiry`, pruned when a reminder is remembered |
//! | users with alerts (the alert clean-up) | the `alerts` primary key `(username, id)`, one seek per user (a loose index scan) |

use super::directory::{PRODUCT_EXISTS, require};
use super::{EmbeddedStore, backend};
use crate::adapters::due;
use crate::domain::checks::REMINDER_RETENTION_DAYS;
use crate::domain::checks::{Engagement, EngagementStatus, Finding, RiskAcceptance};
use crate::domain::{FieldError, ResourceId, Username};
use crate::ports::{ScheduleStore, StoreError};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use time::Date;

/// The tables; `EmbeddedStore::init` runs this with the store's own schema.
pub(super) const SCHEDULE_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS scheduled_records (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    product_id TEXT NOT NULL REFERENCES products(id) ON DELETE CASCADE,
    body TEXT NOT NULL,
    due_list TEXT,
    due TEXT,
    PRIMARY KEY (kind, id)
);
CREATE INDEX IF NOT EXISTS scheduled_by_due ON scheduled_records(due_list, due, id) WHERE due_list IS NOT NULL;
CREATE INDEX IF NOT EXISTS scheduled_by_product ON scheduled_records(product_id);
CREATE TABLE IF NOT EXISTS reminders (
    key TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS reminders_by_expiry ON reminders(expires_at);
CREATE TABLE IF NOT EXISTS first_times (
    key TEXT PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
"#;

const RETENTION_MS: i64 = REMINDER_RETENTION_DAYS as i64 * 86_400_000;

const ENGAGEMENT: &str = "engagement";
const FINDING: &str = "finding";
const RISK_ACCEPTANCE: &str = "risk_acceptance";

fn unreadable(kind: &str) -> impl Fn(FieldError) -> StoreError + '_ {
    move |e| StoreError::Backend(format!("unreadable {kind}: {e}"))
}

/// One record as the table keeps it.
struct Row {
    kind: &'static str,
    id: String,
    product_id: String,
    body: String,
    due: Option<(&'static str, Date)>,
}

fn put_row(conn: &mut Connection, row: &Row) -> Result<bool, StoreError> {
    let tx = conn.savepoint().map_err(backend)?;
    require(
        &tx,
        PRODUCT_EXISTS,
        &row.product_id,
        &format!("product {}", row.product_id),
    )?;
    let existed = tx
        .query_row(
            "SELECT 1 FROM scheduled_records WHERE kind = ?1 AND id = ?2",
            params![row.kind, row.id],
            |_| Ok(()),
        )
        .optional()
        .map_err(backend)?
        .is_some();
    let (list, date) = match row.due {
        Some((list, date)) => (Some(list), Some(date.to_string())),
        None => (None, None),
    };
    tx.execute(
        "INSERT INTO scheduled_records (kind, id, product_id, body, due_list, due)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT(kind, id) DO UPDATE SET product_id = excluded.product_id,
             body = excluded.body, due_list = excluded.due_list, due = excluded.due",
        params![row.kind, row.id, row.product_id, row.body, list, date],
    )
    .map_err(backend)?;
    tx.commit().map_err(backend)?;
    Ok(!existed)
}

fn read_body(conn: &Connection, kind: &str, id: &str) -> Result<Option<String>, StoreError> {
    conn.query_row(
        "SELECT body FROM scheduled_records WHERE kind = ?1 AND id = ?2",
        params![kind, id],
        |row| row.get(0),
    )
    .optional()
    .map_err(backend)
}

fn due_bodies(
    conn: &Connection,
    list: &str,
    from: Date,
    to: Date,
) -> Result<Vec<String>, StoreError> {
    let mut statement = conn
        .prepare_cached(
            "SELECT body FROM scheduled_records
             WHERE due_list = ?1 AND due BETWEEN ?2 AND ?3 AND due_list IS NOT NULL
             ORDER BY due, id",
        )
        .map_err(backend)?;
    let rows = statement
        .query_map(params![list, from.to_string(), to.to_string()], |row| {
            row.get::<_, String>(0)
        })
        .map_err(backend)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(backend)
}

impl EmbeddedStore {
    async fn put_record(&self, row: Row) -> Result<bool, StoreError> {
        self.run(move |conn| put_row(conn, &row)).await
    }

    async fn record_body(
        &self,
        kind: &'static str,
        id: &ResourceId,
    ) -> Result<Option<String>, StoreError> {
        let id = id.as_str().to_owned();
        self.lookup(move |conn| read_body(conn, kind, &id)).await
    }

    async fn delete_record(&self, kind: &'static str, id: &ResourceId) -> Result<bool, StoreError> {
        let id = id.as_str().to_owned();
        self.run(move |conn| {
            conn.execute(
                "DELETE FROM scheduled_records WHERE kind = ?1 AND id = ?2",
                params![kind, id],
            )
            .map(|n| n > 0)
            .map_err(backend)
        })
        .await
    }

    async fn due_records(
        &self,
        list: &'static str,
        from: Date,
        to: Date,
    ) -> Result<Vec<String>, StoreError> {
        if from > to {
            return Ok(Vec::new());
        }
        self.read(move |conn| due_bodies(conn, list, from, to))
            .await
    }
}

#[async_trait]
impl ScheduleStore for EmbeddedStore {
    async fn put_engagement(&self, engagement: &Engagement) -> Result<bool, StoreError> {
        self.put_record(Row {
            kind: ENGAGEMENT,
            id: engagement.id.as_str().to_owned(),
            product_id: engagement.product_id.as_str().to_owned(),
            body: engagement.to_json().to_string(),
            due: due::engagement(engagement),
        })
        .await
    }

    async fn engagement(&self, id: &ResourceId) -> Result<Option<Engagement>, StoreError> {
        self.record_body(ENGAGEMENT, id)
            .await?
            .map(|body| Engagement::from_stored(&body).map_err(unreadable(ENGAGEMENT)))
            .transpose()
    }

    async fn delete_engagement(&self, id: &ResourceId) -> Result<bool, StoreError> {
        self.delete_record(ENGAGEMENT, id).await
    }

    async fn put_finding(&self, finding: &Finding) -> Result<bool, StoreError> {
        self.put_record(Row {
            kind: FINDING,
            id: finding.id.as_str().to_owned(),
            product_id: finding.product_id.as_str().to_owned(),
            body: finding.to_json().to_string(),
            due: due::finding(finding),
        })
        .await
    }

    async fn finding(&self, id: &ResourceId) -> Result<Option<Finding>, StoreError> {
        self.record_body(FINDING, id)
            .await?
            .map(|body| Finding::from_stored(&body).map_err(unreadable(FINDING)))
            .transpose()
    }

    async fn delete_finding(&self, id: &ResourceId) -> Result<bool, StoreError> {
        self.delete_record(FINDING, id).await
    }

    async fn put_risk_acceptance(&self, acceptance: &RiskAcceptance) -> Result<bool, StoreError> {
        self.put_record(Row {
            kind: RISK_ACCEPTANCE,
            id: acceptance.id.as_str().to_owned(),
            product_id: acceptance.product_id.as_str().to_owned(),
            body: acceptance.to_json().to_string(),
            due: due::risk_acceptance(acceptance),
        })
        .await
    }

    async fn risk_acceptance(&self, id: &ResourceId) -> Result<Option<RiskAcceptance>, StoreError> {
        self.record_body(RISK_ACCEPTANCE, id)
            .await?
            .map(|body| RiskAcceptance::from_stored(&body).map_err(unreadable(RISK_ACCEPTANCE)))
            .transpose()
    }

    async fn delete_risk_acceptance(&self, id: &ResourceId) -> Result<bool, StoreError> {
        self.delete_record(RISK_ACCEPTANCE, id).await
    }

    async fn engagements_starting(
        &self,
        from: Date,
        to: Date,
    ) -> Result<Vec<Engagement>, StoreError> {
        self.due_records(due::ENGAGEMENT_START, from, to)
            .await?
            .iter()
            .map(|body| Engagement::from_stored(body).map_err(unreadable(ENGAGEMENT)))
            .collect()
    }

    async fn engagements_ending(
        &self,
        from: Date,
        to: Date,
    ) -> Result<Vec<Engagement>, StoreError> {
        self.due_records(due::ENGAGEMENT_END, from, to)
            .await?
            .iter()
            .map(|body| Engagement::from_stored(body).map_err(unreadable(ENGAGEMENT)))
            .collect()
    }

    async fn findings_due(&self, from: Date, to: Date) -> Result<Vec<Finding>, StoreError> {
        self.due_records(due::SLA, from, to)
            .await?
            .iter()
            .map(|body| Finding::from_stored(body).map_err(unreadable(FINDING)))
            .collect()
    }

    async fn risk_acceptances_expiring(
        &self,
        from: Date,
        to: Date,
    ) -> Result<Vec<RiskAcceptance>, StoreError> {
        self.due_records(due::RISK_EXPIRY, from, to)
            .await?
            .iter()
            .map(|body| RiskAcceptance::from_stored(body).map_err(unreadable(RISK_ACCEPTANCE)))
            .collect()
    }

    async fn close_engagement(&self, id: &ResourceId) -> Result<bool, StoreError> {
        let id = id.as_str().to_owned();
        self.run(move |conn| {
            let tx = conn.savepoint().map_err(backend)?;
            let Some(body) = read_body(&tx, ENGAGEMENT, &id)? else {
                return Ok(false);
            };
            let mut engagement = Engagement::from_stored(&body).map_err(unreadable(ENGAGEMENT))?;
            if engagement.status != EngagementStatus::InProgress {
                return Ok(false);
            }
            engagement.status = EngagementStatus::Completed;
            let (list, date) = match due::engagement(&engagement) {
                Some((list, date)) => (Some(list), Some(date.to_string())),
                None => (None, None),
            };
            tx.execute(
                "UPDATE scheduled_records SET body = ?3, due_list = ?4, due = ?5
                 WHERE kind = ?1 AND id = ?2",
                params![ENGAGEMENT, id, engagement.to_json().to_string(), list, date],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(true)
        })
        .await
    }

    async fn remember_reminder(&self, key: &str, expires_at_ms: u64) -> Result<bool, StoreError> {
        let key = key.to_owned();
        let expires_at = i64::try_from(expires_at_ms).unwrap_or(i64::MAX);
        self.run(move |conn| {
            let tx = conn.savepoint().map_err(backend)?;
            // Records that expired before this one was made (its expiry less the retention:
            // the trigger's time, never the wall clock) go first, as DynamoDB's TTL removes
            // them; the checks never look back that far.
            let now = expires_at.saturating_sub(RETENTION_MS);
            tx.execute(
                "DELETE FROM reminders WHERE expires_at < ?1 AND key <> ?2",
                params![now, key],
            )
            .map_err(backend)?;
            let inserted = tx
                .execute(
                    "INSERT INTO reminders (key, expires_at) VALUES (?1, ?2)
                     ON CONFLICT(key) DO NOTHING",
                    params![key, expires_at],
                )
                .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(inserted == 1)
        })
        .await
    }

    async fn first_time(
        &self,
        key: &str,
        at_ms: u64,
        expires_at_ms: u64,
    ) -> Result<u64, StoreError> {
        let key = key.to_owned();
        let at = i64::try_from(at_ms).unwrap_or(i64::MAX);
        let expires_at = i64::try_from(expires_at_ms).unwrap_or(i64::MAX);
        self.run(move |conn| {
            let tx = conn.savepoint().map_err(backend)?;
            // Keys expired by now go first, as DynamoDB's TTL removes them (a handful a day).
            tx.execute(
                "DELETE FROM first_times WHERE expires_at < ?1 AND key <> ?2",
                params![at, key],
            )
            .map_err(backend)?;
            tx.execute(
                "INSERT INTO first_times (key, at_ms, expires_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(key) DO NOTHING",
                params![key, at, expires_at],
            )
            .map_err(backend)?;
            let first: i64 = tx
                .query_row(
                    "SELECT at_ms FROM first_times WHERE key = ?1",
                    [&key],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(u64::try_from(first).unwrap_or(0))
        })
        .await
    }

    async fn users_with_alerts(&self) -> Result<Vec<Username>, StoreError> {
        // Alerts still pending in `alert_fanout` are filed first, so their users are listed.
        self.run(|conn| super::alerts::merge_pending(conn).map(|_| ()))
            .await?;
        self.read(|conn| {
            // A loose index scan of the `alerts` primary key: one seek per user, never a read
            // of every alert.
            let mut statement = conn
                .prepare_cached(
                    "SELECT username FROM alerts WHERE username > ?1 ORDER BY username LIMIT 1",
                )
                .map_err(backend)?;
            let mut users = Vec::new();
            let mut after = String::new();
            while let Some(user) = statement
                .query_row([&after], |row| row.get::<_, String>(0))
                .optional()
                .map_err(backend)?
            {
                after.clone_from(&user);
                users.push(Username(user));
            }
            Ok(users)
        })
        .await
    }

    async fn forget_reminder(&self, key: &str) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.run(move |conn| {
            conn.execute("DELETE FROM reminders WHERE key = ?1", [&key])
                .map(|_| ())
                .map_err(backend)
        })
        .await
    }
}
