//! The "lost or duplicated" check: N concurrent task operations against
//! task-api, every outcome recorded, then — with bounded waits for the
//! outbox relay and the audit function — a comparison of what clients were
//! told with the task table, the outbox, the user streams and the audit log.
//! Used by the `verify_ops` tool (10,000 operations), by
//! `tests/tests/ops_no_loss.rs` (300, on every test run) and by the fault
//! suite's task-operation workload (`tests/faults`), which kills processes
//! while the operations run: a lost answer is retried the way a real
//! client would ([`retry`]) and, if still unknown, accepted by the checker
//! as applied once or not at all.

pub mod check;
pub mod db;
pub mod drive;
pub mod plan;
mod report;
pub mod retry;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::sync::Semaphore;

pub use check::{Findings, Scope};
pub use drive::{Outcome, Verdict};
pub use report::Report;

/// One run's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// task-api's base URL; only loopback addresses are accepted.
    pub task_api: String,
    pub database_url: String,
    pub jwt_secret: String,
    /// Operations in all.
    pub ops: usize,
    /// Requests in flight at most.
    pub concurrency: usize,
    pub users: usize,
    /// The bound on each wait (outbox drained, audit caught up).
    pub settle: Duration,
    /// How long one operation's lost answers are retried: a restart of
    /// task-api (or of its database) must fit.
    pub retry_for: Duration,
    /// Spread the operations over a window at an even rate (the fault
    /// suite) instead of sending them as fast as task-api answers.
    pub pace: Option<Pace>,
}

/// An even rate over `window`, with a start jitter drawn from `seed`
/// ([`plan::starts`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    pub window: Duration,
    pub seed: u64,
}

impl Config {
    /// The defaults of the measured target, with the stack's addresses.
    pub fn new(task_api: &str, database_url: &str, jwt_secret: &str) -> Self {
        Self {
            task_api: task_api.trim_end_matches('/').to_owned(),
            database_url: database_url.to_owned(),
            jwt_secret: jwt_secret.to_owned(),
            ops: 10_000,
            concurrency: 32,
            users: 40,
            settle: Duration::from_secs(180),
            retry_for: Duration::from_secs(300),
            pace: None,
        }
    }
}

fn ensure_loopback(url: &str) -> anyhow::Result<()> {
    let parsed = reqwest::Url::parse(url).with_context(|| format!("bad URL {url}"))?;
    let host = parsed.host_str().unwrap_or_default();
    if !matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
        bail!("task-api must be on a loopback address, not {host}");
    }
    Ok(())
}

/// A user token with the claims task-api checks.
fn token(user: &str, secret: &str) -> anyhow::Result<String> {
    Ok(crate::user_token(user, false, secret))
}

/// Operations sent and answered, not yet checked.
pub struct Driven {
    pub run_id: String,
    pub users: Vec<String>,
    pub outcomes: Vec<Outcome>,
    pub ops_time: Duration,
    started: Instant,
}

/// Runs the operations, waits for the events to settle and checks them,
/// for users of its own. An unreachable task-api or database is an error,
/// not a clean report.
pub async fn run(config: &Config) -> anyhow::Result<Report> {
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let users: Vec<String> = (0..config.users)
        .map(|n| format!("ops-{run_id}-{n}"))
        .collect();
    let chains = plan::plan(config.ops, users.len());
    let driven = drive_ops(config, &run_id, users, chains).await?;
    settle(config, driven, Scope::Exclusive).await
}

/// Runs `chains` (from [`plan::plan`], in any order) as `users` (titles
/// and idempotency keys tagged with `run_id`) and records every outcome.
pub async fn drive_ops(
    config: &Config,
    run_id: &str,
    users: Vec<String>,
    chains: Vec<plan::Chain>,
) -> anyhow::Result<Driven> {
    ensure_loopback(&config.task_api)?;
    if config.concurrency == 0 || users.is_empty() {
        bail!("concurrency and users must be at least 1");
    }
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(config.concurrency)
        .timeout(Duration::from_secs(30))
        .build()?;
    wait_healthy(&http, config).await?;
    let tokens = users
        .iter()
        .map(|u| token(u, &config.jwt_secret))
        .collect::<anyhow::Result<_>>()?;
    let target = Arc::new(drive::Target {
        http,
        url: config.task_api.clone(),
        tokens,
        permits: Arc::new(Semaphore::new(config.concurrency)),
        tag: format!("ops-{run_id}"),
        retry_for: config.retry_for,
    });
    let starts = match config.pace {
        Some(pace) => plan::starts(&chains, pace.window, pace.seed),
        None => Vec::new(),
    };
    let started = Instant::now();
    let outcomes = drive::run(target, chains, starts, 2 * config.concurrency).await;
    Ok(Driven {
        run_id: run_id.to_owned(),
        users,
        outcomes,
        ops_time: started.elapsed(),
        started,
    })
}

/// Waits until task-api answers `/healthz` (a fault may have it down as a
/// run starts), for at most `config.retry_for`.
async fn wait_healthy(http: &reqwest::Client, config: &Config) -> anyhow::Result<()> {
    let deadline = Instant::now() + config.retry_for;
    loop {
        let answer = http
            .get(format!("{}/healthz", config.task_api))
            .send()
            .await
            .and_then(|r| r.error_for_status());
        match answer {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                return Err(e)
                    .with_context(|| format!("task-api at {} is not healthy", config.task_api));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// Waits (bounded) for the relay and the audit function to catch up, then
/// checks what `driven` did against the database.
pub async fn settle(config: &Config, driven: Driven, scope: Scope) -> anyhow::Result<Report> {
    let db = db::connect(&config.database_url).await?;
    let users = &driven.users;
    let known = driven
        .outcomes
        .iter()
        .filter(|o| o.verdict == Verdict::Changed)
        .count() as i64;
    let deadline = tokio::time::Instant::now() + config.settle;
    let published = db::wait_published(&db, users, 2 * known, deadline).await?;
    let published_after = driven.started.elapsed();
    let deadline = tokio::time::Instant::now() + config.settle;
    let audited = db::wait_audited(&db, users, deadline).await?;
    let audited_after = driven.started.elapsed();

    // Other workloads (and the recurring function) may still be adding
    // events for the users: a row made after the count above is not yet
    // audited, so the snapshot is retaken until it shows none unaudited.
    let mut snapshot = db::snapshot(&db, users).await?;
    while db::unaudited(&snapshot) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        snapshot = db::snapshot(&db, users).await?;
    }
    let findings = check::check(&driven.outcomes, users, &snapshot, scope);
    Ok(Report::new(report::Parts {
        run_id: driven.run_id,
        config: config.clone(),
        outcomes: driven.outcomes,
        snapshot,
        findings,
        ops_time: driven.ops_time,
        published: published.then_some(published_after),
        audited: audited.then_some(audited_after),
    }))
}
