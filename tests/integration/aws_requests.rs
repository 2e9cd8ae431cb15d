//! AWS requests per event: one `scan_added` event through `herald_shared::intake::accept_event`
//! against DynamoDB Local (a fresh table, found through `HERALD_TEST_DYNAMODB_URL`) and moto's
//! SQS (four fresh queues, through `HERALD_TEST_MOTO_URL`), for products of 10, 100 and 1,000
//! members. Without either variable the test fails, naming `scripts/services.sh start`.
//!
//! The counts are asserted exactly against the formulas in the adapters' headers
//! (`shared/src/adapters/dynamodb/mod.rs`, `shared/src/adapters/sqs.rs`): requests grow with
//! batches of members (100 per read, 25 per write, 10 per message batch), never one per
//! member. `bench/aws-requests.sh` runs it and prints the table.
//!
//! The event's clients reach the emulators through a loopback proxy that hands on every answer
//! [`ANSWER_LATENCY`] late, as the network to AWS's endpoints would; the round trips counted
//! are then those the code waits through, whatever the emulators' speed. The times printed are
//! the emulators' (that latency included), not AWS's: moto recounts a queue's messages for
//! every message sent, so its `SendMessageBatch` slows down as a queue fills (seconds for
//! 1,000 mails).

use crate::conformance::{Harness, TestResult};
use aws_sdk_dynamodb::config::interceptors::{
    BeforeDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_sqs::types::QueueAttributeName;
use aws_smithy_types::config_bag::{Storable, StoreReplace};
use herald_shared::adapters::{ChannelQueues, DynamoDbStore, SqsQueue};
use herald_shared::domain::DeliveryMessage;
use herald_shared::domain::{
    Channel, Event, EventType, NotificationSettings, Product, ProductType, ResourceId,
    SystemSettings, UserProfile, Username,
};
use herald_shared::intake::accept_event;
use herald_shared::ports::{DeliveryQueue, DirectoryStore, QueueError, SettingsStore, StoreError};
use herald_tests::{create_channel_queues, moto_sqs};
use herald_tests::{dynamodb_local, emulator_config, emulator_url};
use serde_json::json;
use std::sync::{Arc, Mutex};

use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// Product sizes measured.
const MEMBER_COUNTS: [u64; 3] = [10, 100, 1_000];
/// Administrators: not product members, in every product's audience all the same.
const ADMINISTRATORS: u64 = 2;
/// Users seeded at once (each is three sequential writes).
const SEED_CONCURRENCY: usize = 32;

// The adapters' batch sizes and the Query page size, as their headers document them.
const BATCH_GET_KEYS: u64 = 100;
const BATCH_WRITE_ITEMS: u64 = 25;
const SEND_BATCH_ENTRIES: u64 = 10;
const QUERY_PAGE_BYTES: usize = 1 << 20;
/// Generous size of a membership item plus a per-product settings item without the settings
/// body (keys, `username`, link keys: about 200 bytes for the names used here).
const MEMBER_ITEMS_OVERHEAD: usize = 384;

/// Added to every answer the event's clients get: longer than the client takes to send one
/// step's requests (up to 15 ms for the 81 batched writes of a 1,000-member event, built
/// optimized), so requests sent together are never taken for a chain because the emulator on
/// loopback answered the first before the last had left.
const ANSWER_LATENCY: Duration = Duration::from_millis(50);

const PRODUCT_TYPE_ID: &str = "7";
const PRODUCT_ID: &str = "42";
const SLACK_CHANNEL: &str = "#appsec";

/// What one product size measured.
#[derive(Debug, Clone, Copy)]
struct Measurement {
    members: u64,
    alerts: u64,
    deliveries: u64,
    dynamodb: u64,
    sqs: u64,
    duplicate_dynamodb: u64,
    duplicate_sqs: u64,
    /// Requests the event waited through one after another (DynamoDB and SQS together).
    round_trips: u64,
    seeding: Duration,
    intake: Duration,
    /// Of `intake`, the time spent in `enqueue`.
    enqueue: Duration,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn given_products_of_10_100_and_1000_members_then_requests_grow_by_batches_not_by_member()
-> TestResult {
    let sqs = moto_sqs().await;
    let mut measured = Vec::new();
    for members in MEMBER_COUNTS {
        measured.push(measure(&sqs, members).await?);
    }

    println!("\n{}", table(&measured));
    println!(
        "members: the audience, N product members and {ADMINISTRATORS} administrators; \
         duplicate requests: DynamoDB + SQS for the same event posted again; every answer \
         {} ms late\n",
        ANSWER_LATENCY.as_millis()
    );
    for m in &measured {
        println!(
            "{} members: seeded in {:.1} s; event accepted in {} ms, {} ms of it enqueueing",
            m.members,
            m.seeding.as_secs_f64(),
            m.intake.as_millis(),
            m.enqueue.as_millis(),
        );
    }

    // Not one request per member: each extra member costs a fraction of a request (its alert
    // and its mail are two of the 25 items of a BatchWriteItem, one of the 100 keys of a
    // BatchGetItem, one of the 10 entries of a SendMessageBatch).
    let (small, large) = (measured[0], measured[measured.len() - 1]);
    let added_members = large.members - small.members;
    assert!(
        (large.dynamodb - small.dynamodb) * 10 < added_members,
        "DynamoDB: {} more requests for {added_members} more members is not under 1/10 a member",
        large.dynamodb - small.dynamodb
    );
    assert!(
        (large.sqs - small.sqs) * 9 < added_members,
        "SQS: {} more calls for {added_members} more members is not under 1/9 a member",
        large.sqs - small.sqs
    );
    assert!(large.dynamodb < large.members / 5);
    assert!(large.sqs < large.members / 5);
    Ok(())
}

/// Seeds a product of `members` members on a fresh table and fresh queues, posts one
/// `scan_added` event on it, then the same event again, and checks every count.
async fn measure(
    sqs: &aws_sdk_sqs::Client,
    members: u64,
) -> Result<Measurement, Box<dyn std::error::Error>> {
    let harness = Harness::dynamodb().await?;
    let Harness::DynamoDb { table, .. } = &harness else {
        return Err("Harness::dynamodb gave another kind of store".into());
    };
    let dynamodb_url = emulator_url("HERALD_TEST_DYNAMODB_URL");
    let started = Instant::now();
    seed(
        &DynamoDbStore::new(dynamodb_local().await, table.clone()),
        members,
    )
    .await?;
    let seeding = started.elapsed();

    // The same table and fresh queues, through clients that time every request on the wire,
    // over a network with latency.
    let wire = Wire::default();
    let dynamodb = aws_sdk_dynamodb::config::Builder::from(
        &emulator_config(&latent_proxy(&dynamodb_url, ANSWER_LATENCY).await?).await,
    )
    .interceptor(wire.clone())
    .build();
    let store = DynamoDbStore::new(aws_sdk_dynamodb::Client::from_conf(dynamodb), table.clone());
    let queues = create_channel_queues(sqs, &format!("requests-{members}")).await?;
    let moto_url = emulator_url("HERALD_TEST_MOTO_URL");
    let timed_sqs = aws_sdk_sqs::config::Builder::from(
        &emulator_config(&latent_proxy(&moto_url, ANSWER_LATENCY).await?).await,
    )
    .interceptor(wire.clone())
    .build();
    let queue = TimedQueue {
        inner: SqsQueue::new(aws_sdk_sqs::Client::from_conf(timed_sqs), queues.clone()),
        spent: Mutex::new(Duration::ZERO),
    };

    // The first time.
    let event = scan_added(members)?;
    let (dynamodb_before, sqs_before) = (store.request_count(), queue.inner.request_count());
    wire.take();
    let started = Instant::now();
    let answer = accept_event(&store, &queue, event.clone(), now_ms()).await?;
    let intake = started.elapsed();
    let round_trips = longest_chain(&wire.take());
    let dynamodb = store.request_count() - dynamodb_before;
    let sqs_calls = queue.inner.request_count() - sqs_before;
    let enqueue = queue.spent();

    // The same event again.
    let (dynamodb_before, sqs_before) = (store.request_count(), queue.inner.request_count());
    let repeat = accept_event(&store, &queue, event, now_ms()).await?;
    let duplicate_dynamodb = store.request_count() - dynamodb_before;
    let duplicate_sqs = queue.inner.request_count() - sqs_before;

    // Every member and administrator gets an alert (the administrators from the system
    // document and their own settings, once); every member a mail; the system one Slack post.
    let (alerts, mails, slack_posts) = (members + ADMINISTRATORS, members, 1);
    let deliveries = mails + slack_posts;
    assert_eq!(
        (u64::from(answer.alerts), u64::from(answer.deliveries)),
        (alerts, deliveries),
        "{members} members: alerts and deliveries"
    );
    assert!(
        repeat.replayed && !answer.replayed,
        "the repeat is marked replayed"
    );
    assert_eq!(
        (&repeat.event_id, repeat.deliveries, repeat.alerts),
        (&answer.event_id, answer.deliveries, answer.alerts),
        "a duplicate answers as the first time"
    );

    assert_eq!(
        sqs_calls,
        mails.div_ceil(SEND_BATCH_ENTRIES) + slack_posts.div_ceil(SEND_BATCH_ENTRIES),
        "{members} members: SendMessageBatch calls, ⌈mails/10⌉ + ⌈slack/10⌉"
    );
    assert_eq!(
        (
            queue_depth(sqs, &queues.mail).await?,
            queue_depth(sqs, &queues.slack).await?,
            queue_depth(sqs, &queues.msteams).await?,
            queue_depth(sqs, &queues.webhooks).await?,
        ),
        (mails, slack_posts, 0, 0),
        "{members} members: messages on the mail, slack, msteams and webhooks queues"
    );

    assert_product_partition_is_one_page(members);
    let expected = expected_dynamodb_requests(members + ADMINISTRATORS, alerts + deliveries);
    assert_eq!(
        dynamodb,
        expected.total,
        "{members} members: DynamoDB requests = event lookup {} + system scope {} + \
         audience {} + record {} + mark enqueued {}",
        expected.event_lookup,
        expected.system_scope,
        expected.audience,
        expected.record,
        expected.mark_enqueued,
    );
    assert_eq!(
        (duplicate_dynamodb, duplicate_sqs),
        (1, 0),
        "{members} members: a duplicate is one GetItem of the event and no SQS call"
    );

    delete_queues(sqs, &queues).await?;
    harness.finish().await?;
    Ok(Measurement {
        members,
        alerts,
        deliveries,
        dynamodb,
        sqs: sqs_calls,
        duplicate_dynamodb,
        duplicate_sqs,
        round_trips,
        seeding,
        intake,
        enqueue,
    })
}

/// The DynamoDB requests of a first `accept_event` of a product event, term by term, from
/// `intake.rs` and the access-pattern table of `dynamodb/mod.rs`.
#[derive(Debug)]
struct ExpectedDynamoDb {
    /// GetItem `EVENT#{e}`: not seen before.
    event_lookup: u64,
    /// GetItem system settings, GetItem system document, Query `GSI1` administrators
    /// (concurrent).
    system_scope: u64,
    /// Query the product partition (one page), Query `GSI1` administrators' names, Query the
    /// type's members, BatchGetItem ⌈candidates/100⌉.
    audience: u64,
    /// PutItem the event, BatchWriteItem ⌈(alerts + deliveries)/25⌉, UpdateItem `recorded`.
    record: u64,
    /// UpdateItem `enqueued`.
    mark_enqueued: u64,
    total: u64,
}

fn expected_dynamodb_requests(candidates: u64, written: u64) -> ExpectedDynamoDb {
    let (event_lookup, system_scope, mark_enqueued) = (1, 3, 1);
    let audience = 3 + candidates.div_ceil(BATCH_GET_KEYS);
    let record = 2 + written.div_ceil(BATCH_WRITE_ITEMS);
    ExpectedDynamoDb {
        event_lookup,
        system_scope,
        audience,
        record,
        mark_enqueued,
        total: event_lookup + system_scope + audience + record + mark_enqueued,
    }
}

/// The audience reads the product's partition (the product, its memberships and per-product
/// settings) with one Query only while it fits in one 1 MB page; the formula above assumes
/// it does, so check it with a generous size bound.
fn assert_product_partition_is_one_page(members: u64) {
    let settings_body = product_settings().to_stored().len();
    let bound = usize::try_from(members).unwrap_or(usize::MAX)
        * (settings_body + MEMBER_ITEMS_OVERHEAD)
        + MEMBER_ITEMS_OVERHEAD;
    assert!(
        bound < QUERY_PAGE_BYTES,
        "the product partition of {members} members may exceed one Query page \
         ({bound} bytes): count its pages in the expected requests"
    );
}

fn table(measured: &[Measurement]) -> String {
    let mut table = String::from(
        "| N | members | alerts | deliveries | DynamoDB requests | SQS calls | duplicate requests | round trips |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for m in measured {
        table.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            m.members,
            m.members + ADMINISTRATORS,
            m.alerts,
            m.deliveries,
            m.dynamodb,
            m.sqs,
            m.duplicate_dynamodb + m.duplicate_sqs,
            m.round_trips,
        ));
    }
    table
}

