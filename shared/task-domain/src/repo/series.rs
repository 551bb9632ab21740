//! Recurring series in the repository: anchoring a task's series when it
//! is created or its schedule is edited, and storing the anchor.

use chrono::NaiveDateTime;
use chrono_tz::Tz;
use deadpool_postgres::GenericClient;
use uuid::Uuid;

use super::RepoError;
use crate::model::Task;
use crate::recurrence::{End, Recurrence};
use crate::series::SeriesStart;

/// The anchor as its columns store it.
pub(super) struct Columns {
    pub start: Option<NaiveDateTime>,
    pub zone: Option<String>,
    pub index: Option<i32>,
}

impl Columns {
    pub fn of(task: &Task) -> Self {
        let anchor = task.series.as_ref();
        Self {
            start: anchor.map(|a| a.local),
            zone: anchor.map(|a| a.tz.name().to_owned()),
            index: anchor.and_then(|a| i32::try_from(a.index).ok()),
        }
    }
}

/// The rule without its end: editing only when a series ends keeps its
/// anchor, anything else re-anchors it.
fn pattern(rule: &Recurrence) -> Recurrence {
    Recurrence {
        end: End::Never,
        ..rule.clone()
    }
}

/// `task` with its series id and anchor brought up to date. A recurring
/// task gets a series id once and keeps it; its anchor is set when it
/// starts recurring and moved to this occurrence when its due date, zone
/// or pattern is edited (the occurrence keeps its index, so later ones
/// still count on from it). A task that stops recurring keeps both, as
/// history; nothing reads them without a rule.
pub(super) fn anchored(mut task: Task, before: Option<&Task>) -> Task {
    let (Some(rule), Some(due)) = (task.recurrence.as_ref(), task.due_at) else {
        return task.derive();
    };
    let Ok(tz) = task.time_zone.parse::<Tz>() else {
        return task.derive();
    };
    let edited = before.is_none_or(|b| {
        b.due_at != task.due_at
            || b.time_zone != task.time_zone
            || b.recurrence.as_ref().map(pattern) != Some(pattern(rule))
    });
    if task.series_id.is_none() {
        task.series_id = Some(Uuid::now_v7());
    }
    if edited || task.series.is_none() {
        let index = u32::try_from(task.occurrence).unwrap_or(1).max(1);
        task.series = Some(SeriesStart::at(due, tz, index));
    }
    task.derive()
}

/// Writes the task's series id and anchor.
pub(super) async fn store(client: &impl GenericClient, task: &Task) -> Result<(), RepoError> {
    let anchor = Columns::of(task);
    client
        .execute(
            "UPDATE tasks SET series_id = $2, series_start = $3, series_time_zone = $4,
                    series_start_index = $5
             WHERE id = $1",
            &[
                &task.id,
                &task.series_id,
                &anchor.start,
                &anchor.zone,
                &anchor.index,
            ],
        )
        .await?;
    Ok(())
}
