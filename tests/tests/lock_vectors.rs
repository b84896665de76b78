//! The implementation replays every committed test vector (specs/vectors/lock.json), the way a
//! port in another language would: from the file alone, it runs each operation on real lock
//! managers and compares the outcome and the store's abstract state with the expected ones.

use std::process::{Child, Command};
use std::sync::Arc;

use lockstep::lock::inspect::inspect;
use lockstep::lock::owner::ProcessId;
use lockstep::lock::{
    force_release, recover, Clock, FencedLog, Guard, LockError, LockManager, LockMode, LockOptions,
    LockPath, Operation,
};
use lockstep::store::{FaultyStore, MemStore, Store};
use lockstep_model::lock::vectors::{
    self, JournalMarks, JournalState, NewestEntry, VectorFile, VectorOp,
};
use lockstep_model::lock::{Head, Kind};

const FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../specs/vectors/lock.json");

fn load() -> VectorFile {
    serde_json::from_str(&std::fs::read_to_string(FILE).expect("specs/vectors/lock.json"))
        .expect("vector file parses")
}

/// The committed vectors are exactly what the current model generates with the same settings.
#[test]
fn committed_vectors_match_the_model() {
    let file = load();
    let again = vectors::generate(file.vectors.len(), 8, 1);
    assert_eq!(file.generated_by, again.generated_by);
    assert!(
        file == again,
        "specs/vectors/lock.json is stale: run `{}`",
        file.generated_by
    );
}

struct Client {
    identity: Child,
    process: ProcessId,
    store: FaultyStore<Arc<dyn Store>>,
    /// Shared with the task of a waiting acquisition.
    manager: Option<Arc<LockManager>>,
    guard: Option<Guard>,
    operation: Operation,
    crashed: bool,
    /// The acquisition of a client that waits, while it waits (a task of its own).
    waiting: Option<tokio::task::JoinHandle<Result<Guard, LockError>>>,
}

impl Client {
    /// Ends this client's process as a crash would (its registration ends; its locks stay).
    fn kill(&mut self, rt: &tokio::runtime::Runtime) {
        let manager = self.manager.take().expect("a live client");
        let manager = Arc::into_inner(manager).expect("no acquisition of a crashed client waits");
        rt.block_on(manager.kill());
    }
}

/// What an acquisition that ended returned, in the vectors' terms.
fn acquired(client: &mut Client, result: Result<Guard, LockError>, at: &str) -> &'static str {
    match result {
        Ok(guard) => {
            client.guard = Some(guard);
            "granted"
        }
        Err(LockError::Busy { .. }) => "busy",
        Err(LockError::RetriesExhausted { .. }) => "exhausted",
        Err(other) => {
            assert!(client.store.is_crashed(), "{at}: {other}");
            "crashed"
        }
    }
}

