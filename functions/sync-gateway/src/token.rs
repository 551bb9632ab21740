//! A socket's credentials: the user's token, verified with the API's rules
//! (the shared [`auth::Authenticator`]: same keys, issuer, audience,
//! leeway), and when it expires, so the session can close the socket then.
//! The token is kept: the session reads the change feed with it, so
//! task-api applies its own checks to every replay.

use auth::{AuthError, Authenticator};
use base64::Engine;
use tokio::time::Instant;

/// A verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub user: String,
    pub token: String,
    /// When the token's `exp` passes (on tokio's clock).
    pub expires_at: Option<Instant>,
}

/// Verifies `token`, then reads its `exp`.
pub async fn verify(auth: &Authenticator, token: &str) -> Result<Verified, AuthError> {
    let principal = auth.verify(token).await?;
    Ok(Verified {
        user: principal.user_id,
        token: token.to_owned(),
        expires_at: expiry(token).map(|exp| instant_of(exp, now_unix())),
    })
}

/// Verifies an `Authorization: Bearer` header value.
pub async fn verify_header(auth: &Authenticator, value: &str) -> Result<Verified, AuthError> {
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or(AuthError::NotBearer)?;
    verify(auth, token.trim()).await
}

/// The `exp` claim of a token already verified (so its payload is ours to
/// read without checking the signature again).
fn expiry(token: &str) -> Option<i64> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("exp")?.as_i64()
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// The instant `exp` (Unix seconds) falls on, given that it is `now` now;
/// a past `exp` is now.
fn instant_of(exp: i64, now: i64) -> Instant {
    let left = u64::try_from(exp.saturating_sub(now)).unwrap_or(0);
    Instant::now() + std::time::Duration::from_secs(left)
}

#[cfg(test)]
mod tests {
    use super::*;
    use auth::testing::{TEST_SECRET, sign, test_config, token_for};
    use serde_json::json;

    #[tokio::test]
    async fn a_valid_token_gives_its_user_and_expiry() {
        let auth = Authenticator::new(&test_config());
        let exp = now_unix() + 120;
        let token = sign(&json!({"sub": "alice", "exp": exp}), TEST_SECRET);
        let verified = verify(&auth, &token).await.unwrap();
        assert_eq!(verified.user, "alice");
        let left = verified.expires_at.unwrap() - Instant::now();
        assert!(left.as_secs() > 100 && left.as_secs() <= 120, "{left:?}");
        let header = format!("Bearer {}", token_for("bob", false));
        assert_eq!(verify_header(&auth, &header).await.unwrap().user, "bob");
    }

    #[tokio::test]
    async fn forged_and_malformed_tokens_are_refused() {
        let auth = Authenticator::new(&test_config());
        let forged = sign(
            &json!({"sub": "alice", "exp": now_unix() + 60}),
            "another-secret-another-secret-000",
        );
        assert!(verify(&auth, &forged).await.is_err());
        assert!(verify(&auth, "abc").await.is_err());
        assert!(verify_header(&auth, "Basic abc").await.is_err());
    }

    #[test]
    fn a_past_exp_is_now() {
        let before = Instant::now();
        assert!(instant_of(10, 20) >= before);
        assert!(instant_of(10, 20) <= Instant::now());
        assert_eq!(expiry("a.b"), None);
    }
}
