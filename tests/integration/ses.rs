//! `SesMailer` against moto's SES v2 (`HERALD_TEST_MOTO_URL`): a mail from a verified identity
//! is accepted and shows up in moto's record of sent mail; a mail from an unverified sender is
//! refused for good.

use aws_sdk_sesv2::Client;
use herald_shared::adapters::SesMailer;
use herald_shared::ports::{MailError, Mailer, OutgoingMail};
use herald_tests::{emulator_config, emulator_url};
use serde_json::Value;

/// A sender address no other test run uses.
fn unique_sender(label: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SENDERS: AtomicU64 = AtomicU64::new(0);
    format!(
        "herald-{label}-{}-{}-{}@example.com",
        std::process::id(),
        herald_tests::now(),
        SENDERS.fetch_add(1, Ordering::Relaxed)
    )
}

fn mail(from: &str, subject: &str) -> OutgoingMail {
    OutgoingMail {
        from: from.to_owned(),
        to: "alice@example.com".into(),
        subject: subject.to_owned(),
        html: "<p>Scan <strong>imported</strong></p>".into(),
        text: "Scan imported".into(),
        message_id: "0123abcd".into(),
    }
}

/// Every message moto recorded as sent, from `GET /moto-api/data.json`.
async fn sent_messages(moto: &str) -> Vec<Value> {
    let url = format!("{}/moto-api/data.json", moto.trim_end_matches('/'));
    let data: Value = reqwest::get(&url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let mut messages = Vec::new();
    collect_messages(&data["ses"], &mut messages);
    messages
}

/// moto nests its SES state by account and region; every object with a `source` (the sender)
/// is a sent message.
fn collect_messages(value: &Value, out: &mut Vec<Value>) {
    match value {
        Value::Object(map) => {
            if map.contains_key("source") {
                out.push(value.clone());
            } else {
                map.values().for_each(|v| collect_messages(v, out));
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_messages(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn given_a_verified_sender_then_ses_accepts_the_mail_and_moto_records_it() {
    let moto = emulator_url("HERALD_TEST_MOTO_URL");
    let client = Client::new(&emulator_config(&moto).await);
    let from = unique_sender("verified");
    client
        .create_email_identity()
        .email_identity(&from)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateEmailIdentity: {e:?}"));
    let mailer = SesMailer::new(client);

    let result = mailer
        .send(&mail(&from, "Sécurité notification: Scan imported"))
        .await;

    assert_eq!(result, Ok(()));
    let messages = sent_messages(&moto).await;
    let ours: Vec<&Value> = messages
        .iter()
        .filter(|m| m["source"].as_str() == Some(from.as_str()))
        .collect();
    assert_eq!(ours.len(), 1, "moto's ses data: {messages:?}");
    let recorded = ours[0].to_string();
    assert!(recorded.contains("alice@example.com"), "{recorded}");
    assert!(
        recorded.contains("Sécurité notification: Scan imported"),
        "{recorded}"
    );
}

#[tokio::test]
async fn given_an_unverified_sender_then_the_mail_is_refused_for_good() {
    let moto = emulator_url("HERALD_TEST_MOTO_URL");
    let mailer = SesMailer::new(Client::new(&emulator_config(&moto).await));
    let from = unique_sender("unverified");

    let result = mailer.send(&mail(&from, "Notification: x")).await;

    assert!(
        matches!(result, Err(MailError::Permanent(ref reason)) if reason.contains("MessageRejected")),
        "{result:?}"
    );
}
