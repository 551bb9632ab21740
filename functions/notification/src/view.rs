//! notification's own view of each reminder, built only from `reminders`
//! events and kept in the Dapr state store (key `view|<reminder id>`).
//!
//! A task change emits `reminder.cancelled` for a withdrawn firing and
//! then `reminder.scheduled` for the new one, with the task's `sequence`,
//! on the user's partition (shared/task-domain/src/reminder.rs). So the
//! view applies an event unless it is older than what it holds, and a
//! cancel applies only to the firing the view holds: a redelivered
//! cancel of an old firing never withdraws the new one. A cancel for a
//! reminder never seen leaves a tombstone, so a late, older schedule
//! cannot bring it back.
//!
//! Sequences cannot stop a redelivery that is not older than the view (a
//! Kafka redelivery of the last event, a replay from `reminders-dlq`, a
//! view already expired): [`too_late`] does. A firing more than the
//! lateness limit in the past when its event or trigger arrives gets no
//! job and sends nothing; its deliveries are recorded as missed.

use std::time::Duration;

use chrono::{DateTime, Utc};
use contracts::{ReminderChannel, ReminderEventData};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::jobs::JobName;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReminderView {
    pub reminder_id: Uuid,
    pub task_id: Uuid,
    pub user_id: String,
    pub sequence: i64,
    pub fire_at: DateTime<Utc>,
    pub occurrence_due_at: Option<DateTime<Utc>>,
    pub channels: Vec<ReminderChannel>,
    pub title: String,
    /// The scheduling token's `email` claim, when task-api sent one.
    #[serde(default)]
    pub email: Option<String>,
    /// The task's IANA zone, for showing the due time.
    #[serde(default)]
    pub time_zone: Option<String>,
    pub cancelled: bool,
}

impl ReminderView {
    pub fn key(reminder_id: Uuid) -> String {
        format!("view|{reminder_id}")
    }

    fn from_event(data: &ReminderEventData, cancelled: bool) -> Self {
        Self {
            reminder_id: data.reminder_id,
            task_id: data.task_id,
            user_id: data.user_id.clone(),
            sequence: data.sequence,
            fire_at: data.fire_at,
            occurrence_due_at: data.occurrence_due_at,
            channels: data.channels.clone(),
            title: data.title.clone(),
            email: data.email.clone(),
            time_zone: data.time_zone.clone(),
            cancelled,
        }
    }

    pub fn job(&self) -> JobName {
        JobName::firing(self.reminder_id, self.fire_at)
    }

    /// Whether a trigger for `fire_at` should send: the view holds that
    /// firing and it is not cancelled (else it was superseded or withdrawn).
    /// Compared to the millisecond: job names carry milliseconds, task
    /// times carry PostgreSQL's microseconds.
    pub fn is_live_firing(&self, fire_at: DateTime<Utc>) -> bool {
        !self.cancelled && self.fire_at.timestamp_millis() == fire_at.timestamp_millis()
    }
}

/// Whether a firing at `fire_at` is more than `limit` in the past at
/// `now`: then it is recorded as missed instead of being sent.
pub fn too_late(fire_at: DateTime<Utc>, now: DateTime<Utc>, limit: Duration) -> bool {
    (now - fire_at).to_std().is_ok_and(|late| late > limit)
}

/// What applying one event means for the view and the scheduler.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// The view to store, if it changes.
    pub view: Option<ReminderView>,
    /// Jobs to delete (a withdrawn or superseded firing).
    pub delete: Vec<JobName>,
    /// A job to create or overwrite, at the view's firing time.
    pub schedule: Option<JobName>,
}

impl Applied {
    fn nothing() -> Self {
        Self {
            view: None,
            delete: Vec::new(),
            schedule: None,
        }
    }
}

