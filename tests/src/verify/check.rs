//! The end-to-end checks: what the clients were told against what the
//! database shows, from the task table through the outbox to the audit
//! log. Pure functions over the recorded outcomes and one [`Snapshot`], so
//! the checker itself is tested here with rows made by hand.

use std::collections::{BTreeMap, HashMap, HashSet};

use uuid::Uuid;

use super::db::Snapshot;
use super::drive::{Outcome, Verdict};
use super::plan::Op;

const TASK_EVENTS: &str = "task-events";
const TASK_UPDATES: &str = "task-updates";
/// How many problem descriptions a report keeps.
const KEEP: usize = 20;

/// What the checks found. Every count must be zero for a pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    /// Accepted changes (or their events) missing somewhere downstream.
    pub lost: usize,
    /// Changes or events present more often than accepted.
    pub duplicated: usize,
    /// Numbers missing inside a task's sequences or a user's offsets.
    pub gaps: usize,
    /// Outbox rows the relay never marked sent.
    pub unpublished: usize,
    /// Other disagreements: event types, current sequences, deleted rows.
    pub mismatched: usize,
    /// The first few problems, in words.
    pub problems: Vec<String>,
}

impl Findings {
    pub fn clean(&self) -> bool {
        self.lost + self.duplicated + self.gaps + self.unpublished + self.mismatched == 0
    }

    fn note(&mut self, problem: String) {
        if self.problems.len() < KEEP {
            self.problems.push(problem);
        }
    }
}

/// What the responses say one task went through.
#[derive(Debug, Default)]
struct Accepted {
    user: String,
    changes: i64,
    deleted: bool,
    /// Sequences returned to clients.
    returned: Vec<i64>,
    /// Expected `task-events` types, counted.
    types: BTreeMap<&'static str, i64>,
}

fn accepted(outcomes: &[Outcome], users: &[String]) -> HashMap<Uuid, Accepted> {
    let mut tasks: HashMap<Uuid, Accepted> = HashMap::new();
    for o in outcomes {
        let (Verdict::Changed, Some(id)) = (&o.verdict, o.task_id) else {
            continue;
        };
        let t = tasks.entry(id).or_default();
        t.user.clone_from(&users[o.user]);
        t.changes += 1;
        t.deleted |= o.op == Op::Delete;
        t.returned.extend(o.sequence);
        *t.types.entry(o.op.event_type()).or_default() += 1;
    }
    tasks
}

/// Compares a list of numbers with exactly `1..=expected`; returns
/// (missing, duplicated or out of range, holes below the highest seen).
fn against_range(mut seen: Vec<i64>, expected: i64) -> (usize, usize, usize) {
    seen.sort_unstable();
    let total = seen.len();
    seen.dedup();
    let repeats = total - seen.len();
    let set: HashSet<i64> = seen.iter().copied().collect();
    let missing = (1..=expected).filter(|n| !set.contains(n)).count();
    let outside = seen.iter().filter(|n| **n < 1 || **n > expected).count();
    let top = seen.last().copied().unwrap_or(0);
    let holes = (1..top).filter(|n| !set.contains(n)).count();
    (missing, repeats + outside, holes)
}

/// Runs every check.
pub fn check(outcomes: &[Outcome], users: &[String], db: &Snapshot) -> Findings {
    let mut f = Findings::default();
    let tasks = accepted(outcomes, users);
    responses(&mut f, &tasks);
    task_rows(&mut f, &tasks, db);
    outbox(&mut f, &tasks, db);
    streams(&mut f, outcomes, users, db);
    audit(&mut f, &tasks, db);
    f
}

/// No two clients were given the same sequence for one task.
fn responses(f: &mut Findings, tasks: &HashMap<Uuid, Accepted>) {
    for (id, t) in tasks {
        let expected_returned = t.changes - i64::from(t.deleted);
        let (_, dup, _) = against_range(t.returned.clone(), t.changes);
        if dup > 0 || t.returned.len() as i64 != expected_returned {
            f.duplicated += dup;
            f.note(format!(
                "task {id}: responses returned sequences {:?} for {} changes",
                t.returned, t.changes
            ));
        }
    }
}

/// The task table holds each surviving task at its last sequence.
fn task_rows(f: &mut Findings, tasks: &HashMap<Uuid, Accepted>, db: &Snapshot) {
    let rows: HashMap<Uuid, i64> = db.tasks.iter().copied().collect();
    for (id, t) in tasks {
        match (rows.get(id), t.deleted) {
            (None, true) => {}
            (Some(_), true) => {
                f.mismatched += 1;
                f.note(format!("task {id}: deleted, but its row is still there"));
            }
            (None, false) => {
                f.lost += 1;
                f.note(format!("task {id}: accepted, but no row"));
            }
            (Some(&seq), false) if seq != t.changes => {
                if seq < t.changes {
                    f.lost += (t.changes - seq) as usize;
                } else {
                    f.duplicated += (seq - t.changes) as usize;
                }
                f.note(format!(
                    "task {id}: sequence {seq} after {} accepted changes",
                    t.changes
                ));
            }
            _ => {}
        }
    }
    for (id, _) in rows.iter().filter(|(id, _)| !tasks.contains_key(id)) {
        f.duplicated += 1;
        f.note(format!("task {id}: a row no accepted create made"));
    }
}

