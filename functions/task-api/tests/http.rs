//! Handler tests with `oneshot` over the router `main` serves: every route
//! is documented in openapi.json (both ways, the callbacks marked internal),
//! every answer a probe gets is documented with its body's schema, the
//! examples match their schemas, and bad input gets a precise problem+json
//! before any database work.

use std::sync::Arc;
use std::time::Duration;

use auth::Authenticator;
use auth::testing::{TEST_SECRET, expired_token_for, sign, test_config, token_for};
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use dapr_http::DaprClient;
use serde_json::{Value, json};
use service::openapi::{PATH_PARAMETER_SAMPLE, PROBED_METHODS};
use task_api::retention::RetentionConfig;
use task_api::routes::{self, OPENAPI};
use task_api::{AppState, Limits, callback_paths, router};
use task_domain::relay::RelayMetrics;
use task_domain::{Relay, RelayConfig, TaskRepository};
use telemetry::metrics::Metrics;
use tower::ServiceExt;

const MAX_BODY: usize = 4096;
/// The app token the callback route admits.
const APP_TOKEN: &str = "test-app-token";

/// What `main` serves ([`router`]: the app and the retention trigger) over
/// a pool that is never connected (nothing here reaches the database) and
/// a daprd address nothing listens on.
fn test_app(auth: auth::AuthConfig) -> Router {
    test_app_with(auth, Vec::new())
}

/// [`test_app`] with readiness checks.
fn test_app_with(
    auth: auth::AuthConfig,
    checks: Vec<Box<dyn service::health::ReadinessCheck>>,
) -> Router {
    let pool = service::db::pool("postgres://todo:todo@127.0.0.1:1/none", 1).unwrap();
    let dapr = DaprClient::new("http://127.0.0.1:1", None, Duration::from_millis(100));
    let relay_config = RelayConfig {
        pubsub: "pubsub".into(),
        batch_size: 10,
        concurrency: 1,
        poll_interval: Duration::from_secs(60),
    };
    let state = AppState {
        repo: TaskRepository::new(pool.clone()),
        relay: Relay::new(pool, dapr, relay_config, RelayMetrics::default()),
        authenticator: Arc::new(Authenticator::new(&auth)),
    };
    let limits = Limits {
        max_body_bytes: MAX_BODY,
        request_timeout: Duration::from_secs(5),
    };
    let callbacks = dapr_http::AppToken::new(Some(APP_TOKEN), None);
    let no_settings = std::collections::HashMap::<&str, &str>::new();
    let retention = RetentionConfig::from_settings(&settings::Settings::new(&no_settings)).unwrap();
    router(
        state,
        callbacks,
        checks,
        Metrics::new("test"),
        limits,
        retention,
    )
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, String, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or_default().to_owned())
        .unwrap_or_default();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        content_type,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn post(path: &str, token: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut r = Request::post(path).header("content-type", "application/json");
    if let Some(t) = token {
        r = r.header("authorization", format!("Bearer {t}"));
    }
    r.body(body.into()).unwrap()
}

#[tokio::test]
async fn every_route_is_served_and_documented() {
    let doc: Value = serde_json::from_str(OPENAPI).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let app = test_app(test_config());
    let mut public = routes::table().paths().to_vec();
    public.extend(service::health::PATHS);
    let problems = service::openapi::drift(&app, &doc, &public, &callback_paths()).await;
    assert!(problems.is_empty(), "openapi.json drifted: {problems:#?}");
    // Every documented operation under /api needs a token, and says so
    // before anything else.
    for (path, item) in doc["paths"].as_object().unwrap() {
        let Some(item) = item.as_object().filter(|_| path.starts_with("/api/")) else {
            continue;
        };
        let methods = item.keys().filter(|m| PROBED_METHODS.contains(&m.as_str()));
        for method in methods {
            let uri = path.replace("{id}", PATH_PARAMETER_SAMPLE);
            let request = Request::builder()
                .method(method.to_uppercase().as_str())
                .uri(&uri)
                .body(Body::empty())
                .unwrap();
            let (status, ..) = send(&app, request).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
        }
    }
}

