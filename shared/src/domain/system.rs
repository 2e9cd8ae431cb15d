//! System settings: channel switches, destinations and scheduled-check options, with
//! DefectDojo's field names so its users can carry theirs over.
//!
//! Secrets (`slack_token`, `msteams_url`, whose signature lets anyone post to the channel, and
//! `defectdojo_webhook_key`) are write-only: [`SystemSettings`] never serializes them, the
//! stored form adds them explicitly ([`SystemSettings::to_stored`]) and the API view says only
//! whether one is set (`slack_token_set`, `msteams_url_set`).

use super::catalogue::EventType;
use super::channel::Channel;
use super::validation::{FieldError, expect_object, join_path, json_type_name};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

/// A secret value: never printed, never serialized by accident.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// DefectDojo's system settings, as Herald keeps them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SystemSettings {
    pub enable_mail_notifications: bool,
    pub mail_notifications_to: String,
    pub email_from: String,
    pub team_name: String,
    pub enable_slack_notifications: bool,
    #[serde(skip_serializing)]
    pub slack_token: Option<Secret>,
    pub slack_channel: String,
    pub slack_username: String,
    pub enable_msteams_notifications: bool,
    /// Write-only: the Teams webhook's URL carries the signature that lets anyone post.
    #[serde(skip_serializing, deserialize_with = "empty_as_none")]
    pub msteams_url: Option<Secret>,
    pub enable_webhooks_notifications: bool,
    /// Seconds.
    pub webhooks_notifications_timeout: u32,
    pub disclaimer_notifications: String,
    pub site_url: String,
    /// The DefectDojo whose webhooks Herald accepts: its site URL, as DefectDojo sends it in
    /// `X-DefectDojo-Instance`. Empty accepts any instance.
    pub defectdojo_instance: String,
    /// Write-only: a key DefectDojo's webhook endpoint may send as `Authorization: Bearer
    /// <key>` (DefectDojo keeps at most 100 characters in a custom header, too few for a
    /// token).
    #[serde(skip_serializing)]
    pub defectdojo_webhook_key: Option<Secret>,
    pub engagement_auto_close: bool,
    pub engagement_auto_close_days: u32,
    pub enable_notify_sla_active: bool,
    pub enable_notify_sla_active_verified: bool,
    pub enable_notify_sla_exponential_backoff: bool,
    /// Days before expiry.
    pub risk_acceptance_notify_before_expiration: u32,
    /// `-1` keeps every alert.
    pub max_alerts_per_user: i64,
    /// Events whose system-scope channels are added to each explicit recipient's own.
    pub system_level_trump: Vec<String>,
}

impl Default for SystemSettings {
    fn default() -> Self {
        Self {
            enable_mail_notifications: false,
            mail_notifications_to: String::new(),
            email_from: "no-reply@example.com".into(),
            team_name: String::new(),
            enable_slack_notifications: false,
            slack_token: None,
            slack_channel: String::new(),
            slack_username: String::new(),
            enable_msteams_notifications: false,
            msteams_url: None,
            enable_webhooks_notifications: false,
            webhooks_notifications_timeout: 10,
            disclaimer_notifications: String::new(),
            site_url: String::new(),
            defectdojo_instance: String::new(),
            defectdojo_webhook_key: None,
            engagement_auto_close: false,
            engagement_auto_close_days: 3,
            enable_notify_sla_active: false,
            enable_notify_sla_active_verified: false,
            enable_notify_sla_exponential_backoff: false,
            risk_acceptance_notify_before_expiration: 10,
            max_alerts_per_user: 999,
            system_level_trump: EventType::DEFAULT_SYSTEM_LEVEL_TRUMP
                .iter()
                .map(|e| e.name().to_owned())
                .collect(),
        }
    }
}

/// The longest `webhooks_notifications_timeout` accepted: a Teams or webhook post waits at
/// most this long (the senders' function timeouts count on it).
pub const MAX_WEBHOOKS_TIMEOUT_SECONDS: u32 = 60;

/// Longest value accepted for a one-line text field.
const MAX_LINE: usize = 1_000;
/// Longest disclaimer accepted.
const MAX_DISCLAIMER: usize = 4_000;

