//! [`EventStore`] on the DynamoDB table: events recorded once with their deliveries, and the
//! deliveries' claims and attempts.
use super::DynamoDbStore;
use super::attributes::{
    ATTEMPTS, ENQUEUED, LAST_ERROR, LEASE_UNTIL, RECORDED, RECORDING, STATUS, UPDATED_AT, n, names,
    number, s, string,
};
use super::directory::IndexSort;
use super::items::{
    alert_item, delivery_from_item, delivery_item, event_expiry, event_item, record_from_item,
};
use super::keys::{
    DELIVERY_PREFIX, EVENT_PREFIX, EVENTS_NOT_ENQUEUED, GSI1PK, GSI1SK, Key, PK, event_pk,
};
use super::requests::{EXISTS, NOT_EXISTS, backend, condition_failed};
use crate::domain::{Alert, Delivery, DeliveryId, DeliveryStatus, EventId};
use crate::ports::{
    AttemptOutcome, Claim, EventRecord, EventStore, LISTED_STATUSES, RecordOutcome, StoreError,
    require_listed,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use std::collections::HashMap;

impl DynamoDbStore {
    /// `SET status = recorded` on an event item that must exist.
    pub(super) async fn finish_recording(&self, id: &str) -> Result<(), StoreError> {
        self.count();
        let result = self
            .client
            .update_item()
            .table_name(self.table.as_ref())
            .set_key(Some(Key::event(id).to_item()))
            .update_expression(format!("SET #{STATUS} = :recorded"))
            .condition_expression(EXISTS)
            .set_expression_attribute_names(Some(names(&[PK, STATUS])))
            .expression_attribute_values(":recorded", s(RECORDED))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => Err(StoreError::Backend(format!(
                "event {id} vanished while it was being recorded"
            ))),
            Err(e) => Err(backend("UpdateItem (event recorded)")(e)),
        }
    }
}

#[async_trait]
impl EventStore for DynamoDbStore {
    async fn record_event(
        &self,
        record: &EventRecord,
        alerts: &[Alert],
        deliveries: &[Delivery],
    ) -> Result<RecordOutcome, StoreError> {
        let id = record.event.id.as_str();
        let has_items = !alerts.is_empty() || !deliveries.is_empty();
        // (a) The idempotency record, first writer only. An event with nothing else to write
        // is complete at once.
        let status = if has_items { RECORDING } else { RECORDED };
        self.count();
        let put = self
            .client
            .put_item()
            .table_name(self.table.as_ref())
            .set_item(Some(event_item(record, status)))
            .condition_expression(NOT_EXISTS)
            .set_expression_attribute_names(Some(names(&[PK])))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let completing = match put {
            Ok(_) => false,
            Err(e) => {
                let first = match e.as_service_error() {
                    Some(PutItemError::ConditionalCheckFailedException(failed)) => {
                        failed.item().filter(|item| !item.is_empty()).cloned()
                    }
                    _ => return Err(backend("PutItem (event)")(e)),
                };
                let first = match first {
                    Some(item) => item,
                    None => self.get(&Key::event(id)).await?.ok_or_else(|| {
                        StoreError::Backend(format!("event {id} vanished while recording"))
                    })?,
                };
                let first = record_from_item(&first)?;
                if first.complete || first.accepted_at != record.accepted_at {
                    return Ok(RecordOutcome::Duplicate(first));
                }
                // An earlier attempt stopped part-way; the caller built these alerts and
                // deliveries as of its time, so their keys are the ones it used.
                true
            }
        };
        if has_items || completing {
            // (b) Alerts and deliveries, 25 a call.
            let expires_at = event_expiry(record.accepted_at);
            let items = alerts
                .iter()
                .map(alert_item)
                .chain(deliveries.iter().map(|d| delivery_item(id, d, expires_at)))
                .collect();
            self.batch_put(items).await?;
            // (c) Complete.
            self.finish_recording(id).await?;
        }
        Ok(RecordOutcome::Recorded)
    }

    async fn mark_event_enqueued(&self, id: &EventId) -> Result<(), StoreError> {
        self.count();
        let result = self
            .client
            .update_item()
            .table_name(self.table.as_ref())
            .set_key(Some(Key::event(id.as_str()).to_item()))
            .update_expression(format!(
                "SET #{ENQUEUED} = :true REMOVE #{GSI1PK}, #{GSI1SK}"
            ))
            .condition_expression(EXISTS)
            .set_expression_attribute_names(Some(names(&[PK, ENQUEUED, GSI1PK, GSI1SK])))
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .send()
            .await;
        match result {
            // An unknown (or expired) event: nothing is left to enqueue.
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => Ok(()),
            Err(e) => Err(backend("UpdateItem (event enqueued)")(e)),
        }
    }

