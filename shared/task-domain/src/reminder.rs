//! Reminders: what a client asks for, when each fires, and which firings a
//! change schedules or withdraws.
//!
//! A relative reminder fires `minutes_before` the task's due date, so moving
//! the due date moves it; an absolute one fires `at` a fixed time. A reminder
//! fires only while its task is pending. A change that moves a firing emits
//! `reminder.cancelled` for the old firing and then `reminder.scheduled` for
//! the new one (same partition, so in that order): a consumer that keys its
//! work by `(reminder_id, occurrence_due_at)` needs no other rule.

use chrono::{DateTime, Datelike, Duration, Utc};
use contracts::ReminderChannel;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::model::ValidationError;

pub const MAX_REMINDERS: usize = 10;
/// One year: a reminder further ahead of its due date is a mistake.
pub const MAX_MINUTES_BEFORE: i32 = 525_600;

/// A reminder as a client sends it: exactly one of `minutes_before` or `at`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReminderInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minutes_before: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
    pub channels: Vec<ReminderChannel>,
}

/// When a reminder fires, relative to its task or at a fixed time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trigger {
    Before(i32),
    At(DateTime<Utc>),
}

/// A validated reminder spec (no id yet).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReminderSpec {
    pub trigger: Trigger,
    /// Sorted and unique.
    pub channels: Vec<ReminderChannel>,
}

/// A stored reminder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reminder {
    pub id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minutes_before: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
    pub channels: Vec<ReminderChannel>,
    /// When it fires next; `None` while the task is completed.
    pub fire_at: Option<DateTime<Utc>>,
}

impl Reminder {
    pub fn spec(&self) -> ReminderSpec {
        ReminderSpec {
            trigger: match (self.minutes_before, self.at) {
                (Some(m), _) => Trigger::Before(m),
                (None, Some(at)) => Trigger::At(at),
                // The table's CHECK makes this unreachable; an absolute
                // reminder at the epoch is the harmless reading.
                (None, None) => Trigger::At(DateTime::<Utc>::UNIX_EPOCH),
            },
            channels: self.channels.clone(),
        }
    }
}

fn invalid(message: impl Into<String>) -> ValidationError {
    ValidationError {
        field: "reminders",
        message: message.into(),
    }
}

/// Validates a reminder list against the task's due date.
pub fn validate_reminders(
    inputs: &[ReminderInput],
    due_at: Option<DateTime<Utc>>,
) -> Result<Vec<ReminderSpec>, ValidationError> {
    if inputs.len() > MAX_REMINDERS {
        return Err(invalid(format!("at most {MAX_REMINDERS} reminders")));
    }
    let mut specs: Vec<ReminderSpec> = Vec::with_capacity(inputs.len());
    for input in inputs {
        let trigger = match (input.minutes_before, input.at) {
            (Some(m), None) if (0..=MAX_MINUTES_BEFORE).contains(&m) => {
                if due_at.is_none() {
                    return Err(invalid("a minutes_before reminder needs the task's due_at"));
                }
                Trigger::Before(m)
            }
            (Some(_), None) => {
                return Err(invalid(format!(
                    "minutes_before must be 0 to {MAX_MINUTES_BEFORE}"
                )));
            }
            (None, Some(at)) if crate::recurrence::YEARS.contains(&at.year()) => Trigger::At(at),
            (None, Some(_)) => return Err(invalid("at must be in the years 1 to 9999")),
            _ => return Err(invalid("give exactly one of minutes_before or at")),
        };
        let mut channels = input.channels.clone();
        channels.sort_by_key(|c| *c as u8);
        channels.dedup();
        if channels.is_empty() {
            return Err(invalid("channels must name email, push or both"));
        }
        let spec = ReminderSpec { trigger, channels };
        if specs.contains(&spec) {
            return Err(invalid("the same reminder is listed twice"));
        }
        specs.push(spec);
    }
    Ok(specs)
}

/// When a reminder with `trigger` fires for a task due at `due_at`, if the
/// task is pending.
pub fn fire_at(
    trigger: Trigger,
    due_at: Option<DateTime<Utc>>,
    pending: bool,
) -> Option<DateTime<Utc>> {
    if !pending {
        return None;
    }
    match trigger {
        Trigger::Before(minutes) => due_at.map(|d| d - Duration::minutes(i64::from(minutes))),
        Trigger::At(at) => Some(at),
    }
}

/// One reminder's firing, before or after a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Firing {
    pub reminder_id: Uuid,
    pub fire_at: DateTime<Utc>,
    pub occurrence_due_at: Option<DateTime<Utc>>,
    pub channels: Vec<ReminderChannel>,
}

/// What a change does to firings: `cancelled` (old firings withdrawn) then
/// `scheduled` (new firings), each in reminder order.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FiringDiff {
    pub cancelled: Vec<Firing>,
    pub scheduled: Vec<Firing>,
}

/// Compares firings before and after a change. A reminder whose firing
/// time (and channels) did not change produces nothing, even if its task's
/// due date moved (an absolute reminder); channel-only edits reschedule,
/// since the notification function must learn them.
pub fn diff_firings(before: &[Firing], after: &[Firing]) -> FiringDiff {
    let same = |a: &Firing, b: &Firing| {
        (a.reminder_id, a.fire_at, &a.channels) == (b.reminder_id, b.fire_at, &b.channels)
    };
    FiringDiff {
        cancelled: before
            .iter()
            .filter(|b| !after.iter().any(|a| same(a, b)))
            .cloned()
            .collect(),
        scheduled: after
            .iter()
            .filter(|a| !before.iter().any(|b| same(a, b)))
            .cloned()
            .collect(),
    }
}

