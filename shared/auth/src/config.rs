//! Auth settings, read from the environment.

use std::time::Duration;

use settings::{SettingError, Settings};

pub const ENV_HS256_SECRET: &str = "JWT_HS256_SECRET";
pub const ENV_JWKS_URL: &str = "JWT_JWKS_URL";
pub const ENV_JWKS_TTL_S: &str = "JWT_JWKS_TTL_SECONDS";
pub const DEFAULT_JWKS_TTL_S: u64 = 300;
/// The least time between two JWKS fetches caused by unknown `kid`s.
pub const ENV_JWKS_MIN_REFRESH_S: &str = "JWT_JWKS_MIN_REFRESH_SECONDS";
pub const DEFAULT_JWKS_MIN_REFRESH_S: u64 = 30;
pub const ENV_JWKS_TIMEOUT_MS: &str = "JWT_JWKS_TIMEOUT_MS";
pub const DEFAULT_JWKS_TIMEOUT_MS: u64 = 3_000;
pub const ENV_ISSUER: &str = "JWT_ISSUER";
pub const ENV_AUDIENCE: &str = "JWT_AUDIENCE";
pub const ENV_ROLE_CLAIM: &str = "JWT_ROLE_CLAIM";
pub const DEFAULT_ROLE_CLAIM: &str = "roles";
pub const ENV_ADMIN_ROLE: &str = "JWT_ADMIN_ROLE";
pub const DEFAULT_ADMIN_ROLE: &str = "admin";
pub const ENV_LEEWAY_S: &str = "JWT_LEEWAY_SECONDS";
pub const DEFAULT_LEEWAY_S: u64 = 30;
/// Clock skew beyond an hour is not skew; it would also make `exp` close to
/// meaningless (and jsonwebtoken subtracts the leeway from the current time
/// in `u64`, `src/validation.rs`, so a huge one cannot be allowed).
pub const MAX_LEEWAY_S: u64 = 3_600;
/// Shorter secrets are refused: HS256 with a guessable key is no auth at all.
pub const MIN_SECRET_BYTES: usize = 32;

/// Where keys come from: HS256 tokens use the secret, RS256/ES256/EdDSA
/// tokens the JWKS. At least one is required; both may be set.
#[derive(Debug, Clone, Default)]
pub struct JwksConfig {
    pub url: String,
    pub ttl: Duration,
    pub min_refresh: Duration,
    pub timeout: Duration,
}

impl JwksConfig {
    /// The JWKS settings for `url`. A `min_refresh` shorter than the fetch
    /// timeout is refused: against an issuer that hangs, fetches would then
    /// follow each other back to back, and a request for an unknown `kid`
    /// could meet one after another.
    fn from_settings(s: &Settings<'_>, url: String) -> Result<Self, SettingError> {
        let min_refresh_s = s.parsed(ENV_JWKS_MIN_REFRESH_S, DEFAULT_JWKS_MIN_REFRESH_S)?;
        let min_refresh = Duration::from_secs(min_refresh_s);
        let timeout = s.millis(ENV_JWKS_TIMEOUT_MS, DEFAULT_JWKS_TIMEOUT_MS)?;
        if min_refresh < timeout {
            return Err(SettingError::Invalid {
                key: ENV_JWKS_MIN_REFRESH_S.to_owned(),
                value: min_refresh_s.to_string(),
                reason: format!(
                    "must be at least {ENV_JWKS_TIMEOUT_MS} ({} ms)",
                    timeout.as_millis()
                ),
            });
        }
        Ok(Self {
            url,
            ttl: Duration::from_secs(s.parsed(ENV_JWKS_TTL_S, DEFAULT_JWKS_TTL_S)?),
            min_refresh,
            timeout,
        })
    }
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub hs256_secret: Option<String>,
    pub jwks: Option<JwksConfig>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub role_claim: String,
    pub admin_role: String,
    pub leeway_s: u64,
}

