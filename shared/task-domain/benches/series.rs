//! Microbenchmarks of the series engine: what one completion costs in CPU
//! before any I/O (the next occurrence, with catch-up), and the RRULE
//! round trip the API and the calendar feed do per task.
//!
//! `cargo bench -p task-domain --bench series`

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use criterion::{BenchmarkId, Criterion, black_box, criterion_group, criterion_main};
use task_domain::recurrence::{Day, End, Frequency, NthWeekday, Recurrence, to_utc};
use task_domain::{Occurrence, SeriesStart, rrule};

fn rule(frequency: Frequency) -> Recurrence {
    serde_json::from_value(serde_json::json!({ "frequency": frequency })).unwrap()
}

fn rules() -> Vec<(&'static str, Recurrence)> {
    let mut weekly = rule(Frequency::Weekly);
    weekly.interval = 2;
    weekly.weekdays = vec![Day::Mon, Day::Wed, Day::Fri];
    let mut last_friday = rule(Frequency::Monthly);
    last_friday.nth_weekday = Some(NthWeekday {
        nth: -1,
        weekday: Day::Fri,
    });
    last_friday.end = End::After(1000);
    vec![
        ("daily", rule(Frequency::Daily)),
        ("weekly MO,WE,FR /2", weekly),
        ("monthly -1FR", last_friday),
        ("monthly 31st", rule(Frequency::Monthly)),
        ("yearly", rule(Frequency::Yearly)),
    ]
}

fn start() -> SeriesStart {
    let tz: Tz = "America/New_York".parse().unwrap();
    let local = NaiveDate::from_ymd_opt(2027, 1, 31)
        .unwrap()
        .and_hms_opt(2, 30, 0)
        .unwrap();
    SeriesStart {
        local,
        tz,
        index: 1,
    }
}

fn current(r: &Recurrence, s: &SeriesStart, index: u32) -> Occurrence {
    r.occurrence(s, index).unwrap()
}

fn bench(c: &mut Criterion) {
    let s = start();
    let mut group = c.benchmark_group("successor");
    for (name, r) in rules() {
        let on_time = current(&r, &s, 40);
        group.bench_with_input(BenchmarkId::new("on time", name), &r, |b, r| {
            b.iter(|| r.successor(black_box(&s), black_box(&on_time), black_box(on_time.due)))
        });
        let late: DateTime<Utc> = on_time.due + Duration::days(365);
        group.bench_with_input(BenchmarkId::new("a year late", name), &r, |b, r| {
            b.iter(|| r.successor(black_box(&s), black_box(&on_time), black_box(late)))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("rrule");
    for (name, r) in rules() {
        let text = rrule::format(&r, &s).unwrap();
        group.bench_with_input(BenchmarkId::new("format", name), &r, |b, r| {
            b.iter(|| rrule::format(black_box(r), black_box(&s)))
        });
        group.bench_with_input(BenchmarkId::new("parse", name), &text, |b, text| {
            b.iter(|| rrule::parse(black_box(text), s.local, s.tz))
        });
    }
    group.finish();

    c.bench_function("to_utc in a DST gap", |b| {
        let gap = NaiveDate::from_ymd_opt(2027, 3, 14)
            .unwrap()
            .and_hms_opt(2, 30, 0)
            .unwrap();
        b.iter(|| to_utc(black_box(s.tz), black_box(gap)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
