//! The series engine: every occurrence of a recurring task is computed from
//! the series' anchor (RFC 5545's DTSTART: the first local due date-time
//! and its zone), never from the previous occurrence.
//!
//! Chaining from the previous occurrence drifts: a monthly series from
//! Jan 31 clamps to Feb 28 and would then stay on the 28th; a yearly one
//! from Feb 29 would stay on Feb 28 in later leap years; a daily 02:30
//! series that meets a DST gap would keep the moved wall time. Reading the
//! day of month, the weekday and the time of day from the anchor every time
//! keeps each occurrence where the rule puts it.
//!
//! The set of a series is the anchor itself, then every date of the rule's
//! pattern after it, at the anchor's local time. Pattern dates fall in
//! periods (every `interval` days, weeks, months or years from the anchor's
//! own), so both "the first occurrence after an instant" and "the index of
//! an occurrence" are computed in constant time from the anchor.

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, NaiveDateTime, Utc, Weekday};
use chrono_tz::Tz;

use crate::recurrence::{
    Anchor, End, Frequency, Recurrence, YEARS, clamp_day, nth_weekday_of, to_utc,
};

/// The anchor of a series: its DTSTART (a local wall time), its zone, and
/// the occurrence index that DTSTART has (1 for a new series; a series
/// re-anchored by an edit of its due date keeps counting from there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesStart {
    pub local: NaiveDateTime,
    pub tz: Tz,
    pub index: u32,
}

/// One occurrence of a series: when it is due and its 1-based index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Occurrence {
    pub due: DateTime<Utc>,
    pub index: u32,
}

impl SeriesStart {
    /// The anchor of a series whose occurrence `index` is due at `due`.
    pub fn at(due: DateTime<Utc>, tz: Tz, index: u32) -> Self {
        Self {
            local: due.with_timezone(&tz).naive_local(),
            tz,
            index,
        }
    }

    /// The anchor occurrence itself.
    pub fn first(&self) -> Occurrence {
        Occurrence {
            due: to_utc(self.tz, self.local),
            index: self.index,
        }
    }
}

/// The length of one period of a rule's pattern.
#[derive(Clone, Copy)]
enum Unit {
    Days(u32),
    Weeks(u32),
    Months(u32),
}

fn week_start(d: NaiveDate) -> NaiveDate {
    d - Days::new(u64::from(d.weekday().num_days_from_monday()))
}

fn months_of(d: NaiveDate) -> i64 {
    i64::from(d.year()) * 12 + i64::from(d.month0())
}

fn add_days(d: NaiveDate, n: i64) -> Option<NaiveDate> {
    d.checked_add_days(Days::new(u64::try_from(n).ok()?))
}

impl Recurrence {
    fn unit(&self) -> Option<Unit> {
        let n = self.interval.max(1);
        Some(match self.frequency {
            Frequency::Daily => Unit::Days(n),
            Frequency::Weekly => Unit::Weeks(n),
            Frequency::Monthly => Unit::Months(n),
            Frequency::Yearly => Unit::Months(n.checked_mul(12)?),
        })
    }

    /// The weekdays a weekly pattern falls on, Monday first.
    fn week_days(&self, anchor: NaiveDate) -> Vec<Weekday> {
        let mut days: Vec<Weekday> = if self.weekdays.is_empty() {
            vec![anchor.weekday()]
        } else {
            self.weekdays.iter().map(|d| d.weekday()).collect()
        };
        days.sort_by_key(|d| d.num_days_from_monday());
        days
    }

    /// Which period (0 = the anchor's) the local date `d` falls in; negative
    /// before the anchor's period.
    fn period_of(&self, anchor: NaiveDate, d: NaiveDate) -> Option<i64> {
        Some(match self.unit()? {
            Unit::Days(n) => (d - anchor).num_days().div_euclid(i64::from(n)),
            Unit::Weeks(n) => (week_start(d) - week_start(anchor))
                .num_weeks()
                .div_euclid(i64::from(n)),
            Unit::Months(n) => (months_of(d) - months_of(anchor)).div_euclid(i64::from(n)),
        })
    }

    /// The pattern's dates in period `k` (k ≥ 0), in order. Day of month,
    /// weekday and month come from the anchor, so nothing drifts.
    fn period_dates(&self, anchor: NaiveDate, k: i64) -> Option<Vec<NaiveDate>> {
        Some(match self.unit()? {
            Unit::Days(n) => vec![add_days(anchor, k.checked_mul(i64::from(n))?)?],
            Unit::Weeks(n) => {
                let week = add_days(week_start(anchor), k.checked_mul(7 * i64::from(n))?)?;
                self.week_days(anchor)
                    .iter()
                    .map(|d| add_days(week, i64::from(d.num_days_from_monday())))
                    .collect::<Option<Vec<_>>>()?
            }
            Unit::Months(n) => {
                let months = u32::try_from(k.checked_mul(i64::from(n))?).ok()?;
                let month = anchor
                    .with_day(1)?
                    .checked_add_months(Months::new(months))?;
                let date = match (self.frequency, self.nth_weekday) {
                    (Frequency::Monthly, Some(nth)) => nth_weekday_of(month, nth)?,
                    (Frequency::Monthly, None) => {
                        clamp_day(month, self.month_day.map_or(anchor.day(), u32::from))?
                    }
                    // Yearly: the anchor's month and day, Feb 29 → Feb 28 in
                    // common years only.
                    _ => clamp_day(month, anchor.day())?,
                };
                vec![date]
            }
        })
    }

