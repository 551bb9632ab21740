//! sync-gateway's configuration: the shared settings, auth, the callback
//! token, and the socket limits. Every `ENV_X` sits beside its `DEFAULT_X`.

use std::time::Duration;

use auth::AuthConfig;
use dapr_http::AppToken;
use service::config::CommonConfig;
use settings::{SettingError, Settings};

use crate::session::SessionConfig;
use crate::web::{self, WebConfig};

pub const DEFAULT_PORT: u16 = 8090;
/// task-api, whose change feed replays resumes.
pub const ENV_TASK_API_URL: &str = "TASK_API_URL";
pub const DEFAULT_TASK_API_URL: &str = "http://127.0.0.1:8080";
/// Per change-feed call. Long enough for a task-api cold start: in the
/// scale-to-zero profile task-api may be at zero when a socket opens, and
/// the activator holds the request while a pod and its daprd start; a
/// shorter limit turns each such hello into a 1013 and a reconnect.
pub const ENV_FEED_TIMEOUT_MS: &str = "FEED_TIMEOUT_MS";
pub const DEFAULT_FEED_TIMEOUT_MS: u64 = 15_000;
/// A socket without a valid `auth` message (or header) by then is closed
/// with 4401.
pub const ENV_WS_AUTH_TIMEOUT_MS: &str = "WS_AUTH_TIMEOUT_MS";
pub const DEFAULT_WS_AUTH_TIMEOUT_MS: u64 = 5_000;
/// WebSocket ping period; browsers answer pings by themselves.
pub const ENV_WS_PING_INTERVAL_MS: &str = "WS_PING_INTERVAL_MS";
pub const DEFAULT_WS_PING_INTERVAL_MS: u64 = 20_000;
/// Closed with 4408 when nothing (a message, a pong) came for this long;
/// more than one ping period, so one lost pong is not fatal.
pub const ENV_WS_IDLE_TIMEOUT_MS: &str = "WS_IDLE_TIMEOUT_MS";
pub const DEFAULT_WS_IDLE_TIMEOUT_MS: u64 = 60_000;
/// Live events queued per socket; a client that falls further behind is
/// closed with 4429 and resumes.
pub const ENV_WS_QUEUE: &str = "WS_QUEUE_CAPACITY";
pub const DEFAULT_WS_QUEUE: usize = 256;
/// Queued events written per flush.
pub const ENV_WS_BURST: &str = "WS_BURST";
pub const DEFAULT_WS_BURST: usize = 64;
/// How long one write may wait on a client that does not read; then the
/// socket is closed with 4429 (the client resumes). Also bounds how long
/// a stalled client can hold off the idle timeout, expiry and shutdown.
pub const ENV_WS_WRITE_TIMEOUT_MS: &str = "WS_WRITE_TIMEOUT_MS";
pub const DEFAULT_WS_WRITE_TIMEOUT_MS: u64 = 10_000;
/// One catch-up from the change feed this long after a hello (0: none),
/// for sockets opened before this replica received its first push. A
/// replica's consumer group starts at the newest offset when it joins
/// (`initialOffset: newest`; components-contrib 1.18.3
/// common/component/kafka/utils.go, parseInitialOffset: sarama.OffsetNewest);
/// a socket accepted before that misses what is published in between, and
/// without this would notice only with the user's next change.
pub const ENV_WS_SETTLE_CATCHUP_MS: &str = "WS_SETTLE_CATCHUP_MS";
pub const DEFAULT_WS_SETTLE_CATCHUP_MS: u64 = 5_000;
/// A catch-up whenever a socket got no live event for this long (0: none),
/// so a missed push waits at most this long for the next change.
pub const ENV_WS_HEAD_CHECK_MS: &str = "WS_HEAD_CHECK_MS";
pub const DEFAULT_WS_HEAD_CHECK_MS: u64 = 300_000;
/// Sockets on this replica; an upgrade beyond is a 503.
pub const ENV_WS_MAX_SOCKETS: &str = "WS_MAX_SOCKETS";
pub const DEFAULT_WS_MAX_SOCKETS: usize = 20_000;
/// Sockets on this replica still waiting for their `auth` message (no
/// token in the upgrade's header); an upgrade beyond is a 503.
pub const ENV_WS_MAX_PENDING_AUTH: &str = "WS_MAX_PENDING_AUTH";
pub const DEFAULT_WS_MAX_PENDING_AUTH: usize = 1_000;
/// Sockets of one user on this replica; one more is closed with 1013.
pub const ENV_WS_MAX_SOCKETS_PER_USER: &str = "WS_MAX_SOCKETS_PER_USER";
pub const DEFAULT_WS_MAX_SOCKETS_PER_USER: usize = 100;
/// Resumes one socket may ask for per minute; one more closes it (1013).
pub const ENV_WS_RESUMES_PER_MINUTE: &str = "WS_RESUMES_PER_MINUTE";
pub const DEFAULT_WS_RESUMES_PER_MINUTE: u32 = 30;
/// Change-feed replays running at once on this replica; a socket that
/// waits longer than WS_WRITE_TIMEOUT_MS for one is closed with 1013.
pub const ENV_WS_MAX_REPLAYS: &str = "WS_MAX_REPLAYS";
pub const DEFAULT_WS_MAX_REPLAYS: usize = 64;
/// Events per change-feed page when replaying (task-api allows 1000).
pub const ENV_WS_REPLAY_PAGE: &str = "WS_REPLAY_PAGE";
pub const DEFAULT_WS_REPLAY_PAGE: i64 = 500;
/// tungstenite's read buffer per socket (its default is 128 KiB; client
/// messages are small, so a few KiB keep idle sockets cheap).
pub const ENV_WS_READ_BUFFER: &str = "WS_READ_BUFFER_BYTES";
pub const DEFAULT_WS_READ_BUFFER: usize = 4 * 1024;
/// tungstenite writes once this much is buffered (or on flush).
pub const ENV_WS_WRITE_BUFFER: &str = "WS_WRITE_BUFFER_BYTES";
pub const DEFAULT_WS_WRITE_BUFFER: usize = 4 * 1024;
/// Largest client message; a token is the biggest thing a client sends.
pub const ENV_WS_MAX_MESSAGE: &str = "WS_MAX_MESSAGE_BYTES";
pub const DEFAULT_WS_MAX_MESSAGE: usize = 16 * 1024;

