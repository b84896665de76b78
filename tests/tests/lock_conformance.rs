//! Lockstep conformance of the path-lock implementation to the model, with crash injection
//! (DESIGN §5; the method of AWS ShardStore).
//!
//! proptest generates a world (each client's mode) and a sequence of operations: a client
//! acquires its locks, or finishes (guarded write, release), with a crash of its process after
//! the k-th storage operation; an operator force-releases a path; recovery runs. The real
//! `LockManager`s run them over one shared store, each client through its own fault-injecting
//! wrapper (its crash is its alone) and with the identity of a real process of its own (a
//! `sleep` child: recovery sees it die when the harness kills it).
//!
//! The model is the oracle. After each operation:
//! 1. trace validation: every create the implementation made (recorded by a wrapper) must be the
//!    model client's next effect, and a completed operation must leave the model nothing more to
//!    write; reads change no storage, so only effects are matched;
//! 2. the outcomes agree (granted, busy, fenced);
//! 3. refinement: `inspect(store)` equals the model's abstract state;
//! 4. every `always` property of the model holds on that state.
//!
//! A failure prints the model's behaviour as the checker prints counterexamples. Cases: the
//! `PROPTEST_CASES` environment variable (default 256 on MemStore, a quarter on FsStore);
//! regressions are kept in `tests/lock_conformance.proptest-regressions`.

use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use lockstep::lock::inspect::inspect;
use lockstep::lock::owner::ProcessId;
use lockstep::lock::{
    recover, Entry, FencedLog, Guard, LockError, LockKind, LockManager, LockOptions, LockPath,
    Operation,
};
use lockstep::mutants::{activate, Mutant};
use lockstep::store::{Fault, FaultyStore, FsStore, Key, MemStore, Store};
use lockstep_model::lock::{
    ClientSpec, Head, Hold, Kind, LockAction, LockConfig, LockModel, LockState, Mode, Outcome,
    Phase, Timeout, Variant,
};
use lockstep_tests::recording::Recording;
use lockstep_tests::refinement::{Create, ModelCursor};
use lockstep_tests::replay;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

const TREE: [&str; 4] = ["/", "/a", "/a/b", "/c"];
const CLIENTS: usize = 3;

/// One step of a test case (serialised in replay files).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
enum Op {
    /// Client `client` takes its mode's locks; its process crashes after `crash_at` storage
    /// operations if that comes first.
    Acquire { client: usize, crash_at: Option<u8> },
    /// Client `client` makes its guarded write and releases, with the same crash option.
    Finish { client: usize, crash_at: Option<u8> },
    /// An operator force-releases a path: the `pick`-th (modulo) of those the model holds.
    ForceRelease { pick: u8 },
    /// Recovery releases the locks of crashed clients (their processes are killed first).
    Recover,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let crash = prop::option::weighted(0.3, 0u8..24);
    prop_oneof![
        4 => (0..CLIENTS, crash.clone()).prop_map(|(client, crash_at)| Op::Acquire { client, crash_at }),
        3 => (0..CLIENTS, crash).prop_map(|(client, crash_at)| Op::Finish { client, crash_at }),
        2 => (0u8..4).prop_map(|pick| Op::ForceRelease { pick }),
        1 => Just(Op::Recover),
    ]
}

fn model_for(modes: &[u8]) -> LockModel {
    let mut config = LockConfig::new(Variant::Fixed(None));
    config.tree = TREE.iter().map(|s| s.to_string()).collect();
    config.ticks = 0;
    config.reaps = 0;
    config.crashes = CLIENTS as u8;
    config.force_releases = 8;
    let all = LockModel::new(config.clone()).unwrap().modes;
    config.clients = modes
        .iter()
        .map(|m| ClientSpec {
            timeout: Timeout::Zero,
            retries: 0,
            renewals: 0,
            skew_ticks: 0,
            mode: Some(all[*m as usize]),
        })
        .collect();
    LockModel::new(config).unwrap()
}

type ClientStore = FaultyStore<Recording<Arc<dyn Store>>>;

/// One simulated client: a real process for its identity, a manager, maybe a guard.
struct Client {
    identity: Child,
    process: ProcessId,
    store: ClientStore,
    manager: Option<LockManager>,
    guard: Option<Guard>,
    killed: bool,
}

