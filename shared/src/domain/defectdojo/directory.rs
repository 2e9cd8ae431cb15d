//! DefectDojo's directory as Herald keeps it: users, product types, products and who may view
//! each product, computed from DefectDojo's API v2 objects exactly as DefectDojo authorizes
//! (`dojo/authorization/`), for both generations.
//!
//! - **3.x** (no role tables): a product's `authorized_users` are its members, a product
//!   type's `authorized_users` the type's members (they view every product of the type);
//!   `is_staff` users view everything, so they become members of every product type.
//! - **2.x**: `product_members` and `product_type_members` rows (any role), the same through
//!   `product_groups` and `product_type_groups` for every member of the group
//!   (`dojo_group_members`), and a global role (the user's own or a group's, with a role: a
//!   row whose role is `null` grants nothing) views everything: a member of every product
//!   type. `is_staff` plays no part.
//!
//! In both, `is_superuser` makes a Herald administrator. A user Herald cannot name (a
//! username outside Herald's rules) is left out, with the memberships naming them, and listed
//! in [`Directory::skipped`]; so is a Slack address that is not an email address.

use super::resource_id;
use super::settings::{DojoSettings, ImportedSettings};
use crate::domain::directory::{Product, ProductType, ResourceId, UserProfile, Username};
use crate::domain::system::line;
use crate::domain::validation::FieldError;
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// `/api/v2/users/`.
#[derive(Debug, Clone, Deserialize)]
pub struct DojoUserRow {
    pub id: u64,
    pub username: String,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default = "yes")]
    pub is_active: bool,
    /// 3.x only.
    #[serde(default)]
    pub is_staff: bool,
    #[serde(default)]
    pub is_superuser: bool,
}

fn yes() -> bool {
    true
}

/// `/api/v2/user_contact_infos/`.
#[derive(Debug, Clone, Deserialize)]
pub struct DojoContactRow {
    pub user: u64,
    /// DefectDojo's name for the user's Slack email (looked up with `users.lookupByEmail`).
    #[serde(default)]
    pub slack_username: Option<String>,
    #[serde(default)]
    pub slack_user_id: Option<String>,
}

/// `/api/v2/product_types/`.
#[derive(Debug, Clone, Deserialize)]
pub struct DojoProductTypeRow {
    pub id: u64,
    pub name: String,
    /// 3.x only.
    #[serde(default)]
    pub authorized_users: Vec<u64>,
}

/// `/api/v2/products/`.
#[derive(Debug, Clone, Deserialize)]
pub struct DojoProductRow {
    pub id: u64,
    pub name: String,
    pub prod_type: u64,
    #[serde(default)]
    pub disable_sla_breach_notifications: bool,
    /// 3.x only.
    #[serde(default)]
    pub authorized_users: Vec<u64>,
}

/// A 2.x role row: `product_members`, `product_type_members`, `product_groups`,
/// `product_type_groups`, `dojo_group_members`, `global_roles`. Which fields are set depends
/// on the table.
#[derive(Debug, Clone, Deserialize)]
pub struct DojoRoleRow {
    #[serde(default)]
    pub product: Option<u64>,
    #[serde(default)]
    pub product_type: Option<u64>,
    #[serde(default)]
    pub user: Option<u64>,
    #[serde(default)]
    pub group: Option<u64>,
    /// `null` on a `global_roles` row DefectDojo writes when a profile is saved without one:
    /// such a row grants nothing.
    #[serde(default)]
    pub role: Option<u64>,
}

/// The 2.x role tables.
#[derive(Debug, Clone, Default)]
pub struct DojoRoles {
    pub product_members: Vec<DojoRoleRow>,
    pub product_type_members: Vec<DojoRoleRow>,
    pub product_groups: Vec<DojoRoleRow>,
    pub product_type_groups: Vec<DojoRoleRow>,
    pub group_members: Vec<DojoRoleRow>,
    pub global_roles: Vec<DojoRoleRow>,
}

