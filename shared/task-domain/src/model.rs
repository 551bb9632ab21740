//! Tasks and the validation of what clients send. Validation runs before
//! any database work, so every rule here is also a unit/property test.

use chrono::{DateTime, Utc};
use contracts::TaskSnapshot;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::recurrence::Recurrence;
use crate::reminder::Reminder;
use crate::series::{Occurrence, SeriesStart};

pub const MAX_TITLE_CHARS: usize = 500;
pub const MAX_DESCRIPTION_CHARS: usize = 10_000;
pub const MAX_TAGS: usize = 20;
pub const MAX_TAG_CHARS: usize = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Completed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Completed => "completed",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "pending" => Some(Status::Pending),
            "completed" => Some(Status::Completed),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    High,
    #[default]
    Medium,
    Low,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::High => "high",
            Priority::Medium => "medium",
            Priority::Low => "low",
        }
    }

    pub fn parse(s: &str) -> Option<Priority> {
        match s {
            "high" => Some(Priority::High),
            "medium" => Some(Priority::Medium),
            "low" => Some(Priority::Low),
            _ => None,
        }
    }
}

/// A stored task.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Task {
    pub id: Uuid,
    pub user_id: String,
    pub title: String,
    pub description: String,
    pub status: Status,
    pub priority: Priority,
    pub tags: Vec<String>,
    pub due_at: Option<DateTime<Utc>>,
    pub time_zone: String,
    pub recurrence: Option<Recurrence>,
    /// The recurring series this task is an occurrence of; every
    /// occurrence of a series carries the same id.
    pub series_id: Option<Uuid>,
    /// Which occurrence of its series this task is (1 for the first).
    pub occurrence: i32,
    /// The series' anchor (DTSTART): every occurrence is computed from it.
    #[serde(skip)]
    pub series: Option<SeriesStart>,
    /// The rule as an RFC 5545 RRULE (read-only; derived from `recurrence`
    /// and the anchor by [`Task::derive`]).
    pub rrule: Option<String>,
    pub reminders: Vec<Reminder>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub sequence: i64,
}

impl Task {
    /// The series' anchor: the stored one, or (for a row that has none) one
    /// at this occurrence's own due date.
    pub fn series_start(&self) -> Option<SeriesStart> {
        self.recurrence.as_ref()?;
        if let Some(start) = self.series {
            return Some(start);
        }
        let tz: chrono_tz::Tz = self.time_zone.parse().ok()?;
        let index = u32::try_from(self.occurrence).ok()?;
        Some(SeriesStart::at(self.due_at?, tz, index))
    }

    /// Brings the derived fields (`rrule`) in line with the stored ones.
    pub fn derive(mut self) -> Self {
        self.rrule = match (&self.recurrence, self.series_start()) {
            (Some(rule), Some(start)) => crate::rrule::format(rule, &start),
            _ => None,
        };
        self
    }

    /// This task as an occurrence of its series.
    pub fn as_occurrence(&self) -> Option<Occurrence> {
        Some(Occurrence {
            due: self.due_at?,
            index: u32::try_from(self.occurrence).ok()?,
        })
    }

    /// The occurrence after this one once it is completed at
    /// `completed_at`, if the task recurs and its series has not ended:
    /// what `recurring` creates on completion.
    pub fn successor(&self, completed_at: DateTime<Utc>) -> Option<Occurrence> {
        let rule = self.recurrence.as_ref()?;
        rule.successor(&self.series_start()?, &self.as_occurrence()?, completed_at)
    }

    /// When the occurrence after this one is due (see [`Task::successor`]).
    pub fn next_due(&self, completed_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.successor(completed_at).map(|o| o.due)
    }

    /// The task as events carry it.
    pub fn snapshot(&self) -> TaskSnapshot {
        TaskSnapshot {
            id: self.id,
            user_id: self.user_id.clone(),
            title: self.title.clone(),
            description: self.description.clone(),
            status: self.status.as_str().to_owned(),
            priority: self.priority.as_str().to_owned(),
            tags: self.tags.clone(),
            due_at: self.due_at,
            time_zone: self.time_zone.clone(),
            recurrence: self
                .recurrence
                .as_ref()
                .and_then(|r| serde_json::to_value(r).ok()),
            series_id: self.series_id,
            occurrence: Some(self.occurrence),
            created_at: self.created_at,
            updated_at: self.updated_at,
            completed_at: self.completed_at,
            sequence: self.sequence,
        }
    }
}

