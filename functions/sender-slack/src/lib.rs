//! Herald's Slack sender (`sender-slack`): deliveries from the Slack queue to Slack's
//! `chat.postMessage`, through the shared [`herald_shared::sender::Sender`].
//!
//! - [`message`]: the Block Kit message of each event type, from templates compiled into
//!   the binary.
//! - [`slack`]: [`SlackTransport`], the `Transport` for Slack: the system channel, or a
//!   user's direct messages (their Slack id looked up once from `slack_email` and kept).
//!   The bot token comes from AWS Secrets Manager where the deployment keeps it there
//!   ([`herald_shared::adapters::SecretsManagerToken`]).
//! - [`handler`]: the Lambda SQS handler.

pub mod handler;
pub mod message;
pub mod slack;

pub use handler::function_handler;
pub use message::{SlackMessage, Templates};
pub use slack::{SlackSetupError, SlackTransport};

/// Slack's Web API base URL, `https://slack.com/api` unless `SLACK_API_URL` says otherwise
/// (tests and emulators).
pub const DEFAULT_SLACK_API_URL: &str = "https://slack.com/api";

/// `SLACK_API_URL`, or [`DEFAULT_SLACK_API_URL`]; without a trailing `/`.
pub fn slack_api_url_from_env() -> String {
    herald_shared::config::optional("SLACK_API_URL", DEFAULT_SLACK_API_URL)
        .trim()
        .trim_end_matches('/')
        .to_owned()
}
