//! The redo log of a session commit: lockstep's fixed protocol (specs/redo.md), over any
//! [`Store`]. Origin: OpenViking PR 431's `session.commit` and its redo log.
//!
//! A user adds messages to a session. A commit archives the live messages (phase 1), then
//! extracts memories from the archive, writes them, enqueues one semantic item and marks the
//! archive done (phase 2). The archive is the redo record: a commit that crashed in phase 2 is
//! replayed by [`Sessions::recover`] once the store proves its committer dead. A worker
//! ([`Sessions::work_once`]) delivers each semantic item at least once and applies its effect
//! exactly once (the effect is one create keyed by the item).
//!
//! ```no_run
//! # async fn demo() -> Result<(), lockstep::redo::RedoError> {
//! use lockstep::redo::{RedoOptions, Sessions};
//! use lockstep::store::FsStore;
//!
//! let sessions = Sessions::open(FsStore::open("/var/lib/agent/.lockstep")?, RedoOptions::default()).await?;
//! sessions.add("chat-1", "the user prefers tea").await?;
//! let committed = sessions.commit("chat-1").await?;
//! sessions.work_once().await?;
//! # let _ = committed;
//! # Ok(()) }
//! ```
//!
//! Modules: `keys` (names and keys), `entry` (the JSON entries), `extract` (the pluggable
//! extractor), `commit` (phase 1), `phase2` (phase 2, shared by commit and recovery), `queue`
//! (the keyed semantic queue and its worker), `recover`, `inspect` (what the store holds).

mod commit;
pub mod entry;
pub mod extract;
pub mod inspect;
pub mod keys;
mod phase2;
pub mod queue;
mod recover;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

pub use commit::Committed;
pub use extract::{EchoExtractor, ExtractError, MemoryExtractor};
pub use inspect::{inspect, inspect_session, owners_to_keep, SessionView, StoreView};
pub use keys::SessionName;
pub use queue::Worked;
pub use recover::{RecoveredRedo, RedoRecovery};

use crate::lock::owner::ProcessId;
use crate::lock::{LockError, LockManager, LockOptions};
use crate::store::{Created, Key, Store, StoreError};
use crate::sync::Mutex;

