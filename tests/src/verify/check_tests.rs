//! The checker against hand-made rows: a consistent run passes, each kind
//! of damage is caught and counted, and an operation whose answer was lost
//! passes applied once or not at all but not twice.

use std::collections::HashMap;
use std::time::Duration;

use uuid::Uuid;

use super::*;
use crate::verify::db::{AuditRow, OutboxRow};

const A: Uuid = Uuid::from_u128(1);
const B: Uuid = Uuid::from_u128(2);

fn outcome(user: usize, op: Op, task: Uuid, sequence: Option<i64>, title: &str) -> Outcome {
    Outcome {
        chain: 0,
        user,
        op,
        task_id: Some(task),
        title: title.to_owned(),
        status: Some(200),
        sequence,
        verdict: Verdict::Changed,
        attempts: 1,
        latency: Duration::ZERO,
    }
}

fn users() -> Vec<String> {
    vec!["u0".to_owned(), "u1".to_owned()]
}

/// The rows a correct system leaves when each outcome applied the given
/// number of times, in order (`times` defaults to 1 for a change, 0 else).
fn rows(outcomes: &[Outcome], times: &HashMap<usize, usize>) -> Snapshot {
    let users = users();
    let mut db = Snapshot::default();
    let mut offsets = [0i64; 2];
    let mut sequences: HashMap<Uuid, i64> = HashMap::new();
    let mut titles: HashMap<Uuid, String> = HashMap::new();
    let mut deleted = Vec::new();
    for (n, o) in outcomes.iter().enumerate() {
        let default = usize::from(o.verdict == Verdict::Changed);
        let task = o.task_id.unwrap_or(Uuid::from_u128(100 + n as u128));
        for k in 0..times.get(&n).copied().unwrap_or(default) {
            let seq = sequences.entry(task).or_default();
            *seq += 1;
            offsets[o.user] += 1;
            let writes_title = matches!(o.op, Op::Create | Op::Update | Op::UpdateIfMatch);
            if writes_title {
                titles.insert(task, o.title.clone());
            }
            if o.op == Op::Delete {
                deleted.push(task);
            }
            let row = |topic: &str, event_type: &str, id: String, offset| OutboxRow {
                event_id: id,
                topic: topic.to_owned(),
                event_type: event_type.to_owned(),
                user_id: users[o.user].clone(),
                task_id: Some(task),
                sequence: Some(*seq),
                stream_offset: offset,
                sent: true,
                title: titles.get(&task).cloned(),
                title_changed: writes_title && o.op != Op::Create,
            };
            let id = format!("e{n}.{k}");
            db.outbox
                .push(row("task-events", o.op.event_type(), id.clone(), None));
            db.outbox.push(row(
                "task-updates",
                "com.todo.task.sync",
                format!("{id}s"),
                Some(offsets[o.user]),
            ));
            db.audit.push(AuditRow {
                event_id: id,
                event_type: o.op.event_type().to_owned(),
                task_id: task,
                sequence: *seq,
            });
        }
    }
    db.streams = vec![("u0".into(), offsets[0]), ("u1".into(), offsets[1])];
    db.tasks = sequences
        .into_iter()
        .filter(|(t, _)| !deleted.contains(t))
        .collect();
    db
}

/// Two users; task A: create, update, complete, delete; task B: create,
/// update, plus a refused conditional update. And the rows a correct
/// system leaves for that.
fn consistent() -> (Vec<Outcome>, Vec<String>, Snapshot) {
    let mut refused = outcome(1, Op::UpdateIfMatch, B, None, "b 1.1");
    refused.verdict = Verdict::Refused;
    let outcomes = vec![
        outcome(0, Op::Create, A, Some(1), "a 0.0"),
        outcome(0, Op::Update, A, Some(2), "a 1.0"),
        outcome(0, Op::Complete, A, Some(3), ""),
        outcome(0, Op::Delete, A, None, ""),
        outcome(1, Op::Create, B, Some(1), "b 0.0"),
        outcome(1, Op::Update, B, Some(2), "b 1.0"),
        refused,
    ];
    let db = rows(&outcomes, &HashMap::new());
    (outcomes, users(), db)
}

