//! Storing a task's reminders and their firing times.

use std::collections::HashMap;

use chrono::Utc;
use contracts::ReminderChannel;
use deadpool_postgres::GenericClient;
use uuid::Uuid;

use super::{RepoError, corrupt};
use crate::model::{Status, Task};
use crate::reminder::{Firing, Reminder, ReminderSpec, Trigger, fire_at};

/// The reminders of `task_ids`, by task, in creation order.
pub async fn load(
    client: &impl GenericClient,
    task_ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<Reminder>>, RepoError> {
    let rows = client
        .query(
            "SELECT id, task_id, minutes_before, at, channels, fire_at FROM reminders
             WHERE task_id = ANY($1) ORDER BY created_at, id",
            &[&task_ids],
        )
        .await?;
    let mut out: HashMap<Uuid, Vec<Reminder>> = HashMap::new();
    for row in rows {
        let channels: Vec<String> = row.try_get("channels")?;
        let channels = channels
            .iter()
            .map(|c| serde_json::from_value(serde_json::Value::from(c.as_str())))
            .collect::<Result<Vec<ReminderChannel>, _>>()
            .map_err(corrupt)?;
        out.entry(row.try_get("task_id")?)
            .or_default()
            .push(Reminder {
                id: row.try_get("id")?,
                minutes_before: row.try_get("minutes_before")?,
                at: row.try_get("at")?,
                channels,
                fire_at: row.try_get("fire_at")?,
            });
    }
    Ok(out)
}

fn channel_names(channels: &[ReminderChannel]) -> Vec<&'static str> {
    channels
        .iter()
        .map(|c| match c {
            ReminderChannel::Email => "email",
            ReminderChannel::Push => "push",
        })
        .collect()
}

/// Brings `task`'s stored reminders in line with `specs` (when given: the
/// list is replaced, keeping the ids of reminders that did not change) and
/// with the task's due date and status. Returns the reminders as stored.
pub async fn sync(
    client: &impl GenericClient,
    task: &Task,
    current: &[Reminder],
    specs: Option<&[ReminderSpec]>,
) -> Result<Vec<Reminder>, RepoError> {
    let mut kept: Vec<Reminder> = Vec::new();
    for reminder in current {
        if specs.is_none_or(|s| s.contains(&reminder.spec())) {
            kept.push(reminder.clone());
        } else {
            client
                .execute("DELETE FROM reminders WHERE id = $1", &[&reminder.id])
                .await?;
        }
    }
    let pending = task.status == Status::Pending;
    let mut out = Vec::with_capacity(kept.len());
    for mut reminder in kept {
        let next = fire_at(reminder.spec().trigger, task.due_at, pending);
        if next != reminder.fire_at {
            client
                .execute(
                    "UPDATE reminders SET fire_at = $2 WHERE id = $1",
                    &[&reminder.id, &next],
                )
                .await?;
            reminder.fire_at = next;
        }
        out.push(reminder);
    }
    for spec in specs.unwrap_or(&[]) {
        if current.iter().any(|r| r.spec() == *spec) {
            continue;
        }
        let (minutes_before, at) = match spec.trigger {
            Trigger::Before(m) => (Some(m), None),
            Trigger::At(at) => (None, Some(at)),
        };
        let reminder = Reminder {
            id: Uuid::now_v7(),
            minutes_before,
            at,
            channels: spec.channels.clone(),
            fire_at: fire_at(spec.trigger, task.due_at, pending),
        };
        client
            .execute(
                "INSERT INTO reminders (id, task_id, user_id, minutes_before, at, channels, fire_at, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    &reminder.id,
                    &task.id,
                    &task.user_id,
                    &reminder.minutes_before,
                    &reminder.at,
                    &channel_names(&reminder.channels),
                    &reminder.fire_at,
                    &Utc::now(),
                ],
            )
            .await?;
        out.push(reminder);
    }
    Ok(out)
}

/// The firings of a task's reminders as it stands.
pub fn firings(task: &Task) -> Vec<Firing> {
    task.reminders
        .iter()
        .filter_map(|r| {
            Some(Firing {
                reminder_id: r.id,
                fire_at: r.fire_at?,
                occurrence_due_at: task.due_at,
                channels: r.channels.clone(),
            })
        })
        .collect()
}