/// What can go wrong. Each error says whether anything changed.
#[derive(Debug, thiserror::Error)]
pub enum RedoError {
    #[error("invalid session name {name:?}: {reason}")]
    InvalidSession { name: String, reason: String },
    #[error("invalid message: {0}")]
    InvalidMessage(String),
    /// The session lock is held by another commit; nothing was changed.
    #[error("session {session} is being committed by {holder}{}", waited_text(.waited))]
    Busy {
        session: SessionName,
        holder: String,
        waited: Option<Duration>,
    },
    /// Another recovery is running; nothing was changed.
    #[error("another redo recovery is running ({holder})")]
    RecoveryBusy { holder: String },
    #[error("the session lock: {0}")]
    Lock(#[source] LockError),
    /// An entry this build cannot read: nothing is guessed, nothing is changed.
    #[error("cannot read {key}: {reason}")]
    Corrupt { key: String, reason: String },
    /// Phase 2 stopped at the extraction: archive `index` is pending, and recovery replays it
    /// once this process has ended (or at once, from this process: [`Sessions::recover`]).
    #[error("archive {index} of {session} was written, but {source}; its phase 2 is pending and `lockstep recover` replays it")]
    Extraction {
        session: SessionName,
        index: u64,
        #[source]
        source: ExtractError,
    },
    /// A store error after the archive was (or may have been) written: phase 2 is pending.
    #[error("archive {index} of {session} may be written, but phase 2 stopped: {source}; `lockstep recover` finishes it")]
    Phase2 {
        session: SessionName,
        index: u64,
        #[source]
        source: StoreError,
    },
    #[error("the store refused to create {key} as existing, but nothing can be read there: it breaks create-if-absent")]
    CreateRefused { key: String },
    /// The store refuses an entry this large; nothing was written, nothing is pending.
    #[error("{0}")]
    TooLarge(StoreError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn waited_text(waited: &Option<Duration>) -> String {
    match waited {
        Some(d) => format!("; waited {:.1} s", d.as_secs_f64()),
        None => "; the lock timeout is 0".into(),
    }
}

/// Settings of a [`Sessions`] handle.
#[derive(Clone, Debug)]
pub struct RedoOptions {
    /// How long a commit waits for a session lock another commit holds (`Some(ZERO)`: fail at
    /// once with [`RedoError::Busy`]; `None`: wait as long as it takes).
    pub lock_timeout: Option<Duration>,
    /// The session lock's lease (renewed while the commit runs).
    pub lease: Duration,
    /// Retries of a write that returned an error (its outcome unknown) before giving up.
    pub io_retries: u32,
    /// Whether commits take the session lock at all. Safety does not rest on it (the model's
    /// `no-session-lock` world, specs/redo.md §6); it only saves the work of a commit that
    /// would find nothing left to archive. `false` is for tests.
    pub session_lock: bool,
    /// Replays recovery runs at once (archives share no keys, so their replays commute; 1
    /// replays one after another, in index order, as the model's recovery does).
    pub replays_at_once: usize,
}

impl Default for RedoOptions {
    fn default() -> Self {
        RedoOptions {
            lock_timeout: Some(Duration::ZERO),
            lease: Duration::from_secs(300),
            io_retries: 3,
            session_lock: true,
            replays_at_once: 32,
        }
    }
}

/// The sessions of one store, with this process's owner registration (through its path-lock
/// manager, so that the store can prove a crashed committer or worker dead).
pub struct Sessions {
    store: Arc<dyn Store>,
    /// The path locks (the session lock, recovery's lock), with this process's registration.
    /// `None` once `shutdown` or `kill` took it, or for a handle opened without path locks.
    locks: Option<LockManager>,
    /// A handle without path locks (`open_unlocked`) holds its registration itself.
    registration: Mutex<Option<Box<dyn crate::store::OwnerRegistration>>>,
    process: ProcessId,
    extractor: Arc<dyn MemoryExtractor>,
    options: RedoOptions,
    /// Archives whose commit in this process gave up in phase 2 (their committer has ended,
    /// which only this process knows): `recover` from this process replays them too.
    abandoned: Mutex<BTreeSet<(SessionName, u64)>>,
    /// This handle gave up something only its death frees: an item its worker had claimed, or
    /// a path lock whose release failed (else a session would stay locked for the lease, as
    /// openviking 0.2.11's does for 300 s). It then ends its registration as a crash.
    gave_up: std::sync::atomic::AtomicBool,
}

impl Drop for Sessions {
    fn drop(&mut self) {
        self.end_for_recovery();
    }
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sessions({})", self.store.describe())
    }
}

impl Sessions {
    /// Opens the sessions of `store` with the built-in [`EchoExtractor`].
    pub async fn open(store: impl Store, options: RedoOptions) -> Result<Sessions, RedoError> {
        Sessions::open_with(
            store,
            options,
            Arc::new(EchoExtractor),
            ProcessId::current(),
        )
        .await
    }

    /// Opens with an extractor of your own, as `process` (test harnesses give each simulated
    /// committer its own identity, so that its crash is provable).
    pub async fn open_with(
        store: impl Store,
        options: RedoOptions,
        extractor: Arc<dyn MemoryExtractor>,
        process: ProcessId,
    ) -> Result<Sessions, RedoError> {
        let store: Arc<dyn Store> = Arc::new(store);
        let lease = options.lease.max(Duration::from_millis(30));
        let lock_options = LockOptions {
            timeout: options.lock_timeout,
            lease,
            renew_every: lease / 3,
            // Recovery of stuck path locks is `lockstep recover`'s; an acquisition already
            // treats the entry of a holder proven dead as free.
            cleanup_every: None,
            ..LockOptions::default()
        };
        let locks = LockManager::start_as(Arc::clone(&store), lock_options, process.clone())
            .await
            .map_err(RedoError::Lock)?;
        Ok(Sessions {
            store,
            locks: Some(locks),
            registration: Mutex::new(None),
            process,
            extractor,
            options,
            abandoned: Mutex::new(BTreeSet::new()),
            gave_up: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// A handle with no path locks at all (loom, whose threads cannot run the lock manager's
    /// background tasks): commits take no session lock, and `recover` is refused. Its own
    /// owner registration still proves its death.
    #[doc(hidden)]
    pub async fn open_unlocked(
        store: impl Store,
        options: RedoOptions,
        process: ProcessId,
    ) -> Result<Sessions, RedoError> {
        let store: Arc<dyn Store> = Arc::new(store);
        let registration = store.register_owner(&process.key()).await?;
        Ok(Sessions {
            store,
            locks: None,
            registration: Mutex::new(registration),
            process,
            extractor: Arc::new(EchoExtractor),
            options: RedoOptions {
                session_lock: false,
                ..options
            },
            abandoned: Mutex::new(BTreeSet::new()),
            gave_up: std::sync::atomic::AtomicBool::new(false),
        })
    }

    pub fn store(&self) -> &dyn Store {
        &*self.store
    }

    pub fn options(&self) -> &RedoOptions {
        &self.options
    }

    /// Adds a message to `session`; returns its id. Ids sort in the order messages were added:
    /// by the adder's wall clock, never going back within one process (two adds in the same
    /// millisecond take consecutive values), then at random.
    pub async fn add(&self, session: &str, text: &str) -> Result<String, RedoError> {
        let session = SessionName::new(session)?;
        if text.len() > MESSAGE_BYTES_MAX {
            return Err(RedoError::InvalidMessage(format!(
                "{} bytes; a message is at most {MESSAGE_BYTES_MAX} bytes",
                text.len()
            )));
        }
        let now = entry::wall_ms();
        let id = format!("{:013}-{}", id_ms(now), entry::fresh_id());
        let bytes = entry::encode(&entry::MessageEntry {
            v: entry::FORMAT_VERSION,
            text: text.to_owned(),
            added_at_ms: now,
        });
        // The id is fresh: `AlreadyExists` can only be our own create whose answer was lost.
        let _ = self.create_retrying(&session.message(&id), &bytes).await?;
        Ok(id)
    }

    /// Commits `session` (specs/redo.md §4): phase 1 archives its live messages, phase 2 writes
    /// their memories and enqueues their semantic item.
    pub async fn commit(&self, session: &str) -> Result<Committed, RedoError> {
        commit::commit(self, &SessionName::new(session)?).await
    }

    /// Phase 1 alone (benchmarks): the archive index written, or `None`. Its phase 2 stays
    /// pending, for this process to finish or for recovery once the process has ended.
    #[doc(hidden)]
    pub async fn commit_phase1(&self, session: &str) -> Result<Option<u64>, RedoError> {
        Ok(commit::phase1(self, &SessionName::new(session)?)
            .await?
            .map(|(k, _)| k))
    }

    /// Replays phase 2 of every archive without `done` whose committer the store proves dead
    /// (or that a commit of this process gave up on), and frees the queue claims of workers the
    /// store proves dead. One recovery runs at a time (it takes a path lock of its own).
    pub async fn recover(&self) -> Result<RedoRecovery, RedoError> {
        recover::recover(self).await
    }

    /// One pass of a semantic-queue worker: claims and processes every pending row it can.
    pub async fn work_once(&self) -> Result<Worked, RedoError> {
        queue::work(self, usize::MAX).await
    }

    /// As [`Sessions::work_once`], processing at most `items` items (oldest key first).
    pub async fn work(&self, items: usize) -> Result<Worked, RedoError> {
        queue::work(self, items).await
    }

    /// Ends this handle as a crash of its process would (crash-injection harnesses): its
    /// owner is provably dead afterwards, and nothing is released.
    #[doc(hidden)]
    pub async fn kill(self) {
        let mut this = self;
        crate::sync::lock(&this.abandoned).clear();
        if let Some(locks) = this.locks.take() {
            locks.kill().await;
        }
        let registration = crate::sync::lock(&this.registration).take();
        if let Some(registration) = registration {
            registration.end_as_crash();
        }
    }

    /// Releases what is held and stops the background tasks.
    pub async fn shutdown(self) {
        let mut this = self;
        this.end_for_recovery();
        if let Some(locks) = this.locks.take() {
            locks.shutdown().await;
        }
    }

    /// If a commit of this handle gave up in phase 2, or a worker gave up an item it claimed,
    /// ends the owner registration as a crash would, so that the store proves the owner dead:
    /// recovery replays the archive and frees the claim (a clean end makes the owner's liveness
    /// unknown, and nobody would ever finish either).
    fn end_for_recovery(&self) {
        let gave_up = self.gave_up.load(std::sync::atomic::Ordering::SeqCst);
        if gave_up || !crate::sync::lock(&self.abandoned).is_empty() {
            if let Some(locks) = &self.locks {
                locks.end_registration_as_crash();
            }
            let registration = crate::sync::lock(&self.registration).take();
            if let Some(registration) = registration {
                registration.end_as_crash();
            }
        }
    }

    /// Records that this handle gave up something only its death frees (see `gave_up`).
    pub(crate) fn give_up(&self) {
        self.gave_up
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// A fresh owner id of this process (a worker's claims).
    fn new_owner(&self) -> String {
        self.process.owner()
    }

    fn locks(&self) -> Result<&LockManager, RedoError> {
        // `shutdown` and `kill` consume the handle: only `open_unlocked` has none.
        self.locks.as_ref().ok_or_else(|| {
            RedoError::Lock(LockError::InvalidRequest(
                "this handle was opened without path locks".into(),
            ))
        })
    }

    /// Creates `key`, retrying a create that returned an error (it may have landed: the retry
    /// then finds it). `AlreadyExists` is returned to the caller, who reads back whose it is.
    async fn create_retrying(&self, key: &Key, bytes: &[u8]) -> Result<Created, StoreError> {
        let mut errors = 0;
        loop {
            match self.store.create(key, bytes).await {
                Ok(created) => return Ok(created),
                Err(error) => {
                    errors += 1;
                    if errors > self.options.io_retries {
                        return Err(error);
                    }
                    tracing::debug!(%key, %error, "create failed; retrying (it may have landed)");
                }
            }
        }
    }

    /// Deletes `key`, retrying (deletes are idempotent).
    async fn delete_retrying(&self, key: &Key) -> Result<(), StoreError> {
        let mut errors = 0;
        loop {
            match self.store.delete(key).await {
                Ok(()) => return Ok(()),
                Err(error) => {
                    errors += 1;
                    if errors > self.options.io_retries {
                        return Err(error);
                    }
                }
            }
        }
    }

    /// Reads and decodes `key`.
    async fn read<T: serde::de::DeserializeOwned>(
        &self,
        key: &Key,
    ) -> Result<Option<T>, RedoError> {
        entry::read(&*self.store, key).await
    }
}

/// Longest message, in bytes.
pub const MESSAGE_BYTES_MAX: usize = 1 << 20;

/// The millisecond part of a message id: the wall clock, but above every value this process
/// handed out before, so that one adder's ids sort in the order of its adds (phase 1 deletes
/// archived messages in id order, and readers list them so).
fn id_ms(now: u64) -> u64 {
    static LAST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut last = LAST.load(std::sync::atomic::Ordering::Relaxed);
    loop {
        let next = now.max(last + 1);
        match LAST.compare_exchange_weak(
            last,
            next,
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
        ) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

/// Every session with at least one key in the store.
pub async fn session_names(store: &dyn Store) -> Result<Vec<SessionName>, StoreError> {
    let mut names: Vec<SessionName> = Vec::new();
    for key in store.list(keys::SESSIONS).await? {
        if let Some(name) = keys::session_of(&key, keys::SESSIONS) {
            if names.last() != Some(&name) {
                names.push(name);
            }
        }
    }
    names.dedup();
    Ok(names)
}
