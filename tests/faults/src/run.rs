//! One run of the suite: check the stack, spawn every workload, inject the
//! seed's faults one at a time while they drive, restore every process,
//! mark the phase quiet, collect the tallies, run the quiet checks and
//! build the report.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::faults::{Fault, Injection, Injector};
use crate::report::{Report, token_kinds};
use crate::schedule::{self, Mode};
use crate::{Env, Phase, ProcessLog, Scale, Tally, quiet, registry};

/// What a run is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    pub mode: Mode,
    pub seed: u64,
    /// The fault kinds admitted (all when `None`).
    pub only: Option<Vec<Fault>>,
    /// Every admitted kind once instead of the mode's plan.
    pub each: bool,
    /// The command line that replays this run.
    pub replay: String,
}

impl Options {
    pub fn scale(&self) -> Scale {
        match self.mode {
            Mode::Short => Scale::SHORT,
            Mode::Full => Scale::FULL,
        }
    }

    /// The pause after each fault, so the load runs between faults too.
    fn gap(&self) -> Duration {
        match self.mode {
            Mode::Short => Duration::from_secs(5),
            Mode::Full => Duration::from_secs(15),
        }
    }

    /// How long extra faults may start while workloads still drive.
    fn fault_window(&self) -> Duration {
        match self.mode {
            Mode::Short => Duration::from_secs(180),
            Mode::Full => Duration::from_secs(1_800),
        }
    }

    /// The bound on the workloads' own checks once the run is quiet.
    fn collect_within(&self) -> Duration {
        match self.mode {
            Mode::Short => Duration::from_secs(240),
            Mode::Full => Duration::from_secs(720),
        }
    }
}

