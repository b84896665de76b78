//! The observer: every held lock with its path, type, owner, token, age and state.
//!
//! Ages come from the writers' wall clocks (`written_at_ms`), so they are for people: they can be
//! off by the clock skew between hosts. No decision of the protocol uses them.

use std::time::Duration;

use serde::Serialize;

use super::acquire::wall_ms;
use super::entry::{Entry, LockKind};
use super::journal::Corrupt;
use super::manager::every_newest;
use super::owner::{process_part, Liveness};
use super::LockError;
use crate::store::Store;

/// Held longer than this: "hanging" (OpenViking's observer threshold).
pub const HANGING_AFTER: Duration = Duration::from_secs(3600);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LockState {
    /// Renewed within its lease.
    Active,
    /// Held (and renewed) for more than an hour: probably a stuck operation.
    Hanging,
    /// Not renewed within its lease, or its owner (on this host) is dead: the cleaner or
    /// recovery will release it.
    Stale,
}

#[derive(Clone, Debug, Serialize)]
pub struct LockInfo {
    pub path: String,
    pub kind: LockKind,
    pub owner: String,
    pub token: u64,
    /// Index of the newest entry of the path's journal.
    pub index: u64,
    /// Since the lock was first acquired (wall clock).
    pub held_s: f64,
    /// Since its last acquire or renew (wall clock).
    pub since_renewal_s: f64,
    pub lease_s: f64,
    pub owner_liveness: Liveness,
    pub state: LockState,
}

/// What the observer sees: the locks held, and the names in the lock namespace that cannot be
/// read (each guards its own journal until an operator repairs it).
#[derive(Clone, Debug, Serialize)]
pub struct Observation {
    pub locks: Vec<LockInfo>,
    pub corrupt: Vec<Corrupt>,
}

/// Every lock currently held in `store`, in path order (entries that cannot be read are left
/// out; [`observe_all`] reports them).
pub async fn observe(store: &dyn Store) -> Result<Vec<LockInfo>, LockError> {
    Ok(observe_all(store).await?.locks)
}

/// Every lock currently held in `store`, in path order, and every entry that cannot be read.
pub async fn observe_all(store: &dyn Store) -> Result<Observation, LockError> {
    let now_ms = wall_ms();
    let seconds = |ms: u64| Duration::from_millis(now_ms.saturating_sub(ms)).as_secs_f64();
    let mut out = Vec::new();
    let scan = every_newest(store).await?;
    for (path, newest) in scan.journals {
        let (owner, held_since_ms) = match &newest.entry {
            Entry::Acquire {
                owner,
                written_at_ms,
                ..
            } => (owner, *written_at_ms),
            Entry::Renew {
                owner,
                held_since_ms,
                ..
            } => (owner, *held_since_ms),
            _ => continue,
        };
        let (_, token, kind, lease_ms) = newest.entry.holder().expect("acquire or renew");
        let owner_liveness = store.owner_liveness(process_part(owner)).await?;
        let since_renewal_s = seconds(newest.entry.written_at_ms());
        let lease_s = Duration::from_millis(lease_ms).as_secs_f64();
        let held_s = seconds(held_since_ms);
        let state = if owner_liveness == Liveness::Dead || since_renewal_s > lease_s {
            LockState::Stale
        } else if held_s > HANGING_AFTER.as_secs_f64() {
            LockState::Hanging
        } else {
            LockState::Active
        };
        out.push(LockInfo {
            path: path.to_string(),
            kind,
            owner: owner.clone(),
            token,
            index: newest.index,
            held_s,
            since_renewal_s,
            lease_s,
            owner_liveness,
            state,
        });
    }
    Ok(Observation {
        locks: out,
        corrupt: scan.corrupt,
    })
}
