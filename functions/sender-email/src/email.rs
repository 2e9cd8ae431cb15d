//! `EmailTransport`: mail deliveries through a [`Mailer`] (SES on AWS, the outbox locally).
//!
//! - `mail:<address>` → one email to `address`, from the system's `email_from`, with
//!   DefectDojo's subject and an HTML and a text body from the event's templates.
//! - Mail switched off in the system settings, a destination that is not an email address,
//!   no `email_from`, or a template that fails → permanent.
//! - The mailer's own errors keep their kind (transient or permanent).
//!
//! The delivery id is the mail's message id, so a mailer that can (the outbox) replaces an
//! earlier copy instead of adding a second one.

use crate::message::Templates;
use async_trait::async_trait;
use herald_shared::domain::{Channel, Destination, system::is_plausible_email};
use herald_shared::ports::{MailError, Mailer, OutgoingMail};
use herald_shared::ports::{SendError, SendRequest, Transport};
use std::sync::Arc;

/// Sends mail deliveries (see the module docs).
pub struct EmailTransport {
    mailer: Arc<dyn Mailer>,
    templates: Templates,
}

impl std::fmt::Debug for EmailTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailTransport").finish_non_exhaustive()
    }
}

impl EmailTransport {
    /// A transport sending through `mailer`; fails only if a template does not compile.
    pub fn new(mailer: Arc<dyn Mailer>) -> Result<Self, minijinja::Error> {
        Ok(Self {
            mailer,
            templates: Templates::new()?,
        })
    }

    /// The email `request` would send (before the mailer): for tests and previews.
    pub fn compose(&self, request: &SendRequest<'_>) -> Result<OutgoingMail, SendError> {
        let system = request.system;
        if !system.enable_mail_notifications {
            return Err(permanent(
                "mail notifications are disabled in the system settings".into(),
            ));
        }
        let to = match &request.delivery.destination {
            Destination::Email(address) if is_plausible_email(address) => address.clone(),
            Destination::Email(_) => {
                return Err(permanent(
                    "the destination is not a valid email address".into(),
                ));
            }
            other => return Err(permanent(format!("{other} is not a mail destination"))),
        };
        let from = system.email_from.trim();
        if from.is_empty() {
            return Err(permanent(
                "no sender address is configured (system settings email_from)".into(),
            ));
        }
        let message = self
            .templates
            .render(request.event, system)
            .map_err(|e| permanent(e.to_string()))?;
        Ok(OutgoingMail {
            from: from.to_owned(),
            to,
            subject: message.subject,
            html: message.html,
            text: message.text,
            message_id: request.delivery.id.as_str().to_owned(),
        })
    }
}

#[async_trait]
impl Transport for EmailTransport {
    fn channel(&self) -> Channel {
        Channel::Mail
    }

    async fn send(&self, request: &SendRequest<'_>) -> Result<(), SendError> {
        let mail = self.compose(request)?;
        self.mailer.send(&mail).await.map_err(|e| match e {
            MailError::Transient(reason) => SendError::Transient {
                reason,
                retry_after: None,
            },
            MailError::Permanent(reason) => permanent(reason),
        })
    }
}

fn permanent(reason: String) -> SendError {
    SendError::Permanent { reason }
}
