//! A fault-injecting wrapper for tests: the k-th operation fails (as a full disk, a dead server,
//! or a crash after which every call fails until the store is "restarted").

use super::{Created, Key, Liveness, OwnerRegistration, Persist, Store, StoreError, Version};
use crate::sync::{lock, Arc, Mutex};

/// What the injected fault looks like to the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// ENOSPC on a create. Only a create can meet a full disk, so a `Full` planned for another
    /// operation waits for the next create.
    Full,
    /// The backend cannot be reached.
    Unavailable,
    /// The process "crashes": this and every later call fail until [`FaultyStore::restart`].
    Crash,
    /// The store stops answering (a hung disk or server): this and every later call never
    /// return.
    Hang,
}

/// A storage operation, as counted by the plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    Get,
    Create,
    List,
    Delete,
}

#[derive(Debug, Default)]
struct Plan {
    /// Operations performed so far.
    count: u64,
    /// Inject `fault` at operation number `at` (0-based).
    at: Option<(u64, Fault)>,
    crashed: bool,
    hung: bool,
    /// Every fault that fired, with the operation it failed (tests assert that theirs did).
    fired: Vec<(Fault, Operation, u64)>,
    /// Crash once this many more creates have succeeded (test vectors count effects, not calls).
    creates_left: Option<u64>,
    /// Hang once this many more creates have succeeded (a process stopped mid-protocol, holding
    /// whatever it has created, for process tests to kill).
    hang_after: Option<u64>,
    /// Write [`HANG_NOTICE`] to stderr when the hang begins.
    announce_hang: bool,
}

impl Plan {
    fn begin_hang(&mut self, operation: Operation, at: u64) {
        self.hung = true;
        self.fired.push((Fault::Hang, operation, at));
        self.announce();
    }

    fn announce(&self) {
        if self.announce_hang {
            use std::io::Write;
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(stderr, "{HANG_NOTICE}");
            let _ = stderr.flush();
        }
    }
}

/// The line a [`FaultyStore`] told to [`announce_hang`](FaultyStore::announce_hang) writes to
/// stderr when it stops answering. A process test waits for it and kills the process exactly
/// there, instead of guessing how long the process needs to reach its window (a loaded CI
/// machine once took longer than the guess, and the test killed a merger before its lock).
pub const HANG_NOTICE: &str = "lockstep: injected fault: the store stopped answering";

