//! `EmailTransport` end to end: over the real `OutboxMailer` in a temporary directory (the
//! `.eml` parsed back), and over a scripted mailer for the error mapping.

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use herald_shared::adapters::OutboxMailer;
use herald_shared::domain::{Delivery, Destination, Event, SystemSettings};
use herald_shared::ports::{MailError, Mailer, OutgoingMail};
use herald_shared::ports::{SendError, SendRequest, Transport};
use sender_email::{EmailTransport, Templates};
use serde_json::json;
use std::sync::{Arc, Mutex};

const NOW_MS: u64 = 1_790_000_000_000;

fn system() -> SystemSettings {
    SystemSettings {
        enable_mail_notifications: true,
        email_from: "herald@example.com".into(),
        team_name: "Sécurité".into(),
        site_url: "https://dojo.example.com".into(),
        disclaimer_notifications: "Confidential.".into(),
        ..SystemSettings::default()
    }
}

fn event() -> Event {
    Event::from_request(
        &json!({"id": "evt-1", "type": "scan_added", "title": "Scan <ZAP> imported: 1 finding",
                "url": "/test/33",
                "findings": {"new": [{"id": 101, "title": "SQL injection", "severity": "High", "url": "/finding/101"}]},
                "data": {"product": {"id": 7, "name": "Shop", "url": "/product/7"}}}),
        || "generated".into(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn delivery(event: &Event, destination: Destination) -> Delivery {
    Delivery::queued(&event.id, destination, NOW_MS)
}

async fn send(
    transport: &EmailTransport,
    event: &Event,
    delivery: &Delivery,
    system: &SystemSettings,
) -> Result<(), SendError> {
    let request = SendRequest {
        event,
        delivery,
        system,
        recipient: None,
    };
    transport.send(&request).await
}

/// The headers (unfolded) and body of an RFC 5322 message.
fn split_message(message: &str) -> (Vec<(String, String)>, String) {
    let (head, body) = message
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no blank line after the headers"));
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some(last) = headers.last_mut() {
                last.1.push_str(line.trim_start());
            }
            continue;
        }
        let (name, value) = line
            .split_once(": ")
            .unwrap_or_else(|| panic!("bad header line {line:?}"));
        headers.push((name.to_owned(), value.to_owned()));
    }
    (headers, body.to_owned())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} header"))
}

/// RFC 2047 `=?UTF-8?B?..?=` words (joined by folding) decoded; plain text as is.
fn decode_words(value: &str) -> String {
    if !value.starts_with("=?") {
        return value.to_owned();
    }
    let mut bytes = Vec::new();
    for word in value.split("?==?") {
        let b64 = word
            .trim_start_matches("=?")
            .trim_start_matches("UTF-8?B?")
            .trim_end_matches("?=");
        bytes.extend(STANDARD.decode(b64).unwrap_or_else(|e| panic!("{e}")));
    }
    String::from_utf8(bytes).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn given_the_outbox_then_one_parseable_eml_per_delivery_is_written_and_a_resend_replaces_it()
{
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let outbox = dir.path().join("outbox");
    let transport =
        EmailTransport::new(Arc::new(OutboxMailer::new(&outbox))).unwrap_or_else(|e| panic!("{e}"));
    let (event, system) = (event(), system());
    let delivery = delivery(&event, Destination::email("Alice@Example.com"));

    send(&transport, &event, &delivery, &system)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    send(&transport, &event, &delivery, &system)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let files: Vec<_> = std::fs::read_dir(&outbox)
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files, vec![format!("{}.eml", delivery.id.as_str())]);
    let raw = std::fs::read_to_string(outbox.join(&files[0])).unwrap_or_else(|e| panic!("{e}"));
    assert!(raw.ends_with("\r\n"));
    assert!(
        !raw.replace("\r\n", "").contains(['\r', '\n']),
        "a bare CR or LF"
    );
    assert!(raw.lines().all(|l| l.len() <= 998));

    let (headers, body) = split_message(&raw);
    assert_eq!(header(&headers, "From"), "herald@example.com");
    assert_eq!(header(&headers, "To"), "alice@example.com");
    assert!(header(&headers, "Subject").is_ascii());
    assert_eq!(
        decode_words(header(&headers, "Subject")),
        "Sécurité notification: Scan <ZAP> imported: 1 finding"
    );
    assert_eq!(
        header(&headers, "Message-ID"),
        format!("<{}@herald.local>", delivery.id.as_str())
    );
    assert_eq!(header(&headers, "MIME-Version"), "1.0");
    assert!(
        time::OffsetDateTime::parse(
            header(&headers, "Date"),
            &time::format_description::well_known::Rfc2822
        )
        .is_ok()
    );
    let content_type = header(&headers, "Content-Type");
    let boundary = content_type
        .strip_prefix("multipart/alternative; boundary=\"")
        .and_then(|b| b.strip_suffix('"'))
        .unwrap_or_else(|| panic!("{content_type}"));

    let expected = Templates::new()
        .unwrap_or_else(|e| panic!("{e}"))
        .render(&event, &system)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(body.trim_end().ends_with(&format!("--{boundary}--")));
    let parts: Vec<&str> = body
        .split(&format!("--{boundary}"))
        .skip(1)
        .filter(|p| !p.starts_with("--"))
        .collect();
    assert_eq!(parts.len(), 2);
    let mut seen = Vec::new();
    for part in parts {
        let (part_headers, encoded) = split_message(part.trim_start_matches("\r\n"));
        assert_eq!(header(&part_headers, "Content-Transfer-Encoding"), "base64");
        let decoded = STANDARD
            .decode(encoded.replace("\r\n", ""))
            .unwrap_or_else(|e| panic!("{e}"));
        let decoded = String::from_utf8(decoded).unwrap_or_else(|e| panic!("{e}"));
        match header(&part_headers, "Content-Type") {
            "text/plain; charset=utf-8" => assert_eq!(decoded, expected.text),
            "text/html; charset=utf-8" => {
                assert_eq!(decoded, expected.html);
                assert!(decoded.contains("Scan &lt;ZAP&gt; imported"));
            }
            other => panic!("unexpected part {other}"),
        }
        seen.push(header(&part_headers, "Content-Type").to_owned());
    }
    assert_eq!(
        seen,
        ["text/plain; charset=utf-8", "text/html; charset=utf-8"]
    );
}

