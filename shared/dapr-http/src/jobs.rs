//! Repeating Dapr jobs that a function registers at start (retention,
//! pruning): the spec they share and the registration loop.
//!
//! Registration runs in the background, so start-up and event handling
//! never wait for the scheduler; it retries while daprd (or its scheduler
//! connection) is not up yet. A schedule daprd refuses is a configuration
//! error that retrying cannot fix, so it is logged, naming the setting, and
//! left.

use std::time::Duration;

use crate::{DaprClient, DaprError, JobSpec};

/// The longest wait between two registration attempts.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

impl JobSpec {
    /// A job that fires on `schedule` and replaces any job of the same name
    /// (a changed schedule takes effect at the next start). `data` must not
    /// be empty: daprd 1.18.2 cannot deliver a job without it (its log:
    /// "google.protobuf.Value: none of the oneof fields is set"; tried).
    pub fn repeating(schedule: &str, purpose: &str) -> Self {
        Self {
            schedule: Some(schedule.to_owned()),
            due_time: None,
            repeats: None,
            ttl: None,
            data: serde_json::json!({ "purpose": purpose }),
            overwrite: true,
            failure_policy: None,
        }
    }
}

/// Registers `spec` as job `name`; `setting` names the variable its
/// schedule came from, for the error a refused schedule logs.
pub async fn register_repeating(dapr: DaprClient, name: &str, spec: JobSpec, setting: &str) {
    let schedule = spec.schedule.clone().unwrap_or_default();
    let mut delay = Duration::from_millis(500);
    loop {
        match dapr.schedule_job(name, &spec).await {
            Ok(()) => {
                tracing::info!(job = name, %schedule, "job registered");
                return;
            }
            Err(DaprError::Rejected { status, body }) => {
                tracing::error!(job = name, %schedule, status, %body, setting,
                    "daprd refused the job; check its schedule setting");
                return;
            }
            Err(error) => {
                tracing::info!(job = name, %error, "daprd not ready for jobs; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_RETRY_DELAY);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeating_job_overwrites_carries_its_schedule_and_data() {
        let json = serde_json::to_value(JobSpec::repeating("@daily", "retention")).unwrap();
        assert_eq!(json["schedule"], "@daily");
        assert_eq!(json["overwrite"], true);
        assert_eq!(json["data"]["purpose"], "retention");
        assert!(json.get("dueTime").is_none());
    }
}
