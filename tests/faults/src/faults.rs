//! The fault kinds and their injection: SIGKILL of a function, of its
//! daprd, of the Kafka broker, of the Dapr scheduler, of the PostgreSQL
//! postmaster, and a 60 s stall of audit's table. Each kill is followed by
//! a restart from the binaries already built (`scripts/faults start NAME`,
//! which uses scripts/dev's own start functions; never a build), and the
//! recovery is measured from the fault's start: when every process answers
//! again (`ready`), and when a probe change made after that is seen
//! downstream (`recovered`, see [`crate::probe`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::Env;
use crate::probe::{Probe, ProbeKind};
use crate::procs::{Crash, Pids, parse_pids};

/// The functions of the stack (scripts/lib/stack.sh's FUNCTION_TABLE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Function {
    TaskApi,
    Audit,
    Recurring,
    Notification,
    SyncGateway,
}

impl Function {
    pub const ALL: [Function; 5] = [
        Function::TaskApi,
        Function::Audit,
        Function::Recurring,
        Function::Notification,
        Function::SyncGateway,
    ];

    /// The name scripts/dev uses (app-NAME, daprd-NAME).
    pub fn name(self) -> &'static str {
        match self {
            Function::TaskApi => "task-api",
            Function::Audit => "audit",
            Function::Recurring => "recurring",
            Function::Notification => "notification",
            Function::SyncGateway => "sync-gateway",
        }
    }
}

/// One fault the suite injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// SIGKILL of a function's process.
    App(Function),
    /// SIGKILL of a function's daprd.
    Sidecar(Function),
    /// SIGKILL of the Kafka broker (KRaft, one node).
    Kafka,
    /// SIGKILL of the Dapr scheduler (embedded etcd).
    Scheduler,
    /// SIGKILL of the PostgreSQL postmaster, then a start (crash recovery).
    Postgres,
    /// A session holds a SHARE lock on `audit_logs` for the stall: every
    /// INSERT of audit waits (SHARE conflicts with the ROW EXCLUSIVE an
    /// INSERT takes) while reads go on, so only that consumer stalls.
    AuditDbStall,
}

/// The broad class of a fault, for the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Function,
    Sidecar,
    Infra,
    Stall,
}

impl Fault {
    /// Every fault kind, in a fixed order.
    pub fn all() -> Vec<Fault> {
        let mut all: Vec<Fault> = Function::ALL.iter().map(|f| Fault::App(*f)).collect();
        all.extend(Function::ALL.iter().map(|f| Fault::Sidecar(*f)));
        all.extend([
            Fault::Kafka,
            Fault::Scheduler,
            Fault::Postgres,
            Fault::AuditDbStall,
        ]);
        all
    }

    /// The process name in scripts/dev's pid files (`app-audit`,
    /// `daprd-audit`, `kafka`, `scheduler`, `postgres`), or `audit-db-stall`.
    pub fn label(self) -> String {
        match self {
            Fault::App(f) => format!("app-{}", f.name()),
            Fault::Sidecar(f) => format!("daprd-{}", f.name()),
            Fault::Kafka => "kafka".into(),
            Fault::Scheduler => "scheduler".into(),
            Fault::Postgres => "postgres".into(),
            Fault::AuditDbStall => "audit-db-stall".into(),
        }
    }

    /// The fault whose [`Fault::label`] is `label`.
    pub fn parse(label: &str) -> Option<Fault> {
        Fault::all().into_iter().find(|f| f.label() == label)
    }

    pub fn class(self) -> Class {
        match self {
            Fault::App(_) => Class::Function,
            Fault::Sidecar(_) => Class::Sidecar,
            Fault::Kafka | Fault::Scheduler | Fault::Postgres => Class::Infra,
            Fault::AuditDbStall => Class::Stall,
        }
    }

    /// True for the faults every user of the stack feels (the broker, the
    /// scheduler, the database, audit's table), as opposed to one process.
    pub fn shared(self) -> bool {
        matches!(self.class(), Class::Infra | Class::Stall)
    }

