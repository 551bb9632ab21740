//! A consumer outage does not dead-letter healthy events
//! (dapr/components/resiliency.yaml): while audit cannot write for 60 s,
//! daprd keeps retrying the partition in order instead of sending its events
//! to `task-events-dlq`, and once audit can write again every event is
//! audited once, in the user's order.
//!
//! The outage: the test holds `LOCK TABLE audit_logs IN SHARE MODE` in an
//! open transaction for 60 s. SHARE conflicts with the ROW EXCLUSIVE lock an
//! INSERT takes, so audit's insert waits until its pool's `statement_timeout`
//! (5 s) cancels it with SQLSTATE 57014; audit classifies that as transient
//! (functions/audit/src/store.rs: only classes 22/23 and 54000 are refused)
//! and answers `{"status":"RETRY"}`, which daprd retries. Reads still work
//! (SELECT's ACCESS SHARE does not conflict with SHARE), so the test can see
//! that nothing was stored during the outage. Renaming the table would also
//! fail the inserts, but would break every concurrent reader of the table as
//! well; stopping PostgreSQL would break every function.
//!
//! This stalls every audit write on the shared stack for 60 s: other tests
//! that wait for audit rows meanwhile see them up to ~75 s late. Only the one
//! table is locked, for the 60 s the issue asks for, and the whole test
//! takes about 90 s. It lives in its own test binary (cargo runs test
//! binaries one after another) and only looks at its own user's events.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use e2e_tests::{Stack, eventually};
use futures::FutureExt;
use serde_json::json;
use uuid::Uuid;

/// How long audit cannot write.
const OUTAGE: Duration = Duration::from_secs(60);
/// One task every this often while the outage lasts.
const CREATE_EVERY: Duration = Duration::from_secs(4);
/// From the end of the outage until every event must be audited: daprd
/// retries every 2 s (dapr/components/resiliency.yaml), and an attempt
/// waiting on the lock succeeds as soon as it is released.
const RECOVERY: Duration = Duration::from_secs(45);

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn a_sixty_second_audit_outage_dead_letters_nothing_and_keeps_order() {
    let stack = Stack::from_env();
    let user = format!("consumer-outage-{}", Uuid::new_v4().simple());

    let locker = stack.db().await;
    lock_audit_writes(&locker).await;
    let started = Instant::now();
    let during = std::panic::AssertUnwindSafe(create_during_outage(&stack, &user, started))
        .catch_unwind()
        .await;
    // Release the table whatever happened, so the stack recovers for the
    // tests after this one (a dropped connection would also end it).
    let released = locker.batch_execute("ROLLBACK").await;
    let (tasks, stored_during) = during.unwrap_or_else(|p| std::panic::resume_unwind(p));
    released.expect("the lock is released");
    assert_eq!(
        stored_during, 0,
        "the outage was real: audit stored nothing of {user} while the table was locked"
    );

    let db = stack.db().await;
    let expected = published_task_events(&db, &user).await;
    assert_eq!(
        expected.len(),
        tasks,
        "one task.created per task in the outbox"
    );

    let audited = eventually(RECOVERY, || async {
        let rows = audited_in_ingest_order(&db, &user).await;
        (rows.len() >= expected.len()).then_some(rows)
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "{} event(s) of {user} were not audited within {RECOVERY:?} after the outage",
            expected.len()
        )
    });
    assert_eq!(
        audited, expected,
        "every event audited exactly once, in the user's (outbox) order"
    );

    let listed = stack.script("dlq", &["list", "task-events"]).await;
    let ids: HashSet<&str> = expected.iter().map(String::as_str).collect();
    let dead: Vec<&str> = listed
        .lines()
        .filter(|line| {
            line.contains(&format!("key={user}"))
                || line.split('\t').next().is_some_and(|id| ids.contains(id))
        })
        .collect();
    assert!(
        dead.is_empty(),
        "healthy events of {user} reached task-events-dlq: {dead:?}"
    );
}

/// Opens a transaction on `locker` holding SHARE on audit_logs: inserts
/// block, reads do not.
async fn lock_audit_writes(locker: &tokio_postgres::Client) {
    locker
        .batch_execute(
            "BEGIN;
             SET LOCAL lock_timeout = '10s';
             SET LOCAL idle_in_transaction_session_timeout = '120s';
             LOCK TABLE audit_logs IN SHARE MODE;",
        )
        .await
        .expect("the test can lock audit_logs against writes");
}

/// Creates one task every [`CREATE_EVERY`] until [`OUTAGE`] has passed since
/// `started`; returns how many were created and how many audit rows of
/// `user` exist at the end of the outage (with the lock still held).
async fn create_during_outage(stack: &Stack, user: &str, started: Instant) -> (usize, i64) {
    let mut tasks = 0;
    while started.elapsed() + CREATE_EVERY < OUTAGE {
        stack
            .create_task(
                user,
                &json!({"title": format!("during the outage {tasks}")}),
            )
            .await;
        tasks += 1;
        tokio::time::sleep(CREATE_EVERY).await;
    }
    tokio::time::sleep(OUTAGE.saturating_sub(started.elapsed())).await;
    let db = stack.db().await;
    let stored: i64 = db
        .query_one(
            "SELECT count(*) FROM audit_logs WHERE user_id = $1",
            &[&user],
        )
        .await
        .map(|row| row.get(0))
        .unwrap_or(-1);
    (tasks, stored)
}

/// The user's task-events in the outbox, in the order the relay publishes
/// them (id order per partition key).
async fn published_task_events(db: &tokio_postgres::Client, user: &str) -> Vec<String> {
    db.query(
        "SELECT event_id::text FROM outbox
          WHERE partition_key = $1 AND topic = 'task-events' ORDER BY id",
        &[&user],
    )
    .await
    .expect("outbox readable")
    .iter()
    .map(|row| row.get(0))
    .collect()
}

/// The user's audit rows in the order audit stored them: `ingest_seq` is
/// drawn by each INSERT (functions/audit/migrations/V3), and daprd hands
/// audit one event of a partition at a time, so one user's rows are numbered
/// in delivery order.
async fn audited_in_ingest_order(db: &tokio_postgres::Client, user: &str) -> Vec<String> {
    db.query(
        "SELECT event_id FROM audit_logs WHERE user_id = $1 ORDER BY ingest_seq",
        &[&user],
    )
    .await
    .expect("audit_logs readable")
    .iter()
    .map(|row| row.get(0))
    .collect()
}
