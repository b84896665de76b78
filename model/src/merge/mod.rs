//! # The merge lock of a data lake's branches (Zed / SuperDB issue 2971)
//!
//! A child branch is merged into its parent while writers keep appending to the child (live
//! ingest). State: the child's commit journal (commits `0..child_len`), the child's TAIL/BASE
//! object (commits below TAIL are merged; moved as one object), the parent journal of merge
//! commits, and the child's merge-lock journal (`lock` / `unlock` entries claimed with
//! create-if-absent). Mergers, writers, crashes, recovery and an operator's force release all run
//! concurrently, one storage operation per step.
//!
//! Variants:
//! - `seed`: the proposal as written, on the 2021 prototype: a merger reads the lock journal's
//!   HEAD *pointer* (a separate object, updated after each entry, so it can lag), creates `lock`
//!   at HEAD+1, updates HEAD; reads TAIL/BASE, cuts the child, appends the merge to the parent,
//!   moves TAIL to the child's end (the prototype's NOP position), writes `unlock` at HEAD+1.
//!   Recovery and force release read HEAD too.
//! - `seed-lockfree`: today's 2021 code: no lock at all.
//! - `seed-blind-put`: the proposal on S3 before conditional writes: `lock` is a blind put.
//! - `seed-vacate`: the lock SuperDB ships since brimdata/super #6706 (2026-03): `super db vacate`
//!   creates `TAIL.lock` with put-if-not-exists around its TAIL move and deletes it afterwards. It
//!   has no owner, no lease and no recovery path; a put that finds it present fails the command.
//!   The model puts lockstep's merge steps inside that lock (the lock is what is under test).
//! - `fixed`: lockstep's (specs/merge.md): the lock state is the newest entry found by probing,
//!   never the HEAD pointer; the lock's index fences the holder; a merge commit is keyed by the
//!   TAIL it starts from; a merger appends one only if the parent has none for its TAIL (scanned
//!   and created at exactly the scanned end), and moves TAIL to the end of that first commit (so a
//!   repeated merge, a crash between the parent append and the TAIL move, or a zombie's late
//!   append writes no second commit); TAIL/BASE moves by
//!   compare-and-swap on its version; `unlock` is created right after the holder's own `lock`.
//!
//! Properties: one merger at a time; exactly once; consistent pointers; crash recovery; a
//! force-released zombie cannot complete; and (`sometimes`) every merger merges.

use serde::Serialize;
use stateright::{Model, Property};

pub mod catalogue;
pub mod fixed;
pub mod seed;
pub mod trace;
pub mod vacate;
pub mod variant;
pub mod vectors;

use crate::check::{Budget, Protocol};
use crate::trace::Trace;

pub use variant::{MergeMutation, MergeVariant};

/// Commits a state can hold on the parent.
pub const PARENT_MAX: usize = 6;
pub const MERGERS_MAX: usize = 3;

#[derive(Clone, Debug, Serialize)]
pub struct MergeConfig {
    #[serde(skip)]
    pub variant: MergeVariant,
    pub mergers: u8,
    /// Child commits present at the start.
    pub child_commits: u8,
    /// Child commits written during the run (live ingest).
    pub child_writes: u8,
    pub crashes: u8,
    pub force_releases: u8,
    /// Retries of a failed `lock` create before a merger gives up (Zed retries 10 times).
    pub lock_retries: u8,
    /// Ambiguous outcomes: a create (`lock`, the parent append, the TAIL/BASE move, `unlock`)
    /// that lands while its caller sees an error (a lost response).
    pub ambiguous: u8,
    /// Merges of a second child B into the same parent, under B's own lock, interleaved with
    /// everything (0: one child only); B writes one commit before each. With B present, the
    /// parent holds an object X that child A's commit 0 and B's commit 0 both delete: the later
    /// merge of the two must abort, and every later merge of that child with it (a conflict
    /// wedges a child until it is rebased).
    pub sibling_merges: u8,
}

