//! The merge lock's benchmark cases (`lockstep bench merge`), each beside the floor measured in
//! the same run: merges of 1, 100 and 10,000 child commits; a writer's commit latency with
//! merges running (back to back, and one every 50 ms) beside the same without them; 4 mergers of one branch, time to the first
//! merge. Setup commits are written through a non-durable handle on the same directory (the same
//! files, without their fsyncs), so that only what is measured pays for durability.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{failed, floor_create, measurements, sample, summarise, BenchError, Measurement};
use crate::merge::{Lake, MergeOptions, MergeOutcome};
use crate::store::{Durability, FsStore, Store};

/// A fresh lake at `dir`: `main` and child `live`. Returns the durable lake and a non-durable
/// one on the same files, for setup.
async fn lake(dir: &std::path::Path) -> Result<(Lake, Lake), BenchError> {
    let durable = FsStore::open(dir).map_err(|e| failed("open")(&e))?;
    let volatile = FsStore::open_with(dir, Durability::Volatile).map_err(|e| failed("open")(&e))?;
    let lake = Lake::open(durable).await.map_err(|e| failed("lake")(&e))?;
    let setup = Lake::open(volatile).await.map_err(|e| failed("lake")(&e))?;
    setup
        .create_branch("main", None)
        .await
        .map_err(|e| failed("branch")(&e))?;
    setup
        .create_branch("live", Some("main"))
        .await
        .map_err(|e| failed("branch")(&e))?;
    Ok((lake, setup))
}

async fn commits(setup: &Lake, n: usize) -> Result<(), BenchError> {
    let live = setup
        .branch("live")
        .await
        .map_err(|e| failed("branch")(&e))?;
    for _ in 0..n {
        live.commit(b"{\"x\":1}")
            .await
            .map_err(|e| failed("commit")(&e))?;
    }
    Ok(())
}

/// One merge of `size` new child commits (committed before each merge, untimed).
pub async fn merge_of(
    dir: &std::path::Path,
    size: usize,
    iterations: usize,
) -> Result<Vec<Duration>, BenchError> {
    let (lake, setup) = lake(dir).await?;
    let (lake, setup) = (&lake, &setup);
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        commits(setup, size).await?;
        let started = Instant::now();
        let merged = lake
            .merge("live", MergeOptions::default())
            .await
            .map_err(|e| failed("merge")(&e))?;
        samples.push(started.elapsed());
        assert_eq!(merged.outcome, MergeOutcome::Merged);
        assert_eq!((merged.to - merged.from) as usize, size);
    }
    Ok(samples)
}

