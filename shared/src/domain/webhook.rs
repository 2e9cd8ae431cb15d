//! Webhook endpoints: what an administrator or a user registers, how requests to add or edit
//! one are validated, the endpoint's health state machine, and the Standard Webhooks
//! signature. Pure: no I/O (the caller supplies random bytes and the time).
//!
//! **Secrets.** `header_value` and `secret` are write-only: they are kept as [`Secret`]s (never
//! printed), only [`WebhookEndpoint::to_stored`] writes them out, and API views show
//! `header_value_set` / `secret_set` instead.
//!
//! **States and timings** (DefectDojo's, with one deliberate difference):
//! - a 2xx answer is a success; an `active_tmp` endpoint stays `active_tmp`, an
//!   `inactive_tmp` one becomes `active_tmp`;
//! - 5xx, 429, a timeout **or a connection error** is temporary: `first_error` is set if it
//!   was not, `last_error = now`, status `inactive_tmp`, or `inactive_permanent` once errors
//!   have lasted over 24 hours (DefectDojo deactivates for good on a connection error; a
//!   restarting receiver should not lose its webhook, so Herald treats it as temporary);
//! - any other 4xx deactivates for good (`inactive_permanent`);
//! - recovery (a periodic check): `inactive_tmp` whose `last_error` is at least 60 s old →
//!   `active_tmp`; `active_tmp` whose `last_error` is at least 24 h old → `active`, errors
//!   cleared;
//! - a successful edit resets to `active` and clears the errors.
//!
//! `note` holds the last error's text, which never contains a secret or the URL (URLs often
//! carry tokens).

use super::directory::Username;
use super::system::Secret;
use super::validation::{FieldError, expect_object, join_path, json_type_name};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::fmt;

/// How long an `inactive_tmp` endpoint rests before it is tried again.
pub const REACTIVATE_AFTER_MS: u64 = 60_000;
/// How long errors may last before an endpoint is deactivated for good, and how long an
/// `active_tmp` endpoint must go without one to be `active` again.
pub const ERROR_WINDOW_MS: u64 = 24 * 3_600_000;
/// Longest endpoint name.
pub const MAX_NAME: usize = 100;
/// Longest URL.
pub const MAX_URL: usize = 2_000;
/// Longest custom header name.
pub const MAX_HEADER_NAME: usize = 100;
/// Longest custom header value.
pub const MAX_HEADER_VALUE: usize = 1_000;
/// The signing secret's prefix (Standard Webhooks).
pub const SECRET_PREFIX: &str = "whsec_";
/// The shortest and longest signing key, in bytes after base64 decoding.
pub const SECRET_BYTES: std::ops::RangeInclusive<usize> = 24..=64;

/// Header names Herald sets itself, which a custom header may not replace (compared
/// case-insensitively; `x-herald-*` as a prefix).
const RESERVED_HEADERS: &[&str] = &[
    "accept",
    "connection",
    "content-length",
    "content-type",
    "host",
    "transfer-encoding",
    "user-agent",
    "webhook-id",
    "webhook-signature",
    "webhook-timestamp",
];
const RESERVED_HEADER_PREFIX: &str = "x-herald-";

/// An endpoint's id: `wh_` and 16 hex digits, chosen by Herald.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct WebhookId(String);

impl WebhookId {
    /// The id made of 8 random bytes.
    pub fn from_random(bytes: [u8; 8]) -> Self {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Self(format!("wh_{hex}"))
    }

    /// Validates an id from a path or a stored key: 1 to 64 letters, digits or `_ -`.
    pub fn parse(field: &str, value: &str) -> Result<Self, FieldError> {
        let valid = !value.is_empty()
            && value.len() <= 64
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if valid {
            Ok(Self(value.to_owned()))
        } else {
            Err(FieldError::new(field, "is not a webhook id"))
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WebhookId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An endpoint's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WebhookStatus {
    /// Healthy.
    Active,
    /// Recovering: it failed recently and is being tried again.
    ActiveTmp,
    /// Resting after a temporary failure; messages for it are parked.
    InactiveTmp,
    /// Deactivated for good; an edit (with a successful ping) reactivates it.
    InactivePermanent,
}

impl WebhookStatus {
    /// The wire name.
    pub const fn name(self) -> &'static str {
        match self {
            WebhookStatus::Active => "active",
            WebhookStatus::ActiveTmp => "active_tmp",
            WebhookStatus::InactiveTmp => "inactive_tmp",
            WebhookStatus::InactivePermanent => "inactive_permanent",
        }
    }

    /// Whether messages are sent to it now.
    pub const fn is_active(self) -> bool {
        matches!(self, WebhookStatus::Active | WebhookStatus::ActiveTmp)
    }
}

/// The health part of an endpoint: what outcomes and recovery change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookState {
    pub status: WebhookStatus,
    /// When the current run of errors began (ms since the Unix epoch).
    pub first_error: Option<u64>,
    /// The latest error (ms since the Unix epoch).
    pub last_error: Option<u64>,
    /// The latest error's text (never a secret, never the URL).
    pub note: Option<String>,
}

