//! The etcd backend against a real etcd (feature `etcd`; tests/src/etcd_server.rs starts one
//! unless `LOCKSTEP_ETCD_ENDPOINTS` names one): the conformance suite every backend passes
//! (16 writers × 100 rounds of create-if-absent races with exactly one winner each, list after
//! create, whole-or-nothing reads of 1 MiB entries), owner liveness by leases, and the errors a
//! user sees for a dead cluster and an entry etcd refuses.

use std::sync::Arc;
use std::time::Duration;

use lockstep::store::{EtcdOptions, EtcdStore, Key, Liveness, Read, Store, StoreError};
use lockstep_tests::conformance;
use lockstep_tests::etcd_server::EtcdCluster;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

fn cluster() -> Option<EtcdCluster> {
    lockstep_tests::etcd_server::shared_or_skip()
}

#[test]
fn etcd_store_conforms() {
    let Some(cluster) = cluster() else { return };
    rt().block_on(async {
        let store = cluster.store(None).await.unwrap();
        conformance::run_all(Arc::new(store)).await.unwrap();
        // etcd offers commits (one Txn), so the commit clauses above did run.
        let fresh = cluster.store(None).await.unwrap();
        assert!(conformance::commits(Arc::new(fresh)).await.unwrap());
    });
}

/// An owner is `Alive` while its lease is kept alive, `Dead` once the lease ends as a crash
/// ends it, and `Unknown` if it never registered or ended cleanly (its record is gone).
#[test]
fn owner_liveness_follows_the_lease() {
    let Some(cluster) = cluster() else { return };
    rt().block_on(async {
        let store = cluster.store(None).await.unwrap();
        assert_eq!(
            store.owner_liveness("never").await.unwrap(),
            Liveness::Unknown
        );
        let crashing = store.register_owner("crashing").await.unwrap().unwrap();
        let clean = store.register_owner("clean").await.unwrap().unwrap();
        assert_eq!(
            store.owner_liveness("crashing").await.unwrap(),
            Liveness::Alive
        );
        assert_eq!(
            store.owner_liveness("clean").await.unwrap(),
            Liveness::Alive
        );
        crashing.end_as_crash();
        drop(clean);
        assert_eq!(
            store.owner_liveness("crashing").await.unwrap(),
            Liveness::Dead
        );
        assert_eq!(
            store.owner_liveness("clean").await.unwrap(),
            Liveness::Unknown
        );
    });
}

