//! The batched read, `Store::read_many`, through which the path locks read a journal's newest
//! entry and their ancestors' (one blocking-thread hop on FsStore for a whole pre-check or
//! re-check, one Txn on etcd; specs/lock.md §12). It must find what the plain calls find: the
//! storage contract's clause on FsStore, and a journal read through it while a lock is held
//! above an older release.

use std::sync::{Arc, Mutex};

use lockstep::lock::entry::Entry;
use lockstep::lock::journal;
use lockstep::lock::{LockManager, LockMode, LockOptions, LockPath, Operation};
use lockstep::store::{contract, FsStore, MemStore, Store};

/// The contract's clause, then `/x` held (an `acquire` above the release of an earlier cycle):
/// the journal's newest entry, read through the batch, must be that `acquire`.
async fn check(store: Arc<dyn Store>) -> Result<(), String> {
    contract::batched_reads_match_plain_calls(&*store, "suite/").await?;
    let manager = LockManager::start(Arc::clone(&store), LockOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    let op = || Operation::new(LockMode::Point, &["/x"]).expect("valid");
    let first = manager.lock(op()).await.map_err(|e| e.to_string())?;
    first.release().await.map_err(|e| e.to_string())?;
    let guard = manager.lock(op()).await.map_err(|e| e.to_string())?;
    let path = LockPath::new("/x").expect("valid");
    let present = journal::indices(&*store, &path.journal_prefix())
        .await
        .map_err(|e| e.to_string())?;
    assert!(
        present.len() >= 2,
        "the set-up must leave a release below the holder's acquire: {present:?}"
    );
    let newest = journal::newest(&*store, &path)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the journal of /x read as empty")?;
    let result = match newest.entry {
        Entry::Acquire { .. } if Some(&newest.index) == present.last() => Ok(()),
        other => Err(format!(
            "the newest entry of /x read as index {} ({other:?}); the journal holds {present:?}",
            newest.index
        )),
    };
    guard.release().await.map_err(|e| e.to_string())?;
    result
}

/// The planted bug is switched on for the whole process: the two tests take turns.
static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn batched_reads_find_the_newest_entry_on_every_local_store() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        check(Arc::new(FsStore::open(dir.path()).unwrap()))
            .await
            .unwrap();
        check(Arc::new(MemStore::new())).await.unwrap();
    });
}

/// Planted bug `read-many-picks-first`: FsStore's batch reads a journal's oldest entry as its
/// newest. The check above must fail.
#[cfg(feature = "mutants")]
#[test]
fn the_batch_test_catches_a_read_that_picks_the_first_key() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    lockstep::mutants::activate(Some(lockstep::mutants::Mutant::ReadManyPicksFirst));
    let dir = tempfile::tempdir().unwrap();
    let outcome = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(check(Arc::new(FsStore::open(dir.path()).unwrap())));
    lockstep::mutants::activate(None);
    let error = outcome.expect_err("the planted bug must be caught");
    assert!(
        error.contains("0003") || error.contains("newest entry of /x"),
        "caught for another reason: {error}"
    );
}