    /// The probe whose downstream effect proves this fault recovered: a
    /// completion's successor for recurring, a reminder's mail for
    /// notification and the scheduler (its jobs fire reminders), else a
    /// change seen by audit and the gateway.
    fn probe(self) -> ProbeKind {
        match self {
            Fault::App(Function::Recurring) | Fault::Sidecar(Function::Recurring) => {
                ProbeKind::Recurring
            }
            Fault::App(Function::Notification)
            | Fault::Sidecar(Function::Notification)
            | Fault::Scheduler => ProbeKind::Reminder,
            _ => ProbeKind::Pipeline,
        }
    }
}

/// What one injection did.
#[derive(Debug, Clone)]
pub struct Injection {
    pub fault: Fault,
    /// The workloads still driving when the fault started (none: the
    /// fault hit no load).
    pub driving: Vec<String>,
    /// From the fault's start until every process answered again.
    pub ready: Option<Duration>,
    /// From the fault's start until the probe change was seen downstream.
    pub recovered: Option<Duration>,
    /// What went wrong (a kill, a start, a probe that never arrived).
    pub problems: Vec<String>,
}

impl Injection {
    /// True if any workload was driving when the fault started.
    pub fn under_load(&self) -> bool {
        !self.driving.is_empty()
    }

    /// True if `workload` was driving when the fault started.
    pub fn hit(&self, workload: &str) -> bool {
        self.driving.iter().any(|w| w == workload)
    }
}

/// Injects faults into the running stack and restores it.
#[derive(Debug)]
pub struct Injector {
    env: Arc<Env>,
    probe: Probe,
    /// `scripts/faults`, whose `kill`, `start` and `restore` commands use
    /// the stack's pid files and start functions.
    script: PathBuf,
    /// How long the audit stall holds its lock.
    pub stall: Duration,
    /// The bound on each recovery; longer is a failure.
    pub recover_within: Duration,
}

impl Injector {
    pub fn new(env: Arc<Env>) -> Injector {
        Injector {
            script: env.dev_script.with_file_name("faults"),
            probe: Probe::new(env.clone()),
            env,
            stall: Duration::from_secs(60),
            recover_within: Duration::from_secs(240),
        }
    }

    /// Injects `fault`, restarts what it killed and measures the recovery.
    /// `driving`: the workloads driving as it starts.
    pub async fn inject(&self, fault: Fault, driving: Vec<String>) -> Injection {
        let mut injection = Injection {
            fault,
            driving,
            ready: None,
            recovered: None,
            problems: vec![],
        };
        let start = Instant::now();
        // A process that died since the last look is a crash, not ours.
        if let Err(problem) = self.look(&format!("before {}", fault.label())).await {
            injection.problems.push(problem);
        }
        if let Err(problem) = self.disrupt(fault).await {
            injection.problems.push(problem);
        }
        match self.wait_healthy(start + self.recover_within).await {
            Ok(()) => injection.ready = Some(start.elapsed()),
            Err(problem) => {
                injection.problems.push(problem);
                return injection;
            }
        }
        let left = self.recover_within.saturating_sub(start.elapsed());
        match self.probe.run(fault.probe(), left).await {
            Ok(()) => injection.recovered = Some(start.elapsed()),
            Err(problem) => injection
                .problems
                .push(format!("not recovered within {left:?}: {problem}")),
        }
        injection
    }

    /// The fault itself: a kill and a start (each pid recorded in
    /// `env.processes`), or the stall.
    async fn disrupt(&self, fault: Fault) -> Result<(), String> {
        if fault == Fault::AuditDbStall {
            return self.stall_audit().await;
        }
        let label = fault.label();
        let log = &self.env.processes;
        let before = self.pids().await?;
        self.script(&["kill", &label]).await?;
        log.killed(&label, before.get(&label).copied().flatten());
        let started = self.script(&["start", &label]).await;
        let after = self.pids().await?;
        log.started(&label, after.get(&label).copied().flatten());
        started?;
        // Another process that died with this one is a crash.
        log_crashes(&log.observe(&after, &format!("after {label}")));
        Ok(())
    }