impl WebhookState {
    /// Healthy, no errors.
    pub fn active() -> Self {
        Self {
            status: WebhookStatus::Active,
            first_error: None,
            last_error: None,
            note: None,
        }
    }
}

/// How one request to an endpoint ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// 2xx.
    Delivered,
    /// 5xx, 429, a timeout or a connection error.
    Temporary { reason: String },
    /// Any other 4xx (or another answer that will not change).
    Permanent { reason: String },
}

impl WebhookState {
    /// The state after `outcome` at `now_ms`.
    pub fn after(&self, outcome: &WebhookOutcome, now_ms: u64) -> WebhookState {
        match outcome {
            WebhookOutcome::Delivered => match self.status {
                WebhookStatus::InactiveTmp => WebhookState {
                    status: WebhookStatus::ActiveTmp,
                    ..self.clone()
                },
                _ => self.clone(),
            },
            WebhookOutcome::Temporary { reason } => {
                let first_error = self.first_error.unwrap_or(now_ms);
                let status = if now_ms.saturating_sub(first_error) > ERROR_WINDOW_MS {
                    WebhookStatus::InactivePermanent
                } else {
                    WebhookStatus::InactiveTmp
                };
                WebhookState {
                    status,
                    first_error: Some(first_error),
                    last_error: Some(now_ms),
                    note: Some(reason.clone()),
                }
            }
            WebhookOutcome::Permanent { reason } => WebhookState {
                status: WebhookStatus::InactivePermanent,
                first_error: Some(self.first_error.unwrap_or(now_ms)),
                last_error: Some(now_ms),
                note: Some(reason.clone()),
            },
        }
    }

    /// The state the periodic recovery check gives at `now_ms`, or `None` when nothing
    /// changes.
    pub fn recovered(&self, now_ms: u64) -> Option<WebhookState> {
        let since_error = self.last_error.map(|t| now_ms.saturating_sub(t));
        match self.status {
            WebhookStatus::InactiveTmp
                if since_error.is_none_or(|quiet| quiet >= REACTIVATE_AFTER_MS) =>
            {
                Some(WebhookState {
                    status: WebhookStatus::ActiveTmp,
                    ..self.clone()
                })
            }
            WebhookStatus::ActiveTmp
                if since_error.is_none_or(|quiet| quiet >= ERROR_WINDOW_MS) =>
            {
                Some(WebhookState::active())
            }
            _ => None,
        }
    }
}

/// The body and headers an endpoint receives.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    /// Herald's: DefectDojo's webhook fields plus `event` and `event_id`, with
    /// `X-Herald-Event` and, with a secret, Standard Webhooks signatures.
    #[default]
    Herald,
    /// DefectDojo's own body and headers (`User-Agent: DefectDojo-…`, `X-DefectDojo-Event`,
    /// `X-DefectDojo-Instance`), so a receiver written for DefectDojo works unchanged.
    Defectdojo,
}

impl WebhookFormat {
    /// The wire name.
    pub const fn name(self) -> &'static str {
        match self {
            WebhookFormat::Herald => "herald",
            WebhookFormat::Defectdojo => "defectdojo",
        }
    }

    fn parse(value: &str) -> Result<Self, FieldError> {
        match value {
            "herald" => Ok(WebhookFormat::Herald),
            "defectdojo" => Ok(WebhookFormat::Defectdojo),
            _ => Err(FieldError::new(
                "format",
                "must be `herald` (the default) or `defectdojo`",
            )),
        }
    }
}

/// A registered webhook endpoint.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    pub id: WebhookId,
    pub name: String,
    pub url: String,
    pub header_name: Option<String>,
    /// Write-only.
    pub header_value: Option<Secret>,
    /// Write-only: `whsec_` and the base64 signing key.
    pub secret: Option<Secret>,
    /// `None` for a system endpoint.
    pub owner: Option<Username>,
    pub format: WebhookFormat,
    pub state: WebhookState,
    /// Ms since the Unix epoch.
    pub created_at: u64,
    /// When the endpoint was last added or edited (not when its state changed).
    pub updated_at: u64,
    /// Bumped by the store on every write; conditional state updates compare it.
    pub version: u64,
}

