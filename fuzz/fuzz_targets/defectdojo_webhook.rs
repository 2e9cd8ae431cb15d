//! `POST /v1/defectdojo/webhook`: the `X-DefectDojo-Event` header (the input's first line)
//! and any body (the rest) into a Herald event.
//!
//! Checks: reading never panics; a header error names the header and a body error names a
//! field of the body; an accepted event keeps Herald's limits, its stored form reads back
//! equal, and both webhook formats' bodies for it build without panicking.
#![no_main]

use herald_fuzz::{assert_names_a_field, json};
use herald_shared::domain::defectdojo::outbound::defectdojo_body;
use herald_shared::domain::defectdojo::{EVENT_HEADER, Inbound, InboundError, from_webhook};
use herald_shared::domain::event::MAX_TITLE;
use herald_shared::domain::webhook_body::{DirectoryNames, webhook_body};
use herald_shared::domain::{Event, SystemSettings};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let Ok(header) = std::str::from_utf8(&data[..split]) else {
        return;
    };
    let Some(body) = json(data.get(split + 1..).unwrap_or_default()) else {
        return;
    };
    let event = match from_webhook(Some(header), &body, || "generated".to_owned()) {
        Ok(Inbound::Event(event)) => *event,
        Ok(Inbound::Ping | Inbound::PersonalCopy { .. }) => return,
        Err(InboundError::Header(error)) => {
            assert_eq!(error.field, EVENT_HEADER, "{error:?}");
            return;
        }
        Err(InboundError::Body(error)) => {
            assert_names_a_field(&error, &body, &[]);
            return;
        }
    };
    assert!(!event.title.trim().is_empty() && event.title.chars().count() <= MAX_TITLE);
    assert!(!event.title.chars().any(char::is_control), "{:?}", event.title);
    let stored = event.to_stored();
    assert_eq!(Event::from_stored(&stored).as_ref(), Ok(&event), "stored form {stored}");
    let system = SystemSettings {
        site_url: "https://defectdojo.example.com".into(),
        ..SystemSettings::default()
    };
    let names = DirectoryNames::default();
    let _ = serde_json::to_vec(&webhook_body(&event, &system, None, &names));
    let _ = serde_json::to_vec(&defectdojo_body(&event, &system, None, None, &names));
});
