//! The run's verdict and its Markdown report.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use super::Config;
use super::check::Findings;
use super::db::Snapshot;
use super::drive::{Outcome, Verdict};
use super::plan::Op;

/// Everything a report is made from.
pub(crate) struct Parts {
    pub run_id: String,
    pub config: Config,
    pub outcomes: Vec<Outcome>,
    pub snapshot: Snapshot,
    pub findings: Findings,
    pub ops_time: Duration,
    /// From the first request until the outbox was drained, if it was.
    pub published: Option<Duration>,
    /// From the first request until the audit log caught up, if it did.
    pub audited: Option<Duration>,
}

/// One run's result.
pub struct Report {
    parts: Parts,
    pub changes: usize,
    pub refused: usize,
    pub errors: usize,
    pub server_errors: usize,
    /// Answers lost and never settled (accepted applied once or not).
    pub unknown: usize,
    /// Operations sent more than once because an answer was lost.
    pub retried: usize,
    /// Planned operations never sent (their chain's create stayed unknown).
    pub not_run: usize,
}

impl std::fmt::Debug for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.markdown())
    }
}

/// The `q` quantile of sorted latencies, in milliseconds.
fn ms(sorted: &[Duration], q: f64) -> f64 {
    let Some(last) = sorted.len().checked_sub(1) else {
        return 0.0;
    };
    let at = ((last as f64) * q).round() as usize;
    sorted[at.min(last)].as_secs_f64() * 1000.0
}

impl Report {
    pub(crate) fn new(parts: Parts) -> Self {
        let count =
            |v: fn(&Verdict) -> bool| parts.outcomes.iter().filter(|o| v(&o.verdict)).count();
        Self {
            changes: count(|v| *v == Verdict::Changed),
            refused: count(|v| *v == Verdict::Refused),
            errors: count(|v| matches!(v, Verdict::Error(_))),
            server_errors: parts.outcomes.iter().filter(|o| o.is_5xx()).count(),
            unknown: count(|v| matches!(v, Verdict::Unknown(_))),
            retried: parts.outcomes.iter().filter(|o| o.attempts > 1).count(),
            not_run: parts.config.ops.saturating_sub(parts.outcomes.len()),
            parts,
        }
    }

    pub fn findings(&self) -> &Findings {
        &self.parts.findings
    }

    /// Operations recorded (sent, or given up as unknown).
    pub fn ops(&self) -> usize {
        self.parts.outcomes.len()
    }

    /// Whether the outbox drained and the audit log caught up in time.
    pub fn settled(&self) -> bool {
        self.parts.published.is_some() && self.parts.audited.is_some()
    }

    /// The first few wrong answers, `(operation: error, count)`.
    pub fn error_lines(&self) -> Vec<String> {
        let mut lines: BTreeMap<String, usize> = BTreeMap::new();
        for o in &self.parts.outcomes {
            if let Verdict::Error(e) = &o.verdict {
                *lines.entry(format!("{}: {e}", o.op.name())).or_default() += 1;
            }
        }
        lines
            .into_iter()
            .take(10)
            .map(|(e, n)| format!("{n} × {e}"))
            .collect()
    }

    /// Every operation run and answered or unknown, nothing lost,
    /// duplicated or out of order, and both waits finished in time.
    pub fn passed(&self) -> bool {
        self.errors == 0 && self.not_run == 0 && self.parts.findings.clean() && self.settled()
    }

    pub fn markdown(&self) -> String {
        let p = &self.parts;
        let f = &p.findings;
        let ops = p.outcomes.len();
        let secs = |d: Option<Duration>| {
            d.map(|d| format!("{:.1} s", d.as_secs_f64()))
                .unwrap_or_else(|| "not within the bound".into())
        };
        let mut out = String::new();
        let _ = writeln!(
            out,
            "| ops | changes | refused (412) | unknown (applied) | retried | not run | errors | 5xx | lost | duplicated | gaps | unpublished | mismatched | wall s | ops/s |"
        );
        let _ = writeln!(
            out,
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        );
        let _ = writeln!(
            out,
            "| {ops} | {} | {} | {} ({}) | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {:.0} |",
            self.changes,
            self.refused,
            self.unknown,
            f.unknown_applied,
            self.retried,
            self.not_run,
            self.errors,
            self.server_errors,
            f.lost,
            f.duplicated,
            f.gaps,
            f.unpublished,
            f.mismatched,
            p.ops_time.as_secs_f64(),
            ops as f64 / p.ops_time.as_secs_f64().max(1e-9),
        );
        out.push('\n');
        out.push_str(&self.per_operation());
        let s = &p.snapshot;
        let topic = |t: &str| s.outbox.iter().filter(|r| r.topic == t).count();
        let _ = writeln!(
            out,
            "\ndatabase: {} task-events and {} task-updates outbox rows ({} sent), {} audit rows, \
             stream offsets summing to {}, {} tasks left",
            topic("task-events"),
            topic("task-updates"),
            s.outbox.iter().filter(|r| r.sent).count(),
            s.audit.len(),
            s.streams.iter().map(|(_, n)| n).sum::<i64>(),
            s.tasks.len(),
        );
        let _ = writeln!(
            out,
            "from the first request: outbox drained after {}, audit complete after {}",
            secs(p.published),
            secs(p.audited)
        );
        let _ = writeln!(
            out,
            "settings: {} ops, concurrency {}, {} users, run {}, wait bound {} s",
            p.config.ops,
            p.config.concurrency,
            p.config.users,
            p.run_id,
            p.config.settle.as_secs()
        );
        self.problems(&mut out);
        let _ = writeln!(
            out,
            "\nresult: {}",
            if self.passed() { "PASS" } else { "FAIL" }
        );
        out
    }

    fn per_operation(&self) -> String {
        let mut out = String::from(
            "| operation | sent | changed | refused | unknown | errors | p50 ms | p99 ms |\n|---|---|---|---|---|---|---|---|\n",
        );
        for op in Op::ALL {
            let mine: Vec<&Outcome> = self.parts.outcomes.iter().filter(|o| o.op == op).collect();
            let mut h: Vec<Duration> = mine.iter().map(|o| o.latency).collect();
            h.sort_unstable();
            let n = |v: &dyn Fn(&Verdict) -> bool| mine.iter().filter(|o| v(&o.verdict)).count();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {:.1} | {:.1} |",
                op.name(),
                mine.len(),
                n(&|v| *v == Verdict::Changed),
                n(&|v| *v == Verdict::Refused),
                n(&|v| matches!(v, Verdict::Unknown(_))),
                n(&|v| matches!(v, Verdict::Error(_))),
                ms(&h, 0.5),
                ms(&h, 0.99),
            );
        }
        out
    }

    fn problems(&self, out: &mut String) {
        let mut errors: BTreeMap<String, usize> = BTreeMap::new();
        for o in &self.parts.outcomes {
            match &o.verdict {
                Verdict::Error(e) => {
                    *errors.entry(format!("{}: {e}", o.op.name())).or_default() += 1;
                }
                Verdict::Unknown(e) => {
                    let line = format!("{} unknown (not an error): {e}", o.op.name());
                    *errors.entry(line).or_default() += 1;
                }
                _ => {}
            }
        }
        if errors.is_empty() && self.parts.findings.problems.is_empty() {
            return;
        }
        out.push_str("\nproblems (first few):\n");
        for (e, n) in errors.iter().take(10) {
            let _ = writeln!(out, "- {n} × {e}");
        }
        for p in &self.parts.findings.problems {
            let _ = writeln!(out, "- {p}");
        }
    }
}
