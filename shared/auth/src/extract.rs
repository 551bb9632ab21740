//! The axum extractor for an authenticated caller: 401 problem+json when the
//! token is missing or bad.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use service::Problem;

use crate::verify::{Authenticator, Principal};

/// App states that can authenticate requests.
pub trait HasAuthenticator {
    fn authenticator(&self) -> &Arc<Authenticator>;
}

/// A verified caller.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Principal);

impl<S> FromRequestParts<S> for Authenticated
where
    S: HasAuthenticator + Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        state
            .authenticator()
            .verify_header(header)
            .await
            .map(Authenticated)
            .map_err(|e| {
                tracing::debug!(reason = %e, "request not authenticated");
                Problem::unauthorized(e.to_string())
            })
    }
}
