//! The store conformance suite: every method of `SettingsStore` and `DirectoryStore`, written
//! once and run against every adapter, so `EmbeddedStore` and `DynamoDbStore` cannot drift
//! apart.
//!
//! Each scenario is an `async fn(&mut Harness) -> TestResult`; `conformance!` instantiates it
//! as `store_conformance::embedded::<scenario>` (SQLite in a temporary directory) and
//! `store_conformance::dynamodb::<scenario>` (a fresh table on DynamoDB Local, found through
//! `HERALD_TEST_DYNAMODB_URL`; without it those tests fail, naming `scripts/services.sh start`).

use herald_shared::adapters::{DynamoDbStore, EmbeddedStore};
use herald_shared::domain::{
    Channel, EventType, NotificationSettings, Product, ProductAccess, ProductType, ResourceId,
    Secret, SystemSettings, User, UserProfile, Username,
};
use herald_shared::ports::{HeraldStore, StoreError, UserWrite};
use std::sync::atomic::{AtomicU64, Ordering};

pub(crate) type TestResult = Result<(), Box<dyn std::error::Error>>;

const DATABASE_FILE: &str = "herald.db";

/// A store under test that can be closed and opened again, as a restart would (shared with
/// `event_store_conformance`).
pub(crate) enum Harness {
    Embedded {
        dir: tempfile::TempDir,
        store: Option<EmbeddedStore>,
    },
    DynamoDb {
        client: aws_sdk_dynamodb::Client,
        table: String,
        store: DynamoDbStore,
    },
}

impl Harness {
    pub(crate) fn embedded() -> Result<Self, Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = EmbeddedStore::open(&dir.path().join(DATABASE_FILE))?;
        Ok(Harness::Embedded {
            dir,
            store: Some(store),
        })
    }

    pub(crate) async fn dynamodb() -> Result<Self, Box<dyn std::error::Error>> {
        static TABLES: AtomicU64 = AtomicU64::new(0);
        let client = herald_tests::dynamodb_local().await;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let table = format!(
            "herald-conformance-{}-{}-{nanos}",
            std::process::id(),
            TABLES.fetch_add(1, Ordering::Relaxed)
        );
        let store = DynamoDbStore::new(client.clone(), table.clone());
        store.create_table().await?;
        Ok(Harness::DynamoDb {
            client,
            table,
            store,
        })
    }

    fn store(&self) -> &dyn HeraldStore {
        match self {
            Harness::Embedded {
                store: Some(store), ..
            } => store,
            Harness::Embedded { store: None, .. } => panic!("the embedded store is closed"),
            Harness::DynamoDb { store, .. } => store,
        }
    }

    /// Closes the store and opens it again from what was persisted.
    pub(crate) async fn reopen(&mut self) -> TestResult {
        match self {
            Harness::Embedded { dir, store } => {
                // Close first, as a restart would, then open the same file.
                *store = None;
                *store = Some(EmbeddedStore::open(&dir.path().join(DATABASE_FILE))?);
            }
            Harness::DynamoDb {
                client,
                table,
                store,
            } => {
                *client = herald_tests::dynamodb_local().await;
                *store = DynamoDbStore::new(client.clone(), table.clone());
            }
        }
        Ok(())
    }

    /// DynamoDB requests sent so far (`None` for stores that are not remote).
    pub(crate) fn request_count(&self) -> Option<u64> {
        match self {
            Harness::Embedded { .. } => None,
            Harness::DynamoDb { store, .. } => Some(store.request_count()),
        }
    }

    /// Drops the test's table (the temporary directory removes itself).
    pub(crate) async fn finish(self) -> TestResult {
        if let Harness::DynamoDb { client, table, .. } = self {
            client.delete_table().table_name(table).send().await?;
        }
        Ok(())
    }
}

macro_rules! conformance {
    ($($scenario:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test]
                async fn $scenario() -> super::TestResult {
                    let mut harness = super::Harness::embedded()?;
                    super::$scenario(&mut harness).await?;
                    harness.finish().await
                }
            )*
        }

        mod dynamodb {
            $(
                #[tokio::test]
                async fn $scenario() -> super::TestResult {
                    let mut harness = super::Harness::dynamodb().await?;
                    super::$scenario(&mut harness).await?;
                    harness.finish().await
                }
            )*
        }
    };
}

conformance! {
    given_nothing_saved_then_reads_return_defaults_and_deletes_report_nothing,
    given_system_settings_and_documents_then_they_round_trip_independently,
    given_a_new_user_then_the_template_is_copied_and_not_on_update,
    given_concurrent_writes_of_a_new_user_then_exactly_one_creates_it,
    given_profiles_with_optional_fields_then_they_round_trip_and_clear,
    given_an_unknown_user_then_personal_settings_are_not_found,
    given_per_product_settings_then_put_get_delete_and_not_found,
    given_products_then_their_type_must_exist,
    given_a_type_with_products_then_deleting_it_conflicts_until_they_are_gone,
    given_memberships_then_puts_and_deletes_are_idempotent,
    given_each_kind_of_user_then_product_access_says_why,
    given_members_of_product_and_type_and_admins_then_the_audience_is_their_union,
    given_250_members_then_the_audience_is_read_in_batches,
    given_a_deleted_user_then_memberships_and_settings_are_gone_for_good,
    given_a_deleted_product_then_its_memberships_and_settings_are_gone,
    given_admins_then_administrators_lists_exactly_them,
    given_a_looked_up_slack_id_then_only_it_changes_and_unknown_users_are_not_created,
    given_everything_written_then_it_survives_a_reopen,
}

