//! The Dapr jobs notification schedules, and their names.
//!
//! One job per firing, named from (reminder id, firing time), so a
//! redelivered `reminder.scheduled` overwrites the same job and a
//! `reminder.cancelled` knows which one to delete without a lookup. A
//! failed send gets one one-shot retry job per attempt, named from the
//! delivery and the attempt. daprd 1.18.2 fires a job as `POST
//! /job/<name>` with the job's `data` (a `google.protobuf.Value`) as the
//! JSON body (`pkg/channel/http/http_channel.go`, `constructJobRequest`);
//! the name alone says what to do here, the body is not needed.

use chrono::{DateTime, Utc};
use dapr_http::JobSpec;
use uuid::Uuid;

use crate::delivery::Target;

const FIRING: &str = "reminder-";
const RETRY: &str = "retry-";

/// What a job name stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobName {
    /// The firing of a reminder at a time.
    Firing {
        reminder_id: Uuid,
        fire_at: DateTime<Utc>,
    },
    /// Attempt `attempt` (1-based, counting retries) of one delivery.
    Retry {
        reminder_id: Uuid,
        fire_at: DateTime<Utc>,
        target: Target,
        attempt: u32,
    },
}

impl JobName {
    pub fn firing(reminder_id: Uuid, fire_at: DateTime<Utc>) -> Self {
        JobName::Firing {
            reminder_id,
            fire_at,
        }
    }

    /// Letters, digits and `-` only: a valid job name and URL path segment.
    pub fn render(&self) -> String {
        match self {
            JobName::Firing {
                reminder_id,
                fire_at,
            } => format!(
                "{FIRING}{}-{}",
                reminder_id.simple(),
                fire_at.timestamp_millis()
            ),
            JobName::Retry {
                reminder_id,
                fire_at,
                target,
                attempt,
            } => format!(
                "{RETRY}{}-{}-{}-{attempt}",
                reminder_id.simple(),
                fire_at.timestamp_millis(),
                target.render()
            ),
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        if let Some(rest) = name.strip_prefix(FIRING) {
            let (id, millis) = rest.split_once('-')?;
            return Some(JobName::Firing {
                reminder_id: parse_id(id)?,
                fire_at: parse_millis(millis)?,
            });
        }
        let rest = name.strip_prefix(RETRY)?;
        let mut parts = rest.splitn(3, '-');
        let reminder_id = parse_id(parts.next()?)?;
        let fire_at = parse_millis(parts.next()?)?;
        let (target, attempt) = parts.next()?.rsplit_once('-')?;
        Some(JobName::Retry {
            reminder_id,
            fire_at,
            target: Target::parse(target)?,
            attempt: attempt.parse().ok().filter(|a| *a >= 1)?,
        })
    }
}

fn parse_id(id: &str) -> Option<Uuid> {
    // Only the 32-digit form we write: one name, one job.
    (id.len() == 32).then(|| Uuid::try_parse(id).ok()).flatten()
}

fn parse_millis(millis: &str) -> Option<DateTime<Utc>> {
    if millis.starts_with('+') || millis.starts_with('0') && millis.len() > 1 {
        return None;
    }
    DateTime::from_timestamp_millis(millis.parse().ok()?)
}

/// A one-shot job at `due`. Overwrite: a redelivered event (or a retried
/// schedule) replaces the job of the same name instead of failing.
///
/// Failure policy: a trigger the app could not take (down, restarting, or
/// answering non-2xx) is offered again every [`TRIGGER_RETRY_INTERVAL`]
/// until it is taken. Without a policy the scheduler applies its default,
/// constant 1 s with `maxRetries` 3 (go-etcd-cron v0.12.6
/// `internal/scheduler/builder.go`), and then drops the firing
/// (`internal/counter/counter.go`: retried while `MaxRetries` is nil or
/// not yet exceeded), so an app down for ~3 s around the due time would
/// lose the reminder. daprd passes `maxRetries` through as given, nil
/// included (dapr 1.18.2 `pkg/scheduler/server/api.go`). A retried
/// trigger cannot send twice: the delivery record guards the send.
pub fn one_shot(due: DateTime<Utc>, data: serde_json::Value) -> JobSpec {
    JobSpec {
        schedule: None,
        due_time: Some(due.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        repeats: None,
        ttl: None,
        data,
        overwrite: true,
        failure_policy: Some(serde_json::json!({
            "constant": { "interval": format!("{}s", TRIGGER_RETRY_INTERVAL.as_secs()) }
        })),
    }
}

/// How often a trigger the app did not take is offered again.
pub const TRIGGER_RETRY_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn target_strategy() -> impl Strategy<Value = Target> {
        prop_oneof![
            Just(Target::Email),
            any::<u128>().prop_map(|n| Target::Push(Uuid::from_u128(n))),
        ]
    }

    proptest! {
        // Every name the function schedules is answered by the trigger
        // route (`/job/{name}`: one path segment) and parses back to
        // what it was made from.
        #[test]
        fn every_scheduled_name_round_trips(id in any::<u128>(),
                                            millis in 0i64..8_000_000_000_000,
                                            target in target_strategy(),
                                            attempt in 1u32..20) {
            let fire_at = DateTime::from_timestamp_millis(millis).unwrap();
            let reminder_id = Uuid::from_u128(id);
            for job in [JobName::firing(reminder_id, fire_at),
                        JobName::Retry { reminder_id, fire_at, target: target.clone(), attempt }] {
                let name = job.render();
                prop_assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'), "{}", name);
                prop_assert_eq!(JobName::parse(&name), Some(job));
            }
        }

        #[test]
        fn parse_never_panics(name in ".{0,120}") {
            let _ = JobName::parse(&name);
        }
    }

    #[test]
    fn foreign_names_are_not_ours() {
        for name in [
            "audit-retention",
            "reminder-",
            "reminder-xyz-1",
            "retry-1-2-email-0",
        ] {
            assert_eq!(JobName::parse(name), None, "{name}");
        }
    }

    #[test]
    fn one_shot_jobs_overwrite_at_an_rfc3339_time() {
        let due = DateTime::from_timestamp_millis(1_700_000_000_123).unwrap();
        let json = serde_json::to_value(one_shot(due, serde_json::json!({}))).unwrap();
        assert_eq!(json["dueTime"], "2023-11-14T22:13:20.123Z");
        assert_eq!(json["overwrite"], true);
        assert!(json.get("schedule").is_none());
    }

    #[test]
    fn a_trigger_the_app_misses_is_offered_again_without_end() {
        let due = DateTime::from_timestamp_millis(1_700_000_000_123).unwrap();
        let json = serde_json::to_value(one_shot(due, serde_json::json!({}))).unwrap();
        assert_eq!(json["failurePolicy"]["constant"]["interval"], "2s");
        assert!(
            json["failurePolicy"]["constant"]
                .get("maxRetries")
                .is_none()
        );
    }
}
