//! # The redo log of OpenViking's session commit (PR 431)
//!
//! A user adds messages to a session; committers of that session (separate processes) commit:
//! phase 1 archives the live messages and clears them, phase 2 extracts memories from the
//! archive, writes them, enqueues semantic work and marks the commit done. A redo record makes
//! phase 2 survive crashes: at restart, recovery replays every commit whose phase 2 did not
//! finish. A semantic-queue worker delivers items at least once and applies their effect.
//!
//! The world is modelled as it is, one storage operation per step:
//! - the session lock is a path lock with a lease: it can expire while its holder runs on (a
//!   zombie), and recovery frees the lock of a holder that is provably dead;
//! - every memory is its own create, and so are the manifest, `done`, an enqueue and an ack;
//! - a write can land while its caller sees an error (an ambiguous outcome), and the caller then
//!   does what the protocol says for an error;
//! - every actor can crash between any two storage operations; recovery can crash too;
//! - an extraction is not deterministic: every run produces a different set of memories.
//!
//! Variants:
//! - `seed`: OpenViking at PR 431 (session.py, redo_log.py): no lock on phase 1, the archive
//!   index kept in memory (two committers can pick the same one), archives and `messages.jsonl`
//!   written by blind overwrite (clearing drops messages added meanwhile), the redo marker
//!   written only after the messages are cleared, memory extraction that mints new memories on
//!   every run, enqueue on every run, recovery that replays every marker (including commits
//!   still in flight elsewhere), drops an unreadable one, and keeps the marker of a replay whose
//!   enqueue failed (to replay it again at the next restart).
//! - `fixed`: lockstep's (specs/redo.md): phase 1 excludes every message already in an archive
//!   and claims archive `k` with create-if-absent, so it is safe with no lock at all (the lock
//!   only saves wasted work); the archive *is* the redo record; memories are written under the
//!   extraction's own keys and made visible by one manifest create; queue items and effects are
//!   keyed by the archive; `done` ends the commit; recovery replays archives without `done`
//!   whose committer is provably dead.
//!
//! Properties: no message lost; no duplicate archive; no memory lost; memories from one
//! extraction; memories whole; recovery idempotent; effect applied once; delivered at least
//! once; every redo record finished; and (`sometimes`) a crashed commit is replayed.

use serde::Serialize;
use stateright::{Model, Property};

pub mod catalogue;
pub mod fixed;
pub mod phase2;
pub mod seed;
pub mod trace;
pub mod variant;
pub mod vectors;

use crate::check::{Budget, Protocol};
use crate::trace::Trace;

pub use phase2::{P2Stage, P2};
pub use variant::{RedoMutation, RedoVariant};

pub const ARCHIVES_MAX: usize = 4;
/// Committer slots (each commits once). The default worlds use 2 or 3; the conformance harness
/// maps every commit of its committer processes to a slot of its own, up to this many.
pub const COMMITTERS_MAX: usize = 8;
/// Memories one extraction produces (each its own create).
pub const MEMORIES: usize = 2;
/// Extractions of one archive the model can tell apart (each writes under its own keys).
pub const EXTRACTIONS_MAX: usize = 4;
pub const SLOTS: usize = MEMORIES * EXTRACTIONS_MAX;
/// Semantic-queue workers: the default worlds have one; the `worker-lease-loss` world two, one
/// of them in the process a restart restarts and the other a process of its own.
pub const WORKERS_MAX: usize = 2;
/// `RedoState::claimer` of a row nobody alive claims: none, or its worker crashed.
pub const NO_CLAIM: u8 = u8::MAX;
/// Sessions sharing one queue, one recovery and one worker (the opt-in `two-sessions` world).
/// Archive `k` of session `s` is the state's archive slot `k * sessions + s`.
pub const SESSIONS_MAX: usize = 2;

#[derive(Clone, Debug, Serialize)]
pub struct RedoConfig {
    #[serde(skip)]
    pub variant: RedoVariant,
    pub committers: u8,
    /// Messages the user adds over the run.
    pub messages: u8,
    pub crashes: u8,
    /// Restarts (each runs recovery, the queue's stale-claim recovery, and the path locks'
    /// recovery of dead holders).
    pub restarts: u8,
    /// Lease expiries of the session lock while its holder may still run.
    pub expiries: u8,
    /// Ambiguous outcomes: a write lands and its caller sees an error. In the seed, a replay's
    /// failed enqueue.
    pub faults: u8,
    /// Whether committers take the session lock (fixed; `false` checks that safety does not
    /// rest on it).
    pub session_lock: bool,
    /// Sessions (1 or 2). With 2, committer `c` commits session `c % 2`, message `m` is added
    /// to session `m % 2`, and the sessions share the queue, the worker and recovery.
    pub sessions: u8,
    /// Lost leases: the store proves a committer dead while it still runs (etcd: its owner
    /// lease expired in a stall or partition, or a stalled leader revoked it, #15247). Recovery
    /// may then replay its archive while it runs on, and its session lock is taken over.
    #[serde(default)]
    pub lease_losses: u8,
    /// Semantic-queue workers (1 or 2). Worker 0 runs in the process a restart restarts; worker 1
    /// is a process of its own that a restart leaves running (the seeds: both run in the server
    /// process, beside its SQLite queue, and a restart restarts both).
    pub workers: u8,
    /// Lost worker leases: the store proves a worker dead while it still runs, so another
    /// worker may claim its row over it while it applies and acks (a zombie worker).
    #[serde(default)]
    pub worker_lease_losses: u8,
}