// ---------------------------------------------------------------------------------------
// Helpers

fn username(name: &str) -> Username {
    Username::parse("username", name).unwrap_or_else(|e| panic!("{e}"))
}

fn id(value: &str) -> ResourceId {
    ResourceId::parse("id", value).unwrap_or_else(|e| panic!("{e}"))
}

fn profile(first_name: &str) -> UserProfile {
    UserProfile {
        email: Some(format!("{}@example.com", first_name.to_lowercase())),
        first_name: first_name.to_owned(),
        last_name: "Tester".to_owned(),
        ..UserProfile::default()
    }
}

fn admin_profile(first_name: &str) -> UserProfile {
    UserProfile {
        is_admin: true,
        ..profile(first_name)
    }
}

/// A document that differs from the defaults in a way the tests can recognise.
fn settings(channels: &[Channel]) -> NotificationSettings {
    NotificationSettings::defaults()
        .with(EventType::ScanAdded, channels)
        .with(EventType::ScanAddedEmpty, &[])
}

fn template() -> NotificationSettings {
    settings(&[Channel::Alert, Channel::Mail])
}

fn product_type(value: &str) -> ProductType {
    ProductType {
        id: id(value),
        name: format!("Type {value}"),
    }
}

fn product(value: &str, type_id: &str) -> Product {
    Product {
        id: id(value),
        name: format!("Product {value}"),
        product_type_id: id(type_id),
        disable_sla_breach_notifications: false,
    }
}

async fn add_user(
    store: &dyn HeraldStore,
    name: &str,
    profile: UserProfile,
) -> Result<Username, StoreError> {
    let user = username(name);
    store.put_user(&user, &profile, &template()).await?;
    Ok(user)
}

fn is_not_found<T: std::fmt::Debug>(result: &Result<T, StoreError>) -> bool {
    matches!(result, Err(StoreError::NotFound(_)))
}

fn names(users: &[User]) -> Vec<&str> {
    users.iter().map(|u| u.username.as_str()).collect()
}

// ---------------------------------------------------------------------------------------
// Scenarios

async fn given_nothing_saved_then_reads_return_defaults_and_deletes_report_nothing(
    h: &mut Harness,
) -> TestResult {
    let store = h.store();
    let (alice, p1, t1) = (username("alice"), id("1"), id("1"));

    assert_eq!(store.system_settings().await?, SystemSettings::default());
    assert_eq!(
        store.system_notifications().await?,
        NotificationSettings::defaults()
    );
    assert_eq!(
        store.template_notifications().await?,
        NotificationSettings::defaults()
    );
    assert_eq!(store.user(&alice).await?, None);
    assert_eq!(store.product_type(&t1).await?, None);
    assert_eq!(store.product(&p1).await?, None);
    assert_eq!(store.product_notifications(&alice, &p1).await?, None);
    assert_eq!(store.product_audience(&p1).await?, None);
    assert!(store.administrators().await?.is_empty());

    assert!(!store.delete_user(&alice).await?);
    assert!(!store.delete_product(&p1).await?);
    assert!(!store.delete_product_type(&t1).await?);
    assert!(!store.delete_product_member(&p1, &alice).await?);
    assert!(!store.delete_product_type_member(&t1, &alice).await?);
    assert!(!store.delete_product_notifications(&alice, &p1).await?);
    Ok(())
}

async fn given_system_settings_and_documents_then_they_round_trip_independently(
    h: &mut Harness,
) -> TestResult {
    let store = h.store();
    let system_settings = SystemSettings {
        enable_mail_notifications: true,
        mail_notifications_to: "secops@example.com".into(),
        team_name: "Blue team".into(),
        enable_slack_notifications: true,
        slack_token: Some(Secret::new("xoxb-secret")),
        max_alerts_per_user: -1,
        system_level_trump: vec!["scan_added".into()],
        ..SystemSettings::default()
    };
    store.put_system_settings(&system_settings).await?;
    assert_eq!(store.system_settings().await?, system_settings);

    let system = settings(&[Channel::Slack, Channel::Msteams]);
    let template = settings(&[Channel::Mail]);
    store.put_system_notifications(&system).await?;
    assert_eq!(store.system_notifications().await?, system);
    assert_eq!(
        store.template_notifications().await?,
        NotificationSettings::defaults(),
        "the system document is not the template"
    );
    store.put_template_notifications(&template).await?;
    assert_eq!(store.template_notifications().await?, template);
    assert_eq!(store.system_notifications().await?, system);
    assert_eq!(store.system_settings().await?, system_settings);

    // Replacing, not merging.
    let replaced = SystemSettings::default();
    store.put_system_settings(&replaced).await?;
    assert_eq!(store.system_settings().await?, replaced);
    store
        .put_template_notifications(&NotificationSettings::defaults())
        .await?;
    assert_eq!(
        store.template_notifications().await?,
        NotificationSettings::defaults()
    );
    Ok(())
}

