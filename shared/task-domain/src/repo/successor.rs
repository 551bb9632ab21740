//! The next occurrence of a recurring task: created once, whatever is
//! redelivered, duplicated, raced, reopened or completed out of order.
//!
//! Exactly once rests on three things, in one transaction that takes the
//! user's stream lock first (like every write): the completed task is read
//! under its row lock, a series that has (or ever had: a deleted successor
//! stays deleted) a later occurrence is left alone (so completing an older
//! occurrence, or the same one again after a reopen, does not fork it), and
//! the unique index on (series, occurrence)
//! turns any remaining race into a no-op insert.

use chrono::{Duration, Utc};
use contracts::EventKind;
use deadpool_postgres::Transaction;
use uuid::Uuid;

use super::events::{self, Change};
use super::reminders::{self, firings};
use super::series::Columns;
use super::write::{CREATED_FIELDS, recurrence_json};
use super::{RepoError, TaskRepository, find_task, task_from_row};
use crate::model::{Status, Task};
use crate::reminder::{ReminderSpec, Trigger, diff_firings};
use crate::series::Occurrence;
use crate::stream;

/// What a completion did to its series.
#[derive(Debug)]
pub enum SuccessorOutcome {
    /// The next occurrence, committed with its events.
    Created(Box<Task>),
    /// The task no longer exists (deleted), or is not this user's.
    TaskGone,
    /// Nothing to create, and why: the task does not recur, or it was
    /// reopened after this completion.
    NotApplicable(&'static str),
    /// The series already has a later occurrence: this completion's
    /// successor was created before, or the task is an older occurrence.
    AlreadyAdvanced,
    /// The rule's count or until date ends the series here.
    SeriesEnded,
}

impl TaskRepository {
    /// Creates the occurrence that follows the completed task `task_id`,
    /// with its reminders, and enqueues its events in the same transaction.
    pub async fn create_successor(
        &self,
        user_id: &str,
        task_id: Uuid,
        traceparent: Option<&str>,
    ) -> Result<SuccessorOutcome, RepoError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // Every early return drops `tx`, which rolls this offset back.
        let position = stream::next_offset(&tx, user_id).await?;
        let Some(current) = find_task(&tx, user_id, task_id, "FOR UPDATE").await? else {
            return Ok(SuccessorOutcome::TaskGone);
        };
        if current.recurrence.is_none() {
            return Ok(SuccessorOutcome::NotApplicable("the task does not recur"));
        }
        // Without a series id the unique index cannot guard the insert;
        // every recurring row has one (V4 gave the older ones theirs).
        if current.series_id.is_none() {
            return Ok(SuccessorOutcome::NotApplicable("the task has no series"));
        }
        let (Status::Completed, Some(completed_at)) = (current.status, current.completed_at) else {
            return Ok(SuccessorOutcome::NotApplicable("the task was reopened"));
        };
        if has_later_occurrence(&tx, &current).await? {
            return Ok(SuccessorOutcome::AlreadyAdvanced);
        }
        let (Some(next), Some(previous)) =
            (current.successor(completed_at), current.as_occurrence())
        else {
            return Ok(SuccessorOutcome::SeriesEnded);
        };
        let Some(mut task) = insert(&tx, &current, next).await? else {
            return Ok(SuccessorOutcome::AlreadyAdvanced);
        };
        mark_advance(&tx, &task).await?;
        let specs = moved_reminders(&current, next.due - previous.due);
        task.reminders = reminders::sync(&tx, &task, &[], Some(&specs)).await?;
        let change = Change {
            kind: EventKind::TaskCreated,
            op: "created",
            changed: CREATED_FIELDS.iter().map(|f| (*f).to_owned()).collect(),
            position,
            traceparent,
            email: None,
        };
        events::emit(&tx, &task, change, &diff_firings(&[], &firings(&task))).await?;
        tx.commit().await?;
        Ok(SuccessorOutcome::Created(Box::new(task)))
    }
}

/// Whether the series has ever had an occurrence after `task`: one that
/// exists, or one created and since deleted (`series_advances`, V7). A
/// deleted successor stays deleted: redelivering the completion, or
/// reopening and completing its predecessor, does not bring it back.
async fn has_later_occurrence(tx: &Transaction<'_>, task: &Task) -> Result<bool, RepoError> {
    let Some(series_id) = task.series_id else {
        return Ok(true);
    };
    let row = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM tasks WHERE series_id = $1 AND occurrence > $2)
                 OR EXISTS (SELECT 1 FROM series_advances
                            WHERE series_id = $1 AND occurrence > $2)",
            &[&series_id, &task.occurrence],
        )
        .await?;
    Ok(row.try_get(0)?)
}

/// Records that the series reached occurrence `index`, in the successor's
/// own transaction, so the mark outlives the successor's row.
async fn mark_advance(tx: &Transaction<'_>, task: &Task) -> Result<(), RepoError> {
    tx.execute(
        "INSERT INTO series_advances (series_id, occurrence) VALUES ($1, $2)
         ON CONFLICT DO NOTHING",
        &[&task.series_id, &task.occurrence],
    )
    .await?;
    Ok(())
}

/// Inserts the successor row; `None` when the unique index says that
/// occurrence exists already.
async fn insert(
    tx: &Transaction<'_>,
    current: &Task,
    next: Occurrence,
) -> Result<Option<Task>, RepoError> {
    let now = Utc::now();
    let anchor = Columns::of(current);
    let index = i32::try_from(next.index).map_err(super::corrupt)?;
    let row = tx
        .query_opt(
            "INSERT INTO tasks (id, user_id, title, description, status, priority, tags, due_at,
                                time_zone, recurrence, created_at, updated_at, sequence,
                                occurrence, series_id, series_start, series_time_zone,
                                series_start_index)
             VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $8, $9, $10, $10, 1,
                     $11, $12, $13, $14, $15)
             ON CONFLICT (series_id, occurrence) WHERE series_id IS NOT NULL DO NOTHING
             RETURNING *",
            &[
                &Uuid::now_v7(),
                &current.user_id,
                &current.title,
                &current.description,
                &current.priority.as_str(),
                &current.tags,
                &next.due,
                &current.time_zone,
                &recurrence_json(current.recurrence.as_ref())?,
                &now,
                &index,
                &current.series_id,
                &anchor.start,
                &anchor.zone,
                &anchor.index,
            ],
        )
        .await?;
    row.as_ref().map(task_from_row).transpose()
}

/// The predecessor's reminders for the successor: a relative reminder
/// keeps its offset from the (new) due date; an absolute one moves by as
/// much as the due date did.
fn moved_reminders(current: &Task, shift: Duration) -> Vec<ReminderSpec> {
    current
        .reminders
        .iter()
        .map(|r| {
            let spec = r.spec();
            ReminderSpec {
                trigger: match spec.trigger {
                    Trigger::Before(minutes) => Trigger::Before(minutes),
                    Trigger::At(at) => Trigger::At(at + shift),
                },
                channels: spec.channels,
            }
        })
        .collect()
}
