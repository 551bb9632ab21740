//! Request metrics for every HTTP API: a counter and a latency histogram per
//! method, route template and status, so dashboards can tell `/api/tasks`
//! from `/api/tasks/{id}` without one series per task id.
//!
//! Every label comes from a fixed set, so no request can add series for
//! good: methods outside the standard ones are `other` (HTTP allows any
//! token as a method, and axum hands a made-up one to the route, which
//! answers 405), routes are the router's templates (the layer runs only on
//! matched routes), and statuses are three digits.

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use telemetry::metrics::Metrics;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

type Latency = Family<RequestLabels, Histogram, fn() -> Histogram>;

#[derive(Clone)]
struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    latency: Latency,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms to ~8 s: our p99 targets are in milliseconds.
    Histogram::new(exponential_buckets(0.0005, 2.0, 15))
}

/// Counts and times every request `router` routes, registered in `metrics`.
pub fn instrument(router: Router, metrics: &Metrics) -> Router {
    let http = HttpMetrics {
        requests: Family::default(),
        latency: Family::new_with_constructor(latency_histogram),
    };
    metrics.register(
        "http_requests",
        "HTTP requests handled",
        http.requests.clone(),
    );
    metrics.register(
        "http_request_duration_seconds",
        "HTTP request latency",
        http.latency.clone(),
    );
    router.route_layer(axum::middleware::from_fn_with_state(http, track))
}

/// The route label of a request no route matched.
const UNMATCHED: &str = "unmatched";

/// The method label: one of the methods of RFC 9110 (and PATCH), or
/// `other`.
fn method_label(method: &Method) -> &'static str {
    const KNOWN: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    KNOWN
        .iter()
        .find(|known| *known == method)
        .map_or("other", Method::as_str)
}

async fn track(State(http): State<HttpMetrics>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED.to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let labels = RequestLabels {
        method: method.to_owned(),
        route,
        status: response.status().as_u16(),
    };
    http.requests.get_or_create(&labels).inc();
    http.latency
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    #[tokio::test]
    async fn requests_are_counted_by_route_template() {
        let metrics = Metrics::new("t");
        let app = instrument(
            Router::new().route("/items/{id}", get(|| async { "ok" })),
            &metrics,
        );
        for id in ["1", "2"] {
            let request = Request::get(format!("/items/{id}"))
                .body(Body::empty())
                .unwrap();
            assert_eq!(app.clone().oneshot(request).await.unwrap().status(), 200);
        }
        let text = metrics.render();
        assert!(
            text.contains(
                r#"t_http_requests_total{method="GET",route="/items/{id}",status="200"} 2"#
            ),
            "{text}"
        );
        assert!(
            text.contains("t_http_request_duration_seconds_count"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn made_up_methods_share_one_label() {
        let metrics = Metrics::new("t");
        let app = instrument(
            Router::new().route("/items", get(|| async { "ok" })),
            &metrics,
        );
        let before = metrics.render().lines().count();
        for n in 0..10_000 {
            let method = Method::from_bytes(format!("PROBE{n}").as_bytes()).unwrap();
            let request = Request::builder()
                .method(method)
                .uri("/items")
                .body(Body::empty())
                .unwrap();
            assert_eq!(app.clone().oneshot(request).await.unwrap().status(), 405);
        }
        let text = metrics.render();
        // One counter and one histogram series: a few dozen lines in all.
        assert!(
            text.lines().count() < before + 40,
            "{} lines",
            text.lines().count()
        );
        assert!(
            text.contains(
                r#"t_http_requests_total{method="other",route="/items",status="405"} 10000"#
            ),
            "{text}"
        );
        assert!(!text.contains("PROBE"), "{text}");
    }

    #[test]
    fn standard_methods_keep_their_names() {
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        assert_eq!(method_label(&Method::GET), "GET");
        let odd = Method::from_bytes(b"get").unwrap();
        assert_eq!(method_label(&odd), "other", "methods are case-sensitive");
    }
}
