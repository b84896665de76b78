//! shuttle: the merge under shuttle's random and PCT schedulers.
//!
//! Over one MemStore: a root `main` and a child `live` with one commit. Three merger tasks, each
//! a `Lake` of its own (its own owner registration), merge `live` twice each, waiting as long as
//! it takes for the lock. Two writer tasks commit three commits each meanwhile. One merger may
//! crash after a random number of creates (its store fails every call from then on); it then
//! ends its registration as its death would and runs recovery, as a restarted process would. An
//! operator task force-releases the lock at a random moment, whoever holds it: a live holder
//! becomes a zombie. Every schedule checks, from the store, after a last merge:
//! - exactly once: every child commit is in the parent once, counting every merge commit;
//! - no lost write: every commit a writer was told landed is in the parent;
//! - TAIL never moved back, across every TAIL/BASE version;
//! - zombie cannot complete: every `unlock` frees the `lock` right before it.
//!
//! Run: `cargo test -p lockstep --features shuttle,mutants --profile verify --test merge_shuttle`.
//! `LOCKSTEP_SHUTTLE_ITERATIONS` sets schedules per scheduler (default 500; `LOCKSTEP_SOAK=1`:
//! 20,000). A failure prints shuttle's replay string; `blind_unlock_schedule_replays` replays a
//! committed one.
#![cfg(feature = "shuttle")]

#[path = "support/shuttle_replay.rs"]
mod shuttle_replay;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex as StdMutex, MutexGuard};

use lockstep::merge::{
    self, BranchName, CommitEntry, Lake, LockEntry, MergeError, MergeOptions, TailBase,
};
use lockstep::mutants::{activate, Mutant};
use lockstep::store::{FaultyStore, MemStore, Store};
use shuttle::sync::{Arc, Mutex};

