//! Topic names and CloudEvent `type` values.

use serde::{Deserialize, Serialize};

/// The three topics, each with a dead-letter topic beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Topic {
    TaskEvents,
    Reminders,
    TaskUpdates,
}

impl Topic {
    pub const ALL: [Topic; 3] = [Topic::TaskEvents, Topic::Reminders, Topic::TaskUpdates];

    pub fn name(self) -> &'static str {
        match self {
            Topic::TaskEvents => "task-events",
            Topic::Reminders => "reminders",
            Topic::TaskUpdates => "task-updates",
        }
    }

    /// Where Dapr (or Knative's dead-letter sink) puts events a subscriber
    /// answered with DROP or that exhausted their retries.
    pub fn dead_letter(self) -> &'static str {
        match self {
            Topic::TaskEvents => "task-events-dlq",
            Topic::Reminders => "reminders-dlq",
            Topic::TaskUpdates => "task-updates-dlq",
        }
    }

    pub fn from_name(name: &str) -> Option<Topic> {
        Topic::ALL.into_iter().find(|t| t.name() == name)
    }
}

/// Every CloudEvent `type` we emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    TaskCreated,
    TaskUpdated,
    TaskCompleted,
    TaskDeleted,
    ReminderScheduled,
    ReminderCancelled,
    TaskSync,
}

impl EventKind {
    pub const ALL: [EventKind; 7] = [
        EventKind::TaskCreated,
        EventKind::TaskUpdated,
        EventKind::TaskCompleted,
        EventKind::TaskDeleted,
        EventKind::ReminderScheduled,
        EventKind::ReminderCancelled,
        EventKind::TaskSync,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::TaskCreated => "com.todo.task.created",
            EventKind::TaskUpdated => "com.todo.task.updated",
            EventKind::TaskCompleted => "com.todo.task.completed",
            EventKind::TaskDeleted => "com.todo.task.deleted",
            EventKind::ReminderScheduled => "com.todo.reminder.scheduled",
            EventKind::ReminderCancelled => "com.todo.reminder.cancelled",
            EventKind::TaskSync => "com.todo.task.sync",
        }
    }

    pub fn parse(value: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == value)
    }

    /// The topic this kind of event travels on.
    pub fn topic(self) -> Topic {
        match self {
            EventKind::TaskCreated
            | EventKind::TaskUpdated
            | EventKind::TaskCompleted
            | EventKind::TaskDeleted => Topic::TaskEvents,
            EventKind::ReminderScheduled | EventKind::ReminderCancelled => Topic::Reminders,
            EventKind::TaskSync => Topic::TaskUpdates,
        }
    }

    /// The `dataschema` URI of the payload, versioned. A consumer that sees
    /// another version of a known type treats the event as poison.
    pub fn data_schema(self) -> &'static str {
        match self.topic() {
            Topic::TaskEvents => "urn:todo-events:schema:task-event:v1",
            Topic::Reminders => "urn:todo-events:schema:reminder-event:v1",
            Topic::TaskUpdates => "urn:todo-events:schema:task-sync:v1",
        }
    }
}

/// A CloudEvent a function publishes to a dead-letter topic as a report
/// for operators: not part of a topic's flow (no subscriber applies it,
/// `scripts/dlq replay` skips it), but an event type the code emits all
/// the same, so the AsyncAPI document and the schemas describe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportKind {
    /// The CloudEvent `type`.
    pub event_type: &'static str,
    /// The `dataschema` URI, the `$id` of its data schema.
    pub data_schema: &'static str,
    /// The topic on whose dead-letter topic it is published.
    pub topic: Topic,
    /// The `source` of the function that publishes it.
    pub source: &'static str,
}

/// notification's report of a delivery that failed or whose outcome is
/// unknown (functions/notification/src/history.rs).
pub const NOTIFICATION_FAILED: ReportKind = ReportKind {
    event_type: "com.todo.notification.failed",
    data_schema: "urn:todo-events:schema:notification-failed:v1",
    topic: Topic::Reminders,
    source: "/todo-events/notification",
};

/// Every report type the code emits: the AsyncAPI test walks this list
/// beside [`EventKind::ALL`], so a new report cannot go undocumented.
pub const REPORT_KINDS: [ReportKind; 1] = [NOTIFICATION_FAILED];

impl ReportKind {
    pub fn parse(value: &str) -> Option<ReportKind> {
        REPORT_KINDS.into_iter().find(|k| k.event_type == value)
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(EventKind::parse("com.todo.task.exploded"), None);
    }

    #[test]
    fn topics_round_trip_and_have_distinct_dead_letters() {
        for topic in Topic::ALL {
            assert_eq!(Topic::from_name(topic.name()), Some(topic));
            assert_ne!(topic.name(), topic.dead_letter());
        }
    }
}
