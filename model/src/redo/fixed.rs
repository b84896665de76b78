//! lockstep's phase 1 (specs/redo.md), one storage operation per step: take the session lock
//! (an optimisation only), list the archives, read the messages and exclude every one already
//! archived, claim archive `k` with create-if-absent (the archive is the redo record), delete
//! the archived messages one by one, release the lock. Phase 2 is `phase2.rs`.

use super::{CStep, RedoModel, RedoMutation, RedoState, ARCHIVES_MAX, P2};

pub fn commit_step(model: &RedoModel, state: &mut RedoState, c: usize) -> bool {
    let me = state.committers[c];
    let i = me.index as usize;
    let set = |state: &mut RedoState, step: CStep| state.committers[c].step = step;
    let after_phase1 = |model: &RedoModel| {
        if model.locks() {
            CStep::Unlock
        } else {
            CStep::Phase2(P2::start(model))
        }
    };
    match me.step {
        CStep::Lock => {
            // The lock of a holder the store proves dead is free to take (the path locks'
            // acquisition treats its entry so); a live holder's, or a zombie's whose lease has
            // not run out, is waited for.
            let dead = |h: u8| {
                RedoModel::dead_to_store(state, h) && !model.has(RedoMutation::WaitForDeadHolder)
            };
            let session = model.session_of(c);
            if state.locks[session].is_some_and(|h| !dead(h)) {
                return false; // wait for it
            }
            state.locks[session] = Some(c as u8);
            set(state, CStep::ListArchives);
        }
        CStep::ListArchives => {
            // The next index, and what archives 0..k hold: they are create-once, so reading
            // their contents now or at the next step gives the same.
            if !(model.has(RedoMutation::IndexFromMemory) && me.indexed) {
                let session = model.session_of(c);
                let k = model.next_index(state, session);
                state.committers[c].index = model.slot(session, k) as u8;
                state.committers[c].indexed = true;
            }
            set(state, CStep::ReadMessages);
        }
        CStep::ReadMessages => {
            let snapshot = model.live(state) & model.session_messages(model.session_of(c));
            state.committers[c].snapshot = snapshot;
            if snapshot == 0 {
                // Nothing to commit.
                set(
                    state,
                    if model.locks() {
                        CStep::Unlock
                    } else {
                        CStep::Done
                    },
                );
                return true;
            }
            set(state, CStep::WriteArchive);
        }
        CStep::WriteArchive => {
            if i >= ARCHIVES_MAX {
                return false; // beyond the bounds
            }
            if model.has(RedoMutation::IndexFromMemory) {
                state.archives[i] = Some(super::Archive {
                    messages: me.snapshot,
                    owner: c as u8,
                });
                set(state, CStep::ClearMessages);
                return true;
            }
            match state.archives[i] {
                None => {
                    // The archive is the redo record: it exists before anything is cleared.
                    state.archives[i] = Some(super::Archive {
                        messages: me.snapshot,
                        owner: c as u8,
                    });
                    set(state, CStep::ClearMessages);
                }
                Some(a)
                    if a.owner == c as u8
                        && a.messages == me.snapshot
                        && !model.has(RedoMutation::ArchiveExistsIsTheirs) =>
                {
                    // Our own create, which landed while we saw an error.
                    set(state, CStep::ClearMessages);
                }
                Some(_) => set(state, CStep::ListArchives), // someone else's: list again
            }
        }
        CStep::ClearMessages => {
            let targets = if model.has(RedoMutation::ClearAll) {
                state.stored
            } else {
                me.snapshot
            };
            let todo = targets & state.stored;
            if todo != 0 {
                state.stored &= !(todo & todo.wrapping_neg()); // delete the lowest
            }
            if targets & state.stored == 0 {
                set(state, after_phase1(model));
            }
        }
        CStep::Unlock => {
            // Fenced: only our own lease is released (it may have expired and moved on).
            let session = model.session_of(c);
            if state.locks[session] == Some(c as u8) {
                state.locks[session] = None;
            }
            if me.snapshot == 0 {
                set(state, CStep::Done);
            } else {
                set(state, CStep::Phase2(P2::start(model)));
            }
        }
        CStep::Phase2(p2) => match super::phase2::step(model, state, me.index, p2, false) {
            None => return false,
            Some(Some(p2)) => set(state, CStep::Phase2(p2)),
            Some(None) => set(state, CStep::Done),
        },
        CStep::Load | CStep::WriteMarker => unreachable!("seed steps"),
        CStep::Done | CStep::Crashed => return false,
    }
    true
}