/// A lease that is not renewed expires after its TTL, and the owner is then `Dead` to the
/// cluster: the proof of death of a process that stopped (here: its keep-alive task is gone
/// because its runtime, the "process", was shut down without ending the registration).
#[test]
fn an_owner_that_stops_renewing_is_dead_after_its_ttl() {
    let Some(cluster) = cluster() else { return };
    let options = EtcdOptions {
        prefix: lockstep_tests::etcd_server::fresh_prefix(),
        lease_ttl: Duration::from_secs(2),
        ..EtcdOptions::default()
    };
    let endpoints = cluster.endpoints();
    // The "process": a runtime of its own, dropped with its registration leaked (no clean end,
    // no crash hook: it simply stops renewing, as a killed process does).
    let dying = rt();
    let (store, registration) = dying.block_on(async {
        let store = EtcdStore::connect(&endpoints, options.clone())
            .await
            .unwrap();
        let registration = store.register_owner("stops").await.unwrap().unwrap();
        (store, registration)
    });
    drop(store);
    std::mem::forget(registration);
    drop(dying);
    rt().block_on(async {
        let store = EtcdStore::connect(&endpoints, options).await.unwrap();
        assert_eq!(
            store.owner_liveness("stops").await.unwrap(),
            Liveness::Alive
        );
        let started = std::time::Instant::now();
        while store.owner_liveness("stops").await.unwrap() != Liveness::Dead {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the lease never expired"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
}

/// No cluster at the address: a clear error naming it, within the connect timeout.
#[test]
fn a_dead_cluster_is_a_clear_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let endpoint = format!("http://127.0.0.1:{port}");
    let error = rt()
        .block_on(EtcdStore::connect(
            &[endpoint.clone()],
            EtcdOptions {
                connect_timeout: Duration::from_secs(1),
                request_timeout: Duration::from_secs(1),
                ..EtcdOptions::default()
            },
        ))
        .expect_err("nothing listens there");
    assert!(matches!(error, StoreError::Unavailable(_)), "{error}");
    assert!(error.to_string().contains(&endpoint), "{error}");
}

/// An entry larger than etcd takes (its request limit, 1.5 MiB by default) is refused with an
/// error that says so, and nothing is created.
#[test]
fn an_entry_etcd_refuses_is_a_clear_error() {
    let Some(cluster) = cluster() else { return };
    rt().block_on(async {
        let store = cluster.store(None).await.unwrap();
        let key = Key::new("big").unwrap();
        let error = store
            .create(&key, &vec![7u8; 4 << 20])
            .await
            .expect_err("etcd refuses 4 MiB");
        assert!(matches!(error, StoreError::TooLarge { .. }), "{error}");
        assert!(store.get(&key).await.unwrap().is_none());
    });
}

/// A lease revoked behind a running process's back (what a stalled etcd leader did to every
/// lease, etcd #15247): the cluster proves the process dead, its registration reports itself
/// lost, and its lock manager refuses new locks instead of taking locks that would be free to
/// anyone at once.
#[test]
fn a_lease_revoked_behind_a_running_process_is_reported_and_no_lock_is_taken() {
    let Some(cluster) = cluster() else { return };
    rt().block_on(async {
        let prefix = lockstep_tests::etcd_server::fresh_prefix();
        let store = EtcdStore::connect(
            &cluster.endpoints(),
            EtcdOptions {
                prefix: prefix.clone(),
                lease_ttl: Duration::from_secs(2),
                ..EtcdOptions::default()
            },
        )
        .await
        .unwrap();
        let manager = lockstep::lock::LockManager::start(
            store.clone(),
            lockstep::lock::LockOptions::default(),
        )
        .await
        .unwrap();
        let point =
            || lockstep::lock::Operation::new(lockstep::lock::LockMode::Point, &["/a"]).unwrap();
        manager
            .lock(point())
            .await
            .unwrap()
            .release()
            .await
            .unwrap();
        // The cluster revokes every lease under our prefix, as a stalled leader did.
        let mut client = etcd_client::Client::connect(cluster.endpoints(), None)
            .await
            .unwrap();
        let alive = client
            .get(
                format!("{prefix}owners/alive/"),
                Some(etcd_client::GetOptions::new().with_prefix()),
            )
            .await
            .unwrap();
        assert_eq!(alive.kvs().len(), 1, "one registered owner");
        let lease: i64 = alive.kvs()[0].value_str().unwrap().parse().unwrap();
        client.lease_revoke(lease).await.unwrap();
        let owner = alive.kvs()[0]
            .key_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_owned();
        assert_eq!(store.owner_liveness(&owner).await.unwrap(), Liveness::Dead);
        let started = std::time::Instant::now();
        while !manager.registration_lost() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the loss was never noticed"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let refused = manager
            .lock(point())
            .await
            .expect_err("no lock for a dead owner");
        assert!(
            matches!(refused, lockstep::lock::LockError::RegistrationLost),
            "{refused}"
        );
        manager.shutdown().await;
    });
}

/// Messages larger together than etcd's entry limit: each commit archives the oldest that fit
/// (here one 900 KiB message each), the rest stay live for the next; nothing is refused, lost
/// or left pending.
#[test]
fn a_session_larger_than_an_etcd_entry_is_committed_in_parts() {
    let Some(cluster) = cluster() else { return };
    rt().block_on(async {
        let store = cluster.store(None).await.unwrap();
        let sessions =
            lockstep::redo::Sessions::open(store.clone(), lockstep::redo::RedoOptions::default())
                .await
                .unwrap();
        let big = "x".repeat(900 << 10);
        let ids = [
            sessions.add("s", &big).await.unwrap(),
            sessions.add("s", &big).await.unwrap(),
            sessions.add("s", &big).await.unwrap(),
        ];
        let mut archived = Vec::new();
        for _ in 0..3 {
            let committed = sessions.commit("s").await.unwrap();
            assert_eq!(
                committed.messages.len(),
                1,
                "one 900 KiB message per archive"
            );
            archived.extend(committed.messages);
        }
        assert_eq!(archived, ids, "every message archived once, oldest first");
        let nothing = sessions.commit("s").await.unwrap();
        assert!(nothing.archive.is_none());
        sessions.shutdown().await;
        let view = lockstep::redo::inspect(&store).await.unwrap();
        assert!(view.session("s").unwrap().pending.is_empty());
    });
}

/// A listing in pages of two keys while other keys are created between its pages: every key
/// that existed when it started, once each, in byte order, and of the keys created meanwhile
/// exactly those created before its first page (one snapshot).
#[test]
fn a_paged_listing_is_one_snapshot() {
    let Some(cluster) = cluster() else { return };
    rt().block_on(async {
        let options = EtcdOptions {
            prefix: lockstep_tests::etcd_server::fresh_prefix(),
            list_page: 2,
            ..EtcdOptions::default()
        };
        let store = EtcdStore::connect(&cluster.endpoints(), options)
            .await
            .unwrap();
        let keys: Vec<Key> = (0..25)
            .map(|i| Key::new(format!("p/{i:03}")).unwrap())
            .collect();
        for key in &keys {
            let _ = store.create(key, b"x").await.unwrap();
        }
        // Churn beside the listing: new keys among the listed ones, and deletes.
        let churn = {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..50 {
                    let _ = store
                        .create(&Key::new(format!("p/{i:03}a")).unwrap(), b"y")
                        .await;
                    tokio::task::yield_now().await;
                }
            })
        };
        let listed = store.list("p/").await.unwrap();
        churn.await.unwrap();
        let originals: Vec<&Key> = listed
            .iter()
            .filter(|k| !k.as_str().ends_with('a'))
            .collect();
        assert_eq!(
            originals,
            keys.iter().collect::<Vec<_>>(),
            "each original once, in order"
        );
        let mut sorted = listed.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, listed, "byte order, no repeats");
        // One snapshot: the churn keys it saw are the first k created (pages read at different
        // revisions could see a later key on a later page but miss an earlier one on an earlier
        // page).
        let seen: Vec<usize> = listed
            .iter()
            .filter_map(|k| k.as_str().strip_suffix('a'))
            .map(|k| k.trim_start_matches("p/").parse().unwrap())
            .collect();
        assert_eq!(
            seen,
            (0..seen.len()).collect::<Vec<_>>(),
            "a snapshot sees a prefix of the churn"
        );
        assert!(
            store.list("p/").await.unwrap().len() >= 75,
            "the churn landed"
        );
        // A batched read of a range longer than a page falls back to the plain calls: every
        // key, and the last one's bytes.
        fn any(_: &str, _: &str) -> bool {
            true
        }
        let found = store
            .read_many(&[Read::ListThenGetLast {
                prefix: "p/".into(),
                pick: any,
            }])
            .await
            .unwrap();
        let all = store.list("p/").await.unwrap();
        assert_eq!(found[0].keys, all, "a paged batch lists every key");
        let last = found[0].last.as_ref().expect("a last key");
        assert_eq!(
            (&last.0, last.1.as_ref().map(|(b, _)| b.as_slice())),
            (all.last().unwrap(), Some(&b"y"[..]))
        );
    });
}
