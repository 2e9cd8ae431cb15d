//! `SlackTransport`: Slack deliveries through Slack's Web API with the system's bot token.
//!
//! - `slack:channel:<c>` → `chat.postMessage` to channel `c`.
//! - `slack:user:<u>` → `chat.postMessage` to `u`'s Slack member id (a direct message): their
//!   `slack_user_id`, else the id `users.lookupByEmail` finds for their `slack_email`, which
//!   is then stored on the user so the lookup happens once.
//!
//! How Slack's answers map to outcomes: HTTP 429 → transient, after Slack's `Retry-After`;
//! 5xx, timeouts and connection errors → transient; any other non-2xx (redirects are not
//! followed) → permanent. A 2xx answer counts only by Slack's `ok` field (DefectDojo looked
//! for the substring "error" anywhere in the reply): `ok: true` is success; `ok: false`
//! with `ratelimited`, `internal_error`, `fatal_error`, `service_unavailable` or
//! `request_timeout` is transient, any other error (`channel_not_found`, `invalid_auth`,
//! `users_not_found`, ...) permanent, "Slack answered <error>".
//!
//! The token is the system settings' `slack_token`, or, when the deployment names one, the
//! Secrets Manager secret's (see [`crate::token`]). It is sent in the `Authorization` header
//! only. Error texts (recorded on the
//! delivery and shown to administrators) and logs never carry it, nor any header, nor a
//! request or response body.

use crate::message::Templates;
use async_trait::async_trait;
use herald_shared::adapters::SecretsManagerToken;
use herald_shared::adapters::webhook_client::retry_after;
use herald_shared::domain::{Channel, Destination, User, Username};
use herald_shared::ports::DirectoryStore;
use herald_shared::ports::{SendError, SendRequest, Transport};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{StatusCode, Url};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// How long one Slack call may take, connection included.
pub const DEFAULT_TIMEOUT: Duration = herald_shared::budget::SLACK_HTTP_TIMEOUT;

/// `ok: false` errors worth retrying (Slack's own transient conditions).
pub const TRANSIENT_SLACK_ERRORS: [&str; 5] = [
    "ratelimited",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
];

