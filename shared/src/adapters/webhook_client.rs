//! [`WebhookClient`] posts one body to one webhook endpoint: the webhooks sender's transport
//! is built on it, and the settings API pings new endpoints with it.
//!
//! Each request is a POST with `Content-Type: application/json`, `Accept: application/json`,
//! `User-Agent: Herald/<version>`, `X-Herald-Event: <type>`, `X-Herald-Instance: <site_url>`
//! (when set) — for an endpoint of format `defectdojo` DefectDojo's own `User-Agent:
//! DefectDojo-<version>`, `X-DefectDojo-Event` and `X-DefectDojo-Instance` instead — the
//! endpoint's custom header, and, when the endpoint has a secret, the Standard
//! Webhooks headers `webhook-id` (`msg_` and the delivery id, the same on every retry),
//! `webhook-timestamp` (Unix seconds) and `webhook-signature` (`v1,` and the base64
//! HMAC-SHA256 of `"{id}.{timestamp}.{body}"`).
//!
//! Before each request the URL goes through [`crate::url_guard::check_url`] (http(s) only; no
//! loopback, private, link-local or metadata address unless `HERALD_ALLOW_PRIVATE_TARGETS=1`),
//! the connection is pinned to the vetted addresses, redirects are not followed, and the
//! request gives up after the system's `webhooks_notifications_timeout`.
//!
//! How answers map: 2xx → delivered; 5xx, 429 (with its `Retry-After`), a timeout, a
//! connection error or a host that does not resolve → temporary; any other status, or a URL
//! the guard refuses → permanent.
//!
//! URLs often carry tokens, and the header value and secret are secrets: error texts (kept on
//! the delivery and the endpoint, shown to administrators) and logs never contain any of
//! them, nor a body.

use crate::domain::defectdojo;
use crate::domain::webhook::{WebhookFormat, sign};
use crate::domain::{SystemSettings, WebhookEndpoint, WebhookOutcome};
use crate::url_guard::{GuardedUrl, OutboundError, check_url};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER, USER_AGENT};
use std::time::Duration;

/// The timeout when the system settings say none (`webhooks_notifications_timeout` = 0).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The `User-Agent` of every request.
pub const HERALD_USER_AGENT: &str = concat!("Herald/", env!("CARGO_PKG_VERSION"));

/// The timeout the system settings ask for.
pub fn timeout(system: &SystemSettings) -> Duration {
    match system.webhooks_notifications_timeout {
        0 => DEFAULT_TIMEOUT,
        seconds => Duration::from_secs(u64::from(seconds)),
    }
}

/// Why a post did not deliver. The texts never contain the URL or a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostError {
    /// 5xx, 429, a timeout, a connection error, a host that does not resolve.
    #[error("{reason}")]
    Temporary {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Any other answer, or a URL the guard refuses.
    #[error("{reason}")]
    Permanent { reason: String },
}

impl PostError {
    /// The endpoint state outcome of this failure.
    pub fn outcome(&self) -> WebhookOutcome {
        match self {
            PostError::Temporary { reason, .. } => WebhookOutcome::Temporary {
                reason: reason.clone(),
            },
            PostError::Permanent { reason } => WebhookOutcome::Permanent {
                reason: reason.clone(),
            },
        }
    }
}

/// Posts bodies to webhook endpoints (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct WebhookClient {
    allow_private: bool,
}

/// One request: what to post, and the names it goes under.
#[derive(Debug, Clone, Copy)]
pub struct Post<'a> {
    /// The `X-Herald-Event` value.
    pub event_type: &'a str,
    /// The `webhook-id` (`msg_...`).
    pub message_id: &'a str,
    /// The JSON body.
    pub body: &'a [u8],
    /// When it is sent (ms since the Unix epoch): `webhook-timestamp`.
    pub now_ms: u64,
}

impl WebhookClient {
    /// A client; `allow_private` lets URLs point at loopback or private addresses
    /// (`HERALD_ALLOW_PRIVATE_TARGETS=1`).
    pub fn new(allow_private: bool) -> Self {
        Self { allow_private }
    }

    /// Whether URLs may point at loopback or private addresses.
    pub fn allows_private(&self) -> bool {
        self.allow_private
    }

