//! lockstep's path-lock protocol (specs/lock.md), step by step.
//!
//! Storage: one journal per path, `locks/<path>/<index>`, whose entries are claimed with
//! create-if-absent, and one global ticket journal `tickets/<n>`. The newest entry of a path's
//! journal decides its state: `acquire`/`renew` (held until its lease runs out), `release` or
//! `withdraw` (free). Nothing is overwritten or deleted by the protocol; every change of a
//! journal is a create at index `len`, which fails if anyone else got there first, so a release,
//! renewal or takeover can only follow the exact entry its author read (no ABA).
//!
//! Every entry also carries the journal's **high-water marks**: the largest ticket of a SUBTREE
//! lock and of a lock of any kind that may have been granted on the path before it. A re-check
//! reads one entry per path, so without the marks a grant can hide behind a later entry (a
//! non-conflicting POINT, a `withdraw`). With three clients the checker found exactly that in
//! our previous protocol (catalogue entry `lock/old-fixed-later-entry-hides-grant`).
//!
//! Acquire one lock of kind K on path p:
//! 1. pre-check: read p's newest entry, then each ancestor's (SUBTREE entries conflict) and, for
//!    SUBTREE, each descendant's (any entry conflicts); wait while a live conflict exists;
//! 2. claim a ticket t: create `tickets/<n+1>`; t is larger than every ticket claimed before;
//! 3. create `acquire{owner, K, t, marks}` at p's index `len` read in step 1 (an expired
//!    `acquire` there is superseded: that is the takeover); on "already exists" start again;
//! 4. re-check every path of step 1 but p. For a conflicting entry with ticket u:
//!    a. live `acquire` with u > t: wait until it changes (its owner will withdraw or release);
//!    b. live `acquire` with u < t: withdraw (append `withdraw`) and retry: the older one wins;
//!    c. the path's mark (SUBTREE mark for an ancestor, any-kind mark for a descendant, raised
//!       by the newest entry itself if that may be a grant) exceeds t: a lock that may have been
//!       granted wrote with a larger token, so ours would be stale: withdraw, retry;
//!    d. expired `acquire` with u < t (and no mark above t): release it in storage, re-read;
//! 5. granted: the fencing token is t, larger than the token of every overlapping lock granted
//!    before (rule c), so the resource can reject a zombie's late write.
//!
//! Store faults: a read that fails makes the acquisition fail closed (it withdraws what it
//! created); a create whose outcome is unknown (it may have landed) is followed by a read of
//! its key, and the entry there names our owner and ticket.

use super::{
    Check, Head, Held, Hold, LockAction, LockModel, LockState, Mutation, Outcome, Phase, Step,
    StoreOp,
};
use crate::lock::Kind;

/// What a pre-check read means.
enum Found {
    Nothing,
    /// A live conflicting lock (or, mutant `create-then-write`, an entry no one can read).
    Live,
    /// An expired conflicting lock on another path: release it in storage first.
    Expired,
}