    async fn events_not_enqueued(
        &self,
        accepted_before_ms: u64,
        limit: usize,
    ) -> Result<Vec<EventId>, StoreError> {
        // `GSI1SK` is `{accepted_at:013}#{id}`: everything before the cut-off's 13 digits.
        let cutoff = format!("{:013}", accepted_before_ms.min(9_999_999_999_999));
        let items = self
            .query_index(
                EVENTS_NOT_ENQUEUED,
                IndexSort::Below(&cutoff),
                Some(&[PK]),
                limit,
            )
            .await?;
        items
            .iter()
            .map(|item| {
                let pk = string(item, PK)?;
                let id = pk.strip_prefix(EVENT_PREFIX).ok_or_else(|| {
                    StoreError::Backend(format!("unexpected key `{pk}` among events not enqueued"))
                })?;
                Ok(EventId(id.to_owned()))
            })
            .collect()
    }

    async fn event(&self, id: &EventId) -> Result<Option<EventRecord>, StoreError> {
        self.get(&Key::event(id.as_str()))
            .await?
            .map(|item| record_from_item(&item))
            .transpose()
    }

    async fn deliveries(&self, id: &EventId) -> Result<Vec<Delivery>, StoreError> {
        self.query_partition(&event_pk(id.as_str()), Some(DELIVERY_PREFIX), None)
            .await?
            .iter()
            .map(delivery_from_item)
            .collect()
    }

    async fn delivery(
        &self,
        event: &EventId,
        id: &DeliveryId,
    ) -> Result<Option<Delivery>, StoreError> {
        self.get(&Key::delivery(event.as_str(), id.as_str()))
            .await?
            .map(|item| delivery_from_item(&item))
            .transpose()
    }

