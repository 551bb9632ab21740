//! Creating and changing tasks. Every write takes the user's stream lock
//! first, then the task row, and commits the change with its events.

use chrono::Utc;
use contracts::EventKind;
use deadpool_postgres::Transaction;
use uuid::Uuid;

use super::events::{self, Change};
use super::reminders::{self, firings};
use super::series;
use super::{RepoError, TaskRepository, corrupt, find_task, task_from_row};
use crate::idempotency;
use crate::input::{NewTask, TaskFields, TaskPatch};
use crate::model::{Status, Task};
use crate::recurrence::Recurrence;
use crate::reminder::{ReminderSpec, diff_firings, reshow};
use crate::stream;

/// The fields a create sets, for the event's `changed` list.
pub(super) const CREATED_FIELDS: [&str; 8] = [
    "title",
    "description",
    "priority",
    "tags",
    "due_at",
    "time_zone",
    "recurrence",
    "reminders",
];

/// An `Idempotency-Key` and the hash of the request that carried it.
#[derive(Debug, Clone)]
pub struct Idempotency {
    pub key: String,
    pub request_hash: String,
}

/// What a create did: made the task, or replayed an earlier response.
#[derive(Debug)]
pub enum CreateOutcome {
    Created(Box<Task>),
    Replayed {
        status: u16,
        body: serde_json::Value,
    },
}

/// What a change does to the locked task.
enum Plan {
    /// Nothing differs: no sequence, no offset, no event.
    Unchanged,
    Save {
        task: Box<Task>,
        /// The new reminder list, when the change replaces it.
        reminders: Option<Vec<ReminderSpec>>,
        kind: EventKind,
        op: &'static str,
        changed: Vec<String>,
    },
    Delete,
}

fn with_fields(current: &Task, f: TaskFields) -> Task {
    let task = Task {
        title: f.title,
        description: f.description,
        priority: f.priority,
        tags: f.tags,
        due_at: f.due_at,
        time_zone: f.time_zone,
        recurrence: f.recurrence,
        ..current.clone()
    };
    series::anchored(task, Some(current))
}

pub(super) fn recurrence_json(
    recurrence: Option<&Recurrence>,
) -> Result<Option<serde_json::Value>, RepoError> {
    recurrence
        .map(serde_json::to_value)
        .transpose()
        .map_err(corrupt)
}

