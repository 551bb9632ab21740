//! task-api's configuration: the shared settings plus its own.

use std::time::Duration;

use auth::AuthConfig;
use dapr_http::AppToken;
use service::config::CommonConfig;
use settings::{SettingError, Settings};
use task_domain::RelayConfig;
use task_domain::relay::Backoff;

pub const DEFAULT_PORT: u16 = 8080;
pub const ENV_RELAY_BATCH_SIZE: &str = "RELAY_BATCH_SIZE";
pub const DEFAULT_RELAY_BATCH_SIZE: i64 = 100;
pub const ENV_RELAY_CONCURRENCY: &str = "RELAY_CONCURRENCY";
/// Each key being published holds one pooled connection for its batch, so
/// this must stay below `DB_POOL_SIZE` or a slow sidecar starves the API.
pub const DEFAULT_RELAY_CONCURRENCY: usize = 8;
pub const ENV_RELAY_POLL_MS: &str = "RELAY_POLL_INTERVAL_MS";
pub const DEFAULT_RELAY_POLL_MS: u64 = 1_000;
/// A publish daprd refuses (4xx) is retried after this, doubling per
/// refusal up to the max; meanwhile its key's later events wait.
pub const ENV_RELAY_BACKOFF_BASE_MS: &str = "RELAY_BACKOFF_BASE_MS";
pub const DEFAULT_RELAY_BACKOFF_BASE_MS: u64 = 1_000;
pub const ENV_RELAY_BACKOFF_MAX_MS: &str = "RELAY_BACKOFF_MAX_MS";
pub const DEFAULT_RELAY_BACKOFF_MAX_MS: u64 = 300_000;

#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    pub auth: AuthConfig,
    pub relay: RelayConfig,
    pub relay_backoff: Backoff,
    /// Who may call the callback route (`POST /job/outbox-relay`).
    pub callback_token: AppToken,
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
        let relay_backoff = Backoff {
            base: Duration::from_millis(
                s.parsed(ENV_RELAY_BACKOFF_BASE_MS, DEFAULT_RELAY_BACKOFF_BASE_MS)?,
            ),
            max: Duration::from_millis(
                s.parsed(ENV_RELAY_BACKOFF_MAX_MS, DEFAULT_RELAY_BACKOFF_MAX_MS)?,
            ),
        };
        if relay_backoff.base.is_zero() || relay_backoff.max < relay_backoff.base {
            return Err(SettingError::Invalid {
                key: ENV_RELAY_BACKOFF_MAX_MS.to_owned(),
                value: relay_backoff.max.as_millis().to_string(),
                reason: format!(
                    "{ENV_RELAY_BACKOFF_BASE_MS} must be at least 1 and {ENV_RELAY_BACKOFF_MAX_MS} at least {ENV_RELAY_BACKOFF_BASE_MS}"
                ),
            });
        }
        Ok(Self {
            auth: AuthConfig::from_settings(s)?,
            callback_token: AppToken::from_settings(s)?,
            common,
            relay,
            relay_backoff,
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
    fn the_refusal_backoff_is_read_and_checked() {
        let backoff = config(&[]).unwrap().relay_backoff;
        assert_eq!(backoff, Backoff::default());
        let set = config(&[
            ("RELAY_BACKOFF_BASE_MS", "250"),
            ("RELAY_BACKOFF_MAX_MS", "4000"),
        ]);
        assert_eq!(
            set.unwrap().relay_backoff,
            Backoff {
                base: Duration::from_millis(250),
                max: Duration::from_secs(4)
            }
        );
        assert!(config(&[("RELAY_BACKOFF_BASE_MS", "0")]).is_err());
        assert!(
            config(&[
                ("RELAY_BACKOFF_BASE_MS", "5000"),
                ("RELAY_BACKOFF_MAX_MS", "1000")
            ])
            .is_err()
        );
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
