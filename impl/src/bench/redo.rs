//! The redo log's benchmark cases (`lockstep bench redo`), each beside the floor measured in the
//! same run: a commit's phase 1 and the whole commit (1 and 10 messages); recovery of N pending
//! records (N = 10,000; `--quick`: 1,000) beside N floor creates; a worker's time per item.
//! Setup entries are written through a non-durable handle on the same directory (the same files,
//! without their fsyncs), so that only what is measured pays for durability.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{failed, floor_create, measurements, summarise, BenchError, Measurement};
use crate::lock::owner::ProcessId;
use crate::redo::entry::{self, ArchiveEntry, Message};
use crate::redo::{EchoExtractor, RedoOptions, SessionName, Sessions};
use crate::store::{Durability, FsStore, Store};

async fn sessions(store: impl Store) -> Result<Sessions, BenchError> {
    Sessions::open(store, RedoOptions::default())
        .await
        .map_err(|e| failed("open")(&e))
}

/// A commit of `messages` new messages (added untimed before each commit): the whole commit, or
/// (`phase1_only`) its phase 1 alone.
pub async fn commit(
    dir: &std::path::Path,
    messages: usize,
    iterations: usize,
    phase1_only: bool,
) -> Result<Vec<Duration>, BenchError> {
    let durable = sessions(FsStore::open(dir).map_err(|e| failed("open")(&e))?).await?;
    let setup =
        sessions(FsStore::open_with(dir, Durability::Volatile).map_err(|e| failed("open")(&e))?)
            .await?;
    let mut samples = Vec::with_capacity(iterations);
    for i in 0..iterations + iterations / 10 {
        // A fresh session per phase-1 sample: phase 1 alone leaves its archive pending.
        let session = if phase1_only {
            format!("p{i}")
        } else {
            "bench".to_owned()
        };
        for m in 0..messages {
            setup
                .add(&session, &format!("message {m}"))
                .await
                .map_err(|e| failed("add")(&e))?;
        }
        let started = Instant::now();
        if phase1_only {
            durable
                .commit_phase1(&session)
                .await
                .map_err(|e| failed("phase 1")(&e))?;
        } else {
            durable
                .commit(&session)
                .await
                .map_err(|e| failed("commit")(&e))?;
        }
        if i >= iterations / 10 {
            samples.push(started.elapsed());
        }
    }
    durable.shutdown().await;
    setup.shutdown().await;
    Ok(samples)
}

/// Recovery of `records` pending archives of a committer proven dead (its registration ended as
/// a crash), one message each, spread over 100 sessions: one sample, the whole recovery.
pub async fn recovery(dir: &std::path::Path, records: usize) -> Result<Duration, BenchError> {
    let volatile = FsStore::open_with(dir, Durability::Volatile).map_err(|e| failed("open")(&e))?;
    let dead = ProcessId::current();
    let registration = volatile
        .register_owner(&dead.key())
        .await
        .map_err(|e| failed("register")(&e))?
        .ok_or("the file store proves no deaths")?;
    registration.end_as_crash();
    let owner = dead.owner();
    for r in 0..records {
        let session = SessionName::new(&format!("s{}", r % 100)).expect("valid");
        let archive = ArchiveEntry {
            v: entry::FORMAT_VERSION,
            messages: vec![Message {
                id: format!("m{r}"),
                text: format!("message {r}"),
            }],
            owner: owner.clone(),
            written_at_ms: entry::wall_ms(),
        };
        let created = volatile
            .create(&session.archive((r / 100) as u64), &entry::encode(&archive))
            .await
            .map_err(|e| failed("setup")(&e))?;
        assert!(created.is_created());
    }
    let durable = Sessions::open_with(
        FsStore::open(dir).map_err(|e| failed("open")(&e))?,
        RedoOptions::default(),
        Arc::new(EchoExtractor),
        ProcessId::current(),
    )
    .await
    .map_err(|e| failed("open")(&e))?;
    let started = Instant::now();
    let recovered = durable.recover().await.map_err(|e| failed("recover")(&e))?;
    let elapsed = started.elapsed();
    if recovered.replayed.len() != records {
        return Err(format!(
            "recovery replayed {} of {records} pending records",
            recovered.replayed.len()
        ));
    }
    durable.shutdown().await;
    Ok(elapsed)
}

/// A worker pass over `items` queued items (committed untimed): the time per item.
pub async fn worker(dir: &std::path::Path, items: usize) -> Result<Duration, BenchError> {
    let setup =
        sessions(FsStore::open_with(dir, Durability::Volatile).map_err(|e| failed("open")(&e))?)
            .await?;
    for i in 0..items {
        let session = format!("w{}", i % 10);
        setup
            .add(&session, "x")
            .await
            .map_err(|e| failed("add")(&e))?;
        setup
            .commit(&session)
            .await
            .map_err(|e| failed("commit")(&e))?;
    }
    setup.shutdown().await;
    let durable = sessions(FsStore::open(dir).map_err(|e| failed("open")(&e))?).await?;
    let started = Instant::now();
    let worked = durable.work_once().await.map_err(|e| failed("work")(&e))?;
    let elapsed = started.elapsed();
    if worked.processed.len() != items {
        return Err(format!(
            "the worker processed {} of {items} items",
            worked.processed.len()
        ));
    }
    durable.shutdown().await;
    Ok(elapsed / items as u32)
}

/// Every redo case, each beside the floor measured in the same run.
pub async fn run_all(dir: &std::path::Path, quick: bool) -> Result<Vec<Measurement>, BenchError> {
    let n = if quick { 20 } else { 100 };
    let records = if quick { 1_000 } else { 10_000 };
    let floor_store: Arc<dyn Store> =
        Arc::new(FsStore::open(dir.join("floor")).map_err(|e| failed("open")(&e))?);
    // The floor of the recovery case: `records` durable creates, one after another, timed whole.
    let started = Instant::now();
    floor_create(Arc::clone(&floor_store), records).await?;
    let floor_total = started.elapsed();
    let recovery_total = recovery(&dir.join("recovery"), records).await?;
    let raw = vec![
        summarise(
            "floor: durable create-if-absent (FsStore)",
            floor_create(floor_store, n * 2).await?,
        ),
        summarise(
            "commit phase 1, 1 message (FsStore)",
            commit(&dir.join("p1"), 1, n, true).await?,
        ),
        summarise(
            "commit, 1 message (FsStore)",
            commit(&dir.join("c1"), 1, n, false).await?,
        ),
        summarise(
            "commit, 10 messages (FsStore)",
            commit(&dir.join("c10"), 10, (n / 2).max(5), false).await?,
        ),
        summarise(
            "worker, per item (FsStore)",
            vec![worker(&dir.join("work"), n * 2).await?],
        ),
        summarise(
            &format!("{records} floor creates, one after another (FsStore)"),
            vec![floor_total],
        ),
        summarise(
            &format!("recovery of {records} pending records (FsStore)"),
            vec![recovery_total],
        ),
    ];
    let floor = raw[0].2;
    let baseline_of = |i: usize| match i {
        3 => Some(2),
        6 => Some(5),
        _ => None,
    };
    Ok(measurements(raw, |_| floor, baseline_of))
}
