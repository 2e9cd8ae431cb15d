//! Attribute names and the codecs between attribute values and Rust values.
use super::Item;
use crate::ports::StoreError;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;
use std::fmt;

// Other attributes.
pub(super) const BODY: &str = "body";
pub(super) const USERNAME: &str = "username";
pub(super) const EMAIL: &str = "email";
pub(super) const FIRST_NAME: &str = "first_name";
pub(super) const LAST_NAME: &str = "last_name";
pub(super) const SLACK_EMAIL: &str = "slack_email";
pub(super) const SLACK_USER_ID: &str = "slack_user_id";
pub(super) const IS_ACTIVE: &str = "is_active";
pub(super) const IS_ADMIN: &str = "is_admin";
pub(super) const PERSONAL: &str = "personal";
pub(super) const ID: &str = "id";
pub(super) const NAME: &str = "name";
pub(super) const PRODUCT_TYPE_ID: &str = "product_type_id";
pub(super) const DISABLE_SLA: &str = "disable_sla_breach_notifications";
pub(super) const PRODUCTS: &str = "products";
pub(super) const REF_PK: &str = "ref_pk";
pub(super) const REF_SK: &str = "ref_sk";
pub(super) const EVENT: &str = "event";
pub(super) const ACCEPTED_AT: &str = "accepted_at";
pub(super) const DELIVERY_COUNT: &str = "delivery_count";
pub(super) const ALERT_COUNT: &str = "alert_count";
pub(super) const ENQUEUED: &str = "enqueued";
/// The event record's progress: [`RECORDING`] until its alerts and deliveries are written.
pub(super) const STATUS: &str = "status";
pub(super) const RECORDING: &str = "recording";
pub(super) const RECORDED: &str = "recorded";
/// The table's TTL attribute: seconds since the Unix epoch.
pub(super) const EXPIRES_AT: &str = "expires_at";
pub(super) const EVENT_ID: &str = "event_id";
pub(super) const CHANNEL: &str = "channel";
pub(super) const DESTINATION: &str = "destination";
pub(super) const ATTEMPTS: &str = "attempts";
pub(super) const LAST_ERROR: &str = "last_error";
pub(super) const UPDATED_AT: &str = "updated_at";
/// A delivery's send claim: milliseconds since the Unix epoch until which a sender holds it.
pub(super) const LEASE_UNTIL: &str = "lease_until";
pub(super) const TITLE: &str = "title";
pub(super) const DESCRIPTION: &str = "description";
pub(super) const URL: &str = "url";
pub(super) const ICON: &str = "icon";
pub(super) const SOURCE: &str = "source";
pub(super) const CREATED_AT: &str = "created_at";
pub(super) const READ: &str = "read";

/// `#name` placeholders for attribute names (several are DynamoDB reserved words).
pub(super) fn names(attributes: &[&str]) -> HashMap<String, String> {
    attributes
        .iter()
        .map(|a| (format!("#{a}"), (*a).to_owned()))
        .collect()
}

pub(super) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(super) fn string(item: &Item, attribute: &str) -> Result<String, StoreError> {
    optional_string(item, attribute).ok_or_else(|| {
        StoreError::Backend(format!(
            "DynamoDB item lacks the string attribute `{attribute}`"
        ))
    })
}

pub(super) fn optional_string(item: &Item, attribute: &str) -> Option<String> {
    match item.get(attribute) {
        Some(AttributeValue::S(value)) => Some(value.clone()),
        _ => None,
    }
}

pub(super) fn boolean(item: &Item, attribute: &str) -> Result<bool, StoreError> {
    match item.get(attribute) {
        Some(AttributeValue::Bool(value)) => Ok(*value),
        _ => Err(StoreError::Backend(format!(
            "DynamoDB item lacks the boolean attribute `{attribute}`"
        ))),
    }
}

pub(super) fn n(value: impl fmt::Display) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(super) fn number<T: std::str::FromStr>(item: &Item, attribute: &str) -> Result<T, StoreError> {
    match item.get(attribute) {
        Some(AttributeValue::N(value)) => value.parse().map_err(|_| {
            StoreError::Backend(format!(
                "DynamoDB item has an unreadable number `{attribute}` = {value}"
            ))
        }),
        _ => Err(StoreError::Backend(format!(
            "DynamoDB item lacks the number attribute `{attribute}`"
        ))),
    }
}
