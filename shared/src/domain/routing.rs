//! Routing: who hears about an event, on which channels. Pure: the caller loads the audience
//! ([`audience_query`] says which) and gets back a [`RoutingPlan`].
//!
//! DefectDojo's rules, without its bugs:
//! - `no_users` events go to the system destinations only.
//! - Explicit recipients: only those users, active ones, with their personal settings (matched
//!   by username, never display name); for the "system level trump" events the system
//!   document is unioned into each recipient's settings, in a fresh value per recipient. No
//!   system destinations, no product check. An empty list reaches nobody.
//! - Broadcast: the system document goes once to the system destinations, its `alert` to
//!   every active administrator. Then every active user who may view the product gets the
//!   union of their personal and per-product settings; with no product (or an unknown one),
//!   administrators only. Access is each recipient's own, whoever posted the event.
//! - Every channel but `alert` needs its system switch on; `alert_only` keeps alerts only.
//! - Identical destinations collapse: nobody gets the same message twice for one event.

use super::catalogue::EventType;
use super::channel::{Channel, ChannelSet};
use super::delivery::Destination;
use super::directory::{AudienceMember, ResourceId, User, Username};
use super::event::Event;
use super::settings::NotificationSettings;
use super::system::SystemSettings;
use std::collections::HashSet;

/// What the caller must load before routing an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudienceQuery {
    /// Nobody but the system destinations (`no_users`).
    SystemOnly,
    /// These users with their personal settings (unknown ones are skipped).
    Recipients(Vec<Username>),
    /// Everyone who may view this product (administrators only if it is unknown).
    Product(ResourceId),
    /// Administrators with their personal settings.
    Administrators,
}

/// Which audience `event` needs.
pub fn audience_query(event: &Event) -> AudienceQuery {
    if event.no_users {
        return AudienceQuery::SystemOnly;
    }
    if let Some(recipients) = &event.recipients {
        return AudienceQuery::Recipients(recipients.clone());
    }
    match event.product() {
        Some(product) => AudienceQuery::Product(product),
        None => AudienceQuery::Administrators,
    }
}

/// The loaded audience.
#[derive(Debug, Clone, Copy)]
pub enum Audience<'a> {
    /// System destinations only.
    SystemOnly,
    /// Explicit recipients (no system destinations).
    Recipients(&'a [AudienceMember]),
    /// Product viewers, or administrators; system destinations too.
    Broadcast(&'a [AudienceMember]),
}

/// What the system scope contributes: its settings and the administrators who get its alerts.
#[derive(Debug, Clone, Copy)]
pub struct SystemScope<'a> {
    pub settings: &'a SystemSettings,
    pub notifications: &'a NotificationSettings,
    pub trump: &'a [EventType],
    pub administrators: &'a [User],
}

/// Who hears about an event: alerts per user and one delivery per distinct destination.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoutingPlan {
    /// Users who get an in-app alert, each once, in routing order.
    pub alerts: Vec<Username>,
    /// Non-alert deliveries, each destination once, in routing order.
    pub deliveries: Vec<Destination>,
}

struct PlanBuilder {
    plan: RoutingPlan,
    seen_alerts: HashSet<Username>,
    seen_destinations: HashSet<Destination>,
}

impl PlanBuilder {
    fn alert(&mut self, user: &Username) {
        if self.seen_alerts.insert(user.clone()) {
            self.plan.alerts.push(user.clone());
        }
    }

    fn deliver(&mut self, destination: Destination) {
        if self.seen_destinations.insert(destination.clone()) {
            self.plan.deliveries.push(destination);
        }
    }
}

/// The channels that may carry `event` at all: those switched on, or only `alert`.
fn permitted(event: &Event, system: &SystemSettings) -> ChannelSet {
    if event.alert_only {
        return ChannelSet::ALERT;
    }
    Channel::ALL
        .into_iter()
        .filter(|c| system.channel_enabled(*c))
        .fold(ChannelSet::EMPTY, ChannelSet::with)
}