impl fmt::Debug for WebhookEndpoint {
    // By hand: the URL may carry a token and the header value and secret are secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookEndpoint")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("header_name", &self.header_name)
            .field("header_value_set", &self.header_value.is_some())
            .field("secret_set", &self.secret.is_some())
            .field("owner", &self.owner)
            .field("format", &self.format)
            .field("state", &self.state)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// The stored form: every field, secrets included.
#[derive(Serialize, Deserialize)]
struct Stored {
    id: String,
    name: String,
    url: String,
    #[serde(default)]
    header_name: Option<String>,
    #[serde(default)]
    header_value: Option<String>,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    owner: Option<String>,
    #[serde(default)]
    format: WebhookFormat,
    status: WebhookStatus,
    #[serde(default)]
    first_error: Option<u64>,
    #[serde(default)]
    last_error: Option<u64>,
    #[serde(default)]
    note: Option<String>,
    created_at: u64,
    updated_at: u64,
}

impl WebhookEndpoint {
    /// The JSON the stores keep, secrets included (the version is kept beside it).
    pub fn to_stored(&self) -> String {
        let stored = Stored {
            id: self.id.0.clone(),
            name: self.name.clone(),
            url: self.url.clone(),
            header_name: self.header_name.clone(),
            header_value: self.header_value.as_ref().map(|s| s.expose().to_owned()),
            secret: self.secret.as_ref().map(|s| s.expose().to_owned()),
            owner: self.owner.as_ref().map(|u| u.0.clone()),
            format: self.format,
            status: self.state.status,
            first_error: self.state.first_error,
            last_error: self.state.last_error,
            note: self.state.note.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        };
        serde_json::to_string(&stored).unwrap_or_else(|_| String::from("{}"))
    }

    /// Reads [`WebhookEndpoint::to_stored`] back, with the store's version.
    pub fn from_stored(json: &str, version: u64) -> Result<Self, String> {
        let s: Stored = serde_json::from_str(json).map_err(|e| e.to_string())?;
        Ok(Self {
            id: WebhookId(s.id),
            name: s.name,
            url: s.url,
            header_name: s.header_name,
            header_value: s.header_value.map(Secret::new),
            secret: s.secret.map(Secret::new),
            owner: s.owner.map(Username),
            format: s.format,
            state: WebhookState {
                status: s.status,
                first_error: s.first_error,
                last_error: s.last_error,
                note: s.note,
            },
            created_at: s.created_at,
            updated_at: s.updated_at,
            version,
        })
    }

    /// Whether `user` owns it.
    pub fn is_owned_by(&self, user: &Username) -> bool {
        self.owner.as_ref() == Some(user)
    }
}

/// A field of a request that may be left out, set, or set to `null`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Change<T> {
    /// Left out: keep what is stored.
    #[default]
    Keep,
    /// `null` (or an empty string): clear it.
    Clear,
    /// A new value.
    Set(T),
}

impl<T> Change<T> {
    /// The value after the change, given the current one.
    pub fn apply(self, current: Option<T>) -> Option<T> {
        match self {
            Change::Keep => current,
            Change::Clear => None,
            Change::Set(v) => Some(v),
        }
    }
}

/// What stands for a credential in a redacted URL.
pub const REDACTED: &str = "***";

/// Services whose webhook URLs carry their secret in the path: the host (or its ending), and
/// how many leading path segments are not secret.
const SECRET_PATHS: &[(&str, usize)] = &[
    // https://hooks.slack.com/services/T000/B000/XXXX
    ("hooks.slack.com", 1),
    // https://discord.com/api/webhooks/123/token
    ("discord.com", 2),
    ("discordapp.com", 2),
    // https://x.webhook.office.com/webhookb2/guid@guid/IncomingWebhook/id/guid
    (".webhook.office.com", 1),
    // https://chat.googleapis.com/v1/spaces/AAA/messages?key=...&token=... (query below)
];

/// A webhook URL as the API shows it: credentials in it (`https://user:pass@host`, a bare
/// `https://token@host`), every query value (`?token=...`, a Teams workflow's `sig=...`), the
/// fragment, and the secret path of services known to keep it there (Slack's, Discord's and
/// Teams' incoming webhooks) replaced by `***`. A URL with none of these is shown as given.
pub fn redacted_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return url.to_owned();
    };
    let has_user = !parsed.username().is_empty() || parsed.password().is_some();
    let host = parsed.host_str().unwrap_or_default().to_ascii_lowercase();
    let secret_path = SECRET_PATHS.iter().find_map(|(known, keep)| {
        let matches = if known.starts_with('.') {
            host.ends_with(known)
        } else {
            host == *known
        };
        matches.then_some(*keep)
    });
    if !has_user && parsed.query().is_none() && parsed.fragment().is_none() && secret_path.is_none()
    {
        return url.to_owned();
    }
    if let Some(keep) = secret_path {
        let segments: Vec<String> = parsed
            .path_segments()
            .map(|s| s.map(str::to_owned).collect())
            .unwrap_or_default();
        if segments.len() > keep {
            let mut shown: Vec<&str> = segments[..keep].iter().map(String::as_str).collect();
            shown.push(REDACTED);
            parsed.set_path(&format!("/{}", shown.join("/")));
        }
    }
    if parsed.fragment().is_some() {
        parsed.set_fragment(Some(REDACTED));
    }
    if parsed.password().is_some() {
        // `user:***`; a password without a user is all credential.
        let _ = parsed.set_password(Some(REDACTED));
        if parsed.username().is_empty() {
            let _ = parsed.set_username(REDACTED);
        }
    } else if !parsed.username().is_empty() {
        let _ = parsed.set_username(REDACTED);
    }
    if let Some(query) = parsed.query() {
        // Each `key=value` keeps its key (as given); a piece without `=` is all credential.
        let hidden: Vec<String> = query
            .split('&')
            .map(|piece| match piece.split_once('=') {
                Some((key, _)) if !key.is_empty() => format!("{key}={REDACTED}"),
                _ => REDACTED.to_owned(),
            })
            .collect();
        parsed.set_query(Some(&hidden.join("&")));
    }
    parsed.to_string()
}

