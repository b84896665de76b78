//! The etcd cases (`lockstep bench --store etcd:URL`, feature `etcd`), each beside the floor
//! measured in the same run on the same cluster (one create-if-absent Txn of `EtcdStore`):
//! etcd's own Lock + Unlock (the v3lock service, through etcd-client) as the baseline of the
//! path locks' point acquire + release, the two measured in turn, alone and again while another
//! client locks another path; a merge of 100 child commits; a redo commit of one message. Every
//! case works under a prefix of its own, deleted afterwards.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{failed, floor_create, measurements, summarise, BenchError, Measurement};
use crate::merge::{Lake, MergeOptions};
use crate::redo::{RedoOptions, Sessions};
use crate::store::{EtcdOptions, EtcdStore, Store};

/// etcd's own lock service (Lock: a lease-bound key, waiting for older keys of the same name;
/// Unlock), with a lease granted once, as a client of it holds one for its session; beside it,
/// the path locks' point acquire + release of one warm manager on `store`. The two alternate,
/// one cycle each in turn (which goes first alternating too), so that both meet the same
/// moments of a cluster whose latency drifts: measured one after the other, the ratio moved
/// with the drift (1.15-1.61 in four runs of one build). Returns (etcd's, ours).
///
/// With `neighbour`, a second client (a lock manager of its own on that store) takes and
/// releases a lock on another path back to back meanwhile: every cycle of ours then finds that
/// someone claimed a ticket since its last one, as in a fleet of clients.
pub async fn lock_beside_v3lock(
    endpoints: &[String],
    store: Arc<dyn Store>,
    neighbour: Option<Arc<dyn Store>>,
    iterations: usize,
) -> Result<(Vec<Duration>, Vec<Duration>), BenchError> {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let background = match neighbour {
        Some(neighbour) => {
            let other = crate::lock::LockManager::start(neighbour, super::options())
                .await
                .map_err(|e| failed("start the neighbour")(&e))?;
            let stop = Arc::clone(&stop);
            Some(tokio::spawn(async move {
                let operation =
                    crate::lock::Operation::new(crate::lock::LockMode::Point, &["/bench/other"])
                        .expect("valid");
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if let Ok(guard) = other.lock(operation.clone()).await {
                        let _ = guard.release().await;
                    }
                }
                other.shutdown().await;
            }))
        }
        None => None,
    };
    let measured = alternate(endpoints, store, iterations).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(background) = background {
        let _ = background.await;
    }
    measured
}

async fn alternate(
    endpoints: &[String],
    store: Arc<dyn Store>,
    iterations: usize,
) -> Result<(Vec<Duration>, Vec<Duration>), BenchError> {
    let mut client = etcd_client::Client::connect(endpoints, None)
        .await
        .map_err(|e| failed("connect")(&e))?;
    let lease = client
        .lease_grant(60, None)
        .await
        .map_err(|e| failed("lease")(&e))?
        .id();
    let name = format!("lockstep-bench/{:x}/v3lock", rand::random::<u64>());
    let v3lock = || {
        let (mut client, name) = (client.clone(), name.clone());
        async move {
            let started = Instant::now();
            let locked = client
                .lock(
                    name.as_bytes(),
                    Some(etcd_client::LockOptions::new().with_lease(lease)),
                )
                .await
                .map_err(|e| failed("v3lock Lock")(&e))?;
            client
                .unlock(locked.key())
                .await
                .map_err(|e| failed("v3lock Unlock")(&e))?;
            Ok::<Duration, BenchError>(started.elapsed())
        }
    };
    let manager = crate::lock::LockManager::start(store, super::options())
        .await
        .map_err(|e| failed("start")(&e))?;
    let operation = crate::lock::Operation::new(crate::lock::LockMode::Point, &["/bench/point"])
        .expect("valid");
    let ours = || async {
        let started = Instant::now();
        let guard = manager
            .lock(operation.clone())
            .await
            .map_err(|e| failed("lock")(&e))?;
        guard.release().await.map_err(|e| failed("release")(&e))?;
        Ok::<Duration, BenchError>(started.elapsed())
    };
    // Warm-up: connections, the manager's registration and first (step-by-step) cycles.
    for _ in 0..iterations / 10 + 1 {
        v3lock().await?;
        ours().await?;
    }
    let (mut theirs, mut mine) = (Vec::new(), Vec::new());
    for i in 0..iterations {
        if i % 2 == 0 {
            theirs.push(v3lock().await?);
            mine.push(ours().await?);
        } else {
            mine.push(ours().await?);
            theirs.push(v3lock().await?);
        }
    }
    let _ = client.lease_revoke(lease).await;
    manager.shutdown().await;
    Ok((theirs, mine))
}

