//! The Web Push channel: RFC 8030 delivery of an RFC 8291 `aes128gcm`
//! message with RFC 8292 VAPID (ES256), built by `web-push-native` and
//! sent with reqwest.
//!
//! An endpoint is a URL a user hands us, so [`address`] checks it twice:
//! at registration, and again at each send against the addresses it
//! resolves to then; the request goes to exactly those addresses (a name
//! that resolved to a public address yesterday may resolve to 127.0.0.1 or
//! the cloud metadata address today), with no proxy and no redirect.
//!
//! How a failed send counts ([`PushError::is_permanent`]): a refused
//! address or keys that cannot be encrypted to fail the delivery at once
//! (the device is kept: its owner can see the failure, an admin can retry
//! it, and a refused endpoint is not evidence that the subscription
//! ended); a lookup that fails is retried, as a push service's own errors
//! are; 404/410 remove the device; 429 waits for its Retry-After.

mod address;

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use web_push_native::jwt_simple::algorithms::{ECDSAP256PublicKeyLike, ES256KeyPair};
use web_push_native::{Auth, WebPushBuilder, p256};

pub use address::{EndpointError, check_endpoint, is_public};

use crate::email::Content;

const PUSH_TIMEOUT: Duration = Duration::from_secs(10);
/// Connecting and the TLS handshake: a timeout here sent nothing.
const PUSH_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Browsers hand the keys over base64url, with or without padding.
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// 404/410: the subscription is gone; remove the device.
    #[error("subscription expired ({0})")]
    Gone(u16),
    /// 429: come back after this long.
    #[error("rate limited by the push service")]
    RetryAfter(Option<Duration>),
    #[error("endpoint refused: {0}")]
    Endpoint(#[from] EndpointError),
    /// The stored keys (or our VAPID key) cannot make a message.
    #[error("cannot encrypt to this subscription: {0}")]
    Undeliverable(String),
    #[error("push failed: {0}")]
    Failed(String),
    /// The request went out and no answer came back (a timeout or a broken
    /// connection once connected): the push service may have taken it.
    #[error("push outcome unknown: {0}")]
    Unknown(String),
}

impl PushError {
    /// Whether another attempt cannot help. A lookup failure may pass (a
    /// resolver outage); an address refused, or keys no message can be
    /// encrypted to, stay so.
    pub fn is_permanent(&self) -> bool {
        match self {
            PushError::Endpoint(EndpointError::Unresolvable) => false,
            PushError::Endpoint(_) | PushError::Undeliverable(_) | PushError::Gone(_) => true,
            PushError::RetryAfter(_) | PushError::Failed(_) | PushError::Unknown(_) => false,
        }
    }
}

/// A stored subscription, as the sender needs it.
#[derive(Debug, Clone)]
pub struct Subscription {
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
}

/// The browser's `p256dh` key: base64url of an uncompressed SEC1 P-256
/// point (65 bytes, 0x04 first, on the curve), as RFC 8291 §3.1 requires.
pub fn ua_public_key(p256dh: &str) -> Option<p256::PublicKey> {
    B64URL
        .decode(p256dh)
        .ok()
        .filter(|b| b.len() == 65 && b[0] == 0x04)
        .and_then(|b| p256::PublicKey::from_sec1_bytes(&b).ok())
}

/// The browser's `auth` secret: base64url of exactly 16 bytes (RFC 8291 §3.2).
pub fn ua_auth(auth: &str) -> Option<Auth> {
    let bytes = B64URL.decode(auth).ok().filter(|b| b.len() == 16)?;
    let mut secret = Auth::default();
    secret.copy_from_slice(&bytes);
    Some(secret)
}

#[derive(Clone)]
pub struct PushSender {
    key: std::sync::Arc<ES256KeyPair>,
    subject: String,
    ttl: Duration,
    allow_private: bool,
}

impl std::fmt::Debug for PushSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushSender")
            .field("subject", &self.subject)
            .finish()
    }
}

impl PushSender {
    /// `private_key`: base64url of the 32-byte P-256 scalar.
    pub fn new(
        private_key: &str,
        subject: &str,
        ttl: Duration,
        allow_private: bool,
    ) -> Result<Self, String> {
        let bytes = URL_SAFE_NO_PAD
            .decode(private_key.trim_end_matches('='))
            .map_err(|e| e.to_string())?;
        let key = ES256KeyPair::from_bytes(&bytes).map_err(|e| e.to_string())?;
        Ok(Self {
            key: std::sync::Arc::new(key),
            subject: subject.to_owned(),
            ttl,
            allow_private,
        })
    }

