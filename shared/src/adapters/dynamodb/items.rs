//! The codecs between domain types and DynamoDB items: users, products, events, deliveries
//! and alerts.

use super::Item;
use super::attributes::{
    ACCEPTED_AT, ALERT_COUNT, ATTEMPTS, CHANNEL, CREATED_AT, DELIVERY_COUNT, DESCRIPTION,
    DESTINATION, DISABLE_SLA, EMAIL, ENQUEUED, EVENT, EVENT_ID, EXPIRES_AT, FIRST_NAME, ICON, ID,
    IS_ACTIVE, IS_ADMIN, LAST_ERROR, LAST_NAME, NAME, PRODUCT_TYPE_ID, READ, RECORDING,
    SLACK_EMAIL, SLACK_USER_ID, SOURCE, STATUS, TITLE, UPDATED_AT, URL, USERNAME, boolean, n,
    number, optional_string, s, string,
};
use super::keys::{ALL_PRODUCTS, EVENTS_NOT_ENQUEUED, GSI1PK, GSI1SK, Key, product_index_sk};
use crate::domain::{
    Alert, Channel, Delivery, DeliveryId, DeliveryStatus, Destination, Event, EventId,
    NotificationSettings, Product, ResourceId, User, UserProfile, Username,
};
use crate::ports::{EventRecord, StoreError};
use aws_sdk_dynamodb::types::AttributeValue;

pub(super) fn parse_settings(body: &str) -> Result<NotificationSettings, StoreError> {
    NotificationSettings::from_stored(body)
        .map_err(|e| StoreError::Backend(format!("unreadable settings document: {e}")))
}

pub(super) fn user_from_item(item: &Item) -> Result<User, StoreError> {
    Ok(User {
        username: Username(string(item, USERNAME)?),
        profile: UserProfile {
            email: optional_string(item, EMAIL),
            first_name: string(item, FIRST_NAME)?,
            last_name: string(item, LAST_NAME)?,
            slack_email: optional_string(item, SLACK_EMAIL),
            slack_user_id: optional_string(item, SLACK_USER_ID),
            is_active: boolean(item, IS_ACTIVE)?,
            is_admin: boolean(item, IS_ADMIN)?,
        },
    })
}

pub(super) fn product_from_item(item: &Item) -> Result<Product, StoreError> {
    Ok(Product {
        id: ResourceId(string(item, ID)?),
        name: string(item, NAME)?,
        product_type_id: ResourceId(string(item, PRODUCT_TYPE_ID)?),
        disable_sla_breach_notifications: boolean(item, DISABLE_SLA)?,
    })
}

pub(super) fn product_item(product: &Product) -> Item {
    let mut item = Key::product(product.id.as_str()).to_item();
    item.insert(ID.to_owned(), s(product.id.as_str()));
    item.insert(NAME.to_owned(), s(&product.name));
    item.insert(
        PRODUCT_TYPE_ID.to_owned(),
        s(product.product_type_id.as_str()),
    );
    item.insert(
        DISABLE_SLA.to_owned(),
        AttributeValue::Bool(product.disable_sla_breach_notifications),
    );
    // Listed in the products index (the viewable products read it).
    item.insert(GSI1PK.to_owned(), s(ALL_PRODUCTS));
    item.insert(
        GSI1SK.to_owned(),
        s(product_index_sk(
            product.product_type_id.as_str(),
            product.id.as_str(),
        )),
    );
    item
}

/// When an event accepted at `accepted_at_ms` and its deliveries expire (the TTL attribute),
/// in seconds since the Unix epoch.
pub(super) fn event_expiry(accepted_at_ms: u64) -> u64 {
    accepted_at_ms / 1000 + crate::domain::event::EVENT_RETENTION_DAYS * 86_400
}

/// The event item, with the sparse `GSI1` entry while it is not enqueued.
pub(super) fn event_item(record: &EventRecord, status: &str) -> Item {
    let id = record.event.id.as_str();
    let mut item = Key::event(id).to_item();
    item.insert(EVENT.to_owned(), s(record.event.to_stored()));
    item.insert(ACCEPTED_AT.to_owned(), n(record.accepted_at));
    item.insert(DELIVERY_COUNT.to_owned(), n(record.delivery_count));
    item.insert(ALERT_COUNT.to_owned(), n(record.alert_count));
    item.insert(ENQUEUED.to_owned(), AttributeValue::Bool(record.enqueued));
    item.insert(STATUS.to_owned(), s(status));
    item.insert(EXPIRES_AT.to_owned(), n(event_expiry(record.accepted_at)));
    if !record.enqueued {
        item.insert(GSI1PK.to_owned(), s(EVENTS_NOT_ENQUEUED));
        item.insert(
            GSI1SK.to_owned(),
            s(format!("{:013}#{id}", record.accepted_at)),
        );
    }
    item
}

