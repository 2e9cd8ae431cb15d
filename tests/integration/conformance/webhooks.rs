//! The conformance suite of `WebhookStore` (endpoints, conditional state updates, parked
//! messages).

use super::{Harness, TestResult};
use herald_shared::domain::webhook::Change;
use herald_shared::domain::{
    DeliveryMessage, Destination, EventId, Username, WebhookEndpoint, WebhookId, WebhookRequest,
    WebhookState, WebhookStatus,
};
use herald_shared::ports::{ParkedMessage, WebhookOwner};
use serde_json::json;

conformance! {
    given_nothing_stored_then_reads_are_empty_and_deletes_report_nothing,
    given_endpoints_then_they_round_trip_with_secrets_and_list_by_owner_in_id_order,
    given_a_read_endpoint_then_only_the_first_conditional_update_wins,
    given_parked_messages_then_they_come_oldest_first_and_unpark_and_delete_remove_them,
    given_endpoints_and_parked_messages_then_they_survive_a_reopen,
    given_webhook_groups_then_intake_expands_them_per_endpoint_with_one_read,
}

fn username(name: &str) -> Username {
    Username::parse("username", name).unwrap_or_else(|e| panic!("{e}"))
}

/// An endpoint with every optional field set, owned by `owner` (`None`: system).
fn endpoint(id_byte: u8, owner: Option<&str>) -> WebhookEndpoint {
    let request = WebhookRequest::from_request(&json!({
        "name": format!("Hook {id_byte}"),
        "url": format!("https://hooks.example.com/{id_byte}?token=t0ken"),
        "header_name": "X-Token",
        "header_value": "header-secret",
        "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    request
        .create(
            WebhookId::from_random([id_byte; 8]),
            owner.map(username),
            1_800_000_000_000,
        )
        .unwrap_or_else(|e| panic!("{e}"))
}

fn message(event: &str, endpoint: &WebhookId) -> DeliveryMessage {
    let event = EventId::parse("id", event).unwrap_or_else(|e| panic!("{e}"));
    herald_shared::domain::Delivery::queued(&event, Destination::Webhook(endpoint.clone()), 0)
        .message()
}

async fn given_nothing_stored_then_reads_are_empty_and_deletes_report_nothing(
    h: &mut Harness,
) -> TestResult {
    let store = h.store();
    let id = WebhookId::from_random([1; 8]);
    assert_eq!(store.webhook(&id).await?, None);
    assert!(store.webhooks(&WebhookOwner::All).await?.is_empty());
    assert!(!store.delete_webhook(&id).await?);
    assert!(store.parked_webhook_messages(&id, 10).await?.is_empty());
    let ghost = WebhookEndpoint {
        version: 1,
        ..endpoint(1, None)
    };
    assert!(!store.update_webhook_if_unchanged(&ghost).await?);
    assert_eq!(
        store.webhook(&id).await?,
        None,
        "a failed update creates nothing"
    );
    Ok(())
}

async fn given_endpoints_then_they_round_trip_with_secrets_and_list_by_owner_in_id_order(
    h: &mut Harness,
) -> TestResult {
    let store = h.store();
    let system = endpoint(3, None);
    let alices = endpoint(1, Some("alice"));
    let bobs = endpoint(2, Some("bob"));
    for e in [&system, &alices, &bobs] {
        assert_eq!(store.put_webhook(e).await?, 1);
    }
    let read = store.webhook(&alices.id).await?;
    assert_eq!(
        read,
        Some(WebhookEndpoint {
            version: 1,
            ..alices.clone()
        })
    );
    let read = read.unwrap_or_else(|| panic!("just written"));
    assert_eq!(
        read.secret.as_ref().map(|s| s.expose()),
        Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    );
    assert_eq!(
        read.header_value.as_ref().map(|s| s.expose()),
        Some("header-secret")
    );

    let ids = |list: Vec<WebhookEndpoint>| list.into_iter().map(|e| e.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.webhooks(&WebhookOwner::All).await?),
        vec![alices.id.clone(), bobs.id.clone(), system.id.clone()]
    );
    assert_eq!(
        ids(store.webhooks(&WebhookOwner::System).await?),
        vec![system.id.clone()]
    );
    assert_eq!(
        ids(store.webhooks(&WebhookOwner::User(username("bob"))).await?),
        vec![bobs.id.clone()]
    );
    assert!(
        store
            .webhooks(&WebhookOwner::User(username("carol")))
            .await?
            .is_empty()
    );

    // An edit (a put over the stored one) bumps the version and can clear fields.
    let edited = WebhookRequest {
        name: Some("Renamed".into()),
        secret: Change::Clear,
        ..WebhookRequest::default()
    }
    .edit(&read, 1_800_000_000_500)?;
    assert_eq!(store.put_webhook(&edited).await?, 2);
    let read = store.webhook(&alices.id).await?;
    assert_eq!(read.as_ref().map(|e| e.name.as_str()), Some("Renamed"));
    assert_eq!(read.as_ref().map(|e| e.secret.is_none()), Some(true));
    assert_eq!(read.as_ref().map(|e| e.version), Some(2));

    assert!(store.delete_webhook(&alices.id).await?);
    assert!(!store.delete_webhook(&alices.id).await?);
    assert_eq!(store.webhook(&alices.id).await?, None);
    assert_eq!(store.webhooks(&WebhookOwner::All).await?.len(), 2);
    Ok(())
}

async fn given_a_read_endpoint_then_only_the_first_conditional_update_wins(
    h: &mut Harness,
) -> TestResult {
    let store = h.store();
    let e = endpoint(4, Some("alice"));
    store.put_webhook(&e).await?;
    let read = store
        .webhook(&e.id)
        .await?
        .unwrap_or_else(|| panic!("just written"));
    let resting = |note: &str| WebhookEndpoint {
        state: WebhookState {
            status: WebhookStatus::InactiveTmp,
            first_error: Some(10),
            last_error: Some(20),
            note: Some(note.to_owned()),
        },
        ..read.clone()
    };
    assert!(store.update_webhook_if_unchanged(&resting("first")).await?);
    assert!(
        !store
            .update_webhook_if_unchanged(&resting("second"))
            .await?
    );
    let now = store
        .webhook(&e.id)
        .await?
        .unwrap_or_else(|| panic!("still there"));
    assert_eq!(now.state.note.as_deref(), Some("first"));
    assert_eq!(now.state.status, WebhookStatus::InactiveTmp);
    assert_eq!(now.version, read.version + 1);

    // An edit in between makes an update computed from the earlier read fail.
    store.put_webhook(&now).await?;
    assert!(!store.update_webhook_if_unchanged(&now).await?);
    // A deleted endpoint is never brought back by an update.
    let latest = store
        .webhook(&e.id)
        .await?
        .unwrap_or_else(|| panic!("still there"));
    assert!(store.delete_webhook(&e.id).await?);
    assert!(!store.update_webhook_if_unchanged(&latest).await?);
    assert_eq!(store.webhook(&e.id).await?, None);
    Ok(())
}

async fn given_parked_messages_then_they_come_oldest_first_and_unpark_and_delete_remove_them(
    h: &mut Harness,
) -> TestResult {
    let store = h.store();
    let hook = endpoint(5, None);
    let other = endpoint(6, None);
    store.put_webhook(&hook).await?;
    store.put_webhook(&other).await?;
    let (m1, m2, m3) = (
        message("e1", &hook.id),
        message("e2", &hook.id),
        message("e3", &hook.id),
    );
    store.park_webhook_message(&hook.id, &m2, 2_000).await?;
    store.park_webhook_message(&hook.id, &m1, 1_000).await?;
    store.park_webhook_message(&hook.id, &m3, 3_000).await?;
    // The same delivery parked again at the same moment stays one message.
    store.park_webhook_message(&hook.id, &m3, 3_000).await?;
    store
        .park_webhook_message(&other.id, &message("e9", &other.id), 500)
        .await?;

    let parked = store.parked_webhook_messages(&hook.id, 10).await?;
    assert_eq!(
        parked,
        vec![
            ParkedMessage {
                message: m1.clone(),
                parked_at: 1_000
            },
            ParkedMessage {
                message: m2.clone(),
                parked_at: 2_000
            },
            ParkedMessage {
                message: m3.clone(),
                parked_at: 3_000
            },
        ]
    );
    let first_two = store.parked_webhook_messages(&hook.id, 2).await?;
    assert_eq!(first_two, parked[..2].to_vec());

    store.unpark_webhook_messages(&hook.id, &first_two).await?;
    // Unparking again is harmless.
    store.unpark_webhook_messages(&hook.id, &first_two).await?;
    assert_eq!(
        store.parked_webhook_messages(&hook.id, 10).await?,
        parked[2..].to_vec()
    );
    assert_eq!(store.parked_webhook_messages(&other.id, 10).await?.len(), 1);

    // Deleting an endpoint takes its parked messages with it, and only its own.
    assert!(store.delete_webhook(&hook.id).await?);
    assert!(
        store
            .parked_webhook_messages(&hook.id, 10)
            .await?
            .is_empty()
    );
    assert_eq!(store.parked_webhook_messages(&other.id, 10).await?.len(), 1);
    Ok(())
}

async fn given_endpoints_and_parked_messages_then_they_survive_a_reopen(
    h: &mut Harness,
) -> TestResult {
    let hook = endpoint(7, Some("alice"));
    h.store().put_webhook(&hook).await?;
    let m = message("e1", &hook.id);
    h.store().park_webhook_message(&hook.id, &m, 42).await?;
    h.reopen().await?;
    assert_eq!(
        h.store().webhook(&hook.id).await?,
        Some(WebhookEndpoint {
            version: 1,
            ..hook.clone()
        })
    );
    assert_eq!(
        h.store().parked_webhook_messages(&hook.id, 10).await?,
        vec![ParkedMessage {
            message: m,
            parked_at: 42
        }]
    );
    Ok(())
}

async fn given_webhook_groups_then_intake_expands_them_per_endpoint_with_one_read(
    h: &mut Harness,
) -> TestResult {
    let system = endpoint(1, None);
    let alices = [endpoint(2, Some("alice")), endpoint(3, Some("alice"))];
    let mut deactivated = endpoint(4, Some("bob"));
    for e in [&system, &alices[0], &alices[1], &deactivated] {
        h.store().put_webhook(e).await?;
    }
    deactivated.version = 1;
    deactivated.state.status = WebhookStatus::InactivePermanent;
    assert!(h.store().update_webhook_if_unchanged(&deactivated).await?);
    // Many more endpoints of other users: still one read.
    for n in 10..60u8 {
        h.store()
            .put_webhook(&endpoint(n, Some(&format!("user{n}"))))
            .await?;
    }

    let mut groups = vec![
        Destination::email("x@example.com"),
        Destination::SystemWebhooks,
        Destination::UserWebhooks(username("alice")),
        Destination::UserWebhooks(username("bob")),
        Destination::UserWebhooks(username("carol")),
    ];
    groups.extend((60..160).map(|n| Destination::UserWebhooks(username(&format!("nobody{n}")))));
    let before = h.request_count();
    let expanded = herald_shared::intake::expand_webhook_groups(h.store(), groups).await?;
    if let (Some(before), Some(after)) = (before, h.request_count()) {
        assert_eq!(after - before, 1, "one Query for the endpoint list");
    }
    assert_eq!(
        expanded,
        vec![
            Destination::email("x@example.com"),
            Destination::Webhook(system.id.clone()),
            Destination::Webhook(alices[0].id.clone()),
            Destination::Webhook(alices[1].id.clone()),
        ]
    );

    // Without a group, no read at all.
    let before = h.request_count();
    let plain = vec![Destination::Teams];
    assert_eq!(
        herald_shared::intake::expand_webhook_groups(h.store(), plain.clone()).await?,
        plain
    );
    assert_eq!(h.request_count(), before);
    Ok(())
}
