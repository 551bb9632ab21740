//! The recurrence model and engine: which rule a task repeats by, whether a
//! rule is valid, and when its next occurrence is due.
//!
//! Rules are evaluated on the task's local calendar (its IANA zone, through
//! chrono-tz), so "every day at 09:00" stays at 09:00 across DST changes.
//! The occurrences themselves are computed from the series' anchor in
//! [`crate::series`]; this module is pure and has no I/O.

use chrono::{
    DateTime, Datelike, Days, LocalResult, Months, NaiveDate, NaiveDateTime, Offset, TimeZone, Utc,
    Weekday,
};
use std::ops::RangeInclusive;

use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::model::ValidationError;

/// Intervals beyond this are refused: a longer gap is not a recurrence.
pub const MAX_INTERVAL: u32 = 1000;
/// "After N occurrences" is bounded so a count is a plausible plan.
pub const MAX_COUNT: u32 = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Frequency {
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

/// A weekday as clients spell it: `mon` … `sun`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Day {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Day {
    pub const ALL: [Day; 7] = [
        Day::Mon,
        Day::Tue,
        Day::Wed,
        Day::Thu,
        Day::Fri,
        Day::Sat,
        Day::Sun,
    ];

    pub fn weekday(self) -> Weekday {
        match self {
            Day::Mon => Weekday::Mon,
            Day::Tue => Weekday::Tue,
            Day::Wed => Weekday::Wed,
            Day::Thu => Weekday::Thu,
            Day::Fri => Weekday::Fri,
            Day::Sat => Weekday::Sat,
            Day::Sun => Weekday::Sun,
        }
    }
}

/// "The 2nd Tuesday", or with `nth: -1`, "the last Friday" of a month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NthWeekday {
    /// 1 to 4, or -1 for the last one: these exist in every month.
    pub nth: i8,
    pub weekday: Day,
}

/// What the next due date is counted from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Anchor {
    /// A fixed schedule from the due date: completing late does not shift it.
    #[default]
    Schedule,
    /// Counted from the day the previous occurrence was completed.
    Completion,
}

/// When the series stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum End {
    #[default]
    Never,
    /// After this many occurrences in total (the first one included).
    After(u32),
    /// No occurrence falls after this local date.
    Until(NaiveDate),
}

/// A recurrence rule, stored as JSONB in `tasks.recurrence`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recurrence {
    pub frequency: Frequency,
    #[serde(default = "one")]
    pub interval: u32,
    /// Weekly only: the weekdays it falls on (default: the due date's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weekdays: Vec<Day>,
    /// Monthly only: the day of month, clamped to short months' last day
    /// (default: the due date's day).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub month_day: Option<u8>,
    /// Monthly only: an nth weekday instead of a day of month.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nth_weekday: Option<NthWeekday>,
    #[serde(default)]
    pub anchor: Anchor,
    #[serde(default)]
    pub end: End,
}

fn one() -> u32 {
    1
}

fn invalid(message: impl Into<String>) -> ValidationError {
    ValidationError {
        field: "recurrence",
        message: message.into(),
    }
}

impl Recurrence {
    /// Checks the rule's own consistency. `has_due` is whether the task has
    /// a due date: every rule keeps the due date's time of day, so it needs one.
    pub fn validate(&self, has_due: bool) -> Result<(), ValidationError> {
        if !has_due {
            return Err(invalid("a recurring task needs a due_at"));
        }
        if !(1..=MAX_INTERVAL).contains(&self.interval) {
            return Err(invalid(format!("interval must be 1 to {MAX_INTERVAL}")));
        }
        if !self.weekdays.is_empty() && self.frequency != Frequency::Weekly {
            return Err(invalid("weekdays are allowed only with weekly"));
        }
        let mut days = self.weekdays.clone();
        days.sort();
        days.dedup();
        if days.len() != self.weekdays.len() {
            return Err(invalid("weekdays must not repeat"));
        }
        if (self.month_day.is_some() || self.nth_weekday.is_some())
            && self.frequency != Frequency::Monthly
        {
            return Err(invalid(
                "month_day and nth_weekday are allowed only with monthly",
            ));
        }
        if self.month_day.is_some() && self.nth_weekday.is_some() {
            return Err(invalid("give month_day or nth_weekday, not both"));
        }
        if let Some(day) = self.month_day
            && !(1..=31).contains(&day)
        {
            return Err(invalid("month_day must be 1 to 31"));
        }
        if let Some(nth) = self.nth_weekday
            && !matches!(nth.nth, 1..=4 | -1)
        {
            return Err(invalid(
                "nth_weekday.nth must be 1 to 4, or -1 for the last",
            ));
        }
        if let End::After(count) = self.end
            && !(1..=MAX_COUNT).contains(&count)
        {
            return Err(invalid(format!("end.after must be 1 to {MAX_COUNT}")));
        }
        if let End::Until(until) = self.end
            && !YEARS.contains(&until.year())
        {
            return Err(invalid("end.until must be in the years 1 to 9999"));
        }
        Ok(())
    }

