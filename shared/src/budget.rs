//! How long one invocation of each queue-triggered function may take at worst, derived in one
//! place from the calls one record makes: the template's `Timeout`s and its queues'
//! `VisibilityTimeout`s are checked against it (`tests/integration/template_budget.rs`).
//!
//! A record's calls run one after another, and a batch's records run together, so a batch
//! takes as long as its slowest record. Every AWS call is bounded by the SDK's timeouts
//! ([`AWS_OPERATION_TIMEOUT`], retries included: [`sdk_config`] sets them), every HTTP call
//! by its client's timeout. A function whose timeout were shorter than that worst case could
//! be stopped between a send and its outcome; one whose queue's visibility timeout were
//! shorter than six times its own (as AWS asks) could see a message come back while the first
//! invocation still works on it.

use std::time::Duration;

/// How long an AWS SDK call may take to connect.
pub const AWS_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one attempt of an AWS SDK call may take.
pub const AWS_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long an AWS SDK call may take in all, its retries included.
pub const AWS_OPERATION_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one call to Slack's Web API may take (the Slack sender's client timeout).
pub const SLACK_HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest `webhooks_notifications_timeout` the system settings accept: one Teams or
/// webhook post waits at most this long.
pub const MAX_POST_TIMEOUT: Duration =
    Duration::from_secs(crate::domain::system::MAX_WEBHOOKS_TIMEOUT_SECONDS as u64);
/// What a function needs beyond its calls: start-up, parsing, logging.
pub const OVERHEAD: Duration = Duration::from_secs(5);
/// What AWS asks of a queue that triggers a function: a visibility timeout at least this many
/// times the function's timeout.
pub const VISIBILITY_FACTOR: u32 = 6;

/// The calls one record makes at worst, one after another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// The function's crate (`functions/<crate>`).
    pub function: &'static str,
    /// AWS calls (DynamoDB, SQS, SES, Secrets Manager).
    pub aws_calls: u32,
    /// HTTP calls to the channel's service.
    pub http_calls: u32,
    /// The longest one HTTP call may take.
    pub http_timeout: Duration,
}

/// The store calls every sender makes for a record at worst: claim the delivery, read its
/// event, the system settings and the recipient, record the outcome, and for a failure the
/// administrators, the hour's first time and their alerts, then the message's new visibility.
const SENDER_STORE_CALLS: u32 = 9;

/// Every queue-triggered function.
pub const SENDERS: [Budget; 4] = [
    // The bot token (Secrets Manager), `users.lookupByEmail` and `chat.postMessage` (10 s
    // each), and the Slack id found.
    Budget {
        function: "sender-slack",
        aws_calls: SENDER_STORE_CALLS + 2,
        http_calls: 2,
        http_timeout: SLACK_HTTP_TIMEOUT,
    },
    // One SES SendEmail.
    Budget {
        function: "sender-email",
        aws_calls: SENDER_STORE_CALLS + 1,
        http_calls: 0,
        http_timeout: Duration::ZERO,
    },
    // One post, waiting at most `webhooks_notifications_timeout` (60 s at most).
    Budget {
        function: "sender-teams",
        aws_calls: SENDER_STORE_CALLS,
        http_calls: 1,
        http_timeout: MAX_POST_TIMEOUT,
    },
    // One post as above; a resting endpoint's message is parked (one more write).
    Budget {
        function: "sender-webhook",
        aws_calls: SENDER_STORE_CALLS + 1,
        http_calls: 1,
        http_timeout: MAX_POST_TIMEOUT,
    },
];

impl Budget {
    /// The longest a record (and so a batch) can take.
    pub fn worst_case(&self) -> Duration {
        AWS_OPERATION_TIMEOUT * self.aws_calls + self.http_timeout * self.http_calls
    }

    /// The function timeout to set: the worst case and the overhead, in whole seconds.
    pub fn function_timeout(&self) -> Duration {
        let total = self.worst_case() + OVERHEAD;
        Duration::from_secs(total.as_secs() + u64::from(total.subsec_nanos() > 0))
    }

    /// The shortest visibility timeout its queue may have.
    pub fn min_visibility_timeout(&self) -> Duration {
        self.function_timeout() * VISIBILITY_FACTOR
    }

    /// The budget of a function, by crate name.
    pub fn of(function: &str) -> Option<Budget> {
        SENDERS.iter().copied().find(|b| b.function == function)
    }
}

/// The AWS SDK configuration every function loads: the environment's, with the timeouts the
/// budgets count on.
pub async fn sdk_config() -> aws_config::SdkConfig {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(AWS_CONNECT_TIMEOUT)
        .operation_attempt_timeout(AWS_ATTEMPT_TIMEOUT)
        .operation_timeout(AWS_OPERATION_TIMEOUT)
        .build();
    aws_config::from_env().timeout_config(timeouts).load().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_the_budgets_then_each_timeout_covers_its_worst_case_and_the_send_lease_covers_them_all()
     {
        for budget in SENDERS {
            assert!(
                budget.function_timeout() > budget.worst_case(),
                "{budget:?}"
            );
            // A claim outlives the invocation that holds it, so a slow send is never
            // claimed again while it runs.
            assert!(
                crate::sender::SEND_LEASE >= budget.function_timeout(),
                "{budget:?}: {:?}",
                budget.function_timeout()
            );
        }
        let slack = Budget::of("sender-slack").map(|b| b.function_timeout());
        assert_eq!(slack, Some(Duration::from_secs(80)));
    }
}
