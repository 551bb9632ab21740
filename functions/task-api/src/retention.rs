//! The retention job: prunes the change feed, sent outbox rows of the other
//! topics and old `Idempotency-Key` records, each on its own horizon
//! (task_domain::prune documents them).
//!
//! Shaped like audit's retention: a Dapr job registered at start with
//! overwrite (a changed schedule replaces the old one) fires
//! `POST /job/change-retention` on a replica whose sidecar the scheduler
//! picks; one-shot jobs named `change-retention-<anything>` run the same
//! prune now. The route sits behind the callback token like every job
//! trigger, and answers when the prune is done so daprd sees a failure.

use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};
use chrono::{TimeDelta, Utc};
use dapr_http::{AppToken, DaprClient, JobSpec, behind_app_token};
use service::openapi::RouteTable;
use settings::{SettingError, Settings};
use task_domain::TaskRepository;
use task_domain::prune::{self, Horizons, PruneReport};

use crate::error::ApiError;

/// Days the change feed (`task-updates` rows) is kept: a client further
/// behind gets a reset.
pub const ENV_CHANGE_RETENTION_DAYS: &str = "CHANGE_RETENTION_DAYS";
pub const DEFAULT_CHANGE_RETENTION_DAYS: u32 = 7;
/// Hours sent rows of the other topics are kept (for inspection only).
pub const ENV_SENT_RETENTION_HOURS: &str = "OUTBOX_SENT_RETENTION_HOURS";
pub const DEFAULT_SENT_RETENTION_HOURS: u32 = 24;
/// Hours an `Idempotency-Key` is remembered: a retry after that is a new
/// request.
pub const ENV_IDEMPOTENCY_RETENTION_HOURS: &str = "IDEMPOTENCY_RETENTION_HOURS";
pub const DEFAULT_IDEMPOTENCY_RETENTION_HOURS: u32 = 24;
/// The job's schedule in the Dapr scheduler.
pub const ENV_RETENTION_SCHEDULE: &str = "CHANGE_RETENTION_SCHEDULE";
pub const DEFAULT_RETENTION_SCHEDULE: &str = "@every 1h";
/// Rows per delete statement: small transactions, however much expired.
pub const ENV_RETENTION_BATCH: &str = "CHANGE_RETENTION_BATCH";
pub const DEFAULT_RETENTION_BATCH: i64 = 5_000;

/// The route the Dapr scheduler triggers jobs at (daprd 1.18.2
/// `pkg/channel/http/http_channel.go`: `/job/<name>`).
pub const JOB_ROUTE: &str = "/job/{name}";
/// The scheduled job's name.
pub const RETENTION_JOB: &str = "change-retention";
/// One-shot jobs with this prefix run the same prune.
pub const RETENTION_JOB_PREFIX: &str = "change-retention-";

/// The job's settings (config.rs reads them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionConfig {
    pub horizons: Horizons,
    /// The schedule in the Dapr scheduler (`@every 1h`, `@daily`, cron).
    pub schedule: String,
    /// Rows per delete statement.
    pub batch: i64,
}

impl RetentionConfig {
    pub fn from_settings(s: &Settings<'_>) -> Result<Self, SettingError> {
        let at_least_one = |key: &str, value: u32| {
            if value == 0 {
                Err(SettingError::Invalid {
                    key: key.to_owned(),
                    value: "0".to_owned(),
                    reason: "must be at least 1".to_owned(),
                })
            } else {
                Ok(value)
            }
        };
        let days = at_least_one(
            ENV_CHANGE_RETENTION_DAYS,
            s.parsed(ENV_CHANGE_RETENTION_DAYS, DEFAULT_CHANGE_RETENTION_DAYS)?,
        )?;
        let sent = at_least_one(
            ENV_SENT_RETENTION_HOURS,
            s.parsed(ENV_SENT_RETENTION_HOURS, DEFAULT_SENT_RETENTION_HOURS)?,
        )?;
        let idempotency = at_least_one(
            ENV_IDEMPOTENCY_RETENTION_HOURS,
            s.parsed(
                ENV_IDEMPOTENCY_RETENTION_HOURS,
                DEFAULT_IDEMPOTENCY_RETENTION_HOURS,
            )?,
        )?;
        let batch: i64 = s.parsed(ENV_RETENTION_BATCH, DEFAULT_RETENTION_BATCH)?;
        if !(1..=1_000_000).contains(&batch) {
            return Err(SettingError::Invalid {
                key: ENV_RETENTION_BATCH.to_owned(),
                value: batch.to_string(),
                reason: "must be between 1 and 1000000".to_owned(),
            });
        }
        Ok(Self {
            horizons: Horizons {
                change_feed: TimeDelta::days(i64::from(days)),
                sent_events: TimeDelta::hours(i64::from(sent)),
                idempotency_keys: TimeDelta::hours(i64::from(idempotency)),
            },
            schedule: s.string(ENV_RETENTION_SCHEDULE, DEFAULT_RETENTION_SCHEDULE),
            batch,
        })
    }
}

