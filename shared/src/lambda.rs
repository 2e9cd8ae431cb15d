//! What the functions' `main.rs` share on AWS Lambda: their configuration, read once from the
//! environment ([`QueueingConfig`] for the functions that queue deliveries, [`SenderConfig`]
//! for the senders), and the adapters every channel's [`Sender`](crate::sender::Sender) runs
//! over (the DynamoDB table, the SQS queues for delayed retries, the system clock). Each
//! sender's `main.rs` builds its transport, then calls [`SenderParts::sender`] and
//! [`run_on_lambda`](crate::sender::run_on_lambda).

use crate::adapters::{ChannelQueues, DynamoDbStore, SqsQueue};
use crate::config::{AwsFunctionConfig, ConfigError};
use crate::ports::{HeraldStore, SystemClock};
use crate::sender::{RetryPolicy, SenderParts};
use crate::url_guard::allow_private_from_env;
use std::sync::Arc;

/// The environment of a function that records events and queues their deliveries
/// (`event-intake`, `scheduler`): the table, the role claim and the four queue URLs.
#[derive(Debug, Clone)]
pub struct QueueingConfig {
    pub function: AwsFunctionConfig,
    pub queues: ChannelQueues,
}

impl QueueingConfig {
    /// Reads the configuration; names the first missing variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            function: AwsFunctionConfig::from_env()?,
            queues: ChannelQueues::from_env()?,
        })
    }
}

/// The environment of a sender function: the table, the four queue URLs (a retry's delay is
/// a change of visibility on its own channel's queue, and `ChannelQueues` names them all), the
/// retry policy, and whether private targets are allowed.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    pub queueing: QueueingConfig,
    pub policy: RetryPolicy,
    /// `HERALD_ALLOW_PRIVATE_TARGETS`.
    pub allow_private: bool,
}

impl SenderConfig {
    /// Reads the configuration; names the first missing or malformed variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            queueing: QueueingConfig::from_env()?,
            policy: RetryPolicy::from_env()?,
            allow_private: allow_private_from_env(),
        })
    }
}

/// A sender function's AWS side: the SDK configuration (for the channel's own clients) and
/// the parts every sender shares.
#[derive(Debug, Clone)]
pub struct AwsSender {
    pub sdk: aws_config::SdkConfig,
    pub parts: SenderParts,
}

impl AwsSender {
    /// Loads the SDK configuration and builds the store and the redelivery queue.
    pub async fn connect(config: SenderConfig) -> Self {
        let sdk = crate::budget::sdk_config().await;
        let store: Arc<dyn HeraldStore> = Arc::new(DynamoDbStore::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            config.queueing.function.table_name,
        ));
        let parts = SenderParts {
            store,
            redelivery: Arc::new(SqsQueue::new(
                aws_sdk_sqs::Client::new(&sdk),
                config.queueing.queues,
            )),
            policy: config.policy,
            clock: Arc::new(SystemClock),
        };
        Self { sdk, parts }
    }
}
