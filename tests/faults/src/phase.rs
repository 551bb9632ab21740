//! The run's phases. Every workload gets its own handle
//! ([`Phase::for_workload`]), drives its load and calls
//! [`Phase::driving_done`]; the orchestrator injects faults while any
//! workload is still driving, then restores every process and calls
//! [`Phase::mark_quiet`], which releases every [`Phase::wait_quiet`].

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

#[derive(Debug)]
struct Inner {
    /// True once no fault is being injected and every process is healthy.
    quiet: watch::Sender<bool>,
    /// The workloads still driving their load.
    driving: watch::Sender<BTreeSet<String>>,
}

/// A handle on the run's phase; cheap to clone.
#[derive(Debug, Clone)]
pub struct Phase {
    inner: Arc<Inner>,
    /// The workload this handle belongs to (none for the orchestrator's).
    name: Option<Arc<str>>,
}

impl Default for Phase {
    fn default() -> Self {
        Self::new()
    }
}

impl Phase {
    /// A run that has not started driving yet.
    pub fn new() -> Phase {
        Phase {
            inner: Arc::new(Inner {
                quiet: watch::Sender::new(false),
                driving: watch::Sender::new(BTreeSet::new()),
            }),
            name: None,
        }
    }

    /// Registers workload `name` as driving and returns its handle.
    pub fn for_workload(&self, name: &str) -> Phase {
        self.inner.driving.send_modify(|set| {
            set.insert(name.to_owned());
        });
        Phase {
            inner: self.inner.clone(),
            name: Some(Arc::from(name)),
        }
    }

    /// This workload has sent its load (idempotent). On the orchestrator's
    /// handle it does nothing.
    pub fn driving_done(&self) {
        if let Some(name) = &self.name {
            self.ended(name);
        }
    }

    /// Workload `name` stopped driving, e.g. its task ended without calling
    /// [`Phase::driving_done`] (it failed): the orchestrator must not wait
    /// for it.
    pub fn ended(&self, name: &str) {
        self.inner.driving.send_if_modified(|set| set.remove(name));
    }

    /// The workloads still driving.
    pub fn still_driving(&self) -> Vec<String> {
        self.inner.driving.borrow().iter().cloned().collect()
    }

    /// True while any workload is driving.
    pub fn any_driving(&self) -> bool {
        !self.inner.driving.borrow().is_empty()
    }

    /// Waits until no workload is driving, for at most `timeout`; true if
    /// they all finished.
    pub async fn wait_driving_done(&self, timeout: Duration) -> bool {
        let mut rx = self.inner.driving.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(BTreeSet::is_empty))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Faults are over and every process is back and healthy.
    pub fn mark_quiet(&self) {
        self.inner.quiet.send_replace(true);
    }

    /// True once [`Phase::mark_quiet`] was called.
    pub fn is_quiet(&self) -> bool {
        *self.inner.quiet.borrow()
    }

    /// Returns once the orchestrator has stopped injecting faults and every
    /// process is back and healthy.
    pub async fn wait_quiet(&self) {
        let mut rx = self.inner.quiet.subscribe();
        // The sender lives in `inner`, which this handle keeps alive, so the
        // wait only ends by the value turning true.
        let _ = rx.wait_for(|quiet| *quiet).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn quiet_releases_every_waiter() {
        let phase = Phase::new();
        let a = phase.for_workload("a");
        let waiter = tokio::spawn(async move { a.wait_quiet().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        phase.mark_quiet();
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("released")
            .expect("joined");
        assert!(phase.is_quiet());
    }

    #[tokio::test]
    async fn driving_ends_when_every_workload_is_done() {
        let phase = Phase::new();
        let a = phase.for_workload("a");
        let b = phase.for_workload("b");
        assert_eq!(phase.still_driving(), ["a", "b"]);
        a.driving_done();
        a.driving_done();
        assert_eq!(phase.still_driving(), ["b"]);
        assert!(!phase.wait_driving_done(Duration::from_millis(20)).await);
        phase.driving_done(); // the orchestrator's handle names nobody
        assert!(phase.any_driving());
        phase.ended("b");
        assert!(phase.wait_driving_done(Duration::from_millis(20)).await);
        drop(b);
    }
}
