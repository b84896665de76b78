//! The path locks' one-commit acquisition and release (specs/lock.md §12, "One commit on etcd";
//! `impl/src/lock/commit.rs`), on a MemStore that offers commits as etcd does, and on etcd:
//! - a warm cycle is two commits and nothing else;
//! - a commit made from what a manager remembers is refused once an ancestor was locked since,
//!   and the planted bug `commit-skips-ancestors` (its ancestors not expected) is granted there;
//! - a commit whose answer is lost is read back, landed or not;
//! - a commit made with an old ticket is refused, and the token is still the largest.
//!
//! The rest of the lock suite runs on this store too (`tests/tests/lock_impl.rs`, backend
//! "memory-commits").

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use lockstep::lock::{LockError, LockManager, LockMode, LockOptions, Operation};
use lockstep::store::{Commit, Created, Expect, Key, MemStore, Store, StoreError, Version};

fn options() -> LockOptions {
    LockOptions {
        cleanup_every: None,
        ..LockOptions::default()
    }
}

fn op(mode: LockMode, path: &str) -> Operation {
    Operation::new(mode, &[path]).unwrap()
}

/// A store that counts its calls by kind, and can lose the answer of its next commit (after it
/// landed, or before it was sent).
struct Counted<S> {
    inner: S,
    commits: AtomicUsize,
    committed: AtomicUsize,
    others: AtomicUsize,
    lose_next_answer: AtomicBool,
    drop_next: AtomicBool,
    /// While set, a commit waits for a permit of `gate` before it is sent.
    stall: AtomicBool,
    gate: tokio::sync::Semaphore,
}

impl<S> Counted<S> {
    fn new(inner: S) -> Counted<S> {
        Counted {
            inner,
            commits: AtomicUsize::new(0),
            committed: AtomicUsize::new(0),
            others: AtomicUsize::new(0),
            lose_next_answer: AtomicBool::new(false),
            drop_next: AtomicBool::new(false),
            stall: AtomicBool::new(false),
            gate: tokio::sync::Semaphore::new(0),
        }
    }

    fn calls(&self) -> (usize, usize) {
        (
            self.commits.load(Ordering::SeqCst),
            self.others.load(Ordering::SeqCst),
        )
    }