/// When a change alters what a reminder shows (its task's title or due
/// time), every firing after it that is still to come (after `now`) is
/// scheduled again, not only the moved ones: the notification function
/// keeps its own view and learns the new title only from
/// `reminder.scheduled`. A firing already past is not shown again: it has
/// fired, and scheduling it anew would send it late (to a device added
/// since, or again once its delivery record expired).
pub fn reshow(
    mut diff: FiringDiff,
    after: &[Firing],
    shown_changed: bool,
    now: DateTime<Utc>,
) -> FiringDiff {
    if shown_changed {
        for firing in after.iter().filter(|f| f.fire_at > now) {
            if !diff.scheduled.contains(firing) {
                diff.scheduled.push(firing.clone());
            }
        }
    }
    diff
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap()
    }

    #[test]
    fn relative_reminders_need_a_due_date_and_one_kind() {
        let rel = ReminderInput {
            minutes_before: Some(15),
            at: None,
            channels: vec![ReminderChannel::Push],
        };
        assert!(validate_reminders(std::slice::from_ref(&rel), None).is_err());
        assert!(validate_reminders(std::slice::from_ref(&rel), Some(t(0))).is_ok());
        let both = ReminderInput {
            at: Some(t(5)),
            ..rel.clone()
        };
        assert!(validate_reminders(&[both], Some(t(0))).is_err());
        let no_channel = ReminderInput {
            channels: vec![],
            ..rel.clone()
        };
        assert!(validate_reminders(&[no_channel], Some(t(0))).is_err());
        assert!(validate_reminders(&[rel.clone(), rel], Some(t(0))).is_err());
    }

    #[test]
    fn moving_the_due_date_moves_relative_firings() {
        let r = Uuid::now_v7();
        let firing = |due: i64| Firing {
            reminder_id: r,
            fire_at: fire_at(Trigger::Before(10), Some(t(due)), true).unwrap(),
            occurrence_due_at: Some(t(due)),
            channels: vec![ReminderChannel::Email],
        };
        let diff = diff_firings(&[firing(3600)], &[firing(7200)]);
        assert_eq!(diff.cancelled[0].fire_at, t(3000));
        assert_eq!(diff.scheduled[0].fire_at, t(6600));
        assert_eq!(
            diff_firings(&[firing(3600)], &[firing(3600)]),
            FiringDiff::default()
        );
        assert_eq!(fire_at(Trigger::At(t(1)), None, false), None);
    }

    #[test]
    fn a_retitle_schedules_every_firing_again_once() {
        let firing = |r: u128, s: i64| Firing {
            reminder_id: Uuid::from_u128(r),
            fire_at: t(s),
            occurrence_due_at: None,
            channels: vec![ReminderChannel::Email],
        };
        let after = [firing(1, 10), firing(2, 20)];
        let moved = diff_firings(&[firing(1, 10), firing(2, 5)], &after);
        assert_eq!(moved.scheduled, vec![firing(2, 20)]);
        let shown = reshow(moved, &after, true, t(0));
        assert_eq!(shown.scheduled, vec![firing(2, 20), firing(1, 10)]);
        assert_eq!(shown.cancelled, vec![firing(2, 5)]);
        let quiet = reshow(diff_firings(&after, &after), &after, false, t(0));
        assert_eq!(quiet, FiringDiff::default());
    }

    #[test]
    fn a_retitle_does_not_schedule_a_firing_already_past() {
        let firing = |r: u128, s: i64| Firing {
            reminder_id: Uuid::from_u128(r),
            fire_at: t(s),
            occurrence_due_at: None,
            channels: vec![ReminderChannel::Email],
        };
        let after = [firing(1, 10), firing(2, 20)];
        let shown = reshow(diff_firings(&after, &after), &after, true, t(15));
        assert_eq!(shown.scheduled, vec![firing(2, 20)]);
        assert!(shown.cancelled.is_empty());
    }

    proptest! {
        #[test]
        fn diff_is_exact(before in proptest::collection::vec((0u8..6, 0i64..4), 0..6),
                         after in proptest::collection::vec((0u8..6, 0i64..4), 0..6)) {
            let ids: Vec<Uuid> = (0..6).map(|_| Uuid::now_v7()).collect();
            let mk = |v: &[(u8, i64)]| -> Vec<Firing> {
                let mut seen = std::collections::HashSet::new();
                v.iter().filter(|(i, _)| seen.insert(*i)).map(|(i, s)| Firing {
                    reminder_id: ids[*i as usize],
                    fire_at: t(*s),
                    occurrence_due_at: None,
                    channels: vec![ReminderChannel::Push],
                }).collect()
            };
            let (b, a) = (mk(&before), mk(&after));
            let diff = diff_firings(&b, &a);
            // Applying the diff to `before` gives exactly `after`.
            let mut result: Vec<Firing> = b.iter().filter(|f| !diff.cancelled.contains(f)).cloned().collect();
            result.extend(diff.scheduled.iter().cloned());
            let key = |f: &Firing| (f.reminder_id, f.fire_at);
            let mut want: Vec<_> = a.iter().map(key).collect();
            let mut got: Vec<_> = result.iter().map(key).collect();
            want.sort();
            got.sort();
            prop_assert_eq!(want, got);
        }
    }
}
