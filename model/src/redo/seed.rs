//! OpenViking's session commit at PR 431, step by step (session.py `commit_async`,
//! redo_log.py): no lock on phase 1, the archive index kept in memory (`compression_index`:
//! two committers can pick the same one), the archive and `messages.jsonl` written by blind
//! overwrite (clearing drops messages added meanwhile), the redo marker written only after the
//! messages are cleared, then phase 2 (`phase2.rs` with the seed's behaviours: fresh memory ids
//! on every extraction, an enqueue on every run, the marker deleted at the end). Recovery
//! (`lock_manager.py`) replays every marker, in flight or not, and deletes an unreadable one.

use super::{CStep, Marker, RedoModel, RedoState, ARCHIVES_MAX, P2};

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
            if state.stored == 0 {
                set(state, CStep::Done); // nothing to commit
                return true;
            }
            state.committers[c].snapshot = state.stored;
            set(state, CStep::WriteArchive);
        }
        CStep::WriteArchive => {
            if i >= ARCHIVES_MAX {
                return false;
            }
            // A blind overwrite of history/archive_NNN/messages.jsonl.
            state.archives[i] = Some(super::Archive {
                messages: me.snapshot,
                owner: c as u8,
            });
            set(state, CStep::ClearMessages);
        }
        CStep::ClearMessages => {
            // `messages.jsonl` is overwritten empty: messages added since the read go too.
            state.stored = 0;
            set(state, CStep::WriteMarker);
        }
        CStep::WriteMarker => {
            state.markers[i] = Marker::Pending { owner: c as u8 };
            set(state, CStep::Phase2(P2::start(model)));
        }
        CStep::Phase2(p2) => match super::phase2::step(model, state, me.index, p2, false) {
            None => return false,
            Some(Some(p2)) => set(state, CStep::Phase2(p2)),
            Some(None) => set(state, CStep::Done),
        },
        CStep::Lock | CStep::ListArchives | CStep::Unlock => {
            unreachable!("the seed takes no session lock")
        }
        CStep::Done | CStep::Crashed => return false,
    }
    true
}
