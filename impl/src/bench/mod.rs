//! Benchmark workloads, shared by `lockstep bench` (ratios to a floor measured in the same run)
//! and by the criterion benches (`cargo bench`). Each workload returns the time of one
//! operation; the floor is one raw durable create-if-absent on the same disk. This module holds
//! what every protocol's cases share and the path-lock cases; `merge` holds the merge cases, `redo` the redo log's.

#[cfg(feature = "etcd")]
pub mod etcd;
pub mod merge;
pub mod redo;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::lock::{LockManager, LockMode, LockOptions, Operation};
use crate::store::{FsStore, Key, MemStore, Store};

/// One measured case.
#[derive(Clone, Debug, Serialize)]
pub struct Measurement {
    pub name: String,
    pub iterations: usize,
    pub median_us: f64,
    pub p90_us: f64,
    /// `median / floor median`; the floor is a durable create-if-absent on the same disk.
    pub ratio_to_floor: f64,
    /// The floor median this case is divided by. For the path-lock cases on FsStore it is
    /// measured *beside* the case: one floor create before each of the case's samples, so both
    /// see the same disk (its latency drifts within a run by 2x here), or, for the contended case
    /// (its samples come from tasks of its own), as many right after it; elsewhere it is the
    /// run's floor row.
    pub floor_us: f64,
    /// The case this one is compared with, measured in this run: for a case that scales a
    /// workload, the same case at its small size; for the merge bench's writer beside a load,
    /// the writer alone; for recovery, as many floor creates; on etcd, etcd's own Lock+Unlock.
    pub baseline: Option<String>,
    /// `median / baseline median` (the scaling goal of the 50,000-journal case is at most 1.2);
    /// for the merge bench's writer beside a load, its total time over that of the rounds alone
    /// paired with its own (the inverse of its throughput's ratio).
    pub ratio_to_baseline: Option<f64>,
}

pub(crate) fn summarise(name: &str, mut samples: Vec<Duration>) -> (String, usize, f64, f64) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q) as usize].as_secs_f64() * 1e6;
    (name.to_owned(), samples.len(), at(0.5), at(0.9))
}

/// What failed in a benchmark run (a full disk, an unwritable directory, a store error).
pub type BenchError = String;

pub(crate) fn failed(what: &'static str) -> impl Fn(&dyn std::fmt::Display) -> BenchError {
    move |error| format!("{what}: {error}")
}

/// The floor measured beside a case: set (a task-local) while the case runs, so that [`sample`]
/// and the hand-off loop time one floor create before each of their samples. Cases need not know.
pub(crate) struct Beside {
    store: Arc<dyn Store>,
    run: u32,
    samples: std::sync::Mutex<Vec<Duration>>,
}

tokio::task_local! {
    static BESIDE: Arc<Beside>;
}

/// One floor create, timed, if a case runs beside the floor.
async fn floor_tick() -> Result<(), BenchError> {
    let Ok(beside) = BESIDE.try_with(Arc::clone) else {
        return Ok(());
    };
    let i = beside.samples.lock().expect("not poisoned").len();
    let key = Key::new(format!("beside/{}/{i}", beside.run)).expect("a valid key");
    let started = Instant::now();
    let created = beside
        .store
        .create(&key, b"{}")
        .await
        .map_err(|e| failed("floor create")(&e))?;
    let elapsed = started.elapsed();
    assert!(created.is_created(), "a fresh key is created");
    beside.samples.lock().expect("not poisoned").push(elapsed);
    Ok(())
}

/// Runs `case` beside the floor on `floor_store`: its summary, and the median of the floor
/// creates timed between its samples (if the case took none, as many run just after it).
async fn beside_floor<Fut>(
    name: &str,
    floor_store: &Arc<dyn Store>,
    case: Fut,
) -> Result<((String, usize, f64, f64), f64), BenchError>
where
    Fut: std::future::Future<Output = Result<Vec<Duration>, BenchError>>,
{
    let beside = Arc::new(Beside {
        store: Arc::clone(floor_store),
        run: rand::random::<u32>(),
        samples: std::sync::Mutex::new(Vec::new()),
    });
    let samples = BESIDE.scope(Arc::clone(&beside), case).await?;
    let summary = summarise(name, samples);
    if beside.samples.lock().expect("not poisoned").is_empty() {
        for _ in 0..summary.1.min(200) {
            BESIDE.scope(Arc::clone(&beside), floor_tick()).await?;
        }
    }
    let floor = summarise(
        "floor",
        std::mem::take(&mut *beside.samples.lock().expect("not poisoned")),
    )
    .2;
    Ok((summary, floor))
}

