//! Unit tests of the relay's handling of daprd's documented bulk-publish
//! answers, with a fake daprd: an axum server on a loopback port that
//! records each call and answers as daprd 1.18.2 does (`pkg/api/http/http.go`
//! `onBulkPublish`: 204, or 500 with `failedEntries` listing exactly the
//! entries the broker failed, the rest written). Not an integration test:
//! no daprd or Kafka is involved, only the real PostgreSQL for the outbox
//! rows (a schema of the test's own, so nothing else publishes them). The
//! real daprd and Kafka are in relay.rs, relay_turns.rs and
//! task_api_order.rs.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use dapr_http::DaprClient;
use e2e_tests::{PrivateSchema, Stack};
use serde_json::{Value, json};
use task_domain::Relay;
use task_domain::relay::{Backoff, RelayMetrics};
use uuid::Uuid;

const BACKOFF: Backoff = Backoff {
    base: Duration::from_millis(700),
    max: Duration::from_secs(60),
};

/// What the fake daprd answers a call: 204, or 500 with this body.
type Answer = Option<Value>;

#[derive(Default)]
struct FakeDaprd {
    /// Answers still to give, per partition key, in call order; 204 after.
    script: HashMap<String, VecDeque<Answer>>,
    /// Each call: partition key and entry ids, in the order received.
    calls: Vec<(String, Vec<i64>)>,
}

type Shared = Arc<Mutex<FakeDaprd>>;