impl MergeConfig {
    pub fn new(variant: MergeVariant) -> MergeConfig {
        MergeConfig {
            variant,
            mergers: 3,
            child_commits: 1,
            child_writes: 2,
            crashes: 2,
            force_releases: 2,
            lock_retries: 1,
            ambiguous: 0,
            sibling_merges: 0,
        }
    }

    /// Whether the world has a second child and the conflict over object X.
    pub fn conflicts(&self) -> bool {
        self.sibling_merges > 0
    }
}

/// The newest entry of the merge-lock journal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum LockEntry {
    #[default]
    None,
    Lock {
        holder: u8,
    },
    Unlock,
}

/// One merge commit on the parent: child commits `from..to`, appended by `by`. A merge of the
/// second child B (`sibling`) is one parent append; its `from..to` number B's commits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Commit {
    pub from: u8,
    pub to: u8,
    pub by: u8,
    pub sibling: bool,
    /// The merged commits delete the parent's object X.
    pub deletes_x: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MStep {
    /// Read the lock state (seed: the HEAD pointer; fixed: probe the newest entry).
    #[default]
    ReadLock,
    CreateLock,
    /// Fixed: after a `lock` create that returned an error, probe the journal: is the newest
    /// entry our own `lock` at the index we tried (it landed), or not (it did not)?
    ReadBackLock,
    /// Seed: update the HEAD pointer after our `lock`.
    WriteHead,
    ReadTail,
    ReadChild,
    AppendParent,
    /// Fixed: find the first commit for our starting TAIL.
    ReadParent,
    MoveTail,
    CreateUnlock,
    /// Seed: update the HEAD pointer after our `unlock`.
    WriteHeadAfterUnlock,
    /// Seed-vacate: delete `TAIL.lock`.
    DeleteLock,
    Done,
    Crashed,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Merger {
    pub step: MStep,
    /// Index of our `lock` entry.
    pub lock_index: u8,
    /// What the last lock read saw: the index to create at.
    pub seen: u8,
    pub tail: u8,
    pub tail_version: u8,
    /// BASE as read with TAIL: the parent position the child is synced to.
    pub base: u8,
    pub cut: u8,
    /// Mutant `check-before-append`: the conflict verdict taken when the cut was read.
    pub conflict_seen: bool,
    /// Where in the parent the first merge commit of `tail` is.
    pub first_at: u8,
    /// Where TAIL must go (fixed: the end of the first commit for `tail`).
    pub target: u8,
    pub retries_left: u8,
    /// Force-released behind its back: a zombie from then on.
    pub revoked: bool,
    /// Moved TAIL at least once.
    pub merged: bool,
    /// Aborted its merge on a conflict.
    pub aborted: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MergeState {
    pub child_len: u8,
    pub writes_left: u8,
    /// Entries in the lock journal and the newest one.
    pub lock_len: u8,
    pub lock_newest: LockEntry,
    /// Seed: the HEAD pointer (the entry count it records); may lag `lock_len`.
    pub head: u8,
    /// Seed: the entry HEAD points at (entry `head - 1`), which readers take for the newest.
    pub head_entry: LockEntry,
    pub tail: u8,
    pub tail_version: u8,
    /// Child A's BASE (moved with TAIL).
    pub base: u8,
    pub parent: [Option<Commit>; PARENT_MAX],
    /// The second child B: merges left, its TAIL (B's commits merged so far; B writes one commit
    /// before each merge) and its BASE.
    pub sibling_left: u8,
    pub sibling_tail: u8,
    pub sibling_base: u8,
    pub mergers: [Merger; MERGERS_MAX],
    pub crashes_left: u8,
    pub forces_left: u8,
    pub ambiguous_left: u8,
    /// History: TAIL once moved backwards.
    pub tail_regressed: bool,
    /// History: a revoked merger's unlock freed a newer lock, or its TAIL move replaced a newer one.
    pub zombie_completed: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MergeAction {
    Step(u8),
    /// Merger `m`'s next create lands, and it sees an error.
    Ambiguous(u8),
    Write,
    Crash(u8),
    Recover,
    ForceRelease,
    /// The second child B's next merge: its scan of the parent, its conflict check and its
    /// append at the scanned end, as one step (the create is at exactly that end); B's lock and
    /// TAIL are B's own, the protocol proven for child A, and touch nothing of A's.
    Sibling,
}

#[derive(Clone, Debug)]
pub struct MergeModel {
    pub config: MergeConfig,
    pub budget: Budget,
}

impl MergeModel {
    pub fn new(config: MergeConfig) -> Result<MergeModel, String> {
        if config.mergers == 0 || config.mergers as usize > MERGERS_MAX {
            return Err(format!("mergers must be between 1 and {MERGERS_MAX}"));
        }
        if config.child_commits + config.child_writes > 8 {
            return Err("at most 8 child commits in all".into());
        }
        if config.sibling_merges > 2 {
            return Err("at most 2 sibling merges".into());
        }
        if config.sibling_merges > 0 && !matches!(config.variant, MergeVariant::Fixed(_)) {
            return Err("a second child is modelled for the fixed protocol only".into());
        }
        Ok(MergeModel {
            config,
            budget: Budget::default(),
        })
    }

    pub fn variant(&self) -> MergeVariant {
        self.config.variant
    }

    /// Whether a merge of child A's commits `from..to` deletes object X (A's commit 0 does).
    pub fn deletes_x(&self, from: u8, to: u8) -> bool {
        self.config.conflicts() && from == 0 && to > 0
    }

    /// Whether the parent's entries from `base` on, other than `own`'s (sibling or not), delete X.
    pub fn x_changed_since(state: &MergeState, base: u8, sibling: bool) -> bool {
        state.parent[base as usize..]
            .iter()
            .flatten()
            .any(|c| c.sibling != sibling && c.deletes_x)
    }

    /// Whether the variant runs the 2021 prototype's steps (a HEAD pointer, no scan for an earlier merge commit): every
    /// seed but `seed-vacate`, which runs lockstep's merge steps inside SuperDB's `TAIL.lock`.
    pub fn prototype(&self) -> bool {
        self.variant().is_seed() && self.variant() != MergeVariant::SeedVacate
    }

    fn mergers(&self) -> std::ops::Range<usize> {
        0..self.config.mergers as usize
    }

    /// How many times each child commit is in the parent. The model's readers are strict: they
    /// count every merge commit, so "exactly once" is proven of the writers alone. (The
    /// implementation's readers also skip a repeated merge commit of one TAIL, as a second
    /// defence the proof does not rely on.)
    pub fn coverage(&self, state: &MergeState) -> [u8; 8] {
        let mut counts = [0u8; 8];
        for commit in state.parent.iter().flatten().filter(|c| !c.sibling) {
            for id in commit.from..commit.to {
                counts[id as usize] += 1;
            }
        }
        counts
    }

    fn holds(&self, state: &MergeState, m: usize) -> bool {
        let merger = &state.mergers[m];
        // A merger retrying an `unlock` whose response it lost no longer holds once the
        // `unlock` is there (the fixed protocol's unlock is the entry right after its lock).
        if merger.step == MStep::CreateUnlock
            && !self.prototype()
            && state.lock_len > merger.lock_index + 1
        {
            return false;
        }
        !merger.revoked
            && matches!(
                merger.step,
                MStep::WriteHead
                    | MStep::ReadTail
                    | MStep::ReadChild
                    | MStep::AppendParent
                    | MStep::ReadParent
                    | MStep::MoveTail
                    | MStep::CreateUnlock
                    | MStep::DeleteLock
            )
    }

    /// Merger `m`'s create lands, but the caller sees an error: it does not know whether it
    /// landed, and does what the fixed protocol does then. A `lock` create is read back
    /// (`ReadBackLock`); the parent append, the TAIL/BASE move and `unlock` are retried as they
    /// are (the append is keyed by its TAIL, the move is a compare-and-swap on a version that has
    /// now changed, `unlock` is a create at a fixed index). An error on a create that did not
    /// land is no different from a failed create, which the step already models.
    fn ambiguous(&self, state: &mut MergeState, m: usize) -> bool {
        let before = state.mergers[m];
        let (lock_len, tail_version, parent) = (state.lock_len, state.tail_version, state.parent);
        if !self.step(state, m) {
            return false;
        }
        let landed = match before.step {
            MStep::CreateLock => state.lock_len != lock_len,
            MStep::AppendParent => state.parent != parent,
            MStep::MoveTail => state.tail_version != tail_version,
            MStep::CreateUnlock => state.lock_len != lock_len,
            _ => false,
        };
        if !landed {
            return false;
        }
        let me = &mut state.mergers[m];
        me.step = match before.step {
            MStep::CreateLock => MStep::ReadBackLock,
            other => other, // retried
        };
        state.ambiguous_left -= 1;
        true
    }

    pub fn append_lock_entry(state: &mut MergeState, entry: LockEntry) {
        state.lock_len += 1;
        state.lock_newest = entry;
    }

    fn step(&self, state: &mut MergeState, m: usize) -> bool {
        if self.variant() == MergeVariant::SeedVacate {
            vacate::step(self, state, m)
        } else if self.prototype() {
            seed::step(self, state, m)
        } else {
            fixed::step(self, state, m)
        }
    }

    /// Recovery / force release, as each variant's code does it: the step the "crash recovery"
    /// property applies to a copy of the state, and what the `Recover` and `ForceRelease`
    /// actions take. Fixed: create `unlock` right after the probed newest `lock`. Seed: read
    /// HEAD; if it shows a `lock`, create `unlock` at HEAD+1 and move HEAD. Seed-vacate: there is
    /// no recovery or force release. Returns whether anything was written.
    pub fn release(&self, state: &mut MergeState, forced: bool) -> bool {
        if self.variant() == MergeVariant::SeedVacate
            || (!forced && self.variant().has(MergeMutation::NoRecovery))
        {
            return false;
        }
        let seed = self.prototype();
        let shown = if seed {
            state.head_entry
        } else {
            state.lock_newest
        };
        let LockEntry::Lock { holder } = shown else {
            return false;
        };
        if seed && state.head != state.lock_len {
            return false; // the create at HEAD+1 finds an entry there (HEAD lags)
        }
        if forced {
            state.mergers[holder as usize].revoked = true;
            state.forces_left -= 1;
        }
        Self::append_lock_entry(state, LockEntry::Unlock);
        if seed {
            state.head = state.lock_len;
            state.head_entry = LockEntry::Unlock;
        }
        true
    }
}

impl Model for MergeModel {
    type State = MergeState;
    type Action = MergeAction;

    fn init_states(&self) -> Vec<MergeState> {
        let mut mergers = [Merger {
            step: MStep::Done,
            ..Merger::default()
        }; MERGERS_MAX];
        for m in self.mergers() {
            mergers[m] = Merger {
                retries_left: self.config.lock_retries,
                ..Merger::default()
            };
        }
        vec![MergeState {
            child_len: self.config.child_commits,
            writes_left: self.config.child_writes,
            lock_len: 0,
            lock_newest: LockEntry::None,
            head: 0,
            head_entry: LockEntry::None,
            tail: 0,
            tail_version: 0,
            base: 0,
            parent: [None; PARENT_MAX],
            sibling_left: self.config.sibling_merges,
            sibling_tail: 0,
            sibling_base: 0,
            mergers,
            crashes_left: self.config.crashes,
            forces_left: self.config.force_releases,
            ambiguous_left: self.config.ambiguous,
            tail_regressed: false,
            zombie_completed: false,
        }]
    }

    fn actions(&self, state: &MergeState, actions: &mut Vec<MergeAction>) {
        for m in self.mergers() {
            let step = state.mergers[m].step;
            if matches!(step, MStep::Done | MStep::Crashed) {
                continue;
            }
            actions.push(MergeAction::Step(m as u8));
            if state.ambiguous_left > 0
                && matches!(self.variant(), MergeVariant::Fixed(_))
                && matches!(
                    step,
                    MStep::CreateLock | MStep::AppendParent | MStep::MoveTail | MStep::CreateUnlock
                )
            {
                actions.push(MergeAction::Ambiguous(m as u8));
            }
            if state.crashes_left > 0 {
                actions.push(MergeAction::Crash(m as u8));
            }
        }
        if state.writes_left > 0 {
            actions.push(MergeAction::Write);
        }
        if state.sibling_left > 0 {
            actions.push(MergeAction::Sibling);
        }
        // Recovery runs for a lock whose holder really crashed (the implementation proves the
        // death first); whether it frees it is the variant's `release`.
        if matches!(state.lock_newest, LockEntry::Lock { holder } if state.mergers[holder as usize].step == MStep::Crashed)
        {
            actions.push(MergeAction::Recover);
        }
        let shown = if self.prototype() {
            state.head_entry
        } else {
            state.lock_newest
        };
        if state.forces_left > 0
            && matches!(shown, LockEntry::Lock { .. })
            && !matches!(
                self.variant(),
                MergeVariant::SeedLockFree | MergeVariant::SeedVacate
            )
        {
            actions.push(MergeAction::ForceRelease);
        }
    }

    fn next_state(&self, last: &MergeState, action: MergeAction) -> Option<MergeState> {
        let mut state = last.clone();
        let moved = match action {
            MergeAction::Step(m) => self.step(&mut state, m as usize),
            MergeAction::Ambiguous(m) => self.ambiguous(&mut state, m as usize),
            MergeAction::Write => {
                state.child_len += 1;
                state.writes_left -= 1;
                true
            }
            MergeAction::Crash(m) => {
                let merged = state.mergers[m as usize].merged;
                state.mergers[m as usize] = Merger {
                    step: MStep::Crashed,
                    merged,
                    ..Merger::default()
                };
                state.crashes_left -= 1;
                true
            }
            MergeAction::Recover => self.release(&mut state, false),
            MergeAction::ForceRelease => self.release(&mut state, true),
            MergeAction::Sibling => fixed::sibling_merge(self, &mut state),
        };
        moved.then_some(state)
    }

    fn within_boundary(&self, _state: &MergeState) -> bool {
        self.budget.allows()
    }

    fn format_action(&self, action: &MergeAction) -> String {
        trace::action_name(*action)
    }

    fn format_step(&self, last: &MergeState, action: MergeAction) -> Option<String> {
        let next = self.next_state(last, action)?;
        let (actor, text) = trace::describe(self, last, action, &next);
        Some(format!("{actor}: {text}"))
    }

    /// The Explorer's view of a state: the state as a table, then the path to it.
    fn as_svg(&self, path: stateright::Path<MergeState, MergeAction>) -> Option<String> {
        let path = path.into_vec();
        let state = &path.last()?.0;
        crate::diagram::explorer_svg(
            &Protocol::trace(self, &path),
            "merge",
            &trace::state_rows(self, state),
        )
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::<Self>::always("one merger", |model, state| {
                // At most one live, unrevoked merger holds the child's merge lock.
                model.mergers().filter(|m| model.holds(state, *m)).count() <= 1
            }),
            Property::<Self>::always("exactly once", |model, state| {
                // No child commit is in the parent twice (as readers count the parent).
                model.coverage(state).iter().all(|count| *count <= 1)
            }),
            Property::<Self>::always("consistent pointers", |model, state| {
                // Every child commit below TAIL is in the parent (nothing lost behind TAIL), and
                // TAIL never moved back.
                let coverage = model.coverage(state);
                !state.tail_regressed && (0..state.tail).all(|id| coverage[id as usize] >= 1)
            }),
            Property::<Self>::always("crash recovery", |model, state| {
                // A lock whose holder crashed is freed by recovery: the witness is computed by
                // applying the variant's recovery to a copy of the state, and the lock must be
                // free afterwards.
                match state.lock_newest {
                    LockEntry::Lock { holder }
                        if state.mergers[holder as usize].step == MStep::Crashed =>
                    {
                        let mut after = state.clone();
                        model.release(&mut after, false)
                            && !matches!(after.lock_newest, LockEntry::Lock { .. })
                    }
                    _ => true,
                }
            }),
            Property::<Self>::always("no orphan lock", |model, state| {
                // The newest `lock` belongs to a merger that holds it, has crashed (recovery's
                // case), or is reading back a create whose answer it lost: never to one that
                // went on without it (it would stay locked with nobody to free it).
                match state.lock_newest {
                    LockEntry::Lock { holder } => {
                        let h = holder as usize;
                        model.holds(state, h)
                            || matches!(state.mergers[h].step, MStep::Crashed | MStep::ReadBackLock)
                            || state.mergers[h].revoked
                    }
                    _ => true,
                }
            }),
            Property::<Self>::always("zombie cannot complete", |_, state| {
                // A force-released merger's unlock never frees a newer lock, and its TAIL move
                // never replaces a newer one.
                !state.zombie_completed
            }),
            Property::<Self>::always("conflicts abort", |_, state| {
                // Object X is deleted by at most one merge commit: of two merges that both
                // delete it, the one that comes second in the parent must have aborted.
                state
                    .parent
                    .iter()
                    .flatten()
                    .filter(|c| c.deletes_x)
                    .count()
                    <= 1
            }),
            Property::<Self>::sometimes("every merger merges", |model, state| {
                model.mergers().all(|m| state.mergers[m].merged)
            }),
        ]
    }
}

impl Protocol for MergeModel {
    fn protocol(&self) -> &'static str {
        "merge"
    }

    fn variant_name(&self) -> &'static str {
        self.variant().name()
    }

    fn bounds(&self) -> serde_json::Value {
        serde_json::to_value(&self.config).expect("serialises")
    }

    fn symmetry(&self) -> Option<fn(&MergeState) -> MergeState> {
        None
    }

    fn trace(&self, path: &[(MergeState, Option<MergeAction>)]) -> Trace {
        let mut setup = vec![format!(
            "{} merger(s); child commits 0..{} present, {} more written during the run",
            self.config.mergers, self.config.child_commits, self.config.child_writes
        )];
        if self.config.conflicts() {
            setup.push(format!(
                "a second child B merges {} time(s) into the same parent, writing one commit before each; A's commit 0 and B's commit 0 both delete parent object X",
                self.config.sibling_merges
            ));
        }
        Trace::from_path(
            setup,
            path,
            |last, action, next| trace::describe(self, last, action, next),
            trace::action_name,
            |last, action, next| trace::step_kind(self, last, action, next),
        )
    }

    fn conclusion(
        &self,
        property: &str,
        path: &[(MergeState, Option<MergeAction>)],
    ) -> Option<String> {
        trace::conclusion(self, property, path)
    }

    fn with_budget(&self, budget: Budget) -> Self {
        MergeModel {
            budget,
            ..self.clone()
        }
    }
}

