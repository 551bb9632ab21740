//! `/healthz` (the process is alive), `/readyz` (its dependencies answer)
//! and `/metrics` (Prometheus), mounted by every function.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use telemetry::metrics::Metrics;

/// A named readiness check.
pub type CheckFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// Something `/readyz` must see answer before the function takes traffic.
pub trait ReadinessCheck: Send + Sync {
    fn name(&self) -> &'static str;
    fn check(&self) -> CheckFuture;
}

#[derive(Clone)]
struct HealthState {
    checks: Arc<Vec<Box<dyn ReadinessCheck>>>,
    metrics: Metrics,
}

/// The three routes, over the given checks and registry.
pub fn routes(checks: Vec<Box<dyn ReadinessCheck>>, metrics: Metrics) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .with_state(HealthState {
            checks: Arc::new(checks),
            metrics,
        })
}

async fn readyz(State(state): State<HealthState>) -> Response {
    let results = futures::future::join_all(
        state
            .checks
            .iter()
            .map(|c| async move { (c.name(), c.check().await) }),
    )
    .await;
    let mut body = serde_json::Map::new();
    let mut ready = true;
    for (name, result) in results {
        let value = match result {
            Ok(()) => "ok".to_owned(),
            Err(reason) => {
                ready = false;
                reason
            }
        };
        body.insert(name.to_owned(), value.into());
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(serde_json::Value::Object(body))).into_response()
}

async fn render_metrics(State(state): State<HealthState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    struct Fixed(&'static str, Result<(), String>);
    impl ReadinessCheck for Fixed {
        fn name(&self) -> &'static str {
            self.0
        }
        fn check(&self) -> CheckFuture {
            let result = self.1.clone();
            Box::pin(async move { result })
        }
    }

    async fn get_status(app: Router, path: &str) -> (StatusCode, String) {
        let response = app
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn readyz_names_the_failing_dependency() {
        let checks: Vec<Box<dyn ReadinessCheck>> = vec![
            Box::new(Fixed("postgres", Ok(()))),
            Box::new(Fixed("daprd", Err("connection refused".into()))),
        ];
        let app = routes(checks, Metrics::new("t"));
        let (status, body) = get_status(app.clone(), "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("\"daprd\":\"connection refused\""), "{body}");
        assert_eq!(get_status(app, "/healthz").await.0, StatusCode::OK);
    }
}
