//! The lock manager: one per process. It takes locks for operations, keeps their leases renewed,
//! releases what guards drop, withdraws what cancelled acquisitions leave, cleans up expired
//! locks, and at start releases the locks of dead processes of this host.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;

use super::acquire::{acquire_one, wall_ms, withdraw_if_ours, Acquired, Deadline, Retries};
use super::commit;
use super::entry::{Entry, LockKind, ReleasedBy};
use super::journal;
use super::lease::{LeaseCell, Renewal};
use super::owner::{process_part, ProcessId};
use super::path::LockPath;
use super::shared::{Job, Lease, Shared, COLLECTS_QUEUED};
use super::{LockError, LockOptions, Operation};
use crate::store::{Liveness, Store, StoreError};
use std::sync::Arc;

use crate::sync::{lock, AtomicU64, Mutex, Ordering};

/// Takes locks for operations. Dropping the manager stops its background tasks; prefer
/// [`LockManager::shutdown`], which releases what is still held.
pub struct LockManager {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl LockManager {
    /// Starts a manager over `store`: registers this process as an owner, then starts the
    /// background tasks (renewal, cleanup, releases of dropped guards).
    pub async fn start(store: impl Store, options: LockOptions) -> Result<LockManager, LockError> {
        LockManager::start_as(store, options, ProcessId::current()).await
    }

    /// Like [`LockManager::start`], with the process identity its owner ids carry (the
    /// cross-tests give each simulated client the identity of a real process of its own, so that
    /// recovery can see it die).
    #[doc(hidden)]
    pub async fn start_as(
        store: impl Store,
        options: LockOptions,
        process: ProcessId,
    ) -> Result<LockManager, LockError> {
        assert!(
            options.renew_every < options.lease,
            "leases must be renewed before they run out"
        );
        let (jobs, receiver) = mpsc::unbounded_channel();
        let commits = store.offers_commits();
        let shared = Arc::new(Shared {
            store: Arc::new(store),
            process,
            options,
            observations: Mutex::new(HashMap::new()),
            leases: Mutex::new(BTreeMap::new()),
            jobs,
            collects_queued: AtomicU64::new(0),
            registration: Mutex::new(None),
            dead: Mutex::new(Default::default()),
            newest_ticket: Mutex::new(0),
            heads: Mutex::new(super::commit::Heads::new(commits)),
            commits,
        });
        // Register as an owner before the first entry names us, so that the store can prove our
        // death to others (and nothing else ever does).
        // If the store cannot register us (a full disk), we run unregistered: others then know
        // nothing of our liveness, and only expiry frees what we leave behind, which is safe.
        match shared.store.register_owner(&shared.process.key()).await {
            Ok(registration) => *lock(&shared.registration) = registration,
            Err(error) => {
                tracing::warn!(%error, "cannot register as an owner; our locks will be freed only by expiry if we die")
            }
        }
        // No recovery pass over every journal here: an acquisition treats the entry of an owner
        // proven dead as expired when it meets it, and the cleaner and `lockstep recover` walk
        // the store. A start costs the same whatever the store holds.
        let mut tasks = vec![
            tokio::spawn(run_jobs(Arc::clone(&shared), receiver)),
            tokio::spawn(run_renewals(Arc::clone(&shared))),
        ];
        if let Some(every) = shared.options.cleanup_every {
            tasks.push(tokio::spawn(run_cleanups(Arc::clone(&shared), every)));
        }
        Ok(LockManager { shared, tasks })
    }

    /// The descriptor a child process can inherit to keep this manager's owner alive while it
    /// runs (see `OwnerRegistration::inheritable_fd`).
    pub fn registration_fd(&self) -> Option<i32> {
        lock(&self.shared.registration)
            .as_ref()
            .and_then(|r| r.inheritable_fd())
    }

    pub fn options(&self) -> &LockOptions {
        &self.shared.options
    }

    /// A fresh owner id of this manager's process: the store proves it dead when this manager's
    /// registration ends (the redo log's archives and queue claims are owned this way).
    pub fn new_owner(&self) -> String {
        self.shared.process.owner()
    }

    pub fn store(&self) -> &dyn Store {
        &*self.shared.store
    }

    /// Whether the store ended this manager's owner registration behind its back (see
    /// [`LockError::RegistrationLost`]).
    pub fn registration_lost(&self) -> bool {
        lock(&self.shared.registration)
            .as_ref()
            .is_some_and(|registration| registration.lost())
    }

