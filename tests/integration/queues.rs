//! The delivery queues (`DeliveryQueue` and `RedeliveryDelay`): `EmbeddedQueue`'s SQS semantics
//! on SQLite (time is a parameter or a fixed clock, so nothing sleeps), and `SqsQueue` against
//! moto (found through `HERALD_TEST_MOTO_URL`; without
//! it those tests fail, naming `scripts/services.sh start`) and against a scripted fake SQS
//! endpoint for partial batch failures, which moto cannot produce.

use herald_shared::adapters::{
    ChannelQueues, EmbeddedQueue, EmbeddedStore, QueueConfig, QueueDepth, ReceivedMessage, SqsQueue,
};
use herald_shared::domain::{Channel, Delivery, DeliveryMessage, Destination, EventId};
use herald_shared::ports::{DeliveryQueue, FixedClock, RedeliveryDelay};
use herald_tests::{create_channel_queues, moto_sqs, sqs_client};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};

use std::sync::{Arc, Mutex};
use std::time::Duration;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const DATABASE_FILE: &str = "herald.db";
/// A fixed "now" for the embedded tests; every later time is an offset from it.
const T0: u64 = 1_800_000_000_000;
const VISIBILITY: Duration = Duration::from_secs(30);
const VISIBILITY_MS: u64 = 30_000;

// ---------------------------------------------------------------------------------------
// Helpers

fn config(max_receives: u32) -> QueueConfig {
    QueueConfig {
        visibility_timeout: VISIBILITY,
        max_receives,
    }
}

/// The message of `event`'s delivery to `destination`.
fn message(event: &str, destination: Destination) -> DeliveryMessage {
    match EventId::parse("id", event) {
        Ok(event) => Delivery::queued(&event, destination, T0).message(),
        Err(e) => panic!("bad test event id {event}: {e:?}"),
    }
}

/// `n` Slack deliveries of one event, to channels `#c0`, `#c1`, ...
fn slack_messages(event: &str, n: usize) -> Vec<DeliveryMessage> {
    (0..n)
        .map(|i| message(event, Destination::SlackChannel(format!("#c{i}"))))
        .collect()
}

/// `n` mail deliveries of one event.
fn mail_messages(event: &str, n: usize) -> Vec<DeliveryMessage> {
    (0..n)
        .map(|i| message(event, Destination::Email(format!("user{i}@example.com"))))
        .collect()
}

fn ids(messages: &[DeliveryMessage]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m.delivery_id.as_str().to_owned())
        .collect()
}

fn received_ids(received: &[ReceivedMessage]) -> Vec<String> {
    received.iter().map(|m| m.message_id.clone()).collect()
}

fn depth(visible: u64, in_flight: u64, dead: u64) -> QueueDepth {
    QueueDepth {
        visible,
        in_flight,
        dead,
    }
}

/// An embedded store in a temporary directory, with its queues.
struct Embedded {
    dir: tempfile::TempDir,
    queue: EmbeddedQueue,
}

impl Embedded {
    fn new(max_receives: u32) -> Result<Self, Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = EmbeddedStore::open(&dir.path().join(DATABASE_FILE))?;
        let queue = EmbeddedQueue::new(&store, config(max_receives))?;
        Ok(Self { dir, queue })
    }

    /// A second store on the same file while this one is open: refused, one process owns
    /// a data directory.
    fn open_again(&self) -> Result<EmbeddedStore, herald_shared::ports::StoreError> {
        EmbeddedStore::open(&self.dir.path().join(DATABASE_FILE))
    }
}

// ---------------------------------------------------------------------------------------
// EmbeddedQueue

