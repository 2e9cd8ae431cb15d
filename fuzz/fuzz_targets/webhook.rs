//! `POST` and `PUT /v1/webhooks`: any body as a webhook endpoint definition, and any stored
//! endpoint read back.
//!
//! Checks: nothing panics; an error names a field of the body (or `name`, `url`, `header_name`,
//! `header_value` when creating needs them); a created endpoint reads back equal from its
//! stored form, signs with its secret, and accepts the editable fields of its own view
//! unchanged; the request also edits an existing endpoint without panicking.
#![no_main]

use herald_shared::domain::webhook::sign;
use herald_shared::domain::{WebhookEndpoint, WebhookId, WebhookRequest};
use herald_fuzz::{assert_names_a_field, json};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

const CREATE_FIELDS: &[&str] = &["name", "url", "header_name", "header_value"];

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = WebhookEndpoint::from_stored(text, 1);
    }
    let Some(body) = json(data) else {
        return;
    };
    let request = match WebhookRequest::from_request(&body) {
        Ok(request) => request,
        Err(error) => {
            assert_names_a_field(&error, &body, &[]);
            return;
        }
    };
    let existing = WebhookRequest::from_request(&json!({
        "name": "SIEM", "url": "https://siem.example.com/hook",
        "header_name": "Authorization", "header_value": "Bearer t"
    }))
    .and_then(|r| r.create(WebhookId::from_random([7; 8]), None, 1_000));
    if let Ok(existing) = &existing {
        match request.clone().edit(existing, 2_000) {
            Ok(edited) => assert!(edited.updated_at > existing.updated_at),
            Err(error) => assert_names_a_field(&error, &body, CREATE_FIELDS),
        }
    }
    let endpoint = match request.create(WebhookId::from_random([1; 8]), None, 1_000) {
        Ok(endpoint) => endpoint,
        Err(error) => {
            assert_names_a_field(&error, &body, CREATE_FIELDS);
            return;
        }
    };
    let stored = endpoint.to_stored();
    assert_eq!(
        WebhookEndpoint::from_stored(&stored, endpoint.version).as_ref(),
        Ok(&endpoint),
        "stored form"
    );
    if let Some(secret) = &endpoint.secret {
        assert!(
            sign(secret, "msg_1", 1, b"{}").is_some(),
            "an accepted secret signs"
        );
    }
    let view = json!({
        "id": endpoint.id.as_str(), "name": endpoint.name, "url": endpoint.url,
        "header_name": endpoint.header_name, "owner": null,
        "header_value_set": endpoint.header_value.is_some(),
        "secret_set": endpoint.secret.is_some(), "status": "active",
    });
    let resent = WebhookRequest::from_request(&view).and_then(|r| r.edit(&endpoint, 2_000));
    match resent {
        Ok(edited) => {
            assert_eq!(
                (
                    &edited.name,
                    &edited.url,
                    &edited.header_name,
                    &edited.header_value
                ),
                (
                    &endpoint.name,
                    &endpoint.url,
                    &endpoint.header_name,
                    &endpoint.header_value
                ),
            );
            assert_eq!(edited.secret, endpoint.secret);
        }
        Err(error) => panic!("the view of an endpoint is refused: {error}"),
    }
});
