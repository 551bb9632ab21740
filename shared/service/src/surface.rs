//! How every function finishes its HTTP surface, so all five answer alike:
//! each routed request counted and timed in `/metrics` and traced, the
//! health routes beside the function's own, and every bare error turned
//! into a problem document.

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use telemetry::metrics::Metrics;

use crate::health::{self, ReadinessCheck};
use crate::http_metrics;
use crate::problem_errors;

/// `routes` instrumented and traced, with `/healthz`, `/readyz` and
/// `/metrics` (judged by `checks`) beside them. The problem layer is the
/// outermost, so axum's own 404/405 and the inner layers' bare answers
/// (a timeout's 503, a body limit's 413) are problem documents too.
pub fn finish(routes: Router, checks: Vec<Box<dyn ReadinessCheck>>, metrics: Metrics) -> Router {
    let app = http_metrics::instrument(routes, &metrics)
        .layer(TraceLayer::new_for_http())
        .merge(health::routes(checks, metrics));
    problem_errors::layer(app)
}

/// `router` answering 503 when a request takes longer than `timeout`
/// (tower-http 0.6.11's deprecated `TimeoutLayer::new` answered 408; a
/// slow dependency is the server's trouble, not the client's).
pub fn with_timeout<S>(router: Router<S>, timeout: Duration) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    router.layer(TimeoutLayer::with_status_code(
        StatusCode::SERVICE_UNAVAILABLE,
        timeout,
    ))
}