pub(super) fn record_from_item(item: &Item) -> Result<EventRecord, StoreError> {
    let event = Event::from_stored(&string(item, EVENT)?)
        .map_err(|e| StoreError::Backend(format!("unreadable stored event: {e}")))?;
    Ok(EventRecord {
        event,
        accepted_at: number(item, ACCEPTED_AT)?,
        delivery_count: number(item, DELIVERY_COUNT)?,
        alert_count: number(item, ALERT_COUNT)?,
        enqueued: boolean(item, ENQUEUED)?,
        complete: optional_string(item, STATUS).as_deref() != Some(RECORDING),
    })
}

pub(super) fn delivery_item(event: &str, delivery: &Delivery, expires_at: u64) -> Item {
    let mut item = Key::delivery(event, delivery.id.as_str()).to_item();
    item.insert(ID.to_owned(), s(delivery.id.as_str()));
    item.insert(EVENT_ID.to_owned(), s(event));
    item.insert(CHANNEL.to_owned(), s(delivery.channel.name()));
    item.insert(DESTINATION.to_owned(), s(delivery.destination.key()));
    item.insert(STATUS.to_owned(), s(delivery.status.name()));
    item.insert(ATTEMPTS.to_owned(), n(delivery.attempts));
    if let Some(error) = &delivery.last_error {
        item.insert(LAST_ERROR.to_owned(), s(error));
    }
    item.insert(UPDATED_AT.to_owned(), n(delivery.updated_at));
    item.insert(EXPIRES_AT.to_owned(), n(expires_at));
    item
}

pub(super) fn delivery_from_item(item: &Item) -> Result<Delivery, StoreError> {
    let id = string(item, ID)?;
    let unreadable = |what: &str, value: &str| {
        StoreError::Backend(format!("delivery {id} has an unreadable {what} `{value}`"))
    };
    let (channel, destination, status) = (
        string(item, CHANNEL)?,
        string(item, DESTINATION)?,
        string(item, STATUS)?,
    );
    Ok(Delivery {
        channel: Channel::from_name(&channel).ok_or_else(|| unreadable("channel", &channel))?,
        destination: Destination::from_key(&destination)
            .ok_or_else(|| unreadable("destination", &destination))?,
        status: DeliveryStatus::from_name(&status).ok_or_else(|| unreadable("status", &status))?,
        event_id: EventId(string(item, EVENT_ID)?),
        attempts: number(item, ATTEMPTS)?,
        last_error: optional_string(item, LAST_ERROR),
        updated_at: number(item, UPDATED_AT)?,
        id: DeliveryId::from_stored(id),
    })
}

pub(super) fn alert_item(alert: &Alert) -> Item {
    let mut item = Key::alert(alert.username.as_str(), &alert.id).to_item();
    item.insert(ID.to_owned(), s(&alert.id));
    item.insert(USERNAME.to_owned(), s(alert.username.as_str()));
    item.insert(EVENT_ID.to_owned(), s(alert.event_id.as_str()));
    item.insert(TITLE.to_owned(), s(&alert.title));
    item.insert(DESCRIPTION.to_owned(), s(&alert.description));
    item.insert(URL.to_owned(), s(&alert.url));
    item.insert(ICON.to_owned(), s(&alert.icon));
    item.insert(SOURCE.to_owned(), s(&alert.source));
    item.insert(CREATED_AT.to_owned(), n(alert.created_at));
    item.insert(READ.to_owned(), AttributeValue::Bool(alert.read));
    item.insert(
        EXPIRES_AT.to_owned(),
        n(alert.created_at / 1000 + crate::domain::alert::ALERT_RETENTION_DAYS * 86_400),
    );
    item
}

pub(super) fn alert_from_item(item: &Item) -> Result<Alert, StoreError> {
    Ok(Alert {
        id: string(item, ID)?,
        username: Username(string(item, USERNAME)?),
        event_id: EventId(string(item, EVENT_ID)?),
        title: string(item, TITLE)?,
        description: string(item, DESCRIPTION)?,
        url: string(item, URL)?,
        icon: string(item, ICON)?,
        source: string(item, SOURCE)?,
        created_at: number(item, CREATED_AT)?,
        read: boolean(item, READ)?,
    })
}
