//! The redo-log implementation held to the redo model's properties, with crash injection,
//! pauses and lost answers at every storage operation of commit, recovery and the worker.
//!
//! proptest generates a sequence of operations on one session: the user adds a message;
//! committer `c` commits (through its own scripted store: it may pause before its k-th create,
//! crash before its k-th create or delete, or have a create land and its answer lost); a paused
//! committer resumes; recovery runs; a worker runs one pass. Each committer, recovery and worker
//! is a `Sessions` of its own with its own owner registration, so that a crash is provable: a
//! crashed actor's registration is ended as a crash would end it. Half the cases run without the
//! session lock (safety must not rest on it, as the model's `no-session-lock` world proves), so
//! that paused committers are zombies running beside newer commits.
//!
//! After each operation, on the store as readers see it (`redo::inspect`), every `always`
//! property of the model (model/src/redo/mod.rs) is checked:
//! - no message lost: every added message is stored or in an archive;
//! - no duplicate archive: no message is in two archives;
//! - memories whole: a manifest names only memories that exist;
//! - recovery idempotent: no memory is created for an archive whose manifest existed before;
//! - effect applied once: at most one effect per archive;
//! - no memory lost: an archive whose committer is alive and idle has finished its phase 2.
//!
//! At the end of each case the world is brought to rest (paused committers resume, crashed
//! actors are dead, recovery and workers run unscripted until nothing is left), and the model's
//! liveness properties are checked there: every redo record finished, and every archive's
//! effect delivered.
//!
//! This harness checks the model's properties on the implementation's states; unlike the lock
//! and merge harnesses it does not yet replay each storage operation through the model's
//! actions (trace validation). Cases: 256 on MemStore, 64 on FsStore (`PROPTEST_CASES` sets the
//! MemStore count; FsStore's scales with it).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use lockstep::lock::owner::{process_part, ProcessId};
use lockstep::mutants::{activate, Mutant};
use lockstep::redo::entry::Message;
use lockstep::redo::{
    self, ExtractError, MemoryExtractor, RedoError, RedoOptions, SessionView, Sessions,
};
use lockstep::store::{FsStore, Key, MemStore, Store};
use lockstep_tests::scripted::{Script, Scripted};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

const SESSION: &str = "s";
const COMMITTERS: usize = 3;

/// An extractor whose every run differs (as an LLM's does): each memory names its run.
struct Tagged(AtomicU64);

#[async_trait::async_trait]
impl MemoryExtractor for Tagged {
    async fn extract(&self, messages: &[Message]) -> Result<Vec<String>, ExtractError> {
        let run = self.0.fetch_add(1, Ordering::Relaxed);
        Ok(messages
            .iter()
            .map(|m| format!("run {run}: {}", m.text))
            .collect())
    }
}

#[derive(Clone, Debug)]
enum Op {
    Add,
    Commit { c: usize, script: Option<Script> },
    Resume { c: usize },
    Recover { script: Option<Script> },
    Work { script: Option<Script> },
}

fn script() -> impl Strategy<Value = Option<Script>> {
    prop::option::weighted(
        0.6,
        prop_oneof![
            (0u32..5).prop_map(Script::PauseBefore),
            (0u32..6).prop_map(Script::CrashBefore),
            (0u32..3).prop_map(Script::CrashBeforeDelete),
            (0u32..6).prop_map(Script::LoseAnswer),
            (0u32..6).prop_map(Script::LoseAnswerAndCrash),
        ],
    )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Add),
        4 => (0..COMMITTERS, script()).prop_map(|(c, script)| Op::Commit { c, script }),
        2 => (0..COMMITTERS).prop_map(|c| Op::Resume { c }),
        2 => script().prop_map(|script| Op::Recover {
            // Recovery and the worker do not pause: a paused one would hold its work forever.
            script: script.filter(|s| !matches!(s, Script::PauseBefore(_)))
        }),
        2 => script().prop_map(|script| Op::Work {
            script: script.filter(|s| !matches!(s, Script::PauseBefore(_)))
        }),
    ]
}

/// One committer: its handle, its scripted view of the store, and a commit in flight.
struct Committer {
    sessions: Arc<Sessions>,
    store: Scripted,
    process: String,
    task: Option<tokio::task::JoinHandle<Result<redo::Committed, RedoError>>>,
}

struct World {
    rt: tokio::runtime::Runtime,
    store: Arc<dyn Store>,
    options: RedoOptions,
    extractor: Arc<dyn MemoryExtractor>,
    adder: Sessions,
    committers: Vec<Committer>,
    /// Messages added, by id.
    added: BTreeSet<String>,
    log: Vec<String>,
}