struct Harness {
    /// The model side: state, behaviour, trace validation (shared by every protocol's harness).
    cursor: ModelCursor<LockModel>,
    shared: Arc<dyn Store>,
    clients: Vec<Client>,
    rt: tokio::runtime::Runtime,
}

/// What the cases of one test exercised (std atomics: cases run one after another).
#[derive(Default)]
struct Coverage {
    acquires: AtomicUsize,
    acquires_skipped: AtomicUsize,
    granted: AtomicUsize,
    busy: AtomicUsize,
    finishes: AtomicUsize,
    finishes_skipped: AtomicUsize,
    writes_fenced: AtomicUsize,
    crashes_planned: AtomicUsize,
    crashes_fired: AtomicUsize,
    force_releases: AtomicUsize,
    force_releases_skipped: AtomicUsize,
    recoveries: AtomicUsize,
    locks_recovered: AtomicUsize,
}

static COVERAGE: Coverage = Coverage {
    acquires: AtomicUsize::new(0),
    acquires_skipped: AtomicUsize::new(0),
    granted: AtomicUsize::new(0),
    busy: AtomicUsize::new(0),
    finishes: AtomicUsize::new(0),
    finishes_skipped: AtomicUsize::new(0),
    writes_fenced: AtomicUsize::new(0),
    crashes_planned: AtomicUsize::new(0),
    crashes_fired: AtomicUsize::new(0),
    force_releases: AtomicUsize::new(0),
    force_releases_skipped: AtomicUsize::new(0),
    recoveries: AtomicUsize::new(0),
    locks_recovered: AtomicUsize::new(0),
};

