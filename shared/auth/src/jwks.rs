//! Keys from a JWKS URL, cached by `kid`.
//!
//! Requests read an immutable snapshot of the key set (an `Arc` swapped
//! under a lock held only for the swap), so a request whose key is known
//! does not wait on a fetch while the set is fresh:
//! - past half its TTL the set is refetched in the background, and requests
//!   go on with the keys they have; under steady traffic the set is
//!   renewed before it expires and no request ever waits;
//! - past the TTL (after an idle spell) the set is not trusted as is: the
//!   request waits for the refetch, so a key the issuer has withdrawn is
//!   refused rather than used one last time;
//! - once a fetch has failed (the issuer is down or slow), the known set
//!   stays renewable whatever its age: requests with a known `kid` go on at
//!   once and the refetch is retried in the background, at most once per
//!   `min_refresh`. An outage therefore costs at most the one wait of the
//!   fetch that found it (none under steady traffic, whose background
//!   renewal finds it first), not a stall per `min_refresh`;
//! - an unknown `kid` (a key rotation) waits for a refetch;
//! - at most one fetch is in flight. Every finished fetch, failed or not,
//!   bumps a generation counter: a request that waited for the fetch lock
//!   and sees a newer generation uses what that fetch left instead of
//!   fetching again, so waiters never queue behind one fetch each; at most
//!   one fetch starts per `min_refresh`, so a flood of forged kids (or a
//!   down issuer) cannot turn into a flood of requests to the issuer.
//!
//! A successful fetch replaces the whole set: a key the issuer no longer
//! lists is refused from then on, outage or not. A failed fetch keeps the
//! known keys, so an issuer outage does not lock every user out.
//! Only keys for signatures are taken (`use: enc`, or `key_ops` without
//! `verify`, are skipped).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey};

use crate::verify::AuthError;

/// The asymmetric algorithms a JWKS key may carry.
pub const JWKS_ALGORITHMS: [Algorithm; 3] = [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];

type Keys = HashMap<String, (Algorithm, DecodingKey)>;

/// The key set as the last finished fetch left it; never changed once
/// published.
#[derive(Default)]
struct Snapshot {
    keys: Arc<Keys>,
    /// When the issuer last answered with a key set.
    fetched_at: Option<Instant>,
    /// The last fetch failed: `keys` are the last ones the issuer listed.
    issuer_down: bool,
    /// How many fetches (failed or not) had finished when this was
    /// published.
    generation: u64,
}

struct Shared {
    url: String,
    http: reqwest::Client,
    ttl: Duration,
    min_refresh: Duration,
    snapshot: RwLock<Arc<Snapshot>>,
    /// When the last fetch was started: the refetch rate limit.
    last_attempt: Mutex<Option<Instant>>,
    /// Held by the one fetch in flight.
    fetching: tokio::sync::Mutex<()>,
}

/// How far a snapshot is into its TTL.
enum Age {
    Fresh,
    /// Past half the TTL, or any age after a failed fetch: still used,
    /// refetched in the background.
    Renewable,
    /// Past the TTL, or never fetched: refetched before use.
    Expired,
}

pub struct JwksCache {
    shared: Arc<Shared>,
}

