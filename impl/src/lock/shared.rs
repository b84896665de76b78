//! What a lock manager's tasks, guards and acquisitions share: the store, the options, the
//! process identity, the expiry observations and the held leases, and the queue of background
//! work. Both `acquire` and `manager` use it; neither depends on the other through it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Notify};

use super::entry::{LockKind, Marks};
use super::lease::LeaseCell;
use super::owner::{process_part, ProcessId};
use super::path::LockPath;
use super::LockOptions;
use crate::store::{Liveness, OwnerRegistration, Store};
use crate::sync::{lock, AtomicU64, Mutex};

/// Observations older than this many leases are forgotten.
const OBSERVATIONS_MAX: usize = 65_536;

/// Work for the manager's background task.
pub(crate) enum Job {
    /// A cancelled acquisition may have left this entry: withdraw it if it is ours, once the
    /// create that may make it has finished (`create`), or the withdraw could read before the
    /// entry lands and leave it behind, held by nobody, until its lease ends.
    Withdraw {
        path: LockPath,
        ticket: u64,
        owner: String,
        create: Option<tokio::task::JoinHandle<()>>,
    },
    /// A dropped guard's leases.
    Release(Vec<Arc<Lease>>),
    /// Delete the garbage below our release at `at` (`journal::collect_after_own`).
    Collect { path: LockPath, at: u64 },
    /// Answers once every job queued before it is done (`LockManager::settle`).
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Collections queued at most ([`Job::Collect`]); a release that finds this many queued collects
/// its own garbage before it returns, so a burst of releases cannot grow the queue without bound
/// (nor delay a withdraw or a dropped guard's release queued behind them by more than this many).
pub(crate) const COLLECTS_QUEUED: u64 = 64;

/// One held lock.
#[derive(Debug)]
pub(crate) struct Lease {
    pub path: LockPath,
    pub kind: LockKind,
    pub token: u64,
    pub owner: String,
    pub held_since_ms: u64,
    /// The marks our `acquire` carried; our later entries carry them raised by our ticket.
    pub marks: Marks,
    pub cell: LeaseCell,
    /// Signalled when a renewal ends, for a release waiting on it.
    pub renewed: Notify,
}

/// What the manager's tasks and guards share.
pub(crate) struct Shared {
    pub store: Arc<dyn Store>,
    pub process: ProcessId,
    pub options: LockOptions,
    /// When this process first saw each (path, newest index) of another owner: an entry is
    /// expired once it has been watched unchanged for its lease (plus a grace).
    pub(crate) observations: Mutex<HashMap<(LockPath, u64), Instant>>,
    /// Every lease a guard of this manager holds, by token.
    pub(crate) leases: Mutex<BTreeMap<u64, Arc<Lease>>>,
    pub(crate) jobs: mpsc::UnboundedSender<Job>,
    /// [`Job::Collect`]s queued and not yet done.
    pub(crate) collects_queued: AtomicU64,
    /// This manager's registration as an owner: while it lives, the store proves us alive.
    pub(crate) registration: Mutex<Option<Box<dyn OwnerRegistration>>>,
    /// Owners the store proved dead (a dead process stays dead; its id is never reused).
    pub(crate) dead: Mutex<HashSet<String>>,
    /// The newest ticket this manager's last claim saw (0: none yet): its next claim tries
    /// the ticket above it without listing first (`journal::claim_ticket`).
    pub(crate) newest_ticket: Mutex<u64>,
    /// What a one-commit acquisition (`commit`) starts from: each journal's newest entry as
    /// this manager last read or wrote it (`None`: empty), on a store that offers commits.
    pub(crate) heads: Mutex<super::commit::Heads>,
    /// The store offers commits (`Store::offers_commits`, asked once). Checked before `heads`
    /// is touched, so that on a store without commits the manager takes no lock more than the
    /// step-by-step protocol (under shuttle every lock is a scheduling point, and the committed
    /// schedules must still replay).
    pub(crate) commits: bool,
}

impl Shared {
    pub fn send(&self, job: Job) {
        // If the background task is gone (runtime shutting down), leases expire instead.
        let _ = self.jobs.send(job);
    }

    /// Whether the store proves `owner` dead. Errors prove nothing.
    pub async fn proven_dead(&self, owner: &str) -> bool {
        let process = process_part(owner);
        if lock(&self.dead).contains(process) {
            return true;
        }
        let dead = matches!(self.store.owner_liveness(process).await, Ok(Liveness::Dead));
        if dead {
            lock(&self.dead).insert(process.to_owned());
        }
        dead
    }

    /// Whether the entry `index` of `path`, held by `owner`, is expired: its owner is proven dead,
    /// or this process has watched the entry unchanged for its lease (plus a grace).
    pub async fn is_expired(
        &self,
        path: &LockPath,
        index: u64,
        owner: &str,
        lease_ms: u64,
    ) -> bool {
        self.proven_dead(owner).await || self.judge_expired(path, index, lease_ms)
    }

    /// Whether this process has watched entry `index` of `path` unchanged for `lease_ms` (plus a
    /// grace for clock-rate drift), on its own monotonic clock.
    pub fn judge_expired(&self, path: &LockPath, index: u64, lease_ms: u64) -> bool {
        let now = self.options.clock.now();
        let expires_after = expiry_after(lease_ms, self.options.expiry_grace);
        let mut seen = lock(&self.observations);
        if seen.len() > OBSERVATIONS_MAX {
            let horizon = self.options.lease * 4;
            seen.retain(|_, first| now.duration_since(*first) < horizon);
        }
        let first = *seen.entry((path.clone(), index)).or_insert(now);
        now.duration_since(first) >= expires_after
    }
}

/// How long an entry with a lease of `lease_ms` must be watched unchanged before it counts as
/// expired: its lease plus a grace for clock-rate drift. The drift grows with the time measured,
/// so the grace is at least 5% of the entry's own lease (not of the watcher's: a watcher with a
/// short lease must not cut a long lease short); `grace` can only add to it.
pub(crate) fn expiry_after(lease_ms: u64, grace: Duration) -> Duration {
    let lease = Duration::from_millis(lease_ms);
    lease + grace.max(lease / 20)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grace_follows_the_entrys_lease_not_the_watchers() {
        // A watcher with a 0.3 s lease (grace 15 ms) judging a 300 s lease: 15 s of grace.
        assert_eq!(
            expiry_after(300_000, Duration::from_millis(15)),
            Duration::from_secs(315)
        );
        // A longer configured grace still counts.
        assert_eq!(
            expiry_after(1_000, Duration::from_secs(5)),
            Duration::from_secs(6)
        );
    }
}