    /// Checks the rule against the series' first local due date: an end
    /// before it would leave a series with no occurrence (calendars drop
    /// it), and a first date that is not one of the rule's own dates makes
    /// an RFC 5545 set that RFC 5545 3.8.5.3 leaves undefined (calendar
    /// parsers expand it in different ways), so both are refused.
    pub fn validate_start(&self, first: NaiveDate) -> Result<(), ValidationError> {
        if let End::Until(until) = self.end
            && until < first
        {
            return Err(invalid(format!(
                "end.until {until} is before the due date's local date {first}"
            )));
        }
        if !self.falls_on(first) {
            return Err(invalid(format!(
                "the due date's local date {first} is not one of the rule's dates \
                 (its weekdays, month_day or nth_weekday)"
            )));
        }
        Ok(())
    }

    /// For an after-completion rule: the first date of the pattern in the
    /// period (day, week, month or year) `interval` periods after the one
    /// `base` (the completion's local day) falls in, where `first` is the
    /// series' anchor date the pattern (weekday, day of month) is read from.
    /// The completion's own period is never a series period: with interval
    /// 2, a weekly Friday completed on a Monday comes back on the Friday two
    /// weeks on, not four days later.
    pub(crate) fn next_date(&self, first: NaiveDate, base: NaiveDate) -> Option<NaiveDate> {
        let n = self.interval;
        match self.frequency {
            Frequency::Daily => base.checked_add_days(Days::new(u64::from(n))),
            Frequency::Weekly => {
                let monday = base - Days::new(u64::from(base.weekday().num_days_from_monday()));
                let week = monday.checked_add_days(Days::new(7 * u64::from(n)))?;
                let day = if self.weekdays.is_empty() {
                    first.weekday()
                } else {
                    self.weekdays
                        .iter()
                        .map(|d| d.weekday())
                        .min_by_key(|d| d.num_days_from_monday())?
                };
                week.checked_add_days(Days::new(u64::from(day.num_days_from_monday())))
            }
            Frequency::Monthly | Frequency::Yearly => {
                let months = match self.frequency {
                    Frequency::Yearly => n.checked_mul(12)?,
                    _ => n,
                };
                let start = base.with_day(1)?.checked_add_months(Months::new(months))?;
                match (self.frequency, self.nth_weekday) {
                    (Frequency::Monthly, Some(nth)) => nth_weekday_of(start, nth),
                    (Frequency::Yearly, _) => {
                        clamp_day(start.with_month(first.month())?, first.day())
                    }
                    _ => clamp_day(start, self.month_day.map_or(first.day(), u32::from)),
                }
            }
        }
    }
}

/// The day `day` of `month_start`'s month, or its last day if shorter.
pub(crate) fn clamp_day(month_start: NaiveDate, day: u32) -> Option<NaiveDate> {
    let next_month = month_start.checked_add_months(Months::new(1))?;
    let last = next_month.pred_opt()?.day();
    month_start.with_day(day.min(last))
}

pub(crate) fn nth_weekday_of(month_start: NaiveDate, nth: NthWeekday) -> Option<NaiveDate> {
    let want = nth.weekday.weekday();
    if nth.nth > 0 {
        NaiveDate::from_weekday_of_month_opt(
            month_start.year(),
            month_start.month(),
            want,
            u8::try_from(nth.nth).ok()?,
        )
    } else {
        let mut day = month_start.checked_add_months(Months::new(1))?.pred_opt()?;
        while day.weekday() != want {
            day = day.pred_opt()?;
        }
        Some(day)
    }
}

/// The calendar years a date may fall in: RFC 5545 writes a year with four
/// digits (3.3.4, `date-fullyear = 4DIGIT`), and a calendar feed or an RRULE
/// with any other year is unreadable to the clients the feed is for.
pub const YEARS: RangeInclusive<i32> = 1..=9999;

/// Whether an instant is inside [`YEARS`] both in UTC and on `tz`'s calendar.
pub fn in_years(t: DateTime<Utc>, tz: Tz) -> bool {
    YEARS.contains(&t.year()) && YEARS.contains(&t.with_timezone(&tz).year())
}

/// A local wall-clock time in `tz` as UTC, as RFC 5545 (3.3.5) reads a
/// local DATE-TIME: an ambiguous time (DST ends) is the first of the two
/// instants; a time skipped by a gap (DST starts) is read with the UTC
/// offset in force before the gap, so 02:30 on New York's spring-forward
/// day is 03:30 EDT. Only that one day moves: the series keeps 02:30.
pub fn to_utc(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.with_timezone(&Utc),
        LocalResult::None => {
            let mut probe = local;
            // Walk back to a wall time before the gap (no zone has one
            // longer than a day) and take the offset in force there.
            // Checked arithmetic: at the ends of chrono's range (years
            // ±262143) the plain operators panic, and a handler must not.
            for _ in 0..50 {
                let Some(earlier) = probe.checked_sub_signed(chrono::Duration::minutes(30)) else {
                    break;
                };
                probe = earlier;
                if let Some(before) = tz.from_local_datetime(&probe).latest()
                    && let Some(utc) = local.checked_sub_offset(before.offset().fix())
                {
                    return Utc.from_utc_datetime(&utc);
                }
            }
            Utc.from_utc_datetime(&local)
        }
    }
}

#[cfg(test)]
#[path = "recurrence_tests.rs"]
pub(crate) mod tests;
