//! `seed-vacate`: the lock SuperDB ships (brimdata/super #6706, 2026-03). `Store.MoveTail`
//! puts `TAIL.lock` with put-if-not-exists and deletes it when done (`defer deleteTailLockFile`,
//! db/journal/store.go); a put that finds it present fails the command. The lock records no
//! owner and has no lease, and nothing ever deletes it but its own holder. Here it guards
//! lockstep's merge steps (fixed.rs), so that only the lock differs from the fixed protocol.

use super::{fixed, LockEntry, MStep, MergeModel, MergeState};

pub fn step(model: &MergeModel, state: &mut MergeState, m: usize) -> bool {
    let set = |state: &mut MergeState, step: MStep| state.mergers[m].step = step;
    match state.mergers[m].step {
        // PutIfNotExists(TAIL.lock): present → the command fails (no retry).
        MStep::ReadLock => {
            if matches!(state.lock_newest, LockEntry::Lock { .. }) {
                set(state, MStep::Done);
            } else {
                state.lock_newest = LockEntry::Lock { holder: m as u8 };
                set(state, MStep::ReadTail);
            }
            true
        }
        MStep::DeleteLock => {
            state.lock_newest = LockEntry::None;
            set(state, MStep::Done);
            true
        }
        _ => {
            // The merge itself, as in the fixed protocol; where it would append `unlock`, the
            // lock file is deleted instead.
            let moved = fixed::step(model, state, m);
            if state.mergers[m].step == MStep::CreateUnlock {
                set(state, MStep::DeleteLock);
            }
            moved
        }
    }
}
