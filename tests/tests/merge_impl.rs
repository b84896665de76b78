//! The merge implementation's API, case by case: what a lake's writer that embeds it relies on.
//! Each protection is shown to fail with its planted bug on (the `mutants` feature).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use lockstep::lock::owner::ProcessId;
use lockstep::merge::{
    self, applied, BranchName, Lake, MergeError, MergeOptions, MergeOutcome, Object,
};
use lockstep::mutants::{activate, Mutant};
use lockstep::store::{FsStore, MemStore, Store};
use lockstep_tests::scripted::{Script, Scripted};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The mutant switch is process-wide: tests of this binary take turns.
fn exclusive(mutant: Option<Mutant>) -> MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    activate(mutant);
    guard
}

fn name(text: &str) -> BranchName {
    BranchName::new(text).unwrap()
}

/// A child deletes `x`, which the parent deleted after the child's BASE: the merge aborts with
/// `Conflict`, and neither the parent, nor the child, nor TAIL/BASE changes.
async fn conflicting_delete(store: Arc<dyn Store>) -> Result<(), MergeError> {
    let lake = Lake::open(Arc::clone(&store)).await?;
    let main = lake.create_branch("main", None).await?;
    main.commit_change("base", vec![Object::new("x", b"data")], vec![])
        .await?;
    let live = lake.create_branch("live", Some("main")).await?;
    live.commit(b"one").await?;
    live.commit_change("del", vec![], vec!["x".into()]).await?;
    main.commit_change(
        "compact",
        vec![Object::new("y", b"rewritten")],
        vec!["x".into()],
    )
    .await?;
    let parent_before = main.log().await?;
    let child_before = live.log().await?;
    let tail_before = live.tailbase().await?;
    let result = lake.merge("live", MergeOptions::default()).await;
    assert_eq!(main.log().await?, parent_before, "the parent changed");
    assert_eq!(live.log().await?, child_before, "the child changed");
    assert_eq!(live.tailbase().await?, tail_before, "TAIL/BASE moved");
    let locks = lake.merge_locks().await?;
    assert_eq!(locks[0].state, merge::MergeLockState::Free, "{locks:?}");
    result.map(|_| ())
}

#[test]
fn a_conflicting_merge_aborts_and_changes_nothing() {
    let _one = exclusive(None);
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    for store in [
        Arc::new(MemStore::new()) as Arc<dyn Store>,
        Arc::new(FsStore::open(dir.path()).unwrap()),
    ] {
        match rt.block_on(conflicting_delete(store)) {
            Err(MergeError::Conflict {
                child,
                child_index,
                object,
                parent_index,
            }) => {
                assert_eq!((child.as_str(), child_index), ("live", 1));
                assert_eq!((object.as_str(), parent_index), ("x", 1));
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
    }
}

#[test]
fn a_merge_without_the_conflict_check_is_caught() {
    let _one = exclusive(Some(Mutant::MergeSkipConflictCheck));
    let rt = rt();
    // With the check skipped the merge goes through, and the test's assertions fail: the parent
    // changed. The assertion panics inside; catch it to show the test is what fails.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(conflicting_delete(Arc::new(MemStore::new())))
    }));
    activate(None);
    let message = match outcome {
        Err(panic) => panic.downcast_ref::<String>().cloned().unwrap_or_default(),
        Ok(result) => panic!("the planted bug went unnoticed: {result:?}"),
    };
    assert!(message.contains("the parent changed"), "{message}");
}

/// Objects the child adds, and deletes of objects nobody else touched, merge cleanly: only a
/// delete of something the parent changed since BASE conflicts.
#[test]
fn deletes_of_untouched_objects_merge() {
    let _one = exclusive(None);
    rt().block_on(async {
        let lake = Lake::open(MemStore::new()).await.unwrap();
        let main = lake.create_branch("main", None).await.unwrap();
        main.commit_change(
            "a",
            vec![Object::new("x", b"1"), Object::new("z", b"2")],
            vec![],
        )
        .await
        .unwrap();
        let live = lake.create_branch("live", Some("main")).await.unwrap();
        live.commit_change("d", vec![], vec!["x".into()])
            .await
            .unwrap();
        main.commit_change("other", vec![], vec!["z".into()])
            .await
            .unwrap();
        let merged = lake.merge("live", MergeOptions::default()).await.unwrap();
        assert_eq!(merged.outcome, MergeOutcome::Merged);
        let changes = applied(lake.store(), &name("main")).await.unwrap();
        let deleted: Vec<&str> = changes
            .iter()
            .flat_map(|c| c.delete.iter().map(String::as_str))
            .collect();
        assert_eq!(deleted, ["z", "x"]);
    });
}