/// Runs `op` `iterations` times after `iterations / 10` warm-up runs; one sample per run (and,
/// beside the floor, one floor create before each).
pub(crate) async fn sample<F, Fut>(
    iterations: usize,
    mut op: F,
) -> Result<Vec<Duration>, BenchError>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Result<(), BenchError>>,
{
    for i in 0..iterations / 10 {
        op(usize::MAX - i).await?;
    }
    let mut samples = Vec::with_capacity(iterations);
    for i in 0..iterations {
        floor_tick().await?;
        let started = Instant::now();
        op(i).await?;
        samples.push(started.elapsed());
    }
    Ok(samples)
}

pub(crate) fn options() -> LockOptions {
    LockOptions {
        cleanup_every: None,
        ..LockOptions::default()
    }
}

/// The floor: one durable create-if-absent of a fresh key.
pub async fn floor_create(
    store: Arc<dyn Store>,
    iterations: usize,
) -> Result<Vec<Duration>, BenchError> {
    let run = rand::random::<u32>();
    sample(iterations, |i| {
        let store = Arc::clone(&store);
        async move {
            let key = Key::new(format!("floor/{run}/{i}")).expect("a valid key");
            let created = store
                .create(&key, b"{}")
                .await
                .map_err(|e| failed("floor create")(&e))?;
            assert!(created.is_created(), "a fresh key is created");
            Ok(())
        }
    })
    .await
}

/// Uncontended POINT acquire + release.
pub async fn point_cycle(
    store: Arc<dyn Store>,
    iterations: usize,
) -> Result<Vec<Duration>, BenchError> {
    let manager = LockManager::start(store, options())
        .await
        .map_err(|e| failed("start")(&e))?;
    let manager = &manager;
    sample(iterations, |_| async move {
        let guard = manager
            .lock(Operation::new(LockMode::Point, &["/bench/point"]).expect("valid"))
            .await
            .map_err(|e| failed("lock")(&e))?;
        guard.release().await.map_err(|e| failed("release")(&e))
    })
    .await
}

/// SUBTREE acquire + release on a root whose data tree holds `files` unlocked files: the cost
/// must not depend on them (the seed walked the tree; lockstep lists lock journals only).
pub async fn subtree_over_files(
    root: &std::path::Path,
    files: usize,
    iterations: usize,
) -> Result<Vec<Duration>, BenchError> {
    let data = root.join("data-tree");
    for dir in 0..(files / 1000).max(1) {
        let dir_path = data.join(format!("d{dir:03}"));
        std::fs::create_dir_all(&dir_path).map_err(|e| failed("data tree")(&e))?;
        for file in 0..files.min(1000) {
            std::fs::write(dir_path.join(format!("f{file:04}")), b"x")
                .map_err(|e| failed("data tree")(&e))?;
        }
    }
    let store = FsStore::open(root.join(".lockstep")).map_err(|e| failed("open")(&e))?;
    let manager = LockManager::start(store, options())
        .await
        .map_err(|e| failed("start")(&e))?;
    let manager = &manager;
    sample(iterations, |_| async move {
        let guard = manager
            .lock(Operation::new(LockMode::Subtree, &["/"]).expect("valid"))
            .await
            .map_err(|e| failed("lock")(&e))?;
        guard.release().await.map_err(|e| failed("release")(&e))
    })
    .await
}

