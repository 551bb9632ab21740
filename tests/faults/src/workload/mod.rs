//! The workloads that drive the stack while faults are injected. Each
//! exposes `pub async fn run(env: Arc<Env>, scale: &Scale, seed: u64, phase:
//! Phase) -> anyhow::Result<Tally>` (see `crate::registry`, which calls them).
pub mod recurring;
pub mod reminders;
pub mod sockets;