/// Which DefectDojo: how access is read.
#[derive(Debug, Clone)]
pub enum Generation {
    /// 3.x: `authorized_users` and `is_staff`.
    V3,
    /// 2.x: the role tables.
    V2(DojoRoles),
}

/// Everything read from DefectDojo's API for the directory.
#[derive(Debug, Clone)]
pub struct DojoDirectory {
    /// The DefectDojo read: its base URL (the ledger keeps what each instance wrote apart).
    pub instance: String,
    pub users: Vec<DojoUserRow>,
    pub contacts: Vec<DojoContactRow>,
    pub product_types: Vec<DojoProductTypeRow>,
    pub products: Vec<DojoProductRow>,
    pub generation: Generation,
    /// Notification settings, when they are imported.
    pub settings: Option<DojoSettings>,
}

/// Herald's directory as DefectDojo has it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directory {
    pub users: BTreeMap<Username, UserProfile>,
    pub product_types: Vec<ProductType>,
    pub products: Vec<Product>,
    /// (product, user).
    pub product_members: BTreeSet<(ResourceId, Username)>,
    /// (product type, user).
    pub product_type_members: BTreeSet<(ResourceId, Username)>,
    /// Notification settings, when they are imported (their `skipped` is in
    /// [`Directory::skipped`]).
    pub settings: Option<ImportedSettings>,
    /// What could not be carried over, one sentence each.
    pub skipped: Vec<String>,
}

impl DojoDirectory {
    /// DefectDojo's user ids → the usernames Herald keeps (a username outside Herald's rules
    /// is left out).
    pub fn user_names(&self) -> BTreeMap<u64, Username> {
        self.users
            .iter()
            .filter_map(|row| Some((row.id, Username::parse("username", &row.username).ok()?)))
            .collect()
    }

    /// The ids of DefectDojo's products.
    pub fn product_ids(&self) -> BTreeSet<u64> {
        self.products.iter().map(|p| p.id).collect()
    }

