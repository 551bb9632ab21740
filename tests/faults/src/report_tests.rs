use super::*;
use crate::faults::{Fault, Function};
use proptest::prelude::*;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn injection(fault: Fault, ready: u64, recovered: Option<u64>) -> Injection {
    Injection {
        fault,
        under_load: true,
        ready: Some(secs(ready)),
        recovered: recovered.map(secs),
        problems: if recovered.is_some() {
            vec![]
        } else {
            vec!["not recovered".into()]
        },
    }
}

fn report(tallies: Vec<Tally>, injections: Vec<Injection>) -> Report {
    Report {
        seed: 7,
        mode: Mode::Short,
        run_id: "r".into(),
        scale: Scale::SHORT,
        tallies,
        injections,
        problems: vec![],
        replay: "./scripts/faults --short --seed 7".into(),
        elapsed: secs(60),
    }
}

fn checked(name: &str, n: u64) -> Tally {
    Tally {
        checked: n,
        ..Tally::new(name)
    }
}

#[test]
fn median_of_odd_and_even_counts() {
    assert_eq!(stats(&[]), None);
    let odd = stats(&[secs(9), secs(1), secs(4)]).expect("stats");
    assert_eq!(
        (odd.min, odd.median, odd.max, odd.n),
        (secs(1), secs(4), secs(9), 3)
    );
    let even = stats(&[secs(4), secs(1), secs(2), secs(10)]).expect("stats");
    assert_eq!(even.median, Duration::from_millis(3000));
    assert_eq!((even.min, even.max), (secs(1), secs(10)));
}

#[test]
fn recovery_is_grouped_per_kind() {
    let audit = Fault::App(Function::Audit);
    let r = report(
        vec![checked("ops", 10)],
        vec![
            injection(audit, 2, Some(5)),
            injection(Fault::Kafka, 20, Some(30)),
            injection(audit, 4, Some(9)),
            injection(audit, 3, None),
        ],
    );
    let rows = r.recovery();
    assert_eq!(rows.len(), 2);
    let (label, ready, recovered, failed) = &rows[0];
    assert_eq!(label, "app-audit");
    assert_eq!(ready.expect("ready").median, secs(3));
    assert_eq!(recovered.expect("recovered").n, 2);
    assert_eq!(
        recovered.expect("recovered").median,
        Duration::from_millis(7000)
    );
    assert_eq!(*failed, 1);
    assert!(!r.passed(), "a fault that did not recover fails the run");
}

#[test]
fn a_loss_a_duplicate_or_a_problem_fails_the_run() {
    let clean = report(
        vec![checked("ops", 10)],
        vec![injection(Fault::Kafka, 1, Some(2))],
    );
    assert!(clean.passed());
    assert!(clean.markdown().starts_with("# Fault suite: PASSED"));

    let mut lost = checked("ops", 10);
    lost.lost = 1;
    assert!(!report(vec![lost], vec![]).passed());
    let mut dup = checked("sockets", 10);
    dup.duplicated = 2;
    let r = report(vec![checked("ops", 1), dup], vec![]);
    assert!(
        r.markdown()
            .contains("| sockets | 10 | 0 | 2 | 0 | 0 | 0 | 0 | 0 |")
    );
    assert!(!r.passed());
    assert_eq!(r.totals(), (0, 2));
    assert!(r.markdown().contains("lost 0, duplicated 2"));
    let mut problem = checked("quiet", 3);
    problem.problems.push("outbox row 5 unsent".into());
    let r = report(vec![problem], vec![]);
    assert!(!r.passed());
    assert!(r.markdown().contains("- quiet: outbox row 5 unsent"));
    let mut r = report(vec![checked("ops", 1)], vec![]);
    r.problems.push("daprd-audit still down".into());
    assert!(!r.passed());
}

#[test]
fn nothing_checked_never_passes() {
    let r = report(
        vec![checked("ops", 0)],
        vec![injection(Fault::Postgres, 1, Some(2))],
    );
    assert!(!r.passed());
    assert!(r.markdown().contains("No workload checked anything"));
    assert!(!report(vec![], vec![]).passed());
}

#[test]
fn the_markdown_names_the_seed_the_replay_and_each_kind() {
    let r = report(
        vec![checked("ops", 1)],
        vec![injection(Fault::Sidecar(Function::SyncGateway), 3, Some(8))],
    );
    let md = r.markdown();
    assert!(md.contains("seed **7**"), "{md}");
    assert!(md.contains("`./scripts/faults --short --seed 7`"), "{md}");
    assert!(
        md.contains("| daprd-sync-gateway | 1 | 1 | 0 | 3.0 / 3.0 / 3.0 | 8.0 / 8.0 / 8.0 |"),
        "{md}"
    );
    assert!(
        md.contains("1. daprd-sync-gateway (under load): ready 3.0 s, recovered 8.0 s"),
        "{md}"
    );
}

proptest! {
    #[test]
    fn median_lies_between_min_and_max(values in proptest::collection::vec(0u64..100_000, 1..50)) {
        let durations: Vec<Duration> = values.iter().map(|v| Duration::from_millis(*v)).collect();
        let s = stats(&durations).expect("stats");
        prop_assert!(s.min <= s.median && s.median <= s.max);
        prop_assert_eq!(s.n, values.len());
        prop_assert_eq!(s.min, Duration::from_millis(*values.iter().min().expect("min")));
        prop_assert_eq!(s.max, Duration::from_millis(*values.iter().max().expect("max")));
    }
}
