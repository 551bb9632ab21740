//! `Idempotency-Key` for creates: the first request's hash and response are
//! stored per (user, key); a repeat replays the response, a different body
//! under the same key is refused.

use deadpool_postgres::GenericClient;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::repo::{CreateOutcome, Idempotency, RepoError};

/// Longest key accepted; keys are client-chosen opaque strings.
pub const MAX_KEY_LEN: usize = 255;

/// Whether `key` is an acceptable Idempotency-Key: 1 to 255 visible ASCII
/// characters.
pub fn valid_key(key: &str) -> bool {
    (1..=MAX_KEY_LEN).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
}

/// The hash of a request's canonical form: bodies that differ only in
/// whitespace or key order hash alike.
pub fn request_hash(request: &impl Serialize) -> String {
    let canonical = serde_json::to_vec(request).unwrap_or_default();
    format!("{:x}", Sha256::digest(&canonical))
}

/// The stored response for `idem`, or the conflict if the key was used
/// with another request; `None` if the key is new.
pub async fn find(
    client: &impl GenericClient,
    user_id: &str,
    idem: &Idempotency,
) -> Result<Option<CreateOutcome>, RepoError> {
    let row = client
        .query_opt(
            "SELECT request_hash, status, body FROM idempotency_keys WHERE user_id = $1 AND key = $2",
            &[&user_id, &idem.key],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let hash: String = row.try_get(0)?;
    if hash != idem.request_hash {
        return Err(RepoError::IdempotencyConflict);
    }
    let status: i16 = row.try_get(1)?;
    Ok(Some(CreateOutcome::Replayed {
        status: u16::try_from(status).unwrap_or(200),
        body: row.try_get(2)?,
    }))
}

/// Records the response of the request that first used `idem`.
pub async fn store(
    client: &impl GenericClient,
    user_id: &str,
    idem: &Idempotency,
    status: i16,
    body: &serde_json::Value,
) -> Result<(), RepoError> {
    client
        .execute(
            "INSERT INTO idempotency_keys (user_id, key, request_hash, status, body) VALUES ($1, $2, $3, $4, $5)",
            &[&user_id, &idem.key, &idem.request_hash, &status, body],
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_ignores_formatting_but_not_content() {
        let a: serde_json::Value = serde_json::from_str(r#"{"b":1,"a":2}"#).unwrap();
        let b: serde_json::Value = serde_json::from_str(r#"{ "a":2, "b":1 }"#).unwrap();
        let c: serde_json::Value = serde_json::from_str(r#"{"a":2,"b":3}"#).unwrap();
        assert_eq!(request_hash(&a), request_hash(&b));
        assert_ne!(request_hash(&a), request_hash(&c));
    }

    #[test]
    fn keys_are_bounded_visible_ascii() {
        assert!(valid_key("abc-123"));
        assert!(!valid_key(""));
        assert!(!valid_key("has space"));
        assert!(!valid_key(&"k".repeat(256)));
    }
}
