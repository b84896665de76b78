//! Hand-off across processes (issue 15, goal 2): a `lockstep lock` process holds `/h`; a waiter
//! in this process, on its own store handle, polls only once an hour. When the holder releases,
//! only the wake-up hint (inotify on the journal's directory, `Store::watch`) can wake the
//! waiter, so a waiter granted at all was woken by the hint. The planted bug
//! `wait-ignores-hint` (the hint made, but the waiter sleeps its poll interval) must leave the
//! waiter asleep.
//!
//! The same runs on etcd (feature `etcd`), whose hint is an etcd watch on the journal's prefix.
//!
//! The limit on the wait is a liveness bound, not a measurement: the hand-off's speed is
//! measured by `lockstep bench` ("hand-off, release to grant (FsStore)").

use std::path::Path;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lockstep::lock::{LockManager, LockMode, LockOptions, Operation};
use lockstep::store::{ChangeHint, Created, FaultyStore, FsStore, Key, Store, StoreError, Version};

#[cfg(feature = "etcd")]
#[path = "../../tests/src/etcd_server.rs"]
#[allow(dead_code)]
mod etcd_server;

/// Where the holder and the waiter meet.
enum Backend {
    /// A directory: `--root DIR` for the holder, an FsStore on `DIR/.lockstep` for the waiter.
    Fs,
    /// An etcd cluster at these endpoints, under a fresh prefix.
    #[cfg(feature = "etcd")]
    Etcd(Vec<String>),
}

/// The two tests switch a process-wide mutant on and off: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// A store that says when its user, having made a change hint, has read the journal after it:
/// from then on, a release can only reach the waiter through the hint (or an hour's poll).
struct Watched {
    inner: FaultyStore<Arc<dyn Store>>,
    /// 0: no hint yet; 1: a hint made; 2: a listing after it.
    stage: AtomicU8,
    waiting: AtomicBool,
    /// Set just before the test lets the holder release.
    released: AtomicBool,
    /// Every key the waiter created, and whether the holder had been let go by then.
    creates: Mutex<Vec<(bool, String)>>,
}

