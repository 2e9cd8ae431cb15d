//! Email messages rendered from templates compiled into the binary.
//!
//! Each event type of the catalogue has two templates, `templates/<event_type>.html.j2` and
//! `templates/<event_type>.txt.j2`; any other event name uses `templates/other.*.j2`. They
//! extend `templates/_layout.html.j2` / `_layout.txt.j2` and see exactly
//! [`herald_shared::domain::message::template_context`], the context every channel uses, plus the
//! `subject`.
//!
//! HTML templates are auto-escaped (minijinja's HTML escaping, on for every `*.html.j2`):
//! an event title cannot inject markup. Links are only ever made to http(s) URLs (`href`),
//! so a `javascript:` URL in an event is shown as text, never as a link. Text templates are
//! not escaped; their output has trailing spaces trimmed and runs of blank lines collapsed.
//!
//! The subject is DefectDojo's: `{team_name} notification: {title}`, or
//! `Notification: {title}` without a team name, on one line.

use herald_shared::domain::message::template_context;
use herald_shared::domain::{Event, EventType, SystemSettings};
use herald_shared::templating::{error_chain, text_of};
use minijinja::{AutoEscape, Environment, State, UndefinedBehavior, Value};
use serde::Serialize;

/// The template of event names without their own (without its extension).
pub const FALLBACK_TEMPLATE: &str = "other";

/// Every template, by name: compiled into the binary.
pub const TEMPLATES: &[(&str, &str)] = herald_shared::template_table!(".html.j2", ".txt.j2");

/// One email's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EmailMessage {
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML body.
    pub html: String,
}

/// Why a message could not be rendered. Never worth retrying: the same event renders the same.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the email template {template} failed: {detail}")]
pub struct RenderError {
    /// The template that failed.
    pub template: String,
    /// What went wrong, with its causes.
    pub detail: String,
}

/// The compiled templates.
pub struct Templates {
    env: Environment<'static>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates").finish_non_exhaustive()
    }
}

impl Templates {
    /// Compiles every template; an error names the template and line.
    pub fn new() -> Result<Self, minijinja::Error> {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html.j2") {
                AutoEscape::Html
            } else {
                AutoEscape::None
            }
        });
        // minijinja's own HTML escaping also writes `/` as `&#x2f;`, which makes every URL
        // unreadable in the source of the mail; escaping `&<>"'` is enough in text and in
        // quoted attributes.
        env.set_formatter(|out, state, value| match value.as_str() {
            Some(text) if state.auto_escape() == AutoEscape::Html && !value.is_safe() => out
                .write_str(&escape_html(text))
                .map_err(minijinja::Error::from),
            _ => minijinja::escape_formatter(out, state, value),
        });
        // Optional event fields (`event.engagement.lead` with no engagement) read as empty.
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        env.add_filter("oneline", oneline);
        env.add_filter("quote", quote);
        env.add_function("href", href);
        for (name, source) in TEMPLATES {
            env.add_template(name, source)?;
        }
        Ok(Self { env })
    }

    /// The templates' common name for events called `event_type` (`scan_added`, or
    /// [`FALLBACK_TEMPLATE`]).
    pub fn template_name(event_type: &str) -> &'static str {
        let Some(own) = EventType::from_name(event_type) else {
            return FALLBACK_TEMPLATE;
        };
        TEMPLATES
            .iter()
            .filter_map(|(name, _)| name.strip_suffix(".html.j2"))
            .find(|name| *name == own.name())
            .unwrap_or(FALLBACK_TEMPLATE)
    }

    /// Renders the email for `event`.
    pub fn render(
        &self,
        event: &Event,
        system: &SystemSettings,
    ) -> Result<EmailMessage, RenderError> {
        let name = Self::template_name(&event.event_type);
        let subject = subject(&event.title, &system.team_name);
        let mut context = template_context(event, system);
        context["subject"] = serde_json::Value::String(subject.clone());
        let context = Value::from_serialize(&context);
        let render = |extension: &str| {
            let template = format!("{name}.{extension}.j2");
            self.env
                .get_template(&template)
                .and_then(|t| t.render(&context))
                .map(|out| tidy(&out))
                .map_err(|e| RenderError {
                    detail: error_chain(&e),
                    template,
                })
        };
        Ok(EmailMessage {
            subject,
            text: render("txt")?,
            html: render("html")?,
        })
    }
}

/// DefectDojo's subject: `{team_name} notification: {title}` (`Notification: {title}`
/// without a team name), control characters made spaces.
pub fn subject(title: &str, team_name: &str) -> String {
    let team = team_name.trim();
    let subject = if team.is_empty() {
        format!("Notification: {}", title.trim())
    } else {
        format!("{team} notification: {}", title.trim())
    };
    subject
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Rendered output with trailing spaces trimmed, at most one blank line in a row, no leading
/// or trailing blank lines, and one final newline.
fn tidy(rendered: &str) -> String {
    let mut out = String::with_capacity(rendered.len());
    let mut blank_run = 0;
    for line in rendered.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            blank_run += 1;
            continue;
        }
        if !out.is_empty() && blank_run > 0 {
            out.push('\n');
        }
        blank_run = 0;
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// `value|oneline`: line breaks, tabs and other control characters become spaces. Keeps a
/// value already marked safe (a macro's escaped HTML) safe.
fn oneline(value: Value) -> Value {
    let text: String = text_of(&value)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if value.is_safe() {
        Value::from_safe_string(text)
    } else {
        Value::from(text)
    }
}

/// `text|quote`: every line after `> ` (plain-text email quoting).
fn quote(value: Value) -> String {
    text_of(&value)
        .lines()
        .map(|line| format!("> {}", line.trim_end()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `href(url)`: `url` as an absolute http(s) URL (a path gets `site_url` in front), or `""`
/// when it is not a web address (or a path without `site_url`).
fn href(state: &State, url: Value) -> String {
    let url = text_of(&url);
    let url = url.trim();
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return String::new();
    }
    if url.starts_with('/') && !url.starts_with("//") {
        let site = state
            .lookup("site_url")
            .map(|v| text_of(&v))
            .unwrap_or_default();
        let site = site.trim().trim_end_matches('/');
        return if is_web_url(site) {
            format!("{site}{url}")
        } else {
            String::new()
        };
    }
    if is_web_url(url) {
        url.to_owned()
    } else {
        String::new()
    }
}

/// `text` with `&`, `<`, `>`, `"` and `'` escaped for HTML text and quoted attributes.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Whether `url` is an http(s) URL.
fn is_web_url(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://")
}

#[cfg(test)]
mod tests;
