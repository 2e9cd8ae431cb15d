//! The sender on AWS's path: DynamoDB Local as the store, moto's SQS as the queue, the Lambda
//! handler's `consume` as the trigger calls it. SQS delivers at least once, and a fan-out
//! finished twice queues a delivery twice: two invocations holding the same delivery at the
//! same moment still send it once.
use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use herald_shared::adapters::{DynamoDbStore, SqsQueue};
use herald_shared::domain::{
    Channel, DeliveryStatus, Event, EventType, NotificationSettings, SystemSettings,
};
use herald_shared::intake::accept_event;
use herald_shared::ports::{
    DeliveryQueue, EventStore, HeraldStore, QueueConsumer, SettingsStore, SystemClock,
};
use herald_shared::ports::{SendError, SendRequest, Transport};
use herald_shared::sender::{RetryPolicy, Sender};
use herald_tests::{create_channel_queues, dynamodb_local, moto_sqs, now};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A Slack stand-in that takes its time, so two sends of one delivery would overlap.
#[derive(Default)]
struct SlowTransport {
    sends: AtomicU32,
}

#[async_trait]
impl Transport for SlowTransport {
    fn channel(&self) -> Channel {
        Channel::Slack
    }

    async fn send(&self, _request: &SendRequest<'_>) -> Result<(), SendError> {
        self.sends.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(())
    }
}

/// Receives until `count` messages arrived (moto may split them over several calls).
async fn receive(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    count: usize,
) -> Result<Vec<aws_sdk_sqs::types::Message>, Box<dyn std::error::Error>> {
    let mut got = Vec::new();
    for _ in 0..20 {
        let output = client
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .message_system_attribute_names(
                aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount,
            )
            .wait_time_seconds(1)
            .send()
            .await?;
        got.extend(output.messages.unwrap_or_default());
        if got.len() >= count {
            break;
        }
    }
    assert_eq!(got.len(), count, "messages on the Slack queue");
    Ok(got)
}

/// The record Lambda's SQS trigger makes of a received message.
fn record(message: &aws_sdk_sqs::types::Message) -> SqsMessage {
    let mut attributes = HashMap::new();
    let receive_count = message
        .attributes()
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount)
        })
        .cloned()
        .unwrap_or_else(|| "1".to_owned());
    attributes.insert("ApproximateReceiveCount".to_owned(), receive_count);
    let mut record = SqsMessage::default();
    record.message_id = message.message_id().map(str::to_owned);
    record.receipt_handle = message.receipt_handle().map(str::to_owned);
    record.body = message.body().map(str::to_owned);
    record.attributes = attributes;
    record.event_source = Some("aws:sqs".to_owned());
    record
}

fn batch(records: Vec<SqsMessage>) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = records;
    event
}

/// Slack on, with a channel; scan_added goes to it at system scope.
async fn slack_on(store: &DynamoDbStore) -> TestResult {
    let settings = SystemSettings {
        enable_slack_notifications: true,
        slack_channel: "#appsec".to_owned(),
        ..SystemSettings::default()
    };
    store.put_system_settings(&settings).await?;
    store
        .put_system_notifications(
            &NotificationSettings::defaults().with(EventType::ScanAdded, &[Channel::Slack]),
        )
        .await?;
    Ok(())
}

#[tokio::test]
async fn sqs_given_one_delivery_queued_twice_then_concurrent_invocations_send_it_once() -> TestResult
{
    let dynamodb = dynamodb_local().await;
    let table = format!("herald-sqs-sender-{}-{}", std::process::id(), now());
    let store = Arc::new(DynamoDbStore::new(dynamodb.clone(), table.clone()));
    store.create_table().await?;
    let outcome = run(&store).await;
    dynamodb.delete_table().table_name(&table).send().await?;
    outcome
}

