//! shuttle: session commits under shuttle's random and PCT schedulers.
//!
//! Over one MemStore, one session with three messages: two committer tasks (each a `Sessions`
//! of its own, with its own owner registration) commit twice each while an adder task adds two
//! more messages; a worker task runs the queue twice. One committer may crash after a random
//! number of creates (its store fails every call from then on); it then ends its registration
//! as its death would, and a restarted process runs recovery. An operator task force-releases
//! the session lock at a random moment, whoever holds it: what a lease expiry does to a holder
//! still running (it runs on as a zombie). In half the schedules commits take no session lock at
//! all. Every schedule then brings the world to rest (recovery, a last commit, workers until the
//! queue is empty) and checks, from the store:
//! - no message lost: every message added is in an archive;
//! - no duplicate archive: none is in two;
//! - memories whole, and every archive has memories;
//! - every redo record finished;
//! - effect applied once, and delivered: every archive has exactly one effect.
//!
//! Run: `cargo test -p lockstep --features shuttle,mutants --profile verify --test redo_shuttle`.
//! `LOCKSTEP_SHUTTLE_ITERATIONS` sets schedules per scheduler (default 300; `LOCKSTEP_SOAK=1`:
//! 20,000). A failure prints shuttle's replay string.
#![cfg(feature = "shuttle")]

#[path = "support/shuttle_replay.rs"]
mod shuttle_replay;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex as StdMutex, MutexGuard};

use lockstep::lock::owner::ProcessId;
use lockstep::lock::{self, LockPath};
use lockstep::mutants::{activate, Mutant};
use lockstep::redo::{self, EchoExtractor, RedoError, RedoOptions, Sessions};
use lockstep::store::{FaultyStore, MemStore, Store};
use shuttle::sync::{Arc, Mutex};

const SESSION: &str = "s";

