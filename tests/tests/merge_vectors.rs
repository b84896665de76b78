//! The merge implementation replays specs/vectors/merge.json from the file alone, as a port of
//! the protocol would (the reference replayer: format in specs/vectors/README.md).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use lockstep::lock::owner::{process_part, ProcessId};
use lockstep::merge::{
    self, BranchName, CommitEntry, Lake, LockEntry, MergeError, MergeOptions, TailBase,
};
use lockstep::mutants::{activate, Mutant};
use lockstep::store::{FaultyStore, MemStore, Store};
use lockstep_model::merge::vectors::{
    self, Expected, NewestLock, ParentMerge, VectorFile, VectorOp, MERGERS,
};

fn load() -> VectorFile {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../specs/vectors/merge.json");
    let text = std::fs::read_to_string(path).expect("specs/vectors/merge.json");
    serde_json::from_str(&text).expect("the vector file parses")
}

fn exclusive(mutant: Option<Mutant>) -> MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    activate(mutant);
    guard
}

#[test]
fn committed_vectors_match_the_model() {
    let file = load();
    let again = vectors::generate(file.vectors.len(), 8, 1);
    assert_eq!(file.generated_by, again.generated_by);
    assert!(
        file == again,
        "specs/vectors/merge.json is stale: run `{}`",
        file.generated_by
    );
}

struct Merger {
    lake: Lake,
    store: FaultyStore<MemStore>,
    process: String,
    crashed: bool,
}

struct Replay {
    store: MemStore,
    mergers: Vec<Merger>,
    writer: Lake,
}

fn live() -> BranchName {
    BranchName::new("live").unwrap()
}

impl Replay {
    async fn new() -> Replay {
        let store = MemStore::new();
        let writer = Lake::open(store.clone()).await.unwrap();
        writer.create_branch("main", None).await.unwrap();
        writer
            .create_branch("live", Some("main"))
            .await
            .unwrap()
            .commit(b"0")
            .await
            .unwrap();
        let mut mergers = Vec::new();
        for _ in 0..MERGERS {
            let faulty = FaultyStore::new(store.clone());
            let process = ProcessId::current();
            let key = process.key();
            mergers.push(Merger {
                lake: Lake::open_as(faulty.clone(), process).await.unwrap(),
                store: faulty,
                process: key,
                crashed: false,
            });
        }
        Replay {
            store,
            mergers,
            writer,
        }
    }

    fn merger_of(&self, holder: &str) -> u8 {
        self.mergers
            .iter()
            .position(|m| m.process == process_part(holder))
            .expect("every holder is a merger") as u8
    }

    async fn run(&mut self, op: &VectorOp) -> Result<&'static str, String> {
        match *op {
            VectorOp::Merge {
                merger,
                crash_after_creates,
            } => {
                let m = &mut self.mergers[merger];
                if let Some(n) = crash_after_creates {
                    m.store.crash_after_creates(n as u64);
                }
                let result = m.lake.merge("live", MergeOptions::default()).await;
                if m.store.is_crashed() {
                    m.crashed = true;
                    m.lake.end_as_crash();
                    return Ok("crashed");
                }
                m.store.restart(); // disarms a crash that did not come
                match result {
                    Ok(_) => Ok("done"),
                    Err(MergeError::Busy { .. }) => Ok("busy"),
                    Err(error) => Err(format!("merger {merger} failed: {error}")),
                }
            }
            VectorOp::Write => {
                let live = self
                    .writer
                    .branch("live")
                    .await
                    .map_err(|e| e.to_string())?;
                live.commit(b"live write")
                    .await
                    .map_err(|e| e.to_string())?;
                Ok("written")
            }
            VectorOp::ForceRelease => merge::force_release(&self.store, &live(), None)
                .await
                .map_err(|e| e.to_string())?
                .map(|_| "released")
                .ok_or_else(|| "nothing to force-release".to_owned()),
            VectorOp::Recover => {
                let released = merge::recover(&self.store)
                    .await
                    .map_err(|e| e.to_string())?;
                if released.is_empty() {
                    return Err("recovery freed nothing".into());
                }
                Ok("released")
            }
        }
    }

    async fn observe(&self, outcome: &str) -> Expected {
        let store: &dyn Store = &self.store;
        let child_len = live().commits().end(store).await.unwrap() as u8;
        let (lock_len, lock_newest) =
            match live().mergelock().newest::<LockEntry>(store).await.unwrap() {
                None => (0, NewestLock::None),
                Some((i, LockEntry::Unlock { .. })) => (i as u8 + 1, NewestLock::Unlock),
                Some((i, LockEntry::Lock { holder, .. })) => (
                    i as u8 + 1,
                    NewestLock::Lock {
                        merger: self.merger_of(&holder),
                    },
                ),
            };
        let (version, tb) = live()
            .tailbase()
            .newest::<TailBase>(store)
            .await
            .unwrap()
            .unwrap();
        let main = BranchName::new("main").unwrap();
        let mut parent = Vec::new();
        for entry in merge::log(store, &main).await.unwrap() {
            if let CommitEntry::Merge { from, to, lock, .. } = entry.entry {
                let holder = match live()
                    .mergelock()
                    .get::<LockEntry>(store, lock)
                    .await
                    .unwrap()
                {
                    Some(LockEntry::Lock { holder, .. }) => self.merger_of(&holder),
                    other => panic!("merge commit names lock {lock}, which is {other:?}"),
                };
                parent.push(ParentMerge {
                    from: from as u8,
                    to: to as u8,
                    by: holder,
                });
            }
        }
        Expected {
            outcome: outcome.into(),
            child_len,
            lock_len,
            lock_newest,
            tail_version: version as u8,
            tail: tb.tail as u8,
            parent,
        }
    }
}

fn replay_all(file: &VectorFile) -> Result<BTreeMap<String, usize>, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut outcomes = BTreeMap::new();
    for vector in &file.vectors {
        rt.block_on(async {
            let mut replay = Replay::new().await;
            for (i, (op, expected)) in vector.steps.iter().enumerate() {
                let outcome = replay.run(op).await.map_err(|e| {
                    format!("{} step {i} ({op:?}): {e}", vector.id)
                })?;
                let found = replay.observe(outcome).await;
                if &found != expected {
                    return Err(format!(
                        "{} step {i} ({op:?}) diverges from the vector:\n expected {expected:?}\n found    {found:?}",
                        vector.id
                    ));
                }
                *outcomes.entry(expected.outcome.clone()).or_insert(0) += 1;
            }
            Ok::<_, String>(())
        })?;
    }
    Ok(outcomes)
}

#[test]
fn the_implementation_replays_every_vector() {
    let _one = exclusive(None);
    let outcomes = replay_all(&load()).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("steps replayed, by expected outcome: {outcomes:?}");
    for needed in ["done", "busy", "crashed", "written", "released"] {
        assert!(
            outcomes.get(needed).is_some_and(|n| *n > 0),
            "no vector step ends {needed}: {outcomes:?}"
        );
    }
}

#[test]
fn the_replay_catches_tail_moved_to_own_cut() {
    let _one = exclusive(Some(Mutant::MergeTailToOwnCut));
    let result = replay_all(&load());
    activate(None);
    let error = result.expect_err("replaying the vectors must expose merge-tail-to-own-cut");
    assert!(error.contains("diverges from the vector"), "{error}");
}
