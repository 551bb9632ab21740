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
/// `/metrics` (judged by `checks`) beside them, neither timed nor counted.
/// Layers already on `routes` (a [`with_timeout`]) sit inside the
/// instrument, so a timed-out request is counted with its 503. The problem
/// layer is the outermost, so axum's own 404/405, extractors' text/plain
/// rejections and a timeout's empty 503 are problem documents too.
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, header};
    use axum::routing::get;
    use tower::ServiceExt;

    fn app(metrics: &Metrics) -> Router {
        let slow = Router::new().route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        );
        finish(
            with_timeout(slow, Duration::from_millis(20)),
            Vec::new(),
            metrics.clone(),
        )
    }

    async fn call(app: &Router, path: &str) -> (StatusCode, Option<String>) {
        let request = Request::get(path).body(Body::empty()).unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let kind = response.headers().get(header::CONTENT_TYPE);
        let kind = kind.and_then(|v| v.to_str().ok()).map(str::to_owned);
        (response.status(), kind)
    }

    #[tokio::test]
    async fn a_timed_out_request_is_a_counted_503_problem() {
        let metrics = Metrics::new("t");
        let app = app(&metrics);
        let (status, kind) = call(&app, "/slow").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(kind.as_deref(), Some("application/problem+json"));
        let text = metrics.render();
        assert!(
            text.contains(r#"t_http_requests_total{method="GET",route="/slow",status="503"} 1"#),
            "{text}"
        );
    }

    #[tokio::test]
    async fn an_unknown_path_is_a_404_problem() {
        let app = app(&Metrics::new("t"));
        let (status, kind) = call(&app, "/nothing-here").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(kind.as_deref(), Some("application/problem+json"));
    }

    #[tokio::test]
    async fn health_is_beside_the_routes_and_not_counted() {
        let metrics = Metrics::new("t");
        let app = app(&metrics);
        assert_eq!(call(&app, "/healthz").await.0, StatusCode::OK);
        assert!(!metrics.render().contains("/healthz"));
    }
}
