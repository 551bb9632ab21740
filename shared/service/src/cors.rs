//! CORS for browsers served from another origin, for setups without the one
//! public origin (knative/base/edge routes every function under one host,
//! where no browser needs CORS).
//!
//! `CORS_ALLOWED_ORIGINS` lists exact origins (`https://app.example.com`),
//! comma-separated. Empty (the default) adds no CORS header at all, so only
//! same-origin pages may read the answers. `*` is refused unless
//! `CORS_ALLOW_ANY_ORIGIN=true`, a development setting; a malformed origin
//! stops the function at start (fail closed: a typo must not silently leave
//! the allowed page locked out, or let a look-alike in).
//!
//! Every function applies [`CorsPolicy::apply`] to its whole router in
//! `main`. The layer is tower-http's `CorsLayer`: a preflight (`OPTIONS` with
//! `Access-Control-Request-Method`) is answered by the layer itself; an
//! origin that is not listed gets no `Access-Control-Allow-Origin`, which is
//! what makes the browser refuse the answer (Fetch standard, "CORS check").
//! The layer still sends the method and header lists and `Vary` to such an
//! origin; without the allow-origin header they grant nothing, and `Vary:
//! origin` keeps caches from serving one origin's answer to another.
//!
//! Tokens travel in `Authorization`, never in cookies, so credentials stay
//! off (`Access-Control-Allow-Credentials` is never sent), and the gateway's
//! WebSocket needs no origin check either: a cross-site page cannot borrow a
//! user's session it never had.

use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, Method, header};
use settings::{SettingError, Settings};
use tower_http::cors::{AllowOrigin, CorsLayer};

pub const ENV_CORS_ALLOWED_ORIGINS: &str = "CORS_ALLOWED_ORIGINS";
/// No cross-origin access.
pub const DEFAULT_CORS_ALLOWED_ORIGINS: &str = "";
/// Development only: lets `CORS_ALLOWED_ORIGINS=*` answer every origin.
pub const ENV_CORS_ALLOW_ANY_ORIGIN: &str = "CORS_ALLOW_ANY_ORIGIN";
pub const DEFAULT_CORS_ALLOW_ANY_ORIGIN: bool = false;

/// How long a browser may reuse a preflight answer. Chromium caps it at two
/// hours; ten minutes keeps a changed setting from lingering.
pub const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// What the API's browsers send beyond the CORS-safelisted headers:
/// the bearer token, JSON bodies, `Idempotency-Key` on creates, `If-Match`
/// on conditional writes, and the W3C trace context the functions carry on.
const ALLOWED_HEADERS: [HeaderName; 6] = [
    header::AUTHORIZATION,
    header::CONTENT_TYPE,
    header::IF_MATCH,
    HeaderName::from_static("idempotency-key"),
    HeaderName::from_static("traceparent"),
    HeaderName::from_static("tracestate"),
];

/// Response headers a script may read besides the safelisted ones. The
/// lists page in their bodies (`next_cursor`, `next_offset`), so no paging
/// header exists to expose.
const EXPOSED_HEADERS: [HeaderName; 4] = [
    header::ETAG,
    header::LOCATION,
    header::RETRY_AFTER,
    HeaderName::from_static("idempotent-replayed"),
];

const ALLOWED_METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

/// Who may call from another origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsPolicy {
    /// No CORS headers: same-origin pages only.
    SameOrigin,
    /// These exact origins, as browsers serialize them.
    Origins(Vec<String>),
    /// Every origin (`*`); development only.
    AnyOrigin,
}

