//! What clients send: the create and patch bodies, parsed strictly (unknown
//! fields refused) and validated into the values a change writes.
//!
//! [`parse_create`] and [`parse_patch`] are the request-parsing entry points
//! the fuzz target (`shared/task-domain/fuzz`) and the property tests drive.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

use crate::model::{
    Priority, Task, ValidationError, normalise_tags, validate_description, validate_time_zone,
    validate_title,
};
use crate::recurrence::Recurrence;
use crate::reminder::{ReminderInput, ReminderSpec, validate_reminders};

/// What a client sends to create a task. Unknown fields are refused.
/// `Serialize` gives the canonical form Idempotency-Key replays compare.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskInput {
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub priority: Option<Priority>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub due_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub time_zone: Option<String>,
    #[serde(default)]
    pub recurrence: Option<Recurrence>,
    /// The rule as an RFC 5545 RRULE, instead of `recurrence` (the subset
    /// [`crate::rrule::parse`] accepts). Left out of the canonical form
    /// when absent, so Idempotency-Key hashes of earlier requests hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rrule: Option<String>,
    #[serde(default)]
    pub reminders: Option<Vec<ReminderInput>>,
}

/// The longest RRULE accepted: the longest supported one is far shorter.
pub const MAX_RRULE_CHARS: usize = 500;

/// The recurrence a create asks for: the JSON rule, or the RRULE read
/// against the task's first due date and zone.
fn requested_recurrence(
    input: &TaskInput,
    time_zone: &str,
) -> Result<Option<Recurrence>, ValidationError> {
    let invalid = |message: String| ValidationError {
        field: "rrule",
        message,
    };
    let Some(text) = &input.rrule else {
        return Ok(input.recurrence.clone());
    };
    if input.recurrence.is_some() {
        return Err(invalid("give recurrence or rrule, not both".to_owned()));
    }
    if text.chars().count() > MAX_RRULE_CHARS {
        return Err(invalid(format!("at most {MAX_RRULE_CHARS} characters")));
    }
    let due = input
        .due_at
        .ok_or_else(|| invalid("a recurring task needs a due_at".to_owned()))?;
    // An unknown zone is reported on its own field; UTC stands in here.
    let tz: chrono_tz::Tz = time_zone.parse().unwrap_or(chrono_tz::Tz::UTC);
    crate::rrule::parse(text, due.with_timezone(&tz).naive_local(), tz)
        .map(Some)
        .map_err(|e| invalid(format!("unsupported RRULE part {e}")))
}

/// The editable fields of a task, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskFields {
    pub title: String,
    pub description: String,
    pub priority: Priority,
    pub tags: Vec<String>,
    pub due_at: Option<DateTime<Utc>>,
    pub time_zone: String,
    pub recurrence: Option<Recurrence>,
}

/// A validated new task.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    pub fields: TaskFields,
    pub reminders: Vec<ReminderSpec>,
}

/// A partial update. Absent fields stay; `null` clears the nullable ones
/// (`due_at`, `recurrence`) and is refused for the others (a shape error,
/// 422), which have no empty state a `null` could mean; `reminders`
/// replaces the whole list.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskPatch {
    #[serde(default, deserialize_with = "not_null")]
    pub title: Option<String>,
    #[serde(default, deserialize_with = "not_null")]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "not_null")]
    pub priority: Option<Priority>,
    #[serde(default, deserialize_with = "not_null")]
    pub tags: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    pub due_at: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "not_null")]
    pub time_zone: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub recurrence: Option<Option<Recurrence>>,
    #[serde(default, deserialize_with = "not_null")]
    pub reminders: Option<Vec<ReminderInput>>,
}

/// A field that may be left out but not sent as `null`: serde's own
/// `Option` reads `null` as "left out". Read through `Option` so a `null`
/// is a shape error (422) for every type; an enum read directly would call
/// it malformed JSON.
fn not_null<'de, T, D>(d: D) -> Result<Option<T>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    match Option::<T>::deserialize(d)? {
        Some(value) => Ok(Some(value)),
        None => Err(serde::de::Error::custom(
            "invalid type: null, expected a value (leave the field out to keep it)",
        )),
    }
}

