//! `SesMailer`: the `Mailer` port on Amazon SES, one v2 `SendEmail` call per mail.
//!
//! The mail goes as SES "Simple" content: the subject, an HTML and a text body, all UTF-8;
//! SES builds the MIME message (and its own `Message-ID`, so SES cannot make a resend replace
//! an earlier copy: a redelivered message whose `sent` was never recorded is sent twice). The
//! `from` address must be an identity SES has verified.
//!
//! How SES's answers map to outcomes:
//! - `MessageRejected`, `MailFromDomainNotVerifiedException`, `AccountSuspendedException`,
//!   `SendingPausedException`, `BadRequestException`, `NotFoundException`, and any other
//!   4xx → permanent;
//! - throttling (`TooManyRequestsException`, `LimitExceededException`, HTTP 429), 5xx,
//!   timeouts and connection failures → transient (after the SDK's own retries).
//!
//! Error texts name SES's error code and message, never a credential.

use crate::ports::{MailError, Mailer, OutgoingMail};
use async_trait::async_trait;
use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::config::http::HttpResponse;
use aws_sdk_sesv2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::operation::send_email::SendEmailError;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};

/// Sends mail with SES v2.
#[derive(Debug, Clone)]
pub struct SesMailer {
    client: Client,
}

impl SesMailer {
    /// A mailer over `client` (built once in `main`).
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

/// UTF-8 content for SES.
fn utf8(data: &str) -> Result<Content, MailError> {
    Content::builder()
        .data(data)
        .charset("UTF-8")
        .build()
        .map_err(|e| MailError::Permanent(format!("the SES request could not be built: {e}")))
}

#[async_trait]
impl Mailer for SesMailer {
    async fn send(&self, mail: &OutgoingMail) -> Result<(), MailError> {
        let message = Message::builder()
            .subject(utf8(&mail.subject)?)
            .body(
                Body::builder()
                    .html(utf8(&mail.html)?)
                    .text(utf8(&mail.text)?)
                    .build(),
            )
            .build();
        self.client
            .send_email()
            .from_email_address(&mail.from)
            .destination(Destination::builder().to_addresses(&mail.to).build())
            .content(EmailContent::builder().simple(message).build())
            .send()
            .await
            .map(|_| ())
            .map_err(classify)
    }
}

/// SES's error codes that are never worth retrying.
const PERMANENT_CODES: [&str; 6] = [
    "MessageRejected",
    "MailFromDomainNotVerifiedException",
    "AccountSuspendedException",
    "SendingPausedException",
    "BadRequestException",
    "NotFoundException",
];

/// SES's throttling codes.
const THROTTLING_CODES: [&str; 4] = [
    "TooManyRequestsException",
    "LimitExceededException",
    "Throttling",
    "ThrottlingException",
];

/// Maps a failed `SendEmail` to an outcome (see the module docs).
fn classify(error: SdkError<SendEmailError, HttpResponse>) -> MailError {
    match error {
        SdkError::ServiceError(context) => {
            let status = Some(context.raw().status().as_u16());
            let error = context.into_err();
            classify_service_error(&error, status)
        }
        SdkError::TimeoutError(_) => MailError::Transient("SES SendEmail timed out".into()),
        SdkError::DispatchFailure(_) => {
            MailError::Transient("SES SendEmail: could not connect".into())
        }
        SdkError::ResponseError(_) => {
            MailError::Transient("SES SendEmail: the answer could not be read".into())
        }
        SdkError::ConstructionFailure(_) => {
            MailError::Permanent("SES SendEmail: the request could not be built".into())
        }
        _ => MailError::Transient("SES SendEmail failed".into()),
    }
}

/// A modelled or unmodelled SES error, by code, then by HTTP status.
fn classify_service_error(error: &SendEmailError, status: Option<u16>) -> MailError {
    let code = error.code().unwrap_or("UnknownError");
    let text = match error.message() {
        Some(message) if !message.trim().is_empty() => {
            format!("SES answered {code}: {}", one_line(message))
        }
        _ => format!("SES answered {code}"),
    };
    if PERMANENT_CODES.contains(&code) {
        MailError::Permanent(text)
    } else if THROTTLING_CODES.contains(&code) {
        MailError::Transient(text)
    } else {
        match status {
            Some(429) => MailError::Transient(text),
            Some(s) if (400..500).contains(&s) => MailError::Permanent(text),
            _ => MailError::Transient(text),
        }
    }
}

/// `text` on one line, at most 300 characters.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sesv2::error::ErrorMetadata;
    use aws_sdk_sesv2::types::error::{MessageRejected, TooManyRequestsException};

    #[test]
    fn given_modelled_errors_then_rejections_are_permanent_and_throttling_transient() {
        let rejected = SendEmailError::MessageRejected(
            MessageRejected::builder()
                .message("Email address is not verified.")
                .meta(
                    ErrorMetadata::builder()
                        .code("MessageRejected")
                        .message("Email address is not verified.")
                        .build(),
                )
                .build(),
        );
        assert_eq!(
            classify_service_error(&rejected, Some(400)),
            MailError::Permanent(
                "SES answered MessageRejected: Email address is not verified.".into()
            )
        );
        let throttled = SendEmailError::TooManyRequestsException(
            TooManyRequestsException::builder()
                .meta(
                    ErrorMetadata::builder()
                        .code("TooManyRequestsException")
                        .build(),
                )
                .build(),
        );
        assert!(matches!(
            classify_service_error(&throttled, Some(429)),
            MailError::Transient(_)
        ));
    }

    #[test]
    fn given_unknown_codes_then_the_status_decides() {
        let unknown = |code: &str| {
            SendEmailError::generic(ErrorMetadata::builder().code(code).message("x").build())
        };
        assert!(matches!(
            classify_service_error(&unknown("Weird"), Some(503)),
            MailError::Transient(_)
        ));
        assert!(matches!(
            classify_service_error(&unknown("Weird"), Some(403)),
            MailError::Permanent(_)
        ));
        assert!(matches!(
            classify_service_error(&unknown("Weird"), Some(429)),
            MailError::Transient(_)
        ));
        assert!(matches!(
            classify_service_error(&unknown("LimitExceededException"), Some(400)),
            MailError::Transient(_)
        ));
    }
}
