//! The conformance suite of the queue ports, `DeliveryQueue` and `RedeliveryDelay`: the
//! embedded queue (SQLite, a fixed clock) and `SqsQueue` on moto (`HERALD_TEST_MOTO_URL`;
//! without it those tests fail, naming `scripts/services.sh start`), each read back the way
//! its sender reads it (the embedded queue's `receive`, SQS's `ReceiveMessage`).

use super::TestResult;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use herald_shared::adapters::{ChannelQueues, EmbeddedQueue, EmbeddedStore, QueueConfig, SqsQueue};
use herald_shared::domain::{Channel, Delivery, DeliveryMessage, Destination, EventId};
use herald_shared::ports::{DeliveryQueue, FixedClock, RedeliveryDelay};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// The embedded queue's fixed "now".
const T0: u64 = 1_800_000_000_000;
/// Both queues hide a received message this long (moto's default for a new queue).
const VISIBILITY: Duration = Duration::from_secs(30);

/// One message as a sender receives it.
#[derive(Debug, Clone)]
struct Received {
    receipt_handle: String,
    message: DeliveryMessage,
    receive_count: u32,
}

/// A queue under test and the way to read it back.
enum QueueHarness {
    Embedded {
        _dir: tempfile::TempDir,
        queue: EmbeddedQueue,
    },
    Sqs {
        client: aws_sdk_sqs::Client,
        queues: ChannelQueues,
        queue: SqsQueue,
    },
}

impl QueueHarness {
    fn embedded() -> Result<Self, Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = EmbeddedStore::open(&dir.path().join(super::DATABASE_FILE))?;
        let queue = EmbeddedQueue::new(
            &store,
            QueueConfig {
                visibility_timeout: VISIBILITY,
                max_receives: 5,
            },
        )?
        .with_clock(Arc::new(FixedClock(T0)));
        Ok(Self::Embedded { _dir: dir, queue })
    }

    async fn sqs() -> Result<Self, Box<dyn std::error::Error>> {
        let client = herald_tests::moto_sqs().await;
        let queues = herald_tests::create_channel_queues(&client, "conformance").await?;
        let queue = SqsQueue::new(client.clone(), queues.clone());
        Ok(Self::Sqs {
            client,
            queues,
            queue,
        })
    }

    fn queue(&self) -> &dyn DeliveryQueue {
        match self {
            Self::Embedded { queue, .. } => queue,
            Self::Sqs { queue, .. } => queue,
        }
    }

    fn redelivery(&self) -> &dyn RedeliveryDelay {
        match self {
            Self::Embedded { queue, .. } => queue,
            Self::Sqs { queue, .. } => queue,
        }
    }

    /// Up to 10 visible messages of `channel`'s queue, now.
    async fn receive(&self, channel: Channel) -> Result<Vec<Received>, Box<dyn std::error::Error>> {
        match self {
            Self::Embedded { queue, .. } => queue
                .receive(channel, 10, T0)
                .await?
                .into_iter()
                .map(|m| {
                    Ok(Received {
                        message: m.message()?,
                        receipt_handle: m.receipt_handle,
                        receive_count: m.receive_count,
                    })
                })
                .collect(),
            Self::Sqs { client, queues, .. } => {
                let url = queues.url(channel).ok_or("the channel has no queue")?;
                let output = client
                    .receive_message()
                    .queue_url(url)
                    .max_number_of_messages(10)
                    .message_system_attribute_names(
                        MessageSystemAttributeName::ApproximateReceiveCount,
                    )
                    .send()
                    .await?;
                output
                    .messages
                    .unwrap_or_default()
                    .into_iter()
                    .map(|m| {
                        let receive_count = m
                            .attributes
                            .as_ref()
                            .and_then(|a| {
                                a.get(&MessageSystemAttributeName::ApproximateReceiveCount)
                            })
                            .ok_or("a message without ApproximateReceiveCount")?
                            .parse()?;
                        Ok(Received {
                            message: serde_json::from_str(
                                m.body.as_deref().ok_or("a message without a body")?,
                            )?,
                            receipt_handle: m
                                .receipt_handle
                                .ok_or("a message without a receipt")?,
                            receive_count,
                        })
                    })
                    .collect()
            }
        }
    }

    /// Everything visible on `channel`'s queue, received until it answers with none.
    async fn drain(&self, channel: Channel) -> Result<Vec<Received>, Box<dyn std::error::Error>> {
        let mut all = Vec::new();
        loop {
            let batch = self.receive(channel).await?;
            if batch.is_empty() {
                return Ok(all);
            }
            all.extend(batch);
        }
    }

    /// Deletes the test's queues (the temporary directory removes itself).
    async fn finish(self) -> TestResult {
        if let Self::Sqs { client, queues, .. } = self {
            for url in [queues.mail, queues.slack, queues.msteams, queues.webhooks] {
                client.delete_queue().queue_url(url).send().await?;
            }
        }
        Ok(())
    }
}

conformance! {
    adapters {
        embedded: super::QueueHarness::embedded()?,
        sqs: super::QueueHarness::sqs().await?,
    }
    given_deliveries_of_every_channel_then_each_queue_holds_exactly_its_own,
    given_a_delivery_twice_in_one_call_then_it_is_queued_once,
    given_a_received_message_then_it_stays_hidden_until_its_redelivery_is_moved_up,
    given_a_stale_or_unknown_receipt_then_delay_redelivery_is_no_error_and_changes_nothing,
    given_the_alert_channel_then_delay_redelivery_is_an_error,
}

