//! Test vectors of the redo log: behaviours of the fixed redo model at the level of whole
//! operations, with the storage state expected after each, for ports to replay
//! (`lockstep vectors export redo`; format in specs/vectors/README.md).
//!
//! The world has no session lock (the model's `no-session-lock` world: safety does not rest on
//! it, and a lock's own behaviour is the path-lock vectors'). An operation runs one actor to a
//! resting point, or crashes it after its `n`-th successful create of a redo-log key (the path
//! locks' keys do not count), which any port reproduces with a store wrapper that fails every
//! call from then on:
//! - `add`: the user adds a message;
//! - `commit`: committer `c` commits, to its end (each committer commits once);
//! - `recover`: a restart: the queue's claims of dead workers are freed (one create each), and
//!   recovery replays every archive without `done` whose committer crashed, one after another
//!   in index order;
//! - `work`: a worker processes one queue item, the oldest row that is pending or whose claim
//!   is a crashed worker's (the worker claims over it at once: the store proves that worker
//!   dead): claim (a create), effect (a create), ack.
//!
//! A crash right after an actor's last create is not generated: whether the actor still makes a
//! call after it (a listing, a lock release) is the port's choice, and decides whether it
//! finishes. Every extraction yields exactly 2 memories (the model's), so a port's extractor
//! must too.

use serde::{Deserialize, Serialize};
use stateright::Model;

use super::{
    CStep, RStep, RedoAction, RedoConfig, RedoModel, RedoState, RedoVariant, WStep, ARCHIVES_MAX,
};
use crate::vectors::{take, SplitMix};

pub const FORMAT: &str = "lockstep-redo-vectors/1";
pub const COMMITTERS: usize = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum VectorOp {
    Add,
    Commit {
        committer: usize,
        crash_after_creates: Option<u8>,
    },
    Recover {
        crash_after_creates: Option<u8>,
    },
    Work {
        crash_after_creates: Option<u8>,
    },
}

/// One archive as the store holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveState {
    /// The messages it holds, by the order they were added (0 = the first `add`).
    pub messages: Vec<u8>,
    /// The committer that created it.
    pub owner: u8,
    pub done: bool,
    pub manifest: bool,
    /// Memories readers see (those the manifest names).
    pub memories: u8,
    /// Its queue row: `none`, `pending`, or `claimed` (by a worker that crashed).
    pub row: String,
    pub effects: u8,
}

/// The expected storage state after an operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expected {
    /// `added`, `committed`, `nothing` (nothing to commit), `recovered`, `worked`, `crashed`.
    pub outcome: String,
    /// Messages stored (not deleted), by add order: live ones and archived ones whose delete a
    /// crash cut off.
    pub stored: Vec<u8>,
    pub archives: Vec<ArchiveState>,
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
pub fn model() -> RedoModel {
    RedoModel::new(RedoConfig {
        committers: COMMITTERS as u8,
        messages: 4,
        crashes: 6,
        restarts: 4,
        expiries: 0,
        faults: 0,
        session_lock: false,
        ..RedoConfig::new(RedoVariant::Fixed(None))
    })
    .expect("valid")
}

/// Whether a step created something (a create that finds its key taken creates nothing).
fn created(before: &RedoState, after: &RedoState) -> bool {
    before.archives != after.archives
        || before.memories != after.memories
        || before.manifest != after.manifest
        || before.done != after.done
        || before.effects != after.effects
        || before.queued.iter().sum::<u8>() + before.processing.iter().sum::<u8>()
            < after.queued.iter().sum::<u8>() + after.processing.iter().sum::<u8>()
}

fn run_committer(
    model: &RedoModel,
    mut state: RedoState,
    c: usize,
    crash_after: Option<u8>,
) -> Option<(RedoState, &'static str)> {
    if matches!(state.committers[c].step, CStep::Done | CStep::Crashed) {
        return None;
    }
    let archives_before = state.archives;
    let mut creates = 0;
    for _ in 0..256 {
        if state.committers[c].step == CStep::Done {
            if crash_after == Some(creates) {
                return None; // a crash right after the last create: see `finished_at_crash`
            }
            let archived = state.archives != archives_before;
            return Some((state, if archived { "committed" } else { "nothing" }));
        }
        if crash_after == Some(creates) {
            return take(model, &state, RedoAction::CrashCommitter(c as u8))
                .map(|s| (s, "crashed"));
        }
        let next = take(model, &state, RedoAction::Commit(c as u8))?; // blocked: beyond the bounds
        if created(&state, &next) {
            creates += 1;
        }
        state = next;
    }
    None
}

