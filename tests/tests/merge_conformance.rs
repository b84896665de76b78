//! Lockstep conformance of the merge implementation to the merge model, with crash injection,
//! pauses and lost answers (the method of tests/lock_conformance.rs).
//!
//! proptest generates a sequence of operations over one child `live` of a root `main`: merger
//! `m` runs `Lake::merge` (through its own scripted store: it may pause before its k-th create,
//! crash before it, or have a create land and its answer lost); a paused merger resumes; a
//! writer commits to the child; an operator force-releases the merge lock; recovery runs; a
//! second child `side` commits and merges into the same parent. The parent's commit 0 adds
//! object X, and `live`'s commit 0 and `side`'s commit 0 both delete it: of their merges the later
//! must abort on the conflict, as the model's does. Each
//! merger is a `Lake` of its own, with its own owner registration, so that a crash is provable
//! (the crashed merger's registration is ended as a crash would end it).
//!
//! A paused merger is how zombies arise: it is force-released behind its back, another merger
//! takes the lock, and then it resumes with what it read before.
//!
//! The model is the oracle. After each operation:
//! 1. trace validation: every create that landed must be the model actor's next effect (a lost
//!    answer is the model's `Ambiguous` step), and a finished merge leaves the model merger
//!    nothing more to write;
//! 2. the outcomes agree (busy only where the model's merger waits for a held lock);
//! 3. refinement: `inspect(store)` equals the model state's storage part;
//! 4. every `always` property of the model holds on that state.
//!
//! Cases: 512 on MemStore, 128 on FsStore (`PROPTEST_CASES` sets the MemStore count, FsStore's
//! scales with it).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use lockstep::lock::owner::{process_part, ProcessId};
use lockstep::merge::{
    self, BranchName, CommitEntry, Lake, LockEntry, MergeError, MergeOptions, Merged, Object,
    TailBase,
};
use lockstep::mutants::{activate, Mutant};
use lockstep::store::{FsStore, MemStore, Store};
use lockstep_model::merge::{
    LockEntry as ModelLock, MStep, MergeAction, MergeConfig, MergeModel, MergeState, MergeVariant,
};
use lockstep_tests::coverage::Coverage;
use lockstep_tests::refinement::ModelCursor;
use lockstep_tests::replay;
use lockstep_tests::scripted::{Landed, Script, Scripted};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use stateright::Model;

const MERGERS: usize = 3;
const CHILD: &str = "live";
const PARENT: &str = "main";
/// The second child, merging into the same parent.
const SIBLING: &str = "side";

/// One step of a case (serialised in replay files).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
enum Op {
    /// Merger `m` merges, with `script` on its creates.
    Merge {
        m: usize,
        script: Option<Script>,
    },
    /// A paused merger goes on.
    Resume {
        m: usize,
    },
    /// A writer commits to the child.
    Write,
    ForceRelease,
    Recover,
    /// The second child `side` writes a commit and merges it into the same parent.
    Sibling,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let script = prop::option::weighted(
        0.6,
        prop_oneof![
            (0u32..5).prop_map(Script::PauseBefore),
            (0u32..5).prop_map(Script::CrashBefore),
            (0u32..5).prop_map(Script::LoseAnswer),
        ],
    );
    prop_oneof![
        5 => (0..MERGERS, script).prop_map(|(m, script)| Op::Merge { m, script }),
        3 => (0..MERGERS).prop_map(|m| Op::Resume { m }),
        3 => Just(Op::Write),
        2 => Just(Op::ForceRelease),
        1 => Just(Op::Recover),
        1 => Just(Op::Sibling),
    ]
}

/// The model of a case: with the second child and its conflict, or (half the cases, where the
/// first child's zombies and roll-forwards are not cut short by a conflict) without.
fn model(with_sibling: bool) -> MergeModel {
    MergeModel::new(MergeConfig {
        mergers: MERGERS as u8,
        child_commits: 1,
        child_writes: 4,
        crashes: 3,
        force_releases: 4,
        lock_retries: 8,
        ambiguous: 4,
        sibling_merges: if with_sibling { 2 } else { 0 },
        ..MergeConfig::new(MergeVariant::Fixed(None))
    })
    .unwrap()
}

