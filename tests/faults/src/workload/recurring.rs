//! Recurring tasks completed through the faults: every completion of a
//! recurring task must have exactly one successor.
//!
//! Each series (one per [`Scale::recurring`], spread over the run's users)
//! is created with an `Idempotency-Key` and then driven occurrence by
//! occurrence: wait (bounded) for the pending occurrence to appear through
//! the API, complete it with `If-Match` on its sequence, retried through
//! outages. Some completions are sent a second time as a client does whose
//! answer was lost (the same `If-Match`: a 412 is the right answer, a 200
//! a double completion), and some already-advanced occurrences are
//! reopened and completed again: recurring must see their completion and
//! create nothing (shared/task-domain `repo/successor.rs`:
//! `has_later_occurrence`).
//!
//! The check reads the database once the run is quiet: the series' rows in
//! `tasks` (every occurrence, found by the series' unique title, so a
//! successor forked into another series is counted too) and its
//! `series_advances` marks (V7). A completed occurrence `k` whose `k + 1`
//! is absent is lost; two rows of one occurrence, or an occurrence whose
//! predecessor was never completed, are duplicated successors. And what
//! the client was told counts too ([`check_answered`]): every completion
//! answered 200 must be completed in the database (unless the client
//! reopened it since) with exactly one successor; a 200 the database does
//! not show is lost.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use e2e_tests::retry::{Answer, UserApi};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::time::Instant;
use uuid::Uuid;

use crate::{Env, Phase, Rng, Scale, Tally};

/// How long one request keeps being retried: longer than any fault lasts
/// (the longest is a 60 s database stall).
const REQUEST_WAIT: Duration = Duration::from_secs(150);
/// How long a step waits for recurring to create the next occurrence.
const SUCCESSOR_WAIT: Duration = Duration::from_secs(150);
/// After quiet, how long the check waits for the last successors.
const SETTLE: Duration = Duration::from_secs(120);

/// One occurrence row of a series, as the database has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occurrence {
    pub occurrence: i32,
    pub completed: bool,
    pub series_id: Option<Uuid>,
}

/// What the check found for one series.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Completions checked.
    pub completions: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub problems: Vec<String>,
}

/// Checks one series: its rows, its `series_advances` occurrences, and
/// the occurrences the client left reopened (reopened, and the completion
/// after it not known to have applied), whose successors exist
/// legitimately.
pub fn check_series(rows: &[Occurrence], advances: &[i32], reopened: &BTreeSet<i32>) -> Verdict {
    let mut verdict = Verdict::default();
    let mut by_occurrence: BTreeMap<i32, Vec<&Occurrence>> = BTreeMap::new();
    for row in rows {
        by_occurrence.entry(row.occurrence).or_default().push(row);
    }
    let series: BTreeSet<Option<Uuid>> = rows.iter().map(|r| r.series_id).collect();
    if series.len() > 1 {
        verdict.problems.push(format!(
            "the series forked into {} series ids",
            series.len()
        ));
    }
    let reached = |k: i32| by_occurrence.contains_key(&k) || advances.contains(&k);
    for (&k, same) in &by_occurrence {
        if same.len() > 1 {
            verdict.duplicated += same.len() as u64 - 1;
            verdict
                .problems
                .push(format!("occurrence {k} exists {} times", same.len()));
        }
        if k > 1 {
            let predecessor_done = by_occurrence
                .get(&(k - 1))
                .is_some_and(|p| p.iter().any(|r| r.completed))
                || reopened.contains(&(k - 1));
            if !predecessor_done {
                verdict.duplicated += 1;
                verdict.problems.push(format!(
                    "occurrence {k} exists but occurrence {} was never completed",
                    k - 1
                ));
            }
        }
        if same.iter().any(|r| r.completed) {
            verdict.completions += 1;
            if !reached(k + 1) {
                verdict.lost += 1;
                verdict
                    .problems
                    .push(format!("occurrence {k} was completed and has no successor"));
            }
        }
    }
    verdict
}