    /// Takes every lock of `operation` (in path order) under one `lock_timeout`. On failure the
    /// locks already taken are withdrawn (they were never used) and no entry of this attempt is
    /// left held.
    pub async fn lock(&self, operation: Operation) -> Result<Guard, LockError> {
        if self.registration_lost() {
            return Err(LockError::RegistrationLost);
        }
        let owner = self.shared.process.owner();
        let deadline = Deadline::from_timeout(self.shared.options.timeout);
        let mut retries = Retries::new(self.shared.options.retries_max);
        let mut guard = Guard {
            shared: Arc::clone(&self.shared),
            owner,
            leases: Vec::new(),
            released: false,
        };
        let locks = operation.locks();
        let mut next = 0;
        while next < locks.len() {
            let (path, kind) = &locks[next];
            let held_newest = guard.leases.iter().map(|l| l.token).max();
            match acquire_one(
                &self.shared,
                &guard.owner,
                path,
                *kind,
                deadline,
                held_newest,
                &mut retries,
            )
            .await
            {
                Ok(Acquired::Granted(granted)) => {
                    let lease = Arc::new(Lease {
                        path: path.clone(),
                        kind: *kind,
                        token: granted.token,
                        owner: guard.owner.clone(),
                        held_since_ms: wall_ms(),
                        marks: granted.marks,
                        cell: LeaseCell::new(granted.index, granted.lease_started),
                        renewed: Notify::new(),
                    });
                    lock(&self.shared.leases).insert(granted.token, Arc::clone(&lease));
                    guard.leases.push(lease);
                    next += 1;
                }
                Ok(Acquired::BackOff) => {
                    // Wait-die: give back what the operation holds and start it over. If a
                    // withdraw fails, give up instead (its entry is left to expire).
                    let spent = retries.left.checked_sub(1);
                    guard.withdraw_all().await?;
                    let Some(left) = spent else {
                        return Err(LockError::RetriesExhausted {
                            path: path.clone(),
                            retries: retries.spent,
                        });
                    };
                    retries.left = left;
                    retries.spent += 1;
                    next = 0;
                }
                Err(error) => {
                    let _ = guard.withdraw_all().await;
                    return Err(error);
                }
            }
        }
        // Every lease of the operation must still be live when the caller gets it: an earlier
        // lock may have run out while a later one was awaited (and been taken over).
        if let Err(error) = guard.check() {
            let _ = guard.withdraw_all().await;
            return Err(error);
        }
        Ok(guard)
    }

    /// Renews every held lease now (the background task does this every `renew_every`). A
    /// lease being released, or renewed by the background task at this moment, is left to that.
    /// `LeaseLost` if any lock is lost (found superseded by this renewal or an earlier one);
    /// else the first other error; `Ok` if every other lease was renewed. (A lost lock comes
    /// first here, since the caller must stop using it; [`Guard::release`] puts a store error
    /// first, since a failed release leaves a lock held.)
    pub async fn renew_all(&self) -> Result<(), LockError> {
        let renewed = renew_all(&self.shared).await;
        let held: Vec<Arc<Lease>> = lock(&self.shared.leases).values().cloned().collect();
        match held.iter().find(|lease| lease.cell.snapshot().lost) {
            Some(lease) => Err(LockError::LeaseLost {
                path: lease.path.clone(),
                token: lease.token,
            }),
            None => renewed,
        }
    }

    /// Runs one pass of the stale-lock cleaner now.
    pub async fn clean_up(&self) -> Result<Vec<Recovered>, LockError> {
        clean_up(&self.shared).await
    }

    /// Stops the background tasks at once and waits until they are gone, releasing nothing: what
    /// a crash of the process does to them (for crash-injection harnesses).
    #[doc(hidden)]
    pub async fn kill(mut self) {
        for task in &self.tasks {
            task.abort();
        }
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
        // The process is gone: so is its registration (the kernel would drop its flock).
        if let Some(registration) = lock(&self.shared.registration).take() {
            registration.end_as_crash();
        }
    }

    /// Ends this manager's owner registration as a crash would, now, and keeps running: the
    /// store proves its owners dead from here on. For a user of the registration that gave up
    /// work only recovery can finish (the redo log's abandoned phase 2), which must not be left
    /// to an owner whose clean end makes its liveness unknown.
    pub fn end_registration_as_crash(&self) {
        if let Some(registration) = lock(&self.shared.registration).take() {
            registration.end_as_crash();
        }
    }