/// One broken rule, by field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub field: &'static str,
    pub message: String,
}

pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> ValidationError {
    ValidationError {
        field,
        message: message.into(),
    }
}

/// PostgreSQL `text` and `jsonb` cannot hold U+0000: letting it through
/// would fail the write with a database error, a 500 instead of a 422.
pub(crate) fn has_nul(text: &str) -> bool {
    text.contains('\0')
}

pub fn validate_title(title: &str) -> Result<String, ValidationError> {
    let trimmed = title.trim();
    let chars = trimmed.chars().count();
    if chars == 0 {
        return Err(invalid("title", "must not be empty"));
    }
    if has_nul(trimmed) {
        return Err(invalid("title", "must not contain NUL characters"));
    }
    if chars > MAX_TITLE_CHARS {
        return Err(invalid(
            "title",
            format!("must be at most {MAX_TITLE_CHARS} characters"),
        ));
    }
    Ok(trimmed.to_owned())
}

pub fn validate_description(description: &str) -> Result<String, ValidationError> {
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(invalid(
            "description",
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    if has_nul(description) {
        return Err(invalid("description", "must not contain NUL characters"));
    }
    Ok(description.to_owned())
}

/// Trims, lower-cases and de-duplicates tags, keeping first-seen order.
pub fn normalise_tags(tags: &[String]) -> Result<Vec<String>, ValidationError> {
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for tag in tags {
        let tag = tag.trim().to_lowercase();
        if tag.is_empty() {
            return Err(invalid("tags", "tags must not be empty"));
        }
        if tag.chars().count() > MAX_TAG_CHARS || tag.chars().any(char::is_control) {
            return Err(invalid(
                "tags",
                format!("a tag is at most {MAX_TAG_CHARS} printable characters"),
            ));
        }
        if !out.contains(&tag) {
            out.push(tag);
        }
    }
    if out.len() > MAX_TAGS {
        return Err(invalid("tags", format!("at most {MAX_TAGS} tags")));
    }
    Ok(out)
}

/// An IANA time zone name, as chrono-tz knows it.
pub fn validate_time_zone(name: &str) -> Result<String, ValidationError> {
    name.parse::<chrono_tz::Tz>()
        .map(|tz| tz.name().to_owned())
        .map_err(|_| invalid("time_zone", format!("{name:?} is not an IANA time zone")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn nul_characters_are_refused_in_free_text() {
        assert!(validate_title("a\0b").is_err());
        assert!(validate_description("line\0").is_err());
        assert!(validate_description("two\nlines\tok").is_ok());
    }

    #[test]
    fn tags_are_normalised() {
        let tags = normalise_tags(&[" Home".into(), "home".into(), "WORK".into()]).unwrap();
        assert_eq!(tags, ["home", "work"]);
        let too_many: Vec<String> = (0..21).map(|i| format!("t{i}")).collect();
        assert!(normalise_tags(&too_many).is_err());
    }

    proptest! {
        #[test]
        fn title_length_rule_holds_for_any_text(title in "\\PC{0,600}") {
            let chars = title.trim().chars().count();
            let ok = validate_title(&title).is_ok();
            prop_assert_eq!(ok, (1..=MAX_TITLE_CHARS).contains(&chars));
        }

        #[test]
        fn normalised_tags_are_unique_lowercase_and_bounded(tags in proptest::collection::vec("[A-Za-z ]{1,8}", 0..30)) {
            if let Ok(out) = normalise_tags(&tags) {
                prop_assert!(out.len() <= MAX_TAGS);
                let mut dedup = out.clone();
                dedup.dedup();
                prop_assert_eq!(dedup.len(), out.len());
                prop_assert!(out.iter().all(|t| *t == t.to_lowercase() && t.trim() == t));
            }
        }

        #[test]
        fn any_time_zone_chrono_tz_knows_is_accepted(idx in 0usize..chrono_tz::TZ_VARIANTS.len()) {
            let tz = chrono_tz::TZ_VARIANTS[idx];
            prop_assert!(validate_time_zone(tz.name()).is_ok());
        }
    }
}
