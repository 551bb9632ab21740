//! RFC 5545 interop: a rule as an `RRULE` value (with its `DTSTART`), and
//! the subset of `RRULE` values the engine can evaluate, parsed into a
//! [`Recurrence`].
//!
//! The engine clamps a day of month to short months (Jan 31 → Feb 28) and
//! Feb 29 to Feb 28 in common years; RFC 5545 skips such dates instead. So
//! a day past the 28th is written as the RFC set that clamps:
//! `BYMONTHDAY=28,29,30,31;BYSETPOS=-1` is "the 31st, or the month's last
//! day", and a yearly Feb 29 is `BYMONTH=2;BYMONTHDAY=28,29;BYSETPOS=-1`.
//! Parsing accepts exactly those forms and refuses the plain ones, whose
//! RFC meaning the engine does not have. After-completion rules have no
//! RFC 5545 form (its sets are fixed by DTSTART), so they have no `RRULE`.

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::recurrence::{
    Anchor, Day, End, Frequency, MAX_COUNT, MAX_INTERVAL, NthWeekday, Recurrence, YEARS, to_utc,
};
use crate::series::SeriesStart;

/// Why an `RRULE` is not one the engine supports; `part` names the rule
/// part (e.g. `BYHOUR`, `FREQ=HOURLY`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{part}: {reason}")]
pub struct RruleError {
    pub part: String,
    pub reason: String,
}

fn unsupported(part: impl Into<String>, reason: impl Into<String>) -> RruleError {
    RruleError {
        part: part.into(),
        reason: reason.into(),
    }
}

const DAY_CODES: [(Day, &str); 7] = [
    (Day::Mon, "MO"),
    (Day::Tue, "TU"),
    (Day::Wed, "WE"),
    (Day::Thu, "TH"),
    (Day::Fri, "FR"),
    (Day::Sat, "SA"),
    (Day::Sun, "SU"),
];

fn day_code(day: Day) -> &'static str {
    DAY_CODES
        .iter()
        .find(|(d, _)| *d == day)
        .map_or("MO", |(_, c)| c)
}

/// The days 28..=`day` with BYSETPOS=-1: the RFC 5545 set of "day `day`,
/// or the month's last day when it is shorter".
fn clamped_month_day(day: u32) -> String {
    let days: Vec<String> = (28..=day).map(|d| d.to_string()).collect();
    format!("BYMONTHDAY={};BYSETPOS=-1", days.join(","))
}

/// The rule as an RFC 5545 `RRULE` value for a series anchored at `start`
/// (its `DTSTART`); `None` for an after-completion rule.
pub fn format(rule: &Recurrence, start: &SeriesStart) -> Option<String> {
    if rule.anchor == Anchor::Completion {
        return None;
    }
    let freq = match rule.frequency {
        Frequency::Daily => "DAILY",
        Frequency::Weekly => "WEEKLY",
        Frequency::Monthly => "MONTHLY",
        Frequency::Yearly => "YEARLY",
    };
    let mut parts = vec![format!("FREQ={freq}")];
    if rule.interval > 1 {
        parts.push(format!("INTERVAL={}", rule.interval));
    }
    let anchor = start.local.date();
    match rule.frequency {
        Frequency::Weekly if !rule.weekdays.is_empty() => {
            let mut days = rule.weekdays.clone();
            days.sort();
            let codes: Vec<&str> = days.into_iter().map(day_code).collect();
            parts.push(format!("BYDAY={}", codes.join(",")));
        }
        Frequency::Monthly => match (rule.nth_weekday, rule.month_day) {
            (Some(nth), _) => parts.push(format!("BYDAY={}{}", nth.nth, day_code(nth.weekday))),
            (None, day) => {
                let day = day.map_or(anchor.day(), u32::from);
                if day > 28 {
                    parts.push(clamped_month_day(day));
                } else if rule.month_day.is_some() {
                    parts.push(format!("BYMONTHDAY={day}"));
                }
            }
        },
        Frequency::Yearly if anchor.month() == 2 && anchor.day() == 29 => {
            parts.push(format!("BYMONTH=2;{}", clamped_month_day(29)));
        }
        _ => {}
    }
    match rule.end {
        End::Never => {}
        // COUNT counts from DTSTART, which is occurrence `start.index`.
        End::After(count) => parts.push(format!(
            "COUNT={}",
            count.saturating_sub(start.index).saturating_add(1).max(1)
        )),
        // With a zoned DTSTART, UNTIL is a UTC date-time (RFC 5545
        // 3.3.10): the last instant of the local end date.
        End::Until(until) => {
            let end = until.and_hms_opt(23, 59, 59)?;
            let utc = to_utc(start.tz, end);
            parts.push(format!("UNTIL={}", utc.format("%Y%m%dT%H%M%SZ")));
        }
    }
    Some(parts.join(";"))
}

