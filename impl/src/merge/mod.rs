//! The merge lock of a lake's branches: lockstep's fixed protocol (specs/merge.md), over any
//! [`Store`]. Origin: brimdata/zed #2971 (a per-branch merge-lock journal).
//!
//! A child branch is merged into its parent while writers keep committing to the child. Every
//! branch is a journal of commits claimed at its end with create-if-absent; a child also has a
//! TAIL/BASE object (its commits below TAIL are in the parent) and a merge-lock journal.
//!
//! ```no_run
//! # async fn demo() -> Result<(), lockstep::merge::MergeError> {
//! use lockstep::merge::{Lake, MergeOptions};
//! use lockstep::store::FsStore;
//!
//! let lake = Lake::open(FsStore::open("/var/lib/lake/.lockstep")?).await?;
//! lake.create_branch("main", None).await?;
//! let live = lake.create_branch("live", Some("main")).await?;
//! live.commit(b"{\"x\":1}").await?;
//! let merged = lake.merge("live", MergeOptions::default()).await?;
//! # let _ = merged;
//! # Ok(()) }
//! ```
//!
//! Modules: `entry` (the JSON entries), `journal` (names, keys, journals found by listing),
//! `read` (what readers count: the first merge commit per key), `merging` (the merge itself),
//! `admin` (the meta-query, force release, recovery).

mod admin;
pub mod entry;
pub mod journal;
mod merging;
pub mod read;

use std::time::Duration;

pub use admin::{force_release, merge_locks, recover, MergeLockInfo, MergeLockState, Released};
pub use entry::{CommitEntry, LockEntry, Object, TailBase, UnlockedBy};
pub use journal::BranchName;
pub use merging::{MergeOutcome, Merged};
pub use read::{applied, log, Change, LogEntry};

use crate::lock::owner::ProcessId;
use crate::store::{Created, OwnerRegistration, Store, StoreError};
use crate::sync::Mutex;
use entry::{encode, wall_ms, BranchMeta, FORMAT_VERSION};
use std::sync::Arc;

/// What can go wrong. Each error says whether anything changed.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("invalid branch name {name:?}: {reason}")]
    InvalidBranch { name: String, reason: String },
    #[error("no branch {0}")]
    NoSuchBranch(String),
    #[error("{0}")]
    InvalidObject(String),
    #[error("branch {0} exists already")]
    BranchExists(String),
    /// The store ended this process's owner registration behind its back (etcd: its lease
    /// expired or was revoked): a merge lock taken now would be free to recovery at once.
    /// Nothing was written.
    #[error("this process's owner registration was lost (the store proves it dead: its lease expired or was revoked); it starts no new merge: restart it")]
    RegistrationLost,
    #[error("{0} is a root branch: it has no parent to merge into")]
    NotAChild(String),
    /// Nothing was changed.
    #[error("the merge lock of {branch} is held by {holder} (lock {index}){}{}", waited_text(.waited), if *.holder_dead { "; its holder is proven dead: `lockstep recover` frees the lock" } else { "" })]
    Busy {
        branch: BranchName,
        holder: String,
        index: u64,
        waited: Option<Duration>,
        /// The store proves the holder dead (recovery frees the lock).
        holder_dead: bool,
    },
    /// The merge aborted before writing to the parent; the child is untouched.
    #[error("conflict: commit {child_index} of {child} deletes {object}, which the parent changed at its entry {parent_index} after the child's BASE; the merge was aborted and nothing changed")]
    Conflict {
        child: BranchName,
        child_index: u64,
        object: String,
        parent_index: u64,
    },
    /// This merger's lock was freed by someone else (force release or recovery) while it ran:
    /// whatever it wrote is fenced (a duplicate merge commit is ignored by readers, a TAIL/BASE
    /// move of an old version fails), and it did not complete.
    #[error("the merge lock of {branch} (lock {index}) was released by someone else while the merge ran; this merger is fenced and did not complete")]
    LockLost { branch: BranchName, index: u64 },
    #[error("token mismatch on {branch}: the merge lock's index is {actual}, not {expected}; nothing was released")]
    TokenMismatch {
        branch: BranchName,
        expected: u64,
        actual: u64,
    },
    /// An entry this build cannot read: nothing is guessed, nothing is changed.
    #[error("cannot read {key}: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("the store refused to create {key} as existing, but nothing can be read there: it breaks create-if-absent")]
    CreateRefused { key: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn waited_text(waited: &Option<Duration>) -> String {
    match waited {
        Some(d) => format!("; waited {:.1} s", d.as_secs_f64()),
        None => "; the merge timeout is 0".into(),
    }
}

/// Settings of one merge.
#[derive(Clone, Debug)]
pub struct MergeOptions {
    /// How long to wait for a busy merge lock: `Some(ZERO)` fails at once, `None` waits forever.
    pub timeout: Option<Duration>,
    /// Polling interval while waiting for the lock.
    pub poll: Duration,
    /// Retries of a create that returned an error (its outcome unknown) before giving up.
    pub io_retries: u32,
    /// At most this many child commits in one merge (at least 1); the rest wait for the next.
    /// The child is read upward from TAIL, and without a bound a journal that several writers
    /// append to faster than one reader reads it would keep a merge reading, and holding what it
    /// read, without end.
    pub max_commits: u64,
}

impl Default for MergeOptions {
    fn default() -> Self {
        MergeOptions {
            timeout: Some(Duration::ZERO),
            poll: Duration::from_millis(20),
            io_retries: 3,
            max_commits: 100_000,
        }
    }
}

struct Inner {
    store: Arc<dyn Store>,
    process: ProcessId,
    registration: Mutex<Option<Box<dyn OwnerRegistration>>>,
    /// Set when a merge gave up while it may still hold a lock (every attempt to unlock failed):
    /// then this process ends its registration as a crash would, so that the store proves it
    /// dead and `recover` frees the lock. A clean end would leave its liveness unknown, and a
    /// merge lock has no lease to expire.
    may_hold: std::sync::atomic::AtomicBool,
    /// Where this lake saw the merge-lock and TAIL/BASE journals end: a merge reads upward from
    /// there instead of listing them.
    ends: journal::EndHints,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let registration = crate::sync::lock(&self.registration).take();
        if let Some(registration) = registration {
            if self.may_hold.load(std::sync::atomic::Ordering::SeqCst) {
                registration.end_as_crash();
            }
        }
    }
}

