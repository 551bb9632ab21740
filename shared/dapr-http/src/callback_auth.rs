//! Who may call the app's callback routes (`/dapr/*`, `/events/*`,
//! `/job/*`), and which deliverer it was.
//!
//! - daprd proves itself with the app API token in `dapr-api-token`: with
//!   `APP_API_TOKEN` set, daprd puts it on every request to the app (dapr
//!   1.18.2 `pkg/channel/http/http_channel.go`, `appHeaderToken`).
//! - A Knative KafkaSource cannot send that header, so in the
//!   `scale-to-zero` profile it sends a separate push token as the CloudEvent
//!   extension `pushtoken`, which arrives as the `ce-pushtoken` header.
//!   `KNATIVE_PUSH_TOKEN` may list several tokens, comma-separated, so a
//!   rotation admits the old and the new one while the sources change
//!   over: Knative does not retry a 401 (it dead-letters it), so a single
//!   token would dead-letter every event in flight. `APP_API_TOKEN` stays
//!   one token: daprd reads the same variable and sends it as it is.
//!
//! The token that matched names the deliverer, and the deliverer decides
//! how a reply is spelled ([`DeliveredBy`], read by handlers and passed to
//! [`crate::reply`]); the payload's shape never does. It matters both ways:
//! daprd reads a 2xx's `status` field and retries any other status but 404
//! (`pkg/runtime/subscription/postman/http/http.go`), so a Knative-style 400
//! for poison would be retried instead of dead-lettered; Knative reads only
//! the HTTP status, so a `200 {"status":"DROP"}` would acknowledge the
//! event and lose it.
//!
//! Fail closed: without a configured token every call is refused, and
//! [`AppToken::from_settings`] refuses to start the function unless
//! `ALLOW_UNAUTHENTICATED_CALLBACKS=true` opens the routes on purpose
//! (development only). Open routes answer every caller as daprd: daprd is
//! the deliverer of the local stack, while every Knative push source is
//! deployed with a push token (`scripts/validate-deploy` checks that), so
//! an open function meets no Knative deliverer.
//!
//! The guard also limits the body (`crate::callback_body`): past
//! `CALLBACK_MAX_BODY_BYTES` an event is poison for its deliverer.

use std::fmt;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use contracts::Delivery;
use settings::{SettingError, Settings};
use subtle::ConstantTimeEq;

use crate::API_TOKEN_HEADER;
use crate::callback::knative_problem;
use crate::callback_body::{DEFAULT_CALLBACK_MAX_BODY_BYTES, max_body_bytes, run_limited};

/// The token daprd must send (daprd reads the same variable).
pub const ENV_APP_API_TOKEN: &str = "APP_API_TOKEN";
/// The token a Knative KafkaSource (or PingSource) sends as `pushtoken`;
/// several, comma-separated, during a rotation.
pub const ENV_KNATIVE_PUSH_TOKEN: &str = "KNATIVE_PUSH_TOKEN";
/// Development only: start without either token and admit every caller.
pub const ENV_ALLOW_UNAUTHENTICATED_CALLBACKS: &str = "ALLOW_UNAUTHENTICATED_CALLBACKS";
pub const DEFAULT_ALLOW_UNAUTHENTICATED_CALLBACKS: bool = false;
/// The header a KafkaSource's `ceOverrides.extensions.pushtoken` becomes.
pub const KNATIVE_PUSH_TOKEN_HEADER: &str = "ce-pushtoken";

/// Who may call the callback routes, and how large a body they may send.
/// Cloning is cheap.
#[derive(Clone)]
pub struct AppToken {
    dapr: Option<Arc<str>>,
    /// Every push token accepted (more than one during a rotation).
    knative_push: Arc<[Arc<str>]>,
    /// Every caller admitted (and answered as daprd); only with no token.
    open: bool,
    max_body_bytes: usize,
}

impl fmt::Debug for AppToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |t: &Option<Arc<str>>| if t.is_some() { "<set>" } else { "<unset>" };
        f.debug_struct("AppToken")
            .field("dapr", &set(&self.dapr))
            .field("knative_push_tokens", &self.knative_push.len())
            .field("open", &self.open)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish()
    }
}

impl AppToken {
    /// Admits daprd with `dapr` and Knative with any of the
    /// comma-separated tokens in `knative_push` (surrounding blanks
    /// trimmed). An empty token counts as unset; with none set, nothing is
    /// admitted. The body limit is the default one.
    pub fn new(dapr: Option<&str>, knative_push: Option<&str>) -> Self {
        let knative_push = knative_push
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(Arc::from)
            .collect();
        Self {
            dapr: dapr.filter(|t| !t.is_empty()).map(Arc::from),
            knative_push,
            open: false,
            max_body_bytes: DEFAULT_CALLBACK_MAX_BODY_BYTES,
        }
    }

    /// Admits every caller and answers it as daprd. Development only.
    pub fn unauthenticated() -> Self {
        Self {
            dapr: None,
            knative_push: Arc::from([]),
            open: true,
            max_body_bytes: DEFAULT_CALLBACK_MAX_BODY_BYTES,
        }
    }

