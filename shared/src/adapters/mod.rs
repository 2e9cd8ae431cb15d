//! Adapters: the ports implemented on real technology.
//!
//! - [`EmbeddedStore`]: SQLite in WAL mode, in-process and durable, for `herald-local`.
//! - [`DynamoDbStore`]: one DynamoDB table for AWS.

pub mod dynamodb;
pub mod embedded;

pub use dynamodb::DynamoDbStore;
pub use embedded::EmbeddedStore;
