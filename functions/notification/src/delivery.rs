//! One delivery per (reminder, firing, channel, device), at most once.
//!
//! The record (key `delivery|<reminder>|<firing ms>|<target>`) is claimed
//! with a first write before the send and moved on with its ETag after
//! it, so of two triggers for the same firing (daprd's failure policy, a
//! second replica) only one sends, and a trigger after a successful send
//! finds `sent` and sends nothing.
//!
//! A send whose outcome cannot be known is never repeated by itself,
//! because a reminder twice is worse than a late failure report: a send
//! that timed out or broke after the request went out (the push service
//! or SMTP server may have taken it), or a record left `sending` by a
//! process that died mid-send. Such a delivery becomes `unknown`: listed
//! for admins beside the failed ones, re-sent only when an admin asks.
//! A `sending` record younger than [`IN_FLIGHT_LIMIT`] may still be an
//! attempt under way, so its trigger is answered 503 and daprd offers it
//! again until the record settles or ages into `unknown`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Where one delivery goes: the user's email, or one push device.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "channel", content = "device_id", rename_all = "lowercase")]
pub enum Target {
    Email,
    Push(Uuid),
}

impl Target {
    /// Letters, digits and `-` (part of job names and state keys).
    pub fn render(&self) -> String {
        match self {
            Target::Email => "email".to_owned(),
            Target::Push(device) => format!("push-{}", device.simple()),
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        if s == "email" {
            return Some(Target::Email);
        }
        let id = s.strip_prefix("push-")?;
        (id.len() == 32)
            .then(|| Uuid::try_parse(id).ok())
            .flatten()
            .map(Target::Push)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// An attempt is under way (or died mid-send: see [`claim`]).
    Sending,
    Sent,
    /// Waiting for its retry job.
    Retrying,
    /// Gave up; published to `reminders-dlq`; an admin may retry it.
    Failed,
    /// The send may or may not have reached the user (a timeout or broken
    /// connection after the request went out, or a crash mid-send): never
    /// re-sent by itself; listed and published like a failure, and an
    /// admin may retry it, accepting a possible second message.
    Unknown,
    /// The firing was already more than the lateness limit in the past
    /// when it reached the function: not sent (a reminder hours late is
    /// worse than none).
    Missed,
    /// Nothing to send to (the device was removed as expired, or the user
    /// has no email address).
    Skipped,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    pub reminder_id: Uuid,
    pub task_id: Uuid,
    pub user_id: String,
    pub fire_at: DateTime<Utc>,
    pub target: Target,
    pub title: String,
    pub status: Status,
    /// Attempts started so far.
    pub attempts: u32,
    #[serde(default)]
    pub last_error: Option<String>,
    pub updated_at: DateTime<Utc>,
}

impl DeliveryRecord {
    pub fn key_of(reminder_id: Uuid, fire_at: DateTime<Utc>, target: &Target) -> String {
        format!(
            "delivery|{}|{}|{}",
            reminder_id.simple(),
            fire_at.timestamp_millis(),
            target.render()
        )
    }

    pub fn key(&self) -> String {
        Self::key_of(self.reminder_id, self.fire_at, &self.target)
    }

    /// The public id of a delivery in the API: its key without the prefix.
    pub fn id(&self) -> String {
        self.key().trim_start_matches("delivery|").replace('|', ".")
    }

    /// The key for an id from the API (the inverse of [`Self::id`]).
    pub fn key_from_id(id: &str) -> Option<String> {
        let mut parts = id.split('.');
        let (reminder, millis, target) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let reminder_id = Uuid::try_parse(reminder).ok()?;
        let fire_at = DateTime::from_timestamp_millis(millis.parse().ok()?)?;
        Some(Self::key_of(reminder_id, fire_at, &Target::parse(target)?))
    }
}

/// The longest one send may take: past it, the attempt is abandoned as
/// of unknown outcome. Above the channels' own timeouts (push: 10 s;
/// email: 10 s to log in, 10 s for the envelope and message), so it only
/// ends a send that hangs where they do not look (a DNS lookup).
pub const SEND_DEADLINE: Duration = Duration::from_secs(30);
/// A `sending` record older than this belongs to an attempt that died
/// (no live attempt outlasts [`SEND_DEADLINE`]; the margin covers the
/// reads and writes around the send and clock skew between replicas).
pub const IN_FLIGHT_LIMIT: Duration = Duration::from_secs(60);

/// What a trigger may do with a delivery, given its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// No record: claim it with a first write, then send.
    Create,
    /// A retry job whose turn it is: move the record on by its ETag.
    Resume,
    /// `sending`, recently: maybe an attempt under way elsewhere. Send
    /// nothing, and have the trigger offered again to look later.
    InFlight,
    /// `sending` for longer than any attempt lives: it died mid-send.
    /// Record it as unknown (by ETag); send nothing.
    Abandoned,
    /// Sent, failed, unknown, missed, or not this job's turn: send nothing.
    Nothing,
}

/// `attempt`: `None` for the firing itself, `Some(k)` for the k-th retry.
pub fn claim(record: Option<&DeliveryRecord>, attempt: Option<u32>, now: DateTime<Utc>) -> Claim {
    match (record, attempt) {
        (None, None) => Claim::Create,
        (Some(r), _) if r.status == Status::Sending => {
            let age = (now - r.updated_at).to_std().unwrap_or_default();
            if age > IN_FLIGHT_LIMIT {
                Claim::Abandoned
            } else {
                Claim::InFlight
            }
        }
        (Some(r), Some(k)) if r.status == Status::Retrying && r.attempts == k => Claim::Resume,
        _ => Claim::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: Status, attempts: u32) -> DeliveryRecord {
        DeliveryRecord {
            reminder_id: Uuid::from_u128(1),
            task_id: Uuid::from_u128(2),
            user_id: "u".into(),
            fire_at: DateTime::from_timestamp_millis(1_000).unwrap(),
            target: Target::Push(Uuid::from_u128(3)),
            title: "t".into(),
            status,
            attempts,
            last_error: None,
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn only_the_first_trigger_and_the_due_retry_send() {
        let now = Utc::now();
        assert_eq!(claim(None, None, now), Claim::Create);
        assert_eq!(
            claim(None, Some(1), now),
            Claim::Nothing,
            "retry of nothing"
        );
        for status in [
            Status::Sent,
            Status::Failed,
            Status::Unknown,
            Status::Missed,
            Status::Skipped,
        ] {
            assert_eq!(claim(Some(&record(status, 1)), None, now), Claim::Nothing);
            assert_eq!(
                claim(Some(&record(status, 1)), Some(1), now),
                Claim::Nothing
            );
        }
        let waiting = record(Status::Retrying, 2);
        assert_eq!(claim(Some(&waiting), Some(2), now), Claim::Resume);
        assert_eq!(
            claim(Some(&waiting), Some(1), now),
            Claim::Nothing,
            "an old retry job"
        );
        assert_eq!(
            claim(Some(&waiting), None, now),
            Claim::Nothing,
            "the firing again"
        );
    }

    #[test]
    fn a_sending_record_is_never_sent_again_and_ages_into_unknown() {
        let sending = record(Status::Sending, 1);
        let young = sending.updated_at + chrono::Duration::seconds(5);
        let limit = chrono::Duration::from_std(IN_FLIGHT_LIMIT).unwrap();
        let old = sending.updated_at + limit + chrono::Duration::seconds(1);
        for attempt in [None, Some(1), Some(2)] {
            assert_eq!(claim(Some(&sending), attempt, young), Claim::InFlight);
            assert_eq!(
                claim(Some(&sending), attempt, sending.updated_at + limit),
                Claim::InFlight
            );
            assert_eq!(claim(Some(&sending), attempt, old), Claim::Abandoned);
        }
        // A clock behind the writer's reads as young, not as abandoned.
        let behind = sending.updated_at - chrono::Duration::seconds(30);
        assert_eq!(claim(Some(&sending), None, behind), Claim::InFlight);
        assert!(SEND_DEADLINE < IN_FLIGHT_LIMIT);
    }

    #[test]
    fn ids_round_trip_to_keys() {
        let r = record(Status::Sent, 1);
        assert_eq!(DeliveryRecord::key_from_id(&r.id()), Some(r.key()));
        assert_eq!(DeliveryRecord::key_from_id("x.y.z"), None);
        assert_eq!(
            DeliveryRecord::key_from_id(&format!("{}.extra", r.id())),
            None
        );
        for t in [Target::Email, Target::Push(Uuid::from_u128(5))] {
            assert_eq!(Target::parse(&t.render()), Some(t));
        }
    }
}
