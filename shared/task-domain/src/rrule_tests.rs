//! Tests of the RRULE format and parser: the documented examples, every
//! refusal naming its part, and a round trip over generated rules that
//! compares the occurrences, not the spelling.

use super::*;
use crate::recurrence::tests::{any_rule, rule};
use proptest::prelude::*;

fn local(y: i32, m: u32, d: u32, h: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(y, m, d)
        .unwrap()
        .and_hms_opt(h, 0, 0)
        .unwrap()
}

fn start_at(l: NaiveDateTime, tz: &str) -> SeriesStart {
    SeriesStart {
        local: l,
        tz: tz.parse().unwrap(),
        index: 1,
    }
}

#[test]
fn formats_the_documented_examples() {
    let start = start_at(local(2026, 1, 30, 17), "Europe/Berlin");
    let mut r = rule(Frequency::Monthly);
    r.nth_weekday = Some(NthWeekday {
        nth: -1,
        weekday: Day::Fri,
    });
    r.end = End::After(12);
    assert_eq!(
        format(&r, &start).unwrap(),
        "FREQ=MONTHLY;BYDAY=-1FR;COUNT=12"
    );
    let jan31 = start_at(local(2026, 1, 31, 9), "UTC");
    assert_eq!(
        format(&rule(Frequency::Monthly), &jan31).unwrap(),
        "FREQ=MONTHLY;BYMONTHDAY=28,29,30,31;BYSETPOS=-1"
    );
    let leap = start_at(local(2028, 2, 29, 7), "UTC");
    assert_eq!(
        format(&rule(Frequency::Yearly), &leap).unwrap(),
        "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=28,29;BYSETPOS=-1"
    );
    let mut weekly = rule(Frequency::Weekly);
    weekly.interval = 2;
    weekly.weekdays = vec![Day::Fri, Day::Mon];
    weekly.end = End::Until(NaiveDate::from_ymd_opt(2026, 12, 31).unwrap());
    assert_eq!(
        format(&weekly, &start).unwrap(),
        "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,FR;UNTIL=20261231T225959Z"
    );
    assert_eq!(
        dtstart(&start),
        "DTSTART;TZID=Europe/Berlin:20260130T170000"
    );
    let mut after = rule(Frequency::Daily);
    after.anchor = Anchor::Completion;
    assert_eq!(format(&after, &start), None);
}

#[test]
fn parses_the_subset() {
    let due = local(2026, 11, 27, 17);
    let tz: Tz = "Europe/Berlin".parse().unwrap();
    let r = parse("RRULE:FREQ=MONTHLY;BYDAY=-1FR;COUNT=12", due, tz).unwrap();
    assert_eq!(
        r.nth_weekday,
        Some(NthWeekday {
            nth: -1,
            weekday: Day::Fri
        })
    );
    assert_eq!(r.end, End::After(12));
    // A first due date on the rule's dates: Wed Nov 25, then Mon Nov 30.
    let r = parse(
        "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE;WKST=MO",
        local(2026, 11, 25, 17),
        tz,
    )
    .unwrap();
    assert_eq!(
        (r.interval, r.weekdays.clone()),
        (2, vec![Day::Mon, Day::Wed])
    );
    let r = parse(
        "FREQ=MONTHLY;BYMONTHDAY=28,29,30;BYSETPOS=-1",
        local(2026, 11, 30, 17),
        tz,
    )
    .unwrap();
    assert_eq!(r.month_day, Some(30));
    // UNTIL as a UTC instant: 16:00Z is 17:00 in Berlin, the series' time.
    let r = parse("FREQ=DAILY;UNTIL=20261203T160000Z", due, tz).unwrap();
    assert_eq!(
        r.end,
        End::Until(NaiveDate::from_ymd_opt(2026, 12, 3).unwrap())
    );
    let r = parse("FREQ=DAILY;UNTIL=20261203T155959Z", due, tz).unwrap();
    assert_eq!(
        r.end,
        End::Until(NaiveDate::from_ymd_opt(2026, 12, 2).unwrap())
    );
}

#[test]
fn refusals_name_the_part() {
    let due = local(2026, 1, 31, 9);
    let tz = Tz::UTC;
    for (text, part) in [
        ("FREQ=HOURLY", "FREQ=HOURLY"),
        ("FREQ=DAILY;BYHOUR=9", "BYHOUR"),
        ("FREQ=MONTHLY;BYMONTHDAY=31", "BYMONTHDAY=31"),
        ("FREQ=MONTHLY", "BYMONTHDAY"),
        ("FREQ=MONTHLY;BYDAY=5MO", "BYDAY=5MO"),
        ("FREQ=MONTHLY;BYDAY=MO,TU", "BYDAY=MO,TU"),
        ("FREQ=WEEKLY;BYDAY=1MO", "BYDAY=1MO"),
        ("FREQ=DAILY;COUNT=2;UNTIL=20270101", "COUNT"),
        ("FREQ=DAILY;WKST=SU", "WKST=SU"),
        ("FREQ=DAILY;UNTIL=20270101T000000", "UNTIL=20270101T000000"),
        ("FREQ=DAILY;INTERVAL=x", "INTERVAL=x"),
        ("FREQ=DAILY;FREQ=DAILY", "FREQ"),
        ("INTERVAL=2", "FREQ"),
        ("FREQ=DAILY;COUNT=0", "COUNT=0"),
        ("FREQ=YEARLY;BYMONTH=3", "BYMONTH=3"),
        ("FREQ=DAILY;bogus", "bogus"),
    ] {
        let err = parse(text, due, tz).unwrap_err();
        assert_eq!(err.part, part, "{text}: {err}");
    }
    let leap = local(2028, 2, 29, 9);
    assert_eq!(
        parse("FREQ=YEARLY", leap, tz).unwrap_err().part,
        "BYMONTHDAY"
    );
    assert!(
        parse(
            "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=28,29;BYSETPOS=-1",
            leap,
            tz
        )
        .is_ok()
    );
}

proptest! {
    /// Every rule's RRULE parses back to a rule with the same occurrences.
    #[test]
    fn format_then_parse_keeps_the_occurrences(
        r in any_rule().prop_filter("fixed schedule", |r| r.anchor == Anchor::Schedule),
        tz in 0usize..chrono_tz::TZ_VARIANTS.len(),
        secs in 1_700_000_000i64..2_000_000_000,
        count in proptest::option::of(1u32..40),
    ) {
        let mut r = r;
        if let Some(count) = count {
            r.end = End::After(count);
        }
        let tz = chrono_tz::TZ_VARIANTS[tz];
        let due = chrono::DateTime::from_timestamp(secs, 0).unwrap();
        let start = SeriesStart::at(due, tz, 1);
        // A first due date off the rule's dates is refused (RFC 5545 leaves
        // that set undefined).
        let r = crate::recurrence::tests::fit_rule_to(r, start.local.date());
        let text = format(&r, &start).unwrap();
        let back = parse(&text, start.local, tz).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        for index in 1..40 {
            prop_assert_eq!(r.occurrence(&start, index), back.occurrence(&start, index), "{} #{}", text, index);
        }
    }
}
