//! Token builders for tests (feature `test-util`).

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;

use crate::config::AuthConfig;

pub const TEST_SECRET: &str = "test-secret-test-secret-test-secret-0123";

pub fn test_config() -> AuthConfig {
    AuthConfig {
        hs256_secret: Some(TEST_SECRET.to_owned()),
        jwks: None,
        issuer: None,
        audience: None,
        role_claim: "roles".to_owned(),
        admin_role: "admin".to_owned(),
        leeway_s: 0,
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// Signs arbitrary claims with `secret`.
pub fn sign(claims: &serde_json::Value, secret: &str) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap_or_default()
}

/// A valid token for `user`, valid for an hour.
pub fn token_for(user: &str, admin: bool) -> String {
    let roles = if admin { json!(["admin"]) } else { json!([]) };
    sign(
        &json!({"sub": user, "exp": now() + 3600, "iat": now(), "roles": roles}),
        TEST_SECRET,
    )
}

/// An expired token for `user`.
pub fn expired_token_for(user: &str) -> String {
    sign(&json!({"sub": user, "exp": now() - 3600}), TEST_SECRET)
}
