//! recurring: the next occurrence of every completed recurring task.
//!
//! - [`ingest`]: `task-events` pushes from Dapr (only the `completed` type,
//!   by a routing rule) or from Knative Eventing (every type, the handler
//!   skips the rest) are decoded once; a completion of a recurring task
//!   creates its successor through the task domain; the reply tells the
//!   deliverer whether to forget, retry or dead-letter the event.
//! - [`config`]: the shared settings and the outbox relay's.
//! - `openapi.json` (beside this crate, served at `/openapi.json`): what an
//!   operator reaches — health, readiness, metrics and the document itself;
//!   the callbacks are internal and left out, and a test holds the document
//!   to what [`app`] serves ([`service::openapi::drift`]).
//!
//! recurring owns no tables: the successor and its events commit in one
//! transaction through [`task_domain::TaskRepository`], and this function's
//! own outbox relay publishes them, so the new task reaches audit,
//! reminders and every WebSocket like any other write.

pub mod config;
pub mod ingest;

use axum::Router;
use axum::response::Response;
use axum::routing::{get, post};
use dapr_http::callback::AppToken;
use service::health::ReadinessCheck;
use service::openapi::RouteTable;
use task_domain::{Relay, TaskRepository};
use telemetry::metrics::Metrics;

/// The route completions are delivered to: by Dapr's routing rule, and by
/// a Knative push (which carries every type).
pub const TASK_EVENTS_ROUTE: &str = "/events/task-events";
/// Dapr's default route for the other `task-events` types: acknowledged
/// without work. Without a default, daprd 1.18 sends an event no rule
/// matches to the dead-letter topic (pkg/runtime/subscription/
/// subscription.go, "no matching route"), which would fill it with every
/// healthy create, update and delete.
pub const IGNORED_ROUTE: &str = "/events/task-events/ignored";

/// This function's OpenAPI document, embedded at compile time.
pub const OPENAPI: &str = include_str!("../openapi.json");

#[derive(Clone)]
pub struct AppState {
    pub repo: TaskRepository,
    pub relay: Relay,
    pub pubsub: String,
    pub metrics: ingest::IngestMetrics,
}

/// The whole HTTP surface: the callbacks behind daprd's app API token (or
/// the Knative push token), plus health, metrics and `openapi.json`. A
/// push is answered when its outcome is settled, so it has no request
/// timeout: a slow database gives RETRY through the pool's own timeouts.
pub fn app(
    state: AppState,
    app_token: AppToken,
    checks: Vec<Box<dyn ReadinessCheck>>,
    metrics: Metrics,
) -> Router {
    let callbacks = dapr_http::behind_app_token(callback_routes().into_router(), app_token);
    let routes = Router::new()
        .merge(callbacks)
        .merge(document_routes().into_router())
        .with_state(state);
    service::surface::finish(routes, checks, metrics)
}

/// The callbacks daprd and Knative call: internal, not in `openapi.json`.
pub fn callback_routes() -> RouteTable<AppState> {
    RouteTable::new()
        .route("/dapr/subscribe", get(ingest::subscriptions))
        .route(TASK_EVENTS_ROUTE, post(ingest::task_event))
        .route(IGNORED_ROUTE, post(ingest::ignored))
}

/// The one route of `openapi.json` besides the health routes: the document.
pub fn document_routes() -> RouteTable<AppState> {
    RouteTable::new().route("/openapi.json", get(openapi))
}

/// `GET /openapi.json`.
async fn openapi() -> Response {
    service::openapi::serve(OPENAPI)
}

#[cfg(test)]
mod app_tests;
#[cfg(test)]
mod db_tests;
#[cfg(test)]
mod openapi_tests;