/// SUBTREE acquire + release above `journals` paths that were locked once and released: this
/// cost does follow the locks (each journal's newest entry is read).
pub async fn subtree_over_journals(
    store: Arc<dyn Store>,
    journals: usize,
    iterations: usize,
) -> Result<Vec<Duration>, BenchError> {
    let manager = LockManager::start(store, options())
        .await
        .map_err(|e| failed("start")(&e))?;
    for j in 0..journals {
        let path = format!("/t/p{j:05}");
        let guard = manager
            .lock(Operation::new(LockMode::Point, &[&path]).expect("valid"))
            .await
            .map_err(|e| failed("lock")(&e))?;
        guard.release().await.map_err(|e| failed("release")(&e))?;
    }
    let manager = &manager;
    sample(iterations, |_| async move {
        let guard = manager
            .lock(Operation::new(LockMode::Subtree, &["/t"]).expect("valid"))
            .await
            .map_err(|e| failed("lock")(&e))?;
        guard.release().await.map_err(|e| failed("release")(&e))
    })
    .await
}

/// Uncontended POINT acquire + release on one path of a store that holds `journals` other,
/// released journals (written straight into the store, as earlier runs would leave them): the
/// cost must not follow them (issue: every start walked every journal, and the journal of `/`
/// listed all of them).
pub async fn point_among_journals(
    root: &std::path::Path,
    journals: usize,
    iterations: usize,
) -> Result<Vec<Duration>, BenchError> {
    use crate::lock::{Entry, LockKind, LockPath, Marks, ReleasedBy};
    // Populated without fsync (the same directory, a volatile handle), then measured durable.
    let populate = FsStore::open_with(root, crate::store::Durability::Volatile)
        .map_err(|e| failed("open")(&e))?;
    for j in 0..journals {
        let path = LockPath::new(&format!("/other/g{:03}/p{j:06}", j % 1000)).expect("valid path");
        let entry = Entry::Release {
            kind: LockKind::Point,
            ticket: 1,
            by: ReleasedBy::Holder,
            written_at_ms: 0,
            marks: Marks::default(),
        };
        let _ = populate
            .create(&path.entry_key(0), &entry.encode())
            .await
            .map_err(|e| failed("populate")(&e))?;
    }
    let store = FsStore::open(root).map_err(|e| failed("open")(&e))?;
    let manager = LockManager::start(store, options())
        .await
        .map_err(|e| failed("start")(&e))?;
    let manager = &manager;
    sample(iterations, |_| async move {
        let guard = manager
            .lock(Operation::new(LockMode::Point, &["/bench/point"]).expect("valid"))
            .await
            .map_err(|e| failed("lock")(&e))?;
        guard.release().await.map_err(|e| failed("release")(&e))
    })
    .await
}

/// `tasks` tasks contending on one path, each taking and releasing it `rounds` times (waiting
/// forever); one sample per acquire + release, measured from the request to the release.
pub async fn contended(
    store: Arc<dyn Store>,
    tasks: usize,
    rounds: usize,
) -> Result<Vec<Duration>, BenchError> {
    let options = LockOptions {
        timeout: None,
        poll_min: Duration::from_millis(1),
        poll_max: Duration::from_millis(20),
        // The default retry budget: a create lost to the next holder spends none (specs/lock.md
        // §4), so waiting on a busy path does not run out of retries.
        ..options()
    };
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let manager = LockManager::start(Arc::clone(&store), options.clone())
            .await
            .map_err(|e| failed("start")(&e))?;
        handles.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            for _ in 0..rounds {
                let started = Instant::now();
                let guard = manager
                    .lock(Operation::new(LockMode::Point, &["/hot"]).expect("valid"))
                    .await
                    .map_err(|e| failed("lock")(&e))?;
                guard.release().await.map_err(|e| failed("release")(&e))?;
                samples.push(started.elapsed());
            }
            Ok::<_, BenchError>(samples)
        }));
    }
    let mut all = Vec::new();
    for handle in handles {
        all.extend(handle.await.map_err(|e| failed("task")(&e))??);
    }
    Ok(all)
}