/// What the cases of one test exercised.
static COVERAGE: Coverage<15> = Coverage::new(
    [
        "merged",
        "rolled forward",
        "nothing to merge",
        "busy",
        "lock lost (fenced zombie)",
        "paused",
        "crashes fired",
        "answers lost",
        "writes",
        "force releases",
        "locks recovered",
        "zombie writes after a force release",
        "conflicts aborted",
        "sibling merges",
        "skipped",
    ],
    // Events FsStore's (and etcd's) fewer cases may miss; MemStore's run asserts them too.
    &[
        "rolled forward",
        "lock lost (fenced zombie)",
        "locks recovered",
        "zombie writes after a force release",
        "sibling merges",
    ],
);

struct Merger {
    lake: Lake,
    process: String,
    store: Scripted,
    task: Option<tokio::task::JoinHandle<Result<Merged, MergeError>>>,
    crashed: bool,
    /// Force-released while it held the lock: its writes from then on are a zombie's.
    revoked: bool,
}

struct Harness {
    cursor: ModelCursor<MergeModel>,
    shared: Arc<dyn Store>,
    mergers: Vec<Merger>,
    writer: Lake,
    /// The operator's and recovery's view, recorded like a merger's.
    admin: Scripted,
    /// The second child's merger, recorded.
    sibling: Lake,
    sibling_store: Scripted,
    crashes_armed: u8,
    answers_armed: u8,
    rt: tokio::runtime::Runtime,
}

fn child() -> BranchName {
    BranchName::new(CHILD).unwrap()
}

fn parent() -> BranchName {
    BranchName::new(PARENT).unwrap()
}

/// A model step's storage effect, in the words `describe` uses for the implementation's creates.
fn effect(last: &MergeState, next: &MergeState) -> Option<String> {
    if next.lock_len > last.lock_len {
        let index = next.lock_len - 1;
        return Some(match next.lock_newest {
            ModelLock::Lock { holder } => format!("lock#{index} = lock by m{holder}"),
            _ => format!("lock#{index} = unlock"),
        });
    }
    for k in 0..last.parent.len() {
        if let (None, Some(c)) = (last.parent[k], next.parent[k]) {
            if c.sibling {
                return Some(format!("parent#{k} = B {}..{}", c.from, c.to));
            }
            return Some(format!(
                "parent#{k} = child {}..{} by m{}",
                c.from, c.to, c.by
            ));
        }
    }
    if next.tail_version > last.tail_version {
        return Some(format!(
            "tailbase#{} = tail {}",
            next.tail_version, next.tail
        ));
    }
    if next.child_len > last.child_len {
        return Some(format!("child#{}", next.child_len - 1));
    }
    None
}

/// The storage part of the model's state, as `inspect` reads it from the store.
#[derive(Debug, PartialEq, Eq)]
struct Abstract {
    child_len: u8,
    lock_len: u8,
    lock_newest: ModelLock,
    tail: u8,
    tail_version: u8,
    /// (from, to, by, sibling) of each merge commit.
    parent: Vec<(u8, u8, u8, bool)>,
}

fn abstract_of(state: &MergeState) -> Abstract {
    Abstract {
        child_len: state.child_len,
        lock_len: state.lock_len,
        lock_newest: state.lock_newest,
        tail: state.tail,
        tail_version: state.tail_version,
        parent: state
            .parent
            .iter()
            .flatten()
            .map(|c| (c.from, c.to, if c.sibling { 0 } else { c.by }, c.sibling))
            .collect(),
    }
}

