//! The seed: OpenViking's path locks at PR 431 (`path_lock.py`), step by step.
//!
//! Each numbered step of `acquire_point` / `acquire_subtree` is one storage operation here:
//! 1. read the own path's lock file; 2. read each ancestor's (the walk stops below `/`);
//! 3. SUBTREE: read each descendant's; 4. write our token by blind overwrite; 5. re-check the other
//! paths (not the own path), settling a conflict by the `(timestamp, owner)` tie-break; 6. re-read
//! our own file. A stale lock found in steps 1-3 is removed with a plain `rm` and the loop restarts
//! (the code reads the token twice there, in `_is_locked_by_other` and `is_lock_stale`; the model
//! reads it once, which only removes interleavings).
//! Release is a plain `rm`; refresh reads the token and, if it is still ours, overwrites it.
//!
//! What the published code does with errors and odd files (openviking 0.2.11 on PyPI carries
//! PR 431's `path_lock.py` unchanged): `_read_token` returns `None` for any exception and for an
//! empty file, and `None` means "no lock" everywhere except in `_verify_lock_ownership`, where
//! it fails the verify. A failed write returns `False` at once. A failed `rm` of a stale lock is
//! ignored and the loop `continue`s with no sleep and no deadline check.

use super::{
    Check, Head, Held, Hold, LockAction, LockModel, LockState, Outcome, Phase, Step, StoreOp,
};
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
        // An empty file reads as `None`: no lock (it is then simply overwritten).
        Head::Empty { .. } => Found::Nothing,
        _ => Found::Nothing,
    }
}

pub fn apply(model: &LockModel, state: &mut LockState, action: LockAction) -> bool {
    match action {
        LockAction::Step(c) => step(model, state, c as usize),
        LockAction::Renew(c, lock) => refresh_read(model, state, c as usize, lock),
        LockAction::TornRefresh(c) => torn_refresh(model, state, c as usize),
        LockAction::Fail(c) => fault(model, state, c as usize, false),
        LockAction::Ambiguous(c) => fault(model, state, c as usize, true),
        _ => unreachable!("not a seed action: {action:?}"),
    }
}

/// The seed has no stale-lock scanner: its `_stale_cleanup_loop` releases the manager's own
/// in-process handles older than 3600 s (OpenViking #1165), and stale lock files are removed only
/// by acquirers that meet them (`is_lock_stale`, then `_remove_lock_file`).
pub fn cleaner_actions(_model: &LockModel, _state: &LockState, _actions: &mut Vec<LockAction>) {}

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
            state.slots[path as usize].head = Head::Held {
                owner: client as u8,
                kind,
                token,
                tick: state.now,
            };
            let me = &mut state.clients[client];
            let held = me.held[lock as usize]
                .as_mut()
                .expect("refreshing a held lock");
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
        Phase::BackingOff => unreachable!("the seed never backs off a whole operation"),
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
                        set(
                            state,
                            Step::Wait {
                                check: index,
                                recheck: false,
                            },
                        );
                    } else {
                        model.finish_with(state, client, Outcome::Busy);
                    }
                }
                Found::Nothing if (index as usize) + 1 < plan.pre.len() => {
                    set(state, Step::Check(index + 1))
                }
                Found::Nothing => set(state, Step::Write),
            }
        }
        Step::Wait { check, .. } => {
            // Polling: nothing happens until the conflict is gone; then the loop restarts.
            if matches!(
                read(model, state, client, plan.pre[check as usize]),
                Found::Live
            ) {
                return false;
            }
            set(state, Step::CheckSame);
        }
        Step::RmStale(_) if model.config.stale_unremovable => {
            // `_remove_lock_file` fails and returns False, which nobody reads; the loop
            // `continue`s at once: no sleep, no deadline check.
            rm_failed(state, client, lock);
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
            state.slots[plan.path as usize].head = Head::Held {
                owner: client as u8,
                kind: plan.kind,
                token,
                tick: state.now,
            };
            let me = &mut state.clients[client];
            me.ticket = token;
            me.wrote_at = state.now;
            set(
                state,
                if plan.re.is_empty() {
                    Step::Verify
                } else {
                    Step::Recheck(0)
                },
            );
        }
        Step::Recheck(index) => {
            recheck(model, state, client, lock, &plan.re, index);
        }
        Step::Verify => {
            // `_verify_lock_ownership`: only our own token passes; another's, or none, fails.
            let ours = matches!(state.slots[plan.path as usize].head,
                Head::Held { owner, .. } if owner as usize == client);
            verified(model, state, client, lock, ours);
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
        Step::ClaimTicket
        | Step::ClaimToWait { .. }
        | Step::Create
        | Step::WriteEntry
        | Step::Withdraw { .. }
        | Step::Reap { .. }
        | Step::ReadBack => {
            unreachable!("not a seed step: {step:?}")
        }
    }
    true
}