    /// Waits until the background task has done every job queued before this call (withdraws
    /// of cancelled acquisitions, releases of dropped guards, the garbage releases left behind).
    pub async fn settle(&self) {
        let _ = self.flush().await;
    }

    /// [`LockManager::settle`]; `false` if the background task is gone.
    async fn flush(&self) -> bool {
        let (done, finished) = tokio::sync::oneshot::channel();
        self.shared.send(Job::Flush(done));
        finished.await.is_ok()
    }

    /// Releases every lock still held, waits for the background work queued so far (see
    /// [`LockManager::settle`]), and stops the background tasks. A manager dropped without it
    /// may leave the garbage of its last releases to the next sweep or to `lockstep gc`.
    pub async fn shutdown(self) {
        let held: Vec<Arc<Lease>> = lock(&self.shared.leases).values().cloned().collect();
        for lease in held {
            let _ = release_lease(&self.shared, &lease).await;
        }
        // A dropped guard's release that the background task is running as we flush queues its
        // deletes behind our flush: flush until no delete is queued (or the task is gone).
        while self.flush().await && self.shared.collects_queued.load(Ordering::SeqCst) > 0 {}
    }
}

impl Drop for LockManager {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The locks of one operation. Every write to what they protect carries [`Guard::token`].
/// Dropping a guard releases its locks in the background; [`Guard::release`] does it now and
/// reports errors.
pub struct Guard {
    shared: Arc<Shared>,
    owner: String,
    leases: Vec<Arc<Lease>>,
    released: bool,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("owner", &self.owner)
            .field("tokens", &self.tokens())
            .finish()
    }
}

impl Guard {
    /// Each lock of the operation with its own fencing token. A write fences with the token of
    /// the lock that covers what it writes: tokens of different locks are not comparable (a
    /// zombie's newer token for `/c` says nothing about `/a`), so an operation has no single
    /// token unless it has a single lock ([`Guard::single_token`]).
    pub fn tokens(&self) -> Vec<(LockPath, LockKind, u64)> {
        self.leases
            .iter()
            .map(|l| (l.path.clone(), l.kind, l.token))
            .collect()
    }

    /// The token of an operation of one lock; `None` for an operation of several.
    pub fn single_token(&self) -> Option<u64> {
        match self.leases.as_slice() {
            [lease] => Some(lease.token),
            _ => None,
        }
    }

