//! The conformance suite of `Mailer`: the outbox (one RFC 5322 file per mail, read back and
//! decoded) and `SesMailer` on moto's SES v2 (`HERALD_TEST_MOTO_URL`; read back from moto's
//! record of sent mail, which keeps the recipients, the subject and the HTML body; without it
//! those tests fail, naming `scripts/services.sh start`).

use super::TestResult;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use herald_shared::adapters::{OutboxMailer, SesMailer};
use herald_shared::ports::{Mailer, OutgoingMail};
use serde_json::Value;

/// One mail as its adapter recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sent {
    to: Vec<String>,
    subject: String,
    html: String,
}

/// A mailer under test, the way to read back what it sent, and the sender address of this
/// test's mail.
struct MailHarness {
    adapter: Adapter,
    from: String,
}

enum Adapter {
    Outbox {
        dir: tempfile::TempDir,
        mailer: OutboxMailer,
    },
    Ses {
        moto: String,
        mailer: SesMailer,
    },
}

/// The sender address of this harness's mail: a verified identity on SES, unique per run so
/// moto's record can be filtered to this test's mail.
fn sender() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SENDERS: AtomicU64 = AtomicU64::new(0);
    format!(
        "herald-conformance-{}-{}-{}@example.com",
        std::process::id(),
        herald_tests::now(),
        SENDERS.fetch_add(1, Ordering::Relaxed)
    )
}

impl MailHarness {
    fn outbox() -> Result<Self, Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let mailer = OutboxMailer::new(dir.path().join("outbox"));
        Ok(Self {
            adapter: Adapter::Outbox { dir, mailer },
            from: sender(),
        })
    }

    async fn ses() -> Result<Self, Box<dyn std::error::Error>> {
        let moto = herald_tests::emulator_url("HERALD_TEST_MOTO_URL");
        let client = aws_sdk_sesv2::Client::new(&herald_tests::emulator_config(&moto).await);
        let from = sender();
        client
            .create_email_identity()
            .email_identity(&from)
            .send()
            .await?;
        Ok(Self {
            adapter: Adapter::Ses {
                moto,
                mailer: SesMailer::new(client),
            },
            from,
        })
    }

    fn mailer(&self) -> &dyn Mailer {
        match &self.adapter {
            Adapter::Outbox { mailer, .. } => mailer,
            Adapter::Ses { mailer, .. } => mailer,
        }
    }

    /// Every mail this test sent, in no particular order.
    async fn sent(&self) -> Result<Vec<Sent>, Box<dyn std::error::Error>> {
        let from = self.from.as_str();
        match &self.adapter {
            Adapter::Outbox { dir, .. } => {
                let mut sent = Vec::new();
                let outbox = dir.path().join("outbox");
                for entry in std::fs::read_dir(&outbox)? {
                    let path = entry?.path();
                    if path.extension().is_some_and(|e| e == "eml") {
                        let mail = parse_eml(&std::fs::read_to_string(&path)?)?;
                        if mail.0 == from {
                            sent.push(mail.1);
                        }
                    }
                }
                Ok(sent)
            }
            Adapter::Ses { moto, .. } => {
                let url = format!("{}/moto-api/data.json", moto.trim_end_matches('/'));
                let data: Value = reqwest::get(&url).await?.json().await?;
                let mut recorded = Vec::new();
                collect_messages(&data["ses"], &mut recorded);
                Ok(recorded
                    .into_iter()
                    .filter(|m| m["source"].as_str() == Some(from))
                    .map(|m| Sent {
                        to: m["destinations"]["ToAddresses"]
                            .as_array()
                            .map(|a| {
                                a.iter()
                                    .filter_map(|v| v.as_str().map(str::to_owned))
                                    .collect()
                            })
                            .unwrap_or_default(),
                        subject: m["subject"].as_str().unwrap_or_default().to_owned(),
                        html: m["body"].as_str().unwrap_or_default().to_owned(),
                    })
                    .collect())
            }
        }
    }

    async fn finish(self) -> TestResult {
        Ok(())
    }
}

/// moto nests its SES state by account and region; every object with a `source` (the sender)
/// is a sent message.
fn collect_messages(value: &Value, out: &mut Vec<Value>) {
    match value {
        Value::Object(map) if map.contains_key("source") => out.push(value.clone()),
        Value::Object(map) => map.values().for_each(|v| collect_messages(v, out)),
        Value::Array(items) => items.iter().for_each(|v| collect_messages(v, out)),
        _ => {}
    }
}

