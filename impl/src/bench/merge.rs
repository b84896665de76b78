//! The merge lock's benchmark cases (`lockstep bench merge`), each beside the floor measured in
//! the same run: merges of 1, 100 and 10,000 child commits; 4 mergers of one branch, time to the
//! first merge; a writer's throughput with merges running (back to back, and one every 50 ms),
//! and beside a disk neighbour that is no merger, each in rounds that alternate with rounds of
//! the writer alone. A writer case's samples are its rounds, each the round's mean time per
//! commit (its median and p90 are over rounds); its ratio to the writer alone is its total time
//! over that of the rounds alone just before its own: the inverse of its throughput's ratio.
//! Setup commits are written through a non-durable handle on the same directory (the same files,
//! without their fsyncs), so that only what is measured pays for durability.

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
pub enum Load {
    /// Nothing: the writer alone.
    Nothing,
    /// A merger of the writer's branch, merging back to back.
    MergeLoop,
    /// A merger of the writer's branch, merging at the round's start and then once per period.
    MergeEvery(Duration),
    /// A neighbour on the same disk that is no merger: durable creates back to back in a
    /// directory of its own. It shows what any process keeping the disk busy costs the writer.
    DiskNeighbour,
}

/// The writer's durable commits in rounds of `per_round`, the rounds cycling through `cycle`
/// `rounds` times over: `samples[i]` are the rounds run beside `cycle[i]`, each the round's mean
/// time per commit (the inverse of its throughput). Alternating the loads round by round is what
/// makes them comparable: this disk's latency drifts within a run by 2x, and cases measured one
/// after another measured the drift as much as the merges.
///
/// The merger is a `Lake` of its own on its own `FsStore` handle, as a merging service beside
/// the writers would be: it shares no cache with the writer's.
pub async fn writer_rounds(
    dir: &std::path::Path,
    cycle: &[Load],
    rounds: usize,
    per_round: usize,
) -> Result<Vec<Vec<Duration>>, BenchError> {
    let (writer, _setup) = lake(dir).await?;
    let merger = Lake::open(FsStore::open(dir).map_err(|e| failed("open")(&e))?)
        .await
        .map_err(|e| failed("lake")(&e))?;
    let neighbour: Arc<dyn Store> =
        Arc::new(FsStore::open(dir.join("neighbour")).map_err(|e| failed("open")(&e))?);
    let live = writer
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
        for (case, load) in cycle.iter().enumerate() {
            let background = Background::start(&merger, &neighbour, *load);
            let started = Instant::now();
            for _ in 0..per_round {
                live.commit(b"{\"x\":1}")
                    .await
                    .map_err(|e| failed("commit")(&e))?;
            }
            samples[case].push(started.elapsed() / per_round as u32);
            if let Some(background) = background {
                let done = background.stop().await?;
                if done == 0 {
                    return Err(format!(
                        "nothing was merged or created beside the writer ({load:?})"
                    ));
                }
            }
        }
    }
    Ok(samples)
}

/// What runs beside the writer during one round. Dropped without [`Background::stop`] (a
/// commit of the writer failed), it aborts the task, which would otherwise run on unwatched.
struct Background {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<usize, BenchError>>,
}

impl Background {
    fn start(merger: &Lake, neighbour: &Arc<dyn Store>, load: Load) -> Option<Background> {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = match load {
            Load::Nothing => return None,
            Load::MergeLoop => tokio::spawn(merges(merger.clone(), None, stopped)),
            Load::MergeEvery(period) => tokio::spawn(merges(merger.clone(), Some(period), stopped)),
            Load::DiskNeighbour => tokio::spawn(creates(Arc::clone(neighbour), stopped)),
        };
        Some(Background { stop, task })
    }

