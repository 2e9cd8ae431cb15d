//! Settings validation and the effective-settings merge.
//!
//! `cargo bench -p herald-shared --bench settings`

use criterion::{Criterion, criterion_group, criterion_main};
use herald_shared::domain::catalogue::EVENT_TYPES;
use herald_shared::domain::{
    Channel, EffectiveSettings, EventType, NotificationSettings, SettingsScope, SystemSettings,
};
use serde_json::{Value, json};
use std::hint::black_box;

/// A document naming every event type with three channels: the largest ordinary request.
fn full_document() -> Value {
    let events: serde_json::Map<String, Value> = EVENT_TYPES
        .iter()
        .map(|e| (e.name().to_owned(), json!(["alert", "mail", "slack"])))
        .collect();
    json!({ "events": events })
}

fn bench_validation(c: &mut Criterion) {
    let body = full_document();
    let text = body.to_string();
    c.bench_function("settings/validate full document (parsed JSON)", |b| {
        b.iter(|| NotificationSettings::from_request(black_box(&body), SettingsScope::Personal))
    });
    c.bench_function("settings/parse + validate full document (bytes)", |b| {
        b.iter(|| {
            let value: Value = serde_json::from_str(black_box(&text)).unwrap_or(Value::Null);
            NotificationSettings::from_request(&value, SettingsScope::Personal)
        })
    });
    let patch = json!({"enable_slack_notifications": true, "slack_channel": "#appsec", "team_name": "AppSec",
        "webhooks_notifications_timeout": 5, "system_level_trump": ["user_mentioned", "review_requested"]});
    let current = SystemSettings::default();
    c.bench_function("settings/validate system settings patch", |b| {
        b.iter(|| current.apply_patch(black_box(&patch)))
    });
}

fn bench_merge(c: &mut Criterion) {
    let personal = NotificationSettings::defaults()
        .with(EventType::ScanAdded, &[Channel::Alert, Channel::Mail]);
    let product = NotificationSettings::defaults()
        .with(EventType::ScanAdded, &[Channel::Slack])
        .with(EventType::SlaBreach, &[Channel::Webhooks]);
    let system = NotificationSettings::defaults().with(EventType::UserMentioned, &[Channel::Mail]);
    let trump = EventType::DEFAULT_SYSTEM_LEVEL_TRUMP;
    c.bench_function(
        "settings/effective merge with provenance (personal + product + trump)",
        |b| {
            b.iter(|| {
                EffectiveSettings::merge(black_box(&personal), Some(black_box(&product)))
                    .with_system_trump(black_box(&system), &trump)
            })
        },
    );
    c.bench_function("settings/union personal + product (routing form)", |b| {
        b.iter(|| black_box(&personal).union(black_box(&product)))
    });
    let audience: Vec<(NotificationSettings, NotificationSettings)> =
        (0..1_000).map(|_| (personal, product)).collect();
    c.bench_function("settings/union for 1,000 members, one event", |b| {
        b.iter(|| {
            audience
                .iter()
                .filter(|(p, q)| !p.union(q).channels(EventType::ScanAdded).is_empty())
                .count()
        })
    });
    let stored = personal.to_stored();
    c.bench_function("settings/read stored document", |b| {
        b.iter(|| NotificationSettings::from_stored(black_box(&stored)))
    });
}

criterion_group!(benches, bench_validation, bench_merge);
criterion_main!(benches);
