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

    pub fn now(&self) -> Instant {
        match &self.skipped_us {
            None => Instant::now(),
            Some(skipped) => Instant::now() + Duration::from_micros(skipped.load(Ordering::SeqCst)),
        }
    }

    /// Moves this clock (and its clones) forward by `by`. A monotonic clock cannot be moved: the
    /// call is refused with `false`, and nothing changes.
    #[must_use]
    pub fn advance(&self, by: Duration) -> bool {
        match &self.skipped_us {
            None => false,
            Some(skipped) => {
                skipped.fetch_add(by.as_micros() as u64, Ordering::SeqCst);
                true
            }
        }
    }
}
