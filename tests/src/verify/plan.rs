//! The workload: N task operations as chains, one chain per task. A chain's
//! stages run in order and the operations inside a stage run at once, so
//! one task sees concurrent updates and one user sees several chains at a
//! time. The mix is a pure function of the chain's index, so a run is
//! reproducible.

/// One operation on a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// `POST /api/tasks`.
    Create,
    /// `PATCH /api/tasks/{id}` with a title no other operation uses.
    Update,
    /// The same with `If-Match: "1"`: succeeds only if it is the task's
    /// first change after the create, else 412 and no change.
    UpdateIfMatch,
    /// `POST /api/tasks/{id}/complete` (the task is pending).
    Complete,
    /// `POST /api/tasks/{id}/reopen` (the task was just completed).
    Reopen,
    /// `DELETE /api/tasks/{id}`.
    Delete,
}

impl Op {
    pub const ALL: [Op; 6] = [
        Op::Create,
        Op::Update,
        Op::UpdateIfMatch,
        Op::Complete,
        Op::Reopen,
        Op::Delete,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Update => "update",
            Op::UpdateIfMatch => "update If-Match",
            Op::Complete => "complete",
            Op::Reopen => "reopen",
            Op::Delete => "delete",
        }
    }

    /// The `task-events` type a successful `self` emits.
    pub fn event_type(self) -> &'static str {
        match self {
            Op::Create => "com.todo.task.created",
            Op::Update | Op::UpdateIfMatch | Op::Reopen => "com.todo.task.updated",
            Op::Complete => "com.todo.task.completed",
            Op::Delete => "com.todo.task.deleted",
        }
    }
}

/// The operations on one task, for one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub index: usize,
    pub user: usize,
    /// Run in order; the operations of one stage run concurrently.
    pub stages: Vec<Vec<Op>>,
}

impl Chain {
    pub fn ops(&self) -> usize {
        self.stages.iter().map(Vec::len).sum()
    }
}

/// The full shape of chain `j`, before the run's total cuts it.
fn shape(j: usize) -> Vec<Vec<Op>> {
    let mut updates = vec![Op::Update; 1 + j % 4];
    if j.is_multiple_of(5) {
        updates.push(Op::UpdateIfMatch);
    }
    let mut stages = vec![vec![Op::Create], updates];
    let completes = j % 4 != 3;
    if completes {
        stages.push(vec![Op::Complete]);
        if j.is_multiple_of(6) {
            stages.push(vec![Op::Reopen]);
        }
    }
    if j.is_multiple_of(3) {
        stages.push(vec![Op::Delete]);
    }
    stages
}

/// Chains with exactly `ops` operations in all, spread round-robin over
/// `users` users (the last chain is cut short).
pub fn plan(ops: usize, users: usize) -> Vec<Chain> {
    let users = users.max(1);
    let mut chains = Vec::new();
    let mut left = ops;
    let mut j = 0;
    while left > 0 {
        let mut stages = Vec::new();
        for mut stage in shape(j) {
            if left == 0 {
                break;
            }
            stage.truncate(left);
            left -= stage.len();
            stages.push(stage);
        }
        chains.push(Chain {
            index: j,
            user: j % users,
            stages,
        });
        j += 1;
    }
    chains
}

/// When each chain starts, as offsets from the run's start, so the
/// operations spread over `window` at an even rate (`ops / window`) instead
/// of being sent as fast as task-api answers: the fault suite's faults,
/// injected one at a time over minutes, then meet operations all along.
/// Chain `i` owns the slice of `window` its share of the operations gives
/// it and starts at a point of that slice drawn from `seed`, so the starts
/// keep the chains' order, all fall inside `window`, and a seed replays
/// them.
pub fn starts(
    chains: &[Chain],
    window: std::time::Duration,
    seed: u64,
) -> Vec<std::time::Duration> {
    let total = chains.iter().map(Chain::ops).sum::<usize>().max(1) as f64;
    let mut state = seed;
    let mut before = 0usize;
    chains
        .iter()
        .map(|chain| {
            let jitter = unit(&mut state);
            let at = (before as f64 + jitter * chain.ops() as f64) / total;
            before += chain.ops();
            window.mul_f64(at.min(1.0))
        })
        .collect()
}

/// A draw in `[0, 1)` from splitmix64 (Steele, Lea and Flood, 2014): the
/// jitter needs reproducibility, not quality.
fn unit(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_total_and_every_chain_starts_with_a_create() {
        for n in [0, 1, 2, 7, 300, 10_000] {
            let chains = plan(n, 40);
            assert_eq!(chains.iter().map(Chain::ops).sum::<usize>(), n);
            for c in &chains {
                assert_eq!(c.stages[0], vec![Op::Create]);
                assert!(c.stages.iter().all(|s| !s.is_empty()));
            }
        }
    }

    #[test]
    fn the_mix_has_every_operation_and_many_users() {
        let chains = plan(10_000, 40);
        for op in Op::ALL {
            assert!(
                chains
                    .iter()
                    .flat_map(|c| c.stages.iter().flatten())
                    .any(|o| *o == op),
                "{op:?}"
            );
        }
        let users: std::collections::HashSet<_> = chains.iter().map(|c| c.user).collect();
        assert_eq!(users.len(), 40);
    }

    #[test]
    fn reopen_only_after_complete_and_delete_last() {
        for c in plan(5_000, 7) {
            let flat: Vec<Op> = c.stages.iter().flatten().copied().collect();
            if let Some(r) = flat.iter().position(|o| *o == Op::Reopen) {
                assert_eq!(flat[r - 1], Op::Complete);
            }
            if let Some(d) = flat.iter().position(|o| *o == Op::Delete) {
                assert_eq!(d, flat.len() - 1);
            }
        }
    }

    #[test]
    fn starts_spread_the_operations_over_the_window_in_order() {
        let window = std::time::Duration::from_secs(150);
        let chains = plan(1_000, 20);
        let at = starts(&chains, window, 7);
        assert_eq!(at.len(), chains.len());
        assert!(at.windows(2).all(|w| w[0] <= w[1]), "in chain order");
        assert!(at.iter().all(|d| *d < window));
        // An even rate: the first tenth of the operations starts in about
        // the first tenth of the window, the last chain near its end.
        let tenth = chains.iter().scan(0, |n, c| {
            *n += c.ops();
            Some(*n)
        });
        let k = tenth.take_while(|n| *n <= 100).count();
        assert!(at[k] <= window.mul_f64(0.12), "{:?}", at[k]);
        assert!(*at.last().unwrap() >= window.mul_f64(0.98));
        // The seed decides the jitter, and replays it.
        assert_eq!(at, starts(&chains, window, 7));
        assert_ne!(at, starts(&chains, window, 8));
    }
}
