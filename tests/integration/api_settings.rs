//! Settings endpoints: system settings, the four scopes, the effective view.

use herald_tests::TestApp;
use http::{Method, StatusCode};
use serde_json::{Value, json};

async fn app_with_alice_on_product_1() -> TestApp {
    let app = TestApp::new();
    app.service_ok(
        Method::PUT,
        "/v1/users/alice",
        Some(&json!({"email": "alice@example.com"})),
    )
    .await;
    app.service_ok(
        Method::PUT,
        "/v1/product-types/pt",
        Some(&json!({"name": "Web"})),
    )
    .await;
    app.service_ok(
        Method::PUT,
        "/v1/products/1",
        Some(&json!({"name": "Shop", "product_type_id": "pt"})),
    )
    .await;
    app.service_ok(
        Method::PUT,
        "/v1/products/2",
        Some(&json!({"name": "Other", "product_type_id": "pt"})),
    )
    .await;
    app.service_ok(Method::PUT, "/v1/products/1/members/alice", None)
        .await;
    app
}

fn channels(doc: &Value, event: &str) -> Vec<String> {
    doc["events"][event]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn given_nothing_saved_when_system_settings_are_read_then_defectdojos_defaults_come_back() {
    let app = TestApp::new();
    let r = app.admin(Method::GET, "/v1/system/settings", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["email_from"], "no-reply@example.com");
    assert_eq!(r.body["webhooks_notifications_timeout"], 10);
    assert_eq!(r.body["max_alerts_per_user"], 999);
    assert_eq!(r.body["slack_token_set"], false);
    assert!(r.body.get("slack_token").is_none());
}

#[tokio::test]
async fn given_a_partial_put_then_named_fields_change_others_stay_and_the_token_is_write_only() {
    let app = TestApp::new();
    let first = json!({"team_name": "AppSec", "slack_token": "xoxb-very-secret", "enable_slack_notifications": true});
    let r = app
        .admin(Method::PUT, "/v1/system/settings", Some(&first))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(!r.body.to_string().contains("xoxb-very-secret"));
    assert_eq!(r.body["slack_token_set"], true);

    let second = json!({"slack_channel": "#appsec"});
    let r = app
        .admin(Method::PUT, "/v1/system/settings", Some(&second))
        .await;
    assert_eq!(r.body["team_name"], "AppSec");
    assert_eq!(r.body["slack_channel"], "#appsec");
    assert_eq!(r.body["enable_slack_notifications"], true);
    assert_eq!(r.body["slack_token_set"], true);

    let read = app.admin(Method::GET, "/v1/system/settings", None).await;
    assert_eq!(read.body, r.body);
    assert!(!read.body.to_string().contains("xoxb-very-secret"));

    // A GET → PUT round trip (which carries the read-only `slack_token_set`) is accepted and
    // keeps the token.
    let r = app
        .admin(Method::PUT, "/v1/system/settings", Some(&read.body))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["slack_token_set"], true);

    let r = app
        .admin(
            Method::PUT,
            "/v1/system/settings",
            Some(&json!({"slack_token": null})),
        )
        .await;
    assert_eq!(r.body["slack_token_set"], false);
}

