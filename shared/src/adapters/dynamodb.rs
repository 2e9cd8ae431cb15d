//! `DynamoDbStore`: the store ports on one DynamoDB table, for AWS.
//!
//! Single-table design: a partition per user, product type and product, so one Query reads a
//! product with its members and every user's settings for it, and a user's or a product's
//! deletion finds everything it must remove with one strongly consistent Query. `GSI1` is
//! sparse and holds only administrators.
//!
//! Items (`{u}` a username, `{t}` a product type id, `{p}` a product id; neither may contain
//! `#`, so keys cannot collide):
//!
//! | item | `PK` | `SK` | `GSI1PK` / `GSI1SK` | other attributes |
//! |---|---|---|---|---|
//! | system settings | `SYSTEM` | `SETTINGS` | | `body` (`SystemSettings::to_stored`) |
//! | system document | `SYSTEM` | `NOTIFY#SYSTEM` | | `body` |
//! | template document | `SYSTEM` | `NOTIFY#TEMPLATE` | | `body` |
//! | user | `USER#{u}` | `USER` | `ADMINS` / `USER#{u}`, administrators only | profile, `personal` |
//! | link to a type membership | `USER#{u}` | `PTYPE_MEMBER#{t}` | | `ref_pk`, `ref_sk` |
//! | link to a product membership | `USER#{u}` | `PRODUCT_MEMBER#{p}` | | `ref_pk`, `ref_sk` |
//! | link to per-product settings | `USER#{u}` | `PRODUCT_NOTIFY#{p}` | | `ref_pk`, `ref_sk` |
//! | product type | `PTYPE#{t}` | `PTYPE` | | `id`, `name`, `products` (count) |
//! | type membership | `PTYPE#{t}` | `MEMBER#{u}` | | `username`, `ref_pk`, `ref_sk` |
//! | product | `PRODUCT#{p}` | `PRODUCT` | | `id`, `name`, `product_type_id`, `disable_sla_breach_notifications` |
//! | product membership | `PRODUCT#{p}` | `MEMBER#{u}` | | `username`, `ref_pk`, `ref_sk` |
//! | a user's settings for a product | `PRODUCT#{p}` | `NOTIFY#{u}` | | `username`, `body`, `ref_pk`, `ref_sk` |
//!
//! Every membership and per-product settings item has a link item in the user's partition
//! (`ref_pk`/`ref_sk` point at each other), written in the same transaction. The reverse
//! lookup lives in the base table rather than in a GSI because GSI reads are eventually
//! consistent: a delete that missed a just-written membership would let it come back when
//! the user is created again.
//!
//! Access patterns and what serves them (`N` audience candidates, `L` items to delete):
//!
//! | access pattern | served by | requests |
//! |---|---|---|
//! | system settings, system and template documents | GetItem / PutItem `SYSTEM` | 1 |
//! | user with profile and personal settings | GetItem `USER#{u}` / `USER` | 1 |
//! | create or update a user, copying the template once | one UpdateItem: `personal = if_not_exists(personal, :template)`, `ReturnValues = ALL_OLD` tells Created from Updated; sets or removes the `GSI1` keys | 1 |
//! | personal settings (user must exist) | GetItem; UpdateItem conditioned on `attribute_exists` | 1 |
//! | administrators | Query `GSI1` `ADMINS` (eventually consistent) | 1 per 1 MB |
//! | product type / product by id | GetItem | 1 |
//! | create or replace a product type | UpdateItem, `ALL_OLD` (keeps the `products` count) | 1 |
//! | create or replace a product (type must exist) | GetItem the product, then TransactWriteItems: Put it conditioned on what was read, `ADD products 1` on its type conditioned on `attribute_exists` (and `-1` on a former type) | 2 |
//! | refuse to delete a product type that has products | DeleteItem conditioned on `products = 0`, atomic with the counting above | 1 |
//! | membership put (both must exist) | TransactWriteItems: ConditionCheck parent and user, Put member (`attribute_not_exists`: was it new?), Put link | 1 |
//! | membership delete, per-product settings delete | TransactWriteItems: Delete item (`attribute_exists`: did it exist?), Delete link | 1 |
//! | per-product settings get | GetItem `PRODUCT#{p}` / `NOTIFY#{u}` | 1 |
//! | per-product settings put (user and product must exist) | TransactWriteItems: ConditionCheck user and product, Put settings, Put link | 1 |
//! | product access | GetItem product, then BatchGetItem user, product membership, type membership | 2 |
//! | product audience | Query `PRODUCT#{p}` (product, members, settings) alongside Query `GSI1` `ADMINS`; Query `PTYPE#{t}` `begins_with(SK, MEMBER#)`; BatchGetItem the candidates' `USER` items, 100 keys a call, concurrently | 3 + ⌈N/100⌉ |
//! | delete user | DeleteItem the user, Query `USER#{u}` (links), BatchWriteItem links and their targets, 25 a call | 2 + ⌈L/25⌉ |
//! | delete product | GetItem + TransactWriteItems (delete it, `ADD products -1` on its type), Query `PRODUCT#{p}`, BatchWriteItem the partition and its links | 3 + ⌈L/25⌉ |
//! | delete product type | conditional DeleteItem (above), Query `PTYPE#{t}`, BatchWriteItem the partition and its links | 2 + ⌈L/25⌉ |
//!
//! Every base-table read is strongly consistent. Only `GSI1` (administrators) is eventually
//! consistent: a change of `is_admin` shows there within about a second. The audience reads
//! each candidate's `USER` item again and keeps an administrator only if that item says so.
//! Query results over 1 MB are paginated; `UnprocessedKeys` / `UnprocessedItems` are retried
//! with exponential backoff. [`DynamoDbStore::request_count`] counts the requests sent.