async fn run(store: &Arc<DynamoDbStore>) -> TestResult {
    let sqs = moto_sqs().await;
    let queues = create_channel_queues(&sqs, "sender-dup").await?;
    let queue = Arc::new(SqsQueue::new(sqs.clone(), queues.clone()));

    slack_on(store).await?;
    let body = json!({"id": "dup-1", "type": "scan_added", "title": "Scan", "no_users": true});
    let event = Event::from_request(&body, || "unused".to_owned())?;
    let answer = accept_event(store.as_ref(), queue.as_ref(), event, now()).await?;
    assert_eq!(answer.deliveries, 1);

    // The same delivery queued again (a fan-out finished twice): two messages, one delivery.
    let deliveries = store.deliveries(&answer.event_id).await?;
    let messages: Vec<_> = deliveries.iter().map(|d| d.message()).collect();
    queue.enqueue(&messages).await?;
    let received = receive(&sqs, &queues.slack, 2).await?;
    assert_ne!(received[0].message_id(), received[1].message_id());

    let transport = Arc::new(SlowTransport::default());
    let sender = Sender {
        store: store.clone() as Arc<dyn HeraldStore>,
        transport: transport.clone(),
        redelivery: queue.clone(),
        policy: RetryPolicy::default(),
        clock: Arc::new(SystemClock),
    };
    // Two invocations at once, each with one of the two messages.
    let (first, second) = tokio::join!(
        sender.consume(batch(vec![record(&received[0])])),
        sender.consume(batch(vec![record(&received[1])])),
    );
    assert_eq!(transport.sends.load(Ordering::SeqCst), 1, "sent once");
    // One invocation sent it; the other found it claimed and left its message to come back.
    let failures = first.batch_item_failures.len() + second.batch_item_failures.len();
    assert_eq!(failures, 1);
    let stored = store.deliveries(&answer.event_id).await?;
    assert_eq!(stored[0].status, DeliveryStatus::Sent);
    assert_eq!(stored[0].attempts, 1);

    // When the held message comes back, the delivery is final: acknowledged, nothing sent.
    let retried = if first.batch_item_failures.is_empty() {
        &received[1]
    } else {
        &received[0]
    };
    let again = sender.consume(batch(vec![record(retried)])).await;
    assert!(again.batch_item_failures.is_empty());
    assert_eq!(transport.sends.load(Ordering::SeqCst), 1, "still sent once");
    Ok(())
}

/// An intake that stops between recording an event and queueing it: the queue refuses.
struct StoppedBeforeQueueing;

#[async_trait]
impl DeliveryQueue for StoppedBeforeQueueing {
    async fn enqueue(
        &self,
        _: &[herald_shared::domain::DeliveryMessage],
    ) -> Result<(), herald_shared::ports::QueueError> {
        Err(herald_shared::ports::QueueError::Backend(
            "the function stopped here".into(),
        ))
    }
}

#[tokio::test]
async fn sqs_given_an_intake_stopped_between_recording_and_queueing_then_the_minutely_checks_finish_it_once()
-> TestResult {
    let dynamodb = dynamodb_local().await;
    let table = format!("herald-sqs-recovery-{}-{}", std::process::id(), now());
    let store = Arc::new(DynamoDbStore::new(dynamodb.clone(), table.clone()));
    store.create_table().await?;
    let outcome = recover(&store).await;
    dynamodb.delete_table().table_name(&table).send().await?;
    outcome
}

async fn recover(store: &Arc<DynamoDbStore>) -> TestResult {
    use herald_shared::scheduler::{Check, run_checks};
    let sqs = moto_sqs().await;
    let queues = create_channel_queues(&sqs, "recovery").await?;
    let queue = Arc::new(SqsQueue::new(sqs.clone(), queues.clone()));
    slack_on(store).await?;
    let body = json!({"id": "cut-1", "type": "scan_added", "title": "Scan", "no_users": true});
    let event = Event::from_request(&body, || "unused".to_owned())?;
    let id = event.id.clone();
    let accepted_at = now();
    let stopped = accept_event(store.as_ref(), &StoppedBeforeQueueing, event, accepted_at).await;
    assert!(stopped.is_err(), "the intake stopped before queueing");
    let record = store.event(&id).await?.ok_or("the event was recorded")?;
    assert!(record.complete && !record.enqueued, "{record:?}");

    // Within the grace the event is left to the intake that may still be finishing it.
    let soon = run_checks(
        store.as_ref(),
        queue.as_ref(),
        accepted_at + 30_000,
        &[Check::IntakeRecovery],
    )
    .await?;
    assert_eq!(soon.events_recovered, 0);
    // A minute on, the minutely checks queue its delivery, once.
    let later = run_checks(
        store.as_ref(),
        queue.as_ref(),
        accepted_at + 61_000,
        &[Check::IntakeRecovery],
    )
    .await?;
    assert_eq!(later.events_recovered, 1);
    assert_eq!(later.checks, ["intake_recovery"]);
    let again = run_checks(
        store.as_ref(),
        queue.as_ref(),
        accepted_at + 120_000,
        &[Check::IntakeRecovery],
    )
    .await?;
    assert_eq!(again.events_recovered, 0, "finished once");
    let messages = receive(&sqs, &queues.slack, 1).await?;
    assert!(
        messages[0].body().is_some_and(|b| b.contains("cut-1")),
        "{messages:?}"
    );
    assert!(store.event(&id).await?.is_some_and(|r| r.enqueued));
    let deliveries = store.deliveries(&id).await?;
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].status, DeliveryStatus::Queued);
    Ok(())
}
