//! Garbage in a journal in use stays bounded. A release or withdraw deletes the two entries it
//! knows without listing the journal, and sweeps the whole journal when a multiple of
//! `SWEEP_EVERY` falls in its window (specs/lock.md §12). An earlier version swept at indices
//! divisible by 16 only: acquire + release pairs land on even and odd indices, so a release never
//! reached one, and every withdraw (an operation that failed part-way and gave back what it held)
//! left its two entries behind for good.

use std::sync::Arc;
use std::time::Duration;

use lockstep::lock::journal::{indices, SWEEP_EVERY};
use lockstep::lock::{LockError, LockManager, LockMode, LockOptions, LockPath, Operation};
use lockstep::store::{MemStore, Store};

fn options() -> LockOptions {
    LockOptions {
        timeout: Some(Duration::ZERO),
        cleanup_every: None,
        ..LockOptions::default()
    }
}

/// 300 operations on `/p` by one manager, mixing plain cycles with operations on `/p` and `/q`
/// that fail busy at `/q` (held by another manager) and withdraw their `/p`: the most entries
/// `/p`'s journal held after any of them, and the first operation after which the collection
/// had taken the journal's newest entry (the one that says `/p` is free, with its marks), if any.
async fn most_entries_kept() -> (usize, Option<usize>) {
    let store: Arc<dyn Store> = Arc::new(MemStore::new());
    let a = LockManager::start(Arc::clone(&store), options())
        .await
        .unwrap();
    let b = LockManager::start(Arc::clone(&store), options())
        .await
        .unwrap();
    let q = b
        .lock(Operation::new(LockMode::Point, &["/q"]).unwrap())
        .await
        .unwrap();
    let prefix = LockPath::new("/p").unwrap().journal_prefix();
    let mut most = 0;
    let mut newest_taken = None;
    let mut newest_before = None;
    for i in 0..300 {
        if i % 3 == 0 {
            let both = a
                .lock(Operation::new(LockMode::Point, &["/p", "/q"]).unwrap())
                .await;
            assert!(matches!(both, Err(LockError::Busy { .. })), "{both:?}");
        } else {
            let guard = a
                .lock(Operation::new(LockMode::Point, &["/p"]).unwrap())
                .await
                .unwrap();
            guard.release().await.unwrap();
        }
        // A release's deletes run on the manager's background task: count what is left once
        // they are done (a collection that never ran would leave every entry).
        // Every operation appends above what it read, so the newest index only grows, unless a
        // collection took the newest entry (it may have run before this read).
        let written = indices(&*store, &prefix).await.unwrap().last().copied();
        a.settle().await;
        let kept = indices(&*store, &prefix).await.unwrap();
        most = most.max(kept.len());
        let newest = kept.last().copied();
        if newest.is_none() || newest < written || newest <= newest_before {
            newest_taken.get_or_insert(i);
        }
        newest_before = newest;
    }
    q.release().await.unwrap();
    (most, newest_taken)
}

#[test]
fn a_journal_in_use_keeps_a_bounded_number_of_entries() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (most, newest_taken) = runtime.block_on(most_entries_kept());
    // A sweep at least every SWEEP_EVERY indices, plus the window's own entries.
    let bound = SWEEP_EVERY as usize + 3;
    assert!(
        most <= bound,
        "`/p`'s journal held {most} entries at one point, more than {bound}"
    );
    // Every delete is below an entry that exists (specs/lock.md §12, "Deletes").
    assert_eq!(
        newest_taken, None,
        "a collection deleted the journal's newest entry"
    );
    // The planted bug that deletes the release with its garbage is caught by the second check.
    lockstep::mutants::activate(Some(lockstep::mutants::Mutant::CollectDeletesNewest));
    let (_, planted) = runtime.block_on(most_entries_kept());
    lockstep::mutants::activate(None);
    assert!(
        planted.is_some(),
        "with `collect-deletes-newest` planted the newest entry was never found deleted"
    );
}
