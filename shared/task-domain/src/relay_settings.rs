//! The outbox relay's settings, read the same way by every function that
//! runs a relay over the shared outbox (recurring now; task-api reads the
//! same names in its own config). Every `ENV_X` sits beside its
//! `DEFAULT_X`; the default concurrency is the caller's, since it depends
//! on what else the function does with its pool.

use std::time::Duration;

use settings::{SettingError, Settings};

use crate::relay::{Backoff, RelayConfig};

pub const ENV_RELAY_BATCH_SIZE: &str = "RELAY_BATCH_SIZE";
pub const DEFAULT_RELAY_BATCH_SIZE: i64 = 100;
/// Keys published in parallel: each holds a pooled connection, so it must
/// stay below `DB_POOL_SIZE`.
pub const ENV_RELAY_CONCURRENCY: &str = "RELAY_CONCURRENCY";
pub const ENV_RELAY_POLL_MS: &str = "RELAY_POLL_INTERVAL_MS";
pub const DEFAULT_RELAY_POLL_MS: u64 = 1_000;
/// A publish daprd refuses (4xx) is retried after this, doubling per
/// refusal up to the max; meanwhile its key's later events wait.
pub const ENV_RELAY_BACKOFF_BASE_MS: &str = "RELAY_BACKOFF_BASE_MS";
pub const DEFAULT_RELAY_BACKOFF_BASE_MS: u64 = 1_000;
pub const ENV_RELAY_BACKOFF_MAX_MS: &str = "RELAY_BACKOFF_MAX_MS";
pub const DEFAULT_RELAY_BACKOFF_MAX_MS: u64 = 300_000;

/// A relay's configuration and its refusal backoff.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    pub config: RelayConfig,
    pub backoff: Backoff,
}

fn invalid(key: &str, value: String, reason: String) -> SettingError {
    SettingError::Invalid {
        key: key.to_owned(),
        value,
        reason,
    }
}

/// Reads the relay's settings for a function publishing to `pubsub` with a
/// pool of `db_pool_size` connections.
pub fn from_settings(
    s: &Settings<'_>,
    pubsub: &str,
    db_pool_size: usize,
    default_concurrency: usize,
) -> Result<RelaySettings, SettingError> {
    let config = RelayConfig {
        pubsub: pubsub.to_owned(),
        batch_size: s.parsed(ENV_RELAY_BATCH_SIZE, DEFAULT_RELAY_BATCH_SIZE)?,
        concurrency: s.parsed(ENV_RELAY_CONCURRENCY, default_concurrency)?,
        poll_interval: Duration::from_millis(s.parsed(ENV_RELAY_POLL_MS, DEFAULT_RELAY_POLL_MS)?),
    };
    if config.concurrency == 0 || config.concurrency >= db_pool_size {
        return Err(invalid(
            ENV_RELAY_CONCURRENCY,
            config.concurrency.to_string(),
            format!(
                "must be at least 1 and below DB_POOL_SIZE ({db_pool_size}), so the function keeps connections while the relay publishes"
            ),
        ));
    }
    if !(1..=10_000).contains(&config.batch_size) {
        return Err(invalid(
            ENV_RELAY_BATCH_SIZE,
            config.batch_size.to_string(),
            "must be 1 to 10000".to_owned(),
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
    if backoff.base.is_zero() || backoff.max < backoff.base {
        return Err(invalid(
            ENV_RELAY_BACKOFF_MAX_MS,
            backoff.max.as_millis().to_string(),
            format!(
                "{ENV_RELAY_BACKOFF_BASE_MS} must be at least 1 and {ENV_RELAY_BACKOFF_MAX_MS} at least {ENV_RELAY_BACKOFF_BASE_MS}"
            ),
        ));
    }
    Ok(RelaySettings { config, backoff })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn read(pairs: &[(&'static str, &'static str)]) -> Result<RelaySettings, SettingError> {
        let map: HashMap<&str, &str> = pairs.iter().copied().collect();
        from_settings(&Settings::new(&map), "pubsub", 16, 4)
    }

    #[test]
    fn defaults_and_refusals_name_the_variable() {
        let r = read(&[]).unwrap();
        assert_eq!((r.config.concurrency, r.config.batch_size), (4, 100));
        assert_eq!(r.backoff, Backoff::default());
        for (key, value) in [
            ("RELAY_CONCURRENCY", "0"),
            ("RELAY_CONCURRENCY", "16"),
            ("RELAY_BATCH_SIZE", "many"),
            ("RELAY_BATCH_SIZE", "0"),
            ("RELAY_BACKOFF_BASE_MS", "0"),
        ] {
            let err = read(&[(key, value)]).unwrap_err().to_string();
            assert!(
                err.starts_with(key) || err.starts_with("RELAY_BACKOFF_MAX_MS"),
                "{err}"
            );
        }
        assert!(read(&[("RELAY_CONCURRENCY", "15")]).is_ok());
    }
}