/// Fields a client may send back from a `GET` but not change.
const READ_ONLY_FIELDS: &[&str] = &[
    "slack_token_set",
    "msteams_url_set",
    "defectdojo_webhook_key_set",
];

/// A stored secret string; the empty string (what older versions stored for "none") is none.
fn empty_as_none<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Secret>, D::Error> {
    let value = Option::<String>::deserialize(deserializer)?;
    Ok(value.filter(|v| !v.is_empty()).map(Secret::new))
}

impl SystemSettings {
    /// Whether messages on `channel` may be sent at all (`alert` always may).
    pub fn channel_enabled(&self, channel: Channel) -> bool {
        match channel {
            Channel::Alert => true,
            Channel::Mail => self.enable_mail_notifications,
            Channel::Slack => self.enable_slack_notifications,
            Channel::Msteams => self.enable_msteams_notifications,
            Channel::Webhooks => self.enable_webhooks_notifications,
        }
    }

    /// The "system level trump" events as catalogue entries.
    pub fn trump_events(&self) -> Vec<EventType> {
        self.system_level_trump
            .iter()
            .filter_map(|name| EventType::from_name(name))
            .collect()
    }

    /// The view returned by the API: every field but secrets, plus whether each is set.
    pub fn to_view(&self) -> Value {
        let mut view =
            serde_json::to_value(self).unwrap_or_else(|_| Value::Object(Default::default()));
        if let Value::Object(map) = &mut view {
            map.insert(
                "slack_token_set".into(),
                Value::Bool(self.slack_token.is_some()),
            );
            map.insert(
                "msteams_url_set".into(),
                Value::Bool(self.msteams_url.is_some()),
            );
            map.insert(
                "defectdojo_webhook_key_set".into(),
                Value::Bool(self.defectdojo_webhook_key.is_some()),
            );
        }
        view
    }

    /// The stored form, secrets included.
    pub fn to_stored(&self) -> String {
        let mut stored = self.to_view();
        if let Value::Object(map) = &mut stored {
            map.remove("slack_token_set");
            map.remove("msteams_url_set");
            map.remove("defectdojo_webhook_key_set");
            if let Some(url) = &self.msteams_url {
                map.insert("msteams_url".into(), Value::String(url.expose().to_owned()));
            }
            if let Some(key) = &self.defectdojo_webhook_key {
                map.insert(
                    "defectdojo_webhook_key".into(),
                    Value::String(key.expose().to_owned()),
                );
            }
            if let Some(token) = &self.slack_token {
                map.insert(
                    "slack_token".into(),
                    Value::String(token.expose().to_owned()),
                );
            }
        }
        stored.to_string()
    }

