//! `herald-local`'s queue driver hands the embedded queue's messages to a consumer exactly as
//! Lambda's SQS trigger does: batches of at most 10, partial batch failures retried after the
//! visibility timeout, dead letters after the last receive.

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use herald_local::LocalHerald;
use herald_local::driver::QueueDriver;
use herald_shared::adapters::EmbeddedStore;
use herald_shared::adapters::QueueConfig;
use herald_shared::domain::{Channel, DeliveryId, DeliveryMessage, Destination, EventId};
use herald_shared::ports::Clock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A clock the test moves by hand.
#[derive(Default)]
struct ManualClock(AtomicU64);

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Records every message it sees with its receive count, and fails the ids it is told to.
#[derive(Default)]
struct RecordingConsumer {
    seen: Mutex<Vec<(String, String)>>,
    fail_always: Mutex<Vec<String>>,
    fail_first_time: Mutex<Vec<String>>,
    answer_unknown_id: Mutex<bool>,
}

#[async_trait]
impl herald_shared::ports::QueueConsumer for RecordingConsumer {
    async fn consume(&self, batch: SqsEvent) -> SqsBatchResponse {
        assert!(
            batch.records.len() <= 10,
            "a batch carries at most 10 records"
        );
        let mut response = SqsBatchResponse::default();
        for record in &batch.records {
            let id = record.message_id.clone().unwrap_or_default();
            let count = record
                .attributes
                .get("ApproximateReceiveCount")
                .cloned()
                .unwrap_or_default();
            let body: DeliveryMessage =
                serde_json::from_str(record.body.as_deref().unwrap_or_default())
                    .unwrap_or_else(|e| panic!("the body is a DeliveryMessage: {e}"));
            assert_eq!(body.delivery_id.as_str(), id);
            self.seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((id.clone(), count));
            let fail_always = self
                .fail_always
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(&id);
            let mut first = self
                .fail_first_time
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let fail_now = if let Some(i) = first.iter().position(|f| *f == id) {
                first.remove(i);
                true
            } else {
                fail_always
            };
            if fail_now {
                response.add_failure(id);
            }
        }
        if *self
            .answer_unknown_id
            .lock()
            .unwrap_or_else(|e| e.into_inner())
        {
            response.add_failure("not-in-this-batch");
        }
        response
    }
}

fn messages(n: usize) -> Vec<DeliveryMessage> {
    (0..n)
        .map(|i| {
            let event = EventId::parse("id", &format!("e{i}")).unwrap_or_else(|e| panic!("{e}"));
            let destination = Destination::SlackChannel("#appsec".into());
            DeliveryMessage {
                delivery_id: DeliveryId::new(&event, &destination),
                event_id: event,
                destination,
            }
        })
        .collect()
}

fn setup(max_receives: u32) -> (LocalHerald, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock(AtomicU64::new(1_000_000)));
    let store = EmbeddedStore::in_memory().unwrap_or_else(|e| panic!("{e}"));
    let config = QueueConfig {
        visibility_timeout: Duration::from_secs(30),
        max_receives,
    };
    let herald =
        LocalHerald::with_store(store, config, clock.clone()).unwrap_or_else(|e| panic!("{e}"));
    (herald, clock)
}

#[tokio::test]
async fn given_a_partial_failure_then_only_the_failed_record_comes_back_after_the_visibility_timeout()
 {
    let (herald, clock) = setup(5);
    let msgs = messages(25);
    herald
        .queue
        .enqueue_at(&msgs, clock.now_ms())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let consumer = Arc::new(RecordingConsumer::default());
    let flaky = msgs[3].delivery_id.to_string();
    consumer
        .fail_first_time
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(flaky.clone());
    let driver = QueueDriver::new(
        herald.queue.clone(),
        clock.clone(),
        Channel::Slack,
        consumer.clone(),
    );

    let mut total_deleted = 0;
    let mut polls = Vec::new();
    loop {
        let outcome = driver.poll_once().await.unwrap_or_else(|e| panic!("{e}"));
        if outcome.received == 0 {
            break;
        }
        total_deleted += outcome.deleted;
        polls.push(outcome.received);
    }
    assert_eq!(polls, [10, 10, 5], "batches of at most 10");
    assert_eq!(total_deleted, 24, "the failed record stays on the queue");

    // Still invisible just before the timeout; back just after, received a second time.
    clock.0.fetch_add(29_000, Ordering::SeqCst);
    assert_eq!(
        driver.poll_once().await.map(|o| o.received).unwrap_or(99),
        0
    );
    clock.0.fetch_add(2_000, Ordering::SeqCst);
    let outcome = driver.poll_once().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((outcome.received, outcome.deleted), (1, 1));

    let seen = consumer
        .seen
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let mut counts: HashMap<String, Vec<String>> = HashMap::new();
    for (id, count) in seen {
        counts.entry(id).or_default().push(count);
    }
    assert_eq!(counts.len(), 25);
    assert_eq!(counts[&flaky], ["1", "2"]);
    assert!(
        counts
            .iter()
            .filter(|(id, _)| **id != flaky)
            .all(|(_, c)| c == &["1"]),
        "every other record once"
    );
    let depth = herald
        .queue
        .depth(Channel::Slack, clock.now_ms())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((depth.visible, depth.in_flight, depth.dead), (0, 0, 0));
}

#[tokio::test]
async fn given_a_record_that_always_fails_then_it_becomes_a_dead_letter_after_the_last_receive() {
    let (herald, clock) = setup(3);
    let msgs = messages(2);
    herald
        .queue
        .enqueue_at(&msgs, clock.now_ms())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let consumer = Arc::new(RecordingConsumer::default());
    let poison = msgs[0].delivery_id.to_string();
    consumer
        .fail_always
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(poison.clone());
    let driver = QueueDriver::new(
        herald.queue.clone(),
        clock.clone(),
        Channel::Slack,
        consumer.clone(),
    );
    for _ in 0..5 {
        driver.poll_once().await.unwrap_or_else(|e| panic!("{e}"));
        clock.0.fetch_add(31_000, Ordering::SeqCst);
    }
    let attempts = consumer
        .seen
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|(id, _)| *id == poison)
        .count();
    assert_eq!(attempts, 3, "handed over max_receives times, then no more");
    let dead = herald
        .queue
        .dead_letters(Channel::Slack)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        dead.iter()
            .map(|d| d.message_id.clone())
            .collect::<Vec<_>>(),
        [poison]
    );
}

#[tokio::test]
async fn given_an_answer_naming_an_unknown_record_then_the_whole_batch_is_retried() {
    let (herald, clock) = setup(5);
    herald
        .queue
        .enqueue_at(&messages(3), clock.now_ms())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let consumer = Arc::new(RecordingConsumer::default());
    *consumer
        .answer_unknown_id
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = true;
    let driver = QueueDriver::new(
        herald.queue.clone(),
        clock.clone(),
        Channel::Slack,
        consumer.clone(),
    );
    let outcome = driver.poll_once().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (outcome.received, outcome.deleted, outcome.failed),
        (3, 0, 3)
    );
    let depth = herald
        .queue
        .depth(Channel::Slack, clock.now_ms())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(depth.in_flight, 3);
}