/// A writer's commit latency, durable, with a task merging the child meanwhile (if
/// `merges_every` is given): back to back (`Some(ZERO)`), or one merge per period.
pub async fn commit_latency(
    dir: &std::path::Path,
    iterations: usize,
    merges_every: Option<Duration>,
) -> Result<Vec<Duration>, BenchError> {
    let (lake, _setup) = lake(dir).await?;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let merger = merges_every.map(|period| {
        let (lake, stop) = (lake.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            let options = MergeOptions {
                timeout: None,
                ..MergeOptions::default()
            };
            // Merges started while the writer was still committing. The first starts at once
            // (the first tick of an interval), so that some merge runs beside the writer
            // however fast the disk: a writer that finished within the first period would have
            // measured no merge at all.
            let mut merges = 0usize;
            let paced = !period.is_zero();
            let mut ticker = tokio::time::interval(period.max(Duration::from_millis(1)));
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                if paced {
                    ticker.tick().await;
                }
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                merges += 1;
                lake.merge("live", options.clone())
                    .await
                    .map_err(|e| failed("merge")(&e))?;
            }
            Ok::<_, BenchError>(merges)
        })
    });
    let live = lake
        .branch("live")
        .await
        .map_err(|e| failed("branch")(&e))?;
    let live = &live;
    let samples = sample(iterations, |_| async move {
        live.commit(b"{\"x\":1}")
            .await
            .map(|_| ())
            .map_err(|e| failed("commit")(&e))
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(merger) = merger {
        let merges = merger.await.map_err(|e| failed("merger")(&e))??;
        if merges == 0 {
            return Err("no merge ran beside the writer".into());
        }
    }
    samples
}

/// 4 mergers of one branch start at once on one new commit: the time until the first merge
/// completes.
pub async fn first_of_four(
    dir: &std::path::Path,
    iterations: usize,
) -> Result<Vec<Duration>, BenchError> {
    let (_lake, setup) = lake(dir).await?;
    let mut mergers = Vec::new();
    for _ in 0..4 {
        let store = FsStore::open(dir).map_err(|e| failed("open")(&e))?;
        mergers.push(Lake::open(store).await.map_err(|e| failed("lake")(&e))?);
    }
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        commits(&setup, 1).await?;
        let (first, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let started = Instant::now();
        let mut tasks = Vec::new();
        for lake in &mergers {
            let (lake, first) = (lake.clone(), first.clone());
            tasks.push(tokio::spawn(async move {
                let options = MergeOptions {
                    timeout: None,
                    poll: Duration::from_millis(1),
                    ..MergeOptions::default()
                };
                let merged = lake.merge("live", options).await;
                if matches!(&merged, Ok(m) if m.outcome == MergeOutcome::Merged) {
                    let _ = first.send(started.elapsed());
                }
                merged.map(|_| ()).map_err(|e| failed("merge")(&e))
            }));
        }
        drop(first);
        let elapsed = rx.recv().await.ok_or("no merger merged")?;
        for task in tasks {
            task.await.map_err(|e| failed("task")(&e))??;
        }
        samples.push(elapsed);
    }
    Ok(samples)
}

/// Every merge case, each beside the floor measured in the same run.
pub async fn run_all(dir: &std::path::Path, quick: bool) -> Result<Vec<Measurement>, BenchError> {
    let n = if quick { 20 } else { 100 };
    let big = if quick { 1_000 } else { 10_000 };
    let floor_store: Arc<dyn Store> =
        Arc::new(FsStore::open(dir.join("floor")).map_err(|e| failed("open")(&e))?);
    let raw = vec![
        summarise(
            "floor: durable create-if-absent (FsStore)",
            floor_create(floor_store, n * 2).await?,
        ),
        summarise(
            "merge of 1 child commit (FsStore)",
            merge_of(&dir.join("m1"), 1, n).await?,
        ),
        summarise(
            "merge of 100 child commits (FsStore)",
            merge_of(&dir.join("m100"), 100, (n / 5).max(5)).await?,
        ),
        summarise(
            &format!("merge of {big} child commits (FsStore)"),
            merge_of(&dir.join("mbig"), big, 3).await?,
        ),
        summarise(
            "child commit, no merges running (FsStore)",
            commit_latency(&dir.join("c0"), n * 2, None).await?,
        ),
        summarise(
            "child commit, a merger merging in a loop (FsStore)",
            commit_latency(&dir.join("c1"), n * 2, Some(Duration::ZERO)).await?,
        ),
        // Ten times the commits, so that the writer runs for some twenty periods.
        summarise(
            "child commit, a merge every 50 ms (FsStore)",
            commit_latency(&dir.join("c2"), n * 20, Some(Duration::from_millis(50))).await?,
        ),
        summarise(
            "4 mergers of one branch, time to the first merge (FsStore)",
            first_of_four(&dir.join("four"), (n / 2).max(5)).await?,
        ),
    ];
    let floor = raw[0].2;
    // Cases beside their baseline case: (case, baseline) by position in `raw`.
    let baseline_of = |i: usize| match i {
        2 | 3 => Some(1),
        5 | 6 => Some(4),
        _ => None,
    };
    Ok(measurements(raw, |_| floor, baseline_of))
}
