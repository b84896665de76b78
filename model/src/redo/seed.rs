//! OpenViking's session commit at PR 431, step by step (session.py `commit_async`,
//! redo_log.py): no lock on phase 1, the archive index kept in memory (`compression_index`:
//! two committers can pick the same one), the archive and `messages.jsonl` written by blind
//! overwrite (clearing drops messages added meanwhile), the redo marker written only after the
//! messages are cleared, then phase 2 (`phase2.rs` with the seed's behaviours: fresh memory ids
//! on every extraction, an enqueue on every run, the marker deleted at the end). Recovery
//! (`lock_manager.py`) replays every marker, in flight or not, and deletes an unreadable one.
//!
//! `seed-0.2.11` is openviking 0.2.11's `commit_async` (PyPI): a `Session` with no messages in
//! memory returns at once; otherwise it takes the session's POINT path lock, bumps the index in
//! memory, copies and clears its messages and writes `messages.jsonl` empty, releases the lock,
//! and only then writes the archive; phase 2 (marker, extraction, enqueue) as PR 431's.

use super::{CStep, Marker, RedoModel, RedoState, RedoVariant, ARCHIVES_MAX, P2};

pub fn commit_step(model: &RedoModel, state: &mut RedoState, c: usize) -> bool {
    // openviking 0.2.11 reorders phase 1: load, lock, read, clear, unlock, archive, marker.
    let v0211 = model.variant() == RedoVariant::Seed0211;
    let me = state.committers[c];
    let i = me.index as usize;
    let set = |state: &mut RedoState, step: CStep| state.committers[c].step = step;
    match me.step {
        CStep::Load => {
            // `compression_index` in memory: the archive count at load time.
            state.committers[c].index = RedoModel::archive_count(state);
            if !v0211 {
                set(state, CStep::ReadMessages);
            } else if state.stored == 0 {
                set(state, CStep::Done); // 0.2.11's pre-check: no messages, no lock
            } else {
                set(state, CStep::Lock);
            }
        }
        CStep::Lock => {
            // 0.2.11: `LockContext(point)` writes a lock file. A dead holder's file stays until
            // its `lock_expire` (300 s) passes: nothing proves the holder dead, and a restart
            // does not clear it. `lock_timeout` 0: the commit fails while it waits.
            if state.locks[0].is_some() {
                return false;
            }
            state.locks[0] = Some(c as u8);
            set(state, CStep::ReadMessages);
        }
        CStep::ReadMessages => {
            if state.stored == 0 {
                // Nothing to commit (0.2.11: the authoritative check under the lock).
                set(state, if v0211 { CStep::Unlock } else { CStep::Done });
                return true;
            }
            state.committers[c].snapshot = state.stored;
            set(
                state,
                if v0211 {
                    CStep::ClearMessages
                } else {
                    CStep::WriteArchive
                },
            );
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
            set(
                state,
                if v0211 {
                    CStep::WriteMarker
                } else {
                    CStep::ClearMessages
                },
            );
        }
        CStep::ClearMessages => {
            // `messages.jsonl` is overwritten empty: messages added since the read go too.
            state.stored = 0;
            set(
                state,
                if v0211 {
                    CStep::Unlock
                } else {
                    CStep::WriteMarker
                },
            );
        }
        CStep::Unlock => {
            // 0.2.11: the lock is released before the archive is written.
            if state.locks[0] == Some(c as u8) {
                state.locks[0] = None;
            }
            let next = if me.snapshot == 0 {
                CStep::Done
            } else {
                CStep::WriteArchive
            };
            set(state, next);
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
        CStep::ListArchives => unreachable!("the seeds list no archives"),
        CStep::Done | CStep::Crashed => return false,
    }
    true
}