/// The named worlds of the merge-lock model (`lockstep check merge --preset NAME`).
pub fn presets() -> Vec<crate::preset::Preset<MergeConfig>> {
    vec![
        crate::preset::Preset {
            name: "three-mergers",
            about: "3 mergers of one child; 1 child commit at start, 2 written during the run; 2 crashes; 2 force releases",
            default: true,
            config: MergeConfig::new(MergeVariant::Fixed(None)),
        },
        crate::preset::Preset {
            name: "ambiguous",
            about: "3 mergers; 1 child commit at start, 2 written during the run; 1 crash; 1 force release; 2 creates that land while their caller sees an error",
            default: true,
            config: ambiguous_world(MergeVariant::Fixed(None)),
        },
        crate::preset::Preset {
            name: "two-children",
            about: "3 mergers of child A; a second child B merges twice into the same parent; A's commit 0 and B's commit 0 both delete parent object X; 1 crash; 1 force release",
            default: true,
            config: two_children_world(MergeVariant::Fixed(None)),
        },
    ]
}

/// Two children merging into one parent, with a conflict (`--preset two-children`).
pub fn two_children_world(variant: MergeVariant) -> MergeConfig {
    MergeConfig {
        crashes: 1,
        force_releases: 1,
        sibling_merges: 2,
        ..MergeConfig::new(variant)
    }
}

/// The default world with lost responses (`--preset ambiguous`).
pub fn ambiguous_world(variant: MergeVariant) -> MergeConfig {
    MergeConfig {
        crashes: 1,
        force_releases: 1,
        ambiguous: 2,
        ..MergeConfig::new(variant)
    }
}
