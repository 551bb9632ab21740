//! The settings every function shares. Each `ENV_X` sits beside its
//! `DEFAULT_X`; `.env.example` documents the same list.

use std::time::Duration;

use settings::{SettingError, Settings};
use telemetry::LogFormat;

use crate::cors::CorsPolicy;

pub const ENV_PORT: &str = "PORT";
pub const ENV_DATABASE_URL: &str = "DATABASE_URL";
pub const DEFAULT_DATABASE_URL: &str = "postgres://todo:todo@127.0.0.1:5432/todo";
pub const ENV_DB_POOL_SIZE: &str = "DB_POOL_SIZE";
pub const DEFAULT_DB_POOL_SIZE: usize = 16;
pub const ENV_DB_WAIT_MS: &str = "DB_WAIT_MS";
pub const DEFAULT_DB_WAIT_MS: u64 = 30_000;
/// The server cancels any statement of a pooled connection running longer.
/// Half the request timeout, and always below it: a statement cannot
/// outlive the request that waits for it, even where nothing cancels it on
/// the client side.
/// Migrations run without it.
pub const ENV_DB_STATEMENT_TIMEOUT_MS: &str = "DB_STATEMENT_TIMEOUT_MS";
pub const DEFAULT_DB_STATEMENT_TIMEOUT_MS: u64 = 5_000;
pub const ENV_DAPR_HTTP_ENDPOINT: &str = "DAPR_HTTP_ENDPOINT";
pub const ENV_DAPR_HTTP_PORT: &str = "DAPR_HTTP_PORT";
pub const DEFAULT_DAPR_HTTP_PORT: u16 = 3500;
pub const ENV_DAPR_API_TOKEN: &str = "DAPR_API_TOKEN";
// APP_API_TOKEN, KNATIVE_PUSH_TOKEN and ALLOW_UNAUTHENTICATED_CALLBACKS
// (who may call the callback routes) are read with the guard that checks
// them: `dapr_http::AppToken::from_settings`.
pub const ENV_PUBSUB_NAME: &str = "PUBSUB_NAME";
pub const DEFAULT_PUBSUB_NAME: &str = "pubsub";
pub const ENV_DAPR_TIMEOUT_MS: &str = "DAPR_TIMEOUT_MS";
pub const DEFAULT_DAPR_TIMEOUT_MS: u64 = 5_000;
pub const ENV_REQUEST_TIMEOUT_MS: &str = "REQUEST_TIMEOUT_MS";
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 10_000;
/// Shorter than Kubernetes' default 30 s termination grace period.
pub const ENV_SHUTDOWN_GRACE_MS: &str = "SHUTDOWN_GRACE_MS";
pub const DEFAULT_SHUTDOWN_GRACE_MS: u64 = 20_000;
pub const ENV_MAX_BODY_BYTES: &str = "MAX_BODY_BYTES";
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
pub const ENV_LOG_FORMAT: &str = "LOG_FORMAT";
pub const DEFAULT_LOG_FORMAT: LogFormat = LogFormat::Json;
pub const ENV_RUST_LOG: &str = "RUST_LOG";
pub const DEFAULT_RUST_LOG: &str = "info";
// CORS_ALLOWED_ORIGINS and CORS_ALLOW_ANY_ORIGIN (who may call from another
// origin) are read beside the layer that applies them: `crate::cors`.

#[derive(Debug, Clone)]
pub struct CommonConfig {
    pub port: u16,
    pub database_url: String,
    pub db_pool_size: usize,
    pub db_wait: Duration,
    pub db_statement_timeout: Duration,
    pub dapr_http_endpoint: String,
    pub dapr_api_token: Option<String>,
    pub pubsub_name: String,
    pub dapr_timeout: Duration,
    pub request_timeout: Duration,
    pub shutdown_grace: Duration,
    pub max_body_bytes: usize,
    pub log_format: LogFormat,
    pub log_filter: String,
    pub cors: CorsPolicy,
}

