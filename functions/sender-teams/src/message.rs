//! Teams messages: Adaptive Cards 1.4 rendered from templates compiled into the binary.
//!
//! Each event type of the catalogue has its own template, `templates/<event_type>.json.j2`;
//! any other event name uses `templates/other.json.j2`. They all extend
//! `templates/_layout.json.j2` and render the card's `content`: a bold title, the
//! description, a `FactSet` (the event, product type, product, engagement, test, and what
//! the event's own template adds, such as finding counts), lists of up to 10 findings per
//! kind, the disclaimer, and one `Action.OpenUrl` "View in <team>" button to the item when the
//! event has a URL. [`envelope`] wraps the card in the `message` Office connectors and Power
//! Automate Workflows both accept. They see exactly
//! [`herald_shared::domain::message::template_context`], the context every channel uses.
//!
//! Templates build JSON, so every value is inserted with minijinja's `tojson` filter (there is
//! no auto-escaping). `TextBlock`s render Teams' markdown subset, so posted text goes through
//! the `plain` filter, which drops control characters, defuses markdown links (`](`) and cuts
//! long text; links are made only by the `link` helper, to web addresses.

use herald_shared::domain::message::template_context;
use herald_shared::domain::{Event, EventType, SystemSettings};
use herald_shared::templating::{error_chain, text_of};
use minijinja::{AutoEscape, Environment, State, UndefinedBehavior, Value};
use serde_json::json;

/// The template of event names without their own.
pub const FALLBACK_TEMPLATE: &str = "other.json.j2";
/// The attachment content type of an Adaptive Card.
pub const ADAPTIVE_CARD_CONTENT_TYPE: &str = "application/vnd.microsoft.card.adaptive";

/// Every template, by name: compiled into the binary.
pub const TEMPLATES: &[(&str, &str)] = herald_shared::template_table!(".json.j2");

/// Longest text of one `TextBlock` by default (Teams refuses cards over about 28 KB).
pub const TEXT_LIMIT: usize = 3_000;

/// Why a card could not be rendered. Never worth retrying: the same event renders the same.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The template failed (a bug in it, or data it cannot handle).
    #[error("the Teams template {template} failed: {detail}")]
    Template {
        template: &'static str,
        detail: String,
    },
    /// The template rendered something that is not an Adaptive Card.
    #[error("the Teams template {template} rendered an invalid card: {detail}")]
    InvalidCard {
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
        env.add_filter("plain", plain_filter);
        env.add_filter("oneline", oneline);
        env.add_function("link", link);
        env.add_function("absolute", absolute_fn);
        env.add_function("name", name);
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

    /// Renders the Adaptive Card (the attachment's `content`) for `event`.
    pub fn render(
        &self,
        event: &Event,
        system: &SystemSettings,
    ) -> Result<serde_json::Value, RenderError> {
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
        parse_card(template, &rendered)
    }
}

/// The message Teams webhooks take: one Adaptive Card attachment.
pub fn envelope(card: serde_json::Value) -> serde_json::Value {
    json!({
        "type": "message",
        "attachments": [{
            "contentType": ADAPTIVE_CARD_CONTENT_TYPE,
            "content": card,
        }],
    })
}

/// Checks what a template rendered: an `AdaptiveCard` of version 1.4 with a non-empty body.
fn parse_card(template: &'static str, rendered: &str) -> Result<serde_json::Value, RenderError> {
    let invalid = |detail: String| RenderError::InvalidCard { template, detail };
    let card: serde_json::Value =
        serde_json::from_str(rendered).map_err(|e| invalid(e.to_string()))?;
    if card.get("type").and_then(serde_json::Value::as_str) != Some("AdaptiveCard")
        || card.get("version").and_then(serde_json::Value::as_str) != Some("1.4")
    {
        return Err(invalid("not an AdaptiveCard of version 1.4".into()));
    }
    let body_ok = card
        .get("body")
        .and_then(serde_json::Value::as_array)
        .is_some_and(|b| !b.is_empty() && b.iter().all(serde_json::Value::is_object));
    if !body_ok {
        return Err(invalid(
            "`body` must be a non-empty list of elements".into(),
        ));
    }
    Ok(card)
}

