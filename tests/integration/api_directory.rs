//! Directory endpoints: users, product types, products, memberships.

use herald_tests::TestApp;
use http::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn given_a_new_user_then_put_creates_get_reads_and_delete_removes() {
    let app = TestApp::new();
    let profile = json!({
        "email": "alice@example.com", "first_name": "Alice", "last_name": "Liddell",
        "slack_email": "alice@corp.example", "is_admin": false
    });
    let r = app
        .service(Method::PUT, "/v1/users/alice", Some(&profile))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["username"], "alice");
    assert_eq!(r.body["is_active"], true);
    assert_eq!(r.body["slack_user_id"], serde_json::Value::Null);

    let again = app
        .service(
            Method::PUT,
            "/v1/users/alice",
            Some(&json!({"email": "a@example.com", "is_active": false})),
        )
        .await;
    assert_eq!(again.status, StatusCode::OK);

    let me = app
        .user("alice", Method::GET, "/v1/users/alice", None)
        .await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["email"], "a@example.com");
    assert_eq!(me.body["is_active"], false);
    assert_eq!(
        me.body["first_name"], "",
        "PUT replaces the profile: fields left out take defaults"
    );

    assert_eq!(
        app.service(Method::DELETE, "/v1/users/alice", None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.service(Method::GET, "/v1/users/alice", None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.service(Method::DELETE, "/v1/users/alice", None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn given_bad_user_bodies_then_422_names_the_field() {
    let app = TestApp::new();
    for (body, field) in [
        (json!({"email": "nope"}), "email"),
        (json!({"is_admin": 1}), "is_admin"),
        (json!({"username": "mallory"}), "username"),
        (json!({"password": "x"}), "password"),
        (json!(["not", "an", "object"]), ""),
    ] {
        let r = app
            .service(Method::PUT, "/v1/users/alice", Some(&body))
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(r.error_field(), field, "{body}");
    }
    assert_eq!(
        app.service(Method::GET, "/v1/users/alice", None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn given_product_types_and_products_then_crud_follows_the_contract() {
    let app = TestApp::new();
    let r = app
        .service(
            Method::PUT,
            "/v1/product-types/7",
            Some(&json!({"name": "Web"})),
        )
        .await;
    assert_eq!(
        (r.status, r.body.clone()),
        (StatusCode::CREATED, json!({"id": "7", "name": "Web"}))
    );
    let r = app
        .service(
            Method::PUT,
            "/v1/product-types/7",
            Some(&json!({"name": "Web apps"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        app.service(Method::GET, "/v1/product-types/7", None)
            .await
            .body["name"],
        "Web apps"
    );

    let r = app
        .service(
            Method::PUT,
            "/v1/products/1",
            Some(&json!({"name": "Shop", "product_type_id": 8})),
        )
        .await;
    assert_eq!(
        (r.status, r.error_field()),
        (StatusCode::UNPROCESSABLE_ENTITY, "product_type_id")
    );

    let r = app
        .service(
            Method::PUT,
            "/v1/products/1",
            Some(&json!({"name": "Shop", "product_type_id": 7})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["product_type_id"], "7");
    let r = app.service(Method::GET, "/v1/products/1", None).await;
    assert_eq!(r.body["name"], "Shop");

    let r = app
        .service(Method::DELETE, "/v1/product-types/7", None)
        .await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::CONFLICT, "conflict")
    );
    assert_eq!(
        app.service(Method::DELETE, "/v1/products/1", None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.service(Method::DELETE, "/v1/product-types/7", None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.service(Method::GET, "/v1/product-types/7", None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn given_memberships_then_put_is_idempotent_and_grants_access_delete_revokes_it() {
    let app = TestApp::new();
    app.service_ok(Method::PUT, "/v1/users/alice", Some(&json!({})))
        .await;
    app.service_ok(
        Method::PUT,
        "/v1/product-types/pt",
        Some(&json!({"name": "Web"})),
    )
    .await;
    app.service_ok(
        Method::PUT,
        "/v1/products/p",
        Some(&json!({"name": "Shop", "product_type_id": "pt"})),
    )
    .await;
    let settings = "/v1/users/alice/notifications/products/p";
    let doc = json!({"events": {}});
    assert_eq!(
        app.user("alice", Method::PUT, settings, Some(&doc))
            .await
            .status,
        StatusCode::FORBIDDEN
    );

    for (members, label) in [
        ("/v1/products/p/members/alice", "product_id"),
        ("/v1/product-types/pt/members/alice", "product_type_id"),
    ] {
        let first = app.service(Method::PUT, members, None).await;
        assert_eq!(first.status, StatusCode::CREATED, "{members}");
        assert!(first.body.get(label).is_some());
        assert_eq!(
            app.service(Method::PUT, members, None).await.status,
            StatusCode::OK,
            "{members}"
        );
        assert_eq!(
            app.user("alice", Method::PUT, settings, Some(&doc))
                .await
                .status,
            StatusCode::OK
        );
        assert_eq!(
            app.service(Method::DELETE, members, None).await.status,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            app.service(Method::DELETE, members, None).await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            app.user("alice", Method::PUT, settings, Some(&doc))
                .await
                .status,
            StatusCode::FORBIDDEN
        );
    }

    let r = app
        .service(Method::PUT, "/v1/products/p/members/nobody", None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .service(Method::PUT, "/v1/products/nothing/members/alice", None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn given_a_deleted_user_then_their_memberships_and_settings_are_gone_when_recreated() {
    let app = TestApp::new();
    app.service_ok(Method::PUT, "/v1/users/alice", Some(&json!({})))
        .await;
    app.service_ok(
        Method::PUT,
        "/v1/product-types/pt",
        Some(&json!({"name": "Web"})),
    )
    .await;
    app.service_ok(
        Method::PUT,
        "/v1/products/p",
        Some(&json!({"name": "Shop", "product_type_id": "pt"})),
    )
    .await;
    app.service_ok(Method::PUT, "/v1/products/p/members/alice", None)
        .await;
    app.user(
        "alice",
        Method::PUT,
        "/v1/users/alice/notifications/products/p",
        Some(&json!({"events": {}})),
    )
    .await;

    app.service_ok(Method::DELETE, "/v1/users/alice", None)
        .await;
    app.service_ok(Method::PUT, "/v1/users/alice", Some(&json!({})))
        .await;
    let r = app
        .user(
            "alice",
            Method::GET,
            "/v1/users/alice/notifications/products/p",
            None,
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "the old membership must not survive"
    );
}
