//! Token verification: HS256 with the shared secret, or RS256/ES256/EdDSA
//! with a key from the JWKS, chosen by the token's `alg` and `kid`.

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde_json::Value;

use crate::config::AuthConfig;
use crate::jwks::{JWKS_ALGORITHMS, JwksCache};

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: String,
    pub admin: bool,
    /// The token's `email` claim when it is a plausible address (see
    /// [`plausible_email`]); anything else is ignored, never an error.
    pub email: Option<String>,
    /// When the token stops being valid: its `exp` (Unix seconds), floored.
    /// RFC 7519 §2 lets a NumericDate have a fraction, and jsonwebtoken
    /// accepts one (10.4 `src/validation.rs`, `numeric_type`); a reader that
    /// took `exp` as an integer would see none and think it never expires.
    pub expires_at: i64,
}

/// An `email` claim worth carrying into events: a string of 3 to 320
/// characters (the contract's bounds), no whitespace or control characters,
/// one `@` with something on both sides. Not a full RFC 5322 check: the
/// mailer parses the address again before sending.
pub fn plausible_email(value: &str) -> bool {
    let fits = (3..=320).contains(&value.len())
        && !value.chars().any(|c| c.is_control() || c.is_whitespace());
    fits && matches!(value.split_once('@'), Some((local, domain))
        if !local.is_empty() && !domain.is_empty() && !domain.contains('@'))
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

/// The verified token's `exp` as whole Unix seconds. The library already
/// required it and compared it with the clock; a value it took but that is
/// no finite number is refused rather than read as "never".
fn expiry(claims: &serde_json::Map<String, Value>) -> Result<i64, AuthError> {
    let exp = claims.get("exp").and_then(Value::as_f64);
    match exp {
        // In range: the cast is exact after floor (i64 holds every whole
        // f64 below 2^63).
        Some(exp) if exp.is_finite() && exp.abs() < 9.0e18 => Ok(exp.floor() as i64),
        _ => Err(AuthError::Invalid("exp must be a number".to_owned())),
    }
}

/// Verifies bearer tokens against the configured keys and claims.
pub struct Authenticator {
    hs256: Option<DecodingKey>,
    jwks: Option<JwksCache>,
    issuer: Option<String>,
    audience: Option<String>,
    leeway_s: u64,
    role_claim: String,
    admin_role: String,
}

impl Authenticator {
    pub fn new(config: &AuthConfig) -> Self {
        Self {
            hs256: config
                .hs256_secret
                .as_ref()
                .map(|s| DecodingKey::from_secret(s.as_bytes())),
            jwks: config
                .jwks
                .as_ref()
                .map(|j| JwksCache::new(j.url.clone(), j.ttl, j.min_refresh, j.timeout)),
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            leeway_s: config.leeway_s,
            role_claim: config.role_claim.clone(),
            admin_role: config.admin_role.clone(),
        }
    }

    /// The claim checks for a token signed with `alg`.
    ///
    /// jsonwebtoken 10.4 (`src/validation.rs`, `validate`) compares `iss`
    /// and `aud` only when the token carries them: a token that omits one
    /// passes unless the claim is in `required_spec_claims`. So a configured
    /// issuer or audience is also a required claim. `nbf` is checked only
    /// with `validate_nbf` (default off), against the same leeway as `exp`.
    fn validation(&self, alg: Algorithm) -> Validation {
        let mut validation = Validation::new(alg);
        validation.leeway = self.leeway_s;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        match &self.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            // Left on without a configured audience, the library refuses
            // every token that names one.
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        validation
    }

    /// The key for a token's header: the secret for HS256, the JWKS key
    /// named by `kid` for the asymmetric algorithms; anything else (`none`
    /// included, which the header parser already refuses) is rejected.
    async fn key_for(&self, alg: Algorithm, kid: Option<&str>) -> Result<DecodingKey, AuthError> {
        let refuse = || AuthError::Invalid(format!("algorithm {alg:?} is not accepted"));
        if alg == Algorithm::HS256 {
            return self.hs256.clone().ok_or_else(refuse);
        }
        if !JWKS_ALGORITHMS.contains(&alg) {
            return Err(refuse());
        }
        let jwks = self.jwks.as_ref().ok_or_else(refuse)?;
        let kid = kid.ok_or_else(|| AuthError::Invalid("the token has no kid".to_owned()))?;
        jwks.key(kid, alg).await
    }

    /// Verifies a raw token (without the `Bearer ` prefix).
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let header = decode_header(token).map_err(|e| AuthError::Invalid(e.to_string()))?;
        let key = self.key_for(header.alg, header.kid.as_deref()).await?;
        let data =
            decode::<serde_json::Map<String, Value>>(token, &key, &self.validation(header.alg))
                .map_err(|e| AuthError::Invalid(e.to_string()))?;
        let claims = data.claims;
        // RFC 7519 §4.1.1: `iss` is one StringOrURI. jsonwebtoken 10.4 also
        // takes an array and passes it if any entry is a configured issuer
        // (`src/validation.rs`, `Issuer::Multiple` and `is_subset`), so
        // `["<our issuer>", "anything"]` would pass; only a string may.
        if claims.get("iss").is_some_and(|iss| !iss.is_string()) {
            return Err(AuthError::Invalid("iss must be a single string".to_owned()));
        }
        let user_id = match claims.get("sub") {
            // `sub` keys every row the user owns: control characters (U+0000
            // above all, which PostgreSQL text cannot hold) would turn each
            // of the user's requests into a database error.
            Some(Value::String(sub))
                if !sub.trim().is_empty()
                    && sub.len() <= 255
                    && !sub.chars().any(char::is_control) =>
            {
                sub.clone()
            }
            _ => {
                return Err(AuthError::Invalid(
                    "sub must be a non-empty string of printable characters".to_owned(),
                ));
            }
        };
        let admin = match claims.get(&self.role_claim) {
            Some(Value::String(role)) => *role == self.admin_role,
            Some(Value::Array(roles)) => roles.iter().any(|r| r.as_str() == Some(&self.admin_role)),
            _ => false,
        };
        let email = match claims.get("email") {
            Some(Value::String(email)) if plausible_email(email) => Some(email.clone()),
            _ => None,
        };
        Ok(Principal {
            user_id,
            admin,
            email,
            expires_at: expiry(&claims)?,
        })
    }

    /// Verifies an `Authorization` header value.
    /// The scheme is matched without regard to case (RFC 9110 §11.1).
    pub async fn verify_header(&self, value: Option<&str>) -> Result<Principal, AuthError> {
        let value = value.ok_or(AuthError::Missing)?;
        let token = match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => return Err(AuthError::NotBearer),
        };
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        self.verify(token).await
    }
}