// ---------------------------------------------------------------------------------------
// Seeding, through the store port

fn id(value: &str) -> Result<ResourceId, StoreError> {
    ResourceId::parse("id", value).map_err(|e| StoreError::Backend(e.to_string()))
}

fn username(name: &str) -> Result<Username, StoreError> {
    Username::parse("username", name).map_err(|e| StoreError::Backend(e.to_string()))
}

fn profile(name: &str, is_admin: bool) -> UserProfile {
    UserProfile {
        email: Some(format!("{name}@example.com")),
        first_name: name.to_owned(),
        last_name: "Tester".to_owned(),
        is_admin,
        ..UserProfile::default()
    }
}

/// Every user's personal settings (copied from the template `put_user` is given).
fn personal_settings() -> NotificationSettings {
    NotificationSettings::defaults().with(EventType::ScanAdded, &[Channel::Alert])
}

/// Every member's settings for the product.
fn product_settings() -> NotificationSettings {
    NotificationSettings::defaults().with(EventType::ScanAdded, &[Channel::Alert, Channel::Mail])
}

/// Mail and Slack on, a Slack channel, the system document sending `scan_added` to `alert`
/// and `slack`; a product type and product; `members` members with their settings; the
/// administrators.
async fn seed(store: &DynamoDbStore, members: u64) -> Result<(), StoreError> {
    store
        .put_system_settings(&SystemSettings {
            enable_mail_notifications: true,
            enable_slack_notifications: true,
            slack_channel: SLACK_CHANNEL.to_owned(),
            ..SystemSettings::default()
        })
        .await?;
    store
        .put_system_notifications(
            &NotificationSettings::defaults()
                .with(EventType::ScanAdded, &[Channel::Alert, Channel::Slack]),
        )
        .await?;
    store
        .put_product_type(&ProductType {
            id: id(PRODUCT_TYPE_ID)?,
            name: "Web applications".to_owned(),
        })
        .await?;
    store
        .put_product(&Product {
            id: id(PRODUCT_ID)?,
            name: "Storefront".to_owned(),
            product_type_id: id(PRODUCT_TYPE_ID)?,
            disable_sla_breach_notifications: false,
        })
        .await?;
    for admin in 0..ADMINISTRATORS {
        let name = format!("admin-{admin}");
        store
            .put_user(
                &username(&name)?,
                &profile(&name, true),
                &personal_settings(),
            )
            .await?;
    }

    let mut seeding = JoinSet::new();
    for member in 0..members {
        if seeding.len() >= SEED_CONCURRENCY {
            join_seeding(&mut seeding).await?;
        }
        let store = store.clone();
        seeding.spawn(async move { seed_member(&store, member).await });
    }
    while !seeding.is_empty() {
        join_seeding(&mut seeding).await?;
    }
    Ok(())
}

