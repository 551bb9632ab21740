//! Each function's OpenAPI document and the check that keeps it honest.
//!
//! axum cannot list the routes of a built `Router`, so a function registers
//! its routes through a [`RouteTable`], which builds the router and keeps
//! every path it was given. [`drift`] (feature `test-util`) then asks the
//! real app, one request per path and method, what is routed, and compares
//! that with the document both ways: a documented operation the app does
//! not serve, an operation it serves that is not documented, and a
//! callback path (internal, daprd's) that slipped into the public document.
//! [`example_problems`] (feature `test-util` too) holds every example of a
//! document to its schema.

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;

/// A router under construction that remembers its paths.
#[derive(Debug)]
pub struct RouteTable<S = ()> {
    router: Router<S>,
    paths: Vec<&'static str>,
}

impl<S> Default for RouteTable<S>
where
    S: Clone + Send + Sync + 'static,
{
    fn default() -> Self {
        Self {
            router: Router::new(),
            paths: Vec::new(),
        }
    }
}

impl<S> RouteTable<S>
where
    S: Clone + Send + Sync + 'static,
{
    pub fn new() -> Self {
        Self::default()
    }

    /// `Router::route`, remembering `path`.
    pub fn route(mut self, path: &'static str, methods: MethodRouter<S>) -> Self {
        self.router = self.router.route(path, methods);
        self.paths.push(path);
        self
    }

    /// Every path registered, in order.
    pub fn paths(&self) -> &[&'static str] {
        &self.paths
    }

    pub fn into_router(self) -> Router<S> {
        self.router
    }
}

/// The handler of `GET /openapi.json` for a document embedded at compile
/// time (`include_str!`).
pub fn serve(document: &'static str) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], document).into_response()
}

#[cfg(feature = "test-util")]
pub use check::{PATH_PARAMETER_SAMPLE, PROBED_METHODS, drift};
#[cfg(feature = "test-util")]
pub use examples::{
    ExampleReport, answer_schema, assert_examples_hold, example_problems, validate_at,
};

#[cfg(feature = "test-util")]
#[path = "openapi_examples.rs"]
mod examples;

#[cfg(feature = "test-util")]
mod check {
    use axum::Router;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use serde_json::Value;
    use tower::ServiceExt;

    /// The methods probed on every path. HEAD is left out: axum answers it
    /// for every GET route by itself.
    pub const PROBED_METHODS: [&str; 7] =
        ["get", "put", "post", "delete", "options", "patch", "trace"];

    /// What a `{parameter}` becomes in a probe: a UUID, so an id that is
    /// checked before authentication still passes.
    pub const PATH_PARAMETER_SAMPLE: &str = "0192f0c1-0000-7000-8000-000000000000";

    /// Whether `app` routes `method path`. Probes carry no credentials, so
    /// a routed operation answers 401 (or its own answer) but never a 404
    /// or 405, which only the router gives to a request without a token.
    async fn routed(app: &Router, method: &str, path: &str) -> Result<bool, String> {
        let uri = fill(path);
        let request = Request::builder()
            .method(method.to_uppercase().as_str())
            .uri(&uri)
            .body(Body::empty())
            .map_err(|e| format!("{method} {uri}: {e}"))?;
        let response = app
            .clone()
            .oneshot(request)
            .await
            .map_err(|e| format!("{method} {uri}: {e}"))?;
        let status = response.status();
        Ok(status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED)
    }

    /// `path` with each `{parameter}` replaced by the sample.
    fn fill(path: &str) -> String {
        let mut out = String::new();
        let mut rest = path;
        while let Some(start) = rest.find('{') {
            out.push_str(&rest[..start]);
            match rest[start..].find('}') {
                Some(end) => {
                    out.push_str(PATH_PARAMETER_SAMPLE);
                    rest = &rest[start + end + 1..];
                }
                None => {
                    rest = &rest[start..];
                    break;
                }
            }
        }
        out.push_str(rest);
        out
    }