fn count(counter: &AtomicUsize) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Coverage {
    fn counters(&self) -> [(&'static str, &AtomicUsize); 13] {
        [
            ("acquires", &self.acquires),
            ("acquires skipped", &self.acquires_skipped),
            ("granted", &self.granted),
            ("busy", &self.busy),
            ("finishes", &self.finishes),
            ("finishes skipped", &self.finishes_skipped),
            ("writes fenced", &self.writes_fenced),
            ("crashes planned", &self.crashes_planned),
            ("crashes fired", &self.crashes_fired),
            ("force releases", &self.force_releases),
            ("force releases skipped", &self.force_releases_skipped),
            ("recoveries", &self.recoveries),
            ("locks recovered", &self.locks_recovered),
        ]
    }

    fn reset(&self) {
        for (_, counter) in self.counters() {
            counter.store(0, Ordering::Relaxed);
        }
    }

    /// Prints the counts and asserts that the run exercised every outcome: a harness whose
    /// crashes never fire or whose writes are never fenced tests less than it says.
    fn assert_exercised(&self, test: &str) {
        let counts: Vec<(&str, usize)> = self
            .counters()
            .iter()
            .map(|(name, c)| (*name, c.load(Ordering::Relaxed)))
            .collect();
        eprintln!("{test}: {counts:?}");
        for needed in [
            "granted",
            "busy",
            "finishes",
            "writes fenced",
            "crashes fired",
            "force releases",
            "locks recovered",
        ] {
            let n = counts.iter().find(|(name, _)| *name == needed).unwrap().1;
            assert!(n > 0, "{test}: nothing {needed}: {counts:?}");
        }
    }
}

fn fail(message: impl Into<String>) -> TestCaseError {
    TestCaseError::fail(message.into())
}

impl Harness {
    fn new(modes: &[u8], shared: Arc<dyn Store>) -> Harness {
        let cursor = ModelCursor::new(model_for(modes), effect);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let options = LockOptions {
            timeout: Some(std::time::Duration::ZERO),
            retries_max: 0,
            cleanup_every: None,
            ..LockOptions::default()
        };
        let clients = (0..modes.len())
            .map(|_| {
                let identity = Command::new("sleep").arg("3600").spawn().unwrap();
                let process = ProcessId::of_process(identity.id()).unwrap();
                let store = FaultyStore::new(Recording::new(Arc::clone(&shared)));
                let manager = rt
                    .block_on(LockManager::start_as(
                        store.clone(),
                        options.clone(),
                        process.clone(),
                    ))
                    .unwrap();
                Client {
                    identity,
                    process,
                    store,
                    manager: Some(manager),
                    guard: None,
                    killed: false,
                }
            })
            .collect();
        Harness {
            cursor,
            shared,
            clients,
            rt,
        }
    }

    fn behaviour(&self) -> String {
        self.cursor.behaviour()
    }

    /// Takes `action` in the model, which must enable it (the implementation just did it);
    /// returns whether storage changed.
    fn act(&mut self, action: LockAction) -> Result<bool, TestCaseError> {
        match self.cursor.act(action) {
            Ok(effect) => Ok(effect.is_some()),
            Err(()) => Err(fail(format!(
                "the implementation did {action:?} but the model does not enable it\n{}",
                self.behaviour()
            ))),
        }
    }

    /// Takes `action` if the model enables it; whether it was taken.
    fn try_act(&mut self, action: LockAction) -> bool {
        self.cursor.act(action).is_ok()
    }

    fn client_of(&self, owner: &str) -> Option<u8> {
        let process = ProcessId::parse(owner)?;
        self.clients
            .iter()
            .position(|c| c.process == process)
            .map(|c| c as u8)
    }

    /// The same description for a create the implementation made (`None` for keys outside the
    /// lock protocol, such as the fenced log).
    fn described(&self, key: &Key, bytes: &[u8]) -> Result<Option<String>, TestCaseError> {
        if let Some(n) = key.as_str().strip_prefix("tickets/") {
            return Ok(Some(format!("ticket {}", n.parse::<u64>().unwrap())));
        }
        let Some((path, index)) = LockPath::parse_entry_key(key.as_str()) else {
            return Ok(None);
        };
        let entry = Entry::decode(key.as_str(), bytes).map_err(|e| fail(e.to_string()))?;
        let kind = |k: LockKind| {
            if k == LockKind::Point {
                Kind::Point
            } else {
                Kind::Subtree
            }
        };
        let marks = entry.marks();
        let head = match entry {
            Entry::Acquire {
                owner,
                kind: k,
                ticket,
                ..
            }
            | Entry::Renew {
                owner,
                kind: k,
                ticket,
                ..
            } => {
                let owner = self
                    .client_of(&owner)
                    .ok_or_else(|| fail(format!("unknown owner {owner}")))?;
                Head::Held {
                    owner,
                    kind: kind(k),
                    token: ticket as u8,
                    tick: 0,
                }
            }
            Entry::Release {
                kind: k, ticket, ..
            } => Head::Released {
                kind: kind(k),
                token: ticket as u8,
            },
            Entry::Withdraw { ticket, .. } => Head::Withdrawn {
                token: ticket as u8,
            },
        };
        Ok(Some(format!(
            "{path}#{index} {head:?} marks {}/{}",
            marks.subtree, marks.any
        )))
    }

    /// Whether a create re-made an index the model's journal already has: a stray left by a
    /// late writer after garbage collection removed that index (specs/backends.md). Readers
    /// never see it (the newest index decides), so it has no abstract effect.
    fn is_stray(&self, key: &Key) -> bool {
        if let Some(n) = key.as_str().strip_prefix("tickets/") {
            return n.parse::<u64>().unwrap() <= u64::from(self.cursor.state.tickets);
        }
        match LockPath::parse_entry_key(key.as_str()) {
            Some((path, index)) => {
                let p = TREE.iter().position(|n| *n == path.as_str()).unwrap();
                index < u64::from(self.cursor.state.slots[p].len)
            }
            None => false,
        }
    }

    /// Trace validation: replays the implementation's creates through the model client `c`.
    fn replay(&mut self, c: usize, creates: Vec<(Key, Vec<u8>)>) -> Result<(), TestCaseError> {
        let mut described = Vec::new();
        for (key, bytes) in &creates {
            described.push((key, self.described(key, bytes)?, self.is_stray(key)));
        }
        let creates = described.into_iter().map(|(key, described, stray)| Create {
            key,
            described,
            stray,
        });
        self.cursor
            .replay(LockAction::Step(c as u8), creates)
            .map_err(|e| fail(format!("trace validation: {e}")))
    }

    /// Runs model client `c` until `done` holds, checking it writes nothing more.
    fn settle(&mut self, c: usize, done: fn(Phase) -> bool) -> Result<(), TestCaseError> {
        self.cursor
            .settle(LockAction::Step(c as u8), |state| {
                done(state.clients[c].phase)
            })
            .map_err(fail)
    }

    /// The client's process dies: its background tasks stop (before anything else can run), its
    /// guard is never released, and only then does the store work again for the others.
    fn kill_process(&mut self, c: usize) {
        let client = &mut self.clients[c];
        if let Some(manager) = client.manager.take() {
            self.rt.block_on(manager.kill());
        }
        if let Some(guard) = client.guard.take() {
            std::mem::forget(guard);
        }
        client.store.restart();
    }

    fn crash(&mut self, c: usize) -> Result<(), TestCaseError> {
        // A crash after the client's last effect (say, in a garbage-collecting delete after its
        // release) changes nothing the model tracks: a finished client stays finished.
        if matches!(self.cursor.state.clients[c].phase, Phase::Finished(_)) {
            return Ok(());
        }
        self.act(LockAction::Crash(c as u8))?;
        if self.cursor.state.clients[c].phase != Phase::Crashed {
            return Err(fail(format!(
                "the model cannot crash c{c} in {:?}",
                self.cursor.state.clients[c].phase
            )));
        }
        Ok(())
    }

    fn operation(&self, c: usize) -> Operation {
        let mode = self.cursor.model.modes[self.cursor.state.clients[c].mode as usize];
        let name = |p: u8| TREE[p as usize];
        let locks = match mode {
            Mode::Point(p) => vec![(LockPath::new(name(p)).unwrap(), LockKind::Point)],
            Mode::Subtree(p) => vec![(LockPath::new(name(p)).unwrap(), LockKind::Subtree)],
            Mode::Mv(s, t) => vec![
                (LockPath::new(name(s)).unwrap(), LockKind::Subtree),
                (LockPath::new(name(t)).unwrap(), LockKind::Subtree),
            ],
        };
        Operation::from_locks(locks)
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::Acquire {
                client: c,
                crash_at,
            } => {
                let ready = matches!(
                    self.cursor.state.clients[c].phase,
                    Phase::Acquiring {
                        lock: 0,
                        step: lockstep_model::lock::Step::CheckSame
                    }
                );
                if !ready || self.clients[c].manager.is_none() {
                    count(&COVERAGE.acquires_skipped);
                    return Ok(());
                }
                count(&COVERAGE.acquires);
                if let Some(k) = crash_at {
                    count(&COVERAGE.crashes_planned);
                    self.clients[c].store.fail_in(k as u64, Fault::Crash);
                }
                let operation = self.operation(c);
                let manager = self.clients[c].manager.as_ref().unwrap();
                let result = self.rt.block_on(manager.lock(operation));
                let crashed = self.clients[c].store.is_crashed();
                if crashed {
                    count(&COVERAGE.crashes_fired);
                    if let Ok(guard) = result {
                        self.clients[c].guard = Some(guard);
                    }
                    self.kill_process(c);
                    let creates = self.clients[c].store.inner().drain();
                    self.replay(c, creates)?;
                    self.crash(c)?;
                    return self.check_refinement();
                }
                self.clients[c].store.restart();
                let creates = self.clients[c].store.inner().drain();
                self.replay(c, creates)?;
                self.settle(c, |phase| {
                    matches!(phase, Phase::Holding(_) | Phase::Finished(_))
                })?;
                match (&result, self.cursor.state.clients[c].phase) {
                    (Ok(_), Phase::Holding(Hold::Ready)) => count(&COVERAGE.granted),
                    (Err(LockError::Busy { .. }), Phase::Finished(Outcome::Busy)) => {
                        count(&COVERAGE.busy)
                    }
                    (
                        Err(LockError::RetriesExhausted { .. }),
                        Phase::Finished(Outcome::Exhausted),
                    ) => {}
                    (other, phase) => {
                        return Err(fail(format!(
                            "implementation: {other:?}; model: {phase:?}\n{}",
                            self.behaviour()
                        )))
                    }
                }
                self.clients[c].guard = result.ok();
            }
            Op::Finish {
                client: c,
                crash_at,
            } => {
                if self.clients[c].guard.is_none()
                    || self.cursor.state.clients[c].phase != Phase::Holding(Hold::Ready)
                {
                    count(&COVERAGE.finishes_skipped);
                    return Ok(());
                }
                count(&COVERAGE.finishes);
                // The guarded write goes to a resource outside the client's process (the shared
                // store), all or nothing, like the model's.
                let guard = self.clients[c].guard.take().unwrap();
                guard
                    .check()
                    .map_err(|e| fail(format!("lease check failed without time passing: {e}")))?;
                let log = FencedLog::new(Arc::clone(&self.shared));
                // One write per lock, under its kind (a SUBTREE write covers the subtree).
                let writes = guard.tokens();
                let accepted = self.rt.block_on(async {
                    for (resource, kind, token) in &writes {
                        if !log.would_accept(resource, *kind, *token).await.unwrap() {
                            return false;
                        }
                    }
                    for (resource, kind, token) in &writes {
                        log.append_as(resource, *kind, *token, "guarded write")
                            .await
                            .unwrap()
                            .unwrap();
                    }
                    true
                });
                if !accepted {
                    count(&COVERAGE.writes_fenced);
                }
                if let Some(k) = crash_at {
                    count(&COVERAGE.crashes_planned);
                    self.clients[c].store.fail_in(k as u64, Fault::Crash);
                }
                let released = self.rt.block_on(guard.release());
                let crashed = self.clients[c].store.is_crashed();
                if crashed {
                    count(&COVERAGE.crashes_fired);
                    self.kill_process(c);
                } else {
                    self.clients[c].store.restart();
                }
                // Model: lease check, guarded write, then the releases.
                self.act(LockAction::Step(c as u8))?;
                self.act(LockAction::Step(c as u8))?;
                let model_accepted = !matches!(
                    self.cursor.state.clients[c].phase,
                    Phase::Releasing {
                        outcome: Outcome::Fenced
                    } | Phase::Finished(Outcome::Fenced)
                );
                if accepted != model_accepted {
                    return Err(fail(format!("guarded write: implementation accepted={accepted}, model accepted={model_accepted}\n{}", self.behaviour())));
                }
                let creates = self.clients[c].store.inner().drain();
                self.replay(c, creates)?;
                if crashed {
                    return self.crash(c);
                }
                let _ = released; // a release that finds its lock superseded writes nothing, in both
                self.settle(c, |phase| matches!(phase, Phase::Finished(_)))?;
            }
            Op::ForceRelease { pick } => {
                let held: Vec<u8> = (0..TREE.len() as u8)
                    .filter(|p| {
                        matches!(self.cursor.state.slots[*p as usize].head, Head::Held { .. })
                    })
                    .collect();
                if held.is_empty() || self.cursor.state.forces_left == 0 {
                    count(&COVERAGE.force_releases_skipped);
                    return Ok(());
                }
                count(&COVERAGE.force_releases);
                let path = held[pick as usize % held.len()];
                let lock_path = LockPath::new(TREE[path as usize]).unwrap();
                let released = self
                    .rt
                    .block_on(lockstep::lock::force_release(
                        &*self.shared,
                        &lock_path,
                        None,
                    ))
                    .unwrap();
                if released.is_none() {
                    return Err(fail(format!(
                        "the model holds {} but force release found nothing\n{}",
                        TREE[path as usize],
                        self.behaviour()
                    )));
                }
                self.act(LockAction::ForceRelease(path))?;
            }
            Op::Recover => {
                for (c, client) in self.clients.iter_mut().enumerate() {
                    if self.cursor.state.clients[c].phase == Phase::Crashed && !client.killed {
                        let _ = client.identity.kill();
                        let _ = client.identity.wait();
                        client.killed = true;
                    }
                }
                let released = self.rt.block_on(recover(&*self.shared)).unwrap();
                count(&COVERAGE.recoveries);
                for _ in &released {
                    count(&COVERAGE.locks_recovered);
                }
                let mut model_released = 0;
                for path in 0..TREE.len() as u8 {
                    if self.try_act(LockAction::Recover(path)) {
                        model_released += 1;
                    }
                }
                if released.len() != model_released {
                    return Err(fail(format!(
                        "recovery released {} locks, the model {model_released}\n{}",
                        released.len(),
                        self.behaviour()
                    )));
                }
            }
        }
        self.check_refinement()
    }

    /// `inspect(store)` equals the model's abstract state, and the model's properties hold.
    fn check_refinement(&self) -> Result<(), TestCaseError> {
        let concrete = self
            .rt
            .block_on(inspect(&*self.shared, &self.cursor.model.tree, |owner| {
                self.client_of(owner)
            }))
            .map_err(|e| fail(e.to_string()))?;
        for p in 0..TREE.len() {
            let model_slot = self.cursor.state.slots[p];
            let expected = (
                model_slot.len,
                erase_tick(model_slot.head),
                model_slot.prior,
            );
            let actual = (
                concrete.slots[p].len,
                concrete.slots[p].head,
                concrete.slots[p].prior,
            );
            if expected != actual {
                return Err(fail(format!(
                    "refinement: {}: implementation {actual:?}, model {expected:?}\n{}",
                    TREE[p],
                    self.behaviour()
                )));
            }
        }
        if concrete.tickets != u64::from(self.cursor.state.tickets) {
            return Err(fail(format!(
                "tickets: implementation {}, model {}\n{}",
                concrete.tickets,
                self.cursor.state.tickets,
                self.behaviour()
            )));
        }
        self.cursor
            .check_properties()
            .map_err(|e| fail(format!("property: {e}")))
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        for client in &mut self.clients {
            let _ = client.identity.kill();
            let _ = client.identity.wait();
        }
    }
}

