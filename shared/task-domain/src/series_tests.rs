//! Tests of the anchored series engine: the three drift cases an RFC 5545
//! cross-check found, catch-up, the ends, and property tests that walk a
//! chain of occurrences and compare it with the rule evaluated from the
//! anchor in one step.

use super::*;
use crate::recurrence::tests::{any_rule, at, rule};
use crate::recurrence::{Day, NthWeekday};
use chrono::{TimeZone, Timelike};
use proptest::prelude::*;

/// Completes each occurrence on time, `n` times, from the anchor.
fn chain(r: &Recurrence, start: &SeriesStart, n: usize) -> Vec<Occurrence> {
    let mut out = vec![start.first()];
    while out.len() < n {
        let current = out[out.len() - 1];
        match r.successor(start, &current, current.due) {
            Some(next) => out.push(next),
            None => break,
        }
    }
    out
}

fn local(o: &Occurrence, tz: Tz) -> NaiveDateTime {
    o.due.with_timezone(&tz).naive_local()
}

fn ymd_hm(y: i32, m: u32, d: u32, h: u32, min: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(y, m, d)
        .unwrap()
        .and_hms_opt(h, min, 0)
        .unwrap()
}

#[test]
fn monthly_from_jan_31_comes_back_to_the_31st() {
    let tz = Tz::UTC;
    let start = SeriesStart::at(at(tz, 2026, 1, 31, 9, 0), tz, 1);
    let got: Vec<_> = chain(&rule(Frequency::Monthly), &start, 4)
        .iter()
        .map(|o| local(o, tz))
        .collect();
    assert_eq!(
        got,
        [
            ymd_hm(2026, 1, 31, 9, 0),
            ymd_hm(2026, 2, 28, 9, 0),
            ymd_hm(2026, 3, 31, 9, 0),
            ymd_hm(2026, 4, 30, 9, 0),
        ]
    );
}

#[test]
fn yearly_from_feb_29_is_feb_29_in_leap_years() {
    let tz = Tz::UTC;
    let start = SeriesStart::at(at(tz, 2028, 2, 29, 7, 0), tz, 1);
    let got: Vec<_> = chain(&rule(Frequency::Yearly), &start, 6)
        .iter()
        .map(|o| local(o, tz).date())
        .collect();
    let want: Vec<_> = [
        (2028, 29),
        (2029, 28),
        (2030, 28),
        (2031, 28),
        (2032, 29),
        (2033, 28),
    ]
    .iter()
    .map(|(y, d)| NaiveDate::from_ymd_opt(*y, 2, *d).unwrap())
    .collect();
    assert_eq!(got, want);
}

#[test]
fn daily_0230_in_new_york_returns_to_0230_after_spring_forward() {
    let tz: Tz = "America/New_York".parse().unwrap();
    // 2026-03-08 is the spring-forward day: 02:00–03:00 does not exist.
    let start = SeriesStart {
        local: ymd_hm(2026, 3, 7, 2, 30),
        tz,
        index: 1,
    };
    let got: Vec<_> = chain(&rule(Frequency::Daily), &start, 3)
        .iter()
        .map(|o| local(o, tz))
        .collect();
    assert_eq!(
        got,
        [
            ymd_hm(2026, 3, 7, 2, 30),
            // RFC 5545 3.3.5: read with the offset before the gap (EST).
            ymd_hm(2026, 3, 8, 3, 30),
            ymd_hm(2026, 3, 9, 2, 30),
        ]
    );
}

#[test]
fn a_late_completion_skips_to_the_first_occurrence_after_it() {
    let tz: Tz = "Europe/Paris".parse().unwrap();
    let start = SeriesStart::at(at(tz, 2026, 11, 2, 9, 0), tz, 1);
    let r = rule(Frequency::Daily);
    // Completed on Nov 5 at 12:00: Nov 3, 4 and 5 (09:00) have passed.
    let next = r
        .successor(&start, &start.first(), at(tz, 2026, 11, 5, 12, 0))
        .unwrap();
    assert_eq!(local(&next, tz), ymd_hm(2026, 11, 6, 9, 0));
    assert_eq!(next.index, 5, "the skipped occurrences still count");
    // With three occurrences in all, that one is past the end.
    let mut ends = r.clone();
    ends.end = End::After(3);
    assert_eq!(
        ends.successor(&start, &start.first(), at(tz, 2026, 11, 5, 12, 0)),
        None
    );
}

#[test]
fn after_completion_counts_from_the_completion_at_the_series_time() {
    let tz: Tz = "America/New_York".parse().unwrap();
    let mut r = rule(Frequency::Weekly);
    r.anchor = Anchor::Completion;
    r.interval = 2;
    let start = SeriesStart {
        local: ymd_hm(2026, 3, 2, 2, 30),
        tz,
        index: 1,
    };
    // Completed on Thursday Mar 12: two weeks on, on the anchor's Monday.
    let next = r
        .successor(&start, &start.first(), at(tz, 2026, 3, 12, 18, 0))
        .unwrap();
    assert_eq!(local(&next, tz), ymd_hm(2026, 3, 23, 2, 30));
    assert_eq!(next.index, 2);
}

#[test]
fn until_and_count_end_the_series() {
    let tz = Tz::UTC;
    let start = SeriesStart::at(at(tz, 2026, 11, 1, 9, 0), tz, 1);
    let mut r = rule(Frequency::Weekly);
    r.weekdays = vec![Day::Mon, Day::Fri];
    r.end = End::After(4);
    assert_eq!(chain(&r, &start, 50).len(), 4);
    r.end = End::Until(NaiveDate::from_ymd_opt(2026, 11, 13).unwrap());
    // Nov 1 (Sun, the anchor), Mon 2, Fri 6, Mon 9, Fri 13.
    assert_eq!(chain(&r, &start, 50).len(), 5);
}