fn run_recovery(
    model: &RedoModel,
    state: &RedoState,
    crash_after: Option<u8>,
) -> Option<(RedoState, &'static str)> {
    // The restart frees the claims of dead workers first: a port writes one `free` per claim
    // (a create), which the model's restart does in one step. A crash among those creates is
    // not a behaviour of the model: not generated.
    let freed = state.processing.iter().filter(|p| **p > 0).count() as u8;
    if crash_after.is_some_and(|n| n < freed) {
        return None;
    }
    let mut state = take(model, state, RedoAction::Restart)?;
    let mut creates = freed;
    for _ in 0..256 {
        if state.recovery == RStep::Idle {
            return (crash_after != Some(creates)).then_some((state, "recovered"));
        }
        if crash_after == Some(creates) {
            return take(model, &state, RedoAction::CrashRecovery).map(|s| (s, "crashed"));
        }
        let next = take(model, &state, RedoAction::Recovery)?;
        if created(&state, &next) {
            creates += 1;
        }
        state = next;
    }
    None
}

/// One item: claim (counted as a create, as a port's claim is), effect, ack.
fn run_worker(
    model: &RedoModel,
    mut state: RedoState,
    crash_after: Option<u8>,
) -> Option<(RedoState, &'static str)> {
    if state.workers[0] != WStep::Idle || model.next_item(&state, 0).is_none() {
        return None;
    }
    let mut creates = 0;
    for _ in 0..8 {
        if crash_after == Some(creates) {
            return take(model, &state, RedoAction::CrashWorker(0)).map(|s| (s, "crashed"));
        }
        let before = state.clone();
        state = take(model, &state, RedoAction::Worker(0))?;
        // The dequeue is the claim's create; the effect's create counts only if it created.
        if before.workers[0] == WStep::Idle || before.effects != state.effects {
            creates += 1;
        }
        if state.workers[0] == WStep::Idle {
            return (crash_after != Some(creates)).then_some((state, "worked"));
        }
    }
    None
}

pub fn apply(
    model: &RedoModel,
    state: &RedoState,
    op: &VectorOp,
) -> Option<(RedoState, &'static str)> {
    match *op {
        VectorOp::Add => take(model, state, RedoAction::AddMessage).map(|s| (s, "added")),
        VectorOp::Commit {
            committer,
            crash_after_creates,
        } => run_committer(model, state.clone(), committer, crash_after_creates),
        VectorOp::Recover {
            crash_after_creates,
        } => run_recovery(model, state, crash_after_creates),
        VectorOp::Work {
            crash_after_creates,
        } => run_worker(model, state.clone(), crash_after_creates),
    }
}

pub fn expected(model: &RedoModel, state: &RedoState, outcome: &str) -> Expected {
    let bits = |mask: u8| {
        (0..8u8)
            .filter(|m| mask & (1 << m) != 0)
            .collect::<Vec<u8>>()
    };
    Expected {
        outcome: outcome.into(),
        stored: bits(state.stored),
        archives: (0..ARCHIVES_MAX)
            .filter_map(|i| {
                let a = state.archives[i]?;
                Some(ArchiveState {
                    messages: bits(a.messages),
                    owner: a.owner,
                    done: state.done & (1 << i) != 0,
                    manifest: state.manifest[i].is_some(),
                    memories: model.view(state, i).len() as u8,
                    row: if state.processing[i] > 0 {
                        "claimed"
                    } else if state.queued[i] > 0 {
                        "pending"
                    } else {
                        "none"
                    }
                    .into(),
                    effects: state.effects[i],
                })
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
            let crash =
                |rng: &mut SplitMix, most: u64| (rng.below(3) == 0).then(|| rng.below(most) as u8);
            let op = match rng.below(10) {
                0..=2 => VectorOp::Add,
                3..=5 => VectorOp::Commit {
                    committer: rng.below(COMMITTERS as u64) as usize,
                    crash_after_creates: crash(&mut rng, 6),
                },
                6..=7 => VectorOp::Recover {
                    crash_after_creates: crash(&mut rng, 5),
                },
                _ => VectorOp::Work {
                    crash_after_creates: crash(&mut rng, 2),
                },
            };
            if let Some((next, outcome)) = apply(&model, &state, &op) {
                steps.push((op, expected(&model, &next, outcome)));
                state = next;
            }
        }
        if steps.is_empty() {
            continue;
        }
        vectors.push(Vector {
            id: format!("redo-{:04}", vectors.len()),
            steps,
        });
    }
    VectorFile {
        format: FORMAT.into(),
        protocol: "redo".into(),
        generated_by: format!(
            "lockstep vectors export redo --count {count} --depth {depth} --seed {seed}"
        ),
        coverage: format!("a seeded sample of {count} behaviours of at most {depth} operations (seed {seed}); not every behaviour"),
        setup: "one session; committers 0..2 (each commits once, with its own owner registration); no session lock; every extraction yields exactly 2 memories; recovery replays one archive after another in index order; a crash fails every call after the actor's n-th successful create of a redo-log key".into(),
        vectors,
    }
}