/// Why the transport could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SlackSetupError {
    /// The HTTP client could not be built (TLS set-up).
    #[error("the HTTP client for Slack could not be built: {0}")]
    Client(#[from] reqwest::Error),
    /// A template does not compile.
    #[error("a Slack template does not compile: {0}")]
    Templates(#[from] minijinja::Error),
    /// `SLACK_API_URL` is not an http(s) URL.
    #[error("SLACK_API_URL must be an http:// or https:// URL, got {0:?}")]
    ApiUrl(String),
}

/// Sends Slack deliveries (see the module docs).
pub struct SlackTransport {
    client: reqwest::Client,
    api_url: String,
    timeout: Duration,
    store: Arc<dyn DirectoryStore>,
    templates: Templates,
    /// Where the token comes from when it is not the system settings' `slack_token`.
    token_secret: Option<Arc<SecretsManagerToken>>,
}

impl std::fmt::Debug for SlackTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackTransport")
            .field("api_url", &self.api_url)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl SlackTransport {
    /// A transport calling Slack's Web API at `api_url` (e.g. `https://slack.com/api`), with
    /// [`DEFAULT_TIMEOUT`]; `store` keeps the Slack ids it looks up.
    pub fn new(
        store: Arc<dyn DirectoryStore>,
        api_url: &str,
    ) -> Result<SlackTransport, SlackSetupError> {
        Self::with_timeout(store, api_url, DEFAULT_TIMEOUT)
    }

    /// The same with another timeout per call (tests).
    pub fn with_timeout(
        store: Arc<dyn DirectoryStore>,
        api_url: &str,
        timeout: Duration,
    ) -> Result<SlackTransport, SlackSetupError> {
        let api_url = api_url.trim().trim_end_matches('/').to_owned();
        if Url::parse(&api_url).map_or(true, |u| !matches!(u.scheme(), "http" | "https")) {
            return Err(SlackSetupError::ApiUrl(api_url));
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("herald-sender-slack/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(SlackTransport {
            client,
            api_url,
            timeout,
            store,
            templates: Templates::new()?,
            token_secret: None,
        })
    }

    /// Takes the token from a Secrets Manager secret rather than the system settings.
    pub fn with_token_secret(mut self, secret: SecretsManagerToken) -> Self {
        self.token_secret = Some(Arc::new(secret));
        self
    }

    /// The Web API method's URL.
    fn method_url(&self, method: &str) -> Result<Url, SendError> {
        Url::parse(&format!("{}/{method}", self.api_url))
            .map_err(|_| permanent(format!("the Slack API URL for {method} is invalid")))
    }

    /// The Slack id to send `user` a direct message: theirs, or looked up once from their
    /// `slack_email` and stored.
    async fn direct_message_channel(
        &self,
        user: &Username,
        recipient: Option<&User>,
        token: &str,
    ) -> Result<String, SendError> {
        let Some(recipient) = recipient.filter(|r| &r.username == user) else {
            return Err(permanent(format!("user {user} is not in the directory")));
        };
        if let Some(id) = recipient
            .profile
            .slack_user_id
            .as_deref()
            .filter(|id| !id.is_empty())
        {
            return Ok(id.to_owned());
        }
        let Some(email) = recipient
            .profile
            .slack_email
            .as_deref()
            .filter(|e| !e.is_empty())
        else {
            return Err(permanent(format!(
                "user {user} has neither a slack_user_id nor a slack_email"
            )));
        };
        let mut url = self.method_url("users.lookupByEmail")?;
        url.query_pairs_mut().append_pair("email", email);
        let request = self.client.get(url);
        let answer = self
            .call("users.lookupByEmail", request, token)
            .await
            .map_err(|e| with_context(e, &format!(" (looking up {user}'s slack_email)")))?;
        let id = answer
            .pointer("/user/id")
            .and_then(Value::as_str)
            .filter(|id| is_slack_id(id))
            .ok_or_else(|| {
                permanent(format!(
                    "Slack's users.lookupByEmail answer for {user} has no user id"
                ))
            })?;
        match self.store.set_slack_user_id(user, email, id).await {
            Ok(true) => tracing::info!(%user, "stored the Slack id found for slack_email"),
            Ok(false) => tracing::warn!(
                %user,
                "user deleted or slack_email changed meanwhile; Slack id not stored"
            ),
            // Not worth failing the message for: the next one looks it up again.
            Err(e) => tracing::warn!(%user, error = %e, "could not store the Slack id"),
        }
        Ok(id.to_owned())
    }

    /// Sends one Web API call with the bearer token and reads Slack's answer (see the module
    /// docs for how it maps to outcomes). `Ok` is the answer of an `ok: true` reply.
    async fn call(
        &self,
        method: &str,
        request: reqwest::RequestBuilder,
        token: &str,
    ) -> Result<Value, SendError> {
        self.call_unredacted(method, request, token)
            .await
            .map_err(|e| redact(e, token))
    }

    async fn call_unredacted(
        &self,
        method: &str,
        request: reqwest::RequestBuilder,
        token: &str,
    ) -> Result<Value, SendError> {
        let mut bearer = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| permanent("the Slack token is not a valid header value".into()))?;
        bearer.set_sensitive(true);
        let response = request
            .header(AUTHORIZATION, bearer)
            .send()
            .await
            .map_err(|e| self.request_failed(method, &e))?;
        let status = response.status();
        let retry_after = retry_after(&response);
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(SendError::Transient {
                reason: format!("Slack rate-limited {method} (HTTP 429)"),
                retry_after,
            });
        }
        if status.is_server_error() {
            return Err(transient(format!(
                "Slack answered {method} with HTTP {status}"
            )));
        }
        if !status.is_success() {
            return Err(permanent(format!(
                "Slack answered {method} with HTTP {status}"
            )));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| self.request_failed(method, &e))?;
        let answer: Value = serde_json::from_slice(&body).map_err(|_| {
            permanent(format!(
                "Slack answered {method} with HTTP {status} but no JSON"
            ))
        })?;
        match answer.get("ok") {
            Some(Value::Bool(true)) => Ok(answer),
            _ => {
                let error = answer
                    .get("error")
                    .and_then(Value::as_str)
                    .map(error_code)
                    .unwrap_or("unknown_error");
                if TRANSIENT_SLACK_ERRORS.contains(&error) {
                    Err(SendError::Transient {
                        reason: format!("Slack answered {error}"),
                        retry_after,
                    })
                } else {
                    Err(permanent(format!("Slack answered {error}")))
                }
            }
        }
    }

    /// A request that got no answer: always transient. The text names the kind of failure,
    /// never the URL (it may hold an email address) or a header.
    fn request_failed(&self, method: &str, error: &reqwest::Error) -> SendError {
        let what = if error.is_timeout() {
            format!("timed out after {} s", self.timeout.as_secs_f64())
        } else if error.is_connect() {
            "could not connect".to_owned()
        } else if error.is_body() || error.is_decode() {
            "the answer could not be read".to_owned()
        } else {
            "the request failed".to_owned()
        };
        transient(format!("Slack {method}: {what}"))
    }
}