#[tokio::test]
async fn given_a_received_message_then_it_is_hidden_until_its_visibility_timeout_ends() -> TestResult
{
    let embedded = Embedded::new(5)?;
    let q = &embedded.queue;
    let messages = slack_messages("e1", 1);
    q.enqueue_at(&messages, T0).await?;
    assert_eq!(q.depth(Channel::Slack, T0).await?, depth(1, 0, 0));

    let first = q.receive(Channel::Slack, 10, T0).await?;
    assert_eq!(received_ids(&first), ids(&messages));
    assert_eq!(first[0].receive_count, 1);
    assert_eq!(first[0].message()?, messages[0]);
    assert_eq!(q.depth(Channel::Slack, T0).await?, depth(0, 1, 0));

    // Hidden for the whole visibility timeout...
    assert!(
        q.receive(Channel::Slack, 10, T0 + VISIBILITY_MS - 1)
            .await?
            .is_empty()
    );
    // ...and back when it ends, received a second time with a new receipt.
    assert_eq!(
        q.depth(Channel::Slack, T0 + VISIBILITY_MS).await?,
        depth(1, 0, 0)
    );
    let second = q.receive(Channel::Slack, 10, T0 + VISIBILITY_MS).await?;
    assert_eq!(received_ids(&second), ids(&messages));
    assert_eq!(second[0].receive_count, 2);
    assert_ne!(second[0].receipt_handle, first[0].receipt_handle);

    // Other channels' queues never see it.
    assert!(
        q.receive(Channel::Mail, 10, T0 + 10 * VISIBILITY_MS)
            .await?
            .is_empty()
    );
    Ok(())
}