use crate::domain::{
    AudienceMember, NotificationSettings, Product, ProductAccess, ProductAudience, ProductType,
    ResourceId, SystemSettings, User, UserProfile, Username,
};
use crate::ports::{DirectoryStore, SettingsStore, StoreError, UserWrite};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, Delete, DeleteRequest,
    GlobalSecondaryIndex, IndexStatus, KeySchemaElement, KeyType, KeysAndAttributes, Projection,
    ProjectionType, Put, ReturnValue, ScalarAttributeType, TableStatus, TransactWriteItem, Update,
    WriteRequest,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

type Item = HashMap<String, AttributeValue>;

// Key attributes and the index.
const PK: &str = "PK";
const SK: &str = "SK";
const GSI1: &str = "GSI1";
const GSI1PK: &str = "GSI1PK";
const GSI1SK: &str = "GSI1SK";

// Key values and prefixes.
const SYSTEM_PK: &str = "SYSTEM";
const SETTINGS_SK: &str = "SETTINGS";
const SYSTEM_DOCUMENT_SK: &str = "NOTIFY#SYSTEM";
const TEMPLATE_DOCUMENT_SK: &str = "NOTIFY#TEMPLATE";
const USER_PREFIX: &str = "USER#";
const USER_SK: &str = "USER";
const PTYPE_PREFIX: &str = "PTYPE#";
const PTYPE_SK: &str = "PTYPE";
const PRODUCT_PREFIX: &str = "PRODUCT#";
const PRODUCT_SK: &str = "PRODUCT";
const MEMBER_PREFIX: &str = "MEMBER#";
const NOTIFY_PREFIX: &str = "NOTIFY#";
const PTYPE_MEMBER_LINK: &str = "PTYPE_MEMBER#";
const PRODUCT_MEMBER_LINK: &str = "PRODUCT_MEMBER#";
const PRODUCT_NOTIFY_LINK: &str = "PRODUCT_NOTIFY#";
const ADMINS: &str = "ADMINS";

// Other attributes.
const BODY: &str = "body";
const USERNAME: &str = "username";
const EMAIL: &str = "email";
const FIRST_NAME: &str = "first_name";
const LAST_NAME: &str = "last_name";
const SLACK_EMAIL: &str = "slack_email";
const SLACK_USER_ID: &str = "slack_user_id";
const IS_ACTIVE: &str = "is_active";
const IS_ADMIN: &str = "is_admin";
const PERSONAL: &str = "personal";
const ID: &str = "id";
const NAME: &str = "name";
const PRODUCT_TYPE_ID: &str = "product_type_id";
const DISABLE_SLA: &str = "disable_sla_breach_notifications";
const PRODUCTS: &str = "products";
const REF_PK: &str = "ref_pk";
const REF_SK: &str = "ref_sk";

/// DynamoDB's limits per BatchGetItem and BatchWriteItem call.
const BATCH_GET_LIMIT: usize = 100;
const BATCH_WRITE_LIMIT: usize = 25;
/// Attempts for unprocessed batch entries, transaction conflicts and optimistic retries.
const MAX_ATTEMPTS: u32 = 8;
/// How long `create_table` waits for the table to become ACTIVE.
const TABLE_ACTIVE_TIMEOUT: Duration = Duration::from_secs(60);

const EXISTS: &str = "attribute_exists(#PK)";
const NOT_EXISTS: &str = "attribute_not_exists(#PK)";
const CONDITIONAL_CHECK_FAILED: &str = "ConditionalCheckFailed";
const TRANSACTION_CONFLICT: &str = "TransactionConflict";

/// The store ports on one DynamoDB table (see the module docs for the key design).
#[derive(Clone)]
pub struct DynamoDbStore {
    client: Client,
    table: Arc<str>,
    requests: Arc<AtomicU64>,
}

impl fmt::Debug for DynamoDbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynamoDbStore")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

/// A primary key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Key {
    pk: String,
    sk: String,
}

impl Key {
    fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        Self {
            pk: pk.into(),
            sk: sk.into(),
        }
    }

    fn system(sk: &str) -> Self {
        Self::new(SYSTEM_PK, sk)
    }

    fn user(user: &str) -> Self {
        Self::new(user_pk(user), USER_SK)
    }

    fn product_type(id: &str) -> Self {
        Self::new(product_type_pk(id), PTYPE_SK)
    }

    fn product(id: &str) -> Self {
        Self::new(product_pk(id), PRODUCT_SK)
    }

    fn product_notifications(product: &str, user: &str) -> Self {
        Self::new(product_pk(product), format!("{NOTIFY_PREFIX}{user}"))
    }

    fn product_notifications_link(user: &str, product: &str) -> Self {
        Self::new(user_pk(user), format!("{PRODUCT_NOTIFY_LINK}{product}"))
    }

    fn to_item(&self) -> Item {
        HashMap::from([
            (PK.to_owned(), AttributeValue::S(self.pk.clone())),
            (SK.to_owned(), AttributeValue::S(self.sk.clone())),
        ])
    }

    fn from_item(item: &Item) -> Result<Self, StoreError> {
        Ok(Self::new(string(item, PK)?, string(item, SK)?))
    }

    /// The item a link or linked item points at, if it has one.
    fn referenced_by(item: &Item) -> Option<Self> {
        match (optional_string(item, REF_PK), optional_string(item, REF_SK)) {
            (Some(pk), Some(sk)) => Some(Self::new(pk, sk)),
            _ => None,
        }
    }
}

fn user_pk(user: &str) -> String {
    format!("{USER_PREFIX}{user}")
}

