//! The mailer port: one finished email handed to whatever delivers mail (SES on AWS, an outbox
//! directory locally).

use async_trait::async_trait;

/// One email, ready to go: addresses, subject and both bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMail {
    /// The sender's address (`email_from`).
    pub from: String,
    /// The one recipient's address.
    pub to: String,
    /// The subject line, one line of text (non-ASCII allowed).
    pub subject: String,
    /// The HTML body.
    pub html: String,
    /// The plain-text body (for clients without HTML).
    pub text: String,
    /// The delivery id: an adapter that can uses it to make a resend replace the first copy
    /// rather than add a second one.
    pub message_id: String,
}

/// Why a mailer could not deliver.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    /// Worth trying again: throttling, a 5xx, a timeout, a full disk.
    #[error("{0}")]
    Transient(String),
    /// Never going to work as it is: a rejected message, an unverified sender, a header that
    /// cannot be written.
    #[error("{0}")]
    Permanent(String),
}

/// Delivers finished emails.
#[async_trait]
pub trait Mailer: Send + Sync {
    /// Sends `mail` to its one recipient. Error texts are recorded on the delivery and shown
    /// to administrators: they never carry credentials.
    async fn send(&self, mail: &OutgoingMail) -> Result<(), MailError>;
}

#[async_trait]
impl<T: Mailer + ?Sized> Mailer for std::sync::Arc<T> {
    async fn send(&self, mail: &OutgoingMail) -> Result<(), MailError> {
        (**self).send(mail).await
    }
}
