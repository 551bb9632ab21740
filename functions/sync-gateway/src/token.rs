//! A socket's credentials: the user's token, verified with the API's rules
//! (the shared [`auth::Authenticator`]: same keys, issuer, audience,
//! leeway), and when it expires, so the session can close the socket then.
//! The token is kept: the session reads the change feed with it, so
//! task-api applies its own checks to every replay.

use auth::{AuthError, Authenticator};
use tokio::time::Instant;

/// A verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub user: String,
    pub token: String,
    /// When the token's `exp` passes (on tokio's clock).
    pub expires_at: Instant,
}

/// Why a token does not open (or extend) a socket.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Forged, malformed, of another issuer or audience, or long expired.
    #[error(transparent)]
    Refused(#[from] AuthError),
    /// Past its `exp`, though within the clock leeway the API accepts: a
    /// socket would be closed with 4402 right after its hello, and the
    /// client would loop; it is refused before the hello instead.
    #[error("the token has expired")]
    Expired,
}

/// Verifies `token` and takes its expiry from the verified claims
/// ([`auth::Principal::expires_at`]).
pub async fn verify(auth: &Authenticator, token: &str) -> Result<Verified, TokenError> {
    let principal = auth.verify(token).await?;
    let now = now_unix();
    if principal.expires_at <= now {
        return Err(TokenError::Expired);
    }
    Ok(Verified {
        user: principal.user_id,
        token: token.to_owned(),
        expires_at: instant_of(principal.expires_at, now),
    })
}

/// Verifies an `Authorization: Bearer` header value.
pub async fn verify_header(auth: &Authenticator, value: &str) -> Result<Verified, TokenError> {
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or(AuthError::NotBearer)?;
    verify(auth, token.trim()).await
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// The instant `exp` (Unix seconds) falls on, given that it is `now` now;
/// a past `exp` is now.
/// A far-future `exp` (a signed token may say 10^17) is capped: adding it
/// to an `Instant` would overflow and panic.
fn instant_of(exp: i64, now: i64) -> Instant {
    let left = u64::try_from(exp.saturating_sub(now))
        .unwrap_or(0)
        .min(MAX_LIFETIME_S);
    Instant::now() + std::time::Duration::from_secs(left)
}

/// Ten years: longer than any socket lives.
const MAX_LIFETIME_S: u64 = 10 * 365 * 24 * 3600;

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
        let left = verified.expires_at - Instant::now();
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
        let far = instant_of(i64::MAX, 0) - Instant::now();
        assert!(far.as_secs() <= MAX_LIFETIME_S, "no overflow, capped");
    }

    #[tokio::test]
    async fn a_fractional_exp_expires_and_one_within_the_leeway_is_expired() {
        let auth = Authenticator::new(&test_config());
        // RFC 7519 NumericDate may carry a fraction: it must still expire.
        let exp = now_unix() as f64 + 120.5;
        let token = sign(&json!({"sub": "alice", "exp": exp}), TEST_SECRET);
        let left = verify(&auth, &token).await.unwrap().expires_at - Instant::now();
        assert!(left.as_secs() > 100 && left.as_secs() <= 120, "{left:?}");
        // Past exp, within the accepted leeway: expired, not refused.
        let mut lenient = test_config();
        lenient.leeway_s = 30;
        let auth = Authenticator::new(&lenient);
        let token = sign(&json!({"sub": "alice", "exp": now_unix() - 2}), TEST_SECRET);
        assert!(matches!(
            verify(&auth, &token).await,
            Err(TokenError::Expired)
        ));
    }
}
