//! recurring's configuration: the shared settings, the callback tokens,
//! and its outbox relay's (read by `task_domain::relay::RelaySettings`, the
//! same names as task-api's).

use dapr_http::AppToken;
use service::config::CommonConfig;
use settings::{SettingError, Settings};
use task_domain::RelayConfig;
use task_domain::relay::{Backoff, RelaySettings};

pub const DEFAULT_PORT: u16 = 8082;
/// Keys its relay publishes in parallel. Lower than task-api's (8): the
/// relay mostly publishes the occurrences this function just created, and
/// the rest of the pool serves completions.
pub const DEFAULT_RELAY_CONCURRENCY: usize = 4;

#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    pub relay: RelayConfig,
    pub relay_backoff: Backoff,
    /// Who may call the callback routes (fails closed without a token).
    pub callbacks: AppToken,
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
            common,
            relay: relay.config,
            relay_backoff: relay.backoff,
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