/// Wraps a store and fails the operation a test chose. Clones share the plan.
#[derive(Clone, Debug)]
pub struct FaultyStore<S> {
    inner: S,
    plan: Arc<Mutex<Plan>>,
    /// Give no change hints ([`Store::watch`] answers `None`): waiters must poll. A plain std
    /// atomic, not the `sync` shim's: reading it must add no scheduling point to shuttle's runs
    /// (their committed schedules would go stale), and it is set before any task runs.
    drop_hints: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl<S: Store> FaultyStore<S> {
    pub fn new(inner: S) -> FaultyStore<S> {
        FaultyStore {
            inner,
            plan: Arc::new(Mutex::new(Plan::default())),
            drop_hints: Default::default(),
        }
    }

    /// Fails operation number `count_from_now` (0 = the next one) with `fault`.
    pub fn fail_in(&self, count_from_now: u64, fault: Fault) {
        let mut plan = lock(&self.plan);
        plan.at = Some((plan.count + count_from_now, fault));
    }

    /// Crashes the process at the first call after `creates` more successful creates.
    pub fn crash_after_creates(&self, creates: u64) {
        lock(&self.plan).creates_left = Some(creates);
    }

    /// Stops answering at the first call after `creates` more successful creates.
    pub fn hang_after_creates(&self, creates: u64) {
        lock(&self.plan).hang_after = Some(creates);
    }

    /// Drops every change hint of the store below: the world where the wake-up hint is lost
    /// entirely, which must differ only in speed.
    pub fn drop_hints(&self) {
        self.drop_hints
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Announces the hang on stderr ([`HANG_NOTICE`]) when it begins.
    pub fn announce_hang(&self) {
        lock(&self.plan).announce_hang = true;
    }

    /// Ends a crash: the "restarted process" can use the store again (its contents are kept).
    pub fn restart(&self) {
        let mut plan = lock(&self.plan);
        plan.crashed = false;
        plan.at = None;
        plan.creates_left = None;
    }

    pub fn is_crashed(&self) -> bool {
        lock(&self.plan).crashed
    }

    pub fn operations(&self) -> u64 {
        lock(&self.plan).count
    }

    /// The faults that fired so far, each with the operation it failed and that operation's
    /// number. A crash counts once, where it struck (every later call fails too, as the dead
    /// process's would).
    pub fn fired(&self) -> Vec<(Fault, Operation, u64)> {
        lock(&self.plan).fired.clone()
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn check(&self, key: &str, operation: Operation) -> Result<(), StoreError> {
        let mut plan = lock(&self.plan);
        if plan.crashed {
            return Err(StoreError::Injected("the process crashed".into()));
        }
        if plan.hung {
            return Ok(());
        }
        if plan.hang_after == Some(0) {
            let at = plan.count;
            plan.begin_hang(operation, at);
            return Ok(());
        }
        if plan.creates_left == Some(0) {
            plan.crashed = true;
            let at = plan.count;
            plan.fired.push((Fault::Crash, operation, at));
            return Err(StoreError::Injected("the process crashed".into()));
        }
        let now = plan.count;
        plan.count += 1;
        let Some((at, fault)) = plan.at else {
            return Ok(());
        };
        if now < at || (fault == Fault::Full && operation != Operation::Create) {
            return Ok(());
        }
        plan.at = None;
        plan.fired.push((fault, operation, now));
        match fault {
            Fault::Full => Err(StoreError::Full {
                key: key.to_owned(),
            }),
            Fault::Unavailable => Err(StoreError::Unavailable(
                "injected: connection refused".into(),
            )),
            Fault::Crash => {
                plan.crashed = true;
                Err(StoreError::Injected("the process crashed".into()))
            }
            Fault::Hang => {
                plan.hung = true;
                plan.announce();
                Ok(())
            }
        }
    }

    /// Never returns once the store hangs.
    async fn answer(&self) {
        if lock(&self.plan).hung {
            std::future::pending::<()>().await;
        }
    }
}

#[async_trait::async_trait]
impl<S: Store> Store for FaultyStore<S> {
    async fn get(&self, key: &Key) -> Result<Option<(Vec<u8>, Version)>, StoreError> {
        self.check(key.as_str(), Operation::Get)?;
        self.answer().await;
        self.inner.get(key).await
    }

    async fn create(&self, key: &Key, bytes: &[u8]) -> Result<Created, StoreError> {
        self.create_persisting(key, bytes, Persist::Durable).await
    }

    async fn create_persisting(
        &self,
        key: &Key,
        bytes: &[u8],
        persist: Persist,
    ) -> Result<Created, StoreError> {
        self.check(key.as_str(), Operation::Create)?;
        self.answer().await;
        let created = self.inner.create_persisting(key, bytes, persist).await?;
        if created.is_created() {
            let mut plan = lock(&self.plan);
            if let Some(left) = plan.creates_left.as_mut() {
                *left = left.saturating_sub(1);
            }
            if let Some(left) = plan.hang_after.as_mut() {
                *left = left.saturating_sub(1);
            }
        }
        Ok(created)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<Key>, StoreError> {
        self.check(prefix, Operation::List)?;
        self.answer().await;
        self.inner.list(prefix).await
    }

    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        self.check(key.as_str(), Operation::Delete)?;
        self.answer().await;
        self.inner.delete(key).await
    }

    async fn delete_lazily(&self, key: &Key) -> Result<(), StoreError> {
        self.check(key.as_str(), Operation::Delete)?;
        self.answer().await;
        self.inner.delete_lazily(key).await
    }

    fn describe(&self) -> String {
        format!("faulty:{}", self.inner.describe())
    }

    async fn watch(&self, prefix: &str) -> Option<Box<dyn super::ChangeHint>> {
        // A hint only wakes; a crashed or hung store's reads fail or hang after it anyway.
        if self.drop_hints.load(std::sync::atomic::Ordering::SeqCst) {
            return None;
        }
        self.inner.watch(prefix).await
    }

    // Registrations and proofs of life pass through: they are not storage operations a fault
    // plan counts.
    async fn register_owner(
        &self,
        owner: &str,
    ) -> Result<Option<Box<dyn OwnerRegistration>>, StoreError> {
        self.inner.register_owner(owner).await
    }

    async fn owner_liveness(&self, owner: &str) -> Result<Liveness, StoreError> {
        self.inner.owner_liveness(owner).await
    }
}
