//! A user's open tasks as an iCalendar (RFC 5545) feed: one `VEVENT` per
//! pending task with a due date, a recurring one with its `RRULE` from the
//! task's own occurrence on, each `DTSTART` in the task's zone (`TZID`)
//! with the `VTIMEZONE` RFC 5545 3.6.5 requires for every `TZID` used, and
//! a `VALARM` per relative reminder.
//!
//! The recurring `DTSTART` is the open occurrence's local date at the
//! series' time of day (not its due instant): on a day a DST gap swallowed
//! that time, the occurrence is due later, and a calendar must still
//! expand the following ones at the series' time. `COUNT` is what remains
//! of the series from that occurrence on.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Duration, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::{OffsetComponents, OffsetName, Tz};

use crate::model::{Priority, Task};
use crate::rrule;
use crate::series::SeriesStart;

/// Years of time zone transitions each `VTIMEZONE` lists, from a year
/// before the feed is made: calendar clients read offsets beyond them from
/// the last observance, and every client the feed was tried with also
/// knows the IANA name the `TZID` carries.
const ZONE_YEARS: i32 = 12;

/// The feed for `tasks` (pending, with a due date), made at `now`.
pub fn render(tasks: &[Task], now: DateTime<Utc>) -> String {
    let mut out = Lines::default();
    out.line("BEGIN:VCALENDAR");
    out.line("VERSION:2.0");
    out.line("PRODID:-//todo-events//task-api//EN");
    out.line("CALSCALE:GREGORIAN");
    out.line("METHOD:PUBLISH");
    out.line("X-WR-CALNAME:Tasks");
    let zones: BTreeSet<&str> = tasks
        .iter()
        .filter_map(|t| t.time_zone.parse::<Tz>().ok())
        .filter(|tz| !is_utc(*tz))
        .map(|tz| tz.name())
        .collect();
    for tz in zones.iter().filter_map(|name| name.parse::<Tz>().ok()) {
        vtimezone(&mut out, tz, now.year() - 1);
    }
    for task in tasks {
        vevent(&mut out, task);
    }
    out.line("END:VCALENDAR");
    out.0
}

fn is_utc(tz: Tz) -> bool {
    matches!(
        tz,
        Tz::UTC | Tz::Etc__UTC | Tz::Etc__UCT | Tz::UCT | Tz::Zulu | Tz::Etc__Zulu
    )
}

/// Content lines, CRLF-terminated and folded at 75 octets (RFC 5545 3.1).
#[derive(Default)]
struct Lines(String);

impl Lines {
    fn line(&mut self, content: &str) {
        let mut width = 0;
        for c in content.chars() {
            if width + c.len_utf8() > 75 {
                self.0.push_str("\r\n ");
                width = 1;
            }
            self.0.push(c);
            width += c.len_utf8();
        }
        self.0.push_str("\r\n");
    }
}

