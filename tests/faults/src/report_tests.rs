use super::*;
use crate::faults::{Fault, Function};
use proptest::prelude::*;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn injection(fault: Fault, ready: u64, recovered: Option<u64>) -> Injection {
    Injection {
        fault,
        driving: vec!["ops".into(), "sockets".into()],
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
        unexercised: vec![],
        restored: vec![],
        replay: "./scripts/faults --short --seed 7".into(),
        elapsed: secs(60),
    }
}

/// Every registered workload at exactly its floor.
fn at_floor() -> Vec<Tally> {
    ["ops", "recurring", "reminders", "sockets", "hostile"]
        .into_iter()
        .map(|name| checked(name, floor(name, &Scale::SHORT).expect("a floor")))
        .collect()
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
    let clean = report(at_floor(), vec![injection(Fault::Kafka, 1, Some(2))]);
    assert!(clean.passed());
    assert!(clean.markdown().starts_with("# Fault suite: PASSED"));

    let mut lost = at_floor();
    lost[0].lost = 1;
    assert!(!report(lost, vec![]).passed());
    let mut dup = at_floor();
    dup[3].duplicated = 2;
    let r = report(dup, vec![]);
    assert!(
        r.markdown()
            .contains("| sockets | 20 | 0 | 2 | 0 | 0 | 0 | 0 | 0 |"),
        "{}",
        r.markdown()
    );
    assert!(!r.passed());
    assert_eq!(r.totals(), (0, 2));
    assert!(r.markdown().contains("lost 0, duplicated 2"));
    let mut problem = checked("quiet", 3);
    problem.problems.push("outbox row 5 unsent".into());
    let mut tallies = at_floor();
    tallies.push(problem);
    let r = report(tallies, vec![]);
    assert!(!r.passed());
    assert!(r.markdown().contains("- quiet: outbox row 5 unsent"));
    let mut r = report(at_floor(), vec![]);
    r.problems.push("daprd-audit still down".into());
    assert!(!r.passed());
}

#[test]
fn a_workload_below_its_floor_fails_the_run_with_a_reason() {
    assert!(report(at_floor(), vec![]).passed());
    // Sockets that found no head rows check nothing; the outbox tally's
    // rows no longer make up for it.
    let mut tallies = at_floor();
    tallies[3].checked = 0;
    tallies.push(checked("quiet: outbox", 5_000));
    let r = report(tallies, vec![]);
    assert!(!r.passed());
    let short = r.shortfalls();
    assert_eq!(short.len(), 1, "{short:?}");
    assert!(
        short[0].starts_with("sockets: checked 0 of at least 20"),
        "{short:?}"
    );
    assert!(r.markdown().contains("- sockets: checked 0 of at least 20"));
    // Each floor follows the scale.
    assert_eq!(floor("ops", &Scale::FULL), Some(10_000));
    assert_eq!(floor("reminders", &Scale::FULL), Some(200));
    assert_eq!(floor("hostile", &Scale::SHORT), Some(50));
    assert_eq!(floor("quiet: outbox", &Scale::FULL), None);
}

#[test]
fn each_fault_names_the_workloads_it_hit_and_ops_hits_are_counted() {
    let mut quiet_kafka = injection(Fault::Kafka, 1, Some(2));
    quiet_kafka.driving = vec!["reminders".into()];
    let r = report(
        at_floor(),
        vec![
            injection(Fault::Kafka, 1, Some(2)),
            quiet_kafka,
            Injection {
                driving: vec![],
                ..injection(Fault::Postgres, 1, Some(2))
            },
        ],
    );
    assert_eq!(r.hits("kafka", "ops"), 1);
    assert_eq!(r.hits("postgres", "ops"), 0);
    let md = r.markdown();
    assert!(md.contains("1. kafka (under load: ops, sockets)"), "{md}");
    assert!(md.contains("2. kafka (under load: reminders)"), "{md}");
    assert!(md.contains("3. postgres (no workload driving)"), "{md}");
    assert!(md.contains("| kafka | 2 | 1 | 2 | 0 |"), "{md}");
}

#[test]
fn unexercised_kinds_are_listed_and_fail_only_a_full_run_unless_excused() {
    let mut r = report(at_floor(), vec![]);
    r.unexercised = token_kinds(None, None);
    assert_eq!(r.unexercised.len(), 3);
    assert!(r.passed(), "the stack's settings excuse them");
    let md = r.markdown();
    assert!(md.contains("## Not exercised"), "{md}");
    assert!(
        md.contains("- tokens without `aud`: the stack sets no JWT_AUDIENCE"),
        "{md}"
    );
    r.mode = Mode::Full;
    assert!(r.passed(), "excused in a full run too");
    // A kind the hostile workload never sent fails a full run.
    r.tallies[4].not_exercised.push("Frame(Binary)".into());
    assert!(!r.passed());
    assert!(
        r.markdown()
            .contains("Frame(Binary): hostile sent none (**fails a full run**)")
    );
    r.mode = Mode::Short;
    assert!(r.passed(), "listed, not failed, in a short run");
    // A stack that checks both: nothing is excused.
    assert!(token_kinds(Some("todo"), Some("https://issuer")).is_empty());
    assert_eq!(token_kinds(Some("todo"), None).len(), 1);
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
        at_floor(),
        vec![injection(Fault::Sidecar(Function::SyncGateway), 3, Some(8))],
    );
    let md = r.markdown();
    assert!(md.contains("seed **7**"), "{md}");
    assert!(md.contains("`./scripts/faults --short --seed 7`"), "{md}");
    assert!(
        md.contains("| daprd-sync-gateway | 1 | 1 | 1 | 0 | 3.0 / 3.0 / 3.0 | 8.0 / 8.0 / 8.0 |"),
        "{md}"
    );
    assert!(
        md.contains(
            "1. daprd-sync-gateway (under load: ops, sockets): ready 3.0 s, recovered 8.0 s"
        ),
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