async fn given_a_new_user_then_the_template_is_copied_and_not_on_update(
    h: &mut Harness,
) -> TestResult {
    let store = h.store();
    let alice = username("alice");
    let first_template = settings(&[Channel::Alert, Channel::Mail]);
    let second_template = settings(&[Channel::Slack]);

    let write = store
        .put_user(&alice, &profile("Alice"), &first_template)
        .await?;
    assert_eq!(write, UserWrite::Created);
    assert_eq!(store.personal_notifications(&alice).await?, first_template);

    let own = settings(&[Channel::Webhooks]);
    store.put_personal_notifications(&alice, &own).await?;
    assert_eq!(store.personal_notifications(&alice).await?, own);

    let write = store
        .put_user(&alice, &admin_profile("Alicia"), &second_template)
        .await?;
    assert_eq!(write, UserWrite::Updated);
    assert_eq!(
        store.personal_notifications(&alice).await?,
        own,
        "an update keeps the user's settings"
    );
    let user = store.user(&alice).await?.ok_or("alice vanished")?;
    assert_eq!(
        user.profile,
        admin_profile("Alicia"),
        "an update replaces the profile"
    );

    let bob = username("bob");
    assert_eq!(
        store
            .put_user(&bob, &profile("Bob"), &second_template)
            .await?,
        UserWrite::Created
    );
    assert_eq!(store.personal_notifications(&bob).await?, second_template);
    assert_eq!(store.personal_notifications(&alice).await?, own);
    Ok(())
}

async fn given_concurrent_writes_of_a_new_user_then_exactly_one_creates_it(
    h: &mut Harness,
) -> TestResult {
    let store = h.store();
    let alice = username("alice");
    let templates = [
        settings(&[Channel::Alert]),
        settings(&[Channel::Mail]),
        settings(&[Channel::Slack]),
        settings(&[Channel::Webhooks]),
    ];
    let p = profile("Alice");
    let (a, b, c, d) = tokio::join!(
        store.put_user(&alice, &p, &templates[0]),
        store.put_user(&alice, &p, &templates[1]),
        store.put_user(&alice, &p, &templates[2]),
        store.put_user(&alice, &p, &templates[3]),
    );
    let writes = [a?, b?, c?, d?];
    let created: Vec<usize> = (0..writes.len())
        .filter(|&i| writes[i] == UserWrite::Created)
        .collect();
    assert_eq!(created.len(), 1, "{writes:?}");
    assert_eq!(
        store.personal_notifications(&alice).await?,
        templates[created[0]],
        "the creator's template was copied and no other write replaced it"
    );

    store.put_product_type(&product_type("t1")).await?;
    store.put_product(&product("p1", "t1")).await?;
    let p1 = id("p1");
    let (a, b, c) = tokio::join!(
        store.put_product_member(&p1, &alice),
        store.put_product_member(&p1, &alice),
        store.put_product_member(&p1, &alice),
    );
    let new = [a?, b?, c?].iter().filter(|&&was_new| was_new).count();
    assert_eq!(new, 1, "one membership, made once");
    Ok(())
}

async fn given_profiles_with_optional_fields_then_they_round_trip_and_clear(
    h: &mut Harness,
) -> TestResult {
    let store = h.store();
    let carol = username("carol.o+ops@corp-1");
    let full = UserProfile {
        email: Some("carol@example.com".into()),
        first_name: "Carol".into(),
        last_name: "O'Neil".into(),
        slack_email: Some("carol@corp.example".into()),
        slack_user_id: Some("U024BE7LH".into()),
        is_active: false,
        is_admin: true,
    };
    store.put_user(&carol, &full, &template()).await?;
    let expected = User {
        username: carol.clone(),
        profile: full.clone(),
    };
    assert_eq!(store.user(&carol).await?, Some(expected));

    // Fields left out of a later write are cleared, not kept.
    let bare = UserProfile::default();
    assert_eq!(
        store.put_user(&carol, &bare, &template()).await?,
        UserWrite::Updated
    );
    let user = store.user(&carol).await?.ok_or("carol vanished")?;
    assert_eq!(user.profile, bare);
    assert!(
        store.administrators().await?.is_empty(),
        "no longer an administrator"
    );

    let dave = username("dave");
    store
        .put_user(&dave, &UserProfile::default(), &template())
        .await?;
    let user = store.user(&dave).await?.ok_or("dave missing")?;
    assert_eq!(user.profile, UserProfile::default());
    Ok(())
}

