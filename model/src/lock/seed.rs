//! The seed: OpenViking's path locks at PR 431 (`path_lock.py`), step by step.
//!
//! Each numbered step of `acquire_point` / `acquire_subtree` is one storage operation here:
//! 1. read the own path's lock file; 2. read each ancestor's (the walk stops below `/`);
//! 3. SUBTREE: read each descendant's; 4. write our token by blind overwrite; 5. re-check the other
//! paths (not the own path), settling a conflict by the `(timestamp, owner)` tie-break; 6. re-read
//! our own file. A stale lock found in steps 1-3 is removed with a plain `rm` and the loop restarts.
//! Release is a plain `rm`; refresh reads the token and, if it is still ours, overwrites it.

use super::{Check, Head, Held, Hold, LockAction, LockModel, LockState, Outcome, Phase, Step};
use crate::lock::Kind;

/// What one read of a lock file means to the reader.
enum Found {
    /// Nothing that conflicts (no file, our own token, or a lock type this check ignores).
    Nothing,
    /// Another owner's lock, live by the reader's wall clock.
    Live,
    /// Another owner's lock (or a zero-byte file), stale by the reader's wall clock.
    Stale,
}

fn read(model: &LockModel, state: &LockState, client: usize, check: Check) -> Found {
    match state.slots[check.path as usize].head {
        Head::Held { owner, .. } if owner as usize == client => Found::Nothing,
        Head::Held { kind, .. } if !(check.any_kind || kind == Kind::Subtree) => Found::Nothing,
        Head::Held { owner, tick, .. } => {
            if model.expired(state, Some(client), owner, tick) {
                Found::Stale
            } else {
                Found::Live
            }
        }
        // `""` parses as a POINT token with timestamp 0: stale, and ignored by ancestor checks.
        Head::Empty { .. } if check.any_kind => Found::Stale,
        _ => Found::Nothing,
    }
}

pub fn apply(model: &LockModel, state: &mut LockState, action: LockAction) -> bool {
    match action {
        LockAction::Step(c) => step(model, state, c as usize),
        LockAction::Renew(c, lock) => refresh_read(model, state, c as usize, lock),
        LockAction::TornRefresh(c) => torn_refresh(model, state, c as usize),
        LockAction::ReapRead(path) => {
            state.reaper_pending = Some(path);
            state.reaps_left -= 1;
            true
        }
        LockAction::ReapRm => {
            let path = state.reaper_pending.take().expect("ReapRm follows ReapRead");
            state.slots[path as usize].head = Head::Free;
            state.disturbed = true;
            true
        }
        _ => unreachable!("not a seed action: {action:?}"),
    }
}

/// The stale-lock cleaner: read a lock file, and if it is stale, `rm` it (two separate calls).
pub fn cleaner_actions(model: &LockModel, state: &LockState, actions: &mut Vec<LockAction>) {
    if state.reaper_pending.is_some() {
        actions.push(LockAction::ReapRm);
        return;
    }
    if state.reaps_left == 0 {
        return;
    }
    for path in 0..model.tree.len() as u8 {
        let stale = match state.slots[path as usize].head {
            Head::Held { owner, tick, .. } => model.expired(state, None, owner, tick),
            Head::Empty { .. } => true,
            _ => false,
        };
        if stale {
            actions.push(LockAction::ReapRead(path));
        }
    }
}

fn step(model: &LockModel, state: &mut LockState, client: usize) -> bool {
    match state.clients[client].phase {
        Phase::Acquiring { lock, step } => acquire(model, state, client, lock, step),
        Phase::Holding(Hold::Ready) => {
            // The guarded write: nothing in OpenViking's storage layer checks the token.
            let accepted = model.guarded_write(state, client);
            debug_assert!(accepted, "the seed's resource accepts every write");
            model.finish_with(state, client, Outcome::Done);
            true
        }
        Phase::Holding(Hold::Refreshing(lock)) => {
            // The overwrite half of refresh: blind, so it can resurrect a stolen lock.
            let plan = model.plan(state, client, lock);
            let (path, kind) = (plan.path, plan.kind);
            let token = state.now + model.spec(client).skew_ticks;
            state.slots[path as usize].head = Head::Held { owner: client as u8, kind, token, tick: state.now };
            let me = &mut state.clients[client];
            let held = me.held[lock as usize].as_mut().expect("refreshing a held lock");
            held.token = token;
            held.tick = state.now;
            me.phase = Phase::Holding(Hold::Ready);
            true
        }
        Phase::Holding(Hold::LeaseChecked) => unreachable!("the seed never checks its lease"),
        Phase::Releasing { outcome } => {
            release_newest(model, state, client, outcome);
            true
        }
        Phase::Idle | Phase::Finished(_) | Phase::Crashed => false,
    }
}

