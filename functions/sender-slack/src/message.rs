//! Slack messages rendered from templates compiled into the binary.
//!
//! Each event type of the catalogue has its own template, `templates/<event_type>.json.j2`;
//! any other event name uses `templates/other.json.j2`. They all extend
//! `templates/_layout.json.j2` and render `{"text": ..., "blocks": [...]}`: the plain-text
//! fallback Slack shows in notifications, and the Block Kit blocks. They see exactly
//! [`herald_shared::domain::message::template_context`], the context every channel uses.
//!
//! Templates build JSON, so every value is inserted with minijinja's `tojson` filter (there is
//! no auto-escaping). Text shown as Slack `mrkdwn` also goes through the `mrkdwn` filter or
//! the `link` / `ref` / `field` helpers, which escape `&`, `<` and `>` as Slack requires: an
//! event title cannot ping `<!channel>` or forge a link. The helpers keep every text within
//! Block Kit's limits (3,000 characters per section, 2,000 per field), so a long description
//! is cut, never refused by Slack.

use herald_shared::domain::message::template_context;
use herald_shared::domain::{Event, EventType, SystemSettings};
use herald_shared::templating::{error_chain, text_of};
use minijinja::{AutoEscape, Environment, State, UndefinedBehavior, Value};
use serde::Serialize;

/// The template of event names without their own.
pub const FALLBACK_TEMPLATE: &str = "other.json.j2";

/// Every template, by name: compiled into the binary.
pub const TEMPLATES: &[(&str, &str)] = herald_shared::template_table!(".json.j2");

/// Block Kit's limit on a section's text.
pub const SECTION_TEXT_LIMIT: usize = 3_000;
/// Block Kit's limit on one section field.
pub const FIELD_TEXT_LIMIT: usize = 2_000;
/// Block Kit's limit on the blocks of one message.
pub const MAX_BLOCKS: usize = 50;
/// Longest fallback `text` sent (Slack truncates at 40,000; notifications show far less).
pub const FALLBACK_TEXT_LIMIT: usize = 3_000;

/// What `chat.postMessage` gets besides the channel.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlackMessage {
    /// The plain-text fallback (notifications, screen readers).
    pub text: String,
    /// Block Kit blocks.
    pub blocks: Vec<serde_json::Value>,
}

/// Why a message could not be rendered. Never worth retrying: the same event renders the same.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The template failed (a bug in it, or data it cannot handle).
    #[error("the Slack template {template} failed: {detail}")]
    Template {
        template: &'static str,
        detail: String,
    },
    /// The template rendered something that is not the JSON `{"text", "blocks"}` Slack needs.
    #[error("the Slack template {template} rendered invalid JSON: {detail}")]
    InvalidJson {
        template: &'static str,
        detail: String,
    },
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
        // JSON is built by hand with `tojson`; no implicit escaping to reason about.
        env.set_auto_escape_callback(|_| AutoEscape::None);
        // Optional event fields (`event.engagement.lead` with no engagement) read as empty.
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        env.add_filter("mrkdwn", mrkdwn_filter);
        env.add_filter("oneline", oneline);
        env.add_filter("fit", fit);
        env.add_filter("quote", quote);
        env.add_function("link", link);
        env.add_function("ref", reference);
        env.add_function("field", field);
        env.add_function("severity", severity);
        for (name, source) in TEMPLATES {
            env.add_template(name, source)?;
        }
        Ok(Self { env })
    }

    /// The template that renders events called `event_type`.
    pub fn template_name(event_type: &str) -> &'static str {
        let Some(own) = EventType::from_name(event_type) else {
            return FALLBACK_TEMPLATE;
        };
        TEMPLATES
            .iter()
            .map(|(name, _)| *name)
            .find(|name| name.strip_suffix(".json.j2") == Some(own.name()))
            .unwrap_or(FALLBACK_TEMPLATE)
    }

    /// Renders the Slack message for `event`.
    pub fn render(
        &self,
        event: &Event,
        system: &SystemSettings,
    ) -> Result<SlackMessage, RenderError> {
        let template = Self::template_name(&event.event_type);
        let failed = |e: minijinja::Error| RenderError::Template {
            template,
            detail: error_chain(&e),
        };
        let context = Value::from_serialize(template_context(event, system));
        let rendered = self
            .env
            .get_template(template)
            .and_then(|t| t.render(context))
            .map_err(failed)?;
        parse_message(template, &rendered)
    }
}

