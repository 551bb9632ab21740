//! The relay's run loop against the real PostgreSQL, daprd and Kafka, in a
//! schema of the test's own (so task-api's relay never sees these rows):
//! with the poll interval far beyond the test's time, only wake-ups move
//! it, so a row a wake-up left behind would show, and so would a loop that
//! calls a failing daprd without being asked.

use std::time::Duration;

use dapr_http::DaprClient;
use e2e_tests::{PrivateSchema, Stack};
use task_domain::Relay;
use task_domain::relay::RelayMetrics;
use uuid::Uuid;

/// Never within a test: anything published was moved by a wake-up.
const NO_POLL: Duration = Duration::from_secs(600);

fn relay(schema: &PrivateSchema, dapr_url: &str, token: Option<String>) -> (Relay, RelayMetrics) {
    let dapr = DaprClient::new(dapr_url, token, Duration::from_secs(5));
    e2e_tests::outbox_relay(&schema.pool, dapr, e2e_tests::relay_config(100, 4, NO_POLL))
}

/// Commits one `task-updates` row of `user`, as a change does.
async fn commit_one(schema: &PrivateSchema, user: &str, offset: i64) {
    let event = e2e_tests::sync_event(user, offset, "relay-run-test");
    let mut client = schema.pool.get().await.expect("connection");
    let tx = client.transaction().await.expect("transaction");
    task_domain::outbox::enqueue(&tx, &event, user, Some(offset), None)
        .await
        .expect("enqueue");
    tx.commit().await.expect("commit");
}

async fn unsent(schema: &PrivateSchema) -> i64 {
    schema
        .db
        .query_one("SELECT count(*) FROM outbox WHERE sent_at IS NULL", &[])
        .await
        .expect("count")
        .get(0)
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn rows_committed_while_their_key_is_in_flight_go_out_without_a_poll() {
    let stack = Stack::from_env();
    let schema = PrivateSchema::create(&stack, "relay_run", 8).await;
    let (relay, metrics) = relay(&schema, &stack.task_api_dapr, stack.dapr_api_token.clone());
    let task = relay.clone().spawn();
    // One hot key and a few others, each commit followed by its wake-up,
    // as task-api does: many commits land while their key is publishing.
    let run = Uuid::new_v4().simple().to_string();
    let hot = format!("hot-{run}");
    let mut offsets = std::collections::HashMap::new();
    for i in 0..300 {
        let user = if i % 3 == 0 {
            format!("other-{}-{run}", i % 7)
        } else {
            hot.clone()
        };
        let offset = offsets.entry(user.clone()).or_insert(0);
        *offset += 1;
        commit_one(&schema, &user, *offset).await;
        relay.wake();
    }
    let drained = e2e_tests::eventually(Duration::from_secs(10), || async {
        (unsent(&schema).await == 0).then_some(())
    })
    .await;
    assert!(
        drained.is_some(),
        "{} rows left for the poll",
        unsent(&schema).await
    );
    assert_eq!(metrics.published.get(), 300);
    task.stop(Duration::from_secs(5)).await;
    schema.drop_schema().await;
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn a_failing_daprd_is_not_called_in_a_loop() {
    let stack = Stack::from_env();
    let schema = PrivateSchema::create(&stack, "relay_run", 4).await;
    // Nothing listens there: every publish fails as daprd being down does.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    let url = format!("http://{}", closed.local_addr().expect("address"));
    drop(closed);
    let (relay, metrics) = relay(&schema, &url, None);
    let run = Uuid::new_v4().simple().to_string();
    for user in 0..3 {
        commit_one(&schema, &format!("down-{user}-{run}"), 1).await;
    }
    let task = relay.clone().spawn();
    tokio::time::sleep(Duration::from_secs(2)).await;
    // One attempt per key at the start; with no wake-up and no poll due,
    // nothing more until the next commit.
    assert_eq!(metrics.calls.get(), 3, "calls while daprd is down");
    assert_eq!(metrics.published.get(), 0);
    relay.wake();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(metrics.calls.get(), 6, "a wake-up tries each key once more");
    assert_eq!(unsent(&schema).await, 3);
    task.stop(Duration::from_secs(5)).await;
    schema.drop_schema().await;
}
