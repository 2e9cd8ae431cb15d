//! What Herald's HTTP functions (`settings-api`, `event-intake`) share: who is calling
//! ([`auth`]), the contract's error shape ([`error`]) and request extraction ([`extract`]).

pub mod app;
pub mod auth;
pub mod error;
pub mod extract;

pub use app::{app, document};
pub use auth::{Authenticator, Caller, Hs256Keys, Role};
pub use error::{ApiError, ErrorBody};
pub use extract::JsonBody;

/// Milliseconds since the Unix epoch as RFC 3339 (UTC), as every answer shows times.
pub fn rfc3339(ms: u64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}