fn exclusive(outcomes: &[Outcome], users: &[String], db: &Snapshot) -> Findings {
    check(outcomes, users, db, Scope::Exclusive)
}

fn unknown(mut o: Outcome) -> Outcome {
    o.verdict = Verdict::Unknown("no response".into());
    o.sequence = None;
    o.status = None;
    o.attempts = 3;
    o
}

#[test]
fn a_consistent_run_is_clean() {
    let (outcomes, users, db) = consistent();
    let f = exclusive(&outcomes, &users, &db);
    assert!(f.clean(), "{f:?}");
    assert_eq!(f.unknown, 0);
}

#[test]
fn an_unknown_change_applied_once_is_accepted() {
    let (mut outcomes, users, _) = consistent();
    outcomes[2] = unknown(outcomes[2].clone());
    outcomes[5] = unknown(outcomes[5].clone());
    let once = HashMap::from([(2, 1), (5, 1)]);
    let db = rows(&outcomes, &once);
    let f = exclusive(&outcomes, &users, &db);
    assert!(f.clean(), "{f:?}");
    assert_eq!((f.unknown, f.unknown_applied), (2, 2));
}

#[test]
fn an_unknown_change_not_applied_is_accepted() {
    let (mut outcomes, users, _) = consistent();
    // B's update never applied; the complete of A neither (A is deleted
    // straight after its update).
    outcomes[5] = unknown(outcomes[5].clone());
    outcomes[2] = unknown(outcomes[2].clone());
    let db = rows(&outcomes, &HashMap::new());
    let f = exclusive(&outcomes, &users, &db);
    assert!(f.clean(), "{f:?}");
    assert_eq!((f.unknown, f.unknown_applied), (2, 0));
}

#[test]
fn an_unknown_change_applied_twice_is_duplicated() {
    let (mut outcomes, users, _) = consistent();
    outcomes[5] = unknown(outcomes[5].clone());
    let db = rows(&outcomes, &HashMap::from([(5, 2)]));
    let f = exclusive(&outcomes, &users, &db);
    assert_eq!(f.duplicated, 1, "{f:?}");
    assert_eq!(f.lost, 0, "{f:?}");

    // The same for a status change.
    let (mut outcomes, users, _) = consistent();
    outcomes[2] = unknown(outcomes[2].clone());
    let db = rows(&outcomes, &HashMap::from([(2, 2)]));
    let f = exclusive(&outcomes, &users, &db);
    assert!(f.duplicated >= 1, "{f:?}");
}

/// Every pair of changes whose answers were lost, each applied 0, 1 or 2
/// times: clean exactly when none applied twice, and the unknown ones found
/// applied are counted.
#[test]
fn unknown_pairs_pass_unless_one_applied_twice() {
    let (base, users, _) = consistent();
    let changes: Vec<usize> = (0..base.len())
        .filter(|n| base[*n].op != Op::Create && base[*n].verdict == Verdict::Changed)
        .collect();
    for (i, a) in changes.iter().enumerate() {
        for b in &changes[i + 1..] {
            for (ta, tb) in (0..3).flat_map(|x| (0..3).map(move |y| (x, y))) {
                // The fixture's response sequences belong to the world where
                // everything applied once; the response check has its own test.
                let mut outcomes: Vec<Outcome> = base
                    .iter()
                    .map(|o| Outcome {
                        sequence: None,
                        ..o.clone()
                    })
                    .collect();
                outcomes[*a] = unknown(outcomes[*a].clone());
                outcomes[*b] = unknown(outcomes[*b].clone());
                let db = rows(&outcomes, &HashMap::from([(*a, ta), (*b, tb)]));
                let f = exclusive(&outcomes, &users, &db);
                let case = format!("ops {a}×{ta}, {b}×{tb}: {f:?}");
                assert_eq!(f.clean(), ta < 2 && tb < 2, "{case}");
                assert_eq!(
                    f.duplicated,
                    usize::from(ta == 2) + usize::from(tb == 2),
                    "{case}"
                );
                assert_eq!(f.unknown, 2, "{case}");
                assert_eq!(f.unknown_applied, usize::from(ta > 0) + usize::from(tb > 0));
            }
        }
    }
}