    /// The token of the lock whose scope covers `path` (its own path, or for a SUBTREE lock any
    /// path below it), if this operation holds one.
    pub fn token_for(&self, path: &LockPath) -> Option<u64> {
        self.leases
            .iter()
            .find(|l| {
                l.path == *path || (l.kind == LockKind::Subtree && l.path.is_ancestor_of(path))
            })
            .map(|l| l.token)
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// `Ok` while every lease is live on this process's clock and none was found lost. Check
    /// before each guarded write; the resource's token check covers a pause after it.
    pub fn check(&self) -> Result<(), LockError> {
        for lease in &self.leases {
            let state = lease.cell.snapshot();
            if state.lost || self.ran_out(&state) {
                return Err(LockError::LeaseLost {
                    path: lease.path.clone(),
                    token: lease.token,
                });
            }
        }
        Ok(())
    }

    /// Whether a lease of this guard ran out on this process's clock: the time part of
    /// [`Guard::check`] alone. **Not a substitute for `check`** before a guarded write: it does
    /// not say whether a renewal found a lock taken over or force-released. (The test vectors'
    /// replay uses it: the model's holder checks only its lease's time before writing.)
    pub fn lease_ran_out(&self) -> bool {
        self.leases
            .iter()
            .any(|lease| self.ran_out(&lease.cell.snapshot()))
    }

    fn ran_out(&self, state: &super::lease::LeaseState) -> bool {
        if crate::mutants::active(crate::mutants::Mutant::GuardIgnoresClock) {
            // Planted: a guard that trusts its lease until a renewal finds it lost.
            return false;
        }
        let now = self.shared.options.clock.now();
        now.saturating_duration_since(state.started) >= self.shared.options.lease
    }

    /// The lease of this guard's locks.
    pub fn lease(&self) -> Duration {
        self.shared.options.lease
    }

    /// Like [`Guard::check`], and also reads each lock's journal: a lock whose newest entry is no
    /// longer ours was force-released or taken over, which a renewal would only find later. A
    /// read that fails proves nothing (the lease may well be live) and is not an error here.
    pub async fn verify(&self) -> Result<(), LockError> {
        self.check()?;
        for lease in &self.leases {
            if let Ok(newest) = journal::newest(&*self.shared.store, &lease.path).await {
                let ours = newest.as_ref().is_some_and(|n| {
                    matches!(&n.entry, Entry::Acquire { owner, ticket, .. } | Entry::Renew { owner, ticket, .. } if *owner == lease.owner && *ticket == lease.token)
                });
                if !ours {
                    return Err(LockError::LeaseLost {
                        path: lease.path.clone(),
                        token: lease.token,
                    });
                }
            }
        }
        Ok(())
    }

    /// Releases every lock, newest first. Any other error (of the store) is returned before a
    /// `LeaseLost` (a lock lost meanwhile, where there was nothing of ours to release): a caller
    /// told only that one lock was lost would not know that another's release failed, and that
    /// lock is then left to expire or recovery.
    ///
    /// Cancel-safe: the releases run in a task of their own, so a caller that drops this future
    /// (a timeout, a `select!`) does not leave a lease that is neither renewed nor released.
    pub async fn release(mut self) -> Result<(), LockError> {
        self.released = true;
        let (shared, leases) = (Arc::clone(&self.shared), std::mem::take(&mut self.leases));
        if crate::mutants::active(crate::mutants::Mutant::ReleaseInCaller) {
            return release_leases(&shared, &leases).await;
        }
        let task = tokio::spawn(async move { release_leases(&shared, &leases).await });
        task.await.map_err(|e| {
            LockError::Store(StoreError::Unavailable(format!(
                "the release task failed: {e}"
            )))
        })?
    }

    /// Withdraws every lock of an operation that never reached its caller (it failed or
    /// backed off): `withdraw` entries raise no high-water mark, so an older contender is not
    /// sent back by a lock that never wrote. Errors leave the entry to expiry.
    async fn withdraw_all(&mut self) -> Result<(), LockError> {
        let mut first_error = Ok(());
        for lease in std::mem::take(&mut self.leases).iter().rev() {
            lock(&self.shared.leases).remove(&lease.token);
            if !lease.cell.claim_release() {
                continue;
            }
            let released = crate::mutants::active(crate::mutants::Mutant::ReleaseUnused);
            let result = if released {
                release_lease_now(&self.shared, lease).await
            } else {
                withdraw_if_ours(
                    &self.shared,
                    &lease.owner,
                    &lease.path,
                    lease.token,
                    Some(lease.marks),
                )
                .await
            };
            if let Err(error) = result {
                tracing::warn!(path = %lease.path, %error, "could not withdraw an unused lock; it will expire");
                if first_error.is_ok() {
                    first_error = Err(error);
                }
            }
        }
        first_error
    }
}

/// Releases `leases`, newest first; the first error, after trying every one.
async fn release_leases(shared: &Shared, leases: &[Arc<Lease>]) -> Result<(), LockError> {
    let mut errors = Vec::new();
    for lease in leases.iter().rev() {
        if let Err(error) = release_lease(shared, lease).await {
            errors.push(error);
        }
    }
    first_error(errors)
}

/// The error to report of several: the first that is not `LeaseLost` (a failure the caller
/// must hear of), else the first.
fn first_error(errors: Vec<LockError>) -> Result<(), LockError> {
    let lost = |e: &LockError| matches!(e, LockError::LeaseLost { .. });
    let at = if crate::mutants::active(crate::mutants::Mutant::LostHidesStoreError) {
        0 // planted: whichever came first
    } else {
        errors.iter().position(|e| !lost(e)).unwrap_or(0)
    };
    match errors.into_iter().nth(at) {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if !self.released && !self.leases.is_empty() {
            self.shared
                .send(Job::Release(std::mem::take(&mut self.leases)));
        }
    }
}

/// Appends `release` right after the lease's newest own entry, after any renewal in flight.
async fn release_lease(shared: &Shared, lease: &Lease) -> Result<(), LockError> {
    if !lease.cell.claim_release() {
        return Ok(());
    }
    let (index, lost) = loop {
        let renewed = lease.renewed.notified();
        if let Some(ready) = lease.cell.release_ready() {
            break ready;
        }
        renewed.await;
    };
    lock(&shared.leases).remove(&lease.token);
    if lost {
        return Err(LockError::LeaseLost {
            path: lease.path.clone(),
            token: lease.token,
        });
    }
    append_release(shared, lease, index).await
}

/// A release of a lease not yet claimed by anyone else (mutant `release-unused` only).
async fn release_lease_now(shared: &Shared, lease: &Lease) -> Result<(), LockError> {
    let Some((index, lost)) = lease.cell.release_ready() else {
        return Ok(());
    };
    if lost {
        return Ok(());
    }
    append_release(shared, lease, index).await
}

async fn append_release(shared: &Shared, lease: &Lease, index: u64) -> Result<(), LockError> {
    let marks = lease.marks.with(lease.kind, lease.token);
    let release = Entry::Release {
        kind: lease.kind,
        ticket: lease.token,
        by: ReleasedBy::Holder,
        written_at_ms: wall_ms(),
        marks,
    };
    let index = if crate::mutants::active(crate::mutants::Mutant::BlindRelease) {
        // Planted bug: release after whatever is newest now, not after our own entry.
        journal::newest(&*shared.store, &lease.path)
            .await?
            .map_or(index, |n| n.index)
    } else {
        index
    };
    let mut at = index + 1;
    // On a store that commits at one instant: the release and the garbage it leaves behind in
    // one commit (one round trip on etcd), remembered for the next one-commit acquisition.
    let committed = commit::release_at_once(shared, &lease.path, at, &release).await?;
    if committed == Some(true) {
        return Ok(());
    }
    if committed == Some(false)
        || !journal::append(&*shared.store, &lease.path, at, &release).await?
    {
        // The index is taken: superseded, or by our own renewal whose reply was lost. A read of
        // the newest entry tells; if it is ours, the release follows it.
        let newest = journal::newest(&*shared.store, &lease.path).await?;
        let ours = newest.as_ref().is_some_and(|n| {
            matches!(&n.entry, Entry::Renew { owner, ticket, .. } | Entry::Acquire { owner, ticket, .. } if *owner == lease.owner && *ticket == lease.token)
        });
        let Some(newest) = newest.filter(|_| ours) else {
            return Err(LockError::LeaseLost {
                path: lease.path.clone(),
                token: lease.token,
            });
        };
        at = newest.index + 1;
        if !journal::append(&*shared.store, &lease.path, at, &release).await? {
            return Err(LockError::LeaseLost {
                path: lease.path.clone(),
                token: lease.token,
            });
        }
    }
    // The entries below our release are needed by no reader any more: deleted lazily (no
    // `fsync`; specs/lock.md §12; the two we know of without a listing), by the background
    // task, so that the caller does not wait for the deletes' discards. Deleting below an entry
    // that exists is safe at any later moment (§12, "Deletes"). With `COLLECTS_QUEUED` queued
    // already, the caller collects now: bounded memory.
    if shared.collects_queued.fetch_add(1, Ordering::SeqCst) < COLLECTS_QUEUED {
        shared.send(Job::Collect {
            path: lease.path.clone(),
            at,
        });
    } else {
        shared.collects_queued.fetch_sub(1, Ordering::SeqCst);
        let _ = journal::collect_after_own(&*shared.store, &lease.path, at).await;
    }
    Ok(())
}

async fn renew_lease(shared: &Shared, lease: &Lease) -> Result<(), LockError> {
    let Some(index) = lease.cell.begin_renew() else {
        return Ok(());
    };
    let started = shared.options.clock.now();
    let renew = Entry::Renew {
        owner: lease.owner.clone(),
        kind: lease.kind,
        ticket: lease.token,
        lease_ms: shared.options.lease.as_millis() as u64,
        held_since_ms: lease.held_since_ms,
        written_at_ms: wall_ms(),
        // The same grant: the marks our `acquire` carried.
        marks: lease.marks,
    };
    let at = if crate::mutants::active(crate::mutants::Mutant::BlindRenew) {
        // Planted: the key after whatever is newest, not right after our own entry (the lease
        // still takes the renewal as landed right after its own).
        match journal::newest(&*shared.store, &lease.path).await {
            Ok(Some(newest)) => newest.index,
            _ => index,
        }
    } else {
        index
    };
    let result = journal::append(&*shared.store, &lease.path, at + 1, &renew).await;
    let outcome = match &result {
        Ok(true) => Renewal::Landed {
            index: index + 1,
            started,
        },
        // The index is taken: by our own renewal whose reply was lost, or by someone else.
        Ok(false) => match own_newest(shared, lease).await {
            Ok(Some(newest)) if newest > index => Renewal::Adopted { index: newest },
            Ok(_) => Renewal::Superseded,
            Err(_) => Renewal::Failed,
        },
        Err(_) => Renewal::Failed,
    };
    lease.cell.end_renew(outcome);
    lease.renewed.notify_waiters();
    match (outcome, result) {
        (Renewal::Landed { index, .. } | Renewal::Adopted { index }, _) => {
            let _ = journal::collect_below(&*shared.store, &lease.path, index).await;
            Ok(())
        }
        (Renewal::Superseded, _) => {
            tracing::warn!(path = %lease.path, token = lease.token, "lease lost: the lock was superseded");
            Err(LockError::LeaseLost {
                path: lease.path.clone(),
                token: lease.token,
            })
        }
        (Renewal::Failed, Err(error)) => Err(error),
        (Renewal::Failed, Ok(_)) => Err(LockError::Unsettled {
            path: lease.path.clone(),
        }),
    }
}

/// The index of the newest entry of the lease's journal if it is ours (our owner and ticket).
async fn own_newest(shared: &Shared, lease: &Lease) -> Result<Option<u64>, LockError> {
    let newest = journal::newest(&*shared.store, &lease.path).await?;
    Ok(newest.filter(|n| {
        matches!(&n.entry, Entry::Renew { owner, ticket, .. } | Entry::Acquire { owner, ticket, .. } if *owner == lease.owner && *ticket == lease.token)
    })
    .map(|n| n.index))
}

async fn renew_all(shared: &Shared) -> Result<(), LockError> {
    let held: Vec<Arc<Lease>> = lock(&shared.leases).values().cloned().collect();
    let mut first = Ok(());
    for lease in held {
        if let Err(error) = renew_lease(shared, &lease).await {
            tracing::warn!(path = %lease.path, %error, "renewal failed");
            if first.is_ok() {
                first = Err(error);
            }
        }
    }
    first
}

async fn run_jobs(shared: Arc<Shared>, mut receiver: mpsc::UnboundedReceiver<Job>) {
    while let Some(job) = receiver.recv().await {
        match job {
            Job::Withdraw {
                path,
                ticket,
                owner,
                create,
            } => {
                if let Some(create) = create.filter(|_| {
                    !crate::mutants::active(crate::mutants::Mutant::WithdrawBeforeCreateEnds)
                }) {
                    let _ = create.await;
                }
                if let Err(error) = withdraw_if_ours(&shared, &owner, &path, ticket, None).await {
                    tracing::warn!(%path, %error, "could not withdraw a cancelled acquisition; it will expire");
                }
            }
            Job::Collect { path, at } => {
                let _ = journal::collect_after_own(&*shared.store, &path, at).await;
                shared.collects_queued.fetch_sub(1, Ordering::SeqCst);
            }
            Job::Flush(done) => {
                let _ = done.send(());
            }
            Job::Release(leases) => {
                for lease in leases.iter().rev() {
                    if let Err(error) = release_lease(&shared, lease).await {
                        tracing::warn!(path = %lease.path, %error, "release of a dropped guard failed");
                    }
                }
            }
        }
    }
}

async fn run_renewals(shared: Arc<Shared>) {
    let mut ticker = tokio::time::interval(shared.options.renew_every);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        // Each failure is logged; a lost lock shows in its guard's `check`.
        let _ = renew_all(&shared).await;
    }
}

async fn run_cleanups(shared: Arc<Shared>, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    loop {
        ticker.tick().await;
        if let Err(error) = clean_up(&shared).await {
            tracing::warn!(%error, "stale-lock cleanup failed");
        }
    }
}

/// A lock released by recovery, the cleaner or an operator.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Recovered {
    pub path: LockPath,
    pub owner: String,
    pub ticket: u64,
    pub by: ReleasedBy,
}

