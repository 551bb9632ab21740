//! The repository: every change of a task, its sequence, its user's stream
//! offset and the events it causes commit in one transaction.

use chrono::Utc;
use contracts::{EventKind, OutgoingEvent, TaskEventData, TaskSyncData};
use deadpool_postgres::Pool;
use tokio_postgres::{Row, Transaction};
use uuid::Uuid;

use crate::model::{NewTask, Priority, Status, Task};
use crate::{EMITTER, outbox, stream};

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
}

impl From<deadpool_postgres::PoolError> for RepoError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        RepoError::Unavailable(e.to_string())
    }
}

/// The fields a create sets, for the event's `changed` list.
const CREATED_FIELDS: [&str; 6] = [
    "title",
    "description",
    "priority",
    "tags",
    "due_at",
    "time_zone",
];

#[derive(Clone)]
pub struct TaskRepository {
    pool: Pool,
}

impl TaskRepository {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Creates a task and enqueues `task.created` and its sync event.
    pub async fn create(
        &self,
        user_id: &str,
        new: NewTask,
        traceparent: Option<&str>,
    ) -> Result<Task, RepoError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let position = stream::next_offset(&tx, user_id).await?;
        let now = Utc::now();
        let row = tx
            .query_one(
                "INSERT INTO tasks (id, user_id, title, description, status, priority, tags, due_at,
                                    time_zone, created_at, updated_at, sequence)
                 VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $8, $9, $9, 1)
                 RETURNING *",
                &[
                    &Uuid::now_v7(),
                    &user_id,
                    &new.title,
                    &new.description,
                    &new.priority.as_str(),
                    &new.tags,
                    &new.due_at,
                    &new.time_zone,
                    &now,
                ],
            )
            .await?;
        let task = task_from_row(&row)?;
        let changed: Vec<String> = CREATED_FIELDS.iter().map(|f| (*f).to_owned()).collect();
        emit_change(
            &tx,
            &task,
            EventKind::TaskCreated,
            "created",
            changed,
            position,
            traceparent,
        )
        .await?;
        tx.commit().await?;
        Ok(task)
    }

    /// The user's task, or `None` (also when it belongs to someone else).
    pub async fn get(&self, user_id: &str, task_id: Uuid) -> Result<Option<Task>, RepoError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT * FROM tasks WHERE id = $1 AND user_id = $2",
                &[&task_id, &user_id],
            )
            .await?;
        row.as_ref().map(task_from_row).transpose()
    }
}

/// Enqueues the `task-events` event of a change and its `task-updates`
/// stream entry, in that order, with the user as partition key.
async fn emit_change(
    tx: &Transaction<'_>,
    task: &Task,
    kind: EventKind,
    op: &str,
    changed: Vec<String>,
    position: stream::StreamPosition,
    traceparent: Option<&str>,
) -> Result<(), RepoError> {
    let snapshot = task.snapshot();
    let task_event = TaskEventData {
        task_id: task.id,
        user_id: task.user_id.clone(),
        sequence: task.sequence,
        task: snapshot.clone(),
        changed: changed.clone(),
    };
    let sync = TaskSyncData {
        task_id: task.id,
        user_id: task.user_id.clone(),
        sequence: task.sequence,
        epoch: position.epoch.to_string(),
        offset: position.offset,
        op: op.to_owned(),
        task: (kind != EventKind::TaskDeleted).then_some(snapshot),
        changed,
    };
    let corrupt = |e: serde_json::Error| RepoError::Corrupt(e.to_string());
    let subject = task.id.to_string();
    let change_event =
        OutgoingEvent::new(kind, EMITTER, subject.clone(), &task_event).map_err(corrupt)?;
    let sync_event =
        OutgoingEvent::new(EventKind::TaskSync, EMITTER, subject, &sync).map_err(corrupt)?;
    outbox::enqueue(tx, &change_event, &task.user_id, None, traceparent).await?;
    outbox::enqueue(
        tx,
        &sync_event,
        &task.user_id,
        Some(position.offset),
        traceparent,
    )
    .await?;
    Ok(())
}

pub(crate) fn task_from_row(row: &Row) -> Result<Task, RepoError> {
    let status: String = row.try_get("status")?;
    let priority: String = row.try_get("priority")?;
    Ok(Task {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        title: row.try_get("title")?,
        description: row.try_get("description")?,
        status: Status::parse(&status)
            .ok_or_else(|| RepoError::Corrupt(format!("status {status:?}")))?,
        priority: Priority::parse(&priority)
            .ok_or_else(|| RepoError::Corrupt(format!("priority {priority:?}")))?,
        tags: row.try_get("tags")?,
        due_at: row.try_get("due_at")?,
        time_zone: row.try_get("time_zone")?,
        recurrence: row.try_get("recurrence")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        completed_at: row.try_get("completed_at")?,
        sequence: row.try_get("sequence")?,
    })
}
