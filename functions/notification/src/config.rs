//! notification's configuration: the shared settings, auth, callbacks, the
//! state store, SMTP, Web Push and the retry schedule. Every `ENV_X` sits
//! beside its `DEFAULT_X`.

use std::time::Duration;

use auth::AuthConfig;
use dapr_http::AppToken;
use service::config::CommonConfig;
use settings::{SettingError, Settings};

pub const DEFAULT_PORT: u16 = 8083;

/// The Dapr state store holding the reminder view and the delivery log.
pub const ENV_STATE_STORE: &str = "NOTIFICATION_STATE_STORE";
pub const DEFAULT_STATE_STORE: &str = "statestore";
/// How long a delivery record (and a cancelled reminder's tombstone) is
/// kept after it is written; it must outlive every redelivery of the
/// trigger.
pub const ENV_RECORD_TTL_HOURS: &str = "NOTIFICATION_RECORD_TTL_HOURS";
pub const DEFAULT_RECORD_TTL_HOURS: u32 = 24 * 30;
/// Seconds between a failed send and its next attempt; after the last one
/// the delivery is recorded as failed and published to `reminders-dlq`.
pub const ENV_RETRY_DELAYS: &str = "NOTIFICATION_RETRY_DELAYS";
pub const DEFAULT_RETRY_DELAYS: &str = "1,5,25";
/// A firing more than this many seconds in the past when its event or its
/// trigger reaches the function is recorded as missed, not sent: a Kafka
/// redelivery or a `reminders-dlq` replay hours later must not remind
/// late (nor devices registered since).
pub const ENV_LATE_LIMIT_SECONDS: &str = "NOTIFICATION_LATE_LIMIT_SECONDS";
pub const DEFAULT_LATE_LIMIT_SECONDS: u64 = 900;
/// The base of the link in each reminder (`<base>/tasks/<task id>`).
pub const ENV_LINK_BASE: &str = "NOTIFICATION_LINK_BASE";
pub const DEFAULT_LINK_BASE: &str = "http://127.0.0.1:8080";

pub const ENV_SMTP_HOST: &str = "SMTP_HOST";
pub const DEFAULT_SMTP_HOST: &str = "127.0.0.1";
pub const ENV_SMTP_PORT: &str = "SMTP_PORT";
pub const DEFAULT_SMTP_PORT: u16 = 1025;
/// `starttls` (required, not opportunistic), `tls` (implicit TLS, port
/// 465) or `none` (only for a local test server such as mailpit).
pub const ENV_SMTP_TLS: &str = "SMTP_TLS";
pub const DEFAULT_SMTP_TLS: SmtpTls = SmtpTls::StartTls;
pub const ENV_SMTP_FROM: &str = "SMTP_FROM";
pub const DEFAULT_SMTP_FROM: &str = "todo-events <reminders@todo-events.local>";
/// Credentials: from the Dapr secret store when `SMTP_SECRET` names a
/// secret there (keys `username`, `password`), else from the environment.
pub const ENV_SMTP_SECRET: &str = "SMTP_SECRET";
pub const ENV_SMTP_SECRET_STORE: &str = "SMTP_SECRET_STORE";
pub const DEFAULT_SMTP_SECRET_STORE: &str = "secretstore";
pub const ENV_SMTP_USERNAME: &str = "SMTP_USERNAME";
pub const ENV_SMTP_PASSWORD: &str = "SMTP_PASSWORD";

/// The VAPID private key: base64url of the 32-byte P-256 scalar. Without
/// it the push channel is off (push deliveries are recorded as failed).
pub const ENV_VAPID_PRIVATE_KEY: &str = "VAPID_PRIVATE_KEY";
/// The contact in every VAPID token (`sub`), `mailto:` or `https:`.
pub const ENV_VAPID_SUBJECT: &str = "VAPID_SUBJECT";
pub const DEFAULT_VAPID_SUBJECT: &str = "mailto:ops@todo-events.local";
/// The push message's `TTL` header: how long a push service may hold it
/// (RFC 8030 §5.2), 1 to 86400. web-push-native also makes it the VAPID
/// token's lifetime, which RFC 8292 §2 caps at 24 hours; 0 would give a
/// token that has expired when it arrives.
pub const ENV_PUSH_TTL_SECONDS: &str = "NOTIFICATION_PUSH_TTL_SECONDS";
pub const DEFAULT_PUSH_TTL_SECONDS: u64 = 3_600;
pub const MAX_PUSH_TTL_SECONDS: u64 = 24 * 3600;
/// Test only: admits `http://` and loopback or private push endpoints, so
/// the tests' local push service can be registered and reached.
pub const ENV_PUSH_ALLOW_PRIVATE: &str = "NOTIFICATION_PUSH_ALLOW_PRIVATE_ENDPOINTS";
pub const DEFAULT_PUSH_ALLOW_PRIVATE: bool = false;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    None,
    StartTls,
    Tls,
}

