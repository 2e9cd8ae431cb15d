//! Herald's settings and directory API (`settings-api`).
//!
//! [`router::router`] is the whole API as one axum `Router`; `main.rs` hosts it on Lambda
//! behind API Gateway's HTTP API, `herald-local` hosts it with `axum::serve`. The routes live
//! one file per resource in `routes/` (catalogue, settings, directory, alerts, webhooks, and
//! `records.rs`: the engagements, findings and risk acceptances the scheduled checks read;
//! `page.rs`: the page at `/`, its files in `page/`);
//! what every handler shares is [`AppState`], in `state.rs`.

pub mod router;
mod routes;
pub mod state;

pub use herald_http::{Authenticator, Caller, Hs256Keys, Role};
pub use herald_shared::adapters::WebhookClient;
pub use router::{api, openapi, page, router};
pub use state::AppState;
