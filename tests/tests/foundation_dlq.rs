//! Dead-lettered events can be listed and replayed with a project command
//! (`scripts/dlq`), through the real broker and daprd.

use std::time::Duration;

use contracts::EventKind;
use contracts::testing::task_event;
use e2e_tests::{Stack, audit_rows_for_event, eventually};
use uuid::Uuid;

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn a_dead_lettered_event_is_listed_and_replayed_once() {
    let stack = Stack::from_env();
    let user = format!("dlq-{}", Uuid::new_v4().simple());
    // As if retries had run out while audit's database was down: a valid
    // event sits on the dead-letter topic.
    let event = task_event(EventKind::TaskCreated, &user);
    let id = event.id.to_string();
    assert_eq!(
        stack
            .publish("task-events-dlq", &user, &event.to_json())
            .await,
        204
    );

    let listed = eventually(Duration::from_secs(30), || async {
        // The newest records only: the topic keeps every earlier run's
        // poison, and this event was just published.
        let out = stack.script("dlq", &["list", "task-events", "200"]).await;
        out.lines()
            .find(|line| line.starts_with(&id))
            .map(str::to_owned)
    })
    .await
    .expect("the event is listed");
    assert!(listed.contains("com.todo.task.created"), "{listed}");
    assert!(
        listed.contains(&format!("key={user}")),
        "the partition key is kept: {listed}"
    );

    let replayed = stack.script("dlq", &["replay", "task-events"]).await;
    assert!(replayed.contains(&format!("replayed {id}")), "{replayed}");

    let db = stack.db().await;
    let stored = eventually(Duration::from_secs(30), || async {
        let n: i64 = audit_rows_for_event(&db, &id).await;
        (n == 1).then_some(())
    })
    .await;
    assert!(stored.is_some(), "the replayed event reached audit");

    // The consumer group remembers the position: a second replay does not
    // send it again.
    let again = stack.script("dlq", &["replay", "task-events"]).await;
    assert!(!again.contains(&id), "replayed twice: {again}");
}