impl CorsPolicy {
    pub fn from_settings(s: &Settings<'_>) -> Result<Self, SettingError> {
        let raw = s.string(ENV_CORS_ALLOWED_ORIGINS, DEFAULT_CORS_ALLOWED_ORIGINS);
        let any_allowed = s.flag(ENV_CORS_ALLOW_ANY_ORIGIN, DEFAULT_CORS_ALLOW_ANY_ORIGIN)?;
        let invalid = |reason: String| SettingError::Invalid {
            key: ENV_CORS_ALLOWED_ORIGINS.to_owned(),
            value: raw.clone(),
            reason,
        };
        let entries: Vec<&str> = raw
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .collect();
        if entries.contains(&"*") {
            if entries.len() > 1 {
                return Err(invalid("`*` cannot be combined with origins".into()));
            }
            if !any_allowed {
                return Err(invalid(format!(
                    "`*` lets every site read the API; list exact origins, or set \
                     {ENV_CORS_ALLOW_ANY_ORIGIN}=true (development only)"
                )));
            }
            return Ok(Self::AnyOrigin);
        }
        if entries.is_empty() {
            return Ok(Self::SameOrigin);
        }
        let mut origins = Vec::with_capacity(entries.len());
        for entry in entries {
            let origin = parse_origin(entry).map_err(|why| invalid(format!("{entry:?}: {why}")))?;
            if !origins.contains(&origin) {
                origins.push(origin);
            }
        }
        Ok(Self::Origins(origins))
    }

    /// The layer, or `None` for [`CorsPolicy::SameOrigin`].
    pub fn layer(&self) -> Option<CorsLayer> {
        let allow = match self {
            Self::SameOrigin => return None,
            Self::AnyOrigin => AllowOrigin::any(),
            Self::Origins(origins) => AllowOrigin::list(
                // Checked by `parse_origin`: ASCII without control bytes.
                origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()),
            ),
        };
        Some(
            CorsLayer::new()
                .allow_origin(allow)
                .allow_methods(ALLOWED_METHODS.to_vec())
                .allow_headers(ALLOWED_HEADERS.to_vec())
                .expose_headers(EXPOSED_HEADERS.to_vec())
                .max_age(PREFLIGHT_MAX_AGE),
        )
    }

    /// The function's whole router with this policy on every route (its
    /// fallback included, so a preflight to any path is answered alike).
    /// Called once, at start, so it also logs the posture.
    pub fn apply(&self, router: Router) -> Router {
        self.log_posture();
        match self.layer() {
            Some(layer) => router.layer(layer),
            None => router,
        }
    }

    /// One line at start, so the log says who may call cross-origin.
    fn log_posture(&self) {
        match self {
            Self::SameOrigin => tracing::info!("CORS off: same-origin pages only"),
            Self::Origins(origins) => tracing::info!(?origins, "CORS on for these origins"),
            Self::AnyOrigin => tracing::warn!(
                "CORS_ALLOW_ANY_ORIGIN is on: every site may call this API (development only)"
            ),
        }
    }
}

/// Checks one configured origin: `scheme://host[:port]` exactly as a browser
/// sends it in `Origin` (lowercase, no path, no default port), since the
/// match is by string equality.
fn parse_origin(raw: &str) -> Result<String, String> {
    let (scheme, authority) = raw
        .split_once("://")
        .ok_or("an origin is scheme://host[:port]")?;
    let default_port = match scheme {
        "https" => "443",
        "http" => "80",
        _ => return Err("the scheme must be http or https, in lowercase".into()),
    };
    if authority.contains(['/', '?', '#', '@']) {
        return Err("an origin has no path, query, fragment or user".into());
    }
    let (host, port) = split_port(authority);
    if let Some(port) = port {
        match port.parse::<u16>() {
            Ok(0) | Err(_) => return Err(format!("port {port:?} is not a port")),
            Ok(_) if port == default_port => {
                return Err(format!(
                    "browsers omit the default port {default_port}: leave it out"
                ));
            }
            Ok(_) if port.starts_with('0') => return Err("write the port without zeros".into()),
            Ok(_) => {}
        }
    }
    if !valid_host(host) {
        return Err("the host must be a lowercase DNS name (punycode), IPv4 or [IPv6]".into());
    }
    Ok(raw.to_owned())
}

/// `host:port` into its parts; a bracketed IPv6 host keeps its colons.
fn split_port(authority: &str) -> (&str, Option<&str>) {
    let port_colon = match authority.rfind(']') {
        Some(end) => authority[end..].find(':').map(|i| end + i),
        None => authority.rfind(':'),
    };
    match port_colon {
        Some(i) => (&authority[..i], Some(&authority[i + 1..])),
        None => (authority, None),
    }
}

fn valid_host(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return !inner.is_empty()
            && inner
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, 'a'..='f' | ':' | '.'));
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
}

#[cfg(test)]
#[path = "cors_tests.rs"]
mod tests;