/// `text` safe to show in a `TextBlock`: control characters other than line breaks dropped,
/// markdown links defused (`](` → `] (`), at most `limit` characters (a cut ends with `…`).
pub fn plain(text: &str, limit: usize) -> String {
    let cleaned: String = text
        .replace("\r\n", "\n")
        .chars()
        .filter(|c| *c == '\n' || !c.is_control())
        .filter(|c| !matches!(c, '\u{2028}' | '\u{2029}'))
        .collect::<String>()
        .replace("](", "] (");
    if cleaned.chars().count() <= limit {
        return cleaned;
    }
    let mut cut: String = cleaned.chars().take(limit.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// `value|plain(limit=3000)`.
fn plain_filter(value: Value, limit: Option<usize>) -> String {
    plain(&text_of(&value), limit.unwrap_or(TEXT_LIMIT))
}

/// `value|oneline`: line breaks and tabs become spaces (for list items and facts).
fn oneline(value: Value) -> String {
    text_of(&value)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Whether `url` is a web address.
fn is_web_url(url: &str) -> bool {
    url.starts_with("https://") || url.starts_with("http://")
}

/// An absolute URL from a template value: relative paths get `site_url` in front.
fn absolute(state: &State, url: &Value) -> Option<String> {
    let url = text_of(url);
    let url = url.trim();
    if url.chars().any(char::is_control) {
        return None;
    }
    if url.starts_with('/') {
        let site = state.lookup("site_url").map(|v| text_of(&v))?;
        let site = site.trim_end_matches('/');
        return (is_web_url(site)).then(|| format!("{site}{url}"));
    }
    is_web_url(url).then(|| url.to_owned())
}

/// `absolute(url)`: the absolute web address, or empty (for the `Action.OpenUrl` button).
fn absolute_fn(state: &State, url: Value) -> String {
    absolute(state, &url).unwrap_or_default()
}

/// `link(url, label, limit=200)`: a markdown link `[label](url)`, or just the label when
/// `url` is not a web address. Brackets in the label and `(`, `)`, spaces in the URL are
/// neutralised so the link cannot be broken out of. An empty label shows the URL.
fn link(state: &State, url: Value, label: Value, limit: Option<usize>) -> String {
    let limit = limit.unwrap_or(200);
    let label = plain(&oneline(label), limit)
        .replace('[', "(")
        .replace(']', ")");
    let Some(url) = absolute(state, &url) else {
        return label;
    };
    let target = url
        .replace(' ', "%20")
        .replace('(', "%28")
        .replace(')', "%29");
    let shown = if label.trim().is_empty() {
        target.clone()
    } else {
        label
    };
    format!("[{shown}]({target})")
}

/// `name(thing)`: a product type, product, engagement, test or finding as posted (an object
/// with `name` or `title`, else `id`), or a plain value, as one line of text; empty for
/// nothing.
fn name(thing: Value) -> String {
    if thing.is_none() || thing.is_undefined() {
        return String::new();
    }
    if thing.as_object().is_none() || thing.as_str().is_some() {
        return plain(&oneline(thing), 200);
    }
    let attr = |name: &str| thing.get_attr(name).ok().filter(|v| !text_of(v).is_empty());
    let label = attr("name")
        .or_else(|| attr("title"))
        .map(oneline)
        .or_else(|| attr("id").map(|id| format!("#{}", text_of(&id))))
        .unwrap_or_default();
    plain(&label, 200)
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
    fn given_each_event_type_then_the_card_matches_its_snapshot() {
        let templates = templates();
        for name in EVENT_TYPES
            .iter()
            .map(|e| e.name())
            .chain(["finding_added"])
        {
            let card = templates
                .render(&sample_event(name), &sample_system())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            insta::assert_json_snapshot!(name, card);
        }
    }

    #[test]
    fn given_a_card_then_the_envelope_is_one_adaptive_card_attachment() {
        let card = templates()
            .render(&sample_event("product_added"), &sample_system())
            .unwrap_or_else(|e| panic!("{e}"));
        let message = envelope(card.clone());
        assert_eq!(message["type"], "message");
        assert_eq!(
            message["attachments"],
            json!([{"contentType": "application/vnd.microsoft.card.adaptive", "content": card}])
        );
        assert_eq!(card["version"], "1.4");
        assert_eq!(
            card["actions"],
            json!([{"type": "Action.OpenUrl", "title": "View in AppSec",
                    "url": "https://dojo.example.com/product/7"}])
        );
    }

    #[test]
    fn given_no_url_or_no_team_then_the_button_is_left_out_or_names_the_platform() {
        let templates = templates();
        let mut event = sample_event("other");
        event.url = None;
        let card = templates
            .render(&event, &sample_system())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(card.get("actions").is_none(), "{card}");
        let no_team = SystemSettings {
            team_name: String::new(),
            ..sample_system()
        };
        let card = templates
            .render(&sample_event("other"), &no_team)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(card["actions"][0]["title"], "View in the platform");
    }

    #[test]
    fn given_a_scan_then_at_most_ten_findings_per_kind_are_listed_with_the_rest_counted() {
        let card = templates()
            .render(&sample_event("scan_added"), &sample_system())
            .unwrap_or_else(|e| panic!("{e}"));
        let texts: Vec<&str> = card["body"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|b| b["text"].as_str())
            .collect();
        let new = texts
            .iter()
            .find(|t| t.starts_with("**New findings (12)**"))
            .unwrap_or_else(|| panic!("no new findings list: {texts:?}"));
        assert_eq!(new.matches("\n- ").count(), 11, "{new}");
        assert!(new.ends_with("\n- …and 2 more"), "{new}");
        assert!(
            new.contains("[SQL injection in /api/v1/search](https://dojo.example.com/finding/101)")
        );
        let facts = &card["body"][1]["facts"];
        assert_eq!(
            facts[5],
            json!({"title": "Findings", "value": "16"}),
            "{facts}"
        );
    }

    #[test]
    fn given_hostile_text_in_every_field_then_every_template_renders_a_valid_card() {
        let nasty = "\"quoted\" \\ back [click](https://evil.example) <b>x</b> & {{ not_a_tag }} {% raw %}\u{2028}\u{0007}";
        let templates = templates();
        let system = SystemSettings {
            team_name: nasty.into(),
            disclaimer_notifications: format!("{nasty}\nsecond line"),
            site_url: "https://dojo.example.com".into(),
            ..SystemSettings::default()
        };
        for name in EVENT_TYPES
            .iter()
            .map(|e| e.name())
            .chain(["finding_added"])
        {
            let thing = json!({"id": 1, "name": nasty, "title": nasty, "severity": nasty, "url": "/x?a=(1) b",
                               "lead": nasty, "status": nasty, "target_start": nasty, "target_end": nasty,
                               "test_type": nasty, "environment": nasty, "sla_expiration_date": nasty});
            let body = json!({
                "type": name, "title": nasty.replace(['\u{2028}', '\u{0007}'], ""), "description": format!("{nasty}\nline two"),
                "url": "https://dojo.example.com/a b", "engagement": thing, "test": thing, "finding": thing,
                "findings": {"new": [thing, thing], "mitigated": [thing]}, "requested_by": "bob",
                "data": {"product": thing, "product_type": nasty, "note": nasty, "kind": nasty,
                         "findings": [thing], "jira_issue": thing, "sla_age": 3,
                         "risk_acceptance": {"id": 2, "name": nasty, "accepted_findings": [thing], "expiration_date": nasty}}});
            let card = templates
                .render(&event(body), &system)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let all = card.to_string();
            assert!(!all.contains("](https://evil"), "{name}: {all}");
            assert!(!all.contains('\u{0007}'), "{name}: {all}");
            assert!(!all.contains('\u{2028}'), "{name}: {all}");
        }
    }

    #[test]
    fn given_long_text_then_plain_cuts_it_and_defuses_links() {
        assert_eq!(plain("abcdef", 4), "abc…");
        assert_eq!(plain("[a](http://x)", 100), "[a] (http://x)");
        assert_eq!(plain("a\r\nb\u{1b}c", 100), "a\nbc");
        assert_eq!(
            render_str(
                "{{ link('/f/1', 'a [b]', 50) }}",
                json!({"site_url": "https://d.example"})
            ),
            "[a (b)](https://d.example/f/1)"
        );
        assert_eq!(
            render_str("{{ link('javascript:alert(1)', 'x') }}", json!({})),
            "x"
        );
    }
}