/// Checks what a template rendered: `{"text": non-empty string, "blocks": [1 to 50 objects]}`.
fn parse_message(template: &'static str, rendered: &str) -> Result<SlackMessage, RenderError> {
    let invalid = |detail: String| RenderError::InvalidJson { template, detail };
    let value: serde_json::Value =
        serde_json::from_str(rendered).map_err(|e| invalid(e.to_string()))?;
    let text = value
        .get("text")
        .and_then(serde_json::Value::as_str)
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| invalid("`text` must be a non-empty string".into()))?;
    let blocks = value
        .get("blocks")
        .and_then(serde_json::Value::as_array)
        .filter(|b| !b.is_empty() && b.len() <= MAX_BLOCKS && b.iter().all(|b| b.is_object()))
        .ok_or_else(|| invalid(format!("`blocks` must be 1 to {MAX_BLOCKS} objects")))?;
    Ok(SlackMessage {
        text: text.to_owned(),
        blocks: blocks.clone(),
    })
}

/// Escapes `text` for Slack `mrkdwn` (`&`, `<`, `>`), cut so that the escaped text has at
/// most `limit` characters (the cut ends with `…`).
pub fn mrkdwn(text: &str, limit: usize) -> String {
    let escaped_len = |c: char| match c {
        '&' => 5,
        '<' | '>' => 4,
        _ => 1,
    };
    let total: usize = text.chars().map(escaped_len).sum();
    let budget = if total > limit {
        limit.saturating_sub(1)
    } else {
        limit
    };
    let mut out = String::with_capacity(text.len().min(budget * 5));
    let mut used = 0;
    for c in text.chars() {
        let len = escaped_len(c);
        if used + len > budget {
            break;
        }
        used += len;
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    if total > limit {
        out.push('…');
    }
    out
}

/// `value|mrkdwn(limit=3000)`: escaped text.
fn mrkdwn_filter(value: Value, limit: Option<usize>) -> String {
    mrkdwn(&text_of(&value), limit.unwrap_or(SECTION_TEXT_LIMIT))
}

/// `value|oneline`: line breaks and tabs become spaces (for list items and fields).
fn oneline(value: Value) -> String {
    text_of(&value)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// `value|quote(limit=3000)`: escaped text as a Slack block quote (`>` before each line), at
/// most `limit` characters.
fn quote(value: Value, limit: Option<usize>) -> String {
    let limit = limit.unwrap_or(SECTION_TEXT_LIMIT);
    let text = text_of(&value);
    let lines: Vec<&str> = text.lines().collect();
    // Each line costs two characters of marker.
    let escaped = mrkdwn(&lines.join("\n"), limit.saturating_sub(2 * lines.len()));
    escaped
        .split('\n')
        .map(|line| format!("> {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `text|fit(limit=3000)`: whole lines of already formatted `mrkdwn` kept while they fit in
/// `limit` characters; a cut ends with a `…` line. A first line longer than the limit is cut
/// as plain text would be, which can only happen with a limit below any line this crate
/// renders.
fn fit(value: Value, limit: Option<usize>) -> String {
    let limit = limit.unwrap_or(SECTION_TEXT_LIMIT);
    let text = text_of(&value);
    if text.chars().count() <= limit {
        return text;
    }
    let mut out = String::new();
    let mut used = 0;
    for line in text.split('\n') {
        let len = line.chars().count() + usize::from(!out.is_empty());
        // Room for "\n…" after the kept lines.
        if used + len + 2 > limit {
            break;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(line);
        used += len;
    }
    if out.is_empty() {
        return text
            .chars()
            .take(limit.saturating_sub(1))
            .collect::<String>()
            + "…";
    }
    out.push_str("\n…");
    out
}

/// Whether `url` can be a Slack link target.
fn is_web_url(url: &str) -> bool {
    url.starts_with("https://") || url.starts_with("http://")
}

/// `url` as a Slack link target: `&`, `<`, `>` escaped, `|` and spaces percent-encoded.
fn link_target(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    for c in url.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '|' => out.push_str("%7C"),
            ' ' => out.push_str("%20"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// An absolute URL from a template value: relative paths get `site_url` in front.
fn absolute(state: &State, url: &Value) -> Option<String> {
    let url = text_of(url);
    let url = url.trim();
    if url.starts_with('/') {
        let site = state.lookup("site_url").map(|v| text_of(&v))?;
        let site = site.trim_end_matches('/');
        return (!site.is_empty()).then(|| format!("{site}{url}"));
    }
    is_web_url(url).then(|| url.to_owned())
}

/// The fewest label characters a link leaves room for; a URL that leaves fewer is not linked.
const MIN_LINK_LABEL: usize = 20;

/// `link(url, label, limit=200)`: `<url|label>` with the label escaped, the whole at most
/// `limit` characters (the label is cut to what the URL leaves), so a long URL cannot push a
/// block past Block Kit's limits; just the label when `url` is not a web address (or a path
/// without `site_url`) or is too long to leave [`MIN_LINK_LABEL`] characters. An empty label
/// shows the URL.
fn link(state: &State, url: Value, label: Value, limit: Option<usize>) -> String {
    let limit = limit.unwrap_or(200);
    let label = oneline(label);
    let Some(url) = absolute(state, &url) else {
        return mrkdwn(&label, limit);
    };
    let shown = if label.trim().is_empty() {
        url.clone()
    } else {
        label
    };
    let target = link_target(&url);
    // `<`, `|` and `>` around the target and the label.
    let room = limit.saturating_sub(target.chars().count() + 3);
    if room < MIN_LINK_LABEL {
        return mrkdwn(&shown, limit);
    }
    format!("<{target}|{}>", mrkdwn(&shown, room))
}

/// `ref(thing)`: a product type, product, engagement, test or finding as posted (an object
/// with `name` or `title`, `id` and maybe `url`), as a link; a plain value as escaped text;
/// empty for nothing.
fn reference(state: &State, thing: Value) -> String {
    if thing.is_none() || thing.is_undefined() {
        return String::new();
    }
    if thing.as_object().is_none() || thing.as_str().is_some() {
        return mrkdwn(&oneline(thing), 200);
    }
    let attr = |name: &str| thing.get_attr(name).ok().filter(|v| !text_of(v).is_empty());
    let label = attr("name")
        .or_else(|| attr("title"))
        .map(oneline)
        .or_else(|| attr("id").map(|id| format!("#{}", text_of(&id))))
        .unwrap_or_default();
    link(
        state,
        attr("url").unwrap_or_default(),
        Value::from(label),
        None,
    )
}

/// `field(label, mrkdwn_value)`: `*label*` over the value, for a section's `fields`; empty
/// when the value is.
fn field(label: Value, value: Value) -> String {
    let value = text_of(&value);
    if value.trim().is_empty() {
        return String::new();
    }
    let label = mrkdwn(&oneline(label), 100);
    fit(
        Value::from(format!("*{label}*\n{value}")),
        Some(FIELD_TEXT_LIMIT),
    )
}

/// `severity(name)`: DefectDojo's severity with a coloured marker, escaped.
fn severity(value: Value) -> String {
    let name = oneline(value);
    let marker = match name.to_ascii_lowercase().as_str() {
        "critical" => ":red_circle:",
        "high" => ":large_orange_circle:",
        "medium" => ":large_yellow_circle:",
        "low" => ":large_blue_circle:",
        "info" | "informational" => ":white_circle:",
        "" => return String::new(),
        _ => ":black_circle:",
    };
    format!("{marker} {}", mrkdwn(&name, 50))
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_shared::domain::EVENT_TYPES;
    use herald_shared::domain::samples::{event, sample_event, sample_system};
    use serde_json::json;

    fn templates() -> Templates {
        Templates::new().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Renders `source` with the helpers, for the tests of the helpers alone.
    fn render_str(source: &str, context: serde_json::Value) -> String {
        templates()
            .env
            .render_str(source, context)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn every_catalogue_type_has_its_own_template_and_other_names_use_the_fallback() {
        for event_type in EVENT_TYPES {
            let name = Templates::template_name(event_type.name());
            assert_eq!(name, format!("{}.json.j2", event_type.name()));
        }
        assert_eq!(Templates::template_name("finding_added"), FALLBACK_TEMPLATE);
        assert_eq!(
            TEMPLATES.len(),
            EVENT_TYPES.len() + 2,
            "18 types, the layout, the macros"
        );
    }

    #[test]
    fn given_each_event_type_then_the_payload_matches_its_snapshot() {
        let templates = templates();
        for name in EVENT_TYPES
            .iter()
            .map(|e| e.name())
            .chain(["finding_added"])
        {
            let message = templates
                .render(&sample_event(name), &sample_system())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            insta::assert_json_snapshot!(name, message);
        }
    }

    #[test]
    fn given_long_urls_then_links_keep_blocks_within_block_kit_limits() {
        // Inputs to the `render` fuzz target: a long event URL with a title of characters that
        // escaping lengthens made the first section 4,819 characters; a long engagement URL
        // made a context element 5,036. Block Kit refuses either (over 3,000).
        let long_url = |n: usize| format!("https://a.example/{}", "b".repeat(n));
        let title_link = event(json!({"type": "scan_added", "title": "&".repeat(999),
            "url": long_url(1_900)}));
        let engagement_link = event(json!({"type": "scan_added", "title": "x",
            "engagement": {"id": 1, "name": "E", "url": long_url(5_000)}}));
        for (e, first_text) in [
            (title_link, "*<https://a.example/b"),
            (engagement_link, "*x*"),
        ] {
            let message = templates()
                .render(&e, &sample_system())
                .unwrap_or_else(|e| panic!("{e}"));
            for block in &message.blocks {
                let texts = block.pointer("/text/text").into_iter().chain(
                    block["elements"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|e| &e["text"]),
                );
                for text in texts.filter_map(|t| t.as_str()) {
                    let n = text.chars().count();
                    assert!(n <= SECTION_TEXT_LIMIT, "{n} characters: {text}");
                }
            }
            let first = message.blocks[0]
                .pointer("/text/text")
                .and_then(|t| t.as_str());
            assert!(
                first.is_some_and(|t| t.starts_with(first_text)),
                "{first:?}"
            );
        }
    }

    #[test]
    fn given_a_scan_then_at_most_ten_findings_per_kind_are_listed_with_the_rest_counted() {
        let message = templates()
            .render(&sample_event("scan_added"), &sample_system())
            .unwrap_or_else(|e| panic!("{e}"));
        let new = message
            .blocks
            .iter()
            .filter_map(|b| b.pointer("/text/text").and_then(|t| t.as_str()))
            .find(|t| t.starts_with("*New findings (12)*"))
            .unwrap_or_else(|| panic!("no new findings section"));
        assert_eq!(new.matches("\n• ").count(), 10);
        assert!(new.ends_with("_…and 2 more_"), "{new}");
        assert!(
            new.contains("<https://dojo.example.com/finding/101|SQL injection in /api/v1/search>")
        );
        assert_eq!(
            message.text,
            "AppSec notification: Created/Updated 16 findings for Shop: Q3 pentest: ZAP Scan"
        );
    }

    #[test]
    fn given_hostile_text_in_every_field_then_every_template_renders_valid_escaped_json() {
        let nasty = "\"quoted\" \\ back <!channel> <https://evil.example|click> & {{ not_a_tag }} {% raw %}\u{2028}";
        let templates = templates();
        let system = SystemSettings {
            team_name: nasty.replace('\u{2028}', ""),
            disclaimer_notifications: format!("{nasty}\nsecond line"),
            site_url: "https://dojo.example.com".into(),
            ..SystemSettings::default()
        };
        for name in EVENT_TYPES
            .iter()
            .map(|e| e.name())
            .chain(["finding_added"])
        {
            let thing = json!({"id": 1, "name": nasty, "title": nasty, "severity": nasty, "url": "/x?a=1&b=<2>|3",
                               "lead": nasty, "status": nasty, "target_start": nasty, "target_end": nasty,
                               "test_type": nasty, "environment": nasty, "sla_expiration_date": nasty});
            let body = json!({
                "type": name, "title": nasty.replace('\u{2028}', ""), "description": format!("{nasty}\nline two"),
                "url": "https://dojo.example.com/a|b>c", "engagement": thing, "test": thing, "finding": thing,
                "findings": {"new": [thing, thing], "mitigated": [thing]}, "requested_by": "bob",
                "data": {"product": thing, "product_type": nasty, "note": nasty, "kind": nasty,
                         "findings": [thing], "jira_issue": thing, "sla_age": 3,
                         "risk_acceptance": {"id": 2, "name": nasty, "accepted_findings": [thing], "expiration_date": nasty}}});
            let message = templates
                .render(&event(body), &system)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let all = serde_json::to_string(&message).unwrap_or_default();
            assert!(!all.contains("<!channel>"), "{name}: {all}");
            assert!(!all.contains("<https://evil.example"), "{name}: {all}");
            assert!(all.contains("&lt;!channel&gt;"), "{name}: {all}");
            assert!(
                all.contains("<https://dojo.example.com/a%7Cb&gt;c|"),
                "{name}: {all}"
            );
        }
    }

    #[test]
    fn given_a_very_long_description_then_the_section_is_cut_within_slacks_limit() {
        let mut body = json!({"type": "other", "title": "Long", "description": "&".repeat(20_000)});
        body["id"] = json!("long");
        let message = templates()
            .render(&event(body), &sample_system())
            .unwrap_or_else(|e| panic!("{e}"));
        let description = message.blocks[1]["text"]["text"]
            .as_str()
            .unwrap_or_default();
        assert!(description.chars().count() <= SECTION_TEXT_LIMIT);
        assert!(
            description.ends_with("&amp;…"),
            "cut between entities, never inside one"
        );
    }

    #[test]
    fn given_no_site_url_team_or_disclaimer_then_paths_are_not_links_and_blocks_are_left_out() {
        let mut body =
            json!({"type": "product_added", "title": "Product Shop added", "url": "/product/7"});
        body["id"] = json!("bare");
        let message = templates()
            .render(&event(body), &SystemSettings::default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(message.text, "Notification: Product Shop added");
        assert_eq!(
            message.blocks,
            vec![
                json!({"type": "section", "text": {"type": "mrkdwn", "text": "*Product Shop added*"}})
            ]
        );
    }

    #[test]
    fn given_mrkdwn_helpers_then_they_escape_cut_and_quote() {
        assert_eq!(mrkdwn("a & <b>", 100), "a &amp; &lt;b&gt;");
        assert_eq!(mrkdwn("abcdef", 4), "abc…");
        assert_eq!(mrkdwn("&&&", 11), "&amp;&amp;…");
        assert_eq!(
            render_str("{{ note|quote }}", json!({"note": "one > two\nthree"})),
            "> one &gt; two\n> three"
        );
        assert_eq!(
            render_str(
                "{{ text|fit(12) }}",
                json!({"text": "line one\nline two\nline three"})
            ),
            "line one\n…"
        );
        assert_eq!(
            render_str(
                "{{ link('/f/1', 'F') }}|{{ link('ftp://x', 'F') }}|{{ link('https://a.example/x', '') }}",
                json!({"site_url": "https://d.example/"})
            ),
            "<https://d.example/f/1|F>|F|<https://a.example/x|https://a.example/x>"
        );
        assert_eq!(
            render_str(
                "{{ ref(p) }}|{{ ref(none) }}|{{ ref('Plain <b>') }}",
                json!({"p": {"id": 4}})
            ),
            "#4||Plain &lt;b&gt;"
        );
        assert_eq!(
            render_str(
                "{{ link('https://a.example/x', 'Label', 45) }}|{{ link('https://a.example/x', 'Label', 40) }}",
                json!({})
            ),
            "<https://a.example/x|Label>|Label"
        );
        assert_eq!(render_str("{{ field('Lead', '') }}", json!({})), "");
        assert_eq!(
            render_str("{{ severity('High') }}", json!({})),
            ":large_orange_circle: High"
        );
    }

    #[test]
    fn given_rendered_text_that_is_not_a_message_then_the_error_says_so() {
        let err = parse_message("x.json.j2", "{\"text\": \"t\", \"blocks\": [}");
        assert!(
            matches!(err, Err(RenderError::InvalidJson { .. })),
            "{err:?}"
        );
        let err = parse_message("x.json.j2", "{\"text\": \"\", \"blocks\": [{}]}");
        assert!(
            err.as_ref()
                .is_err_and(|e| e.to_string().contains("`text` must be a non-empty string")),
            "{err:?}"
        );
        let err = parse_message("x.json.j2", "{\"text\": \"t\", \"blocks\": []}");
        assert!(err.is_err());
    }
}
