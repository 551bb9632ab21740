//! The outbox relay against the real PostgreSQL, daprd and Kafka, driven
//! directly: fairness with thousands of waiting keys, the 4xx backoff that
//! holds a key, marking each call as it is answered, and one key's burst.
//!
//! Each test works in a schema of its own (task-domain's real migrations
//! applied there), so task-api's own relay never sees these rows and the
//! relay under test is the only publisher. The events are valid
//! `task-updates` events of made-up users; the rows daprd must refuse have
//! an empty topic: no publish route matches `/publish/bulk/pubsub/`, and
//! daprd 1.18.2 answers 404 (tried: `ERR_DIRECT_INVOKE`), a client error
//! like a topic its scopes forbid (403).

use std::time::{Duration, Instant};

use contracts::{EventKind, OutgoingEvent};
use e2e_tests::{PrivateSchema, Stack};
use task_domain::Relay;
use task_domain::relay::{Backoff, RelayMetrics};
use uuid::Uuid;

/// The test's private schema ([`PrivateSchema`]) and its rows.
struct Scratch(PrivateSchema);

impl std::ops::Deref for Scratch {
    type Target = PrivateSchema;

    fn deref(&self) -> &PrivateSchema {
        &self.0
    }
}

impl Scratch {
    async fn new(stack: &Stack) -> Scratch {
        Scratch(PrivateSchema::create(stack, "relay_test", 12).await)
    }

    async fn drop_schema(self) {
        self.0.drop_schema().await;
    }

    /// Enqueues one `task-updates` event per `(user, offset)`, in order, in
    /// one transaction; `topic` overrides the stored topic (`""` for a row
    /// daprd refuses). Returns the outbox ids.
    async fn enqueue(&self, rows: &[(String, i64, Option<&str>)]) -> Vec<i64> {
        let mut client = self.pool.get().await.expect("connection");
        let tx = client.transaction().await.expect("transaction");
        let mut ids = Vec::with_capacity(rows.len());
        for (user, offset, topic) in rows {
            let event = e2e_tests::sync_event(user, *offset, "relay-test");
            task_domain::outbox::enqueue(&tx, &event, user, Some(*offset), None)
                .await
                .expect("enqueue");
            let id: i64 = tx
                .query_one(
                    "UPDATE outbox SET topic = coalesce($2, topic) WHERE event_id = $1 RETURNING id",
                    &[&event.id, topic],
                )
                .await
                .expect("row")
                .get(0);
            ids.push(id);
        }
        tx.commit().await.expect("commit");
        ids
    }

    async fn unsent(&self, ids: &[i64]) -> i64 {
        self.db
            .query_one(
                "SELECT count(*) FROM outbox WHERE id = ANY($1) AND sent_at IS NULL",
                &[&ids],
            )
            .await
            .expect("count")
            .get(0)
    }
}

fn relay(
    stack: &Stack,
    scratch: &Scratch,
    batch_size: i64,
    backoff: Backoff,
) -> (Relay, RelayMetrics) {
    let dapr = stack.task_api_daprd(Duration::from_secs(10));
    let config = e2e_tests::relay_config(batch_size, 8, Duration::from_secs(1));
    let (relay, metrics) = e2e_tests::outbox_relay(&scratch.pool, dapr, config);
    (relay.with_backoff(backoff), metrics)
}

