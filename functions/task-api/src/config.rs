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
pub const DEFAULT_RELAY_CONCURRENCY: usize = 16;
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
        Ok(Self {
            auth: AuthConfig::from_settings(s)?,
            common,
            relay,
        })
    }
}
