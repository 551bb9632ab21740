//! The run's report, as Markdown: the seed and the command that replays
//! it, per workload what was checked, lost, duplicated, unknown and
//! recovered, per fault kind the recovery times (min/median/max) and how
//! many injections met the ops workload, which workloads each fault hit,
//! what was not exercised, and every problem. A run passes only with 0
//! lost, 0 duplicated, no failed check, every fault recovered, and every
//! workload at or above its floor of checked outcomes ([`floor`]).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use crate::faults::Injection;
use crate::schedule::Mode;
use crate::{Scale, Tally};

/// Min, median and max of a set of durations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub n: usize,
    pub min: Duration,
    /// The middle value; for an even count, the mean of the two middle ones.
    pub median: Duration,
    pub max: Duration,
}

/// The stats of `values`, or `None` when there are none.
pub fn stats(values: &[Duration]) -> Option<Stats> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let n = sorted.len();
    let (&min, &max) = (sorted.first()?, sorted.last()?);
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2
    };
    Some(Stats {
        n,
        min,
        median,
        max,
    })
}

/// The least a workload must have checked for the run to count, from the
/// run's scale; `None` for the end checks, which have no floor. Each is the
/// least the workload's own load produces when nothing goes wrong:
/// - ops: every operation has an outcome;
/// - recurring: every series completes at least once (its steps are 3 to
///   10);
/// - reminders: every reminder has at least one firing for one target;
/// - sockets: each socket's user has at least one event (the offsets
///   checked are summed over the sockets);
/// - hostile: half its requests: the oversized kinds are capped at a few
///   each, so a full run sends fewer than `scale.hostile`, never half.
pub fn floor(workload: &str, scale: &Scale) -> Option<u64> {
    let n = match workload {
        "ops" => scale.ops,
        "recurring" => scale.recurring,
        "reminders" => scale.reminders,
        "sockets" => scale.sockets,
        "hostile" => scale.hostile / 2,
        _ => return None,
    };
    Some(n as u64)
}

/// Something the run did not exercise, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unexercised {
    pub what: String,
    pub why: String,
    /// True when the stack's own settings make it unexercisable (then the
    /// report says so and the run may pass); false fails a full run.
    pub excused: bool,
}

/// The token kinds this stack's settings make valid, so the hostile
/// workload cannot send them as hostile: auth checks `aud` and `iss` only
/// when `JWT_AUDIENCE` / `JWT_ISSUER` are set (shared/auth/src/verify.rs).
pub fn token_kinds(audience: Option<&str>, issuer: Option<&str>) -> Vec<Unexercised> {
    let mut out = vec![];
    if audience.is_none() {
        let why = "the stack sets no JWT_AUDIENCE, so task-api does not check `aud`: \
                   such a token is valid here";
        for what in ["tokens without `aud`", "tokens with a wrong `aud`"] {
            out.push(Unexercised {
                what: what.into(),
                why: why.into(),
                excused: true,
            });
        }
    }
    if issuer.is_none() {
        out.push(Unexercised {
            what: "tokens with a wrong `iss`".into(),
            why: "the stack sets no JWT_ISSUER, so task-api does not check `iss`: such a \
                  token is valid here"
                .into(),
            excused: true,
        });
    }
    out
}

/// Everything a run found.
#[derive(Debug)]
pub struct Report {
    pub seed: u64,
    pub mode: Mode,
    pub run_id: String,
    pub scale: Scale,
    /// The workloads' tallies and the quiet checks'.
    pub tallies: Vec<Tally>,
    pub injections: Vec<Injection>,
    /// The orchestrator's own failures (restore, status).
    pub problems: Vec<String>,
    /// What the stack's settings left unexercised ([`token_kinds`]).
    pub unexercised: Vec<Unexercised>,
    /// What the final `scripts/faults restore` had to start.
    pub restored: Vec<String>,
    /// The command that replays this run.
    pub replay: String,
    pub elapsed: Duration,
}

