//! Every push shape decodes to the same typed event; poison is reported as a
//! permanent error, never a panic.

use contracts::testing::*;
use contracts::{DecodeError, Event, EventKind, decode_push};
use proptest::prelude::*;

#[test]
fn dapr_structured_push_decodes() {
    let event = task_event(EventKind::TaskCreated, "alice");
    let body = dapr_push_body(&event).to_string();
    let received = decode_push(&structured_headers(), body.as_bytes()).expect("decodes");
    assert_eq!(received.id, event.id.to_string());
    assert!(received.traceparent.is_some());
    let Event::TaskCreated(data) = received.event else {
        panic!("wrong variant: {:?}", received.event)
    };
    assert_eq!(data.user_id, "alice");
}

#[test]
fn knative_binary_structured_and_kafka_pushes_decode_to_the_same_event() {
    let event = task_event(EventKind::TaskCompleted, "bob");
    let dapr = decode_push(
        &structured_headers(),
        dapr_push_body(&event).to_string().as_bytes(),
    )
    .expect("dapr");
    let (headers, body) = knative_binary_push(&event);
    let binary = decode_push(&headers, &body).expect("binary");
    let structured = decode_push(
        &structured_headers(),
        event.to_json().to_string().as_bytes(),
    )
    .expect("structured");
    let (headers, body) = knative_kafka_push(&event);
    let kafka = decode_push(&headers, &body).expect("kafka");
    for other in [&binary, &structured, &kafka] {
        assert_eq!(other.id, dapr.id);
        assert_eq!(other.event, dapr.event);
        assert_eq!(other.time, dapr.time);
    }
}

#[test]
fn unknown_type_is_kept_as_unknown() {
    let body = serde_json::json!({
        "specversion": "1.0", "id": "x1", "source": "/elsewhere", "type": "com.other.thing",
        "datacontenttype": "application/json", "data": {"a": 1}
    });
    let received =
        decode_push(&structured_headers(), body.to_string().as_bytes()).expect("decodes");
    assert_eq!(
        received.event,
        Event::Unknown {
            event_type: "com.other.thing".into()
        }
    );
}

#[test]
fn unknown_schema_version_is_poison() {
    let event = task_event(EventKind::TaskCreated, "alice");
    let mut body = dapr_push_body(&event);
    body["dataschema"] = "urn:todo-events:schema:task-event:v9".into();
    let err = decode_push(&structured_headers(), body.to_string().as_bytes()).unwrap_err();
    assert!(matches!(err, DecodeError::UnknownVersion { .. }), "{err}");
}

#[test]
fn known_type_with_wrong_data_is_poison() {
    let body = serde_json::json!({
        "specversion": "1.0", "id": "x2", "source": "/todo-events/task-api",
        "type": "com.todo.task.created", "datacontenttype": "application/json",
        "data": {"nonsense": true}
    });
    let err = decode_push(&structured_headers(), body.to_string().as_bytes()).unwrap_err();
    assert!(matches!(err, DecodeError::InvalidData { .. }), "{err}");
}

#[test]
fn emitted_events_match_their_schemas() {
    for kind in [
        EventKind::TaskCreated,
        EventKind::TaskUpdated,
        EventKind::TaskCompleted,
        EventKind::TaskDeleted,
    ] {
        let event = task_event(kind, "carol");
        contracts::schema::validate_cloudevent(&event.to_json()).expect("valid");
    }
}

#[test]
fn schema_rejects_an_event_missing_its_id() {
    let mut json = task_event(EventKind::TaskCreated, "dave").to_json();
    json.as_object_mut().map(|o| o.remove("id"));
    assert!(contracts::schema::validate_cloudevent(&json).is_err());
}

/// Only notification's failed-delivery report has a non-UUID id (its
/// delivery key): a flow event with such an id, or a report with a UUID,
/// is refused.
#[test]
fn schema_keeps_uuid_ids_for_flow_events() {
    let mut json = task_event(EventKind::TaskCreated, "erin").to_json();
    json["id"] = serde_json::json!("delivery|0193a1b2c3d47e5f8a9b0c1d2e3f4a5b|1|email|1");
    assert!(contracts::schema::validate_cloudevent(&json).is_err());
    json["type"] = serde_json::json!(contracts::NOTIFICATION_FAILED.event_type);
    json["dataschema"] = serde_json::json!(contracts::NOTIFICATION_FAILED.data_schema);
    let error = contracts::schema::validate_cloudevent(&json).expect_err("task data is no report");
    assert!(error.to_string().contains("notification-failed"), "{error}");
    json["id"] = serde_json::json!(uuid::Uuid::now_v7().to_string());
    let error =
        contracts::schema::validate_cloudevent(&json).expect_err("a report's id is its key");
    assert!(error.to_string().contains("cloudevent.json"), "{error}");
}

proptest! {
    #[test]
    fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_push(&structured_headers(), &body);
    }

    #[test]
    fn arbitrary_json_objects_never_panic(id in ".{0,20}", ty in ".{0,40}", data in ".{0,40}") {
        let body = serde_json::json!({
            "specversion": "1.0", "id": id, "source": "/x", "type": ty, "data": data
        });
        let _ = decode_push(&structured_headers(), body.to_string().as_bytes());
    }
}
