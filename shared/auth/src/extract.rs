//! The axum extractor for an authenticated caller: 401 problem+json when the
//! token is missing or bad, with the RFC 6750 challenge.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use service::Problem;

use crate::verify::{AuthError, Authenticator, Principal};

/// App states that can authenticate requests.
pub trait HasAuthenticator {
    fn authenticator(&self) -> &Arc<Authenticator>;
}

/// A verified caller.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Principal);

/// A refused request: 401 problem+json with a `WWW-Authenticate` challenge.
#[derive(Debug)]
pub struct Unauthenticated(AuthError);

impl Unauthenticated {
    /// RFC 6750 §3: a request without a bearer token gets the bare
    /// challenge; one whose token was refused also gets
    /// `error="invalid_token"` (§3.1), so a client knows to get a new one
    /// rather than to add one. The reason stays in the body and the log.
    fn challenge(&self) -> HeaderValue {
        match self.0 {
            AuthError::Missing | AuthError::NotBearer => HeaderValue::from_static("Bearer"),
            AuthError::Invalid(_) => HeaderValue::from_static(r#"Bearer error="invalid_token""#),
        }
    }

    /// A fixed sentence: why a token was refused (the JWT library's
    /// wording, a claim's name) is for the log, not for whoever holds it.
    fn detail(&self) -> &'static str {
        match self.0 {
            AuthError::Missing => "the request has no bearer token",
            AuthError::NotBearer => "the Authorization header is not a bearer token",
            AuthError::Invalid(_) => "the bearer token is not valid",
        }
    }
}

impl IntoResponse for Unauthenticated {
    fn into_response(self) -> Response {
        let challenge = self.challenge();
        let mut response = Problem::new(StatusCode::UNAUTHORIZED, self.detail()).into_response();
        response.headers_mut().insert(WWW_AUTHENTICATE, challenge);
        response
    }
}

impl<S> FromRequestParts<S> for Authenticated
where
    S: HasAuthenticator + Send + Sync,
{
    type Rejection = Unauthenticated;

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
                Unauthenticated(e)
            })
    }
}
