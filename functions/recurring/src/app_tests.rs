//! Handler tests through the whole router with `oneshot`: the subscription
//! document, the token guard, and replies to every deliverer when the
//! database is unreachable. The tests over the real database are in
//! `db_tests.rs`.

use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{HeaderMap, Request, StatusCode, header};
use contracts::EventKind;
use contracts::testing::{dapr_push_body, knative_binary_push, task_event};
use dapr_http::{AppToken, DaprClient};
use serde_json::{Value, json};
use service::health::ReadinessCheck;
use task_domain::relay::RelayMetrics;
use task_domain::{Relay, RelayConfig, TaskRepository};
use telemetry::metrics::Metrics;
use tower::ServiceExt;

use crate::{AppState, app};

const APP_TOKEN: &str = "app-token-for-tests";
const PUSH_TOKEN: &str = "knative-push-token";

pub(crate) fn router(pool: deadpool_postgres::Pool) -> Router {
    router_with_checks(pool, Vec::new())
}

pub(crate) fn router_with_checks(
    pool: deadpool_postgres::Pool,
    checks: Vec<Box<dyn ReadinessCheck>>,
) -> Router {
    // The relay is never run here; its rows are real outbox rows that the
    // stack's relays publish like any other.
    let dapr = DaprClient::new("http://127.0.0.1:9", None, Duration::from_secs(1));
    let relay = Relay::new(
        pool.clone(),
        dapr,
        RelayConfig {
            pubsub: "pubsub".to_owned(),
            batch_size: 10,
            concurrency: 1,
            poll_interval: Duration::from_secs(60),
        },
        RelayMetrics::default(),
    );
    let state = AppState {
        repo: TaskRepository::new(pool),
        relay,
        pubsub: "pubsub".to_owned(),
        metrics: Default::default(),
    };
    app(
        state,
        AppToken::new(Some(APP_TOKEN), Some(PUSH_TOKEN)),
        checks,
        Metrics::new("test"),
    )
}

/// A pool whose database never answers: every repository call fails as
/// unavailable, as during an outage.
pub(crate) fn offline_pool() -> deadpool_postgres::Pool {
    service::db::pool("postgres://nobody@127.0.0.1:1/none", 1).unwrap()
}

fn offline_router() -> Router {
    router(offline_pool())
}