fn iterations() -> usize {
    let soak = std::env::var("LOCKSTEP_SOAK").is_ok_and(|v| v == "1");
    std::env::var("LOCKSTEP_SHUTTLE_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if soak { 20_000 } else { 300 })
}

/// What the schedules exercised (std atomics: they outlive shuttle's executions).
static SCHEDULES: AtomicUsize = AtomicUsize::new(0);
static CRASHES: AtomicUsize = AtomicUsize::new(0);
static REPLAYED: AtomicUsize = AtomicUsize::new(0);
static FORCED: AtomicUsize = AtomicUsize::new(0);
static BUSY: AtomicUsize = AtomicUsize::new(0);
static LEASE_LOST: AtomicUsize = AtomicUsize::new(0);

fn count(counter: &AtomicUsize) {
    counter.fetch_add(1, Ordering::Relaxed);
}

async fn open(store: impl Store, session_lock: bool) -> Sessions {
    Sessions::open_with(
        store,
        RedoOptions {
            session_lock,
            lock_timeout: Some(std::time::Duration::ZERO),
            ..RedoOptions::default()
        },
        std::sync::Arc::new(EchoExtractor),
        ProcessId::current(),
    )
    .await
    .unwrap()
}

/// The checks, at rest, from the store alone.
async fn check(store: &MemStore, added: &[String]) {
    let view = redo::inspect(store).await.unwrap();
    let view = view.session(SESSION).expect("the session exists");
    let mut archived: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for a in &view.archives {
        for id in &a.messages {
            archived.entry(id).or_default().push(a.index);
        }
    }
    let all = format!("{view:#?}");
    for id in added {
        assert!(
            archived.contains_key(id.as_str()),
            "no message lost: {id} is in no archive at rest\n{all}"
        );
    }
    for (id, ks) in &archived {
        assert!(
            ks.len() == 1,
            "no duplicate archive: {id} is in archives {ks:?}\n{all}"
        );
    }
    assert!(
        view.memories_missing.is_empty(),
        "memories whole: {:?}",
        view.memories_missing
    );
    assert!(
        view.pending.is_empty(),
        "every redo record finished: {:?} pending\n{all}",
        view.pending
    );
    for a in &view.archives {
        assert!(
            view.memories.iter().any(|m| m.archive == a.index),
            "no memory lost: archive {} has none\n{all}",
            a.index
        );
        let effects = view.effects.get(&a.index).copied().unwrap_or(0);
        assert!(
            effects <= 1,
            "effect applied once: archive {} has {effects}\n{all}",
            a.index
        );
        assert!(
            effects == 1,
            "delivered at least once: archive {} has no effect\n{all}",
            a.index
        );
    }
}

fn scenario() {
    count(&SCHEDULES);
    shuttle::future::block_on(async {
        use shuttle::rand::Rng;
        let store = MemStore::new();
        let session_lock = shuttle::rand::thread_rng().gen_bool(0.5);
        let added: Arc<Mutex<Vec<String>>> = Arc::default();
        {
            let setup = open(store.clone(), session_lock).await;
            for m in 0..3 {
                let id = setup.add(SESSION, &format!("m{m}")).await.unwrap();
                added.lock().unwrap().push(id);
            }
            setup.shutdown().await;
        }
        let crasher = shuttle::rand::thread_rng().gen_range(0..3usize); // 2: nobody crashes
        let crash_after = shuttle::rand::thread_rng().gen_range(1..7u64);
        let mut tasks = Vec::new();
        for c in 0..2 {
            let store = store.clone();
            tasks.push(shuttle::future::spawn(async move {
                let faulty = FaultyStore::new(store.clone());
                let sessions = open(faulty.clone(), session_lock).await;
                if c == crasher {
                    faulty.crash_after_creates(crash_after);
                }
                for _ in 0..2 {
                    match sessions.commit(SESSION).await {
                        Ok(_) => {}
                        Err(RedoError::Busy { .. }) => count(&BUSY),
                        // The operator's force release landed on this commit's acquisition: the
                        // lock it took is gone before it was granted, and the commit fails
                        // having changed nothing (PCT found it in CI; the schedule is replayed
                        // by `a_force_release_during_acquisition_fails_the_commit_cleanly`).
                        Err(RedoError::Lock(lock::LockError::LeaseLost { .. })) => {
                            count(&LEASE_LOST)
                        }
                        Err(_) if faulty.is_crashed() => {
                            count(&CRASHES);
                            // Dead: its registration goes with it; a restarted process recovers.
                            sessions.kill().await;
                            let restarted = open(store.clone(), session_lock).await;
                            match restarted.recover().await {
                                Ok(r) if !r.replayed.is_empty() => count(&REPLAYED),
                                Ok(_) | Err(RedoError::RecoveryBusy { .. }) => {}
                                Err(error) => panic!("recovery: {error}"),
                            }
                            restarted.shutdown().await;
                            return;
                        }
                        Err(error) => panic!("committer {c}: {error}"),
                    }
                }
                sessions.shutdown().await;
            }));
        }
        {
            let (store, added) = (store.clone(), Arc::clone(&added));
            tasks.push(shuttle::future::spawn(async move {
                let adder = open(store, session_lock).await;
                for m in 3..5 {
                    let id = adder.add(SESSION, &format!("m{m}")).await.unwrap();
                    added.lock().unwrap().push(id);
                }
                adder.shutdown().await;
            }));
        }
        {
            let store = store.clone();
            tasks.push(shuttle::future::spawn(async move {
                let worker = open(store, session_lock).await;
                for _ in 0..2 {
                    worker.work_once().await.unwrap();
                }
                worker.shutdown().await;
            }));
        }
        {
            let store = store.clone();
            tasks.push(shuttle::future::spawn(async move {
                let yields = shuttle::rand::thread_rng().gen_range(0..80);
                for _ in 0..yields {
                    shuttle::future::yield_now().await;
                }
                let path = LockPath::new(&format!("/sessions/{SESSION}")).unwrap();
                if lock::force_release(&store, &path, None)
                    .await
                    .unwrap()
                    .is_some()
                {
                    count(&FORCED);
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        // At rest: recovery, a last commit, workers until the queue is empty.
        let last = open(store.clone(), session_lock).await;
        last.recover().await.unwrap();
        last.commit(SESSION).await.unwrap();
        for _ in 0..3 {
            if last.work_once().await.unwrap().processed.is_empty() {
                break;
            }
        }
        last.shutdown().await;
        let added = added.lock().unwrap().clone();
        check(&store, &added).await;
    });
}

fn exclusive(mutant: Option<Mutant>) -> MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: StdMutex<()> = StdMutex::new(());
    let guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    activate(mutant);
    for counter in [&SCHEDULES, &CRASHES, &REPLAYED, &FORCED, &BUSY] {
        counter.store(0, Ordering::Relaxed);
    }
    guard
}

fn assert_covered(test: &str, iterations: usize) {
    let get = |c: &AtomicUsize| c.load(Ordering::Relaxed);
    let counts = [
        ("schedules", get(&SCHEDULES)),
        ("crashes", get(&CRASHES)),
        ("phase 2 replayed", get(&REPLAYED)),
        ("session locks force-released", get(&FORCED)),
        ("busy commits", get(&BUSY)),
    ];
    eprintln!("{test}: {counts:?}");
    assert_eq!(counts[0].1, iterations);
    for (name, n) in &counts[1..] {
        assert!(*n > 0, "{test}: no {name}: {counts:?}");
    }
}

#[test]
fn random_schedules_lose_nothing_and_apply_nothing_twice() {
    let _one = exclusive(None);
    shuttle_replay::check(
        "redo",
        "redo_shuttle",
        "random",
        ("scenario", scenario),
        shuttle::scheduler::RandomScheduler::new(iterations()),
    );
    assert_covered("random", iterations());
}

#[test]
fn pct_schedules_lose_nothing_and_apply_nothing_twice() {
    let _one = exclusive(None);
    shuttle_replay::check(
        "redo",
        "redo_shuttle",
        "pct",
        ("scenario", scenario),
        shuttle::scheduler::PctScheduler::new(3, iterations()),
    );
    assert_covered("pct", iterations());
}

/// The PCT schedule CI found (a force release landing on a commit's acquisition of the session
/// lock) replays: the commit fails with `LeaseLost` having changed nothing, and every property
/// holds at rest.
#[test]
fn a_force_release_during_acquisition_fails_the_commit_cleanly() {
    let _one = exclusive(None);
    let schedule = include_str!("shuttle-schedules/redo-force-release-during-acquisition.txt");
    let mut scheduler = shuttle::scheduler::ReplayScheduler::new_from_encoded(schedule.trim());
    scheduler.set_allow_incomplete();
    shuttle::Runner::new(scheduler, shuttle::Config::default()).run(scenario);
}

/// With `mutant` on, the seeded schedules fail naming `property`; without it, the same pass.
fn assert_mutant_caught(mutant: Mutant, property: &str, iterations: usize) {
    let seed = 0x12ed0;
    {
        let _one = exclusive(Some(mutant));
        let found = shuttle_replay::expected_failure_of(
            "redo",
            "redo_shuttle",
            &format!("mutant {}", mutant.name()),
            ("scenario", scenario),
            shuttle::scheduler::RandomScheduler::new_from_seed(seed, iterations),
        );
        activate(None);
        let message = found.unwrap_or_else(|| {
            panic!(
                "{}: no schedule of {iterations} found the planted bug",
                mutant.name()
            )
        });
        assert!(
            message.contains(property),
            "{}: failed, but not on {property}: {message}",
            mutant.name()
        );
    }
    let _one = exclusive(None);
    if let Some(message) = shuttle_replay::failure_of(
        "redo",
        "redo_shuttle",
        &format!("control of mutant {}", mutant.name()),
        ("scenario", scenario),
        shuttle::scheduler::RandomScheduler::new_from_seed(seed, iterations),
    ) {
        panic!("{}: the control run failed: {message}", mutant.name());
    }
}

/// A message added between a commit's read and its deletes is deleted with the archived ones.
#[test]
fn random_schedules_catch_a_clear_of_every_message() {
    assert_mutant_caught(Mutant::RedoClearAll, "no message lost", 1_000);
}

/// A crashed committer's archived messages are archived again by the next commit.
#[test]
fn random_schedules_catch_a_commit_without_exclusion() {
    assert_mutant_caught(Mutant::RedoNoExclusion, "no duplicate archive", 1_000);
}

/// Reruns a replay file of this target: the one `lockstep replay` names in `$LOCKSTEP_REPLAY`, or
/// else the committed case of the redo-no-exclusion mutant (see `shuttle_replay::replay_test`).
#[test]
fn replay_file() {
    shuttle_replay::replay_test(
        "redo_shuttle",
        "redo-shuttle-no-exclusion.json",
        &[("scenario", scenario)],
        exclusive,
    );
}