/// Each accepted change has exactly one event per topic, numbered
/// 1..=changes, of the right type, and every row was sent.
fn outbox(f: &mut Findings, tasks: &HashMap<Uuid, Accepted>, db: &Snapshot) {
    let mut per_task: HashMap<(Uuid, &str), Vec<i64>> = HashMap::new();
    let mut types: HashMap<Uuid, BTreeMap<&str, i64>> = HashMap::new();
    let mut ids = HashSet::new();
    for row in &db.outbox {
        if !row.sent {
            f.unpublished += 1;
            f.note(format!(
                "outbox {} ({}): never sent",
                row.event_id, row.topic
            ));
        }
        if !ids.insert(row.event_id.as_str()) {
            f.duplicated += 1;
            f.note(format!("outbox event id {} appears twice", row.event_id));
        }
        let (Some(task), Some(seq)) = (row.task_id, row.sequence) else {
            continue;
        };
        if row.topic == TASK_EVENTS || row.topic == TASK_UPDATES {
            per_task
                .entry((task, row.topic.as_str()))
                .or_default()
                .push(seq);
        }
        if row.topic == TASK_EVENTS {
            *types
                .entry(task)
                .or_default()
                .entry(row.event_type.as_str())
                .or_default() += 1;
        }
    }
    for (id, t) in tasks {
        for topic in [TASK_EVENTS, TASK_UPDATES] {
            let seen = per_task.remove(&(*id, topic)).unwrap_or_default();
            let (missing, dup, holes) = against_range(seen, t.changes);
            f.lost += missing;
            f.duplicated += dup;
            f.gaps += holes;
            if missing + dup + holes > 0 {
                f.note(format!(
                    "task {id} ({topic}): {missing} missing, {dup} extra, {holes} holes for {} changes",
                    t.changes
                ));
            }
        }
        let want: BTreeMap<&str, i64> = t.types.iter().map(|(k, v)| (*k, *v)).collect();
        let got = types.remove(id).unwrap_or_default();
        if got != want {
            f.mismatched += 1;
            f.note(format!("task {id}: event types {got:?}, accepted {want:?}"));
        }
    }
    for ((id, topic), seen) in per_task {
        f.duplicated += seen.len();
        f.note(format!(
            "task {id}: {} {topic} events for no accepted change",
            seen.len()
        ));
    }
}

/// Each user's `task-updates` offsets are exactly 1..=last_offset, one per
/// accepted change.
fn streams(f: &mut Findings, outcomes: &[Outcome], users: &[String], db: &Snapshot) {
    let mut changes = vec![0i64; users.len()];
    for o in outcomes.iter().filter(|o| o.verdict == Verdict::Changed) {
        changes[o.user] += 1;
    }
    let last: HashMap<&str, i64> = db.streams.iter().map(|(u, n)| (u.as_str(), *n)).collect();
    let mut offsets: HashMap<&str, Vec<i64>> = HashMap::new();
    for row in db.outbox.iter().filter(|r| r.topic == TASK_UPDATES) {
        let entry = offsets.entry(row.user_id.as_str()).or_default();
        match row.stream_offset {
            Some(n) => entry.push(n),
            None => {
                f.mismatched += 1;
                f.note(format!(
                    "outbox {}: task-updates without an offset",
                    row.event_id
                ));
            }
        }
    }
    for (u, user) in users.iter().enumerate() {
        let last_offset = last.get(user.as_str()).copied().unwrap_or(0);
        if last_offset != changes[u] {
            f.mismatched += 1;
            f.note(format!(
                "user {user}: last_offset {last_offset} after {} accepted changes",
                changes[u]
            ));
        }
        let seen = offsets.remove(user.as_str()).unwrap_or_default();
        let (missing, dup, holes) = against_range(seen, last_offset);
        f.lost += missing;
        f.duplicated += dup;
        f.gaps += holes;
        if missing + dup + holes > 0 {
            f.note(format!(
                "user {user}: offsets 1..={last_offset}: {missing} missing, {dup} extra, {holes} holes"
            ));
        }
    }
}

/// The audit log holds every `task-events` row of the outbox exactly once,
/// nothing else, and each task's audited sequences are 1..=current.
fn audit(f: &mut Findings, tasks: &HashMap<Uuid, Accepted>, db: &Snapshot) {
    let events: HashSet<&str> = db
        .outbox
        .iter()
        .filter(|r| r.topic == TASK_EVENTS)
        .map(|r| r.event_id.as_str())
        .collect();
    let mut audited: HashMap<&str, usize> = HashMap::new();
    let mut per_task: HashMap<Uuid, Vec<i64>> = HashMap::new();
    for row in &db.audit {
        *audited.entry(row.event_id.as_str()).or_default() += 1;
        per_task.entry(row.task_id).or_default().push(row.sequence);
        if !events.contains(row.event_id.as_str()) {
            f.duplicated += 1;
            f.note(format!(
                "audit {} ({}): no such outbox event",
                row.event_id, row.event_type
            ));
        }
    }
    for id in &events {
        match audited.get(id).copied().unwrap_or(0) {
            1 => {}
            0 => {
                f.lost += 1;
                f.note(format!("outbox event {id}: never audited"));
            }
            n => {
                f.duplicated += n - 1;
                f.note(format!("outbox event {id}: audited {n} times"));
            }
        }
    }
    let current: HashMap<Uuid, i64> = db.tasks.iter().copied().collect();
    for (id, t) in tasks {
        // A deleted task's last sequence is its delete event's.
        let last = current.get(id).copied().unwrap_or(t.changes);
        let seen = per_task.remove(id).unwrap_or_default();
        let (missing, _, holes) = against_range(seen, last);
        // Missing and extra rows are already counted by event id above.
        f.gaps += holes;
        if missing + holes > 0 {
            f.note(format!(
                "task {id}: audit sequences miss {missing} of 1..={last}"
            ));
        }
    }
}

#[cfg(test)]
#[path = "check_tests.rs"]
mod tests;