async fn given_an_unknown_user_then_personal_settings_are_not_found(h: &mut Harness) -> TestResult {
    let store = h.store();
    let ghost = username("ghost");
    let result = store.personal_notifications(&ghost).await;
    assert!(is_not_found(&result), "{result:?}");
    let result = store
        .put_personal_notifications(&ghost, &settings(&[Channel::Mail]))
        .await;
    assert!(is_not_found(&result), "{result:?}");
    assert_eq!(
        store.user(&ghost).await?,
        None,
        "a failed write creates nothing"
    );
    Ok(())
}

async fn given_per_product_settings_then_put_get_delete_and_not_found(
    h: &mut Harness,
) -> TestResult {
    let store = h.store();
    let alice = add_user(store, "alice", profile("Alice")).await?;
    store.put_product_type(&product_type("t1")).await?;
    store.put_product(&product("p1", "t1")).await?;
    store.put_product(&product("p2", "t1")).await?;
    let (p1, p2) = (id("p1"), id("p2"));

    let for_p1 = settings(&[Channel::Slack]);
    let for_p2 = settings(&[Channel::Mail, Channel::Webhooks]);
    assert_eq!(store.product_notifications(&alice, &p1).await?, None);
    store
        .put_product_notifications(&alice, &p1, &for_p1)
        .await?;
    store
        .put_product_notifications(&alice, &p2, &for_p2)
        .await?;
    assert_eq!(
        store.product_notifications(&alice, &p1).await?,
        Some(for_p1)
    );
    assert_eq!(
        store.product_notifications(&alice, &p2).await?,
        Some(for_p2)
    );

    let replaced = settings(&[]);
    store
        .put_product_notifications(&alice, &p1, &replaced)
        .await?;
    assert_eq!(
        store.product_notifications(&alice, &p1).await?,
        Some(replaced)
    );
    assert_eq!(
        store.personal_notifications(&alice).await?,
        template(),
        "per-product settings are not personal settings"
    );

    assert!(store.delete_product_notifications(&alice, &p1).await?);
    assert!(!store.delete_product_notifications(&alice, &p1).await?);
    assert_eq!(store.product_notifications(&alice, &p1).await?, None);
    assert_eq!(
        store.product_notifications(&alice, &p2).await?,
        Some(for_p2)
    );

    let ghost = username("ghost");
    let result = store.put_product_notifications(&ghost, &p1, &for_p1).await;
    assert!(is_not_found(&result), "unknown user: {result:?}");
    let result = store
        .put_product_notifications(&alice, &id("nope"), &for_p1)
        .await;
    assert!(is_not_found(&result), "unknown product: {result:?}");
    assert_eq!(
        store.product_notifications(&alice, &id("nope")).await?,
        None
    );
    assert_eq!(store.product_notifications(&ghost, &p1).await?, None);
    Ok(())
}

async fn given_products_then_their_type_must_exist(h: &mut Harness) -> TestResult {
    let store = h.store();
    let result = store.put_product(&product("p1", "missing")).await;
    assert!(is_not_found(&result), "{result:?}");
    assert_eq!(
        store.product(&id("p1")).await?,
        None,
        "a failed write creates nothing"
    );

    assert!(
        store.put_product_type(&product_type("t1")).await?,
        "created"
    );
    let renamed = ProductType {
        id: id("t1"),
        name: "Renamed".into(),
    };
    assert!(!store.put_product_type(&renamed).await?, "replaced");
    assert_eq!(store.product_type(&id("t1")).await?, Some(renamed));

    let mut p1 = product("p1", "t1");
    assert!(store.put_product(&p1).await?, "created");
    assert_eq!(store.product(&id("p1")).await?, Some(p1.clone()));

    p1.name = "Web app".into();
    p1.disable_sla_breach_notifications = true;
    assert!(!store.put_product(&p1).await?, "replaced");
    assert_eq!(store.product(&id("p1")).await?, Some(p1.clone()));

    let moved = Product {
        product_type_id: id("missing"),
        ..p1.clone()
    };
    let result = store.put_product(&moved).await;
    assert!(
        is_not_found(&result),
        "moving to an unknown type: {result:?}"
    );
    assert_eq!(store.product(&id("p1")).await?, Some(p1), "unchanged");
    Ok(())
}

async fn given_a_type_with_products_then_deleting_it_conflicts_until_they_are_gone(
    h: &mut Harness,
) -> TestResult {
    let store = h.store();
    let alice = add_user(store, "alice", profile("Alice")).await?;
    let (t1, t2) = (id("t1"), id("t2"));
    store.put_product_type(&product_type("t1")).await?;
    store.put_product_type(&product_type("t2")).await?;
    store.put_product_type_member(&t1, &alice).await?;
    store.put_product(&product("p1", "t1")).await?;
    store.put_product(&product("p2", "t1")).await?;

    let result = store.delete_product_type(&t1).await;
    assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
    assert!(store.product_type(&t1).await?.is_some(), "still there");

    // Moving a product away and deleting the other one frees the type.
    store.put_product(&product("p1", "t2")).await?;
    let result = store.delete_product_type(&t1).await;
    assert!(
        matches!(result, Err(StoreError::Conflict(_))),
        "p2 is left: {result:?}"
    );
    assert!(store.delete_product(&id("p2")).await?);
    assert!(store.delete_product_type(&t1).await?);
    assert_eq!(store.product_type(&t1).await?, None);
    assert!(!store.delete_product_type(&t1).await?);

    // Its memberships went with it: a type created again with the same id is empty.
    store.put_product_type(&product_type("t1")).await?;
    assert!(
        store.put_product_type_member(&t1, &alice).await?,
        "the old membership did not survive"
    );

    let result = store.delete_product_type(&t2).await;
    assert!(
        matches!(result, Err(StoreError::Conflict(_))),
        "p1 moved there: {result:?}"
    );
    assert!(store.delete_product(&id("p1")).await?);
    assert!(store.delete_product_type(&t2).await?);
    Ok(())
}

