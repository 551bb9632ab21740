//! recurring's configuration: the shared settings and its outbox relay's.
//! Every `ENV_X` sits beside its `DEFAULT_X`.

use std::time::Duration;

use dapr_http::AppToken;
use service::config::CommonConfig;
use settings::{SettingError, Settings};
use task_domain::RelayConfig;

pub const DEFAULT_PORT: u16 = 8082;
/// The relay settings have task-api's names: the same relay, in another
/// process.
pub const ENV_RELAY_BATCH_SIZE: &str = "RELAY_BATCH_SIZE";
pub const DEFAULT_RELAY_BATCH_SIZE: i64 = 100;
pub const ENV_RELAY_CONCURRENCY: &str = "RELAY_CONCURRENCY";
/// Each key being published holds a pooled connection, so this stays below
/// `DB_POOL_SIZE`, leaving connections for the handler.
pub const DEFAULT_RELAY_CONCURRENCY: usize = 4;
pub const ENV_RELAY_POLL_MS: &str = "RELAY_POLL_INTERVAL_MS";
pub const DEFAULT_RELAY_POLL_MS: u64 = 1_000;

#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    pub relay: RelayConfig,
    /// Who may call the callback routes (fails closed without a token).
    pub callbacks: AppToken,
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
                    "must be at least 1 and below DB_POOL_SIZE ({}), so completions keep connections while the relay publishes",
                    common.db_pool_size
                ),
            });
        }
        Ok(Self {
            common,
            relay,
            callbacks: AppToken::from_settings(s)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn defaults_and_bad_values_name_the_variable() {
        let token: HashMap<&str, &str> = [("APP_API_TOKEN", "t")].into();
        let c = Config::from_settings(&Settings::new(&token)).unwrap();
        assert_eq!(c.common.port, DEFAULT_PORT);
        assert_eq!(c.relay.concurrency, DEFAULT_RELAY_CONCURRENCY);
        for (key, value) in [
            ("RELAY_CONCURRENCY", "0"),
            ("RELAY_CONCURRENCY", "16"),
            ("RELAY_BATCH_SIZE", "many"),
        ] {
            let map: HashMap<&str, &str> = [(key, value), ("APP_API_TOKEN", "t")].into();
            let err = Config::from_settings(&Settings::new(&map)).unwrap_err();
            assert!(err.to_string().starts_with(key), "{err}");
        }
        // Without a callback token it refuses to start (fails closed).
        let empty: HashMap<&str, &str> = HashMap::new();
        let err = Config::from_settings(&Settings::new(&empty)).unwrap_err();
        assert!(err.to_string().starts_with("APP_API_TOKEN"), "{err}");
    }
}