fn pre_read(
    model: &LockModel,
    state: &LockState,
    client: usize,
    check: Check,
    own_path: bool,
) -> Found {
    let variant = model.variant();
    match state.slots[check.path as usize].head {
        Head::Held { owner, .. } if owner as usize == client && own_path => Found::Nothing,
        Head::Held { kind, .. } if !(check.any_kind || kind == Kind::Subtree) => Found::Nothing,
        Head::Held { owner, tick, .. } => {
            if variant.has(Mutation::NoTakeover) || !model.expired(state, Some(client), owner, tick)
            {
                Found::Live
            } else if own_path || variant.has(Mutation::IgnoreExpired) {
                // Own path: our create at the journal's end supersedes it (the takeover).
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
    /// Rule d: an expired, older conflicting lock: release it in storage, then read again.
    Reap,
}

/// Rule c's question: may a conflicting lock with a ticket above `mine` have been granted on
/// this path (so that it may have written with a larger token)?
fn newer_grant(model: &LockModel, state: &LockState, check: Check, mine: u8) -> bool {
    let variant = model.variant();
    let slot = state.slots[check.path as usize];
    if variant.has(Mutation::NoTicketCheck) {
        false
    } else if variant.has(Mutation::NoHighWater) {
        // The old protocol: only the newest entry's own ticket, if it is a conflicting lock.
        match slot.head {
            Head::Held { kind, token, .. } | Head::Released { kind, token } => {
                (check.any_kind || kind == Kind::Subtree) && token > mine
            }
            _ => false,
        }
    } else {
        slot.marks().of(check.any_kind) > mine
    }
}

fn re_read(model: &LockModel, state: &LockState, client: usize, check: Check, mine: u8) -> Verdict {
    let variant = model.variant();
    let conflicting = |kind: Kind| check.any_kind || kind == Kind::Subtree;
    let newer = newer_grant(model, state, check, mine);
    // A re-check reads other paths than the lock's own, where the acquirer has no entry, so it
    // judges every entry by its ticket (the `*-self` mutants read their own journal this way).
    match state.slots[check.path as usize].head {
        Head::Held {
            owner,
            kind,
            token,
            tick,
        } if conflicting(kind) => {
            let expired = !variant.has(Mutation::NoTakeover)
                && model.expired(state, Some(client), owner, tick);
            if !expired {
                if token > mine && !variant.has(Mutation::BothWithdraw) {
                    Verdict::Wait
                } else {
                    Verdict::Withdraw
                }
            } else if newer {
                Verdict::Withdraw
            } else if variant.has(Mutation::IgnoreExpired) {
                Verdict::Pass
            } else {
                Verdict::Reap
            }
        }
        Head::Empty { .. } => Verdict::Wait,
        Head::Free | Head::Held { .. } | Head::Released { .. } | Head::Withdrawn { .. } => {
            if newer {
                Verdict::Withdraw
            } else {
                Verdict::Pass
            }
        }
    }
}

/// The storage operation a client's next step performs, if any (where faults can strike).
pub fn next_op(state: &LockState, client: usize) -> Option<StoreOp> {
    match state.clients[client].phase {
        Phase::Acquiring { step, .. } => match step {
            Step::CheckSame
            | Step::Check(_)
            | Step::Recheck(_)
            | Step::Wait { .. }
            | Step::ReadBack => Some(StoreOp::Read),
            Step::ClaimTicket
            | Step::ClaimToWait { .. }
            | Step::Create
            | Step::Withdraw { .. }
            | Step::Reap { .. } => Some(StoreOp::Create),
            // The mutant's write of an entry created empty: only crashes matter there.
            Step::WriteEntry => None,
            Step::Write | Step::Verify | Step::RmStale(_) | Step::RmOwn { .. } => {
                unreachable!("seed steps")
            }
        },
        // A release or back-off that fails is retried by the manager's background task until it
        // lands or finds the lock superseded: a fault there only delays, so none is offered.
        Phase::Releasing { .. } | Phase::BackingOff => None,
        // The lease check reads the holder's own clock; the guarded write goes to the resource.
        Phase::Holding(_) | Phase::Idle | Phase::Finished(_) | Phase::Crashed => None,
    }
}

pub fn apply(model: &LockModel, state: &mut LockState, action: LockAction) -> bool {
    match action {
        LockAction::Step(c) => step(model, state, c as usize),
        LockAction::Fail(c) => fault(model, state, c as usize, false),
        LockAction::Ambiguous(c) => fault(model, state, c as usize, true),
        LockAction::Renew(c, lock) => renew(model, state, c as usize, lock, true),
        LockAction::RenewAmbiguous(c, lock) => {
            state.faults_left -= 1;
            state.disturbed = true;
            renew(model, state, c as usize, lock, false)
        }
        LockAction::ReapExpired(path) => {
            state.reaps_left -= 1;
            release_head(state, path)
        }
        LockAction::ForceRelease(path) => {
            state.forces_left -= 1;
            // The holder is not told: from now on it is a zombie, and only fencing stops it.
            revoke_holder(state, path);
            release_head(state, path)
        }
        LockAction::Recover(path) => {
            // A holder whose lease was lost still runs: from now on it is a zombie, as after a
            // force release, and only fencing stops it.
            revoke_holder(state, path);
            release_head(state, path)
        }
        LockAction::LoseLease(c) => {
            state.lease_losses_left -= 1;
            state.disturbed = true;
            let me = &mut state.clients[c as usize];
            me.lease_lost = true;
            true
        }
        LockAction::Collect => collect(model, state),
        LockAction::PowerLoss(choice) => power_loss(model, state, choice),
        LockAction::LoseHint(c) => {
            let Some(path) = waited_on(model, state, c as usize) else {
                return false;
            };
            state.clients[c as usize].hint_lost_at = Some(state.slots[path as usize].len);
            true
        }
        _ => unreachable!("not an action of the fixed protocol: {action:?}"),
    }
}

/// Marks the holder of `path`'s newest entry as revoked there (it is not told): its lock, or
/// the acquisition in flight that wrote the entry.
fn revoke_holder(state: &mut LockState, path: u8) {
    if let Head::Held { owner, token, .. } = state.slots[path as usize].head {
        let Some(holder) = state.clients.get_mut(owner as usize) else {
            return; // an owner of an earlier boot: nobody to revoke
        };
        for held in holder.held.iter_mut().flatten() {
            if held.token == token {
                held.revoked = true;
            }
        }
        if matches!(holder.phase, Phase::Acquiring { .. }) && holder.ticket == token {
            holder.revoked = true;
        }
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
    slot.append(Head::Released { kind, token });
    if state.power_losses_left > 0 {
        // Written for someone who lives on (recovery, the cleaner, an operator): synced.
        slot.sync();
    }
    state.disturbed = true;
    true
}

/// `lockstep gc`: deletes every journal whose newest entry is a release or withdraw, whole (its
/// directory too: the path reads as never locked, index 0 and no marks). The ticket journal is
/// kept (collected below its newest ticket, which the model does not track).
fn collect(model: &LockModel, state: &mut LockState) -> bool {
    state.collects_left -= 1;
    for path in 0..model.tree.len() {
        if matches!(
            state.slots[path].head,
            Head::Released { .. } | Head::Withdrawn { .. }
        ) {
            state.slots[path] = crate::lock::Slot::default();
        }
    }
    if model.variant().has(Mutation::GcResetsTickets) {
        state.tickets = 0;
    }
    true
}

/// Whether nobody holds a view of the journals: every client has finished, has crashed (its
/// process is gone), or has not read anything yet. That is what the collector's exclusive users
/// lock gives it: it runs only when no process has the store open.
fn quiescent(model: &LockModel, state: &LockState) -> bool {
    model.clients().all(|c| {
        let me = &state.clients[c];
        me.is_finished()
            || me.is_crashed()
            || (me.phase
                == Phase::Acquiring {
                    lock: 0,
                    step: Step::CheckSame,
                }
                && me.ticket == 0
                && me.held.iter().all(Option::is_none))
    })
}

/// The cleaner (expired entries), the operator (force release) and recovery (crashed owners).
pub fn cleaner_actions(model: &LockModel, state: &LockState, actions: &mut Vec<LockAction>) {
    if state.collects_left > 0
        && (quiescent(model, state) || model.variant().has(Mutation::GcWhileActive))
        && state
            .slots
            .iter()
            .any(|s| matches!(s.head, Head::Released { .. } | Head::Withdrawn { .. }))
    {
        actions.push(LockAction::Collect);
    }
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
        if state.owner_dead(owner) {
            actions.push(LockAction::Recover(path));
        }
    }
    if state.power_losses_left > 0 {
        power_loss_actions(model, state, actions);
    }
    if model.variant().has(Mutation::HintOnly) {
        for c in model.clients() {
            if hint_pending(model, state, c) {
                actions.push(LockAction::LoseHint(c as u8));
            }
        }
    }
    if state.lease_losses_left > 0 {
        for c in model.clients() {
            let me = &state.clients[c];
            if !me.is_finished() && !me.lease_lost {
                actions.push(LockAction::LoseLease(c as u8));
            }
        }
    }
}

fn step(model: &LockModel, state: &mut LockState, client: usize) -> bool {
    match state.clients[client].phase {
        Phase::Acquiring { lock, step } => acquire(model, state, client, lock, step),
        Phase::Holding(Hold::Ready) if model.variant().has(Mutation::NoLeaseCheck) => {
            write_and_finish(model, state, client);
            true
        }
        Phase::Holding(Hold::Ready) => {
            // Check the lease on the holder's own clock before touching the resource.
            let live = state.clients[client]
                .held
                .iter()
                .flatten()
                .all(|h| model.live(state, h.tick));
            if live {
                state.clients[client].phase = Phase::Holding(Hold::LeaseChecked);
            } else {
                state.disturbed = true;
                model.finish_with(state, client, Outcome::LeaseLost);
            }
            true
        }
        Phase::Holding(Hold::LeaseChecked) => {
            write_and_finish(model, state, client);
            true
        }
        Phase::Holding(Hold::Refreshing(_)) => unreachable!("only the seed refreshes in two steps"),
        Phase::Releasing { outcome } => {
            if release_newest(model, state, client, outcome.after_grant()) {
                state.clients[client].phase = Phase::Finished(outcome);
            }
            true
        }
        Phase::BackingOff => {
            if release_newest(model, state, client, false) {
                state.clients[client].phase = Phase::Acquiring {
                    lock: 0,
                    step: Step::CheckSame,
                };
            }
            true
        }
        Phase::Idle | Phase::Finished(_) | Phase::Crashed => false,
    }
}

fn write_and_finish(model: &LockModel, state: &mut LockState, client: usize) {
    let outcome = if model.guarded_write(state, client) {
        Outcome::Done
    } else {
        Outcome::Fenced
    };
    model.finish_with(state, client, outcome);
}

/// A store fault on the client's next operation: `landed` is false for an operation that had
/// no effect, true for a create that landed while its caller got an error.
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
                Step::CheckSame
                | Step::Check(_)
                | Step::Recheck(_)
                | Step::Wait { .. }
                | Step::ReadBack => {
                    // A failed read ends a wait either way: forget its note.
                    end_wait(state, client);
                    if model.variant().has(Mutation::FailOpenRead) && step != Step::ReadBack {
                        // The read "found nothing": go on as the read of an empty journal would.
                        read_as_empty(model, state, client, lock, step, &plan);
                    } else {
                        fail_closed(model, state, client, lock);
                    }
                }
                Step::ClaimTicket | Step::ClaimToWait { .. } => {
                    // Whatever happened, the next claim takes the next free index; a ticket
                    // whose create landed unseen is a harmless gap.
                    if landed {
                        state.tickets += 1;
                    }
                }
                Step::Create => {
                    state.clients[client].seen_free = false;
                    if landed {
                        if state.slots[plan.path as usize].len != state.clients[client].seen_len {
                            return false; // the index is taken: this create cannot land
                        }
                        create_entry(model, state, client, plan.path, plan.kind);
                    }
                    if model.variant().has(Mutation::BlindWithdraw) {
                        set(
                            state,
                            Step::Withdraw {
                                retry: false,
                                outcome: Outcome::Error,
                            },
                        );
                    } else {
                        set(state, Step::ReadBack);
                    }
                }
                Step::Withdraw { retry, .. } => {
                    if landed {
                        let before = state.slots[plan.path as usize];
                        withdraw_entry(model, state, client, plan.path);
                        if state.slots[plan.path as usize] == before {
                            return false; // nothing of ours to withdraw: it cannot land
                        }
                        state.clients[client].landed = false;
                        model.finish_with(state, client, Outcome::Error);
                    } else if retry {
                        // The acquisition fails with the error; the manager's background task
                        // withdraws the entry (the client's next step here).
                        set(
                            state,
                            Step::Withdraw {
                                retry: false,
                                outcome: Outcome::Error,
                            },
                        );
                    } else {
                        return false; // the background withdraw retries: nothing new happens
                    }
                }
                Step::Reap { check, recheck } => {
                    if landed {
                        let path = if recheck {
                            plan.re[check as usize].path
                        } else {
                            plan.pre[check as usize].path
                        };
                        if model.config.stale_unremovable || !reap(model, state, client, path) {
                            return false; // nothing to release, or refused: it cannot land
                        }
                    }
                    fail_closed(model, state, client, lock);
                }
                Step::WriteEntry
                | Step::Write
                | Step::Verify
                | Step::RmStale(_)
                | Step::RmOwn { .. } => {
                    unreachable!("no fault is offered at {step:?}")
                }
            }
        }
        phase => unreachable!("no store operation in {phase:?}"),
    }
    true
}

