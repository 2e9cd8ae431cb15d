//! The conformance suite of `SyncLedger` (which objects a sync wrote, per source and kind).

use super::{Harness, TestResult};

conformance! {
    given_nothing_recorded_then_every_kind_is_empty_and_forgetting_is_harmless,
    given_recorded_ids_then_they_list_sorted_per_source_and_kind_once_each,
    given_forgotten_ids_then_only_the_rest_are_listed,
    given_many_ids_then_all_list_and_survive_a_reopen,
}

fn ids(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

async fn given_nothing_recorded_then_every_kind_is_empty_and_forgetting_is_harmless(
    harness: &mut Harness,
) -> TestResult {
    let store = harness.store();
    assert!(store.synced_ids("defectdojo", "users").await?.is_empty());
    store
        .forget_synced("defectdojo", "users", &ids(&["alice"]))
        .await?;
    store.record_synced("defectdojo", "users", &[]).await?;
    assert!(store.synced_ids("defectdojo", "users").await?.is_empty());
    Ok(())
}

async fn given_recorded_ids_then_they_list_sorted_per_source_and_kind_once_each(
    harness: &mut Harness,
) -> TestResult {
    let store = harness.store();
    store
        .record_synced("defectdojo", "users", &ids(&["carol", "alice", "bob"]))
        .await?;
    // Recording again is idempotent, and an id may name two objects (a membership).
    store
        .record_synced("defectdojo", "users", &ids(&["alice", "dave"]))
        .await?;
    store
        .record_synced("defectdojo", "product_members", &ids(&["7/alice"]))
        .await?;
    store
        .record_synced("other", "users", &ids(&["erin"]))
        .await?;
    assert_eq!(
        store.synced_ids("defectdojo", "users").await?,
        ids(&["alice", "bob", "carol", "dave"])
    );
    assert_eq!(
        store.synced_ids("defectdojo", "product_members").await?,
        ids(&["7/alice"])
    );
    assert_eq!(store.synced_ids("other", "users").await?, ids(&["erin"]));
    assert!(store.synced_ids("defectdojo", "products").await?.is_empty());
    Ok(())
}

async fn given_forgotten_ids_then_only_the_rest_are_listed(harness: &mut Harness) -> TestResult {
    let store = harness.store();
    store
        .record_synced("defectdojo", "findings", &ids(&["101", "102", "103"]))
        .await?;
    store
        .record_synced("other", "findings", &ids(&["102"]))
        .await?;
    store
        .forget_synced("defectdojo", "findings", &ids(&["102", "999"]))
        .await?;
    assert_eq!(
        store.synced_ids("defectdojo", "findings").await?,
        ids(&["101", "103"])
    );
    // Another source's record of the same id is its own.
    assert_eq!(store.synced_ids("other", "findings").await?, ids(&["102"]));
    Ok(())
}

async fn given_many_ids_then_all_list_and_survive_a_reopen(harness: &mut Harness) -> TestResult {
    // More than a batch write (25) and spread over every DynamoDB shard.
    let many: Vec<String> = (0..300).map(|i| format!("{i:04}")).collect();
    harness
        .store()
        .record_synced("defectdojo", "findings", &many)
        .await?;
    harness
        .store()
        .forget_synced("defectdojo", "findings", &many[..100])
        .await?;
    harness.reopen().await?;
    assert_eq!(
        harness.store().synced_ids("defectdojo", "findings").await?,
        many[100..].to_vec()
    );
    Ok(())
}