/// Tells a field sent as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// The result of applying a patch: the new fields, the reminder list if the
/// patch replaced it, and the names of the fields that really changed.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchOutcome {
    pub fields: TaskFields,
    pub reminders: Option<Vec<ReminderSpec>>,
    pub changed: Vec<String>,
}

/// Collects every broken rule instead of stopping at the first.
#[derive(Default)]
struct Errors(Vec<ValidationError>);

impl Errors {
    fn keep<T: Default>(&mut self, r: Result<T, ValidationError>) -> T {
        r.unwrap_or_else(|e| {
            self.0.push(e);
            T::default()
        })
    }

    fn finish<T>(self, value: T) -> Result<T, Vec<ValidationError>> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self.0)
        }
    }
}

/// Checks the due date's range and the rule against it. `start` says
/// whether the rule's fit with the due date is checked (a create, or a patch
/// that changes the due date, the zone or the rule): an untouched older row
/// stays editable.
fn check_schedule(
    errors: &mut Errors,
    recurrence: Option<&Recurrence>,
    due_at: Option<DateTime<Utc>>,
    time_zone: &str,
    start: bool,
) {
    // An unknown zone is reported on its own field; UTC stands in here.
    let tz: chrono_tz::Tz = time_zone.parse().unwrap_or(chrono_tz::Tz::UTC);
    if let Some(due) = due_at
        && !crate::recurrence::in_years(due, tz)
    {
        errors.0.push(ValidationError {
            field: "due_at",
            message: "must be in the years 1 to 9999, in UTC and in the task's time zone"
                .to_owned(),
        });
        return;
    }
    let Some(r) = recurrence else { return };
    match r.validate(due_at.is_some()) {
        Err(e) => errors.0.push(e),
        Ok(()) if start => {
            if let Some(due) = due_at {
                errors.keep(r.validate_start(due.with_timezone(&tz).date_naive()));
            }
        }
        Ok(()) => {}
    }
}

impl TaskInput {
    /// Checks every rule and reports all broken ones at once.
    pub fn validate(self) -> Result<NewTask, Vec<ValidationError>> {
        let mut e = Errors::default();
        let title = e.keep(validate_title(&self.title));
        let description = e.keep(validate_description(
            self.description.as_deref().unwrap_or(""),
        ));
        let time_zone = e.keep(validate_time_zone(
            self.time_zone.as_deref().unwrap_or("UTC"),
        ));
        let tags = e.keep(normalise_tags(self.tags.as_deref().unwrap_or(&[])));
        let recurrence = e.keep(requested_recurrence(&self, &time_zone));
        check_schedule(&mut e, recurrence.as_ref(), self.due_at, &time_zone, true);
        let reminders = e.keep(validate_reminders(
            self.reminders.as_deref().unwrap_or(&[]),
            self.due_at,
        ));
        e.finish(NewTask {
            fields: TaskFields {
                title,
                description,
                priority: self.priority.unwrap_or_default(),
                tags,
                due_at: self.due_at,
                time_zone,
                recurrence,
            },
            reminders,
        })
    }
}