    fn other(&self) {
        self.others.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait::async_trait]
impl<S: Store> Store for Counted<S> {
    async fn get(&self, key: &Key) -> Result<Option<(Vec<u8>, Version)>, StoreError> {
        self.other();
        self.inner.get(key).await
    }
    async fn create(&self, key: &Key, bytes: &[u8]) -> Result<Created, StoreError> {
        self.other();
        self.inner.create(key, bytes).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<Key>, StoreError> {
        self.other();
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        self.other();
        self.inner.delete(key).await
    }
    async fn commit_if(
        &self,
        expect: &[Expect],
        creates: &[(Key, Vec<u8>)],
        deletes: &[Key],
    ) -> Result<Commit, StoreError> {
        self.commits.fetch_add(1, Ordering::SeqCst);
        if self.stall.swap(false, Ordering::SeqCst) {
            self.gate.acquire().await.expect("open").forget();
        }
        if self.drop_next.swap(false, Ordering::SeqCst) {
            return Err(StoreError::Unavailable(
                "the request was lost (test)".into(),
            ));
        }
        let outcome = self.inner.commit_if(expect, creates, deletes).await;
        if matches!(outcome, Ok(Commit::Committed(_))) {
            self.committed.fetch_add(1, Ordering::SeqCst);
        }
        if self.lose_next_answer.swap(false, Ordering::SeqCst) {
            return Err(StoreError::Unavailable("the answer was lost (test)".into()));
        }
        outcome
    }
    fn offers_commits(&self) -> bool {
        self.inner.offers_commits()
    }
    fn describe(&self) -> String {
        format!("counted {}", self.inner.describe())
    }
}

/// Cycles `/a/x` once so that the manager remembers `/`, `/a` and `/a/x`, and has a ticket.
async fn warm(manager: &LockManager) -> u64 {
    let guard = manager.lock(op(LockMode::Point, "/a/x")).await.unwrap();
    let token = guard.single_token().unwrap();
    guard.release().await.unwrap();
    token
}

#[test]
fn a_warm_cycle_is_two_commits_and_nothing_else() {
    let _one = exclusive(None);
    runtime().block_on(async {
        let store = Arc::new(Counted::new(MemStore::with_commits()));
        let manager = LockManager::start(Arc::clone(&store), options())
            .await
            .unwrap();
        // The first cycle reads step by step (nothing remembered yet); its release sweeps.
        warm(&manager).await;
        let before = store.calls();
        let guard = manager.lock(op(LockMode::Point, "/a/x")).await.unwrap();
        guard.release().await.unwrap();
        let after = store.calls();
        assert_eq!(
            (after.0 - before.0, after.1 - before.1),
            (2, 0),
            "a warm cycle: (commits, other calls)"
        );
        // The same cycle on a store without commits: every step its own call.
        let plain = Arc::new(Counted::new(MemStore::new()));
        let manager = LockManager::start(Arc::clone(&plain), options())
            .await
            .unwrap();
        warm(&manager).await;
        let before = plain.calls();
        let guard = manager.lock(op(LockMode::Point, "/a/x")).await.unwrap();
        guard.release().await.unwrap();
        let after = plain.calls();
        assert!(after.1 - before.1 >= 7, "{before:?} {after:?}");
    });
}

/// A remembers `/a` free; B then takes SUBTREE `/a`. A's `/a/x` must be busy, not granted.
/// `Err`: A was granted beside B's lock.
async fn ancestor_locked_since(store: Arc<dyn Store>) -> Result<(), String> {
    let a = LockManager::start(Arc::clone(&store), options())
        .await
        .unwrap();
    let b = LockManager::start(Arc::clone(&store), options())
        .await
        .unwrap();
    warm(&a).await;
    let above = b.lock(op(LockMode::Subtree, "/a")).await.unwrap();
    // A works elsewhere meanwhile, and so learns the newest ticket (B's): a commit with an old
    // ticket would be refused for that alone, and hide what this test is about.
    let elsewhere = a.lock(op(LockMode::Point, "/z")).await.unwrap();
    elsewhere.release().await.unwrap();
    let outcome = match a.lock(op(LockMode::Point, "/a/x")).await {
        Err(LockError::Busy { path, .. }) if path.as_str() == "/a" => Ok(()),
        Ok(guard) => Err(format!(
            "granted /a/x with token {:?} while SUBTREE /a is held with token {:?}",
            guard.single_token(),
            above.single_token()
        )),
        Err(other) => Err(format!("expected Busy on /a, got {other}")),
    };
    let token = above.single_token().unwrap();
    above.release().await.unwrap();
    outcome?;
    // Once B released, A is granted (the commit learns what changed), with a larger token.
    let guard = a.lock(op(LockMode::Point, "/a/x")).await.unwrap();
    assert!(guard.single_token().unwrap() > token);
    guard.release().await.unwrap();
    Ok(())
}

#[test]
fn a_commit_is_refused_once_an_ancestor_was_locked_since() {
    let _one = exclusive(None);
    runtime().block_on(async {
        ancestor_locked_since(Arc::new(MemStore::with_commits()))
            .await
            .unwrap();
    });
}

#[test]
fn the_commit_tests_catch_a_commit_that_skips_its_ancestors() {
    let one = exclusive(Some(lockstep::mutants::Mutant::CommitSkipsAncestors));
    let caught = runtime().block_on(ancestor_locked_since(Arc::new(MemStore::with_commits())));
    lockstep::mutants::activate(None);
    drop(one);
    let error = caught.expect_err("the planted bug must be granted beside the SUBTREE lock");
    assert!(error.contains("while SUBTREE /a is held"), "{error}");
}

#[test]
fn a_commit_whose_answer_is_lost_is_read_back() {
    let _one = exclusive(None);
    runtime().block_on(async {
        let store = Arc::new(Counted::new(MemStore::with_commits()));
        let manager = LockManager::start(Arc::clone(&store), options())
            .await
            .unwrap();
        let mut token = warm(&manager).await;
        // Landed, answer lost: read back as ours, re-checked, granted; one `acquire`, one ticket.
        store.lose_next_answer.store(true, Ordering::SeqCst);
        let guard = manager.lock(op(LockMode::Point, "/a/x")).await.unwrap();
        assert_eq!(guard.single_token(), Some(token + 1));
        token += 1;
        let acquires = count_acquires(&*store, &guard.single_token().unwrap()).await;
        assert_eq!(acquires, 1, "one acquire with the new ticket");
        guard.release().await.unwrap();
        // Never sent: nothing of ours is there, and the acquisition goes on step by step.
        store.drop_next.store(true, Ordering::SeqCst);
        let guard = manager.lock(op(LockMode::Point, "/a/x")).await.unwrap();
        assert!(guard.single_token().unwrap() > token);
        guard.release().await.unwrap();
        // And the next warm cycle commits at once again.
        let before = store.calls();
        let guard = manager.lock(op(LockMode::Point, "/a/x")).await.unwrap();
        guard.release().await.unwrap();
        let after = store.calls();
        assert_eq!((after.0 - before.0, after.1 - before.1), (2, 0));
    });
}

/// An acquisition cancelled while its commit is in flight: the commit lands after the caller
/// gave up, and the manager withdraws it once it has (it waits for the commit's task, as for a
/// create's). `Err`: the lock is left held by the live manager that gave up.
///
/// `planted`: the run of the planted bug `withdraw-before-create-ends`, whose withdraw does not
/// wait for the commit. It is given the schedule the bug needs: its withdraw runs to its end
/// before the commit is let through. (Left to chance, the commit sometimes landed first, the
/// withdraw then found it and took it back, and the bug went uncaught in one CI run.)
async fn cancelled_mid_commit(planted: bool) -> Result<(), String> {
    let store = Arc::new(Counted::new(MemStore::with_commits()));
    let a = LockManager::start(Arc::clone(&store), options())
        .await
        .unwrap();
    warm(&a).await;
    // The first cycle's release queued its deletes on the manager's background task, where the
    // withdraw will queue too: let them finish first.
    a.settle().await;
    store.stall.store(true, Ordering::SeqCst);
    let attempt = tokio::time::timeout(
        std::time::Duration::from_millis(50),
        a.lock(op(LockMode::Point, "/a/x")),
    )
    .await;
    assert!(
        attempt.is_err(),
        "the commit was stalled: the acquisition is cancelled"
    );
    if planted {
        // The background task runs the withdraw, then answers `settle`. (Without the bug the
        // withdraw waits for the stalled commit, and so would this.)
        tokio::time::timeout(std::time::Duration::from_secs(10), a.settle())
            .await
            .map_err(|_| "the withdraw did not end while the commit was stalled".to_string())?;
    }
    let before = store.committed.load(Ordering::SeqCst);
    store.gate.add_permits(1);
    // The commit lands (nobody waits for its answer any more); the withdraw follows it.
    while store.committed.load(Ordering::SeqCst) == before {
        tokio::task::yield_now().await;
    }
    a.settle().await;
    let b = LockManager::start(Arc::clone(&store), options())
        .await
        .unwrap();
    match b.lock(op(LockMode::Point, "/a/x")).await {
        Ok(guard) => {
            guard.release().await.unwrap();
            Ok(())
        }
        Err(error) => Err(format!("after the cancelled acquisition: {error}")),
    }
}

#[test]
fn an_acquisition_cancelled_mid_commit_leaves_no_lock() {
    let _one = exclusive(None);
    runtime().block_on(cancelled_mid_commit(false)).unwrap();
}

#[test]
fn the_commit_tests_catch_a_withdraw_that_does_not_wait_for_the_commit() {
    let one = exclusive(Some(lockstep::mutants::Mutant::WithdrawBeforeCreateEnds));
    let caught = runtime().block_on(cancelled_mid_commit(true));
    lockstep::mutants::activate(None);
    drop(one);
    let error = caught.expect_err("the withdraw reads before the commit lands");
    assert!(error.contains("is locked by"), "{error}");
}

/// The entries of `/a/x`'s journal that are an `acquire` with `token`.
async fn count_acquires(store: &dyn Store, token: &u64) -> usize {
    let mut found = 0;
    for key in store.list("locks/a/x/~").await.unwrap() {
        let (bytes, _) = store.get(&key).await.unwrap().unwrap();
        let text = String::from_utf8(bytes).unwrap();
        if text.contains("\"op\":\"acquire\"") && text.contains(&format!("\"ticket\":{token},")) {
            found += 1;
        }
    }
    found
}

/// A commit made with the ticket a manager last saw is refused once anyone claimed a larger one,
/// even where that ticket itself was collected since (the commit expects no ticket at or above
/// its own, not just its own free); the acquisition reads what it expects and commits again, and
/// its token is larger than every other.
#[test]
fn a_commit_with_an_old_ticket_is_refused_and_the_token_stays_the_largest() {
    let _one = exclusive(None);
    runtime().block_on(async {
        let store = Arc::new(Counted::new(MemStore::with_commits()));
        let a = LockManager::start(Arc::clone(&store), options())
            .await
            .unwrap();
        let b = LockManager::start(Arc::clone(&store), options())
            .await
            .unwrap();
        let seen = warm(&a).await;
        // 100 claims: the collector removes the tickets 64 and more below the newest, A's next
        // one (seen + 1) among them.
        let mut newest = 0;
        for _ in 0..100 {
            let guard = b.lock(op(LockMode::Point, "/y")).await.unwrap();
            newest = guard.single_token().unwrap();
            guard.release().await.unwrap();
        }
        let collected = lockstep::store::Key::new(format!("tickets/{:020}", seen + 1)).unwrap();
        assert!(store.get(&collected).await.unwrap().is_none(), "collected");
        let before = store.committed.load(Ordering::SeqCst);
        let tried = store.calls().0;
        let guard = a.lock(op(LockMode::Point, "/a/x")).await.unwrap();
        assert!(guard.single_token().unwrap() > newest);
        // One commit refused; one read of what it expects (the newest ticket among it); one
        // commit granted.
        assert_eq!(store.calls().0, tried + 2);
        assert_eq!(store.committed.load(Ordering::SeqCst), before + 1);
        guard.release().await.unwrap();
    });
}

/// A remembers `/x` released at index 1. B takes `/x` (2) and dies; C, finding B proven dead,
/// supersedes its entry (3) and releases (4), which collects 2 and 3; D takes `/x` (5) and
/// holds. A's entry 1 is still there and index 2 is free again, but the journal's newest is D's
/// hold: A must be busy. `Err`: A was granted.
async fn collected_tail(store: Arc<dyn Store>) -> Result<(), String> {
    let start = || LockManager::start(Arc::clone(&store), options());
    let a = start().await.unwrap();
    let held = a.lock(op(LockMode::Point, "/x")).await.unwrap();
    held.release().await.unwrap();
    let b = start().await.unwrap();
    let dying = b.lock(op(LockMode::Point, "/x")).await.unwrap();
    std::mem::forget(dying);
    b.kill().await;
    let c = start().await.unwrap();
    let held = c.lock(op(LockMode::Point, "/x")).await.unwrap();
    held.release().await.unwrap();
    let d = start().await.unwrap();
    let holder = d.lock(op(LockMode::Point, "/x")).await.unwrap();
    let indices: Vec<String> = store
        .list("locks/x/~")
        .await
        .unwrap()
        .iter()
        .map(|k| {
            k.as_str()
                .trim_start_matches("locks/x/~")
                .trim_start_matches('0')
                .to_owned()
        })
        .collect();
    assert_eq!(indices, ["1", "4", "5"], "the journal this test is about");
    // A learns the newest ticket elsewhere, so that only its view of /x is old.
    let elsewhere = a.lock(op(LockMode::Point, "/z")).await.unwrap();
    elsewhere.release().await.unwrap();
    let outcome = match a.lock(op(LockMode::Point, "/x")).await {
        Err(LockError::Busy { .. }) => Ok(()),
        Ok(guard) => Err(format!(
            "granted /x with token {:?} while it is held with token {:?}",
            guard.single_token(),
            holder.single_token()
        )),
        Err(other) => Err(format!("expected Busy, got {other}")),
    };
    holder.release().await.unwrap();
    outcome
}

#[test]
fn a_commit_is_refused_above_a_collected_tail() {
    let _one = exclusive(None);
    runtime()
        .block_on(collected_tail(Arc::new(MemStore::with_commits())))
        .unwrap();
}

#[test]
fn the_commit_tests_catch_a_commit_blind_to_a_collected_tail() {
    let one = exclusive(Some(lockstep::mutants::Mutant::CommitSkipsOwnTail));
    let caught = runtime().block_on(collected_tail(Arc::new(MemStore::with_commits())));
    lockstep::mutants::activate(None);
    drop(one);
    let error = caught.expect_err("the planted bug must be granted beside C's hold");
    assert!(error.contains("while it is held"), "{error}");
}

/// Managers on `stores` (one each: on etcd, each its own connection to one namespace) lock
/// POINT and SUBTREE locks on `/`, `/a`, `/a/b` and `/c` in random order and hold them a moment,
/// `cycles` times each. Every grant is checked against every other at the moment it is granted:
/// no conflicting lock is held (mutual exclusion), and its token is larger than that of every
/// earlier conflicting grant (so the fenced resource accepts it). Warm managers commit at once
/// where they can, beside others that read step by step.
async fn mixed_contention(stores: Vec<Arc<dyn Store>>, cycles: usize) -> Result<usize, String> {
    use lockstep::lock::{LockKind, LockPath};
    type Grants = Vec<(LockPath, LockKind, u64, bool)>;
    let conflict = |a: &(LockPath, LockKind), b: &(LockPath, LockKind)| {
        a.0 == b.0
            || (a.1 == LockKind::Subtree && a.0.is_ancestor_of(&b.0))
            || (b.1 == LockKind::Subtree && b.0.is_ancestor_of(&a.0))
    };
    let grants: Arc<std::sync::Mutex<Grants>> = Arc::default();
    let choices: [(LockMode, &str); 6] = [
        (LockMode::Point, "/a/b"),
        (LockMode::Point, "/a/b"),
        (LockMode::Point, "/c"),
        (LockMode::Point, "/a"),
        (LockMode::Subtree, "/a"),
        (LockMode::Subtree, "/"),
    ];
    let mut tasks = Vec::new();
    for (n, store) in stores.into_iter().enumerate() {
        let options = LockOptions {
            poll_min: std::time::Duration::from_millis(1),
            poll_max: std::time::Duration::from_millis(10),
            timeout: None,
            ..options()
        };
        let manager = LockManager::start(store, options)
            .await
            .map_err(|e| e.to_string())?;
        let grants = Arc::clone(&grants);
        tasks.push(tokio::spawn(async move {
            let mut seed = 0x9E37_79B9_7F4A_7C15_u64 ^ n as u64;
            for _ in 0..cycles {
                seed = seed
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let (mode, path) = choices[(seed >> 33) as usize % choices.len()];
                let guard = manager
                    .lock(op(mode, path))
                    .await
                    .map_err(|e| format!("lock {path}: {e}"))?;
                let (path, kind, token) = guard.tokens().remove(0);
                {
                    let mut grants = grants.lock().unwrap();
                    for (other, other_kind, other_token, held) in grants.iter() {
                        let overlap = conflict(&(path.clone(), kind), &(other.clone(), *other_kind));
                        if overlap && *held {
                            return Err(format!("{kind:?} {path} ({token}) granted while {other_kind:?} {other} ({other_token}) is held"));
                        }
                        if overlap && *other_token >= token {
                            return Err(format!("{kind:?} {path} granted token {token}, not above {other_token} of an earlier {other_kind:?} {other}"));
                        }
                    }
                    grants.push((path.clone(), kind, token, true));
                }
                tokio::time::sleep(std::time::Duration::from_micros(seed % 2_000)).await;
                {
                    let mut grants = grants.lock().unwrap();
                    let mine = grants.iter_mut().rev().find(|g| g.2 == token && g.0 == path);
                    mine.expect("recorded above").3 = false;
                }
                guard.release().await.map_err(|e| e.to_string())?;
            }
            Ok::<(), String>(())
        }));
    }
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    let granted = grants.lock().unwrap().len();
    Ok(granted)
}

#[test]
fn mixed_contention_with_commits_keeps_exclusion_and_fresh_tokens() {
    let _one = exclusive(None);
    let store = Arc::new(Counted::new(MemStore::with_commits()));
    let stores: Vec<Arc<dyn Store>> = (0..6)
        .map(|_| Arc::clone(&store) as Arc<dyn Store>)
        .collect();
    let granted = runtime().block_on(mixed_contention(stores, 40)).unwrap();
    assert_eq!(granted, 240);
    // Both paths ran: commits that landed (acquisitions and releases), and steps.
    let (committed, others) = (store.committed.load(Ordering::SeqCst), store.calls().1);
    eprintln!("{committed} commits landed, {others} other calls");
    assert!(committed > 0 && others > 0, "{committed} {others}");
}

/// The same contention with the re-check skipped (planted bug `skip-recheck`): two conflicting
/// locks are granted at once. (`commit-skips-ancestors` is not caught here: a commit goes only
/// with the newest ticket, and random schedules rarely leave a manager that learnt the newest
/// ticket after a SUBTREE lock above its path with an old view of that path; the test above
/// builds that schedule.)
#[test]
fn mixed_contention_catches_a_skipped_recheck() {
    let one = exclusive(Some(lockstep::mutants::Mutant::SkipRecheck));
    // Random schedules: about one run in eight misses it, so up to five runs.
    let caught = (0..5).find_map(|_| {
        let store: Arc<dyn Store> = Arc::new(MemStore::with_commits());
        runtime()
            .block_on(mixed_contention(vec![store; 6], 40))
            .err()
    });
    lockstep::mutants::activate(None);
    drop(one);
    let error = caught.expect("two conflicting grants at once, in one of five runs");
    assert!(error.contains("is held"), "{error}");
}

/// The mutant switch is process-wide: tests of this binary take turns.
fn exclusive(mutant: Option<lockstep::mutants::Mutant>) -> std::sync::MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    lockstep::mutants::activate(mutant);
    guard
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[cfg(feature = "etcd")]
mod etcd {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        runtime()
    }