fn acquire(model: &LockModel, state: &mut LockState, client: usize, lock: u8, step: Step) -> bool {
    let plan = model.plan(state, client, lock).clone();
    let set = |state: &mut LockState, step: Step| {
        state.clients[client].phase = Phase::Acquiring { lock, step };
    };
    match step {
        Step::CheckSame | Step::Check(_) => {
            let index = if let Step::Check(j) = step { j } else { 0 };
            match read(model, state, client, plan.pre[index as usize]) {
                Found::Stale => set(state, Step::RmStale(plan.pre[index as usize].path)),
                Found::Live => {
                    state.clients[client].contended = true;
                    if model.spec(client).timeout.waits() {
                        set(state, Step::Wait { check: index, recheck: false });
                    } else {
                        model.finish_with(state, client, Outcome::Busy);
                    }
                }
                Found::Nothing if (index as usize) + 1 < plan.pre.len() => set(state, Step::Check(index + 1)),
                Found::Nothing => set(state, Step::Write),
            }
        }
        Step::Wait { check, .. } => {
            // Polling: nothing happens until the conflict is gone; then the loop restarts.
            if matches!(read(model, state, client, plan.pre[check as usize]), Found::Live) {
                return false;
            }
            set(state, Step::CheckSame);
        }
        Step::RmStale(path) => {
            // Blind `rm` of what was judged stale one read ago.
            if let Head::Held { .. } = state.slots[path as usize].head {
                state.took_over = true;
            }
            state.slots[path as usize].head = Head::Free;
            state.disturbed = true;
            set(state, Step::CheckSame);
        }
        Step::Write => {
            let token = state.now + model.spec(client).skew_ticks;
            state.slots[plan.path as usize].head =
                Head::Held { owner: client as u8, kind: plan.kind, token, tick: state.now };
            let me = &mut state.clients[client];
            me.ticket = token;
            me.wrote_at = state.now;
            set(state, if plan.re.is_empty() { Step::Verify } else { Step::Recheck(0) });
        }
        Step::Recheck(index) => {
            recheck(model, state, client, lock, &plan.re, index);
        }
        Step::Verify => {
            // Only another owner's token fails the verify; a deleted file passes.
            let theirs = matches!(state.slots[plan.path as usize].head,
                Head::Held { owner, .. } if owner as usize != client);
            if !theirs {
                let me = &state.clients[client];
                let held = Held { token: me.ticket, index: 0, tick: me.wrote_at, revoked: false };
                model.granted(state, client, lock, held);
            } else if state.clients[client].retries_left > 0 {
                state.clients[client].retries_left -= 1;
                set(state, Step::CheckSame);
            } else {
                model.finish_with(state, client, Outcome::Busy);
            }
        }
        Step::RmOwn { retry } => {
            // Blind `rm` of our own path: whatever token is there now goes.
            state.slots[plan.path as usize].head = Head::Free;
            if retry {
                set(state, Step::CheckSame);
            } else {
                model.finish_with(state, client, Outcome::Busy);
            }
        }
        Step::ClaimTicket | Step::Create | Step::WriteEntry | Step::Withdraw { .. } | Step::Reap { .. } => {
            unreachable!("not a seed step: {step:?}")
        }
    }
    true
}

/// Step 5: re-read another path after writing. On a conflict the later writer (larger
/// `(timestamp, owner)`) deletes its file; the other keeps it but sleeps and restarts too. When
/// the deadline has passed, a side that has not backed off deletes its own file and fails.
fn recheck(_model: &LockModel, state: &mut LockState, client: usize, lock: u8, re: &[Check], index: u8) {
    let check = re[index as usize];
    let theirs = match state.slots[check.path as usize].head {
        Head::Held { owner, kind, token, .. }
            if owner as usize != client && (check.any_kind || kind == Kind::Subtree) =>
        {
            Some((token, owner))
        }
        Head::Empty { .. } if check.any_kind => Some((0, u8::MAX)),
        _ => None,
    };
    let set = |state: &mut LockState, step: Step| {
        state.clients[client].phase = Phase::Acquiring { lock, step };
    };
    let Some(theirs) = theirs else {
        let next = if (index as usize) + 1 < re.len() { Step::Recheck(index + 1) } else { Step::Verify };
        set(state, next);
        return;
    };
    let me = &mut state.clients[client];
    me.contended = true;
    let mine = (me.ticket, client as u8);
    let can_retry = me.retries_left > 0;
    if can_retry {
        me.retries_left -= 1;
    }
    if mine > theirs {
        set(state, Step::RmOwn { retry: can_retry });
    } else if can_retry {
        set(state, Step::CheckSame);
    } else {
        set(state, Step::RmOwn { retry: false });
    }
}

/// Release: `rm` each lock file, newest first, with no ownership check.
fn release_newest(model: &LockModel, state: &mut LockState, client: usize, outcome: Outcome) {
    let newest = state.clients[client].held.iter().rposition(Option::is_some);
    if let Some(lock) = newest {
        let path = model.plan(state, client, lock as u8).path;
        state.slots[path as usize].head = Head::Free;
        state.clients[client].held[lock] = None;
    }
    if state.clients[client].held.iter().all(Option::is_none) {
        state.clients[client].phase = Phase::Finished(outcome);
    }
}

/// Refresh, first half: read the token; only if it is still ours is the overwrite next.
fn refresh_read(model: &LockModel, state: &mut LockState, client: usize, lock: u8) -> bool {
    let path = model.plan(state, client, lock).path;
    let me_owner = client as u8;
    let ours = matches!(state.slots[path as usize].head, Head::Held { owner, .. } if owner == me_owner);
    let me = &mut state.clients[client];
    me.renewals_left -= 1;
    if ours {
        me.phase = Phase::Holding(Hold::Refreshing(lock));
    }
    true
}

/// The storage dies in the middle of the refresh overwrite: the file is left with zero bytes.
/// The holder's call fails, the error is logged, and it carries on believing it holds the lock.
fn torn_refresh(model: &LockModel, state: &mut LockState, client: usize) -> bool {
    let Phase::Holding(Hold::Refreshing(lock)) = state.clients[client].phase else {
        return false;
    };
    let path = model.plan(state, client, lock).path;
    state.slots[path as usize].head = Head::Empty { owner: client as u8 };
    state.crashes_left -= 1;
    state.disturbed = true;
    state.clients[client].phase = Phase::Holding(Hold::Ready);
    true
}
