//! A store whose creates wait at a gate until the test lets them through, one at a time, in an
//! order the test chooses: the harness that interleaves clients *inside* their operations.
//!
//! The refinement harnesses run each protocol operation to completion, so they never put one
//! client's create between another's read and create, where most races live. Here every create
//! of every client (the operations' own and those of background tasks: renewals, releases)
//! stops at the gate; the test's driver waits until all tasks are blocked, then picks one of the
//! pending creates. Reads, lists and deletes pass straight through: they take effect in the order
//! the creates leave them, which is what decides a race over a create-if-absent store.
//!
//! Time is tokio's paused clock (`start_paused`), so back-off sleeps and renewals cost nothing
//! and "waits forever" is a logical amount of time, not a wall-clock one. Knows no protocol.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lockstep::store::{Created, Key, Liveness, OwnerRegistration, Store, StoreError, Version};

#[derive(Default)]
struct Pending {
    next: u64,
    /// Creates waiting: id → (client, key).
    waiting: BTreeMap<u64, (usize, String)>,
    /// Creates let through and not yet taken.
    released: Vec<u64>,
    /// Choices the driver made among more than one waiting create.
    contested: usize,
    /// What was let through, in order (`c1: locks/a/~…`): the steps of a replay file.
    opened: Vec<String>,
    /// A replay file's steps, which what is let through must follow.
    expected: Option<Vec<String>>,
    /// Where what was let through first differed from `expected`.
    divergence: Option<lockstep::replay::Divergence>,
}

/// The gate shared by every client's store.
#[derive(Default)]
pub struct Gate {
    pending: Mutex<Pending>,
    opened: tokio::sync::Notify,
    /// Reads and lists wait at the gate too (for scripted schedules that put one client's read
    /// after another's create).
    reads: bool,
}

impl Gate {
    pub fn new() -> Arc<Gate> {
        Arc::new(Gate::default())
    }

    /// A gate where every operation waits, reads included: `get` and `list` appear in
    /// [`Gate::waiting`] as `get KEY` and `list PREFIX`.
    pub fn every_operation() -> Arc<Gate> {
        Arc::new(Gate {
            reads: true,
            ..Gate::default()
        })
    }

    /// Client `client`'s view of `inner`.
    pub fn store(self: &Arc<Gate>, inner: Arc<dyn Store>, client: usize) -> GatedStore {
        GatedStore {
            inner,
            gate: Arc::clone(self),
            client,
        }
    }

    /// The creates waiting now, oldest first: (id, client, key).
    pub fn waiting(&self) -> Vec<(u64, usize, String)> {
        let pending = self.pending.lock().unwrap();
        pending
            .waiting
            .iter()
            .map(|(id, (client, key))| (*id, *client, key.clone()))
            .collect()
    }

    /// Makes what is let through follow a replay file's `steps`: at the first that differs,
    /// nothing more is let through and [`Gate::divergence`] says where.
    pub fn follow(&self, steps: Vec<String>) {
        self.pending.lock().unwrap().expected = Some(steps);
    }

    /// What was let through so far, in order.
    pub fn opened(&self) -> Vec<String> {
        self.pending.lock().unwrap().opened.clone()
    }

    /// Where what was let through first differed from the steps [`Gate::follow`] was given.
    pub fn divergence(&self) -> Option<lockstep::replay::Divergence> {
        self.pending.lock().unwrap().divergence.clone()
    }

    /// Lets the `choice`-th (modulo) waiting create through. Returns what it let through.
    pub fn open(&self, choice: usize) -> Option<(usize, String)> {
        let mut pending = self.pending.lock().unwrap();
        let n = pending.waiting.len();
        if n == 0 || pending.divergence.is_some() {
            return None;
        }
        if n > 1 {
            pending.contested += 1;
        }
        let id = *pending.waiting.keys().nth(choice % n).unwrap();
        let (client, key) = pending.waiting[&id].clone();
        let step = format!("c{client}: {key}");
        // Only the new step: the ones before it were compared when they were let through.
        if let Some(divergence) = pending.expected.as_ref().and_then(|expected| {
            lockstep::replay::diverges_at(expected, pending.opened.len(), &step)
        }) {
            pending.divergence = Some(divergence);
            return None;
        }
        pending.opened.push(step);
        let chosen = pending.waiting.remove(&id).unwrap();
        pending.released.push(id);
        drop(pending);
        self.opened.notify_waiters();
        Some(chosen)
    }

    /// Lets through the oldest waiting create of `client` whose key starts with `prefix` (for
    /// scripted interleavings: a counterexample replayed step by step).
    pub fn open_where(&self, client: usize, prefix: &str) -> Option<String> {
        let waiting = self.waiting();
        let at = waiting
            .iter()
            .position(|(_, c, key)| *c == client && key.starts_with(prefix))?;
        self.open(at).map(|(_, key)| key)
    }