/// What model client steps write: a ticket, or an entry (path, index, head with time erased).
fn effect(before: &LockState, after: &LockState) -> Option<String> {
    if after.tickets != before.tickets {
        return Some(format!("ticket {}", after.tickets));
    }
    (0..TREE.len())
        .find(|p| after.slots[*p] != before.slots[*p])
        .map(|p| {
            let slot = after.slots[p];
            format!(
                "{}#{} {:?} marks {}/{}",
                TREE[p],
                slot.len - 1,
                erase_tick(slot.head),
                slot.prior.subtree,
                slot.prior.any
            )
        })
}

fn erase_tick(head: Head) -> Head {
    match head {
        Head::Held {
            owner, kind, token, ..
        } => Head::Held {
            owner,
            kind,
            token,
            tick: 0,
        },
        other => other,
    }
}

/// Each client's mode (half the cases give every client the same one, so that they contend
/// and a force-released holder meets a newer one's write), and the operations.
fn case_strategy() -> impl Strategy<Value = (Vec<u8>, Vec<Op>)> {
    (
        (prop::collection::vec(0u8..12, CLIENTS), any::<bool>()).prop_map(|(modes, same)| {
            if same {
                vec![modes[0]; CLIENTS]
            } else {
                modes
            }
        }),
        prop::collection::vec(chunk_strategy(), 1..14).prop_map(|chunks| chunks.concat()),
    )
}