fn product_type_pk(id: &str) -> String {
    format!("{PTYPE_PREFIX}{id}")
}

fn product_pk(id: &str) -> String {
    format!("{PRODUCT_PREFIX}{id}")
}

/// What a membership belongs to.
#[derive(Debug, Clone, Copy)]
enum Parent {
    ProductType,
    Product,
}

impl Parent {
    fn key(self, id: &str) -> Key {
        match self {
            Parent::ProductType => Key::product_type(id),
            Parent::Product => Key::product(id),
        }
    }

    fn member(self, id: &str, user: &str) -> Key {
        Key::new(self.key(id).pk, format!("{MEMBER_PREFIX}{user}"))
    }

    fn link(self, id: &str, user: &str) -> Key {
        let prefix = match self {
            Parent::ProductType => PTYPE_MEMBER_LINK,
            Parent::Product => PRODUCT_MEMBER_LINK,
        };
        Key::new(user_pk(user), format!("{prefix}{id}"))
    }

    fn label(self, id: &ResourceId) -> String {
        match self {
            Parent::ProductType => format!("product type {id}"),
            Parent::Product => format!("product {id}"),
        }
    }
}

/// An item that points at `other` (a membership and its link, both ways).
fn linked_item(key: &Key, other: &Key) -> Item {
    let mut item = key.to_item();
    item.insert(REF_PK.to_owned(), AttributeValue::S(other.pk.clone()));
    item.insert(REF_SK.to_owned(), AttributeValue::S(other.sk.clone()));
    item
}

