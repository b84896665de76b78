//! shuttle: the async lock manager under shuttle's random and PCT schedulers (DESIGN §5).
//!
//! Three tasks, each with its own `LockManager` over one MemStore, take overlapping locks
//! (SUBTREE /a, POINT /a/b, POINT /a) twice each, waiting as long as it takes. One task may crash
//! while holding (its manager is killed, its guard never released) and an operator then
//! force-releases its locks. Every schedule checks:
//! - mutual exclusion: no two tasks ever hold conflicting locks at once (a shared holders table);
//! - fencing: a live holder's write is accepted; a crashed holder's late write, made after
//!   everything else, is rejected exactly when an overlapping lock was granted later and wrote;
//! - linearizability of acquire / release / force release against a sequential lock table
//!   (stateright's `LinearizabilityTester`).
//!
//! Run: `cargo test -p lockstep --features shuttle,mutants --profile verify --test shuttle`.
//! Each test prints what its schedules exercised (crashes, force releases, zombie writes fenced
//! and accepted, distinct interleavings) and asserts minimums for them.
//! `LOCKSTEP_SHUTTLE_ITERATIONS` sets schedules per scheduler (default 2,000; `LOCKSTEP_SOAK=1`:
//! 50,000). A failure prints shuttle's replay string; `skip_recheck_schedule_replays` replays a
//! committed one (a replay whose next task is no longer runnable stops quietly, so only the
//! property's own failure fails it).
#![cfg(feature = "shuttle")]

#[path = "support/shuttle_replay.rs"]
mod shuttle_replay;

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex as StdMutex, MutexGuard};

use lockstep::lock::{
    force_release, FencedLog, LockKind, LockManager, LockMode, LockOptions, LockPath, Operation,
};
use lockstep::mutants::{activate, Mutant};
use lockstep::store::MemStore;
use shuttle::sync::{Arc, Mutex};
use stateright::semantics::{ConsistencyTester, LinearizabilityTester, SequentialSpec};

const LOCKS: [(LockMode, &str, char); 3] = [
    (LockMode::Subtree, "/a", 'S'),
    (LockMode::Point, "/a/b", 'P'),
    (LockMode::Point, "/a", 'P'),
];

fn conflicts(a: (&str, char), b: (&str, char)) -> bool {
    let below = |ancestor: &str, path: &str| path.starts_with(&format!("{ancestor}/"));
    a.0 == b.0 || (a.1 == 'S' && below(a.0, b.0)) || (b.1 == 'S' && below(b.0, a.0))
}

/// The sequential specification: a table of held locks.
#[derive(Clone, Debug, Default)]
struct LockTable {
    held: Vec<(usize, &'static str, char)>,
}

#[derive(Clone, Debug, PartialEq)]
enum Op {
    Acquire(usize),
    Release(usize),
    ForceRelease(usize),
}

#[derive(Clone, Debug, PartialEq)]
enum Ret {
    Granted,
    Refused,
    Done,
}

impl SequentialSpec for LockTable {
    type Op = Op;
    type Ret = Ret;

