//! The directory the platform keeps in Herald: users, product types, products and their
//! members, and the rule for who may view a product.

use super::settings::NotificationSettings;
use super::system::{line, optional_email, single_line};
use super::validation::{FieldError, expect_object, json_type_name, reject_unknown_fields};
use serde::Serialize;
use serde_json::Value;
use std::fmt;

/// A username as the platform knows it (Django's rule: letters, digits and `_ . @ + -`,
/// at most 150 characters).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Username(pub(crate) String);

impl Username {
    /// Validates a username; `field` names it in the error.
    pub fn parse(field: &str, value: &str) -> Result<Self, FieldError> {
        let valid = !value.is_empty()
            && value.chars().count() <= 150
            && value
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '@' | '+' | '-'));
        if valid {
            Ok(Self(value.to_owned()))
        } else {
            Err(FieldError::new(
                field,
                "must be 1 to 150 letters, digits or `_ . @ + -`",
            ))
        }
    }

    /// The username.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The platform's id of a product type, product, engagement, ...: a non-negative integer or a
/// string of letters, digits and `. _ : -`, at most 128 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ResourceId(pub(crate) String);

/// Whether `value` is an id: 1 to 128 ASCII letters, digits or `. _ : -` (so it can never
/// break a storage key, which uses `#`).
pub(crate) fn is_valid_id(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 128
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
}

/// The message for an invalid id.
pub(crate) const INVALID_ID: &str = "must be an id of 1 to 128 letters, digits or `. _ : -`";

impl ResourceId {
    /// Validates an id from a path or a JSON string.
    pub fn parse(field: &str, value: &str) -> Result<Self, FieldError> {
        if is_valid_id(value) {
            Ok(Self(value.to_owned()))
        } else {
            Err(FieldError::new(field, INVALID_ID))
        }
    }

