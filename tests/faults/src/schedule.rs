//! Which faults a run injects, in which order: one at a time, a random
//! order drawn from the printed seed, so `--seed N` replays a run's faults
//! exactly.
//!
//! - short (CI): one function kill, one daprd kill and one shared kind,
//!   rotated by the seed over Kafka, PostgreSQL, the scheduler and the
//!   audit stall ([`short_infra`]), shuffled;
//! - full: every kind [`FULL_ROUNDS`] times, each round shuffled on its
//!   own so every kind recurs across the whole run.

use crate::faults::{Class, Fault};
use crate::rng::Rng;

/// How many times the full run injects each kind.
pub const FULL_ROUNDS: usize = 3;

/// The run's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Short,
    Full,
}

impl Mode {
    pub fn flag(self) -> &'static str {
        match self {
            Mode::Short => "--short",
            Mode::Full => "--full",
        }
    }
}

/// The faults of a run with `seed`, keeping only the kinds `allowed`
/// admits (a development run on a shared stack leaves the shared ones
/// out). A short run whose class has no allowed kind skips that class.
pub fn plan(mode: Mode, seed: u64, allowed: impl Fn(Fault) -> bool) -> Vec<Fault> {
    let mut rng = Rng::derive(seed, "schedule");
    let kinds: Vec<Fault> = Fault::all().into_iter().filter(|f| allowed(*f)).collect();
    match mode {
        Mode::Short => short(&mut rng, seed, &kinds),
        Mode::Full => full(&mut rng, &kinds),
    }
}

/// The shared kinds a short run rotates through, one per run: seed `s`
/// takes the `s mod 4`-th admitted one, so consecutive seeds cover all
/// four. The stall fits a short run: its 60 s falls inside the 180 s in
/// which faults are injected anyway (`run.rs`), in place of extra kills.
pub const SHORT_INFRA: [Fault; 4] = [
    Fault::Kafka,
    Fault::Postgres,
    Fault::Scheduler,
    Fault::AuditDbStall,
];

/// The shared kind of a short run with `seed` among those admitted.
pub fn short_infra(seed: u64, kinds: &[Fault]) -> Option<Fault> {
    let admitted: Vec<Fault> = SHORT_INFRA
        .into_iter()
        .filter(|f| kinds.contains(f))
        .collect();
    let n = u64::try_from(admitted.len()).ok().filter(|n| *n > 0)?;
    admitted.get(usize::try_from(seed % n).ok()?).copied()
}

fn short(rng: &mut Rng, seed: u64, kinds: &[Fault]) -> Vec<Fault> {
    let of = |class: Class| -> Vec<Fault> {
        kinds
            .iter()
            .copied()
            .filter(|f| f.class() == class)
            .collect()
    };
    let mut picked: Vec<Fault> = [of(Class::Function), of(Class::Sidecar)]
        .iter()
        .filter_map(|group| rng.pick(group).copied())
        .collect();
    picked.extend(short_infra(seed, kinds));
    rng.shuffle(&mut picked);
    picked
}

fn full(rng: &mut Rng, kinds: &[Fault]) -> Vec<Fault> {
    let mut all = Vec::with_capacity(kinds.len() * FULL_ROUNDS);
    for _ in 0..FULL_ROUNDS {
        let mut round = kinds.to_vec();
        rng.shuffle(&mut round);
        // No kind twice in a row across rounds: a second kill of a process
        // that just came back tests the same thing twice.
        if round.len() > 1 && all.last() == round.first() {
            round.swap(0, 1);
        }
        all.extend(round);
    }
    all
}

/// Every admitted kind once, shuffled: a run aimed at some kinds
/// (`--each --only infra`).
pub fn each(seed: u64, allowed: impl Fn(Fault) -> bool) -> Vec<Fault> {
    let mut kinds: Vec<Fault> = Fault::all().into_iter().filter(|f| allowed(*f)).collect();
    Rng::derive(seed, "schedule").shuffle(&mut kinds);
    kinds
}

/// The faults after the plan, for as long as a workload still drives:
/// endless shuffled rounds from their own stream of the seed, so a replay
/// draws the same ones in the same order. A short run repeats only the
/// kills of one process (functions and daprds); a full run every kind.
pub fn extra(
    mode: Mode,
    seed: u64,
    allowed: impl Fn(Fault) -> bool,
) -> impl Iterator<Item = Fault> {
    let mut rng = Rng::derive(seed, "extra");
    let kinds: Vec<Fault> = Fault::all()
        .into_iter()
        .filter(|f| allowed(*f) && (mode == Mode::Full || !f.shared()))
        .collect();
    let mut last = None;
    std::iter::from_fn(move || {
        let mut round = kinds.clone();
        rng.shuffle(&mut round);
        if round.len() > 1 && last == round.first().copied() {
            round.swap(0, 1);
        }
        last = round.last().copied();
        (!round.is_empty()).then_some(round)
    })
    .flatten()
}