    /// Herald's directory for what DefectDojo answered; `Err` names the object DefectDojo
    /// sent that Herald cannot keep at all (a product or product type with an unusable name).
    pub fn to_directory(&self) -> Result<Directory, FieldError> {
        let mut out = Directory::default();
        let mut names: BTreeMap<u64, Username> = BTreeMap::new();
        let contacts: BTreeMap<u64, &DojoContactRow> =
            self.contacts.iter().map(|c| (c.user, c)).collect();
        for row in &self.users {
            let Ok(username) = Username::parse("username", &row.username) else {
                out.skipped.push(format!(
                    "user {} ({:?}): the username is not one Herald accepts (letters, digits, `_ . @ + -`, at most 150)",
                    row.id, row.username
                ));
                continue;
            };
            let email = non_empty(row.email.as_deref());
            if let Some(bad) = email.as_ref().filter(|e| !looks_like_email(e)) {
                out.skipped.push(format!(
                    "user {username}: email {bad:?} is not an email address"
                ));
            }
            let mut profile = UserProfile {
                email: email.filter(|e| looks_like_email(e)),
                first_name: clean(row.first_name.as_deref()),
                last_name: clean(row.last_name.as_deref()),
                is_active: row.is_active,
                is_admin: row.is_superuser,
                ..UserProfile::default()
            };
            if let Some(contact) = contacts.get(&row.id) {
                match non_empty(contact.slack_username.as_deref()) {
                    Some(email) if looks_like_email(&email) => profile.slack_email = Some(email),
                    Some(other) => out.skipped.push(format!(
                        "user {username}: Slack {other:?} is not an email address, so Herald cannot look it up"
                    )),
                    None => {}
                }
                let slack_id = non_empty(contact.slack_user_id.as_deref());
                if let Some(bad) = slack_id
                    .as_ref()
                    .filter(|id| !id.chars().all(|c| c.is_ascii_alphanumeric()))
                {
                    out.skipped.push(format!(
                        "user {username}: Slack id {bad:?} is not a Slack member id"
                    ));
                }
                profile.slack_user_id =
                    slack_id.filter(|id| id.chars().all(|c| c.is_ascii_alphanumeric()));
            }
            names.insert(row.id, username.clone());
            out.users.insert(username, profile);
        }
        for (i, row) in self.product_types.iter().enumerate() {
            out.product_types.push(ProductType {
                id: resource_id(row.id),
                name: name(&format!("product_types[{i}].name"), &row.name)?,
            });
        }
        for (i, row) in self.products.iter().enumerate() {
            out.products.push(Product {
                id: resource_id(row.id),
                name: name(&format!("products[{i}].name"), &row.name)?,
                product_type_id: resource_id(row.prod_type),
                disable_sla_breach_notifications: row.disable_sla_breach_notifications,
            });
        }
        let every_type: Vec<u64> = self.product_types.iter().map(|t| t.id).collect();
        let member = |set: &mut BTreeSet<(ResourceId, Username)>, id: u64, user: u64| {
            if let Some(name) = names.get(&user) {
                set.insert((resource_id(id), name.clone()));
            }
        };
        match &self.generation {
            Generation::V3 => {
                for product in &self.products {
                    for user in &product.authorized_users {
                        member(&mut out.product_members, product.id, *user);
                    }
                }
                for product_type in &self.product_types {
                    for user in &product_type.authorized_users {
                        member(&mut out.product_type_members, product_type.id, *user);
                    }
                }
                for user in self.users.iter().filter(|u| u.is_staff && !u.is_superuser) {
                    for id in &every_type {
                        member(&mut out.product_type_members, *id, user.id);
                    }
                }
            }
            Generation::V2(roles) => {
                let mut groups: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
                for row in &roles.group_members {
                    if let (Some(group), Some(user)) = (row.group, row.user) {
                        groups.entry(group).or_default().push(user);
                    }
                }
                let users_of = |row: &DojoRoleRow| -> Vec<u64> {
                    match (row.user, row.group) {
                        (Some(user), _) => vec![user],
                        (None, Some(group)) => groups.get(&group).cloned().unwrap_or_default(),
                        (None, None) => vec![],
                    }
                };
                for row in roles.product_members.iter().chain(&roles.product_groups) {
                    if let Some(product) = row.product {
                        for user in users_of(row) {
                            member(&mut out.product_members, product, user);
                        }
                    }
                }
                for row in roles
                    .product_type_members
                    .iter()
                    .chain(&roles.product_type_groups)
                {
                    if let Some(product_type) = row.product_type {
                        for user in users_of(row) {
                            member(&mut out.product_type_members, product_type, user);
                        }
                    }
                }
                for row in roles.global_roles.iter().filter(|r| r.role.is_some()) {
                    for user in users_of(row) {
                        for id in &every_type {
                            member(&mut out.product_type_members, *id, user);
                        }
                    }
                }
            }
        }
        // Administrators see everything already; their memberships add nothing.
        out.product_members
            .retain(|(_, u)| !out.users.get(u).is_some_and(|p| p.is_admin));
        out.product_type_members
            .retain(|(_, u)| !out.users.get(u).is_some_and(|p| p.is_admin));
        if let Some(settings) = &self.settings {
            let products = self.product_ids();
            let mut imported = settings.to_settings(&names, &products);
            out.skipped.append(&mut imported.skipped);
            out.settings = Some(imported);
        }
        Ok(out)
    }
}

