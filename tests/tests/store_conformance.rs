//! Every backend runs the same conformance suite (specs/backends.md); the broken backends must
//! fail it, or the suite proves nothing.

use std::sync::Arc;

use lockstep::store::{Durability, FsStore, MemStore, Store};
use lockstep_tests::broken::{Broken, Flaw};
use lockstep_tests::conformance;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_conforms() {
    conformance::run_all(Arc::new(MemStore::new()))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fs_store_conforms_durable() {
    let dir = tempfile::tempdir().unwrap();
    conformance::run_all(Arc::new(FsStore::open(dir.path()).unwrap()))
        .await
        .unwrap();
}

/// The same suite without fsync: atomicity and exclusivity do not depend on durability.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fs_store_conforms_volatile() {
    let dir = tempfile::tempdir().unwrap();
    conformance::run_all(Arc::new(
        FsStore::open_with(dir.path(), Durability::Volatile).unwrap(),
    ))
    .await
    .unwrap();
}

/// A MemStore made to offer commits passes the commit clauses (and says it offers them); a
/// plain one does not offer them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_with_commits_conforms() {
    conformance::run_all(Arc::new(MemStore::with_commits()))
        .await
        .unwrap();
    assert!(conformance::commits(Arc::new(MemStore::with_commits()))
        .await
        .unwrap());
    assert!(!conformance::commits(Arc::new(MemStore::new()))
        .await
        .unwrap());
}

