//! The directory sync from DefectDojo's API v2, against a fake DefectDojo on loopback that
//! serves the objects of `events/defectdojo/api/` (3.x and 2.x) in DefectDojo's pages: users,
//! product types, products, access, engagements, active findings and risk acceptances land in
//! Herald; a second run changes nothing; what DefectDojo no longer has is removed, and only
//! that; a run that crashed is finished by the next; a DefectDojo that refuses, fails, stalls
//! or sends a malformed page stops the sync with an error naming the URL and changes nothing
//! in Herald.

use herald_shared::adapters::defectdojo_api::{DefectDojoApi, DojoApiError};
use herald_shared::defectdojo_sync::{
    DojoRead, KindCounts, SyncError, SyncOptions, read, sync_directory, sync_from,
};
use herald_shared::domain::checks::Finding;
use herald_shared::domain::{Product, ProductType};
use herald_shared::domain::{ResourceId, Secret, Username};
use herald_shared::ports::{DirectoryStore, HeraldStore, ScheduleStore};
use herald_shared::testing::{FakeHttp, Reply, fake_defectdojo_api, fake_defectdojo_world};
use herald_tests::TestApp;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const TOKEN: &str = "dd-api-key-0123456789";

fn fixtures(generation: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../events/defectdojo/api")
        .join(generation)
}

async fn fake_defectdojo(generation: &str) -> FakeHttp {
    fake_defectdojo_api(&fixtures(generation), TOKEN).await
}

