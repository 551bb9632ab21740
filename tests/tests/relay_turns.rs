//! The relay's turns against the real PostgreSQL, daprd and Kafka: one
//! read of a key serves a daprd call per topic, and the turn commits once
//! (the CPU per create saved by it: docs/cpu-per-create.md). Per topic the
//! order in Kafka (read back from the topics) stays the outbox's, and every
//! row goes out exactly once, also when a key needs several turns.
//!
//! Like `relay.rs`, the rows live in a schema of the test's own, so the
//! relay under test is their only publisher; the events are valid events
//! of made-up users (audit stores the `task-events` ones, as for any user).

use std::collections::HashMap;
use std::time::Duration;

use contracts::EventKind;
use contracts::testing::task_event;
use e2e_tests::{PrivateSchema, Stack};
use task_domain::Relay;
use task_domain::relay::RelayMetrics;
use uuid::Uuid;

/// Enqueues `creates` creates of `user` as task-api does: each a
/// `task-events` and a `task-updates` event, all in one transaction.
async fn enqueue_creates(schema: &PrivateSchema, user: &str, creates: i64) {
    let mut client = schema.pool.get().await.expect("connection");
    let tx = client.transaction().await.expect("transaction");
    for offset in 1..=creates {
        let created = task_event(EventKind::TaskCreated, user);
        task_domain::outbox::enqueue(&tx, &created, user, None, None)
            .await
            .expect("enqueue");
        let sync = e2e_tests::sync_event(user, offset, "relay-turns");
        task_domain::outbox::enqueue(&tx, &sync, user, Some(offset), None)
            .await
            .expect("enqueue");
    }
    tx.commit().await.expect("commit");
}

fn relay(stack: &Stack, schema: &PrivateSchema, batch_size: i64) -> (Relay, RelayMetrics) {
    let dapr = stack.task_api_daprd(Duration::from_secs(10));
    let config = e2e_tests::relay_config(batch_size, 2, Duration::from_secs(1));
    e2e_tests::outbox_relay(&schema.pool, dapr, config)
}

/// `(unsent rows, transactions that marked the rows, distinct sent_at)`
/// of `user`: a row's `xmin` is the transaction that last wrote it.
async fn marks(schema: &PrivateSchema, user: &str) -> (i64, i64, i64) {
    let row = schema
        .db
        .query_one(
            "SELECT count(*) FILTER (WHERE sent_at IS NULL),
                    count(DISTINCT xmin::text) FILTER (WHERE sent_at IS NOT NULL),
                    count(DISTINCT sent_at)
             FROM outbox WHERE partition_key = $1",
            &[&user],
        )
        .await
        .expect("marks");
    (row.get(0), row.get(1), row.get(2))
}

/// Asserts that Kafka holds each topic's events of `users` in outbox id
/// order. Read from the topics themselves (a user's events of one topic
/// share a partition), each event at its first copy, as a consumer that
/// deduplicates by event id sees them; `sent_at` could not show it (one
/// call's rows share one time).
async fn assert_in_kafka_in_id_order(stack: &Stack, schema: &PrivateSchema, users: &[&str]) {
    for topic in ["task-events", "task-updates"] {
        let rows = schema
            .db
            .query(
                "SELECT partition_key, payload->>'id' FROM outbox
                 WHERE partition_key = ANY($1) AND topic = $2 ORDER BY id",
                &[&users, &topic],
            )
            .await
            .expect("rows");
        let owner: HashMap<String, String> = rows.iter().map(|r| (r.get(1), r.get(0))).collect();
        let records = e2e_tests::topic::read(
            stack,
            topic,
            |r| r["id"].as_str().is_some_and(|id| owner.contains_key(id)),
            owner.len(),
        )
        .await;
        for user in users {
            let expected: Vec<String> = rows
                .iter()
                .filter(|r| r.get::<_, String>(0) == *user)
                .map(|r| r.get(1))
                .collect();
            let seen: Vec<String> = e2e_tests::topic::first_copies(&records)
                .into_iter()
                .filter(|id| owner.get(id).is_some_and(|o| o == user))
                .collect();
            assert_eq!(seen, expected, "{user}'s {topic} events in Kafka");
        }
    }
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn a_keys_topics_go_out_in_one_turn_each_in_order() {
    let stack = Stack::from_env();
    let schema = PrivateSchema::create(&stack, "relay_turns", 4).await;

    // Three creates of one user: one read, a call per topic, one commit.
    let one = format!("turns-{}", Uuid::new_v4().simple());
    enqueue_creates(&schema, &one, 3).await;
    let (relay_one, metrics) = relay(&stack, &schema, 100);
    assert_eq!(relay_one.pass().await.expect("pass"), 6);
    assert_eq!(metrics.calls.get(), 2, "a call per topic");
    assert_eq!(
        marks(&schema, &one).await,
        (0, 1, 2),
        "one transaction marked both calls, each call with its own time"
    );

    // Five creates read three rows at a time: four turns (3+3+3+1 rows),
    // each row once, per topic in order, and the short last read ends the
    // key without another.
    let many = format!("turns-{}", Uuid::new_v4().simple());
    enqueue_creates(&schema, &many, 5).await;
    let (relay_many, metrics) = relay(&stack, &schema, 3);
    assert_eq!(relay_many.pass().await.expect("pass"), 10);
    assert_eq!(metrics.calls.get(), 7, "2 + 2 + 2 + 1 calls");
    let (unsent, turns, _) = marks(&schema, &many).await;
    assert_eq!((unsent, turns), (0, 4));
    assert_eq!(relay_many.pass().await.expect("pass"), 0, "nothing twice");
    assert_in_kafka_in_id_order(&stack, &schema, &[&one, &many]).await;
    schema.drop_schema().await;
}
