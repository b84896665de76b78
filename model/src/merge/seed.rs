//! The seeds of the merge lock, step by step.
//!
//! - `seed`: the proposal of brimdata/zed #2971 as written, on the 2021 prototype. A merger reads
//!   the lock journal's HEAD *pointer* (a separate object, updated after each entry, so it can
//!   lag), creates `lock` at HEAD+1 and updates HEAD; reads TAIL/BASE, cuts the child, appends
//!   the merge to the parent, moves TAIL to the child's end (the prototype's NOP position), and
//!   writes `unlock` at HEAD+1. Recovery and force release read HEAD too. It was never built.
//! - `seed-lockfree`: the 2021 code that shipped: no lock at all.
//! - `seed-blind-put`: the proposal on S3 before conditional writes: `lock` is a blind put.

use super::{Commit, LockEntry, MStep, MergeModel, MergeState, MergeVariant};

pub fn step(model: &MergeModel, state: &mut MergeState, m: usize) -> bool {
    let variant = model.variant();
    let lockfree = variant == MergeVariant::SeedLockFree;
    let me = state.mergers[m];
    let set = |state: &mut MergeState, step: MStep| state.mergers[m].step = step;
    match me.step {
        MStep::ReadLock => {
            if lockfree {
                set(state, MStep::ReadTail);
                return true;
            }
            // HEAD, and the entry it points at, stand for the journal's state.
            if matches!(state.head_entry, LockEntry::Lock { .. }) {
                return false; // locked: wait until it changes
            }
            state.mergers[m].seen = state.head;
            set(state, MStep::CreateLock);
        }
        MStep::CreateLock => {
            let blind = variant == MergeVariant::SeedBlindPut;
            if blind || state.lock_len == me.seen {
                // Create (or, blind, overwrite) entry `seen`.
                state.lock_len = state.lock_len.max(me.seen + 1);
                state.lock_newest = LockEntry::Lock { holder: m as u8 };
                state.mergers[m].lock_index = me.seen;
                set(state, MStep::WriteHead);
            } else if me.retries_left > 0 {
                state.mergers[m].retries_left -= 1;
                set(state, MStep::ReadLock);
            } else {
                set(state, MStep::Done); // gives up: the lock looks wedged
            }
        }
        MStep::WriteHead => {
            state.head = me.lock_index + 1;
            state.head_entry = if state.head == state.lock_len {
                state.lock_newest
            } else {
                LockEntry::Lock { holder: m as u8 }
            };
            set(state, MStep::ReadTail);
        }
        MStep::ReadTail => {
            state.mergers[m].tail = state.tail;
            state.mergers[m].tail_version = state.tail_version;
            set(state, MStep::ReadChild);
        }
        MStep::ReadChild => {
            state.mergers[m].cut = state.child_len;
            let next = if state.child_len == me.tail {
                if lockfree {
                    MStep::Done
                } else {
                    MStep::CreateUnlock
                }
            } else {
                MStep::AppendParent
            };
            set(state, next);
        }
        MStep::AppendParent => {
            let Some(slot) = state.parent.iter_mut().find(|c| c.is_none()) else {
                return false;
            };
            *slot = Some(Commit {
                from: me.tail,
                to: me.cut,
                by: m as u8,
                sibling: false,
                deletes_x: false,
            });
            set(state, MStep::MoveTail);
        }
        MStep::MoveTail => {
            // A blind put of TAIL/BASE, to the child's end as the prototype reads it now.
            let target = state.child_len;
            if target < state.tail {
                state.tail_regressed = true;
            }
            if me.revoked && state.tail_version != me.tail_version {
                state.zombie_completed = true;
            }
            state.tail = target;
            state.tail_version += 1;
            state.mergers[m].merged = true;
            set(
                state,
                if lockfree {
                    MStep::Done
                } else {
                    MStep::CreateUnlock
                },
            );
        }
        MStep::CreateUnlock => {
            // At HEAD+1 as HEAD reads now.
            let index = state.head;
            let landed = state.lock_len == index;
            if landed {
                if me.revoked
                    && matches!(state.lock_newest, LockEntry::Lock { holder } if holder as usize != m)
                {
                    state.zombie_completed = true;
                }
                MergeModel::append_lock_entry(state, LockEntry::Unlock);
                state.mergers[m].seen = index;
            }
            set(
                state,
                if landed {
                    MStep::WriteHeadAfterUnlock
                } else {
                    MStep::Done
                },
            );
        }
        MStep::WriteHeadAfterUnlock => {
            state.head = me.seen + 1;
            state.head_entry = if state.head == state.lock_len {
                state.lock_newest
            } else {
                LockEntry::Unlock
            };
            set(state, MStep::Done);
        }
        MStep::ReadParent => unreachable!("only the fixed protocol reads the parent back"),
        MStep::DeleteLock => unreachable!("only seed-vacate deletes its lock"),
        MStep::ReadBackLock => unreachable!("the seeds have no read-back"),
        MStep::Done | MStep::Crashed => return false,
    }
    true
}