/// One operation, or a story whose steps in that order are rare at random:
/// - a takeover: a holder's lock is force-released, another client takes the lock and writes,
///   and the first one's late write comes after (fenced, if they conflict and the first held);
/// - a holder that crashes while releasing, and recovery, which must free what it left held.
fn chunk_strategy() -> impl Strategy<Value = Vec<Op>> {
    prop_oneof![
        7 => op_strategy().prop_map(|op| vec![op]),
        1 => (0..CLIENTS, 0u8..3).prop_map(|(client, k)| vec![
            Op::Acquire { client, crash_at: None },
            Op::Finish { client, crash_at: Some(k) },
            Op::Recover,
        ]),
        1 => (0..CLIENTS, 1..CLIENTS, 0u8..4).prop_map(|(zombie, offset, pick)| {
            let taker = (zombie + offset) % CLIENTS;
            vec![
                Op::Acquire { client: zombie, crash_at: None },
                Op::ForceRelease { pick },
                Op::Acquire { client: taker, crash_at: None },
                Op::Finish { client: taker, crash_at: None },
                Op::Finish { client: zombie, crash_at: None },
            ]
        }),
    ]
}

fn run_case(modes: &[u8], ops: &[Op], shared: Arc<dyn Store>) -> Result<(), TestCaseError> {
    let mut harness = Harness::new(modes, shared);
    for op in ops {
        harness.apply(op)?;
    }
    Ok(())
}