#[async_trait]
impl Transport for SlackTransport {
    fn channel(&self) -> Channel {
        Channel::Slack
    }

    async fn send(&self, request: &SendRequest<'_>) -> Result<(), SendError> {
        let system = request.system;
        if !system.enable_slack_notifications {
            return Err(permanent(
                "Slack notifications are disabled in the system settings".into(),
            ));
        }
        let from_secret = match &self.token_secret {
            Some(secret) => Some(secret.token().await?),
            None => None,
        };
        let Some(token) = from_secret
            .as_ref()
            .or(system.slack_token.as_ref())
            .map(|t| t.expose())
            .filter(|t| !t.is_empty())
        else {
            return Err(permanent(
                "no Slack token is configured (system settings slack_token)".into(),
            ));
        };
        let message = self
            .templates
            .render(request.event, system)
            .map_err(|e| permanent(e.to_string()))?;
        let channel = match &request.delivery.destination {
            Destination::SlackChannel(channel) if !channel.trim().is_empty() => channel.clone(),
            Destination::SlackChannel(_) => {
                return Err(permanent(
                    "no Slack channel is configured (system settings slack_channel)".into(),
                ));
            }
            Destination::SlackUser(user) => {
                self.direct_message_channel(user, request.recipient, token)
                    .await?
            }
            other => {
                return Err(permanent(format!("{other} is not a Slack destination")));
            }
        };
        let mut body = json!({
            "channel": channel,
            "text": message.text,
            "blocks": message.blocks,
        });
        if !system.slack_username.trim().is_empty() {
            body["username"] = Value::String(system.slack_username.clone());
        }
        let request_builder = self
            .client
            .post(self.method_url("chat.postMessage")?)
            .header(CONTENT_TYPE, "application/json; charset=utf-8")
            .body(body.to_string());
        self.call("chat.postMessage", request_builder, token)
            .await
            .map(|_| ())
    }
}

fn permanent(reason: String) -> SendError {
    SendError::Permanent { reason }
}

fn transient(reason: String) -> SendError {
    SendError::Transient {
        reason,
        retry_after: None,
    }
}

/// `error` with `suffix` added to its reason.
fn with_context(error: SendError, suffix: &str) -> SendError {
    match error {
        SendError::Transient {
            reason,
            retry_after,
        } => SendError::Transient {
            reason: reason + suffix,
            retry_after,
        },
        SendError::Permanent { reason } => permanent(reason + suffix),
        SendError::Parked { reason } => SendError::Parked {
            reason: reason + suffix,
        },
    }
}

/// The token never leaves in an error text, whatever Slack echoed.
fn redact(error: SendError, token: &str) -> SendError {
    let clean = |reason: String| reason.replace(token, "[redacted]");
    match error {
        SendError::Transient {
            reason,
            retry_after,
        } => SendError::Transient {
            reason: clean(reason),
            retry_after,
        },
        SendError::Permanent { reason } => permanent(clean(reason)),
        SendError::Parked { reason } => SendError::Parked {
            reason: clean(reason),
        },
    }
}

/// Slack's error code as shown: codes are short `snake_case` words; anything else (which
/// could be anything Slack or a proxy echoed) is not repeated.
fn error_code(code: &str) -> &str {
    let plausible = !code.is_empty()
        && code.len() <= 64
        && code
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plausible { code } else { "unknown_error" }
}

/// Whether `id` looks like a Slack member id (`U024BE7LH`, `W0123`).
fn is_slack_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_slack_error_codes_then_only_plain_codes_are_repeated() {
        assert_eq!(error_code("channel_not_found"), "channel_not_found");
        assert_eq!(error_code("xoxb-1234-SECRET"), "unknown_error");
        assert_eq!(error_code("<script>"), "unknown_error");
        assert_eq!(error_code(&"a".repeat(65)), "unknown_error");
    }

    #[test]
    fn given_an_error_echoing_the_token_then_it_is_redacted() {
        let e = redact(
            permanent("Slack answered xoxb1secret".into()),
            "xoxb1secret",
        );
        assert_eq!(e.to_string(), "Slack answered [redacted]");
    }

    #[test]
    fn given_member_ids_then_only_alphanumeric_ones_pass() {
        assert!(is_slack_id("U024BE7LH"));
        assert!(!is_slack_id("U02 4"));
        assert!(!is_slack_id(""));
    }
}
