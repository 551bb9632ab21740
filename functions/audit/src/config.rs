//! audit's configuration: the shared settings, auth, who may call the
//! callbacks, and retention. Every `ENV_X` sits beside its `DEFAULT_X`.

use auth::AuthConfig;
use dapr_http::AppToken;
use service::config::CommonConfig;
use settings::{SettingError, Settings};

pub const DEFAULT_PORT: u16 = 8081;

/// Entries whose `occurred_at` is older than this many days are deleted.
pub const ENV_RETENTION_DAYS: &str = "AUDIT_RETENTION_DAYS";
pub const DEFAULT_RETENTION_DAYS: u32 = 90;
/// The retention job's schedule in the Dapr scheduler: `@daily`, `@every
/// 1h` or a six-field cron (seconds first).
pub const ENV_RETENTION_SCHEDULE: &str = "AUDIT_RETENTION_SCHEDULE";
pub const DEFAULT_RETENTION_SCHEDULE: &str = "@daily";
/// Rows deleted per statement: keeps each transaction, its locks and its
/// WAL burst small, however much has expired.
pub const ENV_RETENTION_BATCH: &str = "AUDIT_RETENTION_BATCH";
pub const DEFAULT_RETENTION_BATCH: i64 = 5_000;

#[derive(Debug, Clone)]
pub struct RetentionConfig {
    pub days: u32,
    pub schedule: String,
    pub batch: i64,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    pub auth: AuthConfig,
    /// Fails closed: no callback token, no start (unless opened on purpose).
    pub callbacks: AppToken,
    pub retention: RetentionConfig,
}

impl Config {
    pub fn from_settings(s: &Settings<'_>) -> Result<Self, SettingError> {
        let days: u32 = s.parsed(ENV_RETENTION_DAYS, DEFAULT_RETENTION_DAYS)?;
        if days == 0 {
            return Err(invalid(ENV_RETENTION_DAYS, "0", "must be at least 1"));
        }
        let batch: i64 = s.parsed(ENV_RETENTION_BATCH, DEFAULT_RETENTION_BATCH)?;
        if !(1..=1_000_000).contains(&batch) {
            return Err(invalid(
                ENV_RETENTION_BATCH,
                &batch.to_string(),
                "must be between 1 and 1000000",
            ));
        }
        Ok(Self {
            common: CommonConfig::from_settings(s, DEFAULT_PORT)?,
            auth: AuthConfig::from_settings(s)?,
            callbacks: AppToken::from_settings(s)?,
            retention: RetentionConfig {
                days,
                schedule: s.string(ENV_RETENTION_SCHEDULE, DEFAULT_RETENTION_SCHEDULE),
                batch,
            },
        })
    }
}

fn invalid(key: &str, value: &str, reason: &str) -> SettingError {
    SettingError::Invalid {
        key: key.to_owned(),
        value: value.to_owned(),
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn defaults() {
        let map: HashMap<&str, &str> =
            [("JWT_HS256_SECRET", SECRET), ("APP_API_TOKEN", "t")].into();
        let c = Config::from_settings(&Settings::new(&map)).unwrap();
        assert!(!c.callbacks.is_unauthenticated());
        assert_eq!(c.common.port, DEFAULT_PORT);
        assert_eq!(c.retention.days, 90);
        assert_eq!(c.retention.schedule, "@daily");
        assert_eq!(c.retention.batch, 5_000);
    }

    #[test]
    fn overrides_and_bad_values_name_the_variable() {
        let map: HashMap<&str, &str> = [
            ("JWT_HS256_SECRET", SECRET),
            ("APP_API_TOKEN", "t"),
            ("AUDIT_RETENTION_DAYS", "30"),
            ("AUDIT_RETENTION_SCHEDULE", "0 30 3 * * *"),
        ]
        .into();
        let c = Config::from_settings(&Settings::new(&map)).unwrap();
        assert_eq!(c.retention.days, 30);
        assert_eq!(c.retention.schedule, "0 30 3 * * *");

        for (key, value) in [
            ("AUDIT_RETENTION_DAYS", "0"),
            ("AUDIT_RETENTION_DAYS", "ninety"),
            ("AUDIT_RETENTION_BATCH", "0"),
        ] {
            let map: HashMap<&str, &str> = [
                ("JWT_HS256_SECRET", SECRET),
                ("APP_API_TOKEN", "t"),
                (key, value),
            ]
            .into();
            let err = Config::from_settings(&Settings::new(&map)).unwrap_err();
            assert!(err.to_string().starts_with(key), "{err}");
        }
        let missing: HashMap<&str, &str> = HashMap::new();
        let err = Config::from_settings(&Settings::new(&missing)).unwrap_err();
        assert!(err.to_string().starts_with("JWT_HS256_SECRET"), "{err}");
    }

    #[test]
    fn callbacks_fail_closed_unless_opened_on_purpose() {
        let no_token: HashMap<&str, &str> = [("JWT_HS256_SECRET", SECRET)].into();
        let err = Config::from_settings(&Settings::new(&no_token)).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("APP_API_TOKEN or KNATIVE_PUSH_TOKEN"),
            "{err}"
        );
        let open: HashMap<&str, &str> = [
            ("JWT_HS256_SECRET", SECRET),
            ("ALLOW_UNAUTHENTICATED_CALLBACKS", "true"),
        ]
        .into();
        let c = Config::from_settings(&Settings::new(&open)).unwrap();
        assert!(c.callbacks.is_unauthenticated());
    }
}