#[tokio::test]
async fn given_max_receives_reached_then_the_next_receive_makes_it_a_dead_letter() -> TestResult {
    let embedded = Embedded::new(3)?;
    let q = &embedded.queue;
    let messages = mail_messages("e1", 2);
    q.enqueue_at(&messages, T0).await?;

    // Three receives of both, nobody deletes.
    let mut now = T0;
    let mut last = Vec::new();
    for receive in 1..=3 {
        last = q.receive(Channel::Mail, 10, now).await?;
        assert_eq!(last.len(), 2);
        assert!(last.iter().all(|m| m.receive_count == receive));
        now += VISIBILITY_MS;
    }
    // Delete one with its current receipt: it is done, not dead.
    assert!(q.delete(&last[0].receipt_handle).await?);

    // The fourth receive moves the other to the dead letters instead of delivering it.
    assert!(q.receive(Channel::Mail, 10, now).await?.is_empty());
    assert_eq!(q.depth(Channel::Mail, now).await?, depth(0, 0, 1));
    let dead = q.dead_letters(Channel::Mail).await?;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].message_id, last[1].message_id);
    assert_eq!(dead[0].receive_count, 3);
    assert_eq!(dead[0].enqueued_at, T0);
    assert_eq!(dead[0].message()?.delivery_id.as_str(), last[1].message_id);

    // A dead letter is out of reach of its last receipt and of later receives.
    assert!(!q.delete(&last[1].receipt_handle).await?);
    assert!(
        !q.change_visibility(&last[1].receipt_handle, Duration::ZERO, now)
            .await?
    );
    assert!(
        q.receive(Channel::Mail, 10, now + 100 * VISIBILITY_MS)
            .await?
            .is_empty()
    );
    assert!(q.dead_letters(Channel::Slack).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn given_dead_letters_among_the_oldest_then_a_receive_still_fills_its_batch() -> TestResult {
    let embedded = Embedded::new(1)?;
    let q = &embedded.queue;
    let old = slack_messages("old", 4);
    q.enqueue_at(&old, T0).await?;
    assert_eq!(q.receive(Channel::Slack, 4, T0).await?.len(), 4);
    // Six new ones, queued just as the old ones become visible again.
    let new = slack_messages("new", 6);
    q.enqueue_at(&new, T0 + VISIBILITY_MS).await?;

    // The four old ones come first, and are out of receives: the batch fills with new ones.
    let got = q.receive(Channel::Slack, 5, T0 + VISIBILITY_MS).await?;
    assert_eq!(received_ids(&got), ids(&new[..5]));
    assert_eq!(
        q.depth(Channel::Slack, T0 + VISIBILITY_MS).await?,
        depth(1, 5, 4)
    );
    Ok(())
}

#[tokio::test]
async fn given_a_message_received_again_then_a_stale_receipt_neither_deletes_nor_hides_it()
-> TestResult {
    let embedded = Embedded::new(5)?;
    let q = &embedded.queue;
    q.enqueue_at(&slack_messages("e1", 1), T0).await?;
    let first = q.receive(Channel::Slack, 1, T0).await?;
    let second = q.receive(Channel::Slack, 1, T0 + VISIBILITY_MS).await?;
    assert_eq!(second.len(), 1);

    let stale = &first[0].receipt_handle;
    assert!(!q.delete(stale).await?);
    assert!(
        !q.change_visibility(stale, Duration::ZERO, T0 + VISIBILITY_MS)
            .await?
    );
    assert_eq!(
        q.depth(Channel::Slack, T0 + VISIBILITY_MS).await?,
        depth(0, 1, 0)
    );
    // Handles that name nothing are refused the same way.
    assert!(!q.delete("not-a-handle").await?);
    assert!(!q.delete(&format!("{}.0000", first[0].message_id)).await?);

    assert!(q.delete(&second[0].receipt_handle).await?);
    assert!(!q.delete(&second[0].receipt_handle).await?);
    assert_eq!(
        q.depth(Channel::Slack, T0 + 10 * VISIBILITY_MS).await?,
        depth(0, 0, 0)
    );
    Ok(())
}

#[tokio::test]
async fn given_an_expired_but_not_received_again_message_then_its_receipt_still_deletes_it()
-> TestResult {
    let embedded = Embedded::new(5)?;
    let q = &embedded.queue;
    q.enqueue_at(&slack_messages("e1", 1), T0).await?;
    let got = q.receive(Channel::Slack, 1, T0).await?;
    // As on SQS: the newest receipt works until the message is received again.
    assert!(q.delete(&got[0].receipt_handle).await?);
    assert!(
        q.receive(Channel::Slack, 10, T0 + 2 * VISIBILITY_MS)
            .await?
            .is_empty()
    );
    Ok(())
}

#[tokio::test]
async fn given_change_visibility_then_the_message_reappears_when_it_says() -> TestResult {
    let embedded = Embedded::new(5)?;
    let q = &embedded.queue;
    q.enqueue_at(&slack_messages("e1", 1), T0).await?;
    let got = q.receive(Channel::Slack, 1, T0).await?;
    let receipt = &got[0].receipt_handle;

    // Extended: still hidden after the original timeout, visible after the new one.
    let now = T0 + 10_000;
    assert!(
        q.change_visibility(receipt, Duration::from_secs(120), now)
            .await?
    );
    assert!(
        q.receive(Channel::Slack, 1, T0 + VISIBILITY_MS)
            .await?
            .is_empty()
    );
    assert!(
        q.receive(Channel::Slack, 1, now + 119_999)
            .await?
            .is_empty()
    );
    assert_eq!(
        q.depth(Channel::Slack, now + 120_000).await?,
        depth(1, 0, 0)
    );

    // Zero: visible at once (a sender giving a message back).
    assert!(q.change_visibility(receipt, Duration::ZERO, now).await?);
    let again = q.receive(Channel::Slack, 1, now).await?;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].receive_count, 2);
    Ok(())
}

