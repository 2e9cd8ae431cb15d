//! Herald's hexagon, shared by every function.
//!
//! - [`domain`]: the event catalogue, channels, settings documents and their merge, system
//!   settings and the directory (users, product types, products). Pure: no I/O.
//! - [`ports`]: the traits the functions depend on (`SettingsStore`, `DirectoryStore`, `Clock`).
//! - [`adapters`]: the ports' implementations, named for their technology
//!   (`DynamoDbStore` for AWS, `EmbeddedStore` for `herald-local`).
//! - `testing` (feature `testing`): the fake HTTP service the senders' tests share.
//! - `templating` (feature `templates`): the minijinja helpers the channel senders share.
//! - [`lambda`]: the sender functions' configuration and AWS adapters, built once.
//! - [`webhooks`]: webhook endpoint outcomes and the periodic recovery of resting endpoints.
//! - [`scheduler`]: the scheduled checks (reminders, alert clean-up, webhook recovery) as of
//!   the trigger's time.

pub mod adapters;
pub mod budget;
pub mod config;
pub mod defectdojo_sync;
pub mod domain;
pub mod intake;
pub mod lambda;
pub mod ports;
pub mod replay;
pub mod scheduler;
pub mod sender;
pub mod telemetry;
#[cfg(feature = "templates")]
pub mod templating;
#[cfg(feature = "testing")]
pub mod testing;
pub mod url_guard;
pub mod webhooks;