    /// Holds a SHARE lock on audit_logs for [`Injector::stall`], and shows
    /// that it stalled audit: a witness change made while the lock is held
    /// must be published but not audited before the release, and audited
    /// after it. The lock goes with the session, so a crash of this process
    /// ends the stall.
    async fn stall_audit(&self) -> Result<(), String> {
        let db = self.env.db().await.map_err(|e| format!("{e:#}"))?;
        // Our own session has no statement timeout; the lock wait is bounded
        // so a long writer cannot hold the stall back indefinitely.
        db.batch_execute(
            "SET statement_timeout = 0; SET lock_timeout = '15s';
             BEGIN; LOCK TABLE audit_logs IN SHARE MODE",
        )
        .await
        .map_err(|e| format!("could not lock audit_logs: {e}"))?;
        let release = Instant::now() + self.stall;
        let witness = self.probe.create_task("fault probe (stall)", release).await;
        tokio::time::sleep_until(release).await;
        let during = match &witness {
            Ok(id) => self.probe.seen(id).await,
            Err(e) => Err(format!("the witness change was not made: {e}")),
        };
        db.batch_execute("ROLLBACK")
            .await
            .map_err(|e| format!("could not release audit_logs: {e}"))?;
        let audited_after = match &witness {
            Ok(id) => self
                .probe
                .audited(id, Instant::now() + self.recover_within)
                .await
                .is_ok(),
            Err(_) => false,
        };
        stall_verdict(during, audited_after, self.stall)
    }

    /// Starts whatever is down (never a build) and checks `scripts/dev
    /// status`: the end of every run, and after a failed injection. A
    /// process found down that no fault of ours killed is a crash; returns
    /// what restore had to start.
    pub async fn restore(&self) -> Result<Vec<String>, String> {
        let log = &self.env.processes;
        let before = self.pids().await?;
        log_crashes(&log.observe(&before, "before restore"));
        let restore = self.script(&["restore"]).await;
        // What it started is recorded even when it failed half-way.
        let after = self.pids().await?;
        let started = log.restored(&before, &after);
        restore?;
        let status = self.dev(&["status"]).await?;
        let down: Vec<&str> = status.lines().filter(|l| l.contains(" down")).collect();
        if !down.is_empty() {
            return Err(format!("still down after restore: {}", down.join("; ")));
        }
        self.wait_healthy(Instant::now() + self.recover_within)
            .await?;
        Ok(started)
    }

    /// Every process's pid now (`scripts/faults pids`).
    pub async fn pids(&self) -> Result<Pids, String> {
        parse_pids(&self.script(&["pids"]).await?)
    }

    /// Compares the pids now with the record: what changed without us is
    /// a crash (recorded in `env.processes`, printed here).
    pub async fn look(&self, when: &str) -> Result<(), String> {
        let now = self.pids().await?;
        log_crashes(&self.env.processes.observe(&now, when));
        Ok(())
    }

