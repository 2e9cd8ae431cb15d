//! The conformance suites: every port's contract written once and run against every
//! adapter, so the embedded and the AWS adapters cannot drift apart. One file per port:
//! `settings`, `directory` (with the audience reads intake routes with), `events` (recording
//! events and deliveries, attempts and claims), `alerts`, `webhooks`, `schedule`, `ledger` (what a sync wrote), `queue`
//! (`DeliveryQueue` and `RedeliveryDelay`: the embedded queue and SQS on moto) and `mailer`
//! (the outbox and SES on moto).
//!
//! Each store scenario is an `async fn(&mut Harness) -> TestResult`; `conformance!`
//! instantiates it as `conformance::<port>::embedded::<scenario>` (SQLite in a temporary
//! directory) and `conformance::<port>::dynamodb::<scenario>` (a fresh table on DynamoDB Local,
//! found through `HERALD_TEST_DYNAMODB_URL`; without it those tests fail, naming
//! `scripts/services.sh start`).

use herald_shared::adapters::{DynamoDbStore, EmbeddedStore};
use herald_shared::ports::HeraldStore;
use std::sync::atomic::{AtomicU64, Ordering};

pub(crate) type TestResult = Result<(), Box<dyn std::error::Error>>;

const DATABASE_FILE: &str = "herald.db";

/// A store under test that can be closed and opened again, as a restart would.
pub(crate) enum Harness {
    Embedded {
        dir: tempfile::TempDir,
        store: Option<EmbeddedStore>,
    },
    DynamoDb {
        client: aws_sdk_dynamodb::Client,
        table: String,
        store: DynamoDbStore,
    },
}

impl Harness {
    pub(crate) fn embedded() -> Result<Self, Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = EmbeddedStore::open(&dir.path().join(DATABASE_FILE))?;
        Ok(Harness::Embedded {
            dir,
            store: Some(store),
        })
    }

    pub(crate) async fn dynamodb() -> Result<Self, Box<dyn std::error::Error>> {
        static TABLES: AtomicU64 = AtomicU64::new(0);
        let client = herald_tests::dynamodb_local().await;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let table = format!(
            "herald-conformance-{}-{}-{nanos}",
            std::process::id(),
            TABLES.fetch_add(1, Ordering::Relaxed)
        );
        let store = DynamoDbStore::new(client.clone(), table.clone());
        store.create_table().await?;
        Ok(Harness::DynamoDb {
            client,
            table,
            store,
        })
    }

    /// The store under test, every port of it.
    pub(crate) fn store(&self) -> &dyn HeraldStore {
        match self {
            Harness::Embedded {
                store: Some(store), ..
            } => store,
            Harness::Embedded { store: None, .. } => panic!("the embedded store is closed"),
            Harness::DynamoDb { store, .. } => store,
        }
    }

    /// Closes the store and opens it again from what was persisted.
    pub(crate) async fn reopen(&mut self) -> TestResult {
        match self {
            Harness::Embedded { dir, store } => {
                // Close first, as a restart would, then open the same file.
                *store = None;
                *store = Some(EmbeddedStore::open(&dir.path().join(DATABASE_FILE))?);
            }
            Harness::DynamoDb {
                client,
                table,
                store,
            } => {
                *client = herald_tests::dynamodb_local().await;
                *store = DynamoDbStore::new(client.clone(), table.clone());
            }
        }
        Ok(())
    }

    /// DynamoDB requests sent so far (`None` for stores that are not remote).
    pub(crate) fn request_count(&self) -> Option<u64> {
        match self {
            Harness::Embedded { .. } => None,
            Harness::DynamoDb { store, .. } => Some(store.request_count()),
        }
    }

    /// Drops the test's table (the temporary directory removes itself).
    pub(crate) async fn finish(self) -> TestResult {
        if let Harness::DynamoDb { client, table, .. } = self {
            client.delete_table().table_name(table).send().await?;
        }
        Ok(())
    }
}

/// Instantiates each scenario once per adapter: `conformance! { a, b }` over the stores'
/// [`Harness`] (`embedded`, `dynamodb`), or `conformance! { adapters { name: harness, ... }
/// a, b }` over another harness (each `harness` an expression building it, inside the
/// generated module).
macro_rules! conformance {
    (adapters { $($adapter:ident: $make:expr),+ $(,)? } $($scenario:ident),* $(,)?) => {
        conformance!(@each [$($scenario),*] $($adapter [$make])+);
    };
    (@each $scenarios:tt $($adapter:ident [$make:expr])+) => {
        $( conformance!(@adapter $adapter [$make] $scenarios); )+
    };
    (@adapter $adapter:ident [$make:expr] [$($scenario:ident),*]) => {
        mod $adapter {
            $(
                #[tokio::test]
                async fn $scenario() -> super::TestResult {
                    let mut harness = $make;
                    super::$scenario(&mut harness).await?;
                    harness.finish().await
                }
            )*
        }
    };
    ($($scenario:ident),* $(,)?) => {
        conformance! {
            adapters {
                embedded: super::Harness::embedded()?,
                dynamodb: super::Harness::dynamodb().await?,
            }
            $($scenario),*
        }
    };
}

mod alerts;
mod directory;
mod events;
mod ledger;
mod mailer;
mod queue;
mod schedule;
mod settings;
mod webhooks;
