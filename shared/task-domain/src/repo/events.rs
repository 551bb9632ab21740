//! The events a change enqueues, in the order the relay publishes them:
//! the `task-updates` stream entry, the `task-events` event, then the
//! reminder firings it withdraws and those it schedules. The stream entry
//! goes first because a person waits for it (sync-gateway's live sockets)
//! while the others feed background consumers: the relay publishes one
//! key's rows one daprd call per topic, in id order, so the first row's
//! topic goes out one call earlier (docs/benchmarks.md, sync-gateway).
//! No consumer reads two topics as one sequence.

use contracts::{EventKind, OutgoingEvent, ReminderEventData, TaskEventData, TaskSyncData};
use deadpool_postgres::Transaction;

use super::{RepoError, corrupt};
use crate::model::Task;
use crate::reminder::{Firing, FiringDiff};
use crate::{EMITTER, outbox, stream};

/// What one change was, for its events.
pub struct Change<'a> {
    pub kind: EventKind,
    /// The stream entry's `op`: created, updated, completed or deleted.
    pub op: &'a str,
    pub changed: Vec<String>,
    pub position: stream::StreamPosition,
    pub traceparent: Option<&'a str>,
    /// The writing caller's address, for `reminder.scheduled` (None when
    /// its token had none, or no user wrote: recurring's successors).
    pub email: Option<&'a str>,
}

/// Enqueues every event of a change of `task` (the task after the change;
/// before it, with the new sequence, for a delete).
pub async fn emit(
    tx: &Transaction<'_>,
    task: &Task,
    change: Change<'_>,
    firings: &FiringDiff,
) -> Result<(), RepoError> {
    let snapshot = task.snapshot();
    let task_event = TaskEventData {
        task_id: task.id,
        user_id: task.user_id.clone(),
        sequence: task.sequence,
        task: snapshot.clone(),
        changed: change.changed.clone(),
    };
    let sync = TaskSyncData {
        task_id: task.id,
        user_id: task.user_id.clone(),
        sequence: task.sequence,
        epoch: change.position.epoch.to_string(),
        offset: change.position.offset,
        op: change.op.to_owned(),
        task: (change.kind != EventKind::TaskDeleted).then_some(snapshot),
        changed: change.changed,
    };
    let subject = task.id.to_string();
    let change_event =
        OutgoingEvent::new(change.kind, EMITTER, subject.clone(), &task_event).map_err(corrupt)?;
    let sync_event =
        OutgoingEvent::new(EventKind::TaskSync, EMITTER, subject, &sync).map_err(corrupt)?;
    let tp = change.traceparent;
    outbox::enqueue(
        tx,
        &sync_event,
        &task.user_id,
        Some(change.position.offset),
        tp,
    )
    .await?;
    outbox::enqueue(tx, &change_event, &task.user_id, None, tp).await?;
    for (kind, list) in [
        (EventKind::ReminderCancelled, &firings.cancelled),
        (EventKind::ReminderScheduled, &firings.scheduled),
    ] {
        for firing in list {
            let event = reminder_event(kind, task, firing, change.email)?;
            outbox::enqueue(tx, &event, &task.user_id, None, tp).await?;
        }
    }
    Ok(())
}

fn reminder_event(
    kind: EventKind,
    task: &Task,
    firing: &Firing,
    email: Option<&str>,
) -> Result<OutgoingEvent, RepoError> {
    let data = ReminderEventData {
        reminder_id: firing.reminder_id,
        task_id: task.id,
        user_id: task.user_id.clone(),
        sequence: task.sequence,
        fire_at: firing.fire_at,
        occurrence_due_at: firing.occurrence_due_at,
        channels: firing.channels.clone(),
        title: task.title.clone(),
        // A cancel needs no address.
        email: (kind == EventKind::ReminderScheduled)
            .then(|| email.map(str::to_owned))
            .flatten(),
        time_zone: Some(task.time_zone.clone()),
    };
    OutgoingEvent::new(kind, EMITTER, task.id.to_string(), &data).map_err(corrupt)
}
