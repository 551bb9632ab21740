//! `/healthz` (the process is alive), `/readyz` (its dependencies answer)
//! and `/metrics` (Prometheus), mounted by every function.
//!
//! `/readyz` is public (probes and the public origin reach it), so it names
//! which dependency fails but never why: a database error carries host
//! names, user names and server versions. The reason goes to the log.

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

/// The paths [`routes`] serves, for the OpenAPI drift check.
pub const PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// The three routes, over the given checks and registry.
pub fn routes(checks: Vec<Box<dyn ReadinessCheck>>, metrics: Metrics) -> Router {
    let [healthz, readyz_path, metrics_path] = PATHS;
    Router::new()
        .route(healthz, get(|| async { "ok" }))
        .route(readyz_path, get(readyz))
        .route(metrics_path, get(render_metrics))
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
            Ok(()) => "ok",
            Err(reason) => {
                ready = false;
                tracing::warn!(check = name, %reason, "readiness check failed");
                "unavailable"
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
    use std::sync::Mutex;
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

    /// Everything logged while the guard lives, on this thread.
    fn capture_logs() -> (tracing::subscriber::DefaultGuard, Arc<Mutex<Vec<u8>>>) {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || Captured(writer.clone()))
            .with_ansi(false)
            .finish();
        (tracing::subscriber::set_default(subscriber), buffer)
    }

    struct Captured(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn readyz_names_the_failing_dependency_and_logs_why() {
        const REASON: &str =
            "password authentication failed for user \"todo\" at db-7.internal:5432";
        let (_guard, logs) = capture_logs();
        let checks: Vec<Box<dyn ReadinessCheck>> = vec![
            Box::new(Fixed("postgres", Err(REASON.into()))),
            Box::new(Fixed("daprd", Ok(()))),
        ];
        let app = routes(checks, Metrics::new("t"));
        let (status, body) = get_status(app.clone(), "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"postgres": "unavailable", "daprd": "ok"})
        );
        for secret in ["password", "db-7.internal", "todo"] {
            assert!(!body.contains(secret), "{body}");
        }
        let logged = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
        assert!(
            logged.contains("readiness check failed") && logged.contains("db-7.internal"),
            "{logged}"
        );
        assert_eq!(get_status(app, "/healthz").await.0, StatusCode::OK);
    }
}
