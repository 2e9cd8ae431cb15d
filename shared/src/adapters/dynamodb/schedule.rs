//! [`ScheduleStore`] on the DynamoDB table (a child module of `dynamodb`, sharing its client,
//! key helpers and request counting).
//!
//! Items (`{i}` an engagement, finding or risk acceptance id, `{d}` a date `YYYY-MM-DD`,
//! `{k}` a reminder key):
//!
//! | item | `PK` | `SK` | `GSI1PK` / `GSI1SK` | other attributes |
//! |---|---|---|---|---|
//! | engagement | `ENGAGEMENT#{i}` | `ENGAGEMENT` | pending: `DUE#ENGAGEMENT_START` / `{target_start}#{i}`; in progress: `DUE#ENGAGEMENT_END` / `{target_end}#{i}`; otherwise none | `body` (`Engagement::to_json`), `product_id` |
//! | finding | `FINDING#{i}` | `FINDING` | active and not Info, with an SLA date: `DUE#SLA` / `{sla_expiration_date}#{i}`; otherwise none | `body`, `product_id` |
//! | risk acceptance | `RISK_ACCEPTANCE#{i}` | `RISK_ACCEPTANCE` | with an expiry: `DUE#RISK_EXPIRY` / `{expiration_date}#{i}` | `body`, `product_id` |
//! | reminder sent | `REMINDER#{k}` | `REMINDER` | | `expires_at` (TTL, seconds; `REMINDER_RETENTION_DAYS`) |
//!
//! Access patterns and what serves them:
//!
//! | access pattern | served by | requests |
//! |---|---|---|
//! | a record by id | GetItem | 1 |
//! | put a record (product must exist) | GetItem (created or replaced?), then TransactWriteItems: ConditionCheck `PRODUCT#{p}` / `PRODUCT` exists, Put the record with its `GSI1` keys (or none) | 2 |
//! | delete a record | DeleteItem `ALL_OLD` | 1 |
//! | records due between two dates | Query `GSI1` `DUE#{list}`, `GSI1SK BETWEEN {from} AND {to}#~` (ids sort below `~`) | 1 per 1 MB |
//! | close an engagement still in progress | GetItem, then PutItem conditioned on `body` being what was read | 2 |
//! | remember a reminder once | PutItem conditioned on `attribute_not_exists` | 1 |
//! | forget a reminder | DeleteItem | 1 |
//! | users with alerts (the alert clean-up) | not served: it would be a Scan; alerts expire by TTL | 0 |
//!
//! `GSI1` reads are eventually consistent: a record changed within about a second of a run
//! may be seen as it was. That is harmless: a reminder is sent once (its record is a
//! conditional write), closing an engagement is conditional on what is stored, and the next
//! run sees the change. The due lists are single `GSI1` partitions (one per list): fine for
//! the hundreds of writes a second a platform sends, which is below a partition's limit.

use super::attributes::{USERNAME, n, names, s, string};
use super::keys::{ADMINS, GSI1, GSI1PK, GSI1SK, Key, PK, USERS};
use super::requests::{Transaction, backend, cancelled, condition_failed};
use super::{DynamoDbStore, Item};
use crate::adapters::due;
use crate::domain::checks::{Engagement, EngagementStatus, Finding, RiskAcceptance};
use crate::domain::{FieldError, ResourceId, Username};
use crate::ports::{ScheduleStore, StoreError};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use time::Date;

const ENGAGEMENT: &str = "ENGAGEMENT";
const FINDING: &str = "FINDING";
const RISK_ACCEPTANCE: &str = "RISK_ACCEPTANCE";
const REMINDER: &str = "REMINDER";
const FIRST_TIME: &str = "FIRST_TIME";
/// The first time recorded for a key (ms since the Unix epoch).
const AT_MS: &str = "at_ms";
const DUE_PREFIX: &str = "DUE#";
const BODY: &str = "body";
const PRODUCT_ID: &str = "product_id";
const EXPIRES_AT: &str = "expires_at";

