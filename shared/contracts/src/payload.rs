//! The `data` of each event type. Field names are the wire format; the JSON
//! Schemas in `schemas/` describe the same shapes and tests hold the two
//! together.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::kinds::EventKind;

/// The task as it is after the change (before it, for a delete).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSnapshot {
    pub id: Uuid,
    pub user_id: String,
    pub title: String,
    #[serde(default)]
    pub description: String,
    pub status: String,
    pub priority: String,
    #[serde(default)]
    pub tags: Vec<String>,
    pub due_at: Option<DateTime<Utc>>,
    pub time_zone: String,
    /// The recurrence rule, as accepted by the task API (see the schema).
    #[serde(default)]
    pub recurrence: Option<serde_json::Value>,
    /// The recurring series the task belongs to (the same for every
    /// occurrence); absent for a task that never recurred.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series_id: Option<Uuid>,
    /// Which occurrence of its recurring series the task is (1 = first).
    /// Optional on the wire: events from before it existed lack it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurrence: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub sequence: i64,
}

/// `com.todo.task.created|updated|completed|deleted` on `task-events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskEventData {
    pub task_id: Uuid,
    pub user_id: String,
    /// The task's sequence after this change; per task, gap-free.
    pub sequence: i64,
    pub task: TaskSnapshot,
    /// Names of the fields this change touched (all of them on create).
    #[serde(default)]
    pub changed: Vec<String>,
}

/// `com.todo.task.sync` on `task-updates`: one entry of a user's stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSyncData {
    pub task_id: Uuid,
    pub user_id: String,
    pub sequence: i64,
    /// Changes only if the user's history is lost; clients then reload.
    pub epoch: String,
    /// The user's stream position: gap-free, starts at 1.
    pub offset: i64,
    /// created, updated, completed or deleted.
    pub op: String,
    /// The task after the change; `None` after a delete.
    pub task: Option<TaskSnapshot>,
    #[serde(default)]
    pub changed: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReminderChannel {
    Email,
    Push,
}

/// `com.todo.reminder.scheduled|cancelled` on `reminders`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReminderEventData {
    pub reminder_id: Uuid,
    pub task_id: Uuid,
    pub user_id: String,
    pub sequence: i64,
    /// When the reminder fires (UTC).
    pub fire_at: DateTime<Utc>,
    /// The due date of the occurrence the reminder belongs to.
    pub occurrence_due_at: Option<DateTime<Utc>>,
    pub channels: Vec<ReminderChannel>,
    pub title: String,
    /// The `email` claim of the token that scheduled the reminder: the
    /// notification function's default address for the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The task's IANA time zone, so a reminder shows the due time there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

/// A decoded event, one variant per type we know.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    TaskCreated(TaskEventData),
    TaskUpdated(TaskEventData),
    TaskCompleted(TaskEventData),
    TaskDeleted(TaskEventData),
    ReminderScheduled(ReminderEventData),
    ReminderCancelled(ReminderEventData),
    TaskSync(TaskSyncData),
    /// A `type` this build does not know.
    Unknown {
        event_type: String,
    },
}

impl Event {
    /// Parses `data` for a known kind.
    pub fn from_data(kind: EventKind, data: serde_json::Value) -> serde_json::Result<Event> {
        use serde_json::from_value as parse;
        Ok(match kind {
            EventKind::TaskCreated => Event::TaskCreated(parse(data)?),
            EventKind::TaskUpdated => Event::TaskUpdated(parse(data)?),
            EventKind::TaskCompleted => Event::TaskCompleted(parse(data)?),
            EventKind::TaskDeleted => Event::TaskDeleted(parse(data)?),
            EventKind::ReminderScheduled => Event::ReminderScheduled(parse(data)?),
            EventKind::ReminderCancelled => Event::ReminderCancelled(parse(data)?),
            EventKind::TaskSync => Event::TaskSync(parse(data)?),
        })
    }

    /// The task-event payload, for the four `task-events` types.
    pub fn task_event(&self) -> Option<&TaskEventData> {
        match self {
            Event::TaskCreated(d)
            | Event::TaskUpdated(d)
            | Event::TaskCompleted(d)
            | Event::TaskDeleted(d) => Some(d),
            _ => None,
        }
    }
}
