//! The contracts every function agrees on: topic names, CloudEvent types,
//! payloads, their JSON Schemas, the AsyncAPI document of the topics and
//! the sync socket ([`asyncapi`]), and the one decoder that turns a push
//! (from Dapr or from Knative Eventing) into a typed [`Event`].

pub mod asyncapi;
pub mod decode;
pub mod envelope;
pub mod kinds;
pub mod payload;
pub mod schema;

pub use decode::{DecodeError, Delivery, Received, decode_push};
pub use envelope::{EVENT_SOURCE_PREFIX, OutgoingEvent};
pub use kinds::{EventKind, NOTIFICATION_FAILED, REPORT_KINDS, ReportKind, Topic};
pub use payload::{
    Event, ReminderChannel, ReminderEventData, TaskEventData, TaskSnapshot, TaskSyncData,
};

#[cfg(any(test, feature = "test-util"))]
pub mod testing;
