//! OpenViking's session commit at PR 431, step by step (session.py, redo_log.py): no lock on
//! phase 1, the archive index kept in memory (two committers can pick the same one), archives and
//! `messages.jsonl` written by blind overwrite (clearing drops messages added meanwhile), the redo
//! marker written only after the messages are cleared, memory extraction that mints new memories
//! on every run, enqueue on every run, and recovery that replays every marker (including commits
//! still in flight elsewhere) and drops an unreadable one.
//!
//! The seed's steps are the fixed protocol's with every seed behaviour switched on: each mutant
//! of the fixed protocol puts back exactly one of them (`RedoVariant::like_seed`).

use super::{CStep, Marker, RStep, RedoModel, RedoState, ARCHIVES_MAX};

pub fn commit_step(model: &RedoModel, state: &mut RedoState, c: usize) -> bool {
    let me = state.committers[c];
    let i = me.index as usize;
    let set = |state: &mut RedoState, step: CStep| state.committers[c].step = step;
    match me.step {
        CStep::Load => {
            // `compression_index` in memory: the archive count at load time.
            state.committers[c].index = RedoModel::archive_count(state);
            set(state, CStep::ReadMessages);
        }
        CStep::ReadMessages => {
            if state.live == 0 {
                set(state, CStep::Done); // nothing to commit
                return true;
            }
            state.committers[c].snapshot = state.live;
            set(state, CStep::WriteArchive);
        }
        CStep::WriteArchive => {
            if i >= ARCHIVES_MAX {
                return false;
            }
            state.archives[i] = Some(me.snapshot); // a blind overwrite of archive_NNN
            set(state, CStep::ClearMessages);
        }
        CStep::ClearMessages => {
            // `messages.jsonl` is overwritten empty: messages added since the read go too.
            state.live = 0;
            set(state, CStep::WriteMarker);
        }
        CStep::WriteMarker => {
            state.markers[i] = Marker::Pending { owner: c as u8 };
            set(state, CStep::WriteMemories);
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
            state.markers[i] = Marker::None; // mark_done: rm -r of the task directory
            set(state, CStep::Done);
        }
        CStep::Lock | CStep::Unlock => unreachable!("the seed takes no session lock"),
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
        // `read` returns {} on any error; an empty marker is deleted without replay.
        state.markers[i] = Marker::None;
        state.recovery = model
            .next_replay(state)
            .map_or(RStep::Idle, |j| RStep::Replay { index: j, stage: 0 });
        return true;
    }
    state.replayed = true;
    match stage {
        0 => next_stage(state, 1), // read the marker and the archive
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
            state.markers[i] = Marker::None;
            state.recovery = match model.next_replay(state) {
                Some(j) if j != index => RStep::Replay { index: j, stage: 0 },
                _ => RStep::Idle,
            };
        }
    }
    true
}