/// `DTSTART;TZID=<zone>:<local>` for a series anchored at `start`.
pub fn dtstart(start: &SeriesStart) -> String {
    format!(
        "DTSTART;TZID={}:{}",
        start.tz.name(),
        start.local.format("%Y%m%dT%H%M%S")
    )
}

/// The parts of one `RRULE`, each at most once.
#[derive(Default)]
struct Parts<'a> {
    freq: Option<&'a str>,
    interval: Option<&'a str>,
    count: Option<&'a str>,
    until: Option<&'a str>,
    byday: Option<&'a str>,
    bymonthday: Option<&'a str>,
    bymonth: Option<&'a str>,
    bysetpos: Option<&'a str>,
    wkst: Option<&'a str>,
}

fn split(text: &str) -> Result<Parts<'_>, RruleError> {
    let body = text.trim();
    let body = body.strip_prefix("RRULE:").unwrap_or(body);
    let mut parts = Parts::default();
    for part in body.split(';').filter(|p| !p.is_empty()) {
        let (name, value) = part
            .split_once('=')
            .ok_or_else(|| unsupported(part, "a rule part is NAME=VALUE"))?;
        let slot = match name.to_ascii_uppercase().as_str() {
            "FREQ" => &mut parts.freq,
            "INTERVAL" => &mut parts.interval,
            "COUNT" => &mut parts.count,
            "UNTIL" => &mut parts.until,
            "BYDAY" => &mut parts.byday,
            "BYMONTHDAY" => &mut parts.bymonthday,
            "BYMONTH" => &mut parts.bymonth,
            "BYSETPOS" => &mut parts.bysetpos,
            "WKST" => &mut parts.wkst,
            other => {
                return Err(unsupported(
                    other,
                    "not supported (FREQ, INTERVAL, COUNT, UNTIL, BYDAY, BYMONTHDAY and WKST=MO are)",
                ));
            }
        };
        if slot.replace(value).is_some() {
            return Err(unsupported(name, "given twice"));
        }
    }
    Ok(parts)
}

fn number<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, RruleError> {
    value
        .parse()
        .map_err(|_| unsupported(format!("{name}={value}"), "not a number"))
}

/// `2TU`, `-1FR` or `MO`: the ordinal (if any) and the day.
fn by_day(value: &str) -> Result<(Option<i8>, Day), RruleError> {
    let bad = || unsupported(format!("BYDAY={value}"), "not a weekday");
    let split_at = value.len().checked_sub(2).ok_or_else(bad)?;
    let (ordinal, code) = value.split_at_checked(split_at).ok_or_else(bad)?;
    let day = DAY_CODES
        .iter()
        .find(|(_, c)| code.eq_ignore_ascii_case(c))
        .map(|(d, _)| *d)
        .ok_or_else(bad)?;
    let ordinal = match ordinal {
        "" => None,
        n => Some(number::<i8>("BYDAY", n)?),
    };
    Ok((ordinal, day))
}

/// The day of month a `BYMONTHDAY` (with `BYSETPOS`) stands for.
fn month_day(bymonthday: &str, bysetpos: Option<&str>) -> Result<u32, RruleError> {
    let part = format!("BYMONTHDAY={bymonthday}");
    let days = bymonthday
        .split(',')
        .map(|d| number::<u32>("BYMONTHDAY", d))
        .collect::<Result<Vec<_>, _>>()?;
    match (days.as_slice(), bysetpos) {
        ([day], None) if (1..=28).contains(day) => Ok(*day),
        ([day], None) if (29..=31).contains(day) => Err(unsupported(
            part,
            format!(
                "in RFC 5545 this skips months without day {day}; the engine clamps to the month's last day: write {}",
                clamped_month_day(*day)
            ),
        )),
        (list, Some("-1"))
            if list.len() >= 2
                && list.iter().copied().eq(28..=list[list.len() - 1])
                && list[list.len() - 1] <= 31 =>
        {
            Ok(list[list.len() - 1])
        }
        _ => Err(unsupported(
            part,
            "one day 1 to 28, or 28,…,N with BYSETPOS=-1 for day N clamped to short months",
        )),
    }
}