impl serde::Serialize for LockPath {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// The newest entry of every lock journal, and every name in the lock namespace that cannot be
/// read as one (reported, and skipped: a bad entry guards only its own journal).
pub(crate) async fn every_newest(store: &dyn Store) -> Result<journal::Scan, LockError> {
    let root = LockPath::root();
    let mut scan = journal::scan_below(store, &root).await?;
    match journal::newest(store, &root).await {
        Ok(Some(newest)) => scan.journals.insert(0, (root.clone(), newest)),
        Ok(None) => {}
        Err(LockError::Corrupt { key, reason }) => {
            scan.corrupt.insert(0, journal::Corrupt { key, reason })
        }
        Err(LockError::Store(e @ (StoreError::Foreign { .. } | StoreError::Io { .. }))) => {
            scan.corrupt.insert(
                0,
                journal::Corrupt {
                    key: root.journal_prefix(),
                    reason: e.to_string(),
                },
            )
        }
        Err(other) => return Err(other),
    }
    Ok(scan)
}

/// One pass of the cleaner: release every lock whose owner is dead (this host) or that this
/// process has watched unchanged for its lease.
async fn clean_up(shared: &Shared) -> Result<Vec<Recovered>, LockError> {
    let mut released = Vec::new();
    let scan = every_newest(&*shared.store).await?;
    for corrupt in &scan.corrupt {
        tracing::warn!(key = %corrupt.key, reason = %corrupt.reason, "the cleaner skips a lock entry that cannot be read");
    }
    for (path, newest) in scan.journals {
        let Some((owner, ticket, kind, lease_ms)) = newest.entry.holder() else {
            continue;
        };
        let dead = shared.proven_dead(owner).await;
        if !(dead || shared.judge_expired(&path, newest.index, lease_ms)) {
            continue;
        }
        let by = if dead {
            ReleasedBy::Recovery
        } else {
            ReleasedBy::Cleaner
        };
        let release = Entry::Release {
            kind,
            ticket,
            by,
            written_at_ms: wall_ms(),
            marks: newest.entry.marks_after(),
        };
        if journal::append(&*shared.store, &path, newest.index + 1, &release).await? {
            released.push(Recovered {
                path,
                owner: owner.to_owned(),
                ticket,
                by,
            });
        }
    }
    Ok(released)
}

/// Releases every lock whose owner the store proves dead. Owners it cannot prove dead (alive,
/// or unknown: another host, a store without proofs) are left to expiry.
pub async fn recover(store: &dyn Store) -> Result<Vec<Recovered>, LockError> {
    let mut released = Vec::new();
    for (path, newest) in every_newest(store).await?.journals {
        let Some((owner, ticket, kind, _)) = newest.entry.holder() else {
            continue;
        };
        if store.owner_liveness(process_part(owner)).await? != Liveness::Dead {
            continue;
        }
        let release = Entry::Release {
            kind,
            ticket,
            by: ReleasedBy::Recovery,
            written_at_ms: wall_ms(),
            marks: newest.entry.marks_after(),
        };
        if journal::append(store, &path, newest.index + 1, &release).await? {
            released.push(Recovered {
                path,
                owner: owner.to_owned(),
                ticket,
                by: ReleasedBy::Recovery,
            });
        }
    }
    Ok(released)
}

/// Operator force release of the lock on `path` (only if it holds `token`, when given). The
/// holder, if alive, is not told: it is a zombie from now on, and only fencing stops it.
/// `Ok(None)` if the path is not locked.
pub async fn force_release(
    store: &dyn Store,
    path: &LockPath,
    token: Option<u64>,
) -> Result<Option<Recovered>, LockError> {
    for _ in 0..100 {
        let Some(newest) = journal::newest(store, path).await? else {
            return Ok(None);
        };
        let Some((owner, ticket, kind, _)) = newest.entry.holder() else {
            return Ok(None);
        };
        if let Some(expected) = token {
            if expected != ticket {
                return Err(LockError::TokenMismatch {
                    path: path.clone(),
                    expected,
                    actual: ticket,
                });
            }
        }
        let release = Entry::Release {
            kind,
            ticket,
            by: ReleasedBy::Operator,
            written_at_ms: wall_ms(),
            marks: newest.entry.marks_after(),
        };
        if journal::append(store, path, newest.index + 1, &release).await? {
            return Ok(Some(Recovered {
                path: path.clone(),
                owner: owner.to_owned(),
                ticket,
                by: ReleasedBy::Operator,
            }));
        }
    }
    Err(LockError::Contended {
        what: format!("force release of {path}"),
        attempts: 100,
    })
}

/// What [`repair`] did with a bad entry.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Repaired {
    /// The journal's bad newest entry is superseded by an operator `release` at `index`, whose
    /// high-water marks are the newest ticket claimed (`mark`): whatever lock the bad entry
    /// held, its token is at most that, so fencing still stops its holder.
    Superseded {
        path: LockPath,
        index: u64,
        mark: u64,
    },
    /// The key is not the newest of its journal: no reader looks at it, nothing was changed.
    NotNewest { path: LockPath, newest: u64 },
}

