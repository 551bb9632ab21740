//! Handler tests with `oneshot`: the job route takes every name the
//! function schedules, registration refuses non-public endpoints before
//! anything is stored, and the callbacks fail closed. Nothing here reaches
//! a database or daprd: the pool and clients point at a closed port, so a
//! handler that tried would answer 503, not what these tests expect.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::Path;
use axum::http::{Request, StatusCode};
use axum::routing::post;
use chrono::DateTime;
use proptest::prelude::*;
use tower::ServiceExt;
use uuid::Uuid;

use crate::delivery::Target;
use crate::jobs::JobName;
use crate::{AppState, JOB_ROUTE, app};

const CLOSED: &str = "http://127.0.0.1:9";

pub(crate) fn state() -> AppState {
    let pool = service::db::pool("postgres://nobody@127.0.0.1:9/none", 1).expect("pool config");
    AppState {
        store: crate::store::Store::new(pool),
        state: crate::state::StateClient::new(
            CLOSED,
            None,
            "statestore",
            Duration::from_millis(200),
        ),
        dapr: dapr_http::DaprClient::new(CLOSED, None, Duration::from_millis(200)),
        pubsub: "pubsub".into(),
        email: None,
        push: None,
        authenticator: Arc::new(auth::Authenticator::new(&auth::testing::test_config())),
        retry_delays: vec![Duration::from_secs(1)],
        late_limit: Duration::from_secs(900),
        record_ttl: Duration::from_secs(60),
        link_base: "http://x".into(),
        allow_private_endpoints: false,
        tasks: crate::TaskTracker::new(),
    }
}

pub(crate) fn router() -> Router {
    app(
        state(),
        dapr_http::AppToken::new(Some("app-token"), None),
        Vec::new(),
        telemetry::metrics::Metrics::new("test"),
        Duration::from_secs(5),
    )
}

pub(crate) async fn body(response: axum::response::Response) -> String {
    String::from_utf8(
        to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap()
}

proptest! {
    #[test]
    fn the_job_route_matches_every_scheduled_name(id in any::<u128>(), millis in 0i64..8_000_000_000_000,
                                                  device in any::<u128>(), attempt in 1u32..10) {
        let fire_at = DateTime::from_timestamp_millis(millis).unwrap();
        let reminder_id = Uuid::from_u128(id);
        let names = [
            JobName::firing(reminder_id, fire_at),
            JobName::Retry { reminder_id, fire_at, target: Target::Email, attempt },
            JobName::Retry { reminder_id, fire_at, target: Target::Push(Uuid::from_u128(device)), attempt },
        ];
        let echo: Router = Router::new().route(JOB_ROUTE, post(|Path(name): Path<String>| async move { name }));
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        for job in names {
            let name = job.render();
            let request = Request::post(format!("/job/{name}")).body(Body::empty()).unwrap();
            let response = runtime.block_on(echo.clone().oneshot(request)).unwrap();
            prop_assert_eq!(response.status(), StatusCode::OK);
            prop_assert_eq!(runtime.block_on(body(response)), name);
        }
    }
}

#[tokio::test]
async fn a_private_endpoint_is_refused_at_registration() {
    for endpoint in [
        "https://127.0.0.1/push/1",
        "https://169.254.169.254/x",
        "https://[::1]/x",
        "http://push.example.com/x",
    ] {
        let request = Request::post("/api/devices")
            .header("authorization", format!("Bearer {}", auth::testing::token_for("alice", false)))
            .header("content-type", "application/json")
            .body(Body::from(
                serde_json::json!({
                    "endpoint": endpoint,
                    "p256dh": "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM",
                    "auth": "tBHItJI5svbpez7KI4CCXg"
                })
                .to_string(),
            ))
            .unwrap();
        let response = router().oneshot(request).await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{endpoint}"
        );
        assert!(body(response).await.contains("endpoint"), "{endpoint}");
    }
}

#[tokio::test]
async fn a_query_string_is_refused_not_ignored() {
    for (method, uri) in [
        ("GET", "/api/notifications?limit=5"),
        ("GET", "/api/devices?x"),
        ("PUT", "/api/notification-settings?email=off"),
    ] {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header(
                "authorization",
                format!("Bearer {}", auth::testing::token_for("alice", false)),
            )
            .body(Body::empty())
            .unwrap();
        let response = router().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{method} {uri}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        assert!(body(response).await.contains("no query parameters"));
    }
    // The document, outside /api, is served whatever the query.
    let request = Request::get("/openapi.json?v=1")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        router().oneshot(request).await.unwrap().status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn job_triggers_need_the_app_token() {
    let request = Request::post("/job/reminder-x")
        .body(Body::empty())
        .unwrap();
    let response = router().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let request = Request::post("/job/audit-retention")
        .header("dapr-api-token", "app-token")
        .body(Body::empty())
        .unwrap();
    let response = router().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND, "not one of ours");
}

/// `./scripts/dlq replay reminders` sends notification's own reports of
/// failed deliveries to `reminders`: acknowledged (not dropped, which
/// would dead-letter them back), and nothing is applied (no daprd here).
#[tokio::test]
async fn a_replayed_failed_delivery_report_is_acknowledged() {
    let event = serde_json::json!({
        "specversion": "1.0",
        "id": Uuid::now_v7().to_string(),
        "source": "notification",
        "type": "com.todo.notification.failed",
        "datacontenttype": "application/json",
        "data": {"reminder_id": Uuid::now_v7(), "status": "failed"}
    });
    let request = Request::post(crate::REMINDERS_ROUTE)
        .header("dapr-api-token", "app-token")
        .header("content-type", "application/cloudevents+json")
        .body(Body::from(event.to_string()))
        .unwrap();
    let response = router().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(body(response).await.contains("SUCCESS"));
}