/// Routes `event` to `audience` and the system scope.
pub fn route(event: &Event, system: SystemScope<'_>, audience: Audience<'_>) -> RoutingPlan {
    let event_type = event.governing_type();
    let permitted = permitted(event, system.settings);
    let mut builder = PlanBuilder {
        plan: RoutingPlan::default(),
        seen_alerts: HashSet::new(),
        seen_destinations: HashSet::new(),
    };

    if matches!(audience, Audience::SystemOnly | Audience::Broadcast(_)) {
        let channels = intersect(system.notifications.channels(event_type), permitted);
        for channel in channels.iter() {
            match channel {
                Channel::Alert => {
                    for admin in system
                        .administrators
                        .iter()
                        .filter(|a| a.profile.is_active && a.profile.is_admin)
                    {
                        builder.alert(&admin.username);
                    }
                }
                Channel::Mail if !system.settings.mail_notifications_to.is_empty() => {
                    builder.deliver(Destination::email(&system.settings.mail_notifications_to));
                }
                Channel::Slack if !system.settings.slack_channel.is_empty() => {
                    builder.deliver(Destination::SlackChannel(
                        system.settings.slack_channel.clone(),
                    ));
                }
                Channel::Msteams if system.settings.msteams_url.is_some() => {
                    builder.deliver(Destination::Teams)
                }
                Channel::Webhooks => builder.deliver(Destination::SystemWebhooks),
                _ => {}
            }
        }
    }

    let (members, with_trump) = match audience {
        Audience::SystemOnly => (&[][..], false),
        Audience::Recipients(members) => (members, system.trump.contains(&event_type)),
        Audience::Broadcast(members) => (members, false),
    };
    for member in members.iter().filter(|m| m.user.profile.is_active) {
        let mut channels = member.personal.channels(event_type);
        if let Some(product) = &member.product_settings {
            channels = channels.union(product.channels(event_type));
        }
        if with_trump {
            channels = channels.union(system.notifications.channels(event_type));
        }
        for channel in intersect(channels, permitted).iter() {
            let user = &member.user;
            match channel {
                Channel::Alert => builder.alert(&user.username),
                Channel::Mail => {
                    if let Some(email) = &user.profile.email {
                        builder.deliver(Destination::email(email));
                    }
                }
                Channel::Slack => {
                    if user.profile.slack_user_id.is_some() || user.profile.slack_email.is_some() {
                        builder.deliver(Destination::SlackUser(user.username.clone()));
                    }
                }
                // Teams has no personal channel: system scope only.
                Channel::Msteams => {}
                Channel::Webhooks => {
                    builder.deliver(Destination::UserWebhooks(user.username.clone()))
                }
            }
        }
    }
    builder.plan
}

fn intersect(a: ChannelSet, b: ChannelSet) -> ChannelSet {
    a.iter()
        .filter(|c| b.contains(*c))
        .fold(ChannelSet::EMPTY, ChannelSet::with)
}

#[cfg(test)]
mod tests {
    //! Table tests mirroring DefectDojo's own notification tests, plus its bugs fixed.
    use super::*;
    use crate::domain::directory::UserProfile;
    use serde_json::json;

    fn user(name: &str) -> User {
        User {
            username: Username(name.to_owned()),
            profile: UserProfile {
                email: Some(format!("{name}@example.com")),
                slack_email: Some(format!("{name}@example.com")),
                ..UserProfile::default()
            },
        }
    }

    fn admin(name: &str) -> User {
        let mut u = user(name);
        u.profile.is_admin = true;
        u
    }

    fn member(
        u: User,
        personal: NotificationSettings,
        product: Option<NotificationSettings>,
    ) -> AudienceMember {
        AudienceMember {
            user: u,
            personal,
            product_settings: product,
        }
    }

    fn doc(event: EventType, channels: &[Channel]) -> NotificationSettings {
        NotificationSettings::defaults().with(event, channels)
    }

