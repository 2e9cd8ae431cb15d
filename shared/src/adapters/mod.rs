//! Adapters: the ports implemented on real technology.
//!
//! - [`EmbeddedStore`]: SQLite in WAL mode, in-process and durable, for `herald-local`.
//! - [`DynamoDbStore`]: one DynamoDB table for AWS.
//! - [`EmbeddedQueue`]: the delivery queues, with SQS's semantics, in the embedded store's
//!   database.
//! - [`SqsQueue`]: the delivery queues on SQS, one queue per non-alert channel.
//! - [`SesMailer`]: the `Mailer` on Amazon SES (v2 `SendEmail`).
//! - [`OutboxMailer`]: the `Mailer` writing one RFC 5322 message per file, for `herald-local`.

pub mod dynamodb;
pub mod embedded;
pub mod embedded_queue;
pub mod outbox;
pub mod ses;
pub mod sqs;

pub use dynamodb::DynamoDbStore;
pub use embedded::EmbeddedStore;
pub use embedded_queue::{DeadLetter, EmbeddedQueue, QueueConfig, QueueDepth, ReceivedMessage};
pub use outbox::OutboxMailer;
pub use ses::SesMailer;
pub use sqs::{ChannelQueues, SqsQueue};