/// `#name` placeholders for attribute names (several are DynamoDB reserved words).
fn names(attributes: &[&str]) -> HashMap<String, String> {
    attributes
        .iter()
        .map(|a| (format!("#{a}"), (*a).to_owned()))
        .collect()
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn string(item: &Item, attribute: &str) -> Result<String, StoreError> {
    optional_string(item, attribute).ok_or_else(|| {
        StoreError::Backend(format!(
            "DynamoDB item lacks the string attribute `{attribute}`"
        ))
    })
}

fn optional_string(item: &Item, attribute: &str) -> Option<String> {
    match item.get(attribute) {
        Some(AttributeValue::S(value)) => Some(value.clone()),
        _ => None,
    }
}

fn boolean(item: &Item, attribute: &str) -> Result<bool, StoreError> {
    match item.get(attribute) {
        Some(AttributeValue::Bool(value)) => Ok(*value),
        _ => Err(StoreError::Backend(format!(
            "DynamoDB item lacks the boolean attribute `{attribute}`"
        ))),
    }
}

fn parse_settings(body: &str) -> Result<NotificationSettings, StoreError> {
    NotificationSettings::from_stored(body)
        .map_err(|e| StoreError::Backend(format!("unreadable settings document: {e}")))
}

fn user_from_item(item: &Item) -> Result<User, StoreError> {
    Ok(User {
        username: Username(string(item, USERNAME)?),
        profile: UserProfile {
            email: optional_string(item, EMAIL),
            first_name: string(item, FIRST_NAME)?,
            last_name: string(item, LAST_NAME)?,
            slack_email: optional_string(item, SLACK_EMAIL),
            slack_user_id: optional_string(item, SLACK_USER_ID),
            is_active: boolean(item, IS_ACTIVE)?,
            is_admin: boolean(item, IS_ADMIN)?,
        },
    })
}

fn product_from_item(item: &Item) -> Result<Product, StoreError> {
    Ok(Product {
        id: ResourceId(string(item, ID)?),
        name: string(item, NAME)?,
        product_type_id: ResourceId(string(item, PRODUCT_TYPE_ID)?),
        disable_sla_breach_notifications: boolean(item, DISABLE_SLA)?,
    })
}

fn product_item(product: &Product) -> Item {
    let mut item = Key::product(product.id.as_str()).to_item();
    item.insert(ID.to_owned(), s(product.id.as_str()));
    item.insert(NAME.to_owned(), s(&product.name));
    item.insert(
        PRODUCT_TYPE_ID.to_owned(),
        s(product.product_type_id.as_str()),
    );
    item.insert(
        DISABLE_SLA.to_owned(),
        AttributeValue::Bool(product.disable_sla_breach_notifications),
    );
    item
}

/// A failed SDK call as a `Backend` error naming the operation.
fn backend<E, R>(operation: &'static str) -> impl FnOnce(SdkError<E, R>) -> StoreError
where
    E: std::error::Error + 'static,
    R: fmt::Debug,
{
    move |e| StoreError::Backend(format!("DynamoDB {operation}: {}", DisplayErrorContext(&e)))
}

fn build_error(e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Backend(format!("DynamoDB request could not be built: {e}"))
}

/// How a transaction ended.
enum Transaction {
    Committed,
    /// Cancelled; the code of each item's reason, in request order (`None` when it passed).
    Cancelled(Vec<Option<String>>),
}

impl Transaction {
    /// Whether item `index` failed its condition.
    fn condition_failed(codes: &[Option<String>], index: usize) -> bool {
        codes.get(index).and_then(Option::as_deref) == Some(CONDITIONAL_CHECK_FAILED)
    }
}

fn cancelled(operation: &'static str, codes: &[Option<String>]) -> StoreError {
    StoreError::Backend(format!(
        "DynamoDB {operation}: transaction cancelled: {codes:?}"
    ))
}

/// Exponential backoff before retry `attempt` (1-based): 25 ms, 50 ms, 100 ms, ...
async fn backoff(attempt: u32) {
    let doublings = attempt.saturating_sub(1).min(7);
    tokio::time::sleep(Duration::from_millis(25u64 << doublings)).await;
}

impl DynamoDbStore {
    /// A store over `table_name`, which must exist (see [`DynamoDbStore::create_table`]).
    pub fn new(client: Client, table_name: impl Into<String>) -> Self {
        Self {
            client,
            table: Arc::from(table_name.into()),
            requests: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The table's name.
    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// How many DynamoDB requests this store (and its clones) has sent, retries of
    /// unprocessed batch entries included, for tests and benchmarks.
    pub fn request_count(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn count(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Creates the table (on-demand billing, `PK`/`SK`, sparse `GSI1` projecting all
    /// attributes) and waits until it and its index are ACTIVE. An existing table is fine.
    pub async fn create_table(&self) -> Result<(), StoreError> {
        let attribute = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(build_error)
        };
        let key = |name: &str, key_type: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(key_type)
                .build()
                .map_err(build_error)
        };
        let index = GlobalSecondaryIndex::builder()
            .index_name(GSI1)
            .key_schema(key(GSI1PK, KeyType::Hash)?)
            .key_schema(key(GSI1SK, KeyType::Range)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build(),
            )
            .build()
            .map_err(build_error)?;
        self.count();
        let created = self
            .client
            .create_table()
            .table_name(self.table.as_ref())
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attribute(PK)?)
            .attribute_definitions(attribute(SK)?)
            .attribute_definitions(attribute(GSI1PK)?)
            .attribute_definitions(attribute(GSI1SK)?)
            .key_schema(key(PK, KeyType::Hash)?)
            .key_schema(key(SK, KeyType::Range)?)
            .global_secondary_indexes(index)
            .send()
            .await;
        match created {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_in_use_exception()) => {}
            Err(e) => return Err(backend("CreateTable")(e)),
        }
        let deadline = tokio::time::Instant::now() + TABLE_ACTIVE_TIMEOUT;
        loop {
            self.count();
            let described = self
                .client
                .describe_table()
                .table_name(self.table.as_ref())
                .send()
                .await
                .map_err(backend("DescribeTable"))?;
            if let Some(table) = described.table {
                let indexes_active = table
                    .global_secondary_indexes()
                    .iter()
                    .all(|i| i.index_status() == Some(&IndexStatus::Active));
                if table.table_status() == Some(&TableStatus::Active) && indexes_active {
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StoreError::Backend(format!(
                    "DynamoDB table {} did not become ACTIVE within {} s",
                    self.table,
                    TABLE_ACTIVE_TIMEOUT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
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

    async fn document(&self, sk: &str) -> Result<Option<String>, StoreError> {
        self.get(&Key::system(sk))
            .await?
            .map(|item| string(&item, BODY))
            .transpose()
    }

    async fn put_document(&self, sk: &str, body: String) -> Result<(), StoreError> {
        let mut item = Key::system(sk).to_item();
        item.insert(BODY.to_owned(), s(body));
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

    async fn notifications_document(&self, sk: &str) -> Result<NotificationSettings, StoreError> {
        match self.document(sk).await? {
            Some(body) => parse_settings(&body),
            None => Ok(NotificationSettings::defaults()),
        }
    }

    async fn read_product(&self, id: &str) -> Result<Option<Product>, StoreError> {
        self.get(&Key::product(id))
            .await?
            .map(|item| product_from_item(&item))
            .transpose()
    }

    /// Every item of partition `pk` (optionally only sort keys starting with `sk_prefix`),
    /// strongly consistent, all pages; `projection` limits the attributes read.
    async fn query_partition(
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

    /// The `GSI1` `ADMINS` items (eventually consistent), all pages; `projection` as above.
    async fn query_admins(&self, projection: Option<&[&str]>) -> Result<Vec<Item>, StoreError> {
        let mut attribute_names = names(&[GSI1PK]);
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
                .index_name(GSI1)
                .key_condition_expression(format!("#{GSI1PK} = :admins"))
                .set_expression_attribute_names(Some(attribute_names.clone()))
                .expression_attribute_values(":admins", s(ADMINS))
                .set_projection_expression(projection_expression.clone())
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(backend("Query GSI1"))?;
            items.extend(page.items.unwrap_or_default());
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(items);
            }
        }
    }

    /// The items at `keys` that exist (in no particular order), strongly consistent:
    /// BatchGetItem, 100 keys a call, the calls concurrent.
    async fn batch_get(&self, keys: BTreeSet<Key>) -> Result<Vec<Item>, StoreError> {
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

    async fn batch_get_chunk(&self, mut keys: Vec<Item>) -> Result<Vec<Item>, StoreError> {
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
    async fn batch_delete(&self, keys: BTreeSet<Key>) -> Result<(), StoreError> {
        let keys: Vec<Key> = keys.into_iter().collect();
        for chunk in keys.chunks(BATCH_WRITE_LIMIT) {
            let mut requests = chunk
                .iter()
                .map(|key| {
                    DeleteRequest::builder()
                        .set_key(Some(key.to_item()))
                        .build()
                        .map(|delete| WriteRequest::builder().delete_request(delete).build())
                        .map_err(build_error)
                })
                .collect::<Result<Vec<_>, _>>()?;
            let mut attempt = 0;
            while !requests.is_empty() {
                if attempt >= MAX_ATTEMPTS {
                    return Err(StoreError::Backend(format!(
                        "DynamoDB BatchWriteItem: {} deletes still unprocessed after {MAX_ATTEMPTS} attempts",
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
        }
        Ok(())
    }

    /// Deletes what hangs off `head` (the items of its partition and the items they link
    /// to), once `head` itself was deleted by a conditional write. If `head` is back, it was
    /// created again meanwhile and stays: deleting it here would bypass those conditions.
    async fn purge_partition(&self, head: &Key) -> Result<(), StoreError> {
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
    async fn transact(
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

    fn condition_check(&self, key: &Key) -> Result<TransactWriteItem, StoreError> {
        let check = ConditionCheck::builder()
            .table_name(self.table.as_ref())
            .set_key(Some(key.to_item()))
            .condition_expression(EXISTS)
            .set_expression_attribute_names(Some(names(&[PK])))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }

    fn put(&self, item: Item, condition: Option<&str>) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(self.table.as_ref())
            .set_item(Some(item))
            .set_condition_expression(condition.map(str::to_owned))
            .set_expression_attribute_names(condition.map(|_| names(&[PK])))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn delete(&self, key: &Key, must_exist: bool) -> Result<TransactWriteItem, StoreError> {
        let delete = Delete::builder()
            .table_name(self.table.as_ref())
            .set_key(Some(key.to_item()))
            .set_condition_expression(must_exist.then(|| EXISTS.to_owned()))
            .set_expression_attribute_names(must_exist.then(|| names(&[PK])))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    /// `ADD products :delta` on a product type that must exist.
    fn count_products(
        &self,
        product_type: &str,
        delta: i64,
    ) -> Result<TransactWriteItem, StoreError> {
        let update = Update::builder()
            .table_name(self.table.as_ref())
            .set_key(Some(Key::product_type(product_type).to_item()))
            .update_expression(format!("ADD #{PRODUCTS} :delta"))
            .condition_expression(EXISTS)
            .set_expression_attribute_names(Some(names(&[PK, PRODUCTS])))
            .expression_attribute_values(":delta", AttributeValue::N(delta.to_string()))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Deletes one item; whether it existed.
    async fn delete_item(&self, key: &Key) -> Result<bool, StoreError> {
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
    async fn delete_linked(&self, key: &Key, link: &Key) -> Result<bool, StoreError> {
        let items = vec![self.delete(key, true)?, self.delete(link, false)?];
        match self.transact("TransactWriteItems (delete)", items).await? {
            Transaction::Committed => Ok(true),
            Transaction::Cancelled(codes) if Transaction::condition_failed(&codes, 0) => Ok(false),
            Transaction::Cancelled(codes) => Err(cancelled("TransactWriteItems (delete)", &codes)),
        }
    }

    /// Deletes a product item and counts it off its type, atomically; whether it existed.
    async fn delete_product_item(&self, id: &ResourceId) -> Result<bool, StoreError> {
        const OPERATION: &str = "TransactWriteItems (delete product)";
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                backoff(attempt).await;
            }
            let Some(product) = self.read_product(id.as_str()).await? else {
                return Ok(false);
            };
            // Delete only if the product is still as read, so the right type is counted off.
            let delete = Delete::builder()
                .table_name(self.table.as_ref())
                .set_key(Some(Key::product(id.as_str()).to_item()))
                .condition_expression(format!("#{PRODUCT_TYPE_ID} = :type"))
                .set_expression_attribute_names(Some(names(&[PRODUCT_TYPE_ID])))
                .expression_attribute_values(":type", s(product.product_type_id.as_str()))
                .build()
                .map_err(build_error)?;
            let items = vec![
                TransactWriteItem::builder().delete(delete).build(),
                self.count_products(product.product_type_id.as_str(), -1)?,
            ];
            match self.transact(OPERATION, items).await? {
                Transaction::Committed => return Ok(true),
                // Changed or deleted since the read: read again.
                Transaction::Cancelled(codes) if Transaction::condition_failed(&codes, 0) => {}
                Transaction::Cancelled(codes) => return Err(cancelled(OPERATION, &codes)),
            }
        }
        Err(StoreError::Conflict(format!(
            "product {id} is being changed concurrently; try again"
        )))
    }

    async fn put_member(
        &self,
        parent: Parent,
        id: &ResourceId,
        user: &Username,
    ) -> Result<bool, StoreError> {
        const OPERATION: &str = "TransactWriteItems (membership)";
        let (id_str, name) = (id.as_str(), user.as_str());
        let (member, link) = (parent.member(id_str, name), parent.link(id_str, name));
        let mut member_item = linked_item(&member, &link);
        member_item.insert(USERNAME.to_owned(), s(name));
        let items = vec![
            self.condition_check(&parent.key(id_str))?,
            self.condition_check(&Key::user(name))?,
            self.put(member_item, Some(NOT_EXISTS))?,
            self.put(linked_item(&link, &member), None)?,
        ];
        match self.transact(OPERATION, items).await? {
            Transaction::Committed => Ok(true),
            Transaction::Cancelled(codes) => {
                if Transaction::condition_failed(&codes, 0) {
                    Err(StoreError::NotFound(parent.label(id)))
                } else if Transaction::condition_failed(&codes, 1) {
                    Err(StoreError::NotFound(format!("user {user}")))
                } else if Transaction::condition_failed(&codes, 2) {
                    Ok(false)
                } else {
                    Err(cancelled(OPERATION, &codes))
                }
            }
        }
    }
}

#[async_trait]
impl SettingsStore for DynamoDbStore {
    async fn system_settings(&self) -> Result<SystemSettings, StoreError> {
        match self.document(SETTINGS_SK).await? {
            Some(body) => SystemSettings::from_stored(&body)
                .map_err(|e| StoreError::Backend(format!("unreadable system settings: {e}"))),
            None => Ok(SystemSettings::default()),
        }
    }

    async fn put_system_settings(&self, settings: &SystemSettings) -> Result<(), StoreError> {
        self.put_document(SETTINGS_SK, settings.to_stored()).await
    }

    async fn system_notifications(&self) -> Result<NotificationSettings, StoreError> {
        self.notifications_document(SYSTEM_DOCUMENT_SK).await
    }

    async fn put_system_notifications(
        &self,
        settings: &NotificationSettings,
    ) -> Result<(), StoreError> {
        self.put_document(SYSTEM_DOCUMENT_SK, settings.to_stored())
            .await
    }

    async fn template_notifications(&self) -> Result<NotificationSettings, StoreError> {
        self.notifications_document(TEMPLATE_DOCUMENT_SK).await
    }

    async fn put_template_notifications(
        &self,
        settings: &NotificationSettings,
    ) -> Result<(), StoreError> {
        self.put_document(TEMPLATE_DOCUMENT_SK, settings.to_stored())
            .await
    }

    async fn personal_notifications(
        &self,
        user: &Username,
    ) -> Result<NotificationSettings, StoreError> {
        match self.get(&Key::user(user.as_str())).await? {
            Some(item) => parse_settings(&string(&item, PERSONAL)?),
            None => Err(StoreError::NotFound(format!("user {user}"))),
        }
    }

    async fn put_personal_notifications(
        &self,
        user: &Username,
        settings: &NotificationSettings,
    ) -> Result<(), StoreError> {
        self.count();
        let result = self
            .client
            .update_item()
            .table_name(self.table.as_ref())
            .set_key(Some(Key::user(user.as_str()).to_item()))
            .update_expression(format!("SET #{PERSONAL} = :personal"))
            .condition_expression(EXISTS)
            .set_expression_attribute_names(Some(names(&[PK, PERSONAL])))
            .expression_attribute_values(":personal", s(settings.to_stored()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Err(StoreError::NotFound(format!("user {user}")))
            }
            Err(e) => Err(backend("UpdateItem")(e)),
        }
    }

    async fn product_notifications(
        &self,
        user: &Username,
        product: &ResourceId,
    ) -> Result<Option<NotificationSettings>, StoreError> {
        let key = Key::product_notifications(product.as_str(), user.as_str());
        match self.get(&key).await? {
            Some(item) => parse_settings(&string(&item, BODY)?).map(Some),
            None => Ok(None),
        }
    }

    async fn put_product_notifications(
        &self,
        user: &Username,
        product: &ResourceId,
        settings: &NotificationSettings,
    ) -> Result<(), StoreError> {
        const OPERATION: &str = "TransactWriteItems (product settings)";
        let (name, id) = (user.as_str(), product.as_str());
        let key = Key::product_notifications(id, name);
        let link = Key::product_notifications_link(name, id);
        let mut item = linked_item(&key, &link);
        item.insert(USERNAME.to_owned(), s(name));
        item.insert(BODY.to_owned(), s(settings.to_stored()));
        let items = vec![
            self.condition_check(&Key::user(name))?,
            self.condition_check(&Key::product(id))?,
            self.put(item, None)?,
            self.put(linked_item(&link, &key), None)?,
        ];
        match self.transact(OPERATION, items).await? {
            Transaction::Committed => Ok(()),
            Transaction::Cancelled(codes) => {
                if Transaction::condition_failed(&codes, 0) {
                    Err(StoreError::NotFound(format!("user {user}")))
                } else if Transaction::condition_failed(&codes, 1) {
                    Err(StoreError::NotFound(format!("product {product}")))
                } else {
                    Err(cancelled(OPERATION, &codes))
                }
            }
        }
    }

    async fn delete_product_notifications(
        &self,
        user: &Username,
        product: &ResourceId,
    ) -> Result<bool, StoreError> {
        let (name, id) = (user.as_str(), product.as_str());
        self.delete_linked(
            &Key::product_notifications(id, name),
            &Key::product_notifications_link(name, id),
        )
        .await
    }
}

#[async_trait]
impl DirectoryStore for DynamoDbStore {
    async fn put_user(
        &self,
        user: &Username,
        profile: &UserProfile,
        template: &NotificationSettings,
    ) -> Result<UserWrite, StoreError> {
        let name = user.as_str();
        let mut set = vec![
            format!("#{USERNAME} = :{USERNAME}"),
            format!("#{FIRST_NAME} = :{FIRST_NAME}"),
            format!("#{LAST_NAME} = :{LAST_NAME}"),
            format!("#{IS_ACTIVE} = :{IS_ACTIVE}"),
            format!("#{IS_ADMIN} = :{IS_ADMIN}"),
            // Atomic: only the write that creates the item copies the template.
            format!("#{PERSONAL} = if_not_exists(#{PERSONAL}, :template)"),
        ];
        let mut remove = Vec::new();
        let mut values = HashMap::from([
            (format!(":{USERNAME}"), s(name)),
            (format!(":{FIRST_NAME}"), s(&profile.first_name)),
            (format!(":{LAST_NAME}"), s(&profile.last_name)),
            (
                format!(":{IS_ACTIVE}"),
                AttributeValue::Bool(profile.is_active),
            ),
            (
                format!(":{IS_ADMIN}"),
                AttributeValue::Bool(profile.is_admin),
            ),
            (":template".to_owned(), s(template.to_stored())),
        ]);
        let optional = [
            (EMAIL, &profile.email),
            (SLACK_EMAIL, &profile.slack_email),
            (SLACK_USER_ID, &profile.slack_user_id),
        ];
        for (attribute, value) in optional {
            match value {
                Some(value) => {
                    set.push(format!("#{attribute} = :{attribute}"));
                    values.insert(format!(":{attribute}"), s(value));
                }
                None => remove.push(format!("#{attribute}")),
            }
        }
        // The sparse administrators index.
        if profile.is_admin {
            set.push(format!("#{GSI1PK} = :admins, #{GSI1SK} = :user_key"));
            values.insert(":admins".to_owned(), s(ADMINS));
            values.insert(":user_key".to_owned(), s(user_pk(name)));
        } else {
            remove.push(format!("#{GSI1PK}, #{GSI1SK}"));
        }
        let mut expression = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        self.count();
        let output = self
            .client
            .update_item()
            .table_name(self.table.as_ref())
            .set_key(Some(Key::user(name).to_item()))
            .update_expression(expression)
            .set_expression_attribute_names(Some(names(&[
                USERNAME,
                FIRST_NAME,
                LAST_NAME,
                IS_ACTIVE,
                IS_ADMIN,
                PERSONAL,
                EMAIL,
                SLACK_EMAIL,
                SLACK_USER_ID,
                GSI1PK,
                GSI1SK,
            ])))
            .set_expression_attribute_values(Some(values))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(backend("UpdateItem"))?;
        let existed = output.attributes.is_some_and(|old| !old.is_empty());
        Ok(if existed {
            UserWrite::Updated
        } else {
            UserWrite::Created
        })
    }

    async fn user(&self, user: &Username) -> Result<Option<User>, StoreError> {
        self.get(&Key::user(user.as_str()))
            .await?
            .map(|item| user_from_item(&item))
            .transpose()
    }

    async fn delete_user(&self, user: &Username) -> Result<bool, StoreError> {
        // The user item first: from then on no membership or settings write can pass its
        // condition check, so the Query below sees every link there will be.
        let existed = self.delete_item(&Key::user(user.as_str())).await?;
        self.purge_partition(&Key::user(user.as_str())).await?;
        Ok(existed)
    }

    async fn put_product_type(&self, product_type: &ProductType) -> Result<bool, StoreError> {
        self.count();
        let output = self
            .client
            .update_item()
            .table_name(self.table.as_ref())
            .set_key(Some(Key::product_type(product_type.id.as_str()).to_item()))
            .update_expression(format!("SET #{ID} = :id, #{NAME} = :name"))
            .set_expression_attribute_names(Some(names(&[ID, NAME])))
            .expression_attribute_values(":id", s(product_type.id.as_str()))
            .expression_attribute_values(":name", s(&product_type.name))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(backend("UpdateItem"))?;
        Ok(output.attributes.is_none_or(|old| old.is_empty()))
    }

    async fn product_type(&self, id: &ResourceId) -> Result<Option<ProductType>, StoreError> {
        self.get(&Key::product_type(id.as_str()))
            .await?
            .map(|item| {
                Ok(ProductType {
                    id: ResourceId(string(&item, ID)?),
                    name: string(&item, NAME)?,
                })
            })
            .transpose()
    }

    async fn delete_product_type(&self, id: &ResourceId) -> Result<bool, StoreError> {
        // `products` is kept in step with the products by the transactions that write them,
        // so this condition is exact (a GSI query could miss a product written a moment ago).
        self.count();
        let result = self
            .client
            .delete_item()
            .table_name(self.table.as_ref())
            .set_key(Some(Key::product_type(id.as_str()).to_item()))
            .condition_expression(format!(
                "attribute_not_exists(#{PRODUCTS}) OR #{PRODUCTS} = :zero"
            ))
            .set_expression_attribute_names(Some(names(&[PRODUCTS])))
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        let existed = match result {
            Ok(output) => output.attributes.is_some_and(|old| !old.is_empty()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                return Err(StoreError::Conflict(format!(
                    "product type {id} still has products; delete or move them first"
                )));
            }
            Err(e) => return Err(backend("DeleteItem")(e)),
        };
        // Memberships cannot be added any more (their transaction checks the type exists).
        self.purge_partition(&Key::product_type(id.as_str()))
            .await?;
        Ok(existed)
    }

    async fn put_product_type_member(
        &self,
        id: &ResourceId,
        user: &Username,
    ) -> Result<bool, StoreError> {
        self.put_member(Parent::ProductType, id, user).await
    }

    async fn delete_product_type_member(
        &self,
        id: &ResourceId,
        user: &Username,
    ) -> Result<bool, StoreError> {
        let (id, name) = (id.as_str(), user.as_str());
        let parent = Parent::ProductType;
        self.delete_linked(&parent.member(id, name), &parent.link(id, name))
            .await
    }

    async fn put_product(&self, product: &Product) -> Result<bool, StoreError> {
        const OPERATION: &str = "TransactWriteItems (product)";
        let (id, new_type) = (product.id.as_str(), product.product_type_id.as_str());
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                backoff(attempt).await;
            }
            let old_type = self.read_product(id).await?.map(|p| p.product_type_id);
            // Put only if the product is still as read, so the counts stay exact.
            let put = match &old_type {
                None => self.put(product_item(product), Some(NOT_EXISTS))?,
                Some(old) => {
                    let condition = Put::builder()
                        .table_name(self.table.as_ref())
                        .set_item(Some(product_item(product)))
                        .condition_expression(format!("#{PRODUCT_TYPE_ID} = :old_type"))
                        .set_expression_attribute_names(Some(names(&[PRODUCT_TYPE_ID])))
                        .expression_attribute_values(":old_type", s(old.as_str()))
                        .build()
                        .map_err(build_error)?;
                    TransactWriteItem::builder().put(condition).build()
                }
            };
            let mut items = vec![put];
            match &old_type {
                Some(old) if old.as_str() == new_type => {
                    items.push(self.condition_check(&Key::product_type(new_type))?);
                }
                Some(old) => {
                    items.push(self.count_products(new_type, 1)?);
                    items.push(self.count_products(old.as_str(), -1)?);
                }
                None => items.push(self.count_products(new_type, 1)?),
            }
            match self.transact(OPERATION, items).await? {
                Transaction::Committed => return Ok(old_type.is_none()),
                Transaction::Cancelled(codes) => {
                    if Transaction::condition_failed(&codes, 1) {
                        return Err(StoreError::NotFound(format!(
                            "product type {}",
                            product.product_type_id
                        )));
                    }
                    if !Transaction::condition_failed(&codes, 0) {
                        return Err(cancelled(OPERATION, &codes));
                    }
                    // The product changed between the read and the write: read again.
                }
            }
        }
        Err(StoreError::Conflict(format!(
            "product {} is being changed concurrently; try again",
            product.id
        )))
    }

    async fn product(&self, id: &ResourceId) -> Result<Option<Product>, StoreError> {
        self.read_product(id.as_str()).await
    }

    async fn delete_product(&self, id: &ResourceId) -> Result<bool, StoreError> {
        let existed = self.delete_product_item(id).await?;
        // Also clears what an interrupted earlier delete left behind. No membership or
        // settings write can pass its condition check once the product item is gone.
        self.purge_partition(&Key::product(id.as_str())).await?;
        Ok(existed)
    }

    async fn put_product_member(
        &self,
        id: &ResourceId,
        user: &Username,
    ) -> Result<bool, StoreError> {
        self.put_member(Parent::Product, id, user).await
    }

    async fn delete_product_member(
        &self,
        id: &ResourceId,
        user: &Username,
    ) -> Result<bool, StoreError> {
        let (id, name) = (id.as_str(), user.as_str());
        let parent = Parent::Product;
        self.delete_linked(&parent.member(id, name), &parent.link(id, name))
            .await
    }

    async fn product_access(
        &self,
        user: &Username,
        product: &ResourceId,
    ) -> Result<ProductAccess, StoreError> {
        let product = self
            .read_product(product.as_str())
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("product {product}")))?;
        let (id, type_id, name) = (
            product.id.as_str(),
            product.product_type_id.as_str(),
            user.as_str(),
        );
        let user_key = Key::user(name);
        let product_member = Parent::Product.member(id, name);
        let type_member = Parent::ProductType.member(type_id, name);
        let keys = BTreeSet::from([
            user_key.clone(),
            product_member.clone(),
            type_member.clone(),
        ]);
        let mut found = HashMap::new();
        for item in self.batch_get(keys).await? {
            found.insert(Key::from_item(&item)?, item);
        }
        let Some(user_item) = found.get(&user_key) else {
            return Ok(ProductAccess::default());
        };
        Ok(ProductAccess {
            is_admin: boolean(user_item, IS_ADMIN)?,
            is_product_member: found.contains_key(&product_member),
            is_product_type_member: found.contains_key(&type_member),
        })
    }

    async fn product_audience(
        &self,
        product: &ResourceId,
    ) -> Result<Option<ProductAudience>, StoreError> {
        let partition_key = product_pk(product.as_str());
        let (partition, admins) = tokio::join!(
            self.query_partition(&partition_key, None, None),
            self.query_admins(Some(&[USERNAME])),
        );
        let mut found = None;
        let mut product_members = BTreeSet::new();
        let mut product_settings = HashMap::new();
        for item in partition? {
            let sk = string(&item, SK)?;
            if sk == PRODUCT_SK {
                found = Some(product_from_item(&item)?);
            } else if sk.starts_with(MEMBER_PREFIX) {
                product_members.insert(string(&item, USERNAME)?);
            } else if sk.starts_with(NOTIFY_PREFIX) {
                product_settings.insert(
                    string(&item, USERNAME)?,
                    parse_settings(&string(&item, BODY)?)?,
                );
            }
        }
        let Some(product) = found else {
            return Ok(None);
        };
        let type_members = self
            .query_partition(
                &product_type_pk(product.product_type_id.as_str()),
                Some(MEMBER_PREFIX),
                Some(&[USERNAME]),
            )
            .await?
            .iter()
            .map(|item| string(item, USERNAME))
            .collect::<Result<BTreeSet<String>, StoreError>>()?;
        let admin_candidates = admins?
            .iter()
            .map(|item| string(item, USERNAME))
            .collect::<Result<BTreeSet<String>, StoreError>>()?;
        let candidates: BTreeSet<Key> = product_members
            .iter()
            .chain(&type_members)
            .chain(&admin_candidates)
            .map(|name| Key::user(name))
            .collect();
        // Sorted by username; users deleted meanwhile have no item and drop out.
        let mut users = BTreeMap::new();
        for item in self.batch_get(candidates).await? {
            let user = user_from_item(&item)?;
            users.insert(user.username.clone(), (user, string(&item, PERSONAL)?));
        }
        let mut members = Vec::with_capacity(users.len());
        for (username, (user, personal)) in users {
            let name = username.as_str();
            // An administrator counts only if the (consistent) user item still says so.
            if product_members.contains(name)
                || type_members.contains(name)
                || user.profile.is_admin
            {
                members.push(AudienceMember {
                    personal: parse_settings(&personal)?,
                    product_settings: product_settings.remove(name),
                    user,
                });
            }
        }
        Ok(Some(ProductAudience { product, members }))
    }

    async fn administrators(&self) -> Result<Vec<User>, StoreError> {
        let mut admins = self
            .query_admins(None)
            .await?
            .iter()
            .map(user_from_item)
            .collect::<Result<Vec<User>, StoreError>>()?;
        admins.sort_by(|a, b| a.username.cmp(&b.username));
        Ok(admins)
    }
}
