//! The repository: every change of a task, its sequence, its user's stream
//! offset and the events it causes commit in one transaction.
//!
//! Lock order, the same for every write: the user's stream row first
//! ([`stream::next_offset`]), then the task row. The first lock serialises
//! one user's changes, so the outbox ids of one user are allocated and
//! committed in stream order, and no two writers can deadlock.

mod calendar;
mod events;
mod reminders;
mod series;
mod successor;
mod write;

use deadpool_postgres::{GenericClient, Pool};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::model::{Priority, Status, Task, ValidationError};
use crate::series::SeriesStart;

pub use successor::SuccessorOutcome;
pub use write::{CreateOutcome, Idempotency};

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A database error retrying will not fix (transient ones become
    /// `Unavailable` on conversion).
    #[error("database error: {0}")]
    Db(tokio_postgres::Error),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// No such task for this user (another user's task included).
    #[error("task not found")]
    NotFound,
    /// `If-Match` named another sequence than the task's.
    #[error("the task is at sequence {current}")]
    SequenceMismatch { current: i64 },
    /// The change is invalid against the task as it is now.
    #[error("the change is not valid")]
    Invalid(Vec<ValidationError>),
    /// A list cursor whose sort key the database cannot read: not one this
    /// API issued.
    #[error("the cursor is not one this API issued")]
    BadCursor,
    /// The Idempotency-Key was used before with another request body.
    #[error("the Idempotency-Key was used with a different request")]
    IdempotencyConflict,
}

impl From<tokio_postgres::Error> for RepoError {
    fn from(e: tokio_postgres::Error) -> Self {
        if service::db::is_transient(&e) {
            RepoError::Unavailable(e.to_string())
        } else {
            RepoError::Db(e)
        }
    }
}

impl From<deadpool_postgres::PoolError> for RepoError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        RepoError::Unavailable(e.to_string())
    }
}

pub(crate) fn corrupt(e: impl std::fmt::Display) -> RepoError {
    RepoError::Corrupt(e.to_string())
}

#[derive(Clone)]
pub struct TaskRepository {
    pool: Pool,
    /// The writing caller's address (its token's `email` claim), carried
    /// in the `reminder.scheduled` events this repository enqueues.
    email: Option<String>,
}

impl TaskRepository {
    pub fn new(pool: Pool) -> Self {
        Self { pool, email: None }
    }

    /// This repository writing for a caller whose token carried `email`:
    /// notification mails reminders there when the user has set no address
    /// of their own. A clone shares the pool.
    pub fn with_email(&self, email: Option<String>) -> Self {
        Self {
            pool: self.pool.clone(),
            email,
        }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The user's task, or `None` (also when it belongs to someone else).
    pub async fn get(&self, user_id: &str, task_id: Uuid) -> Result<Option<Task>, RepoError> {
        let client = self.pool.get().await?;
        find_task(&client, user_id, task_id, "").await
    }
}

/// The user's task with its reminders, or `None` (also when it belongs to
/// someone else). `lock` is appended to the row's SELECT: `FOR UPDATE`
/// inside a change's transaction, empty for a plain read.
pub(crate) async fn find_task(
    client: &impl GenericClient,
    user_id: &str,
    task_id: Uuid,
    lock: &'static str,
) -> Result<Option<Task>, RepoError> {
    let row = client
        .query_opt(
            &format!("SELECT * FROM tasks WHERE id = $1 AND user_id = $2 {lock}"),
            &[&task_id, &user_id],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let mut task = task_from_row(&row)?;
    task.reminders = reminders::load(client, &[task.id])
        .await?
        .remove(&task.id)
        .unwrap_or_default();
    Ok(Some(task))
}

/// A task row without its reminders (the caller loads them).
pub(crate) fn task_from_row(row: &Row) -> Result<Task, RepoError> {
    let status: String = row.try_get("status")?;
    let priority: String = row.try_get("priority")?;
    let recurrence: Option<serde_json::Value> = row.try_get("recurrence")?;
    let series = series_from_row(row)?;
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
        recurrence: recurrence
            .map(serde_json::from_value)
            .transpose()
            .map_err(corrupt)?,
        series_id: row.try_get("series_id")?,
        occurrence: row.try_get("occurrence")?,
        series,
        reminders: Vec::new(),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        completed_at: row.try_get("completed_at")?,
        sequence: row.try_get("sequence")?,
        rrule: None,
    }
    .derive())
}

/// The series' anchor columns, when the row has them.
fn series_from_row(row: &Row) -> Result<Option<SeriesStart>, RepoError> {
    let local: Option<chrono::NaiveDateTime> = row.try_get("series_start")?;
    let zone: Option<String> = row.try_get("series_time_zone")?;
    let index: Option<i32> = row.try_get("series_start_index")?;
    let (Some(local), Some(zone), Some(index)) = (local, zone, index) else {
        return Ok(None);
    };
    Ok(Some(SeriesStart {
        local,
        tz: zone
            .parse()
            .map_err(|_| RepoError::Corrupt(format!("series zone {zone:?}")))?,
        index: u32::try_from(index).map_err(corrupt)?,
    }))
}

pub(crate) use reminders::load as load_reminders;