/// A merger force-released while it paused before its TAIL move: another merger takes the lock
/// and merges; the zombie resumes, its TAIL/BASE create and its `unlock` fail, it reports
/// `LockLost`, and the new holder's lock (if it still held one) is untouched.
async fn zombie(store: Arc<dyn Store>) -> Result<(), String> {
    let setup = Lake::open(Arc::clone(&store)).await.unwrap();
    setup.create_branch("main", None).await.unwrap();
    let live = setup.create_branch("live", Some("main")).await.unwrap();
    live.commit(b"0").await.unwrap();
    let paused = Scripted::new(Arc::clone(&store));
    let zombie = Lake::open_as(paused.clone(), ProcessId::current())
        .await
        .unwrap();
    // Creates: lock, the parent append, then the TAIL move (the third).
    paused.arm(Script::PauseBefore(2));
    let task = tokio::spawn(async move { zombie.merge("live", MergeOptions::default()).await });
    while !paused.paused() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let released = merge::force_release(&*store, &name("live"), None)
        .await
        .unwrap()
        .expect("the zombie held the lock");
    assert_eq!(released.index, 0);
    // The new holder locks (index 2), and holds while the zombie goes on.
    live.commit(b"1").await.unwrap();
    let holder = Scripted::new(Arc::clone(&store));
    let second = Lake::open_as(holder.clone(), ProcessId::current())
        .await
        .unwrap();
    // Its creates: lock, the TAIL move (the parent scan finds the zombie's commit: roll forward),
    // then `unlock`, before which it pauses, holding the lock.
    holder.arm(Script::PauseBefore(2));
    let second_task =
        tokio::spawn(async move { second.merge("live", MergeOptions::default()).await });
    while !holder.paused() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    paused.resume();
    let outcome = task.await.unwrap();
    let locks = merge::merge_locks(&*store).await.unwrap();
    holder.resume();
    let second_outcome = second_task.await.unwrap();
    match outcome {
        Err(MergeError::LockLost { index: 0, .. }) => {}
        other => return Err(format!("the zombie completed: {other:?}")),
    }
    if locks[0].state != merge::MergeLockState::Held || locks[0].index != Some(2) {
        return Err(format!("the zombie freed the new holder's lock: {locks:?}"));
    }
    let merged = second_outcome.map_err(|e| e.to_string())?;
    assert_eq!(merged.outcome, MergeOutcome::RolledForward, "{merged:?}");
    // Exactly once, nothing lost, and TAIL where the first merge commit ends.
    let changes = applied(&*store, &name("main")).await.unwrap();
    let indices: Vec<u64> = changes.iter().map(|c| c.index).collect();
    assert_eq!(indices, [0], "each child commit in the parent once");
    let (_, tb) = name("live")
        .tailbase()
        .newest::<merge::TailBase>(&*store)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tb.tail, 1);
    Ok(())
}

#[test]
fn a_force_released_merger_cannot_complete() {
    let _one = exclusive(None);
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    rt.block_on(zombie(Arc::new(MemStore::new()))).unwrap();
    rt.block_on(zombie(Arc::new(FsStore::open(dir.path()).unwrap())))
        .unwrap();
}

#[test]
fn a_blind_unlock_lets_the_zombie_free_the_new_holder() {
    let _one = exclusive(Some(Mutant::MergeBlindUnlock));
    let error = rt().block_on(zombie(Arc::new(MemStore::new())));
    activate(None);
    let error = error.expect_err("the planted bug must be caught");
    assert!(error.contains("the zombie"), "{error}");
}

