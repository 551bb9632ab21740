//! Event order through the real stack, asserted on what went through Kafka:
//! 1,000 interleaved changes across 50 users arrive in per-user order with
//! no gap, and two outbox relays racing over the same rows never publish
//! one user's events out of order.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use contracts::testing::task_snapshot;
use contracts::{EventKind, OutgoingEvent, TaskSyncData};
use e2e_tests::{Stack, eventually};
use futures::StreamExt;
use serde_json::{Value, json};
use task_domain::Relay;
use task_domain::relay::RelayMetrics;
use uuid::Uuid;

const USERS: usize = 50;
const TASKS_PER_USER: usize = 2;
const CHANGES_PER_USER: usize = 20;
const WAIT: Duration = Duration::from_secs(90);
/// The records of `topic` whose `data.user_id` is one of `users`, in each
/// partition's order, until `expected` distinct events are seen.
async fn read_topic(
    stack: &Stack,
    topic: &str,
    users: &HashSet<String>,
    expected: usize,
) -> Vec<Value> {
    let keep = |record: &Value| {
        record["data"]["user_id"]
            .as_str()
            .is_some_and(|u| users.contains(u))
    };
    e2e_tests::topic::read(stack, topic, keep, expected).await
}

/// The sequence of `field` values of each user's records, in Kafka order,
/// counting each event id once (a redelivery repeats an id; consumers
/// deduplicate by it).
fn per_user(
    records: &[Value],
    users: &HashSet<String>,
    key: &str,
    field: &str,
) -> BTreeMap<String, Vec<i64>> {
    let mut seen = HashSet::new();
    let mut out: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for record in records {
        let data = &record["data"];
        let Some(user) = data["user_id"].as_str().filter(|u| users.contains(*u)) else {
            continue;
        };
        if !seen.insert(record["id"].as_str().unwrap_or_default().to_owned()) {
            continue;
        }
        let group = match key {
            "user" => user.to_owned(),
            _ => data[key].as_str().unwrap_or_default().to_owned(),
        };
        out.entry(group)
            .or_default()
            .push(data[field].as_i64().unwrap_or(-1));
    }
    out
}

/// Waits until every outbox row of `users` is sent.
async fn wait_sent(db: &tokio_postgres::Client, users: &[String]) {
    let sent = eventually(WAIT, || async {
        let row = db
            .query_one(
                "SELECT count(*) FILTER (WHERE sent_at IS NULL) FROM outbox WHERE partition_key = ANY($1)",
                &[&users],
            )
            .await
            .ok()?;
        (row.get::<_, i64>(0) == 0).then_some(())
    })
    .await;
    assert!(sent.is_some(), "the outbox was not drained within {WAIT:?}");
}