    /// The public key browsers subscribe with (`applicationServerKey`).
    pub fn public_key(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.key.public_key().public_key().to_bytes_uncompressed())
    }

    /// Checks the endpoint again (its name may resolve elsewhere by now),
    /// makes the message and posts it to the addresses just checked.
    pub async fn send(&self, to: &Subscription, content: &Content) -> Result<(), PushError> {
        let (url, addrs) = check_endpoint(&to.endpoint, self.allow_private).await?;
        let request = self.build(to, content)?;
        deliver(url, &addrs, request).await
    }

    fn build(
        &self,
        to: &Subscription,
        content: &Content,
    ) -> Result<http::Request<Vec<u8>>, PushError> {
        let bad = |what: &str| PushError::Undeliverable(format!("the stored {what} is not valid"));
        let uri: http::Uri = to.endpoint.parse().map_err(|_| bad("endpoint"))?;
        let public = ua_public_key(&to.p256dh).ok_or_else(|| bad("p256dh"))?;
        let auth = ua_auth(&to.auth).ok_or_else(|| bad("auth"))?;
        let payload = serde_json::json!({
            "title": content.title,
            "body": format!("{} {}", content.label, content.when),
            "url": content.link,
        });
        // web-push-native 0.5.0 (src/lib.rs `build`, src/vapid.rs) uses
        // this one duration for the TTL header and the VAPID token's exp.
        WebPushBuilder::new(uri, public, auth)
            .with_valid_duration(self.ttl)
            .with_vapid(&self.key, &self.subject)
            .build(payload.to_string())
            .map_err(|e| PushError::Undeliverable(e.to_string()))
    }
}

/// Posts `request` to `url`, connecting only to `addrs` (the addresses
/// the host was checked at; no second lookup that a rebinding name could
/// answer differently), through no proxy and following no redirect:
/// either would choose a destination nobody checked.
async fn deliver(
    url: reqwest::Url,
    addrs: &[SocketAddr],
    request: http::Request<Vec<u8>>,
) -> Result<(), PushError> {
    let host = url.host_str().unwrap_or_default().to_owned();
    let client = reqwest::Client::builder()
        .resolve_to_addrs(&host, addrs)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(PUSH_CONNECT_TIMEOUT)
        .timeout(PUSH_TIMEOUT)
        .build()
        .map_err(|e| PushError::Failed(e.to_string()))?;
    let (parts, body) = request.into_parts();
    let response = client
        .post(url)
        .headers(parts.headers)
        .header("Urgency", "high")
        .body(body)
        .send()
        .await
        .map_err(|e| request_error(&e))?;
    classify(response.status(), response.headers())
}

/// A connection never made (refused, unreachable, [`PUSH_CONNECT_TIMEOUT`],
/// TLS handshake) sent nothing and may be retried: reqwest 0.12.28 reports
/// those from its connector, as `is_connect` (`src/connect.rs`, the
/// connect timeout wrapping `connect_with_maybe_proxy`). Any other failure
/// (the whole-request timeout, a connection broken once made) may have
/// delivered the message.
fn request_error(error: &reqwest::Error) -> PushError {
    if error.is_connect() {
        PushError::Failed(error.to_string())
    } else {
        PushError::Unknown(error.to_string())
    }
}

fn classify(
    status: reqwest::StatusCode,
    headers: &reqwest::header::HeaderMap,
) -> Result<(), PushError> {
    match status.as_u16() {
        200..=299 => Ok(()),
        404 | 410 => Err(PushError::Gone(status.as_u16())),
        429 => Err(PushError::RetryAfter(
            headers
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| retry_after(v, chrono::Utc::now())),
        )),
        other => Err(PushError::Failed(format!("push service answered {other}"))),
    }
}

/// A push service's `Retry-After` (RFC 9110 §10.2.3: delay-seconds or an
/// HTTP-date), at most [`MAX_RETRY_AFTER`]: the value comes from a server
/// we do not control, and a delay beyond any retry schedule would only
/// park the delivery (or overflow the time it is added to).
pub fn retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        // IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") is RFC 2822
        // syntax with the obsolete zone name GMT, which chrono accepts.
        Err(_) => {
            let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
            (at.to_utc() - now).to_std().unwrap_or_default()
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// The longest a 429's `Retry-After` is honoured.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

#[cfg(test)]
mod outcome_tests;
#[cfg(test)]
mod tests;