/// Lets a waiting acquisition run until it ends, or until it waits: its store shows no new or
/// removed key while it makes 40 calls to its store, 20 and 20 more (it polls every 1 to 4 ms
/// here, a list and a get each time). No pass of an acquisition makes half as many read calls
/// in a row before it writes, so a pass still under way is not taken for a wait. `Err` gives the
/// still waiting task back.
fn settle(
    rt: &tokio::runtime::Runtime,
    shared: &Arc<dyn Store>,
    store: &FaultyStore<Arc<dyn Store>>,
    task: tokio::task::JoinHandle<Result<Guard, LockError>>,
) -> Result<Result<Guard, LockError>, tokio::task::JoinHandle<Result<Guard, LockError>>> {
    let keys = || {
        rt.block_on(shared.list(""))
            .expect("the memory store lists")
    };
    // Not a timing assertion: a bound so that a waiter that stopped reading, or that keeps
    // writing (a bug), fails this test instead of hanging it.
    let stuck_after = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let mut quiet_windows = 0;
    loop {
        if task.is_finished() {
            return Ok(rt.block_on(task).expect("the acquisition does not panic"));
        }
        let (before, calls) = (keys(), store.operations());
        while store.operations() < calls + 20 && !task.is_finished() {
            assert!(
                std::time::Instant::now() < stuck_after,
                "the waiting acquisition neither ended nor settled in 120 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        quiet_windows = if keys() == before {
            quiet_windows + 1
        } else {
            0
        };
        if !task.is_finished() && quiet_windows == 2 {
            return Err(task);
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // A vector may end while a client still waits (the model's waiter waits on).
        if let Some(task) = self.waiting.take() {
            task.abort();
        }
        let _ = self.identity.kill();
        let _ = self.identity.wait();
    }
}

fn operation(mode: &str, paths: &[String]) -> Operation {
    let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
    let mode = match mode {
        "point" => LockMode::Point,
        "subtree" => LockMode::Subtree,
        _ => LockMode::Mv,
    };
    Operation::new(mode, &paths).unwrap()
}

/// The store's journals in the vector file's terms.
fn observed(
    rt: &tokio::runtime::Runtime,
    shared: &Arc<dyn Store>,
    clients: &[Client],
) -> (Vec<JournalState>, u8) {
    let tree = lockstep_model::lock::Tree::parse(&vectors::TREE.map(String::from)).unwrap();
    let client_of = |owner: &str| {
        let process = ProcessId::parse(owner)?;
        clients
            .iter()
            .position(|c| c.process == process)
            .map(|c| c as u8)
    };
    let state = rt.block_on(inspect(&**shared, &tree, client_of)).unwrap();
    let kind = |k: Kind| {
        if k == Kind::Point {
            "point".to_string()
        } else {
            "subtree".to_string()
        }
    };
    let mut journals = Vec::new();
    for (p, name) in vectors::TREE.iter().enumerate() {
        let slot = state.slots[p];
        let newest = match slot.head {
            Head::Free => continue,
            Head::Held {
                owner,
                kind: k,
                token,
                ..
            } => NewestEntry::Acquire {
                client: owner,
                kind: kind(k),
                ticket: token,
            },
            Head::Released { kind: k, token } => NewestEntry::Release {
                kind: kind(k),
                ticket: token,
            },
            Head::Withdrawn { token } => NewestEntry::Withdraw { ticket: token },
            Head::Empty { .. } => panic!("zero-byte entry"),
        };
        let marks = JournalMarks {
            subtree: slot.prior.subtree,
            any: slot.prior.any,
        };
        journals.push(JournalState {
            path: name.to_string(),
            len: slot.len,
            newest,
            marks,
        });
    }
    (journals, state.tickets as u8)
}

/// The mutant switch is process-wide: tests of this binary take turns.
fn exclusive(mutant: Option<lockstep::mutants::Mutant>) -> std::sync::MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    lockstep::mutants::activate(mutant);
    guard
}

#[test]
fn the_implementation_replays_every_vector() {
    let _one = exclusive(None);
    let outcomes = replay_all(&load()).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("steps replayed, by expected outcome: {outcomes:?}");
    for needed in [
        "granted",
        "busy",
        "crashed",
        "done",
        "fenced",
        "released",
        "renewed",
        "lost",
        "waiting",
        "lease-lost",
        "exhausted",
    ] {
        assert!(
            outcomes.get(needed).is_some_and(|n| *n > 0),
            "no vector step ends {needed}: {outcomes:?}"
        );
    }
    let file = load();
    let ticks = file.vectors.iter().flat_map(|v| &v.steps);
    assert!(
        ticks
            .filter(|(op, e)| *op == VectorOp::Tick && e.outcome == "granted")
            .count()
            > 0,
        "no tick hands a waiter the lock"
    );
}

/// Whether `vector` has a tick after which the waiter passed an expired lock on a path that is
/// not its own: the journal's newest entry went from an `acquire` to a `release` there (the
/// vectors the catcher of `pass-expired-unreleased` needs).
fn passes_an_expired_lock(vector: &vectors::Vector) -> bool {
    let Some(waiter) = vector.clients.iter().find(|c| c.waits) else {
        return false;
    };
    vector.steps.windows(2).any(|pair| {
        let [(_, before), (op, after)] = pair else {
            unreachable!("windows of two")
        };
        *op == VectorOp::Tick
            && after.journals.iter().any(|j| {
                !waiter.paths.contains(&j.path)
                    && matches!(j.newest, NewestEntry::Release { .. })
                    && before.journals.iter().any(|b| {
                        b.path == j.path && matches!(b.newest, NewestEntry::Acquire { .. })
                    })
            })
    })
}

/// The replay catches an acquirer that passes an expired lock on another path without releasing
/// it in storage (the model's `ignore-expired`). Replayed on the vectors where, after a tick, the
/// waiter passes one (computed from the file, and there must be some), the zombie's `acquire`
/// stays the newest entry where the model wrote a `release`.
#[test]
fn the_replay_catches_an_expired_lock_passed_unreleased() {
    assert!(
        load().vectors.iter().any(passes_an_expired_lock),
        "no vector passes an expired lock after a tick: regenerate a larger sample"
    );
    // Every vector: a dead owner's lock is still released before it is passed, so only a tick
    // (a lease that ran out) can expose it.
    let error = divergence_under(lockstep::mutants::Mutant::PassExpiredUnreleased, |_| true);
    assert!(
        error.contains("(Tick)") && error.contains("diverges from the vector: journals"),
        "{error}"
    );
}

/// The replay catches a guard whose lease check ignores the clock: after a tick, a holder whose
/// lease ran out writes (`done` or `fenced`) where the model's holder finds its lease lost.
#[test]
fn the_replay_catches_a_guard_that_ignores_its_clock() {
    let error = divergence_under(lockstep::mutants::Mutant::GuardIgnoresClock, |_| true);
    assert!(
        error.contains("(Finish") && error.contains("expected lease-lost"),
        "{error}"
    );
}

/// Replays the vectors `keep` selects (there must be some) with `mutant` switched on: the
/// divergence from a vector the replay reports (not a panic somewhere in the harness).
fn divergence_under(
    mutant: lockstep::mutants::Mutant,
    keep: fn(&vectors::Vector) -> bool,
) -> String {
    let mut file = load();
    file.vectors.retain(keep);
    assert!(
        !file.vectors.is_empty(),
        "no vector has what {} needs: regenerate a larger sample",
        mutant.name()
    );
    let _one = exclusive(Some(mutant));
    let result = replay_all(&file);
    lockstep::mutants::activate(None);
    match result {
        Ok(_) => panic!("replaying the vectors must expose {}", mutant.name()),
        Err(error) => error,
    }
}

/// The replay catches a planted bug: a release appended after the journal's newest entry. It
/// must be caught as a divergence from a vector (not as a panic somewhere in the harness); the
/// clean control is `the_implementation_replays_every_vector`.
#[test]
fn the_replay_catches_a_blind_release() {
    let error = divergence_under(lockstep::mutants::Mutant::BlindRelease, |_| true);
    assert!(error.contains("diverges from the vector"), "{error}");
}

/// Whether `vector` has a renewal that finds its lock taken by another client (force-released,
/// then acquired by someone else): the case where a renewal in the wrong place would take a
/// live holder's lock.
fn renews_over_a_new_holder(vector: &vectors::Vector) -> bool {
    vector.steps.iter().any(|(op, expected)| match op {
        VectorOp::Renew { client } if expected.outcome == "lost" => {
            let paths = &vector.clients[*client].paths;
            expected.journals.iter().any(|j| {
                paths.contains(&j.path)
                    && matches!(j.newest, NewestEntry::Acquire { client: other, .. } if other as usize != *client)
            })
        }
        _ => false,
    })
}

/// The replay catches a planted bug in renewal: a renewal appended after the journal's newest
/// entry. Replayed on the vectors where a renewal meets a new holder (computed from the file,
/// and there must be some), it renews where the model's renewal is lost.
#[test]
fn the_replay_catches_a_blind_renew() {
    let error = divergence_under(
        lockstep::mutants::Mutant::BlindRenew,
        renews_over_a_new_holder,
    );
    assert!(
        error.contains("(Renew") && error.contains("outcome renewed, expected lost"),
        "{error}"
    );
}

/// The replay catches a release that reports a lost lock over the store error that stopped the
/// release of another: a `finish` the model ends `crashed` (after a renewal came out `lost`, a
/// crash stops the release of the client's other lock) reads `done`.
#[test]
fn the_replay_catches_a_lost_lock_hiding_a_failed_release() {
    let error = divergence_under(lockstep::mutants::Mutant::LostHidesStoreError, |_| true);
    assert!(
        error.contains("(Finish") && error.contains("outcome done, expected crashed"),
        "{error}"
    );
}

/// Replays every vector; the count of steps by outcome, or the first step whose outcome, journals
/// or tickets differ from the vector's.
fn replay_all(file: &VectorFile) -> Result<std::collections::BTreeMap<String, usize>, String> {
    let mut outcomes = std::collections::BTreeMap::new();
    assert_eq!(file.format, vectors::FORMAT);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for vector in &file.vectors {
        let shared: Arc<dyn Store> = Arc::new(MemStore::new());
        // One clock for every client: a `tick` moves it past a lease and its grace.
        let clock = Clock::advanceable();
        let options = LockOptions {
            timeout: Some(std::time::Duration::ZERO),
            retries_max: 0,
            cleanup_every: None,
            poll_min: std::time::Duration::from_millis(1),
            poll_max: std::time::Duration::from_millis(4),
            clock: clock.clone(),
            ..LockOptions::default()
        };
        let mut clients: Vec<Client> = vector
            .clients
            .iter()
            .map(|c| {
                let identity = Command::new("sleep").arg("3600").spawn().unwrap();
                let process = ProcessId::of_process(identity.id()).unwrap();
                let store = FaultyStore::new(Arc::clone(&shared));
                let options = LockOptions {
                    timeout: if c.waits {
                        None
                    } else {
                        Some(std::time::Duration::ZERO)
                    },
                    ..options.clone()
                };
                let manager = rt
                    .block_on(LockManager::start_as(
                        store.clone(),
                        options,
                        process.clone(),
                    ))
                    .unwrap();
                Client {
                    identity,
                    process,
                    store,
                    manager: Some(Arc::new(manager)),
                    guard: None,
                    operation: operation(&c.mode, &c.paths),
                    crashed: false,
                    waiting: None,
                }
            })
            .collect();
        for (n, (op, expected)) in vector.steps.iter().enumerate() {
            let at = format!("{} step {} ({op:?})", vector.id, n + 1);
            let outcome = match op {
                VectorOp::Acquire {
                    client,
                    crash_after_creates,
                } => {
                    let waits = vector.clients[*client].waits;
                    let client = &mut clients[*client];
                    if let Some(k) = crash_after_creates {
                        client.store.crash_after_creates(u64::from(*k));
                    }
                    let manager = Arc::clone(client.manager.as_ref().unwrap());
                    let operation = client.operation.clone();
                    let task = rt.spawn(async move { manager.lock(operation).await });
                    // The outcome is what the call returned. A crash that comes after the call's
                    // last effect (in a garbage-collecting read) does not change it. A client
                    // that waits goes on waiting in its task.
                    let result = if waits {
                        settle(&rt, &shared, &client.store, task)
                    } else {
                        Ok(rt.block_on(task).unwrap())
                    };
                    let outcome = match result {
                        Ok(result) => acquired(client, result, &at),
                        Err(task) => {
                            client.waiting = Some(task);
                            "waiting"
                        }
                    };
                    if outcome == "crashed" {
                        client.kill(&rt);
                        client.crashed = true;
                    }
                    client.store.restart();
                    outcome
                }
                VectorOp::Finish {
                    client,
                    crash_after_creates,
                } => {
                    let client = &mut clients[*client];
                    let guard = client
                        .guard
                        .take()
                        .expect("finish follows a granted acquire");
                    let log = FencedLog::new(Arc::clone(&shared));
                    // One write per lock, under its kind (a SUBTREE write covers its subtree),
                    // unless a lease ran out on the holder's clock: then no write, only the
                    // release. (Not `Guard::check`: a lock a renewal found lost is written
                    // anyway here, as the model's holder does; its resource fences it.)
                    let ran_out = guard.lease_ran_out();
                    let writes = if ran_out { Vec::new() } else { guard.tokens() };
                    let accepted = rt.block_on(async {
                        for (resource, kind, token) in &writes {
                            if !log.would_accept(resource, *kind, *token).await.unwrap() {
                                return false;
                            }
                        }
                        for (resource, kind, token) in &writes {
                            log.append_as(resource, *kind, *token, "write")
                                .await
                                .unwrap()
                                .unwrap();
                        }
                        true
                    });
                    if let Some(k) = crash_after_creates {
                        client.store.crash_after_creates(u64::from(*k));
                    }
                    let released = rt.block_on(guard.release());
                    let crashed = client.store.is_crashed();
                    // Crashed if the release failed for the crash (a store error is reported
                    // before a lock found lost). A crash after the release's last create (in a
                    // garbage-collecting read) does not change the outcome.
                    let cut_short = crashed
                        && matches!(&released, Err(e) if !matches!(e, lockstep::lock::LockError::LeaseLost { .. }));
                    let outcome = match (cut_short, ran_out, accepted) {
                        (true, _, _) => "crashed",
                        (false, true, _) => "lease-lost",
                        (false, false, true) => "done",
                        (false, false, false) => "fenced",
                    };
                    if crashed {
                        client.kill(&rt);
                        client.crashed = outcome == "crashed";
                    }
                    client.store.restart();
                    outcome
                }
                VectorOp::ForceRelease { path } => {
                    match rt
                        .block_on(force_release(&*shared, &LockPath::new(path).unwrap(), None))
                        .unwrap()
                    {
                        Some(_) => "released",
                        None => "nothing held to release",
                    }
                }
                VectorOp::Renew { client } => {
                    let client = &mut clients[*client];
                    match rt.block_on(client.manager.as_ref().unwrap().renew_all()) {
                        Ok(()) => "renewed",
                        Err(lockstep::lock::LockError::LeaseLost { .. }) => "lost",
                        Err(other) => panic!("{at}: {other}"),
                    }
                }
                VectorOp::Tick => {
                    // A lease and its grace (at least 5% of the entry's lease; every client
                    // here has the same) run out.
                    let grace = options.expiry_grace.max(options.lease / 20);
                    let run_out = options.lease + grace + std::time::Duration::from_millis(1);
                    assert!(clock.advance(run_out));
                    let client = clients
                        .iter_mut()
                        .find(|c| c.waiting.is_some())
                        .unwrap_or_else(|| panic!("{at}: a tick comes while a client waits"));
                    let task = client.waiting.take().unwrap();
                    match settle(&rt, &shared, &client.store, task) {
                        Ok(result) => acquired(client, result, &at),
                        Err(task) => {
                            client.waiting = Some(task);
                            "waiting"
                        }
                    }
                }
                VectorOp::Recover => {
                    for client in clients.iter_mut().filter(|c| c.crashed) {
                        let _ = client.identity.kill();
                        let _ = client.identity.wait();
                    }
                    let released = rt.block_on(recover(&*shared)).unwrap();
                    if released.is_empty() {
                        "recovery released nothing"
                    } else {
                        "released"
                    }
                }
            };
            let (journals, tickets) = observed(&rt, &shared, &clients);
            if outcome != expected.outcome {
                return Err(format!(
                    "{at}: diverges from the vector: outcome {outcome}, expected {}",
                    expected.outcome
                ));
            }
            if journals != expected.journals {
                return Err(format!(
                    "{at}: diverges from the vector: journals {journals:?}, expected {:?}",
                    expected.journals
                ));
            }
            if tickets != expected.tickets {
                return Err(format!(
                    "{at}: diverges from the vector: tickets {tickets}, expected {}",
                    expected.tickets
                ));
            }
            *outcomes.entry(outcome.to_owned()).or_default() += 1;
        }
    }
    Ok(outcomes)
}
