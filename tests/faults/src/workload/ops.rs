//! The task-operation workload: `scale.ops` creates, updates (some
//! conditional), completes, reopens and deletes over the run's users, sent
//! and checked by `e2e_tests::verify` (the code behind `verify_ops`).
//! While faults are injected, a lost answer is retried the way a real
//! client would (`Idempotency-Key` for creates, `If-Match` for changes) and
//! an outcome that stays unknown is counted, not an error. Once the run is
//! quiet, every accepted change must have exactly one `task-events` row,
//! sequence, stream offset and audit row, a refused one none (its title
//! is on no event, and the audit log holds only outbox events), and an
//! unknown one one or none.

use std::sync::Arc;
use std::time::Duration;

use e2e_tests::verify::{self, Config, Report, Scope, plan};

use crate::{Env, Phase, Rng, Scale, Tally};

pub const NAME: &str = "ops";

/// Requests in flight at most (the 16 connections).
const CONCURRENCY: usize = 16;
/// The bound on each wait once quiet (outbox drained, audit caught up).
const SETTLE: Duration = Duration::from_secs(240);
/// How long one operation's lost answers are retried: longer than any
/// fault keeps task-api or PostgreSQL away (a 60 s stall, a restart).
const RETRY_FOR: Duration = Duration::from_secs(600);

/// Drives the operations, waits for quiet, checks, and tallies.
pub async fn run(env: Arc<Env>, scale: Scale, seed: u64, phase: Phase) -> anyhow::Result<Tally> {
    let mut config = Config::new(&env.task_api, &env.database_url, &env.jwt_secret);
    config.ops = scale.ops;
    config.users = env.users.len();
    config.concurrency = CONCURRENCY;
    config.settle = SETTLE;
    config.retry_for = RETRY_FOR;
    let mut chains = plan::plan(config.ops, env.users.len());
    // The seed decides which chains meet which fault.
    Rng::derive(seed, NAME).shuffle(&mut chains);
    let driven = verify::drive_ops(&config, &env.run_id, env.users.clone(), chains).await;
    phase.driving_done();
    let driven = driven?;
    phase.wait_quiet().await;
    // Other workloads write for the same users: only this one's tasks are
    // compared, and the users' stream offsets.
    let report = verify::settle(&config, driven, Scope::Shared).await?;
    println!("{}", report.markdown());
    Ok(tally(&report))
}

/// The report in the suite's terms.
pub fn tally(report: &Report) -> Tally {
    let f = report.findings();
    let mut t = Tally::new(NAME);
    t.checked = report.ops() as u64;
    t.lost = f.lost as u64;
    t.duplicated = f.duplicated as u64;
    t.unknown = report.unknown as u64;
    // Every unknown operation was retried too; the rest came through.
    t.recovered = report.retried.saturating_sub(report.unknown) as u64;
    t.refused = report.refused as u64;
    let counts = [
        ("gaps in sequences or offsets", f.gaps),
        ("outbox rows never sent", f.unpublished),
        ("mismatched rows", f.mismatched),
        ("wrong answers", report.errors),
        ("operations never sent", report.not_run),
    ];
    for (what, n) in counts {
        if n > 0 {
            t.problems.push(format!("{n} {what}"));
        }
    }
    if !report.settled() {
        t.problems
            .push("the outbox or the audit log did not catch up in time".into());
    }
    t.problems.extend(report.error_lines());
    if !report.passed() {
        t.problems.extend(f.problems.iter().cloned());
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 300 operations on users another workload may share, nothing
    /// injected: everything checked, nothing unknown.
    #[tokio::test]
    #[ignore = "needs the local stack: ./scripts/faults runs the suite"]
    async fn operations_on_shared_users_check_clean() {
        let scale = Scale {
            ops: 300,
            ..Scale::SHORT
        };
        let tally =
            crate::workload::alone(6, move |env, phase| run(env, scale, 3, phase), |_| async {})
                .await;
        assert!(tally.passed(), "{tally:?}");
        assert_eq!((tally.checked, tally.unknown), (300, 0), "{tally:?}");
    }
}