impl Harness {
    fn new(shared: Arc<dyn Store>, with_sibling: bool) -> Harness {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let writer = rt.block_on(Lake::open(Arc::clone(&shared))).unwrap();
        // The parent's own commit 0 adds object X (so the model's parent position k is the
        // parent's entry k + 1); the child's commit 0 deletes X, and so does the sibling's.
        rt.block_on(async {
            let main = writer.create_branch(PARENT, None).await.unwrap();
            main.commit_change("x", vec![Object::new("x", b"parent data")], vec![])
                .await
                .unwrap();
            let live = writer.create_branch(CHILD, Some(PARENT)).await.unwrap();
            let deletes = if with_sibling {
                vec!["x".into()]
            } else {
                vec![]
            };
            live.commit_change("c0", vec![], deletes).await.unwrap();
            writer.create_branch(SIBLING, Some(PARENT)).await.unwrap();
        });
        let sibling_store = Scripted::new(Arc::clone(&shared));
        let sibling = rt.block_on(Lake::open(sibling_store.clone())).unwrap();
        let mut mergers = Vec::new();
        for _ in 0..MERGERS {
            let store = Scripted::new(Arc::clone(&shared));
            let process = ProcessId::current();
            let key = process.key();
            let lake = rt.block_on(Lake::open_as(store.clone(), process)).unwrap();
            mergers.push(Merger {
                lake,
                process: key,
                store,
                task: None,
                crashed: false,
                revoked: false,
            });
        }
        Harness {
            cursor: ModelCursor::new(model(with_sibling), effect),
            admin: Scripted::new(Arc::clone(&shared)),
            sibling,
            sibling_store,
            shared,
            mergers,
            writer,
            crashes_armed: 0,
            answers_armed: 0,
            rt,
        }
    }

    fn merger_of(&self, holder: &str) -> Result<usize, String> {
        self.mergers
            .iter()
            .position(|m| m.process == process_part(holder))
            .ok_or_else(|| format!("lock held by {holder}, who is no merger"))
    }

    /// An implementation create in the model's words; `None` for the sibling's own keys (its
    /// commits, lock and TAIL/BASE), which the model leaves out.
    fn describe(&self, landed: &Landed) -> Result<Option<String>, String> {
        let key = landed.key.as_str();
        if key.starts_with("branches/side/") {
            return Ok(None);
        }
        let bad = |e: MergeError| format!("{key}: {e}");
        let index = |prefix: &str| -> Option<u64> { key.strip_prefix(prefix)?.parse().ok() };
        if let Some(i) = index("branches/live/mergelock/~") {
            let entry: LockEntry = merge::entry::decode(key, &landed.bytes).map_err(bad)?;
            return Ok(Some(match entry {
                LockEntry::Lock { holder, .. } => {
                    format!("lock#{i} = lock by m{}", self.merger_of(&holder)?)
                }
                LockEntry::Unlock { .. } => format!("lock#{i} = unlock"),
            }));
        }
        if let Some(v) = index("branches/live/tailbase/~") {
            let tb: TailBase = merge::entry::decode(key, &landed.bytes).map_err(bad)?;
            return Ok(Some(format!("tailbase#{v} = tail {}", tb.tail)));
        }
        if let Some(i) = index("branches/main/commits/~") {
            let entry: CommitEntry = merge::entry::decode(key, &landed.bytes).map_err(bad)?;
            let CommitEntry::Merge {
                child,
                from,
                to,
                lock,
                ..
            } = entry
            else {
                return Err(format!("{key}: a plain commit on the parent"));
            };
            let k = i
                .checked_sub(1)
                .ok_or("a merge commit over the parent's own commit 0")?;
            if child == SIBLING {
                return Ok(Some(format!("parent#{k} = B {from}..{to}")));
            }
            let by = self.lock_holder(lock)?;
            return Ok(Some(format!("parent#{k} = child {from}..{to} by m{by}")));
        }
        if let Some(i) = index("branches/live/commits/~") {
            return Ok(Some(format!("child#{i}")));
        }
        Err(format!("{key}: a create outside the protocol"))
    }

    fn lock_holder(&self, lock: u64) -> Result<usize, String> {
        let entry = self
            .rt
            .block_on(child().mergelock().get::<LockEntry>(&*self.shared, lock))
            .map_err(|e| e.to_string())?;
        match entry {
            Some(LockEntry::Lock { holder, .. }) => self.merger_of(&holder),
            other => Err(format!("lock#{lock} is {other:?}, not a lock")),
        }
    }

