//! Who is calling: Bearer JWT verification and the [`Principal`] it yields.
//!
//! `sub` is the user; a configurable role claim (a string or an array of
//! strings) marks admins. `iss` and `aud` are checked when configured.
//! Tokens with `alg: none`, or any algorithm other than the configured
//! key's, are refused.

pub mod config;
pub mod extract;
pub mod verify;

pub use config::AuthConfig;
pub use extract::{Authenticated, HasAuthenticator};
pub use verify::{AuthError, Authenticator, Principal};

#[cfg(any(test, feature = "test-util"))]
pub mod testing;
