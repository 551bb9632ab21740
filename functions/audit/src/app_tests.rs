//! Handler tests through the whole router with `oneshot`: auth, access
//! scoping, precise problem statuses, ingest from every deliverer, and the
//! job trigger. Tests that need rows use the real PostgreSQL (see
//! [`crate::testing`]); the rest run against a pool that is never used.

use std::sync::Arc;
use std::time::Duration;

use auth::Authenticator;
use auth::testing::{expired_token_for, test_config, token_for};
use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use chrono::Utc;
use contracts::EventKind;
use contracts::testing::{dapr_push_body, knative_binary_push, knative_kafka_push, task_event};
use dapr_http::AppToken;
use serde_json::Value;
use telemetry::metrics::Metrics;
use tower::ServiceExt;
use uuid::Uuid;

use crate::config::RetentionConfig;
use crate::store::AuditStore;
use crate::testing::{Isolated, TestEntry, test_store};
use crate::{AppState, app};

pub(crate) const APP_TOKEN: &str = "app-token-for-tests";
pub(crate) const PUSH_TOKEN: &str = "knative-push-token";

/// The state every router here is built on.
pub(crate) fn test_state(store: AuditStore) -> AppState {
    AppState {
        store,
        pubsub: "pubsub".to_owned(),
        metrics: Default::default(),
        authenticator: Arc::new(Authenticator::new(&test_config())),
        retention: RetentionConfig {
            days: 90,
            schedule: "@daily".to_owned(),
            batch: 100,
        },
        gaps_running: crate::gaps_running(),
    }
}

pub(crate) fn router_with_timeout(store: AuditStore, api_timeout: Duration) -> Router {
    app(
        test_state(store),
        AppToken::new(Some(APP_TOKEN), Some(PUSH_TOKEN)),
        Vec::new(),
        Metrics::new("test"),
        api_timeout,
    )
}

pub(crate) fn router(store: AuditStore) -> Router {
    router_with_timeout(store, Duration::from_secs(10))
}

/// A router whose database is never reached: for requests refused before.
pub(crate) fn offline_router() -> Router {
    let pool = service::db::pool("postgres://nobody@127.0.0.1:1/none", 1).unwrap();
    router(AuditStore::new(pool))
}

pub(crate) async fn call(app: &Router, request: Request<Body>) -> (StatusCode, String, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = to_bytes(response.into_body(), 1 << 22).await.unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, content_type, body)
}

