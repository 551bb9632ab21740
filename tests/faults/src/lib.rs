//! The fault-injection suite (issue 13): workloads drive the real local
//! stack (task operations, recurring completions, reminders, WebSocket
//! clients, hostile input) while the orchestrator kills its processes one
//! at a time and restarts them; once every process is back and the system
//! is quiet, each workload checks its invariants and the report says what
//! was lost, duplicated, unknown or recovered, and how long each recovery
//! took. `./scripts/faults [--short|--full] [--seed N]` runs it.
//!
//! The shape is shared by three engineers (see `docs/faults.md`): this file
//! holds what every part uses — [`Env`] (where the stack is, the run's
//! users), [`Scale`], [`Phase`] (driving → quiet) and [`Tally`] (what one
//! workload checked).

pub mod cli;
pub mod env;
pub mod faults;
pub mod hostile;
pub mod phase;
pub mod probe;
pub mod procs;
pub mod quiet;
pub mod registry;
pub mod report;
pub mod rng;
pub mod run;
pub mod schedule;
pub mod workload;

use std::fmt;

pub use env::{Env, EnvError};
pub use phase::Phase;
pub use procs::ProcessLog;
pub use rng::Rng;

/// How much load a run drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scale {
    /// Task operations in all (creates, updates, deletes, completions).
    pub ops: usize,
    /// Users the load is spread over (`Env::users`).
    pub users: usize,
    /// WebSocket clients, spread over the users.
    pub sockets: usize,
    /// Recurring tasks completed during the run.
    pub recurring: usize,
    /// Reminders that fall due during the run.
    pub reminders: usize,
    /// Hostile requests and frames sent under the same load.
    pub hostile: usize,
}

impl Scale {
    /// CI's run on every `./scripts/test`: ~1,000 operations, a few faults.
    pub const SHORT: Scale = Scale {
        ops: 1_000,
        users: 20,
        sockets: 20,
        recurring: 20,
        reminders: 20,
        hostile: 100,
    };

    /// The documented full run (issue 13): 10,000 operations, 200 users,
    /// 200 sockets.
    pub const FULL: Scale = Scale {
        ops: 10_000,
        users: 200,
        sockets: 200,
        recurring: 200,
        reminders: 200,
        hostile: 1_000,
    };
}

/// What one workload checked, for the report. All of `lost`/`duplicated`
/// must be 0 for a pass; `problems` (failed checks that are neither) fail
/// the run too.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub name: String,
    /// Outcomes checked (operations, deliveries, events, requests).
    pub checked: u64,
    /// Accepted changes with no effect downstream.
    pub lost: u64,
    /// Effects seen more than once.
    pub duplicated: u64,
    /// Outcomes whose response was lost in a crash; accepted as applied
    /// exactly once or not at all.
    pub unknown: u64,
    /// Requests the stack refused (hostile input, 4xx), none applied.
    pub refused: u64,
    /// Outcomes that met a fault (a connection error, a 5xx, a dropped
    /// socket) and then came through by the client's retry or resume.
    pub recovered: u64,
    /// Deliveries recorded as failed (and dead-lettered), not lost.
    pub failed_recorded: u64,
    /// Failed checks, one line each.
    pub problems: Vec<String>,
    /// Kinds of input the workload should have sent and did not (none
    /// sent), one line each: listed in the report; a `--full` run with
    /// any fails.
    pub not_exercised: Vec<String>,
}

impl Tally {
    /// An empty tally named `name`.
    pub fn new(name: impl Into<String>) -> Tally {
        Tally {
            name: name.into(),
            ..Tally::default()
        }
    }

    /// True when nothing was lost or duplicated and no check failed.
    pub fn passed(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.problems.is_empty()
    }

    /// A tally for a workload that could not finish: its error is a
    /// problem, so the run fails instead of passing unchecked.
    pub fn failed(name: impl Into<String>, error: impl fmt::Display) -> Tally {
        let mut tally = Tally::new(name);
        tally.problems.push(format!("did not finish: {error:#}"));
        tally
    }
}