pub(crate) async fn call(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

pub(crate) fn dapr_push(body: &Value) -> Request<Body> {
    Request::post(crate::TASK_EVENTS_ROUTE)
        .header(header::CONTENT_TYPE, "application/cloudevents+json")
        .header("dapr-api-token", APP_TOKEN)
        .body(Body::from(body.to_string()))
        .unwrap()
}

pub(crate) fn knative_push(headers: HeaderMap, body: Vec<u8>) -> Request<Body> {
    let mut request = Request::post(crate::TASK_EVENTS_ROUTE)
        .header("ce-pushtoken", PUSH_TOKEN)
        .body(Body::from(body))
        .unwrap();
    request.headers_mut().extend(headers);
    request
}

#[tokio::test]
async fn subscribes_completions_by_rule_and_acknowledges_the_rest() {
    let app = offline_router();
    let request = Request::get("/dapr/subscribe")
        .header("dapr-api-token", APP_TOKEN)
        .body(Body::empty())
        .unwrap();
    let (status, body) = call(&app, request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!([{
            "pubsubname": "pubsub",
            "topic": "task-events",
            "routes": {
                "rules": [{
                    "match": "event.type == \"com.todo.task.completed\"",
                    "path": "/events/task-events"
                }],
                "default": "/events/task-events/ignored"
            },
            "deadLetterTopic": "task-events-dlq"
        }])
    );
    let ignored = Request::post(crate::IGNORED_ROUTE)
        .header("dapr-api-token", APP_TOKEN)
        .body(Body::from(
            dapr_push_body(&task_event(EventKind::TaskCreated, "u")).to_string(),
        ))
        .unwrap();
    assert_eq!(call(&app, ignored).await.1, json!({"status": "SUCCESS"}));
}

#[tokio::test]
async fn callbacks_need_a_token() {
    let app = offline_router();
    for uri in [
        "/dapr/subscribe",
        crate::TASK_EVENTS_ROUTE,
        crate::IGNORED_ROUTE,
    ] {
        let method = if uri == "/dapr/subscribe" {
            "GET"
        } else {
            "POST"
        };
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("dapr-api-token", "wrong")
            .body(Body::empty())
            .unwrap();
        assert_eq!(
            call(&app, request).await.0,
            StatusCode::UNAUTHORIZED,
            "{uri}"
        );
    }
}

#[tokio::test]
async fn poison_is_dropped_in_each_deliverers_terms() {
    let app = offline_router();
    let (_, malformed) = call(&app, dapr_push(&json!({"specversion": "1.0"}))).await;
    assert_eq!(malformed, json!({"status": "DROP"}));
    // An unknown schema version of a completion.
    let mut future = dapr_push_body(&task_event(EventKind::TaskCompleted, "u"));
    future["dataschema"] = json!("urn:todo-events:schema:task-event:v9");
    assert_eq!(
        call(&app, dapr_push(&future)).await.1,
        json!({"status": "DROP"})
    );
    // Data that fails its schema, from Knative: a non-retryable 4xx.
    let event = task_event(EventKind::TaskCompleted, "u");
    let (headers, _) = knative_binary_push(&event);
    let (status, _) = call(&app, knative_push(headers, br#"{"task_id":5}"#.to_vec())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_type_recurring_does_not_handle_gets_the_same_answer_from_both_deliverers() {
    // daprd's default route acknowledges what the routing rule does not send
    // to the handler; the handler answers a well-formed event of any other
    // type, known or unknown, the same way (offline: no work was asked).
    let app = offline_router();
    for (kind, event_type) in [
        (EventKind::TaskCompleted, "com.todo.task.archived"),
        (EventKind::TaskCreated, "com.todo.task.created"),
    ] {
        let event = task_event(kind, "u");
        let mut body = dapr_push_body(&event);
        body["type"] = json!(event_type);
        let ignored = Request::post(crate::IGNORED_ROUTE)
            .header("dapr-api-token", APP_TOKEN)
            .header(header::CONTENT_TYPE, "application/cloudevents+json")
            .body(Body::from(body.to_string()))
            .unwrap();
        assert_eq!(call(&app, ignored).await.1, json!({"status": "SUCCESS"}));
        assert_eq!(
            call(&app, dapr_push(&body)).await.1,
            json!({"status": "SUCCESS"}),
            "{event_type} pushed to the handler"
        );
        let (mut headers, bytes) = knative_binary_push(&event);
        headers.insert("ce-type", event_type.parse().unwrap());
        assert_eq!(
            call(&app, knative_push(headers, bytes)).await.0,
            StatusCode::OK,
            "{event_type} pushed by Knative"
        );
    }
}

#[tokio::test]
async fn other_task_types_pushed_by_knative_are_acknowledged_without_work() {
    // The database is unreachable: a success proves nothing was asked of it.
    let app = offline_router();
    for kind in [
        EventKind::TaskCreated,
        EventKind::TaskUpdated,
        EventKind::TaskDeleted,
    ] {
        let (headers, body) = knative_binary_push(&task_event(kind, "u"));
        assert_eq!(
            call(&app, knative_push(headers, body)).await.0,
            StatusCode::OK
        );
    }
}

#[tokio::test]
async fn an_unavailable_database_asks_for_redelivery() {
    let app = offline_router();
    let event = task_event(EventKind::TaskCompleted, "u");
    let (_, body) = call(&app, dapr_push(&dapr_push_body(&event))).await;
    assert_eq!(body, json!({"status": "RETRY"}));
    let (headers, bytes) = knative_binary_push(&event);
    let (status, _) = call(&app, knative_push(headers, bytes)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}
