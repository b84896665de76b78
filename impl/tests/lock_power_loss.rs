//! The `fsync`s a path-lock cycle leaves out (issue 15, goal 1; specs/lock.md §12), each tested at
//! its step: a manager takes `/x` on a store that tracks what a power loss could still undo, its
//! process dies with the machine ([`LockManager::kill`], then [`FsStore::lose_power`]), and a
//! manager of the next boot must take `/x` with a larger token.
//!
//! - the holder's `acquire` and `release` are linked without syncing their directory: a power
//!   loss may take either away (each case below keeps or loses them);
//! - a ticket's bytes are not synced (its name is): a surviving ticket may be empty.
//!
//! The planted bugs `entry-bytes-not-synced` (the journal left with an empty entry, read as
//! corrupt for good) and `ticket-not-synced` (a token handed out again) must fail these checks.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use lockstep::lock::{LockError, LockManager, LockMode, LockOptions, Operation};
use lockstep::store::{FsStore, Store};

/// The mutant tests switch a process-wide mutant on and off: one test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// What the first boot's holder did before the power went.
#[derive(Clone, Copy, Debug)]
enum Before {
    Holding,
    Released,
}

fn options() -> LockOptions {
    LockOptions {
        timeout: Some(Duration::from_secs(10)),
        cleanup_every: None,
        ..LockOptions::default()
    }
}

fn point_x() -> Operation {
    Operation::new(LockMode::Point, &["/x"]).expect("a valid operation")
}

/// Runs one boot that takes `/x` (and releases it if `before` says so), loses the power keeping
/// the unsynced entries `keep` names, and takes `/x` in the next boot. Returns the two tokens,
/// or the error of the second boot's lock.
fn power_loss(before: Before, keep: fn(&str) -> bool) -> Result<(u64, u64), LockError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let root = dir.path().join(".lockstep");
    runtime.block_on(async {
        let tracked = FsStore::open(&root)
            .expect("the store opens")
            .tracking_power_loss();
        let first = LockManager::start(Arc::new(tracked.clone()) as Arc<dyn Store>, options())
            .await
            .expect("the first boot's manager starts");
        let guard = first
            .lock(point_x())
            .await
            .expect("the first boot takes /x");
        let old = guard.tokens()[0].2;
        match before {
            Before::Holding => std::mem::forget(guard),
            Before::Released => guard.release().await.expect("the release lands"),
        }
        // The machine dies: its processes first (their file locks go with them), then the disk
        // forgets what was never synced.
        first.kill().await;
        let (removed, emptied) = tracked.lose_power(keep);
        eprintln!("{before:?}: the power loss removed {removed:?} and emptied {emptied:?}");
        drop(tracked);

        let store = FsStore::open(&root).expect("the store opens after the power loss");
        let next = LockManager::start(Arc::new(store) as Arc<dyn Store>, options())
            .await
            .expect("the next boot's manager starts");
        let guard = next.lock(point_x()).await?;
        let new = guard.tokens()[0].2;
        guard.release().await?;
        Ok((old, new))
    })
}

fn is_acquire(key: &str) -> bool {
    key.starts_with("locks/") && key.ends_with("0")
}

fn is_release(key: &str) -> bool {
    key.starts_with("locks/") && key.ends_with("1")
}

/// Every post-crash disk of one cycle: the next boot takes the lock, with a larger token.
#[test]
fn after_a_power_loss_at_any_step_of_a_cycle_the_next_boot_takes_the_lock_with_a_larger_token() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cases: [(Before, fn(&str) -> bool, &str); 6] = [
        (Before::Holding, |_| false, "held; the acquire lost"),
        (Before::Holding, is_acquire, "held; the acquire kept"),
        (Before::Released, |_| false, "released; both entries lost"),
        (
            Before::Released,
            is_acquire,
            "released; the release lost, the acquire kept",
        ),
        (
            Before::Released,
            is_release,
            "released; the acquire lost, the release kept",
        ),
        (Before::Released, |_| true, "released; both kept"),
    ];
    for (before, keep, case) in cases {
        let (old, new) = power_loss(before, keep)
            .unwrap_or_else(|error| panic!("{case}: the next boot could not lock /x: {error}"));
        assert!(
            new > old,
            "{case}: the next boot's token {new} is not larger than the first boot's {old}"
        );
    }
}

#[cfg(feature = "mutants")]
#[test]
fn the_power_loss_test_catches_entries_whose_bytes_are_not_synced() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    lockstep::mutants::activate(Some(lockstep::mutants::Mutant::EntryBytesNotSynced));
    let outcome = power_loss(Before::Holding, is_acquire);
    lockstep::mutants::activate(None);
    match outcome {
        Err(LockError::Corrupt { key, .. }) => assert!(key.contains("locks/"), "{key}"),
        other => panic!("an acquire whose bytes a power loss took was not noticed: {other:?}"),
    }
}

#[cfg(feature = "mutants")]
#[test]
fn the_power_loss_test_catches_tickets_whose_names_are_not_synced() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    lockstep::mutants::activate(Some(lockstep::mutants::Mutant::TicketNotSynced));
    let outcome = power_loss(Before::Holding, |_| false);
    lockstep::mutants::activate(None);
    let (old, new) = outcome.expect("the lock itself is taken");
    assert!(
        new <= old,
        "a ticket lost in the power loss was not handed out again ({old}, then {new})"
    );
}