async fn bulk_publish(
    State(fake): State<Shared>,
    Path((_pubsub, _topic)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    axum::Json(entries): axum::Json<Vec<Value>>,
) -> Response {
    let key = query
        .get("metadata.partitionKey")
        .cloned()
        .unwrap_or_default();
    let ids = entries
        .iter()
        .map(|e| {
            e["entryId"]
                .as_str()
                .and_then(|id| id.parse().ok())
                .unwrap_or(-1)
        })
        .collect();
    let mut fake = fake.lock().expect("fake daprd state");
    fake.calls.push((key.clone(), ids));
    let answer = fake.script.get_mut(&key).and_then(VecDeque::pop_front);
    match answer.flatten() {
        None => StatusCode::NO_CONTENT.into_response(),
        Some(body) => (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response(),
    }
}

/// Starts the fake daprd on a loopback port; returns its URL.
async fn fake_daprd(state: Shared) -> String {
    let app = axum::Router::new()
        .route(
            "/v1.0-alpha1/publish/bulk/{pubsub}/{topic}",
            axum::routing::post(bulk_publish),
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("loopback port");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// Commits `count` `task-updates` rows of `user`; returns their ids.
async fn enqueue(schema: &PrivateSchema, user: &str, count: i64) -> Vec<i64> {
    let mut client = schema.pool.get().await.expect("connection");
    let tx = client.transaction().await.expect("transaction");
    let mut ids = Vec::new();
    for offset in 1..=count {
        let event = e2e_tests::sync_event(user, offset, "relay-daprd-answers");
        task_domain::outbox::enqueue(&tx, &event, user, Some(offset), None)
            .await
            .expect("enqueue");
        let id: i64 = tx
            .query_one("SELECT id FROM outbox WHERE event_id = $1", &[&event.id])
            .await
            .expect("row")
            .get(0);
        ids.push(id);
    }
    tx.commit().await.expect("commit");
    ids
}

/// A relay of `schema`'s outbox publishing through the daprd at `url`;
/// only the test's passes move it (no poll is due within a test).
fn relay(schema: &PrivateSchema, url: &str) -> (Relay, RelayMetrics) {
    let dapr = DaprClient::new(url, None, Duration::from_secs(5));
    let config = e2e_tests::relay_config(100, 2, Duration::from_secs(600));
    let (relay, metrics) = e2e_tests::outbox_relay(&schema.pool, dapr, config);
    (relay.with_backoff(BACKOFF), metrics)
}

/// `(sent, attempts, backing off)` of each row, in id order.
async fn states(schema: &PrivateSchema, ids: &[i64]) -> Vec<(bool, i32, bool)> {
    schema
        .db
        .query(
            "SELECT sent_at IS NOT NULL, attempts, coalesce(next_attempt_at > now(), false)
             FROM outbox WHERE id = ANY($1) ORDER BY id",
            &[&ids],
        )
        .await
        .expect("states")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

fn calls_of(fake: &Shared, key: &str) -> Vec<Vec<i64>> {
    let fake = fake.lock().expect("fake daprd state");
    fake.calls
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, ids)| ids.clone())
        .collect()
}

/// daprd's body for a partial failure (`BulkPublishResponse` in http.go).
fn failed_entries(ids: &[i64]) -> Value {
    let entries: Vec<Value> = ids
        .iter()
        .map(|id| json!({"entryId": id.to_string(), "error": "kafka: Failed to produce message"}))
        .collect();
    json!({"failedEntries": entries, "errorCode": "ERR_PUBSUB_PUBLISH_MESSAGE"})
}

#[tokio::test]
#[ignore = "needs the local stack's PostgreSQL: ./scripts/test runs it"]
async fn unit_fake_daprd_a_partial_failure_holds_the_failed_event_and_all_after_it() {
    let stack = Stack::from_env();
    let schema = PrivateSchema::create(&stack, "relay_answers", 4).await;
    let fake = Shared::default();
    let url = fake_daprd(fake.clone()).await;
    let user = format!("partial-{}", Uuid::new_v4().simple());
    let ids = enqueue(&schema, &user, 6).await;
    // The third entry failed; the fourth and sixth were written, the fifth
    // failed too: the broker's report as daprd passes it on.
    fake.lock().expect("state").script.insert(
        user.clone(),
        VecDeque::from([Some(failed_entries(&[ids[4], ids[2]]))]),
    );
    let (relay, metrics) = relay(&schema, &url);

    assert_eq!(relay.pass().await.expect("pass"), 2);
    assert_eq!(calls_of(&fake, &user), vec![ids.clone()]);
    let after_failure = states(&schema, &ids).await;
    assert_eq!(
        after_failure[..2],
        [(true, 1, false), (true, 1, false)],
        "the entries before the failed one are sent"
    );
    assert_eq!(
        after_failure[2],
        (false, 1, true),
        "the failed one backs off"
    );
    assert!(
        after_failure[3..].iter().all(|s| *s == (false, 0, false)),
        "nothing after the failed entry is marked sent: {after_failure:?}"
    );
    assert_eq!(metrics.published.get(), 2);
    assert_eq!(metrics.failed.get(), 4);
    assert_eq!(metrics.overtaken.get(), 2, "the 4th and 6th were written");

    // While it backs off, the key waits: no call at all.
    assert_eq!(relay.pass().await.expect("pass"), 0);
    assert_eq!(calls_of(&fake, &user).len(), 1);

    // After the backoff: the failed entry alone, then the rest, in id order.
    tokio::time::sleep(BACKOFF.base + Duration::from_millis(200)).await;
    assert_eq!(relay.pass().await.expect("pass"), 4);
    assert_eq!(
        calls_of(&fake, &user),
        [ids.clone(), vec![ids[2]], ids[3..].to_vec()]
    );
    assert!(states(&schema, &ids).await.iter().all(|s| s.0));
    assert_eq!(relay.pass().await.expect("pass"), 0, "nothing twice");
    schema.drop_schema().await;
}

#[tokio::test]
#[ignore = "needs the local stack's PostgreSQL: ./scripts/test runs it"]
async fn unit_fake_daprd_a_500_without_a_report_leaves_the_whole_call_pending() {
    let stack = Stack::from_env();
    let schema = PrivateSchema::create(&stack, "relay_answers", 4).await;
    let fake = Shared::default();
    let url = fake_daprd(fake.clone()).await;
    let user = format!("unknown-{}", Uuid::new_v4().simple());
    let ids = enqueue(&schema, &user, 3).await;
    let unreported = json!({"errorCode": "ERR_PUBSUB_PUBLISH_MESSAGE", "message": "boom"});
    fake.lock()
        .expect("state")
        .script
        .insert(user.clone(), VecDeque::from([Some(unreported)]));
    let (relay, _) = relay(&schema, &url);

    // Nothing is known to be written: nothing is marked, and the next pass
    // (daprd or the broker back) sends the call again, the head first.
    assert_eq!(relay.pass().await.expect("pass"), 0);
    assert!(states(&schema, &ids).await.iter().all(|s| !s.0));
    assert_eq!(relay.pass().await.expect("pass"), 3);
    assert_eq!(
        calls_of(&fake, &user),
        [ids.clone(), vec![ids[0]], ids[1..].to_vec()]
    );
    schema.drop_schema().await;
}
