//! `VTIMEZONE` components (RFC 5545 3.6.5) for the feed's zones, complete
//! enough for a client that reads offsets only from them (one that does not
//! know the IANA name in `TZID`).
//!
//! The zone's transitions are listed one by one from the earliest year an
//! event of the feed starts in (no earlier than 1970: before it the tz
//! database is not authoritative) through a few years ahead. The zone's
//! current rule then continues as one `STANDARD` and one `DAYLIGHT`
//! observance with a yearly `RRULE` (`BYMONTH` + nth `BYDAY`, the form the
//! tz database's own rules take in nearly every zone), so an event decades
//! ahead still gets the right offset; a rule that this form does not
//! reproduce in every listed year is not used, and the last listed
//! observance holds from then on.

use chrono::{DateTime, Datelike, Duration, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::{OffsetComponents, OffsetName, Tz};

use super::{Lines, text};

/// Years listed one by one after the feed is made.
const AHEAD_YEARS: i32 = 4;
/// The earliest year listed.
const FIRST_LISTED_YEAR: i32 = 1970;

/// `+HHMM` (or `+HHMMSS`) for an offset in seconds.
pub(super) fn offset(seconds: i32) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let s = seconds.unsigned_abs();
    let (h, m, sec) = (s / 3600, s / 60 % 60, s % 60);
    if sec == 0 {
        format!("{sign}{h:02}{m:02}")
    } else {
        format!("{sign}{h:02}{m:02}{sec:02}")
    }
}

pub(super) struct Observance {
    pub(super) at: DateTime<Utc>,
    pub(super) from: i32,
    pub(super) to: i32,
    pub(super) daylight: bool,
    name: Option<String>,
}

impl Observance {
    /// The wall time it starts at, read with the offset before it (as
    /// RFC 5545 reads an observance's `DTSTART`).
    fn local(&self) -> NaiveDateTime {
        self.at.naive_utc() + Duration::seconds(i64::from(self.from))
    }
}

fn offset_at(tz: Tz, t: DateTime<Utc>) -> (i32, bool, Option<String>) {
    let o = tz.offset_from_utc_datetime(&t.naive_utc());
    (
        o.fix().local_minus_utc(),
        !o.dst_offset().is_zero(),
        o.abbreviation().map(str::to_owned),
    )
}

fn year_start(year: i32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(year, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

/// The zone's transitions in `first_year..last_year`, found day by day and
/// then to the second; and the offset in force when the window opens.
pub(super) fn transitions(tz: Tz, first_year: i32, last_year: i32) -> (i32, Vec<Observance>) {
    let start = year_start(first_year);
    let end = year_start(last_year);
    let (initial, _, _) = offset_at(tz, start);
    let mut found = Vec::new();
    let mut day = start;
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

/// `BYMONTH=m;BYDAY=nWD` for a local date: the nth weekday of its month,
/// or `-1` in the month's last seven days.
fn yearly_rule(local: NaiveDateTime) -> String {
    let date = local.date();
    let last = date
        .with_day(1)
        .and_then(|d| d.checked_add_months(chrono::Months::new(1)))
        .and_then(|d| d.pred_opt())
        .map_or(31, |d| d.day());
    let nth = if date.day() + 7 > last {
        -1
    } else {
        i64::from((date.day() - 1) / 7 + 1)
    };
    let day =
        ["MO", "TU", "WE", "TH", "FR", "SA", "SU"][date.weekday().num_days_from_monday() as usize];
    format!("FREQ=YEARLY;BYMONTH={};BYDAY={nth}{day}", date.month())
}

/// The zone's current rule: the last two listed transitions (one into
/// daylight time, one out), if every year of the last few listed ones has
/// a pair with the same rule, wall time and offsets.
fn current_rule(observances: &[Observance]) -> Option<[&Observance; 2]> {
    let n = observances.len();
    if n < 8 {
        return None;
    }
    let last = [&observances[n - 2], &observances[n - 1]];
    if last[0].daylight == last[1].daylight {
        return None;
    }
    let key = |o: &Observance| (yearly_rule(o.local()), o.local().time(), o.from, o.to);
    for (i, o) in observances[n - 8..].iter().enumerate() {
        if key(o) != key(last[i % 2]) {
            return None;
        }
    }
    Some(last)
}

fn observance(out: &mut Lines, o: &Observance, rule: Option<&str>) {
    let kind = if o.daylight { "DAYLIGHT" } else { "STANDARD" };
    out.line(&format!("BEGIN:{kind}"));
    out.line(&format!("DTSTART:{}", o.local().format("%Y%m%dT%H%M%S")));
    out.line(&format!("TZOFFSETFROM:{}", offset(o.from)));
    out.line(&format!("TZOFFSETTO:{}", offset(o.to)));
    if let Some(rule) = rule {
        out.line(&format!("RRULE:{rule}"));
    }
    if let Some(name) = &o.name {
        out.line(&format!("TZNAME:{}", text(name)));
    }
    out.line(&format!("END:{kind}"));
}

/// The `VTIMEZONE` of `tz` for a feed made at `now` whose earliest event
/// in this zone starts in `earliest_year`.
pub(super) fn vtimezone(out: &mut Lines, tz: Tz, earliest_year: i32, now: DateTime<Utc>) {
    let first_year = earliest_year.clamp(FIRST_LISTED_YEAR, now.year() - 1);
    let (initial, mut observances) = transitions(tz, first_year, now.year() + AHEAD_YEARS);
    let start = year_start(first_year);
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
    let rule = current_rule(&observances).map(|pair| pair.map(|o| yearly_rule(o.local())));
    out.line("BEGIN:VTIMEZONE");
    out.line(&format!("TZID:{}", tz.name()));
    let n = observances.len();
    for (i, o) in observances.iter().enumerate() {
        // The last two continue as the rule, from their own DTSTART on.
        let repeat = match &rule {
            Some(rules) if i + 2 >= n => Some(rules[i + 2 - n].as_str()),
            _ => None,
        };
        observance(out, o, repeat);
    }
    out.line("END:VTIMEZONE");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn berlin_has_its_transitions() {
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        let (initial, obs) = transitions(tz, 2026, 2030);
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
        assert_eq!(obs.len(), 8);
        assert_eq!(offset(-18000), "-0500");
        assert_eq!(offset(19800), "+0530");
    }

    fn render(zone: &str, earliest: i32) -> String {
        let mut out = Lines::default();
        let now = Utc.with_ymd_and_hms(2026, 11, 30, 0, 0, 0).unwrap();
        vtimezone(&mut out, zone.parse().unwrap(), earliest, now);
        out.0
    }

    #[test]
    fn the_current_rule_continues_as_yearly_rrules() {
        let ny = render("America/New_York", 2020);
        assert!(ny.contains("DTSTART:20200308T020000\r\n"), "{ny}");
        assert!(
            ny.contains("RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU\r\n"),
            "{ny}"
        );
        assert!(
            ny.contains("RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU\r\n"),
            "{ny}"
        );
        let berlin = render("Europe/Berlin", 2026);
        assert!(berlin.contains("RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\n"));
        assert!(berlin.contains("RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\n"));
        // No DST: one observance, no rule.
        let kolkata = render("Asia/Kolkata", 2026);
        assert!(!kolkata.contains("RRULE") && kolkata.matches("BEGIN:STANDARD").count() == 1);
    }
}