/// Checks what the client was told against one series' rows: each
/// occurrence whose completion was `answered` 200 (or found applied after
/// a lost answer) must be completed in the database, unless the client
/// itself `reopened` it afterwards, and have a successor (`check_series`
/// counts a completed one's missing or doubled successor; this adds the
/// completions the database does not show at all). Returns how many
/// answered completions it checked.
pub fn check_answered(
    verdict: &mut Verdict,
    rows: &[Occurrence],
    answered: &BTreeSet<i32>,
    reopened: &BTreeSet<i32>,
) -> u64 {
    for &k in answered {
        let same: Vec<&Occurrence> = rows.iter().filter(|r| r.occurrence == k).collect();
        if same.is_empty() {
            verdict.lost += 1;
            verdict.problems.push(format!(
                "occurrence {k}: its completion was answered 200, but it has no row"
            ));
        } else if !same.iter().any(|r| r.completed) && !reopened.contains(&k) {
            verdict.lost += 1;
            verdict.problems.push(format!(
                "occurrence {k}: its completion was answered 200, but it is not completed"
            ));
        }
    }
    answered.len() as u64
}

/// What the client did to one series.
#[derive(Debug, Default)]
struct SeriesLog {
    user: String,
    title: String,
    /// Occurrences whose completion the client was told applied (200, or a
    /// read after a lost answer showed it completed).
    answered: BTreeSet<i32>,
    /// Occurrences reopened whose completion after is not known applied.
    reopened: BTreeSet<i32>,
    /// Requests whose outcome stayed unknown (no answer until the deadline).
    unknown: u64,
    /// Replayed completions answered 412, as they must be.
    refused: u64,
    /// Requests that met a fault (no answer, a 5xx) and came through by
    /// their retry.
    recovered: u64,
    problems: Vec<String>,
}

pub async fn run(env: Arc<Env>, scale: Scale, seed: u64, phase: Phase) -> anyhow::Result<Tally> {
    let steps = (scale.ops / 200).clamp(3, 10);
    // Spread over about ops/10 seconds, so faults land between steps.
    let pause_ms = (scale.ops as u64 * 100 / steps as u64).max(500);
    let drivers = (0..scale.recurring).map(|i| {
        let env = env.clone();
        let rng = Rng::derive(seed, &format!("recurring-{i}"));
        tokio::spawn(async move { drive(&env, i, steps, pause_ms, rng).await })
    });
    let mut logs = Vec::new();
    for driver in futures::future::join_all(drivers).await {
        logs.push(driver.context("a recurring driver panicked")?);
    }
    phase.driving_done();
    phase.wait_quiet().await;
    check(&env, &logs).await
}

fn title(env: &Env, i: usize) -> String {
    // Zero-padded, so no title is a substring of another (`q=` matches
    // substrings).
    format!("faults-{}-rec-{i:05}", env.run_id)
}

async fn drive(env: &Env, i: usize, steps: usize, pause_ms: u64, mut rng: Rng) -> SeriesLog {
    let user = env.users[i % env.users.len().max(1)].clone();
    let mut log = SeriesLog {
        title: title(env, i),
        user: user.clone(),
        ..SeriesLog::default()
    };
    let api = crate::workload::as_user(env, &env.task_api, &user);
    pause(&mut rng, pause_ms).await;
    let due = chrono::Utc::now() + chrono::Duration::hours(1);
    let body = json!({
        "title": log.title, "priority": "low", "due_at": due, "time_zone": "Europe/Paris",
        "recurrence": {"frequency": "daily"},
    });
    let key = format!("{}-create", log.title);
    let created = api
        .call(
            Method::POST,
            "/api/tasks",
            Some(&body),
            &[("idempotency-key", key)],
            deadline(),
        )
        .await;
    let mut current = match created.status() {
        Some(StatusCode::CREATED) => {
            log.recovered += u64::from(created.uncertain());
            created.body().clone()
        }
        _ => {
            log.note(&created, "create");
            return log;
        }
    };
    for step in 1..=steps {
        let k = i32::try_from(step).unwrap_or(i32::MAX);
        if step > 1 {
            match pending_occurrence(&api, &log.title, k).await {
                Some(task) => current = task,
                // Late, not necessarily lost: the check after quiet
                // decides (a missing successor is counted there).
                None => {
                    say(&format!(
                        "{}: occurrence {k} did not appear within {SUCCESSOR_WAIT:?}; the series stops",
                        log.title
                    ));
                    return log;
                }
            }
            if rng.below(6) == 0 {
                complete_again(&api, &mut log, k - 1).await;
            }
        }
        pause(&mut rng, pause_ms).await;
        if !complete(&api, &mut log, &current, rng.below(4) == 0).await {
            return log;
        }
    }
    log
}

