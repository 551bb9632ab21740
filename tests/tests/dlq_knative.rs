//! `scripts/dlq` handles what the `scale-to-zero` profile dead-letters: the
//! KafkaSource's envelope of type `dev.knative.kafka.event`, written by the
//! KafkaSink, whose data is the record daprd wrote (our event) and which
//! carries the source's push token. Listed and replayed, it is the original
//! event: its id, type and partition key, never the envelope or the token.
//!
//! The envelope is put on `task-events-dlq` byte for byte through daprd's
//! raw publish, with the attributes eventing-kafka-broker knative-v1.23.0
//! gives it (InvalidCloudEventInterceptor.java: id `partition:P/offset:O`,
//! the record key as `key` and `partitionkey`; RecordDispatcherImpl.java:
//! the `knativeerror*` extensions). The decoding rules themselves are unit
//! tested in scripts/lib/test_dlq.py.

use std::time::Duration;

use contracts::EventKind;
use contracts::testing::task_event;
use e2e_tests::{Stack, audit_rows_for_event, eventually};
use serde_json::{Value, json};
use uuid::Uuid;

const PUSH_TOKEN: &str = "push-token-that-must-not-leak";

/// The KafkaSource envelope around `event`, as its dead-letter sink writes it.
fn knative_envelope(event: &Value, user: &str) -> Value {
    json!({
        "specversion": "1.0",
        "id": "partition:0/offset:7",
        "source": "/apis/v1/namespaces/todo-audit/kafkasources/audit-task-events#task-events",
        "type": "dev.knative.kafka.event",
        "subject": "partition:0#7",
        "time": "2026-11-30T08:00:00Z",
        "key": user,
        "partitionkey": user,
        "pushtoken": PUSH_TOKEN,
        "knativeerrorcode": "503",
        "knativeerrordest": "http://audit.todo-audit.svc.cluster.local/events/task-events",
        "datacontenttype": "application/json",
        "data": event,
    })
}

/// Publishes `body` to `topic` exactly as given (daprd's rawPayload), keyed
/// by `key`; returns daprd's status.
async fn publish_raw(stack: &Stack, topic: &str, key: &str, body: &Value) -> u16 {
    let mut request = stack
        .http
        .post(format!(
            "{}/v1.0/publish/pubsub/{topic}",
            stack.task_api_dapr
        ))
        .query(&[
            ("metadata.rawPayload", "true"),
            ("metadata.partitionKey", key),
        ])
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(token) = &stack.dapr_api_token {
        request = request.header("dapr-api-token", token);
    }
    request
        .send()
        .await
        .unwrap_or_else(|e| panic!("daprd at {} is not reachable: {e}", stack.task_api_dapr))
        .status()
        .as_u16()
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn a_knative_dead_letter_is_listed_and_replayed_as_the_original_event() {
    let stack = Stack::from_env();
    let user = format!("dlq-knative-{}", Uuid::new_v4().simple());
    let event = task_event(EventKind::TaskCreated, &user);
    let id = event.id.to_string();
    let envelope = knative_envelope(&event.to_json(), &user);
    assert_eq!(
        publish_raw(&stack, "task-events-dlq", &user, &envelope).await,
        204
    );

    let listed = eventually(Duration::from_secs(30), || async {
        let out = stack.script("dlq", &["list", "task-events"]).await;
        out.lines()
            .find(|line| line.starts_with(&id))
            .map(str::to_owned)
    })
    .await
    .expect("the envelope is listed under the original event's id");
    assert!(listed.contains("com.todo.task.created"), "{listed}");
    assert!(listed.contains(&format!("key={user}")), "{listed}");
    assert!(!listed.contains(PUSH_TOKEN), "{listed}");

    // A concurrent test's replay may send it first; either way it reaches
    // audit once, under the original id (the envelope's would be
    // "partition:0/offset:7" and audit would drop its unknown type).
    let replayed = stack.script("dlq", &["replay", "task-events"]).await;
    assert!(!replayed.contains(PUSH_TOKEN), "{replayed}");
    let db = stack.db().await;
    let stored = eventually(Duration::from_secs(30), || async {
        (audit_rows_for_event(&db, &id).await == 1).then_some(())
    })
    .await;
    assert!(
        stored.is_some(),
        "the original event of the envelope reached audit"
    );
    let payload: Value = db
        .query_one("SELECT payload FROM audit_logs WHERE event_id = $1", &[&id])
        .await
        .expect("the audit row")
        .get(0);
    assert_eq!(payload["user_id"], json!(user), "{payload}");
}
