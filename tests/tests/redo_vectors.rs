//! The redo-log implementation replays specs/vectors/redo.json from the file alone, as a port of
//! the protocol would (the reference replayer: format in specs/vectors/README.md).
//!
//! Each committer is a `Sessions` with its own owner registration; recovery and each worker run
//! are fresh ones. A crash is a store wrapper that fails every call after the actor's n-th
//! successful create of a redo-log key (the path locks' own keys, which recovery's lock writes,
//! are not counted), after which the actor's registration ends as its death would.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use lockstep::lock::owner::{process_part, ProcessId};
use lockstep::mutants::{activate, Mutant};
use lockstep::redo::entry::Message;
use lockstep::redo::{self, ExtractError, MemoryExtractor, RedoOptions, Sessions};
use lockstep::store::{
    Created, Key, Liveness, MemStore, OwnerRegistration, Store, StoreError, Version,
};
use lockstep_model::redo::vectors::{
    self, ArchiveState, Expected, VectorFile, VectorOp, COMMITTERS,
};

const SESSION: &str = "s";

fn load() -> VectorFile {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../specs/vectors/redo.json");
    let text = std::fs::read_to_string(path).expect("specs/vectors/redo.json");
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
    let again = vectors::generate(file.vectors.len(), 10, 1);
    assert_eq!(file.generated_by, again.generated_by);
    assert!(
        file == again,
        "specs/vectors/redo.json is stale: run `{}`",
        file.generated_by
    );
}

/// Every extraction yields exactly 2 memories, as the model's do.
struct TwoMemories;

#[async_trait::async_trait]
impl MemoryExtractor for TwoMemories {
    async fn extract(&self, messages: &[Message]) -> Result<Vec<String>, ExtractError> {
        let ids: Vec<&str> = messages.iter().map(|m| m.id.as_str()).collect();
        Ok(vec![
            format!("about {ids:?}"),
            format!("also {}", ids.len()),
        ])
    }
}

/// Fails every call after `left` successful creates of redo-log keys.
#[derive(Clone)]
struct CrashAfter {
    inner: MemStore,
    left: Arc<Mutex<Option<u8>>>,
}

impl CrashAfter {
    fn new(inner: MemStore, creates: Option<u8>) -> CrashAfter {
        CrashAfter {
            inner,
            left: Arc::new(Mutex::new(creates)),
        }
    }

    fn crashed(&self) -> bool {
        *self.left.lock().unwrap() == Some(0)
    }

    fn alive(&self) -> Result<(), StoreError> {
        if self.crashed() {
            return Err(StoreError::Injected("the process crashed".into()));
        }
        Ok(())
    }
}

/// The path locks' keys (recovery's own lock): not counted.
fn is_lock_key(key: &Key) -> bool {
    ["locks/", "tickets/", "owners/"]
        .iter()
        .any(|p| key.as_str().starts_with(p))
}

#[async_trait::async_trait]
impl Store for CrashAfter {
    async fn get(&self, key: &Key) -> Result<Option<(Vec<u8>, Version)>, StoreError> {
        self.alive()?;
        self.inner.get(key).await
    }
    async fn create(&self, key: &Key, bytes: &[u8]) -> Result<Created, StoreError> {
        self.alive()?;
        let created = self.inner.create(key, bytes).await?;
        if created.is_created() && !is_lock_key(key) {
            if let Some(left) = self.left.lock().unwrap().as_mut() {
                *left = left.saturating_sub(1);
            }
        }
        Ok(created)
    }
    async fn list(&self, prefix: &str) -> Result<Vec<Key>, StoreError> {
        self.alive()?;
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        self.alive()?;
        self.inner.delete(key).await
    }
    fn describe(&self) -> String {
        "crash-after".into()
    }
    async fn register_owner(
        &self,
        owner: &str,
    ) -> Result<Option<Box<dyn OwnerRegistration>>, StoreError> {
        self.inner.register_owner(owner).await
    }
    async fn owner_liveness(&self, owner: &str) -> Result<Liveness, StoreError> {
        self.inner.owner_liveness(owner).await
    }
}

/// A fresh identity (`ProcessId::current` draws a new random part on every call).
fn identity() -> ProcessId {
    ProcessId::current()
}

fn options() -> RedoOptions {
    RedoOptions {
        session_lock: false,
        io_retries: 0,
        replays_at_once: 1,
        ..RedoOptions::default()
    }
}

async fn open(store: CrashAfter, process: ProcessId) -> Sessions {
    Sessions::open_with(store, options(), Arc::new(TwoMemories), process)
        .await
        .unwrap()
}

struct Committer {
    process: ProcessId,
    crashed: bool,
}

struct Replay {
    store: MemStore,
    adder: Sessions,
    committers: Vec<Committer>,
    /// Message ids by add order.
    messages: Vec<String>,
}

impl Replay {
    async fn new() -> Replay {
        let store = MemStore::new();
        let adder = open(CrashAfter::new(store.clone(), None), identity()).await;
        Replay {
            store,
            adder,
            committers: (0..COMMITTERS)
                .map(|_| Committer {
                    process: identity(),
                    crashed: false,
                })
                .collect(),
            messages: Vec::new(),
        }
    }

