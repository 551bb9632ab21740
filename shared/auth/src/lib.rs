//! Who is calling: Bearer JWT verification and the [`Principal`] it yields.
//! Keys: an HS256 shared secret, a JWKS URL (RS256, ES256, EdDSA; cached by
//! `kid`, refetched on an unknown one), or both.
//!
//! `sub` is the user; a configurable role claim (a string or an array of
//! strings) marks admins. `iss` and `aud`, when configured, are required
//! and must match; `exp` and `nbf` are checked with the configured leeway.
//! A refused request gets 401 with the RFC 6750 `WWW-Authenticate`
//! challenge ([`Unauthenticated`]).
//! Tokens with `alg: none`, or any algorithm other than the configured
//! key's, are refused.

pub mod config;
pub mod extract;
pub mod jwks;
pub mod verify;

pub use config::{AuthConfig, JwksConfig};
pub use extract::{Authenticated, HasAuthenticator, Unauthenticated};
pub use verify::{AuthError, Authenticator, Principal, plausible_email};

#[cfg(any(test, feature = "test-util"))]
pub mod testing;