/// Applies `reminder.scheduled` (`scheduled = true`) or
/// `reminder.cancelled` to the current view.
pub fn apply(current: Option<&ReminderView>, data: &ReminderEventData, scheduled: bool) -> Applied {
    let stale = current.is_some_and(|c| c.sequence > data.sequence);
    if scheduled {
        if stale {
            return Applied::nothing();
        }
        let mut view = ReminderView::from_event(data, false);
        // An event without the claim (a change by a token without one, the
        // recurring function's successor) does not erase the address.
        if view.email.is_none() {
            view.email = current.and_then(|c| c.email.clone());
        }
        let delete = current
            .filter(|c| !c.cancelled && c.fire_at != data.fire_at)
            .map(ReminderView::job)
            .into_iter()
            .collect();
        return Applied {
            schedule: Some(view.job()),
            view: Some(view),
            delete,
        };
    }
    let withdrawn = JobName::firing(data.reminder_id, data.fire_at);
    match current {
        // A cancel of the firing the view holds, or of a reminder never
        // seen (tombstone).
        Some(c) if !stale && c.fire_at == data.fire_at => Applied {
            view: Some(ReminderView {
                sequence: data.sequence,
                cancelled: true,
                ..c.clone()
            }),
            delete: vec![withdrawn],
            schedule: None,
        },
        None => Applied {
            view: Some(ReminderView::from_event(data, true)),
            delete: vec![withdrawn],
            schedule: None,
        },
        // An older firing than the one held: its job goes, the view stays.
        Some(c) if c.fire_at != data.fire_at => Applied {
            view: None,
            delete: vec![withdrawn],
            schedule: None,
        },
        Some(_) => Applied::nothing(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap()
    }

    fn event(id: Uuid, sequence: i64, fire: i64, title: &str) -> ReminderEventData {
        ReminderEventData {
            reminder_id: id,
            task_id: Uuid::from_u128(7),
            user_id: "u".into(),
            sequence,
            fire_at: t(fire),
            occurrence_due_at: None,
            channels: vec![ReminderChannel::Email],
            title: title.into(),
            email: None,
            time_zone: None,
        }
    }

    /// Folds events through `apply`, as the store would.
    fn fold(events: &[(ReminderEventData, bool)]) -> Option<ReminderView> {
        let mut view: Option<ReminderView> = None;
        for (data, scheduled) in events {
            if let Some(next) = apply(view.as_ref(), data, *scheduled).view {
                view = Some(next);
            }
        }
        view
    }

    #[test]
    fn a_reschedule_moves_the_job_and_the_old_trigger_sends_nothing() {
        let id = Uuid::from_u128(1);
        let first = apply(None, &event(id, 1, 100, "a"), true);
        assert_eq!(first.schedule, Some(JobName::firing(id, t(100))));
        let view = first.view.unwrap();
        // task-api's order for a moved firing: cancel old, schedule new.
        let cancel = apply(Some(&view), &event(id, 2, 100, "a"), false);
        let view = cancel.view.unwrap();
        let moved = apply(Some(&view), &event(id, 2, 200, "a"), true);
        assert_eq!(moved.schedule, Some(JobName::firing(id, t(200))));
        let view = moved.view.unwrap();
        assert!(!view.is_live_firing(t(100)));
        assert!(view.is_live_firing(t(200)));
    }

    #[test]
    fn a_trigger_names_its_firing_to_the_millisecond() {
        let id = Uuid::from_u128(5);
        let mut data = event(id, 1, 100, "a");
        data.fire_at += chrono::Duration::microseconds(123_456);
        let view = apply(None, &data, true).view.unwrap();
        let job = JobName::parse(&view.job().render()).unwrap();
        let JobName::Firing { fire_at, .. } = job else {
            panic!("{job:?}")
        };
        assert!(view.is_live_firing(fire_at));
    }

    #[test]
    fn a_retitle_keeps_the_firing_and_shows_the_new_title() {
        let id = Uuid::from_u128(2);
        let view = fold(&[
            (event(id, 1, 100, "old"), true),
            (event(id, 2, 100, "new"), true),
        ])
        .unwrap();
        assert_eq!(view.title, "new");
        assert!(view.is_live_firing(t(100)));
    }

    #[test]
    fn an_event_without_the_email_claim_keeps_the_address() {
        let id = Uuid::from_u128(8);
        let mut first = event(id, 1, 100, "a");
        first.email = Some("a@example.test".into());
        let view = fold(&[(first, true), (event(id, 2, 200, "b"), true)]).unwrap();
        assert_eq!(view.email.as_deref(), Some("a@example.test"));
        let mut changed = event(id, 3, 200, "b");
        changed.email = Some("b@example.test".into());
        let view = apply(Some(&view), &changed, true).view.unwrap();
        assert_eq!(view.email.as_deref(), Some("b@example.test"));
    }

    #[test]
    fn a_redelivered_old_cancel_does_not_withdraw_the_new_firing() {
        let id = Uuid::from_u128(3);
        let view = fold(&[
            (event(id, 1, 100, "a"), true),
            (event(id, 2, 100, "a"), false),
            (event(id, 2, 200, "a"), true),
            (event(id, 2, 100, "a"), false),
        ])
        .unwrap();
        assert!(view.is_live_firing(t(200)));
    }

    #[test]
    fn a_redelivered_older_schedule_brings_back_nothing() {
        let id = Uuid::from_u128(6);
        let old = event(id, 1, 100, "a");
        let view = fold(&[
            (old.clone(), true),
            (event(id, 2, 100, "a"), false),
            (event(id, 2, 200, "b"), true),
        ])
        .unwrap();
        let again = apply(Some(&view), &old, true);
        assert_eq!(again, Applied::nothing(), "no view change, no job");
        let completed = fold(&[(old.clone(), true), (event(id, 3, 100, "a"), false)]).unwrap();
        assert_eq!(apply(Some(&completed), &old, true), Applied::nothing());
    }

    #[test]
    fn a_cancel_before_its_schedule_leaves_a_tombstone() {
        let id = Uuid::from_u128(4);
        let view = fold(&[
            (event(id, 3, 100, "a"), false),
            (event(id, 1, 100, "a"), true),
        ])
        .unwrap();
        assert!(view.cancelled);
    }

    #[test]
    fn a_firing_is_too_late_only_past_the_limit() {
        let limit = Duration::from_secs(900);
        let now = t(10_000);
        assert!(!too_late(t(10_000 + 60), now, limit), "in the future");
        assert!(!too_late(now, now, limit));
        assert!(!too_late(t(10_000 - 900), now, limit), "exactly the limit");
        assert!(too_late(t(10_000 - 901), now, limit));
        assert!(too_late(t(0), now, limit), "hours past");
    }

    proptest! {
        // Whatever the redeliveries, the view ends as the last event of
        // the highest sequence says (events of one task come in sequence
        // order on one partition; redelivery repeats a prefix).
        #[test]
        fn redelivery_of_a_prefix_changes_nothing(fires in proptest::collection::vec(0i64..5, 1..6),
                                                  replay in 0usize..6) {
            let id = Uuid::from_u128(9);
            let mut events = Vec::new();
            for (i, fire) in fires.iter().enumerate() {
                let seq = i as i64 + 1;
                if let Some((prev, true)) = events.last().cloned() {
                    let prev: ReminderEventData = prev;
                    if prev.fire_at != t(*fire) {
                        events.push((event(id, seq, prev.fire_at.timestamp(), "x"), false));
                    }
                }
                events.push((event(id, seq, *fire, "x"), true));
            }
            let once = fold(&events).unwrap();
            let mut twice = events.clone();
            twice.extend(events[..replay.min(events.len())].iter().cloned());
            let again = fold(&twice).unwrap();
            prop_assert_eq!(&once, &again);
            prop_assert!(once.is_live_firing(t(*fires.last().unwrap())));
        }
    }
}