impl TaskPatch {
    /// Applies the patch to `current`, validating the merged task.
    pub fn apply(self, current: &Task) -> Result<PatchOutcome, Vec<ValidationError>> {
        let mut e = Errors::default();
        let start = self.due_at.is_some() || self.time_zone.is_some() || self.recurrence.is_some();
        let mut f = TaskFields {
            title: current.title.clone(),
            description: current.description.clone(),
            priority: current.priority,
            tags: current.tags.clone(),
            due_at: current.due_at,
            time_zone: current.time_zone.clone(),
            recurrence: current.recurrence.clone(),
        };
        let mut changed = Vec::new();
        let mut set = |name: &str, differs: bool| {
            if differs {
                changed.push(name.to_owned());
            }
        };
        if let Some(title) = self.title {
            f.title = e.keep(validate_title(&title));
            set("title", f.title != current.title);
        }
        if let Some(description) = self.description {
            f.description = e.keep(validate_description(&description));
            set("description", f.description != current.description);
        }
        if let Some(priority) = self.priority {
            f.priority = priority;
            set("priority", priority != current.priority);
        }
        if let Some(tags) = self.tags {
            f.tags = e.keep(normalise_tags(&tags));
            set("tags", f.tags != current.tags);
        }
        if let Some(due_at) = self.due_at {
            f.due_at = due_at;
            set("due_at", due_at != current.due_at);
        }
        if let Some(tz) = self.time_zone {
            f.time_zone = e.keep(validate_time_zone(&tz));
            set("time_zone", f.time_zone != current.time_zone);
        }
        if let Some(recurrence) = self.recurrence {
            f.recurrence = recurrence;
            set("recurrence", f.recurrence != current.recurrence);
        }
        check_schedule(&mut e, f.recurrence.as_ref(), f.due_at, &f.time_zone, start);
        let current_specs: Vec<ReminderSpec> = current.reminders.iter().map(|r| r.spec()).collect();
        let reminders = match &self.reminders {
            Some(inputs) => {
                let specs = e.keep(validate_reminders(inputs, f.due_at));
                set("reminders", specs != current_specs);
                Some(specs)
            }
            // The kept reminders must still make sense with a new due date.
            None if f.due_at.is_none() && current.due_at.is_some() => {
                let relative = current.reminders.iter().any(|r| r.minutes_before.is_some());
                if relative {
                    e.0.push(ValidationError {
                        field: "reminders",
                        message: "a minutes_before reminder needs the task's due_at".to_owned(),
                    });
                }
                None
            }
            None => None,
        };
        e.finish(PatchOutcome {
            fields: f,
            reminders,
            changed,
        })
    }
}

/// Why a body could not be read as a request.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// Not JSON at all: the client's 400.
    #[error("malformed JSON: {0}")]
    Syntax(String),
    /// JSON of the wrong shape (types, unknown or missing fields): 422.
    #[error("{0}")]
    Shape(String),
    #[error("the task is not valid")]
    Invalid(Vec<ValidationError>),
}

fn from_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ParseError> {
    serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ParseError::Shape(e.to_string()),
        _ => ParseError::Syntax(e.to_string()),
    })
}

/// Parses and validates a create body.
pub fn parse_create(body: &[u8]) -> Result<NewTask, ParseError> {
    from_json::<TaskInput>(body)?
        .validate()
        .map_err(ParseError::Invalid)
}

/// Parses a patch body and applies it to `current`.
pub fn parse_patch(body: &[u8], current: &Task) -> Result<PatchOutcome, ParseError> {
    from_json::<TaskPatch>(body)?
        .apply(current)
        .map_err(ParseError::Invalid)
}

/// Runs every request parser over `body`: as a create body, as a patch of
/// a sample task, and as a `GET /api/tasks` query string. The fuzz target
/// (`fuzz/fuzz_targets/parse_request.rs`) and the property tests call this;
/// the only requirement is that it returns.
pub fn parse_any(body: &[u8]) {
    let _ = parse_create(body);
    let sample = sample_task();
    let _ = parse_patch(body, &sample);
    if let Ok(text) = std::str::from_utf8(body)
        && let Ok(params) = serde_urlencoded::from_str::<crate::query::ListParams>(text)
    {
        let _ = params.validate();
    }
}

/// A pending task with a due date and a relative reminder, the state most
/// patch rules depend on.
pub(crate) fn sample_task() -> Task {
    let at = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap_or_default();
    Task {
        id: uuid::Uuid::nil(),
        user_id: "fuzz".to_owned(),
        title: "Sample".to_owned(),
        description: String::new(),
        status: crate::model::Status::Pending,
        priority: Priority::Medium,
        tags: vec!["home".to_owned()],
        due_at: Some(at),
        time_zone: "Europe/Paris".to_owned(),
        recurrence: None,
        series_id: None,
        occurrence: 1,
        series: None,
        rrule: None,
        reminders: vec![crate::reminder::Reminder {
            id: uuid::Uuid::nil(),
            minutes_before: Some(30),
            at: None,
            channels: vec![contracts::ReminderChannel::Push],
            fire_at: Some(at),
        }],
        created_at: at,
        updated_at: at,
        completed_at: None,
        sequence: 1,
    }
}

#[cfg(test)]
#[path = "input_tests.rs"]
mod tests;
