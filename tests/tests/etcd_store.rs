//! The etcd backend against a real etcd (feature `etcd`; tests/src/etcd_server.rs starts one
//! unless `LOCKSTEP_ETCD_ENDPOINTS` names one): the conformance suite every backend passes
//! (16 writers × 100 rounds of create-if-absent races with exactly one winner each, list after
//! create, whole-or-nothing reads of 1 MiB entries), owner liveness by leases, and the errors a
//! user sees for a dead cluster and an entry etcd refuses.

use std::sync::Arc;
use std::time::Duration;

use lockstep::store::{EtcdOptions, EtcdStore, Key, Liveness, Store, StoreError};
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
    });
}

/// An owner is `Alive` while its lease is kept alive, `Dead` once the lease ends as a crash
/// ends it, and `Unknown` if it never registered or ended cleanly (its record is gone).
#[test]
fn owner_liveness_follows_the_lease() {
    let Some(cluster) = cluster() else { return };
    rt().block_on(async {
        let store = cluster.store(None).await.unwrap();
        assert_eq!(store.owner_liveness("never").await.unwrap(), Liveness::Unknown);
        let crashing = store.register_owner("crashing").await.unwrap().unwrap();
        let clean = store.register_owner("clean").await.unwrap().unwrap();
        assert_eq!(store.owner_liveness("crashing").await.unwrap(), Liveness::Alive);
        assert_eq!(store.owner_liveness("clean").await.unwrap(), Liveness::Alive);
        crashing.end_as_crash();
        drop(clean);
        assert_eq!(store.owner_liveness("crashing").await.unwrap(), Liveness::Dead);
        assert_eq!(store.owner_liveness("clean").await.unwrap(), Liveness::Unknown);
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
        let store = EtcdStore::connect(&endpoints, options.clone()).await.unwrap();
        let registration = store.register_owner("stops").await.unwrap().unwrap();
        (store, registration)
    });
    drop(store);
    std::mem::forget(registration);
    drop(dying);
    rt().block_on(async {
        let store = EtcdStore::connect(&endpoints, options).await.unwrap();
        assert_eq!(store.owner_liveness("stops").await.unwrap(), Liveness::Alive);
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