/// A validated `POST` or `PUT` body.
#[derive(Debug, Clone, Default)]
pub struct WebhookRequest {
    pub name: Option<String>,
    pub url: Option<String>,
    pub header_name: Change<String>,
    pub header_value: Change<Secret>,
    pub secret: Change<Secret>,
    /// `Keep` when left out; `Clear` for an explicit `null` (a system endpoint).
    pub owner: Change<Username>,
    /// `None` when left out (a new endpoint takes `herald`, an edit keeps its format).
    pub format: Option<WebhookFormat>,
}

/// Fields of a view that a client may send back unchanged; they are ignored.
const READ_ONLY_FIELDS: &[&str] = &[
    "id",
    "status",
    "first_error",
    "last_error",
    "note",
    "created_at",
    "updated_at",
    "header_value_set",
    "secret_set",
];
const FIELDS: &[&str] = &[
    "name",
    "url",
    "header_name",
    "header_value",
    "secret",
    "owner",
    "format",
];

impl WebhookRequest {
    /// Validates a request body; errors name the field.
    pub fn from_request(body: &Value) -> Result<Self, FieldError> {
        let object = expect_object(body, "")?;
        for key in object.keys() {
            if !FIELDS.contains(&key.as_str()) && !READ_ONLY_FIELDS.contains(&key.as_str()) {
                return Err(FieldError::new(
                    join_path("", key),
                    format!("unknown field; expected one of: {}", FIELDS.join(", ")),
                ));
            }
        }
        let name = match optional(object, "name")? {
            Change::Set(name) => Some(validate_name(&name)?),
            Change::Clear => return Err(FieldError::new("name", "must not be empty")),
            Change::Keep => None,
        };
        let url = match optional(object, "url")? {
            Change::Set(url) => Some(validate_url(&url)?),
            Change::Clear => return Err(FieldError::new("url", "must not be empty")),
            Change::Keep => None,
        };
        let header_name = match optional(object, "header_name")? {
            Change::Set(v) => Change::Set(validate_header_name(&v)?),
            other => other,
        };
        let header_value = match optional(object, "header_value")? {
            Change::Set(v) => Change::Set(Secret::new(validate_header_value(&v)?)),
            Change::Clear => Change::Clear,
            Change::Keep => Change::Keep,
        };
        let secret = match optional(object, "secret")? {
            Change::Set(v) => {
                validate_secret(&v)?;
                Change::Set(Secret::new(v))
            }
            Change::Clear => Change::Clear,
            Change::Keep => Change::Keep,
        };
        let owner = match optional(object, "owner")? {
            Change::Set(v) => Change::Set(Username::parse("owner", &v)?),
            Change::Clear => Change::Clear,
            Change::Keep => Change::Keep,
        };
        let format = match optional(object, "format")? {
            Change::Set(v) => Some(WebhookFormat::parse(&v)?),
            Change::Clear => Some(WebhookFormat::Herald),
            Change::Keep => None,
        };
        Ok(Self {
            name,
            url,
            header_name,
            header_value,
            secret,
            owner,
            format,
        })
    }

    /// A new endpoint from this request (`POST`): `name` and `url` are required.
    pub fn create(
        self,
        id: WebhookId,
        owner: Option<Username>,
        now_ms: u64,
    ) -> Result<WebhookEndpoint, FieldError> {
        let name = self
            .name
            .ok_or_else(|| FieldError::new("name", "is required"))?;
        let url = self
            .url
            .ok_or_else(|| FieldError::new("url", "is required"))?;
        let endpoint = WebhookEndpoint {
            id,
            name,
            url,
            header_name: self.header_name.apply(None),
            header_value: self.header_value.apply(None),
            secret: self.secret.apply(None),
            owner,
            format: self.format.unwrap_or_default(),
            state: WebhookState::active(),
            created_at: now_ms,
            updated_at: now_ms,
            version: 0,
        };
        check_header_pair(&endpoint)?;
        Ok(endpoint)
    }