async fn given_memberships_then_puts_and_deletes_are_idempotent(h: &mut Harness) -> TestResult {
    let store = h.store();
    let alice = add_user(store, "alice", profile("Alice")).await?;
    let ghost = username("ghost");
    store.put_product_type(&product_type("t1")).await?;
    store.put_product(&product("p1", "t1")).await?;
    let (t1, p1, nope) = (id("t1"), id("p1"), id("nope"));

    assert!(store.put_product_member(&p1, &alice).await?, "new");
    assert!(
        !store.put_product_member(&p1, &alice).await?,
        "already a member"
    );
    assert!(store.delete_product_member(&p1, &alice).await?);
    assert!(!store.delete_product_member(&p1, &alice).await?);
    assert!(store.put_product_member(&p1, &alice).await?, "new again");

    assert!(store.put_product_type_member(&t1, &alice).await?, "new");
    assert!(
        !store.put_product_type_member(&t1, &alice).await?,
        "already a member"
    );
    assert!(store.delete_product_type_member(&t1, &alice).await?);
    assert!(!store.delete_product_type_member(&t1, &alice).await?);

    let result = store.put_product_member(&p1, &ghost).await;
    assert!(is_not_found(&result), "unknown user: {result:?}");
    let result = store.put_product_member(&nope, &alice).await;
    assert!(is_not_found(&result), "unknown product: {result:?}");
    let result = store.put_product_type_member(&t1, &ghost).await;
    assert!(is_not_found(&result), "unknown user: {result:?}");
    let result = store.put_product_type_member(&nope, &alice).await;
    assert!(is_not_found(&result), "unknown type: {result:?}");
    assert!(!store.delete_product_member(&nope, &alice).await?);
    Ok(())
}

async fn given_each_kind_of_user_then_product_access_says_why(h: &mut Harness) -> TestResult {
    let store = h.store();
    let admin = add_user(store, "admin", admin_profile("Admin")).await?;
    let member = add_user(store, "member", profile("Member")).await?;
    let type_member = add_user(store, "typer", profile("Typer")).await?;
    let stranger = add_user(store, "stranger", profile("Stranger")).await?;
    store.put_product_type(&product_type("t1")).await?;
    store.put_product_type(&product_type("t2")).await?;
    store.put_product(&product("p1", "t1")).await?;
    store.put_product(&product("p2", "t2")).await?;
    let p1 = id("p1");
    store.put_product_member(&p1, &member).await?;
    store
        .put_product_type_member(&id("t1"), &type_member)
        .await?;
    // Memberships elsewhere do not count.
    store.put_product_member(&id("p2"), &stranger).await?;
    store.put_product_type_member(&id("t2"), &stranger).await?;

    let access = store.product_access(&admin, &p1).await?;
    assert_eq!(
        access,
        ProductAccess {
            is_admin: true,
            ..ProductAccess::default()
        }
    );
    let access = store.product_access(&member, &p1).await?;
    assert_eq!(
        access,
        ProductAccess {
            is_product_member: true,
            ..ProductAccess::default()
        }
    );
    let access = store.product_access(&type_member, &p1).await?;
    assert_eq!(
        access,
        ProductAccess {
            is_product_type_member: true,
            ..ProductAccess::default()
        }
    );
    assert!(access.may_view());
    let access = store.product_access(&stranger, &p1).await?;
    assert_eq!(access, ProductAccess::default());
    assert!(!access.may_view());
    assert_eq!(
        store.product_access(&username("ghost"), &p1).await?,
        ProductAccess::default(),
        "an unknown user has no access"
    );
    let result = store.product_access(&admin, &id("nope")).await;
    assert!(is_not_found(&result), "unknown product: {result:?}");

    // Everything at once.
    store.put_product_member(&p1, &admin).await?;
    store.put_product_type_member(&id("t1"), &admin).await?;
    let access = store.product_access(&admin, &p1).await?;
    assert_eq!(
        access,
        ProductAccess {
            is_admin: true,
            is_product_member: true,
            is_product_type_member: true,
        }
    );
    Ok(())
}

