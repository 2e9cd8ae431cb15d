//! The directory sync from DefectDojo's API v2, against a fake DefectDojo on loopback that
//! serves the objects of `events/defectdojo/api/` (3.x and 2.x) in DefectDojo's pages: users,
//! product types, products and access land in Herald's directory; a second run changes
//! nothing; a DefectDojo that refuses, fails, stalls or sends a malformed page stops the sync
//! with an error naming the URL and changes nothing in Herald.

use herald_shared::adapters::defectdojo_api::{DefectDojoApi, DojoApiError};
use herald_shared::defectdojo_sync::{KindCounts, sync_directory, sync_from};
use herald_shared::domain::{ResourceId, Secret, Username};
use herald_shared::ports::DirectoryStore;
use herald_shared::testing::{FakeHttp, Reply, fake_defectdojo_api};
use herald_tests::TestApp;
use serde_json::json;
use std::time::Duration;

const TOKEN: &str = "dd-api-key-0123456789";

async fn fake_defectdojo(generation: &str) -> FakeHttp {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../events/defectdojo/api")
        .join(generation);
    fake_defectdojo_api(&dir, TOKEN).await
}

fn api(fake: &FakeHttp, token: &str) -> DefectDojoApi {
    DefectDojoApi::new(&fake.base, Secret::new(token), Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("{e}"))
        .with_page_size(2)
}

fn name(s: &str) -> Username {
    Username::parse("u", s).unwrap_or_else(|e| panic!("{e}"))
}

fn id(s: &str) -> ResourceId {
    ResourceId::parse("id", s).unwrap_or_else(|e| panic!("{e}"))
}

/// Whether each (user, product) may view it, as the store decides.
async fn assert_views(store: &dyn herald_shared::ports::HeraldStore, cases: &[(&str, &str, bool)]) {
    for (user, product, may) in cases {
        let access = store
            .product_access(&name(user), &id(product))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(access.may_view(), *may, "{user} on {product}: {access:?}");
    }
}

fn created(n: u64) -> KindCounts {
    KindCounts {
        created: n,
        ..KindCounts::default()
    }
}

fn unchanged(n: u64) -> KindCounts {
    KindCounts {
        unchanged: n,
        ..KindCounts::default()
    }
}

#[tokio::test]
async fn given_defectdojo_3_then_the_directory_and_access_arrive_and_a_second_run_changes_nothing()
{
    let fake = fake_defectdojo("v3").await;
    let app = TestApp::new();
    let store = app.herald.store.as_ref();
    let dojo = api(&fake, TOKEN)
        .directory(&|_, _, _| {})
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Pages of 2, each `next` followed on the configured host: never a page per object.
    let user_pages = fake.requests_to("/api/v2/users/").len();
    assert_eq!(user_pages, 2, "4 users in pages of 2");
    let report = sync_directory(store, &dojo, &|_, _, _| {})
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.users, created(4), "{report:?}");
    assert_eq!(report.product_types, created(2));
    assert_eq!(report.products, created(2));
    assert_eq!(report.product_members, created(1));
    assert_eq!(report.product_type_members, created(3));
    let admin = store.user(&name("admin")).await.ok().flatten();
    assert!(admin.is_some_and(|u| u.profile.is_admin));
    let alice = store.user(&name("alice")).await.ok().flatten();
    assert_eq!(
        alice.and_then(|u| u.profile.slack_email).as_deref(),
        Some("alice@example.com")
    );
    // As DefectDojo authorizes: alice views Shop (7) not Billing (8); carol both through the
    // product type; bob (staff) everything.
    assert_views(
        store,
        &[
            ("alice", "7", true),
            ("alice", "8", false),
            ("carol", "8", true),
            ("bob", "8", true),
        ],
    )
    .await;

    let again = sync_directory(store, &dojo, &|_, _, _| {})
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!again.changed_anything(), "{again:?}");
    assert_eq!(again.users, unchanged(4));
    assert_eq!(again.product_type_members, unchanged(3));
}

#[tokio::test]
async fn given_defectdojo_2_then_its_role_tables_decide_access() {
    let fake = fake_defectdojo("v2").await;
    let app = TestApp::new();
    let store = app.herald.store.as_ref();
    let dojo = api(&fake, TOKEN)
        .directory(&|_, _, _| {})
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let report = sync_directory(store, &dojo, &|_, _, _| {})
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.product_members, created(3), "{report:?}");
    assert_views(
        store,
        &[
            ("alice", "7", true),
            ("alice", "8", false),
            ("carol", "7", true),
            ("carol", "8", true),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_defectdojo_that_refuses_fails_stalls_or_sends_garbage_stops_the_sync_naming_the_url() {
    let fake = fake_defectdojo("v3").await;
    // A wrong token: DefectDojo's 403 with its detail.
    let refused = api(&fake, "wrong").directory(&|_, _, _| {}).await;
    match refused {
        Err(DojoApiError::Status {
            url,
            status,
            detail,
        }) => {
            assert_eq!(status, 403);
            assert!(url.contains("/api/v2/product_members/"), "{url}");
            assert_eq!(detail.as_deref(), Some("Invalid token."));
        }
        other => panic!("{other:?}"),
    }
    let cases: Vec<(Reply, &str)> = vec![
        (
            Reply::json(502, json!({"detail": "Bad gateway"})),
            "answered 502",
        ),
        (
            Reply::ok(json!({"count": 4, "next": null, "results": {"id": 1}})),
            "malformed page",
        ),
        (
            Reply::ok(json!({"count": 4, "next": null, "results": [{"id": "one"}]})),
            "results[0]",
        ),
        (
            Reply::ok(json!({"results": []})).after(Duration::from_secs(5)),
            "timed out",
        ),
    ];
    // Each failing run starts from a directory synced from a DefectDojo 2.x whose users and
    // access differ from the 3.x one now answering: any write before the failure would show.
    let v2 = fake_defectdojo("v2").await;
    for (reply, expected) in cases {
        let app = TestApp::on_disk();
        sync_from(&api(&v2, TOKEN), app.herald.store.as_ref(), &|_, _, _| {})
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let before = app.store_dump();
        fake.will_at("/api/v2/products/", [reply]);
        // Users, contacts and product types were read; the products page fails.
        let got = sync_from(&api(&fake, TOKEN), app.herald.store.as_ref(), &|_, _, _| {}).await;
        let error = match got {
            Err(e) => e.to_string(),
            Ok(report) => panic!("{expected}: {report:?}"),
        };
        assert!(
            error.starts_with("nothing was changed in Herald"),
            "{error}"
        );
        assert!(error.contains(expected), "{error}");
        assert!(error.contains("/api/v2/products/"), "{error}");
        assert!(!error.contains(TOKEN), "{error}");
        assert_eq!(app.store_dump(), before, "{expected}");
    }
}
