//! audit: the complete trail of task events.
//!
//! Ingest takes `task-events` pushes from Dapr (or Knative Eventing) and
//! stores each event once, keyed by its id; the reply tells the deliverer
//! whether to forget, retry or dead-letter the event.

pub mod config;
pub mod ingest;
pub mod store;

use axum::Router;
use axum::routing::{get, post};
use dapr_http::callback::AppToken;
use service::health::ReadinessCheck;
use telemetry::metrics::Metrics;
use tower_http::trace::TraceLayer;

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
}

/// The whole HTTP surface. Dapr's callbacks require the app API token.
pub fn app(
    state: AppState,
    app_token: AppToken,
    checks: Vec<Box<dyn ReadinessCheck>>,
    metrics: Metrics,
) -> Router {
    let dapr_callbacks = Router::new()
        .route("/dapr/subscribe", get(ingest::subscriptions))
        .route(TASK_EVENTS_ROUTE, post(ingest::task_event))
        .route_layer(axum::middleware::from_fn_with_state(
            app_token,
            dapr_http::require_app_token,
        ));
    Router::new()
        .merge(dapr_callbacks)
        .with_state(state)
        .layer(TraceLayer::new_for_http())
        .merge(service::health::routes(checks, metrics))
}
