//! lockstep's redo protocol (specs/redo.md), step by step: the archive is claimed with
//! create-if-absent at the next index and *is* the redo record (written before anything is
//! cleared); clearing removes only the archived messages; memories and queue items are keyed by
//! the archive index (writing them twice changes nothing); the commit ends with a create-if-absent
//! `done` entry; recovery replays only archives without `done` whose committer is dead.

use super::{CStep, Marker, RStep, RedoModel, RedoMutation, RedoState, ARCHIVES_MAX};

pub fn commit_step(model: &RedoModel, state: &mut RedoState, c: usize) -> bool {
    let variant = model.variant();
    let me = state.committers[c];
    let i = me.index as usize;
    let set = |state: &mut RedoState, step: CStep| state.committers[c].step = step;
    match me.step {
        CStep::Load => {
            state.committers[c].index = RedoModel::archive_count(state);
            set(
                state,
                if model.locks() {
                    CStep::Lock
                } else {
                    CStep::ReadMessages
                },
            );
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
            if !variant.has(RedoMutation::IndexFromMemory) {
                // Fixed: the index is claimed by the archive's create below.
                state.committers[c].index = RedoModel::archive_count(state);
            }
            set(state, CStep::WriteArchive);
        }
        CStep::WriteArchive => {
            if i >= ARCHIVES_MAX {
                return false;
            }
            let exists = state.archives[i].is_some();
            if variant.has(RedoMutation::IndexFromMemory) {
                state.archives[i] = Some(me.snapshot); // blind overwrite
            } else if exists {
                // AlreadyExists: someone claimed this index; read again.
                set(state, CStep::ReadMessages);
                return true;
            } else {
                // The archive is the redo record: it exists before anything is cleared.
                state.archives[i] = Some(me.snapshot);
                if !variant.has(RedoMutation::MarkerAfterClear) {
                    state.markers[i] = Marker::Pending { owner: c as u8 };
                }
            }
            set(state, CStep::ClearMessages);
        }
        CStep::ClearMessages => {
            state.live = if variant.has(RedoMutation::ClearAll) {
                0
            } else {
                state.live & !me.snapshot
            };
            let marker_later = variant.has(RedoMutation::MarkerAfterClear);
            let next = if marker_later {
                CStep::WriteMarker
            } else if model.locks() {
                CStep::Unlock
            } else {
                CStep::WriteMemories
            };
            set(state, next);
        }
        CStep::WriteMarker => {
            state.markers[i] = Marker::Pending { owner: c as u8 };
            set(
                state,
                if model.locks() {
                    CStep::Unlock
                } else {
                    CStep::WriteMemories
                },
            );
        }
        CStep::WriteMemories => {
            model.write_memories(state, me.index, false);
            set(state, CStep::Enqueue);
        }
        CStep::Enqueue => {
            model.enqueue(state, me.index);
            set(state, CStep::FinishMarker);
        }
        CStep::FinishMarker => {
            state.markers[i] = Marker::Done;
            set(state, CStep::Done);
        }
        CStep::Done | CStep::Crashed => return false,
    }
    true
}

pub fn recovery_step(model: &RedoModel, state: &mut RedoState) -> bool {
    let RStep::Replay { index, stage } = state.recovery else {
        return false;
    };
    let i = index as usize;
    let next_stage =
        |state: &mut RedoState, stage: u8| state.recovery = RStep::Replay { index, stage };
    if state.markers[i] == Marker::Torn {
        // Seed: `read` returns {} on any error; an empty marker is deleted without replay.
        state.markers[i] = Marker::None;
        state.recovery = model
            .next_replay(state)
            .map_or(RStep::Idle, |j| RStep::Replay { index: j, stage: 0 });
        return true;
    }
    if model.variant().has(RedoMutation::NoReplay) {
        state.markers[i] = Marker::None;
        state.recovery = model
            .next_replay(state)
            .map_or(RStep::Idle, |j| RStep::Replay { index: j, stage: 0 });
        return true;
    }
    state.replayed = true;
    match stage {
        0 => {
            // Finish the clear (only the archived messages).
            let archived = state.archives[i].unwrap_or(0);
            state.live &= !archived;
            next_stage(state, 1);
        }
        1 => {
            model.write_memories(state, index, true);
            next_stage(state, 2);
        }
        2 => {
            model.enqueue(state, index);
            next_stage(state, 3);
        }
        _ => {
            state.replays_finished |= 1 << index;
            if !model.variant().has(RedoMutation::KeepMarker) {
                state.markers[i] = Marker::Done;
            }
            state.recovery = match model.next_replay(state) {
                Some(j) if j != index => RStep::Replay { index: j, stage: 0 },
                _ => RStep::Idle,
            };
        }
    }
    true
}