/// A lake: branches over one store. Cheap to clone; clones share the owner registration.
#[derive(Clone)]
pub struct Lake {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Lake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Lake({})", self.inner.store.describe())
    }
}

impl Lake {
    /// Opens the lake on `store` and registers this process as an owner, so that the store can
    /// prove its death to `recover` (the same kernel-proven liveness as the path locks).
    pub async fn open(store: impl Store) -> Result<Lake, MergeError> {
        Lake::open_as(store, ProcessId::current()).await
    }

    /// Opens the lake as `process` (test harnesses give each simulated merger its own identity).
    #[doc(hidden)]
    pub async fn open_as(store: impl Store, process: ProcessId) -> Result<Lake, MergeError> {
        let store: Arc<dyn Store> = Arc::new(store);
        let registration = match store.register_owner(&process.key()).await {
            Ok(registration) => registration,
            Err(error) => {
                // Unregistered, our liveness is unknown to others: a lock we leave behind is
                // freed only by an operator. Safe, and said.
                tracing::warn!(%error, "cannot register as an owner; a merge lock left behind by a crash will need `force-release`");
                None
            }
        };
        Ok(Lake {
            inner: Arc::new(Inner {
                store,
                process,
                registration: Mutex::new(registration),
                may_hold: std::sync::atomic::AtomicBool::new(false),
                ends: journal::EndHints::default(),
            }),
        })
    }

    pub fn store(&self) -> &dyn Store {
        &*self.inner.store
    }

    pub(crate) fn ends(&self) -> &journal::EndHints {
        &self.inner.ends
    }

    /// Ends this lake's owner registration as a crash would (crash-injection harnesses): its
    /// locks' holder is provably dead afterwards.
    #[doc(hidden)]
    pub fn end_as_crash(&self) {
        let registration = crate::sync::lock(&self.inner.registration).take();
        if let Some(registration) = registration {
            registration.end_as_crash();
        }
    }