    /// Validates an id from JSON: a string or a non-negative integer.
    pub fn from_json(field: &str, value: &Value) -> Result<Self, FieldError> {
        match value {
            Value::String(s) => Self::parse(field, s),
            Value::Number(n) if n.as_u64().is_some() => Self::parse(field, &n.to_string()),
            other => Err(FieldError::new(
                field,
                format!(
                    "expected an id (string or non-negative integer), got {}",
                    json_type_name(other)
                ),
            )),
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the platform says about a user (the body of `PUT /v1/users/{username}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct UserProfile {
    pub email: Option<String>,
    pub first_name: String,
    pub last_name: String,
    /// The address Slack knows the user by; looked up once with `users.lookupByEmail`.
    pub slack_email: Option<String>,
    /// The Slack member id, set directly or found from `slack_email`.
    pub slack_user_id: Option<String>,
    pub is_active: bool,
    pub is_admin: bool,
}

impl Default for UserProfile {
    fn default() -> Self {
        Self {
            email: None,
            first_name: String::new(),
            last_name: String::new(),
            slack_email: None,
            slack_user_id: None,
            is_active: true,
            is_admin: false,
        }
    }
}

impl UserProfile {
    const FIELDS: &'static [&'static str] = &[
        "username",
        "email",
        "first_name",
        "last_name",
        "slack_email",
        "slack_user_id",
        "is_active",
        "is_admin",
    ];

    /// Validates a profile sent for `username`. Fields left out take their defaults
    /// (active, not an administrator, no email); `username`, if sent, must match the path.
    pub fn from_request(body: &Value, username: &Username) -> Result<Self, FieldError> {
        let object = expect_object(body, "")?;
        reject_unknown_fields(object, "", Self::FIELDS)?;
        let mut profile = UserProfile::default();
        for (key, value) in object {
            let field = key.as_str();
            match field {
                "username" if value.as_str() != Some(username.as_str()) => {
                    return Err(FieldError::new(
                        field,
                        "must match the username in the path",
                    ));
                }
                "email" => profile.email = nullable(field, value, optional_email)?,
                "slack_email" => profile.slack_email = nullable(field, value, optional_email)?,
                "first_name" => {
                    profile.first_name =
                        nullable(field, value, |f, v| line(f, v, 150))?.unwrap_or_default()
                }
                "last_name" => {
                    profile.last_name =
                        nullable(field, value, |f, v| line(f, v, 150))?.unwrap_or_default()
                }
                "slack_user_id" => {
                    profile.slack_user_id = nullable(field, value, |f, v| {
                        let id = line(f, v, 64)?;
                        if id.chars().all(|c| c.is_ascii_alphanumeric()) {
                            Ok(id)
                        } else {
                            Err(FieldError::new(
                                f,
                                "must be a Slack member id such as U024BE7LH",
                            ))
                        }
                    })?
                }
                "is_active" => profile.is_active = boolean(field, value)?,
                "is_admin" => profile.is_admin = boolean(field, value)?,
                _ => {}
            }
        }
        Ok(profile)
    }
}

fn nullable(
    field: &str,
    value: &Value,
    parse: impl Fn(&str, &Value) -> Result<String, FieldError>,
) -> Result<Option<String>, FieldError> {
    if value.is_null() {
        return Ok(None);
    }
    let s = parse(field, value)?;
    Ok((!s.is_empty()).then_some(s))
}

fn boolean(field: &str, value: &Value) -> Result<bool, FieldError> {
    value.as_bool().ok_or_else(|| {
        FieldError::new(
            field,
            format!("expected a boolean, got {}", json_type_name(value)),
        )
    })
}

/// A user of the directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct User {
    #[schema(value_type = String)]
    pub username: Username,
    #[serde(flatten)]
    pub profile: UserProfile,
}

/// A product type (`PUT /v1/product-types/{id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ProductType {
    #[schema(value_type = String)]
    pub id: ResourceId,
    pub name: String,
}

/// A product (`PUT /v1/products/{id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Product {
    #[schema(value_type = String)]
    pub id: ResourceId,
    pub name: String,
    #[schema(value_type = String)]
    pub product_type_id: ResourceId,
    /// DefectDojo's product flag: no SLA breach notifications for this product.
    pub disable_sla_breach_notifications: bool,
}

/// Validates a `{name}` body for a product type.
pub fn product_type_from_request(id: ResourceId, body: &Value) -> Result<ProductType, FieldError> {
    let object = expect_object(body, "")?;
    reject_unknown_fields(object, "", &["id", "name"])?;
    check_body_id(object, &id)?;
    Ok(ProductType {
        id,
        name: required_name(object)?,
    })
}

/// Validates a `{name, product_type_id}` body for a product.
pub fn product_from_request(id: ResourceId, body: &Value) -> Result<Product, FieldError> {
    let object = expect_object(body, "")?;
    reject_unknown_fields(
        object,
        "",
        &[
            "id",
            "name",
            "product_type_id",
            "disable_sla_breach_notifications",
        ],
    )?;
    check_body_id(object, &id)?;
    let name = required_name(object)?;
    let product_type_id = object
        .get("product_type_id")
        .ok_or_else(|| FieldError::new("product_type_id", "is required"))
        .and_then(|v| ResourceId::from_json("product_type_id", v))?;
    let disable_sla_breach_notifications = match object.get("disable_sla_breach_notifications") {
        None => false,
        Some(v) => boolean("disable_sla_breach_notifications", v)?,
    };
    Ok(Product {
        id,
        name,
        product_type_id,
        disable_sla_breach_notifications,
    })
}

fn check_body_id(
    object: &serde_json::Map<String, Value>,
    id: &ResourceId,
) -> Result<(), FieldError> {
    match object.get("id") {
        None => Ok(()),
        Some(v) if ResourceId::from_json("id", v).ok().as_ref() == Some(id) => Ok(()),
        Some(_) => Err(FieldError::new("id", "must match the id in the path")),
    }
}

fn required_name(object: &serde_json::Map<String, Value>) -> Result<String, FieldError> {
    let value = object
        .get("name")
        .ok_or_else(|| FieldError::new("name", "is required"))?;
    let name = line("name", value, 255)?;
    if name.trim().is_empty() {
        return Err(FieldError::new("name", "must not be empty"));
    }
    single_line("name", &name, 255)?;
    Ok(name)
}

/// What the store knows about one user's access to one product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProductAccess {
    pub is_admin: bool,
    pub is_product_member: bool,
    pub is_product_type_member: bool,
}

impl ProductAccess {
    /// Members of the product or of its product type, and administrators, may view it.
    pub const fn may_view(self) -> bool {
        self.is_admin || self.is_product_member || self.is_product_type_member
    }
}

/// A product a user may view: why they may, and whether they keep settings of their own
/// for it (the page's product tabs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewableProduct {
    pub product: Product,
    pub access: ProductAccess,
    pub has_settings: bool,
}

impl ViewableProduct {
    /// The order products are listed in: by name ignoring case, then by name, then by id,
    /// so every store lists them alike.
    pub fn sort(products: &mut [ViewableProduct]) {
        products.sort_by(|a, b| {
            let (a, b) = (&a.product, &b.product);
            a.name
                .to_lowercase()
                .cmp(&b.name.to_lowercase())
                .then_with(|| a.name.cmp(&b.name))
                .then_with(|| a.id.cmp(&b.id))
        });
    }
}

/// One user who may view a product, with what routing needs about them.
#[derive(Debug, Clone, PartialEq)]
pub struct AudienceMember {
    pub user: User,
    pub personal: NotificationSettings,
    /// Their settings for this product, if they have any.
    pub product_settings: Option<NotificationSettings>,
}

/// Everyone who may view a product (members of it or of its type, and administrators), read
/// in a constant number of store requests whatever the audience's size.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductAudience {
    pub product: Product,
    /// Sorted by username; each user once.
    pub members: Vec<AudienceMember>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn alice() -> Username {
        Username::parse("username", "alice").unwrap_or_else(|_| Username(String::from("alice")))
    }

    #[test]
    fn given_usernames_then_djangos_rule_decides() {
        assert!(Username::parse("u", "first.last+tag@corp-1").is_ok());
        assert!(Username::parse("u", "").is_err());
        assert!(Username::parse("u", "a b").is_err());
        assert!(Username::parse("u", "a#b").is_err());
        assert!(Username::parse("u", &"x".repeat(151)).is_err());
    }

    #[test]
    fn given_ids_then_integers_and_safe_strings_are_accepted() {
        assert_eq!(
            ResourceId::from_json("id", &json!(42)).map(|i| i.0),
            Ok("42".into())
        );
        assert!(ResourceId::from_json("id", &json!(-1)).is_err());
        assert!(ResourceId::from_json("id", &json!(1.5)).is_err());
        assert!(ResourceId::parse("id", "prod#1").is_err());
        assert!(ResourceId::parse("id", "web-app_2").is_ok());
    }

    #[test]
    fn given_a_profile_with_fields_left_out_then_they_take_defaults() {
        let p = UserProfile::from_request(&json!({"email": "a@example.com"}), &alice());
        let p = p.unwrap_or_default();
        assert!(p.is_active);
        assert!(!p.is_admin);
        assert_eq!(p.email.as_deref(), Some("a@example.com"));
    }

    #[test]
    fn given_bad_profiles_then_the_error_names_the_field() {
        let cases = [
            (json!({"email": "nope"}), "email"),
            (json!({"is_admin": "true"}), "is_admin"),
            (json!({"username": "bob"}), "username"),
            (json!({"first_name": "a\nb"}), "first_name"),
            (json!({"slack_user_id": "U1 2"}), "slack_user_id"),
            (json!({"role": "admin"}), "role"),
        ];
        for (body, field) in cases {
            let err = UserProfile::from_request(&body, &alice())
                .err()
                .map(|e| e.field);
            assert_eq!(err.as_deref(), Some(field), "{body}");
        }
    }

    #[test]
    fn given_product_bodies_then_name_and_type_are_required() {
        let id = ResourceId("1".into());
        assert_eq!(
            product_from_request(id.clone(), &json!({"name": "Web"}))
                .err()
                .map(|e| e.field),
            Some("product_type_id".into())
        );
        assert_eq!(
            product_from_request(id.clone(), &json!({"name": " ", "product_type_id": 1}))
                .err()
                .map(|e| e.field),
            Some("name".into())
        );
        let p = product_from_request(id, &json!({"name": "Web", "product_type_id": 7}));
        assert_eq!(p.map(|p| p.product_type_id.0), Ok("7".into()));
    }

    #[test]
    fn given_access_facts_then_members_of_product_or_type_and_admins_may_view() {
        assert!(!ProductAccess::default().may_view());
        assert!(
            ProductAccess {
                is_admin: true,
                ..Default::default()
            }
            .may_view()
        );
        assert!(
            ProductAccess {
                is_product_member: true,
                ..Default::default()
            }
            .may_view()
        );
        assert!(
            ProductAccess {
                is_product_type_member: true,
                ..Default::default()
            }
            .may_view()
        );
    }
}