impl RedoConfig {
    pub fn new(variant: RedoVariant) -> RedoConfig {
        RedoConfig {
            variant,
            committers: 2,
            messages: 2,
            crashes: 1,
            restarts: 1,
            expiries: 1,
            faults: 1,
            session_lock: true,
            sessions: 1,
            lease_losses: 0,
            workers: 1,
            worker_lease_losses: 0,
        }
    }
}

/// Seed: the redo marker of an archive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Marker {
    #[default]
    None,
    /// Phase 2 pending; `owner` is the committer that wrote it.
    Pending { owner: u8 },
    /// A torn marker write (zero bytes): unreadable.
    Torn,
}

/// An archive: the messages it holds and the committer that created it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Archive {
    pub messages: u8,
    pub owner: u8,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CStep {
    /// Take the session lock (a POINT path lock on the session directory; waits while held).
    #[default]
    Lock,
    /// Seed: load the session (the archive count becomes the in-memory index).
    Load,
    /// Fixed: list the archives: the next index, and (immutable) what they hold.
    ListArchives,
    ReadMessages,
    /// Create (seed: overwrite) the archive.
    WriteArchive,
    /// Delete the archived messages, one per step (seed: overwrite `messages.jsonl` empty).
    ClearMessages,
    /// Seed: the redo marker, written after the clear.
    WriteMarker,
    /// Release the session lock (fenced: only if we still hold it).
    Unlock,
    /// Phase 2 of archive `index`.
    Phase2(P2),
    Done,
    Crashed,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Committer {
    pub step: CStep,
    pub index: u8,
    /// Bitmask of message ids read for the archive.
    pub snapshot: u8,
    /// Mutant `index-from-memory`: the archive index was taken once.
    pub indexed: bool,
}

/// Recovery at a restart: replays archives one by one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RStep {
    #[default]
    Idle,
    Replay {
        index: u8,
        p2: P2,
    },
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
    /// Messages added so far.
    pub added: u8,
    /// Message keys that exist (bitmask): added and not deleted.
    pub stored: u8,
    pub archives: [Option<Archive>; ARCHIVES_MAX],
    /// Seed: redo markers.
    pub markers: [Marker; ARCHIVES_MAX],
    /// Fixed: archives whose `done` exists (bitmask).
    pub done: u8,
    /// Memory keys per archive: slot → the extraction whose memory it holds.
    pub memories: [[Option<u8>; SLOTS]; ARCHIVES_MAX],
    /// Fixed: the manifest of each archive names one extraction.
    pub manifest: [Option<u8>; ARCHIVES_MAX],
    /// Extractions started per archive (each a different result).
    pub extractions: [u8; ARCHIVES_MAX],
    /// Queue rows per archive: pending, being processed.
    pub queued: [u8; ARCHIVES_MAX],
    pub processing: [u8; ARCHIVES_MAX],
    /// Semantic effects of an archive's item that landed (fixed: one keyed create).
    pub effects: [u8; ARCHIVES_MAX],
    /// Fixed: the worker whose claim is the newest on each archive's row (`NO_CLAIM`: none, or
    /// its worker crashed). A claim is taken over only where the store proves its worker dead.
    pub claimer: [u8; ARCHIVES_MAX],
    pub committers: [Committer; COMMITTERS_MAX],
    /// Who holds each session lock's lease.
    pub locks: [Option<u8>; SESSIONS_MAX],
    pub recovery: RStep,
    pub workers: [WStep; WORKERS_MAX],
    pub crashes_left: u8,
    pub restarts_left: u8,
    pub expiries_left: u8,
    pub faults_left: u8,
    /// Seed: archives whose replay failed in this run (its marker kept for the next restart).
    pub failed_this_run: u8,
    /// History: archives whose replay ever failed.
    pub ever_failed: u8,
    /// History: a replay wrote a memory of an archive whose memories readers could already see.
    pub replay_rewrote: bool,
    /// History: some recovery replay ran.
    pub replayed: bool,
    /// History: archives whose replay ran to its end.
    pub replays_finished: u8,
    /// Committers whose lease was lost while they run (bitmask).
    pub lease_lost: u8,
    pub lease_losses_left: u8,
    /// Workers whose lease was lost while they run (bitmask): zombies.
    pub worker_lease_lost: u8,
    pub worker_lease_losses_left: u8,
}

