//! Adapters: the ports implemented on real technology.
//!
//! - [`EmbeddedStore`]: SQLite in WAL mode, in-process and durable, for `herald-local`.
//! - [`DynamoDbStore`]: one DynamoDB table for AWS.
//! - [`EmbeddedQueue`]: the delivery queues, with SQS's semantics, in the embedded store's
//!   database.
//! - [`SqsQueue`]: the delivery queues on SQS, one queue per non-alert channel.
//! - [`SesMailer`]: the `Mailer` on Amazon SES (v2 `SendEmail`).
//! - [`OutboxMailer`]: the `Mailer` writing one RFC 5322 message per file, for `herald-local`.
//! - [`SecretsManagerToken`]: the Slack bot token from AWS Secrets Manager.
//! - [`WebhookClient`]: one guarded, signed POST to a webhook endpoint (the webhooks sender's
//!   transport and the settings API's ping).

pub mod defectdojo_api;
pub mod dynamodb;
pub mod embedded;
pub mod outbox;
pub mod secrets_manager;
pub mod ses;
pub mod sqs;
pub mod webhook_client;

pub use dynamodb::DynamoDbStore;
pub use embedded::EmbeddedStore;
pub use embedded::queue::{DeadLetter, EmbeddedQueue, QueueConfig, QueueDepth, ReceivedMessage};
pub use outbox::OutboxMailer;
pub use secrets_manager::SecretsManagerToken;
pub use ses::SesMailer;
pub use sqs::{ChannelQueues, SqsQueue};
pub use webhook_client::{Post, PostError, WebhookClient};

/// The due lists both stores index the scheduled records on: which list a record is on (by
/// its state) and the date it is due there. A record on no list is never read by a check.
pub(crate) mod due {
    use crate::domain::EngagementStatus;
    use crate::domain::checks::{Engagement, Finding, RiskAcceptance};
    use time::Date;

    /// Pending engagements, by `target_start`.
    pub const ENGAGEMENT_START: &str = "ENGAGEMENT_START";
    /// Engagements in progress, by `target_end`.
    pub const ENGAGEMENT_END: &str = "ENGAGEMENT_END";
    /// Active findings that are not Info, by `sla_expiration_date`.
    pub const SLA: &str = "SLA";
    /// Risk acceptances with an expiry, by `expiration_date`.
    pub const RISK_EXPIRY: &str = "RISK_EXPIRY";

    pub fn engagement(e: &Engagement) -> Option<(&'static str, Date)> {
        if e.status.is_pending() {
            Some((ENGAGEMENT_START, e.target_start))
        } else if e.status == EngagementStatus::InProgress {
            Some((ENGAGEMENT_END, e.target_end))
        } else {
            None
        }
    }

    pub fn finding(f: &Finding) -> Option<(&'static str, Date)> {
        match f.sla_expiration_date {
            Some(date) if f.is_sla_tracked() => Some((SLA, date)),
            _ => None,
        }
    }

    pub fn risk_acceptance(ra: &RiskAcceptance) -> Option<(&'static str, Date)> {
        ra.expiration_date.map(|date| (RISK_EXPIRY, date))
    }
}
