//! [`WebhookStore`] on the DynamoDB table (a child module of `dynamodb`, sharing its client,
//! key helpers and request counting).
//!
//! Items (`{w}` an endpoint id, `{d}` a delivery id, `{t}` ms since the Unix epoch, 13 digits):
//!
//! | item | `PK` | `SK` | other attributes |
//! |---|---|---|---|
//! | webhook endpoint | `WEBHOOKS` | `WEBHOOK#{w}` | `body` (`WebhookEndpoint::to_stored`, secrets included), `version`, `owner` (absent for system endpoints) |
//! | parked message | `WEBHOOK_PARKED#{w}` | `PARKED#{t}#{d}` (sort key order is parking order) | `body` (the `DeliveryMessage`), `parked_at`, `expires_at` (with the event's retention) |
//!
//! All endpoints share one partition: there are few (one per integration, not per event),
//! and intake reads them all with one Query whenever an event goes to webhooks.
//!
//! Access patterns and what serves them:
//!
//! | access pattern | served by | requests |
//! |---|---|---|
//! | endpoint by id | GetItem `WEBHOOKS` / `WEBHOOK#{w}` | 1 |
//! | every endpoint, or one owner's | Query `WEBHOOKS` `begins_with(SK, WEBHOOK#)`, filtered here by `owner` | 1 per 1 MB |
//! | add or edit an endpoint | UpdateItem `SET body, owner ADD version 1`, `ReturnValues = UPDATED_NEW` | 1 |
//! | change the state unless the endpoint changed since it was read | PutItem conditioned on `version = :read` | 1 |
//! | delete an endpoint with its parked messages | DeleteItem `ALL_OLD`, Query `WEBHOOK_PARKED#{w}` (keys only), BatchWriteItem | 2 + ⌈P/25⌉ |
//! | park a message | PutItem | 1 |
//! | an endpoint's parked messages, oldest first | Query `WEBHOOK_PARKED#{w}` with `Limit` | 1 |
//! | unpark messages | BatchWriteItem deletes, 25 a call | ⌈P/25⌉ |
//!
//! Parking keys on the time, so a message parked twice (a crash between parking and
//! acknowledging it) is kept twice and queued twice on recovery; the sender skips a delivery
//! that is already final, so it is still sent once.

use super::attributes::{n, names, number, s, string};
use super::keys::{Key, PK, SK};
use super::requests::{backend, condition_failed};
use super::{DynamoDbStore, Item};
use crate::domain::{DeliveryMessage, WebhookEndpoint, WebhookId};
use crate::ports::{ParkedMessage, StoreError, WebhookOwner, WebhookStore};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use std::collections::{BTreeSet, HashMap};

const WEBHOOKS_PK: &str = "WEBHOOKS";
const WEBHOOK_PREFIX: &str = "WEBHOOK#";
const PARKED_PK_PREFIX: &str = "WEBHOOK_PARKED#";
const PARKED_PREFIX: &str = "PARKED#";
const BODY: &str = "body";
const VERSION: &str = "version";
const OWNER: &str = "owner";
const PARKED_AT: &str = "parked_at";
const EXPIRES_AT: &str = "expires_at";

fn endpoint_key(id: &WebhookId) -> Key {
    Key::new(WEBHOOKS_PK, format!("{WEBHOOK_PREFIX}{id}"))
}

fn parked_pk(id: &WebhookId) -> String {
    format!("{PARKED_PK_PREFIX}{id}")
}

fn parked_key(id: &WebhookId, parked: &ParkedMessage) -> Key {
    Key::new(
        parked_pk(id),
        format!(
            "{PARKED_PREFIX}{:013}#{}",
            parked.parked_at, parked.message.delivery_id
        ),
    )
}

fn endpoint_from_item(item: &Item) -> Result<WebhookEndpoint, StoreError> {
    WebhookEndpoint::from_stored(&string(item, BODY)?, number(item, VERSION)?)
        .map_err(|e| StoreError::Backend(format!("unreadable webhook endpoint: {e}")))
}

fn endpoint_item(endpoint: &WebhookEndpoint, version: u64) -> Item {
    let mut item = endpoint_key(&endpoint.id).to_item();
    item.insert(BODY.to_owned(), s(endpoint.to_stored()));
    item.insert(VERSION.to_owned(), n(version));
    if let Some(owner) = &endpoint.owner {
        item.insert(OWNER.to_owned(), s(owner.as_str()));
    }
    item
}

