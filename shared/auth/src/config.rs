//! Auth settings, read from the environment.

use settings::{SettingError, Settings};

pub const ENV_HS256_SECRET: &str = "JWT_HS256_SECRET";
pub const ENV_ISSUER: &str = "JWT_ISSUER";
pub const ENV_AUDIENCE: &str = "JWT_AUDIENCE";
pub const ENV_ROLE_CLAIM: &str = "JWT_ROLE_CLAIM";
pub const DEFAULT_ROLE_CLAIM: &str = "roles";
pub const ENV_ADMIN_ROLE: &str = "JWT_ADMIN_ROLE";
pub const DEFAULT_ADMIN_ROLE: &str = "admin";
pub const ENV_LEEWAY_S: &str = "JWT_LEEWAY_SECONDS";
pub const DEFAULT_LEEWAY_S: u64 = 30;
/// Shorter secrets are refused: HS256 with a guessable key is no auth at all.
pub const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub hs256_secret: String,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub role_claim: String,
    pub admin_role: String,
    pub leeway_s: u64,
}

impl AuthConfig {
    pub fn from_settings(s: &Settings<'_>) -> Result<Self, SettingError> {
        let hs256_secret = s.required(ENV_HS256_SECRET, "the HS256 key that signs user tokens")?;
        if hs256_secret.len() < MIN_SECRET_BYTES {
            return Err(SettingError::Invalid {
                key: ENV_HS256_SECRET.to_owned(),
                value: "<redacted>".to_owned(),
                reason: format!("must be at least {MIN_SECRET_BYTES} bytes"),
            });
        }
        Ok(Self {
            hs256_secret,
            issuer: s.optional(ENV_ISSUER),
            audience: s.optional(ENV_AUDIENCE),
            role_claim: s.string(ENV_ROLE_CLAIM, DEFAULT_ROLE_CLAIM),
            admin_role: s.string(ENV_ADMIN_ROLE, DEFAULT_ADMIN_ROLE),
            leeway_s: s.parsed(ENV_LEEWAY_S, DEFAULT_LEEWAY_S)?,
        })
    }
}
