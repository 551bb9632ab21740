//! Keys from a JWKS URL, cached by `kid`.
//!
//! The set is fetched on first use and again when the cache is older than
//! its TTL; a token whose `kid` is unknown triggers a refetch too (a key
//! rotation), but at most once per `min_refresh`, so a flood of forged kids
//! cannot turn into a flood of requests to the issuer. If a refresh fails,
//! the keys already known stay in use.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::sync::{Mutex, RwLock};

use crate::verify::AuthError;

/// The asymmetric algorithms a JWKS key may carry.
pub const JWKS_ALGORITHMS: [Algorithm; 3] = [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];

#[derive(Default)]
struct Cache {
    keys: HashMap<String, (Algorithm, DecodingKey)>,
    fetched_at: Option<Instant>,
    last_attempt: Option<Instant>,
}

pub struct JwksCache {
    url: String,
    http: reqwest::Client,
    ttl: Duration,
    min_refresh: Duration,
    cache: RwLock<Cache>,
    /// One fetch at a time; waiters then read what it stored.
    fetching: Mutex<()>,
}

/// The algorithm a JWK is for: its `alg` if set, else what its key type
/// implies. Keys of other types are skipped.
fn algorithm_of(jwk: &Jwk) -> Option<Algorithm> {
    let implied = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => Algorithm::ES256,
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            Algorithm::EdDSA
        }
        _ => return None,
    };
    let declared = match jwk.common.key_algorithm {
        None => implied,
        Some(KeyAlgorithm::RS256) => Algorithm::RS256,
        Some(KeyAlgorithm::ES256) => Algorithm::ES256,
        Some(KeyAlgorithm::EdDSA) => Algorithm::EdDSA,
        Some(_) => return None,
    };
    (declared == implied).then_some(implied)
}

impl JwksCache {
    pub fn new(url: String, ttl: Duration, min_refresh: Duration, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .unwrap_or_default();
        Self {
            url,
            http,
            ttl,
            min_refresh,
            cache: RwLock::new(Cache::default()),
            fetching: Mutex::new(()),
        }
    }

    /// The key for `kid`, checked to be a key for `alg`.
    pub async fn key(&self, kid: &str, alg: Algorithm) -> Result<DecodingKey, AuthError> {
        let (found, fresh) = self.lookup(kid).await;
        let found = match found {
            Some(key) if fresh => Some(key),
            stale_or_missing => {
                self.refresh(stale_or_missing.is_none()).await;
                self.lookup(kid).await.0.or(stale_or_missing)
            }
        };
        match found {
            Some((key_alg, key)) if key_alg == alg => Ok(key),
            Some((key_alg, _)) => Err(AuthError::Invalid(format!(
                "key {kid:?} is for {key_alg:?}, not {alg:?}"
            ))),
            None => Err(AuthError::Invalid(format!("unknown key id {kid:?}"))),
        }
    }

    async fn lookup(&self, kid: &str) -> (Option<(Algorithm, DecodingKey)>, bool) {
        let cache = self.cache.read().await;
        let fresh = cache.fetched_at.is_some_and(|t| t.elapsed() < self.ttl);
        (cache.keys.get(kid).cloned(), fresh)
    }

    /// Refetches the set unless one was fetched (or tried) too recently.
    /// `unknown_kid` asks for a refetch ahead of the TTL.
    async fn refresh(&self, unknown_kid: bool) {
        let _one_at_a_time = self.fetching.lock().await;
        {
            let cache = self.cache.read().await;
            let recent =
                |t: Option<Instant>, within: Duration| t.is_some_and(|t| t.elapsed() < within);
            let fresh = recent(cache.fetched_at, self.ttl);
            if recent(cache.last_attempt, self.min_refresh) || (fresh && !unknown_kid) {
                return;
            }
        }
        let fetched = self.fetch().await;
        let mut cache = self.cache.write().await;
        cache.last_attempt = Some(Instant::now());
        match fetched {
            Ok(keys) => {
                tracing::info!(url = %self.url, keys = keys.len(), "JWKS refreshed");
                cache.keys = keys;
                cache.fetched_at = Some(Instant::now());
            }
            Err(error) => {
                tracing::warn!(url = %self.url, %error, "JWKS refresh failed; keeping known keys")
            }
        }
    }

    async fn fetch(&self) -> Result<HashMap<String, (Algorithm, DecodingKey)>, String> {
        let set: JwkSet = self
            .http
            .get(&self.url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let (Some(kid), Some(alg)) = (&jwk.common.key_id, algorithm_of(jwk)) else {
                continue;
            };
            if let Ok(key) = DecodingKey::from_jwk(jwk) {
                keys.insert(kid.clone(), (alg, key));
            }
        }
        Ok(keys)
    }
}