/// The browser client's compiled files (web/dist), served at `/`. Unset:
/// `web/dist` under the working directory when it holds a page (the
/// repo's build output), else no page; set: it must hold index.html.
pub const ENV_WEB_DIR: &str = "WEB_DIR";
pub const DEFAULT_WEB_DIR: &str = "web/dist";
/// task-api's base URL as the browser reaches it, for the page's REST
/// calls (`/config.json`); empty: the page's own origin (the public route).
pub const ENV_WEB_API_URL: &str = "WEB_API_URL";
pub const DEFAULT_WEB_API_URL: &str = "";

/// tungstenite's buffers and limits per socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketBuffers {
    pub read: usize,
    pub write: usize,
    pub max_message: usize,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    pub auth: AuthConfig,
    /// Who may push (`/dapr/subscribe`, `/events/task-updates`).
    pub callbacks: AppToken,
    pub task_api_url: String,
    pub feed_timeout: Duration,
    pub session: SessionConfig,
    pub queue: usize,
    pub buffers: SocketBuffers,
    pub max_sockets: usize,
    pub max_pending_auth: usize,
    pub max_replays: usize,
    pub web: WebConfig,
}

impl Config {
    pub fn from_settings(s: &Settings<'_>) -> Result<Self, SettingError> {
        let session = SessionConfig {
            auth_timeout: s.millis(ENV_WS_AUTH_TIMEOUT_MS, DEFAULT_WS_AUTH_TIMEOUT_MS)?,
            ping_interval: s.millis(ENV_WS_PING_INTERVAL_MS, DEFAULT_WS_PING_INTERVAL_MS)?,
            idle_timeout: s.millis(ENV_WS_IDLE_TIMEOUT_MS, DEFAULT_WS_IDLE_TIMEOUT_MS)?,
            replay_page: s.parsed(ENV_WS_REPLAY_PAGE, DEFAULT_WS_REPLAY_PAGE)?,
            burst: s.parsed(ENV_WS_BURST, DEFAULT_WS_BURST)?,
            write_timeout: s.millis(ENV_WS_WRITE_TIMEOUT_MS, DEFAULT_WS_WRITE_TIMEOUT_MS)?,
            settle: s.millis(ENV_WS_SETTLE_CATCHUP_MS, DEFAULT_WS_SETTLE_CATCHUP_MS)?,
            head_check: s.millis(ENV_WS_HEAD_CHECK_MS, DEFAULT_WS_HEAD_CHECK_MS)?,
            max_per_user: at_least_one(
                s,
                ENV_WS_MAX_SOCKETS_PER_USER,
                DEFAULT_WS_MAX_SOCKETS_PER_USER,
            )?,
            resumes_per_minute: s
                .parsed(ENV_WS_RESUMES_PER_MINUTE, DEFAULT_WS_RESUMES_PER_MINUTE)?,
        };
        if session.ping_interval.is_zero() || session.idle_timeout <= session.ping_interval {
            return Err(invalid(
                ENV_WS_IDLE_TIMEOUT_MS,
                session.idle_timeout.as_millis(),
                "must be longer than WS_PING_INTERVAL_MS (at least 1)",
            ));
        }
        if !(1..=1000).contains(&session.replay_page) {
            return Err(invalid(
                ENV_WS_REPLAY_PAGE,
                session.replay_page,
                "must be 1 to 1000",
            ));
        }
        if session.burst == 0 || session.auth_timeout.is_zero() {
            return Err(invalid(
                ENV_WS_BURST,
                session.burst,
                "WS_BURST and WS_AUTH_TIMEOUT_MS must be at least 1",
            ));
        }
        if session.write_timeout.is_zero() {
            return Err(invalid(ENV_WS_WRITE_TIMEOUT_MS, 0, "must be at least 1"));
        }
        if session.resumes_per_minute == 0 {
            return Err(invalid(ENV_WS_RESUMES_PER_MINUTE, 0, "must be at least 1"));
        }
        let queue: usize = s.parsed(ENV_WS_QUEUE, DEFAULT_WS_QUEUE)?;
        if queue == 0 {
            return Err(invalid(ENV_WS_QUEUE, queue, "must be at least 1"));
        }
        Ok(Self {
            common: CommonConfig::from_settings(s, DEFAULT_PORT)?,
            auth: AuthConfig::from_settings(s)?,
            callbacks: AppToken::from_settings(s)?,
            task_api_url: s.string(ENV_TASK_API_URL, DEFAULT_TASK_API_URL),
            feed_timeout: s.millis(ENV_FEED_TIMEOUT_MS, DEFAULT_FEED_TIMEOUT_MS)?,
            session,
            queue,
            buffers: SocketBuffers {
                read: s.parsed(ENV_WS_READ_BUFFER, DEFAULT_WS_READ_BUFFER)?,
                write: s.parsed(ENV_WS_WRITE_BUFFER, DEFAULT_WS_WRITE_BUFFER)?,
                max_message: s.parsed(ENV_WS_MAX_MESSAGE, DEFAULT_WS_MAX_MESSAGE)?,
            },
            web: web_config(s)?,
            max_sockets: at_least_one(s, ENV_WS_MAX_SOCKETS, DEFAULT_WS_MAX_SOCKETS)?,
            max_pending_auth: at_least_one(
                s,
                ENV_WS_MAX_PENDING_AUTH,
                DEFAULT_WS_MAX_PENDING_AUTH,
            )?,
            max_replays: at_least_one(s, ENV_WS_MAX_REPLAYS, DEFAULT_WS_MAX_REPLAYS)?,
        })
    }
}

