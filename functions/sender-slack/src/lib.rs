//! Herald's Slack sender (`sender-slack`): deliveries from the Slack queue to Slack's
//! `chat.postMessage`, through the shared [`herald_shared::sender::Sender`].
//!
//! - [`message`]: the Block Kit message of each event type, from templates compiled into
//!   the binary.
//! - [`slack`]: [`SlackTransport`], the `Transport` for Slack: the system channel, or a
//!   user's direct messages (their Slack id looked up once from `slack_email` and kept).
//!   The bot token comes from AWS Secrets Manager where the deployment keeps it there
//!   ([`herald_shared::adapters::SecretsManagerToken`]).

pub mod message;
pub mod slack;

use herald_shared::adapters::secrets_manager::SECRET_ENV;
use herald_shared::config::ConfigError;
use herald_shared::lambda::SenderConfig;
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

/// The environment of `sender-slack`, read once: the sender's ([`SenderConfig`]), Slack's API
/// URL (`SLACK_API_URL`) and the Secrets Manager secret holding the bot token
/// (`SLACK_TOKEN_SECRET_ARN`, optional).
#[derive(Debug, Clone)]
pub struct Config {
    pub sender: SenderConfig,
    pub slack_api_url: String,
    pub token_secret: Option<String>,
}

impl Config {
    /// Reads the configuration; names the first missing or malformed variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        let token_secret = herald_shared::config::optional(SECRET_ENV, "");
        Ok(Self {
            sender: SenderConfig::from_env()?,
            slack_api_url: slack_api_url_from_env(),
            token_secret: Some(token_secret.trim().to_owned()).filter(|s| !s.is_empty()),
        })
    }
}