    fn enabled(&self, action: MergeAction) -> bool {
        let mut actions = Vec::new();
        self.cursor.model.actions(&self.cursor.state, &mut actions);
        actions.contains(&action)
    }

    /// Takes merger `m`'s read steps until its next step would write (or it waits, or is done).
    fn reads(&mut self, m: usize) -> Result<(), String> {
        let step = MergeAction::Step(m as u8);
        for _ in 0..64 {
            if !self.enabled(step) {
                return Ok(());
            }
            let Some(next) = self.cursor.model.next_state(&self.cursor.state, step) else {
                return Ok(());
            };
            if effect(&self.cursor.state, &next).is_some() {
                return Ok(());
            }
            self.cursor
                .act(step)
                .map_err(|()| "read step refused".to_owned())?;
        }
        Err(format!("m{m} reads forever\n{}", self.cursor.behaviour()))
    }

    /// Replays creates that landed through `actor`'s steps (a merger's reads before each).
    fn replay(&mut self, actor: Actor, landed: Vec<Landed>) -> Result<(), String> {
        for create in landed {
            let Some(expected) = self.describe(&create)? else {
                continue; // the sibling's own keys
            };
            let action = match actor {
                Actor::Merger(m) => {
                    self.reads(m)?;
                    if self.mergers[m].revoked {
                        COVERAGE.count("zombie writes after a force release");
                    }
                    if create.answer_lost {
                        COVERAGE.count("answers lost");
                        MergeAction::Ambiguous(m as u8)
                    } else {
                        MergeAction::Step(m as u8)
                    }
                }
                Actor::Writer => MergeAction::Write,
                Actor::Recovery => MergeAction::Recover,
                Actor::Operator => MergeAction::ForceRelease,
                Actor::Sibling => MergeAction::Sibling,
            };
            match self.cursor.act(action) {
                Ok(Some(effect)) if effect == expected => {}
                Ok(Some(effect)) => {
                    return Err(format!(
                        "the implementation wrote {expected}, the model writes {effect}\n{}",
                        self.cursor.behaviour()
                    ))
                }
                Ok(None) | Err(()) => {
                    return Err(format!(
                    "the implementation wrote {expected}, which the model cannot ({action:?})\n{}",
                    self.cursor.behaviour()
                ))
                }
            }
        }
        Ok(())
    }