const HOLD: Backoff = Backoff {
    base: Duration::from_secs(600),
    max: Duration::from_secs(600),
};

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn three_thousand_waiting_users_are_all_published_behind_refused_keys() {
    const REFUSED: usize = 1_100;
    const USERS: usize = 3_000;
    let stack = Stack::from_env();
    let scratch = Scratch::new(&stack).await;
    // The oldest rows: 1,100 keys (more than a pass takes) whose first
    // event daprd refuses, each with a valid event queued behind it.
    let refused: Vec<(String, i64, Option<&str>)> = (0..REFUSED)
        .flat_map(|i| {
            [
                (format!("refused-{i}"), 1, Some("")),
                (format!("refused-{i}"), 2, None),
            ]
        })
        .collect();
    let refused_ids = scratch.enqueue(&refused).await;
    let users: Vec<(String, i64, Option<&str>)> = (0..USERS)
        .map(|i| (format!("waiting-{i}"), 1, None))
        .collect();
    let user_ids = scratch.enqueue(&users).await;

    let (relay, metrics) = relay(&stack, &scratch, 100, HOLD);
    let started = Instant::now();
    let mut passes = 0;
    while scratch.unsent(&user_ids).await > 0 && passes < 12 {
        relay.pass().await.expect("pass");
        passes += 1;
    }
    eprintln!(
        "{USERS} users published in {passes} passes, {:?}",
        started.elapsed()
    );
    assert_eq!(
        scratch.unsent(&user_ids).await,
        0,
        "every waiting user's event is published"
    );
    assert_eq!(metrics.published.get(), USERS as u64);

    // Each refused key was tried once (backing off, not retried on every
    // pass) and still holds its later event back.
    let refused_heads: Vec<i64> = refused_ids.iter().step_by(2).copied().collect();
    let held: Vec<i64> = refused_ids.iter().skip(1).step_by(2).copied().collect();
    let row = scratch
        .db
        .query_one(
            "SELECT count(*), min(attempts), max(attempts), bool_and(next_attempt_at > now() + interval '5 minutes'),
                    bool_and(last_error LIKE '%404%')
             FROM outbox WHERE id = ANY($1) AND sent_at IS NULL",
            &[&refused_heads],
        )
        .await
        .expect("refused rows");
    assert_eq!(row.get::<_, i64>(0), REFUSED as i64);
    assert_eq!(
        (row.get::<_, i32>(1), row.get::<_, i32>(2)),
        (1, 1),
        "one attempt each"
    );
    assert!(row.get::<_, bool>(3), "each waits for its backoff");
    assert!(row.get::<_, bool>(4), "the refusal is recorded");
    assert_eq!(metrics.refused.get(), REFUSED as u64);
    assert_eq!(
        scratch.unsent(&held).await,
        REFUSED as i64,
        "nothing overtakes a refused event"
    );
    scratch.drop_schema().await;
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn a_refused_event_backs_off_doubling_and_holds_only_its_key() {
    let stack = Stack::from_env();
    let scratch = Scratch::new(&stack).await;
    let run = Uuid::new_v4().simple().to_string();
    let (held, free) = (format!("held-{run}"), format!("free-{run}"));
    let ids = scratch
        .enqueue(&[
            (held.clone(), 1, None),
            (held.clone(), 2, Some("")),
            (held.clone(), 3, None),
            (free.clone(), 1, None),
            (free.clone(), 2, None),
        ])
        .await;
    let backoff = Backoff {
        base: Duration::from_millis(800),
        max: Duration::from_secs(60),
    };
    let (relay, metrics) = relay(&stack, &scratch, 100, backoff);
    let state = |id: i64| {
        let db = &scratch.db;
        async move {
            let row = db
                .query_one(
                    "SELECT sent_at IS NOT NULL, attempts,
                            extract(epoch FROM next_attempt_at - clock_timestamp())::float8
                     FROM outbox WHERE id = $1",
                    &[&id],
                )
                .await
                .expect("row");
            (
                row.get::<_, bool>(0),
                row.get::<_, i32>(1),
                row.get::<_, Option<f64>>(2),
            )
        }
    };

    // The first call carries the key's task-updates events (1 and 3: order
    // is per key and topic, as Kafka keeps it), the second the refused one.
    relay.pass().await.expect("pass");
    assert!(state(ids[0]).await.0 && state(ids[2]).await.0);
    let (sent, attempts, wait) = state(ids[1]).await;
    assert!(!sent);
    assert_eq!(attempts, 1);
    assert!(
        wait.is_some_and(|w| w > 0.3 && w <= 0.8),
        "first backoff ~0.8 s: {wait:?}"
    );
    assert!(
        state(ids[3]).await.0 && state(ids[4]).await.0,
        "another key is not held"
    );
    assert_eq!(metrics.refused.get(), 1);

    // While it backs off, the key's later events wait, on every topic.
    let later = scratch
        .enqueue(&[(held.clone(), 4, None), (free.clone(), 3, None)])
        .await;
    relay.pass().await.expect("pass");
    assert!(!state(later[0]).await.0, "nothing of the key overtakes it");
    assert!(state(later[1]).await.0, "another key goes on");

    // Wake-ups during the backoff do not retry it.
    for _ in 0..2 {
        relay.pass().await.expect("pass");
    }
    assert_eq!(state(ids[1]).await.1, 1, "not retried before its time");
    assert_eq!(metrics.refused.get(), 1);

    // After it: one more attempt, refused again, and the wait doubles.
    tokio::time::sleep(Duration::from_millis(900)).await;
    relay.pass().await.expect("pass");
    let (sent, attempts, wait) = state(ids[1]).await;
    assert!(!sent);
    assert_eq!(attempts, 2);
    assert!(
        wait.is_some_and(|w| w > 1.1 && w <= 1.6),
        "second backoff ~1.6 s: {wait:?}"
    );
    assert_eq!(metrics.refused.get(), 2);

    // Fixed (say, the topic was created or allowed), it goes out at its next
    // attempt, and the held event follows it.
    scratch
        .db
        .execute(
            "UPDATE outbox SET topic = 'task-updates' WHERE id = $1",
            &[&ids[1]],
        )
        .await
        .expect("fix");
    tokio::time::sleep(Duration::from_millis(1_700)).await;
    relay.pass().await.expect("pass");
    assert_eq!(scratch.unsent(&ids).await, 0);
    assert_eq!(scratch.unsent(&later).await, 0);
    let order: Vec<i64> = scratch
        .db
        .query(
            "SELECT id FROM outbox WHERE partition_key = $1 ORDER BY sent_at, id",
            &[&held],
        )
        .await
        .expect("order")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(order, [ids[0], ids[2], ids[1], later[0]]);
    scratch.drop_schema().await;
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn each_call_is_marked_sent_as_soon_as_daprd_answers() {
    let stack = Stack::from_env();
    let scratch = Scratch::new(&stack).await;
    let user = format!("marks-{}", Uuid::new_v4().simple());
    // Three calls' worth for one key (batch 50), then a topic Kafka does not
    // have: daprd tries it until the broker's metadata gives up (seconds),
    // long after the first calls were answered.
    let mut rows: Vec<(String, i64, Option<&str>)> =
        (1..=150).map(|o| (user.clone(), o, None)).collect();
    rows.push((user.clone(), 151, Some("relay-test-no-such-topic")));
    let ids = scratch.enqueue(&rows).await;
    let (relay, metrics) = relay(&stack, &scratch, 50, HOLD);

    let pass = tokio::spawn({
        let relay = relay.clone();
        async move { relay.pass().await }
    });
    // While the pass is still waiting on the last call, the first 150 are
    // already marked, each call with its own time.
    let marked = e2e_tests::eventually(Duration::from_secs(20), || async {
        (scratch.unsent(&ids[..150]).await == 0).then_some(())
    })
    .await;
    assert!(marked.is_some(), "the answered calls were not marked");
    assert!(
        !pass.is_finished(),
        "the pass should still wait on the missing topic"
    );
    let sent = pass.await.expect("join").expect("pass");
    assert_eq!(sent, 150);
    assert_eq!(scratch.unsent(&ids[150..]).await, 1);
    assert_eq!(metrics.calls.get(), 4);
    let times: i64 = scratch
        .db
        .query_one(
            "SELECT count(DISTINCT sent_at) FROM outbox WHERE id = ANY($1)",
            &[&&ids[..150]],
        )
        .await
        .expect("times")
        .get(0);
    assert_eq!(times, 3, "one sent_at per call, taken when daprd answered");
    let (attempts, error): (i32, Option<String>) = {
        let row = scratch
            .db
            .query_one(
                "SELECT attempts, last_error FROM outbox WHERE id = $1",
                &[&ids[150]],
            )
            .await
            .expect("failed row");
        (row.get(0), row.get(1))
    };
    assert_eq!(attempts, 1);
    assert!(error.is_some());
    scratch.drop_schema().await;
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn one_users_burst_goes_out_in_few_calls() {
    const BURST: i64 = 3_000;
    let stack = Stack::from_env();
    let scratch = Scratch::new(&stack).await;
    let user = format!("burst-{}", Uuid::new_v4().simple());
    let rows: Vec<(String, i64, Option<&str>)> =
        (1..=BURST).map(|o| (user.clone(), o, None)).collect();
    let ids = scratch.enqueue(&rows).await;
    let (relay, metrics) = relay(&stack, &scratch, 100, HOLD);
    let started = Instant::now();
    let published = relay.drain(Duration::from_secs(120)).await.expect("drain");
    let took = started.elapsed();
    assert_eq!(published, BURST as u64);
    assert_eq!(scratch.unsent(&ids).await, 0);
    // One call per 100 events, not one per event.
    assert_eq!(metrics.calls.get(), (BURST / 100) as u64);
    eprintln!(
        "one key, {BURST} events: drained in {:.2} s ({:.0} events/s, {} daprd calls)",
        took.as_secs_f64(),
        BURST as f64 / took.as_secs_f64(),
        metrics.calls.get()
    );

    // For comparison (docs/benchmarks.md), the path the relay took before:
    // one single publish per event, each waiting for daprd's 204.
    const SINGLE: i64 = 300;
    let dapr = stack.task_api_daprd(Duration::from_secs(10));
    let started = Instant::now();
    for offset in 1..=SINGLE {
        let event = e2e_tests::sync_event(&user, BURST + offset, "relay-test")
            .to_json()
            .to_string();
        dapr.publish_cloud_event("pubsub", "task-updates", &user, event.as_bytes(), None)
            .await
            .expect("single publish");
    }
    let single = started.elapsed();
    eprintln!(
        "one key, {SINGLE} events one publish at a time: {:.2} s ({:.0} events/s)",
        single.as_secs_f64(),
        SINGLE as f64 / single.as_secs_f64()
    );
    scratch.drop_schema().await;
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn a_trigger_alone_publishes_what_was_left_unsent() {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    const PUSH_TOKEN: &str = "relay-test-push-token";
    let stack = Stack::from_env();
    let scratch = Scratch::new(&stack).await;
    // Rows a relay never got to (task-api went to zero with daprd down): no
    // relay loop runs here, and no API request comes.
    let run = Uuid::new_v4().simple().to_string();
    let rows: Vec<(String, i64, Option<&str>)> = (0..5)
        .flat_map(|u| (1..=4).map(move |o| (format!("left-{u}"), o, None)))
        .map(|(user, o, topic)| (format!("{user}-{run}"), o, topic))
        .collect();
    let ids = scratch.enqueue(&rows).await;
    let (relay, metrics) = relay(&stack, &scratch, 100, HOLD);
    let token = dapr_http::AppToken::new(Some("relay-test-app-token"), Some(PUSH_TOKEN));
    let routes = task_api::callbacks::router(relay, token, Duration::from_secs(8));
    let trigger = |push: &str| {
        Request::post(task_api::callbacks::RELAY_ROUTE)
            .header("ce-pushtoken", push)
            .header("ce-type", "dev.knative.sources.ping")
            .header("content-type", "application/json")
            .body(Body::from(r#"{"purpose":"outbox relay"}"#))
            .expect("request")
    };

    let refused = routes
        .clone()
        .oneshot(trigger("wrong"))
        .await
        .expect("call");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        scratch.unsent(&ids).await,
        20,
        "a refused trigger publishes nothing"
    );

    let answered = routes.oneshot(trigger(PUSH_TOKEN)).await.expect("call");
    assert_eq!(answered.status(), StatusCode::OK);
    let body = axum::body::to_bytes(answered.into_body(), 1 << 16)
        .await
        .expect("body");
    let report: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(report, serde_json::json!({"published": 20, "pending": 0}));
    assert_eq!(scratch.unsent(&ids).await, 0);
    assert_eq!(metrics.published.get(), 20);
    scratch.drop_schema().await;
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn each_event_of_a_bulk_call_keeps_its_own_trace() {
    use contracts::testing::task_event;

    let stack = Stack::from_env();
    let scratch = Scratch::new(&stack).await;
    let user = format!("traces-{}", Uuid::new_v4().simple());
    // Three changes of one user, each from its own API request (trace).
    let traced: Vec<(OutgoingEvent, String)> = (0..3)
        .map(|_| {
            let trace = Uuid::new_v4().simple().to_string();
            (task_event(EventKind::TaskCreated, &user), trace)
        })
        .collect();
    {
        let mut client = scratch.pool.get().await.expect("connection");
        let tx = client.transaction().await.expect("transaction");
        for (event, trace) in &traced {
            let traceparent = format!("00-{trace}-00f067aa0ba902b7-01");
            task_domain::outbox::enqueue(&tx, event, &user, None, Some(&traceparent))
                .await
                .expect("enqueue");
        }
        tx.commit().await.expect("commit");
    }
    let (relay, metrics) = relay(&stack, &scratch, 100, HOLD);
    assert_eq!(relay.pass().await.expect("pass"), 3);
    assert_eq!(metrics.calls.get(), 1, "one bulk call carried all three");

    // audit received each with the trace of the change that caused it.
    for (event, trace) in &traced {
        let task_id = event.subject.clone();
        let line = e2e_tests::audit_stored_line(&task_id, Duration::from_secs(60))
            .await
            .unwrap_or_else(|| panic!("audit did not store task {task_id}'s event"));
        assert_eq!(line["span"]["trace_id"], trace.as_str(), "{line}");
    }
    scratch.drop_schema().await;
}
