//! Every channel's message for an event and the system settings: Slack's Block Kit message,
//! Teams' Adaptive Card, the email (subject, text, HTML) and the webhook body.
//!
//! The input is either JSON, `{"event": <a POST /v1/events body>, "system": <a system settings
//! patch>}` (the seeds are realistic events), or, when it is not, bytes read as a structured
//! [`RenderInput`] (an event whose objects carry the fields the templates read), which reaches
//! the templates' corners far faster than mutated JSON. Events and settings the API would
//! refuse are skipped: only what the senders can be given is rendered.
//!
//! Checks: rendering a valid event never fails or panics on any channel; Slack's blocks keep
//! Block Kit's limits (the templates promise to cut, never to be refused); the email subject is
//! one line; every `<` in the HTML body opens one of the templates' own tags (posted text is
//! escaped); the webhook body carries the event's name and id.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use herald_shared::domain::{Event, SystemSettings};
use herald_fuzz::{MAX_BODY_BYTES, RenderInput};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use std::sync::LazyLock;

struct Senders {
    slack: sender_slack::Templates,
    teams: sender_teams::Templates,
    email: sender_email::Templates,
}

static SENDERS: LazyLock<Senders> = LazyLock::new(|| Senders {
    slack: sender_slack::Templates::new().unwrap_or_else(|e| panic!("{e}")),
    teams: sender_teams::Templates::new().unwrap_or_else(|e| panic!("{e}")),
    email: sender_email::Templates::new().unwrap_or_else(|e| panic!("{e}")),
});

/// The tags the email templates write.
const HTML_TAGS: &[&str] = &[
    "a",
    "blockquote",
    "body",
    "em",
    "h2",
    "h3",
    "head",
    "hr",
    "html",
    "li",
    "meta",
    "p",
    "strong",
    "table",
    "td",
    "th",
    "title",
    "tr",
    "ul",
];

fuzz_target!(|data: &[u8]| {
    let Some((event, system)) = from_json(data).or_else(|| from_structure(data)) else {
        return;
    };
    render(&event, &system);
});

/// `{"event": ..., "system": ...}`; `None` when the input is not that, or the event or the
/// patch is invalid.
fn from_json(data: &[u8]) -> Option<(Event, SystemSettings)> {
    let input: Value = serde_json::from_slice(data).ok()?;
    let event = Event::from_request(input.get("event")?, || "generated".into()).ok()?;
    let system = match input.get("system") {
        Some(patch) => SystemSettings::default().apply_patch(patch).ok()?,
        None => SystemSettings::default(),
    };
    Some((event, system))
}

/// A [`RenderInput`]; `None` when its event is invalid. Invalid settings fields keep their
/// defaults.
fn from_structure(data: &[u8]) -> Option<(Event, SystemSettings)> {
    let input = RenderInput::arbitrary_take_rest(Unstructured::new(data)).ok()?;
    let body = input.event_body();
    if body.to_string().len() > MAX_BODY_BYTES {
        return None;
    }
    let event = Event::from_request(&body, || "generated".into()).ok()?;
    let mut system = SystemSettings::default();
    for patch in input.system_patches() {
        if let Ok(next) = system.apply_patch(&patch) {
            system = next;
        }
    }
    Some((event, system))
}

fn render(event: &Event, system: &SystemSettings) {
    let senders = &*SENDERS;
    let slack = senders
        .slack
        .render(event, system)
        .unwrap_or_else(|e| panic!("Slack: {e}"));
    check_slack(&slack);
    let card = senders
        .teams
        .render(event, system)
        .unwrap_or_else(|e| panic!("Teams: {e}"));
    let _ = sender_teams::envelope(card);
    let email = senders
        .email
        .render(event, system)
        .unwrap_or_else(|e| panic!("email: {e}"));
    assert!(
        !email.subject.chars().any(char::is_control),
        "subject {:?}",
        email.subject
    );
    assert!(!email.text.trim().is_empty() && !email.html.trim().is_empty());
    check_html(&email.html);
    let body = herald_shared::domain::webhook_body::webhook_body(event, system, None, &Default::default());
    assert_eq!(body.event, event.event_type);
    assert_eq!(body.event_id, event.id.as_str());
    let _ = serde_json::to_string(&body).unwrap_or_else(|e| panic!("webhook body: {e}"));
}

fn chars(value: &Value) -> usize {
    value.as_str().map_or(0, |s| s.chars().count())
}

/// Block Kit's limits: a message's fallback text, a section's text (non-empty, at most 3,000
/// characters) or fields (at most 10 of at most 2,000), a context's elements (at most 10).
fn check_slack(message: &sender_slack::SlackMessage) {
    use sender_slack::message::{FALLBACK_TEXT_LIMIT, FIELD_TEXT_LIMIT, SECTION_TEXT_LIMIT};
    assert!(message.text.chars().count() <= FALLBACK_TEXT_LIMIT);
    for block in &message.blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("section") => {
                if let Some(text) = block.pointer("/text/text") {
                    let n = chars(text);
                    assert!(
                        (1..=SECTION_TEXT_LIMIT).contains(&n),
                        "section text of {n} characters: {block}"
                    );
                }
                if let Some(fields) = block.get("fields").and_then(Value::as_array) {
                    assert!((1..=10).contains(&fields.len()), "{block}");
                    for field in fields {
                        let n = chars(&field["text"]);
                        assert!(
                            (1..=FIELD_TEXT_LIMIT).contains(&n),
                            "field of {n} characters: {block}"
                        );
                    }
                }
            }
            Some("context") => {
                let elements = block["elements"].as_array().map_or(0, Vec::len);
                assert!((1..=10).contains(&elements), "{block}");
                for element in block["elements"].as_array().into_iter().flatten() {
                    let n = chars(&element["text"]);
                    assert!(
                        (1..=SECTION_TEXT_LIMIT).contains(&n),
                        "context text of {n} characters: {block}"
                    );
                }
            }
            _ => {}
        }
    }
}

/// Every `<` opens (or closes) one of the templates' tags, or is the doctype or a comment:
/// posted text cannot add markup.
fn check_html(html: &str) {
    for (at, _) in html.match_indices('<') {
        let rest = &html[at + 1..];
        if rest.starts_with('!') {
            continue;
        }
        let name: String = rest
            .trim_start_matches('/')
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect();
        assert!(
            HTML_TAGS.contains(&name.to_ascii_lowercase().as_str()),
            "markup the templates do not write at byte {at}: {:?}",
            &rest[..rest.len().min(80)]
        );
    }
}
