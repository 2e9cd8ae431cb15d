//! `DynamoDbStore`: the store ports on one DynamoDB table, for AWS.
//!
//! Single-table design: a partition per user, product type and product, so one Query reads a
//! product with its members and every user's settings for it, and a user's or a product's
//! deletion finds everything it must remove with one strongly consistent Query. A partition
//! per event holds it with its deliveries, and a partition per user's alerts holds only
//! those, sorted by time. `GSI1` is sparse and holds only users (administrators in a
//! partition of their own), events not yet enqueued and the scheduled checks' due lists. The table's TTL attribute is `expires_at`
//! (seconds since the Unix epoch): events and their deliveries go after
//! `EVENT_RETENTION_DAYS`, alerts after `ALERT_RETENTION_DAYS` unless deleted or trimmed
//! first, records of sent reminders after `REMINDER_RETENTION_DAYS`.
//!
//! Items (`{u}` a username, `{t}` a product type id, `{p}` a product id, `{e}` an event id,
//! `{d}` a delivery id, `{a}` an alert id; none may contain `#`, so keys cannot collide):
//!
//! | item | `PK` | `SK` | `GSI1PK` / `GSI1SK` | other attributes |
//! |---|---|---|---|---|
//! | system settings | `SYSTEM` | `SETTINGS` | | `body` (`SystemSettings::to_stored`) |
//! | system document | `SYSTEM` | `NOTIFY#SYSTEM` | | `body` |
//! | template document | `SYSTEM` | `NOTIFY#TEMPLATE` | | `body` |
//! | user | `USER#{u}` | `USER` | `ADMINS` (administrators) or `USERS` / `USER#{u}` | profile, `personal` |
//! | link to a type membership | `USER#{u}` | `PTYPE_MEMBER#{t}` | | `ref_pk`, `ref_sk` |
//! | link to a product membership | `USER#{u}` | `PRODUCT_MEMBER#{p}` | | `ref_pk`, `ref_sk` |
//! | link to per-product settings | `USER#{u}` | `PRODUCT_NOTIFY#{p}` | | `ref_pk`, `ref_sk` |
//! | product type | `PTYPE#{t}` | `PTYPE` | | `id`, `name`, `products` (count) |
//! | type membership | `PTYPE#{t}` | `MEMBER#{u}` | | `username`, `ref_pk`, `ref_sk` |
//! | product | `PRODUCT#{p}` | `PRODUCT` | | `id`, `name`, `product_type_id`, `disable_sla_breach_notifications` |
//! | product membership | `PRODUCT#{p}` | `MEMBER#{u}` | | `username`, `ref_pk`, `ref_sk` |
//! | a user's settings for a product | `PRODUCT#{p}` | `NOTIFY#{u}` | | `username`, `body`, `ref_pk`, `ref_sk` |
//! | event (idempotency record) | `EVENT#{e}` | `EVENT` | `EVENTS_NOT_ENQUEUED` / `{accepted_at:013}#{e}`, until enqueued | `event` (`Event::to_stored`), `accepted_at` (ms), `delivery_count`, `alert_count`, `enqueued`, `status` (`recording` / `recorded`), `expires_at` |
//! | delivery | `EVENT#{e}` | `DELIVERY#{d}` | | `id`, `event_id`, `channel`, `destination` (`Destination::key`), `status`, `attempts`, `last_error`, `updated_at`, `expires_at`, `lease_until` (a send claim, ms) |
//! | alert | `ALERTS#{u}` | `ALERT#{a}` (`{created_at:013}-{hash}`: sort key order is time order) | | `id`, `username`, `event_id`, `title`, `description`, `url`, `icon`, `source`, `created_at`, `read`, `expires_at` (`ALERT_RETENTION_DAYS` after creation) |
//! | webhook endpoint (`{w}` its id) | `WEBHOOKS` | `WEBHOOK#{w}` | | see `dynamodb_webhooks.rs`, with its access patterns |
//! | parked webhook message | `WEBHOOK_PARKED#{w}` | `PARKED#{t}#{d}` (`{t}` the time parked) | | see `dynamodb_webhooks.rs` |
//! | engagement, finding, risk acceptance (`{i}` its id) | `ENGAGEMENT#{i}`, `FINDING#{i}`, `RISK_ACCEPTANCE#{i}` | `ENGAGEMENT`, ... | `DUE#{list}` / `{date}#{i}` while due for a check | see `dynamodb_schedule.rs`, with its access patterns |
//! | reminder sent (`{k}` its key) | `REMINDER#{k}` | `REMINDER` | | see `dynamodb_schedule.rs` |
//!
//! Every membership and per-product settings item has a link item in the user's partition
//! (`ref_pk`/`ref_sk` point at each other), written in the same transaction. The reverse
//! lookup lives in the base table rather than in a GSI because GSI reads are eventually
//! consistent: a delete that missed a just-written membership would let it come back when
//! the user is created again.
//!
//! Access patterns and what serves them (`N` audience candidates or recipients, `L` items to
//! delete, `W` alerts plus deliveries of an event, `R` alerts to mark):
//!
//! | access pattern | served by | requests |
//! |---|---|---|
//! | system settings, system and template documents | GetItem / PutItem `SYSTEM` | 1 |
//! | user with profile and personal settings | GetItem `USER#{u}` / `USER` | 1 |
//! | create or update a user, copying the template once | one UpdateItem: `personal = if_not_exists(personal, :template)`, `ReturnValues = ALL_OLD` tells Created from Updated; sets or removes the `GSI1` keys | 1 |
//! | personal settings (user must exist) | GetItem; UpdateItem conditioned on `attribute_exists` | 1 |
//! | record a user's Slack member id (user must exist) | UpdateItem `SET slack_user_id` conditioned on `attribute_exists` | 1 |
//! | administrators | Query `GSI1` `ADMINS` (eventually consistent) | 1 per 1 MB |
//! | administrators with personal settings | Query `GSI1` `ADMINS` (usernames only), then BatchGetItem their `USER` items, 100 keys a call, concurrently; keeps those whose item says `is_admin` | 1 + ⌈N/100⌉ |
//! | named recipients with personal settings | BatchGetItem their `USER` items, 100 keys a call, concurrently; unknown names drop out | ⌈N/100⌉ |
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
//! | record an event once | (a) PutItem the event item, `status = recording`, conditioned on `attribute_not_exists` (`ReturnValuesOnConditionCheckFailure = ALL_OLD` returns the first record of a duplicate); (b) BatchWriteItem its alerts and deliveries, 25 a call, 32 calls at once; (c) UpdateItem `status = recorded`. An event with nothing to write is `recorded` in (a) | 2 + ⌈W/25⌉ (1 if W = 0, 1 for a duplicate) |
//! | complete an event left `recording` by a crash | the same id and `accepted_at` again: (a) fails, (b) and (c) rewrite the same keys | 2 + ⌈W/25⌉ |
//! | mark an event enqueued | UpdateItem `SET enqueued = true REMOVE GSI1PK, GSI1SK` (conditioned on `attribute_exists`: an unknown event is a no-op) | 1 |
//! | events not enqueued, oldest first | Query `GSI1` `EVENTS_NOT_ENQUEUED` (eventually consistent) with `Limit` | 1 per page |
//! | event by id | GetItem `EVENT#{e}` / `EVENT` | 1 |
//! | an event's deliveries, ordered by id | Query `EVENT#{e}` `begins_with(SK, DELIVERY#)` | 1 per 1 MB |
//! | one delivery | GetItem `EVENT#{e}` / `DELIVERY#{d}` | 1 |
//! | claim a delivery for one send | UpdateItem `EVENT#{e}` / `DELIVERY#{d}`: `SET lease_until`, conditioned on `attribute_exists(PK) AND NOT status IN (sent, failed, dead) AND (attribute_not_exists(lease_until) OR lease_until <= now)`, `ReturnValues = ALL_NEW`; a failed condition costs one consistent GetItem to tell final, held and unknown apart | 1 (2) |
//! | record an attempt unless the delivery is final | UpdateItem `EVENT#{e}` / `DELIVERY#{d}`: `SET status, attempts = attempts + 1, last_error (REMOVE when none), updated_at`, `REMOVE lease_until`, conditioned on `attribute_exists(PK) AND NOT status IN (sent, failed, dead)`, `ReturnValues = ALL_NEW`; a failed condition is "final or unknown" | 1 |
//! | a page of a user's alerts, newest first | Query `ALERTS#{u}` backwards (`ScanIndexForward = false`), `SK < ALERT#{cursor}`, `Limit` one more than the page (to know whether another follows); unread only: `FilterExpression read = false`, pages of at least 100 until the page is full | 1 (unread only: 1 per 100 alerts skipped) |
//! | a user's alert counts | Query `ALERTS#{u}` reading only `read`, counted here | 1 per 1 MB |
//! | mark alerts read | UpdateItem per alert in `ALERTS#{u}`, conditioned on `attribute_exists` and `read = false` (other users' ids find nothing), 8 at once; all: Query `ALERTS#{u}` first | R (all: + 1) |
//! | delete one alert | DeleteItem `ALERTS#{u}` / `ALERT#{a}`, `ALL_OLD` | 1 |
//! | add alerts raised outside intake, once each (`A` alerts, few: one per administrator per channel per hour) | PutItem per alert in `ALERTS#{u}`, conditioned on `attribute_not_exists` (an existing one keeps its read state), 8 at once; counts the puts that passed | A |
//! | delete all of a user's alerts, or all but the newest `k` (trim) | Query `ALERTS#{u}` (keys and `read` only), BatchWriteItem the deletes, 25 a call | 1 + ⌈deleted/25⌉ |
//!
//! Every base-table read is strongly consistent. Only `GSI1` (administrators, events not
//! enqueued, due lists) is eventually consistent: a change of `is_admin` shows there within
//! about a second. The audience reads each candidate's `USER` item again and keeps an administrator
//! only if that item says so; recovery may see an event just marked enqueued and enqueue it
//! again, which is harmless.
//!
//! BatchWriteItem cannot be conditional, so completing an interrupted event rewrites its
//! alerts and deliveries as built again: an alert read in between is unread again.
//! Query results over 1 MB are paginated; `UnprocessedKeys` / `UnprocessedItems` are retried
//! with exponential backoff. [`DynamoDbStore::request_count`] counts the requests sent.