/// The end of step 6: granted, or (on a failed verify) fail at the deadline or sleep and retry.
fn verified(model: &LockModel, state: &mut LockState, client: usize, lock: u8, ours: bool) {
    if ours {
        let me = &state.clients[client];
        let held = Held {
            token: me.ticket,
            index: 0,
            tick: me.wrote_at,
            revoked: false,
        };
        model.granted(state, client, lock, held);
    } else if model.spec(client).timeout.waits() && state.clients[client].retries_left > 0 {
        let me = &mut state.clients[client];
        me.retries_left -= 1;
        me.restarts = me
            .restarts
            .saturating_add(1)
            .min(super::RESTARTS_COUNTED_MAX);
        me.phase = Phase::Acquiring {
            lock,
            step: Step::CheckSame,
        };
    } else {
        model.finish_with(state, client, Outcome::Busy);
    }
}

/// A failed `rm` of a stale lock: the loop starts over at once (it counts as a restart: the
/// acquisition made no progress).
fn rm_failed(state: &mut LockState, client: usize, lock: u8) {
    let me = &mut state.clients[client];
    me.restarts = me
        .restarts
        .saturating_add(1)
        .min(super::RESTARTS_COUNTED_MAX);
    me.phase = Phase::Acquiring {
        lock,
        step: Step::CheckSame,
    };
}

/// The storage operation a client's next step performs, if any (where faults can strike).
pub fn next_op(state: &LockState, client: usize) -> Option<StoreOp> {
    match state.clients[client].phase {
        Phase::Acquiring { step, .. } => match step {
            Step::CheckSame
            | Step::Check(_)
            | Step::Recheck(_)
            | Step::Verify
            | Step::Wait { .. } => Some(StoreOp::Read),
            Step::Write => Some(StoreOp::Write),
            Step::RmStale(_) | Step::RmOwn { .. } => Some(StoreOp::Remove),
            _ => unreachable!("not a seed step: {step:?}"),
        },
        Phase::Holding(Hold::Refreshing(_)) => Some(StoreOp::Write),
        Phase::Releasing { .. } => Some(StoreOp::Remove),
        Phase::Holding(_)
        | Phase::Idle
        | Phase::Finished(_)
        | Phase::Crashed
        | Phase::BackingOff => None,
    }
}

