//! The record of the stack's processes over a run: every pid at the run's
//! start, every pid the injector killed and started. A process whose pid
//! changes (or that is gone) without a kill and a start of ours crashed:
//! a panic, an abort ("has overflowed its stack"), a SIGSEGV, an OOM kill
//! all look the same from here, which is the point. `scripts/faults pids`
//! gives the pids (scripts/dev's pid files, the postmaster's), so this
//! module never guesses a path.
//!
//! The record lives on [`crate::Env`] (`env.processes`), so every workload
//! can ask whether a pid change it saw was the orchestrator's
//! ([`ProcessLog::explains`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Mutex, MutexGuard};

/// Each process's pid by its scripts/dev name (`app-audit`, `daprd-audit`,
/// `kafka`, `scheduler`, `mailpit`, `postgres`); `None`: not running.
pub type Pids = BTreeMap<String, Option<u32>>;

/// Parses `scripts/faults pids`: one `NAME PID` line per process, `-` for
/// one that is not running.
pub fn parse_pids(text: &str) -> Result<Pids, String> {
    let mut pids = Pids::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (name, pid) = line
            .split_once(' ')
            .ok_or_else(|| format!("not `NAME PID`: {line:?}"))?;
        let pid = match pid.trim() {
            "-" => None,
            n => Some(n.parse().map_err(|_| format!("bad pid in {line:?}"))?),
        };
        pids.insert(name.to_owned(), pid);
    }
    if pids.is_empty() {
        return Err("scripts/faults pids listed no process".into());
    }
    Ok(pids)
}

/// Who restarted a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// The injection of this fault (its label) killed and started it.
    Fault(String),
    /// `scripts/faults restore` found it down and started it.
    Restore,
}

/// One restart of ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restart {
    pub name: String,
    pub killed: Option<u32>,
    pub started: Option<u32>,
    pub cause: Cause,
}

/// A pid change nobody of ours made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crash {
    pub name: String,
    /// The pid it should have had.
    pub expected: Option<u32>,
    /// The pid it had (`None`: gone).
    pub found: Option<u32>,
    /// When it was seen ("before fault 3 (kafka)", "before restore", …).
    pub seen: String,
}

impl fmt::Display for Crash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pid = |p: Option<u32>| p.map_or("none".to_owned(), |p| p.to_string());
        match self.found {
            None => write!(
                f,
                "{} (pid {}) is gone {}, and no fault of ours killed it: a crash",
                self.name,
                pid(self.expected),
                self.seen
            ),
            Some(found) => write!(
                f,
                "{} changed pid {} → {found} {} without a restart of ours: it crashed and \
                 something else started it",
                self.name,
                pid(self.expected),
                self.seen
            ),
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    at_start: Pids,
    /// The pid each process should have now.
    expected: Pids,
    /// Killed by us and not started again yet.
    down_by_us: BTreeSet<String>,
    /// Every pid we started, per process.
    started: BTreeMap<String, BTreeSet<u32>>,
    restarts: Vec<Restart>,
    crashes: Vec<Crash>,
    /// Processes `restore` started that no fault of ours had killed.
    restored_unasked: Vec<String>,
}

/// The run's process record; shared (`Arc`) and internally locked.
#[derive(Debug, Default)]
pub struct ProcessLog {
    inner: Mutex<Inner>,
}

impl ProcessLog {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The pids at the run's start.
    pub fn begin(&self, pids: Pids) {
        let mut inner = self.lock();
        inner.at_start = pids.clone();
        inner.expected = pids;
    }

    pub fn at_start(&self) -> Pids {
        self.lock().at_start.clone()
    }

    /// Compares `now` with what each process should have; every difference
    /// is a crash, recorded once (the process's expectation follows it).
    /// Returns the new crashes.
    pub fn observe(&self, now: &Pids, seen: &str) -> Vec<Crash> {
        let mut inner = self.lock();
        let names: BTreeSet<String> = now.keys().chain(inner.expected.keys()).cloned().collect();
        let mut new = vec![];
        for name in names {
            let expected = inner.expected.get(&name).copied().flatten();
            let found = now.get(&name).copied().flatten();
            // Down because we killed it (a failed start): not a crash.
            if expected == found || (found.is_none() && inner.down_by_us.contains(&name)) {
                continue;
            }
            new.push(Crash {
                name: name.clone(),
                expected,
                found,
                seen: seen.to_owned(),
            });
            inner.expected.insert(name, found);
        }
        inner.crashes.extend(new.iter().cloned());
        new
    }

    /// We SIGKILLed `name` (pid `pid`).
    pub fn killed(&self, name: &str, pid: Option<u32>) {
        let mut inner = self.lock();
        inner.down_by_us.insert(name.to_owned());
        inner.expected.insert(name.to_owned(), None);
        inner.restarts.push(Restart {
            name: name.to_owned(),
            killed: pid,
            started: None,
            cause: Cause::Fault(name.to_owned()),
        });
    }

    /// We started `name` again after our kill; it now runs as `pid`.
    pub fn started(&self, name: &str, pid: Option<u32>) {
        let mut inner = self.lock();
        inner.expected.insert(name.to_owned(), pid);
        if let Some(pid) = pid {
            // Still down after a failed start: restore's start is ours too.
            inner.down_by_us.remove(name);
            inner
                .started
                .entry(name.to_owned())
                .or_default()
                .insert(pid);
        }
        if let Some(last) = inner
            .restarts
            .iter_mut()
            .rev()
            .find(|r| r.name == name && r.started.is_none())
        {
            last.started = pid;
        }
    }

