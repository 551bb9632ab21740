//! The end-to-end checks: what the clients were told against what the
//! database shows, from the task table through the outbox to the audit
//! log. Pure functions over the recorded outcomes and one [`Snapshot`], so
//! the checker itself is tested here with rows made by hand.
//!
//! Each `task-events` row is first matched to the operation that made it
//! ([`attribute`]): an accepted change must have made exactly one, a
//! refused one none, and one whose answer was lost ([`Verdict::Unknown`])
//! one or none — never two. The operations found applied are then what
//! the task table, both topics' sequences, the user streams and the audit
//! log must agree with.

use std::collections::{HashMap, HashSet};

use uuid::Uuid;

use super::db::{OutboxRow, Snapshot};
use super::drive::{Outcome, Verdict};
use super::plan::Op;

const TASK_EVENTS: &str = "task-events";
const TASK_UPDATES: &str = "task-updates";
/// How many problem descriptions a report keeps.
const KEEP: usize = 20;

/// Whose rows the run's users hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Only this run wrote for its users: every row of theirs must come
    /// from one of its operations.
    Exclusive,
    /// Other workloads write for the same users (the fault suite): only
    /// this run's tasks are compared, plus the users' stream offsets and
    /// the audit row of every `task-events` row of theirs.
    Shared,
}

/// What the checks found. Every count but `unknown*` must be zero.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    /// Accepted changes (or their events) missing somewhere downstream.
    pub lost: usize,
    /// Changes or events present more often than accepted: an operation
    /// applied twice, a refused one applied, rows no operation made.
    pub duplicated: usize,
    /// Numbers missing inside a task's sequences or a user's offsets.
    pub gaps: usize,
    /// Outbox rows the relay never marked sent.
    pub unpublished: usize,
    /// Other disagreements: current sequences, deleted rows, offsets.
    pub mismatched: usize,
    /// Operations whose outcome stayed unknown to the client.
    pub unknown: usize,
    /// Of those, how many the database shows applied (once).
    pub unknown_applied: usize,
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

/// What one task went through, as the responses and the outbox settle it.
#[derive(Debug, Default)]
struct Applied {
    user: String,
    /// Changes the database must show: accepted ones, unknown ones found
    /// applied, and the extra ones already counted as duplicated.
    changes: i64,
    deleted: bool,
    /// Sequences returned to clients.
    returned: Vec<i64>,
}

/// The operation a `task-events` row of one task stands for.
fn matches(o: &Outcome, row: &OutboxRow) -> bool {
    match row.event_type.as_str() {
        "com.todo.task.created" => o.op == Op::Create,
        "com.todo.task.completed" => o.op == Op::Complete,
        "com.todo.task.deleted" => o.op == Op::Delete,
        "com.todo.task.updated" if row.title_changed => {
            matches!(o.op, Op::Update | Op::UpdateIfMatch)
                && row.title.as_deref() == Some(o.title.as_str())
        }
        "com.todo.task.updated" => o.op == Op::Reopen,
        _ => false,
    }
}

/// Each outcome's task: its own, or for a create whose answer was lost,
/// the task whose `created` event carries its title. A create title (unique
/// in the run) on two tasks is a create applied twice.
fn task_ids(
    f: &mut Findings,
    outcomes: &[Outcome],
    users: &[String],
    db: &Snapshot,
) -> Vec<Option<Uuid>> {
    let mut created: HashMap<(&str, &str), Vec<Uuid>> = HashMap::new();
    for r in &db.outbox {
        if r.topic == TASK_EVENTS
            && r.event_type == "com.todo.task.created"
            && let (Some(title), Some(task)) = (r.title.as_deref(), r.task_id)
        {
            created
                .entry((r.user_id.as_str(), title))
                .or_default()
                .push(task);
        }
    }
    outcomes
        .iter()
        .map(|o| {
            if o.op != Op::Create {
                return o.task_id;
            }
            let made = created
                .get(&(users[o.user].as_str(), o.title.as_str()))
                .map(Vec::as_slice)
                .unwrap_or_default();
            if made.len() > 1 {
                f.duplicated += made.len() - 1;
                f.note(format!(
                    "create {:?}: {} tasks {made:?}",
                    o.title,
                    made.len()
                ));
            }
            o.task_id.or_else(|| made.first().copied())
        })
        .collect()
}