    /// Reads the stored form; fields missing from an older version take their defaults.
    pub fn from_stored(json: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json)
    }

    /// Applies a partial update: the fields named change, the others are kept. Every field is
    /// validated before anything changes; errors name the field.
    pub fn apply_patch(&self, body: &Value) -> Result<SystemSettings, FieldError> {
        let object = expect_object(body, "")?;
        let mut next = self.clone();
        for (key, value) in object {
            let field = key.as_str();
            match field {
                "enable_mail_notifications" => {
                    next.enable_mail_notifications = boolean(field, value)?
                }
                "enable_slack_notifications" => {
                    next.enable_slack_notifications = boolean(field, value)?
                }
                "enable_msteams_notifications" => {
                    next.enable_msteams_notifications = boolean(field, value)?
                }
                "enable_webhooks_notifications" => {
                    next.enable_webhooks_notifications = boolean(field, value)?
                }
                "engagement_auto_close" => next.engagement_auto_close = boolean(field, value)?,
                "enable_notify_sla_active" => {
                    next.enable_notify_sla_active = boolean(field, value)?
                }
                "enable_notify_sla_active_verified" => {
                    next.enable_notify_sla_active_verified = boolean(field, value)?
                }
                "enable_notify_sla_exponential_backoff" => {
                    next.enable_notify_sla_exponential_backoff = boolean(field, value)?
                }
                "mail_notifications_to" => {
                    next.mail_notifications_to = optional_email(field, value)?
                }
                "email_from" => {
                    next.email_from = optional_email(field, value)?;
                    if next.email_from.is_empty() {
                        return Err(FieldError::new(field, "must not be empty"));
                    }
                }
                "team_name" => next.team_name = line(field, value, MAX_LINE)?,
                "slack_channel" => next.slack_channel = line(field, value, MAX_LINE)?,
                "slack_username" => next.slack_username = line(field, value, MAX_LINE)?,
                "slack_token" => next.slack_token = secret(field, value)?,
                "msteams_url" => {
                    next.msteams_url = if value.is_null() {
                        None
                    } else {
                        let url = optional_url(field, value)?;
                        (!url.is_empty()).then(|| Secret::new(url))
                    }
                }
                "site_url" => next.site_url = site(field, value)?,
                "defectdojo_instance" => next.defectdojo_instance = site(field, value)?,
                "defectdojo_webhook_key" => {
                    next.defectdojo_webhook_key = webhook_key(field, value)?
                }
                "disclaimer_notifications" => {
                    next.disclaimer_notifications = text(field, value, MAX_DISCLAIMER)?
                }
                "webhooks_notifications_timeout" => {
                    next.webhooks_notifications_timeout =
                        integer(field, value, 1, i64::from(MAX_WEBHOOKS_TIMEOUT_SECONDS))? as u32
                }
                "engagement_auto_close_days" => {
                    next.engagement_auto_close_days = integer(field, value, 1, 3650)? as u32
                }
                "risk_acceptance_notify_before_expiration" => {
                    next.risk_acceptance_notify_before_expiration =
                        integer(field, value, 0, 365)? as u32
                }
                "max_alerts_per_user" => {
                    let n = integer(field, value, -1, 1_000_000)?;
                    if n == 0 {
                        return Err(FieldError::new(
                            field,
                            "must be -1 (keep every alert) or at least 1",
                        ));
                    }
                    next.max_alerts_per_user = n;
                }
                "system_level_trump" => next.system_level_trump = event_names(field, value)?,
                _ if READ_ONLY_FIELDS.contains(&field) => {}
                _ => {
                    return Err(FieldError::new(
                        join_path("", field),
                        "unknown system setting",
                    ));
                }
            }
        }
        Ok(next)
    }
}

/// A site's URL, kept without trailing slashes.
fn site(field: &str, value: &Value) -> Result<String, FieldError> {
    let url = optional_url(field, value)?;
    // Checked again without its trailing slashes: `https://` would be kept as `https:`,
    // which no later request could send back.
    let trimmed = Value::String(url.trim_end_matches('/').to_owned());
    optional_url(field, &trimmed)
}

/// A webhook key: 32 to 90 letters, digits, `-` or `_` (it must fit, after `Bearer `, in the
/// 100 characters DefectDojo keeps of a header value); `null` clears it.
fn webhook_key(field: &str, value: &Value) -> Result<Option<Secret>, FieldError> {
    if value.is_null() {
        return Ok(None);
    }
    let key = string(field, value)?;
    let valid = (32..=90).contains(&key.len())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        return Err(FieldError::new(
            field,
            "must be 32 to 90 letters, digits, `-` or `_` (null clears it), e.g. from `openssl rand -hex 24`",
        ));
    }
    Ok(Some(Secret::new(key)))
}

impl SystemSettings {
    /// Whether `authorization` (an `Authorization` header) is `Bearer <defectdojo_webhook_key>`.
    /// Compared in constant time.
    pub fn is_defectdojo_webhook_key(&self, authorization: Option<&str>) -> bool {
        let (Some(key), Some(sent)) = (
            &self.defectdojo_webhook_key,
            authorization.and_then(|a| a.strip_prefix("Bearer ")),
        ) else {
            return false;
        };
        let (a, b) = (key.expose().as_bytes(), sent.trim().as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    /// Whether a DefectDojo webhook naming `instance` in `X-DefectDojo-Instance` comes from
    /// the configured DefectDojo (any does when none is configured). Trailing slashes are
    /// ignored.
    pub fn accepts_defectdojo_instance(&self, instance: Option<&str>) -> bool {
        self.defectdojo_instance.is_empty()
            || instance.is_some_and(|i| i.trim().trim_end_matches('/') == self.defectdojo_instance)
    }
}

fn boolean(field: &str, value: &Value) -> Result<bool, FieldError> {
    value.as_bool().ok_or_else(|| {
        FieldError::new(
            field,
            format!("expected a boolean, got {}", json_type_name(value)),
        )
    })
}

fn string<'a>(field: &str, value: &'a Value) -> Result<&'a str, FieldError> {
    value.as_str().ok_or_else(|| {
        FieldError::new(
            field,
            format!("expected a string, got {}", json_type_name(value)),
        )
    })
}

