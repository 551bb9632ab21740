//! `openapi.json` against the router: every route [`crate::app`] serves is
//! documented and every documented operation is served
//! ([`service::openapi::drift`] probes the real app), the callbacks stay
//! out of it, and the document's examples are what the code reads and
//! writes. `scripts/test` validates the document with
//! openapi-spec-validator.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;

use crate::api::OPENAPI;
use crate::app_tests::{call, offline_router};
use crate::query::Cursor;
use crate::{api_routes, callback_routes};

fn document() -> Value {
    serde_json::from_str(OPENAPI).expect("openapi.json is JSON")
}

#[tokio::test]
async fn every_route_is_documented_and_every_documented_route_is_served() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut public = api_routes().paths().to_vec();
    public.extend(service::health::PATHS);
    let internal = callback_routes().paths().to_vec();
    let problems = service::openapi::drift(&offline_router(), &doc, &public, &internal).await;
    assert!(problems.is_empty(), "openapi.json drifted: {problems:#?}");
}

#[test]
fn every_example_matches_its_schema() {
    service::openapi::assert_examples_hold(&document(), 6);
}

#[tokio::test]
async fn the_document_is_served_as_json() {
    let request = Request::get("/openapi.json").body(Body::empty()).unwrap();
    let (status, content_type, body) = call(&offline_router(), request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "application/json");
    assert_eq!(body, document());
}

#[test]
fn the_examples_are_what_the_code_reads_and_writes() {
    let doc = document();
    let list = &doc["paths"]["/api/audit-logs"]["get"]["responses"]["200"]["content"]["application/json"]
        ["examples"]["page"]["value"];
    let cursor = list["next_cursor"].as_str().expect("a cursor example");
    let decoded = Cursor::decode(cursor).expect("the example cursor is one audit issues");
    let record = &list["items"][0];
    assert_eq!(decoded.event_id, record["event_id"].as_str().unwrap());
    assert_eq!(
        decoded.occurred_at,
        record["occurred_at"]
            .as_str()
            .unwrap()
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
    );
    // The entry's payload is the event's data: a valid task event.
    let event = serde_json::json!({
        "specversion": "1.0",
        "id": record["event_id"],
        "source": record["source"],
        "type": record["type"],
        "subject": record["task_id"],
        "time": record["occurred_at"],
        "datacontenttype": "application/json",
        "dataschema": "urn:todo-events:schema:task-event:v1",
        "data": record["payload"],
    });
    contracts::schema::validate_cloudevent(&event).expect("the example payload is a task event");
}