    #[test]
    fn on_etcd_a_commit_is_refused_once_an_ancestor_was_locked_since() {
        let Some(cluster) = lockstep_tests::etcd_server::shared_or_skip() else {
            return;
        };
        let store: Arc<dyn Store> = Arc::new(cluster.store_blocking());
        let _one = exclusive(None);
        rt().block_on(ancestor_locked_since(store)).unwrap();
    }

    /// Six managers, each on its own connection to one namespace.
    #[test]
    fn on_etcd_mixed_contention_keeps_exclusion_and_fresh_tokens() {
        let Some(cluster) = lockstep_tests::etcd_server::shared_or_skip() else {
            return;
        };
        let _one = exclusive(None);
        let prefix = lockstep_tests::etcd_server::fresh_prefix();
        rt().block_on(async {
            let mut stores: Vec<Arc<dyn Store>> = Vec::new();
            for _ in 0..6 {
                let store = lockstep::store::EtcdStore::connect(
                    &cluster.endpoints(),
                    lockstep::store::EtcdOptions {
                        prefix: prefix.clone(),
                        ..lockstep::store::EtcdOptions::default()
                    },
                )
                .await
                .unwrap();
                stores.push(Arc::new(store));
            }
            let granted = mixed_contention(stores, 25).await.unwrap();
            assert_eq!(granted, 150);
        });
    }

    #[test]
    fn on_etcd_a_warm_cycle_is_two_commits() {
        let Some(cluster) = lockstep_tests::etcd_server::shared_or_skip() else {
            return;
        };
        let store = Arc::new(Counted::new(cluster.store_blocking()));
        let _one = exclusive(None);
        rt().block_on(async {
            let manager = LockManager::start(Arc::clone(&store), options())
                .await
                .unwrap();
            warm(&manager).await;
            let before = store.calls();
            let guard = manager.lock(op(LockMode::Point, "/a/x")).await.unwrap();
            guard.release().await.unwrap();
            let after = store.calls();
            assert_eq!((after.0 - before.0, after.1 - before.1), (2, 0));
        });
    }
}
