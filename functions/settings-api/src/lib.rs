//! Herald's settings and directory API (`settings-api`).
//!
//! [`router::router`] is the whole API as one axum `Router`; `main.rs` hosts it on Lambda
//! behind API Gateway's HTTP API, `herald-local` hosts it with `axum::serve`.

pub mod router;

pub use herald_http::{Authenticator, Caller, Hs256Keys, Role};
pub use router::{AppState, api, openapi, router};