fn identity() -> ProcessId {
    let mut process = ProcessId::current();
    process.random = rand_u64() >> 16;
    process
}

fn rand_u64() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    // Distinct per call and per run: a counter mixed with the clock.
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ t
}

impl World {
    fn new(store: Arc<dyn Store>, session_lock: bool) -> World {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let options = RedoOptions {
            session_lock,
            io_retries: 2,
            ..RedoOptions::default()
        };
        let extractor: Arc<dyn MemoryExtractor> = Arc::new(Tagged(AtomicU64::new(0)));
        let adder = rt
            .block_on(Sessions::open_with(
                Arc::clone(&store),
                options.clone(),
                Arc::clone(&extractor),
                identity(),
            ))
            .unwrap();
        let mut world = World {
            rt,
            store,
            options,
            extractor,
            adder,
            committers: Vec::new(),
            added: BTreeSet::new(),
            log: Vec::new(),
        };
        for _ in 0..COMMITTERS {
            let committer = world.new_actor();
            world.committers.push(committer);
        }
        world
    }

    /// A fresh actor: its own identity, registration and scripted store.
    fn new_actor(&self) -> Committer {
        let store = Scripted::new(Arc::clone(&self.store));
        let process = identity();
        let key = process.key();
        let sessions = self
            .rt
            .block_on(Sessions::open_with(
                store.clone(),
                self.options.clone(),
                Arc::clone(&self.extractor),
                process,
            ))
            .unwrap();
        Committer {
            sessions: Arc::new(sessions),
            store,
            process: key,
            task: None,
        }
    }

    fn view(&self) -> SessionView {
        let view = self.rt.block_on(redo::inspect(&*self.store)).unwrap();
        view.session(SESSION).cloned().unwrap_or(SessionView {
            session: redo::SessionName::new(SESSION).unwrap(),
            messages: vec![],
            archives: vec![],
            memories: vec![],
            memories_missing: vec![],
            memories_unnamed: 0,
            pending: vec![],
            queue: vec![],
            effects: BTreeMap::new(),
            unrecognised: vec![],
        })
    }