    /// Runs one actor's operation over its own crashing store; ends it as a crash if it crashed.
    async fn run_actor(
        &self,
        process: ProcessId,
        crash_after: Option<u8>,
        op: &VectorOp,
    ) -> (&'static str, bool) {
        let store = CrashAfter::new(self.store.clone(), crash_after);
        let sessions = open(store.clone(), process).await;
        let outcome = match op {
            VectorOp::Commit { .. } => match sessions.commit(SESSION).await {
                Ok(c) if c.archive.is_some() => "committed",
                Ok(_) => "nothing",
                Err(_) => "failed",
            },
            VectorOp::Recover { .. } => match sessions.recover().await {
                Ok(_) => "recovered",
                Err(_) => "failed",
            },
            VectorOp::Work { .. } => match sessions.work(1).await {
                Ok(w) if w.processed.len() == 1 => "worked",
                Ok(_) => "nothing to work",
                Err(_) => "failed",
            },
            VectorOp::Add => unreachable!(),
        };
        let crashed = store.crashed();
        if crashed {
            sessions.kill().await;
            return ("crashed", true);
        }
        sessions.shutdown().await;
        (outcome, false)
    }

    async fn apply(&mut self, op: &VectorOp) -> String {
        match *op {
            VectorOp::Add => {
                let id = self
                    .adder
                    .add(SESSION, &format!("m{}", self.messages.len()))
                    .await
                    .unwrap();
                self.messages.push(id);
                "added".into()
            }
            VectorOp::Commit {
                committer,
                crash_after_creates,
            } => {
                let process = self.committers[committer].process.clone();
                let (outcome, crashed) = self.run_actor(process, crash_after_creates, op).await;
                self.committers[committer].crashed |= crashed;
                outcome.into()
            }
            VectorOp::Recover {
                crash_after_creates,
            }
            | VectorOp::Work {
                crash_after_creates,
            } => self
                .run_actor(identity(), crash_after_creates, op)
                .await
                .0
                .into(),
        }
    }

    /// The store's state, in the vector's terms.
    async fn observe(&self, outcome: String) -> Expected {
        let view = redo::inspect(&self.store).await.unwrap();
        let number = |id: &str| {
            self.messages
                .iter()
                .position(|m| m == id)
                .expect("an added message") as u8
        };
        let Some(view) = view.session(SESSION) else {
            return Expected {
                outcome,
                stored: vec![],
                archives: vec![],
            };
        };
        let mut stored: Vec<u8> = view.messages.iter().map(|m| number(&m.id)).collect();
        stored.sort();
        let memories = view.memories.iter().fold(BTreeMap::new(), |mut n, m| {
            *n.entry(m.archive).or_insert(0u8) += 1;
            n
        });
        let archives = view
            .archives
            .iter()
            .map(|a| {
                let mut messages: Vec<u8> = a.messages.iter().map(|id| number(id)).collect();
                messages.sort();
                let owner = self
                    .committers
                    .iter()
                    .position(|c| c.process.key() == process_part(&a.owner))
                    .expect("an archive of a known committer") as u8;
                let row = match view.queue.iter().find(|r| r.archive == a.index) {
                    None => "none",
                    Some(r) if r.state == "pending" => "pending",
                    // Claimed by a worker that crashed (vectors' workers run to their end or die).
                    Some(_) => "claimed",
                };
                ArchiveState {
                    messages,
                    owner,
                    done: a.done,
                    manifest: memories.contains_key(&a.index),
                    memories: memories.get(&a.index).copied().unwrap_or(0),
                    row: row.into(),
                    effects: view.effects.get(&a.index).copied().unwrap_or(0) as u8,
                }
            })
            .collect();
        Expected {
            outcome,
            stored,
            archives,
        }
    }
}

/// Replays every vector; the first mismatch, if any.
fn replay_all(file: &VectorFile) -> Result<usize, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut steps = 0;
    for vector in &file.vectors {
        rt.block_on(async {
            let mut replay = Replay::new().await;
            for (i, (op, expected)) in vector.steps.iter().enumerate() {
                let outcome = replay.apply(op).await;
                let observed = replay.observe(outcome).await;
                if &observed != expected {
                    return Err(format!(
                        "{} step {i} {op:?}:\n  expected {expected:?}\n  observed {observed:?}",
                        vector.id
                    ));
                }
                steps += 1;
            }
            replay.adder.shutdown().await;
            Ok(())
        })?;
    }
    Ok(steps)
}

#[test]
fn the_implementation_replays_every_vector() {
    let _one = exclusive(None);
    let file = load();
    let steps = replay_all(&file).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{} vectors, {steps} steps replayed", file.vectors.len());
}

/// Planted: `done` before the enqueue. A commit that crashes between them leaves `done` and no
/// row, where the model has the row and no `done`.
#[test]
fn the_replay_catches_done_before_enqueue() {
    let _one = exclusive(Some(Mutant::RedoDoneBeforeEnqueue));
    let result = replay_all(&load());
    activate(None);
    let error = result.expect_err("the planted bug must be caught");
    assert!(error.contains("done: true"), "{error}");
}
