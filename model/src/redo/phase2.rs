//! Phase 2 of one archive, as a committer runs it after phase 1 and as recovery replays it: the
//! same steps, one storage operation each, so that every mutant affects both.
//!
//! Fixed: read the manifest (if it exists the memories are done: go on to enqueue); extract
//! (an LLM call: every run gives a different result); create each memory under the
//! extraction's own keys; create the manifest naming the extraction (create-if-absent: the first
//! extraction to finish wins, and readers see only its memories); enqueue the keyed item; create
//! `done`. Seed: extract, write the memories under fresh ids, enqueue, delete the marker.

use super::{RedoModel, RedoMutation, RedoState, EXTRACTIONS_MAX, MEMORIES};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum P2Stage {
    #[default]
    ReadManifest,
    Extract,
    WriteMemory(u8),
    CreateManifest,
    Enqueue,
    /// Seed: delete the marker. Fixed: create `done`.
    Finish,
}

impl P2Stage {
    pub fn writes(self) -> bool {
        !matches!(self, P2Stage::ReadManifest | P2Stage::Extract)
    }
}

/// Where a run of phase 2 is, and which extraction it made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct P2 {
    pub stage: P2Stage,
    pub extraction: u8,
    /// This run read the manifest and found none: what it writes next is not a repeat of work
    /// it saw done (a committer that runs on after its lease was lost may create the manifest
    /// meanwhile; the replay's memories are then an invisible extraction).
    pub read_absent: bool,
}

impl P2 {
    pub fn start(model: &RedoModel) -> P2 {
        let reads_manifest = model.uses_manifest() && !model.has(RedoMutation::SkipManifestCheck);
        P2 {
            stage: if reads_manifest {
                P2Stage::ReadManifest
            } else {
                P2Stage::Extract
            },
            extraction: 0,
            read_absent: false,
        }
    }
}

/// One step of phase 2 of archive `index`: `None` if it cannot move, `Some(None)` once phase 2
/// is finished, else where it goes next.
pub fn step(
    model: &RedoModel,
    state: &mut RedoState,
    index: u8,
    p2: P2,
    by_recovery: bool,
) -> Option<Option<P2>> {
    let i = index as usize;
    let manifest_first = model.has(RedoMutation::ManifestFirst);
    // `read_absent` matters only to the memory writes; past them it is dropped, so that runs
    // that differ only there are one state.
    let go = |stage: P2Stage| {
        let read_absent =
            p2.read_absent && matches!(stage, P2Stage::WriteMemory(_) | P2Stage::CreateManifest);
        Some(Some(P2 {
            stage,
            read_absent,
            ..p2
        }))
    };
    match p2.stage {
        P2Stage::ReadManifest => {
            if state.manifest[i].is_some() {
                go(P2Stage::Enqueue)
            } else {
                Some(Some(P2 {
                    stage: P2Stage::Extract,
                    read_absent: true,
                    ..p2
                }))
            }
        }
        P2Stage::Extract => {
            let e = state.extractions[i];
            if e as usize >= EXTRACTIONS_MAX {
                return None; // beyond the bounds
            }
            state.extractions[i] += 1;
            let stage = if manifest_first {
                P2Stage::CreateManifest
            } else {
                P2Stage::WriteMemory(0)
            };
            Some(Some(P2 {
                stage,
                extraction: e,
                ..p2
            }))
        }
        P2Stage::WriteMemory(n) => {
            let slot = if model.has(RedoMutation::KeyedMemories) {
                n as usize
            } else {
                p2.extraction as usize * MEMORIES + n as usize
            };
            if state.memories[i][slot].is_none() {
                // Memories of another extraction readers already see: this replay repeats work
                // that was done (its own earlier writes do not count, nor a manifest created
                // after this replay read that there was none).
                if by_recovery
                    && !p2.read_absent
                    && model
                        .view(state, i)
                        .iter()
                        .any(|(_, e)| *e != p2.extraction)
                {
                    state.replay_rewrote = true;
                }
                state.memories[i][slot] = Some(p2.extraction);
            }
            if (n as usize) + 1 < MEMORIES {
                go(P2Stage::WriteMemory(n + 1))
            } else if model.uses_manifest() && !manifest_first {
                go(P2Stage::CreateManifest)
            } else {
                go(P2Stage::Enqueue)
            }
        }
        P2Stage::CreateManifest => {
            if state.manifest[i].is_none() {
                state.manifest[i] = Some(p2.extraction);
            }
            // AlreadyExists: another run's extraction won; its memories are the archive's.
            if manifest_first {
                go(P2Stage::WriteMemory(0))
            } else {
                go(P2Stage::Enqueue)
            }
        }
        P2Stage::Enqueue => {
            if model.variant().is_seed() {
                state.queued[i] = (state.queued[i] + 1).min(3);
            } else if !model.row_at(state, model.item_key(i)) {
                // Insert-if-absent of the row keyed by the archive: the queue sees only its own
                // rows (a row already acked is inserted again; its effect is keyed).
                state.queued[i] = 1;
            }
            go(P2Stage::Finish)
        }
        P2Stage::Finish => {
            if model.variant().is_seed() {
                state.markers[i] = super::Marker::None; // mark_done: rm -r of the task dir
            } else if !(by_recovery && model.has(RedoMutation::KeepMarker)) {
                state.done |= 1 << i;
            }
            Some(None)
        }
    }
}
