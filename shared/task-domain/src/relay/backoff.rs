//! How long a row that daprd refused (4xx) waits before the next attempt:
//! doubling from a base, capped. A refusal is about the event or its topic,
//! so retrying it at every wake-up would only hammer daprd and flood the
//! log; a fix (a component's scopes, a topic) is picked up by the next
//! attempt, at most `max` later.
//!
//! The count is the row's `attempts`, which also counts tries that failed
//! while daprd or the broker was down, so a row refused right after an
//! outage starts further up the curve; `max` bounds that.

use std::time::Duration;

/// The delay after the n-th attempt of a refused row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            max: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    /// The wait after `attempts` attempts (the one just refused included):
    /// `base`, `2 × base`, `4 × base`, … never more than `max`.
    pub fn delay(&self, attempts: i32) -> Duration {
        let doublings = attempts.saturating_sub(1).clamp(0, 31) as u32;
        self.base
            .checked_mul(1u32 << doublings)
            .unwrap_or(self.max)
            .min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn doubles_from_the_base_up_to_the_cap() {
        let b = Backoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(10),
        };
        let delays: Vec<u64> = (0..7).map(|n| b.delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 1, 2, 4, 8, 10, 10]);
    }

    proptest! {
        #[test]
        fn bounded_and_never_shrinking(base_ms in 1u64..10_000, max_ms in 1u64..10_000_000, n in any::<i32>()) {
            let b = Backoff { base: Duration::from_millis(base_ms), max: Duration::from_millis(max_ms) };
            let d = b.delay(n);
            prop_assert!(d <= b.max);
            prop_assert!(d >= b.base.min(b.max));
            prop_assert!(b.delay(n.saturating_add(1)) >= d);
        }
    }
}
