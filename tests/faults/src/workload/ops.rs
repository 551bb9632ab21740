//! The task-operation workload: `scale.ops` creates, updates (some
//! conditional), completes, reopens and deletes over the run's users, sent
//! and checked by `e2e_tests::verify` (the code behind `verify_ops`),
//! spread at an even rate over about as long as faults are injected
//! ([`drive_window`]), so the kills of Kafka, PostgreSQL and the stall of
//! audit's database meet operations.
//! While faults are injected, a lost answer is retried the way a real
//! client would (`Idempotency-Key` for creates, `If-Match` for changes) and
//! an outcome that stays unknown is counted, not an error. Once the run is
//! quiet, every accepted change must have exactly one `task-events` row,
//! sequence, stream offset and audit row, a refused one none (its title
//! is on no event, and the audit log holds only outbox events), and an
//! unknown one one or none. Every other `task-events` row of the run's
//! users (`faults-<run id>-…`: recurring successors, reminder tasks, the
//! sockets' changes, the hostile victim, the probe) must have exactly one
//! audit row too, and every audit row of theirs an outbox row.

use std::sync::Arc;
use std::time::Duration;

use e2e_tests::verify::{self, Config, Pace, Report, Scope, plan};

use crate::{Env, Phase, Rng, Scale, Tally};

pub const NAME: &str = "ops";

/// Requests in flight at most (the 16 connections).
const CONCURRENCY: usize = 16;
/// The bound on each wait once quiet (outbox drained, audit caught up).
const SETTLE: Duration = Duration::from_secs(240);
/// How long one operation's lost answers are retried: longer than any
/// fault keeps task-api or PostgreSQL away (a 60 s stall, a restart).
const RETRY_FOR: Duration = Duration::from_secs(600);

/// How long the short run (CI) sends its operations: the 180 s in which
/// `run.rs` injects faults (`Options::fault_window`) less a margin, about
/// as long as recurring and reminders drive (~2 min), so its few faults
/// (a function, a daprd, Kafka or PostgreSQL) each meet operations.
const SHORT_DRIVE: Duration = Duration::from_secs(150);
/// The same for the full run: inside its 1,800 s window and about as long
/// as recurring drives there (~18 min), so the 42 faults, 15 s apart plus
/// each one's recovery, meet operations from the first to the last.
const FULL_DRIVE: Duration = Duration::from_secs(1_200);

/// The window `ops` operations are spread over: the full run's for its
/// 10,000, the short run's rate (1,000 in 150 s) below that, so a smaller
/// run (a stack test) is over sooner.
pub fn drive_window(ops: usize) -> Duration {
    if ops >= Scale::FULL.ops {
        return FULL_DRIVE;
    }
    SHORT_DRIVE
        .mul_f64(ops as f64 / Scale::SHORT.ops as f64)
        .min(FULL_DRIVE)
}

/// Drives the operations, waits for quiet, checks, and tallies.
pub async fn run(env: Arc<Env>, scale: Scale, seed: u64, phase: Phase) -> anyhow::Result<Tally> {
    let mut config = Config::new(&env.task_api, &env.database_url, &env.jwt_secret);
    config.ops = scale.ops;
    config.users = env.users.len();
    config.concurrency = CONCURRENCY;
    config.settle = SETTLE;
    config.retry_for = RETRY_FOR;
    config.pace = Some(Pace {
        window: drive_window(scale.ops),
        seed: Rng::derive(seed, "ops-pace").next_u64(),
    });
    let mut chains = plan::plan(config.ops, env.users.len());
    // The seed decides which chains meet which fault.
    Rng::derive(seed, NAME).shuffle(&mut chains);
    let driven = verify::drive_ops(&config, &env.run_id, env.users.clone(), chains).await;
    phase.driving_done();
    let mut driven = driven?;
    phase.wait_quiet().await;
    // Every user of the run (the hostile victim, the orchestrator's probe
    // beside `env.users`) has each of its events audited exactly once;
    // appended, so the chains' user indices stay as they were.
    let db = verify::db::connect(&env.database_url).await?;
    let prefix = format!("faults-{}-", env.run_id);
    for user in verify::db::users_with_prefix(&db, &prefix).await? {
        if !driven.users.contains(&user) {
            driven.users.push(user);
        }
    }
    // Other workloads write for the same users: only this one's tasks are
    // compared, plus the users' stream offsets and audit rows.
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

    #[test]
    fn the_operations_are_paced_over_each_runs_fault_window() {
        // run.rs injects faults for 180 s (short) and 1,800 s (full)
        // while a workload drives.
        let short = drive_window(Scale::SHORT.ops);
        let full = drive_window(Scale::FULL.ops);
        assert!(short >= Duration::from_secs(120) && short < Duration::from_secs(180));
        assert!(full >= Duration::from_secs(1_000) && full < Duration::from_secs(1_800));
        assert!(drive_window(300) < short);
        // The pace reaches the starts: the last chain starts late in the
        // window, not at once.
        let chains = plan::plan(Scale::SHORT.ops, Scale::SHORT.users);
        let at = plan::starts(&chains, short, 1);
        assert!(*at.last().unwrap() > short.mul_f64(0.9));
    }

    proptest::proptest! {
        /// Whatever the size and seed: one start per chain, in chain
        /// order, inside the window, and no chain later than the share of
        /// the window the operations before and with it make (the rate
        /// stays even, never bunched at the end).
        #[test]
        fn starts_keep_an_even_rate(ops in 1usize..3_000, users in 1usize..50, seed: u64) {
            let window = drive_window(ops);
            let mut chains = plan::plan(ops, users);
            Rng::derive(seed, NAME).shuffle(&mut chains);
            let at = plan::starts(&chains, window, seed);
            proptest::prop_assert_eq!(at.len(), chains.len());
            proptest::prop_assert!(at.windows(2).all(|w| w[0] <= w[1]));
            let mut through = 0;
            for (chain, start) in chains.iter().zip(&at) {
                let before = window.mul_f64(through as f64 / ops as f64);
                through += chain.ops();
                let after = window.mul_f64(through as f64 / ops as f64);
                proptest::prop_assert!(*start >= before && *start <= after);
            }
        }
    }

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
