//! `openapi.json` against the router: every route [`crate::app`] serves
//! is documented and every documented operation is served
//! ([`service::openapi::drift`] probes the real app), the callbacks stay
//! out of it, and the answers an operator reads (readiness, an unknown
//! path) are the documented ones. `scripts/test` validates the document
//! with openapi-spec-validator.

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use serde_json::Value;
use service::db::PostgresCheck;
use service::openapi::{answer_schema, drift, validate_at};
use tower::ServiceExt;

use crate::app_tests::{offline_pool, router, router_with_checks};
use crate::{OPENAPI, callback_routes, document_routes};

fn document() -> Value {
    serde_json::from_str(OPENAPI).expect("openapi.json is JSON")
}

async fn get(app: &axum::Router, path: &str) -> (StatusCode, String, Value) {
    let request = Request::get(path).body(Body::empty()).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (
        status,
        content_type,
        serde_json::from_slice(&bytes).unwrap(),
    )
}

#[tokio::test]
async fn every_route_is_documented_and_every_documented_route_is_served() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut public = document_routes().paths().to_vec();
    public.extend(service::health::PATHS);
    let internal = callback_routes().paths().to_vec();
    let problems = drift(&router(offline_pool()), &doc, &public, &internal).await;
    assert!(problems.is_empty(), "openapi.json drifted: {problems:#?}");
}

#[test]
fn every_example_matches_its_schema() {
    service::openapi::assert_examples_hold(&document(), 2);
}

#[tokio::test]
async fn the_document_is_served_as_json() {
    let (status, content_type, body) = get(&router(offline_pool()), "/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "application/json");
    assert_eq!(body, document());
}

#[tokio::test]
async fn readiness_with_the_database_down_is_the_documented_503() {
    let doc = document();
    let pool = offline_pool();
    let app = router_with_checks(pool.clone(), vec![Box::new(PostgresCheck(pool))]);
    let (status, content_type, body) = get(&app, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["postgres"], "unavailable", "{body}");
    let (schema, media_type) = answer_schema(&doc, "/readyz", "get", 503).unwrap();
    assert_eq!(content_type, media_type);
    validate_at(&doc, &schema, &body).unwrap_or_else(|e| panic!("{e}: {body}"));
}

#[tokio::test]
async fn an_undocumented_path_is_a_problem_not_a_callback() {
    // Without a token a callback is refused, and any other path is a 404:
    // both as problem+json, neither revealing what the callbacks do.
    let app = router(offline_pool());
    let (status, content_type, body) = get(&app, "/api/tasks").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(body["status"], 404);
    let (status, content_type, _) = get(&app, "/dapr/subscribe").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(content_type, "application/problem+json");
}
