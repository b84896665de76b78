//! The merge lock's benchmark cases (`lockstep bench merge`), each beside the floor measured in
//! the same run: merges of 1, 100 and 10,000 child commits; 4 mergers of one branch, time to the
//! first merge; a writer's throughput with merges running (back to back, and one every 50 ms),
//! and beside a disk neighbour that is no merger, each beside the writer alone in rounds that
//! alternate with it. A writer case's samples are its rounds, each the round's mean time per
//! commit: the median is the inverse of the writer's median throughput, and the ratio to the
//! writer alone the inverse of its throughput's ratio. Setup commits are written through a non-durable handle on the same directory (the same
//! files, without their fsyncs), so that only what is measured pays for durability.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{failed, floor_create, measurements, summarise, BenchError, Measurement};
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

/// What runs beside the writer in one round of [`writer_rounds`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Beside {
    /// Nothing: the writer alone.
    Nothing,
    /// A merger of the writer's branch, merging back to back.
    MergeLoop,
    /// A merger of the writer's branch, one merge per period (the first at once).
    MergeEvery(Duration),
    /// A neighbour on the same disk that is no merger: durable creates back to back in a
    /// directory of its own. It shows what any process keeping the disk busy costs the writer.
    DiskNeighbour,
}

/// The writer's durable commits in rounds of `per_round`, the rounds cycling through `cycle`
/// `rounds` times over, on one lake: `samples[i]` are the rounds run beside `cycle[i]`, each the
/// round's mean time per commit (the inverse of its throughput). Alternating the cases round by
/// round is what makes them comparable: this disk's latency drifts within a run by 2x, and cases
/// measured one after another measured the drift as much as the merges.
pub async fn writer_rounds(
    dir: &std::path::Path,
    cycle: &[Beside],
    rounds: usize,
    per_round: usize,
) -> Result<Vec<Vec<Duration>>, BenchError> {
    let (lake, _setup) = lake(dir).await?;
    let neighbour: Arc<dyn Store> =
        Arc::new(FsStore::open(dir.join("neighbour")).map_err(|e| failed("open")(&e))?);
    let live = lake
        .branch("live")
        .await
        .map_err(|e| failed("branch")(&e))?;
    // Warm up: the first commits of a branch pay for its directories.
    for _ in 0..per_round / 10 {
        live.commit(b"{\"x\":1}")
            .await
            .map_err(|e| failed("commit")(&e))?;
    }
    let mut samples = vec![Vec::with_capacity(rounds); cycle.len()];
    for _ in 0..rounds {
        for (case, beside) in cycle.iter().enumerate() {
            let stop = Arc::new(AtomicBool::new(false));
            let task = background(&lake, &neighbour, *beside, Arc::clone(&stop));
            let started = Instant::now();
            for _ in 0..per_round {
                live.commit(b"{\"x\":1}")
                    .await
                    .map_err(|e| failed("commit")(&e))?;
            }
            samples[case].push(started.elapsed() / per_round as u32);
            stop.store(true, Ordering::Relaxed);
            if let Some(task) = task {
                let started = task.await.map_err(|e| failed("background")(&e))??;
                if started == 0 {
                    return Err(format!("nothing ran beside the writer ({beside:?})").into());
                }
            }
        }
    }
    Ok(samples)
}

/// Starts what runs beside the writer; the task returns how many merges (or creates) it started
/// before `stop`.
fn background(
    lake: &Lake,
    neighbour: &Arc<dyn Store>,
    beside: Beside,
    stop: Arc<AtomicBool>,
) -> Option<tokio::task::JoinHandle<Result<usize, BenchError>>> {
    let period = match beside {
        Beside::Nothing => return None,
        Beside::MergeLoop | Beside::DiskNeighbour => None,
        Beside::MergeEvery(period) => Some(period),
    };
    let (lake, neighbour) = (lake.clone(), Arc::clone(neighbour));
    Some(tokio::spawn(async move {
        let options = MergeOptions {
            timeout: None,
            ..MergeOptions::default()
        };
        let run = rand::random::<u32>();
        // The first tick of an interval is at once, so that some merge runs beside the writer
        // however fast the disk.
        let mut ticker = period.map(|period| {
            let mut ticker = tokio::time::interval(period);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker
        });
        let mut started = 0usize;
        loop {
            if let Some(ticker) = &mut ticker {
                ticker.tick().await;
            }
            if stop.load(Ordering::Relaxed) {
                return Ok(started);
            }
            started += 1;
            if beside == Beside::DiskNeighbour {
                let key = crate::store::Key::new(format!("neighbour/{run}/{started}"))
                    .expect("a valid key");
                let created = neighbour
                    .create(&key, b"{}")
                    .await
                    .map_err(|e| failed("neighbour create")(&e))?;
                assert!(created.is_created(), "a fresh key is created");
            } else {
                lake.merge("live", options.clone())
                    .await
                    .map_err(|e| failed("merge")(&e))?;
            }
        }
    }))
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
    let mut raw = vec![
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
            "4 mergers of one branch, time to the first merge (FsStore)",
            first_of_four(&dir.join("four"), (n / 2).max(5)).await?,
        ),
    ];
    // The writer's rounds: alone, then beside each load, cycled (see `writer_rounds`).
    let (rounds, per_round) = if quick { (3, 60) } else { (8, 200) };
    let cycle = [
        Beside::Nothing,
        Beside::MergeLoop,
        Beside::Nothing,
        Beside::MergeEvery(Duration::from_millis(50)),
        Beside::Nothing,
        Beside::DiskNeighbour,
    ];
    let mut by_case = writer_rounds(&dir.join("writer"), &cycle, rounds, per_round)
        .await?
        .into_iter();
    let mut next = || by_case.next().expect("one per case of the cycle");
    let (alone, looped, alone_2, paced, alone_3, neighbour) =
        (next(), next(), next(), next(), next(), next());
    let alone = [alone, alone_2, alone_3].concat();
    let writer = raw.len();
    raw.push(summarise(
        "child commit, no merges running (FsStore)",
        alone,
    ));
    raw.push(summarise(
        "child commit, a merger merging in a loop (FsStore)",
        looped,
    ));
    raw.push(summarise(
        "child commit, a merge every 50 ms (FsStore)",
        paced,
    ));
    raw.push(summarise(
        "child commit, a disk neighbour creating in a loop (FsStore)",
        neighbour,
    ));
    let floor = raw[0].2;
    // Cases beside their baseline case: (case, baseline) by position in `raw`.
    let baseline_of = |i: usize| match i {
        2 | 3 => Some(1),
        i if i > writer && i <= writer + 3 => Some(writer),
        _ => None,
    };
    Ok(measurements(raw, |_| floor, baseline_of))
}
