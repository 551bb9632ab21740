//! JWKS verification against a real HTTP JWKS endpoint served on 127.0.0.1:
//! RS256, ES256 and EdDSA keys, key rotation by unknown `kid`, the refetch
//! rate limit, keys the issuer withdraws, keys not for signatures, refreshes
//! that do not hold requests up, and tokens that must be refused.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use auth::Authenticator;
use auth::testing::{TEST_SECRET, sign};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;
use support::{Key, claims, config, config_with_ttl, jwk, keys, serve, token};

#[tokio::test]
async fn rs256_es256_and_eddsa_tokens_verify_with_one_fetch() {
    let keys = keys();
    let (issuer, url) = serve(keys.iter().map(jwk).collect()).await;
    let a = Authenticator::new(&config(url, Duration::from_secs(30)));
    for key in &keys {
        let p = a.verify(&token(key, key.kid, &claims("carol"))).await;
        let p = p.unwrap_or_else(|e| panic!("{:?}: {e}", key.alg));
        assert_eq!((p.user_id.as_str(), p.admin), ("carol", true));
    }
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 1, "keys are cached");
}

#[tokio::test]
async fn an_unknown_kid_refetches_the_set_once() {
    let keys = keys();
    let (issuer, url) = serve(vec![jwk(&keys[0])]).await;
    let a = Authenticator::new(&config(url, Duration::ZERO));
    assert!(
        a.verify(&token(&keys[0], "rsa-1", &claims("u")))
            .await
            .is_ok()
    );
    // The issuer rotates in a new key; the first token under it triggers a refetch.
    issuer.set.write().await.keys.push(jwk(&keys[1]));
    assert!(
        a.verify(&token(&keys[1], "ec-1", &claims("u")))
            .await
            .is_ok()
    );
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn unknown_kids_cannot_flood_the_issuer() {
    let keys = keys();
    let (issuer, url) = serve(vec![jwk(&keys[0])]).await;
    let a = Authenticator::new(&config(url, Duration::from_secs(60)));
    assert!(
        a.verify(&token(&keys[0], "rsa-1", &claims("u")))
            .await
            .is_ok()
    );
    for i in 0..50 {
        let forged = token(&keys[0], &format!("made-up-{i}"), &claims("u"));
        let err = a.verify(&forged).await.unwrap_err();
        assert!(err.to_string().contains("unknown key id"), "{err}");
    }
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 1, "rate-limited");
}

#[tokio::test]
async fn wrong_tokens_are_refused() {
    let keys = keys();
    let (_issuer, url) = serve(keys.iter().map(jwk).collect()).await;
    let a = Authenticator::new(&config(url, Duration::from_secs(30)));
    let other = Key {
        kid: "ed-1",
        alg: Algorithm::EdDSA,
        encoding: EncodingKey::from_ed_pem(include_bytes!("keys/ed25519-other.pem")).unwrap(),
    };
    let cases = [
        ("signed by another key", token(&other, "ed-1", &claims("u"))),
        (
            "kid of a key for another alg",
            token(&keys[2], "ec-1", &claims("u")),
        ),
        ("wrong audience", {
            let mut c = claims("u");
            c["aud"] = json!("other");
            token(&keys[0], "rsa-1", &c)
        }),
        ("wrong issuer", {
            let mut c = claims("u");
            c["iss"] = json!("https://evil.test");
            token(&keys[0], "rsa-1", &c)
        }),
        ("expired", {
            let mut c = claims("u");
            c["exp"] = json!(1_000_000_000u64);
            token(&keys[1], "ec-1", &c)
        }),
        (
            "HS256 without a configured secret",
            sign(&claims("u"), TEST_SECRET),
        ),
        ("no kid", {
            encode(
                &Header::new(Algorithm::RS256),
                &claims("u"),
                &keys[0].encoding,
            )
            .unwrap()
        }),
    ];
    for (why, token) in cases {
        assert!(a.verify(&token).await.is_err(), "accepted a token {why}");
    }
}

#[tokio::test]
async fn configured_issuer_and_audience_are_required_claims() {
    let keys = keys();
    let (_issuer, url) = serve(keys.iter().map(jwk).collect()).await;
    let a = Authenticator::new(&config(url, Duration::from_secs(30)));
    let ed = &keys[2];
    assert!(a.verify(&token(ed, "ed-1", &claims("u"))).await.is_ok());
    let without = |names: &[&str]| {
        let mut c = claims("u");
        for name in names {
            c.as_object_mut().unwrap().remove(*name);
        }
        token(ed, "ed-1", &c)
    };
    for (why, token) in [
        ("without aud", without(&["aud"])),
        ("without iss", without(&["iss"])),
        ("without aud and iss", without(&["aud", "iss"])),
        ("with a numeric aud", {
            let mut c = claims("u");
            c["aud"] = json!(7);
            token(ed, "ed-1", &c)
        }),
    ] {
        let err = a.verify(&token).await.expect_err(why);
        assert!(err.to_string().contains("token rejected"), "{why}: {err}");
    }
}