async fn given_members_of_product_and_type_and_admins_then_the_audience_is_their_union(
    h: &mut Harness,
) -> TestResult {
    let store = h.store();
    // Byte order: upper case sorts first.
    let zed = add_user(store, "Zed", admin_profile("Zed")).await?;
    let alice = add_user(store, "alice", profile("Alice")).await?;
    let bob = add_user(store, "bob", profile("Bob")).await?;
    let carol = add_user(store, "carol", admin_profile("Carol")).await?;
    let dave = add_user(store, "dave", profile("Dave")).await?;
    let stranger = add_user(store, "stranger", profile("Stranger")).await?;
    store.put_product_type(&product_type("t1")).await?;
    store.put_product_type(&product_type("t2")).await?;
    store.put_product(&product("p1", "t1")).await?;
    store.put_product(&product("p2", "t2")).await?;
    let (p1, p2, t1, t2) = (id("p1"), id("p2"), id("t1"), id("t2"));

    store.put_product_member(&p1, &alice).await?;
    store.put_product_member(&p1, &bob).await?;
    store.put_product_type_member(&t1, &bob).await?; // both ways: listed once
    store.put_product_type_member(&t1, &dave).await?;
    store.put_product_member(&p1, &carol).await?; // admin and member: listed once
    store.put_product_member(&p2, &stranger).await?;
    store.put_product_type_member(&t2, &stranger).await?;

    let bob_personal = settings(&[Channel::Webhooks]);
    store
        .put_personal_notifications(&bob, &bob_personal)
        .await?;
    let alice_p1 = settings(&[Channel::Slack]);
    store
        .put_product_notifications(&alice, &p1, &alice_p1)
        .await?;
    store
        .put_product_notifications(&alice, &p2, &settings(&[Channel::Mail]))
        .await?;
    // Settings alone do not make a member.
    store
        .put_product_notifications(&stranger, &p1, &settings(&[Channel::Mail]))
        .await?;

    let audience = store
        .product_audience(&p1)
        .await?
        .ok_or("p1 has an audience")?;
    assert_eq!(audience.product, product("p1", "t1"));
    let listed: Vec<&str> = audience
        .members
        .iter()
        .map(|m| m.user.username.as_str())
        .collect();
    assert_eq!(listed, ["Zed", "alice", "bob", "carol", "dave"]);
    for member in &audience.members {
        let name = member.user.username.as_str();
        let expected_user = store
            .user(&member.user.username)
            .await?
            .ok_or("listed user exists")?;
        assert_eq!(member.user, expected_user, "{name}");
        let expected_personal = if name == "bob" {
            bob_personal
        } else {
            template()
        };
        assert_eq!(member.personal, expected_personal, "{name}");
        let expected_product = (name == "alice").then_some(alice_p1);
        assert_eq!(member.product_settings, expected_product, "{name}");
    }

    // The other product: its own member, its type's member, the admins.
    let audience = store
        .product_audience(&p2)
        .await?
        .ok_or("p2 has an audience")?;
    let listed: Vec<&str> = audience
        .members
        .iter()
        .map(|m| m.user.username.as_str())
        .collect();
    assert_eq!(listed, ["Zed", "carol", "stranger"]);

    // Changes show: a demoted admin, an ended membership.
    store.put_user(&zed, &profile("Zed"), &template()).await?;
    store.delete_product_member(&p1, &alice).await?;
    store.delete_product_type_member(&t1, &dave).await?;
    let audience = store
        .product_audience(&p1)
        .await?
        .ok_or("p1 has an audience")?;
    let listed: Vec<&str> = audience
        .members
        .iter()
        .map(|m| m.user.username.as_str())
        .collect();
    assert_eq!(listed, ["bob", "carol"]);
    assert_eq!(
        store.product_notifications(&alice, &p1).await?,
        Some(alice_p1),
        "ending a membership keeps the user's settings"
    );

    assert_eq!(store.product_audience(&id("nope")).await?, None);
    Ok(())
}

async fn given_250_members_then_the_audience_is_read_in_batches(h: &mut Harness) -> TestResult {
    const MEMBERS: usize = 250;
    let store = h.store();
    store.put_product_type(&product_type("t1")).await?;
    store.put_product(&product("p1", "t1")).await?;
    let p1 = id("p1");
    let mut expected = Vec::with_capacity(MEMBERS);
    for i in 0..MEMBERS {
        let name = format!("member{i:03}");
        let user = add_user(store, &name, profile(&name)).await?;
        store.put_product_member(&p1, &user).await?;
        if i % 50 == 0 {
            store
                .put_product_notifications(&user, &p1, &settings(&[Channel::Slack]))
                .await?;
        }
        expected.push(name);
    }

    let before = h.request_count();
    let audience = h
        .store()
        .product_audience(&p1)
        .await?
        .ok_or("p1 has an audience")?;
    let listed: Vec<String> = audience
        .members
        .iter()
        .map(|m| m.user.username.as_str().to_owned())
        .collect();
    assert_eq!(listed, expected);
    let with_settings = audience
        .members
        .iter()
        .filter(|m| m.product_settings.is_some())
        .count();
    assert_eq!(with_settings, MEMBERS / 50);

    if let (Some(before), Some(after)) = (before, h.request_count()) {
        let requests = after - before;
        eprintln!("product_audience of {MEMBERS} members: {requests} DynamoDB requests");
        // Product partition, type members, administrators, then 100 users a BatchGetItem.
        assert!(
            requests <= 3 + MEMBERS.div_ceil(100) as u64,
            "{requests} requests for {MEMBERS} members"
        );
    }
    Ok(())
}

