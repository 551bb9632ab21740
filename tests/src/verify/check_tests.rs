//! The checker against hand-made rows: a consistent run passes, and each
//! kind of damage is caught and counted.

use std::time::Duration;

use uuid::Uuid;

use super::*;
use crate::verify::db::{AuditRow, OutboxRow};

fn outcome(user: usize, op: Op, task: Uuid, sequence: Option<i64>) -> Outcome {
    Outcome {
        chain: 0,
        user,
        op,
        task_id: Some(task),
        status: Some(200),
        sequence,
        verdict: Verdict::Changed,
        latency: Duration::ZERO,
    }
}

/// Two users; task A: create, update, complete, delete; task B: create,
/// update, plus a refused conditional update. And the rows a correct
/// system leaves for that.
fn consistent() -> (Vec<Outcome>, Vec<String>, Snapshot) {
    let users = vec!["u0".to_owned(), "u1".to_owned()];
    let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
    let mut refused = outcome(1, Op::UpdateIfMatch, b, None);
    refused.verdict = Verdict::Refused;
    let outcomes = vec![
        outcome(0, Op::Create, a, Some(1)),
        outcome(0, Op::Update, a, Some(2)),
        outcome(0, Op::Complete, a, Some(3)),
        outcome(0, Op::Delete, a, None),
        outcome(1, Op::Create, b, Some(1)),
        outcome(1, Op::Update, b, Some(2)),
        refused,
    ];
    let mut db = Snapshot::default();
    let mut offsets = [0i64; 2];
    for (n, o) in outcomes.iter().enumerate() {
        if o.verdict != Verdict::Changed {
            continue;
        }
        let task = o.task_id.unwrap_or_default();
        let seq = o.sequence.unwrap_or(4);
        offsets[o.user] += 1;
        let row = |topic: &str, event_type: &str, suffix: &str, offset| OutboxRow {
            event_id: format!("e{n}{suffix}"),
            topic: topic.to_owned(),
            event_type: event_type.to_owned(),
            user_id: users[o.user].clone(),
            task_id: Some(task),
            sequence: Some(seq),
            stream_offset: offset,
            sent: true,
        };
        db.outbox
            .push(row("task-events", o.op.event_type(), "", None));
        db.outbox.push(row(
            "task-updates",
            "com.todo.task.sync",
            "s",
            Some(offsets[o.user]),
        ));
        db.audit.push(AuditRow {
            event_id: format!("e{n}"),
            event_type: o.op.event_type().to_owned(),
            task_id: task,
            sequence: seq,
        });
    }
    db.streams = vec![("u0".into(), 4), ("u1".into(), 2)];
    db.tasks = vec![(b, 2)];
    (outcomes, users, db)
}

#[test]
fn a_consistent_run_is_clean() {
    let (outcomes, users, db) = consistent();
    let f = check(&outcomes, &users, &db);
    assert!(f.clean(), "{f:?}");
}

#[test]
fn a_lost_outbox_event_is_lost_and_a_gap() {
    let (outcomes, users, mut db) = consistent();
    // Task A's update (sequence 2) on task-events.
    db.outbox.retain(|r| r.event_id != "e1");
    db.audit.retain(|r| r.event_id != "e1");
    let f = check(&outcomes, &users, &db);
    assert_eq!(f.lost, 1, "{f:?}");
    assert!(f.gaps >= 1, "{f:?}");
}

#[test]
fn an_event_audited_twice_or_unknown_is_duplicated() {
    let (outcomes, users, mut db) = consistent();
    let again = db.audit[0].clone();
    db.audit.push(again);
    let f = check(&outcomes, &users, &db);
    assert_eq!(f.duplicated, 1, "{f:?}");

    let (outcomes, users, mut db) = consistent();
    let mut stray = db.audit[0].clone();
    stray.event_id = "nobody-published-this".into();
    db.audit.push(stray);
    assert_eq!(check(&outcomes, &users, &db).duplicated, 1);
}

#[test]
fn a_never_audited_event_is_lost() {
    let (outcomes, users, mut db) = consistent();
    db.audit.pop();
    let f = check(&outcomes, &users, &db);
    assert_eq!(f.lost, 1, "{f:?}");
}

#[test]
fn a_duplicated_outbox_change_is_caught() {
    let (outcomes, users, mut db) = consistent();
    let mut twin = db.outbox[0].clone();
    twin.event_id = "twin".into();
    db.outbox.push(twin);
    let f = check(&outcomes, &users, &db);
    assert!(f.duplicated >= 1 && f.mismatched >= 1, "{f:?}");
}

#[test]
fn a_skipped_stream_offset_is_a_gap() {
    let (outcomes, users, mut db) = consistent();
    for r in &mut db.outbox {
        if r.user_id == "u0" && r.stream_offset == Some(4) {
            r.stream_offset = Some(5);
        }
    }
    let f = check(&outcomes, &users, &db);
    assert_eq!(f.gaps, 1, "{f:?}");
    assert!(f.lost >= 1 && f.duplicated >= 1, "{f:?}");
}

#[test]
fn unsent_rows_and_wrong_task_rows_are_reported() {
    let (outcomes, users, mut db) = consistent();
    db.outbox[3].sent = false;
    db.tasks = vec![(Uuid::from_u128(1), 4), (Uuid::from_u128(2), 1)];
    let f = check(&outcomes, &users, &db);
    assert_eq!(f.unpublished, 1, "{f:?}");
    assert_eq!(f.mismatched, 1, "deleted row still there: {f:?}");
    assert_eq!(f.lost, 1, "sequence behind the accepted changes: {f:?}");
}

#[test]
fn two_responses_with_one_sequence_are_duplicated() {
    let (mut outcomes, users, db) = consistent();
    outcomes[1].sequence = Some(1);
    let f = check(&outcomes, &users, &db);
    assert_eq!(f.duplicated, 1, "{f:?}");
}

#[test]
fn ranges() {
    assert_eq!(against_range(vec![3, 1, 2], 3), (0, 0, 0));
    assert_eq!(against_range(vec![1, 3], 3), (1, 0, 1));
    assert_eq!(against_range(vec![1, 2, 2, 4], 3), (1, 2, 1));
    assert_eq!(against_range(vec![], 2), (2, 0, 0));
}
