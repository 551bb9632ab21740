//! The Web Push channel: RFC 8030 delivery of an RFC 8291 `aes128gcm`
//! message with RFC 8292 VAPID (ES256), built by `web-push-native` and
//! sent with reqwest, and the guard that keeps push endpoints public.
//!
//! An endpoint is a URL a user hands us, so it is checked twice: at
//! registration, and again at send time against the addresses it resolves
//! to then, and the request goes to exactly those addresses (a name that
//! resolved to a public address yesterday may resolve to 127.0.0.1 or the
//! cloud metadata address today).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use web_push_native::jwt_simple::algorithms::{ECDSAP256PublicKeyLike, ES256KeyPair};
use web_push_native::{Auth, WebPushBuilder, p256};

use crate::email::Content;

const PUSH_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EndpointError {
    #[error("the endpoint must be an https URL")]
    NotHttps,
    #[error("the endpoint's host does not resolve")]
    Unresolvable,
    #[error("the endpoint's host resolves to a non-public address")]
    NotPublic,
}

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
    #[error("push failed: {0}")]
    Failed(String),
}

/// A stored subscription, as the sender needs it.
#[derive(Debug, Clone)]
pub struct Subscription {
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
}

/// Whether `ip` is a public unicast address (not loopback, private, CGNAT,
/// link-local (which holds the 169.254.169.254 metadata service),
/// unique-local, multicast, documentation or unspecified).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0)
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || first == 0x2001 && ip.segments()[1] == 0x0db8
        || first == 0x0064)
}

/// Resolves `endpoint` and checks every address. With `allow_private`
/// (tests only) `http://` and any address pass.
pub async fn check_endpoint(
    endpoint: &str,
    allow_private: bool,
) -> Result<(reqwest::Url, Vec<SocketAddr>), EndpointError> {
    let url = reqwest::Url::parse(endpoint).map_err(|_| EndpointError::NotHttps)?;
    let scheme_ok = url.scheme() == "https" || (allow_private && url.scheme() == "http");
    let host = url
        .host_str()
        .filter(|_| scheme_ok)
        .ok_or(EndpointError::NotHttps)?;
    let port = url.port_or_known_default().ok_or(EndpointError::NotHttps)?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|_| EndpointError::Unresolvable)?
        .collect();
    if addrs.is_empty() {
        return Err(EndpointError::Unresolvable);
    }
    if !allow_private && !addrs.iter().all(|a| is_public(a.ip())) {
        return Err(EndpointError::NotPublic);
    }
    Ok((url, addrs))
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

    pub async fn send(&self, to: &Subscription, content: &Content) -> Result<(), PushError> {
        let (url, addrs) = check_endpoint(&to.endpoint, self.allow_private).await?;
        let request = self.build(to, content)?;
        let host = url.host_str().unwrap_or_default().to_owned();
        // Pinned to the addresses just checked: no second lookup.
        let client = reqwest::Client::builder()
            .resolve_to_addrs(&host, &addrs)
            .redirect(reqwest::redirect::Policy::none())
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
            .map_err(|e| PushError::Failed(e.to_string()))?;
        classify(response.status(), response.headers())
    }

    fn build(
        &self,
        to: &Subscription,
        content: &Content,
    ) -> Result<http::Request<Vec<u8>>, PushError> {
        let bad = |what: &str| PushError::Failed(format!("stored subscription has a bad {what}"));
        let uri: http::Uri = to.endpoint.parse().map_err(|_| bad("endpoint"))?;
        let public = URL_SAFE_NO_PAD
            .decode(to.p256dh.trim_end_matches('='))
            .ok()
            .and_then(|b| p256::PublicKey::from_sec1_bytes(&b).ok())
            .ok_or_else(|| bad("p256dh"))?;
        let auth = URL_SAFE_NO_PAD
            .decode(to.auth.trim_end_matches('='))
            .ok()
            .filter(|b| b.len() == 16)
            .ok_or_else(|| bad("auth"))?;
        let payload = serde_json::json!({
            "title": content.title,
            "body": format!("Due {}", content.when),
            "url": content.link,
        });
        let mut ua_auth = Auth::default();
        ua_auth.copy_from_slice(&auth);
        WebPushBuilder::new(uri, public, ua_auth)
            .with_valid_duration(self.ttl)
            .with_vapid(&self.key, &self.subject)
            .build(payload.to_string())
            .map_err(|e| PushError::Failed(e.to_string()))
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
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs),
        )),
        other => Err(PushError::Failed(format!("push service answered {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_link_local_and_metadata_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "224.0.0.1",
            "255.255.255.255",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "142.250.185.10", "2a00:1450:4001::1"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn endpoints_are_refused_unless_https_and_public() {
        assert_eq!(
            check_endpoint("http://example.com/x", false)
                .await
                .unwrap_err(),
            EndpointError::NotHttps
        );
        for url in [
            "https://127.0.0.1/x",
            "https://[::1]/x",
            "https://169.254.169.254/latest",
            "https://localhost/x",
        ] {
            assert_eq!(
                check_endpoint(url, false).await.unwrap_err(),
                EndpointError::NotPublic,
                "{url}"
            );
        }
        assert!(check_endpoint("http://127.0.0.1:9/x", true).await.is_ok());
    }

    #[test]
    fn gone_and_rate_limits_are_told_apart() {
        let mut headers = reqwest::header::HeaderMap::new();
        assert!(matches!(
            classify(reqwest::StatusCode::GONE, &headers),
            Err(PushError::Gone(410))
        ));
        assert!(matches!(
            classify(reqwest::StatusCode::NOT_FOUND, &headers),
            Err(PushError::Gone(404))
        ));
        headers.insert(reqwest::header::RETRY_AFTER, "7".parse().unwrap());
        assert!(matches!(
            classify(reqwest::StatusCode::TOO_MANY_REQUESTS, &headers),
            Err(PushError::RetryAfter(Some(d))) if d == Duration::from_secs(7)
        ));
        assert!(classify(reqwest::StatusCode::CREATED, &headers).is_ok());
    }
}
