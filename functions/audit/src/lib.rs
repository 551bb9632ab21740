//! audit: the complete trail of task events.
//!
//! - [`ingest`]: `task-events` pushes from Dapr (or Knative Eventing) are
//!   stored once per event id; the reply tells the deliverer whether to
//!   forget, retry or dead-letter the event.
//! - [`api`]: the access-controlled read API over [`query`] (by event
//!   time), [`tail`] (by ingest, for clients that follow new entries) and
//!   [`gaps`], described by `openapi.json` (served at `/openapi.json`).
//! - [`retention`]: the daily job that deletes expired entries, triggered by
//!   the Dapr scheduler or, with audit at zero, a Knative PingSource.

pub mod api;
pub mod config;
pub mod gaps;
pub mod ingest;
pub mod query;
pub mod retention;
pub mod store;
pub mod tail;

#[cfg(test)]
mod testing;

use std::sync::Arc;
use std::time::Duration;

use auth::{Authenticator, HasAuthenticator};
use axum::Router;
use axum::routing::{get, post};
use dapr_http::callback::AppToken;
use service::health::ReadinessCheck;
use service::openapi::RouteTable;
use telemetry::metrics::Metrics;
use tokio::sync::Semaphore;

use crate::config::RetentionConfig;
use crate::store::AuditStore;

/// The route Dapr pushes `task-events` to.
pub const TASK_EVENTS_ROUTE: &str = "/events/task-events";

/// The history table of this function's migrations.
pub const MIGRATION_TABLE: &str = "refinery_history_audit";

pub fn migrations() -> refinery::Runner {
    mod embedded {
        refinery::embed_migrations!("migrations");
    }
    embedded::migrations::runner()
}

#[derive(Clone)]
pub struct AppState {
    pub store: AuditStore,
    pub pubsub: String,
    pub metrics: ingest::IngestMetrics,
    pub authenticator: Arc<Authenticator>,
    pub retention: RetentionConfig,
    /// One permit: gap checks run one at a time ([`gaps_running`]).
    pub gaps_running: Arc<Semaphore>,
}

/// The permit a gap check holds while it runs: one per replica, so admins
/// cannot stack full-table scans on the database.
pub fn gaps_running() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(1))
}

impl HasAuthenticator for AppState {
    fn authenticator(&self) -> &Arc<Authenticator> {
        &self.authenticator
    }
}

/// The whole HTTP surface. The callbacks (pushes, job triggers) require
/// daprd's app API token or the Knative push token; the read API requires a
/// user's bearer token and is bounded by `api_timeout`. Job triggers are
/// not: a purge answers when it is done.
pub fn app(
    state: AppState,
    app_token: AppToken,
    checks: Vec<Box<dyn ReadinessCheck>>,
    metrics: Metrics,
    api_timeout: Duration,
) -> Router {
    // Job triggers take the same tokens as pushes: at zero replicas there
    // is no sidecar for the Dapr scheduler to trigger, so in the
    // scale-to-zero profile a PingSource sends the retention trigger with
    // the push token (knative/overlays/scale-to-zero/audit-pingsource.yaml).
    let callbacks = dapr_http::behind_app_token(callback_routes().into_router(), app_token);
    let api = service::surface::with_timeout(api_routes().into_router(), api_timeout);
    let routes = Router::new().merge(callbacks).merge(api).with_state(state);
    service::surface::finish(routes, checks, metrics)
}

/// The callbacks daprd and Knative call: internal, not in `openapi.json`.
pub fn callback_routes() -> RouteTable<AppState> {
    RouteTable::new()
        .route("/dapr/subscribe", get(ingest::subscriptions))
        .route(TASK_EVENTS_ROUTE, post(ingest::task_event))
        .route("/job/{name}", post(retention::run_job))
}

/// The user API and its document (`openapi.json`, beside this crate). The
/// health routes are documented there too; a test holds the document to
/// what [`app`] serves ([`service::openapi::drift`]).
pub fn api_routes() -> RouteTable<AppState> {
    RouteTable::new()
        .route("/api/audit-logs", get(api::list))
        // A static segment wins over the parameter, so `gaps` is never
        // taken for an event id (event ids are UUIDs).
        .route("/api/audit-logs/gaps", get(api::gaps))
        .route("/api/audit-logs/{event_id}", get(api::get_one))
        .route("/openapi.json", get(api::openapi))
}

#[cfg(test)]
mod app_tail_tests;
#[cfg(test)]
mod app_tests;
#[cfg(test)]
mod ingest_tests;
#[cfg(test)]
mod openapi_tests;