async fn given_a_deleted_user_then_memberships_and_settings_are_gone_for_good(
    h: &mut Harness,
) -> TestResult {
    let store = h.store();
    let alice = add_user(store, "alice", profile("Alice")).await?;
    let bob = add_user(store, "bob", profile("Bob")).await?;
    store.put_product_type(&product_type("t1")).await?;
    store.put_product(&product("p1", "t1")).await?;
    store.put_product(&product("p2", "t1")).await?;
    let (p1, p2, t1) = (id("p1"), id("p2"), id("t1"));
    for user in [&alice, &bob] {
        store.put_product_member(&p1, user).await?;
        store.put_product_type_member(&t1, user).await?;
        store
            .put_product_notifications(user, &p1, &settings(&[Channel::Slack]))
            .await?;
        store
            .put_product_notifications(user, &p2, &settings(&[Channel::Mail]))
            .await?;
    }

    assert!(store.delete_user(&alice).await?);
    assert!(!store.delete_user(&alice).await?);
    assert_eq!(store.user(&alice).await?, None);
    let audience = store
        .product_audience(&p1)
        .await?
        .ok_or("p1 has an audience")?;
    let listed: Vec<&str> = audience
        .members
        .iter()
        .map(|m| m.user.username.as_str())
        .collect();
    assert_eq!(listed, ["bob"], "bob is untouched");
    assert!(
        audience
            .members
            .iter()
            .all(|m| m.product_settings.is_some())
    );
    assert_eq!(store.product_notifications(&alice, &p1).await?, None);
    assert_eq!(store.product_notifications(&alice, &p2).await?, None);
    assert_eq!(
        store.product_access(&alice, &p1).await?,
        ProductAccess::default()
    );

    // Created again, alice starts from scratch.
    let fresh = settings(&[Channel::Webhooks]);
    assert_eq!(
        store.put_user(&alice, &profile("Alice"), &fresh).await?,
        UserWrite::Created
    );
    assert_eq!(store.personal_notifications(&alice).await?, fresh);
    assert_eq!(
        store.product_access(&alice, &p1).await?,
        ProductAccess::default()
    );
    assert_eq!(store.product_notifications(&alice, &p1).await?, None);
    assert_eq!(store.product_notifications(&alice, &p2).await?, None);
    let audience = store
        .product_audience(&p1)
        .await?
        .ok_or("p1 has an audience")?;
    let listed: Vec<&str> = audience
        .members
        .iter()
        .map(|m| m.user.username.as_str())
        .collect();
    assert_eq!(listed, ["bob"]);
    assert!(
        store.put_product_member(&p1, &alice).await?,
        "no membership came back"
    );
    assert!(
        store.put_product_type_member(&t1, &alice).await?,
        "no membership came back"
    );

    // bob still has everything.
    assert!(store.product_notifications(&bob, &p2).await?.is_some());
    assert!(!store.put_product_type_member(&t1, &bob).await?);
    Ok(())
}

async fn given_a_deleted_product_then_its_memberships_and_settings_are_gone(
    h: &mut Harness,
) -> TestResult {
    let store = h.store();
    let alice = add_user(store, "alice", profile("Alice")).await?;
    store.put_product_type(&product_type("t1")).await?;
    store.put_product(&product("p1", "t1")).await?;
    store.put_product(&product("p2", "t1")).await?;
    let (p1, p2) = (id("p1"), id("p2"));
    store.put_product_member(&p1, &alice).await?;
    store
        .put_product_notifications(&alice, &p1, &settings(&[Channel::Slack]))
        .await?;
    store
        .put_product_notifications(&alice, &p2, &settings(&[Channel::Mail]))
        .await?;

    assert!(store.delete_product(&p1).await?);
    assert!(!store.delete_product(&p1).await?);
    assert_eq!(store.product(&p1).await?, None);
    assert_eq!(store.product_audience(&p1).await?, None);
    assert_eq!(store.product_notifications(&alice, &p1).await?, None);
    assert!(
        store.product_notifications(&alice, &p2).await?.is_some(),
        "other products are untouched"
    );
    let result = store.product_access(&alice, &p1).await;
    assert!(is_not_found(&result), "{result:?}");

    // Created again, the product starts empty.
    assert!(store.put_product(&product("p1", "t1")).await?, "created");
    let audience = store
        .product_audience(&p1)
        .await?
        .ok_or("p1 has an audience")?;
    assert!(audience.members.is_empty());
    assert_eq!(store.product_notifications(&alice, &p1).await?, None);
    assert!(
        store.put_product_member(&p1, &alice).await?,
        "no membership came back"
    );

    // Deleting the user later must not trip over the links of the deleted product.
    assert!(store.delete_user(&alice).await?);
    assert_eq!(store.product_notifications(&alice, &p2).await?, None);
    Ok(())
}

