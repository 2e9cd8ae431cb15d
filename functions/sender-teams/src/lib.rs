//! Herald's Microsoft Teams sender (`sender-teams`): deliveries from the Teams queue to the
//! system Teams webhook (Office connector or Power Automate Workflows), through the shared
//! [`herald_shared::sender::Sender`]. Teams is offered at system scope only.
//!
//! - [`message`]: the Adaptive Card 1.4 of each event type, from templates compiled into the
//!   binary, and the `message` envelope that carries it.
//! - [`teams`]: [`TeamsTransport`], the `Transport` for Teams: the URL checked by the
//!   outbound guard and the connection pinned to the vetted addresses.

pub mod message;
pub mod teams;

pub use message::{Templates, envelope};
pub use teams::{TeamsSetupError, TeamsTransport};
