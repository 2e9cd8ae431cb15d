//! The conformance suite of `SettingsStore`: system settings, the template, personal and
//! per-product documents, and that they survive a reopen.

use super::{Harness, TestResult};
use herald_shared::domain::{
    Channel, EventType, NotificationSettings, Product, ProductAccess, ProductType, ResourceId,
    Secret, SystemSettings, User, UserProfile, Username,
};
use herald_shared::ports::{HeraldStore, StoreError, UserWrite};

conformance! {
    given_nothing_saved_then_reads_return_defaults_and_deletes_report_nothing,
    given_system_settings_and_documents_then_they_round_trip_independently,
    given_a_new_user_then_the_template_is_copied_and_not_on_update,
    given_an_unknown_user_then_personal_settings_are_not_found,
    given_per_product_settings_then_put_get_delete_and_not_found,
    given_everything_written_then_it_survives_a_reopen,
}

pub(super) fn username(name: &str) -> Username {
    Username::parse("username", name).unwrap_or_else(|e| panic!("{e}"))
}

pub(super) fn id(value: &str) -> ResourceId {
    ResourceId::parse("id", value).unwrap_or_else(|e| panic!("{e}"))
}

pub(super) fn profile(first_name: &str) -> UserProfile {
    UserProfile {
        email: Some(format!("{}@example.com", first_name.to_lowercase())),
        first_name: first_name.to_owned(),
        last_name: "Tester".to_owned(),
        ..UserProfile::default()
    }
}

pub(super) fn admin_profile(first_name: &str) -> UserProfile {
    UserProfile {
        is_admin: true,
        ..profile(first_name)
    }
}

/// A document that differs from the defaults in a way the tests can recognise.
pub(super) fn settings(channels: &[Channel]) -> NotificationSettings {
    NotificationSettings::defaults()
        .with(EventType::ScanAdded, channels)
        .with(EventType::ScanAddedEmpty, &[])
}

pub(super) fn template() -> NotificationSettings {
    settings(&[Channel::Alert, Channel::Mail])
}

pub(super) fn product_type(value: &str) -> ProductType {
    ProductType {
        id: id(value),
        name: format!("Type {value}"),
    }
}

pub(super) fn product(value: &str, type_id: &str) -> Product {
    Product {
        id: id(value),
        name: format!("Product {value}"),
        product_type_id: id(type_id),
        disable_sla_breach_notifications: false,
    }
}

pub(super) async fn add_user(
    store: &dyn HeraldStore,
    name: &str,
    profile: UserProfile,
) -> Result<Username, StoreError> {
    let user = username(name);
    store.put_user(&user, &profile, &template()).await?;
    Ok(user)
}

pub(super) fn is_not_found<T: std::fmt::Debug>(result: &Result<T, StoreError>) -> bool {
    matches!(result, Err(StoreError::NotFound(_)))
}

pub(super) fn names(users: &[User]) -> Vec<&str> {
    users.iter().map(|u| u.username.as_str()).collect()
}

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
