//! The requests every port shares: reads, paginated queries, batches with retries of
//! unprocessed entries, transactions, and the error mapping and backoff behind them.
use super::attributes::{REF_PK, REF_SK, names, s};
use super::keys::{Key, PK, SK};
use super::{DynamoDbStore, Item};
use crate::ports::StoreError;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    ConditionCheck, Delete, DeleteRequest, KeysAndAttributes, Put, PutRequest, ReturnValue,
    TransactWriteItem, WriteRequest,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::time::Duration;

/// DynamoDB's limits per BatchGetItem and BatchWriteItem call.
pub(super) const BATCH_GET_LIMIT: usize = 100;
pub(super) const BATCH_WRITE_LIMIT: usize = 25;
/// How many batch or single-item calls one operation keeps in flight.
pub(super) const CONCURRENT_CALLS: usize = 8;
/// How many BatchWriteItem calls recording one event keeps in flight: 128 × 25 = 3,200
/// records go out together (one round trip), so the 2,003 of a 1,000-member event take as
/// many round trips as the 23 of a 10-member one. Past that, one more round trip per 3,200
/// records; each connection the pool has to open costs a TLS handshake once per Lambda
/// instance, on its fraction of a core.
pub(super) const WRITE_BATCHES_IN_FLIGHT: usize = 128;
/// Items read per page when a filter may discard many (unread alerts).
pub(super) const FILTERED_PAGE: usize = 100;
/// Attempts for unprocessed batch entries, transaction conflicts and optimistic retries.
pub(super) const MAX_ATTEMPTS: u32 = 8;
/// How long `create_table` waits for the table to become ACTIVE.
pub(super) const TABLE_ACTIVE_TIMEOUT: Duration = Duration::from_secs(60);

pub(super) const EXISTS: &str = "attribute_exists(#PK)";
pub(super) const NOT_EXISTS: &str = "attribute_not_exists(#PK)";
pub(super) const CONDITIONAL_CHECK_FAILED: &str = "ConditionalCheckFailed";
pub(super) const TRANSACTION_CONFLICT: &str = "TransactionConflict";

/// Whether a failed call failed its condition expression.
pub(super) fn condition_failed<E, R>(error: &SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    error
        .as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "ConditionalCheckFailedException")
}

/// Waits for one of `calls` to finish, passing on its error.
pub(super) async fn join_next<T: 'static>(
    calls: &mut tokio::task::JoinSet<Result<T, StoreError>>,
    operation: &str,
) -> Option<Result<T, StoreError>> {
    let joined = calls.join_next().await?;
    Some(
        joined
            .map_err(|e| StoreError::Backend(format!("DynamoDB {operation} task: {e}")))
            .and_then(|result| result),
    )
}