    /// `current` edited by this request (`PUT`): the fields named change, the others are
    /// kept; the state is reset to `active` (the edit is saved only after a successful
    /// ping). The owner never changes here.
    pub fn edit(
        self,
        current: &WebhookEndpoint,
        now_ms: u64,
    ) -> Result<WebhookEndpoint, FieldError> {
        let owner_named = match &self.owner {
            Change::Keep => None,
            Change::Clear => Some(None),
            Change::Set(user) => Some(Some(user.clone())),
        };
        if let Some(owner) = owner_named
            && owner != current.owner
        {
            return Err(FieldError::new(
                "owner",
                "cannot be changed; create a new webhook for the other owner",
            ));
        }
        let edited = WebhookEndpoint {
            id: current.id.clone(),
            name: self.name.unwrap_or_else(|| current.name.clone()),
            url: self.url.unwrap_or_else(|| current.url.clone()),
            header_name: self.header_name.apply(current.header_name.clone()),
            header_value: self.header_value.apply(current.header_value.clone()),
            secret: self.secret.apply(current.secret.clone()),
            owner: current.owner.clone(),
            format: self.format.unwrap_or(current.format),
            state: WebhookState::active(),
            created_at: current.created_at,
            // Strictly later, so anyone holding the old endpoint can tell it was edited.
            updated_at: now_ms.max(current.updated_at + 1),
            version: current.version,
        };
        check_header_pair(&edited)?;
        Ok(edited)
    }
}

/// A custom header needs both its name and its value.
fn check_header_pair(endpoint: &WebhookEndpoint) -> Result<(), FieldError> {
    match (&endpoint.header_name, &endpoint.header_value) {
        (Some(_), None) => Err(FieldError::new(
            "header_value",
            "is required when header_name is set",
        )),
        (None, Some(_)) => Err(FieldError::new(
            "header_name",
            "is required when header_value is set",
        )),
        _ => Ok(()),
    }
}

/// A string field: left out, `null`/empty, or a value.
fn optional(object: &Map<String, Value>, field: &str) -> Result<Change<String>, FieldError> {
    match object.get(field) {
        None => Ok(Change::Keep),
        Some(Value::Null) => Ok(Change::Clear),
        Some(Value::String(s)) if s.is_empty() => Ok(Change::Clear),
        Some(Value::String(s)) => Ok(Change::Set(s.clone())),
        Some(other) => Err(FieldError::new(
            field,
            format!("expected a string, got {}", json_type_name(other)),
        )),
    }
}

fn has_line_break_or_nul(s: &str) -> bool {
    s.contains(['\r', '\n', '\0'])
}

fn validate_name(name: &str) -> Result<String, FieldError> {
    let name = name.trim();
    let count = name.chars().count();
    if count == 0 || count > MAX_NAME {
        return Err(FieldError::new(
            "name",
            format!("must be 1 to {MAX_NAME} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(FieldError::new(
            "name",
            "must be one line without control characters",
        ));
    }
    Ok(name.to_owned())
}

fn validate_url(url: &str) -> Result<String, FieldError> {
    let url = url.trim();
    if url.len() > MAX_URL {
        return Err(FieldError::new(
            "url",
            format!("must be at most {MAX_URL} characters"),
        ));
    }
    if url.chars().any(char::is_control) {
        return Err(FieldError::new(
            "url",
            "must not contain control characters",
        ));
    }
    let parsed = url::Url::parse(url).map_err(|_| FieldError::new("url", "is not a valid URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(FieldError::new("url", "must use http or https"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(FieldError::new("url", "must name a host"));
    }
    Ok(url.to_owned())
}

/// An RFC 7230 `token` character.
fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

fn validate_header_name(name: &str) -> Result<String, FieldError> {
    if has_line_break_or_nul(name) {
        return Err(FieldError::new(
            "header_name",
            "must not contain CR, LF or NUL",
        ));
    }
    if name.len() > MAX_HEADER_NAME || !name.chars().all(is_tchar) {
        return Err(FieldError::new(
            "header_name",
            format!(
                "must be an HTTP header name (1 to {MAX_HEADER_NAME} letters, digits or !#$%&'*+-.^_`|~)"
            ),
        ));
    }
    let lower = name.to_ascii_lowercase();
    if RESERVED_HEADERS.contains(&lower.as_str()) || lower.starts_with(RESERVED_HEADER_PREFIX) {
        return Err(FieldError::new(
            "header_name",
            "is a header Herald sets itself; choose another name",
        ));
    }
    Ok(name.to_owned())
}

fn validate_header_value(value: &str) -> Result<String, FieldError> {
    if has_line_break_or_nul(value) {
        return Err(FieldError::new(
            "header_value",
            "must not contain CR, LF or NUL",
        ));
    }
    if value.chars().count() > MAX_HEADER_VALUE {
        return Err(FieldError::new(
            "header_value",
            format!("must be at most {MAX_HEADER_VALUE} characters"),
        ));
    }
    if !value.chars().all(|c| c == '\t' || (' '..='~').contains(&c)) {
        return Err(FieldError::new(
            "header_value",
            "must be printable ASCII (tabs allowed)",
        ));
    }
    Ok(value.to_owned())
}

fn validate_secret(secret: &str) -> Result<(), FieldError> {
    let problem = || {
        FieldError::new(
            "secret",
            format!(
                "must be {SECRET_PREFIX} followed by base64 of {} to {} random bytes",
                SECRET_BYTES.start(),
                SECRET_BYTES.end()
            ),
        )
    };
    let key = signing_key(secret).ok_or_else(problem)?;
    if SECRET_BYTES.contains(&key.len()) {
        Ok(())
    } else {
        Err(problem())
    }
}

/// The HMAC key of a `whsec_` secret, or `None` when it is not one.
fn signing_key(secret: &str) -> Option<Vec<u8>> {
    STANDARD.decode(secret.strip_prefix(SECRET_PREFIX)?).ok()
}

/// HMAC-SHA256 (RFC 2104).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(message);
    let inner = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner);
    outer.finalize().into()
}

