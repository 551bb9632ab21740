//! task-api's callback route: `POST /job/outbox-relay`, a relay pass on
//! demand.
//!
//! The relay runs inside task-api, woken by each commit and by its poll
//! interval. At zero replicas (the `scale-to-zero` profile) nothing runs it,
//! and events left unsent by a daprd or broker outage would wait for the
//! next API request. A Knative PingSource
//! (`knative/overlays/scale-to-zero/task-api-relay-pingsource.yaml`) posts
//! here every minute: the request wakes the Service from zero, and the
//! handler publishes whatever waits within a budget below the request
//! timeout. The background relay also keeps going while the pod lives.
//!
//! Not part of the public API (not in openapi.json): like every callback
//! route it admits only daprd's app token or the Knative push token.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use dapr_http::{AppToken, behind_app_token};
use serde::Serialize;
use service::openapi::RouteTable;
use task_domain::Relay;

use crate::error::ApiError;

/// The route a trigger posts to (the PingSource's `sink.uri`).
pub const RELAY_ROUTE: &str = "/job/outbox-relay";

#[derive(Clone)]
pub(crate) struct RelayTrigger {
    relay: Relay,
    budget: Duration,
}

/// What one trigger did.
#[derive(Debug, Serialize)]
struct RelayReport {
    published: u64,
    /// Unsent events left (a broker still down, refused events backing off).
    pending: i64,
}

/// The callback routes, by path: [`crate::callback_paths`] names them
/// as internal for the OpenAPI drift test.
pub(crate) fn table() -> RouteTable<RelayTrigger> {
    RouteTable::new().route(RELAY_ROUTE, post(run_relay))
}

/// The callback routes ([`table`]), behind `token`. A drain stops after
/// `budget`, so the reply beats the request timeout.
pub fn router(relay: Relay, token: AppToken, budget: Duration) -> Router {
    behind_app_token(table().into_router(), token).with_state(RelayTrigger { relay, budget })
}

/// The drain budget for a request timeout: four fifths of it, so the
/// report and its pending count still fit.
pub fn drain_budget(request_timeout: Duration) -> Duration {
    request_timeout.mul_f64(0.8)
}

async fn run_relay(State(trigger): State<RelayTrigger>) -> Response {
    match report(&trigger).await {
        Ok(report) => {
            tracing::info!(
                published = report.published,
                pending = report.pending,
                "relay trigger done"
            );
            (StatusCode::OK, Json(report)).into_response()
        }
        Err(error) => error.into_response(),
    }
}

async fn report(trigger: &RelayTrigger) -> Result<RelayReport, ApiError> {
    let published = trigger.relay.drain(trigger.budget).await?;
    let pending = trigger.relay.pending().await?;
    Ok(RelayReport { published, pending })
}