use crate::domain::{
    Alert, AudienceMember, Channel, Delivery, DeliveryId, DeliveryStatus, Destination, Event,
    EventId, NotificationSettings, Product, ProductAccess, ProductAudience, ProductType,
    ResourceId, SystemSettings, User, UserProfile, Username,
};
use crate::ports::{
    AlertCounts, AlertPage, AlertStore, AttemptOutcome, Claim, DirectoryStore, EventRecord,
    EventStore, RecordOutcome, SettingsStore, StoreError, UserWrite,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, Delete, DeleteRequest,
    GlobalSecondaryIndex, IndexStatus, KeySchemaElement, KeyType, KeysAndAttributes, Projection,
    ProjectionType, Put, PutRequest, ReturnValue, ReturnValuesOnConditionCheckFailure,
    ScalarAttributeType, TableStatus, TimeToLiveSpecification, TimeToLiveStatus, TransactWriteItem,
    Update, WriteRequest,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

type Item = HashMap<String, AttributeValue>;

// Webhook endpoints and parked messages: their items and access patterns are listed there.
#[path = "dynamodb_webhooks.rs"]
mod webhooks;

// Engagements, findings, risk acceptances and sent reminders: their items, the due lists in
// `GSI1` and their access patterns are listed there.
#[path = "dynamodb_schedule.rs"]
mod schedule;

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
/// The `GSI1` partition of every user who is not an administrator (the alert clean-up lists
/// `ADMINS` and `USERS`).
const USERS: &str = "USERS";
const EVENT_PREFIX: &str = "EVENT#";
const EVENT_SK: &str = "EVENT";
const DELIVERY_PREFIX: &str = "DELIVERY#";
const ALERTS_PREFIX: &str = "ALERTS#";
const ALERT_PREFIX: &str = "ALERT#";
const EVENTS_NOT_ENQUEUED: &str = "EVENTS_NOT_ENQUEUED";

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
const EVENT: &str = "event";
const ACCEPTED_AT: &str = "accepted_at";
const DELIVERY_COUNT: &str = "delivery_count";
const ALERT_COUNT: &str = "alert_count";
const ENQUEUED: &str = "enqueued";
/// The event record's progress: [`RECORDING`] until its alerts and deliveries are written.
const STATUS: &str = "status";
const RECORDING: &str = "recording";
const RECORDED: &str = "recorded";
/// The table's TTL attribute: seconds since the Unix epoch.
const EXPIRES_AT: &str = "expires_at";
const EVENT_ID: &str = "event_id";
const CHANNEL: &str = "channel";
const DESTINATION: &str = "destination";
const ATTEMPTS: &str = "attempts";
const LAST_ERROR: &str = "last_error";
const UPDATED_AT: &str = "updated_at";
/// A delivery's send claim: milliseconds since the Unix epoch until which a sender holds it.
const LEASE_UNTIL: &str = "lease_until";
const TITLE: &str = "title";
const DESCRIPTION: &str = "description";
const URL: &str = "url";
const ICON: &str = "icon";
const SOURCE: &str = "source";
const CREATED_AT: &str = "created_at";
const READ: &str = "read";

/// DynamoDB's limits per BatchGetItem and BatchWriteItem call.
const BATCH_GET_LIMIT: usize = 100;
const BATCH_WRITE_LIMIT: usize = 25;
/// How many batch or single-item calls one operation keeps in flight.
const CONCURRENT_CALLS: usize = 8;
/// How many BatchWriteItem calls recording one event keeps in flight: 128 × 25 = 3,200
/// records go out together (one round trip), so the 2,003 of a 1,000-member event take as
/// many round trips as the 23 of a 10-member one. Past that, one more round trip per 3,200
/// records; each connection the pool has to open costs a TLS handshake once per Lambda
/// instance, on its fraction of a core.
const WRITE_BATCHES_IN_FLIGHT: usize = 128;
/// Items read per page when a filter may discard many (unread alerts).
const FILTERED_PAGE: usize = 100;
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

    fn event(id: &str) -> Self {
        Self::new(event_pk(id), EVENT_SK)
    }

    fn delivery(event: &str, delivery: &str) -> Self {
        Self::new(event_pk(event), format!("{DELIVERY_PREFIX}{delivery}"))
    }

    fn alert(user: &str, alert: &str) -> Self {
        Self::new(alerts_pk(user), format!("{ALERT_PREFIX}{alert}"))
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

fn event_pk(id: &str) -> String {
    format!("{EVENT_PREFIX}{id}")
}

fn alerts_pk(user: &str) -> String {
    format!("{ALERTS_PREFIX}{user}")
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

fn n(value: impl fmt::Display) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn number<T: std::str::FromStr>(item: &Item, attribute: &str) -> Result<T, StoreError> {
    match item.get(attribute) {
        Some(AttributeValue::N(value)) => value.parse().map_err(|_| {
            StoreError::Backend(format!(
                "DynamoDB item has an unreadable number `{attribute}` = {value}"
            ))
        }),
        _ => Err(StoreError::Backend(format!(
            "DynamoDB item lacks the number attribute `{attribute}`"
        ))),
    }
}

/// When an event accepted at `accepted_at_ms` and its deliveries expire (the TTL attribute),
/// in seconds since the Unix epoch.
fn event_expiry(accepted_at_ms: u64) -> u64 {
    accepted_at_ms / 1000 + crate::intake::EVENT_RETENTION_DAYS * 86_400
}

/// The event item, with the sparse `GSI1` entry while it is not enqueued.
fn event_item(record: &EventRecord, status: &str) -> Item {
    let id = record.event.id.as_str();
    let mut item = Key::event(id).to_item();
    item.insert(EVENT.to_owned(), s(record.event.to_stored()));
    item.insert(ACCEPTED_AT.to_owned(), n(record.accepted_at));
    item.insert(DELIVERY_COUNT.to_owned(), n(record.delivery_count));
    item.insert(ALERT_COUNT.to_owned(), n(record.alert_count));
    item.insert(ENQUEUED.to_owned(), AttributeValue::Bool(record.enqueued));
    item.insert(STATUS.to_owned(), s(status));
    item.insert(EXPIRES_AT.to_owned(), n(event_expiry(record.accepted_at)));
    if !record.enqueued {
        item.insert(GSI1PK.to_owned(), s(EVENTS_NOT_ENQUEUED));
        item.insert(
            GSI1SK.to_owned(),
            s(format!("{:013}#{id}", record.accepted_at)),
        );
    }
    item
}

fn record_from_item(item: &Item) -> Result<EventRecord, StoreError> {
    let event = Event::from_stored(&string(item, EVENT)?)
        .map_err(|e| StoreError::Backend(format!("unreadable stored event: {e}")))?;
    Ok(EventRecord {
        event,
        accepted_at: number(item, ACCEPTED_AT)?,
        delivery_count: number(item, DELIVERY_COUNT)?,
        alert_count: number(item, ALERT_COUNT)?,
        enqueued: boolean(item, ENQUEUED)?,
        complete: optional_string(item, STATUS).as_deref() != Some(RECORDING),
    })
}

fn delivery_item(event: &str, delivery: &Delivery, expires_at: u64) -> Item {
    let mut item = Key::delivery(event, delivery.id.as_str()).to_item();
    item.insert(ID.to_owned(), s(delivery.id.as_str()));
    item.insert(EVENT_ID.to_owned(), s(event));
    item.insert(CHANNEL.to_owned(), s(delivery.channel.name()));
    item.insert(DESTINATION.to_owned(), s(delivery.destination.key()));
    item.insert(STATUS.to_owned(), s(delivery.status.name()));
    item.insert(ATTEMPTS.to_owned(), n(delivery.attempts));
    if let Some(error) = &delivery.last_error {
        item.insert(LAST_ERROR.to_owned(), s(error));
    }
    item.insert(UPDATED_AT.to_owned(), n(delivery.updated_at));
    item.insert(EXPIRES_AT.to_owned(), n(expires_at));
    item
}

fn delivery_from_item(item: &Item) -> Result<Delivery, StoreError> {
    let id = string(item, ID)?;
    let unreadable = |what: &str, value: &str| {
        StoreError::Backend(format!("delivery {id} has an unreadable {what} `{value}`"))
    };
    let (channel, destination, status) = (
        string(item, CHANNEL)?,
        string(item, DESTINATION)?,
        string(item, STATUS)?,
    );
    Ok(Delivery {
        channel: Channel::from_name(&channel).ok_or_else(|| unreadable("channel", &channel))?,
        destination: Destination::from_key(&destination)
            .ok_or_else(|| unreadable("destination", &destination))?,
        status: DeliveryStatus::from_name(&status).ok_or_else(|| unreadable("status", &status))?,
        event_id: EventId(string(item, EVENT_ID)?),
        attempts: number(item, ATTEMPTS)?,
        last_error: optional_string(item, LAST_ERROR),
        updated_at: number(item, UPDATED_AT)?,
        id: DeliveryId::from_stored(id),
    })
}

fn alert_item(alert: &Alert) -> Item {
    let mut item = Key::alert(alert.username.as_str(), &alert.id).to_item();
    item.insert(ID.to_owned(), s(&alert.id));
    item.insert(USERNAME.to_owned(), s(alert.username.as_str()));
    item.insert(EVENT_ID.to_owned(), s(alert.event_id.as_str()));
    item.insert(TITLE.to_owned(), s(&alert.title));
    item.insert(DESCRIPTION.to_owned(), s(&alert.description));
    item.insert(URL.to_owned(), s(&alert.url));
    item.insert(ICON.to_owned(), s(&alert.icon));
    item.insert(SOURCE.to_owned(), s(&alert.source));
    item.insert(CREATED_AT.to_owned(), n(alert.created_at));
    item.insert(READ.to_owned(), AttributeValue::Bool(alert.read));
    item.insert(
        EXPIRES_AT.to_owned(),
        n(alert.created_at / 1000 + crate::domain::alert::ALERT_RETENTION_DAYS * 86_400),
    );
    item
}

fn alert_from_item(item: &Item) -> Result<Alert, StoreError> {
    Ok(Alert {
        id: string(item, ID)?,
        username: Username(string(item, USERNAME)?),
        event_id: EventId(string(item, EVENT_ID)?),
        title: string(item, TITLE)?,
        description: string(item, DESCRIPTION)?,
        url: string(item, URL)?,
        icon: string(item, ICON)?,
        source: string(item, SOURCE)?,
        created_at: number(item, CREATED_AT)?,
        read: boolean(item, READ)?,
    })
}

/// Whether a failed call failed its condition expression.
fn condition_failed<E, R>(error: &SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    error
        .as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "ConditionalCheckFailedException")
}

/// Waits for one of `calls` to finish, passing on its error.
async fn join_next<T: 'static>(
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
    /// attributes, TTL on `expires_at`) and waits until it and its index are ACTIVE. An
    /// existing table is fine.
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
                    return self.enable_time_to_live().await;
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

    /// Turns on TTL deletion by [`EXPIRES_AT`] (events and deliveries), unless it is on.
    async fn enable_time_to_live(&self) -> Result<(), StoreError> {
        self.count();
        let described = self
            .client
            .describe_time_to_live()
            .table_name(self.table.as_ref())
            .send()
            .await
            .map_err(backend("DescribeTimeToLive"))?;
        let status = described
            .time_to_live_description()
            .and_then(|d| d.time_to_live_status());
        if matches!(
            status,
            Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
        ) {
            return Ok(());
        }
        let specification = TimeToLiveSpecification::builder()
            .attribute_name(EXPIRES_AT)
            .enabled(true)
            .build()
            .map_err(build_error)?;
        self.count();
        self.client
            .update_time_to_live()
            .table_name(self.table.as_ref())
            .time_to_live_specification(specification)
            .send()
            .await
            .map_err(backend("UpdateTimeToLive"))?;
        Ok(())
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
        self.query_roster(ADMINS, projection).await
    }

    /// The users in one `GSI1` roster partition (`ADMINS` or `USERS`), eventually consistent,
    /// all pages; `projection` as above.
    async fn query_roster(
        &self,
        roster: &str,
        projection: Option<&[&str]>,
    ) -> Result<Vec<Item>, StoreError> {
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
                .key_condition_expression(format!("#{GSI1PK} = :roster"))
                .set_expression_attribute_names(Some(attribute_names.clone()))
                .expression_attribute_values(":roster", s(roster))
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
    async fn batch_put(&self, items: Vec<Item>) -> Result<(), StoreError> {
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
    async fn batch_write(&self, requests: Vec<WriteRequest>) -> Result<(), StoreError> {
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

    async fn batch_write_chunk(&self, mut requests: Vec<WriteRequest>) -> Result<(), StoreError> {
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
        // Administrators in their own `GSI1` partition (the audience reads it), everyone else
        // in `USERS` (the alert clean-up lists both).
        set.push(format!("#{GSI1PK} = :roster, #{GSI1SK} = :user_key"));
        values.insert(
            ":roster".to_owned(),
            s(if profile.is_admin { ADMINS } else { USERS }),
        );
        values.insert(":user_key".to_owned(), s(user_pk(name)));
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

    async fn set_slack_user_id(
        &self,
        user: &Username,
        slack_user_id: &str,
    ) -> Result<bool, StoreError> {
        self.count();
        let result = self
            .client
            .update_item()
            .table_name(self.table.as_ref())
            .set_key(Some(Key::user(user.as_str()).to_item()))
            .update_expression(format!("SET #{SLACK_USER_ID} = :id"))
            .condition_expression(EXISTS)
            .set_expression_attribute_names(Some(names(&[PK, SLACK_USER_ID])))
            .expression_attribute_values(":id", s(slack_user_id))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(backend("UpdateItem")(e)),
        }
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

    async fn administrator_audience(&self) -> Result<Vec<AudienceMember>, StoreError> {
        let candidates = self
            .query_admins(Some(&[USERNAME]))
            .await?
            .iter()
            .map(|item| string(item, USERNAME).map(|name| Key::user(&name)))
            .collect::<Result<BTreeSet<Key>, StoreError>>()?;
        let mut members = Vec::with_capacity(candidates.len());
        for item in self.batch_get(candidates).await? {
            let member = audience_member(&item)?;
            // The index is eventually consistent; the (consistent) user item decides.
            if member.user.profile.is_admin {
                members.push(member);
            }
        }
        members.sort_by(|a, b| a.user.username.cmp(&b.user.username));
        Ok(members)
    }

    async fn recipients(&self, users: &[Username]) -> Result<Vec<AudienceMember>, StoreError> {
        let keys: BTreeSet<Key> = users.iter().map(|u| Key::user(u.as_str())).collect();
        let mut found = HashMap::with_capacity(keys.len());
        for item in self.batch_get(keys).await? {
            let member = audience_member(&item)?;
            found.insert(member.user.username.clone(), member);
        }
        Ok(users
            .iter()
            .filter_map(|user| found.get(user).cloned())
            .collect())
    }
}

/// A user item as an audience member with their personal settings (no product settings).
fn audience_member(item: &Item) -> Result<AudienceMember, StoreError> {
    Ok(AudienceMember {
        user: user_from_item(item)?,
        personal: parse_settings(&string(item, PERSONAL)?)?,
        product_settings: None,
    })
}

impl DynamoDbStore {
    /// `SET status = recorded` on an event item that must exist.
    async fn finish_recording(&self, id: &str) -> Result<(), StoreError> {
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

    /// `SET read = true` on one alert if it exists and is unread; whether it changed.
    async fn mark_alert_read(&self, key: Key) -> Result<bool, StoreError> {
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
    async fn mark_alerts_read_at(&self, keys: Vec<Key>) -> Result<u64, StoreError> {
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
    async fn add_alert(&self, alert: &Alert) -> Result<bool, StoreError> {
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
    async fn alert_keys(&self, user: &Username) -> Result<Vec<(Key, bool)>, StoreError> {
        self.query_partition(&alerts_pk(user.as_str()), None, Some(&[PK, SK, READ]))
            .await?
            .iter()
            .map(|item| Ok((Key::from_item(item)?, boolean(item, READ)?)))
            .collect()
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

    async fn events_not_enqueued(&self, limit: usize) -> Result<Vec<EventId>, StoreError> {
        let mut ids = Vec::new();
        let mut start = None;
        while ids.len() < limit {
            let page_limit = i32::try_from(limit - ids.len()).unwrap_or(i32::MAX);
            self.count();
            let page = self
                .client
                .query()
                .table_name(self.table.as_ref())
                .index_name(GSI1)
                .key_condition_expression(format!("#{GSI1PK} = :pending"))
                .set_expression_attribute_names(Some(names(&[GSI1PK, PK])))
                .expression_attribute_values(":pending", s(EVENTS_NOT_ENQUEUED))
                .projection_expression(format!("#{PK}"))
                .limit(page_limit)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(backend("Query GSI1 (events not enqueued)"))?;
            for item in page.items.unwrap_or_default() {
                let pk = string(&item, PK)?;
                let id = pk.strip_prefix(EVENT_PREFIX).ok_or_else(|| {
                    StoreError::Backend(format!("unexpected key `{pk}` among events not enqueued"))
                })?;
                ids.push(EventId(id.to_owned()));
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        ids.truncate(limit);
        Ok(ids)
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
        let mut update = format!(
            "SET #{STATUS} = :status, #{ATTEMPTS} = #{ATTEMPTS} + :one, #{UPDATED_AT} = :now"
        );
        let mut values = HashMap::from([
            (":status".to_owned(), s(outcome.status().name())),
            (":one".to_owned(), n(1)),
            (":now".to_owned(), n(now_ms)),
            (":sent".to_owned(), s(DeliveryStatus::Sent.name())),
            (":failed".to_owned(), s(DeliveryStatus::Failed.name())),
            (":dead".to_owned(), s(DeliveryStatus::Dead.name())),
        ]);
        // The attempt ends the send claim.
        match outcome.error() {
            Some(error) => {
                update.push_str(&format!(", #{LAST_ERROR} = :error REMOVE #{LEASE_UNTIL}"));
                values.insert(":error".to_owned(), s(error));
            }
            None => update.push_str(&format!(" REMOVE #{LAST_ERROR}, #{LEASE_UNTIL}")),
        }
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
            ])))
            .set_expression_attribute_values(Some(values))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(output) => output
                .attributes
                .map(|item| delivery_from_item(&item))
                .transpose(),
            // Final already, or unknown (never recorded, or expired with its event).
            Err(e) if condition_failed(&e) => Ok(None),
            Err(e) => Err(backend("UpdateItem (delivery attempt)")(e)),
        }
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
