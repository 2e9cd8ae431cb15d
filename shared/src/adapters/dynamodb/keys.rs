//! The table's keys: key attributes, the index, key values and prefixes, and [`Key`] with
//! the constructors for every item's primary key (the item table is in `mod.rs`).
use super::Item;
use super::attributes::{REF_PK, REF_SK, optional_string, string};
use crate::domain::ResourceId;
use crate::ports::StoreError;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

// Key attributes and the index.
pub(super) const PK: &str = "PK";
pub(super) const SK: &str = "SK";
pub(super) const GSI1: &str = "GSI1";
pub(super) const GSI1PK: &str = "GSI1PK";
pub(super) const GSI1SK: &str = "GSI1SK";

// Key values and prefixes.
pub(super) const SYSTEM_PK: &str = "SYSTEM";
pub(super) const SETTINGS_SK: &str = "SETTINGS";
pub(super) const SYSTEM_DOCUMENT_SK: &str = "NOTIFY#SYSTEM";
pub(super) const TEMPLATE_DOCUMENT_SK: &str = "NOTIFY#TEMPLATE";
pub(super) const USER_PREFIX: &str = "USER#";
pub(super) const USER_SK: &str = "USER";
pub(super) const PTYPE_PREFIX: &str = "PTYPE#";
pub(super) const PTYPE_SK: &str = "PTYPE";
pub(super) const PRODUCT_PREFIX: &str = "PRODUCT#";
pub(super) const PRODUCT_SK: &str = "PRODUCT";
pub(super) const MEMBER_PREFIX: &str = "MEMBER#";
pub(super) const NOTIFY_PREFIX: &str = "NOTIFY#";
pub(super) const PTYPE_MEMBER_LINK: &str = "PTYPE_MEMBER#";
pub(super) const PRODUCT_MEMBER_LINK: &str = "PRODUCT_MEMBER#";
pub(super) const PRODUCT_NOTIFY_LINK: &str = "PRODUCT_NOTIFY#";
pub(super) const ADMINS: &str = "ADMINS";
/// The `GSI1` partition of every user who is not an administrator (the alert clean-up lists
/// `ADMINS` and `USERS`).
pub(super) const USERS: &str = "USERS";
/// The `GSI1` partition of every product, sorted by [`product_index_sk`] (type, then id), so
/// an administrator's products and a product type's products are one query each.
pub(super) const ALL_PRODUCTS: &str = "PRODUCTS";
pub(super) const EVENT_PREFIX: &str = "EVENT#";
pub(super) const EVENT_SK: &str = "EVENT";
pub(super) const DELIVERY_PREFIX: &str = "DELIVERY#";
pub(super) const ALERTS_PREFIX: &str = "ALERTS#";
pub(super) const ALERT_PREFIX: &str = "ALERT#";
pub(super) const EVENTS_NOT_ENQUEUED: &str = "EVENTS_NOT_ENQUEUED";

/// A primary key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct Key {
    pub(super) pk: String,
    pub(super) sk: String,
}

impl Key {
    pub(super) fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        Self {
            pk: pk.into(),
            sk: sk.into(),
        }
    }

    pub(super) fn system(sk: &str) -> Self {
        Self::new(SYSTEM_PK, sk)
    }

    pub(super) fn user(user: &str) -> Self {
        Self::new(user_pk(user), USER_SK)
    }

    pub(super) fn product_type(id: &str) -> Self {
        Self::new(product_type_pk(id), PTYPE_SK)
    }

    pub(super) fn product(id: &str) -> Self {
        Self::new(product_pk(id), PRODUCT_SK)
    }

    pub(super) fn product_notifications(product: &str, user: &str) -> Self {
        Self::new(product_pk(product), format!("{NOTIFY_PREFIX}{user}"))
    }

    pub(super) fn product_notifications_link(user: &str, product: &str) -> Self {
        Self::new(user_pk(user), format!("{PRODUCT_NOTIFY_LINK}{product}"))
    }

    pub(super) fn event(id: &str) -> Self {
        Self::new(event_pk(id), EVENT_SK)
    }

    pub(super) fn delivery(event: &str, delivery: &str) -> Self {
        Self::new(event_pk(event), format!("{DELIVERY_PREFIX}{delivery}"))
    }

    pub(super) fn alert(user: &str, alert: &str) -> Self {
        Self::new(alerts_pk(user), format!("{ALERT_PREFIX}{alert}"))
    }

    pub(super) fn to_item(&self) -> Item {
        HashMap::from([
            (PK.to_owned(), AttributeValue::S(self.pk.clone())),
            (SK.to_owned(), AttributeValue::S(self.sk.clone())),
        ])
    }

    pub(super) fn from_item(item: &Item) -> Result<Self, StoreError> {
        Ok(Self::new(string(item, PK)?, string(item, SK)?))
    }

    /// The item a link or linked item points at, if it has one.
    pub(super) fn referenced_by(item: &Item) -> Option<Self> {
        match (optional_string(item, REF_PK), optional_string(item, REF_SK)) {
            (Some(pk), Some(sk)) => Some(Self::new(pk, sk)),
            _ => None,
        }
    }
}

pub(super) fn user_pk(user: &str) -> String {
    format!("{USER_PREFIX}{user}")
}

pub(super) fn product_type_pk(id: &str) -> String {
    format!("{PTYPE_PREFIX}{id}")
}

pub(super) fn product_pk(id: &str) -> String {
    format!("{PRODUCT_PREFIX}{id}")
}

/// A product's `GSI1SK` in [`ALL_PRODUCTS`]: `{product type}#{product}` (ids never hold `#`).
pub(super) fn product_index_sk(product_type: &str, product: &str) -> String {
    format!("{product_type}#{product}")
}

/// The `GSI1SK` prefix of one product type's products in [`ALL_PRODUCTS`].
pub(super) fn product_type_index_prefix(product_type: &str) -> String {
    format!("{product_type}#")
}

pub(super) fn event_pk(id: &str) -> String {
    format!("{EVENT_PREFIX}{id}")
}

pub(super) fn alerts_pk(user: &str) -> String {
    format!("{ALERTS_PREFIX}{user}")
}

/// What a membership belongs to.
#[derive(Debug, Clone, Copy)]
pub(super) enum Parent {
    ProductType,
    Product,
}

impl Parent {
    pub(super) fn key(self, id: &str) -> Key {
        match self {
            Parent::ProductType => Key::product_type(id),
            Parent::Product => Key::product(id),
        }
    }

    pub(super) fn member(self, id: &str, user: &str) -> Key {
        Key::new(self.key(id).pk, format!("{MEMBER_PREFIX}{user}"))
    }

    pub(super) fn link(self, id: &str, user: &str) -> Key {
        let prefix = match self {
            Parent::ProductType => PTYPE_MEMBER_LINK,
            Parent::Product => PRODUCT_MEMBER_LINK,
        };
        Key::new(user_pk(user), format!("{prefix}{id}"))
    }

    pub(super) fn label(self, id: &ResourceId) -> String {
        match self {
            Parent::ProductType => format!("product type {id}"),
            Parent::Product => format!("product {id}"),
        }
    }
}

/// An item that points at `other` (a membership and its link, both ways).
pub(super) fn linked_item(key: &Key, other: &Key) -> Item {
    let mut item = key.to_item();
    item.insert(REF_PK.to_owned(), AttributeValue::S(other.pk.clone()));
    item.insert(REF_SK.to_owned(), AttributeValue::S(other.sk.clone()));
    item
}
