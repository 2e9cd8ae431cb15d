//! The template's function timeouts and queue visibility timeouts, checked against the budgets
//! derived from the calls one record makes (`herald_shared::budget`): a sender's timeout is
//! exactly its budget, its queue's visibility timeout at least six times that, and the
//! clients' timeouts the ones the budgets count on.

use herald_shared::budget::{
    Budget, MAX_POST_TIMEOUT, SENDERS, SLACK_HTTP_TIMEOUT, VISIBILITY_FACTOR,
};
use herald_shared::domain::SystemSettings;
use std::time::Duration;

const TEMPLATE: &str = include_str!("../../infra/template.yaml");

/// The lines of one top-level resource (`  Name:` up to the next one).
fn resource(name: &str) -> Vec<&'static str> {
    let header = format!("  {name}:");
    let mut lines = TEMPLATE.lines().skip_while(|l| *l != header);
    let first = lines
        .next()
        .unwrap_or_else(|| panic!("{name} is not in the template"));
    std::iter::once(first)
        .chain(lines.take_while(|l| {
            !(l.starts_with("  ") && !l.starts_with("   ") && l.trim_end().ends_with(':'))
        }))
        .collect()
}

/// The first `key: N` in a resource, in seconds.
fn seconds(lines: &[&str], key: &str) -> u64 {
    let prefix = format!("{key}:");
    lines
        .iter()
        .find_map(|l| l.trim().strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {lines:?}"))
}

/// `sender-slack` → `SenderSlackFunction`.
fn logical_id(function: &str) -> String {
    let mut id: String = function
        .split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect();
    id.push_str("Function");
    id
}

#[test]
fn every_sender_timeout_is_its_budget_and_every_queue_waits_six_times_as_long() {
    for budget in SENDERS {
        let function = resource(&logical_id(budget.function));
        let timeout = Duration::from_secs(seconds(&function, "Timeout"));
        assert_eq!(
            timeout,
            budget.function_timeout(),
            "{}: the template's Timeout against shared/src/budget.rs ({:?} worst case)",
            budget.function,
            budget.worst_case()
        );
        let queue = function
            .iter()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("Queue: !GetAtt ")
                    .and_then(|q| q.strip_suffix(".Arn"))
            })
            .unwrap_or_else(|| panic!("{} has no SQS trigger", budget.function));
        let visibility = Duration::from_secs(seconds(&resource(queue), "VisibilityTimeout"));
        assert!(
            visibility >= timeout * VISIBILITY_FACTOR,
            "{queue}: VisibilityTimeout {visibility:?} < {VISIBILITY_FACTOR} x {timeout:?}"
        );
        assert!(visibility >= budget.min_visibility_timeout(), "{queue}");
    }
}

#[test]
fn the_clients_timeouts_are_the_ones_the_budgets_count_on() {
    assert_eq!(sender_slack::slack::DEFAULT_TIMEOUT, SLACK_HTTP_TIMEOUT);
    let longest = SystemSettings::default()
        .apply_patch(
            &serde_json::json!({"webhooks_notifications_timeout": MAX_POST_TIMEOUT.as_secs()}),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        herald_shared::adapters::webhook_client::timeout(&longest),
        MAX_POST_TIMEOUT
    );
    let too_long = SystemSettings::default().apply_patch(
        &serde_json::json!({"webhooks_notifications_timeout": MAX_POST_TIMEOUT.as_secs() + 1}),
    );
    assert!(
        too_long.is_err(),
        "no post may wait longer than the budgets count on"
    );
    for function in [
        "sender-slack",
        "sender-email",
        "sender-teams",
        "sender-webhook",
    ] {
        assert!(Budget::of(function).is_some(), "{function} has a budget");
    }
}