/// Bad input gets a clear error and changes nothing.
#[test]
fn bad_names_and_missing_branches_are_refused() {
    let _one = exclusive(None);
    rt().block_on(async {
        let store = MemStore::new();
        let lake = Lake::open(store.clone()).await.unwrap();
        for bad in ["", "..", "a/b", "x y", &"n".repeat(200)] {
            assert!(matches!(
                lake.create_branch(bad, None).await,
                Err(MergeError::InvalidBranch { .. })
            ));
        }
        assert!(matches!(
            lake.create_branch("c", Some("nope")).await,
            Err(MergeError::NoSuchBranch(_))
        ));
        lake.create_branch("main", None).await.unwrap();
        assert!(matches!(
            lake.create_branch("main", None).await,
            Err(MergeError::BranchExists(_))
        ));
        assert!(matches!(
            lake.merge("main", MergeOptions::default()).await,
            Err(MergeError::NotAChild(_))
        ));
        assert!(matches!(
            lake.merge("ghost", MergeOptions::default()).await,
            Err(MergeError::NoSuchBranch(_))
        ));
        // An entry of an unknown format version is an error naming its key, not a free lock.
        lake.create_branch("live", Some("main")).await.unwrap();
        let key = name("live").mergelock().key(0);
        let _ = store.create(&key, br#"{"v":9,"op":"lock"}"#).await.unwrap();
        match lake.merge("live", MergeOptions::default()).await {
            Err(MergeError::Corrupt { key: k, reason }) => {
                assert_eq!(k, key.as_str());
                assert!(reason.contains("version 9"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    });
}

/// A merger whose `lock` landed but whose answer was lost, and which then cannot read it back
/// (the connection is gone), gives up with an error. It may hold the lock and cannot know, so
/// when its `Lake` is dropped its owner registration ends as a crash would: the store proves it
/// dead, and recovery frees the lock (a clean end would leave it unknown, and a merge lock has
/// no lease to expire).
#[test]
fn a_merger_that_may_hold_a_lock_leaves_a_provably_dead_owner() {
    let _one = exclusive(None);
    gives_up_holding().unwrap();
}

#[test]
fn a_clean_end_after_giving_up_is_caught() {
    let _one = exclusive(Some(Mutant::MergeCleanEndAfterGivingUp));
    let outcome = gives_up_holding();
    activate(None);
    let error = outcome.expect_err("the planted bug must be caught");
    assert!(error.contains("not stuck"), "{error}");
}

fn gives_up_holding() -> Result<(), String> {
    // On FsStore a clean end removes the owner's file (then its liveness is unknown), and a
    // crash leaves it unlocked (dead): the two ends differ, as they must for this test.
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let store: Arc<dyn Store> = Arc::new(FsStore::open(dir.path()).unwrap());
        let setup = Lake::open(Arc::clone(&store)).await.unwrap();
        setup.create_branch("main", None).await.unwrap();
        setup
            .create_branch("live", Some("main"))
            .await
            .unwrap()
            .commit(b"0")
            .await
            .unwrap();
        let scripted = Scripted::new(Arc::clone(&store));
        scripted.arm(Script::LoseAnswerAndCrash(0));
        let merger = Lake::open(scripted.clone()).await.unwrap();
        let error = merger
            .merge("live", MergeOptions::default())
            .await
            .unwrap_err();
        assert!(matches!(error, MergeError::Store(_)), "{error}");
        assert_eq!(scripted.fired(), [Script::LoseAnswerAndCrash(0)]);
        let held = merge::merge_locks(&*store).await.unwrap();
        assert_eq!(
            held[0].holder_liveness,
            Some(lockstep::store::Liveness::Alive)
        );
        drop(merger);
        let stuck = merge::merge_locks(&*store).await.unwrap();
        if stuck[0].state != merge::MergeLockState::Stuck {
            return Err(format!(
                "the lock is not stuck after its holder went away: {stuck:?}"
            ));
        }
        assert_eq!(merge::recover(&*store).await.unwrap().len(), 1);
        Ok(())
    })
}

/// A merger out of retries gives up after its `lock` create errored, and that create lands
/// later, after the merger has gone. Nobody holds the lock, so the merger's owner registration
/// must end as a crash would: then the store proves the holder dead and `recover` frees it.
#[test]
fn a_lock_that_lands_after_giving_up_is_recoverable() {
    let _one = exclusive(None);
    lands_after_giving_up().unwrap();
}

#[test]
fn a_clean_end_after_a_late_lock_is_caught() {
    let _one = exclusive(Some(Mutant::MergeCleanEndAfterGivingUp));
    let outcome = lands_after_giving_up();
    activate(None);
    let error = outcome.expect_err("the planted bug must be caught");
    assert!(error.contains("not stuck"), "{error}");
}

fn lands_after_giving_up() -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let store: Arc<dyn Store> = Arc::new(FsStore::open(dir.path()).unwrap());
        let setup = Lake::open(Arc::clone(&store)).await.unwrap();
        setup.create_branch("main", None).await.unwrap();
        setup
            .create_branch("live", Some("main"))
            .await
            .unwrap()
            .commit(b"0")
            .await
            .unwrap();
        let scripted = Scripted::new(Arc::clone(&store));
        // The lock create fails; it lands just before this client's next operation, which is
        // the test's own read below, after the merger gave up.
        scripted.arm(Script::LandLate {
            create: 0,
            after: 1,
        });
        let merger = Lake::open(scripted.clone()).await.unwrap();
        let options = MergeOptions {
            io_retries: 0,
            ..MergeOptions::default()
        };
        let error = merger.merge("live", options).await.unwrap_err();
        assert!(matches!(error, MergeError::Store(_)), "{error}");
        let _ = scripted.list("branches/").await.unwrap();
        assert_eq!(
            scripted.fired(),
            [Script::LandLate {
                create: 0,
                after: 1
            }]
        );
        let held = merge::merge_locks(&*store).await.unwrap();
        assert!(
            matches!(held[0].state, merge::MergeLockState::Held),
            "{held:?}"
        );
        drop(merger);
        let stuck = merge::merge_locks(&*store).await.unwrap();
        if stuck[0].state != merge::MergeLockState::Stuck {
            return Err(format!(
                "the late lock is not stuck after its holder went away: {stuck:?}"
            ));
        }
        assert_eq!(merge::recover(&*store).await.unwrap().len(), 1);
        let free = merge::merge_locks(&*store).await.unwrap();
        assert_eq!(free[0].state, merge::MergeLockState::Free, "{free:?}");
        Ok(())
    })
}

