//! Handler tests with `oneshot` for the change feed and the retention
//! trigger: what is refused before any database work, and who may call.

use std::sync::Arc;
use std::time::Duration;

use auth::Authenticator;
use auth::testing::{expired_token_for, test_config, token_for};
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use dapr_http::{AppToken, DaprClient};
use serde_json::Value;
use settings::Settings;
use task_api::retention::{self, RetentionConfig};
use task_api::{AppState, Limits, app};
use task_domain::relay::RelayMetrics;
use task_domain::{Relay, RelayConfig, TaskRepository};
use telemetry::metrics::Metrics;
use tower::ServiceExt;

const APP_TOKEN: &str = "test-app-token";

/// The app as main.rs assembles it (with the retention router), over a
/// pool that never connects: whatever reaches the database gets 503.
fn test_app() -> Router {
    let pool = service::db::pool("postgres://todo:todo@127.0.0.1:1/none", 1).unwrap();
    let dapr = DaprClient::new("http://127.0.0.1:1", None, Duration::from_millis(100));
    let relay_config = RelayConfig {
        pubsub: "pubsub".into(),
        batch_size: 10,
        concurrency: 1,
        poll_interval: Duration::from_secs(60),
    };
    let repo = TaskRepository::new(pool.clone());
    let state = AppState {
        repo: repo.clone(),
        relay: Relay::new(pool, dapr, relay_config, RelayMetrics::default()),
        authenticator: Arc::new(Authenticator::new(&test_config())),
    };
    let limits = Limits {
        max_body_bytes: 4096,
        request_timeout: Duration::from_secs(5),
    };
    let token = AppToken::new(Some(APP_TOKEN), None);
    let empty: std::collections::HashMap<&str, &str> = Default::default();
    let config = RetentionConfig::from_settings(&Settings::new(&empty)).unwrap();
    app(
        state,
        token.clone(),
        Vec::new(),
        Metrics::new("test"),
        limits,
    )
    .merge(retention::router(repo, config, token))
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, String, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        content_type,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn get(uri: &str, token: Option<&str>) -> Request<Body> {
    let mut r = Request::get(uri);
    if let Some(t) = token {
        r = r.header("authorization", format!("Bearer {t}"));
    }
    r.body(Body::empty()).unwrap()
}

const EPOCH: &str = "0192f0c1-0000-7000-8000-000000000000";

#[tokio::test]
async fn the_feed_needs_a_valid_token() {
    let app = test_app();
    for token in [
        None,
        Some(expired_token_for("alice")),
        Some("abc".to_owned()),
    ] {
        let (status, content_type, _) = send(&app, get("/api/changes", token.as_deref())).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert_eq!(content_type, "application/problem+json");
    }
}

#[tokio::test]
async fn bad_positions_are_400_naming_the_field_before_any_database_work() {
    let app = test_app();
    let t = token_for("alice", false);
    for (query, field) in [
        ("epoch=nope&after=1".to_owned(), Some("epoch")),
        (format!("epoch={EPOCH}&after=-1"), Some("after")),
        (format!("epoch={EPOCH}&after=x"), Some("after")),
        (format!("epoch={EPOCH}&after=1&limit=0"), Some("limit")),
        (format!("epoch={EPOCH}&after=1&limit=5000"), Some("limit")),
        (format!("epoch={EPOCH}"), Some("after")),
        ("after=4".to_owned(), Some("epoch")),
        // Unknown parameters (a user_id above all) are refused, not ignored.
        ("user_id=bob".to_owned(), None),
    ] {
        let (status, content_type, problem) =
            send(&app, get(&format!("/api/changes?{query}"), Some(&t))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(content_type, "application/problem+json", "{query}");
        if let Some(field) = field {
            assert_eq!(problem["errors"][0]["field"], field, "{query}: {problem}");
        }
    }
    // A valid request reaches the (absent) database: 503, not 400.
    let (status, ..) = send(
        &app,
        get(
            &format!("/api/changes?epoch={EPOCH}&after=0&limit=10"),
            Some(&t),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn the_retention_trigger_admits_only_the_callback_token_and_known_jobs() {
    let app = test_app();
    let trigger = |name: &str, token: Option<&str>| {
        let mut r = Request::post(format!("/job/{name}"));
        if let Some(t) = token {
            r = r.header("dapr-api-token", t);
        }
        r.body(Body::empty()).unwrap()
    };
    for token in [None, Some("wrong")] {
        let (status, ..) = send(&app, trigger(retention::RETENTION_JOB, token)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}");
    }
    let user = token_for("alice", false);
    let r = Request::post("/job/change-retention")
        .header("authorization", format!("Bearer {user}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        send(&app, r).await.0,
        StatusCode::UNAUTHORIZED,
        "a user token"
    );
    let (status, ..) = send(&app, trigger("audit-retention", Some(APP_TOKEN))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not this function's job");
    // Admitted, and the prune finds no database.
    for name in ["change-retention", "change-retention-now"] {
        let (status, content_type, _) = send(&app, trigger(name, Some(APP_TOKEN))).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{name}");
        assert_eq!(content_type, "application/problem+json");
    }
    // The relay's static route still wins over the parameter.
    let (status, _, body) = send(&app, trigger("outbox-relay", Some(APP_TOKEN))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
}
