//! Routing CPU: one event for a product whose 1,000 members all have personal and
//! per-product settings (target ≤ 1 ms per event).
//!
//! `cargo bench -p herald-shared --bench routing`

use criterion::{Criterion, criterion_group, criterion_main};
use herald_shared::domain::alert::AlertTemplate;
use herald_shared::domain::directory::UserProfile;
use herald_shared::domain::routing::Audience;
use herald_shared::domain::{
    Alert, AudienceMember, Channel, Delivery, Event, EventType, NotificationSettings, SystemScope,
    SystemSettings, User, Username, route,
};
use serde_json::json;
use std::hint::black_box;

fn audience(members: usize) -> Vec<AudienceMember> {
    (0..members)
        .map(|i| {
            let name = format!("user{i:04}");
            AudienceMember {
                user: User {
                    username: Username::parse("u", &name).unwrap_or_else(|e| panic!("{e}")),
                    profile: UserProfile {
                        email: Some(format!("{name}@example.com")),
                        slack_email: Some(format!("{name}@example.com")),
                        is_admin: i % 100 == 0,
                        ..UserProfile::default()
                    },
                },
                personal: NotificationSettings::defaults()
                    .with(EventType::ScanAdded, &[Channel::Alert]),
                product_settings: Some(
                    NotificationSettings::defaults()
                        .with(EventType::ScanAdded, &[Channel::Alert, Channel::Mail]),
                ),
            }
        })
        .collect()
}

fn bench_routing(c: &mut Criterion) {
    let settings = SystemSettings {
        enable_mail_notifications: true,
        enable_slack_notifications: true,
        slack_channel: "#appsec".into(),
        ..SystemSettings::default()
    };
    let notifications = NotificationSettings::defaults()
        .with(EventType::ScanAdded, &[Channel::Alert, Channel::Slack]);
    let trump = settings.trump_events();
    let event = Event::from_request(
        &json!({"id": "bench", "type": "scan_added", "title": "Scan", "product_id": 7}),
        || "bench".into(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    for size in [10usize, 100, 1_000] {
        let members = audience(size);
        let admins: Vec<User> = members
            .iter()
            .filter(|m| m.user.profile.is_admin)
            .map(|m| m.user.clone())
            .collect();
        let scope = SystemScope {
            settings: &settings,
            notifications: &notifications,
            trump: &trump,
            administrators: &admins,
        };
        c.bench_function(&format!("routing/route scan_added, {size} members"), |b| {
            b.iter(|| {
                route(
                    black_box(&event),
                    scope,
                    Audience::Broadcast(black_box(&members)),
                )
            })
        });
        c.bench_function(
            &format!("routing/route + build alerts and deliveries, {size} members"),
            |b| {
                b.iter(|| {
                    let plan = route(
                        black_box(&event),
                        scope,
                        Audience::Broadcast(black_box(&members)),
                    );
                    let template = AlertTemplate::new(&event, 1);
                    let alerts: Vec<Alert> =
                        plan.alerts.iter().map(|u| template.for_user(u)).collect();
                    let deliveries: Vec<Delivery> = plan
                        .deliveries
                        .into_iter()
                        .map(|d| Delivery::queued(&event.id, d, 1))
                        .collect();
                    (alerts, deliveries)
                })
            },
        );
    }
}

/// Reading an event that names the most recipients allowed (10,000), a tenth of them twice:
/// de-duplication must stay linear.
fn bench_recipients(c: &mut Criterion) {
    let names: Vec<String> = (0..10_000)
        .map(|i| format!("user{:05}", i % 9_000))
        .collect();
    let body = json!({"id": "e1", "type": "user_mentioned", "title": "x", "recipients": names});
    c.bench_function("routing/read an event naming 10,000 recipients", |b| {
        b.iter(|| {
            let event = Event::from_request(black_box(&body), || "e1".to_owned());
            black_box(event.map(|e| e.recipients.map(|r| r.len())))
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = bench_routing, bench_recipients
}
criterion_main!(benches);
