//! The redo-log implementation's API, case by case: faults at every storage operation of a
//! commit (a full disk, an unreachable store, a lost answer), a failed extraction, and what each
//! leaves for recovery. After each case the world is brought to rest and must hold every message
//! in exactly one archive, every archive done with its memories and one effect.

use std::sync::Arc;

use lockstep::lock::owner::ProcessId;
use lockstep::mutants::{activate, Mutant};
use lockstep::redo::entry::Message;
use lockstep::redo::{
    self, EchoExtractor, ExtractError, MemoryExtractor, RedoError, RedoOptions, Sessions,
};
use lockstep::store::{Fault, FaultyStore, FsStore, MemStore, Store};
use lockstep_tests::scripted::{Script, Scripted};

const SESSION: &str = "s";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn options(io_retries: u32) -> RedoOptions {
    RedoOptions {
        io_retries,
        ..RedoOptions::default()
    }
}

async fn open(store: impl Store, io_retries: u32) -> Sessions {
    Sessions::open_with(
        store,
        options(io_retries),
        Arc::new(EchoExtractor),
        ProcessId::current(),
    )
    .await
    .unwrap()
}

/// Recovery by a fresh process, workers until the queue is empty, then the rest checks.
async fn at_rest<S: Store + Clone>(store: &S, added: &[String]) -> Result<(), String> {
    let fresh = open(store.clone(), 3).await;
    fresh.recover().await.map_err(|e| e.to_string())?;
    fresh.commit(SESSION).await.map_err(|e| e.to_string())?;
    for _ in 0..3 {
        fresh.work_once().await.map_err(|e| e.to_string())?;
    }
    fresh.shutdown().await;
    let view = redo::inspect(&store.clone())
        .await
        .map_err(|e| e.to_string())?;
    let view = view.session(SESSION).ok_or("no session")?;
    for id in added {
        let n = view
            .archives
            .iter()
            .filter(|a| a.messages.contains(id))
            .count();
        if n != 1 {
            return Err(format!("message {id} is in {n} archives"));
        }
    }
    if !view.pending.is_empty() || !view.queue.is_empty() || !view.memories_missing.is_empty() {
        return Err(format!("not at rest: {view:?}"));
    }
    for a in &view.archives {
        if view.effects.get(&a.index) != Some(&1)
            || !view.memories.iter().any(|m| m.archive == a.index)
        {
            return Err(format!(
                "archive {} lacks its memories or its one effect: {view:?}",
                a.index
            ));
        }
    }
    Ok(())
}

/// A fault at operation `n` of a commit (counting from its start), no retries: the commit fails
/// or succeeds, and either way nothing is lost or doubled once the world is at rest. Returns
/// whether the fault fired.
async fn fault_at(n: u64, fault: Fault) -> Result<bool, String> {
    // FsStore: it forgets a cleanly ended owner, so a committer that gave up must end as a crash.
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::open(dir.path()).unwrap();
    let adder = open(store.clone(), 3).await;
    let added = vec![
        adder.add(SESSION, "one").await.unwrap(),
        adder.add(SESSION, "two").await.unwrap(),
    ];
    let faulty = FaultyStore::new(store.clone());
    let committer = open(faulty.clone(), 0).await;
    faulty.fail_in(n, fault);
    let result = committer.commit(SESSION).await;
    let fired = !faulty.fired().is_empty();
    if let Err(error) = &result {
        if !fired {
            return Err(format!("op {n}: the commit failed with no fault: {error}"));
        }
        // The message says whether the archive may be written.
        let text = error.to_string();
        if matches!(error, RedoError::Phase2 { .. }) && !text.contains("recover") {
            return Err(format!("op {n}: {text} does not say how it is finished"));
        }
    }
    // The committer's process ends: a phase 2 it gave up on is recovery's.
    committer.shutdown().await;
    adder.shutdown().await;
    at_rest(&store, &added)
        .await
        .map_err(|e| format!("{fault:?} at op {n}: {e}"))?;
    Ok(fired)
}

#[test]
fn a_full_disk_or_a_dead_store_at_any_operation_of_a_commit_loses_nothing() {
    let _one = exclusive(None);
    let rt = rt();
    for fault in [Fault::Full, Fault::Unavailable] {
        let mut fired = 0;
        for n in 0..40 {
            if rt
                .block_on(fault_at(n, fault))
                .unwrap_or_else(|e| panic!("{e}"))
            {
                fired += 1;
            }
        }
        // Every operation of the commit was reached (a commit makes fewer than 40).
        assert!(fired >= 10, "{fault:?}: only {fired} faults fired");
    }
}

