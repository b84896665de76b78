//! # The redo log of OpenViking's session commit (PR 431)
//!
//! A user adds messages to a session; committers of that session (two Session objects, or two
//! processes) commit: phase 1 archives the live messages and clears them, phase 2 extracts
//! memories from the archive, writes them, enqueues semantic work and marks the commit done. A
//! redo record makes phase 2 survive crashes: at restart, recovery replays every commit whose
//! phase 2 did not finish. A semantic-queue worker delivers items at least once (a crash after
//! processing re-delivers) and applies their effect. Every actor can crash between any two
//! storage operations; recovery can crash too.
//!
//! Variants:
//! - `seed`: OpenViking at PR 431 (research/openviking.md §2): no lock on phase 1, the archive
//!   index kept in memory (two committers can pick the same one), archives and `messages.jsonl`
//!   written by blind overwrite (clearing drops messages added meanwhile), the redo marker
//!   written only after the messages are cleared, memory extraction that mints new memories on
//!   every run, enqueue on every run, and recovery that replays every marker (including commits
//!   still in flight elsewhere) and drops an unreadable one.
//! - `fixed`: lockstep's (specs/redo.md): the archive is claimed with create-if-absent at the next
//!   index and *is* the redo record (written before anything is cleared); clearing removes only
//!   the archived messages; memories and queue items are keyed by the archive index (writing them
//!   twice changes nothing); the commit ends with a create-if-absent `done` entry; recovery
//!   replays only archives without `done` whose committer is dead; the worker applies an item's
//!   effect keyed by its id.
//!
//! Properties: no message lost; no duplicate archive; no memory lost; no duplicate memories;
//! effect applied once;
//! delivered at least once; recovery idempotent; every marker deleted; and (`sometimes`) a
//! crashed commit is replayed.

use serde::Serialize;
use stateright::{Model, Property};

use crate::check::{Budget, Protocol};
use crate::trace::Trace;

pub const ARCHIVES_MAX: usize = 4;
pub const COMMITTERS_MAX: usize = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RedoMutation {
    /// The archive index is taken from memory, not claimed with create-if-absent.
    IndexFromMemory,
    /// Clearing the messages drops every live message, not only the archived ones.
    ClearAll,
    /// The redo record is written after the messages are cleared.
    MarkerAfterClear,
    /// Memory ids are minted per extraction, not keyed by the archive.
    FreshMemoryIds,
    /// The worker applies an item's effect without its key (a re-delivery applies it again).
    EffectNotKeyed,
    /// The worker acks an item before applying its effect (a crash between loses it).
    AckBeforeApply,
    /// Recovery never marks a replayed commit done.
    KeepMarker,
    /// Recovery drops redo records without replaying them.
    NoReplay,
    /// Phase 1 runs without the session lock.
    NoSessionLock,
}

impl RedoMutation {
    pub const ALL: [RedoMutation; 9] = [
        RedoMutation::NoSessionLock,
        RedoMutation::IndexFromMemory,
        RedoMutation::ClearAll,
        RedoMutation::MarkerAfterClear,
        RedoMutation::FreshMemoryIds,
        RedoMutation::EffectNotKeyed,
        RedoMutation::AckBeforeApply,
        RedoMutation::KeepMarker,
        RedoMutation::NoReplay,
    ];

    pub fn name(self) -> &'static str {
        match self {
            RedoMutation::IndexFromMemory => "index-from-memory",
            RedoMutation::ClearAll => "clear-all",
            RedoMutation::MarkerAfterClear => "marker-after-clear",
            RedoMutation::FreshMemoryIds => "fresh-memory-ids",
            RedoMutation::EffectNotKeyed => "effect-not-keyed",
            RedoMutation::AckBeforeApply => "ack-before-apply",
            RedoMutation::KeepMarker => "keep-marker",
            RedoMutation::NoReplay => "no-replay",
            RedoMutation::NoSessionLock => "no-session-lock",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RedoVariant {
    Seed,
    Fixed(Option<RedoMutation>),
}

impl RedoVariant {
    pub fn name(self) -> &'static str {
        match self {
            RedoVariant::Seed => "seed",
            RedoVariant::Fixed(None) => "fixed",
            RedoVariant::Fixed(Some(m)) => m.name(),
        }
    }

    pub fn names() -> Vec<&'static str> {
        let mut names = vec!["seed", "fixed"];
        names.extend(RedoMutation::ALL.iter().map(|m| m.name()));
        names
    }