#[tokio::test]
async fn given_delay_redelivery_then_the_message_is_hidden_for_exactly_the_delay_from_the_clock()
-> TestResult {
    // The queue's clock says T0 + 5 s; the message was received at T0 (hidden until T0 + 30 s).
    let now = T0 + 5_000;
    let embedded = Embedded::new(5)?;
    let q = embedded.queue.clone().with_clock(Arc::new(FixedClock(now)));
    q.enqueue_at(&slack_messages("e1", 1), T0).await?;
    let got = q.receive(Channel::Slack, 1, T0).await?;

    // Backoff of 10 s from the clock's now: visible again at T0 + 15 s, not at T0 + 30 s.
    q.delay_redelivery(
        Channel::Slack,
        &got[0].receipt_handle,
        Duration::from_secs(10),
    )
    .await?;
    assert!(q.receive(Channel::Slack, 1, now + 9_999).await?.is_empty());
    assert_eq!(q.depth(Channel::Slack, now + 10_000).await?, depth(1, 0, 0));
    let again = q.receive(Channel::Slack, 1, now + 10_000).await?;
    assert_eq!(received_ids(&again), received_ids(&got));
    assert_eq!(again[0].receive_count, 2);

    // At most 12 hours, as on SQS.
    q.delay_redelivery(
        Channel::Slack,
        &again[0].receipt_handle,
        Duration::from_secs(86_400),
    )
    .await?;
    assert_eq!(
        q.depth(Channel::Slack, now + 43_200_000 - 1).await?,
        depth(0, 1, 0)
    );
    assert_eq!(
        q.depth(Channel::Slack, now + 43_200_000).await?,
        depth(1, 0, 0)
    );

    // A stale receipt (superseded by the receive above), or none at all, is not an error and
    // changes nothing.
    q.delay_redelivery(Channel::Slack, &got[0].receipt_handle, Duration::ZERO)
        .await?;
    q.delay_redelivery(Channel::Slack, "not-a-handle", Duration::ZERO)
        .await?;
    assert_eq!(q.depth(Channel::Slack, now).await?, depth(0, 1, 0));
    Ok(())
}

#[tokio::test]
async fn given_25_messages_then_receives_take_at_most_10_oldest_first() -> TestResult {
    let embedded = Embedded::new(5)?;
    let q = &embedded.queue;
    let messages = slack_messages("e1", 25);
    // Enqueued one millisecond apart, in slice order.
    for (i, m) in messages.iter().enumerate() {
        q.enqueue_at(std::slice::from_ref(m), T0 + i as u64).await?;
    }
    let now = T0 + 1_000;
    assert!(q.receive(Channel::Slack, 11, now).await.is_err());
    assert!(q.receive(Channel::Slack, 0, now).await.is_err());

    let mut got = Vec::new();
    for expected in [10, 10, 5, 0] {
        let batch = q.receive(Channel::Slack, 10, now).await?;
        assert_eq!(batch.len(), expected);
        got.extend(received_ids(&batch));
    }
    assert_eq!(got, ids(&messages));
    Ok(())
}

#[tokio::test]
async fn given_messages_queued_again_then_nothing_is_duplicated_or_reset() -> TestResult {
    let embedded = Embedded::new(1)?;
    let q = &embedded.queue;
    let messages = slack_messages("e1", 3);
    q.enqueue_at(&messages, T0).await?;
    q.enqueue_at(&messages, T0).await?;
    assert_eq!(q.depth(Channel::Slack, T0).await?, depth(3, 0, 0));

    // The first received and left to expire, the second received and deleted.
    let first = q.receive(Channel::Slack, 1, T0).await?;
    assert_eq!(received_ids(&first), ids(&messages[..1]));
    let second = q.receive(Channel::Slack, 1, T0).await?;
    assert!(q.delete(&second[0].receipt_handle).await?);
    // Later the third is received, and the first, out of receives, becomes dead.
    let now = T0 + VISIBILITY_MS;
    let third = q.receive(Channel::Slack, 2, now).await?;
    assert_eq!(received_ids(&third), ids(&messages[2..]));
    assert_eq!(q.depth(Channel::Slack, now).await?, depth(0, 1, 1));

    q.enqueue_at(&messages, now).await?;
    // The dead and the in-flight ones are untouched; only the deleted one is back.
    assert_eq!(q.depth(Channel::Slack, now).await?, depth(1, 1, 1));
    let back = q.receive(Channel::Slack, 10, now).await?;
    assert_eq!(received_ids(&back), ids(&messages[1..2]));
    assert_eq!(back[0].receive_count, 1);
    Ok(())
}

