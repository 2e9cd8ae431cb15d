//! The conformance suite of `DirectoryStore`: users, product types, products, memberships,
//! product access, audiences and administrators, and the deletes that cascade.

use super::settings::add_user;
use super::settings::admin_profile;
use super::settings::id;
use super::settings::is_not_found;
use super::settings::names;
use super::settings::product;
use super::settings::product_type;
use super::settings::profile;
use super::settings::settings;
use super::settings::template;
use super::settings::username;
use super::{Harness, TestResult};
use herald_shared::domain::{Channel, Product, ProductAccess, ProductType, User, UserProfile};
use herald_shared::ports::{StoreError, UserWrite};

conformance! {
    given_concurrent_writes_of_a_new_user_then_exactly_one_creates_it,
    given_profiles_with_optional_fields_then_they_round_trip_and_clear,
    given_products_then_their_type_must_exist,
    given_a_type_with_products_then_deleting_it_conflicts_until_they_are_gone,
    given_memberships_then_puts_and_deletes_are_idempotent,
    given_each_kind_of_user_then_product_access_says_why,
    given_each_kind_of_user_then_viewable_products_lists_what_they_may_view_and_why,
    given_100_products_then_an_administrators_viewable_products_take_few_requests,
    given_members_of_product_and_type_and_admins_then_the_audience_is_their_union,
    given_250_members_then_the_audience_is_read_in_batches,
    given_a_deleted_user_then_memberships_and_settings_are_gone_for_good,
    given_a_deleted_product_then_its_memberships_and_settings_are_gone,
    given_admins_then_administrators_lists_exactly_them,
    given_a_looked_up_slack_id_then_only_it_changes_and_unknown_users_are_not_created,
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

/// One user's viewable products as `(id, member, type member, admin, has settings)`.
async fn viewable(
    h: &Harness,
    user: &str,
) -> Result<Option<Vec<(String, bool, bool, bool, bool)>>, StoreError> {
    Ok(h.store()
        .viewable_products(&username(user))
        .await?
        .map(|products| {
            products
                .into_iter()
                .map(|p| {
                    (
                        p.product.id.as_str().to_owned(),
                        p.access.is_product_member,
                        p.access.is_product_type_member,
                        p.access.is_admin,
                        p.has_settings,
                    )
                })
                .collect()
        }))
}

async fn given_each_kind_of_user_then_viewable_products_lists_what_they_may_view_and_why(
    h: &mut Harness,
) -> TestResult {
    let store = h.store();
    add_user(store, "admin", admin_profile("Admin")).await?;
    let member = add_user(store, "member", profile("Member")).await?;
    let typer = add_user(store, "typer", profile("Typer")).await?;
    add_user(store, "stranger", profile("Stranger")).await?;
    store.put_product_type(&product_type("t1")).await?;
    store.put_product_type(&product_type("t2")).await?;
    // Listed by name ignoring case: "api", "Web shop", "Zeta".
    let named = |id: &str, name: &str, type_id: &str| Product {
        name: name.to_owned(),
        ..product(id, type_id)
    };
    store.put_product(&named("p1", "Web shop", "t1")).await?;
    store.put_product(&named("p2", "api", "t2")).await?;
    store.put_product(&named("p3", "Zeta", "t1")).await?;
    store.put_product_member(&id("p1"), &member).await?;
    store.put_product_member(&id("p2"), &member).await?;
    store.put_product_type_member(&id("t1"), &typer).await?;
    store.put_product_member(&id("p1"), &typer).await?;
    store
        .put_product_notifications(&member, &id("p2"), &settings(&[Channel::Slack]))
        .await?;

    let owned = |rows: &[(&str, bool, bool, bool, bool)]| -> Vec<(String, bool, bool, bool, bool)> {
        rows.iter()
            .map(|&(id, m, t, a, s)| (id.to_owned(), m, t, a, s))
            .collect()
    };
    assert_eq!(
        viewable(h, "admin").await?,
        Some(owned(&[
            ("p2", false, false, true, false),
            ("p1", false, false, true, false),
            ("p3", false, false, true, false),
        ])),
        "an administrator sees every product, sorted by name"
    );
    assert_eq!(
        viewable(h, "member").await?,
        Some(owned(&[
            ("p2", true, false, false, true),
            ("p1", true, false, false, false),
        ]))
    );
    assert_eq!(
        viewable(h, "typer").await?,
        Some(owned(&[
            ("p1", true, true, false, false),
            ("p3", false, true, false, false),
        ])),
        "both of the type's products, one of them also as a member, each listed once"
    );
    assert_eq!(viewable(h, "stranger").await?, Some(Vec::new()));
    assert_eq!(viewable(h, "ghost").await?, None, "an unknown user");

    // A product moved to another type leaves that type's members; a deleted product and
    // deleted settings leave everyone's list.
    let store = h.store();
    store.put_product(&named("p3", "Zeta", "t2")).await?;
    store.delete_product(&id("p1")).await?;
    store
        .delete_product_notifications(&member, &id("p2"))
        .await?;
    assert_eq!(viewable(h, "typer").await?, Some(Vec::new()));
    assert_eq!(
        viewable(h, "member").await?,
        Some(owned(&[("p2", true, false, false, false)]))
    );
    assert_eq!(viewable(h, "admin").await?.map(|rows| rows.len()), Some(2));
    Ok(())
}

async fn given_100_products_then_an_administrators_viewable_products_take_few_requests(
    h: &mut Harness,
) -> TestResult {
    const PRODUCTS: usize = 100;
    let store = h.store();
    add_user(store, "admin", admin_profile("Admin")).await?;
    let typer = add_user(store, "typer", profile("Typer")).await?;
    store.put_product_type(&product_type("t1")).await?;
    store.put_product_type(&product_type("t2")).await?;
    for i in 0..PRODUCTS {
        let type_id = if i % 2 == 0 { "t1" } else { "t2" };
        store
            .put_product(&product(&format!("p{i:03}"), type_id))
            .await?;
    }
    store.put_product_type_member(&id("t1"), &typer).await?;
    store.put_product_type_member(&id("t2"), &typer).await?;
    for (user, expected) in [("admin", PRODUCTS), ("typer", PRODUCTS)] {
        let before = h.request_count();
        let listed = viewable(h, user).await?.ok_or("a known user")?;
        assert_eq!(listed.len(), expected, "{user}");
        if let (Some(before), Some(after)) = (before, h.request_count()) {
            let requests = after - before;
            eprintln!("viewable_products of {user} ({PRODUCTS} products): {requests} requests");
            // The user's partition, then one index query (per product type for a member).
            assert!(requests <= 3, "{requests} requests for {user}");
        }
    }
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

    assert!(
        store
            .set_slack_user_id(&erin, "erin@corp.example", "U0ERIN42")
            .await?
    );

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
    assert!(
        store
            .set_slack_user_id(&erin, "erin@corp.example", "U0ERIN43")
            .await?
    );
    let user = store.user(&erin).await?.ok_or("erin vanished")?;
    assert_eq!(user.profile.slack_user_id.as_deref(), Some("U0ERIN43"));

    let ghost = username("ghost");
    assert!(
        !store
            .set_slack_user_id(&ghost, "ghost@corp.example", "U0GHOST")
            .await?
    );
    assert_eq!(store.user(&ghost).await?, None, "nothing is created");

    // A directory write that does not name the id (a sync) keeps it while the address stays.
    let synced = UserProfile {
        first_name: "Erin M.".into(),
        ..before.clone()
    };
    assert_eq!(
        store.put_user(&erin, &synced, &template()).await?,
        UserWrite::Updated
    );
    let user = store.user(&erin).await?.ok_or("erin vanished")?;
    assert_eq!(
        (
            user.profile.first_name.as_str(),
            user.profile.slack_user_id.as_deref()
        ),
        ("Erin M.", Some("U0ERIN43")),
        "the looked-up id survives a sync"
    );
    // A lookup for an address erin no longer has stores nothing.
    assert!(
        !store
            .set_slack_user_id(&erin, "old@corp.example", "U0STALE")
            .await?
    );
    // A new address clears the id (found for the old one)...
    let moved = UserProfile {
        slack_email: Some("erin@new.example".into()),
        ..synced.clone()
    };
    store.put_user(&erin, &moved, &template()).await?;
    let user = store.user(&erin).await?.ok_or("erin vanished")?;
    assert_eq!(
        user.profile.slack_user_id, None,
        "found for the old address"
    );
    // ... and no address at all too; a profile naming an id sets it.
    assert!(
        store
            .set_slack_user_id(&erin, "erin@new.example", "U0ERIN44")
            .await?
    );
    let none = UserProfile {
        slack_email: None,
        ..synced.clone()
    };
    store.put_user(&erin, &none, &template()).await?;
    assert_eq!(
        store
            .user(&erin)
            .await?
            .and_then(|u| u.profile.slack_user_id),
        None
    );
    let named = UserProfile {
        slack_user_id: Some("U0NAMED1".into()),
        ..none
    };
    store.put_user(&erin, &named, &template()).await?;
    assert_eq!(
        store
            .user(&erin)
            .await?
            .and_then(|u| u.profile.slack_user_id)
            .as_deref(),
        Some("U0NAMED1")
    );
    Ok(())
}