    pub fn parse(name: &str) -> Result<RedoVariant, String> {
        match name {
            "seed" => Ok(RedoVariant::Seed),
            "fixed" => Ok(RedoVariant::Fixed(None)),
            other => RedoMutation::ALL
                .iter()
                .find(|m| m.name() == other)
                .map(|m| RedoVariant::Fixed(Some(*m)))
                .ok_or_else(|| format!("unknown redo variant {other:?}; expected one of: {}", Self::names().join(", "))),
        }
    }

    fn has_mutation(self, mutation: RedoMutation) -> bool {
        self == RedoVariant::Fixed(Some(mutation))
    }

    /// Whether the variant does what the seed does in respect of `mutation`.
    fn like_seed(self, mutation: RedoMutation) -> bool {
        self == RedoVariant::Seed || self == RedoVariant::Fixed(Some(mutation))
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct RedoConfig {
    #[serde(skip)]
    pub variant: RedoVariant,
    pub committers: u8,
    /// Messages the user adds over the run.
    pub messages: u8,
    pub crashes: u8,
    /// Restarts (each runs recovery and the queue's stale-claim recovery).
    pub restarts: u8,
}

impl RedoConfig {
    pub fn new(variant: RedoVariant) -> RedoConfig {
        RedoConfig { variant, committers: 3, messages: 3, crashes: 2, restarts: 2 }
    }
}

/// The redo record of an archive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Marker {
    #[default]
    None,
    /// Phase 2 pending; `owner` is the committer that wrote it.
    Pending { owner: u8 },
    /// Seed: a torn marker write (zero bytes): unreadable.
    Torn,
    /// Fixed: the commit's `done` entry exists.
    Done,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CStep {
    /// Seed: load the session (the archive count becomes the in-memory index).
    #[default]
    Load,
    /// Fixed: take the session's lock (a POINT path lock on the session directory).
    Lock,
    ReadMessages,
    /// Write (seed: overwrite; fixed: create-if-absent) the archive.
    WriteArchive,
    ClearMessages,
    /// Seed: the redo marker, written after the clear.
    WriteMarker,
    WriteMemories,
    Enqueue,
    /// Seed: delete the marker. Fixed: create `done`.
    FinishMarker,
    /// Fixed: release the session lock (phase 1 is over).
    Unlock,
    Done,
    Crashed,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Committer {
    pub step: CStep,
    pub index: u8,
    /// Bitmask of message ids read for the archive.
    pub snapshot: u8,
}

/// Recovery at a restart: replays archives one by one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RStep {
    #[default]
    Idle,
    /// Replaying archive `index`: `stage` 0 clear (fixed), 1 memories, 2 enqueue, 3 finish.
    Replay { index: u8, stage: u8 },
}

/// The semantic-queue worker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum WStep {
    #[default]
    Idle,
    /// Dequeued item `index`; next: apply its effect.
    Apply(u8),
    /// Applied; next: ack (delete the row).
    Ack(u8),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RedoState {
    /// Messages added so far, and which are live (bitmask).
    pub added: u8,
    pub live: u8,
    /// The archives: message bitmask per index.
    pub archives: [Option<u8>; ARCHIVES_MAX],
    pub markers: [Marker; ARCHIVES_MAX],
    /// Seed: memories minted per archive (each extraction mints a new set). Fixed: 0 or 1.
    pub memories: [u8; ARCHIVES_MAX],
    /// Queue rows per archive: pending, being processed.
    pub queued: [u8; ARCHIVES_MAX],
    pub processing: [u8; ARCHIVES_MAX],
    /// Times the semantic effect of an archive's item was applied (fixed: keyed, so at most 1).
    pub applied: [u8; ARCHIVES_MAX],
    pub committers: [Committer; COMMITTERS_MAX],
    /// Fixed: who holds the session lock.
    pub session_lock: Option<u8>,
    pub recovery: RStep,
    pub worker: WStep,
    pub crashes_left: u8,
    pub restarts_left: u8,
    /// History: a replay wrote memories for an archive that had them (not idempotent).
    pub replay_duplicated: bool,
    /// History: some recovery replay ran.
    pub replayed: bool,
    /// History: archives whose replay ran to its end.
    pub replays_finished: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RedoAction {
    AddMessage,
    Commit(u8),
    CrashCommitter(u8),
    /// A restart: recovery starts, and the queue's processing rows go back to pending.
    Restart,
    Recovery,
    CrashRecovery,
    Worker,
    CrashWorker,
}

#[derive(Clone, Debug)]
pub struct RedoModel {
    pub config: RedoConfig,
    pub budget: Budget,
}

impl RedoModel {
    pub fn new(config: RedoConfig) -> Result<RedoModel, String> {
        if config.committers == 0 || config.committers as usize > COMMITTERS_MAX {
            return Err(format!("committers must be between 1 and {COMMITTERS_MAX}"));
        }
        if config.messages > 6 {
            return Err("at most 6 messages".into());
        }
        Ok(RedoModel { config, budget: Budget::default() })
    }

    fn variant(&self) -> RedoVariant {
        self.config.variant
    }

    fn committers(&self) -> std::ops::Range<usize> {
        0..self.config.committers as usize
    }

    fn archive_count(state: &RedoState) -> u8 {
        state.archives.iter().take_while(|a| a.is_some()).count() as u8
    }

    /// Whether a committer is alive and still working on archive `index`.
    fn in_flight(&self, state: &RedoState, index: u8) -> bool {
        self.committers().any(|c| {
            let me = state.committers[c];
            me.index == index && !matches!(me.step, CStep::Done | CStep::Crashed | CStep::Load | CStep::Lock | CStep::ReadMessages)
        })
    }

    /// The next archive recovery would replay, if any.
    fn next_replay(&self, state: &RedoState) -> Option<u8> {
        (0..ARCHIVES_MAX as u8).find(|i| match state.markers[*i as usize] {
            Marker::Pending { owner } => {
                // Seed markers carry no owner: every marker is replayed, in flight or not.
                let dead = state.committers[owner as usize].step == CStep::Crashed;
                dead || self.variant() == RedoVariant::Seed
            }
            Marker::Torn => true,
            Marker::None | Marker::Done => false,
        })
    }

    fn write_memories(&self, state: &mut RedoState, index: u8, by_recovery: bool) {
        let i = index as usize;
        if self.variant().like_seed(RedoMutation::FreshMemoryIds) {
            if by_recovery && state.memories[i] > 0 {
                state.replay_duplicated = true;
            }
            state.memories[i] = (state.memories[i] + 1).min(3);
        } else {
            state.memories[i] = 1;
        }
    }

    fn enqueue(&self, state: &mut RedoState, index: u8) {
        let i = index as usize;
        if self.variant() == RedoVariant::Seed {
            state.queued[i] = (state.queued[i] + 1).min(3);
        } else if state.queued[i] + state.processing[i] == 0 && state.applied[i] == 0 {
            // Keyed by the archive: one row per archive, ever.
            state.queued[i] = 1;
        }
    }

    /// When recovery is idle, a session lock held by a dead committer is released.
    fn release_dead_lock(state: &mut RedoState) {
        let dead = state.session_lock.is_some_and(|h| state.committers[h as usize].step == CStep::Crashed);
        if dead && state.recovery == RStep::Idle {
            state.session_lock = None;
        }
    }

    fn locks(&self) -> bool {
        self.variant() != RedoVariant::Seed && !self.variant().has_mutation(RedoMutation::NoSessionLock)
    }

    fn commit_step(&self, state: &mut RedoState, c: usize) -> bool {
        let variant = self.variant();
        let me = state.committers[c];
        let i = me.index as usize;
        let set = |state: &mut RedoState, step: CStep| state.committers[c].step = step;
        match me.step {
            CStep::Load => {
                state.committers[c].index = Self::archive_count(state);
                set(state, if self.locks() { CStep::Lock } else { CStep::ReadMessages });
            }
            CStep::Lock => {
                if state.session_lock.is_some() {
                    return false; // wait for it
                }
                state.session_lock = Some(c as u8);
                set(state, CStep::ReadMessages);
            }
            CStep::Unlock => {
                if state.session_lock == Some(c as u8) {
                    state.session_lock = None;
                }
                set(state, CStep::WriteMemories);
            }
            CStep::ReadMessages => {
                if state.live == 0 {
                    if state.session_lock == Some(c as u8) {
                        state.session_lock = None;
                    }
                    set(state, CStep::Done); // nothing to commit
                    return true;
                }
                state.committers[c].snapshot = state.live;
                if !variant.like_seed(RedoMutation::IndexFromMemory) {
                    // Fixed: the index is claimed by the archive's create below.
                    state.committers[c].index = Self::archive_count(state);
                }
                set(state, CStep::WriteArchive);
            }
            CStep::WriteArchive => {
                if i >= ARCHIVES_MAX {
                    return false;
                }
                let exists = state.archives[i].is_some();
                if variant.like_seed(RedoMutation::IndexFromMemory) {
                    state.archives[i] = Some(me.snapshot); // blind overwrite
                } else if exists {
                    // AlreadyExists: someone claimed this index; read again.
                    set(state, CStep::ReadMessages);
                    return true;
                } else {
                    // The archive is the redo record: it exists before anything is cleared.
                    state.archives[i] = Some(me.snapshot);
                    if !variant.like_seed(RedoMutation::MarkerAfterClear) {
                        state.markers[i] = Marker::Pending { owner: c as u8 };
                    }
                }
                set(state, CStep::ClearMessages);
            }
            CStep::ClearMessages => {
                state.live = if variant.like_seed(RedoMutation::ClearAll) { 0 } else { state.live & !me.snapshot };
                let marker_later = variant.like_seed(RedoMutation::MarkerAfterClear);
                let next = if marker_later {
                    CStep::WriteMarker
                } else if self.locks() {
                    CStep::Unlock
                } else {
                    CStep::WriteMemories
                };
                set(state, next);
            }
            CStep::WriteMarker => {
                state.markers[i] = Marker::Pending { owner: c as u8 };
                set(state, if self.locks() { CStep::Unlock } else { CStep::WriteMemories });
            }
            CStep::WriteMemories => {
                self.write_memories(state, me.index, false);
                set(state, CStep::Enqueue);
            }
            CStep::Enqueue => {
                self.enqueue(state, me.index);
                set(state, CStep::FinishMarker);
            }
            CStep::FinishMarker => {
                state.markers[i] = if variant == RedoVariant::Seed { Marker::None } else { Marker::Done };
                set(state, CStep::Done);
            }
            CStep::Done | CStep::Crashed => return false,
        }
        true
    }

    fn recovery_step(&self, state: &mut RedoState) -> bool {
        let RStep::Replay { index, stage } = state.recovery else { return false };
        let i = index as usize;
        let next_stage = |state: &mut RedoState, stage: u8| state.recovery = RStep::Replay { index, stage };
        if state.markers[i] == Marker::Torn {
            // Seed: `read` returns {} on any error; an empty marker is deleted without replay.
            state.markers[i] = Marker::None;
            state.recovery = self.next_replay(state).map_or(RStep::Idle, |j| RStep::Replay { index: j, stage: 0 });
            return true;
        }
        if self.variant().has_mutation(RedoMutation::NoReplay) {
            state.markers[i] = Marker::None;
            state.recovery = self.next_replay(state).map_or(RStep::Idle, |j| RStep::Replay { index: j, stage: 0 });
            return true;
        }
        state.replayed = true;
        match stage {
            0 => {
                // Fixed: finish the clear (only the archived messages). Seed: nothing to do.
                if self.variant() != RedoVariant::Seed {
                    let archived = state.archives[i].unwrap_or(0);
                    state.live &= !archived;
                }
                next_stage(state, 1);
            }
            1 => {
                self.write_memories(state, index, true);
                next_stage(state, 2);
            }
            2 => {
                self.enqueue(state, index);
                next_stage(state, 3);
            }
            _ => {
                state.replays_finished |= 1 << index;
                if !self.variant().has_mutation(RedoMutation::KeepMarker) {
                    state.markers[i] = if self.variant() == RedoVariant::Seed { Marker::None } else { Marker::Done };
                }
                state.recovery = match self.next_replay(state) {
                    Some(j) if j != index => RStep::Replay { index: j, stage: 0 },
                    _ => RStep::Idle,
                };
            }
        }
        true
    }

    fn worker_step(&self, state: &mut RedoState) -> bool {
        match state.worker {
            WStep::Idle => {
                let Some(i) = (0..ARCHIVES_MAX).find(|i| state.queued[*i] > 0) else { return false };
                state.queued[i] -= 1;
                state.processing[i] += 1;
                if self.variant().has_mutation(RedoMutation::AckBeforeApply) {
                    // Planted: ack (delete the row) first, apply afterwards.
                    state.processing[i] -= 1;
                }
                state.worker = WStep::Apply(i as u8);
            }
            WStep::Apply(i) => {
                let keyed = !self.variant().like_seed(RedoMutation::EffectNotKeyed);
                let applied = &mut state.applied[i as usize];
                *applied = if keyed { 1 } else { (*applied + 1).min(3) };
                state.worker = if self.variant().has_mutation(RedoMutation::AckBeforeApply) { WStep::Idle } else { WStep::Ack(i) };
            }
            WStep::Ack(i) => {
                assert!(state.processing[i as usize] > 0, "ack of a row that is not processing");
                state.processing[i as usize] -= 1;
                state.worker = WStep::Idle;
            }
        }
        true
    }

    /// Nothing can happen any more.
    fn stuck(&self, state: &RedoState) -> bool {
        let mut actions = Vec::new();
        self.actions(state, &mut actions);
        actions.iter().all(|a| self.next_state(state, *a).is_none())
    }
}

impl Model for RedoModel {
    type State = RedoState;
    type Action = RedoAction;

    fn init_states(&self) -> Vec<RedoState> {
        let mut committers = [Committer { step: CStep::Done, ..Committer::default() }; COMMITTERS_MAX];
        for c in self.committers() {
            committers[c] = Committer::default();
        }
        vec![RedoState {
            added: 0,
            live: 0,
            archives: [None; ARCHIVES_MAX],
            markers: [Marker::None; ARCHIVES_MAX],
            memories: [0; ARCHIVES_MAX],
            queued: [0; ARCHIVES_MAX],
            processing: [0; ARCHIVES_MAX],
            applied: [0; ARCHIVES_MAX],
            committers,
            session_lock: None,
            recovery: RStep::Idle,
            worker: WStep::Idle,
            crashes_left: self.config.crashes,
            restarts_left: self.config.restarts,
            replay_duplicated: false,
            replayed: false,
            replays_finished: 0,
        }]
    }

    fn actions(&self, state: &RedoState, actions: &mut Vec<RedoAction>) {
        if state.added < self.config.messages {
            actions.push(RedoAction::AddMessage);
        }
        for c in self.committers() {
            if !matches!(state.committers[c].step, CStep::Done | CStep::Crashed) {
                actions.push(RedoAction::Commit(c as u8));
                if state.crashes_left > 0 {
                    actions.push(RedoAction::CrashCommitter(c as u8));
                }
            }
        }
        let any_processing = state.processing.iter().any(|p| *p > 0);
        let dead_lock = state.session_lock.is_some_and(|h| state.committers[h as usize].step == CStep::Crashed);
        if state.restarts_left > 0 && state.recovery == RStep::Idle && (self.next_replay(state).is_some() || dead_lock || (any_processing && state.worker == WStep::Idle)) {
            actions.push(RedoAction::Restart);
        }
        if state.recovery != RStep::Idle {
            actions.push(RedoAction::Recovery);
            if state.crashes_left > 0 {
                actions.push(RedoAction::CrashRecovery);
            }
        }
        if state.worker != WStep::Idle || state.queued.iter().any(|q| *q > 0) {
            actions.push(RedoAction::Worker);
            if state.worker != WStep::Idle && state.crashes_left > 0 {
                actions.push(RedoAction::CrashWorker);
            }
        }
    }

    fn next_state(&self, last: &RedoState, action: RedoAction) -> Option<RedoState> {
        let mut state = last.clone();
        let moved = match action {
            RedoAction::AddMessage => {
                state.live |= 1 << state.added;
                state.added += 1;
                true
            }
            RedoAction::Commit(c) => self.commit_step(&mut state, c as usize),
            RedoAction::CrashCommitter(c) => {
                let me = &mut state.committers[c as usize];
                // A crash in the middle of the seed's marker write can leave it zero bytes.
                if self.variant() == RedoVariant::Seed && me.step == CStep::WriteMarker {
                    state.markers[me.index as usize] = Marker::Torn;
                }
                state.committers[c as usize].step = CStep::Crashed;
                state.crashes_left -= 1;
                true
            }
            RedoAction::Restart => {
                state.restarts_left -= 1;
                // A dead committer's session lock passes to recovery, which releases it only once
                // its replays (and so their clears) are done.
                // The worker runs in the restarted process: whatever it was doing is gone, and
                // the queue's RecoverStale(0) puts every processing row back to pending.
                state.worker = WStep::Idle;
                for i in 0..ARCHIVES_MAX {
                    state.queued[i] += state.processing[i];
                    state.processing[i] = 0;
                }
                state.recovery = self.next_replay(&state).map_or(RStep::Idle, |i| RStep::Replay { index: i, stage: 0 });
                Self::release_dead_lock(&mut state);
                true
            }
            RedoAction::Recovery => {
                let moved = self.recovery_step(&mut state);
                Self::release_dead_lock(&mut state);
                moved
            }
            RedoAction::CrashRecovery => {
                state.recovery = RStep::Idle;
                state.crashes_left -= 1;
                true
            }
            RedoAction::Worker => self.worker_step(&mut state),
            RedoAction::CrashWorker => {
                state.worker = WStep::Idle; // its row stays `processing` until a restart
                state.crashes_left -= 1;
                true
            }
        };
        moved.then_some(state)
    }

    fn within_boundary(&self, _state: &RedoState) -> bool {
        self.budget.allows()
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::<Self>::always("no message lost", |_, state| {
                // Every added message is in an archive or still live.
                (0..state.added).all(|m| state.live & (1 << m) != 0 || state.archives.iter().flatten().any(|a| a & (1 << m) != 0))
            }),
            Property::<Self>::always("no duplicate archive", |model, state| {
                // No message is in two archives; and once nothing can happen any more, no archived
                // message is still live (unless a pending redo record waits for a restart).
                let archived = |m: u8| state.archives.iter().flatten().filter(|a| *a & (1 << m) != 0).count();
                let once = (0..state.added).all(|m| archived(m) <= 1);
                let pending = state.markers.iter().any(|m| matches!(m, Marker::Pending { .. }));
                let settled = !model.stuck(state) || pending || (0..state.added).all(|m| archived(m) == 0 || state.live & (1 << m) == 0);
                once && settled
            }),
            Property::<Self>::always("no memory lost", |model, state| {
                // Every archive has its memories, or a redo record recovery will replay, or a live
                // committer still working on it.
                (0..ARCHIVES_MAX as u8).all(|i| {
                    state.archives[i as usize].is_none()
                        || state.memories[i as usize] > 0
                        || matches!(state.markers[i as usize], Marker::Pending { .. } | Marker::Torn)
                        || model.in_flight(state, i)
                })
            }),
            Property::<Self>::always("no duplicate memories", |_, state| {
                // No archive's memories were minted twice.
                state.memories.iter().all(|m| *m <= 1)
            }),
            Property::<Self>::always("effect applied once", |_, state| {
                // A queue item's effect is applied at most once, however often it is delivered.
                state.applied.iter().all(|a| *a <= 1)
            }),
            Property::<Self>::always("delivered at least once", |model, state| {
                // Where nothing can happen any more, every archive with memories had its semantic
                // effect applied (unless its row is stuck `processing` with no restart left: a
                // bound, not a bug).
                let waits_for_restart = |i: usize| {
                    state.restarts_left == 0 && (state.processing[i] > 0 || matches!(state.markers[i], Marker::Pending { .. } | Marker::Torn))
                };
                !model.stuck(state) || (0..ARCHIVES_MAX).all(|i| state.memories[i] == 0 || state.applied[i] >= 1 || waits_for_restart(i))
            }),
            Property::<Self>::always("recovery idempotent", |_, state| {
                // A replay of a commit whose memories exist changes nothing.
                !state.replay_duplicated
            }),
            Property::<Self>::always("every marker deleted", |model, state| {
                // Where nothing can happen any more, no redo record is pending: a replayed one is
                // always finished; one never replayed may wait only for a restart the bounds deny.
                !model.stuck(state)
                    || (0..ARCHIVES_MAX).all(|i| {
                        let pending = matches!(state.markers[i], Marker::Pending { .. } | Marker::Torn);
                        let replayed = state.replays_finished & (1 << i) != 0;
                        !pending || (!replayed && state.restarts_left == 0)
                    })
            }),
            Property::<Self>::sometimes("a crashed commit is replayed", |_, state| state.replayed),
        ]
    }
}

impl Protocol for RedoModel {
    fn protocol(&self) -> &'static str {
        "redo"
    }

    fn variant_name(&self) -> &'static str {
        self.variant().name()
    }

