//! [`AlertStore`] on the DynamoDB table: each user's alerts, newest first, with read state.
use super::DynamoDbStore;
use super::attributes::{READ, boolean, names, s};
use super::items::{alert_from_item, alert_item};
use super::keys::{ALERT_PREFIX, Key, PK, SK, alerts_pk};
use super::requests::{
    CONCURRENT_CALLS, FILTERED_PAGE, NOT_EXISTS, backend, condition_failed, join_next,
};
use crate::domain::{Alert, Username};
use crate::ports::{AlertCounts, AlertPage, AlertStore, StoreError};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::{BTreeSet, HashMap};

impl DynamoDbStore {
    /// `SET read = true` on one alert if it exists and is unread; whether it changed.
    pub(super) async fn mark_alert_read(&self, key: Key) -> Result<bool, StoreError> {
        self.count();
        let result = self
            .client
            .update_item()
            .table_name(self.table.as_ref())
            .set_key(Some(key.to_item()))
            .update_expression(format!("SET #{READ} = :true"))
            .condition_expression(format!("attribute_exists(#{PK}) AND #{READ} = :false"))
            .set_expression_attribute_names(Some(names(&[PK, READ])))
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(backend("UpdateItem (alert read)")(e)),
        }
    }

    /// Marks the alerts at `keys` read, [`CONCURRENT_CALLS`] at a time; how many changed.
    pub(super) async fn mark_alerts_read_at(&self, keys: Vec<Key>) -> Result<u64, StoreError> {
        const OPERATION: &str = "UpdateItem (alert read)";
        let mut changed = 0;
        let mut calls = tokio::task::JoinSet::new();
        for key in keys {
            if calls.len() >= CONCURRENT_CALLS
                && let Some(result) = join_next(&mut calls, OPERATION).await
            {
                changed += u64::from(result?);
            }
            let store = self.clone();
            calls.spawn(async move { store.mark_alert_read(key).await });
        }
        while let Some(result) = join_next(&mut calls, OPERATION).await {
            changed += u64::from(result?);
        }
        Ok(changed)
    }

    /// Puts one alert unless its key exists; whether it was added.
    pub(super) async fn add_alert(&self, alert: &Alert) -> Result<bool, StoreError> {
        self.count();
        let result = self
            .client
            .put_item()
            .table_name(self.table.as_ref())
            .set_item(Some(alert_item(alert)))
            .condition_expression(NOT_EXISTS)
            .set_expression_attribute_names(Some(names(&[PK])))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(backend("PutItem (alert)")(e)),
        }
    }

    /// Every alert of `user` as its key and read flag, oldest first (strongly consistent,
    /// all pages, only those attributes read).
    pub(super) async fn alert_keys(&self, user: &Username) -> Result<Vec<(Key, bool)>, StoreError> {
        self.query_partition(&alerts_pk(user.as_str()), None, Some(&[PK, SK, READ]))
            .await?
            .iter()
            .map(|item| Ok((Key::from_item(item)?, boolean(item, READ)?)))
            .collect()
    }
}