impl TaskRepository {
    /// Creates a task with its reminders and enqueues its events. With an
    /// idempotency key, a repeat of the same request replays the stored
    /// response and a different request under the same key is refused.
    pub async fn create(
        &self,
        user_id: &str,
        new: NewTask,
        traceparent: Option<&str>,
        idempotency: Option<&Idempotency>,
    ) -> Result<CreateOutcome, RepoError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let position = stream::next_offset(&tx, user_id).await?;
        // The stream lock serialises this user's writes, so no request with
        // the same key can commit between this check and ours.
        if let Some(idem) = idempotency
            && let Some(replay) = idempotency::find(&tx, user_id, idem).await?
        {
            return Ok(replay);
        }
        let now = Utc::now();
        let f = new.fields;
        let recurrence = recurrence_json(f.recurrence.as_ref())?;
        let row = tx
            .query_one(
                "INSERT INTO tasks (id, user_id, title, description, status, priority, tags, due_at,
                                    time_zone, recurrence, created_at, updated_at, sequence)
                 VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $8, $9, $10, $10, 1)
                 RETURNING *",
                &[
                    &Uuid::now_v7(),
                    &user_id,
                    &f.title,
                    &f.description,
                    &f.priority.as_str(),
                    &f.tags,
                    &f.due_at,
                    &f.time_zone,
                    &recurrence,
                    &now,
                ],
            )
            .await?;
        let mut task = series::anchored(task_from_row(&row)?, None);
        if task.series.is_some() {
            series::store(&tx, &task).await?;
        }
        task.reminders = reminders::sync(&tx, &task, &[], Some(&new.reminders)).await?;
        let diff = diff_firings(&[], &firings(&task));
        let change = Change {
            kind: EventKind::TaskCreated,
            op: "created",
            changed: CREATED_FIELDS.iter().map(|f| (*f).to_owned()).collect(),
            position,
            traceparent,
            email: self.email.as_deref(),
        };
        events::emit(&tx, &task, change, &diff).await?;
        if let Some(idem) = idempotency {
            let body = serde_json::to_value(&task).map_err(corrupt)?;
            idempotency::store(&tx, user_id, idem, 201, &body).await?;
        }
        tx.commit().await?;
        Ok(CreateOutcome::Created(Box::new(task)))
    }

    /// Applies a partial update; `if_match` is the sequence the client saw.
    pub async fn update(
        &self,
        user_id: &str,
        task_id: Uuid,
        patch: TaskPatch,
        if_match: Option<i64>,
        traceparent: Option<&str>,
    ) -> Result<Task, RepoError> {
        let changed = self
            .change(user_id, task_id, if_match, traceparent, |current| {
                let outcome = patch.apply(current).map_err(RepoError::Invalid)?;
                if outcome.changed.is_empty() {
                    return Ok(Plan::Unchanged);
                }
                Ok(Plan::Save {
                    task: Box::new(with_fields(current, outcome.fields)),
                    reminders: outcome.reminders,
                    kind: EventKind::TaskUpdated,
                    op: "updated",
                    changed: outcome.changed,
                })
            })
            .await?;
        changed.ok_or(RepoError::NotFound)
    }

    /// Completes (`Completed`) or reopens (`Pending`) the task. Setting the
    /// status it already has changes nothing and emits nothing; reopening
    /// makes its reminders fire again.
    pub async fn set_status(
        &self,
        user_id: &str,
        task_id: Uuid,
        status: Status,
        if_match: Option<i64>,
        traceparent: Option<&str>,
    ) -> Result<Task, RepoError> {
        let changed = self
            .change(user_id, task_id, if_match, traceparent, |current| {
                if current.status == status {
                    return Ok(Plan::Unchanged);
                }
                let (kind, op, completed_at) = match status {
                    Status::Completed => (EventKind::TaskCompleted, "completed", Some(Utc::now())),
                    Status::Pending => (EventKind::TaskUpdated, "updated", None),
                };
                Ok(Plan::Save {
                    task: Box::new(Task {
                        status,
                        completed_at,
                        ..current.clone()
                    }),
                    reminders: None,
                    kind,
                    op,
                    changed: vec!["status".to_owned(), "completed_at".to_owned()],
                })
            })
            .await?;
        changed.ok_or(RepoError::NotFound)
    }

    /// Deletes the task; its reminders are cancelled.
    pub async fn delete(
        &self,
        user_id: &str,
        task_id: Uuid,
        if_match: Option<i64>,
        traceparent: Option<&str>,
    ) -> Result<(), RepoError> {
        self.change(user_id, task_id, if_match, traceparent, |_| {
            Ok(Plan::Delete)
        })
        .await
        .map(|_| ())
    }

    /// Locks the user's stream and the task, lets `plan` decide, and
    /// commits the result with its events. `Ok(None)` after a delete.
    async fn change(
        &self,
        user_id: &str,
        task_id: Uuid,
        if_match: Option<i64>,
        traceparent: Option<&str>,
        plan: impl FnOnce(&Task) -> Result<Plan, RepoError>,
    ) -> Result<Option<Task>, RepoError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let position = stream::next_offset(&tx, user_id).await?;
        let current = lock_task(&tx, user_id, task_id).await?;
        if let Some(expected) = if_match
            && expected != current.sequence
        {
            return Err(RepoError::SequenceMismatch {
                current: current.sequence,
            });
        }
        let before = firings(&current);
        let now = Utc::now();
        let change = |kind, op, changed| Change {
            kind,
            op,
            changed,
            position,
            traceparent,
            email: self.email.as_deref(),
        };
        match plan(&current)? {
            // Dropping `tx` rolls back the offset taken above.
            Plan::Unchanged => Ok(Some(current)),
            Plan::Delete => {
                tx.execute("DELETE FROM tasks WHERE id = $1", &[&task_id])
                    .await?;
                let gone = Task {
                    sequence: current.sequence + 1,
                    updated_at: now,
                    ..current
                };
                let diff = diff_firings(&before, &[]);
                let c = change(EventKind::TaskDeleted, "deleted", Vec::new());
                events::emit(&tx, &gone, c, &diff).await?;
                tx.commit().await?;
                Ok(None)
            }
            Plan::Save {
                task,
                reminders,
                kind,
                op,
                changed,
            } => {
                let mut task = Task {
                    sequence: current.sequence + 1,
                    updated_at: now,
                    ..*task
                };
                store(&tx, &task).await?;
                task.reminders =
                    reminders::sync(&tx, &task, &current.reminders, reminders.as_deref()).await?;
                let after = firings(&task);
                // What a reminder shows (title, due time, zone) changed:
                // its firings are scheduled again so notification's view
                // never holds a stale title (same name, same job).
                let shown = current.title != task.title
                    || current.due_at != task.due_at
                    || current.time_zone != task.time_zone;
                let diff = reshow(diff_firings(&before, &after), &after, shown, Utc::now());
                events::emit(&tx, &task, change(kind, op, changed), &diff).await?;
                tx.commit().await?;
                Ok(Some(task))
            }
        }
    }
}

/// The user's task with its reminders, locked until `tx` ends.
async fn lock_task(tx: &Transaction<'_>, user_id: &str, task_id: Uuid) -> Result<Task, RepoError> {
    find_task(tx, user_id, task_id, "FOR UPDATE")
        .await?
        .ok_or(RepoError::NotFound)
}

async fn store(tx: &Transaction<'_>, task: &Task) -> Result<(), RepoError> {
    let anchor = series::Columns::of(task);
    tx.execute(
        "UPDATE tasks SET title = $2, description = $3, status = $4, priority = $5, tags = $6,
                due_at = $7, time_zone = $8, recurrence = $9, updated_at = $10,
                completed_at = $11, sequence = $12, series_id = $13, series_start = $14,
                series_time_zone = $15, series_start_index = $16
         WHERE id = $1",
        &[
            &task.id,
            &task.title,
            &task.description,
            &task.status.as_str(),
            &task.priority.as_str(),
            &task.tags,
            &task.due_at,
            &task.time_zone,
            &recurrence_json(task.recurrence.as_ref())?,
            &task.updated_at,
            &task.completed_at,
            &task.sequence,
            &task.series_id,
            &anchor.start,
            &anchor.zone,
            &anchor.index,
        ],
    )
    .await?;
    Ok(())
}