/// What an interrupted `create_branch` or a hand-edited store leaves is never built upon.
#[test]
fn leftovers_of_other_branches_are_refused() {
    let _one = exclusive(None);
    rt().block_on(async {
        let store = MemStore::new();
        let lake = Lake::open(store.clone()).await.unwrap();
        let main = lake.create_branch("main", None).await.unwrap();
        for i in 0..3 {
            main.commit(format!("{i}").as_bytes()).await.unwrap();
        }
        lake.create_branch("dev", None).await.unwrap();
        // An interrupted create of `live` from `main` (BASE 3) left its TAIL/BASE: creating
        // `live` from the empty `dev` must not reuse it (an append at BASE 3 would leave a gap).
        let key = name("live").tailbase().key(0);
        let _ = store
            .create(&key, br#"{"v":1,"tail":0,"base":3,"lock":null}"#)
            .await
            .unwrap();
        match lake.create_branch("live", Some("dev")).await {
            Err(MergeError::Corrupt { key: k, .. }) => assert_eq!(k, key.as_str()),
            other => panic!("{other:?}"),
        }
        // The same create from `main` completes the interrupted one.
        lake.create_branch("live", Some("main")).await.unwrap();
        // A child whose meta names a parent nobody created: the merge writes nothing.
        let meta = name("orphan").meta_key();
        let _ = store
            .create(&meta, br#"{"v":1,"parent":"ghost","created_at_ms":0}"#)
            .await
            .unwrap();
        let _ = store
            .create(
                &name("orphan").tailbase().key(0),
                br#"{"v":1,"tail":0,"base":0,"lock":null}"#,
            )
            .await
            .unwrap();
        match lake.merge("orphan", MergeOptions::default()).await {
            Err(MergeError::Corrupt { reason, .. }) => {
                assert!(reason.contains("ghost"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        assert!(store.list("branches/ghost/").await.unwrap().is_empty());
    });
}

/// A `lock` create that timed out (the merger saw an error, and its read-back found nothing)
/// lands late, after the read-back: the merger finds its own `lock` newest and holds it, instead
/// of waiting on itself and leaving a lock nobody frees.
async fn late_lock() -> Result<(), String> {
    let store: Arc<dyn Store> = Arc::new(MemStore::new());
    let setup = Lake::open(Arc::clone(&store)).await.unwrap();
    setup.create_branch("main", None).await.unwrap();
    setup
        .create_branch("live", Some("main"))
        .await
        .unwrap()
        .commit(b"0")
        .await
        .unwrap();
    let scripted = Scripted::new(Arc::clone(&store));
    // Creates: the lock is the first. After its error: the loop's listings of the journal and
    // of TAIL/BASE, then the retried create, before which the first one lands.
    scripted.arm(Script::LandLate {
        create: 0,
        after: 3,
    });
    let merger = Lake::open(scripted.clone()).await.unwrap();
    let outcome = merger.merge("live", MergeOptions::default()).await;
    if scripted.fired()
        != [Script::LandLate {
            create: 0,
            after: 3,
        }]
    {
        return Err(format!("the script did not fire: {:?}", scripted.fired()));
    }
    let merged = outcome.map_err(|e| format!("the merger did not take its own late lock: {e}"))?;
    assert_eq!((merged.lock, merged.outcome), (0, MergeOutcome::Merged));
    let locks = merge::merge_locks(&*store).await.unwrap();
    assert_eq!(locks[0].state, merge::MergeLockState::Free, "{locks:?}");
    Ok(())
}

#[test]
fn a_lock_that_lands_late_is_ours() {
    let _one = exclusive(None);
    rt().block_on(late_lock()).unwrap();
}

#[test]
fn waiting_on_our_own_late_lock_is_caught() {
    let _one = exclusive(Some(Mutant::MergeOwnLockIsBusy));
    let outcome = rt().block_on(late_lock());
    activate(None);
    let error = outcome.expect_err("the planted bug must be caught");
    assert!(error.contains("did not take its own late lock"), "{error}");
}

/// A store that counts the listings and reads passing through it.
#[derive(Default)]
struct Counted {
    inner: MemStore,
    lists: std::sync::atomic::AtomicUsize,
    gets: std::sync::atomic::AtomicUsize,
}

impl Counted {
    /// (listings, reads) since the last call.
    fn take(&self) -> (usize, usize) {
        use std::sync::atomic::Ordering::SeqCst;
        (self.lists.swap(0, SeqCst), self.gets.swap(0, SeqCst))
    }
}

#[async_trait::async_trait]
impl Store for Counted {
    async fn get(
        &self,
        key: &lockstep::store::Key,
    ) -> Result<Option<(Vec<u8>, lockstep::store::Version)>, lockstep::store::StoreError> {
        self.gets.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.get(key).await
    }
    async fn create(
        &self,
        key: &lockstep::store::Key,
        bytes: &[u8],
    ) -> Result<lockstep::store::Created, lockstep::store::StoreError> {
        self.inner.create(key, bytes).await
    }
    async fn list(
        &self,
        prefix: &str,
    ) -> Result<Vec<lockstep::store::Key>, lockstep::store::StoreError> {
        self.lists.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &lockstep::store::Key) -> Result<(), lockstep::store::StoreError> {
        self.inner.delete(key).await
    }
    fn describe(&self) -> String {
        "counted".into()
    }
}

/// A merge's work follows what is new since the last merge, not the journals' length (issue 11:
/// a listing costs as much as every entry ever appended, and on a local disk it holds the
/// directory lock the writers' appends need). After a first merge by the same lake, a merge of 3
/// new commits over 300 merged ones lists nothing, and reads a bounded number of entries.
#[test]
fn a_merge_reads_what_is_new_not_the_whole_journal() {
    let _one = exclusive(None);
    rt().block_on(async {
        let store = Arc::new(Counted::default());
        let lake = Lake::open(Arc::clone(&store)).await.unwrap();
        lake.create_branch("main", None).await.unwrap();
        let live = lake.create_branch("live", Some("main")).await.unwrap();
        for round in 0..3 {
            for _ in 0..100 {
                live.commit(b"old").await.unwrap();
            }
            let merged = lake.merge("live", MergeOptions::default()).await.unwrap();
            assert_eq!(merged.outcome, MergeOutcome::Merged, "round {round}");
        }
        for _ in 0..3 {
            live.commit(b"new").await.unwrap();
        }
        store.take();
        let merged = lake.merge("live", MergeOptions::default()).await.unwrap();
        assert_eq!((merged.from, merged.to), (300, 303));
        let (lists, gets) = store.take();
        assert_eq!(lists, 0, "a merge listed a journal ({gets} reads)");
        // 15: 2 metas; the lock journal and the TAIL/BASE journal (twice) from where this lake
        // saw them end (the entry below, the absent end: 2 each); the child from TAIL (the one
        // below, 3 new, the absent end); the parent from BASE (the one below, the absent end).
        assert_eq!(gets, 15, "reads for a merge of 3 commits");
    });
}

/// Where the lake saw a journal end is only a hint: a lake whose branches were removed and
/// created again under the same handle (the entry below the hint is gone) lists instead, takes
/// the new journal's first lock, and reads upward from the new end after that. (A wipe under a
/// live handle is not supported, as specs/merge.md §3 says; this is the merge's defence. Each
/// round makes its own `Branch`: an old one's append hint would create past the new end.)
#[test]
fn a_stale_end_hint_falls_back_to_a_listing() {
    let _one = exclusive(None);
    rt().block_on(async {
        let store = Arc::new(Counted::default());
        let lake = Lake::open(Arc::clone(&store)).await.unwrap();
        let mut rounds = Vec::new();
        for merges in [3, 2] {
            lake.create_branch("main", None).await.unwrap();
            let live = lake.create_branch("live", Some("main")).await.unwrap();
            let mut round = Vec::new();
            for _ in 0..merges {
                live.commit(b"x").await.unwrap();
                store.take();
                let merged = lake.merge("live", MergeOptions::default()).await.unwrap();
                assert_eq!(merged.outcome, MergeOutcome::Merged);
                round.push((merged.lock, store.take().0));
            }
            rounds.push(round);
            let locks = lake.merge_locks().await.unwrap();
            assert_eq!(locks[0].state, merge::MergeLockState::Free, "{locks:?}");
            // Remove every key, as an operator wiping the lake would.
            for key in store.list("").await.unwrap() {
                store.delete(&key).await.unwrap();
            }
        }
        // (lock index, listings) per merge. The first merge of a fresh lake lists its four
        // journals; the first after the wipe lists the two whose hint's entry is gone, and takes
        // lock 0 of the new journal: read upward from the old end (6) it would have taken lock 6.
        // (Taking an absent entry below the hint for an empty journal would also give lock 0;
        // only the count of listings tells that apart.)
        assert_eq!(rounds[0], [(0, 4), (2, 0), (4, 0)]);
        assert_eq!(rounds[1], [(0, 2), (2, 0)]);
    });
}

/// A merge takes at most `max_commits` child commits; the rest wait for the next merge, and
/// every commit is merged once.
#[test]
fn a_merge_takes_at_most_max_commits() {
    let _one = exclusive(None);
    rt().block_on(async {
        let lake = Lake::open(MemStore::new()).await.unwrap();
        lake.create_branch("main", None).await.unwrap();
        let live = lake.create_branch("live", Some("main")).await.unwrap();
        for _ in 0..5 {
            live.commit(b"x").await.unwrap();
        }
        let options = MergeOptions {
            max_commits: 3,
            ..MergeOptions::default()
        };
        let mut ranges = Vec::new();
        for _ in 0..3 {
            let merged = lake.merge("live", options.clone()).await.unwrap();
            ranges.push((merged.outcome, merged.from, merged.to));
        }
        assert_eq!(
            ranges,
            [
                (MergeOutcome::Merged, 0, 3),
                (MergeOutcome::Merged, 3, 5),
                (MergeOutcome::NothingToMerge, 5, 5)
            ]
        );
    });
}

/// TAIL past the child's end, or BASE past the parent's, is corrupt (exit 74), on a lake that
/// reads upward (it merged before) as on a fresh one (it lists); and nothing is appended at
/// BASE, which would leave a gap in the parent.
#[test]
fn tail_or_base_past_the_end_is_corrupt() {
    let _one = exclusive(None);
    rt().block_on(async {
        for (field, fresh) in [
            ("TAIL", false),
            ("BASE", false),
            ("TAIL", true),
            ("BASE", true),
        ] {
            let store = Arc::new(MemStore::new());
            let lake = Lake::open(Arc::clone(&store)).await.unwrap();
            let main = lake.create_branch("main", None).await.unwrap();
            let live = lake.create_branch("live", Some("main")).await.unwrap();
            live.commit(b"x").await.unwrap();
            lake.merge("live", MergeOptions::default()).await.unwrap();
            live.commit(b"y").await.unwrap();
            let (tail, base) = (1, 1); // after the first merge: child end 2, parent end 1
            let planted = merge::TailBase {
                v: 1,
                tail: if field == "TAIL" { tail + 5 } else { tail },
                base: if field == "BASE" { base + 5 } else { base },
                lock: None,
            };
            let key = name("live").tailbase().key(2);
            let bytes = serde_json::to_vec(&planted).unwrap();
            assert!(store.create(&key, &bytes).await.unwrap().is_created());
            let merger = if fresh {
                Lake::open(Arc::clone(&store)).await.unwrap()
            } else {
                lake.clone()
            };
            let error = merger
                .merge("live", MergeOptions::default())
                .await
                .unwrap_err();
            let text = error.to_string();
            assert!(
                matches!(error, MergeError::Corrupt { .. }) && text.contains("past"),
                "{field} (fresh lake: {fresh}): {text}"
            );
            assert_eq!(
                main.log().await.unwrap().len(),
                1,
                "{field}: the parent grew"
            );
            let at_base = name("main").commits().key(base + 5);
            assert!(
                store.get(&at_base).await.unwrap().is_none(),
                "{field}: a gap"
            );
        }
    });
}
