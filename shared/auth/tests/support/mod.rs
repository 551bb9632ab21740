//! What the JWKS tests share: the test keys, a JWKS endpoint served on
//! 127.0.0.1 whose answers can be changed or slowed, and token builders.
// Each test file uses its own part of these.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use auth::{AuthConfig, JwksConfig};
use axum::Json;
use axum::extract::State;
use axum::routing::get;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;
use tokio::sync::RwLock;

pub struct Key {
    pub kid: &'static str,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
}

pub fn keys() -> Vec<Key> {
    let load = |pem: &[u8], alg| match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(pem).unwrap(),
        Algorithm::ES256 => EncodingKey::from_ec_pem(pem).unwrap(),
        _ => EncodingKey::from_ed_pem(pem).unwrap(),
    };
    vec![
        Key {
            kid: "rsa-1",
            alg: Algorithm::RS256,
            encoding: load(include_bytes!("../keys/rsa.pem"), Algorithm::RS256),
        },
        Key {
            kid: "ec-1",
            alg: Algorithm::ES256,
            encoding: load(include_bytes!("../keys/ec.pem"), Algorithm::ES256),
        },
        Key {
            kid: "ed-1",
            alg: Algorithm::EdDSA,
            encoding: load(include_bytes!("../keys/ed25519.pem"), Algorithm::EdDSA),
        },
    ]
}

/// The public half of `keys/ed25519.pem` (base64url), from
/// `openssl pkey -in ed25519.pem -pubout -outform DER | tail -c 32`:
/// jsonwebtoken cannot derive an OKP JWK from an encoding key.
pub const ED25519_X: &str = "O_rJ0o--Ona04zyChof4ysSO234NZxDxaTHAfkLR1J4";

pub fn jwk(key: &Key) -> Jwk {
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
pub struct Issuer {
    pub set: Arc<RwLock<JwkSet>>,
    pub fetches: Arc<AtomicUsize>,
    /// How long each answer takes, in milliseconds.
    pub delay_ms: Arc<AtomicU64>,
}

pub async fn jwks(State(issuer): State<Issuer>) -> Json<JwkSet> {
    issuer.fetches.fetch_add(1, Ordering::SeqCst);
    let delay = issuer.delay_ms.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(delay)).await;
    Json(issuer.set.read().await.clone())
}

pub async fn serve(initial: Vec<Jwk>) -> (Issuer, String) {
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

pub fn config(url: String, min_refresh: Duration) -> AuthConfig {
    config_with_ttl(url, Duration::from_secs(300), min_refresh)
}

pub fn config_with_ttl(url: String, ttl: Duration, min_refresh: Duration) -> AuthConfig {
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

pub fn claims(sub: &str) -> serde_json::Value {
    json!({"sub": sub, "exp": 4_000_000_000u64, "iss": "https://issuer.test", "aud": "todo", "roles": ["admin"]})
}

pub fn token(key: &Key, kid: &str, claims: &serde_json::Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = Some(kid.to_owned());
    encode(&header, claims, &key.encoding).unwrap()
}