fn iterations() -> usize {
    let soak = std::env::var("LOCKSTEP_SOAK").is_ok_and(|v| v == "1");
    std::env::var("LOCKSTEP_SHUTTLE_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if soak { 20_000 } else { 500 })
}

/// What the schedules exercised (std atomics: they outlive shuttle's executions).
static SCHEDULES: AtomicUsize = AtomicUsize::new(0);
static CRASHES: AtomicUsize = AtomicUsize::new(0);
static RECOVERED: AtomicUsize = AtomicUsize::new(0);
static FORCED: AtomicUsize = AtomicUsize::new(0);
/// Mergers whose lock was released under them: fenced (`LockLost`), or released only after their
/// TAIL move landed (`released_by_other`).
static ZOMBIES_FENCED: AtomicUsize = AtomicUsize::new(0);
static ROLLED_FORWARD: AtomicUsize = AtomicUsize::new(0);

fn count(counter: &AtomicUsize) {
    counter.fetch_add(1, Ordering::Relaxed);
}

fn live() -> BranchName {
    BranchName::new("live").unwrap()
}

fn forever() -> MergeOptions {
    MergeOptions {
        timeout: None,
        ..MergeOptions::default()
    }
}

/// The lake's journals, for a failure message.
async fn dump(store: &MemStore) -> String {
    let mut out = String::new();
    for key in store.list("branches/").await.unwrap() {
        let (bytes, _) = store.get(&key).await.unwrap().unwrap();
        out.push_str(&format!("  {key}: {}", String::from_utf8_lossy(&bytes)));
    }
    out
}

/// The checks, from the store alone.
async fn check(store: &MemStore, written: &[u64]) {
    let journals = dump(store).await;
    let main = BranchName::new("main").unwrap();
    let end = live().commits().end(store).await.unwrap();
    let mut counts = vec![0u32; end as usize];
    for entry in merge::log(store, &main).await.unwrap() {
        if let CommitEntry::Merge { from, to, .. } = entry.entry {
            for id in from..to {
                counts[id as usize] += 1;
            }
        }
    }
    for (id, n) in counts.iter().enumerate() {
        assert!(
            *n <= 1,
            "exactly once: child commit {id} is in the parent {n} times\n{journals}"
        );
        assert!(*n >= 1, "no lost write: child commit {id} is not in the parent after the last merge\n{journals}");
    }
    for index in written {
        assert!(
            *index < end,
            "no lost write: commit {index} was acknowledged but is not in the child"
        );
    }
    let versions = live()
        .tailbase()
        .read_from::<TailBase>(store, 0)
        .await
        .unwrap();
    for pair in versions.windows(2) {
        assert!(
            pair[1].1.tail >= pair[0].1.tail,
            "TAIL moved back from {} to {}",
            pair[0].1.tail,
            pair[1].1.tail
        );
    }
    let locks = live()
        .mergelock()
        .read_from::<LockEntry>(store, 0)
        .await
        .unwrap();
    for (index, entry) in &locks {
        if let LockEntry::Unlock { of, .. } = entry {
            let before = locks.iter().find(|(i, _)| i + 1 == *index);
            assert!(
                *of + 1 == *index && matches!(before, Some((_, LockEntry::Lock { .. }))),
                "zombie cannot complete: unlock #{index} frees lock #{of}, not the lock right before it"
            );
        }
    }
}

fn scenario() {
    count(&SCHEDULES);
    shuttle::future::block_on(async {
        use shuttle::rand::Rng;
        let store = MemStore::new();
        let setup = Lake::open(store.clone()).await.unwrap();
        setup.create_branch("main", None).await.unwrap();
        setup
            .create_branch("live", Some("main"))
            .await
            .unwrap()
            .commit(b"0")
            .await
            .unwrap();
        let crasher = shuttle::rand::thread_rng().gen_range(0..4usize); // 3: nobody crashes
                                                                        // 2 (its `lock` and its merge commit) is the roll-forward window: drawn most often.
        let crash_after = [1, 2, 2, 2, 3, 4][shuttle::rand::thread_rng().gen_range(0..6usize)];
        let written: Arc<Mutex<Vec<u64>>> = Arc::default();
        let mut tasks = Vec::new();
        for m in 0..3 {
            let store = store.clone();
            tasks.push(shuttle::future::spawn(async move {
                let faulty = FaultyStore::new(store.clone());
                let lake = Lake::open(faulty.clone()).await.unwrap();
                if m == crasher {
                    faulty.crash_after_creates(crash_after);
                }
                for _ in 0..2 {
                    match lake.merge("live", forever()).await {
                        Ok(merged) => {
                            if merged.outcome == merge::MergeOutcome::RolledForward {
                                count(&ROLLED_FORWARD);
                            }
                            if merged.released_by_other {
                                count(&ZOMBIES_FENCED); // released under it after its TAIL move
                            }
                        }
                        Err(MergeError::LockLost { .. }) => count(&ZOMBIES_FENCED),
                        Err(error) if faulty.is_crashed() => {
                            let _ = error;
                            count(&CRASHES);
                            // Dead: its registration goes with it; a restarted process recovers.
                            lake.end_as_crash();
                            if !merge::recover(&store).await.unwrap().is_empty() {
                                count(&RECOVERED);
                            }
                            return;
                        }
                        Err(error) => panic!("merger {m}: {error}"),
                    }
                }
            }));
        }
        for _ in 0..2 {
            let (store, written) = (store.clone(), Arc::clone(&written));
            tasks.push(shuttle::future::spawn(async move {
                let lake = Lake::open(store).await.unwrap();
                let live = lake.branch("live").await.unwrap();
                for _ in 0..3 {
                    let index = live.commit(b"w").await.unwrap();
                    written.lock().unwrap().push(index);
                }
            }));
        }
        {
            let store = store.clone();
            tasks.push(shuttle::future::spawn(async move {
                let yields = shuttle::rand::thread_rng().gen_range(0..60);
                for _ in 0..yields {
                    shuttle::future::yield_now().await;
                }
                if merge::force_release(&store, &live(), None)
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
        // Last merges, by nobody faulty, until there is nothing to merge (a merge that rolls a
        // crashed merge forward does only that): then every child commit is in the parent.
        let last = Lake::open(store.clone()).await.unwrap();
        for _ in 0..3 {
            let merged = last.merge("live", forever()).await.unwrap();
            if merged.outcome == merge::MergeOutcome::NothingToMerge {
                break;
            }
        }
        let written = written.lock().unwrap().clone();
        check(&store, &written).await;
    });
}

fn exclusive(mutant: Option<Mutant>) -> MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: StdMutex<()> = StdMutex::new(());
    let guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    activate(mutant);
    for counter in [
        &SCHEDULES,
        &CRASHES,
        &RECOVERED,
        &FORCED,
        &ZOMBIES_FENCED,
        &ROLLED_FORWARD,
    ] {
        counter.store(0, Ordering::Relaxed);
    }
    guard
}

fn assert_covered(test: &str, iterations: usize) {
    let get = |c: &AtomicUsize| c.load(Ordering::Relaxed);
    let counts = [
        ("schedules", get(&SCHEDULES)),
        ("crashes", get(&CRASHES)),
        ("locks recovered", get(&RECOVERED)),
        ("force releases", get(&FORCED)),
        ("released under a merger", get(&ZOMBIES_FENCED)),
        ("rolled forward", get(&ROLLED_FORWARD)),
    ];
    eprintln!("{test}: {counts:?}");
    assert_eq!(counts[0].1, iterations);
    for (name, n) in &counts[1..] {
        assert!(*n > 0, "{test}: no {name}: {counts:?}");
    }
}

#[test]
fn random_schedules_merge_exactly_once_and_lose_nothing() {
    let _one = exclusive(None);
    shuttle_replay::check(
        "merge",
        "merge_shuttle",
        "random",
        ("scenario", scenario),
        shuttle::scheduler::RandomScheduler::new(iterations()),
    );
    assert_covered("random", iterations());
}

#[test]
fn pct_schedules_merge_exactly_once_and_lose_nothing() {
    let _one = exclusive(None);
    shuttle_replay::check(
        "merge",
        "merge_shuttle",
        "pct",
        ("scenario", scenario),
        shuttle::scheduler::PctScheduler::new(3, iterations()),
    );
    assert_covered("pct", iterations());
}

/// With `mutant` on, the seeded schedules fail naming `property`; without it, the same pass.
fn assert_mutant_caught(mutant: Mutant, property: &str, iterations: usize) {
    let seed = 0x3e7_9e;
    {
        let _one = exclusive(Some(mutant));
        let found = shuttle_replay::expected_failure_of(
            "merge",
            "merge_shuttle",
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
        "merge",
        "merge_shuttle",
        &format!("control of mutant {}", mutant.name()),
        ("scenario", scenario),
        shuttle::scheduler::RandomScheduler::new_from_seed(seed, iterations),
    ) {
        panic!("{}: the control run failed: {message}", mutant.name());
    }
}

#[test]
fn random_schedules_catch_a_blind_unlock() {
    assert_mutant_caught(Mutant::MergeBlindUnlock, "zombie cannot complete", 2_000);
}

#[test]
fn random_schedules_catch_tail_moved_to_own_cut() {
    assert_mutant_caught(Mutant::MergeTailToOwnCut, "no lost write", 2_000);
}

fn replay(schedule: &str) {
    let mut scheduler = shuttle::scheduler::ReplayScheduler::new_from_encoded(schedule);
    scheduler.set_allow_incomplete();
    shuttle::Runner::new(scheduler, shuttle::Config::default()).run(scenario);
}

/// A committed failing `schedule` replays with `mutant` on to a failure naming `property`; the
/// same schedule without the mutant does not fail. `regenerate` says how to record a new one
/// when a change to the code has moved the schedule's scheduling points.
fn assert_schedule_replays(schedule: &str, mutant: Mutant, property: &str, regenerate: &str) {
    let schedule = schedule.trim();
    let with = {
        let _one = exclusive(Some(mutant));
        let failed = shuttle_replay::panic_of(|| replay(schedule));
        activate(None);
        failed
    };
    let message = with.unwrap_or_else(|| {
        panic!(
            "the committed schedule of {} no longer reproduces the failure: a change to the \
             code moved its scheduling points; {regenerate}",
            mutant.name()
        )
    });
    assert!(message.contains(property), "{message}");
    let _one = exclusive(None);
    if let Some(message) = shuttle_replay::panic_of(|| replay(schedule)) {
        panic!("the schedule replayed without the mutant failed: {message}");
    }
}

#[test]
fn blind_unlock_schedule_replays() {
    assert_schedule_replays(
        include_str!("shuttle-schedules/merge-blind-unlock.txt"),
        Mutant::MergeBlindUnlock,
        "zombie cannot complete",
        "run the random_schedules test of this mutant with --nocapture and commit the first \
         failing schedule it prints",
    );
}

/// A schedule PCT found in CI: a merger crashes and recovers while the others merge. Recovery
/// lists the crashed merger's lock #6 as stuck; before it reads the journal again, a merger rolls
/// the crashed merge forward, unlocks (#7) and a third locks (#8). Recovery must take lock #6 as
/// already freed, not fail with a token mismatch (the planted bug does).
#[test]
fn recover_race_schedule_replays() {
    assert_schedule_replays(
        include_str!("shuttle-schedules/merge-recover-race.txt"),
        Mutant::MergeRecoverRaceIsError,
        "TokenMismatch",
        "make pct_schedules_merge_exactly_once_and_lose_nothing switch on \
         Mutant::MergeRecoverRaceIsError (its `exclusive(None)`), run it with --nocapture and \
         LOCKSTEP_SHUTTLE_ITERATIONS=20000 until it fails, and commit the failing schedule it \
         prints (PCT found the race in CI, in a run of 500 schedules)",
    );
}

/// Reruns a replay file of this target: the one `lockstep replay` names in `$LOCKSTEP_REPLAY`, or
/// else the committed case of the blind-unlock mutant (see `shuttle_replay::replay_test`).
#[test]
fn replay_file() {
    shuttle_replay::replay_test(
        "merge_shuttle",
        "merge-shuttle-blind-unlock.json",
        &[("scenario", scenario)],
        exclusive,
    );
}
