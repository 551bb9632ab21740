//! The workloads a run spawns, behind one list so the orchestrator does not
//! name each module's signature. A workload module lands by adding one
//! entry here (and its `pub mod` line in `workload/mod.rs` or `lib.rs`).

use std::sync::Arc;

use futures::future::BoxFuture;

use crate::{Env, Phase, Scale, Tally, hostile, workload};

/// How a workload is started: its environment, the run's scale, the seed
/// and its own phase handle.
pub type Runner = fn(Arc<Env>, Scale, u64, Phase) -> BoxFuture<'static, anyhow::Result<Tally>>;

/// One workload of the suite.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    pub name: &'static str,
    pub run: Runner,
}

/// Every workload that has landed, in spawn order.
pub fn workloads() -> Vec<Workload> {
    vec![
        Workload {
            name: "ops",
            run: |env, scale, seed, phase| Box::pin(workload::ops::run(env, scale, seed, phase)),
        },
        Workload {
            name: "recurring",
            run: |env, scale, seed, phase| {
                Box::pin(workload::recurring::run(env, scale, seed, phase))
            },
        },
        Workload {
            name: "reminders",
            run: |env, scale, seed, phase| {
                Box::pin(workload::reminders::run(env, scale, seed, phase))
            },
        },
        Workload {
            name: "sockets",
            run: |env, scale, seed, phase| {
                Box::pin(workload::sockets::run(env, scale, seed, phase))
            },
        },
        Workload {
            name: "hostile",
            run: |env, scale, seed, phase| Box::pin(hostile::run(env, scale, seed, phase)),
        },
    ]
}
