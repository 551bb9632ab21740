//! JWKS during an issuer outage, against a real HTTP endpoint on 127.0.0.1
//! that stops answering in time: requests with a known `kid` never wait for
//! the issuer after the fetch that found the outage, requests that waited
//! for a fetch do not fetch again, and a key the issuer withdraws while it
//! was down is refused once it answers again.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use auth::{AuthConfig, Authenticator};
use support::{claims, config_with_ttl, jwk, keys, serve, token};

/// How long the issuer takes once it is "down": far past any fetch timeout.
const HANGS_MS: u64 = 60_000;

fn with_timeout(
    url: String,
    ttl: Duration,
    min_refresh: Duration,
    timeout: Duration,
) -> AuthConfig {
    let mut config = config_with_ttl(url, ttl, min_refresh);
    if let Some(jwks) = config.jwks.as_mut() {
        jwks.timeout = timeout;
    }
    config
}

/// Verifies `token` in `n` concurrent requests. Returns each one's outcome
/// (`Ok` or the error text) and the longest any of them took.
async fn at_once(
    a: &Arc<Authenticator>,
    token: &str,
    n: usize,
) -> (Vec<Result<(), String>>, Duration) {
    let requests: Vec<_> = (0..n)
        .map(|_| {
            let (a, token) = (Arc::clone(a), token.to_owned());
            tokio::spawn(async move {
                let started = Instant::now();
                let outcome = a
                    .verify(&token)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string());
                (outcome, started.elapsed())
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    let mut longest = Duration::ZERO;
    for request in requests {
        let (outcome, took) = request.await.unwrap();
        outcomes.push(outcome);
        longest = longest.max(took);
    }
    (outcomes, longest)
}

#[tokio::test]
async fn an_issuer_outage_never_holds_up_a_known_key_after_the_first_failed_fetch() {
    let keys = keys();
    let (issuer, url) = serve(vec![jwk(&keys[0]), jwk(&keys[1])]).await;
    let ttl = Duration::from_millis(200);
    let min_refresh = Duration::from_millis(500);
    let timeout = Duration::from_millis(500);
    let a = Arc::new(Authenticator::new(&with_timeout(
        url,
        ttl,
        min_refresh,
        timeout,
    )));
    let rsa = token(&keys[0], "rsa-1", &claims("u"));
    assert!(a.verify(&rsa).await.is_ok());

    // The issuer hangs and the set expires: the first request past the
    // refetch rate limit finds the outage (it waits for that fetch) and
    // keeps the known key.
    issuer.delay_ms.store(HANGS_MS, Ordering::SeqCst);
    tokio::time::sleep(min_refresh.max(ttl) + Duration::from_millis(50)).await;
    let started = Instant::now();
    assert!(
        a.verify(&rsa).await.is_ok(),
        "the failed refetch keeps rsa-1"
    );
    assert!(
        started.elapsed() >= timeout,
        "this request found the outage"
    );

    // Round after round past min_refresh, while the background refetch
    // keeps failing: nobody waits for the issuer.
    for round in 0..3 {
        tokio::time::sleep(min_refresh + Duration::from_millis(50)).await;
        let (outcomes, longest) = at_once(&a, &rsa, 8).await;
        assert!(
            outcomes.iter().all(Result::is_ok),
            "round {round}: {outcomes:?}"
        );
        assert!(
            longest < Duration::from_millis(50),
            "round {round}: a request waited {longest:?}"
        );
    }
    let tried = issuer.fetches.load(Ordering::SeqCst);
    assert!(
        tried >= 4,
        "the refetch is retried in the background ({tried} fetches)"
    );

    // The issuer answers again without rsa-1: once a refetch succeeds, the
    // withdrawn key is refused and the other one still works.
    {
        let mut set = issuer.set.write().await;
        set.keys.remove(0);
    }
    issuer.delay_ms.store(0, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(5);
    let refused = loop {
        match a.verify(&rsa).await {
            Err(e) => break e.to_string(),
            Ok(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(_) => panic!("rsa-1 still accepted 5 s after the issuer withdrew it"),
        }
    };
    assert!(refused.contains("unknown key id"), "{refused}");
    let ec = token(&keys[1], "ec-1", &claims("u"));
    assert!(a.verify(&ec).await.is_ok());
}

#[tokio::test]
async fn requests_that_waited_for_a_failed_fetch_do_not_fetch_again() {
    let keys = keys();
    let (issuer, url) = serve(vec![jwk(&keys[0])]).await;
    let timeout = Duration::from_millis(300);
    // No rate limit, so only the generation check keeps waiters from
    // fetching one after another.
    let config = with_timeout(url, Duration::from_secs(300), Duration::ZERO, timeout);
    let a = Arc::new(Authenticator::new(&config));
    assert!(
        a.verify(&token(&keys[0], "rsa-1", &claims("u")))
            .await
            .is_ok()
    );

    // Eight requests under a kid the set lacks while the issuer hangs: one
    // fetch times out, and the seven that waited for it use its outcome.
    issuer.delay_ms.store(HANGS_MS, Ordering::SeqCst);
    let rotated = token(&keys[1], "ec-1", &claims("u"));
    let (outcomes, longest) = at_once(&a, &rotated, 8).await;
    for outcome in &outcomes {
        let err = outcome.as_ref().expect_err("an unknown kid is refused");
        assert!(err.contains("unknown key id"), "{err}");
    }
    assert!(
        longest < timeout * 2,
        "waiters queued behind one fetch each: {longest:?}"
    );
    assert_eq!(
        issuer.fetches.load(Ordering::SeqCst),
        2,
        "one fetch for all"
    );
}