impl std::str::FromStr for SmtpTls {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(SmtpTls::None),
            "starttls" => Ok(SmtpTls::StartTls),
            "tls" => Ok(SmtpTls::Tls),
            _ => Err("must be none, starttls or tls".to_owned()),
        }
    }
}

#[derive(Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub from: String,
    pub secret: Option<String>,
    pub secret_store: String,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("secret", &self.secret)
            .field("password", &self.password.as_ref().map(|_| "<set>"))
            .finish()
    }
}

#[derive(Clone)]
pub struct PushConfig {
    pub vapid_private_key: Option<String>,
    pub subject: String,
    pub ttl: Duration,
    pub allow_private: bool,
}

impl std::fmt::Debug for PushConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushConfig")
            .field("vapid", &self.vapid_private_key.as_ref().map(|_| "<set>"))
            .field("subject", &self.subject)
            .field("allow_private", &self.allow_private)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    pub auth: AuthConfig,
    pub callbacks: AppToken,
    pub state_store: String,
    pub record_ttl: Duration,
    pub retry_delays: Vec<Duration>,
    pub late_limit: Duration,
    pub link_base: String,
    pub smtp: SmtpConfig,
    pub push: PushConfig,
}

impl Config {
    pub fn from_settings(s: &Settings<'_>) -> Result<Self, SettingError> {
        let ttl_hours: u32 = s.parsed(ENV_RECORD_TTL_HOURS, DEFAULT_RECORD_TTL_HOURS)?;
        if ttl_hours == 0 {
            return Err(invalid(ENV_RECORD_TTL_HOURS, "0", "must be at least 1"));
        }
        Ok(Self {
            common: CommonConfig::from_settings(s, DEFAULT_PORT)?,
            auth: AuthConfig::from_settings(s)?,
            callbacks: AppToken::from_settings(s)?,
            state_store: s.string(ENV_STATE_STORE, DEFAULT_STATE_STORE),
            record_ttl: Duration::from_secs(u64::from(ttl_hours) * 3600),
            retry_delays: retry_delays(&s.string(ENV_RETRY_DELAYS, DEFAULT_RETRY_DELAYS))?,
            late_limit: late_limit(s.parsed(ENV_LATE_LIMIT_SECONDS, DEFAULT_LATE_LIMIT_SECONDS)?)?,
            link_base: s
                .string(ENV_LINK_BASE, DEFAULT_LINK_BASE)
                .trim_end_matches('/')
                .to_owned(),
            smtp: SmtpConfig {
                host: s.string(ENV_SMTP_HOST, DEFAULT_SMTP_HOST),
                port: s.parsed(ENV_SMTP_PORT, DEFAULT_SMTP_PORT)?,
                tls: s.parsed(ENV_SMTP_TLS, DEFAULT_SMTP_TLS)?,
                from: smtp_from(&s.string(ENV_SMTP_FROM, DEFAULT_SMTP_FROM))?,
                secret: s.optional(ENV_SMTP_SECRET).filter(|v| !v.is_empty()),
                secret_store: s.string(ENV_SMTP_SECRET_STORE, DEFAULT_SMTP_SECRET_STORE),
                username: s.optional(ENV_SMTP_USERNAME).filter(|v| !v.is_empty()),
                password: s.optional(ENV_SMTP_PASSWORD).filter(|v| !v.is_empty()),
            },
            push: PushConfig {
                vapid_private_key: s.optional(ENV_VAPID_PRIVATE_KEY).filter(|v| !v.is_empty()),
                subject: s.string(ENV_VAPID_SUBJECT, DEFAULT_VAPID_SUBJECT),
                ttl: push_ttl(s.parsed(ENV_PUSH_TTL_SECONDS, DEFAULT_PUSH_TTL_SECONDS)?)?,
                allow_private: s.flag(ENV_PUSH_ALLOW_PRIVATE, DEFAULT_PUSH_ALLOW_PRIVATE)?,
            },
        })
    }
}

impl std::fmt::Display for SmtpTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SmtpTls::None => "none",
            SmtpTls::StartTls => "starttls",
            SmtpTls::Tls => "tls",
        })
    }
}

fn smtp_from(value: &str) -> Result<String, SettingError> {
    value
        .parse::<lettre::message::Mailbox>()
        .map(|_| value.to_owned())
        .map_err(|e| invalid(ENV_SMTP_FROM, value, &e.to_string()))
}

