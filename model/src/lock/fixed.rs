//! lockstep's path-lock protocol (specs/lock.md), step by step.
//!
//! Storage: one journal per path, `locks/<path>/<index>`, whose entries are claimed with
//! create-if-absent, and one global ticket journal `tickets/<n>`. The newest entry of a path's
//! journal decides its state: `acquire`/`renew` (held until its lease runs out), `release` or
//! `withdraw` (free). Nothing is overwritten or deleted by the protocol; every change of a
//! journal is a create at index `len`, which fails if anyone else got there first, so a release,
//! renewal or takeover can only follow the exact entry its author read (no ABA).
//!
//! Acquire one lock of kind K on path p:
//! 1. pre-check: read p's newest entry, then each ancestor's (SUBTREE entries conflict) and, for
//!    SUBTREE, each descendant's (any entry conflicts); wait while a live conflict exists;
//! 2. claim a ticket t: create `tickets/<n+1>`; t is larger than every ticket claimed before;
//! 3. create `acquire{owner, K, t}` at p's index `len` read in step 1 (an expired `acquire` there
//!    is superseded: that is the takeover); on "already exists" start again;
//! 4. re-check every path of step 1 but p. For a conflicting entry with ticket u:
//!    a. live `acquire` with u > t: wait until it changes (its owner will withdraw or release);
//!    b. live `acquire` with u < t: withdraw (append `withdraw`) and retry: the older one wins;
//!    c. `release` or expired `acquire` with u > t: that lock may have written with u, so our
//!       token would be stale: withdraw and retry with a fresh ticket;
//! 5. granted: the fencing token is t, and it is larger than every token of an overlapping lock
//!    that was granted before (rule c), so the resource can reject a zombie's late write.
//!
//! The lease runs from the create on the holder's own clock; the holder renews by appending
//! `renew` after its newest entry and checks its lease before each guarded write. An observer
//! judges an entry expired after watching it unchanged for a lease on its own clock, which in true
//! time is never earlier than the holder's own deadline: no wall clocks are compared.

use super::{Check, Head, Held, Hold, LockAction, LockModel, LockState, Mutation, Outcome, Phase, Step};
use crate::lock::Kind;

/// What a pre-check read means.
enum Found {
    Nothing,
    /// A live conflicting lock (or, mutant `create-then-write`, an entry no one can read).
    Live,
    /// An expired conflicting lock on another path: release it in storage first.
    Expired,
}

fn pre_read(model: &LockModel, state: &LockState, client: usize, check: Check, own_path: bool) -> Found {
    let no_takeover = model.variant().has(Mutation::NoTakeover);
    match state.slots[check.path as usize].head {
        Head::Held { owner, .. } if owner as usize == client => Found::Nothing,
        Head::Held { kind, .. } if !(check.any_kind || kind == Kind::Subtree) => Found::Nothing,
        Head::Held { owner, tick, .. } => {
            if no_takeover || !model.expired(state, Some(client), owner, tick) {
                Found::Live
            } else if own_path {
                // Our create at the journal's end supersedes it: that is the takeover.
                Found::Nothing
            } else {
                Found::Expired
            }
        }
        Head::Empty { .. } => Found::Live,
        Head::Free | Head::Released { .. } | Head::Withdrawn { .. } => Found::Nothing,
    }
}

/// What a re-check read tells a client holding ticket `mine`.
#[derive(PartialEq)]
enum Verdict {
    Pass,
    /// Rule a: a younger contender is in the way; it will withdraw or release.
    Wait,
    /// Rule b or c: withdraw and try again.
    Withdraw,
    /// An expired, older conflicting lock: release it in storage, then read again.
    Reap,
}

fn re_read(model: &LockModel, state: &LockState, client: usize, check: Check, mine: u8) -> Verdict {
    let variant = model.variant();
    let ticket_check = !variant.has(Mutation::NoTicketCheck);
    let conflicting = |kind: Kind| check.any_kind || kind == Kind::Subtree;
    match state.slots[check.path as usize].head {
        Head::Held { owner, .. } if owner as usize == client => {
            if variant.has(Mutation::SelfConflict) {
                Verdict::Wait
            } else {
                Verdict::Pass
            }
        }
        Head::Held { kind, .. } if !conflicting(kind) => Verdict::Pass,
        Head::Held { owner, token, tick, .. } => {
            let expired = !variant.has(Mutation::NoTakeover) && model.expired(state, Some(client), owner, tick);
            if !expired {
                if token > mine {
                    Verdict::Wait
                } else {
                    Verdict::Withdraw
                }
            } else if ticket_check && token > mine {
                Verdict::Withdraw
            } else {
                Verdict::Reap
            }
        }
        Head::Released { kind, token } if conflicting(kind) && ticket_check && token > mine => Verdict::Withdraw,
        Head::Empty { .. } => Verdict::Wait,
        Head::Free | Head::Released { .. } | Head::Withdrawn { .. } => Verdict::Pass,
    }
}