impl CommonConfig {
    /// Reads the shared settings; `default_port` is the function's own.
    pub fn from_settings(s: &Settings<'_>, default_port: u16) -> Result<Self, SettingError> {
        let dapr_port: u16 = s.parsed(ENV_DAPR_HTTP_PORT, DEFAULT_DAPR_HTTP_PORT)?;
        let request_timeout = s.millis(ENV_REQUEST_TIMEOUT_MS, DEFAULT_REQUEST_TIMEOUT_MS)?;
        let db_statement_timeout =
            s.millis(ENV_DB_STATEMENT_TIMEOUT_MS, DEFAULT_DB_STATEMENT_TIMEOUT_MS)?;
        if db_statement_timeout.is_zero() || db_statement_timeout >= request_timeout {
            return Err(SettingError::Invalid {
                key: ENV_DB_STATEMENT_TIMEOUT_MS.to_owned(),
                value: db_statement_timeout.as_millis().to_string(),
                reason: format!(
                    "must be at least 1 and below REQUEST_TIMEOUT_MS ({})",
                    request_timeout.as_millis()
                ),
            });
        }
        Ok(Self {
            port: s.parsed(ENV_PORT, default_port)?,
            database_url: s.string(ENV_DATABASE_URL, DEFAULT_DATABASE_URL),
            db_pool_size: s.parsed(ENV_DB_POOL_SIZE, DEFAULT_DB_POOL_SIZE)?,
            db_wait: s.millis(ENV_DB_WAIT_MS, DEFAULT_DB_WAIT_MS)?,
            db_statement_timeout,
            dapr_http_endpoint: s.string(
                ENV_DAPR_HTTP_ENDPOINT,
                &format!("http://127.0.0.1:{dapr_port}"),
            ),
            dapr_api_token: s.optional(ENV_DAPR_API_TOKEN),
            pubsub_name: s.string(ENV_PUBSUB_NAME, DEFAULT_PUBSUB_NAME),
            dapr_timeout: s.millis(ENV_DAPR_TIMEOUT_MS, DEFAULT_DAPR_TIMEOUT_MS)?,
            request_timeout,
            shutdown_grace: s.millis(ENV_SHUTDOWN_GRACE_MS, DEFAULT_SHUTDOWN_GRACE_MS)?,
            max_body_bytes: s.parsed(ENV_MAX_BODY_BYTES, DEFAULT_MAX_BODY_BYTES)?,
            log_format: s.parsed(ENV_LOG_FORMAT, DEFAULT_LOG_FORMAT)?,
            log_filter: s.string(ENV_RUST_LOG, DEFAULT_RUST_LOG),
            cors: CorsPolicy::from_settings(s)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn defaults_and_overrides() {
        let map: HashMap<&str, &str> = [("DAPR_HTTP_PORT", "3601"), ("PORT", "9000")].into();
        let c = CommonConfig::from_settings(&Settings::new(&map), 8080).unwrap();
        assert_eq!(c.port, 9000);
        assert_eq!(c.dapr_http_endpoint, "http://127.0.0.1:3601");
        assert_eq!(c.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.db_statement_timeout, Duration::from_secs(5));
        assert_eq!(c.cors, CorsPolicy::SameOrigin);
    }

    #[test]
    fn the_statement_timeout_stays_within_the_request_timeout() {
        for (statement, request) in [("0", "10000"), ("10000", "10000"), ("3000", "2000")] {
            let map: HashMap<&str, &str> = [
                ("DB_STATEMENT_TIMEOUT_MS", statement),
                ("REQUEST_TIMEOUT_MS", request),
            ]
            .into();
            let err = CommonConfig::from_settings(&Settings::new(&map), 8080).unwrap_err();
            assert!(
                err.to_string().starts_with("DB_STATEMENT_TIMEOUT_MS="),
                "{err}"
            );
        }
        let map: HashMap<&str, &str> = [("DB_STATEMENT_TIMEOUT_MS", "2000")].into();
        let c = CommonConfig::from_settings(&Settings::new(&map), 8080).unwrap();
        assert_eq!(c.db_statement_timeout, Duration::from_secs(2));
    }

    #[test]
    fn bad_values_fail_with_the_variable_name() {
        let map: HashMap<&str, &str> = [("SHUTDOWN_GRACE_MS", "soon")].into();
        let err = CommonConfig::from_settings(&Settings::new(&map), 8080).unwrap_err();
        assert!(err.to_string().starts_with("SHUTDOWN_GRACE_MS="), "{err}");
    }
}
