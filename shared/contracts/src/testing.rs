//! Builders for events and push requests, for tests of any crate
//! (enabled by the `test-util` feature).

use chrono::{TimeZone, Utc};
use http::{HeaderMap, HeaderValue};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::envelope::OutgoingEvent;
use crate::kinds::EventKind;
use crate::payload::{TaskEventData, TaskSnapshot};

/// A valid task snapshot for `user_id`.
pub fn task_snapshot(task_id: Uuid, user_id: &str, sequence: i64) -> TaskSnapshot {
    let at = Utc
        .with_ymd_and_hms(2026, 1, 2, 3, 4, 5)
        .single()
        .unwrap_or_default();
    TaskSnapshot {
        id: task_id,
        user_id: user_id.to_owned(),
        title: "Buy milk".to_owned(),
        description: String::new(),
        status: "pending".to_owned(),
        priority: "medium".to_owned(),
        tags: vec!["home".to_owned()],
        due_at: None,
        time_zone: "UTC".to_owned(),
        recurrence: None,
        series_id: None,
        occurrence: None,
        created_at: at,
        updated_at: at,
        completed_at: None,
        sequence,
    }
}

/// A `com.todo.task.*` event as task-api would emit it.
pub fn task_event(kind: EventKind, user_id: &str) -> OutgoingEvent {
    let task_id = Uuid::now_v7();
    let data = TaskEventData {
        task_id,
        user_id: user_id.to_owned(),
        sequence: 1,
        task: task_snapshot(task_id, user_id, 1),
        changed: vec!["title".to_owned()],
    };
    OutgoingEvent::new(kind, "task-api", task_id.to_string(), &data)
        .unwrap_or_else(|e| panic!("test event does not serialise: {e}"))
}

/// The body daprd pushes for `event`: our structured event plus the
/// attributes Dapr adds.
pub fn dapr_push_body(event: &OutgoingEvent) -> Value {
    let mut body = event.to_json();
    body["topic"] = json!(event.kind.topic().name());
    body["pubsubname"] = json!("pubsub");
    body["traceparent"] = json!("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    body["traceid"] = body["traceparent"].clone();
    body
}

/// Headers of a structured-mode push.
pub fn structured_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/cloudevents+json"),
    );
    headers
}

/// A Knative binary-mode push of `event`: attributes in `ce-*` headers.
pub fn knative_binary_push(event: &OutgoingEvent) -> (HeaderMap, Vec<u8>) {
    let json = event.to_json();
    let mut headers = HeaderMap::new();
    let mut put = |name: &'static str, value: &Value| {
        if let Some(v) = value.as_str().and_then(|s| HeaderValue::from_str(s).ok()) {
            headers.insert(name, v);
        }
    };
    put("ce-specversion", &json["specversion"]);
    put("ce-id", &json["id"]);
    put("ce-source", &json["source"]);
    put("ce-type", &json["type"]);
    put("ce-subject", &json["subject"]);
    put("ce-time", &json["time"]);
    put("ce-dataschema", &json["dataschema"]);
    put("content-type", &json["datacontenttype"]);
    (headers, json["data"].to_string().into_bytes())
}

/// A KafkaSource push whose data is the Kafka record Dapr wrote.
pub fn knative_kafka_push(event: &OutgoingEvent) -> (HeaderMap, Vec<u8>) {
    let record = dapr_push_body(event).to_string();
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("ce-specversion", "1.0".to_owned()),
        (
            "ce-id",
            format!("partition:0/offset:{}", event.id.as_u128() % 1000),
        ),
        (
            "ce-source",
            "/apis/v1/namespaces/todo/kafkasources/audit#task-events".to_owned(),
        ),
        ("ce-type", crate::decode::KNATIVE_KAFKA_EVENT.to_owned()),
        ("content-type", "application/json".to_owned()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
    (headers, record.into_bytes())
}