    /// Stops the task; how many merges merged something (or how many creates the neighbour made)
    /// while the writer committed.
    async fn stop(mut self) -> Result<usize, BenchError> {
        let _ = self.stop.send(true);
        (&mut self.task)
            .await
            .map_err(|e| failed("background")(&e))?
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Merges `live` back to back, or at once and then once per `period`, until `stopped`. Counts
/// the merges that merged something: one that found nothing new did not load the disk as a
/// merge does.
async fn merges(
    merger: Lake,
    period: Option<Duration>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) -> Result<usize, BenchError> {
    let options = MergeOptions {
        timeout: None,
        ..MergeOptions::default()
    };
    let mut ticker = period.map(|period| {
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker
    });
    let mut merged = 0;
    loop {
        if let Some(ticker) = &mut ticker {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stopped.changed() => return Ok(merged),
            }
        }
        if *stopped.borrow() {
            return Ok(merged);
        }
        let done = merger
            .merge("live", options.clone())
            .await
            .map_err(|e| failed("merge")(&e))?;
        if done.outcome == MergeOutcome::Merged {
            merged += 1;
        }
    }
}

/// Durable creates of fresh keys, back to back, until `stopped`.
async fn creates(
    store: Arc<dyn Store>,
    stopped: tokio::sync::watch::Receiver<bool>,
) -> Result<usize, BenchError> {
    let run = rand::random::<u32>();
    let mut created = 0;
    while !*stopped.borrow() {
        let key =
            crate::store::Key::new(format!("neighbour/{run}/{created}")).expect("a valid key");
        let landed = store
            .create(&key, b"{}")
            .await
            .map_err(|e| failed("neighbour create")(&e))?;
        assert!(landed.is_created(), "a fresh key is created");
        created += 1;
    }
    Ok(created)
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
    // The writer's rounds: alone, then beside each load, cycled (see `writer_rounds`). Each case
    // with a load is compared with the rounds alone that ran just before its own.
    let (rounds, per_round) = if quick { (3, 60) } else { (8, 200) };
    let cycle: Vec<Load> = WRITER_CASES
        .iter()
        .flat_map(|(_, load)| [Load::Nothing, *load])
        .collect();
    let samples = writer_rounds(&dir.join("writer"), &cycle, rounds, per_round).await?;
    let alone: Vec<Duration> = samples.iter().step_by(2).flatten().copied().collect();
    let writer = raw.len();
    raw.push(summarise(
        "child commit, no merges running (FsStore)",
        alone,
    ));
    for (i, (name, _)) in WRITER_CASES.iter().enumerate() {
        raw.push(summarise(name, samples[2 * i + 1].clone()));
    }
    let floor = raw[0].2;
    // Cases beside their baseline case: (case, baseline) by position in `raw`.
    let baseline_of = |i: usize| match i {
        2 | 3 => Some(1),
        i if (writer + 1..=writer + WRITER_CASES.len()).contains(&i) => Some(writer),
        _ => None,
    };
    let mut rows = measurements(raw, |_| floor, baseline_of);
    // A writer case's ratio is total time over total time against its paired rounds alone: the
    // inverse of the throughput ratio, with every round counted (a median would drop the slow
    // rounds, where a merger's stalls show).
    for i in 0..WRITER_CASES.len() {
        let total = |rounds: &[Duration]| rounds.iter().sum::<Duration>().as_secs_f64();
        rows[writer + 1 + i].ratio_to_baseline =
            Some(total(&samples[2 * i + 1]) / total(&samples[2 * i]));
    }
    Ok(rows)
}

/// The writer's cases with a load beside it, each run in rounds alternating with the writer
/// alone.
const WRITER_CASES: [(&str, Load); 3] = [
    (
        "child commit, a merger merging in a loop (FsStore)",
        Load::MergeLoop,
    ),
    (
        "child commit, a merge every 50 ms (FsStore)",
        Load::MergeEvery(Duration::from_millis(50)),
    ),
    (
        "child commit, a disk neighbour creating in a loop (FsStore)",
        Load::DiskNeighbour,
    ),
];