/// Every create of a commit lands while its caller sees an error (a lost answer): the retry
/// finds it and recognises it as its own, so there is one archive and one of everything.
#[test]
fn a_lost_answer_at_any_create_of_a_commit_is_recognised() {
    let _one = exclusive(None);
    let rt = rt();
    let mut lock_errors = 0;
    for k in 0..8 {
        rt.block_on(async {
            let store = MemStore::new();
            let adder = open(store.clone(), 3).await;
            let added = vec![adder.add(SESSION, "one").await.unwrap()];
            let scripted = Scripted::new(Arc::new(store.clone()));
            let committer = open(scripted.clone(), 3).await;
            scripted.arm(Script::LoseAnswer(k));
            match committer.commit(SESSION).await {
                Ok(committed) => {
                    assert_eq!(committed.archive, Some(0), "lost answer at create {k}");
                    assert_eq!(committed.memories.len(), 1);
                }
                // The session lock's own creates: the path lock reports the error (its
                // ambiguous outcomes are specs/lock.md's), and nothing was archived.
                Err(RedoError::Lock(error)) => {
                    let view = redo::inspect(&store).await.unwrap();
                    assert!(
                        view.session(SESSION).unwrap().archives.is_empty(),
                        "{error}"
                    );
                    lock_errors += 1;
                }
                Err(error) => panic!("lost answer at create {k}: {error}"),
            }
            committer.shutdown().await;
            adder.shutdown().await;
            at_rest(&store, &added)
                .await
                .unwrap_or_else(|e| panic!("lost answer at create {k}: {e}"));
            let view = redo::inspect(&store).await.unwrap();
            assert_eq!(view.session(SESSION).unwrap().archives.len(), 1);
        });
    }
    assert!(
        lock_errors < 8,
        "no lost answer reached the redo log's own creates"
    );
}

struct Failing;

#[async_trait::async_trait]
impl MemoryExtractor for Failing {
    async fn extract(&self, _: &[Message]) -> Result<Vec<String>, ExtractError> {
        Err(ExtractError("the model timed out".into()))
    }
}

/// An extraction that fails leaves the archive pending: the error says so, the same process's
/// `recover` replays it at once, and a process that ended after giving up is provably dead, so
/// another process's recovery replays it.
#[test]
fn a_failed_extraction_is_replayed_by_recovery() {
    let _one = exclusive(None);
    let rt = rt();
    rt.block_on(async {
        for same_process in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let store = FsStore::open(dir.path()).unwrap();
            let failing = Sessions::open_with(
                store.clone(),
                options(3),
                Arc::new(Failing),
                ProcessId::current(),
            )
            .await
            .unwrap();
            let id = failing.add(SESSION, "remember me").await.unwrap();
            let error = failing
                .commit(SESSION)
                .await
                .expect_err("the extraction fails");
            assert!(
                matches!(error, RedoError::Extraction { index: 0, .. }),
                "{error}"
            );
            assert!(error.to_string().contains("pending"), "{error}");
            let view = redo::inspect(&store).await.unwrap();
            assert_eq!(view.session(SESSION).unwrap().pending, vec![0]);
            if same_process {
                // Its own recovery knows its commit gave up; the extractor still fails.
                assert!(failing.recover().await.is_err());
                failing.shutdown().await;
            } else {
                failing.shutdown().await;
                let view = redo::inspect(&store).await.unwrap();
                assert_eq!(
                    view.session(SESSION).unwrap().archives[0].owner_liveness,
                    lockstep::store::Liveness::Dead,
                    "a process that gave up a phase 2 must end provably dead"
                );
            }
            at_rest(&store, &[id.clone()]).await.unwrap();
        }
    });
}

/// A worker that fails after its claim (a dead store, no retries) ends its process provably
/// dead, so another process's recovery frees the claim and the item is applied once. A clean end
/// would leave the claim's worker `unknown` (FsStore forgets a cleanly ended owner), and the
/// item claimed forever.
#[test]
fn a_worker_that_gives_up_a_claimed_item_leaves_it_recoverable() {
    let _one = exclusive(None);
    let rt = rt();
    rt.block_on(async {
        let mut fired = 0;
        for n in 0..12 {
            let dir = tempfile::tempdir().unwrap();
            let store = FsStore::open(dir.path()).unwrap();
            let committer = open(store.clone(), 3).await;
            let added = vec![committer.add(SESSION, "index me").await.unwrap()];
            committer.commit(SESSION).await.unwrap();
            committer.shutdown().await;
            let faulty = FaultyStore::new(store.clone());
            let worker = open(faulty.clone(), 0).await;
            faulty.fail_in(n, Fault::Unavailable);
            let result = worker.work_once().await;
            worker.shutdown().await;
            if result.is_err() {
                fired += 1;
            }
            at_rest(&store, &added)
                .await
                .unwrap_or_else(|e| panic!("a worker failing at op {n}: {e}"));
        }
        assert!(fired >= 4, "only {fired} worker runs failed");
    });
}