/// A read failed: the acquisition fails closed. With our entry possibly in storage (after the
/// create), it is withdrawn first, if it is ours (the read of `withdraw_if_ours`).
fn fail_closed(model: &LockModel, state: &mut LockState, client: usize, lock: u8) {
    let after_create = matches!(
        state.clients[client].phase,
        Phase::Acquiring {
            step: Step::Recheck(_)
                | Step::Wait { recheck: true, .. }
                | Step::Reap { recheck: true, .. }
                | Step::ReadBack,
            ..
        }
    );
    if after_create {
        state.clients[client].phase = Phase::Acquiring {
            lock,
            step: Step::Withdraw {
                retry: false,
                outcome: Outcome::Error,
            },
        };
    } else {
        model.finish_with(state, client, Outcome::Error);
    }
}

/// Mutant `fail-open-read`: a failed read goes on as if it had read an empty journal.
fn read_as_empty(
    model: &LockModel,
    state: &mut LockState,
    client: usize,
    lock: u8,
    step: Step,
    plan: &super::LockPlan,
) {
    let set = |state: &mut LockState, step: Step| {
        state.clients[client].phase = Phase::Acquiring { lock, step };
    };
    match step {
        Step::CheckSame | Step::Check(_) => {
            let index = if let Step::Check(j) = step { j } else { 0 };
            if index == 0 {
                state.clients[client].seen_len = 0;
            }
            let next = if (index as usize) + 1 < plan.pre.len() {
                Step::Check(index + 1)
            } else {
                after_pre_check(state, client)
            };
            set(state, next);
        }
        Step::Wait { recheck: false, .. } => set(state, Step::CheckSame),
        Step::Recheck(index)
        | Step::Wait {
            check: index,
            recheck: true,
        } => {
            if (index as usize) + 1 < plan.re.len() {
                set(state, Step::Recheck(index + 1));
            } else {
                grant(model, state, client, lock);
            }
        }
        _ => unreachable!("not a read: {step:?}"),
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

/// Starts the acquisition over after a lost create. If the entry it read was no hold (a
/// release, a withdraw, an empty journal), only another client's `acquire` can have taken the
/// next index: contention, not a spin, and someone else got in. That restart spends no retry;
/// the next pass finds the winner and waits for it, bounded by the client's timeout. After a
/// hold it read (an expired one it meant to supersede), the index may have gone to that holder's
/// release, and nothing would make the next pass wait: a [`restart`], whose budget is what bounds
/// it (the bug behind 10,000 tickets claimed by one `lockstep lock --timeout 0`,
/// `uncounted-restart`).
fn restart_after_lost_create(model: &LockModel, state: &mut LockState, client: usize, lock: u8) {
    let me = &mut state.clients[client];
    me.kept = false;
    if std::mem::take(&mut me.seen_free) {
        me.landed = false;
        me.phase = Phase::Acquiring {
            lock,
            step: Step::CheckSame,
        };
    } else {
        restart(model, state, client, lock);
    }
}

/// Starts the acquisition over after a lost create or a back-off: one retry spent, or
/// `Exhausted` when none is left.
fn restart(model: &LockModel, state: &mut LockState, client: usize, lock: u8) {
    let uncounted = model.variant().has(Mutation::UncountedRestart);
    let me = &mut state.clients[client];
    me.landed = false;
    me.kept = false;
    if uncounted || me.retries_left > 0 {
        if !uncounted {
            me.retries_left -= 1;
        }
        me.restarts = me
            .restarts
            .saturating_add(1)
            .min(super::RESTARTS_COUNTED_MAX);
        me.phase = Phase::Acquiring {
            lock,
            step: Step::CheckSame,
        };
    } else {
        model.finish_with(state, client, Outcome::Exhausted);
    }
}

fn create_entry(model: &LockModel, state: &mut LockState, client: usize, path: u8, kind: Kind) {
    // Superseding someone else's (expired) entry is a takeover. Superseding our own is not: it is
    // an entry we abandoned (a withdraw that failed), and our new entry replaces it.
    if let Head::Held { owner, .. } = state.slots[path as usize].head {
        if owner as usize != client {
            state.took_over = true;
            state.disturbed = true;
        }
    }
    let me = &mut state.clients[client];
    me.wrote_at = state.now;
    me.landed = true;
    let entry = if model.variant().has(Mutation::CreateThenWrite) {
        Head::Empty {
            owner: client as u8,
        }
    } else {
        Head::Held {
            owner: client as u8,
            kind,
            token: me.ticket,
            tick: state.now,
        }
    };
    state.slots[path as usize].append(entry);
    note_holder_entry(model, state, path, client);
}

/// Tracks what a power loss may undo of the holder's entry just appended to `path`.
fn note_holder_entry(model: &LockModel, state: &mut LockState, path: u8, client: usize) {
    if state.power_losses_left > 0 {
        let bytes_unsynced = model.variant().has(Mutation::EntryBytesNotSynced);
        state.slots[path as usize].note_holder_entry(bytes_unsynced, client as u8);
    }
}

/// Every way a power loss may leave the journals: per path, each distinct choice of
/// `Slot::after_power_loss`.
fn power_loss_actions(model: &LockModel, state: &LockState, actions: &mut Vec<LockAction>) {
    let mut choices: Vec<u16> = vec![0];
    for path in 0..model.tree.len() {
        let slot = state.slots[path];
        let options: Vec<u8> = (0..3)
            .filter(|c| slot.after_power_loss(*c).is_some())
            .collect();
        choices = choices
            .into_iter()
            .flat_map(|mask| {
                options
                    .iter()
                    .map(move |c| mask | (u16::from(*c) << (2 * path)))
            })
            .collect();
    }
    actions.extend(choices.into_iter().map(LockAction::PowerLoss));
}

/// The machine loses power: see [`LockAction::PowerLoss`].
fn power_loss(model: &LockModel, state: &mut LockState, choice: u16) -> bool {
    for path in 0..model.tree.len() {
        let slot = state.slots[path];
        let Some(mut kept) = slot.after_power_loss(((choice >> (2 * path)) & 3) as u8) else {
            return false;
        };
        // Every owner of this boot is dead now, and no process of the next boot is any of them.
        if let Head::Held { owner, .. } | Head::Empty { owner } = &mut kept.head {
            *owner = crate::lock::GONE;
        }
        state.slots[path] = kept;
    }
    if model.variant().has(Mutation::TicketNotSynced) {
        // Nothing synced the ticket journal's directory: every ticket may be gone.
        state.tickets = 0;
    }
    for client in model.clients() {
        let me = state.clients[client];
        if me.is_finished() {
            continue;
        }
        // The process dies with the machine and runs its operation again after the reboot.
        let spec = model.spec(client);
        state.clients[client] = crate::lock::Client {
            class: me.class,
            mode: me.mode,
            phase: Phase::Acquiring {
                lock: 0,
                step: Step::CheckSame,
            },
            retries_left: spec.retries,
            renewals_left: spec.renewals,
            ..crate::lock::Client::default()
        };
    }
    state.power_losses_left -= 1;
    state.disturbed = true;
    true
}

/// Appends `withdraw` right after our own entry: a create-if-absent at `seen_len + 1`, which
/// lands only if our entry (which the client read back, or created) is still the newest.
fn withdraw_entry(model: &LockModel, state: &mut LockState, client: usize, path: u8) {
    let me = state.clients[client];
    let ours = me.landed || model.variant().has(Mutation::BlindWithdraw);
    let slot = &mut state.slots[path as usize];
    if ours && slot.len == me.seen_len + 1 {
        if me.landed {
            slot.append_withdraw(me.ticket);
        } else {
            // Mutant `blind-withdraw`: after whatever entry sits at our index.
            slot.len += 1;
            slot.head = Head::Withdrawn { token: me.ticket };
        }
        note_holder_entry(model, state, path, client);
    }
}

fn acquire(model: &LockModel, state: &mut LockState, client: usize, lock: u8, step: Step) -> bool {
    let plan = model.plan(state, client, lock).clone();
    match step {
        Step::CheckSame => note_expiry(model, state, client, plan.path),
        Step::Check(j) => note_expiry(model, state, client, plan.pre[j as usize].path),
        Step::Recheck(j)
        | Step::Wait {
            check: j,
            recheck: true,
        }
        | Step::Reap {
            check: j,
            recheck: true,
        } => note_expiry(model, state, client, plan.re[j as usize].path),
        Step::Reap {
            check: j,
            recheck: false,
        } => note_expiry(model, state, client, plan.pre[j as usize].path),
        _ => {}
    }
    let set = |state: &mut LockState, step: Step| {
        state.clients[client].phase = Phase::Acquiring { lock, step };
    };
    match step {
        Step::CheckSame | Step::Check(_) => {
            let index = if let Step::Check(j) = step { j } else { 0 };
            match pre_read(model, state, client, plan.pre[index as usize], index == 0) {
                Found::Expired => set(
                    state,
                    Step::Reap {
                        check: index,
                        recheck: false,
                    },
                ),
                Found::Live => {
                    state.clients[client].contended = true;
                    // Wait-die concerns waiters only: lock_timeout 0 fails at once anyway.
                    let waits = model.spec(client).timeout.waits();
                    if waits && must_back_off(model, state, client, plan.pre[index as usize]) {
                        back_off(model, state, client);
                    } else if waits {
                        begin_wait(state, client, plan.pre[index as usize].path);
                        // No claim for a wait that is over before it begins: its deadline has
                        // passed (the client gives up, or finds the path free, at its next read).
                        let passed = state.now == model.config.ticks
                            && model.spec(client).timeout == super::Timeout::Bounded;
                        let next = if state.clients[client].kept || passed {
                            Step::Wait {
                                check: index,
                                recheck: false,
                            }
                        } else {
                            Step::ClaimToWait { check: index }
                        };
                        set(state, next);
                    } else {
                        model.finish_with(state, client, Outcome::Busy);
                    }
                }
                Found::Nothing => {
                    let check = plan.pre[index as usize];
                    let slot = state.slots[check.path as usize];
                    let me = &mut state.clients[client];
                    if index == 0 {
                        me.seen_len = slot.len;
                        me.seen_free = !matches!(slot.head, Head::Held { .. });
                    }
                    // A kept ticket is fresh on our own path only while it is above every ticket
                    // that may have been granted there (the marks after the newest entry): a
                    // grant with a larger one may have written to the resource. On another path
                    // a stale one would only fail rule c after the create, spending a retry:
                    // drop it here as well, and claim a fresh one.
                    let unchecked =
                        index == 0 && model.variant().has(Mutation::KeptTicketUnchecked);
                    if me.kept && me.ticket <= slot.marks().of(check.any_kind) && !unchecked {
                        me.kept = false;
                    }
                    let next = if (index as usize) + 1 < plan.pre.len() {
                        Step::Check(index + 1)
                    } else {
                        after_pre_check(state, client)
                    };
                    set(state, next);
                }
            }
        }
        Step::Wait {
            check,
            recheck: false,
        } => {
            let hint_only = model.variant().has(Mutation::HintOnly);
            let moved = head_moved(state, client, plan.pre[check as usize].path);
            if hint_only && !wake_on_hint(model, state, client, plan.pre[check as usize].path) {
                return false;
            }
            if still_waiting(model, state, plan.pre[check as usize], moved, || {
                matches!(
                    pre_read(model, state, client, plan.pre[check as usize], check == 0),
                    Found::Live
                )
            }) {
                // A poll that finds nothing new is no step. (Under `hint-only` a pending hint
                // means the journal moved, so a waiter that consumed one never gets here.)
                return false;
            }
            end_wait(state, client);
            set(state, Step::CheckSame);
        }
        Step::ClaimTicket => {
            state.tickets += 1;
            let me = &mut state.clients[client];
            me.ticket = state.tickets;
            me.kept = false;
            me.revoked = false;
            set(state, Step::Create);
        }
        Step::ClaimToWait { check } => {
            state.tickets += 1;
            let me = &mut state.clients[client];
            me.ticket = state.tickets;
            me.kept = true;
            set(
                state,
                Step::Wait {
                    check,
                    recheck: false,
                },
            );
        }
        Step::Create => {
            if state.slots[plan.path as usize].len != state.clients[client].seen_len {
                // AlreadyExists: someone appended since our read. Start over.
                restart_after_lost_create(model, state, client, lock);
                return true;
            }
            state.clients[client].seen_free = false;
            create_entry(model, state, client, plan.path, plan.kind);
            if model.variant().has(Mutation::CreateThenWrite) {
                set(state, Step::WriteEntry);
            } else {
                after_create(model, state, client, lock, &plan.re);
            }
        }
        Step::WriteEntry => {
            let me = &state.clients[client];
            let entry = Head::Held {
                owner: client as u8,
                kind: plan.kind,
                token: me.ticket,
                tick: me.wrote_at,
            };
            state.slots[plan.path as usize].head = entry;
            after_create(model, state, client, lock, &plan.re);
        }
        Step::ReadBack => {
            // Our key holds our entry (owner id and ticket) or nothing: the create's outcome.
            if state.clients[client].landed {
                after_create(model, state, client, lock, &plan.re);
            } else {
                restart(model, state, client, lock);
            }
        }
        Step::Recheck(index) => recheck(model, state, client, lock, &plan.re, index),
        Step::Wait {
            check,
            recheck: true,
        } => {
            let hint_only = model.variant().has(Mutation::HintOnly);
            let moved = head_moved(state, client, plan.re[check as usize].path);
            if hint_only && !wake_on_hint(model, state, client, plan.re[check as usize].path) {
                return false;
            }
            let mine = state.clients[client].ticket;
            if still_waiting(model, state, plan.re[check as usize], moved, || {
                re_read(model, state, client, plan.re[check as usize], mine) == Verdict::Wait
            }) {
                return false;
            }
            end_wait(state, client);
            recheck(model, state, client, lock, &plan.re, check);
        }
        Step::Reap { check, recheck } => {
            let path = if recheck {
                plan.re[check as usize].path
            } else {
                plan.pre[check as usize].path
            };
            if model.config.stale_unremovable {
                // The store refuses this acquirer's create in that journal: an error, fail closed.
                fail_closed(model, state, client, lock);
                return true;
            }
            reap(model, state, client, path);
            set(
                state,
                if recheck {
                    Step::Recheck(check)
                } else {
                    Step::Check(check)
                },
            );
        }
        Step::Withdraw { retry, outcome } => {
            withdraw_entry(model, state, client, plan.path);
            state.clients[client].landed = false;
            if retry {
                restart(model, state, client, lock);
            } else {
                model.finish_with(state, client, outcome);
            }
        }
        Step::Write | Step::Verify | Step::RmStale(_) | Step::RmOwn { .. } => {
            unreachable!("not a step of the fixed protocol: {step:?}")
        }
    }
    true
}

/// The path whose journal a waiting client waits on.
pub fn waited_on(model: &LockModel, state: &LockState, client: usize) -> Option<u8> {
    let Phase::Acquiring {
        lock,
        step: Step::Wait { check, recheck },
    } = state.clients[client].phase
    else {
        return None;
    };
    let plan = model.plan(state, client, lock);
    let checks = if recheck { &plan.re } else { &plan.pre };
    Some(checks[check as usize].path)
}

/// Mutant `hint-only`: whether a wake-up hint is pending for a waiter (its journal changed
/// since it last read it, and the hint of that change was not lost). Changes are told by the
/// journal's length: a journal the collector empties and that grows back to the same length
/// hides its change (the mutant then loses one more hint than the world would; the fixed
/// protocol has no hints to lose).
fn hint_pending(model: &LockModel, state: &LockState, client: usize) -> bool {
    let Some(path) = waited_on(model, state, client) else {
        return false;
    };
    let (me, len) = (&state.clients[client], state.slots[path as usize].len);
    len != me.wait_len && me.hint_lost_at != Some(len)
}

/// A client starts waiting on `path`'s journal, having just read it: it notes the journal's
/// length. The implementation's wait ends as soon as the entry that blocks it is no longer the
/// newest (a renewal, a release, a new holder), and the pre-check runs again, wait-die included;
/// so does the model's (`head_moved`). Mutant `hint-only` also uses the note for its hint.
fn begin_wait(state: &mut LockState, client: usize, path: u8) {
    let len = state.slots[path as usize].len;
    let me = &mut state.clients[client];
    me.wait_len = len;
    me.hint_lost_at = None;
}

/// Whether `path`'s journal changed since the waiter noted its length (every change appends; a
/// power loss, which may shorten it, restarts every waiter).
fn head_moved(state: &LockState, client: usize, path: u8) -> bool {
    state.slots[path as usize].len != state.clients[client].wait_len
}

/// A wait is over: forget its note (it means nothing outside a wait, and states that differ
/// only in it are one state).
pub(crate) fn end_wait(state: &mut LockState, client: usize) {
    let me = &mut state.clients[client];
    me.wait_len = 0;
    me.hint_lost_at = None;
}

/// Mutant `hint-only`: a waiter wakes only on a pending hint, which it consumes (it re-reads
/// the journal now). `false`: no hint, so it sleeps on.
fn wake_on_hint(model: &LockModel, state: &mut LockState, client: usize, path: u8) -> bool {
    if !hint_pending(model, state, client) {
        return false;
    }
    begin_wait(state, client, path);
    true
}

/// Whether a waiter is still blocked: its journal has not moved since the wait began and
/// `blocked`, the protocol's own test, still holds. Mutant `wait-for-empty` waits instead until
/// the journal has no entry at all (which never happens once it had one).
fn still_waiting(
    model: &LockModel,
    state: &LockState,
    check: Check,
    moved: bool,
    blocked: impl Fn() -> bool,
) -> bool {
    if model.variant().has(Mutation::WaitForEmpty) {
        state.slots[check.path as usize].len > 0
    } else {
        !moved && blocked()
    }
}

/// Wait-die for multi-lock operations: a client that already holds a lock of its operation
/// must not wait for a live entry older than that lock. The older contender may be waiting
/// for the very lock it holds (rule a waits for younger entries), and neither would move
/// until a lease ran out; the checker found this cycle in our previous protocol (catalogue
/// entry `lock/old-fixed-mv-waits-for-older-contender`). The younger operation backs off.
fn must_back_off(model: &LockModel, state: &LockState, client: usize, check: Check) -> bool {
    if model.variant().has(Mutation::NoWaitDie) {
        return false;
    }
    let newest_held = state.clients[client]
        .held
        .iter()
        .flatten()
        .map(|h| h.token)
        .max();
    match (state.slots[check.path as usize].head, newest_held) {
        (Head::Held { token, .. }, Some(held)) => token < held,
        _ => false,
    }
}

/// Releases what the operation holds and starts it over (a retry), or fails when none is left.
fn back_off(model: &LockModel, state: &mut LockState, client: usize) {
    let me = &mut state.clients[client];
    me.kept = false;
    if me.retries_left > 0 {
        me.retries_left -= 1;
        me.restarts = me
            .restarts
            .saturating_add(1)
            .min(super::RESTARTS_COUNTED_MAX);
        me.phase = Phase::BackingOff;
    } else {
        model.finish_with(state, client, Outcome::Exhausted);
    }
}

/// The acquirer's release of an expired entry on another path: one read and one
/// create-if-absent right after the entry read. It lands only if the expired entry is still the
/// newest, so a renewal and this release exclude each other. Returns whether it landed.
fn reap(model: &LockModel, state: &mut LockState, client: usize, path: u8) -> bool {
    match state.slots[path as usize].head {
        Head::Held { owner, tick, .. }
            if owner as usize != client && model.expired(state, Some(client), owner, tick) =>
        {
            release_head(state, path)
        }
        _ => false,
    }
}

/// The step after a pre-check that found every path clear: the create, with the ticket the
/// client kept from its wait if no clear path's marks reached it (it is used up now), or a
/// claim.
fn after_pre_check(state: &mut LockState, client: usize) -> Step {
    let me = &mut state.clients[client];
    if std::mem::take(&mut me.kept) {
        me.revoked = false;
        Step::Create
    } else {
        Step::ClaimTicket
    }
}

fn after_create(model: &LockModel, state: &mut LockState, client: usize, lock: u8, re: &[Check]) {
    if re.is_empty() || model.variant().has(Mutation::SkipRecheck) {
        grant(model, state, client, lock);
    } else {
        state.clients[client].phase = Phase::Acquiring {
            lock,
            step: Step::Recheck(0),
        };
    }
}

fn grant(model: &LockModel, state: &mut LockState, client: usize, lock: u8) {
    let me = &mut state.clients[client];
    let held = Held {
        token: me.ticket,
        index: me.seen_len,
        tick: me.wrote_at,
        revoked: me.revoked,
    };
    me.landed = false;
    model.granted(state, client, lock, held);
}

fn recheck(
    model: &LockModel,
    state: &mut LockState,
    client: usize,
    lock: u8,
    re: &[Check],
    index: u8,
) {
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
                begin_wait(state, client, re[index as usize].path);
                set(
                    state,
                    Step::Wait {
                        check: index,
                        recheck: true,
                    },
                );
            } else {
                set(
                    state,
                    Step::Withdraw {
                        retry: false,
                        outcome: Outcome::Busy,
                    },
                );
            }
        }
        Verdict::Withdraw => {
            state.clients[client].contended = true;
            set(
                state,
                Step::Withdraw {
                    retry: true,
                    outcome: Outcome::Exhausted,
                },
            );
        }
        Verdict::Reap => set(
            state,
            Step::Reap {
                check: index,
                recheck: true,
            },
        ),
    }
}