fn web_config(s: &Settings<'_>) -> Result<WebConfig, SettingError> {
    let api_url = s.string(ENV_WEB_API_URL, DEFAULT_WEB_API_URL);
    if !api_url.is_empty() && web::api_origin(&api_url).is_none() {
        return Err(invalid(
            ENV_WEB_API_URL,
            &api_url,
            "must be an http(s) URL (or empty for the page's own origin)",
        ));
    }
    let dir = match s.optional(ENV_WEB_DIR) {
        Some(dir) => {
            let dir = std::path::PathBuf::from(dir);
            web::check_dir(&dir).map_err(|reason| invalid(ENV_WEB_DIR, dir.display(), &reason))?;
            Some(dir)
        }
        None => {
            let dir = std::path::PathBuf::from(DEFAULT_WEB_DIR);
            web::check_dir(&dir).is_ok().then_some(dir)
        }
    };
    Ok(WebConfig { dir, api_url })
}

fn at_least_one(s: &Settings<'_>, key: &str, default: usize) -> Result<usize, SettingError> {
    let value: usize = s.parsed(key, default)?;
    if value == 0 {
        return Err(invalid(key, 0, "must be at least 1"));
    }
    Ok(value)
}

fn invalid(key: &str, value: impl ToString, reason: &str) -> SettingError {
    SettingError::Invalid {
        key: key.to_owned(),
        value: value.to_string(),
        reason: reason.to_owned(),
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
    fn defaults_are_the_documented_ones() {
        let c = config(&[]).unwrap();
        assert_eq!(c.common.port, 8090);
        assert_eq!(c.task_api_url, "http://127.0.0.1:8080");
        assert_eq!(c.session.idle_timeout, Duration::from_secs(60));
        assert_eq!(c.buffers.read, 4096);
        assert_eq!(c.queue, 256);
        assert_eq!(c.web.api_url, "");
        assert_eq!(c.max_pending_auth, 1_000);
    }

    #[test]
    fn a_named_page_directory_must_hold_a_page() {
        let err = config(&[("WEB_DIR", "/nonexistent/web")]).unwrap_err();
        assert!(err.to_string().contains("WEB_DIR"), "{err}");
        let err = config(&[("WEB_API_URL", "ftp://x")]).unwrap_err();
        assert!(err.to_string().contains("WEB_API_URL"), "{err}");
        let c = config(&[("WEB_API_URL", "http://127.0.0.1:8080")]).unwrap();
        assert_eq!(c.web.api_url, "http://127.0.0.1:8080");
    }

    #[test]
    fn impossible_limits_stop_the_start() {
        for (key, value) in [
            ("WS_IDLE_TIMEOUT_MS", "1000"),
            ("WS_REPLAY_PAGE", "5000"),
            ("WS_QUEUE_CAPACITY", "0"),
            ("WS_BURST", "0"),
            ("WS_WRITE_TIMEOUT_MS", "0"),
            ("WS_MAX_SOCKETS", "0"),
            ("WS_MAX_PENDING_AUTH", "0"),
            ("WS_MAX_SOCKETS_PER_USER", "0"),
            ("WS_MAX_REPLAYS", "0"),
            ("WS_RESUMES_PER_MINUTE", "0"),
        ] {
            let err = config(&[(key, value)]).unwrap_err();
            assert!(err.to_string().contains(key), "{key}: {err}");
        }
        assert!(config(&[]).is_ok());
    }

    #[test]
    fn the_push_routes_need_a_token_or_an_explicit_opening() {
        let mut map: HashMap<&str, &str> = HashMap::new();
        map.insert("JWT_HS256_SECRET", "0123456789abcdef0123456789abcdef");
        assert!(Config::from_settings(&Settings::new(&map)).is_err());
    }
}