#[tokio::test]
async fn given_a_reopened_database_then_queued_and_in_flight_messages_survive() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join(DATABASE_FILE);
    let messages = mail_messages("e1", 3);
    let receipt = {
        let store = EmbeddedStore::open(&path)?;
        let q = EmbeddedQueue::new(&store, config(5))?;
        q.enqueue_at(&messages, T0).await?;
        let got = q.receive(Channel::Mail, 1, T0).await?;
        got[0].receipt_handle.clone()
        // Store and queue dropped here: the connection closes.
    };
    let store = EmbeddedStore::open(&path)?;
    let q = EmbeddedQueue::new(&store, config(5))?;
    assert_eq!(q.depth(Channel::Mail, T0).await?, depth(2, 1, 0));
    let rest = q.receive(Channel::Mail, 10, T0).await?;
    assert_eq!(received_ids(&rest), ids(&messages[1..]));
    // The receipt handed out before the restart still works.
    assert!(q.delete(&receipt).await?);
    Ok(())
}

#[tokio::test]
async fn given_an_open_data_directory_then_a_second_store_is_refused_until_the_first_is_dropped()
-> TestResult {
    let embedded = Embedded::new(5)?;
    let refused = embedded
        .open_again()
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        refused.contains("in use by another Herald process"),
        "got {refused:?}"
    );
    let Embedded { dir, queue } = embedded;
    drop(queue);
    // Every clone of the first store is gone: the directory is free again.
    EmbeddedStore::open(&dir.path().join(DATABASE_FILE))?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn given_concurrent_receivers_then_no_message_is_handed_out_twice() -> TestResult {
    const MESSAGES: usize = 600;
    let embedded = Embedded::new(5)?;
    let messages = slack_messages("e1", MESSAGES);
    embedded.queue.enqueue_at(&messages, T0).await?;

    // Four receivers race, each receive a write of its own in the store's group commits.
    let receivers = [
        embedded.queue.clone(),
        embedded.queue.clone(),
        embedded.queue.clone(),
        embedded.queue.clone(),
    ];
    let start = Arc::new(tokio::sync::Barrier::new(receivers.len()));
    let mut tasks = tokio::task::JoinSet::new();
    for q in receivers {
        let start = Arc::clone(&start);
        tasks.spawn(async move {
            start.wait().await;
            let mut got = Vec::new();
            // Time stands still: within the visibility window, nothing comes back.
            loop {
                let batch = q.receive(Channel::Slack, 5, T0).await?;
                if batch.is_empty() {
                    return Ok::<_, herald_shared::ports::QueueError>(got);
                }
                got.extend(received_ids(&batch));
                tokio::task::yield_now().await;
            }
        });
    }
    let mut all = Vec::new();
    let mut per_receiver = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let got = joined??;
        per_receiver.push(got.len());
        all.extend(got);
    }
    let distinct: BTreeSet<&String> = all.iter().collect();
    assert_eq!(all.len(), MESSAGES, "per receiver: {per_receiver:?}");
    assert_eq!(distinct.len(), MESSAGES);
    assert_eq!(
        embedded.queue.depth(Channel::Slack, T0).await?,
        depth(0, MESSAGES as u64, 0)
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// SqsQueue against moto

/// Everything on `queue_url`, by the `delivery_id` message attribute: (body, MessageId).
async fn drain(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
) -> Result<BTreeMap<String, String>, Box<dyn std::error::Error>> {
    let mut bodies = BTreeMap::new();
    loop {
        let output = client
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .send()
            .await?;
        let messages = output.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok(bodies);
        }
        for m in messages {
            let delivery_id = m
                .message_attributes
                .as_ref()
                .and_then(|a| a.get("delivery_id"))
                .and_then(|v| v.string_value.clone())
                .ok_or("a message without the delivery_id attribute")?;
            let body = m.body.ok_or("a message without a body")?;
            assert!(
                bodies.insert(delivery_id.clone(), body).is_none(),
                "{delivery_id} received twice"
            );
        }
    }
}

fn expected_bodies(
    messages: &[DeliveryMessage],
) -> Result<BTreeMap<String, String>, serde_json::Error> {
    messages
        .iter()
        .map(|m| Ok((m.delivery_id.as_str().to_owned(), serde_json::to_string(m)?)))
        .collect()
}