#[derive(Clone)]
pub(crate) struct Retention {
    repo: TaskRepository,
    config: RetentionConfig,
}

/// The job trigger's route, by path: [`crate::callback_paths`] names it
/// as internal for the OpenAPI drift test.
pub(crate) fn table() -> RouteTable<Retention> {
    RouteTable::new().route(JOB_ROUTE, post(run_job))
}

/// `POST /job/{name}` ([`table`]) behind `token`. The relay's own
/// `/job/outbox-relay` is a static route and wins over the parameter.
pub fn router(repo: TaskRepository, config: RetentionConfig, token: AppToken) -> Router {
    behind_app_token(table().into_router(), token).with_state(Retention { repo, config })
}

#[tracing::instrument(skip(retention))]
async fn run_job(
    State(retention): State<Retention>,
    Path(name): Path<String>,
) -> Result<Json<PruneReport>, ApiError> {
    if name != RETENTION_JOB && !name.starts_with(RETENTION_JOB_PREFIX) {
        tracing::warn!(job = %name, "unknown job triggered");
        return Err(ApiError::NotFound("job"));
    }
    let report = prune::prune(
        retention.repo.pool(),
        retention.config.horizons,
        Utc::now(),
        retention.config.batch,
    )
    .await?;
    tracing::info!(
        job = %name,
        change_feed = report.change_feed,
        sent_events = report.sent_events,
        idempotency_keys = report.idempotency_keys,
        batches = report.batches,
        "retention prune done"
    );
    Ok(Json(report))
}

/// The repeating job as registered in the scheduler.
pub fn job_spec(schedule: &str) -> JobSpec {
    JobSpec::repeating(schedule, "change feed and outbox retention")
}

/// Registers the job in the background (dapr_http::jobs).
pub async fn register_job(dapr: DaprClient, schedule: String) {
    dapr_http::jobs::register_repeating(
        dapr,
        RETENTION_JOB,
        job_spec(&schedule),
        "CHANGE_RETENTION_SCHEDULE",
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<RetentionConfig, SettingError> {
        let map: HashMap<&str, &str> = pairs.iter().copied().collect();
        RetentionConfig::from_settings(&Settings::new(&map))
    }

    #[test]
    fn defaults_are_the_documented_horizons() {
        let c = config(&[]).unwrap();
        assert_eq!(c.horizons.change_feed, TimeDelta::days(7));
        assert_eq!(c.horizons.sent_events, TimeDelta::hours(24));
        assert_eq!(c.horizons.idempotency_keys, TimeDelta::hours(24));
        assert_eq!((c.schedule.as_str(), c.batch), ("@every 1h", 5_000));
        let c = config(&[
            ("CHANGE_RETENTION_DAYS", "30"),
            ("OUTBOX_SENT_RETENTION_HOURS", "2"),
        ]);
        let c = c.unwrap();
        assert_eq!(c.horizons.change_feed, TimeDelta::days(30));
        assert_eq!(c.horizons.sent_events, TimeDelta::hours(2));
    }

    #[test]
    fn zero_horizons_and_bad_batches_stop_the_start() {
        for (key, value) in [
            ("CHANGE_RETENTION_DAYS", "0"),
            ("IDEMPOTENCY_RETENTION_HOURS", "0"),
            ("CHANGE_RETENTION_BATCH", "0"),
            ("CHANGE_RETENTION_DAYS", "a week"),
        ] {
            let err = config(&[(key, value)]).unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    #[test]
    fn the_job_overwrites_and_carries_the_schedule() {
        let json = serde_json::to_value(job_spec("@every 1h")).unwrap();
        assert_eq!(json["schedule"], "@every 1h");
        assert_eq!(json["overwrite"], true);
        assert!(json.get("dueTime").is_none());
    }
}