/// Two recoveries at once (two processes, FsStore): the recovery lock lets one replay, the
/// other is told `RecoveryBusy` (or runs after it and finds nothing). Every archive is replayed
/// once: no second extraction's memories, not even invisible ones.
#[test]
fn two_recoveries_at_once_replay_each_archive_once() {
    let _one = exclusive(None);
    let rt = rt();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path()).unwrap();
        // Committers that die after their archive create: 20 pending archives.
        let mut added = Vec::new();
        for _ in 0..20 {
            let adder = open(store.clone(), 3).await;
            added.push(adder.add(SESSION, "pending").await.unwrap());
            adder.shutdown().await;
            let faulty = FaultyStore::new(store.clone());
            let committer = open(faulty.clone(), 0).await;
            // The session lock's two creates, then the archive.
            faulty.crash_after_creates(3);
            assert!(committer.commit(SESSION).await.is_err());
            committer.kill().await;
        }
        let pending = redo::inspect(&store).await.unwrap();
        assert_eq!(pending.session(SESSION).unwrap().pending.len(), 20);
        let (a, b) = (open(store.clone(), 3).await, open(store.clone(), 3).await);
        let (ra, rb) = tokio::join!(a.recover(), b.recover());
        let mut replayed = 0;
        let mut busy = 0;
        for r in [ra, rb] {
            match r {
                Ok(r) => replayed += r.replayed.len(),
                Err(RedoError::RecoveryBusy { .. }) => busy += 1,
                Err(e) => panic!("{e}"),
            }
        }
        a.shutdown().await;
        b.shutdown().await;
        let view = redo::inspect(&store).await.unwrap();
        let view = view.session(SESSION).unwrap();
        assert_eq!(replayed, 20, "every archive replayed once ({busy} busy)");
        assert_eq!(
            view.memories_unnamed, 0,
            "a second replay wrote memories: {view:?}"
        );
        at_rest(&store, &added).await.unwrap();
    });
}

/// Two sessions share the queue, the worker and recovery (the model's `two-sessions` world):
/// a committer of each dies after its archive, both archive index 0 of their session. One
/// recovery replays both, one worker pass applies both effects, each under its own session's
/// key (keyed by the index alone, the second would find the first's row or effect there: the
/// model's `item-keyed-by-index` mutant).
#[test]
fn two_sessions_share_one_queue_and_one_recovery() {
    let _one = exclusive(None);
    two_sessions().unwrap();
}

/// The same with the effect keyed by the archive index alone: the second session's effect is
/// never applied.
#[test]
fn an_effect_keyed_by_index_alone_is_caught() {
    let _one = exclusive(Some(Mutant::RedoEffectKeyedByIndex));
    let result = two_sessions();
    activate(None);
    let error = result.expect_err("the planted bug must be caught");
    assert!(error.contains("effect"), "{error}");
}

/// The mutant switch is process-wide: tests of this binary take turns.
fn exclusive(mutant: Option<Mutant>) -> std::sync::MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    activate(mutant);
    guard
}

fn two_sessions() -> Result<(), String> {
    let rt = rt();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path()).unwrap();
        for session in ["a", "b"] {
            let adder = open(store.clone(), 3).await;
            adder.add(session, "pending").await.unwrap();
            adder.shutdown().await;
            let faulty = FaultyStore::new(store.clone());
            let committer = open(faulty.clone(), 0).await;
            // The session lock's two creates, then the archive.
            faulty.crash_after_creates(3);
            assert!(committer.commit(session).await.is_err());
            committer.kill().await;
        }
        let fresh = open(store.clone(), 3).await;
        let recovered = fresh.recover().await.unwrap();
        let replayed: Vec<(String, u64)> = recovered
            .replayed
            .iter()
            .map(|r| (r.session.to_string(), r.archive))
            .collect();
        assert_eq!(replayed, vec![("a".into(), 0), ("b".into(), 0)]);
        let worked = fresh.work_once().await.unwrap();
        assert_eq!(worked.processed, vec!["a/0".to_string(), "b/0".to_string()]);
        fresh.shutdown().await;
        let view = redo::inspect(&store).await.unwrap();
        for session in ["a", "b"] {
            let view = view.session(session).unwrap();
            if !view.pending.is_empty() || !view.queue.is_empty() {
                return Err(format!("session {session} is not at rest: {view:?}"));
            }
            if view.effects.get(&0) != Some(&1) {
                return Err(format!("session {session}'s effect: {:?}", view.effects));
            }
            if !view.memories.iter().any(|m| m.archive == 0) {
                return Err(format!("session {session} has no memories"));
            }
        }
        Ok(())
    })
}

