//! Nothing is lost between the database and the broker: with the daprd of
//! every function that runs the outbox relay stopped (task-api's, and
//! recurring's, whose relay publishes any user's pending rows too), writes
//! still succeed and their events wait in the outbox; when daprd is back,
//! the relay publishes them and audit stores them.
//!
//! This disrupts the shared stack, so it lives in its own test binary
//! (cargo runs test binaries one after another).

use std::time::Duration;

use e2e_tests::{Stack, audit_rows_for_task, eventually, unsent_outbox_rows};
use futures::FutureExt;
use serde_json::json;
use uuid::Uuid;

/// The functions that run an outbox relay over the task tables.
const RELAYING_APPS: [&str; 2] = ["task-api", "recurring"];

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn events_written_while_daprd_is_down_arrive_after_it_returns() {
    let stack = Stack::from_env();
    let user = format!("outage-{}", Uuid::new_v4().simple());

    for app in RELAYING_APPS {
        stack.dev(&["sidecar", "stop", app]).await;
    }
    let created = std::panic::AssertUnwindSafe(async {
        let task = stack
            .create_task(&user, &json!({"title": "Written during an outage"}))
            .await;
        let task_id: Uuid = task["id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("task id");
        // The relay cannot publish: the event waits, unsent, in the outbox.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let db = stack.db().await;
        let pending: i64 = unsent_outbox_rows(&db, &user).await;
        (task_id, pending)
    });
    let outcome = created.catch_unwind().await;
    // Whatever happened, bring the sidecar back for the tests after us.
    for app in RELAYING_APPS {
        stack.dev(&["sidecar", "start", app]).await;
    }
    let (task_id, pending) = outcome.unwrap_or_else(|p| std::panic::resume_unwind(p));
    assert_eq!(
        pending, 2,
        "task.created and its sync event wait in the outbox"
    );

    let db = stack.db().await;
    let arrived = eventually(Duration::from_secs(60), || async {
        (audit_rows_for_task(&db, task_id).await == 1).then_some(())
    })
    .await;
    assert!(
        arrived.is_some(),
        "the event is published once daprd is back"
    );
    let unsent: i64 = unsent_outbox_rows(&db, &user).await;
    assert_eq!(unsent, 0);
}
