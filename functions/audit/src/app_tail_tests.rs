//! Through the whole router: the ingest-ordered tail (`order=ingest`),
//! forged cursors, and the limits on the heavy gap check (one at a time,
//! its statement cancelled when the request times out).

use std::time::Duration;

use auth::testing::token_for;
use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{HeaderMap, Request, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use serde_json::Value;
use tower::ServiceExt;
use uuid::Uuid;

use crate::app_tests::{call, get, offline_router, router, router_with_timeout};
use crate::query::Cursor;
use crate::tail::IngestCursor;
use crate::testing::{Isolated, TestEntry, test_store};

async fn call_with_headers(app: &Router, request: Request<Body>) -> (StatusCode, HeaderMap, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = to_bytes(body, 1 << 22).await.unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (parts.status, parts.headers, body)
}

fn forge(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text)
}

/// Cursors a client could send that this service never issued, each with
/// the order it is sent with.
fn forged_cursors() -> Vec<(String, &'static str)> {
    let time = Cursor {
        occurred_at: Utc::now(),
        event_id: "e".into(),
    }
    .encode();
    let ingest = IngestCursor { xid: 5, seq: 5 }.encode();
    vec![
        ("garbage!".to_owned(), "time"),
        (forge("not a cursor"), "time"),
        (forge(&format!("{}:e", i64::MAX)), "time"),
        (forge(&format!("{}:e", i64::MIN)), "time"),
        // Year -100000: chrono holds it, PostgreSQL refuses it.
        (forge("-3217862419200000000:e"), "time"),
        (forge("253402300800000000:e"), "time"), // year 10000
        (forge("0:a\0b"), "time"),
        (forge(&format!("0:{}", "e".repeat(2_000))), "time"),
        (forge("ingest:18446744073709551616:1"), "ingest"),
        (forge("ingest:1:-9223372036854775809"), "ingest"),
        (forge("ingest:NaN:1"), "ingest"),
        (forge("ingest:1:2\0"), "ingest"),
        (ingest, "time"),
        (time, "ingest"),
    ]
}

#[tokio::test]
async fn forged_cursors_are_bad_requests() {
    let app = offline_router();
    let alice = token_for("alice", false);
    for (cursor, order) in forged_cursors() {
        let uri = format!("/api/audit-logs?order={order}&cursor={cursor}");
        let (status, _, body) = call(&app, get(&uri, Some(&alice))).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{cursor} ({order}): {body}"
        );
    }
    let (status, ..) = call(&app, get("/api/audit-logs?order=newest", Some(&alice))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

/// The extremes a cursor may hold reach the database and come back as an
/// empty page, never a 500.
#[tokio::test]
#[ignore = "needs PostgreSQL (DATABASE_URL): ./scripts/test runs it"]
async fn cursors_at_the_edges_of_their_range_are_answered() {
    let app = router(test_store().await);
    let admin = token_for("auditor", true);
    let edge_times = [
        "253402300799999999:zzzz", // 9999-12-31T23:59:59.999999Z
        "-62167219200000000:0",    // 0000-01-01T00:00:00Z
    ];
    let mut cases: Vec<(String, &str)> = edge_times
        .iter()
        .map(|text| (forge(text), "time"))
        .collect();
    for (xid, seq) in [(u64::MAX, i64::MAX), (u64::MAX, i64::MIN), (0, i64::MIN)] {
        cases.push((IngestCursor { xid, seq }.encode(), "ingest"));
    }
    for (cursor, order) in cases {
        let uri = format!("/api/audit-logs?order={order}&cursor={cursor}&limit=1");
        let (status, _, body) = call(&app, get(&uri, Some(&admin))).await;
        assert_eq!(status, StatusCode::OK, "{cursor} ({order}): {body}");
    }
    let uri = "/api/audit-logs?from=0000-01-01T00:00:00Z&to=0000-01-02T00:00:00Z";
    let (status, _, body) = call(&app, get(uri, Some(&admin))).await;
    assert_eq!(
        (status, body["items"].clone()),
        (StatusCode::OK, Value::Array(vec![]))
    );
}

/// A client following `order=ingest` gets its own entries, a late one
/// included, and never another user's.
#[tokio::test]
#[ignore = "needs PostgreSQL (DATABASE_URL): ./scripts/test runs it"]
async fn the_tail_through_the_api_is_the_callers_own() {
    let store = test_store().await;
    let app = router(store.clone());
    let alice = format!("tail-alice-{}", Uuid::now_v7());
    let bob = format!("tail-bob-{}", Uuid::now_v7());
    let token = token_for(&alice, false);
    let mine = TestEntry::new(&alice, Uuid::now_v7(), 1, Utc::now())
        .insert(&store)
        .await;
    TestEntry::new(&bob, Uuid::now_v7(), 1, Utc::now())
        .insert(&store)
        .await;

    let page = |cursor: Option<String>| {
        let cursor = cursor.map(|c| format!("&cursor={c}")).unwrap_or_default();
        get(
            &format!("/api/audit-logs?order=ingest&user_id={bob}{cursor}"),
            Some(&token),
        )
    };
    let (mut seen, mut cursor) = (Vec::new(), None);
    let mut late = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while seen.len() < 2 && tokio::time::Instant::now() < deadline {
        let (status, _, body) = call(&app, page(cursor.clone())).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        for item in body["items"].as_array().unwrap() {
            assert_eq!(item["user_id"], alice.as_str(), "{item}");
            seen.push(item["event_id"].as_str().unwrap().to_owned());
        }
        cursor = body["next_cursor"].as_str().map(str::to_owned);
        if seen.len() == 1 && late.is_none() {
            // Seen the first entry: one of 80 days ago arrives now.
            let old = Utc::now() - chrono::Duration::days(80);
            late = Some(
                TestEntry::new(&alice, Uuid::now_v7(), 1, old)
                    .insert(&store)
                    .await,
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(seen, vec![mine, late.unwrap()]);
}

/// A gap check blocked in the database: the request times out (503), its
/// statement stops running on the server, and a second check meanwhile is
/// refused at once with Retry-After instead of stacking up.
#[tokio::test]
#[ignore = "needs PostgreSQL (DATABASE_URL): ./scripts/test runs it"]
async fn a_timed_out_gap_check_stops_and_only_one_runs() {
    let isolated = Isolated::new().await;
    let app = router_with_timeout(isolated.store.clone(), Duration::from_secs(2));
    let admin = token_for("auditor", true);
    let gaps = || get("/api/audit-logs/gaps", Some(&admin));

    // The gap check reads audit_purged; an exclusive lock on it (in this
    // test's own schema) holds the check in the database.
    let mut locker = isolated.connection().await;
    let lock = locker.transaction().await.unwrap();
    lock.batch_execute("LOCK TABLE audit_purged IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();

    let first = tokio::spawn({
        let (app, request) = (app.clone(), gaps());
        async move { call_with_headers(&app, request).await }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while isolated.active_statements().await == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the check never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, headers, body) = call_with_headers(&app, gaps()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(headers[header::RETRY_AFTER], "5");
    assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");

    let (status, ..) = first.await.unwrap();
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "the request timed out"
    );
    // The lock is still held: only a cancel can have ended the statement.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while isolated.active_statements().await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the timed-out check still runs in PostgreSQL"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    lock.rollback().await.unwrap();
    let (status, _, body) = call_with_headers(&app, gaps()).await;
    assert_eq!(status, StatusCode::OK, "the permit came back: {body}");
    isolated.drop_schema().await;
}