#[tokio::test]
async fn sqs_given_25_slack_and_3_mail_deliveries_then_4_batches_put_each_on_its_queue()
-> TestResult {
    let client = moto_sqs().await;
    let queues = create_channel_queues(&client, "fanout").await?;
    let queue = SqsQueue::new(client.clone(), queues.clone());
    let slack = slack_messages("e1", 25);
    let mail = mail_messages("e1", 3);
    let mut all = slack.clone();
    all.extend(mail.iter().cloned());
    // Interleaved, as the router produces them per recipient.
    all.sort_by(|a, b| a.delivery_id.cmp(&b.delivery_id));

    queue.enqueue(&all).await?;
    assert_eq!(
        queue.request_count(),
        3 + 1,
        "⌈25/10⌉ + ⌈3/10⌉ SendMessageBatch calls"
    );

    assert_eq!(
        drain(&client, &queues.slack).await?,
        expected_bodies(&slack)?
    );
    assert_eq!(drain(&client, &queues.mail).await?, expected_bodies(&mail)?);
    assert!(drain(&client, &queues.msteams).await?.is_empty());
    assert!(drain(&client, &queues.webhooks).await?.is_empty());
    for body in expected_bodies(&slack)?.values() {
        let parsed: DeliveryMessage = serde_json::from_str(body)?;
        assert_eq!(parsed.channel(), Channel::Slack);
    }
    Ok(())
}

#[tokio::test]
async fn sqs_given_every_channel_and_duplicates_then_each_delivery_is_sent_once() -> TestResult {
    let client = moto_sqs().await;
    let queues = create_channel_queues(&client, "channels").await?;
    let queue = SqsQueue::new(client.clone(), queues.clone());
    let teams = vec![message("e2", Destination::Teams)];
    let webhooks = vec![message("e2", Destination::SystemWebhooks)];
    let slack = slack_messages("e2", 10);
    let mut all = [
        teams.clone(),
        webhooks.clone(),
        slack.clone(),
        slack.clone(),
    ]
    .concat();
    all.push(teams[0].clone());

    queue.enqueue(&all).await?;
    // msteams 1, webhooks 1, slack 10 distinct: one call each.
    assert_eq!(queue.request_count(), 3);
    assert_eq!(
        drain(&client, &queues.msteams).await?,
        expected_bodies(&teams)?
    );
    assert_eq!(
        drain(&client, &queues.webhooks).await?,
        expected_bodies(&webhooks)?
    );
    assert_eq!(
        drain(&client, &queues.slack).await?,
        expected_bodies(&slack)?
    );
    assert!(drain(&client, &queues.mail).await?.is_empty());

    // Nothing to send: no call.
    queue.enqueue(&[]).await?;
    assert_eq!(queue.request_count(), 3);
    Ok(())
}

/// Receives up to 10 messages of `queue_url` with their `ApproximateReceiveCount`.
async fn receive_counted(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
) -> Result<Vec<(String, u32)>, Box<dyn std::error::Error>> {
    use aws_sdk_sqs::types::MessageSystemAttributeName;
    let output = client
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
        .send()
        .await?;
    output
        .messages
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            let count = m
                .attributes
                .as_ref()
                .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                .ok_or("a message without ApproximateReceiveCount")?
                .parse()?;
            Ok((
                m.receipt_handle.ok_or("a message without a receipt")?,
                count,
            ))
        })
        .collect()
}

