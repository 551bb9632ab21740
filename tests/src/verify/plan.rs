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
}
