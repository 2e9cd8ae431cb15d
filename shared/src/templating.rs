//! The minijinja helpers every channel sender's templates share, compiled with the
//! `templates` feature (which brings in minijinja).

use minijinja::Value;

/// Every channel's template table, compiled into the binary: `(name, source)` for each
/// template in the invoking crate's `templates/` folder, one per suffix given (`".json.j2"`;
/// email's `".html.j2", ".txt.j2"`), for the layout, the macros, each event type of the
/// catalogue and the fallback `other`. The list is here once; each sender's tests check it
/// against the catalogue.
#[macro_export]
macro_rules! template_table {
    ($($suffix:literal),+ $(,)?) => {
        $crate::template_table!(@rows [] [$($suffix),+]
            "_layout" "_macros" "product_type_added" "product_added" "engagement_added"
            "test_added" "scan_added" "scan_added_empty" "jira_update" "upcoming_engagement"
            "stale_engagement" "auto_close_engagement" "close_engagement" "user_mentioned"
            "code_review" "review_requested" "other" "sla_breach" "sla_breach_combined"
            "risk_acceptance_expiration")
    };
    (@rows [$($row:tt)*] [$($suffix:literal),+]) => { &[$($row)*] };
    (@rows [$($row:tt)*] [$($suffix:literal),+] $name:literal $($rest:literal)*) => {
        $crate::template_table!(@rows [$($row)* $((
            concat!($name, $suffix),
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/", $name, $suffix)),
        ),)+] [$($suffix),+] $($rest)*)
    };
}

/// A minijinja error with its causes, on one line.
pub fn error_chain(error: &minijinja::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A template value as text: empty for `none` and undefined.
pub fn text_of(value: &Value) -> String {
    if value.is_none() || value.is_undefined() {
        String::new()
    } else if let Some(s) = value.as_str() {
        s.to_owned()
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_of_reads_none_and_undefined_as_empty_and_strings_as_themselves() {
        assert_eq!(text_of(&Value::from(())), "");
        assert_eq!(text_of(&Value::UNDEFINED), "");
        assert_eq!(text_of(&Value::from("a <b>")), "a <b>");
        assert_eq!(text_of(&Value::from(42)), "42");
    }

    #[test]
    fn error_chain_is_the_error_then_its_causes() {
        let cause = std::io::Error::other("disk full");
        let error = minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, "cannot render")
            .with_source(cause);
        let text = error_chain(&error);
        assert!(text.ends_with(": disk full"), "{text}");
    }
}
