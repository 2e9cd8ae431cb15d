//! The minijinja helpers every channel sender's templates share, compiled with the
//! `templates` feature (which brings in minijinja).

use minijinja::Value;

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