/// Operator repair of a journal entry that cannot be read (`lockstep repair`): supersedes it
/// with a release, never deletes it (deleting a journal's newest entry would reuse its index).
/// Refuses an entry that reads fine (that is `force_release`'s job) and keys that are not lock
/// journal entries.
pub async fn repair(store: &dyn Store, key: &crate::store::Key) -> Result<Repaired, LockError> {
    let Some((path, index)) = LockPath::parse_entry_key(key.as_str()) else {
        return Err(LockError::InvalidRequest(format!(
            "{key} is not a lock journal entry (locks/…/~<20 digits>)"
        )));
    };
    match store.get(key).await {
        Ok(Some((bytes, _))) if Entry::decode(key.as_str(), &bytes).is_ok() => {
            return Err(LockError::InvalidRequest(format!(
                "{key} is a readable entry; to free its lock use force-release {path}"
            )));
        }
        Ok(None) => {
            return Err(LockError::InvalidRequest(format!(
                "nothing is stored at {key}"
            )))
        }
        // Unreadable, malformed, or something foreign: what repair is for.
        Ok(Some(_)) | Err(StoreError::Foreign { .. } | StoreError::Io { .. }) => {}
        Err(other) => return Err(other.into()),
    }
    for _ in 0..100 {
        let newest = journal::indices(store, &path.journal_prefix())
            .await?
            .last()
            .copied()
            .unwrap_or(0);
        if index < newest {
            return Ok(Repaired::NotNewest { path, newest });
        }
        let mark = journal::indices(store, "tickets/")
            .await?
            .last()
            .copied()
            .unwrap_or(0);
        let marks = super::Marks {
            subtree: mark,
            any: mark,
        };
        let release = Entry::Release {
            kind: LockKind::Subtree,
            ticket: mark,
            by: ReleasedBy::Operator,
            written_at_ms: wall_ms(),
            marks,
        };
        let target = index.max(newest) + 1;
        if journal::append(store, &path, target, &release).await? {
            tracing::info!(%key, %path, index = target, mark, "superseded an entry that cannot be read");
            return Ok(Repaired::Superseded {
                path,
                index: target,
                mark,
            });
        }
    }
    Err(LockError::Contended {
        what: format!("repair of {key}"),
        attempts: 100,
    })
}