async fn join_seeding(seeding: &mut JoinSet<Result<(), StoreError>>) -> Result<(), StoreError> {
    match seeding.join_next().await {
        Some(joined) => joined.map_err(|e| StoreError::Backend(format!("seeding task: {e}")))?,
        None => Ok(()),
    }
}

/// A user with an email and personal settings, a member of the product, with settings for
/// it.
async fn seed_member(store: &DynamoDbStore, member: u64) -> Result<(), StoreError> {
    let name = format!("member-{member:04}");
    let user = username(&name)?;
    let product = id(PRODUCT_ID)?;
    store
        .put_user(&user, &profile(&name, false), &personal_settings())
        .await?;
    store.put_product_member(&product, &user).await?;
    store
        .put_product_notifications(&user, &product, &product_settings())
        .await
}

fn scan_added(members: u64) -> Result<Event, Box<dyn std::error::Error>> {
    let body = json!({
        "id": format!("scan-{members}"),
        "type": "scan_added",
        "title": "Scan added: 12 findings",
        "product_id": PRODUCT_ID,
    });
    Ok(Event::from_request(&body, || "unused".to_owned())?)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------
// SQS on moto

/// `SqsQueue`, timing its `enqueue` calls (to tell SQS time from DynamoDB time).
struct TimedQueue {
    inner: SqsQueue,
    spent: Mutex<Duration>,
}

impl TimedQueue {
    fn spent(&self) -> Duration {
        self.spent.lock().map_or(Duration::ZERO, |spent| *spent)
    }
}

#[async_trait::async_trait]
impl DeliveryQueue for TimedQueue {
    async fn enqueue(&self, messages: &[DeliveryMessage]) -> Result<(), QueueError> {
        let started = Instant::now();
        let result = self.inner.enqueue(messages).await;
        if let Ok(mut spent) = self.spent.lock() {
            *spent += started.elapsed();
        }
        result
    }
}

async fn delete_queues(
    client: &aws_sdk_sqs::Client,
    queues: &ChannelQueues,
) -> Result<(), Box<dyn std::error::Error>> {
    for url in [
        &queues.mail,
        &queues.slack,
        &queues.msteams,
        &queues.webhooks,
    ] {
        client.delete_queue().queue_url(url).send().await?;
    }
    Ok(())
}

/// Messages waiting on `queue_url`.
async fn queue_depth(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
) -> Result<u64, Box<dyn std::error::Error>> {
    let attributes = client
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await?
        .attributes
        .unwrap_or_default();
    let depth = attributes
        .get(&QueueAttributeName::ApproximateNumberOfMessages)
        .ok_or("GetQueueAttributes returned no ApproximateNumberOfMessages")?;
    Ok(depth.parse()?)
}

#[test]
fn expected_requests_follow_the_documented_formula() {
    // GIVEN 1,000 members and 2 administrators, 1,002 alerts and 1,001 deliveries
    let expected = expected_dynamodb_requests(1_002, 2_003);
    // THEN 1 + 3 + (3 + ⌈1002/100⌉) + (2 + ⌈2003/25⌉) + 1
    assert_eq!(expected.audience, 3 + 11);
    assert_eq!(expected.record, 2 + 81);
    assert_eq!(expected.total, 1 + 3 + 14 + 83 + 1);
}

// ---------------------------------------------------------------------------------------
// Latency: a loopback proxy that hands on every answer late

/// Starts a TCP proxy on loopback in front of the emulator at `url` (`http://host:port`) that
/// passes requests on at once and every byte of the answers `latency` after it came; returns
/// the proxy's URL. It serves until the test's runtime ends.
async fn latent_proxy(url: &str, latency: Duration) -> Result<String, Box<dyn std::error::Error>> {
    let upstream = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("emulator URL {url} is not http://host:port"))?
        .trim_end_matches('/')
        .to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let upstream = upstream.clone();
            tokio::spawn(async move {
                if let Ok(server) = TcpStream::connect(&upstream).await {
                    relay(client, server, latency).await;
                }
            });
        }
    });
    Ok(format!("http://{address}"))
}