/// Who takes a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Actor {
    Committer(u8),
    Recovery,
    Worker(u8),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RedoAction {
    AddMessage,
    Commit(u8),
    CrashCommitter(u8),
    /// Seed: a crash in the middle of the marker write (`write_pending` overwrites in place).
    CrashTearingMarker(u8),
    /// A restart: recovery starts, the queue's processing rows go back to pending, and a dead
    /// holder's session lock is freed.
    Restart,
    Recovery,
    CrashRecovery,
    Worker(u8),
    CrashWorker(u8),
    /// Session `s`'s lock's lease runs out while its holder may still run.
    Expire(u8),
    /// The actor's next write lands, and the actor sees an error.
    Ambiguous(Actor),
    /// Committer `c`'s lease is lost: the store proves it dead while it runs on.
    LoseLease(u8),
    /// Worker `w`'s lease is lost: the store proves it dead while it runs on.
    LoseWorkerLease(u8),
    /// Seed: the replay's enqueue fails; the replay raises and keeps its marker.
    FailEnqueue,
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
        if config.sessions == 0 || config.sessions as usize > SESSIONS_MAX {
            return Err(format!("sessions must be between 1 and {SESSIONS_MAX}"));
        }
        if config.workers == 0 || config.workers as usize > WORKERS_MAX {
            return Err(format!("workers must be between 1 and {WORKERS_MAX}"));
        }
        if config.worker_lease_losses > 0 && config.workers < 2 {
            return Err(
                "lost worker leases need 2 workers (--workers 2): a lone worker's lost lease lets nobody claim over it"
                    .into(),
            );
        }
        // The seeds have no owner leases to lose: the bounds say what is checked.
        let mut config = config;
        if config.variant.is_seed() {
            config.worker_lease_losses = 0;
        }
        if config.sessions > 1 && (config.variant.is_seed() || config.committers < config.sessions)
        {
            return Err(
                "two sessions: fixed variants only, with a committer per session at least".into(),
            );
        }
        Ok(RedoModel {
            config,
            budget: Budget::default(),
        })
    }

    pub fn variant(&self) -> RedoVariant {
        self.config.variant
    }

    pub fn has(&self, mutation: RedoMutation) -> bool {
        self.variant().has(mutation)
    }

    pub fn committers(&self) -> std::ops::Range<usize> {
        0..self.config.committers as usize
    }

    pub fn workers(&self) -> std::ops::Range<usize> {
        0..self.config.workers as usize
    }

    /// How traces name worker `w`: `worker` in a world of one, `w0` and `w1` in a world of two.
    pub fn worker_name(&self, w: u8) -> String {
        if self.config.workers == 1 {
            "worker".into()
        } else {
            format!("w{w}")
        }
    }

    /// Whether the newest claim on archive `i`'s row may be claimed over by worker `w`: nobody
    /// alive claims it (none, or its worker crashed), the store proves its worker dead (a lost
    /// lease: that worker may still run), or it is `w`'s own (a claim whose answer `w` lost).
    pub fn claimable(&self, state: &RedoState, i: usize, w: usize) -> bool {
        let claimer = state.claimer[i];
        claimer == NO_CLAIM
            || claimer as usize == w
            || state.worker_lease_lost & (1 << claimer) != 0
    }

    pub fn locks(&self) -> bool {
        !self.variant().is_seed() && self.config.session_lock
    }

    /// Readers find an archive's memories through its manifest.
    pub fn uses_manifest(&self) -> bool {
        !self.variant().is_seed()
            && !self.has(RedoMutation::NoManifest)
            && !self.has(RedoMutation::KeyedMemories)
    }

    pub fn archive_count(state: &RedoState) -> u8 {
        state.archives.iter().take_while(|a| a.is_some()).count() as u8
    }

    pub fn sessions(&self) -> usize {
        self.config.sessions as usize
    }

    /// The session committer `c` commits.
    pub fn session_of(&self, c: usize) -> usize {
        c % self.sessions()
    }

    /// The state's archive slot of session `s`'s archive `k`.
    pub fn slot(&self, s: usize, k: usize) -> usize {
        k * self.sessions() + s
    }

    /// The session of archive slot `j`, and its index in that session.
    pub fn slot_session(&self, j: usize) -> (usize, usize) {
        (j % self.sessions(), j / self.sessions())
    }

    /// Session `s`'s archive count: its next index (its archives are claimed in order).
    pub fn next_index(&self, state: &RedoState, s: usize) -> usize {
        (0..)
            .take_while(|k| {
                let j = self.slot(s, *k);
                j < ARCHIVES_MAX && state.archives[j].is_some()
            })
            .count()
    }

    /// The messages of session `s` (message `m` is added to session `m % sessions`).
    pub fn session_messages(&self, s: usize) -> u8 {
        (0..8u8)
            .filter(|m| *m as usize % self.sessions() == s)
            .fold(0, |all, m| all | 1 << m)
    }

    /// The archive slot whose key the queue row and the effect of archive slot `j` are stored
    /// under: its own (session and index), or (mutant) the first session's at its index.
    pub fn item_key(&self, j: usize) -> usize {
        if self.has(RedoMutation::ItemKeyedByIndex) {
            self.slot(0, self.slot_session(j).1)
        } else {
            j
        }
    }

    /// Whether a queue row is stored under key `key` (pending or being processed).
    pub fn row_at(&self, state: &RedoState, key: usize) -> bool {
        (0..ARCHIVES_MAX)
            .any(|j| self.item_key(j) == key && state.queued[j] + state.processing[j] > 0)
    }

    /// Whether an effect is stored under key `key`.
    pub fn effect_at(&self, state: &RedoState, key: usize) -> bool {
        (0..ARCHIVES_MAX).any(|j| self.item_key(j) == key && state.effects[j] > 0)
    }

    /// How traces name archive slot `j`: its index, and with two sessions its session too.
    pub fn archive_name(&self, j: u8) -> String {
        let (s, k) = self.slot_session(j as usize);
        format!("{}{k}", self.session_name(s).replace(' ', "/"))
    }

    /// `""` with one session; `"s1 "` with two.
    pub fn session_name(&self, s: usize) -> String {
        if self.sessions() == 1 {
            String::new()
        } else {
            format!("s{s} ")
        }
    }

    /// The session lock committer `c` takes, and who holds it.
    pub fn lock_of(&self, state: &RedoState, c: usize) -> Option<u8> {
        state.locks[self.session_of(c)]
    }

    /// Messages in any archive.
    pub fn archived(state: &RedoState) -> u8 {
        state
            .archives
            .iter()
            .flatten()
            .fold(0, |all, a| all | a.messages)
    }

    /// Messages the next commit will archive: stored, and (fixed) in no archive yet.
    pub fn live(&self, state: &RedoState) -> u8 {
        if self.variant().is_seed() || self.has(RedoMutation::NoExclusion) {
            state.stored
        } else {
            state.stored & !Self::archived(state)
        }
    }

    /// Messages only a live committer holds, in memory, and will still write to an archive:
    /// openviking 0.2.11 clears them before it writes the archive.
    pub fn held_in_memory(&self, state: &RedoState) -> u8 {
        if self.variant() != RedoVariant::Seed0211 {
            return 0;
        }
        self.committers()
            .map(|c| state.committers[c])
            .filter(|me| matches!(me.step, CStep::Unlock | CStep::WriteArchive))
            .fold(0, |all, me| all | me.snapshot)
    }

    /// Whether committer `c` waits for the session lock of a holder that has crashed.
    pub fn waits_for_dead_holder(&self, state: &RedoState, c: usize) -> bool {
        state.committers[c].step == CStep::Lock
            && self
                .lock_of(state, c)
                .is_some_and(|h| h as usize != c && Self::dead_to_store(state, h))
    }

    /// The memories of archive `i` a reader sees: (slot, extraction) pairs.
    pub fn view(&self, state: &RedoState, i: usize) -> Vec<(usize, u8)> {
        let slots: Vec<usize> = if self.uses_manifest() {
            match state.manifest[i] {
                Some(e) => (0..MEMORIES).map(|n| e as usize * MEMORIES + n).collect(),
                None => Vec::new(),
            }
        } else {
            (0..SLOTS).collect()
        };
        slots
            .into_iter()
            .filter_map(|s| state.memories[i][s].map(|e| (s, e)))
            .collect()
    }

    pub fn crashed(state: &RedoState, c: u8) -> bool {
        state.committers[c as usize].step == CStep::Crashed
    }

    /// Whether the store proves committer `c` dead: it crashed, or its lease was lost while it
    /// runs on (then it is a zombie).
    pub fn dead_to_store(state: &RedoState, c: u8) -> bool {
        Self::crashed(state, c) || state.lease_lost & (1 << c) != 0
    }

    /// Whether a live committer will still finish archive `index`: it is past the archive's
    /// create (or its create landed while it saw an error).
    pub fn in_flight(&self, state: &RedoState, index: u8) -> bool {
        self.committers().any(|c| {
            let me = state.committers[c];
            me.index == index
                && match me.step {
                    CStep::ClearMessages | CStep::WriteMarker | CStep::Phase2(_) => true,
                    CStep::Unlock => me.snapshot != 0,
                    CStep::WriteArchive => state.archives[index as usize]
                        .is_some_and(|a| a.owner == c as u8 && a.messages == me.snapshot),
                    _ => false,
                }
        })
    }

    /// Whether recovery will (or does) replay archive `i`.
    pub fn pending(&self, state: &RedoState, i: usize) -> bool {
        if self.variant().is_seed() {
            matches!(state.markers[i], Marker::Pending { .. } | Marker::Torn)
        } else {
            state.archives[i].is_some_and(|a| Self::dead_to_store(state, a.owner))
                && state.done & (1 << i) == 0
        }
    }

    /// The next archive recovery would replay in this run, if any.
    pub fn next_replay(&self, state: &RedoState) -> Option<u8> {
        (0..ARCHIVES_MAX as u8).find(|i| {
            let i = *i as usize;
            state.failed_this_run & (1 << i) == 0
                && if self.variant().is_seed() {
                    // Markers carry no owner: every marker is replayed, in flight or not.
                    state.markers[i] != Marker::None
                } else {
                    self.pending(state, i)
                }
        })
    }

    /// A write of the actor's next step (only those can have an ambiguous outcome).
    pub fn writes(&self, state: &RedoState, actor: Actor) -> bool {
        match actor {
            Actor::Committer(c) => match state.committers[c as usize].step {
                CStep::WriteArchive | CStep::ClearMessages | CStep::Unlock => true,
                CStep::Phase2(p2) => p2.stage.writes(),
                _ => false,
            },
            Actor::Recovery => {
                matches!(state.recovery, RStep::Replay { p2, .. } if p2.stage.writes())
            }
            Actor::Worker(w) => match state.workers[w as usize] {
                WStep::Idle => self.next_item(state, w as usize).is_some(),
                WStep::Apply(_) | WStep::Ack(_) => true,
            },
        }
    }

    fn commit_step(&self, state: &mut RedoState, c: usize) -> bool {
        if self.variant().is_seed() {
            seed::commit_step(self, state, c)
        } else {
            fixed::commit_step(self, state, c)
        }
    }

    fn recovery_step(&self, state: &mut RedoState) -> bool {
        let RStep::Replay { index, p2 } = state.recovery else {
            return false;
        };
        let i = index as usize;
        if self.variant().is_seed() && state.markers[i] == Marker::Torn {
            // `read` returns {} on any error; an empty marker is deleted without replay.
            state.markers[i] = Marker::None;
            self.next_replay_after(state, index);
            return true;
        }
        if self.has(RedoMutation::NoReplay) {
            state.done |= 1 << i;
            self.next_replay_after(state, index);
            return true;
        }
        state.replayed = true;
        match phase2::step(self, state, index, p2, true) {
            None => false,
            Some(Some(p2)) => {
                state.recovery = RStep::Replay { index, p2 };
                true
            }
            Some(None) => {
                state.replays_finished |= 1 << i;
                self.next_replay_after(state, index);
                true
            }
        }
    }

    /// Recovery moves on from archive `index` to the next one it would replay.
    fn next_replay_after(&self, state: &mut RedoState, index: u8) {
        state.recovery = match self.next_replay(state) {
            Some(j) if j != index => RStep::Replay {
                index: j,
                p2: P2::start(self),
            },
            _ => RStep::Idle,
        };
    }

    /// The row idle worker `w` claims next: the oldest pending one, or (fixed) the oldest whose
    /// claim it may claim over (`claimable`: a crashed worker's, one whose worker the store
    /// proves dead, or its own create whose answer it lost). The seed's SQLite queue leaves a
    /// row `processing` until a restart's `recover_stale`.
    pub fn next_item(&self, state: &RedoState, w: usize) -> Option<usize> {
        let seed = self.variant().is_seed();
        (0..ARCHIVES_MAX).find(|i| {
            state.queued[*i] > 0
                || (!seed && state.processing[*i] > 0 && self.claimable(state, *i, w))
        })
    }

    fn worker_step(&self, state: &mut RedoState, w: usize) -> bool {
        match state.workers[w] {
            WStep::Idle => {
                // Dequeue: claim the row (seed: one transaction marks it processing; fixed: the
                // next entry of the row's claim journal, over a claim `claimable` allows).
                let Some(i) = self.next_item(state, w) else {
                    return false;
                };
                if state.queued[i] > 0 {
                    state.queued[i] -= 1;
                    state.processing[i] += 1;
                }
                // Who claims is recorded only where another worker could claim over it: with
                // one worker every claim it meets is claimable (a crashed worker's, or its own
                // whose answer it lost), and recording it would only split equal states.
                if !self.variant().is_seed() && self.config.workers > 1 {
                    state.claimer[i] = w as u8;
                }
                state.workers[w] = WStep::Apply(i as u8);
                if self.has(RedoMutation::AckBeforeApply) {
                    state.workers[w] = WStep::Ack(i as u8);
                }
            }
            WStep::Apply(i) => {
                // Fixed: the effect is one create keyed by the item (the archive): a second
                // delivery finds it there. Seed and mutant: an append per delivery.
                if self.variant().like_seed(RedoMutation::EffectNotKeyed) {
                    let effect = &mut state.effects[i as usize];
                    *effect = (*effect + 1).min(3);
                } else if !self.effect_at(state, self.item_key(i as usize)) {
                    // Create-if-absent at the item's key: it lands only where none is stored.
                    state.effects[i as usize] = 1;
                }
                state.workers[w] = if self.has(RedoMutation::AckBeforeApply) {
                    WStep::Idle
                } else {
                    WStep::Ack(i)
                };
            }
            WStep::Ack(i) => {
                if self.variant().is_seed() {
                    // The SQLite queue deletes the row it dequeued, by its row id.
                    let p = &mut state.processing[i as usize];
                    *p = p.saturating_sub(1);
                } else {
                    // lockstep's ack deletes the row *key*, then its claims: whatever row is
                    // stored under the item's key goes, pending or claimed, even one inserted
                    // after the row this worker claimed (a zombie's late ack after a replay
                    // enqueued it again), and a delete of a row already gone is a no-op.
                    let key = self.item_key(i as usize);
                    for j in (0..ARCHIVES_MAX).filter(|j| self.item_key(*j) == key) {
                        state.queued[j] = 0;
                        state.processing[j] = 0;
                        state.claimer[j] = NO_CLAIM;
                    }
                }
                state.workers[w] = if self.has(RedoMutation::AckBeforeApply) {
                    WStep::Apply(i)
                } else {
                    WStep::Idle
                };
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

    /// At rest, archive `i` may still wait for a restart the bounds deny.
    /// (A row being processed waits for a restart only in the seed, whose queue frees a dead
    /// worker's row only then; lockstep's workers claim over a dead worker's claim at once.)
    fn waits_for_restart(&self, state: &RedoState, i: usize) -> bool {
        let seed = self.variant().is_seed();
        state.restarts_left == 0 && ((seed && state.processing[i] > 0) || self.pending(state, i))
    }
}

impl Model for RedoModel {
    type State = RedoState;
    type Action = RedoAction;

    fn init_states(&self) -> Vec<RedoState> {
        let first = if self.variant().is_seed() {
            CStep::Load
        } else if self.locks() {
            CStep::Lock
        } else {
            CStep::ListArchives
        };
        let mut committers = [Committer {
            step: CStep::Done,
            ..Committer::default()
        }; COMMITTERS_MAX];
        for c in self.committers() {
            committers[c] = Committer {
                step: first,
                ..Committer::default()
            };
        }
        vec![RedoState {
            added: 0,
            stored: 0,
            archives: [None; ARCHIVES_MAX],
            markers: [Marker::None; ARCHIVES_MAX],
            done: 0,
            memories: [[None; SLOTS]; ARCHIVES_MAX],
            manifest: [None; ARCHIVES_MAX],
            extractions: [0; ARCHIVES_MAX],
            queued: [0; ARCHIVES_MAX],
            processing: [0; ARCHIVES_MAX],
            effects: [0; ARCHIVES_MAX],
            claimer: [NO_CLAIM; ARCHIVES_MAX],
            committers,
            locks: [None; SESSIONS_MAX],
            recovery: RStep::Idle,
            workers: [WStep::Idle; WORKERS_MAX],
            crashes_left: self.config.crashes,
            restarts_left: self.config.restarts,
            expiries_left: self.config.expiries,
            faults_left: self.config.faults,
            failed_this_run: 0,
            ever_failed: 0,
            replay_rewrote: false,
            replayed: false,
            replays_finished: 0,
            lease_lost: 0,
            lease_losses_left: if self.variant().is_seed() {
                0
            } else {
                self.config.lease_losses
            },
            worker_lease_lost: 0,
            worker_lease_losses_left: if self.variant().is_seed() {
                0
            } else {
                self.config.worker_lease_losses
            },
        }]
    }

    fn actions(&self, state: &RedoState, actions: &mut Vec<RedoAction>) {
        let seed = self.variant().is_seed();
        if state.added < self.config.messages {
            actions.push(RedoAction::AddMessage);
        }
        for c in self.committers() {
            if !matches!(state.committers[c].step, CStep::Done | CStep::Crashed) {
                actions.push(RedoAction::Commit(c as u8));
                if state.crashes_left > 0 {
                    actions.push(RedoAction::CrashCommitter(c as u8));
                    if seed && state.committers[c].step == CStep::WriteMarker {
                        actions.push(RedoAction::CrashTearingMarker(c as u8));
                    }
                }
                if !seed && state.faults_left > 0 && self.writes(state, Actor::Committer(c as u8)) {
                    actions.push(RedoAction::Ambiguous(Actor::Committer(c as u8)));
                }
                if state.lease_losses_left > 0 && state.lease_lost & (1 << c) == 0 {
                    actions.push(RedoAction::LoseLease(c as u8));
                }
            }
        }
        for s in 0..self.sessions() {
            if state.locks[s].is_some() && state.expiries_left > 0 {
                actions.push(RedoAction::Expire(s as u8));
            }
        }
        // A row a restart's RecoverStale frees (seed: every processing row): claimed by nobody
        // alive, by a worker the store proves dead, or by worker 0, which the restart restarts.
        // The row worker 0 is working on right now is no reason for a restart on its own.
        let stale_row = (0..ARCHIVES_MAX).any(|i| {
            let working_on =
                matches!(state.workers[0], WStep::Apply(j) | WStep::Ack(j) if j as usize == i);
            state.processing[i] > 0 && (seed || self.claimable(state, i, 0)) && !working_on
        });
        let dead_lock = !seed
            && state
                .locks
                .iter()
                .any(|l| l.is_some_and(|h| Self::dead_to_store(state, h)));
        if state.restarts_left > 0
            && state.recovery == RStep::Idle
            && (self
                .next_replay(&RedoState {
                    failed_this_run: 0,
                    ..state.clone()
                })
                .is_some()
                || dead_lock
                || stale_row)
        {
            actions.push(RedoAction::Restart);
        }
        if let RStep::Replay { p2, .. } = state.recovery {
            actions.push(RedoAction::Recovery);
            if state.crashes_left > 0 {
                actions.push(RedoAction::CrashRecovery);
            }
            if state.faults_left > 0 {
                if seed && p2.stage == P2Stage::Enqueue {
                    actions.push(RedoAction::FailEnqueue);
                } else if !seed && self.writes(state, Actor::Recovery) {
                    actions.push(RedoAction::Ambiguous(Actor::Recovery));
                }
            }
        }
        for w in self.workers() {
            let busy = state.workers[w] != WStep::Idle;
            if busy || self.next_item(state, w).is_some() {
                actions.push(RedoAction::Worker(w as u8));
                if busy && state.crashes_left > 0 {
                    actions.push(RedoAction::CrashWorker(w as u8));
                }
                if !seed && state.faults_left > 0 && self.writes(state, Actor::Worker(w as u8)) {
                    actions.push(RedoAction::Ambiguous(Actor::Worker(w as u8)));
                }
            }
            // A lease lost while the worker holds a claim: a loss while it is idle is the same
            // as one right after its next claim.
            if busy && state.worker_lease_losses_left > 0 && state.worker_lease_lost & (1 << w) == 0
            {
                actions.push(RedoAction::LoseWorkerLease(w as u8));
            }
        }
    }

    fn next_state(&self, last: &RedoState, action: RedoAction) -> Option<RedoState> {
        let seed = self.variant().is_seed();
        let mut state = last.clone();
        let moved = match action {
            RedoAction::AddMessage => {
                state.stored |= 1 << state.added;
                state.added += 1;
                true
            }
            RedoAction::Commit(c) => self.commit_step(&mut state, c as usize),
            RedoAction::CrashCommitter(c) => {
                state.committers[c as usize].step = CStep::Crashed;
                state.crashes_left -= 1;
                true
            }
            RedoAction::LoseLease(c) => {
                state.lease_lost |= 1 << c;
                state.lease_losses_left -= 1;
                true
            }
            RedoAction::CrashTearingMarker(c) => {
                // A crash in the middle of the seed's marker write leaves it zero bytes.
                let me = &mut state.committers[c as usize];
                state.markers[me.index as usize] = Marker::Torn;
                me.step = CStep::Crashed;
                state.crashes_left -= 1;
                true
            }
            RedoAction::Restart => {
                state.restarts_left -= 1;
                // Worker 0 runs in the restarted process: whatever it was doing is gone (a new
                // process, a new owner), and its claims are a dead worker's. The queue's
                // RecoverStale puts processing rows back to pending: the seed's `recover_stale(0)`
                // every one; lockstep's `recover` those whose worker the store proves dead (a
                // second worker's process runs on, and keeps its claim).
                state.workers[0] = WStep::Idle;
                if seed {
                    state.workers = [WStep::Idle; WORKERS_MAX];
                }
                state.worker_lease_lost &= !1;
                for i in 0..ARCHIVES_MAX {
                    if state.claimer[i] == 0 {
                        state.claimer[i] = NO_CLAIM;
                    }
                    if seed || self.claimable(&state, i, 0) {
                        state.queued[i] += state.processing[i];
                        state.processing[i] = 0;
                        state.claimer[i] = NO_CLAIM;
                    }
                }
                // The path locks' recovery frees the lease of a holder the store proves dead
                // (the seeds' lock files have no liveness: only their expiry frees them).
                for s in 0..SESSIONS_MAX {
                    if !self.variant().is_seed()
                        && state.locks[s].is_some_and(|h| Self::dead_to_store(&state, h))
                    {
                        state.locks[s] = None;
                    }
                }
                state.failed_this_run = 0;
                state.recovery = self
                    .next_replay(&state)
                    .map_or(RStep::Idle, |i| RStep::Replay {
                        index: i,
                        p2: P2::start(self),
                    });
                true
            }
            RedoAction::Recovery => self.recovery_step(&mut state),
            RedoAction::CrashRecovery => {
                state.recovery = RStep::Idle;
                state.crashes_left -= 1;
                true
            }
            RedoAction::Worker(w) => self.worker_step(&mut state, w as usize),
            RedoAction::CrashWorker(w) => {
                // Its row stays `processing` (seed: until a restart; fixed: until a worker
                // claims over it, the store proving its worker dead). A new process with a new
                // owner takes the worker's place.
                state.workers[w as usize] = WStep::Idle;
                for claimer in state.claimer.iter_mut().filter(|c| **c == w) {
                    *claimer = NO_CLAIM;
                }
                state.worker_lease_lost &= !(1 << w);
                state.crashes_left -= 1;
                true
            }
            RedoAction::LoseWorkerLease(w) => {
                state.worker_lease_lost |= 1 << w;
                state.worker_lease_losses_left -= 1;
                true
            }
            RedoAction::Expire(s) => {
                state.locks[s as usize] = None;
                state.expiries_left -= 1;
                true
            }
            RedoAction::Ambiguous(actor) => {
                // The write lands; the actor saw an error and is where it was, to do what the
                // protocol says on an error: try the same step again.
                let moved = match actor {
                    Actor::Committer(c) => self.commit_step(&mut state, c as usize),
                    Actor::Recovery => self.recovery_step(&mut state),
                    Actor::Worker(w) => self.worker_step(&mut state, w as usize),
                };
                match actor {
                    Actor::Committer(c) => {
                        state.committers[c as usize] = last.committers[c as usize]
                    }
                    Actor::Recovery => state.recovery = last.recovery,
                    Actor::Worker(w) => state.workers[w as usize] = last.workers[w as usize],
                }
                state.faults_left -= 1;
                moved
            }
            RedoAction::FailEnqueue => {
                // Seed: `_redo_session_memory` raises; the marker stays for the next restart.
                let RStep::Replay { index, .. } = state.recovery else {
                    return None;
                };
                state.failed_this_run |= 1 << index;
                state.ever_failed |= 1 << index;
                state.faults_left -= 1;
                self.next_replay_after(&mut state, index);
                true
            }
        };
        moved.then_some(state)
    }

    fn within_boundary(&self, _state: &RedoState) -> bool {
        self.budget.allows()
    }

    fn format_action(&self, action: &RedoAction) -> String {
        trace::action_name(*action)
    }

    fn format_step(&self, last: &RedoState, action: RedoAction) -> Option<String> {
        let next = self.next_state(last, action)?;
        let (actor, text) = trace::describe(self, last, action, &next);
        Some(format!("{actor}: {text}"))
    }

    /// The Explorer's view of a state: the state as a table, then the path to it.
    fn as_svg(&self, path: stateright::Path<RedoState, RedoAction>) -> Option<String> {
        let path = path.into_vec();
        let state = &path.last()?.0;
        crate::diagram::explorer_svg(
            &Protocol::trace(self, &path),
            "redo",
            &trace::state_rows(self, state),
        )
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::<Self>::always("no message lost", |model, state| {
                // Every added message is live (the next commit takes it) or in an archive (or,
                // in 0.2.11, held by a live committer that will still write its archive).
                let kept =
                    model.live(state) | RedoModel::archived(state) | model.held_in_memory(state);
                (0..state.added).all(|m| kept & (1 << m) != 0)
            }),
            Property::<Self>::always("no duplicate archive", |_, state| {
                // No message is in two archives.
                (0..state.added).all(|m| {
                    state
                        .archives
                        .iter()
                        .flatten()
                        .filter(|a| a.messages & (1 << m) != 0)
                        .count()
                        <= 1
                })
            }),
            Property::<Self>::always("no memory lost", |model, state| {
                // Every added message is live, or in an archive that readers see memories of,
                // or that a live committer or recovery will still finish.
                let covered = |i: usize| {
                    !model.view(state, i).is_empty()
                        || model.in_flight(state, i as u8)
                        || model.pending(state, i)
                        || matches!(state.recovery, RStep::Replay { index, .. } if index as usize == i)
                };
                // (A message in no archive at all is "no message lost"'s concern.)
                let live = model.live(state);
                let archived = RedoModel::archived(state);
                (0..state.added).all(|m| {
                    live & (1 << m) != 0
                        || archived & (1 << m) == 0
                        || (0..ARCHIVES_MAX).any(|i| {
                            state.archives[i].is_some_and(|a| a.messages & (1 << m) != 0)
                                && covered(i)
                        })
                })
            }),
            Property::<Self>::always("memories from one extraction", |model, state| {
                // The memories readers see of an archive all come from one extraction.
                (0..ARCHIVES_MAX).all(|i| {
                    let view = model.view(state, i);
                    view.iter()
                        .all(|(_, e)| Some(*e) == view.first().map(|(_, e)| *e))
                })
            }),
            Property::<Self>::always("memories whole", |_, state| {
                // A manifest names only memories that exist.
                (0..ARCHIVES_MAX).all(|i| {
                    state.manifest[i].is_none_or(|e| {
                        (0..MEMORIES)
                            .all(|n| state.memories[i][e as usize * MEMORIES + n] == Some(e))
                    })
                })
            }),
            Property::<Self>::always("recovery idempotent", |_, state| {
                // A replay of a commit whose memories readers see writes no memory.
                !state.replay_rewrote
            }),
            Property::<Self>::always("effect applied once", |_, state| {
                // A queue item's effect lands at most once, however often it is delivered.
                state.effects.iter().all(|a| *a <= 1)
            }),
            Property::<Self>::always("delivered at least once", |model, state| {
                // Where nothing can happen any more, every archive with memories had its
                // semantic effect applied (unless it waits for a restart the bounds deny).
                !model.stuck(state)
                    || (0..ARCHIVES_MAX).all(|i| {
                        model.view(state, i).is_empty()
                            || state.effects[i] >= 1
                            || model.waits_for_restart(state, i)
                    })
            }),
            Property::<Self>::always("every redo record finished", |model, state| {
                // Where nothing can happen any more, every archive's phase 2 is marked finished;
                // one never replayed may wait only for a restart the bounds deny.
                !model.stuck(state)
                    || (0..ARCHIVES_MAX).all(|i| {
                        let open = if model.variant().is_seed() {
                            state.markers[i] != Marker::None
                        } else {
                            state.archives[i].is_some() && state.done & (1 << i) == 0
                        };
                        let replayed = state.replays_finished & (1 << i) != 0;
                        !open || (!replayed && model.waits_for_restart(state, i))
                    })
            }),
            Property::<Self>::always("no wait for a dead holder", |model, state| {
                // A committer that waits for the session lock of a crashed holder can take it
                // now (computed: its step is applied). A lock held by the dead blocks commits
                // only until the store proves the holder dead, not for a lease.
                model.committers().all(|c| {
                    !model.waits_for_dead_holder(state, c)
                        || model
                            .next_state(state, RedoAction::Commit(c as u8))
                            .is_some()
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
        let setup = vec![if self.sessions() == 1 {
            format!(
                "{} committer(s) of one session; the user adds {} message(s)",
                self.config.committers, self.config.messages
            )
        } else {
            format!(
                "{} committers of {} sessions sharing one queue, worker and recovery (committer c commits session c % {2}); the user adds {} messages (message m to session m % {2})",
                self.config.committers,
                self.sessions(),
                self.config.messages
            )
        }];
        let mut setup = setup;
        if self.config.workers > 1 {
            setup.push(if self.variant().is_seed() {
                format!(
                    "{} queue workers, in the server process beside its SQLite queue",
                    self.config.workers
                )
            } else {
                format!(
                    "{} queue workers: w0 runs in the process a restart restarts, the others are processes of their own",
                    self.config.workers
                )
            });
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
    let fixed = RedoConfig {
        crashes: 2,
        restarts: 2,
        expiries: 2,
        faults: 2,
        ..RedoConfig::new(RedoVariant::Fixed(None))
    };
    vec![
        crate::preset::Preset {
            name: "two-committers",
            about: "2 committers of one session; 2 messages; 2 crashes; 2 restarts; 2 lease expiries; 2 ambiguous writes",
            default: true,
            config: fixed.clone(),
        },
        crate::preset::Preset {
            name: "no-session-lock",
            about: "as two-committers, with no session lock at all: safety does not rest on it",
            default: true,
            config: RedoConfig {
                session_lock: false,
                ..fixed.clone()
            },
        },
        crate::preset::Preset {
            name: "lease-loss",
            about: "2 committers, 2 messages, 1 crash, 1 restart, 1 lease expiry, and a committer's lease lost while it runs on (etcd's owner leases): recovery may replay its archive beside it",
            default: true,
            config: RedoConfig {
                lease_losses: 1,
                faults: 0,
                ..RedoConfig::new(RedoVariant::Fixed(None))
            },
        },
        crate::preset::Preset {
            name: "worker-lease-loss",
            about: "2 queue workers (one in the restarted process, one a process of its own), 2 committers, 2 messages, 1 crash, 1 restart, 1 lease expiry, 1 ambiguous write, and 2 worker leases lost while their workers hold claims: another worker claims over a zombie while it applies and acks",
            default: true,
            config: RedoConfig {
                workers: 2,
                worker_lease_losses: 2,
                ..RedoConfig::new(RedoVariant::Fixed(None))
            },
        },
        crate::preset::Preset {
            name: "two-sessions",
            about: "2 sessions sharing one queue, worker and recovery; a committer and a message each; 2 crashes; 2 restarts; 1 lease expiry; 1 ambiguous write (opt-in)",
            default: false,
            config: RedoConfig {
                sessions: 2,
                crashes: 2,
                restarts: 2,
                ..RedoConfig::new(RedoVariant::Fixed(None))
            },
        },
        crate::preset::Preset {
            name: "three-committers",
            about: "3 committers; 3 messages; 1 crash; 1 restart; 1 lease expiry; 1 ambiguous write (opt-in)",
            default: false,
            config: RedoConfig {
                committers: 3,
                messages: 3,
                ..RedoConfig::new(RedoVariant::Fixed(None))
            },
        },
    ]
}
