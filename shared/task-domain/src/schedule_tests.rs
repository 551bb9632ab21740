//! Tests of the schedule's limits: dates bounded to years 1..=9999 (no
//! panic, no unreadable feed), an end before the first due date, a first
//! due date that is not one of the rule's dates, and after-completion rules
//! that honour their interval.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime};
use chrono_tz::Tz;
use proptest::prelude::*;

use crate::input::{ParseError, parse_create};
use crate::recurrence::tests::{any_rule, rule};
use crate::recurrence::{Anchor, Frequency, to_utc};
use crate::series::SeriesStart;

fn ymd_hm(y: i32, m: u32, d: u32, h: u32, min: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(y, m, d)
        .unwrap()
        .and_hms_opt(h, min, 0)
        .unwrap()
}

/// The fields a create body was refused on, with their messages.
fn refused(body: &str) -> Vec<(String, String)> {
    match parse_create(body.as_bytes()) {
        Err(ParseError::Invalid(errors)) => errors
            .into_iter()
            .map(|e| (e.field.to_owned(), e.message))
            .collect(),
        other => panic!("{body} was not refused: {other:?}"),
    }
}

#[test]
fn to_utc_never_panics_at_the_ends_of_chronos_range() {
    for zone in [
        "America/New_York",
        "Asia/Tokyo",
        "Pacific/Kiritimati",
        "UTC",
    ] {
        let tz: Tz = zone.parse().unwrap();
        for local in [
            NaiveDateTime::MIN,
            NaiveDateTime::MAX,
            ymd_hm(262_142, 12, 31, 23, 59),
            ymd_hm(-262_143, 1, 1, 0, 0),
        ] {
            let _ = to_utc(tz, local);
        }
    }
}

#[test]
fn dates_outside_years_1_to_9999_are_refused() {
    // The review's probe: a crafted end.until panicked task-api.
    let probe = r#"{"title":"a","due_at":"2027-01-05T14:00:00Z","time_zone":"America/New_York",
        "recurrence":{"frequency":"daily","end":{"until":"+262142-12-31"}}}"#;
    assert_eq!(refused(probe)[0].0, "recurrence");
    let tokyo = r#"{"title":"a","due_at":"2027-01-05T14:00:00Z","time_zone":"Asia/Tokyo",
        "recurrence":{"frequency":"daily","end":{"until":"-262143-01-01"}}}"#;
    assert_eq!(refused(tokyo)[0].0, "recurrence");
    let due = r#"{"title":"a","due_at":"+10000-01-01T00:00:00Z"}"#;
    assert_eq!(refused(due)[0].0, "due_at");
    // 9999-12-31T20:00Z is already year 10000 in Tokyo.
    let local = r#"{"title":"a","due_at":"9999-12-31T20:00:00Z","time_zone":"Asia/Tokyo"}"#;
    assert_eq!(refused(local)[0].0, "due_at");
    let reminder =
        r#"{"title":"a","reminders":[{"at":"+20000-01-01T00:00:00Z","channels":["push"]}]}"#;
    assert_eq!(refused(reminder)[0].0, "reminders");
    let rrule =
        r#"{"title":"a","due_at":"2027-01-05T14:00:00Z","rrule":"FREQ=DAILY;UNTIL=+2621421231"}"#;
    assert_eq!(refused(rrule)[0].0, "rrule");
    assert!(
        parse_create(br#"{"title":"a","due_at":"9999-12-31T08:00:00Z","time_zone":"UTC"}"#).is_ok()
    );
}

#[test]
fn a_successor_past_9999_ends_the_series() {
    let tz = Tz::UTC;
    let start = SeriesStart {
        local: ymd_hm(9999, 12, 31, 9, 0),
        tz,
        index: 1,
    };
    let done = to_utc(tz, ymd_hm(9999, 12, 31, 10, 0));
    assert_eq!(
        rule(Frequency::Daily).successor(&start, &start.first(), done),
        None
    );
    let mut yearly = rule(Frequency::Yearly);
    yearly.interval = 1000;
    let start = SeriesStart {
        local: ymd_hm(9000, 6, 1, 9, 0),
        tz,
        index: 1,
    };
    assert_eq!(
        yearly.successor(&start, &start.first(), start.first().due),
        None
    );
    let mut completion = rule(Frequency::Daily);
    completion.anchor = Anchor::Completion;
    assert_eq!(completion.successor(&start, &start.first(), done), None);
}