    /// Waits until merger `m`'s task finishes or pauses; settles a finished one.
    fn wait(&mut self, m: usize) -> Result<(), String> {
        for _ in 0..30_000 {
            let finished = self.mergers[m]
                .task
                .as_ref()
                .is_none_or(|t| t.is_finished());
            if finished || self.mergers[m].store.paused() {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let landed = self.mergers[m].store.drain();
        self.replay(Actor::Merger(m), landed)?;
        if self.mergers[m].store.paused() {
            COVERAGE.count("paused");
            return self.reads(m);
        }
        let task = self.mergers[m].task.take().expect("a task ran");
        let result = self
            .rt
            .block_on(task)
            .expect("the merge task did not panic");
        self.mergers[m].store.disarm();
        self.settle(m, result)
    }

    fn settle(&mut self, m: usize, result: Result<Merged, MergeError>) -> Result<(), String> {
        let crashed = self.mergers[m].store.crashed();
        self.reads(m)?;
        let step = self.cursor.state.mergers[m].step;
        match result {
            Err(error) if crashed => {
                COVERAGE.count("crashes fired");
                self.mergers[m].lake.end_as_crash();
                self.mergers[m].crashed = true;
                self.cursor.act(MergeAction::Crash(m as u8)).map_err(|()| {
                    format!("m{m} crashed ({error}) but the model cannot crash it")
                })?;
                return Ok(());
            }
            Err(MergeError::Busy { .. }) => {
                COVERAGE.count("busy");
                let locked = matches!(self.cursor.state.lock_newest, ModelLock::Lock { .. });
                if step != MStep::ReadLock || !locked {
                    return Err(format!(
                        "m{m} was told busy, but the model's m{m} is at {step:?}\n{}",
                        self.cursor.behaviour()
                    ));
                }
                return Ok(());
            }
            Err(MergeError::LockLost { .. }) => COVERAGE.count("lock lost (fenced zombie)"),
            Err(MergeError::Conflict { .. }) => {
                COVERAGE.count("conflicts aborted");
                if !self.cursor.state.mergers[m].aborted {
                    return Err(format!(
                        "m{m}'s merge aborted on a conflict, the model's m{m} did not\n{}",
                        self.cursor.behaviour()
                    ));
                }
            }
            Err(error) => return Err(format!("m{m} failed: {error}\n{}", self.cursor.behaviour())),
            Ok(merged) => COVERAGE.count(match merged.outcome {
                merge::MergeOutcome::Merged => "merged",
                merge::MergeOutcome::RolledForward => "rolled forward",
                merge::MergeOutcome::NothingToMerge => "nothing to merge",
            }),
        }
        if step != MStep::Done {
            return Err(format!(
                "m{m}'s merge returned, but the model's m{m} is at {step:?}\n{}",
                self.cursor.behaviour()
            ));
        }
        Ok(())
    }

    fn idle(&self, m: usize) -> bool {
        self.mergers[m].task.is_none() && !self.mergers[m].crashed
    }

    fn run(&mut self, op: &Op) -> Result<(), String> {
        match *op {
            Op::Merge { m, script } => {
                let model_step = self.cursor.state.mergers[m].step;
                if !self.idle(m) || matches!(model_step, MStep::Done | MStep::Crashed) {
                    COVERAGE.count("skipped");
                    return Ok(());
                }
                let script = match script {
                    Some(Script::CrashBefore(_)) if self.crashes_armed >= 3 => None,
                    Some(Script::LoseAnswer(_)) if self.answers_armed >= 4 => None,
                    other => other,
                };
                match script {
                    Some(Script::CrashBefore(_)) => self.crashes_armed += 1,
                    Some(Script::LoseAnswer(_)) => self.answers_armed += 1,
                    _ => {}
                }
                if let Some(script) = script {
                    self.mergers[m].store.arm(script);
                }
                let lake = self.mergers[m].lake.clone();
                let options = MergeOptions {
                    timeout: Some(Duration::ZERO),
                    ..MergeOptions::default()
                };
                self.mergers[m].task = Some(
                    self.rt
                        .spawn(async move { lake.merge(CHILD, options).await }),
                );
                self.wait(m)
            }
            Op::Resume { m } => {
                if !self.mergers[m].store.paused() {
                    COVERAGE.count("skipped");
                    return Ok(());
                }
                self.mergers[m].store.resume();
                self.wait(m)
            }
            Op::Write => {
                if !self.enabled(MergeAction::Write) {
                    COVERAGE.count("skipped");
                    return Ok(());
                }
                let writer = self.writer.clone();
                let index = self
                    .rt
                    .block_on(
                        async move { writer.branch(CHILD).await?.commit(b"live write").await },
                    )
                    .map_err(|e| format!("write failed: {e}"))?;
                COVERAGE.count("writes");
                // The writer's one create, replayed (it commits straight to the shared store).
                let key = child().commits().key(index);
                self.replay(
                    Actor::Writer,
                    vec![Landed {
                        key,
                        bytes: Vec::new(),
                        answer_lost: false,
                        deleted: false,
                    }],
                )
            }
            Op::ForceRelease => {
                if !self.enabled(MergeAction::ForceRelease) {
                    COVERAGE.count("skipped");
                    return Ok(());
                }
                let released = self
                    .rt
                    .block_on(merge::force_release(&self.admin, &child(), None))
                    .map_err(|e| format!("force release failed: {e}"))?;
                let Some(released) = released else {
                    return Err(format!(
                        "the model's lock is held, the implementation's is free\n{}",
                        self.cursor.behaviour()
                    ));
                };
                COVERAGE.count("force releases");
                let holder = self.merger_of(&released.holder)?;
                self.mergers[holder].revoked = true;
                let landed = self.admin.drain();
                self.replay(Actor::Operator, landed)
            }
            Op::Sibling => {
                if !self.enabled(MergeAction::Sibling) {
                    COVERAGE.count("skipped");
                    return Ok(());
                }
                let k = self.cursor.model.config.sibling_merges - self.cursor.state.sibling_left;
                let sibling = self.sibling.clone();
                let outcome = self.rt.block_on(async move {
                    let side = sibling.branch(SIBLING).await?;
                    if k == 0 {
                        side.commit_change("s0", vec![], vec!["x".into()]).await?;
                    } else {
                        side.commit(b"side write").await?;
                    }
                    let options = MergeOptions {
                        timeout: None,
                        ..MergeOptions::default()
                    };
                    sibling.merge(SIBLING, options).await
                });
                let landed = self.sibling_store.drain();
                let appended = landed
                    .iter()
                    .any(|l| l.key.as_str().starts_with("branches/main/commits/"));
                match outcome {
                    Ok(_) if appended => {
                        COVERAGE.count("sibling merges");
                        self.replay(Actor::Sibling, landed)
                    }
                    Err(MergeError::Conflict { .. }) if !appended => {
                        COVERAGE.count("conflicts aborted");
                        match self.cursor.act(MergeAction::Sibling) {
                            Ok(None) => Ok(()),
                            Ok(Some(effect)) => Err(format!(
                                "the sibling's merge aborted on a conflict, the model's writes {effect}\n{}",
                                self.cursor.behaviour()
                            )),
                            Err(()) => Err("the model cannot take the sibling's merge".into()),
                        }
                    }
                    other => Err(format!("the sibling's merge: {other:?}")),
                }
            }
            Op::Recover => {
                let released = self
                    .rt
                    .block_on(merge::recover(&self.admin))
                    .map_err(|e| format!("recovery failed: {e}"))?;
                if !released.is_empty() {
                    COVERAGE.count("locks recovered");
                }
                let landed = self.admin.drain();
                self.replay(Actor::Recovery, landed)
            }
        }
    }

    /// The store's state in the model's terms.
    fn inspect(&self) -> Result<Abstract, String> {
        let store = &*self.shared;
        let e = |e: MergeError| e.to_string();
        let (child_len, lock, tailbase, merges) = self.rt.block_on(async {
            let child_len = child().commits().end(store).await.map_err(e)?;
            let lock = child()
                .mergelock()
                .newest::<LockEntry>(store)
                .await
                .map_err(e)?;
            let tailbase = child()
                .tailbase()
                .newest::<TailBase>(store)
                .await
                .map_err(e)?;
            let mut merges = Vec::new();
            for entry in merge::log(store, &parent()).await.map_err(e)? {
                if let CommitEntry::Merge {
                    child,
                    from,
                    to,
                    lock,
                    ..
                } = entry.entry
                {
                    merges.push((child == SIBLING, from, to, lock));
                }
            }
            Ok::<_, String>((child_len, lock, tailbase, merges))
        })?;
        let (lock_len, lock_newest) = match lock {
            None => (0, ModelLock::None),
            Some((i, LockEntry::Unlock { .. })) => (i as u8 + 1, ModelLock::Unlock),
            Some((i, LockEntry::Lock { holder, .. })) => (
                i as u8 + 1,
                ModelLock::Lock {
                    holder: self.merger_of(&holder)? as u8,
                },
            ),
        };
        let (version, tb) = tailbase.ok_or("no TAIL/BASE")?;
        let mut parent_commits = Vec::new();
        for (sibling, from, to, lock) in merges {
            let by = if sibling {
                0
            } else {
                self.lock_holder(lock)? as u8
            };
            parent_commits.push((from as u8, to as u8, by, sibling));
        }
        Ok(Abstract {
            child_len: child_len as u8,
            lock_len,
            lock_newest,
            tail: tb.tail as u8,
            tail_version: version as u8,
            parent: parent_commits,
        })
    }

    fn check(&self) -> Result<(), String> {
        let found = self.inspect()?;
        let expected = abstract_of(&self.cursor.state);
        if found != expected {
            return Err(format!(
                "the store is {found:?}, the model's state is {expected:?}\n{}",
                self.cursor.behaviour()
            ));
        }
        self.cursor.check_properties()
    }

    /// Ends the case: every paused merger resumes and finishes.
    fn finish(&mut self) -> Result<(), String> {
        for m in 0..MERGERS {
            if self.mergers[m].store.paused() {
                self.mergers[m].store.resume();
                self.wait(m)?;
                self.check()?;
            }
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug)]
enum Actor {
    Merger(usize),
    Writer,
    Recovery,
    Operator,
    Sibling,
}

fn run_case(with_sibling: bool, ops: &[Op], shared: Arc<dyn Store>) -> Result<(), TestCaseError> {
    match run_steps(with_sibling, ops, shared, None).failure {
        Some(failure) => Err(TestCaseError::fail(failure)),
        None => Ok(()),
    }
}

/// Runs a case, comparing the model path taken after each operation with `expected` (a replay
/// file's), and stopping at the first step that differs or the first failure.
fn run_steps(
    with_sibling: bool,
    ops: &[Op],
    shared: Arc<dyn Store>,
    expected: Option<&[String]>,
) -> replay::Run {
    let mut harness = Harness::new(shared, with_sibling);
    let mut run = match harness.check() {
        Err(failure) => replay::Run {
            steps: harness.cursor.steps(),
            failure: Some(failure),
            divergence: None,
        },
        Ok(()) => replay::run_ops(
            expected,
            &mut harness,
            ops,
            |h, op| {
                h.run(op).map_err(|e| format!("at {op:?}: {e}"))?;
                h.check().map_err(|e| format!("after {op:?}: {e}"))
            },
            |h| h.cursor.steps(),
        ),
    };
    if run.failure.is_none() && run.divergence.is_none() {
        if let Err(failure) = replay::caught(|| harness.finish()) {
            run.failure = Some(failure);
            run.steps = harness.cursor.steps();
        }
    }
    // Leave no task blocked at a pause (the runtime is dropped with the harness).
    for merger in &harness.mergers {
        merger.store.resume();
    }
    run
}

/// A case as a replay file keeps it.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    store: String,
    with_sibling: bool,
    ops: Vec<Op>,
}

/// Writes the replay file of a case of test `test` that failed (rerun once to record its model
/// path) and returns the line that names it.
fn record(
    test: &str,
    store: &str,
    mutant: Option<Mutant>,
    with_sibling: bool,
    ops: &[Op],
) -> String {
    activate(mutant);
    let run = replay::caught(|| {
        let (shared, _dir) = replay::store_named(store);
        Ok(run_steps(with_sibling, ops, shared, None))
    });
    let case = Case {
        store: store.into(),
        with_sibling,
        ops: ops.to_vec(),
    };
    let case = serde_json::to_value(case).expect("a case serialises");
    replay::record_conformance("merge", "merge_conformance", test, store, case, run)
}

/// Reruns a replay file of this harness: the one `lockstep replay` names in `$LOCKSTEP_REPLAY`,
/// or else the committed one, a case of the blind-unlock mutant (see `replay::replay_test`).
#[test]
fn replay() {
    replay::replay_test(
        "merge_conformance",
        "merge-conformance-blind-unlock.json",
        // Another input: the first merger runs without its script (no pause), so the run goes
        // on where the file's merger paused.
        |file| {
            file.case["ops"][0]["Merge"]["script"] = serde_json::Value::Null;
        },
        |file| {
            replay::rerun_case(file, exclusive, |case: &Case, steps| {
                let (shared, _dir) = replay::store_named(&case.store);
                run_steps(case.with_sibling, &case.ops, shared, Some(steps))
            })
        },
    );
}

fn exclusive(mutant: Option<Mutant>) -> MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    activate(mutant);
    COVERAGE.reset();
    guard
}

fn cases() -> impl Strategy<Value = (bool, Vec<Op>)> {
    (any::<bool>(), prop::collection::vec(op_strategy(), 1..24))
}

fn refine(
    test: &str,
    count: u32,
    rare_too: bool,
    store: impl Fn() -> (Arc<dyn Store>, Option<tempfile::TempDir>),
) {
    let _one = exclusive(None);
    let base = Config::default();
    // PROPTEST_CASES, when set, scales both runs (its value is the MemStore run's).
    let count = if std::env::var("PROPTEST_CASES").is_ok() {
        (base.cases * count / 512).max(8)
    } else {
        count
    };
    let mut runner = TestRunner::new(Config {
        cases: count,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
        )),
        source_file: Some(file!()),
        ..base
    });
    let result = runner.run(&cases(), |(with_sibling, ops)| {
        let (shared, _dir) = store();
        run_case(with_sibling, &ops, shared)
    });
    if let Err(error) = result {
        let saved = match &error {
            proptest::test_runner::TestError::Fail(_, (with_sibling, ops)) => {
                record(&format!("on {test}"), test, None, *with_sibling, ops)
            }
            _ => String::new(),
        };
        panic!("{test}: {error}\n{saved}");
    }
    COVERAGE.assert_exercised(test, rare_too);
}