    async fn claim_delivery(
        &self,
        event: &EventId,
        id: &DeliveryId,
        now_ms: u64,
        lease: std::time::Duration,
    ) -> Result<Claim, StoreError> {
        let key = Key::delivery(event.as_str(), id.as_str());
        let until = now_ms.saturating_add(u64::try_from(lease.as_millis()).unwrap_or(u64::MAX));
        self.count();
        let result = self
            .client
            .update_item()
            .table_name(self.table.as_ref())
            .set_key(Some(key.to_item()))
            .update_expression(format!("SET #{LEASE_UNTIL} = :until"))
            .condition_expression(format!(
                "attribute_exists(#{PK}) AND NOT #{STATUS} IN (:sent, :failed, :dead) \
                 AND (attribute_not_exists(#{LEASE_UNTIL}) OR #{LEASE_UNTIL} <= :now)"
            ))
            .set_expression_attribute_names(Some(names(&[PK, STATUS, LEASE_UNTIL])))
            .set_expression_attribute_values(Some(HashMap::from([
                (":until".to_owned(), n(until)),
                (":now".to_owned(), n(now_ms)),
                (":sent".to_owned(), s(DeliveryStatus::Sent.name())),
                (":failed".to_owned(), s(DeliveryStatus::Failed.name())),
                (":dead".to_owned(), s(DeliveryStatus::Dead.name())),
            ])))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(output) => match output.attributes {
                Some(item) => Ok(Claim::Claimed(delivery_from_item(&item)?)),
                None => Err(StoreError::Backend(
                    "UpdateItem (delivery claim) returned no item".into(),
                )),
            },
            // Final, held by another sender, or unknown: one read says which.
            Err(e) if condition_failed(&e) => match self.get(&key).await? {
                None => Ok(Claim::Unknown),
                Some(item) => {
                    let delivery = delivery_from_item(&item)?;
                    if delivery.status.is_final() {
                        Ok(Claim::Final(delivery))
                    } else {
                        Ok(Claim::Held {
                            until: number(&item, LEASE_UNTIL).unwrap_or(until),
                        })
                    }
                }
            },
            Err(e) => Err(backend("UpdateItem (delivery claim)")(e)),
        }
    }

    async fn record_attempt(
        &self,
        event: &EventId,
        id: &DeliveryId,
        outcome: &AttemptOutcome,
        now_ms: u64,
    ) -> Result<Option<Delivery>, StoreError> {
        let mut set = vec![
            format!("#{STATUS} = :status"),
            format!("#{ATTEMPTS} = #{ATTEMPTS} + :one"),
            format!("#{UPDATED_AT} = :now"),
        ];
        // The attempt ends the send claim.
        let mut remove = vec![format!("#{LEASE_UNTIL}")];
        let mut values = HashMap::from([
            (":status".to_owned(), s(outcome.status().name())),
            (":one".to_owned(), n(1)),
            (":now".to_owned(), n(now_ms)),
            (":sent".to_owned(), s(DeliveryStatus::Sent.name())),
            (":failed".to_owned(), s(DeliveryStatus::Failed.name())),
            (":dead".to_owned(), s(DeliveryStatus::Dead.name())),
        ]);
        match outcome.error() {
            Some(error) => {
                set.push(format!("#{LAST_ERROR} = :error"));
                values.insert(":error".to_owned(), s(error));
            }
            None => remove.push(format!("#{LAST_ERROR}")),
        }
        // Listed by status (`deliveries_with_status`) while retrying, failed or dead.
        if LISTED_STATUSES.contains(&outcome.status()) {
            set.push(format!("#{GSI1PK} = :by_status, #{GSI1SK} = :changed"));
            values.insert(
                ":by_status".to_owned(),
                s(deliveries_by_status(outcome.status())),
            );
            values.insert(
                ":changed".to_owned(),
                s(format!("{now_ms:013}#{event}#{id}")),
            );
        } else {
            remove.push(format!("#{GSI1PK}, #{GSI1SK}"));
        }
        let update = format!("SET {} REMOVE {}", set.join(", "), remove.join(", "));
        self.count();
        let result = self
            .client
            .update_item()
            .table_name(self.table.as_ref())
            .set_key(Some(Key::delivery(event.as_str(), id.as_str()).to_item()))
            .update_expression(update)
            .condition_expression(format!(
                "attribute_exists(#{PK}) AND NOT #{STATUS} IN (:sent, :failed, :dead)"
            ))
            .set_expression_attribute_names(Some(names(&[
                PK,
                STATUS,
                ATTEMPTS,
                LAST_ERROR,
                UPDATED_AT,
                LEASE_UNTIL,
                GSI1PK,
                GSI1SK,
            ])))
            .set_expression_attribute_values(Some(values))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        // `None`: final already, or unknown (never recorded, or expired with its event).
        delivery_updated(result, "UpdateItem (delivery attempt)")
    }

    async fn deliveries_with_status(
        &self,
        status: DeliveryStatus,
        since_ms: u64,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        require_listed(status)?;
        let from = format!("{:013}", since_ms.min(9_999_999_999_999));
        let items = self
            .query_index(
                &deliveries_by_status(status),
                IndexSort::AtLeast(&from),
                None,
                limit,
            )
            .await?;
        let mut deliveries = Vec::with_capacity(items.len());
        for item in &items {
            let delivery = delivery_from_item(item)?;
            // The index is eventually consistent: a delivery that just moved on is left out.
            if delivery.status == status {
                deliveries.push(delivery);
            }
        }
        Ok(deliveries)
    }

    async fn revive_dead_delivery(
        &self,
        event: &EventId,
        id: &DeliveryId,
        now_ms: u64,
    ) -> Result<Option<Delivery>, StoreError> {
        self.count();
        let result = self
            .client
            .update_item()
            .table_name(self.table.as_ref())
            .set_key(Some(Key::delivery(event.as_str(), id.as_str()).to_item()))
            .update_expression(format!(
                "SET #{STATUS} = :queued, #{UPDATED_AT} = :now REMOVE #{LEASE_UNTIL}, #{GSI1PK}, #{GSI1SK}"
            ))
            .condition_expression(format!("attribute_exists(#{PK}) AND #{STATUS} = :dead"))
            .set_expression_attribute_names(Some(names(&[
                PK,
                STATUS,
                UPDATED_AT,
                LEASE_UNTIL,
                GSI1PK,
                GSI1SK,
            ])))
            .expression_attribute_values(":queued", s(DeliveryStatus::Queued.name()))
            .expression_attribute_values(":dead", s(DeliveryStatus::Dead.name()))
            .expression_attribute_values(":now", n(now_ms))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        // `None`: not dead (sent, failed or replayed meanwhile), or unknown.
        delivery_updated(result, "UpdateItem (revive delivery)")
    }
}

/// The delivery a conditional `UpdateItem` (`ReturnValues: ALL_NEW`) left, `None` when its
/// condition failed.
fn delivery_updated<E, R>(
    result: Result<aws_sdk_dynamodb::operation::update_item::UpdateItemOutput, SdkError<E, R>>,
    operation: &'static str,
) -> Result<Option<Delivery>, StoreError>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match result {
        Ok(output) => output
            .attributes
            .map(|item| delivery_from_item(&item))
            .transpose(),
        Err(e) if condition_failed(&e) => Ok(None),
        Err(e) => Err(backend(operation)(e)),
    }
}

/// The `GSI1` partition of the deliveries with `status`.
fn deliveries_by_status(status: DeliveryStatus) -> String {
    format!("DELIVERIES#{}", status.name())
}
