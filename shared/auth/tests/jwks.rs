//! JWKS verification against a real HTTP JWKS endpoint served on 127.0.0.1:
//! RS256, ES256 and EdDSA keys, key rotation by unknown `kid`, the refetch
//! rate limit, keys the issuer withdraws, keys not for signatures, refreshes
//! that do not hold requests up, and tokens that must be refused.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use auth::testing::{TEST_SECRET, sign};
use auth::{AuthConfig, Authenticator, JwksConfig};
use axum::Json;
use axum::extract::State;
use axum::routing::get;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;
use tokio::sync::RwLock;

struct Key {
    kid: &'static str,
    alg: Algorithm,
    encoding: EncodingKey,
}

fn keys() -> Vec<Key> {
    let load = |pem: &[u8], alg| match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(pem).unwrap(),
        Algorithm::ES256 => EncodingKey::from_ec_pem(pem).unwrap(),
        _ => EncodingKey::from_ed_pem(pem).unwrap(),
    };
    vec![
        Key {
            kid: "rsa-1",
            alg: Algorithm::RS256,
            encoding: load(include_bytes!("keys/rsa.pem"), Algorithm::RS256),
        },
        Key {
            kid: "ec-1",
            alg: Algorithm::ES256,
            encoding: load(include_bytes!("keys/ec.pem"), Algorithm::ES256),
        },
        Key {
            kid: "ed-1",
            alg: Algorithm::EdDSA,
            encoding: load(include_bytes!("keys/ed25519.pem"), Algorithm::EdDSA),
        },
    ]
}

/// The public half of `keys/ed25519.pem` (base64url), from
/// `openssl pkey -in ed25519.pem -pubout -outform DER | tail -c 32`:
/// jsonwebtoken cannot derive an OKP JWK from an encoding key.
const ED25519_X: &str = "O_rJ0o--Ona04zyChof4ysSO234NZxDxaTHAfkLR1J4";

fn jwk(key: &Key) -> Jwk {
    let mut jwk = match key.alg {
        Algorithm::EdDSA => serde_json::from_value(
            json!({"kty": "OKP", "crv": "Ed25519", "x": ED25519_X, "alg": "EdDSA"}),
        )
        .unwrap(),
        alg => Jwk::from_encoding_key(&key.encoding, alg).unwrap(),
    };
    jwk.common.key_id = Some(key.kid.to_owned());
    jwk
}

#[derive(Clone)]
struct Issuer {
    set: Arc<RwLock<JwkSet>>,
    fetches: Arc<AtomicUsize>,
    /// How long each answer takes, in milliseconds.
    delay_ms: Arc<AtomicU64>,
}

async fn jwks(State(issuer): State<Issuer>) -> Json<JwkSet> {
    issuer.fetches.fetch_add(1, Ordering::SeqCst);
    let delay = issuer.delay_ms.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(delay)).await;
    Json(issuer.set.read().await.clone())
}

async fn serve(initial: Vec<Jwk>) -> (Issuer, String) {
    let issuer = Issuer {
        set: Arc::new(RwLock::new(JwkSet { keys: initial })),
        fetches: Arc::new(AtomicUsize::new(0)),
        delay_ms: Arc::new(AtomicU64::new(0)),
    };
    let app = axum::Router::new()
        .route("/jwks.json", get(jwks))
        .with_state(issuer.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (issuer, url)
}

fn config(url: String, min_refresh: Duration) -> AuthConfig {
    config_with_ttl(url, Duration::from_secs(300), min_refresh)
}

fn config_with_ttl(url: String, ttl: Duration, min_refresh: Duration) -> AuthConfig {
    AuthConfig {
        hs256_secret: None,
        jwks: Some(JwksConfig {
            url,
            ttl,
            min_refresh,
            timeout: Duration::from_secs(5),
        }),
        issuer: Some("https://issuer.test".into()),
        audience: Some("todo".into()),
        role_claim: "roles".into(),
        admin_role: "admin".into(),
        leeway_s: 0,
    }
}

fn claims(sub: &str) -> serde_json::Value {
    json!({"sub": sub, "exp": 4_000_000_000u64, "iss": "https://issuer.test", "aud": "todo", "roles": ["admin"]})
}

fn token(key: &Key, kid: &str, claims: &serde_json::Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = Some(kid.to_owned());
    encode(&header, claims, &key.encoding).unwrap()
}

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