#[test]
fn implementation_refines_the_model_on_memory() {
    // 512 cases: the rare events (a roll-forward, a fenced zombie, its late write) come a few
    // times per hundred cases, and each must be seen.
    refine("memory", 512, true, || (Arc::new(MemStore::new()), None));
}

/// The same on a real etcd (feature `etcd`): every case in a namespace of its own.
#[cfg(feature = "etcd")]
#[test]
fn implementation_refines_the_model_on_etcd() {
    let Some(cluster) = lockstep_tests::etcd_server::shared_or_skip() else {
        return;
    };
    refine("etcd", 64, false, || {
        (Arc::new(cluster.store_blocking()), None)
    });
}

#[test]
fn implementation_refines_the_model_on_fs() {
    refine("fs", 128, false, || {
        let dir = tempfile::tempdir().unwrap();
        (Arc::new(FsStore::open(dir.path()).unwrap()), Some(dir))
    });
}

/// Runs the search with `mutant` on and returns the failure it must find.
fn caught(mutant: Mutant) -> String {
    let _one = exclusive(Some(mutant));
    let mut runner = TestRunner::new(Config {
        cases: 1024,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&cases(), |(with_sibling, ops)| {
        run_case(with_sibling, &ops, Arc::new(MemStore::new()))
    });
    let error = result.expect_err("the planted bug must be caught");
    if let (true, proptest::test_runner::TestError::Fail(_, (with_sibling, ops))) =
        (replay::asked(), &error)
    {
        let test = format!("caught {}", mutant.name());
        eprintln!(
            "{}",
            record(&test, "memory", Some(mutant), *with_sibling, ops)
        );
    }
    activate(None);
    let error = error.to_string();
    eprintln!("caught, shrunk to: {error}");
    error
}

/// The line of a failure that says what diverged (the model's behaviour follows it).
fn failure_line(error: &str) -> String {
    error
        .lines()
        .find(|l| l.contains("the implementation") || l.contains("model") || l.contains("failed"))
        .unwrap_or("")
        .to_owned()
}

#[test]
fn the_harness_catches_tail_moved_to_own_cut() {
    let error = caught(Mutant::MergeTailToOwnCut);
    // The roll-forward moved TAIL past commits the first merge commit does not hold.
    assert!(
        failure_line(&error).contains("tailbase#"),
        "{}",
        failure_line(&error)
    );
}

#[test]
fn the_harness_catches_a_blind_unlock() {
    let error = caught(Mutant::MergeBlindUnlock);
    // A fenced zombie's unlock went after the newest entry, freeing the new holder's lock.
    assert!(
        failure_line(&error).contains("= unlock"),
        "{}",
        failure_line(&error)
    );
}

#[test]
fn the_harness_catches_a_lock_taken_as_not_landed() {
    let error = caught(Mutant::MergeNoLockReadBack);
    // The merger gave up with its `lock` in place, where the model's merger reads it back and
    // goes on.
    let line = failure_line(&error);
    assert!(
        line.contains("failed") && line.contains("answer was lost"),
        "{line}"
    );
}