#[async_trait]
impl WebhookStore for DynamoDbStore {
    async fn put_webhook(&self, endpoint: &WebhookEndpoint) -> Result<u64, StoreError> {
        let mut values = HashMap::from([
            (":body".to_owned(), s(endpoint.to_stored())),
            (":one".to_owned(), n(1)),
        ]);
        let update = match &endpoint.owner {
            Some(owner) => {
                values.insert(":owner".to_owned(), s(owner.as_str()));
                "SET #body = :body, #owner = :owner ADD #version :one"
            }
            None => "SET #body = :body REMOVE #owner ADD #version :one",
        };
        self.count();
        let output = self
            .client
            .update_item()
            .table_name(self.table.as_ref())
            .set_key(Some(endpoint_key(&endpoint.id).to_item()))
            .update_expression(update)
            .set_expression_attribute_names(Some(names(&[BODY, OWNER, VERSION])))
            .set_expression_attribute_values(Some(values))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(backend("UpdateItem"))?;
        number(&output.attributes.unwrap_or_default(), VERSION)
    }

    async fn webhook(&self, id: &WebhookId) -> Result<Option<WebhookEndpoint>, StoreError> {
        self.get(&endpoint_key(id))
            .await?
            .map(|item| endpoint_from_item(&item))
            .transpose()
    }

    async fn webhooks(&self, owner: &WebhookOwner) -> Result<Vec<WebhookEndpoint>, StoreError> {
        let items = self
            .query_partition(WEBHOOKS_PK, Some(WEBHOOK_PREFIX), None)
            .await?;
        let mut endpoints = Vec::with_capacity(items.len());
        for item in &items {
            let endpoint = endpoint_from_item(item)?;
            if owner.includes(&endpoint) {
                endpoints.push(endpoint);
            }
        }
        Ok(endpoints)
    }

    async fn update_webhook_if_unchanged(
        &self,
        endpoint: &WebhookEndpoint,
    ) -> Result<bool, StoreError> {
        self.count();
        let written = self
            .client
            .put_item()
            .table_name(self.table.as_ref())
            .set_item(Some(endpoint_item(endpoint, endpoint.version + 1)))
            .condition_expression("#version = :read")
            .set_expression_attribute_names(Some(names(&[VERSION])))
            .expression_attribute_values(":read", n(endpoint.version))
            .send()
            .await;
        match written {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(backend("PutItem")(e)),
        }
    }

    async fn delete_webhook(&self, id: &WebhookId) -> Result<bool, StoreError> {
        self.count();
        let output = self
            .client
            .delete_item()
            .table_name(self.table.as_ref())
            .set_key(Some(endpoint_key(id).to_item()))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(backend("DeleteItem"))?;
        let existed = output.attributes.is_some_and(|a| !a.is_empty());
        let parked = self
            .query_partition(&parked_pk(id), None, Some(&[PK, SK]))
            .await?;
        let keys = parked
            .iter()
            .map(Key::from_item)
            .collect::<Result<BTreeSet<_>, _>>()?;
        if !keys.is_empty() {
            self.batch_delete(keys).await?;
        }
        Ok(existed)
    }

    async fn park_webhook_message(
        &self,
        id: &WebhookId,
        message: &DeliveryMessage,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let parked = ParkedMessage {
            message: message.clone(),
            parked_at: now_ms,
        };
        let body = serde_json::to_string(message)
            .map_err(|e| StoreError::Backend(format!("serializing a parked message: {e}")))?;
        let mut item = parked_key(id, &parked).to_item();
        item.insert(BODY.to_owned(), s(body));
        item.insert(PARKED_AT.to_owned(), n(now_ms));
        item.insert(
            EXPIRES_AT.to_owned(),
            n(now_ms / 1000 + crate::domain::event::EVENT_RETENTION_DAYS * 86_400),
        );
        self.count();
        self.client
            .put_item()
            .table_name(self.table.as_ref())
            .set_item(Some(item))
            .send()
            .await
            .map_err(backend("PutItem"))?;
        Ok(())
    }

    async fn parked_webhook_messages(
        &self,
        id: &WebhookId,
        limit: usize,
    ) -> Result<Vec<ParkedMessage>, StoreError> {
        let limit = i32::try_from(limit.clamp(1, 1_000)).unwrap_or(1_000);
        self.count();
        let page = self
            .client
            .query()
            .table_name(self.table.as_ref())
            .key_condition_expression("#PK = :pk")
            .set_expression_attribute_names(Some(names(&[PK])))
            .expression_attribute_values(":pk", AttributeValue::S(parked_pk(id)))
            .consistent_read(true)
            .limit(limit)
            .send()
            .await
            .map_err(backend("Query"))?;
        page.items
            .unwrap_or_default()
            .iter()
            .map(|item| {
                let message: DeliveryMessage = serde_json::from_str(&string(item, BODY)?)
                    .map_err(|e| StoreError::Backend(format!("unreadable parked message: {e}")))?;
                Ok(ParkedMessage {
                    message,
                    parked_at: number(item, PARKED_AT)?,
                })
            })
            .collect()
    }

    async fn unpark_webhook_messages(
        &self,
        id: &WebhookId,
        messages: &[ParkedMessage],
    ) -> Result<(), StoreError> {
        let keys: BTreeSet<Key> = messages.iter().map(|m| parked_key(id, m)).collect();
        if keys.is_empty() {
            return Ok(());
        }
        self.batch_delete(keys).await
    }
}
