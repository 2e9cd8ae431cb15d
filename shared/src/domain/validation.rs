//! Validation errors that name the offending field.

use std::fmt;

/// A request value that failed validation: `field` is a JSON path such as
/// `events.scan_added[1]` or `product_type_id`, so a client knows exactly what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Where the problem is, as a dotted JSON path (empty for the whole body).
    pub field: String,
    /// What is wrong, in a sentence a person can act on.
    pub message: String,
}

impl FieldError {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for FieldError {}

/// The JSON type of a value, for messages such as "expected an array, got a string".
pub fn json_type_name(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// The body as a JSON object, or an error naming the body.
pub fn expect_object<'a>(
    value: &'a serde_json::Value,
    field: &str,
) -> Result<&'a serde_json::Map<String, serde_json::Value>, FieldError> {
    value.as_object().ok_or_else(|| {
        FieldError::new(
            field,
            format!("expected an object, got {}", json_type_name(value)),
        )
    })
}

/// Refuses any key of `object` not in `allowed`, naming it.
pub fn reject_unknown_fields(
    object: &serde_json::Map<String, serde_json::Value>,
    prefix: &str,
    allowed: &[&str],
) -> Result<(), FieldError> {
    for key in object.keys() {
        if !allowed.contains(&key.as_str()) {
            return Err(FieldError::new(
                join_path(prefix, key),
                format!("unknown field; expected one of: {}", allowed.join(", ")),
            ));
        }
    }
    Ok(())
}

/// `prefix.key`, or `key` at the top level. An empty key is written `""`, so that it is never
/// taken for the whole body (the empty path).
pub fn join_path(prefix: &str, key: &str) -> String {
    let key = if key.is_empty() { "\"\"" } else { key };
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}