/// The Standard Webhooks signature header value of a message: `v1,` and the base64 of
/// HMAC-SHA256 over `"{id}.{timestamp}.{body}"`, keyed with the decoded secret. `None` when
/// the secret is not a `whsec_` secret (validation refuses those).
pub fn sign(secret: &Secret, message_id: &str, timestamp: u64, body: &[u8]) -> Option<String> {
    let key = signing_key(secret.expose())?;
    let mut signed = Vec::with_capacity(message_id.len() + body.len() + 24);
    signed.extend_from_slice(message_id.as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(timestamp.to_string().as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(body);
    Some(format!(
        "v1,{}",
        STANDARD.encode(hmac_sha256(&key, &signed))
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_credentials_or_a_query_then_the_shown_url_hides_them_and_a_plain_one_is_kept() {
        for (url, shown) in [
            (
                "https://siem.example.com/hooks/herald",
                "https://siem.example.com/hooks/herald",
            ),
            (
                "https://user:pa55@siem.example.com/h",
                "https://user:***@siem.example.com/h",
            ),
            (
                "https://tok3n@siem.example.com/h",
                "https://***@siem.example.com/h",
            ),
            (
                "https://:pa55@siem.example.com/h",
                "https://***:***@siem.example.com/h",
            ),
            (
                "https://prod.westeurope.logic.azure.com/workflows/1/triggers/manual/paths/invoke?api-version=2016-06-01&sig=s3cr3t",
                "https://prod.westeurope.logic.azure.com/workflows/1/triggers/manual/paths/invoke?api-version=***&sig=***",
            ),
            (
                "https://siem.example.com/h?s3cr3t",
                "https://siem.example.com/h?***",
            ),
            (
                "https://siem.example.com/h?a=1&=x&b",
                "https://siem.example.com/h?a=***&***&***",
            ),
            (
                "https://hooks.slack.com/services/T0/B0/s3cr3t",
                "https://hooks.slack.com/services/***",
            ),
            (
                "https://discord.com/api/webhooks/1/s3cr3t",
                "https://discord.com/api/webhooks/***",
            ),
            (
                "https://acme.webhook.office.com/webhookb2/a@b/IncomingWebhook/c/d",
                "https://acme.webhook.office.com/webhookb2/***",
            ),
            (
                "https://siem.example.com/h#s3cr3t",
                "https://siem.example.com/h#***",
            ),
            ("not a url", "not a url"),
        ] {
            assert_eq!(redacted_url(url), shown, "{url}");
        }
    }
    use serde_json::json;

    const MIN: u64 = 60_000;
    const HOUR: u64 = 3_600_000;
    const T0: u64 = 1_800_000_000_000;

    fn state(status: WebhookStatus, first: Option<u64>, last: Option<u64>) -> WebhookState {
        WebhookState {
            status,
            first_error: first,
            last_error: last,
            note: last.map(|_| "earlier".to_owned()),
        }
    }

    fn temporary() -> WebhookOutcome {
        WebhookOutcome::Temporary {
            reason: "HTTP 503".into(),
        }
    }

    #[test]
    fn given_the_published_standard_webhooks_vector_then_the_signature_matches() {
        let secret = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let signature = sign(
            &secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(
            signature.as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
    }

    #[test]
    fn given_rfc_4231_vectors_then_hmac_sha256_matches() {
        let hex = |bytes: [u8; 32]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(
            hex(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block is hashed first.
        assert_eq!(
            hex(hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn given_an_active_endpoint_when_a_temporary_error_comes_then_it_rests() {
        let next = WebhookState::active().after(&temporary(), T0);
        assert_eq!(
            next,
            state(WebhookStatus::InactiveTmp, Some(T0), Some(T0)).with_note("HTTP 503")
        );
    }

    impl WebhookState {
        fn with_note(mut self, note: &str) -> Self {
            self.note = Some(note.to_owned());
            self
        }
    }

    #[test]
    fn given_errors_lasting_exactly_24_hours_then_still_temporary_and_just_over_then_permanent() {
        let recovering = state(WebhookStatus::ActiveTmp, Some(T0), Some(T0 + HOUR));
        let at_limit = recovering.after(&temporary(), T0 + 24 * HOUR);
        assert_eq!(at_limit.status, WebhookStatus::InactiveTmp);
        assert_eq!(at_limit.first_error, Some(T0));
        assert_eq!(at_limit.last_error, Some(T0 + 24 * HOUR));
        let over = recovering.after(&temporary(), T0 + 24 * HOUR + 1);
        assert_eq!(over.status, WebhookStatus::InactivePermanent);
    }

    #[test]
    fn given_a_permanent_error_then_the_endpoint_is_deactivated_for_good() {
        let next = WebhookState::active().after(
            &WebhookOutcome::Permanent {
                reason: "HTTP 404".into(),
            },
            T0,
        );
        assert_eq!(next.status, WebhookStatus::InactivePermanent);
        assert_eq!(next.note.as_deref(), Some("HTTP 404"));
        assert_eq!(next.first_error, Some(T0));
    }

    #[test]
    fn given_a_success_then_active_tmp_stays_and_inactive_tmp_recovers_and_permanent_stays() {
        let recovering = state(WebhookStatus::ActiveTmp, Some(T0), Some(T0));
        assert_eq!(
            recovering.after(&WebhookOutcome::Delivered, T0 + MIN),
            recovering
        );
        let resting = state(WebhookStatus::InactiveTmp, Some(T0), Some(T0));
        assert_eq!(
            resting.after(&WebhookOutcome::Delivered, T0 + 1).status,
            WebhookStatus::ActiveTmp
        );
        let dead = state(WebhookStatus::InactivePermanent, Some(T0), Some(T0));
        assert_eq!(dead.after(&WebhookOutcome::Delivered, T0 + 1), dead);
        assert_eq!(
            WebhookState::active().after(&WebhookOutcome::Delivered, T0),
            WebhookState::active()
        );
    }

    #[test]
    fn given_a_resting_endpoint_then_it_is_tried_again_after_exactly_60_seconds() {
        let resting = state(WebhookStatus::InactiveTmp, Some(T0), Some(T0));
        assert_eq!(resting.recovered(T0 + MIN - 1), None);
        let again = resting.recovered(T0 + MIN);
        assert_eq!(
            again.map(|s| (s.status, s.first_error)),
            Some((WebhookStatus::ActiveTmp, Some(T0)))
        );
    }

    #[test]
    fn given_a_recovering_endpoint_then_it_is_active_after_24_quiet_hours_with_errors_cleared() {
        let recovering = state(WebhookStatus::ActiveTmp, Some(T0), Some(T0 + HOUR));
        assert_eq!(recovering.recovered(T0 + 25 * HOUR - 1), None);
        assert_eq!(
            recovering.recovered(T0 + 25 * HOUR),
            Some(WebhookState::active())
        );
        assert_eq!(WebhookState::active().recovered(T0), None);
        let dead = state(WebhookStatus::InactivePermanent, Some(T0), Some(T0));
        assert_eq!(dead.recovered(T0 + 48 * HOUR), None);
    }

    fn request(body: Value) -> Result<WebhookRequest, FieldError> {
        WebhookRequest::from_request(&body)
    }

    fn field_of(body: Value) -> String {
        match request(body) {
            Ok(r) => match r.create(WebhookId::from_random([1; 8]), None, T0) {
                Ok(_) => String::new(),
                Err(e) => e.field,
            },
            Err(e) => e.field,
        }
    }

    #[test]
    fn given_bad_fields_then_the_error_names_them() {
        let ok = json!({"name": "Ops", "url": "https://hooks.example.com/x"});
        assert_eq!(field_of(ok.clone()), "");
        let with = |key: &str, value: Value| {
            let mut body = ok.clone();
            body[key] = value;
            body
        };
        assert_eq!(field_of(with("name", json!("x".repeat(101)))), "name");
        assert_eq!(field_of(with("name", json!(""))), "name");
        assert_eq!(field_of(json!({"url": "https://a.example"})), "name");
        assert_eq!(field_of(with("url", json!("ftp://a.example/x"))), "url");
        assert_eq!(field_of(with("url", json!("not a url"))), "url");
        assert_eq!(field_of(with("url", json!(7))), "url");
        assert_eq!(field_of(with("unknown", json!(1))), "unknown");
        // An empty key is named `""`: an empty field would mean the whole body.
        assert_eq!(field_of(with("", json!(1))), "\"\"");
        assert_eq!(field_of(with("owner", json!("no spaces please"))), "owner");
    }

    #[test]
    fn given_header_injection_attempts_then_they_are_refused_naming_the_field() {
        let base = json!({"name": "Ops", "url": "https://hooks.example.com/x"});
        let with = |name: &str, value: &str| {
            let mut body = base.clone();
            body["header_name"] = json!(name);
            body["header_value"] = json!(value);
            body
        };
        assert_eq!(field_of(with("X-Token", "abc")), "");
        assert_eq!(field_of(with("X-Token\r\nEvil", "abc")), "header_name");
        assert_eq!(
            field_of(with("X-Token", "abc\r\nX-Evil: 1")),
            "header_value"
        );
        assert_eq!(field_of(with("X-Token", "abc\nX-Evil: 1")), "header_value");
        assert_eq!(field_of(with("X-Token", "abc\0")), "header_value");
        assert_eq!(field_of(with("X Token", "abc")), "header_name");
        assert_eq!(
            field_of(with("X-Token", &"a".repeat(1_001))),
            "header_value"
        );
        assert_eq!(field_of(with("X-Token", &"a".repeat(1_000))), "");
        for reserved in [
            "Content-Type",
            "host",
            "Content-Length",
            "webhook-signature",
            "Webhook-Id",
            "webhook-timestamp",
            "X-Herald-Event",
        ] {
            assert_eq!(field_of(with(reserved, "v")), "header_name", "{reserved}");
        }
        let mut only_name = base.clone();
        only_name["header_name"] = json!("X-Token");
        assert_eq!(field_of(only_name), "header_value");
    }

    #[test]
    fn given_secrets_then_only_whsec_base64_of_24_to_64_bytes_is_accepted() {
        let with =
            |secret: String| json!({"name": "Ops", "url": "https://h.example/x", "secret": secret});
        let b64 = |n: usize| format!("whsec_{}", STANDARD.encode(vec![7u8; n]));
        assert_eq!(field_of(with(b64(24))), "");
        assert_eq!(field_of(with(b64(64))), "");
        assert_eq!(field_of(with(b64(23))), "secret");
        assert_eq!(field_of(with(b64(65))), "secret");
        assert_eq!(field_of(with(STANDARD.encode([7u8; 32]))), "secret");
        assert_eq!(field_of(with("whsec_not base64!".into())), "secret");
    }

    #[test]
    fn given_an_edit_then_named_fields_change_secrets_are_kept_unless_cleared_and_state_resets() {
        let created = request(json!({"name": "Ops", "url": "https://h.example/x",
            "header_name": "X-Token", "header_value": "tok", "secret": format!("whsec_{}", STANDARD.encode([1u8; 32]))}))
        .and_then(|r| r.create(WebhookId::from_random([2; 8]), None, T0))
        .unwrap_or_else(|e| panic!("{e}"));
        let failing = WebhookEndpoint {
            state: state(WebhookStatus::InactivePermanent, Some(T0), Some(T0)),
            version: 4,
            ..created
        };
        let renamed = request(json!({"name": "Ops 2"}))
            .and_then(|r| r.edit(&failing, T0 + 5))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(renamed.name, "Ops 2");
        assert_eq!(renamed.header_value, failing.header_value);
        assert_eq!(renamed.secret, failing.secret);
        assert_eq!(renamed.state, WebhookState::active());
        assert_eq!(renamed.updated_at, T0 + 5);
        let cleared = request(json!({"secret": null, "header_name": null, "header_value": null}))
            .and_then(|r| r.edit(&failing, T0 + 5))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(cleared.secret.is_none() && cleared.header_value.is_none());
        assert!(cleared.header_name.is_none());
        let moved = request(json!({"owner": "mallory"})).and_then(|r| r.edit(&failing, T0));
        assert_eq!(moved.map_err(|e| e.field), Err("owner".to_owned()));
    }

    #[test]
    fn given_an_endpoint_then_the_stored_form_round_trips_and_debug_hides_secrets() {
        let endpoint = request(json!({"name": "Ops", "url": "https://h.example/x?token=abc",
            "header_name": "X-Token", "header_value": "tok-value", "secret": format!("whsec_{}", STANDARD.encode([1u8; 32]))}))
        .and_then(|r| r.create(WebhookId::from_random([3; 8]), Some(Username("alice".into())), T0))
        .unwrap_or_else(|e| panic!("{e}"));
        let back = WebhookEndpoint::from_stored(&endpoint.to_stored(), 9)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            back,
            WebhookEndpoint {
                version: 9,
                ..endpoint.clone()
            }
        );
        let debug = format!("{endpoint:?}");
        assert!(
            !debug.contains("tok-value")
                && !debug.contains("whsec_")
                && !debug.contains("token=abc")
        );
        assert_eq!(endpoint.id.as_str(), "wh_0303030303030303");
    }
}