    /// Waits until committer `c`'s commit finishes or pauses; a finished commit whose store
    /// crashed ends its actor as a crash, and a fresh actor takes its place.
    fn wait(&mut self, c: usize) -> Result<(), TestCaseError> {
        loop {
            let me = &mut self.committers[c];
            let Some(task) = &me.task else {
                return Ok(());
            };
            if task.is_finished() {
                let result = self.rt.block_on(me.task.take().unwrap()).unwrap();
                self.log.push(format!("  c{c} → {}", outcome(&result)));
                if me.store.crashed() {
                    let fresh = self.new_actor();
                    let dead = std::mem::replace(&mut self.committers[c], fresh);
                    self.kill(dead.sessions);
                }
                return Ok(());
            }
            if me.store.paused() {
                self.log.push(format!("  c{c} paused"));
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn kill(&self, sessions: Arc<Sessions>) {
        let sessions = Arc::try_unwrap(sessions).expect("no task holds a dead actor");
        self.rt.block_on(sessions.kill());
    }

    /// Runs recovery or a worker pass as a fresh actor with `script`, to its end.
    fn run_once(&mut self, script: Option<Script>, recover: bool) -> Result<(), TestCaseError> {
        let manifests_before = manifests(&self.view());
        let actor = self.new_actor();
        if let Some(script) = script {
            actor.store.arm(script);
        }
        let sessions = Arc::clone(&actor.sessions);
        let text = if recover {
            match self.rt.block_on(sessions.recover()) {
                Ok(r) => format!("replayed {}, claims freed {}", r.replayed.len(), r.claims_freed.len()),
                Err(e) => format!("error: {e}"),
            }
        } else {
            match self.rt.block_on(sessions.work_once()) {
                Ok(w) => format!("processed {:?}", w.processed),
                Err(e) => format!("error: {e}"),
            }
        };
        drop(sessions);
        self.log.push(format!("  → {text}"));
        check_no_memory_after_manifest(&actor.store.drain(), &manifests_before)?;
        if actor.store.crashed() {
            self.kill(actor.sessions);
        } else {
            let sessions = Arc::try_unwrap(actor.sessions).expect("done");
            self.rt.block_on(sessions.shutdown());
        }
        Ok(())
    }

    fn run(&mut self, op: &Op) -> Result<(), TestCaseError> {
        self.log.push(format!("{op:?}"));
        let manifests_before = manifests(&self.view());
        let mut landed_by = Vec::new();
        match op {
            Op::Add => {
                let id = self
                    .rt
                    .block_on(self.adder.add(SESSION, &format!("m{}", self.added.len())))
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                self.added.insert(id);
            }
            Op::Commit { c, script } => {
                let c = *c;
                if self.committers[c].task.is_some() {
                    return Ok(()); // paused: only Resume moves it
                }
                let me = &self.committers[c];
                me.store.drain();
                if let Some(script) = script {
                    me.store.arm(*script);
                }
                let sessions = Arc::clone(&me.sessions);
                self.committers[c].task =
                    Some(self.rt.spawn(async move { sessions.commit(SESSION).await }));
                let store = self.committers[c].store.clone();
                self.wait(c)?;
                landed_by.push(store);
            }
            Op::Resume { c } => {
                let c = *c;
                if !self.committers[c].store.paused() {
                    return Ok(());
                }
                let store = self.committers[c].store.clone();
                store.drain();
                store.resume();
                self.wait(c)?;
                landed_by.push(store);
            }
            Op::Recover { script } => self.run_once(*script, true)?,
            Op::Work { script } => self.run_once(*script, false)?,
        }
        let view = self.view();
        self.check(&view)?;
        // Recovery idempotent: a run of phase 2 that began after the manifest existed read it
        // and wrote no memory (recovery's runs are checked in `run_once`).
        for store in landed_by {
            check_no_memory_after_manifest(&store.drain(), &manifests_before)?;
        }
        Ok(())
    }

    /// The model's `always` properties on the store now.
    fn check(&self, view: &SessionView) -> Result<(), TestCaseError> {
        let stored: BTreeSet<&str> = view.messages.iter().map(|m| m.id.as_str()).collect();
        let mut in_archives: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
        for a in &view.archives {
            for id in &a.messages {
                in_archives.entry(id).or_default().push(a.index);
            }
        }
        for id in &self.added {
            prop_assert!(
                stored.contains(id.as_str()) || in_archives.contains_key(id.as_str()),
                "no message lost: {id} is neither stored nor archived"
            );
        }
        for (id, archives) in &in_archives {
            prop_assert!(
                archives.len() <= 1,
                "no duplicate archive: {id} is in archives {archives:?}"
            );
        }
        prop_assert!(
            view.memories_missing.is_empty(),
            "memories whole: a manifest names missing memories {:?}",
            view.memories_missing
        );
        for (k, n) in &view.effects {
            prop_assert!(*n <= 1, "effect applied once: archive {k} has {n} effects");
        }
        // No memory lost: an archive whose committer is a live actor with no commit in flight
        // has finished its phase 2 (nobody else would).
        for a in view.archives.iter().filter(|a| !a.done) {
            let owner = process_part(&a.owner);
            let idle_owner = self
                .committers
                .iter()
                .any(|c| c.process == owner && c.task.is_none());
            prop_assert!(
                !idle_owner,
                "no memory lost: archive {} is pending, and its committer {owner} is alive and idle (nobody will finish it)",
                a.index
            );
        }
        Ok(())
    }

    /// Brings the world to rest and checks the model's liveness properties there.
    fn settle(&mut self) -> Result<(), TestCaseError> {
        self.log.push("settle".into());
        for c in 0..COMMITTERS {
            if self.committers[c].store.paused() {
                self.committers[c].store.resume();
            }
            self.wait(c)?;
        }
        // Every actor ends: a crash ends nobody's work but its own.
        for c in 0..COMMITTERS {
            let fresh = self.new_actor();
            let actor = std::mem::replace(&mut self.committers[c], fresh);
            let sessions = Arc::try_unwrap(actor.sessions).expect("idle");
            self.rt.block_on(sessions.shutdown());
        }
        for _ in 0..3 {
            let view = self.view();
            if view.pending.is_empty() && view.queue.is_empty() {
                break;
            }
            self.run_once(None, true)?;
            self.run_once(None, false)?;
        }
        let view = self.view();
        self.check(&view)?;
        prop_assert!(
            view.pending.is_empty(),
            "every redo record finished: archives {:?} are pending at rest",
            view.pending
        );
        prop_assert!(view.queue.is_empty(), "the queue is not empty at rest: {:?}", view.queue);
        for a in &view.archives {
            prop_assert_eq!(
                view.effects.get(&a.index).copied().unwrap_or(0),
                1,
                "delivered at least once: archive {}'s effect",
                a.index
            );
            prop_assert!(
                view.memories.iter().any(|m| m.archive == a.index),
                "no memory lost: archive {} has no memories at rest",
                a.index
            );
        }
        Ok(())
    }
}

/// Which archives had a manifest.
fn manifests(view: &SessionView) -> BTreeSet<u64> {
    view.memories.iter().map(|m| m.archive).collect()
}

/// Recovery idempotent: no memory create landed for an archive whose manifest existed before
/// the operation began.
fn check_no_memory_after_manifest(
    landed: &[lockstep_tests::scripted::Landed],
    manifests_before: &BTreeSet<u64>,
) -> Result<(), TestCaseError> {
    for create in landed {
        if let Some(k) = memory_archive(&create.key) {
            prop_assert!(
                !manifests_before.contains(&k),
                "recovery idempotent: {} was written, but archive {k}'s manifest existed already",
                create.key
            );
        }
    }
    Ok(())
}

/// The archive of a memory key `memories/s/<k>/<x>/<n>`.
fn memory_archive(key: &Key) -> Option<u64> {
    let parts: Vec<&str> = key.as_str().split('/').collect();
    match parts.as_slice() {
        ["memories", s, k, _x, _n] if *s == SESSION => k.parse().ok(),
        _ => None,
    }
}

fn outcome(result: &Result<redo::Committed, RedoError>) -> String {
    match result {
        Ok(c) => match c.archive {
            Some(k) => format!("archive {k} ({} messages)", c.messages.len()),
            None => "nothing to commit".into(),
        },
        Err(e) => format!("error: {e}"),
    }
}

/// Runs one case; the log of what happened on failure.
fn case(store: Arc<dyn Store>, session_lock: bool, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut world = World::new(store, session_lock);
    let result = (|| {
        for op in ops {
            world.run(op)?;
        }
        world.settle()
    })();
    result.map_err(|e| TestCaseError::fail(format!("{e}\n{}", world.log.join("\n"))))
}

/// The mutant switch is process-wide: tests of this binary take turns.
fn exclusive(mutant: Option<Mutant>) -> MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    activate(mutant);
    guard
}

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn strategy() -> impl Strategy<Value = (bool, Vec<Op>)> {
    (any::<bool>(), prop::collection::vec(op(), 1..24))
}

/// Runs `cases` cases, each on a fresh MemStore or (`on_fs`) a fresh FsStore.
fn run(cases: u32, on_fs: bool) -> Result<(), String> {
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&strategy(), |(lock, ops)| {
            if on_fs {
                let dir = tempfile::tempdir().unwrap();
                case(Arc::new(FsStore::open(dir.path()).unwrap()), lock, &ops)
            } else {
                case(Arc::new(MemStore::new()), lock, &ops)
            }
        })
        .map_err(|e| e.to_string())
}

#[test]
fn the_implementation_keeps_the_models_properties_on_memstore() {
    let _one = exclusive(None);
    if let Err(e) = run(cases(256), false) {
        panic!("{e}");
    }
}

#[test]
fn the_implementation_keeps_the_models_properties_on_fsstore() {
    let _one = exclusive(None);
    if let Err(e) = run((cases(256) / 4).max(8), true) {
        panic!("{e}");
    }
}

/// Each planted bug is caught by this harness (on MemStore, within the cases given).
fn caught(mutant: Mutant, property: &str) {
    let _one = exclusive(Some(mutant));
    let result = run(cases(256).max(256), false);
    activate(None);
    match result {
        Ok(()) => panic!("the harness did not catch {}", mutant.name()),
        Err(e) => assert!(
            e.contains(property),
            "{} was caught, but not by \"{property}\":\n{e}",
            mutant.name()
        ),
    }
}

#[test]
fn catches_no_exclusion() {
    caught(Mutant::RedoNoExclusion, "no duplicate archive");
}

#[test]
fn catches_clear_all() {
    caught(Mutant::RedoClearAll, "no message lost");
}

#[test]
fn catches_archive_exists_is_theirs() {
    caught(Mutant::RedoArchiveExistsIsTheirs, "no memory lost");
}

#[test]
fn catches_skip_manifest_check() {
    caught(Mutant::RedoSkipManifestCheck, "recovery idempotent");
}

#[test]
fn catches_effect_not_keyed() {
    caught(Mutant::RedoEffectNotKeyed, "effect applied once");
}

#[test]
fn catches_ack_before_apply() {
    caught(Mutant::RedoAckBeforeApply, "delivered at least once");
}

#[test]
fn catches_done_before_enqueue() {
    caught(Mutant::RedoDoneBeforeEnqueue, "delivered at least once");
}