#[async_trait::async_trait]
impl Store for Watched {
    async fn get(&self, key: &Key) -> Result<Option<(Vec<u8>, Version)>, StoreError> {
        self.inner.get(key).await
    }
    async fn create(&self, key: &Key, bytes: &[u8]) -> Result<Created, StoreError> {
        let after = self.released.load(Ordering::SeqCst);
        self.creates.lock().unwrap().push((after, key.to_string()));
        self.inner.create(key, bytes).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<Key>, StoreError> {
        let keys = self.inner.list(prefix).await;
        if self.stage.load(Ordering::SeqCst) == 1 {
            self.stage.store(2, Ordering::SeqCst);
            self.waiting.store(true, Ordering::SeqCst);
        }
        keys
    }
    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        self.inner.delete(key).await
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
    async fn watch(&self, prefix: &str) -> Option<Box<dyn ChangeHint>> {
        // Asked for, whether or not the store below gives one.
        self.stage.store(1, Ordering::SeqCst);
        self.inner.watch(prefix).await
    }
}

fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A `lockstep lock` process on `store` (its store arguments) holding POINT `/h` until the file
/// `go` appears in `dir`.
fn holder(dir: &Path, store: &[String]) -> Child {
    let (held, go) = (dir.join("held"), dir.join("go"));
    let script = format!(
        "touch '{}'; while [ ! -e '{}' ]; do sleep 0.01; done",
        held.display(),
        go.display()
    );
    let child = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .arg("lock")
        .args(store)
        .args(["--mode", "point", "/h", "--", "sh", "-c", &script])
        .spawn()
        .unwrap();
    wait_for("the holder to hold /h", || held.exists());
    child
}

/// Whether the waiter was granted within `limit` of the holder's release. With `hints` false
/// the store gives none, and the waiter polls as usual (from 20 ms up to 500 ms).
fn hand_off_within(limit: Duration, hints: bool, backend: &Backend) -> bool {
    hand_off(limit, hints, backend).0
}

/// As [`hand_off_within`], with every key the waiter created, each marked `true` if it was
/// created after the holder was let go.
fn hand_off(limit: Duration, hints: bool, backend: &Backend) -> (bool, Vec<(bool, String)>) {
    let dir = tempfile::tempdir().unwrap();
    let args: Vec<String> = match backend {
        Backend::Fs => vec!["--root".into(), dir.path().display().to_string()],
        #[cfg(feature = "etcd")]
        Backend::Etcd(endpoints) => {
            let prefix = etcd_server::fresh_prefix();
            vec![
                "--store".into(),
                format!("etcd:{}?prefix={prefix}", endpoints.join(",")),
            ]
        }
    };
    let mut holder = holder(dir.path(), &args);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let granted = rt.block_on(async {
        // The waiter's store: the one the holder names, opened here.
        let opened: Arc<dyn Store> = match backend {
            Backend::Fs => {
                Arc::new(FsStore::open(dir.path().join(lockstep::store::FS_STATE_DIR)).unwrap())
            }
            #[cfg(feature = "etcd")]
            Backend::Etcd(_) => lockstep::store::StoreSpec::parse(&args[1])
                .unwrap()
                .open(false)
                .await
                .unwrap()
                .expect("an etcd store is there"),
        };
        let inner = FaultyStore::new(opened);
        let hour = Duration::from_secs(3600);
        let mut options = LockOptions {
            timeout: None,
            cleanup_every: None,
            ..LockOptions::default()
        };
        if hints {
            (options.poll_min, options.poll_max) = (hour, hour);
        } else {
            inner.drop_hints();
        }
        let store = Arc::new(Watched {
            inner,
            stage: AtomicU8::new(0),
            waiting: AtomicBool::new(false),
            released: AtomicBool::new(false),
            creates: Mutex::default(),
        });
        let recorded = Arc::clone(&store);
        let manager = LockManager::start(Arc::clone(&store) as Arc<dyn Store>, options)
            .await
            .unwrap();
        let waiter = tokio::spawn(async move {
            let operation = Operation::new(LockMode::Point, &["/h"]).unwrap();
            let guard = manager.lock(operation).await.unwrap();
            guard.release().await.unwrap();
        });
        let seen = Arc::clone(&store);
        tokio::task::spawn_blocking(move || {
            wait_for("the waiter to wait", || seen.waiting.load(Ordering::SeqCst))
        })
        .await
        .unwrap();
        recorded.released.store(true, Ordering::SeqCst);
        std::fs::write(dir.path().join("go"), b"").unwrap();
        // Granted, or still waiting at the limit; a waiter that failed fails the test (it must
        // not pass the planted bug's test for the wrong reason).
        let granted = match tokio::time::timeout(limit, waiter).await {
            Ok(joined) => {
                joined.expect("the waiter failed");
                true
            }
            Err(_) => false,
        };
        let creates = recorded.creates.lock().unwrap().clone();
        (granted, creates)
    });
    // A waiter left asleep (the planted bug) sits in a blocking poll for an hour: do not wait
    // for it.
    rt.shutdown_background();
    assert!(holder.wait().unwrap().success(), "the holder failed");
    granted
}

/// A waiter claims its ticket before it sleeps (specs/lock.md §4, "A waiter's ticket"): after
/// the release, its first create is its `acquire`, and it claims no ticket until it is granted,
/// so a hand-off waits for one durable create on the waiter's side, not two.
fn assert_one_create_after_release(creates: &[(bool, String)]) {
    let before: Vec<&String> = creates
        .iter()
        .filter(|(after, _)| !after)
        .map(|(_, k)| k)
        .collect();
    let after: Vec<&String> = creates
        .iter()
        .filter(|(after, _)| *after)
        .map(|(_, k)| k)
        .collect();
    assert!(
        before.iter().any(|k| k.starts_with("tickets/")),
        "the waiter claimed no ticket while it waited: before {before:?}, after {after:?}"
    );
    assert!(
        after.first().is_some_and(|k| k.starts_with("locks/h/")),
        "after the release the waiter's first create was not its acquire: {after:?}"
    );
    assert!(
        !after.iter().any(|k| k.starts_with("tickets/")),
        "the waiter claimed a ticket after the release: {after:?}"
    );
}

#[test]
fn a_release_in_another_process_wakes_a_waiter_that_would_poll_in_an_hour() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (granted, creates) = hand_off(Duration::from_secs(60), true, &Backend::Fs);
    assert!(granted, "the waiter was not woken by the holder's release");
    assert_one_create_after_release(&creates);
}