    /// `restore` took the stack from `before` to `after`: each process it
    /// started is recorded; one that no fault of ours had killed is a
    /// finding. Returns the names it started.
    pub fn restored(&self, before: &Pids, after: &Pids) -> Vec<String> {
        let mut inner = self.lock();
        let mut names = vec![];
        for (name, pid) in after {
            let was = before.get(name).copied().flatten();
            if *pid == was {
                continue;
            }
            names.push(name.clone());
            if !inner.down_by_us.remove(name) {
                inner.restored_unasked.push(name.clone());
            }
            inner.expected.insert(name.clone(), *pid);
            if let Some(pid) = pid {
                inner.started.entry(name.clone()).or_default().insert(*pid);
            }
            inner.restarts.push(Restart {
                name: name.clone(),
                killed: was,
                started: *pid,
                cause: Cause::Restore,
            });
        }
        names
    }

    /// True when `name` going from `from` to `to` is ours: unchanged, or
    /// `to` is a pid we started for it (possibly after several restarts).
    pub fn explains(&self, name: &str, from: Option<u32>, to: Option<u32>) -> bool {
        if from == to {
            return true;
        }
        let inner = self.lock();
        to.is_some_and(|pid| inner.started.get(name).is_some_and(|s| s.contains(&pid)))
    }

    pub fn restarts(&self) -> Vec<Restart> {
        self.lock().restarts.clone()
    }

    pub fn crashes(&self) -> Vec<Crash> {
        self.lock().crashes.clone()
    }

    /// The run's findings: every crash, and every process `restore` had to
    /// start that no fault of ours killed.
    pub fn findings(&self) -> Vec<String> {
        let inner = self.lock();
        let crashes = inner.crashes.iter().map(ToString::to_string);
        let unasked = inner.restored_unasked.iter().map(|name| {
            format!("scripts/faults restore had to start {name}, which no fault of ours killed")
        });
        crashes.chain(unasked).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pids(list: &[(&str, Option<u32>)]) -> Pids {
        list.iter().map(|(n, p)| ((*n).to_owned(), *p)).collect()
    }

    #[test]
    fn the_script_output_parses() {
        let parsed = parse_pids("app-audit 12\nkafka -\n\n").expect("pids");
        assert_eq!(parsed, pids(&[("app-audit", Some(12)), ("kafka", None)]));
        assert!(parse_pids("").is_err());
        assert!(parse_pids("app-audit twelve").is_err());
        assert!(parse_pids("app-audit").is_err());
    }

    #[test]
    fn our_kill_and_start_are_no_crash() {
        let log = ProcessLog::default();
        log.begin(pids(&[("app-audit", Some(10)), ("kafka", Some(20))]));
        log.killed("app-audit", Some(10));
        // Down between our kill and our start: not a crash.
        assert!(
            log.observe(&pids(&[("app-audit", None), ("kafka", Some(20))]), "mid")
                .is_empty()
        );
        log.started("app-audit", Some(11));
        let now = pids(&[("app-audit", Some(11)), ("kafka", Some(20))]);
        assert!(log.observe(&now, "after").is_empty());
        assert!(log.findings().is_empty());
        assert!(log.explains("app-audit", Some(10), Some(11)));
        assert!(log.explains("kafka", Some(20), Some(20)));
        let restarts = log.restarts();
        assert_eq!(restarts.len(), 1);
        assert_eq!(
            (restarts[0].killed, restarts[0].started),
            (Some(10), Some(11))
        );
    }

    #[test]
    fn a_pid_change_without_our_kill_is_a_crash_reported_once() {
        let log = ProcessLog::default();
        log.begin(pids(&[("app-audit", Some(10)), ("daprd-audit", Some(30))]));
        // audit aborted (no panic line), someone restarted it; daprd died.
        let now = pids(&[("app-audit", Some(12)), ("daprd-audit", None)]);
        let crashes = log.observe(&now, "before fault 2 (kafka)");
        assert_eq!(crashes.len(), 2);
        assert!(
            crashes[0]
                .to_string()
                .contains("app-audit changed pid 10 → 12")
        );
        assert!(
            crashes[1]
                .to_string()
                .contains("daprd-audit (pid 30) is gone")
        );
        assert!(log.observe(&now, "later").is_empty(), "reported once");
        assert_eq!(log.findings().len(), 2);
        assert!(!log.explains("app-audit", Some(10), Some(12)));
    }

    #[test]
    fn restore_reports_what_it_started_and_flags_what_we_did_not_kill() {
        let log = ProcessLog::default();
        log.begin(pids(&[("app-audit", Some(10)), ("scheduler", Some(40))]));
        // Our kill of audit whose start failed; the scheduler crashed.
        log.killed("app-audit", Some(10));
        let before = pids(&[("app-audit", None), ("scheduler", None)]);
        let crashes = log.observe(&before, "before restore");
        assert_eq!(crashes.len(), 1);
        assert_eq!(crashes[0].name, "scheduler");
        let after = pids(&[("app-audit", Some(15)), ("scheduler", Some(41))]);
        let started = log.restored(&before, &after);
        assert_eq!(started, ["app-audit", "scheduler"]);
        let findings = log.findings();
        assert_eq!(findings.len(), 2, "{findings:?}");
        assert!(findings[1].contains("restore had to start scheduler"));
        assert!(log.explains("app-audit", Some(10), Some(15)));
        assert!(log.observe(&after, "at the end").is_empty());
    }
}