/// The mutant switch is process-wide: tests of this binary take turns.
fn exclusive(mutant: Option<Mutant>) -> MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    activate(mutant);
    COVERAGE.reset();
    guard
}

fn config(divisor: u32) -> Config {
    let base = Config::default();
    Config {
        cases: (base.cases / divisor).max(8),
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
        )),
        // The runner is called directly (to count coverage after the cases), so it is told which
        // file's regressions to replay first.
        source_file: Some(file!()),
        ..base
    }
}

/// Runs every case of `config` on stores made by `store`, then prints and checks coverage.
fn refine(
    test: &str,
    config: Config,
    store: impl Fn() -> (Arc<dyn Store>, Option<tempfile::TempDir>),
) {
    let _one = exclusive(None);
    let mut runner = TestRunner::new(config);
    let result = runner.run(&case_strategy(), |(modes, ops)| {
        let (shared, _dir) = store();
        run_case(&modes, &ops, shared)
    });
    if let Err(error) = result {
        let saved = match &error {
            proptest::test_runner::TestError::Fail(_, (modes, ops)) => {
                record(&format!("on {test}"), test, None, modes, ops)
            }
            _ => String::new(),
        };
        panic!("{test}: {error}\n{saved}");
    }
    COVERAGE.assert_exercised(test);
}