pub fn apply(model: &LockModel, state: &mut LockState, action: LockAction) -> bool {
    match action {
        LockAction::Step(c) => step(model, state, c as usize),
        LockAction::Renew(c, lock) => renew(model, state, c as usize, lock),
        LockAction::ReapExpired(path) => {
            state.reaps_left -= 1;
            release_head(state, path)
        }
        LockAction::ForceRelease(path) => {
            state.forces_left -= 1;
            if let Head::Held { owner, token, .. } = state.slots[path as usize].head {
                // The holder is not told: from now on it is a zombie, and only fencing stops it.
                let holder = &mut state.clients[owner as usize];
                for held in holder.held.iter_mut().flatten() {
                    if held.token == token {
                        held.revoked = true;
                    }
                }
                if matches!(holder.phase, Phase::Acquiring { .. }) && holder.ticket == token {
                    holder.revoked = true;
                }
            }
            release_head(state, path)
        }
        LockAction::Recover(path) => release_head(state, path),
        _ => unreachable!("not an action of the fixed protocol: {action:?}"),
    }
}

/// Appends `release` right after the newest entry, which must be an `acquire`/`renew`. One read
/// and one create-if-absent at `len`: if anyone appended in between, the create fails, so the
/// pair acts as one compare-and-swap on the newest entry.
fn release_head(state: &mut LockState, path: u8) -> bool {
    let slot = &mut state.slots[path as usize];
    let Head::Held { kind, token, .. } = slot.head else {
        return false;
    };
    slot.len += 1;
    slot.head = Head::Released { kind, token };
    state.disturbed = true;
    true
}

/// The cleaner (expired entries), the operator (force release) and recovery (crashed owners).
pub fn cleaner_actions(model: &LockModel, state: &LockState, actions: &mut Vec<LockAction>) {
    for path in 0..model.tree.len() as u8 {
        let Head::Held { owner, tick, .. } = state.slots[path as usize].head else {
            continue;
        };
        if state.reaps_left > 0 && model.expired(state, None, owner, tick) {
            actions.push(LockAction::ReapExpired(path));
        }
        if state.forces_left > 0 {
            actions.push(LockAction::ForceRelease(path));
        }
        if state.clients[owner as usize].is_crashed() {
            actions.push(LockAction::Recover(path));
        }
    }
}

fn step(model: &LockModel, state: &mut LockState, client: usize) -> bool {
    match state.clients[client].phase {
        Phase::Acquiring { lock, step } => acquire(model, state, client, lock, step),
        Phase::Holding(Hold::Ready) => {
            // Check the lease on the holder's own clock before touching the resource.
            let live = state.clients[client].held.iter().flatten().all(|h| model.live(state, h.tick));
            if live {
                state.clients[client].phase = Phase::Holding(Hold::LeaseChecked);
            } else {
                state.disturbed = true;
                model.finish_with(state, client, Outcome::LeaseLost);
            }
            true
        }
        Phase::Holding(Hold::LeaseChecked) => {
            let outcome = if model.guarded_write(state, client) { Outcome::Done } else { Outcome::Fenced };
            model.finish_with(state, client, outcome);
            true
        }
        Phase::Holding(Hold::Refreshing(_)) => unreachable!("only the seed refreshes in two steps"),
        Phase::Releasing { outcome } => {
            release_newest(model, state, client, outcome);
            true
        }
        Phase::Idle | Phase::Finished(_) | Phase::Crashed => false,
    }
}

/// Records that a decision of `client` rests on an expired entry at `path` (time is a
/// disturbance for the "no livelock" property, like a crash).
fn note_expiry(model: &LockModel, state: &mut LockState, client: usize, path: u8) {
    if let Head::Held { owner, tick, .. } = state.slots[path as usize].head {
        if owner as usize != client && model.expired(state, Some(client), owner, tick) {
            state.disturbed = true;
        }
    }
}

