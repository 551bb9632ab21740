//! The hostile workload's set-up and end checks: the victim task, the
//! processes (healthy, no panic logged, a changed pid only by a kill), the
//! rows refused input must not have made, the dead-letter topics, and the
//! per-kind report.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::json;
use tokio::time::Instant;
use uuid::Uuid;

use super::{Hostile, dlq};
use crate::workload::reminders::Record;
use crate::{Env, Tally};

/// The victim task's title: nobody else may change it.
const VICTIM_TITLE: &str = "hostile victim";
/// How long set-up retries a create a fault got in the way of.
const SETUP_FOR: Duration = Duration::from_secs(300);

/// The repository (`scripts/dev` is `<repo>/scripts/dev`).
pub(super) fn repo_root(env: &Env) -> PathBuf {
    env.dev_script
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Creates the task the thief goes after, retrying through a fault.
pub(super) async fn create_victim(
    env: &Env,
    http: &reqwest::Client,
    victim: &str,
) -> anyhow::Result<Uuid> {
    let deadline = Instant::now() + SETUP_FOR;
    let key = format!("{victim}-task");
    loop {
        let sent = http
            .post(format!("{}/api/tasks", env.task_api))
            .bearer_auth(env.token(victim, false))
            .header("idempotency-key", &key)
            .json(&json!({"title": VICTIM_TITLE}))
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => {
                let body: serde_json::Value = r.json().await.context("the victim task")?;
                let id = body["id"].as_str().unwrap_or_default();
                return Uuid::parse_str(id).context("the victim task's id");
            }
            Ok(r) if !r.status().is_server_error() => {
                bail!("creating the victim task: {}", r.status())
            }
            _ if Instant::now() >= deadline => bail!("task-api did not take the victim task"),
            _ => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

/// The run directory scripts/lib/common.sh uses.
fn run_dir() -> PathBuf {
    std::env::var("TODO_EVENTS_RUN")
        .ok()
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("/var/tmp/todo-events"), PathBuf::from)
}

fn functions(env: &Env) -> [(&'static str, &str); 5] {
    [
        ("task-api", env.task_api.as_str()),
        ("audit", env.audit.as_str()),
        ("recurring", env.recurring.as_str()),
        ("notification", env.notification.as_str()),
        ("sync-gateway", env.gateway.as_str()),
    ]
}

/// Each function's pid (scripts/dev's pid file) and log length.
pub(super) type Procs = BTreeMap<&'static str, (Option<String>, u64)>;

pub(super) fn processes(env: &Env) -> Procs {
    let run = run_dir();
    functions(env)
        .into_iter()
        .map(|(name, _)| {
            let pid = std::fs::read_to_string(run.join(format!("pids/app-{name}.pid")))
                .ok()
                .map(|p| p.trim().to_owned());
            let log = std::fs::metadata(run.join(format!("logs/app-{name}.log")))
                .map(|m| m.len())
                .unwrap_or(0);
            (name, (pid, log))
        })
        .collect()
}

/// The lines of `text` that report a panic.
pub fn panics(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.contains("panicked")).collect()
}

/// A function's pid change from `from` to `to` (pid-file text) that the
/// injector's record does not explain (no kill and start of ours gave it
/// that pid): a crash, whatever ended it (a panic, an abort, SIGSEGV, an
/// OOM kill), found by pid because only a panic logs a line.
pub(super) fn unexplained(
    log: &crate::ProcessLog,
    name: &str,
    from: Option<&str>,
    to: Option<&str>,
) -> Option<String> {
    let pid = |p: Option<&str>| p.and_then(|p| p.parse::<u32>().ok());
    let (a, b) = (pid(from), pid(to));
    if log.explains(&format!("app-{name}"), a, b) {
        return None;
    }
    Some(format!(
        "{name}: pid {} → {} during the run without a restart of the injector's: it crashed",
        from.unwrap_or("none"),
        to.unwrap_or("none")
    ))
}

/// Every function answers `/healthz`; none logged a panic since the start;
/// a pid that changed without a kill and start of the injector's
/// (`env.processes`) is a crash, logged panic or not.
pub(super) async fn check_processes(env: &Env, start: &Procs, tally: &mut Tally) {
    let now = processes(env);
    let run = run_dir();
    for (name, base) in functions(env) {
        if !healthy(env, base).await {
            tally
                .problems
                .push(format!("{name}: /healthz does not answer after the run"));
        }
        let (pid0, len0) = start.get(name).cloned().unwrap_or_default();
        let (pid1, _) = now.get(name).cloned().unwrap_or_default();
        let log = std::fs::read(run.join(format!("logs/app-{name}.log"))).unwrap_or_default();
        // A log that shrank was started afresh: read all of it.
        let from = if (log.len() as u64) < len0 {
            0
        } else {
            len0 as usize
        };
        let text = String::from_utf8_lossy(&log[from..]);
        let found = panics(&text);
        if let Some(first) = found.first() {
            let line: String = first.chars().take(200).collect();
            tally.problems.push(format!(
                "{name}: {} panic(s) logged during the run: {line}",
                found.len()
            ));
        }
        if let Some(crash) = unexplained(&env.processes, name, pid0.as_deref(), pid1.as_deref()) {
            tally.problems.push(crash);
        } else if pid0 != pid1 {
            println!("hostile: {name} restarted by a fault (pid {pid0:?} → {pid1:?})");
        }
    }
}

async fn healthy(env: &Env, base: &str) -> bool {
    for _ in 0..30 {
        let ok = env.http.get(format!("{base}/healthz")).send().await;
        if ok.is_ok_and(|r| r.status().is_success()) {
            return true;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    false
}

impl Hostile {
    /// The counts in the suite's terms: anything accepted or answered
    /// otherwise than promised is a problem, and so is a kind never
    /// answered at all (it was not tested).
    pub(super) fn tally(&self) -> Tally {
        let mut t = Tally::new(super::NAME);
        for (kind, c) in &self.counts {
            t.checked += c.sent;
            t.refused += c.refused;
            t.unknown += c.unanswered;
            if let Some(first) = c.wrong.first() {
                t.problems.push(format!(
                    "{kind:?}: {} of {} wrong, e.g. {first}",
                    c.wrong.len(),
                    c.sent
                ));
            }
            if c.sent > 0 && c.refused == 0 && c.wrong.is_empty() {
                t.problems
                    .push(format!("{kind:?}: none of {} answered: not tested", c.sent));
            }
        }
        t
    }

    pub(super) fn markdown(&self) -> String {
        let mut out = String::from(
            "| hostile input | sent | refused as promised | unanswered (fault) | wrong |\n|---|---|---|---|---|\n",
        );
        for (kind, c) in &self.counts {
            let _ = writeln!(
                out,
                "| {kind:?} | {} | {} | {} | {} |",
                c.sent,
                c.refused,
                c.unanswered,
                c.wrong.len()
            );
        }
        out
    }

    /// No row for refused input: the intruder and the thief own no task,
    /// the victim task is as it was, no pushed or published poison was
    /// audited.
    pub(super) async fn check_rows(&self, tally: &mut Tally) {
        if let Err(e) = self.rows(tally).await {
            tally.problems.push(format!("reading the database: {e:#}"));
        }
    }

    async fn rows(&self, tally: &mut Tally) -> anyhow::Result<()> {
        let db = self.env.db().await?;
        for user in [&self.intruder, &self.thief] {
            let n: i64 = db
                .query_one("SELECT count(*) FROM tasks WHERE user_id = $1", &[user])
                .await?
                .get(0);
            if n > 0 {
                tally
                    .problems
                    .push(format!("{user} owns {n} task(s): refused input made rows"));
            }
        }
        let victim = db
            .query_opt(
                "SELECT sequence, title, status FROM tasks WHERE id = $1 AND user_id = $2",
                &[&self.victim_task, &self.victim],
            )
            .await?;
        match victim {
            Some(row) => {
                let (seq, title, status): (i64, String, String) =
                    (row.get(0), row.get(1), row.get(2));
                if (seq, title.as_str(), status.as_str()) != (1, VICTIM_TITLE, "pending") {
                    tally.problems.push(format!(
                        "the victim task changed: sequence {seq}, title {title:?}, {status}"
                    ));
                }
            }
            None => tally.problems.push("the victim task is gone".into()),
        }
        let ids: Vec<String> = self
            .pushed
            .iter()
            .chain(self.injected.keys())
            .cloned()
            .collect();
        let n: i64 = db
            .query_one(
                "SELECT count(*) FROM audit_logs WHERE event_id = ANY($1)",
                &[&ids],
            )
            .await?
            .get(0);
        if n > 0 {
            tally
                .problems
                .push(format!("{n} poison event(s) were audited"));
        }
        Ok(())
    }

    /// The -dlq topics since the start: every poison published on purpose
    /// is there, nothing else is (bounded wait for the stragglers).
    /// This run's users, and which of the deliveries its failure reports
    /// name notification holds failed or unknown (its state store, as the
    /// reminders workload reads it).
    async fn run_reports(&self, records: &[dlq::Record]) -> anyhow::Result<dlq::Run> {
        let mut run = dlq::Run {
            user_prefix: format!("faults-{}-", self.env.run_id),
            failed: Default::default(),
        };
        let keys: std::collections::BTreeSet<&str> = records
            .iter()
            .filter(|r| r.event_type.as_deref() == Some(dlq::FAILED_REPORT))
            .filter(|r| {
                r.user
                    .as_deref()
                    .is_some_and(|u| u.starts_with(&run.user_prefix))
            })
            .filter_map(|r| r.id.as_deref().and_then(dlq::report_key))
            .collect();
        for key in keys {
            let record = crate::workload::reminders::stored_record(&self.env, key).await?;
            if matches!(record, Record::Failed | Record::Unknown) {
                run.failed.insert(key.to_owned());
            }
        }
        Ok(run)
    }

    pub(super) async fn check_dlq(&self, repo: &Path, start: &dlq::Offsets, tally: &mut Tally) {
        let deadline = Instant::now() + super::DLQ_WAIT;
        let verdict = loop {
            let records = match dlq::records_since(repo, start).await {
                Ok(r) => r,
                Err(e) => {
                    tally
                        .problems
                        .push(format!("reading the dead-letter topics: {e:#}"));
                    return;
                }
            };
            let run = match self.run_reports(&records).await {
                Ok(run) => run,
                Err(e) => {
                    tally
                        .problems
                        .push(format!("reading the failed deliveries: {e:#}"));
                    return;
                }
            };
            let v = dlq::judge(&records, &self.injected, &run);
            if v.missing.is_empty() || Instant::now() >= deadline {
                break v;
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        };
        println!(
            "hostile: dead-letter topics since the start: {} poison record(s) of {} injected, {} \
             failed-delivery report(s), {} of other hostile runs, {} foreign, {} missing",
            verdict.poison,
            self.injected.len(),
            verdict.reports,
            verdict.other_runs,
            verdict.foreign.len(),
            verdict.missing.len()
        );
        tally.lost += verdict.missing.len() as u64;
        for m in verdict.missing.iter().take(10) {
            tally
                .problems
                .push(format!("poison never dead-lettered: {m}"));
        }
        if !verdict.foreign.is_empty() {
            tally.problems.push(format!(
                "{} dead-letter record(s) nobody injected, e.g. {}",
                verdict.foreign.len(),
                verdict
                    .foreign
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pid_change_is_a_crash_unless_the_injector_made_it() {
        let log = crate::ProcessLog::default();
        assert_eq!(unexplained(&log, "audit", Some("100"), Some("100")), None);
        // Nobody of ours restarted it: a crash (an abort logs no panic).
        assert!(unexplained(&log, "audit", Some("100"), Some("200")).is_some());
        assert!(unexplained(&log, "audit", Some("100"), None).is_some());
        log.killed("app-audit", Some(100));
        log.started("app-audit", Some(200));
        assert_eq!(unexplained(&log, "audit", Some("100"), Some("200")), None);
        // The pid ours gave it changed again: a crash after the restart.
        assert!(unexplained(&log, "audit", Some("100"), Some("300")).is_some());
        assert!(unexplained(&log, "recurring", Some("5"), Some("200")).is_some());
    }

    #[test]
    fn panics_are_found_in_a_log() {
        let log = "INFO started\nthread 'tokio-runtime-worker' panicked at src/x.rs:1:2:\nboom\n";
        assert_eq!(panics(log).len(), 1);
        assert!(panics("INFO all fine\n").is_empty());
    }
}