#[tokio::test]
async fn a_key_the_issuer_withdraws_is_refused_after_the_refetch() {
    let keys = keys();
    let (issuer, url) = serve(vec![jwk(&keys[0]), jwk(&keys[1])]).await;
    let ttl = Duration::from_millis(200);
    let a = Authenticator::new(&config_with_ttl(url, ttl, Duration::ZERO));
    let rsa = token(&keys[0], "rsa-1", &claims("u"));
    assert!(a.verify(&rsa).await.is_ok());
    // The issuer withdraws rsa-1 (a compromised key, say). Once the set
    // has expired, the next use refetches first and refuses the key.
    issuer.set.write().await.keys.remove(0);
    tokio::time::sleep(ttl + Duration::from_millis(50)).await;
    let refused = a
        .verify(&rsa)
        .await
        .expect_err("a withdrawn key is refused");
    assert!(refused.to_string().contains("unknown key id"), "{refused}");
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 2);
    // The key the issuer still lists keeps working, from the new set.
    assert!(
        a.verify(&token(&keys[1], "ec-1", &claims("u")))
            .await
            .is_ok()
    );
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_issuer_outage_keeps_the_known_keys() {
    let keys = keys();
    let (issuer, url) = serve(vec![jwk(&keys[0])]).await;
    let ttl = Duration::from_millis(100);
    let min_refresh = Duration::from_millis(300);
    let mut config = config_with_ttl(url, ttl, min_refresh);
    if let Some(jwks) = config.jwks.as_mut() {
        jwks.timeout = Duration::from_millis(200);
    }
    let a = Authenticator::new(&config);
    let rsa = token(&keys[0], "rsa-1", &claims("u"));
    assert!(a.verify(&rsa).await.is_ok());
    // The issuer stops answering in time; the set expires.
    issuer.delay_ms.store(5_000, Ordering::SeqCst);
    tokio::time::sleep(min_refresh + Duration::from_millis(50)).await;
    assert!(
        a.verify(&rsa).await.is_ok(),
        "the failed refetch keeps rsa-1"
    );
    // Within min_refresh nobody fetches again, and nobody waits.
    let started = Instant::now();
    assert!(a.verify(&rsa).await.is_ok());
    assert!(started.elapsed() < Duration::from_millis(100));
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn keys_not_meant_for_signatures_are_ignored() {
    let keys = keys();
    let ed = &keys[2];
    let with = |kid: &str, field: &str, value: serde_json::Value| {
        let mut v = serde_json::to_value(jwk(ed)).unwrap();
        v["kid"] = json!(kid);
        v[field] = value;
        serde_json::from_value::<Jwk>(v).unwrap()
    };
    let (_issuer, url) = serve(vec![
        with("ed-enc", "use", json!("enc")),
        with("ed-ops", "key_ops", json!(["encrypt"])),
        with("ed-sig", "use", json!("sig")),
        with("ed-verify", "key_ops", json!(["verify"])),
    ])
    .await;
    let a = Authenticator::new(&config(url, Duration::from_secs(30)));
    for kid in ["ed-enc", "ed-ops"] {
        let err = a.verify(&token(ed, kid, &claims("u"))).await.unwrap_err();
        assert!(err.to_string().contains("unknown key id"), "{kid}: {err}");
    }
    for kid in ["ed-sig", "ed-verify"] {
        assert!(
            a.verify(&token(ed, kid, &claims("u"))).await.is_ok(),
            "{kid}"
        );
    }
}

/// An authenticator with `ttl` and no refetch rate limit, and an rsa-1
/// token it has verified once (so the set is fetched).
async fn verified_once(url: String, ttl: Duration) -> (Arc<Authenticator>, String) {
    let a = Arc::new(Authenticator::new(&config_with_ttl(
        url,
        ttl,
        Duration::ZERO,
    )));
    let rsa = token(&keys()[0], "rsa-1", &claims("u"));
    assert!(a.verify(&rsa).await.is_ok());
    (a, rsa)
}

/// Verifies `token` in `n` concurrent requests; all must pass. Returns how
/// long they took together.
async fn verify_at_once(a: &Arc<Authenticator>, token: &str, n: usize) -> Duration {
    let started = Instant::now();
    let requests: Vec<_> = (0..n)
        .map(|_| {
            let (a, token) = (Arc::clone(a), token.to_owned());
            tokio::spawn(async move { a.verify(&token).await.is_ok() })
        })
        .collect();
    for request in requests {
        assert!(request.await.unwrap());
    }
    started.elapsed()
}

#[tokio::test]
async fn a_slow_refresh_does_not_hold_up_requests_with_a_known_key() {
    let keys = keys();
    let (issuer, url) = serve(vec![jwk(&keys[0])]).await;
    let ttl = Duration::from_secs(2);
    let (a, rsa) = verified_once(url, ttl).await;
    issuer.delay_ms.store(1_500, Ordering::SeqCst);
    // Past half the TTL the set is renewed in the background.
    tokio::time::sleep(ttl / 2 + Duration::from_millis(100)).await;

    // Twenty requests while the issuer takes 1.5 s to answer: each is
    // served at once with the known key, and one fetch is in flight.
    let waited = verify_at_once(&a, &rsa, 20).await;
    assert!(
        waited < Duration::from_millis(500),
        "requests waited {waited:?}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        issuer.fetches.load(Ordering::SeqCst),
        2,
        "one refetch in flight"
    );
}

#[tokio::test]
async fn requests_at_an_expired_set_share_one_refetch() {
    let keys = keys();
    let (issuer, url) = serve(vec![jwk(&keys[0])]).await;
    let ttl = Duration::from_millis(100);
    let (a, rsa) = verified_once(url, ttl).await;
    issuer.delay_ms.store(400, Ordering::SeqCst);
    tokio::time::sleep(ttl + Duration::from_millis(50)).await;

    // Twenty requests after an idle spell: each waits for the refetch, all
    // for the same one.
    let waited = verify_at_once(&a, &rsa, 20).await;
    assert!(waited >= Duration::from_millis(400), "{waited:?}");
    assert!(waited < Duration::from_millis(2_000), "{waited:?}");
    assert_eq!(
        issuer.fetches.load(Ordering::SeqCst),
        2,
        "one refetch for all"
    );
}
