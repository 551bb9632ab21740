//! Handler tests with `oneshot`: the push callbacks (who may call, the
//! reply each deliverer reads, the fan-out to the user's queue) and the
//! upgrade's refusals.

use std::sync::Arc;
use std::time::Duration;

use auth::Authenticator;
use auth::testing::{test_config, token_for};
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use contracts::testing::{dapr_push_body, knative_binary_push, structured_headers, task_event};
use contracts::{EventKind, OutgoingEvent, TaskSyncData};
use dapr_http::AppToken;
use serde_json::{Value, json};
use sync_gateway::config::SocketBuffers;
use sync_gateway::feed::TaskApiFeed;
use sync_gateway::hub::Hub;
use sync_gateway::session::{Context, SessionConfig};
use sync_gateway::ws::Sessions;
use sync_gateway::{AppState, GatewayMetrics, app};
use telemetry::metrics::Metrics;
use tower::ServiceExt;
use uuid::Uuid;

const DAPR_TOKEN: &str = "dapr-app-token";
const KNATIVE_TOKEN: &str = "knative-push-token";

fn test_app() -> (Router, Hub) {
    let hub = Hub::new(8);
    let state = AppState {
        session: Context {
            feed: TaskApiFeed::new("http://127.0.0.1:1", Duration::from_millis(100)).unwrap(),
            hub: hub.clone(),
            auth: Arc::new(Authenticator::new(&test_config())),
            config: SessionConfig {
                replay_page: 100,
                ..SessionConfig::default()
            },
            shutdown: tokio::sync::watch::channel(false).1,
            replays: Arc::new(tokio::sync::Semaphore::new(4)),
        },
        buffers: SocketBuffers {
            read: 4096,
            write: 4096,
            max_message: 16384,
        },
        sessions: Sessions::default(),
        pubsub: "pubsub".into(),
        metrics: GatewayMetrics::default(),
    };
    let token = AppToken::new(Some(DAPR_TOKEN), Some(KNATIVE_TOKEN));
    (app(state, token, Metrics::new("test")), hub)
}

fn sync_event(user: &str, offset: i64) -> OutgoingEvent {
    let data = TaskSyncData {
        task_id: Uuid::now_v7(),
        user_id: user.into(),
        sequence: 1,
        epoch: "e1".into(),
        offset,
        op: "deleted".into(),
        task: None,
        changed: vec![],
    };
    OutgoingEvent::new(
        EventKind::TaskSync,
        "task-api",
        data.task_id.to_string(),
        &data,
    )
    .unwrap()
}

async fn push(app: &Router, headers: HeaderMap, body: Vec<u8>) -> (StatusCode, Value) {
    let mut request = Request::post("/events/task-updates");
    for (name, value) in &headers {
        request = request.header(name, value);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn dapr(event: &OutgoingEvent) -> (HeaderMap, Vec<u8>) {
    let mut headers = structured_headers();
    headers.insert("dapr-api-token", DAPR_TOKEN.parse().unwrap());
    (headers, dapr_push_body(event).to_string().into_bytes())
}

fn knative(event: &OutgoingEvent) -> (HeaderMap, Vec<u8>) {
    let (mut headers, body) = knative_binary_push(event);
    headers.insert("ce-pushtoken", KNATIVE_TOKEN.parse().unwrap());
    (headers, body)
}

#[tokio::test]
async fn a_pushed_sync_event_reaches_only_its_users_sockets() {
    let (app, hub) = test_app();
    let mut alice = hub.register("alice");
    let mut bob = hub.register("bob");
    let (headers, body) = dapr(&sync_event("alice", 1));
    let (status, reply) = push(&app, headers, body).await;
    assert_eq!(
        (status, reply),
        (StatusCode::OK, json!({"status": "SUCCESS"}))
    );
    let live = alice.live.try_recv().expect("queued for alice");
    assert_eq!(live.offset, 1);
    let frame: Value = serde_json::from_str(&live.text).unwrap();
    assert_eq!(frame["type"], "event");
    assert_eq!(frame["data"]["user_id"], "alice");
    assert!(bob.live.try_recv().is_err(), "nothing for bob");

    // The same event from Knative, binary mode: acknowledged with a 2xx.
    let (headers, body) = knative(&sync_event("alice", 2));
    let (status, _) = push(&app, headers, body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(alice.live.try_recv().unwrap().offset, 2);
}

#[tokio::test]
async fn poison_is_dropped_in_each_deliverers_terms() {
    let (app, _) = test_app();
    let wrong_topic = task_event(EventKind::TaskCreated, "alice");
    let (headers, body) = dapr(&wrong_topic);
    assert_eq!(
        push(&app, headers, body).await,
        (StatusCode::OK, json!({"status": "DROP"}))
    );
    let (headers, _) = dapr(&sync_event("alice", 1));
    assert_eq!(
        push(&app, headers, b"{not json".to_vec()).await,
        (StatusCode::OK, json!({"status": "DROP"}))
    );
    let (headers, body) = knative(&wrong_topic);
    assert_eq!(push(&app, headers, body).await.0, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_callbacks_need_a_deliverers_token() {
    let (app, _) = test_app();
    let (mut headers, body) = dapr(&sync_event("alice", 1));
    headers.insert("dapr-api-token", "wrong".parse().unwrap());
    assert_eq!(push(&app, headers, body).await.0, StatusCode::UNAUTHORIZED);
    let subscribe = |token: Option<&str>| {
        let mut r = Request::get("/dapr/subscribe");
        if let Some(t) = token {
            r = r.header("dapr-api-token", t);
        }
        r.body(Body::empty()).unwrap()
    };
    let refused = app.clone().oneshot(subscribe(None)).await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let response = app
        .clone()
        .oneshot(subscribe(Some(DAPR_TOKEN)))
        .await
        .unwrap();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    let subscriptions: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        subscriptions,
        json!([{"pubsubname": "pubsub", "topic": "task-updates",
                "route": "/events/task-updates", "deadLetterTopic": "task-updates-dlq"}])
    );
}

#[tokio::test]
async fn a_refused_header_token_is_401_before_any_upgrade() {
    let (app, _) = test_app();
    let upgrade = |auth: &str| {
        Request::get("/ws/tasks")
            .header("authorization", auth)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .body(Body::empty())
            .unwrap()
    };
    for auth in ["Bearer abc", "Basic YTpi"] {
        let response = app.clone().oneshot(upgrade(auth)).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{auth}");
        assert!(response.headers().contains_key("www-authenticate"));
    }
    // A valid token passes the check (the upgrade itself needs a real
    // connection, which oneshot does not have).
    let valid = format!("Bearer {}", token_for("alice", false));
    let response = app.clone().oneshot(upgrade(&valid)).await.unwrap();
    assert_ne!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn framework_errors_are_problem_documents() {
    let (app, _) = test_app();
    let cases = [
        // A plain GET: axum's upgrade rejection is text/plain on its own.
        (Request::get("/ws/tasks"), None),
        (Request::get("/nowhere"), Some(StatusCode::NOT_FOUND)),
        (
            Request::post("/ws/tasks"),
            Some(StatusCode::METHOD_NOT_ALLOWED),
        ),
    ];
    for (request, expected) in cases {
        let request = request.body(Body::empty()).unwrap();
        let what = format!("{} {}", request.method(), request.uri());
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        assert!(status.is_client_error(), "{what}: {status}");
        if let Some(expected) = expected {
            assert_eq!(status, expected, "{what}");
        }
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{what}"
        );
    }
}