/// The algorithm a JWK is for: its `alg` if set, else what its key type
/// implies. Keys of other types, and keys not meant for verifying
/// signatures, are skipped.
fn algorithm_of(jwk: &Jwk) -> Option<Algorithm> {
    if !for_signatures(jwk) {
        return None;
    }
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

/// RFC 7517 §4.2/§4.3: `use` other than `sig`, or `key_ops` without
/// `verify`, marks a key that must not verify signatures. Neither set
/// means any use.
fn for_signatures(jwk: &Jwk) -> bool {
    let use_ok = matches!(
        jwk.common.public_key_use,
        None | Some(PublicKeyUse::Signature)
    );
    let ops_ok = jwk
        .common
        .key_operations
        .as_ref()
        .is_none_or(|ops| ops.contains(&KeyOperations::Verify));
    use_ok && ops_ok
}

impl JwksCache {
    pub fn new(url: String, ttl: Duration, min_refresh: Duration, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .unwrap_or_default();
        Self {
            shared: Arc::new(Shared {
                url,
                http,
                ttl,
                min_refresh,
                snapshot: RwLock::new(Arc::new(Snapshot::default())),
                last_attempt: Mutex::new(None),
                fetching: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// The key for `kid`, checked to be a key for `alg`.
    pub async fn key(&self, kid: &str, alg: Algorithm) -> Result<DecodingKey, AuthError> {
        let seen = self.shared.current();
        let found = match (seen.keys.get(kid), self.shared.age(&seen)) {
            (Some(entry), Age::Fresh) => Some(entry.clone()),
            (Some(entry), Age::Renewable) => {
                self.refresh_in_background();
                Some(entry.clone())
            }
            // Unknown, or known only from an expired set.
            _ => {
                self.shared.refresh_after(&seen).await;
                self.shared.current().keys.get(kid).cloned()
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

    /// Starts a refetch unless one started within `min_refresh`; the
    /// caller goes on with the key it has.
    fn refresh_in_background(&self) {
        if !self.shared.claim_attempt() {
            return;
        }
        let shared = Arc::clone(&self.shared);
        tokio::spawn(async move {
            // A fetch already in flight does the same work.
            if let Ok(_one_at_a_time) = shared.fetching.try_lock() {
                shared.fetch_and_store().await;
            }
        });
    }
}

impl Shared {
    fn current(&self) -> Arc<Snapshot> {
        Arc::clone(&self.snapshot.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn age(&self, snapshot: &Snapshot) -> Age {
        match snapshot.fetched_at.map(|t| t.elapsed()) {
            None => Age::Expired,
            Some(age) if age < self.ttl / 2 => Age::Fresh,
            Some(age) if age < self.ttl || snapshot.issuer_down => Age::Renewable,
            Some(_) => Age::Expired,
        }
    }

    /// Takes the right to fetch now, unless a fetch started within
    /// `min_refresh`.
    fn claim_attempt(&self) -> bool {
        let mut last = self
            .last_attempt
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|t| t.elapsed() < self.min_refresh) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }

    /// Refetches because `seen` lacks a `kid` or has expired: waits for a
    /// fetch in flight and uses what it left (whether it succeeded or not:
    /// fetching again at once would only queue the next waiter behind
    /// another timeout); else fetches, if the rate limit allows (if not,
    /// the caller goes on with what `seen` has).
    async fn refresh_after(&self, seen: &Snapshot) {
        let _one_at_a_time = self.fetching.lock().await;
        let finished_meanwhile = self.current().generation != seen.generation;
        if finished_meanwhile || !self.claim_attempt() {
            return;
        }
        self.fetch_and_store().await;
    }

    /// Fetches and publishes the outcome. Only the holder of `fetching`
    /// calls this, so publishes never race.
    async fn fetch_and_store(&self) {
        let result = self.fetch().await;
        let before = self.current();
        let next = match result {
            Ok(keys) => {
                tracing::info!(url = %self.url, keys = keys.len(), "JWKS refreshed");
                Snapshot {
                    keys: Arc::new(keys),
                    fetched_at: Some(Instant::now()),
                    issuer_down: false,
                    generation: before.generation.wrapping_add(1),
                }
            }
            Err(error) => {
                tracing::warn!(url = %self.url, %error, "JWKS refresh failed; keeping known keys");
                Snapshot {
                    keys: Arc::clone(&before.keys),
                    fetched_at: before.fetched_at,
                    issuer_down: true,
                    generation: before.generation.wrapping_add(1),
                }
            }
        };
        *self
            .snapshot
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(next);
    }

    async fn fetch(&self) -> Result<Keys, String> {
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