/// A seed when none is given: the clock's nanoseconds, mixed.
pub fn fresh_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    Rng::new(nanos ^ u64::from(std::process::id())).next_u64() >> 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn everything(_: Fault) -> bool {
        true
    }

    proptest! {
        #[test]
        fn the_same_seed_replays_the_same_faults(seed: u64) {
            prop_assert_eq!(plan(Mode::Full, seed, everything), plan(Mode::Full, seed, everything));
            prop_assert_eq!(plan(Mode::Short, seed, everything), plan(Mode::Short, seed, everything));
        }

        #[test]
        fn the_full_run_covers_every_kind_each_round(seed: u64) {
            let faults = plan(Mode::Full, seed, everything);
            let mut counts: HashMap<Fault, usize> = HashMap::new();
            for f in &faults {
                *counts.entry(*f).or_default() += 1;
            }
            prop_assert_eq!(counts.len(), Fault::all().len());
            prop_assert!(counts.values().all(|n| *n == FULL_ROUNDS));
            prop_assert!(faults.windows(2).all(|w| w[0] != w[1]));
        }

        #[test]
        fn the_short_run_has_a_function_a_daprd_and_a_shared_kind(seed: u64) {
            let faults = plan(Mode::Short, seed, everything);
            prop_assert_eq!(faults.len(), 3);
            prop_assert!(faults.iter().any(|f| f.class() == Class::Function));
            prop_assert!(faults.iter().any(|f| f.class() == Class::Sidecar));
            prop_assert_eq!(faults.iter().filter(|f| f.shared()).count(), 1);
        }

        #[test]
        fn a_filter_leaves_out_what_it_refuses(seed: u64) {
            let local = |f: Fault| !f.shared();
            let short = plan(Mode::Short, seed, local);
            prop_assert_eq!(short.len(), 2);
            prop_assert!(plan(Mode::Full, seed, local).iter().all(|f| !f.shared()));
        }
    }

    #[test]
    fn consecutive_short_runs_rotate_through_every_shared_kind() {
        let shared = |seed: u64| -> Vec<Fault> {
            plan(Mode::Short, seed, everything)
                .into_iter()
                .filter(|f| f.shared())
                .collect()
        };
        let kinds: std::collections::BTreeSet<Fault> = (100..104).flat_map(shared).collect();
        assert_eq!(kinds.len(), 4, "{kinds:?}");
        assert!(kinds.contains(&Fault::Scheduler) && kinds.contains(&Fault::AuditDbStall));
        // With some kinds left out, the rotation runs over the rest.
        let no_stall = |f: Fault| f != Fault::AuditDbStall;
        let three: std::collections::BTreeSet<Fault> = (0..3)
            .flat_map(|seed| plan(Mode::Short, seed, no_stall))
            .filter(|f| f.shared())
            .collect();
        assert_eq!(three.len(), 3, "{three:?}");
        assert_eq!(short_infra(5, &[]), None);
    }

    #[test]
    fn extra_faults_replay_and_stay_local_in_a_short_run() {
        let a: Vec<Fault> = extra(Mode::Short, 9, everything).take(40).collect();
        let b: Vec<Fault> = extra(Mode::Short, 9, everything).take(40).collect();
        assert_eq!(a, b);
        assert!(a.iter().all(|f| !f.shared()));
        assert!(a.windows(2).all(|w| w[0] != w[1]));
        let full: Vec<Fault> = extra(Mode::Full, 9, everything).take(28).collect();
        assert!(full.contains(&Fault::Kafka) && full.contains(&Fault::AuditDbStall));
        assert_eq!(extra(Mode::Short, 9, |f: Fault| f.shared()).next(), None);
    }

    #[test]
    fn each_injects_every_admitted_kind_once() {
        let infra = each(5, |f: Fault| f.shared());
        assert_eq!(infra.len(), 4);
        assert_eq!(infra, each(5, |f: Fault| f.shared()));
        assert!(infra.contains(&Fault::Scheduler) && infra.contains(&Fault::AuditDbStall));
    }

    #[test]
    fn different_seeds_give_different_orders() {
        let orders: std::collections::HashSet<Vec<Fault>> = (0..20)
            .map(|seed| plan(Mode::Full, seed, everything))
            .collect();
        assert!(orders.len() > 15, "{}", orders.len());
    }
}