fn acquire(model: &LockModel, state: &mut LockState, client: usize, lock: u8, step: Step) -> bool {
    let plan = model.plan(state, client, lock).clone();
    match step {
        Step::CheckSame => note_expiry(model, state, client, plan.path),
        Step::Check(j) => note_expiry(model, state, client, plan.pre[j as usize].path),
        Step::Recheck(j) | Step::Wait { check: j, recheck: true } | Step::Reap { check: j, recheck: true } => {
            note_expiry(model, state, client, plan.re[j as usize].path)
        }
        Step::Reap { check: j, recheck: false } => note_expiry(model, state, client, plan.pre[j as usize].path),
        _ => {}
    }
    let set = |state: &mut LockState, step: Step| {
        state.clients[client].phase = Phase::Acquiring { lock, step };
    };
    match step {
        Step::CheckSame | Step::Check(_) => {
            let index = if let Step::Check(j) = step { j } else { 0 };
            match pre_read(model, state, client, plan.pre[index as usize], index == 0) {
                Found::Expired => set(state, Step::Reap { check: index, recheck: false }),
                Found::Live => {
                    state.clients[client].contended = true;
                    if model.spec(client).timeout.waits() {
                        set(state, Step::Wait { check: index, recheck: false });
                    } else {
                        model.finish_with(state, client, Outcome::Busy);
                    }
                }
                Found::Nothing => {
                    if index == 0 {
                        state.clients[client].seen_len = state.slots[plan.path as usize].len;
                    }
                    let next = if (index as usize) + 1 < plan.pre.len() { Step::Check(index + 1) } else { Step::ClaimTicket };
                    set(state, next);
                }
            }
        }
        Step::Wait { check, recheck: false } => {
            if matches!(pre_read(model, state, client, plan.pre[check as usize], check == 0), Found::Live) {
                return false;
            }
            set(state, Step::CheckSame);
        }
        Step::ClaimTicket => {
            state.tickets += 1;
            state.clients[client].ticket = state.tickets;
            state.clients[client].revoked = false;
            set(state, Step::Create);
        }
        Step::Create => {
            let seen_len = state.clients[client].seen_len;
            let slot = &mut state.slots[plan.path as usize];
            if slot.len != seen_len {
                // AlreadyExists: someone appended since our read. Read again.
                set(state, Step::CheckSame);
                return true;
            }
            if let Head::Held { owner, .. } = slot.head {
                debug_assert_ne!(owner as usize, client);
                state.took_over = true;
                state.disturbed = true;
            }
            let me = &mut state.clients[client];
            me.wrote_at = state.now;
            let entry = Head::Held { owner: client as u8, kind: plan.kind, token: me.ticket, tick: state.now };
            let slot = &mut state.slots[plan.path as usize];
            slot.len += 1;
            if model.variant().has(Mutation::CreateThenWrite) {
                slot.head = Head::Empty { owner: client as u8 };
                set(state, Step::WriteEntry);
            } else {
                slot.head = entry;
                after_create(model, state, client, lock, &plan.re);
            }
        }
        Step::WriteEntry => {
            let me = &state.clients[client];
            let entry = Head::Held { owner: client as u8, kind: plan.kind, token: me.ticket, tick: me.wrote_at };
            state.slots[plan.path as usize].head = entry;
            after_create(model, state, client, lock, &plan.re);
        }
        Step::Recheck(index) => recheck(model, state, client, lock, &plan.re, index),
        Step::Wait { check, recheck: true } => {
            let mine = state.clients[client].ticket;
            if re_read(model, state, client, plan.re[check as usize], mine) == Verdict::Wait {
                return false;
            }
            recheck(model, state, client, lock, &plan.re, check);
        }
        Step::Reap { check, recheck } => {
            let path = if recheck { plan.re[check as usize].path } else { plan.pre[check as usize].path };
            // One read and one create-if-absent right after the entry read: it lands only if
            // the expired entry is still the newest, so a renewal and this release exclude each
            // other.
            if let Head::Held { owner, tick, .. } = state.slots[path as usize].head {
                if owner as usize != client && model.expired(state, Some(client), owner, tick) {
                    release_head(state, path);
                }
            }
            set(state, if recheck { Step::Recheck(check) } else { Step::Check(check) });
        }
        Step::Withdraw { retry, outcome } => {
            let me = state.clients[client];
            let slot = &mut state.slots[plan.path as usize];
            // Create-if-absent right after our own entry: if our entry was superseded (it
            // expired and was taken over), the create fails and the journal is untouched.
            if slot.len == me.seen_len + 1 {
                slot.len += 1;
                slot.head = Head::Withdrawn { token: me.ticket };
            }
            if retry && me.retries_left > 0 {
                state.clients[client].retries_left -= 1;
                set(state, Step::CheckSame);
            } else {
                let outcome = if retry { Outcome::Exhausted } else { outcome };
                model.finish_with(state, client, outcome);
            }
        }
        Step::Write | Step::Verify | Step::RmStale(_) | Step::RmOwn { .. } => {
            unreachable!("not a step of the fixed protocol: {step:?}")
        }
    }
    true
}