/// The world where every hint is lost: the waiter is granted by its polls, as before hints.
#[test]
fn with_every_hint_lost_a_waiter_is_granted_by_polling() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    assert!(
        hand_off_within(Duration::from_secs(60), false, &Backend::Fs),
        "the waiter was not granted by polling"
    );
}

#[cfg(feature = "mutants")]
/// Tickets a waiter claims while `/d` is held by another manager, with this `lock_timeout`: its
/// acquisition fails busy, having waited (a deadline still ahead) or not (`Duration::ZERO`, that
/// is `lock_timeout 0`, or a deadline already passed at the pre-check).
fn tickets_claimed_when_busy(timeout: Duration) -> usize {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let store: Arc<dyn Store> = Arc::new(lockstep::store::MemStore::new());
            let options = |timeout| LockOptions {
                timeout: Some(timeout),
                cleanup_every: None,
                ..LockOptions::default()
            };
            let holder = LockManager::start(Arc::clone(&store), options(Duration::ZERO))
                .await
                .unwrap();
            let waiter = LockManager::start(Arc::clone(&store), options(timeout))
                .await
                .unwrap();
            let d = || Operation::new(LockMode::Point, &["/d"]).unwrap();
            let _held = holder.lock(d()).await.unwrap();
            let before = store.list("tickets/").await.unwrap().len();
            let busy = waiter.lock(d()).await;
            assert!(
                matches!(busy, Err(lockstep::lock::LockError::Busy { .. })),
                "{busy:?}"
            );
            store.list("tickets/").await.unwrap().len() - before
        })
}

/// A waiter claims its ticket before it sleeps, but not for a wait that is over before it
/// begins: a deadline already passed at the pre-check (a `lock_timeout` of 1 ns) claims nothing,
/// as `lock_timeout 0` claims nothing. A deadline still ahead (50 ms) claims exactly one: the
/// count sees claims.
#[test]
fn a_wait_whose_deadline_has_passed_claims_no_ticket() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    assert_eq!(tickets_claimed_when_busy(Duration::from_millis(50)), 1);
    assert_eq!(tickets_claimed_when_busy(Duration::from_nanos(1)), 0);
    assert_eq!(tickets_claimed_when_busy(Duration::ZERO), 0);
}

#[test]
fn the_deadline_test_catches_a_claim_past_the_deadline() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    lockstep::mutants::activate(Some(lockstep::mutants::Mutant::ClaimPastDeadline));
    let claimed = tickets_claimed_when_busy(Duration::from_nanos(1));
    lockstep::mutants::activate(None);
    assert_eq!(
        claimed, 1,
        "the planted bug claimed no ticket past its deadline"
    );
}

#[test]
fn the_hand_off_test_catches_a_waiter_that_ignores_the_hint() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    lockstep::mutants::activate(Some(lockstep::mutants::Mutant::WaitIgnoresHint));
    let granted = hand_off_within(Duration::from_secs(5), true, &Backend::Fs);
    lockstep::mutants::activate(None);
    assert!(!granted, "a waiter that ignores its hint was still woken");
}

/// On etcd: the holder's release wakes the waiter through an etcd watch.
#[cfg(feature = "etcd")]
#[test]
fn on_etcd_a_release_in_another_process_wakes_a_waiter_that_would_poll_in_an_hour() {
    let Some(cluster) = etcd_server::shared_or_skip() else {
        return;
    };
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let backend = Backend::Etcd(cluster.endpoints());
    let (granted, creates) = hand_off(Duration::from_secs(60), true, &backend);
    assert!(granted, "the waiter was not woken by the holder's release");
    assert_one_create_after_release(&creates);
    assert!(
        hand_off_within(Duration::from_secs(60), false, &backend),
        "with every hint lost, the waiter was not granted by polling"
    );
}