    fn event(body: serde_json::Value) -> Event {
        Event::from_request(&body, || "e1".to_owned()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn scan() -> Event {
        event(json!({"type": "scan_added", "title": "Scan", "product_id": 1}))
    }

    fn all_on() -> SystemSettings {
        SystemSettings {
            enable_mail_notifications: true,
            enable_slack_notifications: true,
            enable_msteams_notifications: true,
            enable_webhooks_notifications: true,
            mail_notifications_to: "appsec@example.com".into(),
            slack_channel: "#appsec".into(),
            msteams_url: Some(crate::domain::Secret::new("https://teams.example.com/hook")),
            ..SystemSettings::default()
        }
    }

    struct World {
        settings: SystemSettings,
        notifications: NotificationSettings,
        admins: Vec<User>,
    }

    impl World {
        fn new(settings: SystemSettings, notifications: NotificationSettings) -> Self {
            Self {
                settings,
                notifications,
                admins: vec![admin("root")],
            }
        }

        fn scope(&self) -> SystemScope<'_> {
            SystemScope {
                settings: &self.settings,
                notifications: &self.notifications,
                trump: &EventType::DEFAULT_SYSTEM_LEVEL_TRUMP,
                administrators: &self.admins,
            }
        }
    }

    fn names(plan: &RoutingPlan) -> Vec<&str> {
        plan.alerts.iter().map(Username::as_str).collect()
    }

    fn keys(plan: &RoutingPlan) -> Vec<String> {
        plan.deliveries.iter().map(Destination::key).collect()
    }

    #[test]
    fn given_personal_and_product_settings_then_a_viewer_gets_their_union() {
        let world = World::new(
            all_on(),
            NotificationSettings::defaults().with(EventType::ScanAdded, &[]),
        );
        let members = [member(
            user("alice"),
            doc(EventType::ScanAdded, &[Channel::Alert]),
            Some(doc(EventType::ScanAdded, &[Channel::Slack, Channel::Mail])),
        )];
        let plan = route(&scan(), world.scope(), Audience::Broadcast(&members));
        assert_eq!(names(&plan), ["alice"]);
        assert_eq!(keys(&plan), ["mail:alice@example.com", "slack:user:alice"]);
    }

    #[test]
    fn given_a_broadcast_then_the_system_document_goes_once_to_every_system_destination() {
        let world = World::new(
            all_on(),
            doc(
                EventType::ScanAdded,
                &[
                    Channel::Alert,
                    Channel::Mail,
                    Channel::Slack,
                    Channel::Msteams,
                    Channel::Webhooks,
                ],
            ),
        );
        let plan = route(&scan(), world.scope(), Audience::Broadcast(&[]));
        assert_eq!(
            names(&plan),
            ["root"],
            "a system alert goes to administrators, not to 'user None'"
        );
        assert_eq!(
            keys(&plan),
            [
                "mail:appsec@example.com",
                "slack:channel:#appsec",
                "msteams:system",
                "webhooks:system"
            ]
        );
    }

    #[test]
    fn trump_matrix_system_channels_join_trump_events_for_recipients_and_never_remove_any() {
        let world = World::new(
            all_on(),
            NotificationSettings::defaults()
                .with(EventType::UserMentioned, &[Channel::Mail])
                .with(EventType::CodeReview, &[Channel::Mail]),
        );
        let recipients = [member(
            user("alice"),
            doc(EventType::UserMentioned, &[Channel::Slack])
                .with(EventType::CodeReview, &[Channel::Slack]),
            None,
        )];
        // (event, expected deliveries)
        let table = [
            (
                "user_mentioned",
                vec!["slack:user:alice", "mail:alice@example.com"],
            ),
            ("review_requested", vec![]),
            ("code_review", vec!["slack:user:alice"]),
        ];
        for (event_type, expected) in table {
            let e = event(json!({"type": event_type, "title": "x", "recipients": ["alice"]}));
            let plan = route(&e, world.scope(), Audience::Recipients(&recipients));
            let mut got = keys(&plan);
            got.sort();
            let mut expected: Vec<String> = expected.into_iter().map(str::to_owned).collect();
            expected.sort();
            assert_eq!(got, expected, "{event_type}");
        }
    }

    #[test]
    fn given_two_recipients_then_one_recipients_opt_in_never_leaks_to_the_next() {
        let world = World::new(all_on(), NotificationSettings::defaults());
        let recipients = [
            member(
                user("alice"),
                doc(EventType::UserMentioned, &[Channel::Alert, Channel::Mail]),
                None,
            ),
            member(
                user("bob"),
                doc(EventType::UserMentioned, &[Channel::Alert]),
                None,
            ),
        ];
        let e =
            event(json!({"type": "user_mentioned", "title": "x", "recipients": ["alice", "bob"]}));
        let plan = route(&e, world.scope(), Audience::Recipients(&recipients));
        assert_eq!(names(&plan), ["alice", "bob"]);
        assert_eq!(keys(&plan), ["mail:alice@example.com"]);
    }

    #[test]
    fn given_explicit_recipients_then_no_system_destination_is_used() {
        let world = World::new(
            all_on(),
            doc(
                EventType::ReviewRequested,
                &[Channel::Alert, Channel::Slack, Channel::Msteams],
            ),
        );
        let recipients = [member(
            user("alice"),
            NotificationSettings::defaults(),
            None,
        )];
        let e = event(json!({"type": "review_requested", "title": "x", "recipients": ["alice"]}));
        let plan = route(&e, world.scope(), Audience::Recipients(&recipients));
        // The system alert (trump) becomes alice's own; Slack becomes her DM; no channel post,
        // no Teams card, no administrator alert.
        assert_eq!(names(&plan), ["alice"]);
        assert_eq!(keys(&plan), ["slack:user:alice"]);
    }

    #[test]
    fn given_an_empty_recipient_list_then_nobody_hears_about_it() {
        let world = World::new(
            all_on(),
            doc(EventType::UserMentioned, &[Channel::Alert, Channel::Slack]),
        );
        let e = event(json!({"type": "user_mentioned", "title": "x", "recipients": []}));
        assert_eq!(audience_query(&e), AudienceQuery::Recipients(vec![]));
        let plan = route(&e, world.scope(), Audience::Recipients(&[]));
        assert_eq!(plan, RoutingPlan::default());
    }

    #[test]
    fn given_an_unknown_event_type_then_the_other_settings_govern_it() {
        let world = World::new(
            all_on(),
            NotificationSettings::defaults().with(EventType::Other, &[]),
        );
        let members = [member(
            user("alice"),
            doc(EventType::Other, &[Channel::Mail]),
            None,
        )];
        let e = event(json!({"type": "engagement_closed", "title": "x", "product_id": 1}));
        let plan = route(&e, world.scope(), Audience::Broadcast(&members));
        assert_eq!(keys(&plan), ["mail:alice@example.com"]);
        assert!(plan.alerts.is_empty());
    }

    #[test]
    fn given_inactive_users_then_they_hear_nothing() {
        let world = World::new(
            all_on(),
            NotificationSettings::defaults().with(EventType::ScanAdded, &[]),
        );
        let mut gone = user("gone");
        gone.profile.is_active = false;
        let mut gone_admin = admin("gone-admin");
        gone_admin.profile.is_active = false;
        let members = [member(gone.clone(), NotificationSettings::defaults(), None)];
        assert_eq!(
            route(&scan(), world.scope(), Audience::Broadcast(&members)),
            RoutingPlan::default()
        );
        let e = event(json!({"type": "user_mentioned", "title": "x", "recipients": ["gone"]}));
        assert_eq!(
            route(&e, world.scope(), Audience::Recipients(&members)),
            RoutingPlan::default()
        );
        let world = World {
            admins: vec![gone_admin],
            ..World::new(all_on(), NotificationSettings::defaults())
        };
        assert!(
            route(&scan(), world.scope(), Audience::Broadcast(&[]))
                .alerts
                .is_empty()
        );
    }

    #[test]
    fn given_switched_off_channels_then_only_alerts_and_switched_on_channels_go_out() {
        let settings = SystemSettings {
            enable_slack_notifications: false,
            ..all_on()
        };
        let world = World::new(
            settings,
            NotificationSettings::defaults().with(EventType::ScanAdded, &[]),
        );
        let members = [member(
            user("alice"),
            doc(
                EventType::ScanAdded,
                &[Channel::Alert, Channel::Slack, Channel::Mail],
            ),
            None,
        )];
        let plan = route(&scan(), world.scope(), Audience::Broadcast(&members));
        assert_eq!(keys(&plan), ["mail:alice@example.com"]);

        let only =
            event(json!({"type": "scan_added", "title": "x", "product_id": 1, "alert_only": true}));
        let plan = route(&only, world.scope(), Audience::Broadcast(&members));
        assert_eq!(
            (names(&plan), keys(&plan)),
            (vec!["alice"], Vec::<String>::new())
        );
    }

    #[test]
    fn given_identical_destinations_then_each_is_used_once_issue_2713() {
        let settings = SystemSettings {
            mail_notifications_to: "Root@Example.com".into(),
            ..all_on()
        };
        let world = World::new(
            settings,
            doc(EventType::ScanAdded, &[Channel::Alert, Channel::Mail]),
        );
        let everything = doc(
            EventType::ScanAdded,
            &[Channel::Alert, Channel::Mail, Channel::Slack],
        );
        let members = [
            member(admin("root"), everything, Some(everything)),
            member(user("alice"), everything, None),
        ];
        let plan = route(&scan(), world.scope(), Audience::Broadcast(&members));
        assert_eq!(
            names(&plan),
            ["root", "alice"],
            "the admin's system alert and own alert are one"
        );
        assert_eq!(
            keys(&plan),
            [
                "mail:root@example.com",
                "slack:user:root",
                "mail:alice@example.com",
                "slack:user:alice"
            ],
            "the system address equal to the admin's address is one mail"
        );
    }

    #[test]
    fn given_no_users_then_only_system_destinations_hear_about_it() {
        let world = World::new(all_on(), doc(EventType::Other, &[Channel::Slack]));
        let e = event(
            json!({"type": "product_type_deleted", "title": "x", "no_users": true, "recipients": ["alice"]}),
        );
        assert_eq!(audience_query(&e), AudienceQuery::SystemOnly);
        let plan = route(&e, world.scope(), Audience::SystemOnly);
        assert_eq!(keys(&plan), ["slack:channel:#appsec"]);
        assert!(plan.alerts.is_empty());
    }

    #[test]
    fn given_events_then_the_audience_query_follows_recipients_product_or_administrators() {
        assert_eq!(
            audience_query(&scan()),
            AudienceQuery::Product(ResourceId("1".into()))
        );
        let e = event(
            json!({"type": "test_added", "title": "x", "engagement": {"id": 4, "product_id": 9}}),
        );
        assert_eq!(
            audience_query(&e),
            AudienceQuery::Product(ResourceId("9".into()))
        );
        let e = event(json!({"type": "product_type_added", "title": "x"}));
        assert_eq!(audience_query(&e), AudienceQuery::Administrators);
    }

    #[test]
    fn given_users_without_addresses_then_mail_and_slack_are_skipped_and_teams_is_never_personal() {
        let world = World::new(
            all_on(),
            NotificationSettings::defaults().with(EventType::ScanAdded, &[]),
        );
        let mut bare = user("bare");
        bare.profile.email = None;
        bare.profile.slack_email = None;
        let members = [member(
            bare,
            doc(
                EventType::ScanAdded,
                &[
                    Channel::Mail,
                    Channel::Slack,
                    Channel::Msteams,
                    Channel::Webhooks,
                ],
            ),
            None,
        )];
        let plan = route(&scan(), world.scope(), Audience::Broadcast(&members));
        assert_eq!(keys(&plan), ["webhooks:user:bare"]);
    }

    #[test]
    fn given_scan_added_empty_then_its_default_reaches_nobody() {
        let world = World::new(all_on(), NotificationSettings::defaults());
        let members = [member(
            user("alice"),
            NotificationSettings::defaults(),
            None,
        )];
        let e = event(json!({"type": "scan_added_empty", "title": "x", "product_id": 1}));
        assert_eq!(
            route(&e, world.scope(), Audience::Broadcast(&members)),
            RoutingPlan::default()
        );
    }

    #[test]
    fn given_a_system_channel_without_destination_then_nothing_is_sent_there() {
        let settings = SystemSettings {
            slack_channel: String::new(),
            msteams_url: None,
            mail_notifications_to: String::new(),
            ..all_on()
        };
        let world = World::new(
            settings,
            doc(
                EventType::ScanAdded,
                &[Channel::Slack, Channel::Msteams, Channel::Mail],
            ),
        );
        assert_eq!(
            route(&scan(), world.scope(), Audience::Broadcast(&[])),
            RoutingPlan::default()
        );
    }
}
