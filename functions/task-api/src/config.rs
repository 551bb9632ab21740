//! task-api's configuration: the shared settings plus its own.

use std::time::Duration;

use auth::AuthConfig;
use service::config::CommonConfig;
use settings::{SettingError, Settings};
use task_domain::RelayConfig;

pub const DEFAULT_PORT: u16 = 8080;
pub const ENV_RELAY_BATCH_SIZE: &str = "RELAY_BATCH_SIZE";
pub const DEFAULT_RELAY_BATCH_SIZE: i64 = 100;
pub const ENV_RELAY_CONCURRENCY: &str = "RELAY_CONCURRENCY";
/// Each key being published holds one pooled connection for its batch, so
/// this must stay below `DB_POOL_SIZE` or a slow sidecar starves the API.
pub const DEFAULT_RELAY_CONCURRENCY: usize = 8;
pub const ENV_RELAY_POLL_MS: &str = "RELAY_POLL_INTERVAL_MS";
pub const DEFAULT_RELAY_POLL_MS: u64 = 1_000;

#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    pub auth: AuthConfig,
    pub relay: RelayConfig,
}

impl Config {
    pub fn from_settings(s: &Settings<'_>) -> Result<Self, SettingError> {
        let common = CommonConfig::from_settings(s, DEFAULT_PORT)?;
        let relay = RelayConfig {
            pubsub: common.pubsub_name.clone(),
            batch_size: s.parsed(ENV_RELAY_BATCH_SIZE, DEFAULT_RELAY_BATCH_SIZE)?,
            concurrency: s.parsed(ENV_RELAY_CONCURRENCY, DEFAULT_RELAY_CONCURRENCY)?,
            poll_interval: Duration::from_millis(
                s.parsed(ENV_RELAY_POLL_MS, DEFAULT_RELAY_POLL_MS)?,
            ),
        };
        if relay.concurrency == 0 || relay.concurrency >= common.db_pool_size {
            return Err(SettingError::Invalid {
                key: ENV_RELAY_CONCURRENCY.to_owned(),
                value: relay.concurrency.to_string(),
                reason: format!(
                    "must be at least 1 and below DB_POOL_SIZE ({}), so requests keep connections while the relay publishes",
                    common.db_pool_size
                ),
            });
        }
        Ok(Self {
            auth: AuthConfig::from_settings(s)?,
            common,
            relay,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&'static str, &'static str)]) -> Result<Config, SettingError> {
        let mut map: HashMap<&str, &str> = pairs.iter().copied().collect();
        map.insert("JWT_HS256_SECRET", "0123456789abcdef0123456789abcdef");
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
}
