//! task-api: the REST surface over the task domain.
//!
//! [`app`] builds the router from an [`AppState`]; `main` only wires
//! configuration, the pool, the relay and the server.
//!
//! - [`routes`]: the public REST API (openapi.json).
//! - [`callbacks`]: `POST /job/outbox-relay`, a relay pass for a trigger
//!   that wakes task-api from zero, behind the app or push token.
//! - [`retention`]: `POST /job/change-retention`, the Dapr job that prunes
//!   the change feed, sent outbox rows and old idempotency keys; `main`
//!   merges its router beside [`app`] and registers the job.

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
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

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

/// The whole HTTP surface; `callback_token` guards the callback routes.
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
    let app = service::http_metrics::instrument(api, &metrics)
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            limits.request_timeout,
        ))
        .layer(TraceLayer::new_for_http())
        .merge(service::health::routes(checks, metrics));
    // Last, so axum's own 404/405 and the layers' bare answers (the
    // timeout's 503, the body limit's 413) are problem documents too.
    service::problem_errors::layer(app)
}
