//! The retry arithmetic: a push service's Retry-After cannot push a retry
//! past the cap, nor overflow the time it is added to.

use std::time::Duration;

use chrono::{DateTime, Utc};
use proptest::prelude::*;

use super::retry::{retry_delay, retry_due};
use crate::push::MAX_RETRY_AFTER;

fn delays() -> Vec<Duration> {
    vec![Duration::from_secs(30), Duration::from_secs(120)]
}

#[test]
fn the_kth_failure_waits_the_kth_delay_and_then_gives_up() {
    assert_eq!(
        retry_delay(&delays(), 1, None),
        Some(Duration::from_secs(30))
    );
    assert_eq!(
        retry_delay(&delays(), 2, None),
        Some(Duration::from_secs(120))
    );
    assert_eq!(retry_delay(&delays(), 3, None), None);
    assert_eq!(retry_delay(&delays(), 0, None), None);
}

#[test]
fn a_longer_retry_after_wins_up_to_the_cap() {
    let after = Some(Duration::from_secs(600));
    assert_eq!(
        retry_delay(&delays(), 1, after),
        Some(Duration::from_secs(600))
    );
    let huge = Some(Duration::from_secs(u64::MAX));
    assert_eq!(retry_delay(&delays(), 1, huge), Some(MAX_RETRY_AFTER));
}

#[test]
fn a_due_time_out_of_range_is_none_not_a_panic() {
    let now = Utc::now();
    assert_eq!(retry_due(now, Duration::from_secs(u64::MAX)), None);
    assert_eq!(
        retry_due(DateTime::<Utc>::MAX_UTC, Duration::from_secs(1)),
        None
    );
    assert_eq!(
        retry_due(now, Duration::from_secs(60)),
        Some(now + chrono::Duration::seconds(60))
    );
}

proptest! {
    #[test]
    fn any_retry_after_gives_a_due_time(after in any::<u64>(), attempts in 1u32..3) {
        let delay = retry_delay(&delays(), attempts, Some(Duration::from_secs(after)));
        let delay = delay.expect("an attempt is left");
        prop_assert!(delay <= MAX_RETRY_AFTER);
        prop_assert!(retry_due(Utc::now(), delay).is_some());
    }
}

/// The request future dropped mid-send (daprd gone, a client timeout):
/// the delivery it started still runs to its end, and the tracker that
/// shutdown waits on sees it through.
#[tokio::test]
async fn a_dropped_request_does_not_cut_its_deliveries() {
    let tasks = crate::TaskTracker::new();
    let (done, finished) = tokio::sync::oneshot::channel();
    let work = async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let _ = done.send("recorded");
        7
    };
    let request = super::detached(&tasks, work);
    let cut = tokio::time::timeout(Duration::from_millis(20), request).await;
    assert!(cut.is_err(), "the request was meant to be dropped mid-send");
    tasks.close();
    tokio::time::timeout(Duration::from_secs(5), tasks.wait())
        .await
        .expect("shutdown waits for the delivery");
    assert_eq!(finished.await, Ok("recorded"));
}

#[tokio::test]
async fn the_request_gets_the_deliveries_outcome() {
    let tasks = crate::TaskTracker::new();
    let outcome = super::detached(&tasks, async { 7 }).await;
    assert!(matches!(outcome, Ok(7)));
    let panicked = super::detached(&tasks, async { panic!("a send bug") }).await;
    assert!(matches!(panicked, Err(crate::error::ApiError::Internal(_))));
}
