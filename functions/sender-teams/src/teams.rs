//! [`TeamsTransport`]: a Teams delivery (`msteams:system`, the only Teams destination) is one
//! POST of the Adaptive Card envelope to the system settings' `msteams_url`, with
//! `Content-Type: application/json`. Office connectors and Power Automate Workflows webhooks
//! both take it (Workflows answers 202).
//!
//! Before each post the URL goes through [`herald_shared::url_guard::check_url`]: http(s) only, and
//! unless private targets are allowed (`HERALD_ALLOW_PRIVATE_TARGETS=1`), never a loopback,
//! private, link-local or otherwise internal address. The request then connects only to the
//! addresses that were checked (the host is pinned in the client, so a second DNS answer
//! cannot redirect it), and redirects are not followed. Because the pin and the timeout
//! (`webhooks_notifications_timeout`) belong to the client, a client is built per delivery.
//!
//! How Teams' answers map to outcomes: 2xx → sent; 429 → transient, after its `Retry-After`;
//! 5xx, timeouts, connection errors and a host that does not resolve → transient; any other
//! status → permanent, "Teams answered HTTP <code>"; Teams switched off, no URL, or a URL the
//! guard refuses → permanent, before any request.
//!
//! The webhook URL carries a signature: error texts (recorded on the delivery and shown to
//! administrators) and logs call it "the Teams webhook" and never repeat it, nor any body.

use crate::message::{Templates, envelope};
use async_trait::async_trait;
use herald_shared::adapters::webhook_client::retry_after;
use herald_shared::domain::{Channel, Destination};
use herald_shared::ports::{SendError, SendRequest, Transport};
use herald_shared::url_guard::{OutboundError, check_url};
use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use std::time::Duration;

/// The timeout when the system settings say none (`webhooks_notifications_timeout` = 0).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the transport could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TeamsSetupError {
    /// A template does not compile.
    #[error("a Teams template does not compile: {0}")]
    Templates(#[from] minijinja::Error),
}

/// Sends Teams deliveries (see the module docs).
pub struct TeamsTransport {
    templates: Templates,
    allow_private: bool,
}

impl std::fmt::Debug for TeamsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TeamsTransport")
            .field("allow_private", &self.allow_private)
            .finish_non_exhaustive()
    }
}

impl TeamsTransport {
    /// A transport; `allow_private` lets the Teams URL point at loopback or private addresses
    /// (`HERALD_ALLOW_PRIVATE_TARGETS=1`, see [`herald_shared::url_guard::allow_private_from_env`]).
    pub fn new(allow_private: bool) -> Result<TeamsTransport, TeamsSetupError> {
        Ok(TeamsTransport {
            templates: Templates::new()?,
            allow_private,
        })
    }

    /// A client that connects only to the vetted addresses, follows no redirect, and gives up
    /// after `timeout`.
    fn client(
        &self,
        guarded: &herald_shared::url_guard::GuardedUrl,
        timeout: Duration,
    ) -> Result<reqwest::Client, SendError> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("herald-sender-teams/", env!("CARGO_PKG_VERSION")));
        if let Some(domain) = &guarded.domain {
            builder = builder.resolve_to_addrs(domain, &guarded.addrs);
        }
        builder
            .build()
            .map_err(|_| transient("the HTTP client for the Teams webhook could not be built"))
    }
}

#[async_trait]
impl Transport for TeamsTransport {
    fn channel(&self) -> Channel {
        Channel::Msteams
    }

    async fn send(&self, request: &SendRequest<'_>) -> Result<(), SendError> {
        let system = request.system;
        if request.delivery.destination != Destination::Teams {
            return Err(permanent(format!(
                "{} is not a Teams destination",
                request.delivery.destination
            )));
        }
        if !system.enable_msteams_notifications {
            return Err(permanent(
                "Microsoft Teams notifications are disabled in the system settings",
            ));
        }
        let url = system
            .msteams_url
            .as_ref()
            .map_or("", |url| url.expose().trim());
        if url.is_empty() {
            return Err(permanent(
                "no Teams webhook is configured (system settings msteams_url)",
            ));
        }
        let card =
            self.templates
                .render(request.event, system)
                .map_err(|e| SendError::Permanent {
                    reason: e.to_string(),
                })?;
        let guarded = check_url(url, self.allow_private).await.map_err(refused)?;
        let timeout = match system.webhooks_notifications_timeout {
            0 => DEFAULT_TIMEOUT,
            seconds => Duration::from_secs(u64::from(seconds)),
        };
        let response = self
            .client(&guarded, timeout)?
            .post(guarded.url.as_str())
            .header(CONTENT_TYPE, "application/json")
            .body(envelope(card).to_string())
            .send()
            .await
            .map_err(|e| request_failed(&e, timeout))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(SendError::Transient {
                reason: "the Teams webhook rate-limited the message (HTTP 429)".into(),
                retry_after: retry_after(&response),
            });
        }
        if status.is_server_error() {
            return Err(transient(&format!(
                "Teams answered HTTP {}",
                status.as_u16()
            )));
        }
        Err(permanent(format!(
            "Teams answered HTTP {}",
            status.as_u16()
        )))
    }
}

fn permanent(reason: impl Into<String>) -> SendError {
    SendError::Permanent {
        reason: reason.into(),
    }
}

fn transient(reason: &str) -> SendError {
    SendError::Transient {
        reason: reason.to_owned(),
        retry_after: None,
    }
}

/// The guard's refusal; only a failed DNS lookup is worth retrying.
fn refused(error: OutboundError) -> SendError {
    let reason = format!("the Teams webhook was not called: {error}");
    if error.is_transient() {
        transient(&reason)
    } else {
        permanent(reason)
    }
}

/// A request that got no answer: always transient. The text names the kind of failure, never
/// the URL (reqwest's own error text would contain it).
fn request_failed(error: &reqwest::Error, timeout: Duration) -> SendError {
    let what = if error.is_timeout() {
        format!("timed out after {} s", timeout.as_secs_f64())
    } else if error.is_connect() {
        "could not connect".to_owned()
    } else {
        "the request failed".to_owned()
    };
    transient(&format!("the Teams webhook: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_guard_refusals_then_only_dns_failures_are_retried_and_no_url_is_shown() {
        assert!(matches!(
            refused(OutboundError::Unresolved),
            SendError::Transient { .. }
        ));
        let e = refused(OutboundError::Forbidden("loopback"));
        assert!(matches!(e, SendError::Permanent { .. }));
        assert!(
            e.to_string()
                .starts_with("the Teams webhook was not called")
        );
    }
}