    /// Creates branch `name`, a child of `parent` if given. Its BASE is the parent's end now.
    pub async fn create_branch(
        &self,
        name: &str,
        parent: Option<&str>,
    ) -> Result<Branch, MergeError> {
        let name = BranchName::new(name)?;
        let parent = parent.map(BranchName::new).transpose()?;
        let store = self.store();
        if store.get(&name.meta_key()).await?.is_some() {
            return Err(MergeError::BranchExists(name.to_string()));
        }
        if let Some(parent) = &parent {
            self.meta(parent).await?;
        }
        let meta = BranchMeta {
            v: FORMAT_VERSION,
            parent: parent.as_ref().map(|p| p.as_str().to_owned()),
            created_at_ms: wall_ms(),
        };
        // The TAIL/BASE object first: a branch whose meta exists always has one. A crash between
        // the two leaves a TAIL/BASE nobody reads; a retry of the create finds it and goes on.
        if let Some(parent) = &parent {
            let base = parent.commits().end(store).await?;
            let first = TailBase {
                v: FORMAT_VERSION,
                tail: 0,
                base,
                lock: None,
            };
            let key = name.tailbase().key(0);
            if store.create(&key, &encode(&first)).await? == Created::AlreadyExists {
                // Left by an interrupted create of this branch: go on with it only if it can be
                // this branch's (TAIL 0, BASE within the parent's journal), never write over it.
                let found: Option<TailBase> = name.tailbase().get(store, 0).await?;
                let fits =
                    found.is_some_and(|tb| tb.tail == 0 && tb.base <= base && tb.lock.is_none());
                if !fits {
                    return Err(MergeError::Corrupt {
                        key: key.to_string(),
                        reason: format!("a TAIL/BASE left by an interrupted create does not fit a child of {parent} (its end is {base}); move it away"),
                    });
                }
            }
        }
        match store.create(&name.meta_key(), &encode(&meta)).await? {
            Created::Created(_) => Ok(self.branch_unchecked(name)),
            Created::AlreadyExists => Err(MergeError::BranchExists(name.to_string())),
        }
    }

    /// The branch `name`, which must exist.
    pub async fn branch(&self, name: &str) -> Result<Branch, MergeError> {
        let name = BranchName::new(name)?;
        self.meta(&name).await?;
        Ok(self.branch_unchecked(name))
    }

    fn branch_unchecked(&self, name: BranchName) -> Branch {
        Branch {
            lake: self.clone(),
            name,
            end_hint: Arc::new(std::sync::atomic::AtomicU64::new(NO_HINT)),
        }
    }

    /// Every branch, with its parent.
    pub async fn branches(&self) -> Result<Vec<(BranchName, Option<BranchName>)>, MergeError> {
        let mut out = Vec::new();
        for name in journal::branch_names(self.store()).await? {
            let meta = self.meta(&name).await?;
            out.push((name, meta));
        }
        Ok(out)
    }

    /// The parent of `name` (`None` for a root branch); an error if there is no such branch.
    pub(crate) async fn meta(&self, name: &BranchName) -> Result<Option<BranchName>, MergeError> {
        let key = name.meta_key();
        let Some((bytes, _)) = self.store().get(&key).await? else {
            return Err(MergeError::NoSuchBranch(name.to_string()));
        };
        let meta: BranchMeta = entry::decode(key.as_str(), &bytes)?;
        meta.parent.as_deref().map(BranchName::new).transpose()
    }

    /// Merges `child` into its parent (specs/merge.md §3).
    pub async fn merge(&self, child: &str, options: MergeOptions) -> Result<Merged, MergeError> {
        let lost = crate::sync::lock(&self.inner.registration)
            .as_ref()
            .is_some_and(|registration| registration.lost());
        if lost {
            // The store proves us dead: a merge lock taken now would be free to recovery at once.
            return Err(MergeError::RegistrationLost);
        }
        merging::merge(self, &BranchName::new(child)?, &options).await
    }

    /// The meta-query: every branch's merge lock, with its holder's liveness.
    pub async fn merge_locks(&self) -> Result<Vec<MergeLockInfo>, MergeError> {
        merge_locks(self.store()).await
    }

    pub(crate) fn owner(&self) -> String {
        self.inner.process.owner()
    }