    fn invoke(&mut self, op: &Op) -> Ret {
        match *op {
            Op::Acquire(task) => {
                let (_, path, kind) = LOCKS[task];
                if self
                    .held
                    .iter()
                    .any(|(_, p, k)| conflicts((p, *k), (path, kind)))
                {
                    return Ret::Refused;
                }
                self.held.push((task, path, kind));
                Ret::Granted
            }
            Op::Release(task) | Op::ForceRelease(task) => {
                self.held.retain(|(t, _, _)| *t != task);
                Ret::Done
            }
        }
    }
}

/// What the schedules of one test exercised, summed over them (std atomics: shuttle runs its
/// schedules one after another in this thread, and these are not part of what it schedules).
#[derive(Default)]
struct Coverage {
    schedules: AtomicUsize,
    crashes: AtomicUsize,
    /// Crashed holders' locks freed by the operator's force release.
    force_released: AtomicUsize,
    /// ... or already freed by a contender that found the owner proven dead.
    taken_over: AtomicUsize,
    /// A crashed holder's late write after a newer overlapping write: rejected.
    zombie_fenced: AtomicUsize,
    /// ... with no newer overlapping write to be fenced by: accepted, as it must be.
    zombie_accepted: AtomicUsize,
    /// Distinct orders of acquire/release events over all schedules.
    interleavings: StdMutex<HashSet<u64>>,
}

impl Coverage {
    fn add(counter: &AtomicUsize) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn report(&self, test: &str) -> [usize; 7] {
        let counts = [
            self.schedules.load(Ordering::Relaxed),
            self.crashes.load(Ordering::Relaxed),
            self.force_released.load(Ordering::Relaxed),
            self.taken_over.load(Ordering::Relaxed),
            self.zombie_fenced.load(Ordering::Relaxed),
            self.zombie_accepted.load(Ordering::Relaxed),
            self.interleavings.lock().unwrap().len(),
        ];
        eprintln!(
            "{test}: {} schedules, {} crashes ({} force-released, {} taken over by a contender), zombie writes {} fenced / {} accepted, {} distinct interleavings",
            counts[0], counts[1], counts[2], counts[3], counts[4], counts[5], counts[6]
        );
        counts
    }
}

fn coverage() -> &'static Coverage {
    static COVERAGE: std::sync::OnceLock<Coverage> = std::sync::OnceLock::new();
    COVERAGE.get_or_init(Coverage::default)
}

/// Resets the coverage counters (tests take turns, see [`exclusive`]).
fn reset_coverage() {
    let c = coverage();
    for counter in [
        &c.schedules,
        &c.crashes,
        &c.force_released,
        &c.taken_over,
        &c.zombie_fenced,
        &c.zombie_accepted,
    ] {
        counter.store(0, Ordering::Relaxed);
    }
    c.interleavings.lock().unwrap().clear();
}

/// A write accepted by the fenced log: (task, token).
type Accepted = Arc<Mutex<Vec<(usize, u64)>>>;