#[tokio::test]
async fn given_a_bad_system_setting_then_422_names_the_field_and_nothing_changes() {
    let app = TestApp::new();
    let before = app
        .admin(Method::GET, "/v1/system/settings", None)
        .await
        .body;
    let r = app
        .admin(
            Method::PUT,
            "/v1/system/settings",
            Some(&json!({"team_name": "ok", "webhooks_notifications_timeout": "ten"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.error_code(), "validation_failed");
    assert_eq!(r.error_field(), "webhooks_notifications_timeout");
    let after = app
        .admin(Method::GET, "/v1/system/settings", None)
        .await
        .body;
    assert_eq!(before, after);
}

#[tokio::test]
async fn given_any_scope_then_get_lists_every_event_type_and_put_replaces_the_document() {
    let app = app_with_alice_on_product_1().await;
    for path in [
        "/v1/notifications/system",
        "/v1/notifications/template",
        "/v1/users/alice/notifications",
    ] {
        let r = app.admin(Method::GET, path, None).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert_eq!(
            r.body["events"].as_object().map(|o| o.len()),
            Some(18),
            "{path}"
        );
        assert_eq!(channels(&r.body, "scan_added_empty"), Vec::<String>::new());

        let put = json!({"events": {"scan_added": ["mail", "alert"], "other": []}});
        let r = app.admin(Method::PUT, path, Some(&put)).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
        assert_eq!(channels(&r.body, "scan_added"), ["alert", "mail"]);
        assert_eq!(channels(&r.body, "other"), Vec::<String>::new());

        // A second PUT replaces the whole document: scan_added goes back to its default.
        let r = app
            .admin(
                Method::PUT,
                path,
                Some(&json!({"events": {"sla_breach": ["slack"]}})),
            )
            .await;
        assert_eq!(channels(&r.body, "scan_added"), ["alert"]);
        assert_eq!(channels(&r.body, "other"), ["alert"]);
        let read = app.admin(Method::GET, path, None).await;
        assert_eq!(read.body, r.body, "{path}");
    }
}

#[tokio::test]
async fn given_msteams_then_only_the_system_scope_accepts_it() {
    let app = app_with_alice_on_product_1().await;
    let doc = json!({"events": {"scan_added": ["msteams"]}});
    let r = app
        .admin(Method::PUT, "/v1/notifications/system", Some(&doc))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    for path in [
        "/v1/notifications/template",
        "/v1/users/alice/notifications",
        "/v1/users/alice/notifications/products/1",
    ] {
        let r = app.admin(Method::PUT, path, Some(&doc)).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{path}");
        assert_eq!(r.error_field(), "events.scan_added[0]", "{path}");
    }
}

#[tokio::test]
async fn given_the_template_then_new_users_get_a_copy_and_existing_users_keep_theirs() {
    let app = TestApp::new();
    app.service_ok(Method::PUT, "/v1/users/early", Some(&json!({})))
        .await;
    let template = json!({"events": {"engagement_added": ["alert", "mail"]}});
    app.admin(Method::PUT, "/v1/notifications/template", Some(&template))
        .await;

    let created = app
        .service(
            Method::PUT,
            "/v1/users/late",
            Some(&json!({"email": "late@example.com"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let late = app
        .admin(Method::GET, "/v1/users/late/notifications", None)
        .await;
    assert_eq!(channels(&late.body, "engagement_added"), ["alert", "mail"]);
    let early = app
        .admin(Method::GET, "/v1/users/early/notifications", None)
        .await;
    assert_eq!(channels(&early.body, "engagement_added"), ["alert"]);

    // Updating a user does not reset their settings to the template.
    app.user(
        "late",
        Method::PUT,
        "/v1/users/late/notifications",
        Some(&json!({})),
    )
    .await;
    let updated = app
        .service(
            Method::PUT,
            "/v1/users/late",
            Some(&json!({"first_name": "Late"})),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK);
    let late = app
        .admin(Method::GET, "/v1/users/late/notifications", None)
        .await;
    assert_eq!(channels(&late.body, "engagement_added"), ["alert"]);
}

#[tokio::test]
async fn given_a_user_then_they_manage_their_own_settings_and_per_product_only_where_they_may_view()
{
    let app = app_with_alice_on_product_1().await;
    let doc = json!({"events": {"scan_added": ["alert", "slack"]}});
    let r = app
        .user(
            "alice",
            Method::PUT,
            "/v1/users/alice/notifications",
            Some(&doc),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);

    let p1 = "/v1/users/alice/notifications/products/1";
    assert_eq!(
        app.user("alice", Method::GET, p1, None).await.status,
        StatusCode::NOT_FOUND
    );
    let r = app
        .user(
            "alice",
            Method::PUT,
            p1,
            Some(&json!({"events": {"scan_added": ["mail"]}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        channels(
            &app.user("alice", Method::GET, p1, None).await.body,
            "scan_added"
        ),
        ["mail"]
    );

    // Product 2: alice is no member; product 99 does not exist. Both are 403 to her, so she
    // learns nothing about products she may not view.
    for p in ["2", "99"] {
        let path = format!("/v1/users/alice/notifications/products/{p}");
        let r = app.user("alice", Method::PUT, &path, Some(&doc)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}");
    }
    // An admin gets 404 for a product that does not exist.
    let r = app
        .admin(
            Method::GET,
            "/v1/users/alice/notifications/products/99",
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Membership through the product type gives access too.
    app.service_ok(Method::PUT, "/v1/product-types/pt/members/alice", None)
        .await;
    let r = app
        .user(
            "alice",
            Method::PUT,
            "/v1/users/alice/notifications/products/2",
            Some(&doc),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);

    assert_eq!(
        app.user("alice", Method::DELETE, p1, None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.user("alice", Method::DELETE, p1, None).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn given_personal_product_and_system_settings_then_the_effective_view_shows_the_union_and_its_sources()
 {
    let app = app_with_alice_on_product_1().await;
    app.admin(
        Method::PUT,
        "/v1/system/settings",
        Some(&json!({"enable_mail_notifications": true})),
    )
    .await;
    app.admin(
        Method::PUT,
        "/v1/notifications/system",
        Some(&json!({"events": {"user_mentioned": ["mail", "slack"], "scan_added": ["slack"]}})),
    )
    .await;
    app.user(
        "alice",
        Method::PUT,
        "/v1/users/alice/notifications",
        Some(&json!({"events": {"scan_added": ["alert"]}})),
    )
    .await;
    app.user(
        "alice",
        Method::PUT,
        "/v1/users/alice/notifications/products/1",
        Some(&json!({"events": {"scan_added": ["alert", "mail"]}})),
    )
    .await;

    let r = app
        .user(
            "alice",
            Method::GET,
            "/v1/users/alice/notifications/effective?product_id=1",
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["product_id"], "1");
    assert_eq!(
        r.body["events"]["scan_added"],
        json!([
            {"channel": "alert", "scopes": ["personal", "product"], "enabled_by_system": true},
            {"channel": "mail", "scopes": ["product"], "enabled_by_system": true}
        ])
    );
    // System channels join trump-list events only; slack is switched off system-wide. The
    // product document leaves user_mentioned at its default (alert).
    assert_eq!(
        r.body["events"]["user_mentioned"],
        json!([
            {"channel": "alert", "scopes": ["personal", "product"], "enabled_by_system": true},
            {"channel": "mail", "scopes": ["system"], "enabled_by_system": true},
            {"channel": "slack", "scopes": ["system"], "enabled_by_system": false}
        ])
    );

    let without_product = app
        .admin(Method::GET, "/v1/users/alice/notifications/effective", None)
        .await;
    assert_eq!(without_product.body["product_id"], Value::Null);
    assert_eq!(
        without_product.body["events"]["scan_added"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    let r = app
        .user(
            "alice",
            Method::GET,
            "/v1/users/alice/notifications/effective?product_id=2",
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app
        .user(
            "alice",
            Method::GET,
            "/v1/users/alice/notifications/effective?product_id=",
            None,
        )
        .await;
    assert_eq!(
        (r.status, r.error_field()),
        (StatusCode::BAD_REQUEST, "product_id")
    );
}

#[tokio::test]
async fn given_malformed_requests_then_errors_are_4xx_in_the_contracts_shape() {
    let app = app_with_alice_on_product_1().await;
    let token = app.token("root", settings_api::Role::Admin);
    let raw = |method: &str, path: &str, content_type: Option<&str>, body: Vec<u8>| {
        let mut b = http::Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {token}"));
        if let Some(ct) = content_type {
            b = b.header("content-type", ct);
        }
        b.body(axum::body::Body::from(body)).unwrap_or_default()
    };
    let cases: Vec<(http::Request<axum::body::Body>, StatusCode, &str)> = vec![
        (
            raw(
                "PUT",
                "/v1/notifications/system",
                Some("application/json"),
                b"{\"events\":".to_vec(),
            ),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            raw(
                "PUT",
                "/v1/notifications/system",
                Some("text/plain"),
                b"{}".to_vec(),
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            raw(
                "PUT",
                "/v1/notifications/system",
                Some("application/json"),
                Vec::new(),
            ),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            raw(
                "PUT",
                "/v1/notifications/system",
                Some("application/json"),
                vec![b' '; 300 * 1024],
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            raw(
                "PUT",
                "/v1/users/al%20ice",
                Some("application/json"),
                b"{}".to_vec(),
            ),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            raw(
                "PUT",
                "/v1/products/a%23b",
                Some("application/json"),
                b"{\"name\":\"x\",\"product_type_id\":\"pt\"}".to_vec(),
            ),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            raw("GET", "/v1/nothing-here", None, Vec::new()),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            raw("PATCH", "/v1/system/settings", None, Vec::new()),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
    ];
    for (request, status, code) in cases {
        let what = format!("{} {}", request.method(), request.uri());
        let r = app.send_raw(request).await;
        assert_eq!(
            (r.status, r.error_code()),
            (status, code),
            "{what}: {}",
            r.body
        );
        assert!(
            r.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{what}"
        );
    }
}

#[tokio::test]
async fn the_catalogue_says_what_each_event_is_for_and_which_channels_the_system_switched_on() {
    let app = TestApp::new();
    let read = |r: herald_tests::TestResponse| {
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body
    };
    let before = read(
        app.user("alice", Method::GET, "/v1/event-types", None)
            .await,
    );
    let items = before["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 18);
    assert!(
        items
            .iter()
            .all(|e| e["help"].as_str().is_some_and(|h| h.ends_with('.'))),
        "every event says what it is for: {items:?}"
    );
    let switches = |body: &Value| -> Vec<(String, bool, bool)> {
        body["channels"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                (
                    c["name"].as_str().unwrap_or_default().to_owned(),
                    c["enabled"].as_bool().unwrap_or_default(),
                    c["personal"].as_bool().unwrap_or_default(),
                )
            })
            .collect()
    };
    let s = |name: &str, enabled, personal| (name.to_owned(), enabled, personal);
    assert_eq!(
        switches(&before),
        [
            s("alert", true, true),
            s("mail", false, true),
            s("slack", false, true),
            s("msteams", false, false),
            s("webhooks", false, true)
        ]
    );
    let r = app
        .admin(
            Method::PUT,
            "/v1/system/settings",
            Some(&json!({"enable_mail_notifications": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let after = read(
        app.user("alice", Method::GET, "/v1/event-types", None)
            .await,
    );
    assert_eq!(switches(&after)[1], s("mail", true, true));
    assert_eq!(after["channels"][3]["label"], "Microsoft Teams");
}

#[tokio::test]
async fn given_memberships_then_a_user_lists_the_products_whose_settings_they_may_keep() {
    let app = app_with_alice_on_product_1().await;
    app.user(
        "alice",
        Method::PUT,
        "/v1/users/alice/notifications/products/1",
        Some(&json!({"events": {"scan_added": ["alert", "mail"]}})),
    )
    .await;
    let r = app
        .user("alice", Method::GET, "/v1/users/alice/products", None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"username": "alice", "products": [
            {"id": "1", "name": "Shop", "product_type_id": "pt",
             "access": ["product_member"], "has_settings": true}
        ]})
    );

    // A product-type membership adds the type's other product; each product is listed once.
    app.service_ok(Method::PUT, "/v1/product-types/pt/members/alice", None)
        .await;
    let r = app
        .user("alice", Method::GET, "/v1/users/alice/products", None)
        .await;
    assert_eq!(
        r.body["products"],
        json!([
            {"id": "2", "name": "Other", "product_type_id": "pt",
             "access": ["product_type_member"], "has_settings": false},
            {"id": "1", "name": "Shop", "product_type_id": "pt",
             "access": ["product_member", "product_type_member"], "has_settings": true}
        ])
    );

    // An administrator reads anyone's list; an unknown user is a 404.
    let r = app
        .admin(Method::GET, "/v1/users/alice/products", None)
        .await;
    assert_eq!(r.body["products"].as_array().map(Vec::len), Some(2));
    let r = app
        .admin(Method::GET, "/v1/users/ghost/products", None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
}
