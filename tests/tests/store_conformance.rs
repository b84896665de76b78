//! Every backend runs the same conformance suite (specs/backends.md); the broken backends must
//! fail it, or the suite proves nothing.

use std::sync::Arc;

use lockstep::store::{Durability, FsStore, MemStore, Store};
use lockstep_tests::broken::{Broken, Flaw};
use lockstep_tests::conformance;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_conforms() {
    conformance::run_all(Arc::new(MemStore::new())).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fs_store_conforms_durable() {
    let dir = tempfile::tempdir().unwrap();
    conformance::run_all(Arc::new(FsStore::open(dir.path()).unwrap())).await.unwrap();
}

/// The same suite without fsync: atomicity and exclusivity do not depend on durability.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fs_store_conforms_volatile() {
    let dir = tempfile::tempdir().unwrap();
    conformance::run_all(Arc::new(FsStore::open_with(dir.path(), Durability::Volatile).unwrap())).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn check_then_write_backend_fails_the_race() {
    let store: Arc<dyn Store> = Arc::new(Broken::new(Flaw::CheckThenWrite));
    conformance::basic_semantics(&*store).await.expect("sequentially it looks fine");
    let error = conformance::create_race(store, 16, 100).await.expect_err("the race must expose check-then-write");
    assert!(error.contains("writers won"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn torn_write_backend_fails_the_reader_check() {
    let store: Arc<dyn Store> = Arc::new(Broken::new(Flaw::TornWrites));
    let error = conformance::readers_never_see_torn_entries(store, 20, 4096).await.expect_err("readers must see a torn entry");
    assert!(error.contains("a reader saw"), "{error}");
}

/// A crash after each step of an FsStore create leaves the key absent or whole, never torn,
/// and a later create of the key works.
#[tokio::test]
async fn fs_store_crash_after_each_create_step_leaves_absent_or_whole() {
    use lockstep::store::{Created, Key};
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::open(dir.path()).unwrap();
    let payload = vec![7u8; 64 * 1024];
    for (n, step) in lockstep::store::CreateStep::ALL.iter().enumerate() {
        let key = Key::new(format!("crash/{n}")).unwrap();
        let crashing = store.crashing_after(*step);
        let result = crashing.create(&key, &payload).await;
        assert!(result.is_err(), "{step:?}: the crash is reported");
        // A fresh store on the same directory: what a restarted process sees.
        let reopened = FsStore::open(dir.path()).unwrap();
        match reopened.get(&key).await.unwrap() {
            None => assert!(matches!(step, lockstep::store::CreateStep::TempCreated | lockstep::store::CreateStep::TempWritten | lockstep::store::CreateStep::TempSynced), "{step:?}: absent"),
            Some((bytes, _)) => assert_eq!(bytes, payload, "{step:?}: whole"),
        }
        let again = reopened.create(&key, &payload).await.unwrap();
        let visible_before = !matches!(step, lockstep::store::CreateStep::TempCreated | lockstep::store::CreateStep::TempWritten | lockstep::store::CreateStep::TempSynced);
        assert_eq!(again == Created::AlreadyExists, visible_before, "{step:?}");
    }
}