/// Hand-off: a holder releases a POINT lock while a waiter on another store handle (another
/// owner registration, its own inotify watch, as a second process would have) waits for it with
/// the default polling. One sample per hand-off: from the moment the holder's `release` starts to
/// the moment the waiter's `lock` returns (so the release's own durable create is in it). With `hints` false the store
/// gives no wake-up hints (`FaultyStore::drop_hints`) and the waiter is granted by its polls:
/// the baseline the hint is measured against, in the same run.
pub async fn hand_off(
    dir: &std::path::Path,
    iterations: usize,
    hints: bool,
) -> Result<Vec<Duration>, BenchError> {
    // The hint case runs on a plain FsStore, as a user's manager would. Only the baseline needs
    // the fault-injecting wrapper (to drop every hint); the wrapper makes each batched read one
    // call per read, a few hops that do not matter beside its 20 ms polls.
    let open = || -> Result<Arc<dyn Store>, BenchError> {
        let store = FsStore::open(dir).map_err(|e| failed("open")(&e))?;
        if hints {
            return Ok(Arc::new(store));
        }
        let store = crate::store::FaultyStore::new(store);
        store.drop_hints();
        Ok(Arc::new(store))
    };
    let holder = LockManager::start(open()?, options())
        .await
        .map_err(|e| failed("start")(&e))?;
    let waiter = Arc::new(
        LockManager::start(
            open()?,
            LockOptions {
                timeout: None,
                ..options()
            },
        )
        .await
        .map_err(|e| failed("start")(&e))?,
    );
    let operation = || Operation::new(LockMode::Point, &["/handoff"]).expect("valid");
    let mut samples = Vec::with_capacity(iterations);
    for i in 0..iterations + iterations / 10 {
        if i >= iterations / 10 {
            floor_tick().await?;
        }
        let guard = holder
            .lock(operation())
            .await
            .map_err(|e| failed("lock")(&e))?;
        let waiting = Arc::clone(&waiter);
        let task = tokio::spawn(async move {
            let guard = waiting.lock(operation()).await?;
            let granted = Instant::now();
            guard.release().await?;
            Ok::<_, crate::lock::LockError>(granted)
        });
        // Time for the waiter to find the lock held and start waiting (a waiter that comes later
        // finds it free, and its sample is only shorter).
        tokio::time::sleep(Duration::from_millis(5)).await;
        // From the moment the release starts: the waiter can be woken by its entry's link,
        // before the holder's own call returns (its directory fsync and garbage collection).
        let released = Instant::now();
        guard.release().await.map_err(|e| failed("release")(&e))?;
        let granted = task
            .await
            .map_err(|e| failed("task")(&e))?
            .map_err(|e| failed("waiter")(&e))?;
        if i >= iterations / 10 {
            samples.push(granted.saturating_duration_since(released));
        }
    }
    Ok(samples)
}