/// TEXT escaping (RFC 5545 3.3.11).
fn text(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

fn utc_stamp(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

fn vevent(out: &mut Lines, task: &Task) {
    let Some(due) = task.due_at else { return };
    let tz: Tz = task.time_zone.parse().unwrap_or(Tz::UTC);
    // A date outside years 1..=9999 has no RFC 5545 form (4-digit years):
    // one such event would make parsers refuse the whole feed. Validation
    // and the engine keep new ones out; a row from before them is left out.
    if !crate::recurrence::in_years(due, tz) {
        return;
    }
    out.line("BEGIN:VEVENT");
    out.line(&format!("UID:{}@todo-events", task.id));
    out.line(&format!("DTSTAMP:{}", utc_stamp(task.updated_at)));
    let (start, rule) = match (
        task.recurrence.as_ref(),
        task.series_start(),
        task.as_occurrence(),
    ) {
        (Some(rule), Some(anchor), Some(current)) => {
            let local = due
                .with_timezone(&tz)
                .date_naive()
                .and_time(anchor.local.time());
            let from_here = SeriesStart {
                index: current.index,
                ..anchor
            };
            (local, rrule::format(rule, &from_here))
        }
        _ => (due.with_timezone(&tz).naive_local(), None),
    };
    out.line(&dtstart(tz, start));
    if let Some(rule) = rule {
        out.line(&format!("RRULE:{rule}"));
    }
    out.line(&format!("SUMMARY:{}", text(&task.title)));
    if !task.description.is_empty() {
        out.line(&format!("DESCRIPTION:{}", text(&task.description)));
    }
    if !task.tags.is_empty() {
        let tags: Vec<String> = task.tags.iter().map(|t| text(t)).collect();
        out.line(&format!("CATEGORIES:{}", tags.join(",")));
    }
    let priority = match task.priority {
        Priority::High => 1,
        Priority::Medium => 5,
        Priority::Low => 9,
    };
    out.line(&format!("PRIORITY:{priority}"));
    alarms(out, task);
    out.line("END:VEVENT");
}

/// The task's relative reminders as `VALARM`s, which repeat with every
/// instance. Absolute ones are left out: an iCalendar trigger at a fixed
/// time cannot move with each occurrence as the task's do.
fn alarms(out: &mut Lines, task: &Task) {
    for minutes in task.reminders.iter().filter_map(|r| r.minutes_before) {
        out.line("BEGIN:VALARM");
        out.line("ACTION:DISPLAY");
        out.line(&format!("DESCRIPTION:{}", text(&task.title)));
        out.line(&format!("TRIGGER:-PT{minutes}M"));
        out.line("END:VALARM");
    }
}

fn dtstart(tz: Tz, local: NaiveDateTime) -> String {
    if is_utc(tz) {
        format!("DTSTART:{}Z", local.format("%Y%m%dT%H%M%S"))
    } else {
        rrule::dtstart(&SeriesStart {
            local,
            tz,
            index: 1,
        })
    }
}

/// `+HHMM` (or `+HHMMSS`) for an offset in seconds.
fn offset(seconds: i32) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let s = seconds.unsigned_abs();
    let (h, m, sec) = (s / 3600, s / 60 % 60, s % 60);
    if sec == 0 {
        format!("{sign}{h:02}{m:02}")
    } else {
        format!("{sign}{h:02}{m:02}{sec:02}")
    }
}

struct Observance {
    at: DateTime<Utc>,
    from: i32,
    to: i32,
    daylight: bool,
    name: Option<String>,
}

fn offset_at(tz: Tz, t: DateTime<Utc>) -> (i32, bool, Option<String>) {
    let o = tz.offset_from_utc_datetime(&t.naive_utc());
    (
        o.fix().local_minus_utc(),
        !o.dst_offset().is_zero(),
        o.abbreviation().map(str::to_owned),
    )
}

/// The zone's transitions from `first_year` on, found day by day and then
/// to the second.
fn transitions(tz: Tz, first_year: i32) -> (i32, Vec<Observance>) {
    let start = Utc
        .with_ymd_and_hms(first_year, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default();
    let (initial, _, _) = offset_at(tz, start);
    let mut found = Vec::new();
    let mut day = start;
    let end = start + Duration::days(366 * i64::from(ZONE_YEARS));
    while day < end {
        let next = day + Duration::days(1);
        let (before, _, _) = offset_at(tz, day);
        if offset_at(tz, next).0 != before {
            let (mut lo, mut hi) = (day, next);
            while hi - lo > Duration::seconds(1) {
                let mid = lo + Duration::seconds((hi - lo).num_seconds() / 2);
                if offset_at(tz, mid).0 == before {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            let (to, daylight, name) = offset_at(tz, hi);
            found.push(Observance {
                at: hi,
                from: before,
                to,
                daylight,
                name,
            });
        }
        day = next;
    }
    (initial, found)
}

fn vtimezone(out: &mut Lines, tz: Tz, first_year: i32) {
    let (initial, mut observances) = transitions(tz, first_year);
    let start = Utc
        .with_ymd_and_hms(first_year, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default();
    let (_, daylight, name) = offset_at(tz, start);
    // The offset in force when the window opens.
    observances.insert(
        0,
        Observance {
            at: start,
            from: initial,
            to: initial,
            daylight,
            name,
        },
    );
    out.line("BEGIN:VTIMEZONE");
    out.line(&format!("TZID:{}", tz.name()));
    for o in observances {
        let kind = if o.daylight { "DAYLIGHT" } else { "STANDARD" };
        let local = o.at.naive_utc() + Duration::seconds(i64::from(o.from));
        out.line(&format!("BEGIN:{kind}"));
        out.line(&format!("DTSTART:{}", local.format("%Y%m%dT%H%M%S")));
        out.line(&format!("TZOFFSETFROM:{}", offset(o.from)));
        out.line(&format!("TZOFFSETTO:{}", offset(o.to)));
        if let Some(name) = o.name {
            out.line(&format!("TZNAME:{}", text(&name)));
        }
        out.line(&format!("END:{kind}"));
    }
    out.line("END:VTIMEZONE");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_fold_at_75_octets_and_text_is_escaped() {
        let mut l = Lines::default();
        l.line(&format!("SUMMARY:{}", text(&"é; a,b\\c\n".repeat(10))));
        for line in l.0.split("\r\n") {
            assert!(line.len() <= 75, "{line:?}");
        }
        let unfolded = l.0.replace("\r\n ", "");
        assert!(unfolded.starts_with("SUMMARY:é\\; a\\,b\\\\c\\né"));
        assert_eq!(offset(-18000), "-0500");
        assert_eq!(offset(19800), "+0530");
    }

    #[test]
    fn berlin_has_its_transitions() {
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        let (initial, obs) = transitions(tz, 2026);
        assert_eq!(initial, 3600);
        // Last Sunday of March 2026, 01:00 UTC.
        assert_eq!(
            obs[0].at,
            Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap()
        );
        assert_eq!(
            (obs[0].from, obs[0].to, obs[0].daylight),
            (3600, 7200, true)
        );
        assert_eq!(obs.len(), 2 * ZONE_YEARS as usize);
    }
}
