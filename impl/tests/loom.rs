//! loom: every interleaving of the in-process shared state (DESIGN §5): MemStore's map and
//! versions, the hand-off between the renewal task and release, and two writers committing
//! through clones of one merge `Branch` (which share its end hint). One claim per test, at most
//! three threads. Run (CI does, with `LOOM_MAX_PREEMPTIONS=2`):
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p lockstep --features mutants,loom-tests --profile verify --test loom
//! ```
//!
//! Three claims have a planted bug (`src/mutants.rs`) that loom must find; every claim reports the
//! interleavings loom explored and needs more than one.

// Built only with the `loom-tests` feature (impl/Cargo.toml), and then it must run under loom:
// without `--cfg loom` it would otherwise be an empty binary that passes.
#[cfg(not(loom))]
compile_error!(
    "tests/loom.rs runs under loom only: set RUSTFLAGS=\"--cfg loom\" (README, Cross-tests)"
);

use std::time::Instant;

use lockstep::lock::lease::LeaseCell;
use lockstep::mutants::{activate, Mutant};
use lockstep::store::{Created, Key, MemCore};
use loom::sync::Arc;
use loom::thread;

/// The mutant switch is process-wide and tests run on parallel threads: each test holds this
/// for its whole run, so no test sees another's mutant.
fn exclusive(mutant: Option<Mutant>) -> std::sync::MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    activate(mutant);
    guard
}

/// Interleavings loom ran in this process (each run of a model's closure is one).
static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Runs `f` under loom without a mutant and reports how many interleavings it explored; asserts
/// that there was more than one (a model loom cannot interleave tests nothing).
fn explore(name: &str, f: fn()) {
    let _one = exclusive(None);
    let before = RUNS.load(std::sync::atomic::Ordering::SeqCst);
    loom::model(move || {
        RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        f()
    });
    let runs = RUNS.load(std::sync::atomic::Ordering::SeqCst) - before;
    eprintln!("{name}: {runs} interleavings");
    assert!(runs > 1, "{name}: loom explored {runs} interleaving");
}

/// Runs `f` under loom with `mutant` on: loom must find an interleaving that fails on
/// `property` (named in the panic message: any other panic is not the bug we planted). Then the
/// same model without the mutant, the control, must pass.
fn assert_loom_catches(mutant: Mutant, f: fn(), property: &str) {
    {
        let _one = exclusive(Some(mutant));
        let payload = std::panic::catch_unwind(|| loom::model(f)).err();
        activate(None);
        let payload = payload
            .unwrap_or_else(|| panic!("{}: loom found no failing interleaving", mutant.name()));
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        assert!(
            message.contains(property),
            "{}: loom failed, but not on {property}: {message}",
            mutant.name()
        );
    }
    drop(exclusive(None));
    explore(mutant.name(), f);
}

/// Of concurrent creates of one key exactly one wins, and its bytes are stored.
fn one_winner() {
    let core = Arc::new(MemCore::default());
    let key = Key::new("k").unwrap();
    let handles: Vec<_> = (0..2u8)
        .map(|writer| {
            let (core, key) = (Arc::clone(&core), key.clone());
            thread::spawn(move || (writer, core.create(&key, &[writer]).is_created()))
        })
        .collect();
    let mut winners = Vec::new();
    for handle in handles {
        let (writer, won) = handle.join().unwrap();
        if won {
            winners.push(writer);
        }
    }
    if core.create(&key, &[9]) == Created::AlreadyExists && winners.len() == 1 {
        assert_eq!(core.get(&key).unwrap().0, vec![winners[0]]);
    }
    assert_eq!(winners.len(), 1, "exactly one winner: winners {winners:?}");
}

#[test]
fn mem_create_if_absent_has_exactly_one_winner() {
    explore("one winner", one_winner);
}

#[test]
fn mem_create_mutant_check_then_insert_is_caught() {
    // Two winners when check and insert are separate.
    assert_loom_catches(Mutant::MemCheckThenInsert, one_winner, "exactly one winner");
}

/// Versions are unique, even across a delete and a new create.
#[test]
fn mem_versions_are_never_reused() {
    explore("versions never reused", || {
        let core = Arc::new(MemCore::default());
        let a = {
            let core = Arc::clone(&core);
            thread::spawn(move || core.create(&Key::new("a").unwrap(), b"1"))
        };
        let b = {
            let core = Arc::clone(&core);
            thread::spawn(move || {
                let key = Key::new("b").unwrap();
                let first = core.create(&key, b"1");
                core.delete(&key);
                (first, core.create(&key, b"2"))
            })
        };
        let va = a.join().unwrap();
        let (vb1, vb2) = b.join().unwrap();
        let versions = [va, vb1, vb2].map(|c| match c {
            Created::Created(v) => v,
            Created::AlreadyExists => panic!("fresh keys"),
        });
        assert!(
            versions[0] != versions[1] && versions[1] != versions[2] && versions[0] != versions[2]
        );
    });
}

