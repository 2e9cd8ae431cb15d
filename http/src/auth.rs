//! Who is calling: the bearer token's `sub` (a username) and `role`.
//!
//! On Lambda, API Gateway's JWT authorizer has already verified the token; Herald reads the
//! claims it passes in the request context. Locally (`herald-local`) Herald verifies HS256
//! tokens itself with `HERALD_JWT_SECRET`, refusing `alg: none` and every other algorithm.

use crate::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use lambda_http::request::RequestContext;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything.
    Admin,
    /// The platform feeding Herald: events and the directory.
    Service,
    /// A person: their own settings and alerts.
    User,
}

impl Role {
    /// Parses a role claim.
    pub fn parse(value: &str) -> Option<Role> {
        match value {
            "admin" => Some(Role::Admin),
            "service" => Some(Role::Service),
            "user" => Some(Role::User),
            _ => None,
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's `sub`: a username for `user` callers.
    pub subject: String,
    pub role: Role,
    /// The token's `exp` (seconds since the epoch), when known: a response that outlives the
    /// request (the live bell's stream) ends then.
    pub expires_at: Option<u64>,
}

impl Caller {
    /// Admins only.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self.role {
            Role::Admin => Ok(()),
            _ => Err(forbidden("administrators only")),
        }
    }

    /// The platform or an admin.
    pub fn require_service_or_admin(&self) -> Result<(), ApiError> {
        match self.role {
            Role::Admin | Role::Service => Ok(()),
            Role::User => Err(forbidden(
                "the platform's service account or administrators only",
            )),
        }
    }

    /// The user named, acting for themself, or an admin.
    pub fn require_self_or_admin(&self, username: &str) -> Result<(), ApiError> {
        if self.role == Role::Admin || self.is_self(username) {
            Ok(())
        } else {
            Err(forbidden("only this user or an administrator may do this"))
        }
    }

    /// Whether the caller is the `user` named.
    pub fn is_self(&self, username: &str) -> bool {
        self.role == Role::User && self.subject == username
    }
}

fn forbidden(why: &str) -> ApiError {
    ApiError::Forbidden(format!("forbidden: {why}"))
}

/// The claims Herald reads from a token.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Expiry, seconds since the epoch (required).
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
}

/// How the API learns who is calling.
#[derive(Clone)]
pub enum Authenticator {
    /// Verify HS256 bearer tokens with a shared secret (`herald-local`).
    Hs256(Arc<Hs256Keys>),
    /// Trust the claims of API Gateway's JWT authorizer; `role_claim` names the claim that
    /// carries the role (default `role`).
    ApiGatewayClaims { role_claim: String },
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Authenticator::Hs256(_) => f.write_str("Authenticator::Hs256(***)"),
            Authenticator::ApiGatewayClaims { role_claim } => {
                write!(f, "Authenticator::ApiGatewayClaims({role_claim})")
            }
        }
    }
}

/// The HS256 key pair derived from `HERALD_JWT_SECRET`.
pub struct Hs256Keys {
    decoding: DecodingKey,
    encoding: EncodingKey,
    validation: Validation,
}

/// The shortest secret accepted: HS256 wants at least 256 bits.
pub const MIN_SECRET_BYTES: usize = 32;

impl Hs256Keys {
    /// Keys for `secret`, which must be at least [`MIN_SECRET_BYTES`] long.
    pub fn new(secret: &[u8]) -> Result<Self, String> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "HERALD_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes (it is {})",
                secret.len()
            ));
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = 30;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Ok(Self {
            decoding: DecodingKey::from_secret(secret),
            encoding: EncodingKey::from_secret(secret),
            validation,
        })
    }

    /// A signed token for `sub` with `role`, valid for `ttl_seconds` from `now`.
    pub fn issue(
        &self,
        sub: &str,
        role: Role,
        now: u64,
        ttl_seconds: u64,
    ) -> Result<String, String> {
        let role = serde_json::to_value(role)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned));
        let claims = Claims {
            sub: sub.to_owned(),
            role,
            exp: now.saturating_add(ttl_seconds),
            iat: Some(now),
            nbf: None,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| format!("could not sign the token: {e}"))
    }

    fn verify(&self, token: &str) -> Result<Caller, ApiError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                let why = match e.kind() {
                    ErrorKind::ExpiredSignature => "the token has expired",
                    ErrorKind::ImmatureSignature => "the token is not valid yet",
                    ErrorKind::InvalidAlgorithm => "the token must be signed with HS256",
                    ErrorKind::InvalidSignature => "the token's signature does not verify",
                    ErrorKind::MissingRequiredClaim(_) => {
                        "the token lacks a required claim (sub, exp)"
                    }
                    _ => "the token is malformed",
                };
                ApiError::Unauthorized(format!("invalid token: {why}"))
            })?;
        caller_from(
            data.claims.sub,
            data.claims.role.as_deref(),
            Some(data.claims.exp),
        )
    }
}

fn caller_from(sub: String, role: Option<&str>, exp: Option<u64>) -> Result<Caller, ApiError> {
    if sub.is_empty() {
        return Err(ApiError::Unauthorized("invalid token: empty sub".into()));
    }
    let role = role.and_then(Role::parse).ok_or_else(|| {
        ApiError::Unauthorized(
            "invalid token: the role claim must be admin, service or user".into(),
        )
    })?;
    Ok(Caller {
        subject: sub,
        role,
        expires_at: exp,
    })
}

impl Authenticator {
    /// Identifies the caller of a request.
    pub fn authenticate(&self, parts: &Parts) -> Result<Caller, ApiError> {
        match self {
            Authenticator::Hs256(keys) => {
                let header = parts
                    .headers
                    .get(axum::http::header::AUTHORIZATION)
                    .ok_or_else(|| ApiError::Unauthorized("missing bearer token".into()))?;
                let value = header
                    .to_str()
                    .map_err(|_| ApiError::Unauthorized("malformed Authorization header".into()))?;
                let token = value
                    .strip_prefix("Bearer ")
                    .or_else(|| value.strip_prefix("bearer "))
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| {
                        ApiError::Unauthorized(
                            "the Authorization header must be `Bearer <token>`".into(),
                        )
                    })?;
                keys.verify(token)
            }
            Authenticator::ApiGatewayClaims { role_claim } => {
                let claims = match parts.extensions.get::<RequestContext>() {
                    Some(RequestContext::ApiGatewayV2(ctx)) => ctx
                        .authorizer
                        .as_ref()
                        .and_then(|a| a.jwt.as_ref())
                        .map(|jwt| &jwt.claims),
                    _ => None,
                };
                let claims = claims.ok_or_else(|| {
                    ApiError::Unauthorized("missing bearer token (no JWT authorizer claims)".into())
                })?;
                let sub = claims.get("sub").cloned().unwrap_or_default();
                // API Gateway hands the claims over as strings; it has checked `exp` already.
                let exp = claims.get("exp").and_then(|e| e.parse().ok());
                caller_from(sub, claims.get(role_claim).map(String::as_str), exp)
            }
        }
    }
}

impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync + AsRef<Authenticator>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = state.as_ref().authenticate(parts)?;
        tracing::Span::current().record("caller", caller.subject.as_str());
        Ok(caller)
    }
}