#[tokio::test]
async fn sqs_given_delay_redelivery_of_zero_then_the_message_is_received_again_at_once()
-> TestResult {
    let client = moto_sqs().await;
    let queues = create_channel_queues(&client, "redelivery").await?;
    let queue = SqsQueue::new(client.clone(), queues.clone());
    queue.enqueue(&slack_messages("e5", 1)).await?;

    let first = receive_counted(&client, &queues.slack).await?;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].1, 1);
    // Hidden for the queue's visibility timeout (30 s by default)...
    assert!(receive_counted(&client, &queues.slack).await?.is_empty());

    // ...until the sender gives it back.
    let before = queue.request_count();
    queue
        .delay_redelivery(Channel::Slack, &first[0].0, Duration::ZERO)
        .await?;
    assert_eq!(
        queue.request_count() - before,
        1,
        "one ChangeMessageVisibility"
    );
    let second = receive_counted(&client, &queues.slack).await?;
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].1, 2, "ApproximateReceiveCount");

    // The message deleted, its receipt is stale: not an error, and still one request.
    client
        .delete_message()
        .queue_url(&queues.slack)
        .receipt_handle(&second[0].0)
        .send()
        .await?;
    let before = queue.request_count();
    queue
        .delay_redelivery(Channel::Slack, &second[0].0, Duration::from_secs(5))
        .await?;
    queue
        .delay_redelivery(Channel::Slack, "not-a-receipt-handle", Duration::ZERO)
        .await?;
    assert_eq!(queue.request_count() - before, 2);
    assert!(receive_counted(&client, &queues.slack).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn sqs_given_a_missing_queue_then_delay_redelivery_is_a_backend_error() -> TestResult {
    let client = moto_sqs().await;
    let url = herald_tests::emulator_url("HERALD_TEST_MOTO_URL");
    let queue = SqsQueue::new(client, fake_queues(&url));
    let result = queue
        .delay_redelivery(Channel::Mail, "some-receipt", Duration::ZERO)
        .await;
    assert!(
        matches!(&result, Err(herald_shared::ports::QueueError::Backend(e)) if e.contains("mail queue")),
        "{result:?}"
    );
    // The alert channel has no queue.
    assert!(
        queue
            .delay_redelivery(Channel::Alert, "some-receipt", Duration::ZERO)
            .await
            .is_err()
    );
    Ok(())
}

#[test]
fn channel_queues_from_env_names_the_first_missing_variable() {
    let names = [
        "HERALD_QUEUE_URL_MAIL",
        "HERALD_QUEUE_URL_SLACK",
        "HERALD_QUEUE_URL_MSTEAMS",
        "HERALD_QUEUE_URL_WEBHOOKS",
    ];
    let missing = names
        .iter()
        .find(|name| std::env::var(name).map_or(true, |v| v.trim().is_empty()));
    match (ChannelQueues::from_env(), missing) {
        (Err(e), Some(name)) => assert!(e.to_string().contains(name), "{e}"),
        (Ok(queues), None) => assert!(queues.url(Channel::Alert).is_none()),
        (result, missing) => panic!("from_env gave {result:?} with {missing:?} missing"),
    }
    let queues = fake_queues("http://sqs");
    assert_eq!(queues.url(Channel::Alert), None, "alerts have no queue");
    assert_eq!(
        queues.url(Channel::Msteams),
        Some("http://sqs/123456789012/msteams")
    );
}

// ---------------------------------------------------------------------------------------
// SqsQueue against a scripted endpoint: partial batch failures

/// One `SendMessageBatch` call the fake endpoint saw: its entry ids, in order.
type Call = Vec<String>;
/// Every call, in order.
type Calls = Arc<Mutex<Vec<Call>>>;
/// Whether an entry fails (`Some(sender_fault)`), given the call number and the entry id.
type Script = dyn Fn(usize, &str) -> Option<bool> + Send + Sync;

/// A fake SQS endpoint on loopback answering `SendMessageBatch` (JSON protocol). `fail`
/// decides, per call number (0-based) and entry id, whether that entry fails and whether by
/// the sender's fault.
fn fake_sqs(
    fail: impl Fn(usize, &str) -> Option<bool> + Send + Sync + 'static,
) -> Result<(String, Calls), std::io::Error> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}", listener.local_addr()?);
    let calls = Arc::new(Mutex::new(Vec::new()));
    let (seen, fail) = (Arc::clone(&calls), Arc::new(fail));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let (seen, fail) = (Arc::clone(&seen), Arc::clone(&fail));
            std::thread::spawn(move || serve(stream, &seen, fail.as_ref()));
        }
    });
    Ok((url, calls))
}