/// A small deterministic shuffle (xorshift), so a failure can be replayed.
fn shuffle<T>(items: &mut [T], mut seed: u64) {
    for i in (1..items.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        items.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn a_thousand_interleaved_changes_arrive_in_per_user_order() {
    let stack = Stack::from_env();
    let run = Uuid::new_v4().simple().to_string();
    let users: Vec<String> = (0..USERS).map(|i| format!("order-{run}-{i}")).collect();
    let api = |method: reqwest::Method, path: String, user: &str, body: Value| {
        let request = stack
            .http
            .request(method, format!("{}{path}", stack.task_api))
            .bearer_auth(stack.token(user, false))
            .json(&body);
        async move {
            let response = request.send().await.expect("task-api reachable");
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            assert!(status.is_success(), "{status}: {body}");
            body
        }
    };
    // Creates first (each user's tasks must exist before their updates)…
    let creates: Vec<(usize, usize)> = (0..USERS)
        .flat_map(|u| (0..TASKS_PER_USER).map(move |t| (u, t)))
        .collect();
    let mut tasks: BTreeMap<(usize, usize), String> = BTreeMap::new();
    let created: Vec<((usize, usize), Value)> = futures::stream::iter(creates)
        .map(|(u, t)| {
            let call = api(
                reqwest::Method::POST,
                "/api/tasks".into(),
                &users[u],
                json!({"title": format!("u{u} t{t}")}),
            );
            async move { ((u, t), call.await) }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    for (key, body) in created {
        tasks.insert(key, body["id"].as_str().expect("id").to_owned());
    }
    // …then 900 updates, shuffled across users and run 16 at a time, so one
    // user's changes also race each other.
    let mut updates: Vec<(usize, usize, usize)> = (0..USERS)
        .flat_map(|u| {
            (0..CHANGES_PER_USER - TASKS_PER_USER).map(move |j| (u, j % TASKS_PER_USER, j))
        })
        .collect();
    shuffle(&mut updates, 0x5eed_1234);
    let total = futures::stream::iter(updates)
        .map(|(u, t, j)| {
            api(
                reqwest::Method::PATCH,
                format!("/api/tasks/{}", tasks[&(u, t)]),
                &users[u],
                json!({"title": format!("u{u} t{t} v{j}")}),
            )
        })
        .buffer_unordered(16)
        .count()
        .await;
    assert_eq!(total + tasks.len(), USERS * CHANGES_PER_USER);

    let db = stack.db().await;
    wait_sent(&db, &users).await;
    let wanted: HashSet<String> = users.iter().cloned().collect();

    let events = USERS * CHANGES_PER_USER;
    let (sync, changes) = tokio::join!(
        read_topic(&stack, "task-updates", &wanted, events),
        read_topic(&stack, "task-events", &wanted, events)
    );
    // task-updates: each user's stream offsets, in Kafka order, are 1..=20.
    let offsets = per_user(&sync, &wanted, "user", "offset");
    assert_eq!(offsets.len(), USERS, "every user's stream reached Kafka");
    let expected: Vec<i64> = (1..=CHANGES_PER_USER as i64).collect();
    for (user, seen) in &offsets {
        assert_eq!(seen, &expected, "{user}'s stream in Kafka");
    }

    // task-events: each task's sequences, in Kafka order, are 1..=n.
    let sequences = per_user(&changes, &wanted, "task_id", "sequence");
    assert_eq!(sequences.len(), tasks.len());
    let mut seen_events = 0;
    for (task, seen) in &sequences {
        let expected: Vec<i64> = (1..=seen.len() as i64).collect();
        assert_eq!(seen, &expected, "task {task}'s events in Kafka");
        seen_events += seen.len();
    }
    assert_eq!(seen_events, events);

    // audit stored each of them once, with gap-free sequences per task.
    let stored = eventually(WAIT, || async {
        let row = db
            .query_one(
                "SELECT count(*) FROM audit_logs WHERE user_id = ANY($1)",
                &[&users],
            )
            .await
            .ok()?;
        (row.get::<_, i64>(0) >= events as i64).then_some(row.get::<_, i64>(0))
    })
    .await;
    assert_eq!(stored, Some(events as i64), "audit stores each event once");
    let gaps = db
        .query_one(
            "SELECT count(*) FROM (SELECT task_id, max(sequence) AS top, count(DISTINCT sequence) AS n
             FROM audit_logs WHERE user_id = ANY($1) GROUP BY task_id) t WHERE top <> n",
            &[&users],
        )
        .await
        .expect("gap query");
    assert_eq!(
        gaps.get::<_, i64>(0),
        0,
        "no task has a sequence gap in audit"
    );
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn two_relays_never_publish_a_users_events_out_of_order() {
    let stack = Stack::from_env();
    const RELAY_USERS: usize = 20;
    const EVENTS: i64 = 25;
    let run = Uuid::new_v4().simple().to_string();
    let users: Vec<String> = (0..RELAY_USERS)
        .map(|i| format!("relay2-{run}-{i}"))
        .collect();
    let pool = service::db::pool(&stack.database_url, 8).expect("pool");
    // All rows commit at once, so both relays find them together.
    {
        let mut client = pool.get().await.expect("PostgreSQL reachable");
        let tx = client.transaction().await.expect("transaction");
        for offset in 1..=EVENTS {
            for user in &users {
                let task_id = Uuid::now_v7();
                let data = TaskSyncData {
                    task_id,
                    user_id: user.clone(),
                    sequence: 1,
                    epoch: run.clone(),
                    offset,
                    op: "created".into(),
                    task: Some(task_snapshot(task_id, user, 1)),
                    changed: vec!["title".into()],
                };
                let event =
                    OutgoingEvent::new(EventKind::TaskSync, "task-api", task_id.to_string(), &data)
                        .expect("event");
                task_domain::outbox::enqueue(&tx, &event, user, Some(offset), None)
                    .await
                    .expect("enqueue");
            }
        }
        tx.commit().await.expect("commit");
    }
    let dapr = stack.task_api_daprd(Duration::from_secs(5));
    // Small batches, so one user's rows are split between passes and relays.
    let config = e2e_tests::relay_config(3, 8, Duration::from_millis(50));
    let db = stack.db().await;
    let relays: Vec<(Relay, RelayMetrics)> = (0..2)
        .map(|_| e2e_tests::outbox_relay(&pool, dapr.clone(), config.clone()))
        .collect();
    let drain = |relay: Relay| {
        let db = &db;
        let users = &users;
        async move {
            for _ in 0..2000 {
                relay.pass().await.expect("relay pass");
                let pending: i64 = db
                    .query_one(
                        "SELECT count(*) FROM outbox WHERE partition_key = ANY($1) AND sent_at IS NULL",
                        &[users],
                    )
                    .await
                    .expect("pending")
                    .get(0);
                if pending == 0 {
                    return;
                }
            }
            panic!("the relays did not drain the outbox");
        }
    };
    futures::future::join_all(relays.iter().map(|(r, _)| drain(r.clone()))).await;
    let counts: Vec<i64> = relays
        .iter()
        .map(|(_, m)| m.published.get() as i64)
        .collect();
    eprintln!("published by relay A, B: {counts:?} (task-api's own relay took the rest)");

    let wanted: HashSet<String> = users.iter().cloned().collect();
    let records = read_topic(
        &stack,
        "task-updates",
        &wanted,
        RELAY_USERS * EVENTS as usize,
    )
    .await;
    let offsets = per_user(&records, &wanted, "user", "offset");
    let expected: Vec<i64> = (1..=EVENTS).collect();
    assert_eq!(
        offsets.keys().cloned().collect::<BTreeSet<_>>(),
        wanted.iter().cloned().collect()
    );
    for (user, seen) in &offsets {
        assert_eq!(seen, &expected, "{user}'s events in Kafka");
    }
}