/// A mailer that records what it is given and answers as scripted.
#[derive(Default)]
struct ScriptedMailer {
    sent: Mutex<Vec<OutgoingMail>>,
    answer: Option<MailError>,
}

#[async_trait]
impl Mailer for ScriptedMailer {
    async fn send(&self, mail: &OutgoingMail) -> Result<(), MailError> {
        if let Ok(mut sent) = self.sent.lock() {
            sent.push(mail.clone());
        }
        self.answer.clone().map_or(Ok(()), Err)
    }
}

fn scripted(answer: Option<MailError>) -> (Arc<ScriptedMailer>, EmailTransport) {
    let mailer = Arc::new(ScriptedMailer {
        answer,
        ..ScriptedMailer::default()
    });
    let transport = EmailTransport::new(mailer.clone()).unwrap_or_else(|e| panic!("{e}"));
    (mailer, transport)
}

#[tokio::test]
async fn given_a_mail_delivery_then_the_mailer_gets_defectdojos_subject_from_and_the_delivery_id() {
    let (mailer, transport) = scripted(None);
    let event = event();
    let mut system = system();
    system.team_name = String::new();
    let delivery = delivery(&event, Destination::email("bob@example.com"));

    let result = send(&transport, &event, &delivery, &system).await;

    assert_eq!(result, Ok(()));
    let sent = mailer.sent.lock().map(|s| s.clone()).unwrap_or_default();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].from, "herald@example.com");
    assert_eq!(sent[0].to, "bob@example.com");
    assert_eq!(
        sent[0].subject,
        "Notification: Scan <ZAP> imported: 1 finding"
    );
    assert_eq!(sent[0].message_id, delivery.id.as_str());
    assert!(sent[0].text.contains("https://dojo.example.com/test/33"));
}

#[tokio::test]
async fn given_mail_switched_off_or_a_foreign_destination_then_it_fails_for_good_without_sending() {
    let (mailer, transport) = scripted(None);
    let event = event();
    let off = SystemSettings {
        enable_mail_notifications: false,
        ..system()
    };
    let to_bob = delivery(&event, Destination::email("bob@example.com"));
    let slack = delivery(&event, Destination::SlackChannel("#sec".into()));

    let disabled = send(&transport, &event, &to_bob, &off).await;
    let foreign = send(&transport, &event, &slack, &system()).await;

    assert_eq!(
        disabled,
        Err(SendError::Permanent {
            reason: "mail notifications are disabled in the system settings".into()
        })
    );
    assert!(matches!(foreign, Err(SendError::Permanent { .. })));
    assert!(mailer.sent.lock().map(|s| s.is_empty()).unwrap_or(false));
}

#[tokio::test]
async fn given_mailer_errors_then_their_kind_is_kept() {
    let event = event();
    let delivery = delivery(&event, Destination::email("bob@example.com"));
    let (_, throttled) = scripted(Some(MailError::Transient("SES answered Throttling".into())));
    let (_, rejected) = scripted(Some(MailError::Permanent(
        "SES answered MessageRejected".into(),
    )));

    assert_eq!(
        send(&throttled, &event, &delivery, &system()).await,
        Err(SendError::Transient {
            reason: "SES answered Throttling".into(),
            retry_after: None
        })
    );
    assert_eq!(
        send(&rejected, &event, &delivery, &system()).await,
        Err(SendError::Permanent {
            reason: "SES answered MessageRejected".into()
        })
    );
}
