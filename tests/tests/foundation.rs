//! The first event's whole trip, against the real stack: task-api writes a
//! task and its event in one transaction, the relay publishes it through
//! daprd to Kafka, and daprd pushes it to audit, which stores it once.

use std::time::Duration;

use contracts::testing::{dapr_push_body, task_event};
use contracts::{EventKind, OutgoingEvent};
use e2e_tests::{Stack, audit_rows_for_event, audit_rows_for_task, eventually, unsent_outbox_rows};
use serde_json::{Value, json};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(30);

fn unique_user(prefix: &str) -> String {
    format!("{prefix}-{}", Uuid::new_v4().simple())
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn created_task_reaches_audit_exactly_once() {
    let stack = Stack::from_env();
    let user = unique_user("found");
    let task = stack
        .create_task(&user, &json!({"title": "First event"}))
        .await;
    let task_id: Uuid = task["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("task id");
    assert_eq!(task["sequence"], 1);

    let db = stack.db().await;
    let stored = eventually(WAIT, || async {
        let n = audit_rows_for_task(&db, task_id).await;
        (n > 0).then_some(n)
    })
    .await;
    assert_eq!(stored, Some(1), "the created event must reach audit once");

    let row = db
        .query_one(
            "SELECT event_type, user_id, sequence, payload FROM audit_logs WHERE task_id = $1",
            &[&task_id],
        )
        .await
        .expect("audit row");
    assert_eq!(row.get::<_, String>(0), "com.todo.task.created");
    assert_eq!(row.get::<_, String>(1), user);
    assert_eq!(row.get::<_, i64>(2), 1);
    assert_eq!(row.get::<_, Value>(3)["task"]["title"], "First event");

    // The outbox row that carried it is marked sent, and nothing else
    // arrives for it later.
    // (The relay commits `sent_at` after daprd's 204, so it may trail
    // the audit row by a moment.)
    let all_sent = eventually(WAIT, || async {
        (unsent_outbox_rows(&db, &user).await == 0).then_some(())
    })
    .await;
    assert!(all_sent.is_some(), "the relay marks published rows sent");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(audit_rows_for_task(&db, task_id).await, 1);
}

/// A marker event published after `event` on the same partition key: once
/// the marker is stored, everything before it was handled too (per-key order).
async fn publish_then_wait_for_marker(stack: &Stack, user: &str, events: &[&OutgoingEvent]) {
    let marker = task_event(EventKind::TaskUpdated, user);
    for event in events.iter().copied().chain(std::iter::once(&marker)) {
        let status = stack.publish("task-events", user, &event.to_json()).await;
        assert_eq!(status, 204, "daprd accepts the publish");
    }
    let db = stack.db().await;
    let marker_id = marker.id.to_string();
    let seen = eventually(WAIT, || async {
        let n: i64 = audit_rows_for_event(&db, &marker_id).await;
        (n == 1).then_some(())
    })
    .await;
    assert!(seen.is_some(), "the marker event reached audit");
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn the_same_event_delivered_twice_is_stored_once() {
    let stack = Stack::from_env();
    let user = unique_user("dup");
    let event = task_event(EventKind::TaskCreated, &user);
    publish_then_wait_for_marker(&stack, &user, &[&event, &event]).await;

    // And a third time, straight from "daprd" (a direct push with the app
    // token), as a redelivery after a lost acknowledgement would be.
    let response = push_to_audit(
        &stack,
        &dapr_push_body(&event),
        stack.app_api_token.as_deref(),
    )
    .await;
    assert_eq!(response, (200, json!({"status": "SUCCESS"})));

    let db = stack.db().await;
    let n: i64 = audit_rows_for_event(&db, &event.id.to_string()).await;
    assert_eq!(n, 1, "one audit row per event id");
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn a_poison_event_is_dropped_to_the_dead_letter_topic() {
    let stack = Stack::from_env();
    let user = unique_user("poison");
    // A known type whose data does not match its schema.
    let poison_id = Uuid::now_v7().to_string();
    let poison = json!({
        "specversion": "1.0", "id": poison_id, "source": "/todo-events/e2e",
        "type": "com.todo.task.created", "datacontenttype": "application/json",
        "data": {"not": "a task event"}
    });
    assert_eq!(stack.publish("task-events", &user, &poison).await, 204);
    // A type nobody handles goes the same way: the reply is spelled for
    // daprd (its token says who delivered), so daprd dead-letters it rather
    // than retrying it ahead of the marker.
    let unknown_id = Uuid::now_v7().to_string();
    let unknown = json!({
        "specversion": "1.0", "id": unknown_id, "source": "/todo-events/e2e",
        "type": "com.example.unknown", "datacontenttype": "application/json",
        "data": {"a": 1}
    });
    assert_eq!(stack.publish("task-events", &user, &unknown).await, 204);
    let marker = task_event(EventKind::TaskUpdated, &user);
    publish_then_wait_for_marker(&stack, &user, &[&marker]).await;

    let db = stack.db().await;
    let n: i64 = audit_rows_for_event(&db, &poison_id).await;
    assert_eq!(n, 0, "poison is not stored");

    // daprd forwarded the DROPped events to the dead-letter topic in Kafka.
    let found = eventually(WAIT, || async {
        let records = stack.script("dlq", &["list", "task-events", "50"]).await;
        (records.contains(&poison_id) && records.contains(&unknown_id)).then_some(())
    })
    .await;
    assert!(
        found.is_some(),
        "events {poison_id} and {unknown_id} are on task-events-dlq"
    );

    // A body that is not even a CloudEvent gets DROP too, never a panic.
    let (status, body) =
        push_raw_to_audit(&stack, b"{not json", stack.app_api_token.as_deref()).await;
    assert_eq!((status, body), (200, json!({"status": "DROP"})));
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn pushes_without_the_app_token_are_refused() {
    let stack = Stack::from_env();
    let Some(token) = stack.app_api_token.clone() else {
        panic!("the local stack runs with APP_API_TOKEN set; it is not");
    };
    let event = task_event(EventKind::TaskCreated, &unique_user("intruder"));
    let body = dapr_push_body(&event);
    assert_eq!(push_to_audit(&stack, &body, None).await.0, 401);
    assert_eq!(
        push_to_audit(&stack, &body, Some("wrong-token")).await.0,
        401
    );
    let subscribe = stack
        .http
        .get(format!("{}/dapr/subscribe", stack.audit))
        .send()
        .await
        .expect("audit reachable");
    assert_eq!(subscribe.status(), 401);

    let db = stack.db().await;
    let n: i64 = audit_rows_for_event(&db, &event.id.to_string()).await;
    assert_eq!(n, 0, "a refused push stores nothing");
    // With the token the same push is accepted: daprd reads the body's
    // status (any 200 would do for the HTTP status), and the row is there.
    assert_eq!(
        push_to_audit(&stack, &body, Some(&token)).await,
        (200, json!({"status": "SUCCESS"}))
    );
    assert_eq!(audit_rows_for_event(&db, &event.id.to_string()).await, 1);
}

async fn push_to_audit(stack: &Stack, body: &Value, token: Option<&str>) -> (u16, Value) {
    push_raw_to_audit(stack, body.to_string().as_bytes(), token).await
}

async fn push_raw_to_audit(stack: &Stack, body: &[u8], token: Option<&str>) -> (u16, Value) {
    let mut request = stack
        .http
        .post(format!("{}/events/task-events", stack.audit))
        .header("content-type", "application/cloudevents+json")
        .body(body.to_vec());
    if let Some(token) = token {
        request = request.header("dapr-api-token", token);
    }
    let response = request.send().await.expect("audit reachable");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn the_api_requests_trace_reaches_the_audit_handler() {
    let stack = Stack::from_env();
    let trace_id = Uuid::new_v4().simple().to_string();
    let user = unique_user("trace");
    let response = stack
        .http
        .post(format!("{}/api/tasks", stack.task_api))
        .bearer_auth(stack.token(&user, false))
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .json(&json!({"title": "Traced"}))
        .send()
        .await
        .expect("task-api reachable");
    assert_eq!(response.status(), 201);
    let task: Value = response.json().await.expect("task json");
    let task_id = task["id"].as_str().expect("task id").to_owned();

    // audit's JSON log: the line that stored this task's event carries the
    // API request's trace id, relayed by the outbox and daprd through Kafka.
    let run_dir =
        std::env::var("TODO_EVENTS_RUN").unwrap_or_else(|_| "/var/tmp/todo-events".into());
    let log = std::path::Path::new(&run_dir).join("logs/app-audit.log");
    let found = eventually(WAIT, || async {
        let text = std::fs::read_to_string(&log).ok()?;
        text.lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|entry| {
                entry["task_id"] == task_id.as_str() && entry["message"] == "audit entry stored"
            })
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "no 'audit entry stored' line for task {task_id} in {}",
            log.display()
        )
    });
    assert_eq!(found["span"]["trace_id"], trace_id.as_str(), "{found}");
}