    /// Posts `post` to `endpoint` with the system's timeout and instance.
    pub async fn post(
        &self,
        endpoint: &WebhookEndpoint,
        system: &SystemSettings,
        post: Post<'_>,
    ) -> Result<(), PostError> {
        let guarded = check_url(&endpoint.url, self.allow_private)
            .await
            .map_err(refused)?;
        let timeout = timeout(system);
        let (user_agent, event_header, instance_header) = match endpoint.format {
            WebhookFormat::Herald => (HERALD_USER_AGENT, "x-herald-event", "x-herald-instance"),
            WebhookFormat::Defectdojo => (
                defectdojo::USER_AGENT,
                "x-defectdojo-event",
                "x-defectdojo-instance",
            ),
        };
        let mut request = http_client(&guarded, timeout)?
            .post(guarded.url.as_str())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json")
            .header(USER_AGENT, user_agent)
            .header(event_header, header_value(post.event_type)?);
        if !system.site_url.trim().is_empty() {
            request = request.header(instance_header, header_value(system.site_url.trim())?);
        }
        if let (Some(name), Some(value)) = (&endpoint.header_name, &endpoint.header_value) {
            let name =
                HeaderName::from_bytes(name.as_bytes()).map_err(|_| PostError::Permanent {
                    reason: "the webhook's custom header name is not valid".into(),
                })?;
            let mut value =
                HeaderValue::from_str(value.expose()).map_err(|_| PostError::Permanent {
                    reason: "the webhook's custom header value is not valid".into(),
                })?;
            value.set_sensitive(true);
            request = request.header(name, value);
        }
        if let Some(secret) = &endpoint.secret {
            let timestamp = post.now_ms / 1000;
            let signature =
                sign(secret, post.message_id, timestamp, post.body).ok_or_else(|| {
                    PostError::Permanent {
                        reason: "the webhook's signing secret is not valid".into(),
                    }
                })?;
            request = request
                .header("webhook-id", header_value(post.message_id)?)
                .header("webhook-timestamp", timestamp)
                .header("webhook-signature", header_value(&signature)?);
        }
        let response = request
            .body(post.body.to_vec())
            .send()
            .await
            .map_err(|e| request_failed(&e, timeout))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(PostError::Temporary {
                reason: "the webhook endpoint rate-limited the message (HTTP 429)".into(),
                retry_after: retry_after(&response),
            });
        }
        let reason = format!("the webhook endpoint answered HTTP {}", status.as_u16());
        if status.is_server_error() {
            Err(PostError::Temporary {
                reason,
                retry_after: None,
            })
        } else {
            Err(PostError::Permanent { reason })
        }
    }
}

fn header_value(value: &str) -> Result<HeaderValue, PostError> {
    HeaderValue::from_str(value).map_err(|_| PostError::Permanent {
        reason: "a header value Herald sends is not valid".into(),
    })
}

/// A client that connects only to the vetted addresses, follows no redirect, and gives up
/// after `timeout`. Built per request: the pin and the timeout belong to the client.
fn http_client(guarded: &GuardedUrl, timeout: Duration) -> Result<reqwest::Client, PostError> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout);
    if let Some(domain) = &guarded.domain {
        builder = builder.resolve_to_addrs(domain, &guarded.addrs);
    }
    builder.build().map_err(|_| PostError::Temporary {
        reason: "the HTTP client for the webhook could not be built".into(),
        retry_after: None,
    })
}

/// The guard's refusal; only a failed DNS lookup is temporary.
fn refused(error: OutboundError) -> PostError {
    let reason = format!("the webhook endpoint was not called: {error}");
    if error.is_transient() {
        PostError::Temporary {
            reason,
            retry_after: None,
        }
    } else {
        PostError::Permanent { reason }
    }
}

/// A request that got no answer: temporary. The text names the kind of failure, never the
/// URL (reqwest's own error text would contain it).
fn request_failed(error: &reqwest::Error, timeout: Duration) -> PostError {
    let what = if error.is_timeout() {
        format!("timed out after {} s", timeout.as_secs_f64())
    } else if error.is_connect() {
        "could not connect".to_owned()
    } else {
        "the request failed".to_owned()
    };
    PostError::Temporary {
        reason: format!("the webhook endpoint {what}"),
        retry_after: None,
    }
}

/// How long a response's `Retry-After` asks to wait (every HTTP transport reads it so): see
/// [`parse_retry_after`], as of now.
pub fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get(RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(value, std::time::SystemTime::now())
}

/// A `Retry-After` value (RFC 9110 §10.2.3) as a wait from `now`: whole seconds
/// (`Retry-After: 120`) or an HTTP date in any of the three forms a recipient must accept
/// (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 850's `Sunday, 06-Nov-94 08:49:37 GMT`, asctime's
/// `Sun Nov  6 08:49:37 1994`); a date already past waits nothing. `None` for anything else.
pub fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_retry_after_as_seconds_or_any_http_date_then_the_wait_is_read_and_a_past_date_waits_nothing()
     {
        // 1994-11-06T08:49:37Z, the RFC's example, less 90 s.
        let now = std::time::UNIX_EPOCH + Duration::from_secs(784_111_777 - 90);
        for value in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(
                parse_retry_after(value, now),
                Some(Duration::from_secs(90)),
                "{value}"
            );
        }
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        let later = now + Duration::from_secs(3_600);
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", later),
            Some(Duration::ZERO)
        );
        for bad in ["", "soon", "-5", "1.5", "Sun, 32 Nov 1994 08:49:37 GMT"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn given_guard_refusals_then_only_dns_failures_are_temporary_and_no_url_is_shown() {
        assert!(matches!(
            refused(OutboundError::Unresolved),
            PostError::Temporary { .. }
        ));
        let e = refused(OutboundError::Forbidden("loopback"));
        assert!(matches!(e, PostError::Permanent { .. }));
        assert!(
            e.to_string()
                .starts_with("the webhook endpoint was not called")
        );
    }

    #[test]
    fn given_no_timeout_setting_then_the_default_applies() {
        let mut system = SystemSettings {
            webhooks_notifications_timeout: 0,
            ..SystemSettings::default()
        };
        assert_eq!(timeout(&system), DEFAULT_TIMEOUT);
        system.webhooks_notifications_timeout = 3;
        assert_eq!(timeout(&system), Duration::from_secs(3));
        assert!(HERALD_USER_AGENT.starts_with("Herald/"));
    }
}
