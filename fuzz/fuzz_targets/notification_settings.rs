//! `PUT` of a notification settings document (system, template, personal or product scope), and
//! any stored document read back.
//!
//! Checks: nothing panics; an error names a field of the document; an accepted document reads
//! back equal from its stored form, its wire form (what `GET` answers) is accepted again at the
//! same scope and equal, Teams appears only at system scope, and merging it with the defaults
//! is their union.
#![no_main]

use herald_shared::domain::settings::SettingsScope;
use herald_shared::domain::{Channel, EVENT_TYPES, EffectiveSettings, NotificationSettings};
use herald_fuzz::{assert_names_a_field, json};
use libfuzzer_sys::fuzz_target;

const SCOPES: [SettingsScope; 4] = [
    SettingsScope::System,
    SettingsScope::Template,
    SettingsScope::Personal,
    SettingsScope::Product,
];

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = NotificationSettings::from_stored(text);
    }
    let Some(body) = json(data) else {
        return;
    };
    let defaults = NotificationSettings::defaults();
    for scope in SCOPES {
        let settings = match NotificationSettings::from_request(&body, scope) {
            Ok(settings) => settings,
            Err(error) => {
                assert_names_a_field(&error, &body, &[]);
                continue;
            }
        };
        let stored = settings.to_stored();
        assert_eq!(
            NotificationSettings::from_stored(&stored).ok(),
            Some(settings),
            "stored form {stored}"
        );
        let wire: serde_json::Value = serde_json::from_str(&stored).unwrap_or_default();
        assert_eq!(
            NotificationSettings::from_request(&wire, scope),
            Ok(settings),
            "{scope:?} wire form {stored}"
        );
        let merged = EffectiveSettings::merge(&defaults, Some(&settings));
        for event in EVENT_TYPES {
            let channels = settings.channels(event);
            assert!(scope.is_system() || !channels.contains(Channel::Msteams));
            assert_eq!(
                merged.channels(event),
                channels.union(defaults.channels(event))
            );
        }
    }
});