    /// How many pattern dates fall in `(anchor, d]`.
    fn count_between(&self, anchor: NaiveDate, d: NaiveDate) -> Option<u64> {
        if d <= anchor {
            return Some(0);
        }
        let last = self.period_of(anchor, d)?;
        let in_period = |k: i64| -> Option<u64> {
            let dates = self.period_dates(anchor, k)?;
            let n = dates.iter().filter(|p| **p > anchor && **p <= d).count();
            u64::try_from(n).ok()
        };
        let per_period = match self.unit()? {
            Unit::Weeks(_) => u64::try_from(self.week_days(anchor).len()).ok()?,
            _ => 1,
        };
        if last == 0 {
            return in_period(0);
        }
        let full = u64::try_from(last - 1).ok()?;
        in_period(0)?
            .checked_add(full.checked_mul(per_period)?)?
            .checked_add(in_period(last)?)
    }

    /// Whether `first`, as the series' anchor, is one of the pattern's own
    /// dates (the anchor's period contains it).
    pub(crate) fn falls_on(&self, first: NaiveDate) -> bool {
        self.period_dates(first, 0)
            .is_some_and(|dates| dates.contains(&first))
    }

    /// Applies the rule's end to an occurrence on local date `date`. A date
    /// past year 9999 ends the series too: no calendar can carry it.
    fn within_end(&self, date: NaiveDate, occurrence: Occurrence) -> Option<Occurrence> {
        if !YEARS.contains(&date.year()) || !YEARS.contains(&occurrence.due.year()) {
            return None;
        }
        match self.end {
            End::After(count) if occurrence.index > count => None,
            End::Until(until) if date > until => None,
            _ => Some(occurrence),
        }
    }

    /// The first occurrence of the series due strictly after `after`, with
    /// its index; `None` when the series has ended by then.
    pub fn first_after(&self, start: &SeriesStart, after: DateTime<Utc>) -> Option<Occurrence> {
        let anchor = start.local.date();
        let first = start.first();
        if first.due > after {
            return self.within_end(anchor, first);
        }
        let local_after = after.with_timezone(&start.tz).date_naive();
        // One period back covers a DST shift between local date and instant.
        let from = (self.period_of(anchor, local_after)? - 1).max(0);
        for k in from..from + 4 {
            for date in self.period_dates(anchor, k)? {
                if date <= anchor {
                    continue;
                }
                let due = to_utc(start.tz, date.and_time(start.local.time()));
                if due > after {
                    let skipped = self.count_between(anchor, date)?;
                    let index = u32::try_from(u64::from(start.index).checked_add(skipped)?).ok()?;
                    return self.within_end(date, Occurrence { due, index });
                }
            }
        }
        None
    }

    /// Occurrence number `index` of the series, computed directly from the
    /// anchor (no walk through the ones before it); `None` before the
    /// anchor's index or past the rule's end.
    pub fn occurrence(&self, start: &SeriesStart, index: u32) -> Option<Occurrence> {
        let anchor = start.local.date();
        let position = index.checked_sub(start.index)?;
        let date = if position == 0 {
            anchor
        } else {
            let p = u64::from(position);
            let after_anchor: Vec<NaiveDate> = self
                .period_dates(anchor, 0)?
                .into_iter()
                .filter(|d| *d > anchor)
                .collect();
            let in_first = u64::try_from(after_anchor.len()).ok()?;
            if p <= in_first {
                after_anchor[usize::try_from(p - 1).ok()?]
            } else {
                let per_period = self.period_dates(anchor, 1)?;
                let per = u64::try_from(per_period.len()).ok()?;
                let rest = p - in_first - 1;
                let k = i64::try_from(1 + rest / per).ok()?;
                self.period_dates(anchor, k)?[usize::try_from(rest % per).ok()?]
            }
        };
        let due = to_utc(start.tz, date.and_time(start.local.time()));
        self.within_end(date, Occurrence { due, index })
    }

    /// The occurrence that follows `current` once it is completed at
    /// `completed_at`, or `None` when the series ends.
    ///
    /// On a fixed schedule a late completion skips to the first occurrence
    /// after the completion (no backlog of overdue copies); the skipped ones
    /// still count towards `end.after`, as in the RFC 5545 set. After
    /// completion, the next one is one interval after the completion's
    /// local day, and it is simply the next index.
    pub fn successor(
        &self,
        start: &SeriesStart,
        current: &Occurrence,
        completed_at: DateTime<Utc>,
    ) -> Option<Occurrence> {
        match self.anchor {
            Anchor::Schedule => self
                .first_after(start, current.due.max(completed_at))
                .filter(|next| next.index > current.index),
            Anchor::Completion => {
                let anchor = start.local.date();
                let done = completed_at.with_timezone(&start.tz).date_naive();
                let date = self.next_date(anchor, done)?;
                let occurrence = Occurrence {
                    due: to_utc(start.tz, date.and_time(start.local.time())),
                    index: current.index.checked_add(1)?,
                };
                self.within_end(date, occurrence)
            }
        }
    }
}

#[cfg(test)]
#[path = "series_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod schedule_tests;
