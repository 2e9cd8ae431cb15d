//! `OutboxMailer`: the `Mailer` port as a directory of RFC 5322 messages, one per file, for
//! `herald-local` (`DATA_DIR/outbox/*.eml`).
//!
//! Each mail is `<message_id>.eml` (characters other than ASCII letters, digits, `-` and `.`
//! written as `_xx` hex), so sending the same delivery again replaces its file. The file is
//! written to a hidden temporary file in the same directory, flushed, then renamed over the
//! final name: a reader never sees half a message.
//!
//! The message: `From`, `To`, `Subject` (RFC 2047 `=?UTF-8?B?...?=` encoded-words when it is
//! not plain ASCII, or too long for one line), `Date`, `Message-ID`
//! (`<message_id@herald.local>`), `MIME-Version`, and a `multipart/alternative` body with a
//! `text/plain` then a `text/html` part, both UTF-8 in base64. Every line ends in CRLF. A
//! header value with CR, LF or another control character is refused (header injection), as a
//! permanent error; a failed write is transient.

use crate::ports::{MailError, Mailer, OutgoingMail};
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;

/// The MIME boundary: `=_` never occurs in base64 text, so it cannot clash with a body.
const BOUNDARY: &str = "=_herald_alternative";

/// The domain part of every `Message-ID`.
const MESSAGE_ID_DOMAIN: &str = "herald.local";

/// Writes mail into a directory.
#[derive(Debug, Clone)]
pub struct OutboxMailer {
    dir: PathBuf,
}

impl OutboxMailer {
    /// A mailer writing into `dir` (created on first use).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory mail is written to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file `message_id`'s mail is written to.
    pub fn path_of(&self, message_id: &str) -> PathBuf {
        self.dir.join(format!("{}.eml", file_stem(message_id)))
    }
}

#[async_trait]
impl Mailer for OutboxMailer {
    async fn send(&self, mail: &OutgoingMail) -> Result<(), MailError> {
        let now = OffsetDateTime::now_utc();
        let message = render_message(mail, now)?;
        let dir = self.dir.clone();
        let path = self.path_of(&mail.message_id);
        tokio::task::spawn_blocking(move || write_atomically(&dir, &path, message.as_bytes()))
            .await
            .map_err(|e| MailError::Transient(format!("the outbox writer failed: {e}")))?
            .map_err(|e| MailError::Transient(format!("could not write to the outbox: {e}")))
    }
}

/// `message_id` as a file name: letters, digits, `-` and `.` kept (a leading `.` escaped),
/// every other byte `_xx`.
fn file_stem(message_id: &str) -> String {
    let mut stem = String::with_capacity(message_id.len());
    for (i, byte) in message_id.bytes().enumerate() {
        let keep = byte.is_ascii_alphanumeric() || byte == b'-' || (byte == b'.' && i > 0);
        if keep {
            stem.push(char::from(byte));
        } else {
            stem.push_str(&format!("_{byte:02x}"));
        }
    }
    if stem.is_empty() {
        stem.push('_');
    }
    stem
}

/// Writes `bytes` to a temporary file in `dir`, flushes it, and renames it to `path`.
fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static TEMP_FILES: AtomicU64 = AtomicU64::new(0);
    std::fs::create_dir_all(dir)?;
    let temp = dir.join(format!(
        ".tmp-{}-{}.eml.part",
        std::process::id(),
        TEMP_FILES.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// A header value as given, or a permanent error naming the header when it holds a control
/// character (CR and LF above all).
fn header_value<'a>(name: &str, value: &'a str) -> Result<&'a str, MailError> {
    if value.chars().any(char::is_control) {
        return Err(MailError::Permanent(format!(
            "the {name} header contains a line break or another control character"
        )));
    }
    if value.trim().is_empty() {
        return Err(MailError::Permanent(format!("the {name} header is empty")));
    }
    Ok(value)
}

/// An address header value: one line, no spaces or angle brackets, ASCII.
fn address<'a>(name: &str, value: &'a str) -> Result<&'a str, MailError> {
    let value = header_value(name, value)?.trim();
    if !value.is_ascii() || value.contains([' ', '<', '>', ',', ';']) || !value.contains('@') {
        return Err(MailError::Permanent(format!(
            "the {name} address {value:?} is not a plain email address"
        )));
    }
    Ok(value)
}

/// The `Subject` header's value: as is when short plain ASCII, else RFC 2047 encoded-words
/// of at most 45 bytes of UTF-8 each (75 characters encoded), folded one per line.
fn encode_subject(subject: &str) -> Result<String, MailError> {
    let subject = header_value("Subject", subject)?;
    if subject.is_ascii() && subject.len() <= 900 && !subject.contains("=?") {
        return Ok(subject.to_owned());
    }
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in subject.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            words.push(format!("=?UTF-8?B?{}?=", STANDARD.encode(&chunk)));
            chunk.clear();
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(format!("=?UTF-8?B?{}?=", STANDARD.encode(&chunk)));
    }
    Ok(words.join("\r\n "))
}