impl AuthConfig {
    pub fn from_settings(s: &Settings<'_>) -> Result<Self, SettingError> {
        let hs256_secret = s.optional(ENV_HS256_SECRET);
        if let Some(secret) = &hs256_secret
            && secret.len() < MIN_SECRET_BYTES
        {
            return Err(SettingError::Invalid {
                key: ENV_HS256_SECRET.to_owned(),
                value: "<redacted>".to_owned(),
                reason: format!("must be at least {MIN_SECRET_BYTES} bytes"),
            });
        }
        let jwks = match s.optional(ENV_JWKS_URL) {
            None => None,
            Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
                Some(JwksConfig::from_settings(s, url)?)
            }
            Some(url) => {
                return Err(SettingError::Invalid {
                    key: ENV_JWKS_URL.to_owned(),
                    value: url,
                    reason: "must be an http(s) URL".to_owned(),
                });
            }
        };
        if hs256_secret.is_none() && jwks.is_none() {
            return Err(SettingError::Missing {
                key: format!("{ENV_HS256_SECRET} or {ENV_JWKS_URL}"),
                hint: "the key that signs user tokens: a shared HS256 secret or a JWKS URL"
                    .to_owned(),
            });
        }
        let leeway_s = s.parsed(ENV_LEEWAY_S, DEFAULT_LEEWAY_S)?;
        if leeway_s > MAX_LEEWAY_S {
            return Err(SettingError::Invalid {
                key: ENV_LEEWAY_S.to_owned(),
                value: leeway_s.to_string(),
                reason: format!("must be at most {MAX_LEEWAY_S} seconds"),
            });
        }
        Ok(Self {
            hs256_secret,
            jwks,
            issuer: s.optional(ENV_ISSUER),
            audience: s.optional(ENV_AUDIENCE),
            role_claim: s.string(ENV_ROLE_CLAIM, DEFAULT_ROLE_CLAIM),
            admin_role: s.string(ENV_ADMIN_ROLE, DEFAULT_ADMIN_ROLE),
            leeway_s,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn a_key_source_is_required_and_checked() {
        let none: HashMap<&str, &str> = HashMap::new();
        let err = AuthConfig::from_settings(&Settings::new(&none)).unwrap_err();
        assert!(err.to_string().contains("JWT_JWKS_URL"), "{err}");
        let short: HashMap<&str, &str> = [("JWT_HS256_SECRET", "short")].into();
        assert!(AuthConfig::from_settings(&Settings::new(&short)).is_err());
        let jwks: HashMap<&str, &str> = [("JWT_JWKS_URL", "https://idp/jwks.json")].into();
        let c = AuthConfig::from_settings(&Settings::new(&jwks)).unwrap();
        assert_eq!(c.jwks.unwrap().ttl, Duration::from_secs(DEFAULT_JWKS_TTL_S));
        let bad: HashMap<&str, &str> = [("JWT_JWKS_URL", "file:///etc/keys")].into();
        assert!(AuthConfig::from_settings(&Settings::new(&bad)).is_err());
    }

    #[test]
    fn a_min_refresh_shorter_than_the_fetch_timeout_is_refused() {
        let with = |min_refresh: &'static str, timeout: &'static str| {
            let map: HashMap<&str, &str> = [
                ("JWT_JWKS_URL", "https://idp/jwks.json"),
                ("JWT_JWKS_MIN_REFRESH_SECONDS", min_refresh),
                ("JWT_JWKS_TIMEOUT_MS", timeout),
            ]
            .into();
            AuthConfig::from_settings(&Settings::new(&map))
        };
        let err = with("2", "3000").unwrap_err().to_string();
        assert!(err.starts_with("JWT_JWKS_MIN_REFRESH_SECONDS="), "{err}");
        assert!(err.contains("JWT_JWKS_TIMEOUT_MS"), "{err}");
        assert!(with("0", "1").is_err());
        let equal = with("3", "3000").unwrap().jwks.unwrap();
        assert_eq!(equal.min_refresh, Duration::from_secs(3));
        assert_eq!(equal.timeout, Duration::from_millis(3_000));
        let defaults: HashMap<&str, &str> = [("JWT_JWKS_URL", "https://idp/jwks.json")].into();
        assert!(AuthConfig::from_settings(&Settings::new(&defaults)).is_ok());
    }

    #[test]
    fn the_leeway_is_bounded() {
        let secret = "0123456789abcdef0123456789abcdef";
        let with = |leeway: &'static str| {
            let map: HashMap<&str, &str> =
                [("JWT_HS256_SECRET", secret), ("JWT_LEEWAY_SECONDS", leeway)].into();
            AuthConfig::from_settings(&Settings::new(&map))
        };
        assert_eq!(with("3600").unwrap().leeway_s, 3_600);
        let err = with("18446744073709551615").unwrap_err().to_string();
        assert!(err.starts_with("JWT_LEEWAY_SECONDS="), "{err}");
        assert!(with("3601").is_err());
    }
}