/// Release, newest lock first: append `release` right after our own newest entry. If the entry
/// was superseded (expired and taken over, or force-released) the create fails: nothing to do.
/// Returns whether every lock is released now.
///
/// A lock that never reached the caller (the operation failed or backed off while taking its
/// later locks) was never used to write: it is withdrawn, which leaves the journal's marks as
/// they were. Releasing it would raise them and make an older contender withdraw needlessly;
/// the checker found that livelock in our previous protocol.
fn release_newest(model: &LockModel, state: &mut LockState, client: usize, used: bool) -> bool {
    let newest = state.clients[client].held.iter().rposition(Option::is_some);
    if let Some(lock) = newest {
        let plan = model.plan(state, client, lock as u8);
        let (path, kind) = (plan.path, plan.kind);
        let held = state.clients[client].held[lock].expect("newest held lock");
        let slot = &mut state.slots[path as usize];
        let blind = model.variant().has(Mutation::BlindRelease);
        // An unused lock is withdrawn after our newest own entry, found by reading (a renewal
        // whose reply was lost may have moved it past the index we believe); a used one is
        // released right after the index we believe, and a failed create leaves it to expire.
        let ours_newest = matches!(slot.head, Head::Held { owner, token, .. } if owner as usize == client && token == held.token);
        let unused = !used && !model.variant().has(Mutation::ReleaseUnused);
        if unused && ours_newest {
            slot.append_withdraw(held.token);
            note_holder_entry(model, state, path, client);
        } else if !unused && (blind || slot.len == held.index + 1 || ours_newest) {
            // Right after the index we believe; if that is taken, a read of the newest entry
            // finds ours there when a renewal's reply was lost, and the release follows it.
            slot.append(Head::Released {
                kind,
                token: held.token,
            });
            note_holder_entry(model, state, path, client);
        }
        state.clients[client].held[lock] = None;
    }
    state.clients[client].held.iter().all(Option::is_none)
}

/// Renewal: append `renew` right after our newest entry; if that create fails, the lock was
/// superseded and the lease is not extended. `believed` is false for a renewal whose create
/// landed while the client got an error and could not read it back: it keeps its old index and
/// lease (the safe side: its lease ends earlier than the entry's, and its release will find the
/// index taken and leave the entry to expire).
fn renew(
    model: &LockModel,
    state: &mut LockState,
    client: usize,
    lock: u8,
    believed: bool,
) -> bool {
    let plan = model.plan(state, client, lock);
    let (path, kind) = (plan.path, plan.kind);
    let me = &mut state.clients[client];
    me.renewals_left -= 1;
    let Some(held) = me.held[lock as usize].as_mut() else {
        return false;
    };
    let slot = &mut state.slots[path as usize];
    if slot.len == held.index + 1 {
        // A renewal is the same grant: it carries the marks our `acquire` carried (so a later
        // withdraw of an unused lock still raises no mark).
        slot.len += 1;
        slot.head = Head::Held {
            owner: client as u8,
            kind,
            token: held.token,
            tick: state.now,
        };
        if believed {
            held.index += 1;
            held.tick = state.now;
        }
        note_holder_entry(model, state, path, client);
    }
    true
}
