//! Herald's settings and directory API (`settings-api`).
//!
//! [`router::router`] is the whole API as one axum `Router`; `main.rs` hosts it on Lambda
//! behind API Gateway's HTTP API, `herald-local` hosts it with `axum::serve`. The webhook
//! endpoints live in [`webhooks`], the records the scheduled checks read (engagements,
//! findings, risk acceptances) in [`schedule`], merged into the same router.

pub mod router;
pub mod schedule;
pub mod webhooks;

pub use herald_http::{Authenticator, Caller, Hs256Keys, Role};
pub use router::{AppState, api, openapi, router};
pub use sender_webhook::WebhookClient;
