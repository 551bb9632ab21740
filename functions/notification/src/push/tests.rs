//! The real sender against local listeners: what it refuses at send time
//! (nothing reaches the wire), how each failure counts, and that the
//! request goes only to the checked address (pinned, no proxy, no
//! redirect).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

/// A browser's key pair's public half and auth secret (valid: checked
/// below), as a subscription stored earlier holds them.
const P256DH: &str =
    "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM";
const AUTH: &str = "tBHItJI5svbpez7KI4CCXg";

fn sender(allow_private: bool) -> PushSender {
    let key = URL_SAFE_NO_PAD.encode(ES256KeyPair::generate().to_bytes());
    PushSender::new(
        &key,
        "mailto:t@example.com",
        Duration::from_secs(60),
        allow_private,
    )
    .unwrap()
}

fn subscription(endpoint: &str) -> Subscription {
    Subscription {
        endpoint: endpoint.to_owned(),
        p256dh: P256DH.to_owned(),
        auth: AUTH.to_owned(),
    }
}

fn content() -> Content {
    Content {
        title: "Pay rent".into(),
        label: "Due",
        when: "today".into(),
        link: "http://x/tasks/1".into(),
    }
}

/// A listener that counts connections and answers each with `reply`.
async fn server(reply: &'static str) -> (SocketAddr, Arc<AtomicUsize>) {
    serve(TcpListener::bind("127.0.0.1:0").await.unwrap(), reply)
}

fn serve(listener: TcpListener, reply: &'static str) -> (SocketAddr, Arc<AtomicUsize>) {
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            let mut buf = vec![0u8; 16 * 1024];
            let _ = socket.read(&mut buf).await;
            let _ = socket.write_all(reply.as_bytes()).await;
        }
    });
    (addr, hits)
}

const CREATED: &str = "HTTP/1.1 201 Created\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

#[test]
fn the_fixture_keys_are_valid() {
    assert!(ua_public_key(P256DH).is_some());
    assert!(ua_auth(AUTH).is_some());
}

/// Issue point 2: a subscription stored when its name was public now
/// resolves to loopback; the production sender (allow_private off)
/// refuses it before connecting, and the failure is permanent.
#[tokio::test]
async fn a_stored_endpoint_now_resolving_to_loopback_gets_nothing() {
    // Port 443 is the only port the check admits; listen there if this
    // process may (root in the dev container and CI), to see that nothing
    // connects. Either way the error below proves no connection was
    // tried: an attempt would end in a connect or TLS error (`Failed`).
    let listener = TcpListener::bind("127.0.0.1:443").await.ok();
    let hits = listener.map(|l| serve(l, CREATED).1);
    let error = sender(false)
        .send(&subscription("https://localhost/push/1"), &content())
        .await
        .unwrap_err();
    assert!(
        matches!(error, PushError::Endpoint(EndpointError::NotPublic)),
        "{error:?}"
    );
    assert!(error.is_permanent());
    if let Some(hits) = hits {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing may connect");
    }
}

#[tokio::test]
async fn a_stored_private_literal_or_bad_port_is_refused_at_send_time() {
    for endpoint in [
        "https://169.254.169.254/latest/meta-data",
        "https://[::ffff:10.0.0.1]/x",
        "https://[64:ff9b::7f00:1]/x",
        "https://push.example.com:8443/x",
        "https://u:p@push.example.com/x",
    ] {
        let error = sender(false)
            .send(&subscription(endpoint), &content())
            .await
            .unwrap_err();
        assert!(
            matches!(error, PushError::Endpoint(_)),
            "{endpoint}: {error:?}"
        );
        assert!(error.is_permanent(), "{endpoint}");
    }
}

#[tokio::test]
async fn a_lookup_failure_at_send_time_is_retried() {
    let error = sender(false)
        .send(&subscription("https://push.invalid/x"), &content())
        .await
        .unwrap_err();
    assert!(
        matches!(error, PushError::Endpoint(EndpointError::Unresolvable)),
        "{error:?}"
    );
    assert!(!error.is_permanent(), "a resolver outage may pass");
}