    /// Every disagreement between `document` (an OpenAPI document's JSON)
    /// and what `app` serves, as sentences; empty when they agree.
    /// `public` are the paths the app registers for clients (its
    /// [`super::RouteTable`]s' paths and the health routes'), `internal`
    /// those it registers for daprd and Knative (callbacks), which must be
    /// served and must not be documented.
    pub async fn drift(
        app: &Router,
        document: &Value,
        public: &[&str],
        internal: &[&str],
    ) -> Vec<String> {
        let mut problems = Vec::new();
        let Some(documented) = document["paths"].as_object() else {
            return vec!["the document has no paths".to_owned()];
        };
        let mut paths: Vec<&str> = documented.keys().map(String::as_str).collect();
        paths.extend(public.iter().chain(internal));
        paths.sort_unstable();
        paths.dedup();
        for path in paths {
            let item = documented.get(path);
            if internal.contains(&path) {
                if item.is_some() {
                    problems.push(format!("{path} is a callback route but is documented"));
                }
                if !any_method_routed(app, path, &mut problems).await {
                    problems.push(format!("callback {path} is registered but not served"));
                }
                continue;
            }
            if item.is_some() && !public.contains(&path) {
                problems.push(format!("{path} is documented but no route table has it"));
            }
            for method in PROBED_METHODS {
                let in_doc = item.is_some_and(|i| i.get(method).is_some());
                match routed(app, method, path).await {
                    Ok(true) if !in_doc => {
                        problems.push(format!("{method} {path} is routed but not documented"))
                    }
                    Ok(false) if in_doc => {
                        problems.push(format!("{method} {path} is documented but not routed"))
                    }
                    Ok(_) => {}
                    Err(e) => problems.push(e),
                }
            }
        }
        problems
    }

    async fn any_method_routed(app: &Router, path: &str, problems: &mut Vec<String>) -> bool {
        for method in PROBED_METHODS {
            match routed(app, method, path).await {
                Ok(true) => return true,
                Ok(false) => {}
                Err(e) => problems.push(e),
            }
        }
        false
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::openapi::RouteTable;
        use axum::routing::{get, post};
        use serde_json::json;

        fn app() -> (Router, Vec<&'static str>) {
            let table = RouteTable::new()
                .route(
                    "/api/things",
                    get(|| async { "list" }).post(|| async { "new" }),
                )
                .route("/api/things/{id}", get(|| async { "one" }));
            let paths = table.paths().to_vec();
            let router = table
                .into_router()
                .route("/events/things", post(|| async { "ok" }));
            (router, paths)
        }

        fn document(paths: Value) -> Value {
            json!({"openapi": "3.1.0", "paths": paths})
        }

        #[tokio::test]
        async fn agreement_is_no_drift() {
            let (app, public) = app();
            let doc = document(json!({
                "/api/things": {"get": {}, "post": {}},
                "/api/things/{id}": {"get": {}},
            }));
            assert_eq!(
                drift(&app, &doc, &public, &["/events/things"]).await,
                Vec::<String>::new()
            );
        }

        #[tokio::test]
        async fn every_kind_of_drift_is_named() {
            let (app, public) = app();
            let doc = document(json!({
                // post is served but missing here; delete is documented but not served.
                "/api/things": {"get": {}, "delete": {}},
                // the whole /api/things/{id} path is missing; /api/gone is not served;
                // the callback is documented.
                "/api/gone": {"get": {}},
                "/events/things": {"post": {}},
            }));
            let problems = drift(&app, &doc, &public, &["/events/things"]).await;
            for expected in [
                "post /api/things is routed but not documented",
                "delete /api/things is documented but not routed",
                "get /api/things/{id} is routed but not documented",
                "get /api/gone is documented but not routed",
                "/api/gone is documented but no route table has it",
                "/events/things is a callback route but is documented",
            ] {
                assert!(
                    problems.iter().any(|p| p == expected),
                    "{expected:?} not in {problems:?}"
                );
            }
            assert_eq!(problems.len(), 6, "{problems:?}");
        }

        #[tokio::test]
        async fn an_unserved_callback_is_named() {
            let (app, public) = app();
            let doc = document(json!({
                "/api/things": {"get": {}, "post": {}},
                "/api/things/{id}": {"get": {}},
            }));
            let problems = drift(&app, &doc, &public, &["/events/missing"]).await;
            assert_eq!(
                problems,
                ["callback /events/missing is registered but not served"]
            );
        }

        #[test]
        fn parameters_are_filled() {
            assert_eq!(
                fill("/a/{id}/b/{x}"),
                format!("/a/{PATH_PARAMETER_SAMPLE}/b/{PATH_PARAMETER_SAMPLE}")
            );
            assert_eq!(fill("/plain"), "/plain");
            assert_eq!(fill("/broken/{x"), "/broken/{x");
        }
    }
}
