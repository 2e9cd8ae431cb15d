//! Herald's webhook sender (`sender-webhook`): deliveries from the webhooks queue to each
//! registered endpoint (system-owned or a user's), through the shared
//! [`herald_shared::sender::Sender`].
//!
//! - [`message`]: the body, DefectDojo's webhook JSON built with serde, and the ping.
//! - [`webhook`]: the [`WebhookClient`] (one guarded, signed POST; the settings API pings with it)
//!   and [`WebhookTransport`], the `Transport` that also moves each endpoint through its
//!   states and parks messages for resting endpoints.
//! - [`handler`]: the Lambda SQS handler.

pub mod handler;
pub mod message;
pub mod webhook;

pub use handler::function_handler;
pub use message::{WebhookBody, ping_body, webhook_body};
pub use webhook::{Post, PostError, WebhookClient, WebhookTransport};
