//! Path locks: lockstep's fixed protocol (specs/lock.md), over any [`Store`](crate::store::Store).
//!
//! ```no_run
//! # async fn demo() -> Result<(), lockstep::lock::LockError> {
//! use lockstep::lock::{LockManager, LockOptions, Operation};
//! use lockstep::store::FsStore;
//!
//! let store = FsStore::open("/var/lib/data/.lockstep")?;
//! let manager = LockManager::start(store, LockOptions::default()).await?;
//! let guard = manager.lock(Operation::rm("/resources/a", true)?).await?;
//! // Every write to what the lock protects carries the fencing token of the lock covering it:
//! let token = guard.single_token().expect("rm takes one lock");
//! # let _ = token;
//! guard.release().await?;
//! # Ok(()) }
//! ```

mod acquire;
mod clock;
mod commit;
pub mod entry;
pub mod fence;
pub mod inspect;
pub mod journal;
pub mod lease;
mod manager;
pub mod observer;
pub mod owner;
pub mod path;
mod shared;

use std::time::Duration;

pub use clock::Clock;
pub use entry::{Entry, LockKind, Marks, ReleasedBy};
pub use fence::{Fenced, FencedLog};
pub use journal::Corrupt;
pub use manager::{
    collect_offline, force_release, recover, repair, Collected, Guard, LockManager, Recovered,
    Repaired,
};
pub use observer::{observe, observe_all, LockInfo, LockState, Observation};
pub use path::{InvalidPath, LockPath};

use crate::store::StoreError;

/// Settings of a [`LockManager`]. Durations carry their unit in their type.
#[derive(Clone, Debug)]
pub struct LockOptions {
    /// `lock_timeout`: `Some(ZERO)` fails at the first live conflict (OpenViking's default),
    /// `Some(d)` waits up to `d`, `None` waits as long as it takes.
    pub timeout: Option<Duration>,
    /// A lock's lease; the holder renews it every `renew_every`.
    pub lease: Duration,
    pub renew_every: Duration,
    /// How often the background cleaner releases expired locks (`None`: no cleaner).
    pub cleanup_every: Option<Duration>,
    /// Extra time an observer waits beyond the lease before judging a lock expired, for clock
    /// rate drift between machines.
    pub expiry_grace: Duration,
    /// Back-offs (withdraw and try again) allowed per lock before the acquisition fails.
    pub retries_max: u32,
    /// Polling while waiting: starts at `poll_min`, grows ×1.5 up to `poll_max`.
    pub poll_min: Duration,
    pub poll_max: Duration,
    /// What leases and expiry are measured on: the monotonic clock (the default), or one a
    /// replay advances ([`Clock::advanceable`]).
    pub clock: Clock,
}

impl Default for LockOptions {
    fn default() -> Self {
        let lease = Duration::from_secs(300);
        LockOptions {
            timeout: Some(Duration::ZERO),
            lease,
            renew_every: lease / 3,
            cleanup_every: Some(Duration::from_secs(60)),
            expiry_grace: Duration::from_secs(5),
            retries_max: 32,
            poll_min: Duration::from_millis(20),
            poll_max: Duration::from_millis(500),
            clock: Clock::monotonic(),
        }
    }
}

impl LockOptions {
    /// Options with a lease of `lease` (renewed every third of it) and everything else default.
    pub fn with_lease(lease: Duration) -> LockOptions {
        LockOptions {
            lease,
            renew_every: lease / 3,
            expiry_grace: lease / 20,
            ..LockOptions::default()
        }
    }
}

/// What went wrong taking, holding or releasing a lock.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{path} is locked by {holder} (token {token}){}", waited_text(.waited))]
    Busy {
        path: LockPath,
        holder: String,
        token: u64,
        waited: Option<Duration>,
    },
    #[error("could not lock {path}: backed off {retries} times (contention)")]
    RetriesExhausted { path: LockPath, retries: u32 },
    #[error("{what} stayed contended for {attempts} attempts")]
    Contended { what: String, attempts: u32 },
    #[error("the journal of {path} kept changing under a read; is a collector misbehaving?")]
    Unsettled { path: LockPath },
    #[error(transparent)]
    InvalidPath(#[from] InvalidPath),
    #[error("{0}")]
    InvalidRequest(String),
    /// A journal entry this build cannot read: nothing is guessed, nothing is changed.
    #[error("cannot read lock entry {key}: {reason} (it guards its path until an operator runs `lockstep repair KEY`)")]
    Corrupt { key: String, reason: String },
    /// The store said `AlreadyExists` for a create, but has nothing readable at the key: it is
    /// not keeping the create-if-absent contract, and no retry would help.
    #[error("the store refused to create {key} as existing, but nothing can be read there: the store breaks create-if-absent (a foreign object at the key? see `lockstep locks`)")]
    CreateRefused { key: String },
    #[error("the lease of {path} (token {token}) was lost: expired, force-released or taken over")]
    LeaseLost { path: LockPath, token: u64 },
    #[error("token mismatch on {path}: the lock holds token {actual}, not {expected}")]
    TokenMismatch {
        path: LockPath,
        expected: u64,
        actual: u64,
    },
    /// The store ended this process's owner registration behind its back (etcd: its lease
    /// expired in a stall, or was revoked): it proves this process dead, so a lock taken now
    /// would be free to anyone at once. Nothing was written.
    #[error("this process's owner registration was lost (the store proves it dead: its lease expired or was revoked); it takes no new locks: restart it")]
    RegistrationLost,
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn waited_text(waited: &Option<Duration>) -> String {
    match waited {
        Some(d) => format!("; waited {:.1} s", d.as_secs_f64()),
        None => "; lock_timeout is 0".into(),
    }
}

/// The lock types an operation takes, OpenViking's three `LockContext` modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockMode {
    /// POINT on each path.
    Point,
    /// SUBTREE on each path.
    Subtree,
    /// SUBTREE on the source and on the destination's parent (exactly two paths).
    Mv,
}