    /// The same guard with another body limit.
    pub fn with_max_body_bytes(mut self, limit: usize) -> Self {
        self.max_body_bytes = limit;
        self
    }

    /// Reads the tokens and the body limit; with no token set (a push
    /// token list of blanks and commas counts as none), refuses unless
    /// `ALLOW_UNAUTHENTICATED_CALLBACKS` is true. With a token set the
    /// routes are checked whatever that flag says.
    pub fn from_settings(s: &Settings<'_>) -> Result<Self, SettingError> {
        let allow_open = s.flag(
            ENV_ALLOW_UNAUTHENTICATED_CALLBACKS,
            DEFAULT_ALLOW_UNAUTHENTICATED_CALLBACKS,
        )?;
        let limit = max_body_bytes(s)?;
        let checked = Self::new(
            s.optional(ENV_APP_API_TOKEN).as_deref(),
            s.optional(ENV_KNATIVE_PUSH_TOKEN).as_deref(),
        );
        if checked.dapr.is_some() || !checked.knative_push.is_empty() {
            return Ok(checked.with_max_body_bytes(limit));
        }
        if allow_open {
            return Ok(Self::unauthenticated().with_max_body_bytes(limit));
        }
        Err(SettingError::Missing {
            key: format!("{ENV_APP_API_TOKEN} or {ENV_KNATIVE_PUSH_TOKEN}"),
            hint: format!(
                "the token daprd (or a Knative push source) must send to the callback routes; \
                 {ENV_ALLOW_UNAUTHENTICATED_CALLBACKS}=true runs them without one (development only)"
            ),
        })
    }

    /// Whether every caller is admitted.
    pub fn is_unauthenticated(&self) -> bool {
        self.open
    }

    /// Says at start who may call the callback routes; loudly when anyone
    /// may.
    pub fn log_posture(&self) {
        if self.open {
            tracing::warn!(
                setting = ENV_ALLOW_UNAUTHENTICATED_CALLBACKS,
                "callback routes are UNAUTHENTICATED: any caller may push events and trigger \
                 jobs, and is answered as daprd; for development only"
            );
        } else {
            tracing::info!(
                dapr = self.dapr.is_some(),
                knative_push_tokens = self.knative_push.len(),
                max_body_bytes = self.max_body_bytes,
                "callback routes require a token"
            );
        }
    }

    /// The deliverer the headers prove, if any.
    fn deliverer(&self, headers: &HeaderMap) -> Option<Delivery> {
        if self.open {
            return Some(Delivery::Dapr);
        }
        let presents = |expected: &[Arc<str>], header: &str| {
            let presented = headers
                .get(header)
                .map(|v| v.as_bytes())
                .unwrap_or_default();
            // Every token is compared, so the time taken does not say
            // which one came close.
            expected.iter().fold(false, |any, expected| {
                any | bool::from(presented.ct_eq(expected.as_bytes()))
            })
        };
        if presents(self.dapr.as_slice(), API_TOKEN_HEADER) {
            Some(Delivery::Dapr)
        } else if presents(&self.knative_push, KNATIVE_PUSH_TOKEN_HEADER) {
            Some(Delivery::Knative)
        } else {
            None
        }
    }
}

/// The deliverer of a callback request, as its token proved it;
/// [`require_app_token`] puts it in the request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveredBy(pub Delivery);

impl<S: Send + Sync> FromRequestParts<S> for DeliveredBy {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Response> {
        parts.extensions.get::<DeliveredBy>().copied().ok_or_else(|| {
            // A wiring mistake, not the caller's: the route is not behind
            // the guard. Refuse rather than guess a reply format.
            tracing::error!(path = %parts.uri.path(), "callback route without require_app_token");
            knative_problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal Server Error",
                "the callback route is not configured",
            )
        })
    }
}

/// `routes` with every route behind [`require_app_token`]: how each
/// function mounts the callbacks daprd and the Knative sources call.
pub fn behind_app_token<S>(routes: axum::Router<S>, token: AppToken) -> axum::Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    routes.route_layer(axum::middleware::from_fn_with_state(
        token,
        require_app_token,
    ))
}

/// Middleware: the request must carry daprd's app API token or a Knative
/// push token; the handler learns which from [`DeliveredBy`]. The body is
/// limited to `CALLBACK_MAX_BODY_BYTES`, and past it the event is poison
/// for its deliverer (`crate::callback_body`).
pub async fn require_app_token(
    State(token): State<AppToken>,
    mut request: Request,
    next: Next,
) -> Response {
    match token.deliverer(request.headers()) {
        Some(delivery) => {
            request.extensions_mut().insert(DeliveredBy(delivery));
            run_limited(token.max_body_bytes, delivery, request, next).await
        }
        None => {
            tracing::warn!(path = %request.uri().path(), "app callback refused: missing or wrong token");
            let mut response = knative_problem(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "this endpoint is only for the Dapr sidecar and the event sources",
            );
            // RFC 9110 §11.6.1: a 401 names a challenge. The token travels
            // in its own header, not in Authorization; the scheme says which.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Dapr-Api-Token realm="callbacks""#),
            );
            response
        }
    }
}

#[cfg(test)]
#[path = "callback_auth_tests.rs"]
mod tests;
