//! The clock a lock manager measures leases and expiry on: the process's monotonic clock, which
//! a replay may move forward.
//!
//! An observer judges a lock expired once it has watched the entry unchanged for its lease plus
//! a grace (specs/lock.md §5), and a holder's guard stops writing once its lease has run out on
//! its own clock. Both read this clock. Moving it forward (`advance`) is how the test vectors'
//! `tick` lets a 300-second lease run out without waiting 300 seconds
//! (specs/vectors/README.md); in production no one advances it, and it is the monotonic clock.
//! The wait budget (`lock_timeout`) and the poll intervals stay on real time: they pace calls,
//! they decide nothing about who holds a lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The monotonic clock plus an offset that only grows. Clones share the offset, so every
/// manager given one clone sees time pass together.
///
/// **For tests and replays only.** Advancing the clock of a manager in production makes it judge
/// live locks expired (and pass them, leaving only the resources' fencing to stop their holders),
/// and makes its own guards stop vouching for their leases. What it governs: the expiry an
/// observer judges, a guard's lease check ([`Guard::check`](super::Guard::check)), and the start
/// of each lease and renewal (a renewal starts the lease again, so a guard whose lease ran out
/// passes its check again once a renewal lands). What it does not: `renew_every`,
/// `cleanup_every`, the polls of a waiter and `lock_timeout`, which stay on real time.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// Microseconds added to the monotonic clock; `None` for the plain clock.
    skipped_us: Option<Arc<AtomicU64>>,
}

impl Clock {
    /// The process's monotonic clock, which cannot be advanced (the default).
    pub fn monotonic() -> Clock {
        Clock::default()
    }

    /// The monotonic clock, which [`Clock::advance`] moves forward for every clone.
    pub fn advanceable() -> Clock {
        Clock {
            skipped_us: Some(Arc::new(AtomicU64::new(0))),
        }
    }

    /// Now: the monotonic clock, plus what [`Clock::advance`] added.
    pub fn now(&self) -> Instant {
        let now = Instant::now();
        match &self.skipped_us {
            None => now,
            // `advance` refuses an offset that `Instant` cannot hold.
            Some(skipped) => now
                .checked_add(Duration::from_micros(skipped.load(Ordering::SeqCst)))
                .unwrap_or(now),
        }
    }

    /// Moves this clock (and its clones) forward by `by`. Refused with `false`, and nothing
    /// changes, for a monotonic clock, or where the clock would run past what it can hold.
    #[must_use]
    pub fn advance(&self, by: Duration) -> bool {
        let Some(skipped) = &self.skipped_us else {
            return false;
        };
        let Ok(by) = u64::try_from(by.as_micros()) else {
            return false;
        };
        skipped
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |was| {
                let total = was.checked_add(by)?;
                // Far beyond any lease, and well inside what `Instant` holds on every platform.
                let hundred_years_us = 100 * 365 * 24 * 3600 * 1_000_000u64;
                (total <= hundred_years_us).then_some(total)
            })
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_advanceable_clock_moves_for_every_clone_and_never_wraps() {
        let clock = Clock::advanceable();
        let twin = clock.clone();
        let before = twin.now();
        assert!(clock.advance(Duration::from_secs(3600)));
        assert!(twin.now() >= before + Duration::from_secs(3600));
        assert!(
            !clock.advance(Duration::MAX),
            "an offset past what it holds is refused"
        );
        assert!(!clock.advance(Duration::from_secs(200 * 365 * 24 * 3600)));
        assert!(
            twin.now() >= before + Duration::from_secs(3600),
            "and changes nothing"
        );
        assert!(!Clock::monotonic().advance(Duration::from_secs(1)));
    }
}
