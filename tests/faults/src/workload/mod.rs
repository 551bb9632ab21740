//! The workloads that drive the stack while faults are injected. Each
//! exposes `pub async fn run(env: Arc<Env>, scale: &Scale, seed: u64, phase:
//! Phase) -> anyhow::Result<Tally>` (see `crate::registry`, which calls them).
pub mod ops;
pub mod recurring;
pub mod reminders;
pub mod sockets;

/// `user`'s calls to the API at `base` (one of `env`'s URLs), each
/// retried through outages.
pub(crate) fn as_user(env: &crate::Env, base: &str, user: &str) -> e2e_tests::retry::UserApi {
    e2e_tests::retry::UserApi {
        http: env.http.clone(),
        base: base.to_owned(),
        token: env.token(user, false),
    }
}

/// Runs one workload alone on the stack with nothing injected (the
/// stack tests of recurring, reminders and sockets): the run turns quiet
/// once the workload has driven its load and `also` (more load beside
/// it) has finished.
#[cfg(test)]
pub(crate) async fn alone<W, A>(
    users: usize,
    workload: impl FnOnce(std::sync::Arc<crate::Env>, crate::Phase) -> W,
    also: impl FnOnce(std::sync::Arc<crate::Env>) -> A,
) -> crate::Tally
where
    W: std::future::Future<Output = anyhow::Result<crate::Tally>> + Send + 'static,
    A: std::future::Future<Output = ()>,
{
    let run_id = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let env =
        std::sync::Arc::new(crate::Env::from_env(&run_id, users).expect("the stack's environment"));
    let phase = crate::Phase::new();
    let running = tokio::spawn(workload(env.clone(), phase.for_workload("alone")));
    also(env).await;
    assert!(
        phase
            .wait_driving_done(std::time::Duration::from_secs(600))
            .await,
        "driving"
    );
    phase.mark_quiet();
    running.await.expect("joined").expect("the workload ran")
}