#[async_trait]
impl AlertStore for DynamoDbStore {
    async fn alerts(
        &self,
        user: &Username,
        unread_only: bool,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<AlertPage, StoreError> {
        let cursor = crate::ports::alert_cursor(cursor)?;
        let limit = limit.max(1);
        // One more than asked tells whether another page follows.
        let wanted = limit.saturating_add(1);
        let mut attribute_names = names(&[PK]);
        let mut values = HashMap::from([(":pk".to_owned(), s(alerts_pk(user.as_str())))]);
        let mut condition = format!("#{PK} = :pk");
        if let Some(cursor) = cursor {
            // The partition holds only alerts, and their sort keys sort by time.
            condition.push_str(&format!(" AND #{SK} < :cursor"));
            attribute_names.insert(format!("#{SK}"), SK.to_owned());
            values.insert(":cursor".to_owned(), s(format!("{ALERT_PREFIX}{cursor}")));
        }
        let filter = unread_only.then(|| {
            attribute_names.insert(format!("#{READ}"), READ.to_owned());
            values.insert(":false".to_owned(), AttributeValue::Bool(false));
            format!("#{READ} = :false")
        });
        let mut items = Vec::with_capacity(wanted);
        let mut start = None;
        loop {
            let needed = wanted - items.len();
            // A filter may discard much of a page: read more than needed, then stop at `limit`.
            let page_size = if unread_only {
                needed.max(FILTERED_PAGE)
            } else {
                needed
            };
            self.count();
            let page = self
                .client
                .query()
                .table_name(self.table.as_ref())
                .key_condition_expression(&condition)
                .set_filter_expression(filter.clone())
                .set_expression_attribute_names(Some(attribute_names.clone()))
                .set_expression_attribute_values(Some(values.clone()))
                .scan_index_forward(false)
                .consistent_read(true)
                .limit(i32::try_from(page_size).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(backend("Query (alerts)"))?;
            for item in page.items.unwrap_or_default() {
                items.push(alert_from_item(&item)?);
            }
            start = page.last_evaluated_key;
            if items.len() >= wanted || start.is_none() {
                break;
            }
        }
        let more = items.len() > limit;
        items.truncate(limit);
        let next_cursor = if more {
            items.last().map(|alert| alert.id.clone())
        } else {
            None
        };
        Ok(AlertPage { items, next_cursor })
    }

    async fn alert_counts(&self, user: &Username) -> Result<AlertCounts, StoreError> {
        let alerts = self.alert_keys(user).await?;
        Ok(AlertCounts {
            total: alerts.len() as u64,
            unread: alerts.iter().filter(|(_, read)| !read).count() as u64,
        })
    }

    async fn mark_alerts_read(
        &self,
        user: &Username,
        ids: Option<&[String]>,
    ) -> Result<u64, StoreError> {
        let keys: Vec<Key> = match ids {
            // Keys in `user`'s partition only: other users' ids find nothing there.
            Some(ids) => ids
                .iter()
                .filter(|id| Alert::is_valid_id(id))
                .map(|id| Key::alert(user.as_str(), id))
                .collect::<BTreeSet<Key>>()
                .into_iter()
                .collect(),
            None => self
                .alert_keys(user)
                .await?
                .into_iter()
                .filter(|(_, read)| !read)
                .map(|(key, _)| key)
                .collect(),
        };
        self.mark_alerts_read_at(keys).await
    }

    async fn delete_alert(&self, user: &Username, id: &str) -> Result<bool, StoreError> {
        if !Alert::is_valid_id(id) {
            return Ok(false);
        }
        self.delete_item(&Key::alert(user.as_str(), id)).await
    }

    async fn delete_alerts(&self, user: &Username) -> Result<u64, StoreError> {
        let keys: BTreeSet<Key> = self
            .alert_keys(user)
            .await?
            .into_iter()
            .map(|(key, _)| key)
            .collect();
        let deleted = keys.len() as u64;
        self.batch_delete(keys).await?;
        Ok(deleted)
    }

    async fn trim_alerts(&self, user: &Username, keep: usize) -> Result<u64, StoreError> {
        let alerts = self.alert_keys(user).await?;
        // Oldest first: everything before the newest `keep` goes.
        let surplus = alerts.len().saturating_sub(keep);
        let keys: BTreeSet<Key> = alerts
            .into_iter()
            .take(surplus)
            .map(|(key, _)| key)
            .collect();
        self.batch_delete(keys).await?;
        Ok(surplus as u64)
    }
    async fn add_alerts(&self, alerts: &[Alert]) -> Result<u64, StoreError> {
        const OPERATION: &str = "PutItem (alert)";
        let mut added = 0;
        let mut calls = tokio::task::JoinSet::new();
        for alert in alerts {
            if calls.len() >= CONCURRENT_CALLS
                && let Some(result) = join_next(&mut calls, OPERATION).await
            {
                added += u64::from(result?);
            }
            let (store, alert) = (self.clone(), alert.clone());
            calls.spawn(async move { store.add_alert(&alert).await });
        }
        while let Some(result) = join_next(&mut calls, OPERATION).await {
            added += u64::from(result?);
        }
        Ok(added)
    }
}