    /// Runs `client` up to and including its next operation that starts with `prefix` (a create's
    /// key, or `list PREFIX` / `get KEY`), letting its operations before it through; returns the
    /// operations let through. `Err` if the client has nothing at the gate for a second of
    /// logical time (it waits for another client).
    pub async fn advance(&self, client: usize, prefix: &str) -> Result<Vec<String>, String> {
        let mut through = Vec::new();
        loop {
            let mut found = None;
            for _ in 0..1_000 {
                settle().await;
                let waiting = self.waiting();
                if let Some(at) = waiting.iter().position(|(_, c, _)| *c == client) {
                    found = Some((at, waiting[at].2.clone()));
                    break;
                }
            }
            let Some((at, what)) = found else {
                return Err(format!("c{client} has nothing at the gate before {prefix}; so far {through:?}; waiting {:?}", self.waiting()));
            };
            self.open(at);
            through.push(what.clone());
            if what.starts_with(prefix) {
                settle().await;
                return Ok(through);
            }
        }
    }

    /// How many times the driver chose among two or more waiting creates.
    pub fn contested(&self) -> usize {
        self.pending.lock().unwrap().contested
    }

    async fn pass(&self, client: usize, what: String) {
        let id = {
            let mut pending = self.pending.lock().unwrap();
            let id = pending.next;
            pending.next += 1;
            pending.waiting.insert(id, (client, what));
            id
        };
        // A create whose caller is dropped while it waits must not stay in the list.
        struct Withdrawn<'a>(&'a Gate, u64, bool);
        impl Drop for Withdrawn<'_> {
            fn drop(&mut self) {
                if !self.2 {
                    let mut pending = self.0.pending.lock().unwrap();
                    pending.waiting.remove(&self.1);
                    pending.released.retain(|r| *r != self.1);
                }
            }
        }
        let mut withdrawn = Withdrawn(self, id, false);
        loop {
            let opened = self.opened.notified();
            tokio::pin!(opened);
            opened.as_mut().enable();
            {
                let mut pending = self.pending.lock().unwrap();
                if let Some(at) = pending.released.iter().position(|r| *r == id) {
                    pending.released.swap_remove(at);
                    withdrawn.2 = true;
                    return;
                }
            }
            opened.await;
        }
    }
}

/// Runs the clients until `finished()` says they are done, letting one waiting create through
/// at a time: the `choices[i]`-th (modulo) of those waiting at the i-th decision, then the oldest.
/// Before each decision every task runs until it blocks (at the gate or on a timer).
///
/// `Err` if `progress()` (a count of the protocol's own steps forward: grants, releases) stays
/// the same for `patience` of logical time while the clients are not done: they wait for each
/// other forever. Creates alone are not progress: a holder renewing its lease while a waiter
/// waits for it and it waits for the waiter creates forever.
pub async fn drive(
    gate: &Gate,
    choices: &[u8],
    patience: Duration,
    finished: impl Fn() -> bool,
    progress: impl Fn() -> usize,
) -> Result<(), String> {
    let mut decision = 0;
    let mut last = (progress(), tokio::time::Instant::now());
    loop {
        settle().await;
        if finished() {
            return Ok(());
        }
        let now = progress();
        if now != last.0 {
            last = (now, tokio::time::Instant::now());
        } else if last.1.elapsed() > patience {
            return Err(format!(
                "no wait cycle: no client made progress for {patience:?} of logical time and they are not done (after {decision} creates)"
            ));
        }
        let choice = choices.get(decision).copied().unwrap_or(0) as usize;
        if gate.open(choice).is_some() {
            decision += 1;
            continue;
        }
        if let Some(divergence) = gate.divergence() {
            return Err(divergence.to_string());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Lets every ready task run until it blocks: before the clock moves, and the clock moves only
/// when all are idle (paused time).
async fn settle() {
    for _ in 0..64 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// A client's store: creates wait at the gate.
#[derive(Clone)]
pub struct GatedStore {
    inner: Arc<dyn Store>,
    gate: Arc<Gate>,
    client: usize,
}

#[async_trait::async_trait]
impl Store for GatedStore {
    async fn get(&self, key: &Key) -> Result<Option<(Vec<u8>, Version)>, StoreError> {
        if self.gate.reads {
            self.gate.pass(self.client, format!("get {key}")).await;
        }
        self.inner.get(key).await
    }

    async fn create(&self, key: &Key, bytes: &[u8]) -> Result<Created, StoreError> {
        self.gate.pass(self.client, key.as_str().to_owned()).await;
        self.inner.create(key, bytes).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<Key>, StoreError> {
        if self.gate.reads {
            self.gate.pass(self.client, format!("list {prefix}")).await;
        }
        self.inner.list(prefix).await
    }

    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        self.inner.delete(key).await
    }

    fn describe(&self) -> String {
        format!("gated:{}", self.inner.describe())
    }

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
