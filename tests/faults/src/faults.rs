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
    /// True if a workload was still driving when the fault started.
    pub under_load: bool,
    /// From the fault's start until every process answered again.
    pub ready: Option<Duration>,
    /// From the fault's start until the probe change was seen downstream.
    pub recovered: Option<Duration>,
    /// What went wrong (a kill, a start, a probe that never arrived).
    pub problems: Vec<String>,
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
    pub async fn inject(&self, fault: Fault, under_load: bool) -> Injection {
        let mut injection = Injection {
            fault,
            under_load,
            ready: None,
            recovered: None,
            problems: vec![],
        };
        let start = Instant::now();
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

    /// The fault itself: a kill and a start, or the stall.
    async fn disrupt(&self, fault: Fault) -> Result<(), String> {
        if fault == Fault::AuditDbStall {
            return self.stall_audit().await;
        }
        let label = fault.label();
        self.script(&["kill", &label]).await?;
        self.script(&["start", &label]).await.map(drop)
    }

    /// Holds a SHARE lock on audit_logs for [`Injector::stall`]. The lock
    /// goes with the session, so a crash of this process ends the stall.
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
        tokio::time::sleep(self.stall).await;
        db.batch_execute("ROLLBACK")
            .await
            .map_err(|e| format!("could not release audit_logs: {e}"))
    }

    /// Starts whatever is down (never a build) and checks `scripts/dev
    /// status`: the end of every run, and after a failed injection.
    pub async fn restore(&self) -> Result<(), String> {
        self.script(&["restore"]).await?;
        let status = self.dev(&["status"]).await?;
        let down: Vec<&str> = status.lines().filter(|l| l.contains(" down")).collect();
        if !down.is_empty() {
            return Err(format!("still down after restore: {}", down.join("; ")));
        }
        self.wait_healthy(Instant::now() + self.recover_within)
            .await
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
    fn only_infrastructure_and_the_stall_are_shared() {
        assert!(Fault::Kafka.shared() && Fault::Postgres.shared() && Fault::Scheduler.shared());
        assert!(Fault::AuditDbStall.shared());
        assert!(!Fault::App(Function::TaskApi).shared());
        assert!(!Fault::Sidecar(Function::SyncGateway).shared());
    }
}