/// A store fault on the client's next operation, handled as the published code handles it.
/// `landed`: a write that landed while its caller got an error.
fn fault(model: &LockModel, state: &mut LockState, client: usize, landed: bool) -> bool {
    state.faults_left -= 1;
    state.disturbed = true;
    match state.clients[client].phase {
        Phase::Acquiring { lock, step } => {
            let plan = model.plan(state, client, lock).clone();
            let set = |state: &mut LockState, step: Step| {
                state.clients[client].phase = Phase::Acquiring { lock, step };
            };
            match step {
                // `_read_token` returns None on any exception: "no lock", as for a missing file.
                Step::CheckSame | Step::Check(_) => {
                    let index = if let Step::Check(j) = step { j } else { 0 };
                    let next = if (index as usize) + 1 < plan.pre.len() {
                        Step::Check(index + 1)
                    } else {
                        Step::Write
                    };
                    set(state, next);
                }
                Step::Wait { .. } => set(state, Step::CheckSame),
                Step::Recheck(index) => {
                    let next = if (index as usize) + 1 < plan.re.len() {
                        Step::Recheck(index + 1)
                    } else {
                        Step::Verify
                    };
                    set(state, next);
                }
                Step::Verify => verified(model, state, client, lock, false),
                // `_create_lock_file` raised: `return False`. If the write landed, our token
                // stays in the file, and nobody will remove it but the stale-lock cleanup.
                Step::Write => {
                    if landed {
                        let token = state.now + model.spec(client).skew_ticks;
                        state.slots[plan.path as usize].head = Head::Held {
                            owner: client as u8,
                            kind: plan.kind,
                            token,
                            tick: state.now,
                        };
                    }
                    model.finish_with(state, client, Outcome::Error);
                }
                Step::RmStale(_) => rm_failed(state, client, lock),
                // The back-off `rm` failed: our file stays; the code goes on as if removed.
                Step::RmOwn { retry } => {
                    if retry {
                        set(state, Step::CheckSame);
                    } else {
                        model.finish_with(state, client, Outcome::Busy);
                    }
                }
                _ => unreachable!("not a seed step: {step:?}"),
            }
        }
        // The refresh overwrite failed: a warning is logged, nothing else.
        Phase::Holding(Hold::Refreshing(_)) => {
            if landed {
                return false; // a refresh that landed is a refresh
            }
            state.clients[client].phase = Phase::Holding(Hold::Ready);
        }
        // The release `rm` failed: the file stays, the handle forgets it.
        Phase::Releasing { outcome } => {
            let newest = state.clients[client].held.iter().rposition(Option::is_some);
            if let Some(lock) = newest {
                state.clients[client].held[lock] = None;
            }
            if state.clients[client].held.iter().all(Option::is_none) {
                state.clients[client].phase = Phase::Finished(outcome);
            }
        }
        phase => unreachable!("no store operation in {phase:?}"),
    }
    true
}

/// Step 5: re-read another path after writing. On a conflict the later writer (larger
/// `(timestamp, owner)`) deletes its file; the other keeps it but sleeps and restarts too. When
/// the deadline has passed, a side that has not backed off deletes its own file and fails.
fn recheck(
    _model: &LockModel,
    state: &mut LockState,
    client: usize,
    lock: u8,
    re: &[Check],
    index: u8,
) {
    let check = re[index as usize];
    let theirs = match state.slots[check.path as usize].head {
        Head::Held {
            owner, kind, token, ..
        } if owner as usize != client && (check.any_kind || kind == Kind::Subtree) => {
            Some((token, owner))
        }
        _ => None,
    };
    let set = |state: &mut LockState, step: Step| {
        state.clients[client].phase = Phase::Acquiring { lock, step };
    };
    let Some(theirs) = theirs else {
        let next = if (index as usize) + 1 < re.len() {
            Step::Recheck(index + 1)
        } else {
            Step::Verify
        };
        set(state, next);
        return;
    };
    let me = &mut state.clients[client];
    me.contended = true;
    let mine = (me.ticket, client as u8);
    let can_retry = me.retries_left > 0;
    if can_retry {
        me.retries_left -= 1;
        me.restarts = me
            .restarts
            .saturating_add(1)
            .min(super::RESTARTS_COUNTED_MAX);
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
    let ours =
        matches!(state.slots[path as usize].head, Head::Held { owner, .. } if owner == me_owner);
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
    state.slots[path as usize].head = Head::Empty {
        owner: client as u8,
    };
    state.crashes_left -= 1;
    state.disturbed = true;
    state.clients[client].phase = Phase::Holding(Hold::Ready);
    true
}