/// At least 10 s (a trigger on time arrives within milliseconds; the
/// margin covers a restart), at most a week.
fn late_limit(seconds: u64) -> Result<Duration, SettingError> {
    if !(10..=7 * 24 * 3600).contains(&seconds) {
        return Err(invalid(
            ENV_LATE_LIMIT_SECONDS,
            &seconds.to_string(),
            "seconds, 10 to 604800",
        ));
    }
    Ok(Duration::from_secs(seconds))
}

/// The push TTL, bounded as [`ENV_PUSH_TTL_SECONDS`] says.
fn push_ttl(seconds: u64) -> Result<Duration, SettingError> {
    if !(1..=MAX_PUSH_TTL_SECONDS).contains(&seconds) {
        return Err(invalid(
            ENV_PUSH_TTL_SECONDS,
            &seconds.to_string(),
            "seconds, 1 to 86400 (a VAPID token lives at most 24 hours)",
        ));
    }
    Ok(Duration::from_secs(seconds))
}

/// `1,5,25` → three delays; at most 10, each 1 s to 1 h.
fn retry_delays(value: &str) -> Result<Vec<Duration>, SettingError> {
    let bad = || {
        invalid(
            ENV_RETRY_DELAYS,
            value,
            "comma-separated seconds, 1 to 3600, at most 10",
        )
    };
    let delays = value
        .split(',')
        .map(|part| part.trim().parse::<u64>().map_err(|_| bad()))
        .collect::<Result<Vec<u64>, _>>()?;
    if delays.len() > 10 || delays.iter().any(|d| !(1..=3600).contains(d)) {
        return Err(bad());
    }
    Ok(delays.into_iter().map(Duration::from_secs).collect())
}

fn invalid(key: &str, value: &str, reason: &str) -> SettingError {
    SettingError::Invalid {
        key: key.to_owned(),
        value: value.to_owned(),
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn with(extra: &[(&'static str, &'static str)]) -> Result<Config, SettingError> {
        let mut map: HashMap<&str, &str> =
            [("JWT_HS256_SECRET", SECRET), ("APP_API_TOKEN", "t")].into();
        map.extend(extra.iter().copied());
        Config::from_settings(&Settings::new(&map))
    }

    #[test]
    fn defaults_are_safe() {
        let c = with(&[]).unwrap();
        assert_eq!(c.common.port, 8083);
        assert_eq!(
            c.smtp.tls,
            SmtpTls::StartTls,
            "TLS unless opened on purpose"
        );
        assert_eq!(c.smtp.port, 1025);
        assert!(!c.push.allow_private);
        assert_eq!(c.retry_delays, [1, 5, 25].map(Duration::from_secs).to_vec());
        assert_eq!(c.state_store, "statestore");
        assert_eq!(c.late_limit, Duration::from_secs(900));
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (key, value) in [
            (ENV_SMTP_TLS, "maybe"),
            (ENV_RETRY_DELAYS, "1,,5"),
            (ENV_RETRY_DELAYS, "0"),
            (ENV_SMTP_FROM, "not an address"),
            (ENV_RECORD_TTL_HOURS, "0"),
            (ENV_PUSH_ALLOW_PRIVATE, "perhaps"),
            (ENV_PUSH_TTL_SECONDS, "0"),
            (ENV_PUSH_TTL_SECONDS, "86401"),
            (ENV_PUSH_TTL_SECONDS, "-1"),
            (ENV_PUSH_TTL_SECONDS, "1h"),
            (ENV_LATE_LIMIT_SECONDS, "0"),
            (ENV_LATE_LIMIT_SECONDS, "9"),
            (ENV_LATE_LIMIT_SECONDS, "-5"),
        ] {
            let err = with(&[(key, value)]).unwrap_err();
            assert!(err.to_string().starts_with(key), "{err}");
        }
    }

    #[test]
    fn the_push_ttl_takes_its_whole_range() {
        for (value, seconds) in [("1", 1), ("86400", 86_400)] {
            let c = with(&[(ENV_PUSH_TTL_SECONDS, value)]).unwrap();
            assert_eq!(c.push.ttl, Duration::from_secs(seconds));
        }
        assert_eq!(with(&[]).unwrap().push.ttl, Duration::from_secs(3600));
    }

    #[test]
    fn secrets_are_not_debug_printed() {
        let c = with(&[
            (ENV_SMTP_PASSWORD, "hunter2"),
            (ENV_VAPID_PRIVATE_KEY, "k3y"),
        ])
        .unwrap();
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("k3y"),
            "{shown}"
        );
    }
}
