//! Ports: what Herald's use cases need from the outside world, as traits.
//!
//! Adapters in [`crate::adapters`] implement them; every adapter passes the same conformance
//! suite (`tests/integration/store_conformance.rs`).

mod store;

pub use store::{DirectoryStore, SettingsStore, Store, StoreError, UserWrite};