type Running = Vec<(&'static str, JoinHandle<anyhow::Result<Tally>>)>;

/// Runs the suite. An unreachable or unhealthy stack is an error (the run
/// fails with its reason), never a pass.
pub async fn run(options: &Options) -> anyhow::Result<Report> {
    let started = Instant::now();
    let scale = options.scale();
    let env = Arc::new(Env::from_env(&run_id(), scale.users)?);
    let injector = Injector::new(env.clone());
    // Polled for a while first: on a shared stack someone may be restarting
    // a function right now.
    injector
        .wait_healthy(Instant::now() + Duration::from_secs(60))
        .await
        .map_err(anyhow::Error::msg)
        .context("the stack is not healthy before the run (./scripts/dev status)")?;
    env.check_reachable().await?;
    // Every pid now: a later change no injection of ours explains is a
    // crash (src/procs.rs).
    let at_start = injector
        .pids()
        .await
        .map_err(anyhow::Error::msg)
        .context("reading the stack's pids (scripts/faults pids)")?;
    let down: Vec<&str> = at_start
        .iter()
        .filter(|(_, pid)| pid.is_none())
        .map(|(name, _)| name.as_str())
        .collect();
    if !down.is_empty() {
        bail!(
            "not running before the run: {} (./scripts/dev up starts it)",
            down.join(", ")
        );
    }
    env.processes.begin(at_start);
    let admitted = |f: Fault| options.only.as_ref().is_none_or(|only| only.contains(&f));
    let faults = if options.each {
        schedule::each(options.seed, admitted)
    } else {
        schedule::plan(options.mode, options.seed, admitted)
    };
    say(
        started,
        &format!(
            "run {}: seed {}, {} faults: {}",
            env.run_id,
            options.seed,
            faults.len(),
            faults
                .iter()
                .map(|f| f.label())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    let phase = Phase::new();
    let running = spawn_workloads(&env, scale, options.seed, &phase);
    if running.is_empty() {
        bail!("no workload is registered (tests/faults/src/registry.rs): nothing would be checked");
    }
    // A little load before the first fault.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let extra = schedule::extra(options.mode, options.seed, admitted);
    let plan = Plan {
        planned: &faults,
        extra: Box::new(extra),
        gap: options.gap(),
        window: options.fault_window(),
    };
    let injections = inject_all(&injector, plan, &phase, started).await;
    let mut problems = vec![];
    say(started, "restoring every process");
    let restored = match injector.restore().await {
        Ok(restored) => restored,
        Err(e) => {
            problems.push(format!("restore: {e}"));
            vec![]
        }
    };
    if !restored.is_empty() {
        say(
            started,
            &format!("restore started: {}", restored.join(", ")),
        );
    }
    phase.mark_quiet();
    say(started, "quiet: collecting the workloads' checks");
    let mut tallies = collect(running, options.collect_within()).await;
    let mut users = env.users.clone();
    users.push(format!("faults-{}-probe", env.run_id));
    tallies.push(quiet::outbox_drained(&env, &users, Duration::from_secs(120)).await);
    // Nothing may have crashed while the workloads checked either.
    if let Err(e) = injector.look("at the end").await {
        problems.push(format!("the pids at the end: {e}"));
    }
    tallies.push(processes_tally(&env.processes));
    Ok(Report {
        seed: options.seed,
        mode: options.mode,
        run_id: env.run_id.clone(),
        scale,
        tallies,
        injections,
        problems,
        unexercised: token_kinds(env.jwt_audience.as_deref(), env.jwt_issuer.as_deref()),
        restored,
        replay: options.replay.clone(),
        elapsed: started.elapsed(),
    })
}

/// The crash check as a tally: every process of the stack, each crash (a
/// pid change no injection of ours explains) and each process restore had
/// to start unasked a problem.
fn processes_tally(log: &ProcessLog) -> Tally {
    let mut tally = Tally::new("quiet: processes");
    tally.checked = log.at_start().len() as u64;
    tally.recovered = log
        .restarts()
        .iter()
        .filter(|r| r.started.is_some())
        .count() as u64;
    tally.problems = log.findings();
    tally
}

/// Spawns every registered workload with its own phase handle; a workload
/// that ends (even by failing) stops counting as driving.
fn spawn_workloads(env: &Arc<Env>, scale: Scale, seed: u64, phase: &Phase) -> Running {
    registry::workloads()
        .into_iter()
        .map(|w| {
            let own = phase.for_workload(w.name);
            let ended = Ended(phase.clone(), w.name);
            let future = (w.run)(env.clone(), scale, seed, own);
            let handle = tokio::spawn(async move {
                // Dropped when the task ends, by returning or by a panic.
                let _ended = ended;
                future.await
            });
            (w.name, handle)
        })
        .collect()
}

/// Marks a workload as no longer driving when dropped.
struct Ended(Phase, &'static str);

impl Drop for Ended {
    fn drop(&mut self) {
        self.0.ended(self.1);
    }
}

/// The faults of a run: the planned ones, then extra ones while a
/// workload still drives, within the window.
struct Plan<'a> {
    planned: &'a [Fault],
    extra: Box<dyn Iterator<Item = Fault> + Send + 'a>,
    gap: Duration,
    /// No extra fault starts after this long from the run's start.
    window: Duration,
}

/// Injects the plan's faults one at a time, with its gap between them:
/// every planned one, then extra ones for as long as any workload still
/// drives (so the load never runs its course without faults).
async fn inject_all(
    injector: &Injector,
    plan: Plan<'_>,
    phase: &Phase,
    started: Instant,
) -> Vec<Injection> {
    let Plan {
        planned,
        mut extra,
        gap,
        window,
    } = plan;
    let mut done: Vec<Injection> = Vec::with_capacity(planned.len());
    for n in 0.. {
        let fault = match planned.get(n) {
            Some(fault) => *fault,
            None if phase.any_driving() && started.elapsed() < window => {
                // Not the process that just came back, again.
                let last = done.last().map(|i| i.fault);
                match extra.by_ref().find(|f| Some(*f) != last) {
                    Some(fault) => fault,
                    None => break,
                }
            }
            None => break,
        };
        let driving = phase.still_driving();
        let of = if n < planned.len() {
            format!("/{}", planned.len())
        } else {
            " (extra, a workload still drives)".into()
        };
        say(started, &format!("fault {}{of}: {}", n + 1, fault.label()));
        let injection = injector.inject(fault, driving).await;
        say(started, &describe(&injection));
        if !injection.problems.is_empty() {
            // Whatever the fault left down is started again before the next.
            match injector.restore().await {
                Ok(list) => say(
                    started,
                    &format!(
                        "restore after {} started: {}",
                        fault.label(),
                        list.join(", ")
                    ),
                ),
                Err(e) => say(started, &format!("restore after {}: {e}", fault.label())),
            }
        }
        done.push(injection);
        tokio::time::sleep(gap).await;
    }
    done
}

fn describe(i: &Injection) -> String {
    let secs =
        |d: Option<Duration>| d.map_or("—".to_owned(), |d| format!("{:.1} s", d.as_secs_f64()));
    let mut line = format!(
        "{}: ready {}, recovered {}",
        i.fault.label(),
        secs(i.ready),
        secs(i.recovered)
    );
    if !i.problems.is_empty() {
        line.push_str(&format!(" — {}", i.problems.join("; ")));
    }
    line
}

/// Awaits every workload for at most `within` in all; one that fails,
/// panics or overruns gets a failed tally.
async fn collect(running: Running, within: Duration) -> Vec<Tally> {
    let deadline = Instant::now() + within;
    let mut tallies = Vec::with_capacity(running.len());
    for (name, handle) in running {
        let abort = handle.abort_handle();
        let tally = match tokio::time::timeout_at(deadline, handle).await {
            Ok(Ok(Ok(tally))) => tally,
            Ok(Ok(Err(error))) => Tally::failed(name, format!("{error:#}")),
            Ok(Err(join)) => Tally::failed(name, format!("panicked: {join}")),
            Err(_) => {
                abort.abort();
                Tally::failed(
                    name,
                    format!("still running {within:?} after the quiet phase began"),
                )
            }
        };
        tallies.push(tally);
    }
    tallies
}

/// A run id unique across runs (a replay of a seed gets new users).
fn run_id() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    format!("{millis:x}")
}

fn say(started: Instant, line: &str) {
    eprintln!("faults [{:>6.1} s] {line}", started.elapsed().as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crash_fails_the_processes_tally_and_our_restarts_do_not() {
        let log = ProcessLog::default();
        let pids = |a: Option<u32>, b: Option<u32>| {
            crate::procs::Pids::from([("app-audit".to_owned(), a), ("kafka".to_owned(), b)])
        };
        log.begin(pids(Some(1), Some(2)));
        log.killed("app-audit", Some(1));
        log.started("app-audit", Some(3));
        log.observe(&pids(Some(3), Some(2)), "after app-audit");
        let clean = processes_tally(&log);
        assert!(clean.passed(), "{clean:?}");
        assert_eq!((clean.checked, clean.recovered), (2, 1));
        // Kafka aborted (no panic line anywhere): a failed check.
        log.observe(&pids(Some(3), None), "at the end");
        let crashed = processes_tally(&log);
        assert!(!crashed.passed());
        assert!(
            crashed.problems[0].contains("kafka (pid 2) is gone"),
            "{crashed:?}"
        );
    }

    #[tokio::test]
    async fn a_workload_that_panics_stops_driving_and_fails_its_tally() {
        let phase = Phase::new();
        let own = phase.for_workload("boom");
        let ended = Ended(phase.clone(), "boom");
        let handle: JoinHandle<anyhow::Result<Tally>> = tokio::spawn(async move {
            let _ended = ended;
            let _own = own;
            panic!("a workload bug");
        });
        let tallies = collect(vec![("boom", handle)], Duration::from_secs(5)).await;
        assert!(!phase.any_driving());
        assert_eq!(tallies.len(), 1);
        assert!(!tallies[0].passed());
        assert!(
            tallies[0].problems[0].contains("panicked"),
            "{:?}",
            tallies[0]
        );
    }

    #[tokio::test]
    async fn an_error_or_an_overrun_is_a_failed_tally_not_a_pass() {
        let failing: JoinHandle<anyhow::Result<Tally>> =
            tokio::spawn(async { Err(anyhow::anyhow!("stack gone")) });
        let stuck: JoinHandle<anyhow::Result<Tally>> = tokio::spawn(async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(Tally::new("stuck"))
        });
        let fine: JoinHandle<anyhow::Result<Tally>> = tokio::spawn(async {
            Ok(Tally {
                checked: 3,
                ..Tally::new("fine")
            })
        });
        let running = vec![("failing", failing), ("stuck", stuck), ("fine", fine)];
        let tallies = collect(running, Duration::from_millis(200)).await;
        let names: Vec<&str> = tallies.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["failing", "stuck", "fine"]);
        assert!(tallies[0].problems[0].contains("stack gone"));
        assert!(tallies[1].problems[0].contains("still running"));
        assert!(tallies[2].passed());
    }
}