fn after_create(model: &LockModel, state: &mut LockState, client: usize, lock: u8, re: &[Check]) {
    if re.is_empty() || model.variant().has(Mutation::SkipRecheck) {
        grant(model, state, client, lock);
    } else {
        state.clients[client].phase = Phase::Acquiring { lock, step: Step::Recheck(0) };
    }
}

fn grant(model: &LockModel, state: &mut LockState, client: usize, lock: u8) {
    let me = &state.clients[client];
    let held = Held { token: me.ticket, index: me.seen_len, tick: me.wrote_at, revoked: me.revoked };
    model.granted(state, client, lock, held);
}

fn recheck(model: &LockModel, state: &mut LockState, client: usize, lock: u8, re: &[Check], index: u8) {
    let mine = state.clients[client].ticket;
    let set = |state: &mut LockState, step: Step| {
        state.clients[client].phase = Phase::Acquiring { lock, step };
    };
    match re_read(model, state, client, re[index as usize], mine) {
        Verdict::Pass if (index as usize) + 1 < re.len() => set(state, Step::Recheck(index + 1)),
        Verdict::Pass => grant(model, state, client, lock),
        Verdict::Wait => {
            state.clients[client].contended = true;
            if model.spec(client).timeout.waits() {
                set(state, Step::Wait { check: index, recheck: true });
            } else {
                set(state, Step::Withdraw { retry: false, outcome: Outcome::Busy });
            }
        }
        Verdict::Withdraw => {
            state.clients[client].contended = true;
            set(state, Step::Withdraw { retry: true, outcome: Outcome::Exhausted });
        }
        Verdict::Reap => set(state, Step::Reap { check: index, recheck: true }),
    }
}

/// Release, newest lock first: append `release` right after our own newest entry. If the entry
/// was superseded (expired and taken over, or force-released) the create fails: nothing to do.
fn release_newest(model: &LockModel, state: &mut LockState, client: usize, outcome: Outcome) {
    let newest = state.clients[client].held.iter().rposition(Option::is_some);
    if let Some(lock) = newest {
        let plan = model.plan(state, client, lock as u8);
        let (path, kind) = (plan.path, plan.kind);
        let held = state.clients[client].held[lock].expect("newest held lock");
        let slot = &mut state.slots[path as usize];
        let blind = model.variant().has(Mutation::BlindRelease);
        if blind || slot.len == held.index + 1 {
            slot.len += 1;
            slot.head = Head::Released { kind, token: held.token };
        }
        state.clients[client].held[lock] = None;
    }
    if state.clients[client].held.iter().all(Option::is_none) {
        state.clients[client].phase = Phase::Finished(outcome);
    }
}

/// Renewal: append `renew` right after our newest entry; if that create fails, the lock was
/// superseded and the lease is not extended.
fn renew(model: &LockModel, state: &mut LockState, client: usize, lock: u8) -> bool {
    let plan = model.plan(state, client, lock);
    let (path, kind) = (plan.path, plan.kind);
    let me = &mut state.clients[client];
    me.renewals_left -= 1;
    let Some(held) = me.held[lock as usize].as_mut() else {
        return false;
    };
    let slot = &mut state.slots[path as usize];
    if slot.len == held.index + 1 {
        slot.len += 1;
        slot.head = Head::Held { owner: client as u8, kind, token: held.token, tick: state.now };
        held.index += 1;
        held.tick = state.now;
    }
    true
}
