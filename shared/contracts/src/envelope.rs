//! Building the structured CloudEvents we publish. The event keeps its own
//! `id`, `source`, `type` and `time` because it is sent to Dapr as
//! `application/cloudevents+json`, so Dapr forwards it instead of wrapping it.

use chrono::{DateTime, Utc};
use cloudevents::{EventBuilder, EventBuilderV10};
use serde::Serialize;
use uuid::Uuid;

use crate::kinds::EventKind;

/// `source` is this prefix followed by the emitting function's name.
pub const EVENT_SOURCE_PREFIX: &str = "/todo-events/";
pub const DATA_CONTENT_TYPE: &str = "application/json";

/// An event ready to be stored in the outbox and published.
#[derive(Debug, Clone, PartialEq)]
pub struct OutgoingEvent {
    /// The idempotency key: the same for every retry of this event.
    pub id: Uuid,
    pub kind: EventKind,
    /// The emitting function, e.g. `task-api`.
    pub emitter: &'static str,
    /// The task id.
    pub subject: String,
    pub time: DateTime<Utc>,
    pub data: serde_json::Value,
}

impl OutgoingEvent {
    pub fn new(
        kind: EventKind,
        emitter: &'static str,
        subject: impl Into<String>,
        data: &impl Serialize,
    ) -> serde_json::Result<Self> {
        Ok(Self {
            id: Uuid::now_v7(),
            kind,
            emitter,
            subject: subject.into(),
            time: Utc::now(),
            data: serde_json::to_value(data)?,
        })
    }

    /// The event as a CloudEvents 1.0 structured JSON document.
    pub fn to_json(&self) -> serde_json::Value {
        let event = EventBuilderV10::new()
            .id(self.id.to_string())
            .source(format!("{EVENT_SOURCE_PREFIX}{}", self.emitter))
            .ty(self.kind.as_str())
            .subject(self.subject.clone())
            .time(self.time)
            .data_with_schema(
                DATA_CONTENT_TYPE,
                self.kind.data_schema(),
                self.data.clone(),
            )
            .build();
        match event {
            Ok(event) => serde_json::to_value(event).unwrap_or(serde_json::Value::Null),
            // Only an invalid `source` or `dataschema` URI can fail, and both
            // are built from constants above; keep the event rather than
            // losing it, in the same shape.
            Err(_) => self.to_json_by_hand(),
        }
    }

    fn to_json_by_hand(&self) -> serde_json::Value {
        serde_json::json!({
            "specversion": "1.0",
            "id": self.id.to_string(),
            "source": format!("{EVENT_SOURCE_PREFIX}{}", self.emitter),
            "type": self.kind.as_str(),
            "subject": self.subject,
            "time": self.time.to_rfc3339(),
            "datacontenttype": DATA_CONTENT_TYPE,
            "dataschema": self.kind.data_schema(),
            "data": self.data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structured_json_carries_our_attributes() {
        let event = OutgoingEvent::new(
            EventKind::TaskCreated,
            "task-api",
            "t1",
            &serde_json::json!({"x": 1}),
        )
        .unwrap();
        let json = event.to_json();
        assert_eq!(json["specversion"], "1.0");
        assert_eq!(json["id"], event.id.to_string());
        assert_eq!(json["source"], "/todo-events/task-api");
        assert_eq!(json["type"], "com.todo.task.created");
        assert_eq!(json["datacontenttype"], "application/json");
        assert_eq!(json["dataschema"], "urn:todo-events:schema:task-event:v1");
        assert_eq!(json["data"]["x"], 1);
        assert_eq!(json, event.to_json_by_hand_for_test());
    }

    impl OutgoingEvent {
        fn to_json_by_hand_for_test(&self) -> serde_json::Value {
            let mut v = self.to_json_by_hand();
            // The SDK writes time with a `Z` suffix; compare the instant.
            v["time"] = serde_json::Value::String(
                self.time
                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            );
            v
        }
    }
}