/// Relays one connection until the server closes it: requests straight on, answers `latency`
/// late (each chunk as it came, so a long answer is late once, not once a chunk).
async fn relay(client: TcpStream, server: TcpStream, latency: Duration) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let requests =
        tokio::spawn(async move { tokio::io::copy(&mut client_read, &mut server_write).await });
    let (late, mut due) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let answers = tokio::spawn(async move {
        while let Some((at, bytes)) = due.recv().await {
            tokio::time::sleep_until(at).await;
            if client_write.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = client_write.shutdown().await;
    });
    let mut buffer = vec![0; 64 * 1024];
    while let Ok(read @ 1..) = server_read.read(&mut buffer).await {
        let at = tokio::time::Instant::now() + latency;
        if late.send((at, buffer[..read].to_vec())).is_err() {
            break;
        }
    }
    drop(late);
    let _ = answers.await;
    requests.abort();
}

#[tokio::test]
async fn the_latent_proxy_passes_requests_on_and_answers_late() -> TestResult {
    // GIVEN an echo server behind the proxy, with 100 ms of latency
    let echo = TcpListener::bind("127.0.0.1:0").await?;
    let echo_url = format!("http://{}", echo.local_addr()?);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = echo.accept().await {
            tokio::spawn(async move {
                let mut buffer = [0; 1024];
                while let Ok(read @ 1..) = stream.read(&mut buffer).await {
                    if stream.write_all(&buffer[..read]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let proxy = latent_proxy(&echo_url, Duration::from_millis(100)).await?;
    let mut client = TcpStream::connect(proxy.trim_start_matches("http://")).await?;

    // WHEN two requests are sent, one after the other's answer
    for request in [&b"first"[..], &b"second"[..]] {
        let sent = Instant::now();
        client.write_all(request).await?;
        let mut answer = vec![0; request.len()];
        client.read_exact(&mut answer).await?;

        // THEN each answer is the server's, at least the latency late
        assert_eq!(answer, request);
        assert!(
            sent.elapsed() >= Duration::from_millis(100),
            "{:?}",
            sent.elapsed()
        );
    }
    assert!(
        latent_proxy("https://127.0.0.1:1", Duration::ZERO)
            .await
            .is_err(),
        "only http:// emulators are proxied"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Round trips: each request's time on the wire, from an interceptor on both SDK clients

/// When a request went out, kept in the request's own config bag until its answer comes.
#[derive(Debug, Clone)]
struct SentAt(Instant);

impl Storable for SentAt {
    type Storer = StoreReplace<Self>;
}

/// Every request's span on the wire (sent → answer received), DynamoDB and SQS alike.
#[derive(Debug, Clone, Default)]
struct Wire(Arc<Mutex<Vec<(Instant, Instant)>>>);

impl Wire {
    /// The spans recorded since the last call.
    fn take(&self) -> Vec<(Instant, Instant)> {
        self.0
            .lock()
            .map(|mut spans| std::mem::take(&mut *spans))
            .unwrap_or_default()
    }
}

impl Intercept for Wire {
    fn name(&self) -> &'static str {
        "Wire"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        cfg.interceptor_state().store_put(SentAt(Instant::now()));
        Ok(())
    }

    fn read_after_transmit(
        &self,
        _context: &BeforeDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(SentAt(sent)) = cfg.load::<SentAt>()
            && let Ok(mut spans) = self.0.lock()
        {
            spans.push((*sent, Instant::now()));
        }
        Ok(())
    }
}

/// The round trips a caller waited through: the longest chain of requests each sent after
/// the previous one's answer arrived. Requests in flight together count once.
fn longest_chain(spans: &[(Instant, Instant)]) -> u64 {
    let mut spans = spans.to_vec();
    spans.sort();
    let mut chain = vec![0_u64; spans.len()];
    for i in 0..spans.len() {
        let before = (0..i)
            .filter(|&j| spans[j].1 <= spans[i].0)
            .map(|j| chain[j])
            .max()
            .unwrap_or(0);
        chain[i] = before + 1;
    }
    chain.into_iter().max().unwrap_or(0)
}

#[test]
fn requests_in_flight_together_are_one_round_trip() {
    let t = Instant::now();
    let at = |ms: u64| t + Duration::from_millis(ms);
    // Three in a row, the middle one beside two overlapping others.
    let spans = [
        (at(0), at(10)),
        (at(10), at(20)),
        (at(11), at(19)),
        (at(12), at(25)),
        (at(25), at(30)),
    ];
    assert_eq!(longest_chain(&spans), 3);
    assert_eq!(longest_chain(&spans[1..4]), 1);
    assert_eq!(longest_chain(&[]), 0);
}
