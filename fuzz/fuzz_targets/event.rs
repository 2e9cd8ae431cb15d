//! `POST /v1/events` (and EventBridge's `detail`): any body into the domain `Event`.
//!
//! Checks: validation never panics; an error names a field of the body (or a required one);
//! an accepted event keeps its limits, its stored form reads back equal, and what intake and
//! the senders derive from it (product, governing type, engagement news, template context)
//! never panics.
#![no_main]

use herald_shared::domain::check_records::engagement_news;
use herald_shared::domain::event::{MAX_DESCRIPTION, MAX_TITLE};
use herald_shared::domain::message::template_context;
use herald_shared::domain::{Event, SystemSettings};
use herald_fuzz::{assert_names_a_field, json};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(body) = json(data) else {
        return;
    };
    let event = match Event::from_request(&body, || "generated".to_owned()) {
        Ok(event) => event,
        Err(error) => {
            assert_names_a_field(&error, &body, &["type", "title"]);
            return;
        }
    };
    assert!(!event.title.trim().is_empty() && event.title.chars().count() <= MAX_TITLE);
    assert!(
        !event.title.chars().any(char::is_control),
        "{:?}",
        event.title
    );
    assert!(
        event
            .description
            .as_ref()
            .is_none_or(|d| d.chars().count() <= MAX_DESCRIPTION)
    );
    let stored = event.to_stored();
    assert_eq!(
        Event::from_stored(&stored).as_ref(),
        Ok(&event),
        "stored form {stored}"
    );
    let _ = event.product();
    let _ = event.governing_type();
    let _ = engagement_news(&event);
    let _ = template_context(&event, &SystemSettings::default());
});