    /// Polls every function and daprd health endpoint until all answer
    /// 2xx, or `deadline`.
    pub async fn wait_healthy(&self, deadline: Instant) -> Result<(), String> {
        loop {
            let failing = self.unhealthy().await;
            if failing.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("unhealthy: {}", failing.join(", ")));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The health endpoints that do not answer 2xx now.
    async fn unhealthy(&self) -> Vec<String> {
        let env = &self.env;
        let urls = [
            format!("{}/healthz", env.task_api),
            format!("{}/healthz", env.audit),
            format!("{}/healthz", env.recurring),
            format!("{}/healthz", env.notification),
            format!("{}/healthz", env.gateway),
            format!("{}/v1.0/healthz", env.task_api_dapr),
            format!("{}/v1.0/healthz", env.audit_dapr),
            format!("{}/v1.0/healthz", env.recurring_dapr),
            format!("{}/v1.0/healthz", env.notification_dapr),
            format!("{}/v1.0/healthz", env.gateway_dapr),
        ];
        let checks = urls.iter().map(|url| async move {
            let ok = env
                .http
                .get(url)
                .timeout(Duration::from_secs(3))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            (!ok).then(|| url.clone())
        });
        futures::future::join_all(checks)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    async fn script(&self, args: &[&str]) -> Result<String, String> {
        run(&self.script, args).await
    }

    async fn dev(&self, args: &[&str]) -> Result<String, String> {
        run(&self.env.dev_script, args).await
    }
}

fn log_crashes(crashes: &[Crash]) {
    for crash in crashes {
        eprintln!("faults: CRASH: {crash}");
    }
}

/// What the stall's witness change showed just before the release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// Its `task-events` outbox rows were all sent (audit could have had it).
    pub published: bool,
    /// audit_logs held a row for it.
    pub audited: bool,
}

/// The stall held audit back only if the witness change was published
/// during the lock, not audited before the release, and audited after.
pub fn stall_verdict(
    during: Result<Seen, String>,
    audited_after: bool,
    stall: Duration,
) -> Result<(), String> {
    let during = during.map_err(|e| format!("the stall was not shown to stall audit: {e}"))?;
    if during.audited {
        return Err(
            "audit was not stalled: the witness change made during the lock was audited before \
             the release"
                .into(),
        );
    }
    if !during.published {
        return Err(format!(
            "the stall was not shown to stall audit: the witness change's event was not \
             published within the {stall:?} lock"
        ));
    }
    if !audited_after {
        return Err("the witness change made during the stall was never audited after it".into());
    }
    Ok(())
}

/// Runs a project script; its stderr is the error when it fails.
async fn run(path: &PathBuf, args: &[&str]) -> Result<String, String> {
    let output = tokio::process::Command::new(path)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| format!("cannot run {}: {e}", path.display()))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "{} {} failed ({}): {}",
            path.display(),
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_distinct_label_that_parses_back() {
        let all = Fault::all();
        assert_eq!(all.len(), 14);
        let mut labels: Vec<String> = all.iter().map(|f| f.label()).collect();
        for (fault, label) in all.iter().zip(&labels) {
            assert_eq!(Fault::parse(label), Some(*fault));
        }
        labels.sort();
        labels.dedup();
        assert_eq!(labels.len(), 14);
        assert_eq!(
            Fault::parse("daprd-audit"),
            Some(Fault::Sidecar(Function::Audit))
        );
        assert_eq!(Fault::parse("mailpit"), None);
    }

    #[test]
    fn the_stall_passes_only_when_it_held_audit_back() {
        let stall = Duration::from_secs(60);
        let seen = |published, audited| Ok(Seen { published, audited });
        assert_eq!(stall_verdict(seen(true, false), true, stall), Ok(()));
        let early = stall_verdict(seen(true, true), true, stall).expect_err("audited");
        assert!(early.contains("audit was not stalled"), "{early}");
        let unsent = stall_verdict(seen(false, false), true, stall).expect_err("unsent");
        assert!(unsent.contains("not published"), "{unsent}");
        let never = stall_verdict(seen(true, false), false, stall).expect_err("never");
        assert!(never.contains("never audited"), "{never}");
        assert!(stall_verdict(Err("db gone".into()), true, stall).is_err());
    }

    #[test]
    fn an_injection_names_the_workloads_it_hit() {
        let i = Injection {
            fault: Fault::Kafka,
            driving: vec!["ops".into(), "sockets".into()],
            ready: None,
            recovered: None,
            problems: vec![],
        };
        assert!(i.under_load() && i.hit("ops") && !i.hit("recurring"));
    }

    #[test]
    fn only_infrastructure_and_the_stall_are_shared() {
        assert!(Fault::Kafka.shared() && Fault::Postgres.shared() && Fault::Scheduler.shared());
        assert!(Fault::AuditDbStall.shared());
        assert!(!Fault::App(Function::TaskApi).shared());
        assert!(!Fault::Sidecar(Function::SyncGateway).shared());
    }
}