/// What [`collect_offline`] removed.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Collected {
    /// Journals whose newest entry was a `release` or `withdraw`: deleted whole.
    pub journals_removed: usize,
    /// Entries deleted (those of removed journals, and old entries below a held lock's newest).
    pub entries_removed: usize,
    /// Journals kept because their lock is held (by a live owner, or a dead one not yet
    /// recovered: recovery or expiry frees those).
    pub held_kept: usize,
    /// Entries that cannot be read, kept for `repair`.
    pub corrupt_kept: Vec<journal::Corrupt>,
    /// Owners of the held locks kept (their registrations must stay: they prove death).
    #[serde(skip)]
    pub owners_kept: std::collections::HashSet<String>,
}

/// Deletes every released journal as a whole. **Only while no other process uses the store**
/// (the file store guarantees that with `FsStore::open_exclusive`): a journal may be emptied only
/// when nobody holds a view of it, because an append based on an old view would land at its old
/// index in the emptied journal, past newer entries, and its marks would set the journal's
/// high-water marks back (specs/lock.md §5). Tokens stay safe across it: the ticket journal is
/// kept, so every later grant has a larger ticket than any before.
pub async fn collect_offline(store: &dyn Store) -> Result<Collected, LockError> {
    let scan = every_newest(store).await?;
    let mut collected = Collected {
        corrupt_kept: scan.corrupt,
        ..Collected::default()
    };
    for (path, newest) in scan.journals {
        let indices = journal::indices(store, &path.journal_prefix()).await?;
        if let Some((owner, ..)) = newest.entry.holder() {
            collected.held_kept += 1;
            collected.owners_kept.insert(process_part(owner).to_owned());
            collected.entries_removed +=
                journal::collect_below_as(store, &path, newest.index, false).await?;
            continue;
        }
        // Oldest first, the newest last: an interrupted collection leaves a journal whose newest
        // entry is still the release it had.
        for index in indices {
            store.delete(&path.entry_key(index)).await?;
            collected.entries_removed += 1;
        }
        collected.journals_removed += 1;
    }
    Ok(collected)
}
