//! Adapters: the ports implemented on real technology.
//!
//! - [`EmbeddedStore`]: SQLite in WAL mode, in-process and durable, for `herald-local`.
//! - [`DynamoDbStore`]: one DynamoDB table for AWS.
//! - [`EmbeddedQueue`]: the delivery queues, with SQS's semantics, in the embedded store's
//!   database.
//! - [`SqsQueue`]: the delivery queues on SQS, one queue per non-alert channel.

pub mod dynamodb;
pub mod embedded;
pub mod embedded_queue;
pub mod sqs;

pub use dynamodb::DynamoDbStore;
pub use embedded::EmbeddedStore;
pub use embedded_queue::{DeadLetter, EmbeddedQueue, QueueConfig, QueueDepth, ReceivedMessage};
pub use sqs::{ChannelQueues, SqsQueue};
