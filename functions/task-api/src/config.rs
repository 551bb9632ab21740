//! task-api's configuration: the shared settings plus its own.

use auth::AuthConfig;
use dapr_http::AppToken;
use service::config::CommonConfig;
use settings::{SettingError, Settings};
use task_domain::RelayConfig;
use task_domain::relay::{Backoff, RelaySettings};

use crate::retention::RetentionConfig;

pub const DEFAULT_PORT: u16 = 8080;
/// task-api's default `RELAY_CONCURRENCY`; the other `RELAY_*` settings
/// are in `task_domain::relay::settings`. Each key being published holds
/// one pooled connection, so it must stay below `DB_POOL_SIZE`.
pub const DEFAULT_RELAY_CONCURRENCY: usize = 8;

#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    pub auth: AuthConfig,
    pub relay: RelayConfig,
    pub relay_backoff: Backoff,
    /// Who may call the callback routes (`POST /job/...`).
    pub callback_token: AppToken,
    /// The change feed's and the outbox's retention job.
    pub retention: RetentionConfig,
}

impl Config {
    pub fn from_settings(s: &Settings<'_>) -> Result<Self, SettingError> {
        let common = CommonConfig::from_settings(s, DEFAULT_PORT)?;
        let relay = RelaySettings::from_settings(
            s,
            &common.pubsub_name,
            common.db_pool_size,
            DEFAULT_RELAY_CONCURRENCY,
        )?;
        Ok(Self {
            auth: AuthConfig::from_settings(s)?,
            callback_token: AppToken::from_settings(s)?,
            retention: RetentionConfig::from_settings(s)?,
            common,
            relay: relay.config,
            relay_backoff: relay.backoff,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::time::Duration;

    fn config(pairs: &[(&'static str, &'static str)]) -> Result<Config, SettingError> {
        let mut map: HashMap<&str, &str> = pairs.iter().copied().collect();
        map.insert("JWT_HS256_SECRET", "0123456789abcdef0123456789abcdef");
        map.entry("APP_API_TOKEN").or_insert("app-token");
        Config::from_settings(&Settings::new(&map))
    }

    #[test]
    fn relay_concurrency_stays_below_the_pool() {
        assert_eq!(
            config(&[]).unwrap().relay.concurrency,
            DEFAULT_RELAY_CONCURRENCY
        );
        let err = config(&[("RELAY_CONCURRENCY", "16"), ("DB_POOL_SIZE", "16")]).unwrap_err();
        assert!(
            err.to_string().starts_with("RELAY_CONCURRENCY=\"16\""),
            "{err}"
        );
        assert!(config(&[("RELAY_CONCURRENCY", "0")]).is_err());
        assert!(config(&[("RELAY_CONCURRENCY", "15"), ("DB_POOL_SIZE", "16")]).is_ok());
    }

    #[test]
    fn the_relay_settings_are_wired() {
        let c = config(&[
            ("RELAY_BACKOFF_BASE_MS", "250"),
            ("RELAY_BACKOFF_MAX_MS", "4000"),
        ])
        .unwrap();
        assert_eq!(c.relay_backoff.base, Duration::from_millis(250));
        assert_eq!(c.relay.pubsub, c.common.pubsub_name);
        assert!(config(&[("RELAY_BACKOFF_BASE_MS", "0")]).is_err());
    }

    #[test]
    fn the_relay_route_needs_a_token_or_an_explicit_opening() {
        let mut map: HashMap<&str, &str> = HashMap::new();
        map.insert("JWT_HS256_SECRET", "0123456789abcdef0123456789abcdef");
        let err = Config::from_settings(&Settings::new(&map)).unwrap_err();
        assert!(err.to_string().contains("APP_API_TOKEN"), "{err}");
        map.insert("ALLOW_UNAUTHENTICATED_CALLBACKS", "true");
        assert!(
            Config::from_settings(&Settings::new(&map))
                .unwrap()
                .callback_token
                .is_unauthenticated()
        );
    }
}