    fn bounds(&self) -> serde_json::Value {
        serde_json::to_value(&self.config).expect("serialises")
    }

    fn symmetry(&self) -> Option<fn(&RedoState) -> RedoState> {
        None
    }

    fn trace(&self, path: &[(RedoState, Option<RedoAction>)]) -> Trace {
        let setup = vec![format!("{} committer(s) of one session; the user adds {} message(s)", self.config.committers, self.config.messages)];
        Trace::from_path(setup, path, |last, action, next| describe(self, last, action, next))
    }

    fn with_budget(&self, budget: Budget) -> Self {
        RedoModel { budget, ..self.clone() }
    }
}

fn ids(mask: u8) -> String {
    let list: Vec<String> = (0..8).filter(|m| mask & (1 << m) != 0).map(|m| format!("m{m}")).collect();
    if list.is_empty() {
        "nothing".into()
    } else {
        list.join(",")
    }
}

fn describe(model: &RedoModel, last: &RedoState, action: RedoAction, next: &RedoState) -> (String, String) {
    let seed = model.variant() == RedoVariant::Seed;
    match action {
        RedoAction::AddMessage => ("user".into(), format!("add message m{}", last.added)),
        RedoAction::CrashCommitter(c) => (format!("c{c}"), "CRASHES".into()),
        RedoAction::CrashRecovery => ("recovery".into(), "CRASHES".into()),
        RedoAction::CrashWorker => ("worker".into(), "CRASHES (its row stays `processing`)".into()),
        RedoAction::Restart => ("restart".into(), "queue RecoverStale: processing rows back to pending; recovery starts".into()),
        RedoAction::Worker => {
            let text = match last.worker {
                WStep::Idle => "dequeue a semantic item".into(),
                WStep::Apply(i) => format!("apply the semantic effect of archive {i}"),
                WStep::Ack(i) => format!("ack item of archive {i}"),
            };
            ("worker".into(), text)
        }
        RedoAction::Recovery => {
            let text = match last.recovery {
                RStep::Replay { index, .. } if last.markers[index as usize] == Marker::Torn => {
                    format!("read marker of archive {index} → unreadable ({{}}): delete it without replay")
                }
                RStep::Replay { index, stage: 0 } if !seed => format!("replay archive {index}: clear its messages from the live list"),
                RStep::Replay { index, stage: 0 } => format!("replay archive {index}: read marker"),
                RStep::Replay { index, stage: 1 } => format!("replay archive {index}: extract and write memories"),
                RStep::Replay { index, stage: 2 } => format!("replay archive {index}: enqueue semantic work"),
                RStep::Replay { index, .. } => format!("replay archive {index}: {}", if seed { "delete the marker" } else { "create done" }),
                RStep::Idle => "nothing".into(),
            };
            ("recovery".into(), text)
        }
        RedoAction::Commit(c) => {
            let me = last.committers[c as usize];
            let text = match me.step {
                CStep::Load => format!("load session: {} archives, next index {}", RedoModel::archive_count(last), next.committers[c as usize].index),
                CStep::ReadMessages => format!("read messages → {}", ids(last.live)),
                CStep::WriteArchive if seed => format!("write archive {} = {} (overwrite)", me.index, ids(me.snapshot)),
                CStep::WriteArchive => {
                    let ok = next.archives[me.index as usize] != last.archives[me.index as usize];
                    format!("create archive {} = {} (the redo record) → {}", me.index, ids(me.snapshot), if ok { "ok" } else { "already exists" })
                }
                CStep::ClearMessages if seed => "write messages.jsonl = [] (drops everything live)".into(),
                CStep::ClearMessages => format!("remove archived messages {} from the live list", ids(me.snapshot)),
                CStep::WriteMarker => format!("write redo marker for archive {}", me.index),
                CStep::WriteMemories => format!("extract and write memories of archive {}", me.index),
                CStep::Enqueue => format!("enqueue semantic work for archive {}", me.index),
                CStep::FinishMarker if seed => format!("delete the redo marker of archive {}", me.index),
                CStep::FinishMarker => format!("create done for archive {}", me.index),
                CStep::Lock => "take the session lock (POINT on the session directory) → ok".into(),
                CStep::Unlock => "release the session lock".into(),
                CStep::Done | CStep::Crashed => "nothing".into(),
            };
            (format!("c{c}"), text)
        }
    }
}