/// Matches every `task-events` row of the run's tasks to its operation,
/// counts what applied per task, and flags operations applied twice,
/// refused ones applied and rows no operation made (each once: the later
/// checks expect those extra changes).
fn attribute(
    f: &mut Findings,
    outcomes: &[Outcome],
    users: &[String],
    db: &Snapshot,
) -> HashMap<Uuid, Applied> {
    let ids = task_ids(f, outcomes, users, db);
    let mut by_task: HashMap<Uuid, Vec<usize>> = HashMap::new();
    for (n, id) in ids.iter().enumerate() {
        if let Some(id) = id {
            by_task.entry(*id).or_default().push(n);
        }
    }
    let mut made = vec![0usize; outcomes.len()];
    let mut tasks: HashMap<Uuid, Applied> = HashMap::new();
    for row in db.outbox.iter().filter(|r| r.topic == TASK_EVENTS) {
        let Some((task, ops)) = row.task_id.and_then(|t| Some((t, by_task.get(&t)?))) else {
            continue;
        };
        match ops.iter().find(|n| matches(&outcomes[**n], row)) {
            Some(n) => made[*n] += 1,
            None => {
                // A change all the same: the other checks count with it.
                tasks.entry(task).or_default().changes += 1;
                f.duplicated += 1;
                f.note(format!(
                    "event {} ({}): made by no operation of its task",
                    row.event_id, row.event_type
                ));
            }
        }
    }
    for (n, o) in outcomes.iter().enumerate() {
        let Some(id) = ids[n] else { continue };
        let t = tasks.entry(id).or_default();
        t.user.clone_from(&users[o.user]);
        let applied = match &o.verdict {
            Verdict::Changed => {
                t.returned.extend(o.sequence);
                true
            }
            Verdict::Refused => false,
            Verdict::Unknown(_) | Verdict::Error(_) => made[n] > 0,
        };
        if o.is_unknown() {
            f.unknown += 1;
            f.unknown_applied += usize::from(applied);
        }
        let allowed = usize::from(applied || matches!(o.verdict, Verdict::Changed));
        if made[n] > allowed {
            f.duplicated += made[n] - allowed;
            f.note(format!(
                "task {id}: {} ({:?}) made {} events",
                o.op.name(),
                o.verdict,
                made[n]
            ));
        }
        if applied {
            t.deleted |= o.op == Op::Delete;
        }
        // What the database must show: an accepted change once even if its
        // event is missing (the sequence checks count that as lost), and
        // every application found, so a duplicate is counted here only.
        t.changes += made[n].max(usize::from(o.verdict == Verdict::Changed)) as i64;
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
pub fn check(outcomes: &[Outcome], users: &[String], db: &Snapshot, scope: Scope) -> Findings {
    let mut f = Findings::default();
    let tasks = attribute(&mut f, outcomes, users, db);
    responses(&mut f, &tasks);
    task_rows(&mut f, &tasks, db, scope);
    outbox(&mut f, &tasks, db, scope);
    streams(&mut f, &tasks, users, db, scope);
    audit(&mut f, &tasks, db);
    f
}

/// No two clients were given the same sequence for one task.
fn responses(f: &mut Findings, tasks: &HashMap<Uuid, Applied>) {
    for (id, t) in tasks {
        let (_, dup, _) = against_range(t.returned.clone(), t.changes);
        if dup > 0 {
            f.duplicated += dup;
            f.note(format!(
                "task {id}: responses returned sequences {:?} for {} changes",
                t.returned, t.changes
            ));
        }
    }
}

/// The task table holds each surviving task at its last sequence.
fn task_rows(f: &mut Findings, tasks: &HashMap<Uuid, Applied>, db: &Snapshot, scope: Scope) {
    let rows: HashMap<Uuid, i64> = db.tasks.iter().copied().collect();
    for (id, t) in tasks {
        match (rows.get(id), t.deleted) {
            (None, true) => {}
            (Some(_), true) => {
                f.mismatched += 1;
                f.note(format!("task {id}: deleted, but its row is still there"));
            }
            (None, false) if t.changes > 0 => {
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
                    "task {id}: sequence {seq} after {} applied changes",
                    t.changes
                ));
            }
            _ => {}
        }
    }
    if scope == Scope::Exclusive {
        for (id, _) in rows.iter().filter(|(id, _)| !tasks.contains_key(id)) {
            f.duplicated += 1;
            f.note(format!("task {id}: a row no create made"));
        }
    }
}

/// Each applied change has exactly one event per topic, numbered
/// 1..=changes, and every row was sent.
fn outbox(f: &mut Findings, tasks: &HashMap<Uuid, Applied>, db: &Snapshot, scope: Scope) {
    let mut per_task: HashMap<(Uuid, &str), Vec<i64>> = HashMap::new();
    let mut ids = HashSet::new();
    let mine = |r: &OutboxRow| r.task_id.is_some_and(|t| tasks.contains_key(&t));
    for row in &db.outbox {
        if scope == Scope::Shared && !mine(row) {
            continue;
        }
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
    }
    for ((id, topic), seen) in per_task {
        f.duplicated += seen.len();
        f.note(format!(
            "task {id}: {} {topic} events for no operation",
            seen.len()
        ));
    }
}

/// Each user's `task-updates` offsets are exactly 1..=last_offset; with
/// the users to itself, one per applied change.
fn streams(
    f: &mut Findings,
    tasks: &HashMap<Uuid, Applied>,
    users: &[String],
    db: &Snapshot,
    scope: Scope,
) {
    let mut changes: HashMap<&str, i64> = HashMap::new();
    for t in tasks.values() {
        *changes.entry(t.user.as_str()).or_default() += t.changes;
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
    for user in users {
        let last_offset = last.get(user.as_str()).copied().unwrap_or(0);
        let mine = changes.get(user.as_str()).copied().unwrap_or(0);
        if scope == Scope::Exclusive && last_offset != mine {
            f.mismatched += 1;
            f.note(format!(
                "user {user}: last_offset {last_offset} after {mine} applied changes"
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

/// The audit log holds every `task-events` row of the users' outbox exactly
/// once and nothing else (so nothing for a refused change: [`attribute`]
/// found no event for one), and each of this run's tasks has its audited
/// sequences 1..=current. With shared users too every row of theirs is
/// audited, whichever workload (or function: a recurring successor) made
/// it: the users belong to the run, so every event of theirs is owed
/// exactly one audit row.
fn audit(f: &mut Findings, tasks: &HashMap<Uuid, Applied>, db: &Snapshot) {
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
        if tasks.contains_key(&row.task_id) {
            per_task.entry(row.task_id).or_default().push(row.sequence);
        }
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
