//! The relay's settings, read the same way by every function that runs a
//! relay (task-api, recurring). Every `ENV_X` sits beside its `DEFAULT_X`.

use std::time::Duration;

use ::settings::{SettingError, Settings};

use super::{Backoff, RelayConfig};

pub const ENV_RELAY_BATCH_SIZE: &str = "RELAY_BATCH_SIZE";
/// Events per daprd bulk call (one key, one topic).
pub const DEFAULT_RELAY_BATCH_SIZE: i64 = 100;
pub const ENV_RELAY_CONCURRENCY: &str = "RELAY_CONCURRENCY";
pub const ENV_RELAY_POLL_MS: &str = "RELAY_POLL_INTERVAL_MS";
pub const DEFAULT_RELAY_POLL_MS: u64 = 1_000;
/// A publish daprd refuses (4xx) is retried after this, doubling per
/// refusal up to the max; meanwhile its key's later events wait.
pub const ENV_RELAY_BACKOFF_BASE_MS: &str = "RELAY_BACKOFF_BASE_MS";
pub const DEFAULT_RELAY_BACKOFF_BASE_MS: u64 = 1_000;
pub const ENV_RELAY_BACKOFF_MAX_MS: &str = "RELAY_BACKOFF_MAX_MS";
pub const DEFAULT_RELAY_BACKOFF_MAX_MS: u64 = 300_000;
/// The largest batch: 100 events of our size stay far below daprd's 4 MiB
/// request limit, and the relay also splits a call at 1 MiB.
const MAX_BATCH_SIZE: i64 = 1_000;

/// What a function needs to start its relay.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    pub config: RelayConfig,
    pub backoff: Backoff,
}

impl RelaySettings {
    /// Reads the `RELAY_*` settings. Each key being published holds one
    /// pooled connection, so the concurrency (default
    /// `default_concurrency`) must stay below `db_pool_size`, or a slow
    /// sidecar would starve the function's own requests.
    pub fn from_settings(
        s: &Settings<'_>,
        pubsub: &str,
        db_pool_size: usize,
        default_concurrency: usize,
    ) -> Result<Self, SettingError> {
        let config = RelayConfig {
            pubsub: pubsub.to_owned(),
            batch_size: s.parsed(ENV_RELAY_BATCH_SIZE, DEFAULT_RELAY_BATCH_SIZE)?,
            concurrency: s.parsed(ENV_RELAY_CONCURRENCY, default_concurrency)?,
            poll_interval: Duration::from_millis(
                s.parsed(ENV_RELAY_POLL_MS, DEFAULT_RELAY_POLL_MS)?,
            ),
        };
        let invalid = |key: &str, value: String, reason: String| SettingError::Invalid {
            key: key.to_owned(),
            value,
            reason,
        };
        if config.concurrency == 0 || config.concurrency >= db_pool_size {
            return Err(invalid(
                ENV_RELAY_CONCURRENCY,
                config.concurrency.to_string(),
                format!(
                    "must be at least 1 and below DB_POOL_SIZE ({db_pool_size}), so requests keep connections while the relay publishes"
                ),
            ));
        }
        if !(1..=MAX_BATCH_SIZE).contains(&config.batch_size) {
            return Err(invalid(
                ENV_RELAY_BATCH_SIZE,
                config.batch_size.to_string(),
                format!("must be 1 to {MAX_BATCH_SIZE}"),
            ));
        }
        let backoff = Backoff {
            base: Duration::from_millis(
                s.parsed(ENV_RELAY_BACKOFF_BASE_MS, DEFAULT_RELAY_BACKOFF_BASE_MS)?,
            ),
            max: Duration::from_millis(
                s.parsed(ENV_RELAY_BACKOFF_MAX_MS, DEFAULT_RELAY_BACKOFF_MAX_MS)?,
            ),
        };
        if backoff.base.is_zero() {
            return Err(invalid(
                ENV_RELAY_BACKOFF_BASE_MS,
                "0".into(),
                "must be at least 1".into(),
            ));
        }
        if backoff.max < backoff.base {
            return Err(invalid(
                ENV_RELAY_BACKOFF_MAX_MS,
                backoff.max.as_millis().to_string(),
                format!("must be at least {ENV_RELAY_BACKOFF_BASE_MS}"),
            ));
        }
        Ok(Self { config, backoff })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn read(pairs: &[(&str, &str)]) -> Result<RelaySettings, SettingError> {
        let map: HashMap<&str, &str> = pairs.iter().copied().collect();
        RelaySettings::from_settings(&Settings::new(&map), "pubsub", 16, 8)
    }

    #[test]
    fn defaults() {
        let s = read(&[]).unwrap();
        assert_eq!(s.config.pubsub, "pubsub");
        assert_eq!(s.config.batch_size, DEFAULT_RELAY_BATCH_SIZE);
        assert_eq!(s.config.concurrency, 8);
        assert_eq!(s.config.poll_interval, Duration::from_secs(1));
        assert_eq!(s.backoff, Backoff::default());
    }

    #[test]
    fn each_bad_value_names_its_variable() {
        for (key, value) in [
            ("RELAY_CONCURRENCY", "0"),
            ("RELAY_CONCURRENCY", "16"),
            ("RELAY_BATCH_SIZE", "0"),
            ("RELAY_BATCH_SIZE", "5000"),
            ("RELAY_BATCH_SIZE", "many"),
            ("RELAY_BACKOFF_BASE_MS", "0"),
            ("RELAY_BACKOFF_MAX_MS", "10"),
        ] {
            let err = read(&[(key, value)]).unwrap_err();
            assert!(err.to_string().starts_with(key), "{key}={value}: {err}");
        }
        let set = read(&[
            ("RELAY_BACKOFF_BASE_MS", "250"),
            ("RELAY_BACKOFF_MAX_MS", "4000"),
        ])
        .unwrap();
        assert_eq!(
            set.backoff,
            Backoff {
                base: Duration::from_millis(250),
                max: Duration::from_secs(4)
            }
        );
    }
}