/// The local date an `UNTIL` ends on, for a series at `time` in `tz`: the
/// last day whose occurrence is not after it.
fn until_date(value: &str, tz: Tz, time: NaiveTime) -> Result<NaiveDate, RruleError> {
    let part = || format!("UNTIL={value}");
    if let Ok(date) = NaiveDate::parse_from_str(value, "%Y%m%d") {
        return Ok(date);
    }
    let utc = value
        .strip_suffix('Z')
        .and_then(|v| NaiveDateTime::parse_from_str(v, "%Y%m%dT%H%M%S").ok())
        .ok_or_else(|| {
            unsupported(
                part(),
                "a date (YYYYMMDD) or a UTC date-time (YYYYMMDDTHHMMSSZ), as RFC 5545 requires with a zoned DTSTART",
            )
        })?;
    let local = Utc.from_utc_datetime(&utc).with_timezone(&tz).naive_local();
    if local.time() >= time {
        Ok(local.date())
    } else {
        local
            .date()
            .pred_opt()
            .ok_or_else(|| unsupported(part(), "out of range"))
    }
}

/// Parses an `RRULE` for a new series whose first occurrence is due at
/// local `due` in `tz`. Anything the engine cannot evaluate as RFC 5545
/// means it is refused, naming the part.
pub fn parse(text: &str, due: NaiveDateTime, tz: Tz) -> Result<Recurrence, RruleError> {
    let p = split(text)?;
    let frequency = match p.freq.map(str::to_ascii_uppercase).as_deref() {
        Some("DAILY") => Frequency::Daily,
        Some("WEEKLY") => Frequency::Weekly,
        Some("MONTHLY") => Frequency::Monthly,
        Some("YEARLY") => Frequency::Yearly,
        Some(other) => {
            return Err(unsupported(
                format!("FREQ={other}"),
                "supported: DAILY, WEEKLY, MONTHLY, YEARLY",
            ));
        }
        None => return Err(unsupported("FREQ", "required")),
    };
    let mut rule = Recurrence {
        frequency,
        interval: p
            .interval
            .map(|v| number("INTERVAL", v))
            .transpose()?
            .unwrap_or(1),
        weekdays: Vec::new(),
        month_day: None,
        nth_weekday: None,
        anchor: Anchor::Schedule,
        end: End::Never,
    };
    if let Some(wkst) = p.wkst
        && !wkst.eq_ignore_ascii_case("MO")
    {
        return Err(unsupported(
            format!("WKST={wkst}"),
            "weeks start on Monday (WKST=MO)",
        ));
    }
    by_period(&mut rule, &p, due)?;
    rule.end = match (p.count, p.until) {
        (Some(_), Some(_)) => {
            return Err(unsupported("COUNT", "COUNT and UNTIL exclude each other"));
        }
        (Some(count), None) => {
            let count: u32 = number("COUNT", count)?;
            if !(1..=MAX_COUNT).contains(&count) {
                return Err(unsupported(
                    format!("COUNT={count}"),
                    format!("1 to {MAX_COUNT}"),
                ));
            }
            End::After(count)
        }
        (None, Some(until)) => End::Until(until_date(until, tz, due.time())?),
        (None, None) => End::Never,
    };
    check_fit(&rule, &p, due.date())?;
    rule.validate(true)
        .map_err(|e| unsupported("RRULE", e.message))?;
    Ok(rule)
}

/// Refuses what the RRULE's parts cannot mean for this DTSTART, naming the
/// part: an INTERVAL out of range, an UNTIL before DTSTART (a set with no
/// occurrence), a BYDAY or BYMONTHDAY the due date is not on (RFC 5545
/// 3.8.5.3 leaves such a set undefined), a year past 9999.
fn check_fit(rule: &Recurrence, p: &Parts<'_>, first: NaiveDate) -> Result<(), RruleError> {
    if let Some(value) = p.interval
        && !(1..=MAX_INTERVAL).contains(&rule.interval)
    {
        return Err(unsupported(
            format!("INTERVAL={value}"),
            format!("1 to {MAX_INTERVAL}"),
        ));
    }
    if let (Some(value), End::Until(until)) = (p.until, rule.end) {
        if !YEARS.contains(&until.year()) {
            return Err(unsupported(format!("UNTIL={value}"), "years 1 to 9999"));
        }
        if until < first {
            return Err(unsupported(
                format!("UNTIL={value}"),
                format!("before the first occurrence, the due date's local date {first}"),
            ));
        }
    }
    if !rule.falls_on(first) {
        let part = match (p.byday, p.bymonthday) {
            (Some(v), _) => format!("BYDAY={v}"),
            (None, Some(v)) => format!("BYMONTHDAY={v}"),
            (None, None) => "RRULE".to_owned(),
        };
        return Err(unsupported(
            part,
            format!(
                "the due date's local date {first} (DTSTART) is not one of the rule's dates; RFC 5545 leaves that set undefined"
            ),
        ));
    }
    Ok(())
}