// ---------------------------------------------------------------------------------------------
// Replay files (lockstep::replay): a failing case is written to one, `lockstep replay FILE`
// reruns it through the `replay` test below.

/// Runs a case, comparing each step with `expected` if given (see `replay::run_ops`).
fn run_recorded(store: &str, modes: &[u8], ops: &[Op], expected: Option<&[String]>) -> replay::Run {
    let (shared, _dir) = replay::store_named(store);
    let mut harness = Harness::new(modes, shared);
    replay::run_ops(expected, &mut harness, ops, Harness::apply, |h| {
        h.cursor.steps()
    })
}

/// A case as a replay file keeps it.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    store: String,
    modes: Vec<u8>,
    ops: Vec<Op>,
}

/// Writes the replay file of a case of test `test` that failed (rerun once to record its model
/// path) and returns the line that names it.
fn record(test: &str, store: &str, mutant: Option<Mutant>, modes: &[u8], ops: &[Op]) -> String {
    activate(mutant);
    let run = replay::caught(|| Ok(run_recorded(store, modes, ops, None)));
    let case = Case {
        store: store.into(),
        modes: modes.to_vec(),
        ops: ops.to_vec(),
    };
    let case = serde_json::to_value(case).expect("a case serialises");
    replay::record_conformance("lock", "lock_conformance", test, store, case, run)
}

/// Reruns a replay file of this harness: the one `lockstep replay` names in `$LOCKSTEP_REPLAY`,
/// or else the committed one, a case of the blind-release mutant (see `replay::replay_test`).
#[test]
fn replay() {
    replay::replay_test(
        "lock_conformance",
        "lock-conformance-blind-release.json",
        // Another input: the first operation dropped.
        |file| {
            file.case["ops"].as_array_mut().expect("ops").remove(0);
        },
        |file| {
            replay::rerun_case(file, exclusive, |case: &Case, steps| {
                run_recorded(&case.store, &case.modes, &case.ops, Some(steps))
            })
        },
    );
}

#[test]
fn implementation_refines_the_model_on_memory() {
    refine("memory", config(1), || (Arc::new(MemStore::new()), None));
}

#[test]
fn implementation_refines_the_model_on_fs() {
    refine("fs", config(4), || {
        let dir = tempfile::tempdir().unwrap();
        (Arc::new(FsStore::open(dir.path()).unwrap()), Some(dir))
    });
}

/// The same on a real etcd (feature `etcd`): every case in a namespace of its own.
#[cfg(feature = "etcd")]
#[test]
fn implementation_refines_the_model_on_etcd() {
    let Some(cluster) = lockstep_tests::etcd_server::shared_or_skip() else {
        return;
    };
    refine("etcd", config(4), || {
        (Arc::new(cluster.store_blocking()), None)
    });
}

