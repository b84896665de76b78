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
//! - `seed`: OpenViking at PR 431 (session.py, redo_log.py): no lock on phase 1, the archive
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

pub mod catalogue;
pub mod fixed;
pub mod seed;
pub mod trace;
pub mod variant;

use crate::check::{Budget, Protocol};
use crate::trace::Trace;

pub use variant::{RedoMutation, RedoVariant};

pub const ARCHIVES_MAX: usize = 4;
pub const COMMITTERS_MAX: usize = 3;

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
        RedoConfig {
            variant,
            committers: 3,
            messages: 3,
            crashes: 2,
            restarts: 2,
        }
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
        Ok(RedoModel {
            config,
            budget: Budget::default(),
        })
    }

    pub fn variant(&self) -> RedoVariant {
        self.config.variant
    }

    pub fn committers(&self) -> std::ops::Range<usize> {
        0..self.config.committers as usize
    }

    pub fn archive_count(state: &RedoState) -> u8 {
        state.archives.iter().take_while(|a| a.is_some()).count() as u8
    }

    /// Whether a committer is alive and still working on archive `index`.
    pub fn in_flight(&self, state: &RedoState, index: u8) -> bool {
        self.committers().any(|c| {
            let me = state.committers[c];
            me.index == index
                && !matches!(
                    me.step,
                    CStep::Done | CStep::Crashed | CStep::Load | CStep::Lock | CStep::ReadMessages
                )
        })
    }

    /// The next archive recovery would replay, if any.
    pub fn next_replay(&self, state: &RedoState) -> Option<u8> {
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

    pub fn write_memories(&self, state: &mut RedoState, index: u8, by_recovery: bool) {
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

    pub fn enqueue(&self, state: &mut RedoState, index: u8) {
        let i = index as usize;
        if self.variant() == RedoVariant::Seed {
            state.queued[i] = (state.queued[i] + 1).min(3);
        } else if state.queued[i] + state.processing[i] == 0 && state.applied[i] == 0 {
            // Keyed by the archive: one row per archive, ever.
            state.queued[i] = 1;
        }
    }

    /// When recovery is idle, a session lock held by a dead committer is released.
    pub fn release_dead_lock(state: &mut RedoState) {
        let dead = state
            .session_lock
            .is_some_and(|h| state.committers[h as usize].step == CStep::Crashed);
        if dead && state.recovery == RStep::Idle {
            state.session_lock = None;
        }
    }

    pub fn locks(&self) -> bool {
        self.variant() != RedoVariant::Seed && !self.variant().has(RedoMutation::NoSessionLock)
    }

    fn commit_step(&self, state: &mut RedoState, c: usize) -> bool {
        if self.variant().is_seed() {
            seed::commit_step(self, state, c)
        } else {
            fixed::commit_step(self, state, c)
        }
    }

    fn recovery_step(&self, state: &mut RedoState) -> bool {
        if self.variant().is_seed() {
            seed::recovery_step(self, state)
        } else {
            fixed::recovery_step(self, state)
        }
    }

    fn worker_step(&self, state: &mut RedoState) -> bool {
        match state.worker {
            WStep::Idle => {
                let Some(i) = (0..ARCHIVES_MAX).find(|i| state.queued[*i] > 0) else {
                    return false;
                };
                state.queued[i] -= 1;
                state.processing[i] += 1;
                if self.variant().has(RedoMutation::AckBeforeApply) {
                    // Planted: ack (delete the row) first, apply afterwards.
                    state.processing[i] -= 1;
                }
                state.worker = WStep::Apply(i as u8);
            }
            WStep::Apply(i) => {
                let keyed = !self.variant().like_seed(RedoMutation::EffectNotKeyed);
                let applied = &mut state.applied[i as usize];
                *applied = if keyed { 1 } else { (*applied + 1).min(3) };
                state.worker = if self.variant().has(RedoMutation::AckBeforeApply) {
                    WStep::Idle
                } else {
                    WStep::Ack(i)
                };
            }
            WStep::Ack(i) => {
                assert!(
                    state.processing[i as usize] > 0,
                    "ack of a row that is not processing"
                );
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
        let mut committers = [Committer {
            step: CStep::Done,
            ..Committer::default()
        }; COMMITTERS_MAX];
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
        let dead_lock = state
            .session_lock
            .is_some_and(|h| state.committers[h as usize].step == CStep::Crashed);
        if state.restarts_left > 0
            && state.recovery == RStep::Idle
            && (self.next_replay(state).is_some()
                || dead_lock
                || (any_processing && state.worker == WStep::Idle))
        {
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
                state.recovery = self
                    .next_replay(&state)
                    .map_or(RStep::Idle, |i| RStep::Replay { index: i, stage: 0 });
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
                (0..state.added).all(|m| {
                    state.live & (1 << m) != 0
                        || state.archives.iter().flatten().any(|a| a & (1 << m) != 0)
                })
            }),
            Property::<Self>::always("no duplicate archive", |model, state| {
                // No message is in two archives; and once nothing can happen any more, no archived
                // message is still live (unless a pending redo record waits for a restart).
                let archived = |m: u8| {
                    state
                        .archives
                        .iter()
                        .flatten()
                        .filter(|a| *a & (1 << m) != 0)
                        .count()
                };
                let once = (0..state.added).all(|m| archived(m) <= 1);
                let pending = state
                    .markers
                    .iter()
                    .any(|m| matches!(m, Marker::Pending { .. }));
                let settled = !model.stuck(state)
                    || pending
                    || (0..state.added).all(|m| archived(m) == 0 || state.live & (1 << m) == 0);
                once && settled
            }),
            Property::<Self>::always("no memory lost", |model, state| {
                // Every archive has its memories, or a redo record recovery will replay, or a live
                // committer still working on it.
                (0..ARCHIVES_MAX as u8).all(|i| {
                    state.archives[i as usize].is_none()
                        || state.memories[i as usize] > 0
                        || matches!(
                            state.markers[i as usize],
                            Marker::Pending { .. } | Marker::Torn
                        )
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
                    state.restarts_left == 0
                        && (state.processing[i] > 0
                            || matches!(state.markers[i], Marker::Pending { .. } | Marker::Torn))
                };
                !model.stuck(state)
                    || (0..ARCHIVES_MAX).all(|i| {
                        state.memories[i] == 0 || state.applied[i] >= 1 || waits_for_restart(i)
                    })
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
                        let pending =
                            matches!(state.markers[i], Marker::Pending { .. } | Marker::Torn);
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
        let setup = vec![format!(
            "{} committer(s) of one session; the user adds {} message(s)",
            self.config.committers, self.config.messages
        )];
        Trace::from_path(
            setup,
            path,
            |last, action, next| trace::describe(self, last, action, next),
            trace::action_name,
        )
    }

    fn conclusion(
        &self,
        property: &str,
        path: &[(RedoState, Option<RedoAction>)],
    ) -> Option<String> {
        trace::conclusion(self, property, path)
    }

    fn with_budget(&self, budget: Budget) -> Self {
        RedoModel {
            budget,
            ..self.clone()
        }
    }
}

/// The named worlds of the redo-log model (`lockstep check redo --preset NAME`).
pub fn presets() -> Vec<crate::preset::Preset<RedoConfig>> {
    vec![crate::preset::Preset {
        name: "three-committers",
        about: "3 committers of one session; 3 messages; 2 crashes; 2 restarts",
        default: true,
        config: RedoConfig::new(RedoVariant::Fixed(None)),
    }]
}