/// The locks one operation takes: sorted by path, each path once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    locks: Vec<(LockPath, LockKind)>,
}

impl Operation {
    /// The locks of `mode` on `paths` (for `Mv`: `[source, destination_parent]`).
    pub fn new(mode: LockMode, paths: &[&str]) -> Result<Operation, LockError> {
        let parsed: Vec<LockPath> = paths
            .iter()
            .map(|p| LockPath::new(p))
            .collect::<Result<_, _>>()?;
        if parsed.is_empty() {
            return Err(LockError::InvalidRequest("no path to lock".into()));
        }
        let locks = match mode {
            LockMode::Point => parsed.into_iter().map(|p| (p, LockKind::Point)).collect(),
            LockMode::Subtree => parsed.into_iter().map(|p| (p, LockKind::Subtree)).collect(),
            LockMode::Mv if parsed.len() == 2 => {
                parsed.into_iter().map(|p| (p, LockKind::Subtree)).collect()
            }
            LockMode::Mv => {
                return Err(LockError::InvalidRequest(
                    "mv takes exactly two paths: source and destination parent".into(),
                ))
            }
        };
        Ok(Operation::from_locks(locks))
    }

    /// Sorts by path (so operations never wait on each other in a cycle) and keeps each path
    /// once, with the stronger kind.
    pub fn from_locks(mut locks: Vec<(LockPath, LockKind)>) -> Operation {
        locks.sort();
        let mut out: Vec<(LockPath, LockKind)> = Vec::with_capacity(locks.len());
        for (path, kind) in locks {
            match out.last_mut() {
                Some((last, last_kind)) if *last == path => *last_kind = (*last_kind).max(kind),
                _ => out.push((path, kind)),
            }
        }
        Operation { locks: out }
    }

    /// `rm`: SUBTREE on a directory, POINT on a file's parent.
    pub fn rm(path: &str, is_dir: bool) -> Result<Operation, LockError> {
        let path = LockPath::new(path)?;
        Ok(if is_dir {
            Operation::from_locks(vec![(path, LockKind::Subtree)])
        } else {
            Operation::point_on_parent(&path)
        })
    }

    /// `mv`: SUBTREE on a directory and on the destination's parent; for a file, POINT on both
    /// parents.
    pub fn mv(source: &str, destination: &str, is_dir: bool) -> Result<Operation, LockError> {
        let source = LockPath::new(source)?;
        let destination = LockPath::new(destination)?;
        let target = destination
            .parent()
            .ok_or_else(|| LockError::InvalidRequest("cannot move onto /".into()))?;
        Ok(if is_dir {
            Operation::from_locks(vec![
                (source, LockKind::Subtree),
                (target, LockKind::Subtree),
            ])
        } else {
            let from = source
                .parent()
                .ok_or_else(|| LockError::InvalidRequest("cannot move /".into()))?;
            Operation::from_locks(vec![(from, LockKind::Point), (target, LockKind::Point)])
        })
    }

    /// `add_resource` (finalize): POINT on the parent of the new resource.
    pub fn add_resource(path: &str) -> Result<Operation, LockError> {
        Ok(Operation::point_on_parent(&LockPath::new(path)?))
    }

    /// `session.commit`: POINT on the session directory.
    pub fn session_commit(session_dir: &str) -> Result<Operation, LockError> {
        Ok(Operation::from_locks(vec![(
            LockPath::new(session_dir)?,
            LockKind::Point,
        )]))
    }

    fn point_on_parent(path: &LockPath) -> Operation {
        let parent = path.parent().unwrap_or_else(LockPath::root);
        Operation::from_locks(vec![(parent, LockKind::Point)])
    }

    pub fn locks(&self) -> &[(LockPath, LockKind)] {
        &self.locks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_map_to_the_seed_call_sites_and_are_sorted() {
        let names = |op: Operation| {
            op.locks()
                .iter()
                .map(|(p, k)| format!("{}{}", k.letter(), p))
                .collect::<Vec<_>>()
        };
        assert_eq!(names(Operation::rm("/r/a", true).unwrap()), ["S/r/a"]);
        assert_eq!(
            names(Operation::rm("/r/a/f.txt", false).unwrap()),
            ["P/r/a"]
        );
        assert_eq!(
            names(Operation::mv("/r/z", "/r/a/z", true).unwrap()),
            ["S/r/a", "S/r/z"]
        );
        assert_eq!(
            names(Operation::mv("/r/z/f", "/r/a/f", false).unwrap()),
            ["P/r/a", "P/r/z"]
        );
        assert_eq!(names(Operation::add_resource("/r/new").unwrap()), ["P/r"]);
        assert_eq!(
            names(Operation::new(LockMode::Point, &["/b", "/a", "/b"]).unwrap()),
            ["P/a", "P/b"]
        );
        assert!(Operation::new(LockMode::Mv, &["/a"]).is_err());
        assert!(Operation::new(LockMode::Point, &["/a/../etc"]).is_err());
    }
}
