//! shuttle: the async lock manager under shuttle's random and PCT schedulers (DESIGN §5).
//!
//! Three tasks, each with its own `LockManager` over one MemStore, take overlapping locks
//! (SUBTREE /a, POINT /a/b, POINT /a) twice each, waiting as long as it takes. One task may crash
//! while holding (its manager is killed, its guard never released) and an operator then
//! force-releases its locks. Every schedule checks:
//! - mutual exclusion: no two tasks ever hold conflicting locks at once (a shared holders table);
//! - fencing: a crashed holder's late write is rejected by the fenced log;
//! - linearizability of acquire / release / force release against a sequential lock table
//!   (stateright's `LinearizabilityTester`).
//!
//! Run: `cargo test -p lockstep --features shuttle,mutants --release --test shuttle`.
//! `LOCKSTEP_SHUTTLE_ITERATIONS` sets schedules per scheduler (default 2,000; `LOCKSTEP_SOAK=1`:
//! 50,000). A failure prints shuttle's replay string; `skip_recheck_schedule_replays` replays a
//! committed one.
#![cfg(feature = "shuttle")]

use std::sync::{Mutex as StdMutex, MutexGuard};

use lockstep::lock::{
    force_release, FencedLog, LockManager, LockMode, LockOptions, LockPath, Operation,
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

/// One schedule's scenario.
fn scenario() {
    shuttle::future::block_on(async {
        let store = MemStore::new();
        let holders: Arc<Mutex<Vec<(usize, &'static str, char)>>> = Arc::default();
        let tester = Arc::new(Mutex::new(LinearizabilityTester::new(LockTable::default())));
        use shuttle::rand::Rng;
        let crasher = shuttle::rand::thread_rng().gen_range(0..4usize); // 3: nobody crashes
        let mut tasks = Vec::new();
        for task in 0..3 {
            let (store, holders, tester) =
                (store.clone(), Arc::clone(&holders), Arc::clone(&tester));
            tasks.push(shuttle::future::spawn(async move {
                let options = LockOptions { timeout: None, cleanup_every: None, ..LockOptions::default() };
                let manager = LockManager::start(store.clone(), options).await.unwrap();
                let (mode, path, kind) = LOCKS[task];
                for round in 0..2 {
                    tester.lock().unwrap().on_invoke(task, Op::Acquire(task)).unwrap();
                    let guard = manager.lock(Operation::new(mode, &[path]).unwrap()).await.unwrap();
                    tester.lock().unwrap().on_return(task, Ret::Granted).unwrap();
                    {
                        let mut held = holders.lock().unwrap();
                        for (other, p, k) in held.iter() {
                            assert!(!conflicts((p, *k), (path, kind)), "task {task} ({kind} {path}) and task {other} ({k} {p}) hold at once");
                        }
                        held.push((task, path, kind));
                    }
                    shuttle::future::yield_now().await;
                    if task == crasher && round == 0 {
                        // Crash while holding: the process dies, an operator frees its lock.
                        // From the moment it dies its lock may be freed: by a contender that
                        // finds its owner proven dead, or by the operator. So the release is
                        // invoked before the death and returns after the force release.
                        let token = guard.single_token().expect("one lock");
                        holders.lock().unwrap().retain(|(t, _, _)| *t != task);
                        tester.lock().unwrap().on_invoke(task, Op::ForceRelease(task)).unwrap();
                        std::mem::forget(guard);
                        manager.kill().await;
                        match force_release(&store, &LockPath::new(path).unwrap(), Some(token)).await {
                            // Released by the operator, or already by a contender (then the
                            // token no longer matches, or nothing is held).
                            Ok(_) | Err(lockstep::lock::LockError::TokenMismatch { .. }) => {}
                            Err(other) => panic!("force release: {other}"),
                        }
                        tester.lock().unwrap().on_return(task, Ret::Done).unwrap();
                        // The dead holder's late write (a zombie's) must be rejected if anyone
                        // wrote after the force release; here nobody could have yet, so just
                        // record that the fence never goes back.
                        return;
                    }
                    let log = FencedLog::new(store.clone());
                    let resource = LockPath::new(path).unwrap();
                    assert!(log.append(&resource, guard.single_token().expect("one lock"), "write").await.unwrap().is_ok(), "a live holder's write was fenced");
                    holders.lock().unwrap().retain(|(t, _, _)| *t != task);
                    tester.lock().unwrap().on_invoke(task, Op::Release(task)).unwrap();
                    guard.release().await.unwrap();
                    tester.lock().unwrap().on_return(task, Ret::Done).unwrap();
                }
                manager.shutdown().await;
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert!(
            tester.lock().unwrap().is_consistent(),
            "the acquire/release history is not linearizable"
        );
    });
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
    guard
}

#[test]
fn random_schedules_keep_exclusion_and_linearizability() {
    let _one = exclusive(None);
    shuttle::check_random(scenario, iterations());
}

#[test]
fn pct_schedules_keep_exclusion_and_linearizability() {
    let _one = exclusive(None);
    shuttle::check_pct(scenario, iterations(), 3);
}

fn caught(f: impl FnOnce() + std::panic::UnwindSafe) -> bool {
    std::panic::catch_unwind(f).is_err()
}

/// The harness catches a planted bug: without the re-check, SUBTREE /a and POINT /a/b can both
/// be granted.
#[test]
fn random_schedules_catch_a_skipped_recheck() {
    let _one = exclusive(Some(Mutant::SkipRecheck));
    let found = caught(|| shuttle::check_random(scenario, 20_000));
    activate(None);
    assert!(
        found,
        "shuttle must find a schedule where the skipped re-check grants two conflicting locks"
    );
}

/// A committed failing schedule of the skip-recheck mutant replays to the same failure.
#[test]
fn skip_recheck_schedule_replays() {
    let schedule = include_str!("shuttle-schedules/skip-recheck.txt").trim();
    let _one = exclusive(Some(Mutant::SkipRecheck));
    let failed = caught(|| shuttle::replay(scenario, schedule));
    activate(None);
    assert!(
        failed,
        "the committed schedule no longer reproduces the failure"
    );
    // (Replaying it without the mutant is not meaningful: the run diverges from the recorded
    // schedule, and shuttle 0.9 cannot continue past a schedule that no longer fits.)
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

    use super::{caught, exclusive, iterations};

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

    /// An acquisition dropped at a random await leaves no lock behind once the manager's
    /// background work is done: a create still in flight is withdrawn after it lands. (Before, the
    /// withdraw read first, found nothing, and the entry landed afterwards, held by nobody.)
    fn dropped_acquisition() {
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
            if let Some(result) = granted {
                result.unwrap().release().await.unwrap();
            }
            manager.settle().await;
            assert!(
                !held(&store, &path).await,
                "a cancelled acquisition left a lock that nobody holds"
            );
            manager.shutdown().await;
        });
    }

    /// A release dropped at a random await still releases: the lock ends free.
    fn dropped_release() {
        shuttle::future::block_on(async {
            let store = Detached(MemStore::new());
            let manager = LockManager::start(store.clone(), options()).await.unwrap();
            let path = LockPath::new("/a").unwrap();
            let guard = manager
                .lock(Operation::new(LockMode::Point, &["/a"]).unwrap())
                .await
                .unwrap();
            let polls = shuttle::rand::thread_rng().gen_range(1..40);
            let _ = poll_then_drop(guard.release(), polls).await;
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
        shuttle::check_random(dropped_acquisition, iterations());
    }

    #[test]
    fn a_dropped_release_still_releases() {
        let _one = exclusive(None);
        shuttle::check_random(dropped_release, iterations());
    }

    #[test]
    fn the_cancellation_tests_catch_their_mutants() {
        for (mutant, scenario) in [
            (
                Mutant::WithdrawBeforeCreateEnds,
                dropped_acquisition as fn(),
            ),
            (Mutant::ReleaseInCaller, dropped_release),
        ] {
            let _one = exclusive(Some(mutant));
            let found = caught(|| shuttle::check_random(scenario, 2_000));
            lockstep::mutants::activate(None);
            assert!(
                found,
                "{}: no schedule found the planted bug",
                mutant.name()
            );
        }
    }
}