/// A copy of the 3.x world in `dir` after `edit` changed its endpoints' rows.
fn changed_world(dir: &Path, edit: impl Fn(&str, &mut Vec<Value>)) {
    for entry in std::fs::read_dir(fixtures("v3")).unwrap_or_else(|e| panic!("{e}")) {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
        let mut value: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        if let Value::Array(rows) = &mut value {
            edit(stem, rows);
        }
        let out = dir.join(path.file_name().unwrap_or_default());
        std::fs::write(out, value.to_string()).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// The 3.x world after carol left, product 8 (Billing) was deleted with its engagement, risk
/// acceptance and finding, alice lost her access to Shop, and finding 102 was mitigated.
fn world_after_changes(dir: &Path) {
    changed_world(dir, |endpoint, rows| {
        let id = |row: &Value| row["id"].as_u64().unwrap_or_default();
        match endpoint {
            "users" => rows.retain(|r| id(r) != 4),
            "user_contact_infos" => rows.retain(|r| r["user"] != 4),
            "products" => {
                rows.retain(|r| id(r) != 8);
                for row in rows.iter_mut() {
                    row["authorized_users"] = json!([]);
                }
            }
            "product_types" => {
                for row in rows.iter_mut() {
                    row["authorized_users"] = json!([]);
                }
            }
            "engagements" => rows.retain(|r| id(r) != 13),
            "risk_acceptance" => rows.retain(|r| id(r) != 5),
            "findings" | "findings_related_fields" => {
                rows.retain(|r| id(r) != 104);
                for row in rows.iter_mut().filter(|r| r["id"] == 102) {
                    row["active"] = json!(false);
                    row["is_mitigated"] = json!(true);
                }
            }
            _ => {}
        }
    });
}

async fn read_world(fake: &FakeHttp) -> DojoRead {
    read(&api(fake, TOKEN), false, &|_, _, _| {})
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Reads `fake`'s world and syncs it into `store`, which must succeed.
async fn sync(
    store: &dyn HeraldStore,
    fake: &FakeHttp,
) -> herald_shared::defectdojo_sync::SyncReport {
    sync_directory(store, &read_world(fake).await, &|_, _, _| {})
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

fn removed(n: u64) -> KindCounts {
    KindCounts {
        removed: n,
        ..KindCounts::default()
    }
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
    let dojo = read_world(&fake).await;
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
    // Active findings only (104 is risk accepted), each in its product.
    assert_eq!(report.engagements, created(2));
    assert_eq!(report.findings, created(3));
    assert_eq!(report.risk_acceptances, created(2));
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    for request in fake.requests_to("/api/v2/findings/") {
        let query = request.query.unwrap_or_default();
        assert!(
            query.contains("active=true") && query.contains("related_fields=true"),
            "{query}"
        );
    }
    let xss = store.finding(&id("101")).await.ok().flatten();
    assert_eq!(
        xss.map(|f| (
            f.product_id.to_string(),
            f.sla_expiration_date.map(|d| d.to_string())
        )),
        Some(("7".to_owned(), Some("2026-08-14".to_owned())))
    );
    assert!(store.finding(&id("104")).await.ok().flatten().is_none());
    let lead = store.engagement(&id("12")).await.ok().flatten();
    assert_eq!(
        lead.and_then(|e| e.lead).map(|u| u.to_string()).as_deref(),
        Some("alice")
    );
    let accepted = store.risk_acceptance(&id("5")).await.ok().flatten();
    assert_eq!(
        accepted
            .and_then(|r| r.engagement_id)
            .map(|e| e.to_string())
            .as_deref(),
        Some("13")
    );
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
    assert_eq!(again.findings, unchanged(3));
    assert_eq!(again.risk_acceptances, unchanged(2));
}

/// What another integration put into Herald beside DefectDojo's objects.
async fn put_from_elsewhere(store: &dyn HeraldStore) {
    let product_type = ProductType {
        id: id("900"),
        name: "Pushed by the platform".into(),
    };
    store
        .put_product_type(&product_type)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // A product of a DefectDojo product type, and a finding in a DefectDojo product.
    let product = Product {
        id: id("901"),
        name: "Pushed too".into(),
        product_type_id: id("1"),
        disable_sla_breach_notifications: false,
    };
    store
        .put_product(&product)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let finding = Finding::from_request(
        &id("9001"),
        &json!({"product_id": "7", "title": "Pushed", "severity": "High"}),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    store
        .put_finding(&finding)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn what_defectdojo_no_longer_has_is_removed_and_nothing_another_integration_wrote() {
    let (full, world) = fake_defectdojo_world(&fixtures("v3"), TOKEN).await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    world_after_changes(dir.path());
    let changed = &full;
    let app = TestApp::new();
    let store = app.herald.store.as_ref();
    sync(store, &full).await;
    put_from_elsewhere(store).await;
    world.load(dir.path());

    let report = sync(store, changed).await;
    assert_eq!(
        report.users,
        KindCounts {
            removed: 1,
            unchanged: 3,
            ..KindCounts::default()
        },
        "{report:?}"
    );
    assert_eq!(report.products.removed, 1, "{report:?}");
    assert_eq!(report.product_types, unchanged(2));
    assert_eq!(report.product_members, removed(1));
    // carol's membership of type 1 went; bob (staff) keeps both types.
    assert_eq!(
        report.product_type_members,
        KindCounts {
            removed: 1,
            unchanged: 2,
            ..KindCounts::default()
        }
    );
    assert_eq!(report.engagements.removed, 1);
    // 102 was mitigated (no longer active); 104 went with its product.
    assert_eq!(
        report.findings,
        KindCounts {
            removed: 1,
            unchanged: 2,
            ..KindCounts::default()
        }
    );
    assert_eq!(report.risk_acceptances.removed, 1);
    assert!(store.user(&name("carol")).await.ok().flatten().is_none());
    assert!(store.product(&id("8")).await.ok().flatten().is_none());
    assert!(store.finding(&id("102")).await.ok().flatten().is_none());
    assert!(
        store
            .risk_acceptance(&id("5"))
            .await
            .ok()
            .flatten()
            .is_none()
    );
    assert_views(store, &[("alice", "7", false), ("bob", "7", true)]).await;
    // What DefectDojo never had stays.
    assert!(
        store
            .product_type(&id("900"))
            .await
            .ok()
            .flatten()
            .is_some()
    );
    assert!(store.product(&id("901")).await.ok().flatten().is_some());
    assert!(store.finding(&id("9001")).await.ok().flatten().is_some());

    let again = sync(store, changed).await;
    assert!(!again.changed_anything(), "{again:?}");
}

#[tokio::test]
async fn a_product_type_still_holding_products_from_elsewhere_stays_and_is_listed() {
    let (full, world) = fake_defectdojo_world(&fixtures("v3"), TOKEN).await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // Product type 1 deleted in DefectDojo, with its products (DefectDojo cascades).
    changed_world(dir.path(), |endpoint, rows| match endpoint {
        "product_types" => rows.retain(|r| r["id"] != 1),
        "products" | "engagements" | "findings" | "findings_related_fields" | "risk_acceptance" => {
            rows.clear()
        }
        _ => {}
    });
    let changed = &full;
    let app = TestApp::new();
    let store = app.herald.store.as_ref();
    sync(store, &full).await;
    put_from_elsewhere(store).await;
    world.load(dir.path());
    let report = sync(store, changed).await;
    assert_eq!(report.products.removed, 2, "{report:?}");
    assert_eq!(report.product_types.removed, 0, "{report:?}");
    assert!(store.product_type(&id("1")).await.ok().flatten().is_some());
    assert!(
        report
            .skipped
            .iter()
            .any(|s| s.starts_with("product type 1 is gone from DefectDojo but stays in Herald")),
        "{:?}",
        report.skipped
    );
    // Once the other product is gone, the next run removes the type.
    store
        .delete_product(&id("901"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let report = sync(store, changed).await;
    assert_eq!(report.product_types.removed, 1, "{report:?}");
}

/// Runs a sync that panics (a crash, as far as the store can tell) when `progress` first hears
/// `at` with `done` objects done.
async fn crash_during(
    store: Arc<herald_shared::adapters::EmbeddedStore>,
    dojo: DojoRead,
    at: &'static str,
    done: usize,
) {
    let run = tokio::spawn(async move {
        let crash = move |what: &str, n: usize, _: usize| {
            if what == at && n == done {
                panic!("crash at {what} {n}");
            }
        };
        sync_directory(store.as_ref(), &dojo, &crash).await
    });
    assert!(
        run.await.is_err_and(|e| e.is_panic()),
        "the sync crashed at {at}"
    );
}

#[tokio::test]
async fn a_sync_that_crashed_half_way_is_finished_by_the_next_exactly_as_one_that_did_not() {
    let (fake, world) = fake_defectdojo_world(&fixtures("v3"), TOKEN).await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    world_after_changes(dir.path());
    let full = read_world(&fake).await;
    world.load(dir.path());
    let changed = read_world(&fake).await;

    let clean = TestApp::on_disk();
    for world in [&full, &changed] {
        sync_directory(clean.herald.store.as_ref(), world, &|_, _, _| {})
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    // Crashes while writing the first world, then while removing what the second lacks
    // (after carol was deleted and before the ledger forgot her).
    let crashed = TestApp::on_disk();
    let store = Arc::clone(&crashed.herald.store);
    crash_during(Arc::clone(&store), full.clone(), "findings", 2).await;
    sync_directory(store.as_ref(), &full, &|_, _, _| {})
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    crash_during(Arc::clone(&store), changed.clone(), "removing users", 1).await;
    let finished = sync_directory(store.as_ref(), &changed, &|_, _, _| {})
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        finished.users.removed, 0,
        "carol went in the crashed run: {finished:?}"
    );
    assert_eq!(finished.products.removed, 1, "{finished:?}");
    assert_eq!(crashed.store_dump(), clean.store_dump());
}

#[tokio::test]
async fn given_defectdojo_2_then_its_role_tables_decide_access() {
    let fake = fake_defectdojo("v2").await;
    let app = TestApp::new();
    let store = app.herald.store.as_ref();
    let dojo = read_world(&fake).await;
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
        let (app, before) = synced_from(&v2).await;
        fake.will_at("/api/v2/products/", [reply]);
        // Users, contacts and product types were read; the products page fails.
        let got = sync_from(
            &api(&fake, TOKEN),
            app.herald.store.as_ref(),
            &SyncOptions::default(),
            &|_, _, _| {},
        )
        .await;
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

    // The findings' first page is staged, the second fails: still nothing changes.
    let (app, before) = synced_from(&v2).await;
    let rows: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(fixtures("v3").join("findings_related_fields.json"))
            .unwrap_or_else(|e| panic!("{e}")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let next = fake.url("/api/v2/findings/?active=true&limit=2&offset=2&related_fields=true");
    fake.will_at(
        "/api/v2/findings/",
        [
            Reply::ok(json!({"count": rows.len(), "next": next, "results": rows[..2]})),
            Reply::json(500, json!({"detail": "A server error occurred."})),
        ],
    );
    let staged = std::sync::atomic::AtomicUsize::new(0);
    let got = sync_from(
        &api(&fake, TOKEN),
        app.herald.store.as_ref(),
        &SyncOptions::default(),
        &|what, n, _| {
            if what == "findings" {
                staged.store(n, std::sync::atomic::Ordering::Relaxed);
            }
        },
    )
    .await;
    match got {
        Err(e @ SyncError::DefectDojo(DojoApiError::Status { status: 500, .. })) => {
            let error = e.to_string();
            assert!(
                error.starts_with("nothing was changed in Herald") && error.contains("offset=2"),
                "{error}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        staged.load(std::sync::atomic::Ordering::Relaxed),
        2,
        "the first page was read and staged"
    );
    assert_eq!(fake.requests_to("/api/v2/findings/").len(), 2);
    assert_eq!(app.store_dump(), before);
}

/// A Herald on disk synced from `fake`, with the dump of its store.
async fn synced_from(fake: &FakeHttp) -> (TestApp, Vec<String>) {
    let app = TestApp::on_disk();
    sync_from(
        &api(fake, TOKEN),
        app.herald.store.as_ref(),
        &SyncOptions::default(),
        &|_, _, _| {},
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let dump = app.store_dump();
    (app, dump)
}

fn source(fake: &FakeHttp, token: &str) -> herald_shared::defectdojo_sync::DefectDojoSource {
    let mut source =
        herald_shared::defectdojo_sync::DefectDojoSource::new(&fake.base, Secret::new(token));
    source.page_size = 2;
    source.timeout = Duration::from_secs(2);
    source
}

async fn post_sync(
    app: &TestApp,
    role: herald_http::Role,
    body: Option<&Value>,
) -> herald_tests::TestResponse {
    let token = app.token("someone", role);
    app.send(
        http::Method::POST,
        "/v1/defectdojo/sync",
        Some(&token),
        body,
    )
    .await
}

#[tokio::test]
async fn an_administrator_starts_a_sync_from_the_configured_defectdojo_and_reads_its_counts() {
    use herald_http::Role;
    let fake = fake_defectdojo("v3").await;
    let app = TestApp::new().with_defectdojo(source(&fake, TOKEN));
    let refused = post_sync(&app, Role::Service, None).await;
    assert_eq!(
        refused.status,
        http::StatusCode::FORBIDDEN,
        "{}",
        refused.body
    );
    assert!(
        fake.requests_to("/api/v2/users/").is_empty(),
        "nothing was read"
    );

    let first = post_sync(&app, Role::Admin, None).await;
    assert_eq!(first.status, http::StatusCode::OK, "{}", first.body);
    assert_eq!(first.body["users"]["created"], 4, "{}", first.body);
    assert_eq!(first.body["findings"]["created"], 3, "{}", first.body);
    assert_eq!(
        first.body["risk_acceptances"]["created"], 2,
        "{}",
        first.body
    );
    // The running app sees the result at once.
    let admin = app.token("admin", Role::Admin);
    let alice = app
        .send(http::Method::GET, "/v1/users/alice", Some(&admin), None)
        .await;
    assert_eq!(
        alice.body["slack_email"], "alice@example.com",
        "{}",
        alice.body
    );

    let second = post_sync(&app, Role::Admin, Some(&json!({}))).await;
    assert_eq!(second.status, http::StatusCode::OK, "{}", second.body);
    assert_eq!(second.body["users"]["unchanged"], 4, "{}", second.body);
    assert_eq!(second.body["users"]["created"], 0, "{}", second.body);
}

#[tokio::test]
async fn a_sync_request_names_its_defectdojo_or_gets_an_error_naming_what_is_missing() {
    use herald_http::Role;
    let fake = fake_defectdojo("v3").await;
    let app = TestApp::with_private_targets();
    let unconfigured = post_sync(&app, Role::Admin, None).await;
    assert_eq!(
        unconfigured.status,
        http::StatusCode::CONFLICT,
        "{}",
        unconfigured.body
    );
    let message = unconfigured.body["error"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("--defectdojo-url"), "{message}");

    let cases = [
        (json!({"url": fake.base}), 422, Some("api_token")),
        (json!({"api_token": TOKEN}), 422, Some("url")),
        (
            json!({"url": fake.base, "api_token": TOKEN, "page_size": 0}),
            422,
            Some("page_size"),
        ),
        (
            json!({"url": fake.base, "api_token": TOKEN, "limit": 5}),
            422,
            Some("limit"),
        ),
        (json!({"url": 7, "api_token": TOKEN}), 422, Some("url")),
        (
            json!({"url": "not a url", "api_token": TOKEN}),
            422,
            Some("url"),
        ),
        (
            json!({"import_settings": "yes"}),
            422,
            Some("import_settings"),
        ),
        (json!(["url"]), 422, None),
    ];
    for (body, status, field) in cases {
        let got = post_sync(&app, Role::Admin, Some(&body)).await;
        assert_eq!(got.status.as_u16(), status, "{body}: {}", got.body);
        assert_eq!(
            got.body["error"]["field"].as_str(),
            field,
            "{body}: {}",
            got.body
        );
    }
    assert!(
        fake.requests_to("/api/v2/users/").is_empty(),
        "nothing was read"
    );

    let named = json!({"url": fake.base, "api_token": TOKEN, "page_size": 3});
    let got = post_sync(&app, Role::Admin, Some(&named)).await;
    assert_eq!(got.status, http::StatusCode::OK, "{}", got.body);
    assert_eq!(got.body["products"]["created"], 2, "{}", got.body);
    assert!(!got.body.to_string().contains(TOKEN));
    let pages = fake.requests_to("/api/v2/users/");
    assert!(
        pages
            .iter()
            .all(|r| r.query.as_deref().unwrap_or_default().contains("limit=3")),
        "page_size is used"
    );
}

#[tokio::test]
async fn a_defectdojo_that_refuses_the_token_is_a_502_naming_the_url_and_changes_nothing() {
    use herald_http::Role;
    let fake = fake_defectdojo("v3").await;
    let app = TestApp::on_disk().with_defectdojo(source(&fake, "not-the-key"));
    let before = app.store_dump();
    let got = post_sync(&app, Role::Admin, None).await;
    assert_eq!(got.status, http::StatusCode::BAD_GATEWAY, "{}", got.body);
    assert_eq!(got.body["error"]["code"], "upstream_failed");
    let message = got.body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("/api/v2/") && message.contains("403"),
        "{message}"
    );
    assert!(
        message.starts_with("nothing was changed in Herald"),
        "{message}"
    );
    assert!(!message.contains("not-the-key"), "{message}");
    assert_eq!(app.store_dump(), before);
}

/// The AWS path: the scheduler's sync with its token in Secrets Manager (moto), into the
/// DynamoDB table (DynamoDB Local): 2.x, then 3.x after changes (removals), then a secret
/// that is gone.
#[tokio::test]
async fn on_aws_the_scheduled_sync_reads_its_token_from_secrets_manager_into_dynamodb() {
    use herald_shared::adapters::{DynamoDbStore, SecretsManagerToken};
    use herald_shared::defectdojo_sync::{SyncRequest, SyncRunError, SyncService, is_sync_event};
    let (fake, world) = fake_defectdojo_world(&fixtures("v2"), TOKEN).await;
    let secrets = herald_tests::moto_secrets().await;
    let secret_name = format!(
        "herald/defectdojo-{}-{}",
        std::process::id(),
        herald_tests::now()
    );
    let secret = secrets
        .create_secret()
        .name(&secret_name)
        .secret_string(TOKEN)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let arn = secret.arn().unwrap_or_default().to_owned();
    let client = herald_tests::dynamodb_local().await;
    let table = format!(
        "herald-dd-sync-{}-{}",
        std::process::id(),
        herald_tests::now()
    );
    let store = DynamoDbStore::new(client.clone(), table.clone());
    store.create_table().await.unwrap_or_else(|e| panic!("{e}"));

    assert!(is_sync_event(
        &json!({"time": "2026-12-04T03:15:00Z", "detail": {"sync": "defectdojo"}})
    ));
    assert!(!is_sync_event(
        &json!({"time": "2026-12-04T03:15:00Z", "detail": {"checks": ["sla"]}})
    ));
    let sync =
        SyncService::with_secret(&fake.base, SecretsManagerToken::new(secrets.clone(), &arn));
    let first = sync
        .run(&store, SyncRequest::default(), &|_, _, _| {})
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(first.users, created(4), "{first:?}");
    assert_eq!(first.product_members, created(3), "{first:?}");
    assert_eq!(first.findings, created(3), "{first:?}");
    assert_views(
        &store,
        &[
            ("alice", "7", true),
            ("alice", "8", false),
            ("carol", "8", true),
        ],
    )
    .await;
    let second = sync
        .run(&store, SyncRequest::default(), &|_, _, _| {})
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!second.changed_anything(), "{second:?}");

    // The changed 3.x world: carol, product 8 and its records gone, alice's access revoked.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    world_after_changes(dir.path());
    world.load(dir.path());
    let third = sync
        .run(&store, SyncRequest::default(), &|_, _, _| {})
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(third.users.removed, 1, "{third:?}");
    assert_eq!(third.products.removed, 1, "{third:?}");
    assert_eq!(third.risk_acceptances.removed, 1, "{third:?}");
    assert!(store.user(&name("carol")).await.ok().flatten().is_none());
    assert!(store.product(&id("8")).await.ok().flatten().is_none());
    assert!(store.finding(&id("104")).await.ok().flatten().is_none());
    assert_views(&store, &[("alice", "7", false), ("bob", "7", true)]).await;

    let gone = format!("{arn}-gone");
    let missing = SyncService::with_secret(&fake.base, SecretsManagerToken::new(secrets, &gone));
    match missing
        .run(&store, SyncRequest::default(), &|_, _, _| {})
        .await
    {
        Err(SyncRunError::Token(why)) => {
            assert!(
                why.contains("DefectDojo's API token") && why.contains(&gone),
                "{why}"
            );
        }
        other => panic!("{other:?}"),
    }
    client
        .delete_table()
        .table_name(table)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn import_settings_brings_every_scope_and_the_system_settings_once_and_follows_removed_rows()
{
    use herald_http::Role;
    let (fake, world) = fake_defectdojo_world(&fixtures("v3"), TOKEN).await;
    let app = TestApp::with_private_targets();
    let admin = app.token("admin", Role::Admin);
    let import =
        |fake: &FakeHttp| json!({"url": fake.base, "api_token": TOKEN, "import_settings": true});
    let first = post_sync(&app, Role::Admin, Some(&import(&fake))).await;
    assert_eq!(first.status, http::StatusCode::OK, "{}", first.body);
    // system, template and alice's personal documents change, alice's for product 7 is new;
    // admin's row holds DefectDojo's defaults, which are Herald's template already.
    assert_eq!(
        first.body["notification_settings"]["updated"], 3,
        "{}",
        first.body
    );
    assert_eq!(
        first.body["notification_settings"]["unchanged"], 1,
        "{}",
        first.body
    );
    assert_eq!(
        first.body["notification_settings"]["created"], 1,
        "{}",
        first.body
    );
    assert_eq!(
        first.body["system_settings"]["updated"], 1,
        "{}",
        first.body
    );
    assert!(
        !first.raw.contains("xoxb-not-a-real-token"),
        "{}",
        first.raw
    );
    let skipped = first.body["skipped"].to_string();
    assert!(skipped.contains("enable_notify_sla_jira_only"), "{skipped}");

    let alice = app
        .send(
            http::Method::GET,
            "/v1/users/alice/notifications",
            Some(&admin),
            None,
        )
        .await;
    let mut scan_added: Vec<String> = alice.body["events"]["scan_added"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    scan_added.sort();
    assert_eq!(scan_added, ["alert", "slack"], "{}", alice.body);
    let system = app
        .send(http::Method::GET, "/v1/system/settings", Some(&admin), None)
        .await;
    assert_eq!(
        system.body["slack_channel"], "#security-alerts",
        "{}",
        system.body
    );
    assert_eq!(system.body["team_name"], "AppSec", "{}", system.body);
    assert_eq!(system.body["slack_token_set"], true, "{}", system.body);
    let shop = app
        .send(
            http::Method::GET,
            "/v1/users/alice/notifications/products/7",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(shop.status, http::StatusCode::OK, "{}", shop.body);

    let again = post_sync(&app, Role::Admin, Some(&import(&fake))).await;
    assert_eq!(
        again.body["notification_settings"]["unchanged"], 5,
        "{}",
        again.body
    );
    assert_eq!(
        again.body["system_settings"]["unchanged"], 1,
        "{}",
        again.body
    );
    // Without import_settings, settings are left alone and not reported.
    let plain = post_sync(
        &app,
        Role::Admin,
        Some(&json!({"url": fake.base, "api_token": TOKEN})),
    )
    .await;
    assert!(
        plain.body.get("notification_settings").is_none(),
        "{}",
        plain.body
    );
    assert_eq!(
        app.send(
            http::Method::GET,
            "/v1/users/alice/notifications/products/7",
            Some(&admin),
            None
        )
        .await
        .status,
        http::StatusCode::OK
    );

    // alice's row for product 7 deleted in DefectDojo: the next import removes hers.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    changed_world(dir.path(), |endpoint, rows| {
        if endpoint == "notifications" {
            rows.retain(|r| r["id"] != 7);
        }
    });
    world.load(dir.path());
    let third = post_sync(&app, Role::Admin, Some(&import(&fake))).await;
    assert_eq!(
        third.body["notification_settings"]["removed"], 1,
        "{}",
        third.body
    );
    let gone = app
        .send(
            http::Method::GET,
            "/v1/users/alice/notifications/products/7",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(gone.status, http::StatusCode::NOT_FOUND, "{}", gone.body);
}

#[tokio::test]
async fn register_user_webhooks_gives_every_active_user_herald_s_endpoint_in_defectdojo_once() {
    use herald_http::Role;
    let fake = fake_defectdojo("v3").await;
    let app = TestApp::with_private_targets();
    let admin = app.token("admin", Role::Admin);
    let body = json!({"url": fake.base, "api_token": TOKEN,
                      "register_user_webhooks": "https://herald.example.com/"});
    // Without Herald's key there is nothing to send: refused before anything is read.
    let refused = post_sync(&app, Role::Admin, Some(&body)).await;
    assert_eq!(refused.status.as_u16(), 422, "{}", refused.body);
    assert_eq!(refused.body["error"]["field"], "register_user_webhooks");
    assert!(fake.requests_to("/api/v2/users/").is_empty());

    let key = "k".repeat(40);
    let put = app
        .send(
            http::Method::PUT,
            "/v1/system/settings",
            Some(&admin),
            Some(&json!({"defectdojo_webhook_key": key})),
        )
        .await;
    assert!(put.status.is_success(), "{}", put.body);
    // The key goes only to Herald's own DefectDojo: a named one must be defectdojo_instance.
    let elsewhere = post_sync(&app, Role::Admin, Some(&body)).await;
    assert_eq!(elsewhere.status.as_u16(), 422, "{}", elsewhere.body);
    let message = elsewhere.body["error"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("defectdojo_instance"), "{message}");
    assert!(fake.requests_to("/api/v2/users/").is_empty());
    let put = app
        .send(
            http::Method::PUT,
            "/v1/system/settings",
            Some(&admin),
            Some(&json!({"defectdojo_instance": fake.base})),
        )
        .await;
    assert!(put.status.is_success(), "{}", put.body);
    let first = post_sync(&app, Role::Admin, Some(&body)).await;
    assert_eq!(first.status, http::StatusCode::OK, "{}", first.body);
    // admin, alice, bob, carol are active in 3.x.
    assert_eq!(first.body["user_webhooks"]["created"], 4, "{}", first.body);
    // admin's and alice's rows get webhooks; bob and carol have none, so one is made each.
    assert_eq!(
        first.body["user_notification_rows"]["updated"], 2,
        "{}",
        first.body
    );
    assert_eq!(
        first.body["user_notification_rows"]["created"], 2,
        "{}",
        first.body
    );
    assert!(!first.raw.contains(&key), "the key is never echoed");
    let posted: Vec<Value> = fake
        .requests_to("/api/v2/notification_webhooks/")
        .into_iter()
        .filter(|r| r.method == http::Method::POST)
        .map(|r| r.body)
        .collect();
    let alice = posted
        .iter()
        .find(|b| b["owner"] == 2)
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        alice,
        json!({"name": "Herald (alice)", "url": "https://herald.example.com/v1/defectdojo/webhook",
               "header_name": "Authorization", "header_value": format!("Bearer {key}"), "owner": 2})
    );
    // alice's personal row (id 2) gets webhooks for the two personal events.
    let patched: Vec<Value> = fake
        .requests_to("/api/v2/notifications/2/")
        .into_iter()
        .map(|r| r.body)
        .collect();
    assert_eq!(patched.len(), 1, "{patched:?}");
    for event in ["user_mentioned", "review_requested"] {
        let channels = patched[0][event].as_array().cloned().unwrap_or_default();
        assert!(
            channels.contains(&json!("webhooks")),
            "{event}: {patched:?}"
        );
    }

    let second = post_sync(&app, Role::Admin, Some(&body)).await;
    assert_eq!(second.status, http::StatusCode::OK, "{}", second.body);
    assert_eq!(
        second.body["user_webhooks"]["unchanged"], 4,
        "{}",
        second.body
    );
    assert_eq!(
        second.body["user_notification_rows"]["unchanged"], 4,
        "{}",
        second.body
    );
    let writes = fake
        .requests()
        .into_iter()
        .filter(|r| r.method != http::Method::GET)
        .count();
    assert_eq!(
        writes,
        4 + 4,
        "4 endpoints and 4 notification rows, once: {writes}"
    );
}

#[tokio::test]
async fn a_sync_from_another_defectdojo_removes_nothing_the_first_one_wrote() {
    let first = fake_defectdojo("v3").await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    world_after_changes(dir.path());
    let other = fake_defectdojo_api(dir.path(), TOKEN).await;
    let app = TestApp::new();
    let store = app.herald.store.as_ref();
    sync(store, &first).await;
    let report = sync(store, &other).await;
    let removed: u64 = report.kinds().iter().map(|(_, k)| k.removed).sum();
    assert_eq!(removed, 0, "{report:?}");
    assert!(store.user(&name("carol")).await.ok().flatten().is_some());
}

#[tokio::test]
async fn registration_reads_that_fail_change_nothing_in_herald() {
    use herald_http::Role;
    let fake = fake_defectdojo("v3").await;
    let app = TestApp::on_disk();
    let admin = app.token("admin", Role::Admin);
    let put = app
        .send(
            http::Method::PUT,
            "/v1/system/settings",
            Some(&admin),
            Some(&json!({"defectdojo_webhook_key": "k".repeat(40), "defectdojo_instance": fake.base})),
        )
        .await;
    assert!(put.status.is_success(), "{}", put.body);
    let before = app.store_dump();
    fake.will_at(
        "/api/v2/notification_webhooks/",
        [Reply::json(503, json!({"detail": "Service unavailable"}))],
    );
    let body = json!({"url": fake.base, "api_token": TOKEN,
                      "register_user_webhooks": "https://herald.example.com"});
    let got = post_sync(&app, Role::Admin, Some(&body)).await;
    assert_eq!(got.status, http::StatusCode::BAD_GATEWAY, "{}", got.body);
    let message = got.body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("nothing was changed in Herald"),
        "{message}"
    );
    assert!(
        message.contains("notification_webhooks") && message.contains("503"),
        "{message}"
    );
    assert_eq!(app.store_dump(), before);
}

#[tokio::test]
async fn a_named_defectdojo_on_a_private_address_is_refused_unless_private_targets_are_allowed() {
    use herald_http::Role;
    let fake = fake_defectdojo("v3").await;
    let app = TestApp::new();
    let body = json!({"url": fake.base, "api_token": TOKEN});
    let got = post_sync(&app, Role::Admin, Some(&body)).await;
    assert_eq!(got.status.as_u16(), 422, "{}", got.body);
    assert_eq!(got.body["error"]["field"], "url", "{}", got.body);
    assert!(fake.requests().is_empty(), "nothing was sent to it");
}