/// `text` in base64, in lines of 76 characters, each ending in CRLF.
fn base64_lines(text: &str) -> String {
    let encoded = STANDARD.encode(text.as_bytes());
    let mut out = String::with_capacity(encoded.len() + encoded.len() / 38 + 2);
    for line in encoded.as_bytes().chunks(76) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push_str("\r\n");
    }
    out
}

/// The whole RFC 5322 message of `mail`, dated `date`.
pub fn render_message(mail: &OutgoingMail, date: OffsetDateTime) -> Result<String, MailError> {
    let from = address("From", &mail.from)?;
    let to = address("To", &mail.to)?;
    let subject = encode_subject(&mail.subject)?;
    let id = header_value("Message-ID", &mail.message_id)?;
    let date = date
        .format(&Rfc2822)
        .map_err(|e| MailError::Permanent(format!("the Date header could not be written: {e}")))?;
    let message_id = format!("<{}@{MESSAGE_ID_DOMAIN}>", file_stem(id));
    let mut out = String::with_capacity(mail.text.len() * 2 + mail.html.len() * 2 + 1024);
    for (name, value) in [
        ("From", from),
        ("To", to),
        ("Subject", subject.as_str()),
        ("Date", date.as_str()),
        ("Message-ID", message_id.as_str()),
        ("MIME-Version", "1.0"),
        (
            "Content-Type",
            &format!("multipart/alternative; boundary=\"{BOUNDARY}\""),
        ),
    ] {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    for (content_type, body) in [("text/plain", &mail.text), ("text/html", &mail.html)] {
        out.push_str(&format!("--{BOUNDARY}\r\n"));
        out.push_str(&format!("Content-Type: {content_type}; charset=utf-8\r\n"));
        out.push_str("Content-Transfer-Encoding: base64\r\n\r\n");
        out.push_str(&base64_lines(body));
    }
    out.push_str(&format!("--{BOUNDARY}--\r\n"));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail() -> OutgoingMail {
        OutgoingMail {
            from: "herald@example.com".into(),
            to: "alice@example.com".into(),
            subject: "AppSec notification: Scan added".into(),
            html: "<p>Hello</p>".into(),
            text: "Hello".into(),
            message_id: "0123abcd".into(),
        }
    }

    #[test]
    fn given_a_non_ascii_subject_then_it_is_encoded_words_that_decode_back() {
        let subject = "Équipe notification: ünïcode — très long ".repeat(3);
        let encoded = encode_subject(&subject).unwrap_or_else(|e| panic!("{e}"));
        assert!(encoded.is_ascii());
        let decoded: String = encoded
            .split("\r\n ")
            .map(|w| {
                let b64 = w
                    .strip_prefix("=?UTF-8?B?")
                    .and_then(|w| w.strip_suffix("?="))
                    .unwrap_or_else(|| panic!("{w}"));
                assert!(w.len() <= 75, "{w}");
                String::from_utf8(STANDARD.decode(b64).unwrap_or_default()).unwrap_or_default()
            })
            .collect();
        assert_eq!(decoded, subject);
    }

    #[test]
    fn given_line_breaks_in_a_header_then_the_mail_is_refused_for_good() {
        for mail in [
            OutgoingMail {
                subject: "Hi\r\nBcc: eve@example.com".into(),
                ..mail()
            },
            OutgoingMail {
                to: "alice@example.com\nBcc: eve@example.com".into(),
                ..mail()
            },
            OutgoingMail {
                from: "a@example.com\r".into(),
                ..mail()
            },
        ] {
            assert!(matches!(
                render_message(&mail, OffsetDateTime::UNIX_EPOCH),
                Err(MailError::Permanent(_))
            ));
        }
    }

    #[test]
    fn given_odd_message_ids_then_file_names_stay_inside_the_directory() {
        assert_eq!(file_stem("0123abcd"), "0123abcd");
        assert_eq!(file_stem("../x"), "_2e._2fx");
        assert_eq!(file_stem("a_b"), "a_5fb");
        assert_eq!(file_stem(""), "_");
    }

    #[test]
    fn given_a_mail_then_every_line_ends_in_crlf() {
        let message =
            render_message(&mail(), OffsetDateTime::UNIX_EPOCH).unwrap_or_else(|e| panic!("{e}"));
        assert!(message.ends_with("\r\n"));
        assert!(!message.replace("\r\n", "").contains(['\r', '\n']));
        assert!(message.contains("Date: Thu, 01 Jan 1970 00:00:00 +0000\r\n"));
    }
}