/// The sender and the mail of one outbox file: its headers (unfolded, RFC 2047 encoded-words
/// decoded) and its `text/html` part (base64).
fn parse_eml(eml: &str) -> Result<(String, Sent), Box<dyn std::error::Error>> {
    let (head, body) = eml
        .split_once("\r\n\r\n")
        .ok_or("no blank line after the headers")?;
    let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    let header = |name: &str| {
        unfolded
            .split("\r\n")
            .find_map(|line| line.strip_prefix(&format!("{name}: ")))
            .map(str::to_owned)
            .ok_or_else(|| format!("no {name} header"))
    };
    let subject = decode_header(&header("Subject")?)?;
    let html_part = body
        .split_once("Content-Type: text/html; charset=utf-8\r\n")
        .ok_or("no text/html part")?
        .1;
    let encoded: String = html_part
        .split_once("\r\n\r\n")
        .ok_or("no blank line in the html part")?
        .1
        .lines()
        .take_while(|l| !l.starts_with("--"))
        .collect();
    let html = String::from_utf8(STANDARD.decode(encoded.trim())?)?;
    Ok((
        header("From")?,
        Sent {
            to: vec![header("To")?],
            subject,
            html,
        },
    ))
}

/// A header value with its RFC 2047 `=?UTF-8?B?...?=` encoded-words decoded; the white space
/// between two encoded-words is not part of the text.
fn decode_header(value: &str) -> Result<String, Box<dyn std::error::Error>> {
    let mut text = String::new();
    let mut after_encoded = false;
    for (i, word) in value.split(' ').enumerate() {
        let encoded = word
            .strip_prefix("=?UTF-8?B?")
            .and_then(|w| w.strip_suffix("?="));
        if i > 0 && !(after_encoded && encoded.is_some()) {
            text.push(' ');
        }
        match encoded {
            Some(encoded) => text.push_str(&String::from_utf8(STANDARD.decode(encoded)?)?),
            None => text.push_str(word),
        }
        after_encoded = encoded.is_some();
    }
    Ok(text)
}

conformance! {
    adapters {
        outbox: super::MailHarness::outbox()?,
        ses: super::MailHarness::ses().await?,
    }
    given_a_mail_then_its_recipient_gets_it_with_its_subject_and_html_body,
    given_two_deliveries_then_two_mails_go_out,
}

fn mail(from: &str, to: &str, subject: &str, message_id: &str) -> OutgoingMail {
    OutgoingMail {
        from: from.to_owned(),
        to: to.to_owned(),
        subject: subject.to_owned(),
        html: "<p>Scan <strong>imported</strong>: 12 new findings</p>".into(),
        text: "Scan imported: 12 new findings".into(),
        message_id: message_id.to_owned(),
    }
}

async fn given_a_mail_then_its_recipient_gets_it_with_its_subject_and_html_body(
    h: &mut MailHarness,
) -> TestResult {
    let from = h.from.clone();
    let subject = "Sécurité notification: Scan imported into « Shop »";
    h.mailer()
        .send(&mail(&from, "alice@example.com", subject, "0123abcd"))
        .await?;

    let sent = h.sent().await?;
    assert_eq!(
        sent,
        [Sent {
            to: vec!["alice@example.com".into()],
            subject: subject.into(),
            html: "<p>Scan <strong>imported</strong>: 12 new findings</p>".into(),
        }]
    );
    Ok(())
}

async fn given_two_deliveries_then_two_mails_go_out(h: &mut MailHarness) -> TestResult {
    let from = h.from.clone();
    h.mailer()
        .send(&mail(
            &from,
            "alice@example.com",
            "Notification: one",
            "delivery-1",
        ))
        .await?;
    h.mailer()
        .send(&mail(
            &from,
            "bob@example.com",
            "Notification: two",
            "delivery-2",
        ))
        .await?;

    let mut sent = h.sent().await?;
    sent.sort_by(|a, b| a.subject.cmp(&b.subject));
    let recipients: Vec<(String, String)> = sent
        .into_iter()
        .map(|s| (s.to.join(","), s.subject))
        .collect();
    assert_eq!(
        recipients,
        [
            (
                "alice@example.com".to_owned(),
                "Notification: one".to_owned()
            ),
            ("bob@example.com".to_owned(), "Notification: two".to_owned()),
        ]
    );
    Ok(())
}