    pub(crate) fn mark_may_hold(&self) {
        if crate::mutants::active(crate::mutants::Mutant::MergeCleanEndAfterGivingUp) {
            return; // planted: the registration will end cleanly
        }
        self.inner
            .may_hold
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// One branch of a lake. Clones share the hint of where the journal ends.
#[derive(Clone, Debug)]
pub struct Branch {
    lake: Lake,
    name: BranchName,
    /// Where this handle last saw the journal end: only where a commit's probe starts (the
    /// create-if-absent decides), so a writer does not list the journal for every commit. A
    /// stale hint costs a few failed creates; after `PROBES_MAX` of them the journal is listed.
    end_hint: Arc<std::sync::atomic::AtomicU64>,
}

const NO_HINT: u64 = u64::MAX;
/// Failed creates in a row before a commit lists the journal instead of probing on.
const PROBES_MAX: u32 = 8;

impl Branch {
    pub fn name(&self) -> &BranchName {
        &self.name
    }

    /// Commits `bytes` as one new data object; returns the commit's index.
    pub async fn commit(&self, bytes: &[u8]) -> Result<u64, MergeError> {
        let id = new_id();
        self.commit_change(&id, vec![Object::new(format!("o-{id}"), bytes)], vec![])
            .await
    }

    /// Commits a change: objects added and objects deleted. Claimed at the journal's end with
    /// create-if-absent (retried at the new end if another writer got there first). A create
    /// whose answer was lost is read back: the commit's `id` tells ours from another writer's,
    /// so a commit is never written twice.
    pub async fn commit_change(
        &self,
        id: &str,
        add: Vec<Object>,
        delete: Vec<String>,
    ) -> Result<u64, MergeError> {
        if let Some(bad) = add
            .iter()
            .map(|o| o.name.as_str())
            .chain(delete.iter().map(String::as_str))
            .find(|n| n.is_empty() || n.len() > 1024)
        {
            return Err(MergeError::InvalidObject(format!(
                "object names are 1 to 1024 bytes, not {:?}",
                bad.chars().take(40).collect::<String>()
            )));
        }
        let store = self.lake.store();
        let journal = self.name.commits();
        let entry = CommitEntry::Commit {
            v: FORMAT_VERSION,
            id: id.to_owned(),
            add,
            delete,
            written_at_ms: wall_ms(),
        };
        let bytes = encode(&entry);
        let (mut errors, mut probes) = (0, 0);
        let hint = self.end_hint.load(std::sync::atomic::Ordering::Relaxed);
        let mut index = if hint == NO_HINT {
            journal.end(store).await?
        } else {
            hint
        };
        loop {
            match store.create(&journal.key(index), &bytes).await {
                Ok(Created::Created(_)) => {
                    self.end_hint
                        .store(index + 1, std::sync::atomic::Ordering::Relaxed);
                    return Ok(index);
                }
                Ok(Created::AlreadyExists) => {
                    if crate::mutants::active(
                        crate::mutants::Mutant::MergeCommitTrustsAlreadyExists,
                    ) || self.is_ours(index, id).await?
                    {
                        return Ok(index); // an earlier attempt of ours landed
                    }
                    probes += 1;
                    index = if probes % PROBES_MAX == 0 {
                        journal.end(store).await?
                    } else {
                        index + 1
                    };
                }
                Err(error) => {
                    errors += 1;
                    if errors > 3 {
                        return Err(error.into());
                    }
                    // It may have landed: the next round's create at the same index finds it
                    // and reads it back.
                }
            }
        }
    }

    async fn is_ours(&self, index: u64, id: &str) -> Result<bool, MergeError> {
        let journal = self.name.commits();
        Ok(matches!(
            journal.get::<CommitEntry>(self.lake.store(), index).await?,
            Some(CommitEntry::Commit { id: found, .. }) if found == id
        ))
    }

    /// This branch's journal as readers see it.
    pub async fn log(&self) -> Result<Vec<LogEntry>, MergeError> {
        read::log(self.lake.store(), &self.name).await
    }

    /// The child's TAIL/BASE (`None` for a root branch).
    pub async fn tailbase(&self) -> Result<Option<(u64, TailBase)>, MergeError> {
        self.name.tailbase().newest(self.lake.store()).await
    }
}

/// A commit id: random, for telling our own commit from another writer's after a lost answer.
pub fn new_id() -> String {
    crate::json::fresh_id()
}