/// Every case, each beside the floor measured in the same run. `quick` cuts iterations (and
/// the 100,000-file tree to 10,000). Each FsStore case is divided by the floor measured beside
/// it ([`Measurement::floor_us`]); the MemStore cases by the MemStore floor row.
pub async fn run_all(dir: &std::path::Path, quick: bool) -> Result<Vec<Measurement>, BenchError> {
    let n = if quick { 30 } else { 200 };
    let fs_store = |name: &str| -> Result<Arc<dyn Store>, BenchError> {
        Ok(Arc::new(
            FsStore::open(dir.join(name)).map_err(|e| failed("open")(&e))?,
        ))
    };
    let memory = || -> Arc<dyn Store> { Arc::new(MemStore::new()) };
    let floor_store = fs_store("floor")?;
    let mut raw = Vec::new();
    let mut floors = std::collections::HashMap::new();
    raw.push(summarise(
        "floor: durable create-if-absent (FsStore)",
        floor_create(Arc::clone(&floor_store), n).await?,
    ));
    raw.push(summarise(
        "floor: create-if-absent (MemStore)",
        floor_create(memory(), n * 10).await?,
    ));
    let mut fs_case = |(summary, floor): ((String, usize, f64, f64), f64)| {
        floors.insert(summary.0.clone(), floor);
        raw.push(summary);
    };
    let name = "point acquire+release, uncontended (FsStore)";
    fs_case(beside_floor(name, &floor_store, point_cycle(fs_store("point")?, n)).await?);
    let memory_cycle = summarise(
        "point acquire+release, uncontended (MemStore)",
        point_cycle(memory(), n * 10).await?,
    );
    fs_case((memory_cycle, f64::NAN));
    let many = if quick { 10_000 } else { 100_000 };
    let name = "subtree acquire+release, 10 files in the data tree (FsStore)";
    let path = dir.join("few");
    let case = subtree_over_files(&path, 10, n);
    fs_case(beside_floor(name, &floor_store, case).await?);
    let name = format!("subtree acquire+release, {many} files in the data tree (FsStore)");
    let path = dir.join("many");
    let case = subtree_over_files(&path, many, n);
    fs_case(beside_floor(&name, &floor_store, case).await?);
    let name = "subtree acquire+release over 10 released lock journals (FsStore)";
    let case = subtree_over_journals(fs_store("j10")?, 10, n);
    fs_case(beside_floor(name, &floor_store, case).await?);
    let name = "subtree acquire+release over 100 released lock journals (FsStore)";
    let case = subtree_over_journals(fs_store("j100")?, 100, n / 2);
    fs_case(beside_floor(name, &floor_store, case).await?);
    let others = if quick { 5_000 } else { 50_000 };
    let name = "point acquire+release, 10 other journals in the store (FsStore)";
    let path = dir.join("o10");
    let case = point_among_journals(&path, 10, n);
    fs_case(beside_floor(name, &floor_store, case).await?);
    let name = format!("point acquire+release, {others} other journals in the store (FsStore)");
    let path = dir.join("omany");
    let case = point_among_journals(&path, others, n);
    fs_case(beside_floor(&name, &floor_store, case).await?);
    let name = "8 tasks contending on one path, per acquire+release (FsStore)";
    let case = contended(fs_store("hot")?, 8, n / 8);
    fs_case(beside_floor(name, &floor_store, case).await?);
    let contended_memory = summarise(
        "8 tasks contending on one path, per acquire+release (MemStore)",
        contended(memory(), 8, n).await?,
    );
    fs_case((contended_memory, f64::NAN));
    let name = "hand-off, release to grant, every hint lost: polling only (FsStore)";
    let path = dir.join("handoff-polling");
    let case = hand_off(&path, n / 2, false);
    fs_case(beside_floor(name, &floor_store, case).await?);
    let name = "hand-off, release to grant (FsStore)";
    let path = dir.join("handoff");
    let case = hand_off(&path, n / 2, true);
    fs_case(beside_floor(name, &floor_store, case).await?);
    let floor_fs = raw[0].2;
    let floor_memory = raw[1].2;
    // Scaled cases beside their small size: (case, baseline) by position in `raw`.
    let baseline_of = |i: usize| match i {
        5 => Some(4),
        7 => Some(6),
        9 => Some(8),
        13 => Some(12),
        _ => None,
    };
    Ok(measurements(
        raw,
        |name| match floors.get(name) {
            Some(floor) if floor.is_finite() => *floor,
            _ if name.contains("MemStore") => floor_memory,
            _ => floor_fs,
        },
        baseline_of,
    ))
}

/// The measurements of `raw` summaries: each case's ratio to its floor (`floor_of` its name), and
/// to its baseline case (`baseline_of` its position: the position of the baseline in `raw`).
pub(crate) fn measurements(
    raw: Vec<(String, usize, f64, f64)>,
    floor_of: impl Fn(&str) -> f64,
    baseline_of: impl Fn(usize) -> Option<usize>,
) -> Vec<Measurement> {
    let medians: Vec<(String, f64)> = raw.iter().map(|r| (r.0.clone(), r.2)).collect();
    raw.into_iter()
        .enumerate()
        .map(|(i, (name, iterations, median_us, p90_us))| {
            let floor = floor_of(&name);
            let base = baseline_of(i).map(|b| &medians[b]);
            Measurement {
                name,
                iterations,
                median_us,
                p90_us,
                ratio_to_floor: median_us / floor,
                floor_us: floor,
                baseline: base.map(|(n, _)| n.clone()),
                ratio_to_baseline: base.map(|(_, m)| median_us / m),
            }
        })
        .collect()
}