#[test]
fn re_anchored_series_keep_counting() {
    let tz = Tz::UTC;
    let mut r = rule(Frequency::Monthly);
    r.nth_weekday = Some(NthWeekday {
        nth: -1,
        weekday: Day::Fri,
    });
    r.end = End::After(12);
    // Occurrence 10 re-anchored (its due date was edited).
    let start = SeriesStart::at(at(tz, 2026, 11, 27, 17, 0), tz, 10);
    let got = chain(&r, &start, 50);
    assert_eq!(got.len(), 3);
    assert_eq!(got[2].index, 12);
    assert_eq!(
        local(&got[2], tz).date(),
        NaiveDate::from_ymd_opt(2027, 1, 29).unwrap()
    );
}

fn any_start() -> impl Strategy<Value = SeriesStart> {
    (
        0usize..chrono_tz::TZ_VARIANTS.len(),
        1_700_000_000i64..2_000_000_000,
        // Local times at a whole or half hour, where DST gaps fall.
        0u32..48,
        1u32..4,
    )
        .prop_map(|(tz, secs, half_hours, index)| {
            let tz = chrono_tz::TZ_VARIANTS[tz];
            let date = DateTime::from_timestamp(secs, 0).unwrap().date_naive();
            let time =
                chrono::NaiveTime::from_hms_opt(half_hours / 2, (half_hours % 2) * 30, 0).unwrap();
            SeriesStart {
                local: date.and_time(time),
                tz,
                index,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Fifty on-time completions give exactly the occurrences the rule
    /// gives when each is evaluated from the anchor in one step.
    #[test]
    fn a_chain_of_fifty_matches_the_rule_from_the_anchor(
        r in any_rule().prop_filter("fixed schedule", |r| r.anchor == Anchor::Schedule),
        start in any_start(),
    ) {
        let walked = chain(&r, &start, 50);
        prop_assert_eq!(walked.len(), 50);
        for (i, o) in walked.iter().enumerate() {
            let index = start.index + u32::try_from(i).unwrap();
            prop_assert_eq!(o.index, index);
            prop_assert_eq!(Some(*o), r.occurrence(&start, index), "occurrence {}", index);
            // Every occurrence is at the anchor's wall time, unless a DST
            // gap swallowed it that day.
            let wall = local(o, start.tz);
            let exists = start.tz.from_local_datetime(&wall.date().and_time(start.local.time())).single().is_some()
                || start.tz.from_local_datetime(&wall.date().and_time(start.local.time())).earliest().is_some();
            if exists && i > 0 {
                prop_assert_eq!(wall.time(), start.local.time());
            }
        }
        for pair in walked.windows(2) {
            prop_assert!(pair[0].due < pair[1].due);
        }
    }

    /// A completion at any time gives the first occurrence due after it,
    /// as read from the anchor in one step.
    #[test]
    fn a_late_completion_gives_the_first_occurrence_after_it(
        r in any_rule().prop_filter("fixed schedule", |r| r.anchor == Anchor::Schedule),
        start in any_start(),
        late_hours in 0i64..24 * 400,
        steps in 0u32..20,
    ) {
        let current = r.occurrence(&start, start.index + steps).unwrap();
        let done = current.due + chrono::Duration::hours(late_hours);
        let next = r.successor(&start, &current, done).unwrap();
        prop_assert!(next.due > done && next.index > current.index);
        let before = r.occurrence(&start, next.index - 1).unwrap();
        prop_assert!(before.due <= done, "{:?} was not skipped", before);
        prop_assert_eq!(Some(next), r.occurrence(&start, next.index));
    }

    /// After-completion chains keep the anchor's wall time and pattern.
    #[test]
    fn after_completion_chains_do_not_drift(
        r in any_rule().prop_map(|mut r| { r.anchor = Anchor::Completion; r }),
        start in any_start(),
        late_hours in 0i64..72,
    ) {
        let mut current = start.first();
        for _ in 0..50 {
            let done = current.due + chrono::Duration::hours(late_hours);
            let next = r.successor(&start, &current, done).unwrap();
            prop_assert_eq!(next.index, current.index + 1);
            let wall = local(&next, start.tz);
            if wall.time() != start.local.time() {
                // Only a wall time a DST gap skipped may move.
                let t = wall.date().and_time(start.local.time());
                prop_assert!(start.tz.from_local_datetime(&t).earliest().is_none(), "{} vs {}", wall, start.local);
            }
            if r.frequency == Frequency::Monthly && r.nth_weekday.is_none() {
                let want = u32::from(r.month_day.unwrap_or(u8::try_from(start.local.day()).unwrap()));
                prop_assert!(wall.day() == want || wall.day() < want && wall.date().succ_opt().unwrap().day() == 1);
            }
            current = next;
        }
    }
}

#[test]
fn the_anchor_time_survives_half_hour_gaps() {
    // Lord Howe moves by 30 minutes: 02:00–02:30 is skipped on 2026-10-04.
    let tz: Tz = "Australia/Lord_Howe".parse().unwrap();
    let start = SeriesStart {
        local: ymd_hm(2026, 10, 3, 2, 15),
        tz,
        index: 1,
    };
    let got = chain(&rule(Frequency::Daily), &start, 3);
    assert_eq!(local(&got[1], tz).time().minute(), 45);
    assert_eq!(local(&got[2], tz), ymd_hm(2026, 10, 5, 2, 15));
}