fn record_key(kind: &str, id: &ResourceId) -> Key {
    Key::new(format!("{kind}#{id}"), kind)
}

fn reminder_key(key: &str) -> Key {
    Key::new(format!("{REMINDER}#{key}"), REMINDER)
}

/// The item of a [`ScheduleStore::first_time`] key.
fn first_time_key(key: &str) -> Key {
    Key::new(format!("{FIRST_TIME}#{key}"), FIRST_TIME)
}

fn unreadable(kind: &str) -> impl Fn(FieldError) -> StoreError + '_ {
    move |e| StoreError::Backend(format!("unreadable {kind} item: {e}"))
}

fn record_item(
    kind: &str,
    id: &ResourceId,
    product_id: &ResourceId,
    body: String,
    due: Option<(&'static str, Date)>,
) -> Item {
    let mut item = record_key(kind, id).to_item();
    item.insert(BODY.to_owned(), s(body));
    item.insert(PRODUCT_ID.to_owned(), s(product_id.as_str()));
    if let Some((list, date)) = due {
        item.insert(GSI1PK.to_owned(), s(format!("{DUE_PREFIX}{list}")));
        item.insert(GSI1SK.to_owned(), s(format!("{date}#{id}")));
    }
    item
}

impl DynamoDbStore {
    async fn put_record(
        &self,
        kind: &str,
        id: &ResourceId,
        product_id: &ResourceId,
        item: Item,
    ) -> Result<bool, StoreError> {
        const OPERATION: &str = "TransactWriteItems (scheduled record)";
        let existed = self.get(&record_key(kind, id)).await?.is_some();
        let items = vec![
            self.condition_check(&Key::product(product_id.as_str()))?,
            self.put(item, None)?,
        ];
        match self.transact(OPERATION, items).await? {
            Transaction::Committed => Ok(!existed),
            Transaction::Cancelled(codes) if Transaction::condition_failed(&codes, 0) => {
                Err(StoreError::NotFound(format!("product {product_id}")))
            }
            Transaction::Cancelled(codes) => Err(cancelled(OPERATION, &codes)),
        }
    }

    async fn record_body(&self, kind: &str, id: &ResourceId) -> Result<Option<String>, StoreError> {
        self.get(&record_key(kind, id))
            .await?
            .map(|item| string(&item, BODY))
            .transpose()
    }

    /// The bodies on due list `list` dated `from..=to`, in date then id order, all pages.
    async fn due_bodies(
        &self,
        list: &str,
        from: Date,
        to: Date,
    ) -> Result<Vec<String>, StoreError> {
        if from > to {
            return Ok(Vec::new());
        }
        let mut bodies = Vec::new();
        let mut start = None;
        loop {
            self.count();
            let page = self
                .client
                .query()
                .table_name(self.table.as_ref())
                .index_name(GSI1)
                .key_condition_expression(format!(
                    "#{GSI1PK} = :list AND #{GSI1SK} BETWEEN :from AND :to"
                ))
                .set_expression_attribute_names(Some(names(&[GSI1PK, GSI1SK])))
                .expression_attribute_values(":list", s(format!("{DUE_PREFIX}{list}")))
                .expression_attribute_values(":from", s(from.to_string()))
                .expression_attribute_values(":to", s(format!("{to}#~")))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(backend("Query GSI1 (due)"))?;
            for item in page.items.unwrap_or_default() {
                bodies.push(string(&item, BODY)?);
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(bodies);
            }
        }
    }
}

#[async_trait]
impl ScheduleStore for DynamoDbStore {
    async fn put_engagement(&self, e: &Engagement) -> Result<bool, StoreError> {
        let item = record_item(
            ENGAGEMENT,
            &e.id,
            &e.product_id,
            e.to_json().to_string(),
            due::engagement(e),
        );
        self.put_record(ENGAGEMENT, &e.id, &e.product_id, item)
            .await
    }

    async fn engagement(&self, id: &ResourceId) -> Result<Option<Engagement>, StoreError> {
        self.record_body(ENGAGEMENT, id)
            .await?
            .map(|body| Engagement::from_stored(&body).map_err(unreadable(ENGAGEMENT)))
            .transpose()
    }

    async fn delete_engagement(&self, id: &ResourceId) -> Result<bool, StoreError> {
        self.delete_item(&record_key(ENGAGEMENT, id)).await
    }

    async fn put_finding(&self, f: &Finding) -> Result<bool, StoreError> {
        let item = record_item(
            FINDING,
            &f.id,
            &f.product_id,
            f.to_json().to_string(),
            due::finding(f),
        );
        self.put_record(FINDING, &f.id, &f.product_id, item).await
    }

    async fn finding(&self, id: &ResourceId) -> Result<Option<Finding>, StoreError> {
        self.record_body(FINDING, id)
            .await?
            .map(|body| Finding::from_stored(&body).map_err(unreadable(FINDING)))
            .transpose()
    }

    async fn delete_finding(&self, id: &ResourceId) -> Result<bool, StoreError> {
        self.delete_item(&record_key(FINDING, id)).await
    }

    async fn put_risk_acceptance(&self, ra: &RiskAcceptance) -> Result<bool, StoreError> {
        let item = record_item(
            RISK_ACCEPTANCE,
            &ra.id,
            &ra.product_id,
            ra.to_json().to_string(),
            due::risk_acceptance(ra),
        );
        self.put_record(RISK_ACCEPTANCE, &ra.id, &ra.product_id, item)
            .await
    }

    async fn risk_acceptance(&self, id: &ResourceId) -> Result<Option<RiskAcceptance>, StoreError> {
        self.record_body(RISK_ACCEPTANCE, id)
            .await?
            .map(|body| RiskAcceptance::from_stored(&body).map_err(unreadable(RISK_ACCEPTANCE)))
            .transpose()
    }

    async fn delete_risk_acceptance(&self, id: &ResourceId) -> Result<bool, StoreError> {
        self.delete_item(&record_key(RISK_ACCEPTANCE, id)).await
    }

    async fn engagements_starting(
        &self,
        from: Date,
        to: Date,
    ) -> Result<Vec<Engagement>, StoreError> {
        let bodies = self.due_bodies(due::ENGAGEMENT_START, from, to).await?;
        bodies
            .iter()
            .map(|body| Engagement::from_stored(body).map_err(unreadable(ENGAGEMENT)))
            // The index may lag a status change by a moment: keep what is still pending.
            .filter(|e| e.as_ref().map_or(true, |e| e.status.is_pending()))
            .collect()
    }

    async fn engagements_ending(
        &self,
        from: Date,
        to: Date,
    ) -> Result<Vec<Engagement>, StoreError> {
        let bodies = self.due_bodies(due::ENGAGEMENT_END, from, to).await?;
        bodies
            .iter()
            .map(|body| Engagement::from_stored(body).map_err(unreadable(ENGAGEMENT)))
            .filter(|e| {
                e.as_ref()
                    .map_or(true, |e| e.status == EngagementStatus::InProgress)
            })
            .collect()
    }

    async fn findings_due(&self, from: Date, to: Date) -> Result<Vec<Finding>, StoreError> {
        let bodies = self.due_bodies(due::SLA, from, to).await?;
        bodies
            .iter()
            .map(|body| Finding::from_stored(body).map_err(unreadable(FINDING)))
            .collect()
    }

    async fn risk_acceptances_expiring(
        &self,
        from: Date,
        to: Date,
    ) -> Result<Vec<RiskAcceptance>, StoreError> {
        let bodies = self.due_bodies(due::RISK_EXPIRY, from, to).await?;
        bodies
            .iter()
            .map(|body| RiskAcceptance::from_stored(body).map_err(unreadable(RISK_ACCEPTANCE)))
            .collect()
    }

    async fn close_engagement(&self, id: &ResourceId) -> Result<bool, StoreError> {
        let key = record_key(ENGAGEMENT, id);
        let Some(item) = self.get(&key).await? else {
            return Ok(false);
        };
        let read_body = string(&item, BODY)?;
        let mut engagement = Engagement::from_stored(&read_body).map_err(unreadable(ENGAGEMENT))?;
        if engagement.status != EngagementStatus::InProgress {
            return Ok(false);
        }
        engagement.status = EngagementStatus::Completed;
        let closed = record_item(
            ENGAGEMENT,
            id,
            &engagement.product_id,
            engagement.to_json().to_string(),
            due::engagement(&engagement),
        );
        self.count();
        let result = self
            .client
            .put_item()
            .table_name(self.table.as_ref())
            .set_item(Some(closed))
            .condition_expression(format!("#{BODY} = :read"))
            .set_expression_attribute_names(Some(names(&[BODY])))
            .expression_attribute_values(":read", s(read_body))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            // Changed since it was read (closed by a concurrent run, or edited): not ours.
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(backend("PutItem (close engagement)")(e)),
        }
    }

    async fn remember_reminder(&self, key: &str, expires_at_ms: u64) -> Result<bool, StoreError> {
        let mut item = reminder_key(key).to_item();
        item.insert(EXPIRES_AT.to_owned(), n(expires_at_ms / 1000));
        self.count();
        let result = self
            .client
            .put_item()
            .table_name(self.table.as_ref())
            .set_item(Some(item))
            .condition_expression(format!("attribute_not_exists(#{PK})"))
            .set_expression_attribute_names(Some(names(&[PK])))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(backend("PutItem (reminder)")(e)),
        }
    }

    async fn first_time(
        &self,
        key: &str,
        at_ms: u64,
        expires_at_ms: u64,
    ) -> Result<u64, StoreError> {
        // One UpdateItem: `if_not_exists` keeps the first caller's time, and the answer is
        // the time stored after the write, whoever wrote it.
        self.count();
        let output = self
            .client
            .update_item()
            .table_name(self.table.as_ref())
            .set_key(Some(first_time_key(key).to_item()))
            .update_expression(format!(
                "SET #{AT_MS} = if_not_exists(#{AT_MS}, :at), #{EXPIRES_AT} = if_not_exists(#{EXPIRES_AT}, :expires)"
            ))
            .set_expression_attribute_names(Some(names(&[AT_MS, EXPIRES_AT])))
            .expression_attribute_values(":at", n(at_ms))
            .expression_attribute_values(":expires", n(expires_at_ms / 1000))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(backend("UpdateItem (first time)"))?;
        let item = output.attributes.unwrap_or_default();
        match item.get(AT_MS) {
            Some(AttributeValue::N(value)) => value
                .parse()
                .map_err(|_| StoreError::Backend(format!("unreadable first time {value:?}"))),
            _ => Err(StoreError::Backend(
                "UpdateItem (first time) returned no time".into(),
            )),
        }
    }

    async fn users_with_alerts(&self) -> Result<Vec<Username>, StoreError> {
        // Alerts live in one partition per user and no index lists those partitions, so the
        // clean-up visits every user of the directory: the `GSI1` rosters `ADMINS` and
        // `USERS` (one Query page per 1 MB each), never a table scan.
        let mut users = std::collections::BTreeSet::new();
        for roster in [ADMINS, USERS] {
            for item in self.query_roster(roster, Some(&[USERNAME])).await? {
                users.insert(Username(string(&item, USERNAME)?));
            }
        }
        Ok(users.into_iter().collect())
    }

    async fn forget_reminder(&self, key: &str) -> Result<(), StoreError> {
        self.delete_item(&reminder_key(key)).await.map(|_| ())
    }
}