/// A store whose commits check, then write, fails the commit race; its reused versions fail
/// the all-or-nothing clause.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn check_then_write_commits_fail_the_commit_clauses() {
    let error = conformance::commits(Arc::new(Broken::new(Flaw::CheckThenWrite)))
        .await
        .expect_err("versions are reused");
    assert!(error.contains("has its old version"), "{error}");
    let error = lockstep::store::contract::commit_race(
        Arc::new(Broken::new(Flaw::CheckThenWrite)),
        "suite/",
        16,
        50,
    )
    .await
    .expect_err("the race must expose check-then-write commits");
    assert!(error.contains("writers committed"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn check_then_write_backend_fails_the_race() {
    let store: Arc<dyn Store> = Arc::new(Broken::new(Flaw::CheckThenWrite));
    conformance::basic_semantics(&*store)
        .await
        .expect("sequentially it looks fine");
    let error = conformance::create_race(store, 16, 100)
        .await
        .expect_err("the race must expose check-then-write");
    assert!(error.contains("writers won"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn torn_write_backend_fails_the_reader_check() {
    let store: Arc<dyn Store> = Arc::new(Broken::new(Flaw::TornWrites));
    let error = conformance::readers_never_see_torn_entries(store, 20, 4096)
        .await
        .expect_err("readers must see a torn entry");
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
            None => assert!(
                matches!(
                    step,
                    lockstep::store::CreateStep::DirsMade
                        | lockstep::store::CreateStep::TempCreated
                        | lockstep::store::CreateStep::TempWritten
                        | lockstep::store::CreateStep::TempSynced
                ),
                "{step:?}: absent"
            ),
            Some((bytes, _)) => assert_eq!(bytes, payload, "{step:?}: whole"),
        }
        let again = reopened.create(&key, &payload).await.unwrap();
        let visible_before = !matches!(
            step,
            lockstep::store::CreateStep::DirsMade
                | lockstep::store::CreateStep::TempCreated
                | lockstep::store::CreateStep::TempWritten
                | lockstep::store::CreateStep::TempSynced
        );
        assert_eq!(again == Created::AlreadyExists, visible_before, "{step:?}");
    }
}

/// An empty entry (a ticket) is created with `O_EXCL` at its own name, with no temporary file:
/// a crash before that (its directories made) leaves it absent, a crash after the name's
/// creation leaves it there, whole (empty). It has no temporary-file steps, so a crash planned
/// at one of those never comes and the create succeeds.
#[tokio::test]
async fn fs_store_crash_during_an_empty_create_leaves_it_whole() {
    use lockstep::store::{CreateStep, Created, Key};
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::open(dir.path()).unwrap();
    for (n, step) in CreateStep::ALL.iter().enumerate() {
        let key = Key::new(format!("empty/{n}")).unwrap();
        let result = store.crashing_after(*step).create(&key, b"").await;
        let reopened = FsStore::open(dir.path()).unwrap();
        let there = reopened.get(&key).await.unwrap();
        match step {
            CreateStep::DirsMade => {
                assert!(result.is_err(), "{step:?}: the crash is reported");
                assert!(there.is_none(), "{step:?}: absent");
                let again = reopened.create(&key, b"").await.unwrap();
                assert!(again.is_created(), "{step:?}: a later create works");
                continue;
            }
            CreateStep::Linked => assert!(result.is_err(), "{step:?}: the crash is reported"),
            _ => assert!(
                matches!(result, Ok(Created::Created(_))),
                "{step:?}: no such step in an empty create: {result:?}"
            ),
        }
        assert_eq!(there.map(|(b, _)| b.len()), Some(0), "{step:?}: whole");
        let again = reopened.create(&key, b"").await.unwrap();
        assert_eq!(again, Created::AlreadyExists, "{step:?}");
    }
}

/// A process that crashed between making an entry's directories and syncing them left names a
/// power loss could still take. The next process to create there syncs every directory on the
/// way, although it made none of them (before, `make_parent` returned early when a directory
/// existed, and such a directory was never synced).
#[tokio::test]
async fn fs_store_syncs_directories_left_unsynced_by_a_crash() {
    use lockstep::store::{CreateStep, Key};
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::open(dir.path()).unwrap();
    let key = Key::new("locks/a/b/~00000000000000000000").unwrap();
    assert!(store
        .crashing_after(CreateStep::DirsMade)
        .create(&key, b"x")
        .await
        .is_err());
    assert!(
        dir.path().join("data/locks/a/b").is_dir(),
        "the crashed create made the directories"
    );

    let next = FsStore::open(dir.path()).unwrap().recording_syncs();
    assert!(next.create(&key, b"x").await.unwrap().is_created());
    let synced = next.synced_directories();
    // Each name is durable once its parent is synced: data/ holds `locks`, and so on down.
    for parent in ["data", "data/locks", "data/locks/a", "data/locks/a/b"] {
        assert!(
            synced.iter().any(|d| d == parent),
            "{parent} not synced: {synced:?}"
        );
    }
    // Once per store, not per create.
    let sibling = Key::new("locks/a/b/~00000000000000000001").unwrap();
    assert!(next.create(&sibling, b"y").await.unwrap().is_created());
    let again = next.synced_directories();
    assert_eq!(
        again.len(),
        synced.len() + 1,
        "only the entry's own directory again: {again:?}"
    );
}

/// An NFS client that lost the reply to its `link` sends it again and gets `EEXIST` for its own
/// entry. Reading that as "someone else created it" would be an ambiguous outcome turned into a
/// wrong one: the create landed. The store checks whether the name is its own file.
#[tokio::test]
async fn fs_store_recognises_its_own_replayed_link() {
    use lockstep::store::{Created, Key};
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::open(dir.path()).unwrap();
    let replaying = store.replaying_links();
    let key = Key::new("locks/a/~00000000000000000000").unwrap();
    assert!(
        matches!(
            replaying.create(&key, b"mine").await.unwrap(),
            Created::Created(_)
        ),
        "our replayed link is our create"
    );
    // Someone else's entry is still someone else's.
    assert_eq!(
        replaying.create(&key, b"theirs").await.unwrap(),
        Created::AlreadyExists
    );
    assert_eq!(store.get(&key).await.unwrap().unwrap().0, b"mine");
}

/// Symlinks and other foreign objects are reported, never followed, never written through.
#[tokio::test]
async fn fs_store_never_follows_a_symlink() {
    use lockstep::store::{Key, StoreError};
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let store = FsStore::open(dir.path()).unwrap();
    std::fs::create_dir_all(dir.path().join("data/locks")).unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("data/locks/s")).unwrap();
    std::fs::write(outside.path().join("~00000000000000000000"), b"outside").unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("~00000000000000000000"),
        dir.path().join("data/locks/link"),
    )
    .unwrap();
    let through = Key::new("locks/s/~00000000000000000000").unwrap();
    assert!(matches!(
        store.get(&through).await,
        Err(StoreError::Foreign {
            what: "a symbolic link",
            ..
        })
    ));
    assert!(matches!(
        store.create(&through, b"x").await,
        Err(StoreError::Foreign { .. })
    ));
    let link = Key::new("locks/link").unwrap();
    assert!(matches!(
        store.get(&link).await,
        Err(StoreError::Foreign {
            what: "a symbolic link",
            ..
        })
    ));
    assert!(matches!(
        store.delete(&link).await,
        Err(StoreError::Foreign { .. })
    ));
    // Listed as names (so the layer above can fail closed on them), not entered.
    let listed: Vec<String> = store
        .list("locks/")
        .await
        .unwrap()
        .iter()
        .map(|k| k.to_string())
        .collect();
    assert_eq!(listed, ["locks/link", "locks/s"]);
    assert_eq!(
        std::fs::read(outside.path().join("~00000000000000000000")).unwrap(),
        b"outside"
    );
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 1);
}