/// Free text, possibly several lines, without other control characters.
fn text(field: &str, value: &Value, max: usize) -> Result<String, FieldError> {
    let s = string(field, value)?;
    if s.chars().count() > max {
        return Err(FieldError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if s.chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
    {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(s.to_owned())
}

/// One line of text: no CR, LF or other control characters (it may end up in a mail header).
pub(crate) fn line(field: &str, value: &Value, max: usize) -> Result<String, FieldError> {
    let s = string(field, value)?;
    single_line(field, s, max)?;
    Ok(s.to_owned())
}

pub(crate) fn single_line(field: &str, s: &str, max: usize) -> Result<(), FieldError> {
    if s.chars().count() > max {
        return Err(FieldError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "must be one line without control characters",
        ));
    }
    Ok(())
}

fn secret(field: &str, value: &Value) -> Result<Option<Secret>, FieldError> {
    if value.is_null() {
        return Ok(None);
    }
    let s = string(field, value)?;
    if s.is_empty() {
        return Ok(None);
    }
    if s.len() > 512 || s.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(FieldError::new(
            field,
            "must be a token of at most 512 characters without spaces or control characters (null clears it)",
        ));
    }
    Ok(Some(Secret::new(s)))
}

fn integer(field: &str, value: &Value, min: i64, max: i64) -> Result<i64, FieldError> {
    let n = value.as_i64().ok_or_else(|| {
        FieldError::new(
            field,
            format!("expected an integer, got {}", json_type_name(value)),
        )
    })?;
    if n < min || n > max {
        return Err(FieldError::new(
            field,
            format!("must be between {min} and {max}"),
        ));
    }
    Ok(n)
}

/// An email address, or the empty string to unset it.
pub(crate) fn optional_email(field: &str, value: &Value) -> Result<String, FieldError> {
    let s = line(field, value, 254)?;
    if !s.is_empty() && !is_plausible_email(&s) {
        return Err(FieldError::new(
            field,
            "must be an email address such as name@example.com",
        ));
    }
    Ok(s)
}

/// A light check (one `@`, a dot in the domain, no spaces): the mail server is the judge.
pub fn is_plausible_email(s: &str) -> bool {
    const FORBIDDEN: [char; 6] = ['@', ' ', '<', '>', ',', ';'];
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !local.contains(FORBIDDEN)
        && !domain.contains(FORBIDDEN)
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
}

fn optional_url(field: &str, value: &Value) -> Result<String, FieldError> {
    let s = line(field, value, 2_000)?;
    if !(s.is_empty() || s.starts_with("https://") || s.starts_with("http://")) {
        return Err(FieldError::new(field, "must be an http:// or https:// URL"));
    }
    if s.contains(' ') {
        return Err(FieldError::new(field, "must not contain spaces"));
    }
    Ok(s)
}

fn event_names(field: &str, value: &Value) -> Result<Vec<String>, FieldError> {
    let list = value.as_array().ok_or_else(|| {
        FieldError::new(
            field,
            format!(
                "expected an array of event types, got {}",
                json_type_name(value)
            ),
        )
    })?;
    let mut names = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let item_field = format!("{field}[{i}]");
        let name = item
            .as_str()
            .ok_or_else(|| FieldError::new(&item_field, "expected an event type name"))?;
        if EventType::from_name(name).is_none() {
            return Err(FieldError::new(
                &item_field,
                format!("unknown event type `{name}`"),
            ));
        }
        if !names.iter().any(|n| n == name) {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn given_a_site_url_of_only_a_scheme_then_it_is_refused_rather_than_kept_as_no_url() {
        // An input to the `system_settings` fuzz target: `https://` was kept as `https:`, so
        // the settings `GET` answers could not be sent back.
        let err = SystemSettings::default().apply_patch(&json!({"site_url": "https://"}));
        assert_eq!(err.err().map(|e| e.field).as_deref(), Some("site_url"));
        let err = SystemSettings::default().apply_patch(&json!({"site_url": "http:///"}));
        assert_eq!(err.err().map(|e| e.field).as_deref(), Some("site_url"));
        let ok = SystemSettings::default().apply_patch(&json!({"site_url": "https://d.example//"}));
        let ok = ok.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok.site_url, "https://d.example");
        assert_eq!(ok.apply_patch(&ok.to_view()), Ok(ok.clone()));
    }

    #[test]
    fn given_an_unknown_empty_key_then_the_error_names_it_rather_than_the_whole_body() {
        // The `system_settings` fuzz target's input (keys are read in order, so "" came first).
        let patch = json!({"engagement_auto_clibackoff": true, "": ["user_mentioned"]});
        let err = SystemSettings::default().apply_patch(&patch).err();
        assert_eq!(err.map(|e| e.field).as_deref(), Some("\"\""));
    }

    #[test]
    fn given_defaults_then_they_match_defectdojo() {
        let s = SystemSettings::default();
        assert_eq!(s.email_from, "no-reply@example.com");
        assert_eq!(s.webhooks_notifications_timeout, 10);
        assert_eq!(s.engagement_auto_close_days, 3);
        assert_eq!(s.risk_acceptance_notify_before_expiration, 10);
        assert_eq!(s.max_alerts_per_user, 999);
        assert_eq!(
            s.trump_events(),
            EventType::DEFAULT_SYSTEM_LEVEL_TRUMP.to_vec()
        );
    }

    #[test]
    fn given_a_patch_then_named_fields_change_and_the_others_are_kept() {
        let before = SystemSettings {
            team_name: "AppSec".into(),
            ..SystemSettings::default()
        };
        let after = before
            .apply_patch(&json!({"enable_slack_notifications": true, "slack_token": "xoxb-1"}))
            .unwrap_or_default();
        assert!(after.enable_slack_notifications);
        assert_eq!(after.team_name, "AppSec");
        assert_eq!(
            after.slack_token.as_ref().map(Secret::expose),
            Some("xoxb-1")
        );
    }

    #[test]
    fn given_a_token_then_the_view_hides_it_and_the_stored_form_keeps_it() {
        let s = SystemSettings {
            slack_token: Some(Secret::new("xoxb-secret")),
            ..SystemSettings::default()
        };
        let view = s.to_view().to_string();
        assert!(!view.contains("xoxb-secret"));
        assert_eq!(s.to_view()["slack_token_set"], json!(true));
        assert!(format!("{s:?}").contains("Secret(***)"));
        let back = SystemSettings::from_stored(&s.to_stored()).ok();
        assert_eq!(back, Some(s));
    }

    #[test]
    fn given_bad_values_then_the_error_names_the_field() {
        let cases = [
            json!({"enable_mail_notifications": "yes"}),
            json!({"email_from": "not-an-address"}),
            json!({"team_name": "a\r\nBcc: x@example.com"}),
            json!({"webhooks_notifications_timeout": 0}),
            json!({"max_alerts_per_user": 0}),
            json!({"site_url": "ftp://example.com"}),
            json!({"slack_token": "has space"}),
            json!({"system_level_trump": ["nope"]}),
            json!({"slak_token": "x"}),
        ];
        for body in cases {
            let field = body
                .as_object()
                .and_then(|o| o.keys().next().cloned())
                .unwrap_or_default();
            let err = SystemSettings::default()
                .apply_patch(&body)
                .err()
                .map(|e| e.field);
            let err = err.map(|f| f.split('[').next().unwrap_or_default().to_owned());
            assert_eq!(err, Some(field), "{body}");
        }
    }

    #[test]
    fn given_null_then_the_token_is_cleared() {
        let s = SystemSettings {
            slack_token: Some(Secret::new("xoxb")),
            ..SystemSettings::default()
        };
        let after = s
            .apply_patch(&json!({"slack_token": null}))
            .unwrap_or_default();
        assert_eq!(after.slack_token, None);
    }
}
