//! lockstep's merge-lock protocol (specs/merge.md), step by step.
//!
//! The lock state is the newest entry of the child's merge-lock journal, found by probing, never
//! from a HEAD pointer; the lock's index fences its holder. A merge commit is keyed by the TAIL
//! it starts from; a merger first looks for a merge commit of its TAIL in the parent and appends
//! only if there is none (at exactly the end it scanned), and moves TAIL to the end of that first
//! commit, so a repeated merge, a crash between the parent append and the TAIL move, or a
//! zombie's late append writes no second commit. TAIL/BASE moves by compare-and-swap on its
//! version; `unlock` is created right after the holder's own `lock`.

use super::{Commit, LockEntry, MStep, MergeModel, MergeMutation, MergeState};

pub fn step(model: &MergeModel, state: &mut MergeState, m: usize) -> bool {
    let variant = model.variant();
    let me = state.mergers[m];
    let set = |state: &mut MergeState, step: MStep| state.mergers[m].step = step;
    match me.step {
        MStep::ReadLock => {
            let never_free = variant.has(MergeMutation::LockNeverFree) && state.lock_len > 0;
            if matches!(state.lock_newest, LockEntry::Lock { .. }) || never_free {
                return false; // locked: wait until it changes
            }
            state.mergers[m].seen = state.lock_len;
            set(state, MStep::CreateLock);
        }
        MStep::CreateLock => {
            let blind = variant.has(MergeMutation::LockBlindPut);
            if blind || state.lock_len == me.seen {
                state.lock_len = state.lock_len.max(me.seen + 1);
                state.lock_newest = LockEntry::Lock { holder: m as u8 };
                state.mergers[m].lock_index = me.seen;
                set(state, MStep::ReadTail);
            } else if me.retries_left > 0 {
                state.mergers[m].retries_left -= 1;
                set(state, MStep::ReadLock);
            } else {
                set(state, MStep::Done); // gives up: the lock stays busy
            }
        }
        MStep::ReadBackLock => {
            let ours = state.lock_newest == LockEntry::Lock { holder: m as u8 }
                && state.lock_len == me.seen + 1
                && !variant.has(MergeMutation::NoLockReadBack);
            if ours {
                state.mergers[m].lock_index = me.seen;
                set(state, MStep::ReadTail);
            } else if me.retries_left > 0 {
                state.mergers[m].retries_left -= 1;
                set(state, MStep::ReadLock);
            } else {
                set(state, MStep::Done);
            }
        }
        MStep::ReadTail => {
            state.mergers[m].tail = state.tail;
            state.mergers[m].tail_version = state.tail_version;
            state.mergers[m].base = state.base;
            set(state, MStep::ReadChild);
        }
        MStep::ReadChild => {
            state.mergers[m].cut = state.child_len;
            if variant.has(MergeMutation::CheckBeforeAppend) {
                // Planted: the conflict verdict is taken now, not at the append.
                state.mergers[m].conflict_seen = MergeModel::x_changed_since(state, me.base, false);
            }
            set(
                state,
                if state.child_len == me.tail {
                    MStep::CreateUnlock
                } else {
                    MStep::AppendParent
                },
            );
        }
        MStep::AppendParent => {
            // One step: the scan of the parent for a merge commit of our TAIL and, if there is
            // none, the create at the end the scan found. The create is at exactly that index,
            // so it fails if anything was appended after the scan (and the merger scans again):
            // in effect the scan and the create happen at the create's instant.
            let scanned = !variant.has(MergeMutation::AppendWithoutScan);
            if scanned
                && state
                    .parent
                    .iter()
                    .flatten()
                    .any(|c| !c.sibling && c.from == me.tail)
            {
                set(state, MStep::ReadParent); // a crashed or fenced merger's: roll it forward
                return true;
            }
            // The conflict check, against exactly the entries the scan read (from BASE to the
            // end): a delete of X that the parent changed since BASE aborts the merge before
            // anything is written.
            let deletes_x = model.deletes_x(me.tail, me.cut);
            let changed = if variant.has(MergeMutation::CheckBeforeAppend) {
                me.conflict_seen
            } else {
                MergeModel::x_changed_since(state, me.base, false)
            };
            if deletes_x && changed && !variant.has(MergeMutation::SkipConflictCheck) {
                state.mergers[m].aborted = true;
                set(state, MStep::CreateUnlock); // TAIL stays; nothing was written
                return true;
            }
            let Some(slot) = state.parent.iter_mut().find(|c| c.is_none()) else {
                return false;
            };
            *slot = Some(Commit {
                from: me.tail,
                to: me.cut,
                by: m as u8,
                sibling: false,
                deletes_x,
            });
            set(state, MStep::ReadParent);
        }
        MStep::ReadParent => {
            let at = state
                .parent
                .iter()
                .position(|c| c.is_some_and(|c| !c.sibling && c.from == me.tail))
                .expect("ours at least");
            let first = state.parent[at].expect("found");
            state.mergers[m].first_at = at as u8;
            state.mergers[m].target = if variant.has(MergeMutation::TailToOwnCut) {
                me.cut
            } else {
                first.to
            };
            set(state, MStep::MoveTail);
        }
        MStep::MoveTail => {
            let blind = variant.has(MergeMutation::BlindTailMove);
            if state.tail_version == me.tail_version || blind {
                if me.target < state.tail {
                    state.tail_regressed = true;
                }
                if me.revoked && state.tail_version != me.tail_version {
                    state.zombie_completed = true; // replaced a newer TAIL/BASE
                }
                state.tail = me.target;
                state.base = me.first_at + 1;
                state.tail_version += 1;
                state.mergers[m].merged = true;
            }
            set(state, MStep::CreateUnlock);
        }
        MStep::CreateUnlock => {
            // Right after our own `lock`.
            let index = if variant.has(MergeMutation::BlindUnlock) {
                state.lock_len
            } else {
                me.lock_index + 1
            };
            if state.lock_len == index {
                if me.revoked
                    && matches!(state.lock_newest, LockEntry::Lock { holder } if holder as usize != m)
                {
                    state.zombie_completed = true;
                }
                MergeModel::append_lock_entry(state, LockEntry::Unlock);
            }
            set(state, MStep::Done);
        }
        MStep::WriteHead | MStep::WriteHeadAfterUnlock => {
            unreachable!("only the seed keeps a HEAD pointer")
        }
        MStep::DeleteLock => unreachable!("only seed-vacate deletes its lock"),
        MStep::Done | MStep::Crashed => return false,
    }
    true
}

/// The second child B's next merge (see `MergeAction::Sibling`): B has written commit `k` (one
/// before each merge), and merges its commits from its TAIL to `k + 1`. B's commit 0 deletes X:
/// a merge that includes it aborts (writing nothing, B's TAIL staying) if the parent changed X
/// since B's BASE.
pub fn sibling_merge(model: &MergeModel, state: &mut MergeState) -> bool {
    let k = model.config.sibling_merges - state.sibling_left;
    state.sibling_left -= 1;
    let from = state.sibling_tail;
    let deletes_x = from == 0;
    let skip = model.variant().has(MergeMutation::SkipConflictCheck);
    if deletes_x && !skip && MergeModel::x_changed_since(state, state.sibling_base, true) {
        return true; // aborted: B's TAIL stays, nothing was written
    }
    let Some(at) = state.parent.iter().position(|c| c.is_none()) else {
        return false;
    };
    state.parent[at] = Some(Commit {
        from,
        to: k + 1,
        by: 0,
        sibling: true,
        deletes_x,
    });
    state.sibling_tail = k + 1;
    state.sibling_base = at as u8 + 1;
    true
}