/// A failed SDK call as a `Backend` error naming the operation.
pub(super) fn backend<E, R>(operation: &'static str) -> impl FnOnce(SdkError<E, R>) -> StoreError
where
    E: std::error::Error + 'static,
    R: fmt::Debug,
{
    move |e| StoreError::Backend(format!("DynamoDB {operation}: {}", DisplayErrorContext(&e)))
}

pub(super) fn build_error(e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Backend(format!("DynamoDB request could not be built: {e}"))
}

/// How a transaction ended.
pub(super) enum Transaction {
    Committed,
    /// Cancelled; the code of each item's reason, in request order (`None` when it passed).
    Cancelled(Vec<Option<String>>),
}

impl Transaction {
    /// Whether item `index` failed its condition.
    pub(super) fn condition_failed(codes: &[Option<String>], index: usize) -> bool {
        codes.get(index).and_then(Option::as_deref) == Some(CONDITIONAL_CHECK_FAILED)
    }
}

pub(super) fn cancelled(operation: &'static str, codes: &[Option<String>]) -> StoreError {
    StoreError::Backend(format!(
        "DynamoDB {operation}: transaction cancelled: {codes:?}"
    ))
}

/// Exponential backoff before retry `attempt` (1-based): 25 ms, 50 ms, 100 ms, ...
pub(super) async fn backoff(attempt: u32) {
    let doublings = attempt.saturating_sub(1).min(7);
    tokio::time::sleep(Duration::from_millis(25u64 << doublings)).await;
}

impl DynamoDbStore {
    pub(super) async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        self.count();
        let output = self
            .client
            .get_item()
            .table_name(self.table.as_ref())
            .set_key(Some(key.to_item()))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend("GetItem"))?;
        Ok(output.item)
    }

    /// Every item of partition `pk` (optionally only sort keys starting with `sk_prefix`),
    /// strongly consistent, all pages; `projection` limits the attributes read.
    pub(super) async fn query_partition(
        &self,
        pk: &str,
        sk_prefix: Option<&str>,
        projection: Option<&[&str]>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut condition = String::from("#PK = :pk");
        let mut values = HashMap::from([(":pk".to_owned(), s(pk))]);
        let mut attribute_names = names(&[PK]);
        if let Some(prefix) = sk_prefix {
            condition.push_str(" AND begins_with(#SK, :prefix)");
            values.insert(":prefix".to_owned(), s(prefix));
            attribute_names.insert(format!("#{SK}"), SK.to_owned());
        }
        let projection_expression = projection.map(|attributes| {
            attribute_names.extend(names(attributes));
            attributes
                .iter()
                .map(|a| format!("#{a}"))
                .collect::<Vec<_>>()
                .join(", ")
        });
        let mut items = Vec::new();
        let mut start = None;
        loop {
            self.count();
            let page = self
                .client
                .query()
                .table_name(self.table.as_ref())
                .key_condition_expression(&condition)
                .set_expression_attribute_names(Some(attribute_names.clone()))
                .set_expression_attribute_values(Some(values.clone()))
                .set_projection_expression(projection_expression.clone())
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(backend("Query"))?;
            items.extend(page.items.unwrap_or_default());
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(items);
            }
        }
    }

    /// The items at `keys` that exist (in no particular order), strongly consistent:
    /// BatchGetItem, 100 keys a call, the calls concurrent.
    pub(super) async fn batch_get(&self, keys: BTreeSet<Key>) -> Result<Vec<Item>, StoreError> {
        let keys: Vec<Key> = keys.into_iter().collect();
        // The common case, one call, needs no task.
        if keys.len() <= BATCH_GET_LIMIT {
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            return self
                .batch_get_chunk(keys.iter().map(Key::to_item).collect())
                .await;
        }
        let mut calls = tokio::task::JoinSet::new();
        for chunk in keys.chunks(BATCH_GET_LIMIT) {
            let store = self.clone();
            let chunk: Vec<Item> = chunk.iter().map(Key::to_item).collect();
            calls.spawn(async move { store.batch_get_chunk(chunk).await });
        }
        let mut items = Vec::with_capacity(keys.len());
        while let Some(result) = calls.join_next().await {
            let chunk = result
                .map_err(|e| StoreError::Backend(format!("DynamoDB BatchGetItem task: {e}")))??;
            items.extend(chunk);
        }
        Ok(items)
    }

    pub(super) async fn batch_get_chunk(
        &self,
        mut keys: Vec<Item>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::with_capacity(keys.len());
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                backoff(attempt).await;
            }
            let request = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .build()
                .map_err(build_error)?;
            self.count();
            let output = self
                .client
                .batch_get_item()
                .request_items(self.table.as_ref(), request)
                .send()
                .await
                .map_err(backend("BatchGetItem"))?;
            if let Some(mut responses) = output.responses {
                items.extend(responses.remove(self.table.as_ref()).unwrap_or_default());
            }
            keys = output
                .unprocessed_keys
                .and_then(|mut unprocessed| unprocessed.remove(self.table.as_ref()))
                .map(|request| request.keys)
                .unwrap_or_default();
            if keys.is_empty() {
                return Ok(items);
            }
        }
        Err(StoreError::Backend(format!(
            "DynamoDB BatchGetItem: {} keys still unprocessed after {MAX_ATTEMPTS} attempts",
            keys.len()
        )))
    }

    /// Deletes the items at `keys`: BatchWriteItem, 25 keys a call.
    pub(super) async fn batch_delete(&self, keys: BTreeSet<Key>) -> Result<(), StoreError> {
        let requests = keys
            .iter()
            .map(|key| {
                DeleteRequest::builder()
                    .set_key(Some(key.to_item()))
                    .build()
                    .map(|delete| WriteRequest::builder().delete_request(delete).build())
                    .map_err(build_error)
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.batch_write(requests).await
    }

    /// Puts `items` unconditionally: BatchWriteItem, 25 a call. Items are keyed by `PK`/`SK`;
    /// of several with one key the last is written (a call may not name a key twice).
    pub(super) async fn batch_put(&self, items: Vec<Item>) -> Result<(), StoreError> {
        let mut by_key = BTreeMap::new();
        for item in items {
            by_key.insert(Key::from_item(&item)?, item);
        }
        let requests = by_key
            .into_values()
            .map(|item| {
                PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .map(|put| WriteRequest::builder().put_request(put).build())
                    .map_err(build_error)
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.batch_write(requests).await
    }

    /// Sends `requests` (distinct keys) with BatchWriteItem, 25 a call, up to
    /// [`WRITE_BATCHES_IN_FLIGHT`] calls at once, each retrying its unprocessed entries.
    pub(super) async fn batch_write(&self, requests: Vec<WriteRequest>) -> Result<(), StoreError> {
        const OPERATION: &str = "BatchWriteItem";
        if requests.len() <= BATCH_WRITE_LIMIT {
            // The common case, one call (or none), needs no task.
            if requests.is_empty() {
                return Ok(());
            }
            return self.batch_write_chunk(requests).await;
        }
        let mut calls = tokio::task::JoinSet::new();
        for chunk in requests.chunks(BATCH_WRITE_LIMIT) {
            if calls.len() >= WRITE_BATCHES_IN_FLIGHT {
                join_next(&mut calls, OPERATION).await.transpose()?;
            }
            let (store, chunk) = (self.clone(), chunk.to_vec());
            calls.spawn(async move { store.batch_write_chunk(chunk).await });
        }
        while let Some(result) = join_next(&mut calls, OPERATION).await {
            result?;
        }
        Ok(())
    }

    pub(super) async fn batch_write_chunk(
        &self,
        mut requests: Vec<WriteRequest>,
    ) -> Result<(), StoreError> {
        let mut attempt = 0;
        while !requests.is_empty() {
            if attempt >= MAX_ATTEMPTS {
                return Err(StoreError::Backend(format!(
                    "DynamoDB BatchWriteItem: {} writes still unprocessed after {MAX_ATTEMPTS} attempts",
                    requests.len()
                )));
            }
            if attempt > 0 {
                backoff(attempt).await;
            }
            attempt += 1;
            self.count();
            let output = self
                .client
                .batch_write_item()
                .request_items(self.table.as_ref(), requests)
                .send()
                .await
                .map_err(backend("BatchWriteItem"))?;
            requests = output
                .unprocessed_items
                .and_then(|mut unprocessed| unprocessed.remove(self.table.as_ref()))
                .unwrap_or_default();
        }
        Ok(())
    }

    /// Deletes what hangs off `head` (the items of its partition and the items they link
    /// to), once `head` itself was deleted by a conditional write. If `head` is back, it was
    /// created again meanwhile and stays: deleting it here would bypass those conditions.
    pub(super) async fn purge_partition(&self, head: &Key) -> Result<(), StoreError> {
        let items = self
            .query_partition(&head.pk, None, Some(&[PK, SK, REF_PK, REF_SK]))
            .await?;
        let mut keys = BTreeSet::new();
        for item in &items {
            let key = Key::from_item(item)?;
            if key != *head {
                keys.extend(Key::referenced_by(item));
                keys.insert(key);
            }
        }
        self.batch_delete(keys).await
    }

    /// Runs a transaction, retrying transaction conflicts; a cancellation for any other
    /// reason is returned with its codes for the caller to interpret.
    pub(super) async fn transact(
        &self,
        operation: &'static str,
        items: Vec<TransactWriteItem>,
    ) -> Result<Transaction, StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.count();
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            let error = match result {
                Ok(_) => return Ok(Transaction::Committed),
                Err(e) => e,
            };
            let Some(TransactWriteItemsError::TransactionCanceledException(cancel)) =
                error.as_service_error()
            else {
                return Err(backend(operation)(error));
            };
            let codes: Vec<Option<String>> = cancel
                .cancellation_reasons()
                .iter()
                .map(|reason| reason.code().filter(|c| *c != "None").map(str::to_owned))
                .collect();
            let conflict = codes.iter().flatten().any(|c| c == TRANSACTION_CONFLICT);
            if conflict && attempt < MAX_ATTEMPTS {
                backoff(attempt).await;
                continue;
            }
            return Ok(Transaction::Cancelled(codes));
        }
    }

    pub(super) fn condition_check(&self, key: &Key) -> Result<TransactWriteItem, StoreError> {
        let check = ConditionCheck::builder()
            .table_name(self.table.as_ref())
            .set_key(Some(key.to_item()))
            .condition_expression(EXISTS)
            .set_expression_attribute_names(Some(names(&[PK])))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }

    pub(super) fn put(
        &self,
        item: Item,
        condition: Option<&str>,
    ) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(self.table.as_ref())
            .set_item(Some(item))
            .set_condition_expression(condition.map(str::to_owned))
            .set_expression_attribute_names(condition.map(|_| names(&[PK])))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    pub(super) fn delete(
        &self,
        key: &Key,
        must_exist: bool,
    ) -> Result<TransactWriteItem, StoreError> {
        let delete = Delete::builder()
            .table_name(self.table.as_ref())
            .set_key(Some(key.to_item()))
            .set_condition_expression(must_exist.then(|| EXISTS.to_owned()))
            .set_expression_attribute_names(must_exist.then(|| names(&[PK])))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    /// Deletes one item; whether it existed.
    pub(super) async fn delete_item(&self, key: &Key) -> Result<bool, StoreError> {
        self.count();
        let output = self
            .client
            .delete_item()
            .table_name(self.table.as_ref())
            .set_key(Some(key.to_item()))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(backend("DeleteItem"))?;
        Ok(output.attributes.is_some_and(|old| !old.is_empty()))
    }

    /// Deletes an item and its link in one transaction; whether the item existed.
    pub(super) async fn delete_linked(&self, key: &Key, link: &Key) -> Result<bool, StoreError> {
        let items = vec![self.delete(key, true)?, self.delete(link, false)?];
        match self.transact("TransactWriteItems (delete)", items).await? {
            Transaction::Committed => Ok(true),
            Transaction::Cancelled(codes) if Transaction::condition_failed(&codes, 0) => Ok(false),
            Transaction::Cancelled(codes) => Err(cancelled("TransactWriteItems (delete)", &codes)),
        }
    }
}