/// A worker's view of the store in which the store proves dead whoever this view is told of
/// (the lease of that worker was lost: etcd #15247), and, for the zombie itself, an ack that
/// waits at `gate` before it deletes its row (a worker that stalled after applying).
#[derive(Clone)]
struct LeaseLost {
    inner: MemStore,
    /// Report every other process dead (the view of the worker that claims over the zombie).
    others_dead: bool,
    /// Hold row deletes until notified (the zombie's stall before its ack).
    gate: Option<Arc<tokio::sync::Notify>>,
}

#[async_trait::async_trait]
impl Store for LeaseLost {
    async fn get(
        &self,
        key: &lockstep::store::Key,
    ) -> Result<Option<(Vec<u8>, lockstep::store::Version)>, lockstep::store::StoreError> {
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
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &lockstep::store::Key) -> Result<(), lockstep::store::StoreError> {
        if let Some(gate) = &self.gate {
            if key.as_str().starts_with("queue/semantic/rows/") {
                gate.notified().await;
            }
        }
        self.inner.delete(key).await
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
    async fn register_owner(
        &self,
        owner: &str,
    ) -> Result<Option<Box<dyn lockstep::store::OwnerRegistration>>, lockstep::store::StoreError>
    {
        self.inner.register_owner(owner).await
    }
    async fn owner_liveness(
        &self,
        owner: &str,
    ) -> Result<lockstep::store::Liveness, lockstep::store::StoreError> {
        if self.others_dead {
            return Ok(lockstep::store::Liveness::Dead);
        }
        self.inner.owner_liveness(owner).await
    }
}

/// The model's `worker-lease-loss` world on the implementation: worker A claims the row and
/// applies the effect, then stalls before its ack; its lease is lost, so worker B, to whom the
/// store proves A dead, claims the row over A's claim, applies (the effect is there already) and
/// acks; then A wakes and acks a row that is gone. Both report the item processed, and its
/// effect is applied once (specs/redo.md §6).
#[test]
fn a_zombie_worker_and_the_worker_that_claims_over_it_apply_the_effect_once() {
    let _one = exclusive(None);
    zombie_worker().unwrap();
}

/// The same with the effect created under a fresh key each time: two effects (model entry
/// `redo/mutant-effect-not-keyed-zombie-worker`, no crash needed).
#[test]
fn a_zombie_worker_catches_an_effect_not_keyed() {
    let _one = exclusive(Some(Mutant::RedoEffectNotKeyed));
    let result = zombie_worker();
    activate(None);
    let error = result.expect_err("the planted bug must be caught");
    assert!(error.contains("2 effects"), "{error}");
}

fn zombie_worker() -> Result<(), String> {
    let rt = rt();
    rt.block_on(async {
        let store = MemStore::new();
        let committer = open(store.clone(), 3).await;
        committer.add(SESSION, "hello").await.unwrap();
        committer.commit(SESSION).await.unwrap();
        committer.shutdown().await;
        assert_eq!(store.list("queue/semantic/rows/").await.unwrap().len(), 1);

        let gate = Arc::new(tokio::sync::Notify::new());
        let a = open(
            LeaseLost {
                inner: store.clone(),
                others_dead: false,
                gate: Some(gate.clone()),
            },
            3,
        )
        .await;
        let a_task = tokio::spawn(async move {
            let worked = a.work_once().await;
            a.shutdown().await;
            worked
        });
        // A has applied the effect once it exists (and then waits at its ack).
        let mut applied = false;
        for _ in 0..10_000 {
            if !store.list("effects/semantic/").await.unwrap().is_empty() {
                applied = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        assert!(applied, "worker A never applied the effect");

        let b = open(
            LeaseLost {
                inner: store.clone(),
                others_dead: true,
                gate: None,
            },
            3,
        )
        .await;
        let b_worked = b.work_once().await.map_err(|e| e.to_string())?;
        b.shutdown().await;
        assert_eq!(
            b_worked.processed,
            vec![format!("{SESSION}/0")],
            "B claims over the zombie"
        );
        gate.notify_one();
        let a_worked = a_task
            .await
            .unwrap()
            .map_err(|e| format!("the zombie's ack: {e}"))?;
        assert_eq!(a_worked.processed, vec![format!("{SESSION}/0")]);

        let effects = store.list("effects/semantic/").await.unwrap();
        if effects.len() != 1 {
            return Err(format!(
                "{} effects of one item: {effects:?}",
                effects.len()
            ));
        }
        assert!(store.list("queue/semantic/").await.unwrap().is_empty());
        Ok(())
    })
}