/// The BY* parts of each frequency.
fn by_period(rule: &mut Recurrence, p: &Parts<'_>, due: NaiveDateTime) -> Result<(), RruleError> {
    let refuse = |name: &str, value: &str| {
        Err(unsupported(
            format!("{name}={value}"),
            format!(
                "not supported with FREQ={}",
                format!("{:?}", rule.frequency).to_uppercase()
            ),
        ))
    };
    let day = due.date().day();
    match rule.frequency {
        Frequency::Daily => {
            for (name, value) in [
                ("BYDAY", p.byday),
                ("BYMONTHDAY", p.bymonthday),
                ("BYMONTH", p.bymonth),
                ("BYSETPOS", p.bysetpos),
            ] {
                if let Some(value) = value {
                    return refuse(name, value);
                }
            }
        }
        Frequency::Weekly => {
            for (name, value) in [
                ("BYMONTHDAY", p.bymonthday),
                ("BYMONTH", p.bymonth),
                ("BYSETPOS", p.bysetpos),
            ] {
                if let Some(value) = value {
                    return refuse(name, value);
                }
            }
            if let Some(days) = p.byday {
                for code in days.split(',') {
                    match by_day(code)? {
                        (None, d) if !rule.weekdays.contains(&d) => rule.weekdays.push(d),
                        _ => return refuse("BYDAY", code),
                    }
                }
            }
        }
        Frequency::Monthly => {
            if let Some(value) = p.bymonth {
                return refuse("BYMONTH", value);
            }
            match (p.byday, p.bymonthday) {
                (Some(_), Some(_)) => {
                    return Err(unsupported("BYDAY", "give BYDAY or BYMONTHDAY, not both"));
                }
                (Some(code), None) if code.contains(',') => {
                    return Err(unsupported(
                        format!("BYDAY={code}"),
                        "one nth weekday: 1 to 4 or -1, e.g. 2TU or -1FR",
                    ));
                }
                (Some(code), None) => match (by_day(code)?, p.bysetpos) {
                    ((Some(nth @ (1..=4 | -1)), weekday), None) => {
                        rule.nth_weekday = Some(NthWeekday { nth, weekday });
                    }
                    _ => {
                        return Err(unsupported(
                            format!("BYDAY={code}"),
                            "one nth weekday: 1 to 4 or -1, e.g. 2TU or -1FR",
                        ));
                    }
                },
                (None, Some(days)) => {
                    rule.month_day = u8::try_from(month_day(days, p.bysetpos)?).ok();
                }
                (None, None) if day > 28 => {
                    return Err(unsupported(
                        "BYMONTHDAY",
                        format!(
                            "in RFC 5545 a monthly rule from day {day} skips shorter months; the engine clamps: add {}",
                            clamped_month_day(day)
                        ),
                    ));
                }
                (None, None) => {
                    if let Some(value) = p.bysetpos {
                        return refuse("BYSETPOS", value);
                    }
                }
            }
        }
        Frequency::Yearly => {
            if let Some(value) = p.byday {
                return refuse("BYDAY", value);
            }
            let leap_day = due.date().month() == 2 && day == 29;
            let clamp =
                (p.bymonth, p.bymonthday, p.bysetpos) == (Some("2"), Some("28,29"), Some("-1"));
            match (leap_day, clamp) {
                (true, true) => {}
                (true, false) => {
                    return Err(unsupported(
                        "BYMONTHDAY",
                        "in RFC 5545 a yearly rule from Feb 29 skips common years; the engine clamps to Feb 28: write BYMONTH=2;BYMONTHDAY=28,29;BYSETPOS=-1",
                    ));
                }
                (false, _) => {
                    for (name, value) in [
                        ("BYMONTH", p.bymonth),
                        ("BYMONTHDAY", p.bymonthday),
                        ("BYSETPOS", p.bysetpos),
                    ] {
                        if let Some(value) = value {
                            return refuse(name, value);
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "rrule_tests.rs"]
mod tests;