/// A store under a fresh prefix of its own.
async fn store(
    endpoints: &[String],
    prefix: &str,
    case: &str,
) -> Result<Arc<dyn Store>, BenchError> {
    let options = EtcdOptions {
        prefix: format!("{prefix}{case}/"),
        ..EtcdOptions::default()
    };
    Ok(Arc::new(
        EtcdStore::connect(endpoints, options)
            .await
            .map_err(|e| failed("connect")(&e))?,
    ))
}

/// One merge of `size` new child commits (committed before each merge, untimed).
async fn merge_of(
    store: Arc<dyn Store>,
    size: usize,
    iterations: usize,
) -> Result<Vec<Duration>, BenchError> {
    let lake = Lake::open(store).await.map_err(|e| failed("lake")(&e))?;
    lake.create_branch("main", None)
        .await
        .map_err(|e| failed("branch")(&e))?;
    lake.create_branch("live", Some("main"))
        .await
        .map_err(|e| failed("branch")(&e))?;
    let live = lake
        .branch("live")
        .await
        .map_err(|e| failed("branch")(&e))?;
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        for _ in 0..size {
            live.commit(b"{\"x\":1}")
                .await
                .map_err(|e| failed("commit")(&e))?;
        }
        let started = Instant::now();
        lake.merge("live", MergeOptions::default())
            .await
            .map_err(|e| failed("merge")(&e))?;
        samples.push(started.elapsed());
    }
    Ok(samples)
}

/// A whole commit (phase 1 and 2) of one message, added untimed before each.
async fn redo_commit(
    store: Arc<dyn Store>,
    iterations: usize,
) -> Result<Vec<Duration>, BenchError> {
    let sessions = Sessions::open(store, RedoOptions::default())
        .await
        .map_err(|e| failed("open")(&e))?;
    let mut samples = Vec::with_capacity(iterations);
    for i in 0..iterations + iterations / 10 {
        sessions
            .add("bench", "a message")
            .await
            .map_err(|e| failed("add")(&e))?;
        let started = Instant::now();
        sessions
            .commit("bench")
            .await
            .map_err(|e| failed("commit")(&e))?;
        if i >= iterations / 10 {
            samples.push(started.elapsed());
        }
    }
    sessions.shutdown().await;
    Ok(samples)
}

/// Every etcd case; `prefix` is the namespace the run may use (deleted afterwards).
pub async fn run_all(
    endpoints: &[String],
    prefix: &str,
    quick: bool,
) -> Result<Vec<Measurement>, BenchError> {
    let n = if quick { 30 } else { 200 };
    let mut raw = Vec::new();
    raw.push(summarise(
        "floor: create-if-absent (EtcdStore, one Txn)",
        floor_create(store(endpoints, prefix, "floor").await?, n).await?,
    ));
    let (theirs, ours) =
        lock_beside_v3lock(endpoints, store(endpoints, prefix, "point").await?, None, n).await?;
    raw.push(summarise(
        "etcd's own Lock + Unlock (v3lock, etcd-client)",
        theirs,
    ));
    raw.push(summarise(
        "point acquire+release, uncontended (EtcdStore)",
        ours,
    ));
    raw.push(summarise(
        "merge of 100 child commits (EtcdStore)",
        merge_of(
            store(endpoints, prefix, "merge").await?,
            100,
            if quick { 5 } else { 20 },
        )
        .await?,
    ));
    raw.push(summarise(
        "redo commit, 1 message (EtcdStore)",
        redo_commit(store(endpoints, prefix, "redo").await?, n / 2).await?,
    ));
    // The same two, while another client locks another path back to back (in the same
    // namespace, on a connection of its own).
    let shared = store(endpoints, prefix, "fleet").await?;
    let neighbour = store(endpoints, prefix, "fleet").await?;
    let (theirs, ours) = lock_beside_v3lock(endpoints, shared, Some(neighbour), n).await?;
    raw.push(summarise(
        "etcd's own Lock + Unlock, beside a client locking another path",
        theirs,
    ));
    raw.push(summarise(
        "point acquire+release, beside a client locking another path (EtcdStore)",
        ours,
    ));
    let floor = raw[0].2;
    // The path locks' cycle beside etcd's own lock, measured in turn with it (goal: at most
    // 1.5× uncontended).
    let baseline_of = |i: usize| match i {
        2 => Some(1),
        6 => Some(5),
        _ => None,
    };
    Ok(measurements(raw, |_| floor, baseline_of))
}

/// Deletes everything under `prefix` (the run's namespace).
pub async fn clean(endpoints: &[String], prefix: &str) {
    if let Ok(mut client) = etcd_client::Client::connect(endpoints, None).await {
        let _ = client
            .delete(
                prefix,
                Some(etcd_client::DeleteOptions::new().with_prefix()),
            )
            .await;
    }
}
