//! A user's open tasks as an iCalendar (RFC 5545) feed: one `VEVENT` per
//! pending task with a due date, a recurring one with its `RRULE` from the
//! task's own occurrence on, each `DTSTART` in the task's zone (`TZID`)
//! with the `VTIMEZONE` RFC 5545 3.6.5 requires for every `TZID` used
//! ([`zone`]: from the earliest event on, then the zone's current yearly
//! rule), and
//! a `VALARM` per relative reminder.
//!
//! The recurring `DTSTART` is the open occurrence's local date at the
//! series' time of day (not its due instant): on a day a DST gap swallowed
//! that time, the occurrence is due later, and a calendar must still
//! expand the following ones at the series' time. `COUNT` is what remains
//! of the series from that occurrence on.

mod zone;

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, NaiveDateTime, Utc};
use chrono_tz::Tz;

use crate::model::{Priority, Task};
use crate::rrule;
use crate::series::SeriesStart;

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
        let earliest = tasks
            .iter()
            .filter(|t| t.time_zone == tz.name())
            .filter_map(|t| t.due_at)
            .map(|due| due.with_timezone(&tz).year())
            .min()
            .unwrap_or(now.year());
        zone::vtimezone(&mut out, tz, earliest, now);
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
    // A one-off due at the second of two equal wall times (DST ends) would
    // be read as the first (RFC 5545 3.3.5): it is written in UTC instead.
    // A recurring one keeps its zoned DTSTART, which the RRULE needs; the
    // engine reads such a wall time as the first instant too.
    if rule.is_none() && crate::recurrence::to_utc(tz, start) != due {
        out.line(&format!("DTSTART:{}", utc_stamp(due)));
    } else {
        out.line(&dtstart(tz, start));
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn lines_fold_at_75_octets_and_text_is_escaped() {
        let mut l = Lines::default();
        l.line(&format!("SUMMARY:{}", text(&"é; a,b\\c\n".repeat(10))));
        for line in l.0.split("\r\n") {
            assert!(line.len() <= 75, "{line:?}");
        }
        let unfolded = l.0.replace("\r\n ", "");
        assert!(unfolded.starts_with("SUMMARY:é\\; a\\,b\\\\c\\né"));
    }

    #[test]
    fn a_one_off_at_the_second_of_two_wall_times_is_written_in_utc() {
        let mut task = crate::input::sample_task();
        task.time_zone = "America/New_York".to_owned();
        task.reminders.clear();
        let first = Utc.with_ymd_and_hms(2026, 11, 1, 5, 30, 0).unwrap();
        let second = Utc.with_ymd_and_hms(2026, 11, 1, 6, 30, 0).unwrap();
        task.due_at = Some(second);
        let feed = render(&[task.clone()], first);
        assert!(feed.contains("\r\nDTSTART:20261101T063000Z\r\n"), "{feed}");
        task.due_at = Some(first);
        let feed = render(&[task], first);
        assert!(
            feed.contains("DTSTART;TZID=America/New_York:20261101T013000"),
            "{feed}"
        );
    }
}