impl Report {
    /// True when nothing was lost or duplicated, every check and every
    /// recovery passed, every workload checked at least its floor, and (in
    /// a full run) nothing was left unexercised but what the stack's
    /// settings excuse.
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
            && self.tallies.iter().any(|t| t.checked > 0)
            && self.shortfalls().is_empty()
            && self.tallies.iter().all(Tally::passed)
            && self.injections.iter().all(|i| i.problems.is_empty())
            && (self.mode != Mode::Full || self.unexercised().iter().all(|u| u.excused))
    }

    /// One line per workload that checked less than its [`floor`].
    pub fn shortfalls(&self) -> Vec<String> {
        self.tallies
            .iter()
            .filter_map(|t| {
                let floor = floor(&t.name, &self.scale)?;
                (t.checked < floor).then(|| {
                    format!(
                        "{}: checked {} of at least {floor} (the floor for this scale): too \
                         little was checked for the run to count",
                        t.name, t.checked
                    )
                })
            })
            .collect()
    }

    /// What was not exercised: the stack's settings', then each
    /// workload's own list.
    pub fn unexercised(&self) -> Vec<Unexercised> {
        let own = self.tallies.iter().flat_map(|t| {
            t.not_exercised.iter().map(|what| Unexercised {
                what: what.clone(),
                why: format!("{} sent none", t.name),
                excused: false,
            })
        });
        self.unexercised.iter().cloned().chain(own).collect()
    }

    /// Per fault kind, how many injections hit while `workload` drove.
    pub fn hits(&self, label: &str, workload: &str) -> usize {
        self.injections
            .iter()
            .filter(|i| i.fault.label() == label && i.hit(workload))
            .count()
    }

    /// Lost and duplicated summed over the workloads.
    pub fn totals(&self) -> (u64, u64) {
        self.tallies
            .iter()
            .fold((0, 0), |(l, d), t| (l + t.lost, d + t.duplicated))
    }

    /// Recovery stats per fault kind: (label, ready, recovered, failed).
    pub fn recovery(&self) -> Vec<(String, Option<Stats>, Option<Stats>, usize)> {
        let mut by_kind: BTreeMap<String, Vec<&Injection>> = BTreeMap::new();
        for injection in &self.injections {
            by_kind
                .entry(injection.fault.label())
                .or_default()
                .push(injection);
        }
        by_kind
            .into_iter()
            .map(|(label, list)| {
                let ready: Vec<Duration> = list.iter().filter_map(|i| i.ready).collect();
                let recovered: Vec<Duration> = list.iter().filter_map(|i| i.recovered).collect();
                let failed = list.iter().filter(|i| !i.problems.is_empty()).count();
                (label, stats(&ready), stats(&recovered), failed)
            })
            .collect()
    }

    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let verdict = if self.passed() { "PASSED" } else { "FAILED" };
        let (lost, duplicated) = self.totals();
        let _ = writeln!(out, "# Fault suite: {verdict}\n");
        let _ = writeln!(
            out,
            "- run `{}`, {} mode, seed **{}**, {:.0} s",
            self.run_id,
            self.mode.flag().trim_start_matches('-'),
            self.seed,
            self.elapsed.as_secs_f64()
        );
        let _ = writeln!(out, "- replay: `{}`", self.replay);
        let s = &self.scale;
        let _ = writeln!(
            out,
            "- scale: {} operations, {} users, {} sockets, {} recurring, {} reminders, {} hostile",
            s.ops, s.users, s.sockets, s.recurring, s.reminders, s.hostile
        );
        let _ = writeln!(
            out,
            "- lost {lost}, duplicated {duplicated} (both must be 0)\n"
        );
        self.workloads_table(&mut out);
        self.recovery_table(&mut out);
        self.fault_log(&mut out);
        self.unexercised_list(&mut out);
        self.problem_list(&mut out);
        out
    }

    fn workloads_table(&self, out: &mut String) {
        let _ = writeln!(out, "## Workloads\n");
        let _ = writeln!(
            out,
            "| workload | checked | lost | duplicated | unknown | recovered | refused | failed (recorded) | problems |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for t in &self.tallies {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                t.name,
                t.checked,
                t.lost,
                t.duplicated,
                t.unknown,
                t.recovered,
                t.refused,
                t.failed_recorded,
                t.problems.len()
            );
        }
        let _ = writeln!(out);
    }

    fn recovery_table(&self, out: &mut String) {
        let _ = writeln!(out, "## Recovery per fault kind\n");
        let _ = writeln!(
            out,
            "From the fault's start: *ready* = every function and daprd answers its health \
             check again; *recovered* = a probe change made after that was seen downstream. \
             *with ops* = injections that started while the ops workload (the one that checks \
             audit rows and unknown outcomes) was driving.\n"
        );
        let _ = writeln!(
            out,
            "| fault | injected | with ops | recovered | failed | ready min / median / max (s) | recovered in min / median / max (s) |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---|---|");
        for (label, ready, recovered, failed) in self.recovery() {
            let n = self
                .injections
                .iter()
                .filter(|i| i.fault.label() == label)
                .count();
            let _ = writeln!(
                out,
                "| {label} | {n} | {} | {} | {failed} | {} | {} |",
                self.hits(&label, "ops"),
                recovered.map_or(0, |s| s.n),
                fmt_stats(ready),
                fmt_stats(recovered)
            );
        }
        let _ = writeln!(out);
    }

    fn fault_log(&self, out: &mut String) {
        let _ = writeln!(out, "## Faults in order\n");
        for (n, i) in self.injections.iter().enumerate() {
            let _ = writeln!(
                out,
                "{}. {}{}: ready {}, recovered {}{}",
                n + 1,
                i.fault.label(),
                if i.under_load() {
                    format!(" (under load: {})", i.driving.join(", "))
                } else {
                    " (no workload driving)".into()
                },
                fmt_secs(i.ready),
                fmt_secs(i.recovered),
                if i.problems.is_empty() {
                    String::new()
                } else {
                    format!(" — {}", i.problems.join("; "))
                }
            );
        }
        let _ = writeln!(out);
    }

    fn unexercised_list(&self, out: &mut String) {
        if !self.restored.is_empty() {
            let _ = writeln!(
                out,
                "The final restore started: {}.\n",
                self.restored.join(", ")
            );
        }
        let list = self.unexercised();
        if list.is_empty() {
            return;
        }
        let _ = writeln!(out, "## Not exercised\n");
        for u in &list {
            let verdict = match (u.excused, self.mode) {
                (true, _) => "by the stack's settings, not a failure",
                (false, Mode::Full) => "**fails a full run**",
                (false, Mode::Short) => "fails a full run",
            };
            let _ = writeln!(out, "- {}: {} ({verdict})", u.what, u.why);
        }
        let _ = writeln!(out);
    }

    fn problem_list(&self, out: &mut String) {
        let lines: Vec<String> = self
            .problems
            .iter()
            .map(|p| format!("orchestrator: {p}"))
            .chain(self.shortfalls())
            .chain(
                self.tallies
                    .iter()
                    .flat_map(|t| t.problems.iter().map(move |p| format!("{}: {p}", t.name))),
            )
            .collect();
        if !self.tallies.iter().any(|t| t.checked > 0) {
            let _ = writeln!(
                out,
                "**No workload checked anything: the run cannot pass.**\n"
            );
        }
        if lines.is_empty() {
            return;
        }
        let _ = writeln!(out, "## Problems\n");
        for line in lines {
            let _ = writeln!(out, "- {line}");
        }
    }
}

fn fmt_secs(d: Option<Duration>) -> String {
    d.map_or_else(|| "—".into(), |d| format!("{:.1} s", d.as_secs_f64()))
}

fn fmt_stats(s: Option<Stats>) -> String {
    s.map_or_else(
        || "—".into(),
        |s| {
            format!(
                "{:.1} / {:.1} / {:.1}",
                s.min.as_secs_f64(),
                s.median.as_secs_f64(),
                s.max.as_secs_f64()
            )
        },
    )
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
