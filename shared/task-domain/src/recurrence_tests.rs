//! Unit and property tests of the recurrence engine.

use super::*;
use crate::series::SeriesStart;
use chrono::Timelike;
use proptest::prelude::*;

pub(crate) fn rule(frequency: Frequency) -> Recurrence {
    Recurrence {
        frequency,
        interval: 1,
        weekdays: vec![],
        month_day: None,
        nth_weekday: None,
        anchor: Anchor::Schedule,
        end: End::Never,
    }
}

pub(crate) fn at(tz: Tz, y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    to_utc(
        tz,
        NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_hms_opt(h, min, 0)
            .unwrap(),
    )
}

/// The occurrence after `due` of a series anchored at `due`, completed on time.
fn next(r: &Recurrence, tz: Tz, due: DateTime<Utc>) -> Option<DateTime<Utc>> {
    next_from(r, tz, due, 1, due)
}

fn next_from(
    r: &Recurrence,
    tz: Tz,
    due: DateTime<Utc>,
    index: u32,
    done: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let start = SeriesStart::at(due, tz, index);
    r.successor(&start, &start.first(), done).map(|o| o.due)
}

#[test]
fn daily_keeps_local_time_across_dst() {
    let tz: Tz = "Europe/Berlin".parse().unwrap();
    // 2026-03-29 is the spring-forward day in Berlin.
    let due = at(tz, 2026, 3, 28, 9, 0);
    let n = next(&rule(Frequency::Daily), tz, due).unwrap();
    assert_eq!(n, at(tz, 2026, 3, 29, 9, 0));
    assert_eq!(n - due, chrono::Duration::hours(23));
}

#[test]
fn skipped_wall_time_moves_past_the_gap() {
    let tz: Tz = "America/New_York".parse().unwrap();
    let due = at(tz, 2026, 3, 7, 2, 30);
    let n = next(&rule(Frequency::Daily), tz, due).unwrap();
    // 02:30 does not exist on 2026-03-08 in New York.
    assert_eq!(n.with_timezone(&tz).hour(), 3);
}

#[test]
fn weekly_on_named_days_with_interval() {
    let tz = Tz::UTC;
    let mut r = rule(Frequency::Weekly);
    r.weekdays = vec![Day::Mon, Day::Wed, Day::Fri];
    // 2026-11-23 is a Monday.
    let mon = at(tz, 2026, 11, 23, 8, 0);
    assert_eq!(next(&r, tz, mon), Some(at(tz, 2026, 11, 25, 8, 0)));
    let fri = at(tz, 2026, 11, 27, 8, 0);
    assert_eq!(next(&r, tz, fri), Some(at(tz, 2026, 11, 30, 8, 0)));
    r.interval = 2;
    assert_eq!(next(&r, tz, fri), Some(at(tz, 2026, 12, 7, 8, 0)));
}

#[test]
fn monthly_by_day_clamps_short_months() {
    let tz = Tz::UTC;
    let mut r = rule(Frequency::Monthly);
    r.month_day = Some(31);
    let jan = at(tz, 2026, 1, 31, 12, 0);
    assert_eq!(next(&r, tz, jan), Some(at(tz, 2026, 2, 28, 12, 0)));
    let feb = at(tz, 2026, 2, 28, 12, 0);
    assert_eq!(next(&r, tz, feb), Some(at(tz, 2026, 3, 31, 12, 0)));
}

#[test]
fn monthly_last_friday() {
    let tz = Tz::UTC;
    let mut r = rule(Frequency::Monthly);
    r.nth_weekday = Some(NthWeekday {
        nth: -1,
        weekday: Day::Fri,
    });
    // Due on 2026-11-02: the last Friday of November is still ahead.
    let due = at(tz, 2026, 11, 2, 17, 0);
    assert_eq!(next(&r, tz, due), Some(at(tz, 2026, 11, 27, 17, 0)));
    let due = at(tz, 2026, 11, 27, 17, 0);
    assert_eq!(next(&r, tz, due), Some(at(tz, 2026, 12, 25, 17, 0)));
}

