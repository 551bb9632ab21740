//! Token verification.

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde_json::Value;

use crate::config::AuthConfig;

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: String,
    pub admin: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("the Authorization header is not a bearer token")]
    NotBearer,
    #[error("token rejected: {0}")]
    Invalid(String),
}

/// Verifies bearer tokens against the configured key and claims.
pub struct Authenticator {
    key: DecodingKey,
    validation: Validation,
    role_claim: String,
    admin_role: String,
}

impl Authenticator {
    pub fn new(config: &AuthConfig) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = config.leeway_s;
        validation.validate_exp = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        if let Some(issuer) = &config.issuer {
            validation.set_issuer(&[issuer]);
        }
        match &config.audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        Self {
            key: DecodingKey::from_secret(config.hs256_secret.as_bytes()),
            validation,
            role_claim: config.role_claim.clone(),
            admin_role: config.admin_role.clone(),
        }
    }

    /// Verifies a raw token (without the `Bearer ` prefix).
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        // Checked before decoding so the reason is precise; `decode` would
        // refuse a foreign algorithm too.
        let header = decode_header(token).map_err(|e| AuthError::Invalid(e.to_string()))?;
        if header.alg != Algorithm::HS256 {
            return Err(AuthError::Invalid(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let data = decode::<serde_json::Map<String, Value>>(token, &self.key, &self.validation)
            .map_err(|e| AuthError::Invalid(e.to_string()))?;
        let claims = data.claims;
        let user_id = match claims.get("sub") {
            Some(Value::String(sub)) if !sub.trim().is_empty() && sub.len() <= 255 => sub.clone(),
            _ => {
                return Err(AuthError::Invalid(
                    "sub must be a non-empty string".to_owned(),
                ));
            }
        };
        let admin = match claims.get(&self.role_claim) {
            Some(Value::String(role)) => *role == self.admin_role,
            Some(Value::Array(roles)) => roles.iter().any(|r| r.as_str() == Some(&self.admin_role)),
            _ => false,
        };
        Ok(Principal { user_id, admin })
    }

    /// Verifies an `Authorization` header value.
    pub fn verify_header(&self, value: Option<&str>) -> Result<Principal, AuthError> {
        let value = value.ok_or(AuthError::Missing)?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or(AuthError::NotBearer)?;
        self.verify(token.trim())
    }
}
