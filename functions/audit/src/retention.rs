//! Retention: entries older than the configured age are deleted by a Dapr
//! job.
//!
//! The job is registered in the Dapr scheduler at start (with overwrite, so
//! a changed schedule replaces the old one) and fires `POST /job/{name}`
//! on whichever replica's sidecar the scheduler picks. With audit at zero
//! replicas there is no sidecar to fire on, so the `scale-to-zero` profile
//! also sends that request from a Knative PingSource on the same schedule
//! (a binary-mode CloudEvent, which wakes the Service). The purge deletes in
//! bounded batches, each its own statement, so a backlog never becomes one
//! huge transaction, and progress survives a crash between batches.

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use dapr_http::{DaprClient, JobSpec};
use serde::Serialize;

use crate::AppState;
use crate::api::ApiError;
use crate::store::{AuditStore, StoreError};

/// The scheduled job's name.
pub const RETENTION_JOB: &str = "audit-retention";
/// One-shot jobs named `audit-retention-<anything>` run the same purge:
/// an operator (or a test) can trigger retention now through the real
/// scheduler without touching the daily job.
pub const RETENTION_JOB_PREFIX: &str = "audit-retention-";

/// What one purge did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PurgeReport {
    pub cutoff: DateTime<Utc>,
    pub deleted: u64,
    pub batches: u32,
}

/// Deletes up to `batch` rows older than `$1`, remembering per task the
/// highest sequence removed so the gap check does not report expired
/// entries as lost. SKIP LOCKED lets two overlapping runs share the work.
const PURGE_BATCH: &str = "
WITH doomed AS (
    SELECT event_id FROM audit_logs
    WHERE occurred_at < $1
    ORDER BY occurred_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM audit_logs a USING doomed d
    WHERE a.event_id = d.event_id
    RETURNING a.task_id, a.sequence
), floors AS (
    INSERT INTO audit_purged (task_id, through_sequence)
    SELECT task_id, max(sequence) FROM gone GROUP BY task_id
    ON CONFLICT (task_id) DO UPDATE
    SET through_sequence = GREATEST(audit_purged.through_sequence, EXCLUDED.through_sequence),
        purged_at = now()
)
SELECT count(*) FROM gone";

impl AuditStore {
    /// Deletes every entry whose `occurred_at` is before `cutoff`, `batch`
    /// rows at a time.
    pub async fn purge_before(
        &self,
        cutoff: DateTime<Utc>,
        batch: i64,
    ) -> Result<PurgeReport, StoreError> {
        let mut client = self.client().await?;
        let statement = client
            .prepare(PURGE_BATCH)
            .await
            .map_err(StoreError::from_db)?;
        let mut report = PurgeReport {
            cutoff,
            deleted: 0,
            batches: 0,
        };
        loop {
            let row = client
                .query_one(&statement, &[&cutoff, &batch])
                .await
                .map_err(StoreError::from_db)?;
            let deleted: i64 = row.try_get(0).map_err(StoreError::from_db)?;
            report.deleted += deleted as u64;
            report.batches += 1;
            if deleted < batch {
                return Ok(report);
            }
        }
    }
}

/// The cutoff for entries kept `days` days, as of `now`.
pub fn cutoff(now: DateTime<Utc>, days: u32) -> DateTime<Utc> {
    // A retention longer than chrono's calendar keeps everything; plain
    // subtraction would panic on every ingest instead.
    chrono::TimeDelta::try_days(i64::from(days))
        .and_then(|age| now.checked_sub_signed(age))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// `POST /job/{name}`: daprd, or a PingSource, triggering a job. The body
/// (the job's data, or the PingSource's binary-mode CloudEvent data, or
/// nothing) is not read: the name says what to run. Answers only when the
/// purge is done, so the caller sees a failure (daprd then applies the
/// job's failure policy).
#[tracing::instrument(skip(state))]
pub async fn run_job(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<PurgeReport>, ApiError> {
    if name != RETENTION_JOB && !name.starts_with(RETENTION_JOB_PREFIX) {
        tracing::warn!(job = %name, "unknown job triggered");
        return Err(ApiError::UnknownJob(name));
    }
    let cutoff = cutoff(Utc::now(), state.retention.days);
    let report = state
        .store
        .purge_before(cutoff, state.retention.batch)
        .await?;
    tracing::info!(
        job = %name,
        deleted = report.deleted,
        batches = report.batches,
        %cutoff,
        "retention purge done"
    );
    Ok(Json(report))
}

/// The repeating job as registered in the scheduler.
pub fn job_spec(schedule: &str) -> JobSpec {
    JobSpec::repeating(schedule, "audit retention")
}

/// Registers the job in the background (dapr_http::jobs).
pub async fn register_job(dapr: DaprClient, schedule: String) {
    dapr_http::jobs::register_repeating(
        dapr,
        RETENTION_JOB,
        job_spec(&schedule),
        "AUDIT_RETENTION_SCHEDULE",
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Isolated, TestEntry};
    use chrono::Duration;
    use uuid::Uuid;

    #[test]
    fn a_huge_retention_keeps_everything_instead_of_panicking() {
        assert_eq!(cutoff(Utc::now(), u32::MAX), DateTime::<Utc>::MIN_UTC);
    }

    #[test]
    fn the_job_overwrites_and_carries_the_schedule() {
        let json = serde_json::to_value(job_spec("@daily")).unwrap();
        assert_eq!(json["schedule"], "@daily");
        assert_eq!(json["overwrite"], true);
        assert!(json.get("dueTime").is_none());
    }

    #[tokio::test]
    #[ignore = "needs PostgreSQL (DATABASE_URL): ./scripts/test runs it"]
    async fn a_row_91_days_old_goes_and_one_89_days_old_stays() {
        // A schema of its own: no concurrent purge can take the row, so
        // the report's count is exact.
        let isolated = Isolated::new().await;
        let store = isolated.store.clone();
        let now = Utc::now();
        let user = format!("retention-{}", Uuid::now_v7());
        let task = Uuid::now_v7();
        let old = TestEntry::new(&user, task, 1, now - Duration::days(91))
            .insert(&store)
            .await;
        let kept = TestEntry::new(&user, task, 2, now - Duration::days(89))
            .insert(&store)
            .await;

        // A batch of one: the loop runs until a batch comes back short.
        let report = store.purge_before(cutoff(now, 90), 1).await.unwrap();
        assert_eq!((report.deleted, report.batches), (1, 2), "{report:?}");
        assert!(store.get(&old).await.unwrap().is_none(), "91 days: gone");
        assert!(store.get(&kept).await.unwrap().is_some(), "89 days: kept");

        // The floor tells the gap check that sequence 1 expired, not lost.
        let gaps = store
            .gaps(&crate::gaps::GapQuery {
                task_id: Some(task),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(gaps.items.is_empty(), "{gaps:?}");
        isolated.drop_schema().await;
    }
}
