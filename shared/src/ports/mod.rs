//! Ports: what Herald's use cases need from the outside world, as traits, one file per role.
//!
//! Adapters in [`crate::adapters`] implement them; every adapter passes the same conformance
//! suite (`tests/integration/store_conformance.rs`).

mod alerts;
mod clock;
mod directory;
mod events;
mod ledger;
mod mailer;
mod queue;
mod schedule;
mod settings;
mod transport;
mod webhooks;

pub use alerts::{AlertCounts, AlertPage, AlertStore, alert_cursor};
pub use clock::{Clock, FixedClock, SystemClock};
pub use directory::{DirectoryStore, UserWrite};
pub use events::{
    AttemptOutcome, Claim, EventRecord, EventStore, LISTED_STATUSES, RecordOutcome, require_listed,
};
pub use ledger::SyncLedger;
pub use mailer::{MailError, Mailer, OutgoingMail};
pub use queue::{DeliveryQueue, QueueConsumer, QueueError, RedeliveryDelay};
pub use schedule::ScheduleStore;
pub use settings::SettingsStore;
pub use transport::{SendError, SendRequest, Transport};
pub use webhooks::{ParkedMessage, WebhookOwner, WebhookStore};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The thing named does not exist (e.g. "user alice", "product 7").
    #[error("{0} not found")]
    NotFound(String),
    /// The change conflicts with what is stored (e.g. a product type that still has products).
    #[error("{0}")]
    Conflict(String),
    /// A value the caller passed in is unusable (e.g. a pagination cursor).
    #[error("{0}")]
    Invalid(String),
    /// The backing service failed or returned something unreadable. The text is for logs,
    /// never for clients.
    #[error("store backend error: {0}")]
    Backend(String),
}

/// Everything Herald keeps, from one backing store: what every function and use case is given.
pub trait HeraldStore:
    SettingsStore + DirectoryStore + EventStore + AlertStore + WebhookStore + ScheduleStore + SyncLedger
{
}

impl<T> HeraldStore for T where
    T: SettingsStore
        + DirectoryStore
        + EventStore
        + AlertStore
        + WebhookStore
        + ScheduleStore
        + SyncLedger
        + ?Sized
{
}