fn non_empty(value: Option<&str>) -> Option<String> {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

fn looks_like_email(value: &str) -> bool {
    let mut parts = value.splitn(2, '@');
    let (Some(local), Some(domain)) = (parts.next(), parts.next()) else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !value.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// A name as one line of at most 150 characters (control characters become spaces).
fn clean(value: Option<&str>) -> String {
    value
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(150)
        .collect::<String>()
        .trim()
        .to_owned()
}

fn name(field: &str, value: &str) -> Result<String, FieldError> {
    line(field, &Value::String(clean(Some(value))), 1_000).and_then(|n| {
        if n.is_empty() {
            Err(FieldError::new(field, "must not be empty"))
        } else {
            Ok(n)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::DeserializeOwned;

    fn rows<T: DeserializeOwned>(generation: &str, file: &str) -> Vec<T> {
        super::super::fixture(generation, file)
    }

    fn world(generation: &str) -> DojoDirectory {
        let g = generation;
        DojoDirectory {
            instance: "https://defectdojo.example.com/".into(),
            users: rows(g, "users"),
            contacts: rows(g, "user_contact_infos"),
            product_types: rows(g, "product_types"),
            products: rows(g, "products"),
            generation: if g == "v3" {
                Generation::V3
            } else {
                Generation::V2(DojoRoles {
                    product_members: rows(g, "product_members"),
                    product_type_members: rows(g, "product_type_members"),
                    product_groups: rows(g, "product_groups"),
                    product_type_groups: rows(g, "product_type_groups"),
                    group_members: rows(g, "dojo_group_members"),
                    global_roles: rows(g, "global_roles"),
                })
            },
            settings: None,
        }
    }

    fn pairs(set: &BTreeSet<(ResourceId, Username)>) -> Vec<String> {
        set.iter().map(|(id, u)| format!("{id}:{u}")).collect()
    }

    #[test]
    fn given_defectdojo_3_then_authorized_users_and_staff_decide_access() {
        let d = world("v3").to_directory().unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = d.users.keys().map(Username::as_str).collect();
        assert_eq!(names, ["admin", "alice", "bob", "carol"]);
        assert!(d.users[&Username("admin".into())].is_admin);
        let alice = &d.users[&Username("alice".into())];
        assert_eq!(alice.slack_email.as_deref(), Some("alice@example.com"));
        assert_eq!(alice.slack_user_id.as_deref(), Some("U02ALICE02"));
        assert_eq!(alice.email.as_deref(), Some("alice@example.com"));
        // alice on product 7; carol on type 1; bob (staff) on every type; admin needs none.
        assert_eq!(pairs(&d.product_members), ["7:alice"]);
        assert_eq!(
            pairs(&d.product_type_members),
            ["1:bob", "1:carol", "2:bob"]
        );
        assert_eq!(d.products.len(), 2);
        assert_eq!(d.product_types.len(), 2);
        let shop = d.products.iter().find(|p| p.id.as_str() == "7");
        assert_eq!(
            shop.map(|p| (p.name.as_str(), p.product_type_id.as_str())),
            Some(("Shop", "1"))
        );
    }

    #[test]
    fn given_defectdojo_2_then_members_groups_and_global_roles_decide_access() {
        let d = world("v2").to_directory().unwrap_or_else(|e| panic!("{e}"));
        // bob is inactive in this world but his access is kept (Herald skips inactive users).
        assert!(!d.users[&Username("bob".into())].is_active);
        // alice: member of 7. bob: group AppSec → product 7 and type 1. carol: group Billing
        // Team → product 8 and type 2, and a global role → every type.
        assert_eq!(pairs(&d.product_members), ["7:alice", "7:bob", "8:carol"]);
        assert_eq!(
            pairs(&d.product_type_members),
            ["1:bob", "1:carol", "2:carol"]
        );
    }

    #[test]
    fn given_names_herald_cannot_keep_then_they_are_listed_not_guessed() {
        let mut w = world("v3");
        w.users[1].username = "alice smith".into();
        w.contacts[3].slack_username = Some("@bob".into());
        let d = w.to_directory().unwrap_or_else(|e| panic!("{e}"));
        assert!(!d.users.keys().any(|u| u.as_str().contains(' ')));
        assert!(
            d.product_members.is_empty(),
            "alice's membership went with her"
        );
        assert_eq!(d.skipped.len(), 2, "{:?}", d.skipped);
        assert!(d.skipped.iter().any(|s| s.contains("\"alice smith\"")));
        assert!(d.skipped.iter().any(|s| s.contains("\"@bob\"")));
        w.products[0].name = " ".into();
        assert_eq!(
            w.to_directory().err().map(|e| e.field).as_deref(),
            Some("products[0].name")
        );
    }
}