/// The message of `event`'s delivery to `destination`.
fn message(event: &str, destination: Destination) -> DeliveryMessage {
    match EventId::parse("id", event) {
        Ok(event) => Delivery::queued(&event, destination, T0).message(),
        Err(e) => panic!("bad test event id {event}: {e:?}"),
    }
}

fn delivery_ids<'a>(messages: impl IntoIterator<Item = &'a DeliveryMessage>) -> BTreeSet<String> {
    messages
        .into_iter()
        .map(|m| m.delivery_id.as_str().to_owned())
        .collect()
}

async fn given_deliveries_of_every_channel_then_each_queue_holds_exactly_its_own(
    h: &mut QueueHarness,
) -> TestResult {
    let slack: Vec<DeliveryMessage> = (0..12)
        .map(|i| message("e1", Destination::SlackChannel(format!("#c{i}"))))
        .collect();
    let mail = vec![
        message("e1", Destination::Email("alice@example.com".into())),
        message("e1", Destination::Email("bob@example.com".into())),
    ];
    let teams = vec![message("e1", Destination::Teams)];
    let webhooks = vec![message("e1", Destination::SystemWebhooks)];
    let mut all = [slack.clone(), mail.clone(), teams.clone(), webhooks.clone()].concat();
    all.sort_by(|a, b| a.delivery_id.cmp(&b.delivery_id));

    h.queue().enqueue(&all).await?;
    h.queue().enqueue(&[]).await?;

    for (channel, expected) in [
        (Channel::Slack, &slack),
        (Channel::Mail, &mail),
        (Channel::Msteams, &teams),
        (Channel::Webhooks, &webhooks),
    ] {
        let received = h.drain(channel).await?;
        let messages: Vec<&DeliveryMessage> = received.iter().map(|r| &r.message).collect();
        assert_eq!(messages.len(), expected.len(), "{channel:?}");
        assert_eq!(
            delivery_ids(messages.iter().copied()),
            delivery_ids(expected)
        );
        for m in &messages {
            let sent = expected
                .iter()
                .find(|e| e.delivery_id == m.delivery_id)
                .ok_or("an unexpected message")?;
            assert_eq!(*m, sent, "the body is the message as it was queued");
            assert_eq!(m.channel(), channel);
        }
        assert!(received.iter().all(|r| r.receive_count == 1));
    }
    Ok(())
}

async fn given_a_delivery_twice_in_one_call_then_it_is_queued_once(
    h: &mut QueueHarness,
) -> TestResult {
    let teams = message("e2", Destination::Teams);
    let slack = message("e2", Destination::SlackChannel("#appsec".into()));
    h.queue()
        .enqueue(&[teams.clone(), slack.clone(), teams.clone(), slack.clone()])
        .await?;

    let received = h.drain(Channel::Msteams).await?;
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0].message, teams);
    let received = h.drain(Channel::Slack).await?;
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0].message, slack);
    Ok(())
}

async fn given_a_received_message_then_it_stays_hidden_until_its_redelivery_is_moved_up(
    h: &mut QueueHarness,
) -> TestResult {
    let queued = message("e3", Destination::SlackChannel("#appsec".into()));
    h.queue().enqueue(std::slice::from_ref(&queued)).await?;

    let first = h.receive(Channel::Slack).await?;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].receive_count, 1);
    // Hidden for the visibility timeout...
    assert!(h.receive(Channel::Slack).await?.is_empty());

    // ...unless the sender brings its redelivery forward (a retry whose delay is over).
    h.redelivery()
        .delay_redelivery(Channel::Slack, &first[0].receipt_handle, Duration::ZERO)
        .await?;
    let second = h.receive(Channel::Slack).await?;
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].message, queued);
    assert_eq!(second[0].receive_count, 2);

    // A later delay hides it again.
    h.redelivery()
        .delay_redelivery(
            Channel::Slack,
            &second[0].receipt_handle,
            Duration::from_secs(60),
        )
        .await?;
    assert!(h.receive(Channel::Slack).await?.is_empty());
    Ok(())
}

async fn given_a_stale_or_unknown_receipt_then_delay_redelivery_is_no_error_and_changes_nothing(
    h: &mut QueueHarness,
) -> TestResult {
    let queued = message("e4", Destination::Email("alice@example.com".into()));
    h.queue().enqueue(std::slice::from_ref(&queued)).await?;
    let first = h.receive(Channel::Mail).await?;
    assert_eq!(first.len(), 1);

    // The receipt of another channel's queue, and one no queue ever handed out.
    h.redelivery()
        .delay_redelivery(Channel::Slack, &first[0].receipt_handle, Duration::ZERO)
        .await?;
    h.redelivery()
        .delay_redelivery(Channel::Mail, "not-a-receipt-handle", Duration::ZERO)
        .await?;
    assert!(
        h.receive(Channel::Mail).await?.is_empty(),
        "the message is still hidden"
    );
    assert!(h.receive(Channel::Slack).await?.is_empty());
    Ok(())
}

async fn given_the_alert_channel_then_delay_redelivery_is_an_error(
    h: &mut QueueHarness,
) -> TestResult {
    let result = h
        .redelivery()
        .delay_redelivery(Channel::Alert, "some-receipt", Duration::ZERO)
        .await;
    assert!(result.is_err(), "{result:?}");
    Ok(())
}