#[test]
fn an_end_before_the_due_date_is_refused() {
    let json = r#"{"title":"a","due_at":"2027-01-05T14:00:00Z","recurrence":{"frequency":"daily","end":{"until":"2020-01-01"}}}"#;
    let errors = refused(json);
    assert_eq!(errors[0].0, "recurrence");
    assert!(
        errors[0].1.contains("before the due date"),
        "{}",
        errors[0].1
    );
    let rrule = r#"{"title":"a","due_at":"2027-01-05T14:00:00Z","rrule":"FREQ=DAILY;UNTIL=20200101T000000Z"}"#;
    let errors = refused(rrule);
    assert_eq!(errors[0].0, "rrule");
    assert!(
        errors[0].1.contains("UNTIL=20200101T000000Z"),
        "{}",
        errors[0].1
    );
    // The due date's own local day is a valid end: one occurrence.
    assert!(parse_create(br#"{"title":"a","due_at":"2027-01-05T14:00:00Z","recurrence":{"frequency":"daily","end":{"until":"2027-01-05"}}}"#).is_ok());
}

#[test]
fn a_due_date_off_the_rules_dates_is_refused() {
    // Wed 2027-01-06 is not a Monday or Friday; Jan 5 is not the last
    // Friday; the 5th is not the 30th. RFC 5545 3.8.5.3 leaves all three
    // undefined, and parsers expand them differently.
    for (body, field, needle) in [
        (
            r#"{"title":"a","due_at":"2027-01-06T14:00:00Z","rrule":"FREQ=WEEKLY;BYDAY=MO,FR;COUNT=4"}"#,
            "rrule",
            "BYDAY=MO,FR",
        ),
        (
            r#"{"title":"a","due_at":"2027-01-05T14:00:00Z","rrule":"FREQ=MONTHLY;BYDAY=-1FR"}"#,
            "rrule",
            "BYDAY=-1FR",
        ),
        (
            r#"{"title":"a","due_at":"2027-01-05T14:00:00Z","recurrence":{"frequency":"monthly","month_day":30}}"#,
            "recurrence",
            "not one of the rule's dates",
        ),
        (
            r#"{"title":"a","due_at":"2027-01-06T14:00:00Z","recurrence":{"frequency":"weekly","weekdays":["mon","fri"]}}"#,
            "recurrence",
            "not one of the rule's dates",
        ),
    ] {
        let errors = refused(body);
        assert_eq!(errors[0].0, field, "{body}");
        assert!(errors[0].1.contains(needle), "{body}: {}", errors[0].1);
    }
    // On the rule's dates: accepted (Fri 2027-01-29 is January's last Friday;
    // month_day 31 clamps to Feb 28).
    for body in [
        r#"{"title":"a","due_at":"2027-01-29T14:00:00Z","rrule":"FREQ=MONTHLY;BYDAY=-1FR"}"#,
        r#"{"title":"a","due_at":"2027-02-28T14:00:00Z","recurrence":{"frequency":"monthly","month_day":31}}"#,
        r#"{"title":"a","due_at":"2027-01-08T14:00:00Z","rrule":"FREQ=WEEKLY;BYDAY=MO,FR;COUNT=4"}"#,
    ] {
        assert!(parse_create(body.as_bytes()).is_ok(), "{body}");
    }
}

#[test]
fn a_patch_that_moves_the_due_date_off_the_rule_is_refused() {
    let task = parse_create(br#"{"title":"a","due_at":"2027-01-08T14:00:00Z","recurrence":{"frequency":"weekly","weekdays":["mon","fri"]}}"#).unwrap();
    let mut current = crate::input::sample_task();
    current.due_at = task.fields.due_at;
    current.time_zone = "UTC".to_owned();
    current.recurrence = task.fields.recurrence;
    current.reminders.clear();
    let moved = crate::input::parse_patch(br#"{"due_at":"2027-01-13T14:00:00Z"}"#, &current);
    assert!(matches!(moved, Err(ParseError::Invalid(_))), "{moved:?}");
    assert!(crate::input::parse_patch(br#"{"due_at":"2027-01-11T14:00:00Z"}"#, &current).is_ok());
    assert!(crate::input::parse_patch(br#"{"title":"b"}"#, &current).is_ok());
}

#[test]
fn an_rrule_interval_of_zero_names_interval_and_reasons_keep_their_case() {
    let due = ymd_hm(2027, 1, 4, 9, 0);
    let err = crate::rrule::parse("FREQ=DAILY;INTERVAL=0", due, Tz::UTC).unwrap_err();
    assert_eq!(err.part, "INTERVAL=0");
    let err = crate::rrule::parse("FREQ=WEEKLY;BYMONTH=3", due, Tz::UTC).unwrap_err();
    assert_eq!(err.reason, "not supported with FREQ=WEEKLY");
}

#[test]
fn after_completion_weekly_interval_two_skips_the_completions_week() {
    let tz: Tz = "America/New_York".parse().unwrap();
    let mut r = rule(Frequency::Weekly);
    r.interval = 2;
    r.anchor = Anchor::Completion;
    r.weekdays = vec![crate::recurrence::Day::Fri];
    // Anchored on Fri 2026-11-20; completed Mon 2026-11-30.
    let start = SeriesStart {
        local: ymd_hm(2026, 11, 20, 9, 0),
        tz,
        index: 1,
    };
    let done = to_utc(tz, ymd_hm(2026, 11, 30, 12, 0));
    let next = r.successor(&start, &start.first(), done).unwrap();
    // The completion's week (Nov 30) is not a series week: two weeks on.
    assert_eq!(
        next.due.with_timezone(&tz).naive_local(),
        ymd_hm(2026, 12, 18, 9, 0)
    );
    // Monthly, interval 2, on the 20th, completed on the 5th: two months on.
    let mut m = rule(Frequency::Monthly);
    m.interval = 2;
    m.anchor = Anchor::Completion;
    let done = to_utc(tz, ymd_hm(2026, 12, 5, 12, 0));
    let next = m.successor(&start, &start.first(), done).unwrap();
    assert_eq!(
        next.due.with_timezone(&tz).naive_local(),
        ymd_hm(2027, 2, 20, 9, 0)
    );
}

/// The first day of the period (week, month, year) `d` falls in.
fn period_start(f: Frequency, d: NaiveDate) -> NaiveDate {
    match f {
        Frequency::Daily => d,
        Frequency::Weekly => d - chrono::Days::new(u64::from(d.weekday().num_days_from_monday())),
        Frequency::Monthly => d.with_day(1).unwrap(),
        Frequency::Yearly => d.with_day(1).unwrap().with_month(1).unwrap(),
    }
}

proptest! {
    /// After completion, the next occurrence is never in a period before
    /// the one `interval` periods after the completion's: a lower bound
    /// that an occurrence later in the completion's own week or month
    /// breaks.
    #[test]
    fn after_completion_waits_at_least_the_interval(
        r in any_rule().prop_map(|mut r| { r.anchor = Anchor::Completion; r }),
        secs in 1_700_000_000i64..2_000_000_000,
        late_days in 0i64..400,
    ) {
        let tz = Tz::UTC;
        let first = DateTime::from_timestamp(secs, 0).unwrap();
        let start = SeriesStart::at(first, tz, 1);
        let done = first + chrono::Duration::days(late_days);
        let next = r.successor(&start, &start.first(), done).unwrap();
        let base = done.date_naive();
        let n = r.interval;
        let bound = match r.frequency {
            Frequency::Daily => base + chrono::Days::new(u64::from(n)),
            Frequency::Weekly => period_start(r.frequency, base) + chrono::Days::new(7 * u64::from(n)),
            Frequency::Monthly => period_start(r.frequency, base) + chrono::Months::new(n),
            Frequency::Yearly => period_start(r.frequency, base) + chrono::Months::new(12 * n),
        };
        prop_assert!(next.due.date_naive() >= bound, "{:?} completed {} gave {}", r, done, next.due);
        prop_assert!(next.due > done);
    }

    /// Any end date stays without a panic and without an occurrence past
    /// year 9999, whatever the zone.
    #[test]
    fn occurrences_stay_within_years_1_to_9999(
        r in any_rule().prop_map(|mut r| { r.anchor = Anchor::Schedule; r }),
        tz in 0usize..chrono_tz::TZ_VARIANTS.len(),
        year in 9998i32..=9999,
    ) {
        let tz = chrono_tz::TZ_VARIANTS[tz];
        let start = SeriesStart { local: ymd_hm(year, 1, 28, 9, 0), tz, index: 1 };
        let mut current = start.first();
        for _ in 0..800 {
            match r.successor(&start, &current, current.due) {
                Some(next) => {
                    prop_assert!(next.due.year() <= 9999 && next.due.with_timezone(&tz).year() <= 9999);
                    current = next;
                }
                None => break,
            }
        }
    }
}
