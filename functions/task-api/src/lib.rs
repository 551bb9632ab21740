//! task-api: the REST surface over the task domain.
//!
//! [`app`] builds the router from an [`AppState`]; `main` only wires
//! configuration, the pool, the relay and the server.
//!
//! - [`routes`]: the public REST API (openapi.json).
//! - [`callbacks`]: `POST /job/outbox-relay`, a relay pass for a trigger
//!   that wakes task-api from zero, behind the app or push token.
//! - [`retention`]: `POST /job/change-retention`, the Dapr job that prunes
//!   the change feed, sent outbox rows and old idempotency keys; [`router`]
//!   merges its router beside [`app`], and `main` registers the job.
//!
//! [`router`] is everything `main` serves (before CORS), so the OpenAPI
//! drift test probes exactly that; [`callback_paths`] are its internal
//! routes, left out of `openapi.json`. Every route is registered through a
//! `service::openapi::RouteTable` (public: [`routes::table`]; internal:
//! the callbacks' and the retention job's tables), so the test knows
//! every path.

pub mod callbacks;
pub mod config;
pub mod error;
pub mod retention;
pub mod routes;

use std::sync::Arc;
use std::time::Duration;

use auth::{Authenticator, HasAuthenticator};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use dapr_http::AppToken;
use service::health::ReadinessCheck;
use task_domain::{Relay, TaskRepository};
use telemetry::metrics::Metrics;

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub repo: TaskRepository,
    pub relay: Relay,
    pub authenticator: Arc<Authenticator>,
}

impl HasAuthenticator for AppState {
    fn authenticator(&self) -> &Arc<Authenticator> {
        &self.authenticator
    }
}

/// Router limits that come from configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
}

/// The routes daprd, the Dapr scheduler and Knative call (job triggers):
/// internal, behind the callback token, not in `openapi.json`. Taken from
/// the route tables [`callbacks::router`] and [`retention::router`] are
/// built from, so a callback route cannot be added without being named
/// here (and every other route is a public one the drift test holds to
/// the document).
pub fn callback_paths() -> Vec<&'static str> {
    let mut paths = callbacks::table().paths().to_vec();
    paths.extend(retention::table().paths());
    paths
}

/// Everything `main` serves, before its CORS layer: [`app`] and the
/// retention job's trigger, under the same callback token. Bare errors are
/// made problem documents again after the merge, whose fallback (an
/// unknown path's 404) is the merged router's own.
pub fn router(
    state: AppState,
    callback_token: AppToken,
    checks: Vec<Box<dyn ReadinessCheck>>,
    metrics: Metrics,
    limits: Limits,
    retention: retention::RetentionConfig,
) -> Router {
    let prune = retention::router(state.repo.clone(), retention, callback_token.clone());
    service::problem_errors::layer(app(state, callback_token, checks, metrics, limits).merge(prune))
}

/// The API, the relay trigger and health; [`router`] adds the retention
/// job. `callback_token` guards the callback routes.
pub fn app(
    state: AppState,
    callback_token: AppToken,
    checks: Vec<Box<dyn ReadinessCheck>>,
    metrics: Metrics,
    limits: Limits,
) -> Router {
    let relay = callbacks::router(
        state.relay.clone(),
        callback_token,
        callbacks::drain_budget(limits.request_timeout),
    );
    let api = Router::new()
        .merge(routes::router())
        .with_state(state)
        .merge(relay);
    let api = api.layer(DefaultBodyLimit::max(limits.max_body_bytes));
    let api = service::surface::with_timeout(api, limits.request_timeout);
    service::surface::finish(api, checks, metrics)
}
