//! The backend conformance suite of specs/backends.md, as the tests call it: the library's
//! `lockstep::store::contract` (which `lockstep probe` runs too) under the prefix `suite/`.

use std::sync::Arc;

use lockstep::store::{contract, Store};

pub use contract::Outcome;

const BASE: &str = "suite/";

/// Create, get, list and delete behave as the trait says, one call at a time.
pub async fn basic_semantics(store: &dyn Store) -> Outcome {
    contract::basic_semantics(store, BASE).await
}

/// `writers` tasks race to create the same key, `rounds` times: exactly one winner each round.
pub async fn create_race(store: Arc<dyn Store>, writers: usize, rounds: usize) -> Outcome {
    contract::create_race(store, BASE, writers, rounds).await
}

/// A key is listed (and readable) as soon as its create has returned.
pub async fn list_after_create(store: &dyn Store, count: usize) -> Outcome {
    contract::list_after_create(store, BASE, count).await
}

/// A batched read finds what the plain calls find.
pub async fn batched_reads_match_plain_calls(store: &dyn Store) -> Outcome {
    contract::batched_reads_match_plain_calls(store, BASE).await
}

/// Concurrent readers see each key absent or whole, never a prefix of it.
pub async fn readers_never_see_torn_entries(
    store: Arc<dyn Store>,
    entries: usize,
    bytes: usize,
) -> Outcome {
    contract::readers_never_see_torn_entries(store, BASE, entries, bytes).await
}

/// Runs every generic check of the suite on `store` (which should be empty).
pub async fn run_all(store: Arc<dyn Store>) -> Outcome {
    basic_semantics(&*store)
        .await
        .map_err(|e| format!("basic semantics: {e}"))?;
    create_race(Arc::clone(&store), 16, 100)
        .await
        .map_err(|e| format!("create race: {e}"))?;
    list_after_create(&*store, 50)
        .await
        .map_err(|e| format!("list after create: {e}"))?;
    batched_reads_match_plain_calls(&*store)
        .await
        .map_err(|e| format!("batched reads: {e}"))?;
    readers_never_see_torn_entries(Arc::clone(&store), 20, 1 << 20)
        .await
        .map_err(|e| format!("torn reads: {e}"))?;
    commits(store).await.map(|_| ())
}

/// The commit clauses ([`Store::commit_if`]): all or nothing, then 16 writers × 50 rounds.
/// `Ok(false)`: the store offers no commits.
pub async fn commits(store: Arc<dyn Store>) -> Result<bool, String> {
    if !contract::commits_are_all_or_nothing(&*store, BASE)
        .await
        .map_err(|e| format!("commits: {e}"))?
    {
        return Ok(false);
    }
    contract::commit_race(store, BASE, 16, 50)
        .await
        .map_err(|e| format!("commit race: {e}"))
}