#[test]
fn an_unknown_create_is_found_by_its_title() {
    let (mut outcomes, users, _) = consistent();
    let mut create = unknown(outcome(1, Op::Create, B, None, "c 0.0"));
    create.task_id = None;
    outcomes.push(create.clone());
    let db = rows(&outcomes, &HashMap::from([(7, 1)]));
    let f = exclusive(&outcomes, &users, &db);
    assert!(f.clean(), "{f:?}");
    assert_eq!((f.unknown, f.unknown_applied), (1, 1));

    // Not applied: no row, still clean; twice: two tasks with its title.
    let db = rows(&outcomes, &HashMap::new());
    assert!(exclusive(&outcomes, &users, &db).clean());
    outcomes.push(create);
    let db = rows(&outcomes, &HashMap::from([(7, 1), (8, 1)]));
    let f = exclusive(&outcomes, &users, &db);
    assert!(!f.clean(), "{f:?}");
}

#[test]
fn a_refused_change_that_applied_is_duplicated() {
    let (outcomes, users, _) = consistent();
    let db = rows(&outcomes, &HashMap::from([(6, 1)]));
    let f = exclusive(&outcomes, &users, &db);
    assert!(f.duplicated >= 1, "{f:?}");
}

#[test]
fn an_accepted_change_applied_twice_is_duplicated() {
    let (outcomes, users, _) = consistent();
    let db = rows(&outcomes, &HashMap::from([(1, 2)]));
    let f = exclusive(&outcomes, &users, &db);
    assert!(f.duplicated >= 1, "{f:?}");
}

#[test]
fn a_lost_outbox_event_is_lost_and_a_gap() {
    let (outcomes, users, mut db) = consistent();
    // Task A's update (sequence 2) on task-events.
    db.outbox.retain(|r| r.event_id != "e1.0");
    db.audit.retain(|r| r.event_id != "e1.0");
    let f = exclusive(&outcomes, &users, &db);
    assert_eq!(f.lost, 1, "{f:?}");
    assert!(f.gaps >= 1, "{f:?}");
}

#[test]
fn an_event_audited_twice_or_unknown_is_duplicated() {
    let (outcomes, users, mut db) = consistent();
    let again = db.audit[0].clone();
    db.audit.push(again);
    let f = exclusive(&outcomes, &users, &db);
    assert_eq!(f.duplicated, 1, "{f:?}");

    let (outcomes, users, mut db) = consistent();
    let mut stray = db.audit[0].clone();
    stray.event_id = "nobody-published-this".into();
    db.audit.push(stray);
    assert_eq!(exclusive(&outcomes, &users, &db).duplicated, 1);
}

#[test]
fn a_never_audited_event_is_lost() {
    let (outcomes, users, mut db) = consistent();
    db.audit.pop();
    let f = exclusive(&outcomes, &users, &db);
    assert_eq!(f.lost, 1, "{f:?}");
}

#[test]
fn a_duplicated_outbox_change_is_caught() {
    let (outcomes, users, mut db) = consistent();
    let mut twin = db.outbox[0].clone();
    twin.event_id = "twin".into();
    db.outbox.push(twin);
    let f = exclusive(&outcomes, &users, &db);
    assert!(f.duplicated >= 1, "{f:?}");
}