#[test]
fn yearly_on_leap_day_clamps() {
    let tz = Tz::UTC;
    let due = at(tz, 2028, 2, 29, 7, 0);
    assert_eq!(
        next(&rule(Frequency::Yearly), tz, due),
        Some(at(tz, 2029, 2, 28, 7, 0))
    );
}

#[test]
fn completion_anchor_counts_from_completion() {
    let tz = Tz::UTC;
    let mut r = rule(Frequency::Daily);
    r.interval = 3;
    r.anchor = Anchor::Completion;
    let due = at(tz, 2026, 11, 1, 9, 0);
    let done = at(tz, 2026, 11, 10, 18, 0);
    assert_eq!(
        next_from(&r, tz, due, 1, done),
        Some(at(tz, 2026, 11, 13, 9, 0))
    );
}

#[test]
fn ends_after_count_and_until() {
    let tz = Tz::UTC;
    let due = at(tz, 2026, 11, 1, 9, 0);
    let mut r = rule(Frequency::Daily);
    r.end = End::After(3);
    assert!(next_from(&r, tz, due, 2, due).is_some());
    assert_eq!(next_from(&r, tz, due, 3, due), None);
    r.end = End::Until(NaiveDate::from_ymd_opt(2026, 11, 2).unwrap());
    assert!(next(&r, tz, due).is_some());
    assert_eq!(next(&r, tz, at(tz, 2026, 11, 2, 9, 0)), None);
}

#[test]
fn invalid_rules_are_refused_with_a_reason() {
    let mut r = rule(Frequency::Daily);
    r.weekdays = vec![Day::Mon];
    assert!(
        r.validate(true)
            .unwrap_err()
            .message
            .contains("only with weekly")
    );
    let mut r = rule(Frequency::Weekly);
    r.month_day = Some(3);
    assert!(r.validate(true).is_err());
    let mut r = rule(Frequency::Monthly);
    r.month_day = Some(3);
    r.nth_weekday = Some(NthWeekday {
        nth: 1,
        weekday: Day::Mon,
    });
    assert!(r.validate(true).is_err());
    let mut r = rule(Frequency::Daily);
    r.interval = 0;
    assert!(r.validate(true).is_err());
    assert!(rule(Frequency::Daily).validate(false).is_err());
    assert!(rule(Frequency::Daily).validate(true).is_ok());
}