pub(crate) fn get(uri: &str, token: Option<&str>) -> Request<Body> {
    let mut builder = Request::get(uri);
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    builder.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn refusals_are_precise_problems() {
    let app = offline_router();
    let alice = token_for("alice", false);
    let admin = token_for("root", true);
    let cases: Vec<(String, Option<String>, StatusCode)> = vec![
        ("/api/audit-logs".into(), None, StatusCode::UNAUTHORIZED),
        (
            "/api/audit-logs".into(),
            Some(expired_token_for("alice")),
            StatusCode::UNAUTHORIZED,
        ),
        ("/api/audit-logs/x".into(), None, StatusCode::UNAUTHORIZED),
        (
            "/api/audit-logs/gaps".into(),
            None,
            StatusCode::UNAUTHORIZED,
        ),
        (
            "/api/audit-logs/gaps".into(),
            Some(alice.clone()),
            StatusCode::FORBIDDEN,
        ),
        (
            "/api/audit-logs?limit=abc".into(),
            Some(alice.clone()),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/audit-logs?task_id=nope".into(),
            Some(alice.clone()),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/audit-logs?from=yesterday".into(),
            Some(alice.clone()),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/audit-logs?cursor=!!!".into(),
            Some(alice.clone()),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/audit-logs?taskid=1".into(),
            Some(alice.clone()),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/audit-logs?limit=1&limit=2".into(),
            Some(alice.clone()),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/audit-logs?limit=501".into(),
            Some(alice.clone()),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/api/audit-logs?limit=0".into(),
            Some(alice.clone()),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/api/audit-logs?type=exploded".into(),
            Some(alice.clone()),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/api/audit-logs?type=com.todo.reminder.scheduled".into(),
            Some(alice.clone()),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/api/audit-logs?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z".into(),
            Some(alice.clone()),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/api/audit-logs/gaps?limit=9999".into(),
            Some(admin.clone()),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        // U+0000 cannot be stored, so it cannot be asked for either.
        (
            "/api/audit-logs?user_id=a%00b".into(),
            Some(alice.clone()),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/audit-logs/a%00b".into(),
            Some(alice.clone()),
            StatusCode::NOT_FOUND,
        ),
        (
            "/api/audit-logs/gaps?cursor=x".into(),
            Some(admin),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (uri, token, want) in cases {
        let (status, content_type, body) = call(&app, get(&uri, token.as_deref())).await;
        assert_eq!(status, want, "{uri}: {body}");
        assert_eq!(content_type, "application/problem+json", "{uri}");
        assert_eq!(body["status"], want.as_u16(), "{uri}");
    }
}

/// A trigger as the scale-to-zero PingSource sends it
/// (knative/overlays/scale-to-zero/audit-pingsource.yaml): a binary-mode
/// CloudEvent whose `pushtoken` extension arrives as `ce-pushtoken`, with
/// the PingSource's `data` as an `application/json` body, or no body when
/// `data` is unset.
fn ping_trigger(name: &str, push_token: Option<&str>, data: Option<&str>) -> Request<Body> {
    let mut builder = Request::post(format!("/job/{name}"))
        .header("ce-specversion", "1.0")
        .header("ce-id", Uuid::now_v7().to_string())
        .header("ce-type", "dev.knative.sources.ping")
        .header(
            "ce-source",
            "/apis/v1/namespaces/todo-audit/pingsources/audit-retention",
        )
        .header("ce-time", Utc::now().to_rfc3339());
    if let Some(token) = push_token {
        builder = builder.header("ce-pushtoken", token);
    }
    match data {
        Some(data) => builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(data.to_owned())),
        None => builder.body(Body::empty()),
    }
    .unwrap()
}

const PING_DATA: &str = r#"{"purpose":"audit retention"}"#;

#[tokio::test]
async fn job_triggers_need_a_callback_token_and_a_known_name() {
    let app = offline_router();
    let dapr_job = |name: &str, token: Option<&str>| {
        let mut builder = Request::post(format!("/job/{name}"));
        if let Some(token) = token {
            builder = builder.header("dapr-api-token", token);
        }
        builder.body(Body::from("{}")).unwrap()
    };
    for (label, request) in [
        ("no token", dapr_job("audit-retention", None)),
        (
            "wrong app token",
            dapr_job("audit-retention", Some("wrong")),
        ),
        (
            "ping without push token",
            ping_trigger("audit-retention", None, Some(PING_DATA)),
        ),
        (
            "ping with wrong push token",
            ping_trigger("audit-retention", Some("wrong"), Some(PING_DATA)),
        ),
        (
            "ping carrying the app token as push token",
            ping_trigger("audit-retention", Some(APP_TOKEN), None),
        ),
    ] {
        let (status, content_type, _) = call(&app, request).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{label}");
        assert_eq!(content_type, "application/problem+json", "{label}");
    }
    // Either token gets past the guard to the name check.
    let (status, ..) = call(&app, dapr_job("reminders", Some(APP_TOKEN))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, ..) = call(
        &app,
        ping_trigger("reminders", Some(PUSH_TOKEN), Some(PING_DATA)),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
#[ignore = "needs PostgreSQL (DATABASE_URL): ./scripts/test runs it"]
async fn users_see_only_their_own_entries_and_admins_see_all() {
    let store = test_store().await;
    let app = router(store.clone());
    let alice = format!("alice-{}", Uuid::now_v7());
    let bob = format!("bob-{}", Uuid::now_v7());
    let alice_task = Uuid::now_v7();
    let bob_task = Uuid::now_v7();
    let alice_event = TestEntry::new(&alice, alice_task, 1, Utc::now())
        .kind("created")
        .insert(&store)
        .await;
    let bob_event = TestEntry::new(&bob, bob_task, 1, Utc::now())
        .kind("created")
        .insert(&store)
        .await;
    let alice_token = token_for(&alice, false);
    let admin_token = token_for("auditor", true);

    // Asking for bob's rows as alice still gives alice's rows only.
    let (status, _, body) = call(
        &app,
        get(
            &format!("/api/audit-logs?user_id={bob}"),
            Some(&alice_token),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{body}");
    assert_eq!(items[0]["event_id"], alice_event);
    assert_eq!(items[0]["type"], "com.todo.task.created");
    assert_eq!(items[0]["payload"]["task"]["id"], alice_task.to_string());
    assert!(body["next_cursor"].is_null());

    // bob's task filtered by alice: nothing, not an error.
    let (_, _, body) = call(
        &app,
        get(
            &format!("/api/audit-logs?task_id={bob_task}"),
            Some(&alice_token),
        ),
    )
    .await;
    assert_eq!(body["items"], serde_json::json!([]));

    // The admin sees bob's rows by user, and by short type name.
    let (status, _, body) = call(
        &app,
        get(
            &format!("/api/audit-logs?user_id={bob}&type=created&limit=500"),
            Some(&admin_token),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["items"][0]["event_id"], bob_event, "{body}");

    // One entry: owner and admin see it; anyone else gets the same 404 as
    // for an id that does not exist.
    let one = |id: &str, token: &str| get(&format!("/api/audit-logs/{id}"), Some(token));
    let (status, _, body) = call(&app, one(&alice_event, &alice_token)).await;
    assert_eq!(
        (status, body["user_id"].as_str()),
        (StatusCode::OK, Some(alice.as_str()))
    );
    let (status, _, _) = call(&app, one(&bob_event, &admin_token)).await;
    assert_eq!(status, StatusCode::OK);
    let (hidden, _, hidden_body) = call(&app, one(&bob_event, &alice_token)).await;
    let (missing, _, missing_body) = call(&app, one("no-such-event", &alice_token)).await;
    assert_eq!(hidden, StatusCode::NOT_FOUND);
    assert_eq!(hidden_body, missing_body);
    assert_eq!(missing, StatusCode::NOT_FOUND);
}

fn push(headers: axum::http::HeaderMap, body: Vec<u8>, token: (&str, &str)) -> Request<Body> {
    let mut builder = Request::post(crate::TASK_EVENTS_ROUTE).header(token.0, token.1);
    for (name, value) in &headers {
        builder = builder.header(name, value);
    }
    builder.body(Body::from(body)).unwrap()
}

#[tokio::test]
#[ignore = "needs PostgreSQL (DATABASE_URL): ./scripts/test runs it"]
async fn every_deliverer_stores_the_event_once() {
    let store = test_store().await;
    let app = router(store.clone());
    let user = format!("ingest-{}", Uuid::now_v7());
    let event = task_event(EventKind::TaskCreated, &user);
    let dapr = (
        contracts::testing::structured_headers(),
        dapr_push_body(&event).to_string().into_bytes(),
    );
    let dapr_token = ("dapr-api-token", APP_TOKEN);
    let knative_token = ("ce-pushtoken", "knative-push-token");
    let deliveries = [
        (dapr.clone(), dapr_token),
        (dapr, dapr_token),
        (knative_binary_push(&event), knative_token),
        (knative_kafka_push(&event), knative_token),
    ];
    // daprd reads the reply's body (it sees 200 either way); Knative reads
    // the status, and gets no body.
    let dapr_success = serde_json::json!({"status": "SUCCESS"});
    for ((headers, body), token) in deliveries {
        let (status, _, reply) = call(&app, push(headers, body, token)).await;
        let want = if token == dapr_token {
            dapr_success.clone()
        } else {
            Value::Null
        };
        assert_eq!((status, reply), (StatusCode::OK, want), "{token:?}");
    }
    let id = event.id.to_string();
    let stored = store.get(&id).await.unwrap().expect("stored");
    assert_eq!(stored.user_id, user);
    assert_eq!(stored.event_type, "com.todo.task.created");
    let mut client = store.client().await.unwrap();
    let count: i64 = client
        .query_one(
            "SELECT count(*) FROM audit_logs WHERE user_id = $1",
            &[&user],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 1, "four deliveries, one row");

    // An event older than retention is acknowledged and not stored, so a
    // replay cannot bring back what retention removed.
    let mut old = task_event(EventKind::TaskUpdated, &user);
    old.time = Utc::now() - chrono::Duration::days(100);
    let body = dapr_push_body(&old).to_string().into_bytes();
    let (status, _, reply) = call(
        &app,
        push(contracts::testing::structured_headers(), body, dapr_token),
    )
    .await;
    assert_eq!(
        (status, reply["status"].as_str()),
        (StatusCode::OK, Some("SUCCESS"))
    );
    assert!(store.get(&old.id.to_string()).await.unwrap().is_none());
}

/// The expired row of a retention test and a row one day younger than the
/// cutoff, in an isolated schema: no other purge can take either, so what
/// the route reports is exactly what it did.
async fn retention_fixture(isolated: &Isolated, sequence: i64) -> (String, String) {
    let user = format!("job-{}", Uuid::now_v7());
    let task = Uuid::now_v7();
    let old = TestEntry::new(
        &user,
        task,
        sequence,
        Utc::now() - chrono::Duration::days(91),
    )
    .insert(&isolated.store)
    .await;
    let kept = TestEntry::new(
        &user,
        task,
        sequence + 1,
        Utc::now() - chrono::Duration::days(89),
    )
    .insert(&isolated.store)
    .await;
    (old, kept)
}

async fn assert_purged_exactly(isolated: &Isolated, report: &Value, old: &str, kept: &str) {
    assert_eq!(report["deleted"], 1, "{report}");
    assert_eq!(report["batches"], 1, "{report}");
    assert!(
        isolated.store.get(old).await.unwrap().is_none(),
        "91 days: gone"
    );
    assert!(
        isolated.store.get(kept).await.unwrap().is_some(),
        "89 days: kept"
    );
}

#[tokio::test]
#[ignore = "needs PostgreSQL (DATABASE_URL): ./scripts/test runs it"]
async fn the_retention_job_purges_through_the_route() {
    let isolated = Isolated::new().await;
    let app = router(isolated.store.clone());
    let (old, kept) = retention_fixture(&isolated, 1).await;
    let request = Request::post("/job/audit-retention")
        .header("dapr-api-token", APP_TOKEN)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"purpose":"audit retention"}"#))
        .unwrap();
    let (status, _, report) = call(&app, request).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_purged_exactly(&isolated, &report, &old, &kept).await;
    isolated.drop_schema().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL (DATABASE_URL): ./scripts/test runs it"]
async fn a_pingsource_trigger_with_the_push_token_purges() {
    let isolated = Isolated::new().await;
    let app = router(isolated.store.clone());

    // A wrong or missing push token is refused before the purge: 401, no
    // report, nothing deleted.
    let (old, _) = retention_fixture(&isolated, 1).await;
    for token in [None, Some("wrong")] {
        let (status, _, body) = call(
            &app,
            ping_trigger("audit-retention", token, Some(PING_DATA)),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert!(body.get("batches").is_none(), "{body}");
    }
    assert!(isolated.store.get(&old).await.unwrap().is_some());

    // The PingSource's JSON data, and no data at all, both run the purge.
    let (status, _, report) = call(
        &app,
        ping_trigger("audit-retention", Some(PUSH_TOKEN), Some(PING_DATA)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["deleted"], 1, "{report}");
    let (old, kept) = retention_fixture(&isolated, 10).await;
    let (status, _, report) = call(
        &app,
        ping_trigger("audit-retention", Some(PUSH_TOKEN), None),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_purged_exactly(&isolated, &report, &old, &kept).await;
    isolated.drop_schema().await;
}

#[tokio::test]
async fn framework_errors_are_problem_documents() {
    let app = offline_router();
    let cases = [
        (Request::get("/nowhere"), StatusCode::NOT_FOUND),
        (
            Request::delete("/api/audit-logs"),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (Request::post("/healthz"), StatusCode::METHOD_NOT_ALLOWED),
    ];
    for (request, expected) in cases {
        let request = request.body(Body::empty()).unwrap();
        let what = format!("{} {}", request.method(), request.uri());
        let (status, content_type, body) = call(&app, request).await;
        assert_eq!(status, expected, "{what}");
        assert_eq!(content_type, "application/problem+json", "{what}");
        assert_eq!(body["status"], expected.as_u16(), "{what}: {body}");
    }
}
