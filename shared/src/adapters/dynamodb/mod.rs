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
//! | webhook endpoint (`{w}` its id) | `WEBHOOKS` | `WEBHOOK#{w}` | | see `webhooks.rs`, with its access patterns |
//! | parked webhook message | `WEBHOOK_PARKED#{w}` | `PARKED#{t}#{d}` (`{t}` the time parked) | | see `webhooks.rs` |
//! | engagement, finding, risk acceptance (`{i}` its id) | `ENGAGEMENT#{i}`, `FINDING#{i}`, `RISK_ACCEPTANCE#{i}` | `ENGAGEMENT`, ... | `DUE#{list}` / `{date}#{i}` while due for a check | see `schedule.rs`, with its access patterns |
//! | reminder sent (`{k}` its key) | `REMINDER#{k}` | `REMINDER` | | see `schedule.rs` |
//! | an id a sync wrote | `SYNCED#{source}#{kind}#{shard}` | the id | | see `ledger.rs` |
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
//!
//! Files, one per port with what they all share beside them: `keys.rs` (key attributes,
//! prefixes, [`Key`](keys::Key)), `attributes.rs` (attribute names, value codecs), `items.rs`
//! (domain types to items and back), `requests.rs`
//! (reads, queries, batches, transactions, retries), `table.rs` (creating the table),
//! `settings.rs`, `directory.rs`, `events.rs`, `alerts.rs`, `webhooks.rs` and `schedule.rs`
//! (the ports, each with its own inherent helpers).

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

type Item = HashMap<String, AttributeValue>;

mod alerts;
mod attributes;
mod directory;
mod events;
mod items;
mod keys;
mod ledger;
mod requests;
mod schedule;
mod settings;
mod table;
mod webhooks;

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
}
