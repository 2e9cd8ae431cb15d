//! Configuration read from the environment, failing fast with the variable's name.

/// A missing or malformed environment variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The variable is required and not set.
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    /// The variable is set to something unusable.
    #[error("environment variable {name}: {problem}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// What is wrong with its value.
        problem: String,
    },
}

/// A required, non-empty variable.
pub fn required(name: &'static str) -> Result<String, ConfigError> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(ConfigError::Missing(name)),
    }
}

/// An optional variable with a default.
pub fn optional(name: &'static str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// The settings every function on AWS shares.
#[derive(Debug, Clone)]
pub struct AwsFunctionConfig {
    /// The DynamoDB table (`HERALD_TABLE_NAME`).
    pub table_name: String,
    /// The JWT claim carrying the caller's role (`HERALD_ROLE_CLAIM`, default `role`).
    pub role_claim: String,
}

impl AwsFunctionConfig {
    /// Reads the configuration; names the first missing variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            table_name: required("HERALD_TABLE_NAME")?,
            role_claim: optional("HERALD_ROLE_CLAIM", "role"),
        })
    }
}
