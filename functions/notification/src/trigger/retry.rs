//! A delivery's retries: when the next attempt is due (a push service's
//! Retry-After capped, the time computed without overflow), its one-shot
//! job, and the retry that finds its firing gone.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::AppState;
use crate::delivery::{DeliveryRecord, Status};
use crate::error::ApiError;
use crate::jobs::{JobName, one_shot};
use crate::push::MAX_RETRY_AFTER;
use crate::state::StateError;

/// How long before the next attempt, if any is left. `attempts` counts
/// the one that just failed: the k-th failure waits the k-th delay; a
/// push service's Retry-After longer than that wins, up to
/// [`MAX_RETRY_AFTER`] (it is the push service's value, not ours).
pub(super) fn retry_delay(
    delays: &[Duration],
    attempts: u32,
    after: Option<Duration>,
) -> Option<Duration> {
    let delay = delays.get((attempts as usize).checked_sub(1)?)?;
    Some((*delay).max(after.unwrap_or_default().min(MAX_RETRY_AFTER)))
}

/// When a retry `delay` from `now` is due; `None` past chrono's range.
pub(super) fn retry_due(now: DateTime<Utc>, delay: Duration) -> Option<DateTime<Utc>> {
    now.checked_add_signed(chrono::Duration::from_std(delay).ok()?)
}

/// A retry whose firing is gone (the reminder cancelled or moved since):
/// no job will ever take its `retrying` record again, so it is settled as
/// skipped, by its ETag (a record that moved on since is left alone).
pub(super) async fn skip_gone_retry(state: &AppState, key: &str) -> Result<(), ApiError> {
    let Some(found) = state.state.get::<DeliveryRecord>(key).await? else {
        return Ok(());
    };
    if found.value.status != Status::Retrying {
        return Ok(());
    }
    let mut record = found.value;
    record.status = Status::Skipped;
    record.last_error = Some("reminder cancelled or moved".into());
    record.updated_at = Utc::now();
    match state
        .state
        .replace(key, &record, &found.etag, state.record_ttl)
        .await
    {
        Err(StateError::Conflict) => Ok(()),
        other => Ok(other?),
    }
}

pub(super) async fn schedule_retry(
    state: &AppState,
    record: &DeliveryRecord,
    delay: Duration,
) -> Result<(), String> {
    let job = JobName::Retry {
        reminder_id: record.reminder_id,
        fire_at: record.fire_at,
        target: record.target.clone(),
        attempt: record.attempts,
    };
    let due = retry_due(Utc::now(), delay)
        .ok_or_else(|| format!("a retry {} s away is out of range", delay.as_secs()))?;
    let spec = one_shot(due, serde_json::json!({"reminder_id": record.reminder_id}));
    state
        .dapr
        .schedule_job(&job.render(), &spec)
        .await
        .map_err(|error| {
            tracing::error!(%error, job = %job.render(), "retry job not scheduled");
            error.to_string()
        })
}