/// The hand-off: a release never appends at an index a renewal in flight is about to move, and
/// no renewal starts once the release is claimed. Thread A renews (possibly); thread B releases;
/// B's index must be the final index of the lease.
fn release_sees_the_final_index() {
    let cell = Arc::new(LeaseCell::new(5, Instant::now()));
    let renewer = {
        let cell = Arc::clone(&cell);
        thread::spawn(move || {
            if let Some(index) = cell.begin_renew() {
                // The renew entry lands at index + 1.
                cell.end_renew(lockstep::lock::lease::Renewal::Landed {
                    index: index + 1,
                    started: Instant::now(),
                });
            }
        })
    };
    let releaser = {
        let cell = Arc::clone(&cell);
        thread::spawn(move || {
            assert!(cell.claim_release());
            loop {
                if let Some((index, _lost)) = cell.release_ready() {
                    return index;
                }
                thread::yield_now();
            }
        })
    };
    renewer.join().unwrap();
    let released_at = releaser.join().unwrap();
    assert_eq!(
        released_at,
        cell.snapshot().index,
        "release appended at a stale index: the renewal moved on after it"
    );
}

#[test]
fn release_waits_for_a_renewal_in_flight() {
    explore("release after renewal", release_sees_the_final_index);
}

#[test]
fn renewal_after_release_mutant_is_caught() {
    // A renewal that starts after the release read its index.
    assert_loom_catches(
        Mutant::RenewDuringRelease,
        release_sees_the_final_index,
        "release appended at a stale index",
    );
}

/// Of two concurrent releasers (a guard and the manager's shutdown) exactly one releases.
#[test]
fn exactly_one_releaser() {
    explore("one releaser", || {
        let cell = Arc::new(LeaseCell::new(0, Instant::now()));
        let claims: Vec<_> = (0..2)
            .map(|_| {
                let cell = Arc::clone(&cell);
                thread::spawn(move || cell.claim_release())
            })
            .collect();
        let winners = claims
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|won| *won)
            .count();
        assert_eq!(winners, 1);
    });
}

/// The merge code's in-process shared state: clones of one `Branch` share the hint of where the
/// journal ends, and writers on two threads commit through them while loom interleaves every
/// step of MemStore. Claim: each commit gets an index of its own, the journal has no gap, and
/// each index holds the commit its writer was told.
///
/// MemStore's operations never wait (their locks are loom's blocking mutexes), so the futures are
/// driven by polling them to completion with a no-op waker.
fn two_writers_one_branch() {
    use lockstep::merge::{CommitEntry, Lake};
    use lockstep::store::MemStore;
    let store = MemStore::new();
    let branch = block_on(async {
        let lake = Lake::open(store.clone()).await.unwrap();
        lake.create_branch("main", None).await.unwrap()
    });
    let other = branch.clone();
    let writer = thread::spawn(move || {
        block_on(other.commit_change("a", vec![], vec!["x".into()])).unwrap()
    });
    let mine = block_on(branch.commit_change("b", vec![], vec!["y".into()])).unwrap();
    let theirs = writer.join().unwrap();
    assert_ne!(
        mine, theirs,
        "one index each: both writers were told index {mine}"
    );
    let mut indices = [mine, theirs];
    indices.sort();
    assert_eq!(indices, [0, 1], "no gap");
    block_on(async {
        for (index, id) in [(mine, "b"), (theirs, "a")] {
            let entry = branch
                .name()
                .commits()
                .get::<CommitEntry>(&store, index)
                .await
                .unwrap();
            assert!(
                matches!(entry, Some(CommitEntry::Commit { id: found, .. }) if found == id),
                "one index each: index {index} does not hold commit {id}"
            );
        }
    });
}

#[test]
fn two_writers_of_one_branch_get_an_index_each() {
    explore("two writers of one branch", two_writers_one_branch);
}

#[test]
fn merge_commit_trusting_already_exists_is_caught() {
    assert_loom_catches(
        Mutant::MergeCommitTrustsAlreadyExists,
        two_writers_one_branch,
        "one index each",
    );
}

/// Polls `future` until it is ready: enough for futures that never wait on a wake-up.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        loom::thread::yield_now();
    }
}

/// The redo log's phase 1 on two threads: two committers (each a `Sessions` of its own, with no
/// session lock: safety must not rest on it) commit one session holding one message, while loom
/// interleaves every step of MemStore. Claim: the message is in exactly one archive (the
/// create-if-absent at index `k` decides, and the loser excludes what the winner archived).
fn two_committers_one_session() {
    use lockstep::lock::owner::ProcessId;
    use lockstep::redo::{inspect, RedoOptions, Sessions};
    use lockstep::store::MemStore;
    let store = MemStore::new();
    let open = |store: MemStore| {
        block_on(Sessions::open_unlocked(
            store,
            RedoOptions::default(),
            ProcessId::current(),
        ))
        .unwrap()
    };
    let mine = open(store.clone());
    let id = block_on(mine.add("s", "m0")).unwrap();
    let theirs = open(store.clone());
    let other = thread::spawn(move || block_on(theirs.commit_phase1("s")).unwrap());
    let a = block_on(mine.commit_phase1("s")).unwrap();
    let b = other.join().unwrap();
    let view = block_on(inspect(&store)).unwrap();
    let session = view.session("s").unwrap();
    let holding: Vec<u64> = session
        .archives
        .iter()
        .filter(|archive| archive.messages.contains(&id))
        .map(|archive| archive.index)
        .collect();
    assert_eq!(
        holding.len(),
        1,
        "no duplicate archive: the message is in archives {holding:?} (commits archived {a:?} and {b:?})"
    );
}

#[test]
fn two_committers_of_one_session_archive_a_message_once() {
    explore("two committers of one session", two_committers_one_session);
}

#[test]
fn redo_commit_without_exclusion_is_caught() {
    assert_loom_catches(
        Mutant::RedoNoExclusion,
        two_committers_one_session,
        "no duplicate archive",
    );
}