#[tokio::test]
async fn bad_bodies_get_precise_problems() {
    let app = test_app(test_config());
    let t = token_for("alice", false);
    let cases: Vec<(&str, String, StatusCode, Option<&str>)> = vec![
        ("malformed", "{\"title\":".into(), StatusCode::BAD_REQUEST, None),
        ("unknown field", r#"{"title":"a","owner":"bob"}"#.into(), StatusCode::UNPROCESSABLE_ENTITY, Some("owner")),
        ("wrong type", r#"{"title":["a"]}"#.into(), StatusCode::UNPROCESSABLE_ENTITY, Some("title")),
        ("missing field", r#"{"description":"a"}"#.into(), StatusCode::UNPROCESSABLE_ENTITY, Some("title")),
        ("nested", r#"{"title":"a","reminders":[{"minutes_before":"x"}]}"#.into(), StatusCode::UNPROCESSABLE_ENTITY, Some("reminders[0].minutes_before")),
        ("empty title", r#"{"title":"  "}"#.into(), StatusCode::UNPROCESSABLE_ENTITY, Some("title")),
        ("time zone", r#"{"title":"a","time_zone":"Mars/Base"}"#.into(), StatusCode::UNPROCESSABLE_ENTITY, Some("time_zone")),
        (
            "recurrence",
            r#"{"title":"a","due_at":"2026-12-01T09:00:00Z","recurrence":{"frequency":"daily","weekdays":["mon"]}}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("recurrence"),
        ),
        (
            "reminder without due",
            r#"{"title":"a","reminders":[{"minutes_before":5,"channels":["push"]}]}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("reminders"),
        ),
        (
            "oversized",
            json!({"title": "a", "description": "x".repeat(MAX_BODY)}).to_string(),
            StatusCode::PAYLOAD_TOO_LARGE,
            None,
        ),
    ];
    for (why, body, want, field) in cases {
        let (status, content_type, problem) = send(&app, post("/api/tasks", Some(&t), body)).await;
        assert_eq!(status, want, "{why}: {problem}");
        assert_eq!(content_type, "application/problem+json", "{why}");
        assert_eq!(problem["status"], want.as_u16(), "{why}");
        if let Some(field) = field {
            assert_eq!(problem["errors"][0]["field"], field, "{why}: {problem}");
        }
    }
    let plain = Request::post("/api/tasks")
        .header("authorization", format!("Bearer {t}"))
        .header("content-type", "text/plain")
        .body(Body::from("{}"))
        .unwrap();
    assert_eq!(
        send(&app, plain).await.0,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
}

#[tokio::test]
async fn bad_headers_and_queries_are_400() {
    let app = test_app(test_config());
    let t = token_for("alice", false);
    let mut r = post("/api/tasks", Some(&t), r#"{"title":"a"}"#);
    r.headers_mut()
        .insert("idempotency-key", "has space".parse().unwrap());
    assert_eq!(send(&app, r).await.0, StatusCode::BAD_REQUEST);
    // If-Match is `*` or a list of entity tags (RFC 9110 §13.1.1): a bare
    // number, or `*` in a list, is refused before any database work.
    for if_match in ["3", "three", "W/3", "*, \"3\"", "\"3\" \"4\""] {
        let r = Request::patch("/api/tasks/0192f0c1-0000-7000-8000-000000000000")
            .header("authorization", format!("Bearer {t}"))
            .header("content-type", "application/json")
            .header("if-match", if_match)
            .body(Body::from("{}"))
            .unwrap();
        assert_eq!(send(&app, r).await.0, StatusCode::BAD_REQUEST, "{if_match}");
    }
    for query in [
        "sort=size",
        "limit=0",
        "nope=1",
        "due_after=soon",
        "cursor=@@",
    ] {
        let r = Request::get(format!("/api/tasks?{query}"))
            .header("authorization", format!("Bearer {t}"))
            .body(Body::empty())
            .unwrap();
        let (status, content_type, _) = send(&app, r).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(content_type, "application/problem+json");
    }
    // A malformed id cannot be anyone's task.
    let r = Request::get("/api/tasks/not-a-uuid")
        .header("authorization", format!("Bearer {t}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, r).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_tokens_are_401() {
    let mut config = test_config();
    config.audience = Some("todo".into());
    let app = test_app(config);
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let far = 4_000_000_000u64;
    let tokens = [
        ("expired", expired_token_for("alice")),
        (
            "forged",
            sign(
                &json!({"sub":"alice","exp":far,"aud":"todo"}),
                "another-secret-another-secret-000",
            ),
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(json!({"alg":"none","typ":"JWT"})),
                b64(json!({"sub":"alice","exp":far,"aud":"todo"}))
            ),
        ),
        (
            "wrong audience",
            sign(&json!({"sub":"alice","exp":far,"aud":"other"}), TEST_SECRET),
        ),
        ("garbage", "abc".to_owned()),
    ];
    for (why, token) in tokens {
        let (status, content_type, problem) =
            send(&app, post("/api/tasks", Some(&token), r#"{"title":"a"}"#)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{why}");
        assert_eq!(content_type, "application/problem+json", "{why}");
        assert!(problem["detail"].as_str().is_some(), "{why}");
    }
    let (status, ..) = send(&app, post("/api/tasks", None, r#"{"title":"a"}"#)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_relay_trigger_admits_only_the_callback_token() {
    let app = test_app(test_config());
    let trigger = |header: Option<(&str, &str)>| {
        let mut r = Request::post(task_api::callbacks::RELAY_ROUTE);
        if let Some((name, value)) = header {
            r = r.header(name, value);
        }
        r.body(Body::empty()).unwrap()
    };
    for refused in [
        None,
        Some(("dapr-api-token", "wrong")),
        Some(("authorization", "Bearer test-app-token")),
    ] {
        let (status, content_type, _) = send(&app, trigger(refused)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{refused:?}");
        assert_eq!(content_type, "application/problem+json");
    }
    // Admitted: the pass then finds no database, and says so.
    let (status, content_type, _) = send(&app, trigger(Some(("dapr-api-token", APP_TOKEN)))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(content_type, "application/problem+json");
}

#[tokio::test]
async fn framework_errors_are_problem_documents() {
    let app = test_app(test_config());
    let cases = [
        (Request::get("/nowhere"), StatusCode::NOT_FOUND),
        (Request::put("/api/tasks"), StatusCode::METHOD_NOT_ALLOWED),
        (Request::delete("/healthz"), StatusCode::METHOD_NOT_ALLOWED),
    ];
    for (request, expected) in cases {
        let request = request.body(Body::empty()).unwrap();
        let what = format!("{} {}", request.method(), request.uri());
        let (status, content_type, body) = send(&app, request).await;
        assert_eq!(status, expected, "{what}");
        assert_eq!(content_type, "application/problem+json", "{what}");
        assert_eq!(body["status"], expected.as_u16(), "{what}: {body}");
        assert!(body["title"].is_string(), "{what}: {body}");
    }
}

#[test]
fn every_example_matches_its_schema() {
    let doc: Value = serde_json::from_str(OPENAPI).unwrap();
    service::openapi::assert_examples_hold(&doc, 15);
}

/// Each documented `/api` operation, asked without a token and by a user
/// with an incomplete body: the app (its database at a closed port)
/// answers each with a status the operation documents, and the problem
/// matches the documented schema.
#[tokio::test]
async fn every_answer_to_a_probe_is_documented() {
    let doc: Value = serde_json::from_str(OPENAPI).unwrap();
    let app = test_app(test_config());
    let user = token_for("alice", false);
    let mut probes = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/api/") {
            continue;
        }
        let methods = item
            .as_object()
            .unwrap()
            .iter()
            .filter(|(m, _)| PROBED_METHODS.contains(&m.as_str()));
        for (method, operation) in methods {
            let uri = path.replace("{id}", PATH_PARAMETER_SAMPLE);
            for caller in [None, Some(&user)] {
                let mut request = Request::builder()
                    .method(method.to_uppercase().as_str())
                    .uri(&uri)
                    .header("content-type", "application/json");
                if let Some(token) = caller {
                    request = request.header("authorization", format!("Bearer {token}"));
                }
                let (status, content_type, body) =
                    send(&app, request.body(Body::from("{}")).unwrap()).await;
                let code = status.as_u16();
                assert!(
                    operation["responses"].get(code.to_string()).is_some(),
                    "{method} {uri} answered {code}, not documented: {body}"
                );
                assert_eq!(content_type, "application/problem+json", "{method} {uri}");
                let (schema, _) =
                    service::openapi::answer_schema(&doc, path, method, code).unwrap();
                service::openapi::validate_at(&doc, &schema, &body)
                    .unwrap_or_else(|e| panic!("{method} {uri} {code}: {e}"));
                probes += 1;
            }
        }
    }
    assert_eq!(probes, 10 * 2, "every /api operation probed by each caller");
}

/// `/readyz` answers the documented JSON: each check by name, 200 when
/// all pass (none here), 503 naming PostgreSQL at a closed port.
#[tokio::test]
async fn readiness_answers_are_documented() {
    let doc: Value = serde_json::from_str(OPENAPI).unwrap();
    let pool = service::db::pool("postgres://todo:todo@127.0.0.1:1/none", 1).unwrap();
    let down: Vec<Box<dyn service::health::ReadinessCheck>> =
        vec![Box::new(service::db::PostgresCheck(pool))];
    for (app, want) in [
        (test_app(test_config()), StatusCode::OK),
        (
            test_app_with(test_config(), down),
            StatusCode::SERVICE_UNAVAILABLE,
        ),
    ] {
        let request = Request::get("/readyz").body(Body::empty()).unwrap();
        let (status, content_type, body) = send(&app, request).await;
        assert_eq!(status, want, "{body}");
        assert_eq!(content_type, "application/json");
        let (schema, media) =
            service::openapi::answer_schema(&doc, "/readyz", "get", status.as_u16())
                .unwrap_or_else(|| panic!("/readyz {status} has no documented body"));
        assert_eq!(media, "application/json");
        service::openapi::validate_at(&doc, &schema, &body)
            .unwrap_or_else(|e| panic!("/readyz {status}: {e}"));
        if want == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(body["postgres"], "unavailable");
        }
    }
}
