//! Herald's webhook sender (`sender-webhook`): deliveries from the webhooks queue to each
//! registered endpoint (system-owned or a user's), through the shared
//! [`herald_shared::sender::Sender`].
//!
//! - [`webhook`]: [`WebhookTransport`], the `Transport` that posts each delivery with the
//!   shared [`herald_shared::adapters::WebhookClient`] (one guarded, signed POST), moves each
//!   endpoint through its states and parks messages for resting endpoints. The body is
//!   DefectDojo's webhook JSON, [`herald_shared::domain::webhook_body`].

pub mod webhook;

pub use webhook::WebhookTransport;