fn deadline() -> Instant {
    Instant::now() + REQUEST_WAIT
}

async fn pause(rng: &mut Rng, pause_ms: u64) {
    let ms = rng.next_u64() % (2 * pause_ms);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

impl SeriesLog {
    fn note(&mut self, answer: &Answer, what: &str) {
        match answer {
            Answer::NoAnswer { error, tries } => {
                self.unknown += 1;
                say(&format!(
                    "{}: {what}: no answer after {tries} tries ({error})",
                    self.title
                ));
            }
            // Still failing at the deadline: as unknown as no answer.
            Answer::Got { status, tries, .. } if e2e_tests::retry::transient(*status) => {
                self.unknown += 1;
                say(&format!(
                    "{}: {what}: {status} after {tries} tries",
                    self.title
                ));
            }
            Answer::Got { status, body, .. } => self
                .problems
                .push(format!("{}: {what}: {status} {body}", self.title)),
        }
    }
}

fn say(line: &str) {
    eprintln!("recurring: {line}");
}

/// The series' pending occurrence `k`, once recurring has created it.
async fn pending_occurrence(api: &UserApi, title: &str, k: i32) -> Option<Value> {
    let path = format!("/api/tasks?status=pending&q={title}");
    let until = Instant::now() + SUCCESSOR_WAIT;
    while Instant::now() < until {
        let answer = api.call(Method::GET, &path, None, &[], until).await;
        let found = answer.body()["items"]
            .as_array()
            .and_then(|items| items.iter().find(|t| t["occurrence"] == k).cloned());
        if found.is_some() {
            return found;
        }
        // Once a second: 200 series may be waiting at once in a full run.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    None
}

fn if_match(task: &Value) -> String {
    format!("\"{}\"", task["sequence"].as_i64().unwrap_or_default())
}

/// Completes `task` by its sequence; `replay`: then sends the very same
/// request again, as a client whose answer was lost does. False when the
/// series cannot go on.
async fn complete(api: &UserApi, log: &mut SeriesLog, task: &Value, replay: bool) -> bool {
    let id = task["id"].as_str().unwrap_or_default();
    let path = format!("/api/tasks/{id}/complete");
    let headers = [("if-match", if_match(task))];
    let answer = api
        .call(Method::POST, &path, None, &headers, deadline())
        .await;
    match answer.status() {
        Some(StatusCode::OK) => {}
        // The retry of an attempt that committed while its answer was lost.
        Some(StatusCode::PRECONDITION_FAILED) if answer.uncertain() => {
            if !is_completed(api, id).await {
                log.problems.push(format!(
                    "{}: completion refused (412), not applied",
                    log.title
                ));
                return false;
            }
        }
        _ => {
            log.note(&answer, "complete");
            return false;
        }
    }
    if answer.uncertain() {
        log.recovered += 1;
    }
    if let Some(k) = task["occurrence"]
        .as_i64()
        .and_then(|k| i32::try_from(k).ok())
    {
        log.answered.insert(k);
    }
    if replay {
        let again = api
            .call(Method::POST, &path, None, &headers, deadline())
            .await;
        match again.status() {
            Some(StatusCode::PRECONDITION_FAILED) => log.refused += 1,
            Some(StatusCode::OK) => log.problems.push(format!(
                "{}: a replayed completion applied twice",
                log.title
            )),
            _ => log.note(&again, "replayed complete"),
        }
    }
    true
}

async fn is_completed(api: &UserApi, id: &str) -> bool {
    let answer = api
        .call(
            Method::GET,
            &format!("/api/tasks/{id}"),
            None,
            &[],
            deadline(),
        )
        .await;
    answer.body()["status"] == "completed"
}

/// Reopens occurrence `k` (which has its successor) and completes it
/// again: a completion of an occurrence the series is past.
async fn complete_again(api: &UserApi, log: &mut SeriesLog, k: i32) {
    let path = format!("/api/tasks?status=completed&q={}", log.title);
    let found = api.call(Method::GET, &path, None, &[], deadline()).await;
    let Some(task) = found.body()["items"]
        .as_array()
        .and_then(|items| items.iter().find(|t| t["occurrence"] == k).cloned())
    else {
        return;
    };
    let id = task["id"].as_str().unwrap_or_default();
    let reopen = api
        .call(
            Method::POST,
            &format!("/api/tasks/{id}/reopen"),
            None,
            &[("if-match", if_match(&task))],
            deadline(),
        )
        .await;
    let reopened = match reopen.status() {
        Some(StatusCode::OK) => reopen.body().clone(),
        _ => {
            // Maybe reopened (no answer): its successor is legitimate.
            log.reopened.insert(k);
            log.note(&reopen, "reopen");
            return;
        }
    };
    log.reopened.insert(k);
    if complete(api, log, &reopened, false).await {
        log.reopened.remove(&k);
    }
}

/// Waits (bounded) until no series lacks a successor, then checks each.
async fn check(env: &Env, logs: &[SeriesLog]) -> anyhow::Result<Tally> {
    let db = env.db().await?;
    let until = Instant::now() + SETTLE;
    let mut verdicts = read_all(&db, logs).await?;
    while verdicts.iter().any(|v| v.lost > 0) && Instant::now() < until {
        tokio::time::sleep(Duration::from_secs(2)).await;
        verdicts = read_all(&db, logs).await?;
    }
    let mut tally = Tally::new("recurring");
    for (log, verdict) in logs.iter().zip(verdicts) {
        tally.checked += verdict.completions;
        tally.lost += verdict.lost;
        tally.duplicated += verdict.duplicated;
        tally.unknown += log.unknown;
        tally.refused += log.refused;
        tally.recovered += log.recovered;
        for problem in verdict.problems.iter().chain(&log.problems) {
            tally
                .problems
                .push(format!("{} ({}): {problem}", log.title, log.user));
        }
    }
    Ok(tally)
}

async fn read_all(db: &tokio_postgres::Client, logs: &[SeriesLog]) -> anyhow::Result<Vec<Verdict>> {
    let mut out = Vec::with_capacity(logs.len());
    for log in logs {
        let rows = db
            .query(
                "SELECT occurrence, status = 'completed', series_id FROM tasks
                 WHERE user_id = $1 AND title = $2",
                &[&log.user, &log.title],
            )
            .await
            .context("reading a series' occurrences")?;
        let rows: Vec<Occurrence> = rows
            .iter()
            .map(|r| Occurrence {
                occurrence: r.get(0),
                completed: r.get(1),
                series_id: r.get(2),
            })
            .collect();
        let ids: Vec<Uuid> = rows.iter().filter_map(|r| r.series_id).collect();
        let advances: Vec<i32> = db
            .query(
                "SELECT DISTINCT occurrence FROM series_advances WHERE series_id = ANY($1)",
                &[&ids],
            )
            .await
            .context("reading series_advances")?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut verdict = check_series(&rows, &advances, &log.reopened);
        let answered = check_answered(&mut verdict, &rows, &log.answered, &log.reopened);
        verdict.completions = verdict.completions.max(answered);
        out.push(verdict);
    }
    Ok(out)
}

#[cfg(test)]
#[path = "recurring_tests.rs"]
mod tests;
