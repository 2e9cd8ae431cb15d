//! A token from AWS Secrets Manager: the Slack bot token, for deployments that keep it out of
//! the table (`SLACK_TOKEN_SECRET_ARN`, the template's `SlackTokenSecretArn`), and
//! DefectDojo's API token for the sync (`HERALD_DEFECTDOJO_TOKEN_SECRET_ARN`,
//! `DefectDojoTokenSecretArn`; see [`SecretsManagerToken::named`]).
//!
//! The secret's `SecretString` is the token itself (`xoxb-...`), or a JSON object with it
//! under `token` or `slack_token`. It is read at the first send and kept for
//! [`TOKEN_CACHE_TTL`], so a rotated token is in use within minutes without a read per
//! message. When the secret is configured it wins over a `slack_token` in the system
//! settings. A secret that cannot be read makes the send transient (it is retried); the
//! error names the secret's ARN and the service's error code, never its value.

use crate::domain::Secret;
use crate::ports::SendError;
use serde_json::Value;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// How long a token read from Secrets Manager is used before it is read again.
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(300);

/// The environment variable naming the secret.
pub const SECRET_ENV: &str = "SLACK_TOKEN_SECRET_ARN";

/// Reads (and caches) the Slack token from one Secrets Manager secret.
pub struct SecretsManagerToken {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
    ttl: Duration,
    /// What the token is, in errors ("the Slack token").
    what: &'static str,
    cached: Mutex<Option<(Instant, Secret)>>,
}

impl std::fmt::Debug for SecretsManagerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsManagerToken")
            .field("secret_id", &self.secret_id)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl SecretsManagerToken {
    /// The token in `secret_id` (an ARN or a name), read through `client`.
    pub fn new(client: aws_sdk_secretsmanager::Client, secret_id: impl Into<String>) -> Self {
        Self::with_ttl(client, secret_id, TOKEN_CACHE_TTL)
    }

    /// The same, kept for `ttl` (tests).
    pub fn with_ttl(
        client: aws_sdk_secretsmanager::Client,
        secret_id: impl Into<String>,
        ttl: Duration,
    ) -> Self {
        Self {
            client,
            secret_id: secret_id.into(),
            ttl,
            what: "the Slack token",
            cached: Mutex::new(None),
        }
    }

    /// The same for another token, named `what` in errors ("DefectDojo's API token").
    pub fn named(mut self, what: &'static str) -> Self {
        self.what = what;
        self
    }

    /// The secret's ARN or name (for logs).
    pub fn secret_id(&self) -> &str {
        &self.secret_id
    }

    /// The token: the cached one while it is fresh, else the secret's current value.
    pub async fn token(&self) -> Result<Secret, SendError> {
        let mut cached = self.cached.lock().await;
        if let Some((read_at, token)) = cached.as_ref()
            && read_at.elapsed() < self.ttl
        {
            return Ok(token.clone());
        }
        let output = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(|e| {
                let code = e
                    .as_service_error()
                    .and_then(|s| aws_sdk_secretsmanager::error::ProvideErrorMetadata::code(s))
                    .unwrap_or("no answer")
                    .to_owned();
                SendError::Transient {
                    reason: format!(
                        "{} could not be read from AWS Secrets Manager ({}): {code}",
                        self.what, self.secret_id
                    ),
                    retry_after: None,
                }
            })?;
        let token = output
            .secret_string()
            .ok_or("it holds no SecretString")
            .and_then(token_from_secret_string)
            .map_err(|why| SendError::Transient {
                reason: format!(
                    "the secret holding {} in AWS Secrets Manager ({}) is unusable: {why}",
                    self.what, self.secret_id
                ),
                retry_after: None,
            })?;
        let token = Secret::new(token);
        *cached = Some((Instant::now(), token.clone()));
        Ok(token)
    }
}

/// The token in a secret's `SecretString`: the whole string, or the `token` or `slack_token`
/// member of a JSON object. The reason for a refusal never quotes the value.
pub fn token_from_secret_string(value: &str) -> Result<String, &'static str> {
    let value = value.trim();
    let token = if value.starts_with('{') {
        let object: Value =
            serde_json::from_str(value).map_err(|_| "it is neither a token nor a JSON object")?;
        ["token", "slack_token"]
            .iter()
            .find_map(|key| object.get(*key).and_then(Value::as_str))
            .ok_or("its JSON object has no string `token` or `slack_token`")?
            .trim()
            .to_owned()
    } else {
        value.to_owned()
    };
    if token.is_empty() {
        return Err("the token is empty");
    }
    if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("the token contains white space or control characters");
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::token_from_secret_string;

    #[test]
    fn the_secret_string_is_the_token_or_a_json_object_holding_it() {
        let ok = |v: &str| token_from_secret_string(v).unwrap_or_else(|e| panic!("{v}: {e}"));
        assert_eq!(ok("xoxb-1-2-abc"), "xoxb-1-2-abc");
        assert_eq!(ok(" xoxb-1\n"), "xoxb-1");
        assert_eq!(ok(r#"{"token": "xoxb-2"}"#), "xoxb-2");
        assert_eq!(ok(r#"{"slack_token": "xoxb-3", "other": 1}"#), "xoxb-3");
        for bad in [
            "",
            "  ",
            "{not json",
            r#"{"other": "xoxb"}"#,
            r#"{"token": 5}"#,
            r#"{"token": ""}"#,
            "xoxb has space",
        ] {
            let why = token_from_secret_string(bad).err();
            assert!(why.is_some(), "{bad:?} was accepted");
            assert!(!why.unwrap_or_default().contains("xoxb"), "{why:?}");
        }
    }
}
