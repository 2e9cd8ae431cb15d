//! Herald's email sender (`sender-email`): deliveries from the mail queue to a [`Mailer`]
//! (Amazon SES on AWS, the outbox directory in `herald-local`), through the shared
//! [`herald_shared::sender::Sender`].
//!
//! - [`message`]: the subject, HTML and text bodies of each event type, from templates
//!   compiled into the binary.
//! - [`email`]: [`EmailTransport`], the `Transport` for mail over any [`Mailer`].
//!
//! [`Mailer`]: herald_shared::ports::Mailer

pub mod email;
pub mod message;

pub use email::EmailTransport;
pub use message::{EmailMessage, RenderError, Templates};