#[test]
fn json_shape_and_unknown_fields() {
    let r: Recurrence = serde_json::from_str(
        r#"{"frequency":"monthly","nth_weekday":{"nth":-1,"weekday":"fri"},"end":{"after":5}}"#,
    )
    .unwrap();
    assert_eq!(r.interval, 1);
    assert_eq!(r.end, End::After(5));
    let back = serde_json::to_value(&r).unwrap();
    assert_eq!(back["end"], serde_json::json!({"after": 5}));
    assert!(serde_json::from_str::<Recurrence>(r#"{"frequency":"daily","every":2}"#).is_err());
    let until: Recurrence =
        serde_json::from_str(r#"{"frequency":"daily","end":{"until":"2027-01-01"}}"#).unwrap();
    assert!(matches!(until.end, End::Until(_)));
    assert!(serde_json::from_str::<Recurrence>(r#"{"frequency":"daily","end":"never"}"#).is_ok());
}

pub(crate) fn any_rule() -> impl Strategy<Value = Recurrence> {
    let day = proptest::sample::select(Day::ALL.to_vec());
    (
        0usize..4,
        1u32..5,
        proptest::collection::btree_set(day.clone(), 0..4),
        proptest::option::of(1u8..=31),
        proptest::option::of((prop_oneof![1i8..=4, Just(-1i8)], day)),
        any::<bool>(),
    )
        .prop_map(|(f, interval, days, month_day, nth, completion)| {
            let frequency = [
                Frequency::Daily,
                Frequency::Weekly,
                Frequency::Monthly,
                Frequency::Yearly,
            ][f];
            let mut r = rule(frequency);
            r.interval = interval;
            r.anchor = if completion {
                Anchor::Completion
            } else {
                Anchor::Schedule
            };
            match frequency {
                Frequency::Weekly => r.weekdays = days.into_iter().collect(),
                Frequency::Monthly => match nth {
                    Some((nth, weekday)) => r.nth_weekday = Some(NthWeekday { nth, weekday }),
                    None => r.month_day = month_day,
                },
                _ => {}
            }
            r
        })
}

/// `r` changed as little as possible so that `date` is one of its dates
/// (the weekday added, the day of month or nth weekday taken from `date`):
/// a series' first due date must be (see `Recurrence::validate_start`).
pub(crate) fn fit_rule_to(mut r: Recurrence, date: NaiveDate) -> Recurrence {
    let day = Day::ALL[date.weekday().num_days_from_monday() as usize];
    if !r.weekdays.is_empty() && !r.weekdays.contains(&day) {
        r.weekdays.push(day);
    }
    if r.month_day.is_some() {
        r.month_day = u8::try_from(date.day()).ok();
    }
    if let Some(nth) = &mut r.nth_weekday {
        nth.weekday = day;
        nth.nth = if date.day() > 28 {
            -1
        } else {
            i8::try_from((date.day() - 1) / 7 + 1).unwrap_or(-1)
        };
    }
    r
}

proptest! {
    #[test]
    fn next_is_after_due_and_near(
        r in any_rule(),
        tz_idx in 0usize..chrono_tz::TZ_VARIANTS.len(),
        secs in 1_700_000_000i64..2_000_000_000,
        late_days in 0i64..40,
    ) {
        prop_assert!(r.validate(true).is_ok());
        let tz = chrono_tz::TZ_VARIANTS[tz_idx];
        let due = DateTime::from_timestamp(secs, 0).unwrap();
        let done = due + chrono::Duration::days(late_days);
        let n = next_from(&r, tz, due, 1, done).unwrap();
        let base = done.max(due);
        // A fixed schedule skips to the first occurrence after the
        // completion; after completion counts from the completion's day.
        if r.anchor == Anchor::Schedule {
            prop_assert!(n > base, "{n} vs {base}");
        } else {
            prop_assert!(n.with_timezone(&tz).date_naive() > done.with_timezone(&tz).date_naive());
        }
        let max_days = match r.frequency {
            Frequency::Daily => 1,
            Frequency::Weekly => 7,
            Frequency::Monthly => 31,
            Frequency::Yearly => 366,
        // After completion the next one is in the period `interval` on from
        // the completion's: at most `interval + 1` periods away.
        } * i64::from(r.interval + u32::from(r.anchor == Anchor::Completion)) + 7;
        prop_assert!(n - base <= chrono::Duration::days(max_days), "{n} vs {base}");
        if !r.weekdays.is_empty() {
            let wd = n.with_timezone(&tz).weekday();
            prop_assert!(r.weekdays.iter().any(|d| d.weekday() == wd));
        }
        if let Some(nth) = r.nth_weekday {
            let local = n.with_timezone(&tz).date_naive();
            prop_assert_eq!(local.weekday(), nth.weekday.weekday());
            if nth.nth == -1 {
                prop_assert!(local.checked_add_days(Days::new(7)).unwrap().month() != local.month());
            } else {
                prop_assert_eq!((local.day() - 1) / 7 + 1, nth.nth as u32);
            }
        }
    }

    #[test]
    fn keeps_local_time_of_day_when_it_exists(
        r in any_rule(),
        secs in 1_700_000_000i64..2_000_000_000,
    ) {
        let tz: Tz = "Europe/London".parse().unwrap();
        let due = DateTime::from_timestamp(secs, 0).unwrap();
        let n = next(&r, tz, due).unwrap();
        let (want, got) = (due.with_timezone(&tz).time(), n.with_timezone(&tz).time());
        // Only a wall time skipped by DST (01:00–02:00 in London) may move.
        prop_assert!(want == got || want.hour() == 1, "{want} vs {got}");
    }

    #[test]
    fn arbitrary_json_never_panics(json in "\\PC{0,200}") {
        if let Ok(r) = serde_json::from_str::<Recurrence>(&json)
            && r.validate(true).is_ok()
        {
            let due = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
            let _ = next(&r, Tz::UTC, due);
        }
    }
}