/// Answers requests on one keep-alive connection until the client closes it.
fn serve(stream: std::net::TcpStream, calls: &Mutex<Vec<Call>>, fail: &Script) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut content_length = 0;
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                content_length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; content_length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let entry_ids: Vec<String> = request["Entries"]
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .filter_map(|e| e["Id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let call = {
            let Ok(mut calls) = calls.lock() else { return };
            calls.push(entry_ids.clone());
            calls.len() - 1
        };
        let (mut successful, mut failed) = (Vec::new(), Vec::new());
        for id in &entry_ids {
            match fail(call, id) {
                None => successful.push(json!({
                    "Id": id, "MessageId": format!("m-{call}-{id}"), "MD5OfMessageBody": "0"
                })),
                Some(sender_fault) => failed.push(json!({
                    "Id": id, "SenderFault": sender_fault, "Code": "InternalError",
                    "Message": "scripted failure"
                })),
            }
        }
        let answer = json!({ "Successful": successful, "Failed": failed }).to_string();
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\n\
             Content-Length: {}\r\n\r\n{answer}",
            answer.len()
        );
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

fn fake_queues(url: &str) -> ChannelQueues {
    let queue = |name: &str| format!("{url}/123456789012/{name}");
    ChannelQueues {
        mail: queue("mail"),
        slack: queue("slack"),
        msteams: queue("msteams"),
        webhooks: queue("webhooks"),
    }
}

#[tokio::test]
async fn sqs_given_failed_entries_then_only_those_are_sent_again() -> TestResult {
    let messages = slack_messages("e3", 10);
    let flaky: BTreeSet<String> = ids(&messages[3..5]).into_iter().collect();
    let script = flaky.clone();
    // The first call fails two entries transiently; later calls succeed.
    let (url, calls) =
        fake_sqs(move |call, id| (call == 0 && script.contains(id)).then_some(false))?;
    let queue = SqsQueue::new(sqs_client(&url).await, fake_queues(&url));

    queue.enqueue(&messages).await?;
    assert_eq!(queue.request_count(), 2);
    let calls = calls.lock().map_err(|_| "poisoned")?.clone();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0], ids(&messages));
    assert_eq!(calls[1].iter().cloned().collect::<BTreeSet<_>>(), flaky);
    Ok(())
}

#[tokio::test]
async fn sqs_given_entries_that_keep_failing_then_enqueue_names_them() -> TestResult {
    let messages = mail_messages("e4", 12);
    let stuck = messages[11].delivery_id.as_str().to_owned();
    let refused = messages[0].delivery_id.as_str().to_owned();
    let (stuck_id, refused_id) = (stuck.clone(), refused.clone());
    let (url, calls) = fake_sqs(move |_, id| {
        if id == stuck_id {
            Some(false)
        } else if id == refused_id {
            Some(true)
        } else {
            None
        }
    })?;
    let queue = SqsQueue::new(sqs_client(&url).await, fake_queues(&url));

    let error = match queue.enqueue(&messages).await {
        Err(e) => e.to_string(),
        Ok(()) => return Err("enqueue succeeded despite failing entries".into()),
    };
    assert!(error.contains("mail queue"), "{error}");
    assert!(error.contains(&stuck), "{error}");
    assert!(error.contains(&refused), "{error}");
    assert!(error.contains("sender fault"), "{error}");
    // Batch of 10 (with the refused one): 1 call, its failure not retried. Batch of 2
    // (with the stuck one): 4 attempts, the retries carrying only the stuck entry.
    assert_eq!(queue.request_count(), 1 + 4);
    let calls = calls.lock().map_err(|_| "poisoned")?.clone();
    let retries: Vec<&Call> = calls.iter().filter(|c| c.len() == 1).collect();
    assert_eq!(retries.len(), 3);
    assert!(retries.iter().all(|c| c[0] == stuck));
    Ok(())
}
