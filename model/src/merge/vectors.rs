//! Test vectors of the merge lock: behaviours of the fixed merge model at the level of whole
//! operations, with the storage state expected after each, for ports to replay
//! (`lockstep vectors export merge`; format in specs/vectors/README.md).
//!
//! An operation runs one actor to a resting point: a merger's `merge` until it is done, waits
//! for a held lock (`busy`), or crashes after its `n`-th storage effect (create), which any port
//! reproduces with a store wrapper that fails every call after `n` creates; a writer's commit to
//! the child; an operator's force release; recovery.

use serde::{Deserialize, Serialize};
use stateright::Model;

use super::{LockEntry, MStep, MergeAction, MergeConfig, MergeModel, MergeState, MergeVariant};
use crate::vectors::{take, SplitMix};

pub const FORMAT: &str = "lockstep-merge-vectors/1";
pub const MERGERS: usize = 3;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum VectorOp {
    /// Merger `merger` merges the child (lock timeout 0).
    Merge {
        merger: usize,
        crash_after_creates: Option<u8>,
    },
    /// A writer commits one commit to the child.
    Write,
    /// An operator force-releases the child's merge lock.
    ForceRelease,
    /// Recovery frees a lock whose holder is proven dead.
    Recover,
}

/// The newest entry of the child's merge-lock journal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum NewestLock {
    None,
    Lock { merger: u8 },
    Unlock,
}

/// One merge commit of the parent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentMerge {
    pub from: u8,
    pub to: u8,
    /// The merger whose lock the commit names.
    pub by: u8,
}

/// The expected storage state after an operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expected {
    /// `done` (merged, rolled forward or nothing to merge), `busy`, `crashed`, `written`,
    /// `released`.
    pub outcome: String,
    /// Commits in the child's journal.
    pub child_len: u8,
    /// Entries in the merge-lock journal, and the newest.
    pub lock_len: u8,
    pub lock_newest: NewestLock,
    /// The newest TAIL/BASE version and its TAIL.
    pub tail_version: u8,
    pub tail: u8,
    /// The parent's merge commits, in journal order.
    pub parent: Vec<ParentMerge>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vector {
    pub id: String,
    pub steps: Vec<(VectorOp, Expected)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VectorFile {
    pub format: String,
    pub protocol: String,
    pub generated_by: String,
    pub coverage: String,
    pub setup: String,
    pub vectors: Vec<Vector>,
}

/// The model every vector runs.
pub fn model() -> MergeModel {
    MergeModel::new(MergeConfig {
        mergers: MERGERS as u8,
        child_commits: 1,
        child_writes: 4,
        crashes: MERGERS as u8,
        force_releases: 4,
        lock_retries: 1,
        ambiguous: 0,
        ..MergeConfig::new(MergeVariant::Fixed(None))
    })
    .expect("valid")
}

fn wrote(before: &MergeState, after: &MergeState) -> bool {
    before.lock_len != after.lock_len
        || before.parent != after.parent
        || before.tail_version != after.tail_version
        || before.child_len != after.child_len
}

/// Runs merger `m` to a resting point. `None` if it cannot run (done, crashed, or a crash the
/// budget does not allow).
pub fn run_merger(
    model: &MergeModel,
    mut state: MergeState,
    m: usize,
    crash_after: Option<u8>,
) -> Option<(MergeState, &'static str)> {
    if matches!(state.mergers[m].step, MStep::Done | MStep::Crashed) {
        return None;
    }
    let mut creates = 0;
    for _ in 0..256 {
        if state.mergers[m].step == MStep::Done {
            return Some((state, "done"));
        }
        if crash_after == Some(creates) {
            return take(model, &state, MergeAction::Crash(m as u8)).map(|s| (s, "crashed"));
        }
        let Some(next) = take(model, &state, MergeAction::Step(m as u8)) else {
            // Waiting for a held lock: with a lock timeout of 0 the merger gives up.
            let locked = matches!(state.lock_newest, LockEntry::Lock { .. });
            return (state.mergers[m].step == MStep::ReadLock && locked).then_some((state, "busy"));
        };
        if wrote(&state, &next) {
            creates += 1;
        }
        state = next;
    }
    None
}

pub fn apply(
    model: &MergeModel,
    state: &MergeState,
    op: &VectorOp,
) -> Option<(MergeState, &'static str)> {
    match *op {
        VectorOp::Merge {
            merger,
            crash_after_creates,
        } => run_merger(model, state.clone(), merger, crash_after_creates),
        VectorOp::Write => take(model, state, MergeAction::Write).map(|s| (s, "written")),
        VectorOp::ForceRelease => {
            take(model, state, MergeAction::ForceRelease).map(|s| (s, "released"))
        }
        VectorOp::Recover => take(model, state, MergeAction::Recover).map(|s| (s, "released")),
    }
}

pub fn expected(state: &MergeState, outcome: &str) -> Expected {
    Expected {
        outcome: outcome.into(),
        child_len: state.child_len,
        lock_len: state.lock_len,
        lock_newest: match state.lock_newest {
            LockEntry::None => NewestLock::None,
            LockEntry::Lock { holder } => NewestLock::Lock { merger: holder },
            LockEntry::Unlock => NewestLock::Unlock,
        },
        tail_version: state.tail_version,
        tail: state.tail,
        parent: state
            .parent
            .iter()
            .flatten()
            .map(|c| ParentMerge {
                from: c.from,
                to: c.to,
                by: c.by,
            })
            .collect(),
    }
}

/// A seeded sample of `count` behaviours of at most `depth` operations each.
pub fn generate(count: usize, depth: usize, seed: u64) -> VectorFile {
    let mut rng = SplitMix(seed);
    let model = model();
    let mut vectors = Vec::new();
    while vectors.len() < count {
        let mut state = model
            .init_states()
            .into_iter()
            .next()
            .expect("one initial state");
        let mut steps = Vec::new();
        let mut attempts = 0;
        while steps.len() < depth && attempts < depth * 20 {
            attempts += 1;
            let op = match rng.below(10) {
                0..=4 => VectorOp::Merge {
                    merger: rng.below(MERGERS as u64) as usize,
                    crash_after_creates: (rng.below(3) == 0).then(|| rng.below(4) as u8),
                },
                5..=7 => VectorOp::Write,
                8 => VectorOp::ForceRelease,
                _ => VectorOp::Recover,
            };
            if let Some((next, outcome)) = apply(&model, &state, &op) {
                steps.push((op, expected(&next, outcome)));
                state = next;
            }
        }
        if steps.is_empty() {
            continue;
        }
        vectors.push(Vector {
            id: format!("merge-{:04}", vectors.len()),
            steps,
        });
    }
    VectorFile {
        format: FORMAT.into(),
        protocol: "merge".into(),
        generated_by: format!(
            "lockstep vectors export merge --count {count} --depth {depth} --seed {seed}"
        ),
        coverage: format!("a seeded sample of {count} behaviours of at most {depth} operations (seed {seed}); not every behaviour"),
        setup: "root branch `main` (no commits); child `live` created from it (TAIL 0, BASE 0) with 1 commit; mergers 0..2, each one merge to completion at most; merge lock timeout 0".into(),
        vectors,
    }
}