/// Issue point 3: keys stored before registration checked the curve
/// cannot be encrypted to; nothing is sent and retrying cannot help.
#[tokio::test]
async fn a_stored_subscription_that_cannot_be_encrypted_to_fails_permanently() {
    let (addr, hits) = server(CREATED).await;
    let mut off_curve = vec![4u8];
    off_curve.extend([1u8; 64]);
    for (p256dh, auth) in [
        (URL_SAFE_NO_PAD.encode(&off_curve), AUTH.to_owned()),
        (P256DH.to_owned(), URL_SAFE_NO_PAD.encode([7u8; 15])),
    ] {
        let to = Subscription {
            endpoint: format!("http://{addr}/push/1"),
            p256dh,
            auth,
        };
        let error = sender(true).send(&to, &content()).await.unwrap_err();
        assert!(matches!(error, PushError::Undeliverable(_)), "{error:?}");
        assert!(error.is_permanent());
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_valid_subscription_is_delivered() {
    let (addr, hits) = server(CREATED).await;
    sender(true)
        .send(&subscription(&format!("http://{addr}/push/1")), &content())
        .await
        .unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let (elsewhere, elsewhere_hits) = server(CREATED).await;
    let reply: &'static str = Box::leak(
        format!(
            "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://{elsewhere}/x\r\n\
             content-length: 0\r\nconnection: close\r\n\r\n"
        )
        .into_boxed_str(),
    );
    let (addr, _) = server(reply).await;
    let error = sender(true)
        .send(&subscription(&format!("http://{addr}/push/1")), &content())
        .await
        .unwrap_err();
    assert!(matches!(error, PushError::Failed(_)), "{error:?}");
    assert_eq!(elsewhere_hits.load(Ordering::SeqCst), 0);
}

/// The connection goes to the checked address, not to whatever a second
/// lookup of the name would say: here the name cannot resolve at all.
#[tokio::test]
async fn the_request_goes_to_the_pinned_address_without_a_second_lookup() {
    let (addr, hits) = server(CREATED).await;
    let url = reqwest::Url::parse(&format!("http://push.invalid:{}/x", addr.port())).unwrap();
    let request = http::Request::post(url.as_str()).body(Vec::new()).unwrap();
    deliver(url, &[addr], request).await.unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

const PROXY_PROBE: &str = "NOTIFICATION_TEST_PROXY_PROBE";

/// A proxy named in the environment is not used: in a child process with
/// `HTTP_PROXY`/`ALL_PROXY` set (the environment cannot be changed in
/// this one safely), the push still goes straight to its address.
#[tokio::test]
async fn a_proxy_in_the_environment_is_not_used() {
    if let Ok(target) = std::env::var(PROXY_PROBE) {
        let url = reqwest::Url::parse(&format!("http://{target}/x")).unwrap();
        let addr: SocketAddr = target.parse().unwrap();
        let request = http::Request::post(url.as_str()).body(Vec::new()).unwrap();
        deliver(url, &[addr], request).await.unwrap();
        return;
    }
    let (proxy, proxy_hits) = server(CREATED).await;
    let (target, target_hits) = server(CREATED).await;
    let proxy_url = format!("http://{proxy}");
    let child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "push::tests::a_proxy_in_the_environment_is_not_used",
            "--exact",
            "--include-ignored",
        ])
        .env(PROXY_PROBE, target.to_string())
        .env("HTTP_PROXY", &proxy_url)
        .env("http_proxy", &proxy_url)
        .env("ALL_PROXY", &proxy_url)
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .output()
        .await
        .unwrap();
    assert!(
        child.status.success(),
        "{}",
        String::from_utf8_lossy(&child.stdout)
    );
    assert_eq!(proxy_hits.load(Ordering::SeqCst), 0, "the proxy was used");
    assert_eq!(target_hits.load(Ordering::SeqCst), 1);
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

#[test]
fn a_huge_retry_after_is_capped_and_an_http_date_is_read() {
    let now = chrono::DateTime::parse_from_rfc3339("2026-11-30T12:00:00Z")
        .unwrap()
        .to_utc();
    // u64::MAX seconds once overflowed the retry's due time (a panic).
    assert_eq!(
        super::retry_after("18446744073709551615", now),
        Some(super::MAX_RETRY_AFTER)
    );
    assert_eq!(
        super::retry_after(" 120 ", now),
        Some(Duration::from_secs(120))
    );
    assert_eq!(
        super::retry_after("Mon, 30 Nov 2026 12:01:30 GMT", now),
        Some(Duration::from_secs(90))
    );
    assert_eq!(
        super::retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now),
        Some(super::MAX_RETRY_AFTER)
    );
    // A date already past: no wait beyond the retry schedule's own.
    assert_eq!(
        super::retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
        Some(Duration::ZERO)
    );
    assert_eq!(super::retry_after("soon", now), None);
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::RETRY_AFTER, "99999999999".parse().unwrap());
    assert!(matches!(
        classify(reqwest::StatusCode::TOO_MANY_REQUESTS, &headers),
        Err(PushError::RetryAfter(Some(d))) if d == super::MAX_RETRY_AFTER
    ));
}