/// The line of a harness failure that says what diverged (the model's behaviour follows it).
fn failure_line(error: &str) -> &str {
    error
        .lines()
        .find(|l| {
            l.contains("trace validation:") || l.contains("refinement:") || l.contains("property:")
        })
        .unwrap_or("")
}

/// A trace-validation failure on a release entry the model did not write.
fn is_unexpected_release(error: &str) -> bool {
    let line = failure_line(error);
    line.contains("trace validation: the implementation created")
        && line.contains("Released")
        && line.contains("but the model cannot take")
}

/// The harness catches a planted bug: a release appended after the journal's newest entry
/// instead of right after the holder's own (after a force release and a new holder, it frees the
/// new holder's lock).
#[test]
fn the_harness_catches_a_blind_release() {
    let _one = exclusive(Some(Mutant::BlindRelease));
    let mut runner = TestRunner::new(Config {
        cases: 512,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&case_strategy(), |(modes, ops)| {
        run_case(&modes, &ops, Arc::new(MemStore::new()))
    });
    let error = result.expect_err("the blind-release mutant must be caught");
    if let (true, proptest::test_runner::TestError::Fail(_, (modes, ops))) =
        (replay::asked(), &error)
    {
        let test = "the_harness_catches_a_blind_release";
        eprintln!(
            "{}",
            record(test, "memory", Some(Mutant::BlindRelease), modes, ops)
        );
    }
    activate(None);
    let error = error.to_string();
    eprintln!("caught, shrunk to: {error}");
    // Caught for the right reason: the release entry it created is not the model's next effect
    // (judged on the failure's own line, not the behaviour printed after it).
    assert!(is_unexpected_release(&error), "{error}");
}

/// A hand-written case of the same bug, so its detection does not depend on the search.
#[test]
fn blind_release_after_force_release_is_caught_directly() {
    let _one = exclusive(Some(Mutant::BlindRelease));
    // c0 and c1 both POINT on /a (mode index 1 in the model's list).
    let ops = [
        Op::Acquire {
            client: 0,
            crash_at: None,
        },
        Op::ForceRelease { pick: 0 },
        Op::Acquire {
            client: 1,
            crash_at: None,
        },
        Op::Finish {
            client: 0,
            crash_at: None,
        },
    ];
    let result = run_case(&[1, 1, 2], &ops, Arc::new(MemStore::new()));
    activate(None);
    let error = result
        .expect_err("a blind release must diverge from the model")
        .to_string();
    assert!(is_unexpected_release(&error), "{error}");
    let clean = run_case(&[1, 1, 2], &ops, Arc::new(MemStore::new()));
    assert!(
        clean.is_ok(),
        "without the mutant the same case conforms: {clean:?}"
    );
}

/// Unused locks of a backed-off operation must be withdrawn, not released (a release raises the
/// journal's high-water marks and can make an older contender give up: model mutant
/// `release-unused`). The harness sees the release the model does not write. Seeded, so the
/// control runs the very same cases.
#[test]
fn the_harness_catches_a_release_of_unused_locks() {
    let seeded = |cases: u32| {
        let mut runner = TestRunner::new_with_rng(
            Config {
                cases,
                failure_persistence: None,
                ..Config::default()
            },
            proptest::test_runner::TestRng::deterministic_rng(
                proptest::test_runner::RngAlgorithm::ChaCha,
            ),
        );
        runner
            .run(&case_strategy(), |(modes, ops)| {
                run_case(&modes, &ops, Arc::new(MemStore::new()))
            })
            .map_err(|e| e.to_string())
    };
    let caught = {
        let _one = exclusive(Some(Mutant::ReleaseUnused));
        let caught = seeded(2048);
        activate(None);
        caught
    };
    let error = caught.expect_err("release-unused: no case of 2048 caught it");
    let line = failure_line(&error);
    assert!(
        line.contains("trace validation: the implementation wrote")
            && line.contains("Released")
            && line.contains("the model wrote")
            && line.contains("Withdrawn"),
        "{error}"
    );
    let _one = exclusive(None);
    seeded(2048).unwrap_or_else(|e| panic!("the control without the mutant: {e}"));
}