/// One schedule's scenario.
fn scenario() {
    Coverage::add(&coverage().schedules);
    shuttle::future::block_on(async {
        let store = MemStore::new();
        let holders: Arc<Mutex<Vec<(usize, &'static str, char)>>> = Arc::default();
        let accepted: Accepted = Arc::default();
        let events: Arc<Mutex<Vec<(usize, u8)>>> = Arc::default();
        let violations: Arc<Mutex<Vec<String>>> = Arc::default();
        let tester = Arc::new(Mutex::new(LinearizabilityTester::new(LockTable::default())));
        use shuttle::rand::Rng;
        let crasher = shuttle::rand::thread_rng().gen_range(0..4usize); // 3: nobody crashes
        let mut tasks = Vec::new();
        for task in 0..3 {
            let (store, holders, tester, accepted, events, violations) = (
                store.clone(),
                Arc::clone(&holders),
                Arc::clone(&tester),
                Arc::clone(&accepted),
                Arc::clone(&events),
                Arc::clone(&violations),
            );
            tasks.push(shuttle::future::spawn(async move {
                let options = LockOptions { timeout: None, cleanup_every: None, ..LockOptions::default() };
                let manager = LockManager::start(store.clone(), options).await.unwrap();
                let (mode, path, kind) = LOCKS[task];
                let log = FencedLog::new(store.clone());
                let resource = LockPath::new(path).unwrap();
                for round in 0..2 {
                    tester.lock().unwrap().on_invoke(task, Op::Acquire(task)).unwrap();
                    let guard = manager.lock(Operation::new(mode, &[path]).unwrap()).await.unwrap();
                    tester.lock().unwrap().on_return(task, Ret::Granted).unwrap();
                    events.lock().unwrap().push((task, 0));
                    // A violation is recorded and the task ends cleanly; the main task fails
                    // the schedule once every task is joined. Panicking here instead would unwind
                    // through the manager's guard while other tasks run, poisoning its mutexes
                    // and leaving shuttle unable to tell which panic ended the execution.
                    let clash = {
                        let mut held = holders.lock().unwrap();
                        let clash = held
                            .iter()
                            .find(|(_, p, k)| conflicts((p, *k), (path, kind)))
                            .map(|(other, p, k)| format!("mutual exclusion: task {task} ({kind} {path}) and task {other} ({k} {p}) hold at once"));
                        if clash.is_none() {
                            held.push((task, path, kind));
                        }
                        clash
                    };
                    if let Some(clash) = clash {
                        violations.lock().unwrap().push(clash);
                        guard.release().await.unwrap();
                        manager.shutdown().await;
                        return None;
                    }
                    shuttle::future::yield_now().await;
                    let token = guard.single_token().expect("one lock");
                    if task == crasher && round == 0 {
                        // Crash while holding: the process dies, an operator frees its lock.
                        // From the moment it dies its lock may be freed: by a contender that
                        // finds its owner proven dead, or by the operator. So the release is
                        // invoked before the death and returns after the force release.
                        Coverage::add(&coverage().crashes);
                        holders.lock().unwrap().retain(|(t, _, _)| *t != task);
                        tester.lock().unwrap().on_invoke(task, Op::ForceRelease(task)).unwrap();
                        std::mem::forget(guard);
                        manager.kill().await;
                        match force_release(&store, &resource, Some(token)).await {
                            Ok(Some(_)) => Coverage::add(&coverage().force_released),
                            // Already freed by a contender: nothing held, or a newer holder's
                            // token.
                            Ok(None) | Err(lockstep::lock::LockError::TokenMismatch { .. }) => {
                                Coverage::add(&coverage().taken_over)
                            }
                            Err(other) => panic!("force release: {other}"),
                        }
                        tester.lock().unwrap().on_return(task, Ret::Done).unwrap();
                        // The dead holder's late write is made at the end (a zombie paused
                        // past everything), by the main task.
                        return Some((task, token));
                    }
                    let written = log.append_as(&resource, kind_of(kind), token, "write").await.unwrap();
                    assert!(written.is_ok(), "fencing: a live holder's write was rejected: {written:?}");
                    accepted.lock().unwrap().push((task, token));
                    holders.lock().unwrap().retain(|(t, _, _)| *t != task);
                    events.lock().unwrap().push((task, 1));
                    tester.lock().unwrap().on_invoke(task, Op::Release(task)).unwrap();
                    guard.release().await.unwrap();
                    tester.lock().unwrap().on_return(task, Ret::Done).unwrap();
                }
                manager.shutdown().await;
                None
            }));
        }
        let mut zombie = None;
        for task in tasks {
            zombie = zombie.or(task.await.unwrap());
        }
        if let Some(clash) = violations.lock().unwrap().first() {
            panic!("{clash}");
        }
        assert!(
            tester.lock().unwrap().is_consistent(),
            "linearizability: the acquire/release history is not linearizable"
        );
        if let Some((task, token)) = zombie {
            // A zombie's late write, after every other task is done. It must be rejected exactly
            // when an overlapping lock was granted after the crash and wrote (its token is then
            // newer); otherwise nothing newer overlaps it and it is accepted.
            let (_, path, kind) = LOCKS[task];
            let newer = accepted.lock().unwrap().iter().any(|&(other, t)| {
                let (_, p, k) = LOCKS[other];
                conflicts((p, k), (path, kind)) && t > token
            });
            let log = FencedLog::new(store.clone());
            let written = log
                .append_as(
                    &LockPath::new(path).unwrap(),
                    kind_of(kind),
                    token,
                    "zombie",
                )
                .await
                .unwrap();
            match (newer, written) {
                (true, Err(_)) => Coverage::add(&coverage().zombie_fenced),
                (false, Ok(_)) => Coverage::add(&coverage().zombie_accepted),
                (true, Ok(_)) => panic!("fencing: the crashed task {task}'s late write with token {token} was accepted after a newer overlapping write"),
                (false, Err(fenced)) => panic!("fencing: the crashed task {task}'s write was rejected with nothing newer overlapping it: {fenced}"),
            }
        }
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        events.lock().unwrap().hash(&mut hasher);
        coverage()
            .interleavings
            .lock()
            .unwrap()
            .insert(hasher.finish());
    });
}

fn kind_of(kind: char) -> LockKind {
    if kind == 'S' {
        LockKind::Subtree
    } else {
        LockKind::Point
    }
}

fn iterations() -> usize {
    let soak = std::env::var("LOCKSTEP_SOAK").is_ok_and(|v| v == "1");
    std::env::var("LOCKSTEP_SHUTTLE_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if soak { 50_000 } else { 2_000 })
}

/// The mutant switch is process-wide: tests of this binary take turns.
fn exclusive(mutant: Option<Mutant>) -> MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: StdMutex<()> = StdMutex::new(());
    let guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    activate(mutant);
    reset_coverage();
    guard
}

/// Asserts the coverage minimums of a clean run of [`scenario`] over `iterations` schedules.
fn assert_covered(test: &str, iterations: usize) {
    let [schedules, crashes, force_released, taken_over, fenced, accepted, interleavings] =
        coverage().report(test);
    assert_eq!(schedules, iterations);
    // A crash in 3 of every 4 schedules; the floors are far below what any run sees.
    assert!(crashes >= iterations / 2, "too few crashes: {crashes}");
    assert!(
        force_released > 0,
        "no crashed holder's lock was force-released"
    );
    assert!(
        fenced > 0 && accepted > 0,
        "zombie writes: {fenced} fenced, {accepted} accepted"
    );
    // The scenario has a few hundred distinct histories of events in all (a 50,000-schedule soak
    // sees 338), so the floor stops growing at the default run's 2,000 schedules.
    let floor = iterations.min(2_000) / 40;
    assert!(
        interleavings >= floor,
        "only {interleavings} distinct interleavings (at least {floor} expected)"
    );
    let _ = taken_over; // MemStore owners of a killed manager are proven dead: contenders may recover them
}

#[test]
fn random_schedules_keep_exclusion_fencing_and_linearizability() {
    let _one = exclusive(None);
    shuttle_replay::check(
        "lock",
        "shuttle",
        "random",
        ("scenario", scenario),
        shuttle::scheduler::RandomScheduler::new(iterations()),
    );
    assert_covered("random", iterations());
}

#[test]
fn pct_schedules_keep_exclusion_fencing_and_linearizability() {
    let _one = exclusive(None);
    shuttle_replay::check(
        "lock",
        "shuttle",
        "pct",
        ("scenario", scenario),
        shuttle::scheduler::PctScheduler::new(3, iterations()),
    );
    assert_covered("pct", iterations());
}

/// Runs `scenario` over the same seeded schedules with `mutant` and without it: the mutant's run
/// must fail with `property` named in the failure, and the control must pass.
///
/// Each run gets a thread of its own: a failing execution can end with one task panicking while
/// another unwinds (a mutex poisoned under it), and shuttle then leaves its thread-local state
/// behind, failing whatever runs next on that thread. That once failed the control run here.
fn assert_mutant_caught(
    mutant: Mutant,
    (name, scenario): shuttle_replay::Named,
    property: &str,
    iterations: usize,
) {
    let seed = 0x10c5_7e9;
    let on_own_thread = |run: Box<dyn FnOnce() -> Option<String> + Send>| {
        std::thread::spawn(run)
            .join()
            .unwrap_or_else(|_| Some("(the run's thread panicked)".into()))
    };
    {
        let _one = exclusive(Some(mutant));
        let found = on_own_thread(Box::new(move || {
            shuttle_replay::expected_failure_of(
                "lock",
                "shuttle",
                &format!("mutant {}", mutant.name()),
                (name, scenario),
                shuttle::scheduler::RandomScheduler::new_from_seed(seed, iterations),
            )
        }));
        activate(None);
        match found {
            Some(message) => assert!(
                message.contains(property),
                "{}: the run failed, but not on {property}: {message}",
                mutant.name()
            ),
            None => panic!(
                "{}: no schedule of {iterations} found the planted bug",
                mutant.name()
            ),
        }
    }
    let _one = exclusive(None);
    if let Some(message) = on_own_thread(Box::new(move || {
        shuttle_replay::failure_of(
            "lock",
            "shuttle",
            &format!("control of mutant {}", mutant.name()),
            (name, scenario),
            shuttle::scheduler::RandomScheduler::new_from_seed(seed, iterations),
        )
    })) {
        panic!(
            "{}: the control run without the mutant failed: {message}",
            mutant.name()
        );
    }
}

/// The harness catches a planted bug: without the re-check, SUBTREE /a and POINT /a/b can both
/// be granted.
#[test]
fn random_schedules_catch_a_skipped_recheck() {
    assert_mutant_caught(
        Mutant::SkipRecheck,
        ("scenario", scenario),
        "mutual exclusion",
        20_000,
    );
}

/// The zombie write is what catches a fenced log that ignores tokens.
#[test]
fn random_schedules_catch_a_fence_that_ignores_tokens() {
    assert_mutant_caught(
        Mutant::FenceIgnoresTokens,
        ("scenario", scenario),
        "late write with token",
        2_000,
    );
}

/// Replays a schedule, stopping quietly (no panic) where the task it names is no longer runnable:
/// such a diverged replay is not a failure of the property. (A divergence at a random choice
/// still panics in shuttle 0.9; then the control below fails loudly, it does not pass.)
fn replay(scenario: fn(), schedule: &str) {
    let mut scheduler = shuttle::scheduler::ReplayScheduler::new_from_encoded(schedule);
    scheduler.set_allow_incomplete();
    shuttle::Runner::new(scheduler, shuttle::Config::default()).run(scenario);
}

/// A committed failing schedule of the skip-recheck mutant replays to the same failure, and the
/// same schedule without the mutant does not fail (it runs to its end or diverges quietly).
#[test]
fn skip_recheck_schedule_replays() {
    let schedule = include_str!("shuttle-schedules/skip-recheck.txt").trim();
    let with = {
        let _one = exclusive(Some(Mutant::SkipRecheck));
        let failed = shuttle_replay::panic_of(|| replay(scenario, schedule));
        activate(None);
        failed
    };
    let message = with.expect(
        "the committed schedule no longer reproduces the failure: a change to the code moved its \
         scheduling points; run the random_schedules test of this mutant with --nocapture and \
         commit the first failing schedule it prints",
    );
    assert!(
        message.contains("mutual exclusion"),
        "the replay failed, but not on mutual exclusion: {message}"
    );
    let _one = exclusive(None);
    if let Some(message) = shuttle_replay::panic_of(|| replay(scenario, schedule)) {
        panic!("the schedule replayed without the mutant failed: {message}");
    }
}

/// Reruns a replay file of this target: the one `lockstep replay` names in `$LOCKSTEP_REPLAY`, or
/// else the committed case of the skip-recheck mutant (see `shuttle_replay::replay_test`).
#[test]
fn replay_file() {
    shuttle_replay::replay_test(
        "shuttle",
        "lock-shuttle-skip-recheck.json",
        &[
            ("scenario", scenario),
            ("dropped_acquisition", cancellation::dropped_acquisition),
            ("dropped_release", cancellation::dropped_release),
        ],
        exclusive,
    );
}

// ---------------------------------------------------------------------------------------------
// Cancellation. A caller may drop `lock()` or `release()` at any await (a timeout, a `select!`).
// The store below behaves like FsStore: its operations run on a task of their own, so a create
// started by a dropped future still lands, later.

mod cancellation {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use lockstep::lock::{journal, Entry, LockManager, LockMode, LockOptions, LockPath, Operation};
    use lockstep::mutants::Mutant;
    use lockstep::store::{Created, Key, MemStore, Store, StoreError, Version};
    use shuttle::rand::Rng;

    use super::{assert_mutant_caught, exclusive, iterations, shuttle_replay};

    /// A store whose every operation runs detached from its caller, with yields before it takes
    /// effect, as FsStore's blocking workers do.
    #[derive(Clone)]
    struct Detached(MemStore);

    impl Detached {
        async fn run<T: Send + 'static>(
            &self,
            work: impl FnOnce(MemStore) -> std::pin::Pin<Box<dyn Future<Output = T> + Send>>
                + Send
                + 'static,
        ) -> T {
            let store = self.0.clone();
            let task = tokio::spawn(async move {
                for _ in 0..2 {
                    shuttle::future::yield_now().await;
                }
                work(store).await
            });
            task.await.expect("the detached store task")
        }
    }

    #[async_trait::async_trait]
    impl Store for Detached {
        async fn get(&self, key: &Key) -> Result<Option<(Vec<u8>, Version)>, StoreError> {
            let key = key.clone();
            self.run(move |s| Box::pin(async move { s.get(&key).await }))
                .await
        }
        async fn create(&self, key: &Key, bytes: &[u8]) -> Result<Created, StoreError> {
            let (key, bytes) = (key.clone(), bytes.to_vec());
            self.run(move |s| Box::pin(async move { s.create(&key, &bytes).await }))
                .await
        }
        async fn list(&self, prefix: &str) -> Result<Vec<Key>, StoreError> {
            let prefix = prefix.to_owned();
            self.run(move |s| Box::pin(async move { s.list(&prefix).await }))
                .await
        }
        async fn delete(&self, key: &Key) -> Result<(), StoreError> {
            let key = key.clone();
            self.run(move |s| Box::pin(async move { s.delete(&key).await }))
                .await
        }
        fn describe(&self) -> String {
            "detached memory".into()
        }
    }

    /// Polls `future` at most `polls` times (yielding between polls), then drops it: what a
    /// caller's timeout does. `Some(output)` if it finished first.
    async fn poll_then_drop<F: Future>(future: F, polls: usize) -> Option<F::Output> {
        let mut future = std::pin::pin!(future);
        for _ in 0..polls {
            if let Poll::Ready(output) = PollOnce(future.as_mut()).await {
                return Some(output);
            }
            shuttle::future::yield_now().await;
        }
        None
    }

    struct PollOnce<'a, F>(Pin<&'a mut F>);

    impl<F: Future> Future for PollOnce<'_, F> {
        type Output = Poll<F::Output>;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            Poll::Ready(self.0.as_mut().poll(cx))
        }
    }

    /// Whether `path`'s newest entry is a held lock (acquire or renew).
    async fn held(store: &Detached, path: &LockPath) -> bool {
        journal::newest(store, path)
            .await
            .unwrap()
            .is_some_and(|n| matches!(n.entry, Entry::Acquire { .. } | Entry::Renew { .. }))
    }

    fn options() -> LockOptions {
        LockOptions {
            timeout: Some(std::time::Duration::ZERO),
            cleanup_every: None,
            ..LockOptions::default()
        }
    }

    /// What the cancellation schedules exercised: acquisitions dropped before their grant (and of
    /// those, how many had an entry land, which the withdraw then had to cover), acquisitions
    /// granted first; releases dropped midway, releases finished first.
    static DROPS: [std::sync::atomic::AtomicUsize; 5] =
        [const { std::sync::atomic::AtomicUsize::new(0) }; 5];
    const ACQUIRE_DROPPED: usize = 0;
    const ACQUIRE_DROPPED_AFTER_ITS_ENTRY: usize = 1;
    const ACQUIRE_GRANTED: usize = 2;
    const RELEASE_DROPPED: usize = 3;
    const RELEASE_FINISHED: usize = 4;

    fn count(what: usize) {
        DROPS[what].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Resets the counts, runs `test`, and returns the counts it left.
    fn counted(test: impl FnOnce()) -> [usize; 5] {
        for counter in &DROPS {
            counter.store(0, std::sync::atomic::Ordering::Relaxed);
        }
        test();
        std::array::from_fn(|i| DROPS[i].load(std::sync::atomic::Ordering::Relaxed))
    }

    /// An acquisition dropped at a random await leaves no lock behind once the manager's
    /// background work is done: a create still in flight is withdrawn after it lands. (Before, the
    /// withdraw read first, found nothing, and the entry landed afterwards, held by nobody.)
    pub(super) fn dropped_acquisition() {
        shuttle::future::block_on(async {
            let store = Detached(MemStore::new());
            let manager = LockManager::start(store.clone(), options()).await.unwrap();
            let path = LockPath::new("/a").unwrap();
            let polls = shuttle::rand::thread_rng().gen_range(1..40);
            let granted = poll_then_drop(
                manager.lock(Operation::new(LockMode::Point, &["/a"]).unwrap()),
                polls,
            )
            .await;
            let dropped = granted.is_none();
            if let Some(result) = granted {
                count(ACQUIRE_GRANTED);
                result.unwrap().release().await.unwrap();
            }
            manager.settle().await;
            if dropped {
                count(ACQUIRE_DROPPED);
                if journal::newest(&store, &path).await.unwrap().is_some() {
                    count(ACQUIRE_DROPPED_AFTER_ITS_ENTRY);
                }
            }
            assert!(
                !held(&store, &path).await,
                "a cancelled acquisition left a lock that nobody holds"
            );
            manager.shutdown().await;
        });
    }

    /// A release dropped at a random await still releases: the lock ends free.
    pub(super) fn dropped_release() {
        shuttle::future::block_on(async {
            let store = Detached(MemStore::new());
            let manager = LockManager::start(store.clone(), options()).await.unwrap();
            let path = LockPath::new("/a").unwrap();
            let guard = manager
                .lock(Operation::new(LockMode::Point, &["/a"]).unwrap())
                .await
                .unwrap();
            let polls = shuttle::rand::thread_rng().gen_range(1..40);
            match poll_then_drop(guard.release(), polls).await {
                Some(_) => count(RELEASE_FINISHED),
                None => count(RELEASE_DROPPED),
            }
            manager.settle().await;
            // The release finishes on its own task; give it the turns it needs.
            for _ in 0..10_000 {
                if !held(&store, &path).await {
                    break;
                }
                shuttle::future::yield_now().await;
            }
            assert!(
                !held(&store, &path).await,
                "a dropped release left the lock held"
            );
            manager.shutdown().await;
        });
    }

    #[test]
    fn a_dropped_acquisition_leaves_no_lock() {
        let _one = exclusive(None);
        let counts = counted(|| {
            shuttle_replay::check(
                "lock",
                "shuttle",
                "a_dropped_acquisition",
                ("dropped_acquisition", dropped_acquisition),
                shuttle::scheduler::RandomScheduler::new(iterations()),
            )
        });
        eprintln!(
            "dropped acquisitions: {} dropped ({} after their entry landed), {} granted first",
            counts[ACQUIRE_DROPPED],
            counts[ACQUIRE_DROPPED_AFTER_ITS_ENTRY],
            counts[ACQUIRE_GRANTED]
        );
        assert!(
            counts[ACQUIRE_DROPPED_AFTER_ITS_ENTRY] > 0 && counts[ACQUIRE_GRANTED] > 0,
            "{counts:?}"
        );
    }

    #[test]
    fn a_dropped_release_still_releases() {
        let _one = exclusive(None);
        let counts = counted(|| {
            shuttle_replay::check(
                "lock",
                "shuttle",
                "a_dropped_release",
                ("dropped_release", dropped_release),
                shuttle::scheduler::RandomScheduler::new(iterations()),
            )
        });
        eprintln!(
            "dropped releases: {} dropped midway, {} finished first",
            counts[RELEASE_DROPPED], counts[RELEASE_FINISHED]
        );
        assert!(
            counts[RELEASE_DROPPED] > 0 && counts[RELEASE_FINISHED] > 0,
            "{counts:?}"
        );
    }

    #[test]
    fn the_cancellation_tests_catch_their_mutants() {
        assert_mutant_caught(
            Mutant::WithdrawBeforeCreateEnds,
            ("dropped_acquisition", dropped_acquisition),
            "a cancelled acquisition left a lock that nobody holds",
            2_000,
        );
        assert_mutant_caught(
            Mutant::ReleaseInCaller,
            ("dropped_release", dropped_release),
            "a dropped release left the lock held",
            2_000,
        );
    }
}
