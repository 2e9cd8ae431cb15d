//! Ports: what Herald's use cases need from the outside world, as traits.
//!
//! Adapters in [`crate::adapters`] implement them; every adapter passes the same conformance
//! suite (`tests/integration/store_conformance.rs`).

mod clock;
mod consumer;
mod events;
mod mailer;
mod schedule;
mod store;
mod webhooks;

pub use clock::{Clock, FixedClock, SystemClock};
pub use consumer::QueueConsumer;
pub use mailer::{MailError, Mailer, OutgoingMail};

pub use events::{
    AlertCounts, AlertPage, AlertStore, AttemptOutcome, Claim, DeliveryQueue, EventRecord,
    EventStore, QueueError, RecordOutcome, RedeliveryDelay, alert_cursor,
};
pub use schedule::{REMINDER_RETENTION_DAYS, ScheduleStore};
pub use store::{DirectoryStore, SettingsStore, Store, StoreError, UserWrite};
pub use webhooks::{ParkedMessage, WebhookOwner, WebhookStore};

/// Everything Herald keeps, from one backing store: what every function is given.
pub trait HeraldStore: Store + EventStore + AlertStore + WebhookStore + ScheduleStore {}

impl<T: Store + EventStore + AlertStore + WebhookStore + ScheduleStore> HeraldStore for T {}
