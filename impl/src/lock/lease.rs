//! One held lock's lease, shared by its guard and the manager's renewal task.
//!
//! Renewal and release both append right after the lock's newest own entry, so they must not
//! run at once: if a renewal's `renew` landed at index n+1, a release racing it at n+1 would
//! fail and wrongly conclude the lock was lost, leaving it held. The hand-off below serialises
//! them: a release waits for a renewal in flight, and no renewal starts once release has begun.
//! This synchronous core is what the loom tests check.

use std::time::Instant;

use crate::sync::{lock, Mutex};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseState {
    /// Index of the lock's newest own entry.
    pub index: u64,
    /// When the current lease began, on this process's monotonic clock.
    pub started: Instant,
    pub renewing: bool,
    pub releasing: bool,
    /// A renewal found the lock superseded (expired and taken over, or force-released).
    pub lost: bool,
}

/// How a renewal ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Renewal {
    /// Our `renew` landed at `index`; the lease runs from `started` (taken before the create).
    Landed { index: u64, started: Instant },
    /// The index was taken by our own earlier `renew` (one whose reply was lost), at `index`.
    Adopted { index: u64 },
    /// Someone else's entry follows ours: the lock was lost (taken over, force-released).
    Superseded,
    /// The store failed: nothing is known, and the lease keeps running down.
    Failed,
}

#[derive(Debug)]
pub struct LeaseCell {
    state: Mutex<LeaseState>,
}

impl LeaseCell {
    pub fn new(index: u64, started: Instant) -> LeaseCell {
        LeaseCell {
            state: Mutex::new(LeaseState {
                index,
                started,
                renewing: false,
                releasing: false,
                lost: false,
            }),
        }
    }

    pub fn snapshot(&self) -> LeaseState {
        *lock(&self.state)
    }

    /// Starts a renewal: `Some(index)` to append `renew` at `index + 1`, or `None` if the lease
    /// is being released, already lost, or being renewed.
    pub fn begin_renew(&self) -> Option<u64> {
        let mut state = lock(&self.state);
        let releasing =
            state.releasing && !crate::mutants::active(crate::mutants::Mutant::RenewDuringRelease);
        if state.renewing || releasing || state.lost {
            return None;
        }
        state.renewing = true;
        Some(state.index)
    }

    /// Ends a renewal with its outcome.
    pub fn end_renew(&self, outcome: Renewal) {
        let mut state = lock(&self.state);
        assert!(state.renewing, "end_renew without begin_renew");
        state.renewing = false;
        match outcome {
            Renewal::Landed { index, started } => {
                assert_eq!(
                    index,
                    state.index + 1,
                    "a renewal appends right after the newest own entry"
                );
                state.index = index;
                state.started = started;
            }
            Renewal::Adopted { index } => {
                assert!(
                    index > state.index,
                    "an adopted renewal is a later own entry"
                );
                // Our renewal whose reply was lost: the lease keeps running from its old start
                // (we do not know when that entry landed), the next entry follows it.
                state.index = index;
            }
            Renewal::Superseded => state.lost = true,
            // A store error says nothing about the lock: try again until the lease ends.
            Renewal::Failed => {}
        }
    }

    /// Claims the release of this lease. Exactly one caller gets `true`; from then on no renewal
    /// starts.
    pub fn claim_release(&self) -> bool {
        let mut state = lock(&self.state);
        if state.releasing {
            return false;
        }
        state.releasing = true;
        true
    }

    /// For the claimant of the release: `Some((index, lost))` once no renewal is in flight (append
    /// `release` at `index + 1`), `None` while one is.
    pub fn release_ready(&self) -> Option<(u64, bool)> {
        let state = lock(&self.state);
        assert!(state.releasing, "release_ready before claim_release");
        (!state.renewing).then_some((state.index, state.lost))
    }
}
