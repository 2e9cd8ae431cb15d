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