#[test]
fn a_skipped_stream_offset_is_a_gap() {
    let (outcomes, users, mut db) = consistent();
    for r in &mut db.outbox {
        if r.user_id == "u0" && r.stream_offset == Some(4) {
            r.stream_offset = Some(5);
        }
    }
    let f = exclusive(&outcomes, &users, &db);
    assert_eq!(f.gaps, 1, "{f:?}");
    assert!(f.lost >= 1 && f.duplicated >= 1, "{f:?}");
}

#[test]
fn unsent_rows_and_wrong_task_rows_are_reported() {
    let (outcomes, users, mut db) = consistent();
    db.outbox[3].sent = false;
    db.tasks = vec![(A, 4), (B, 1)];
    let f = exclusive(&outcomes, &users, &db);
    assert_eq!(f.unpublished, 1, "{f:?}");
    assert_eq!(f.mismatched, 1, "deleted row still there: {f:?}");
    assert_eq!(f.lost, 1, "sequence behind the accepted changes: {f:?}");
}

#[test]
fn two_responses_with_one_sequence_are_duplicated() {
    let (mut outcomes, users, db) = consistent();
    outcomes[1].sequence = Some(1);
    let f = exclusive(&outcomes, &users, &db);
    assert_eq!(f.duplicated, 1, "{f:?}");
}

/// The rows of `outcomes` plus another workload's task of u1, made after
/// ours (its outcome is not among `outcomes`).
fn rows_with_another_workloads_task(outcomes: &[Outcome]) -> Snapshot {
    let mut all = outcomes.to_vec();
    let mut other = outcome(1, Op::Create, Uuid::from_u128(9), Some(1), "other");
    other.chain = 99;
    all.push(other);
    rows(&all, &HashMap::new())
}

#[test]
fn shared_users_ignore_other_workloads_rows_but_not_their_offsets() {
    let (outcomes, users, _) = consistent();
    let db = rows_with_another_workloads_task(&outcomes);
    assert!(!exclusive(&outcomes, &users, &db).clean());
    let f = check(&outcomes, &users, &db, Scope::Shared);
    assert!(f.clean(), "{f:?}");

    let mut holes = db.clone();
    holes.outbox.retain(|r| r.event_id != "e7.0s");
    let f = check(&outcomes, &users, &holes, Scope::Shared);
    assert_eq!(f.lost, 1, "{f:?}");
}

#[test]
fn shared_users_have_every_workloads_events_audited_once() {
    let (outcomes, users, _) = consistent();
    let db = rows_with_another_workloads_task(&outcomes);
    // The other workload's event never audited: lost.
    let mut unaudited = db.clone();
    unaudited.audit.retain(|r| r.event_id != "e7.0");
    let f = check(&outcomes, &users, &unaudited, Scope::Shared);
    assert_eq!(f.lost, 1, "{f:?}");
    // Audited twice: duplicated.
    let mut twice = db.clone();
    let again = twice.audit.iter().find(|r| r.event_id == "e7.0").cloned();
    twice.audit.extend(again);
    let f = check(&outcomes, &users, &twice, Scope::Shared);
    assert_eq!(f.duplicated, 1, "{f:?}");
    // An audit row of the run's users with no outbox event (a refused
    // input taken in): duplicated.
    let mut stray = db.clone();
    let mut row = stray.audit[0].clone();
    row.event_id = "forged".into();
    row.task_id = Uuid::from_u128(77);
    stray.audit.push(row);
    let f = check(&outcomes, &users, &stray, Scope::Shared);
    assert_eq!(f.duplicated, 1, "{f:?}");
}

#[test]
fn ranges() {
    assert_eq!(against_range(vec![3, 1, 2], 3), (0, 0, 0));
    assert_eq!(against_range(vec![1, 3], 3), (1, 0, 1));
    assert_eq!(against_range(vec![1, 2, 2, 4], 3), (1, 2, 1));
    assert_eq!(against_range(vec![], 2), (2, 0, 0));
}