async fn given_admins_then_administrators_lists_exactly_them(h: &mut Harness) -> TestResult {
    let store = h.store();
    add_user(store, "zoe", admin_profile("Zoe")).await?;
    add_user(store, "bob", profile("Bob")).await?;
    let amy = add_user(store, "amy", admin_profile("Amy")).await?;
    let carl = add_user(store, "carl", profile("Carl")).await?;

    let admins = store.administrators().await?;
    assert_eq!(names(&admins), ["amy", "zoe"]);
    assert_eq!(admins[0].profile, admin_profile("Amy"));

    store
        .put_user(&carl, &admin_profile("Carl"), &template())
        .await?;
    store.put_user(&amy, &profile("Amy"), &template()).await?;
    assert_eq!(names(&store.administrators().await?), ["carl", "zoe"]);

    store.delete_user(&username("zoe")).await?;
    assert_eq!(names(&store.administrators().await?), ["carl"]);
    Ok(())
}

async fn given_a_looked_up_slack_id_then_only_it_changes_and_unknown_users_are_not_created(
    h: &mut Harness,
) -> TestResult {
    let store = h.store();
    let erin = username("erin");
    let before = UserProfile {
        slack_email: Some("erin@corp.example".into()),
        ..admin_profile("Erin")
    };
    store.put_user(&erin, &before, &template()).await?;
    store
        .put_personal_notifications(&erin, &settings(&[Channel::Slack]))
        .await?;

    assert!(store.set_slack_user_id(&erin, "U0ERIN42").await?);

    let user = store.user(&erin).await?.ok_or("erin vanished")?;
    let expected = UserProfile {
        slack_user_id: Some("U0ERIN42".into()),
        ..before.clone()
    };
    assert_eq!(user.profile, expected, "only slack_user_id changed");
    assert_eq!(
        store.personal_notifications(&erin).await?,
        settings(&[Channel::Slack]),
        "personal settings are kept"
    );
    assert_eq!(names(&store.administrators().await?), ["erin"]);

    // A later lookup replaces it.
    assert!(store.set_slack_user_id(&erin, "U0ERIN43").await?);
    let user = store.user(&erin).await?.ok_or("erin vanished")?;
    assert_eq!(user.profile.slack_user_id.as_deref(), Some("U0ERIN43"));

    let ghost = username("ghost");
    assert!(!store.set_slack_user_id(&ghost, "U0GHOST").await?);
    assert_eq!(store.user(&ghost).await?, None, "nothing is created");
    Ok(())
}

async fn given_everything_written_then_it_survives_a_reopen(h: &mut Harness) -> TestResult {
    let system_settings = SystemSettings {
        team_name: "Durable".into(),
        slack_token: Some(Secret::new("xoxb-durable")),
        ..SystemSettings::default()
    };
    let system = settings(&[Channel::Msteams]);
    let own = settings(&[Channel::Webhooks]);
    let for_p1 = settings(&[Channel::Slack]);
    let (alice, p1, t1) = (username("alice"), id("p1"), id("t1"));
    {
        let store = h.store();
        store.put_system_settings(&system_settings).await?;
        store.put_system_notifications(&system).await?;
        store.put_template_notifications(&template()).await?;
        store
            .put_user(&alice, &admin_profile("Alice"), &template())
            .await?;
        store.put_personal_notifications(&alice, &own).await?;
        store.put_product_type(&product_type("t1")).await?;
        store.put_product(&product("p1", "t1")).await?;
        store.put_product_member(&p1, &alice).await?;
        store.put_product_type_member(&t1, &alice).await?;
        store
            .put_product_notifications(&alice, &p1, &for_p1)
            .await?;
    }

    h.reopen().await?;

    let store = h.store();
    assert_eq!(store.system_settings().await?, system_settings);
    assert_eq!(store.system_notifications().await?, system);
    assert_eq!(store.template_notifications().await?, template());
    let expected = User {
        username: alice.clone(),
        profile: admin_profile("Alice"),
    };
    assert_eq!(store.user(&alice).await?, Some(expected));
    assert_eq!(store.personal_notifications(&alice).await?, own);
    assert_eq!(store.product_type(&t1).await?, Some(product_type("t1")));
    assert_eq!(store.product(&p1).await?, Some(product("p1", "t1")));
    assert_eq!(
        store.product_notifications(&alice, &p1).await?,
        Some(for_p1)
    );
    assert_eq!(
        store.product_access(&alice, &p1).await?,
        ProductAccess {
            is_admin: true,
            is_product_member: true,
            is_product_type_member: true,
        }
    );
    assert_eq!(names(&store.administrators().await?), ["alice"]);
    assert!(
        !store.put_product_member(&p1, &alice).await?,
        "the membership persisted"
    );
    let result = store.delete_product_type(&t1).await;
    assert!(
        matches!(result, Err(StoreError::Conflict(_))),
        "the product persisted: {result:?}"
    );
    Ok(())
}
