//! The path-lock model's properties. Every `always` property is paired with `sometimes`
//! witnesses that show its interesting cases are reached, and every property is broken by the
//! seed or by a mutant of the fixed protocol (`catalogue.rs`, and a test asserts it).
//!
//! No property is a restatement of the protocol: where a property asks "can this still
//! happen", it computes the answer by applying the model's own transitions to a copy of the
//! state ("no stuck lock", "no wait cycle").

use stateright::{Model, Property};

use super::{Head, LockAction, LockModel, LockState, Mode, Outcome, Phase, Step, Variant};

pub fn all(model: &LockModel) -> Vec<Property<LockModel>> {
    let mut properties = vec![
        Property::<LockModel>::always("mutual exclusion", |model, state| {
            // No two clients hold live, unrevoked locks that conflict.
            let holders: Vec<_> = model
                .clients()
                .map(|c| model.live_locks(state, c))
                .collect();
            holders.iter().enumerate().all(|(a, locks_a)| {
                holders.iter().skip(a + 1).all(|locks_b| {
                    locks_a.iter().all(|(pa, ka, _)| {
                        locks_b
                            .iter()
                            .all(|(pb, kb, _)| !model.tree.conflicts(*pa, *ka, *pb, *kb))
                    })
                })
            })
        }),
        Property::<LockModel>::always("fencing", |_, state| {
            // The resource never accepted a token older than one it had already accepted for an
            // overlapping path (so a zombie's late write is rejected).
            !state.stale_write_accepted
        }),
        Property::<LockModel>::always("live holder never fenced", |_, state| {
            // The resource never rejects the write of a holder whose lease is live and whose
            // lock was not revoked: a newly granted token is larger than every token granted
            // before on an overlapping path.
            !state.live_write_rejected
        }),
        Property::<LockModel>::always("aba safety", |model, state| {
            // A live, unrevoked holder still finds its own lock in storage: no release, expiry
            // or cleanup of someone else removed or overwrote it.
            model.clients().all(|c| {
                model.live_locks(state, c).iter().all(|(path, _, held)| {
                    matches!(state.slots[*path as usize].head,
                        Head::Held { owner, token, .. } if owner as usize == c && token == held.token)
                })
            })
        }),
        Property::<LockModel>::always("no stuck lock", |model, state| {
            // Every lock its owner no longer uses (the owner crashed, gave up, or moved on) is
            // freed by recovery or, once its lease has passed, by expiry: computed by applying
            // those steps to a copy of the state.
            (0..model.tree.len() as u8)
                .all(|path| in_use(model, state, path) || freed_by_cleanup(model, state, path))
        }),
        Property::<LockModel>::always("no deadlock", |model, state| {
            // Where nothing can happen any more, every client is done, failed or crashed.
            let all_finished = model.clients().all(|c| state.clients[c].is_finished());
            all_finished || model.has_successor(state)
        }),
        Property::<LockModel>::always("no wait cycle", |model, state| {
            // No clients wait for each other in a cycle, each blocked by the next one's entry.
            // With `lock_timeout` forever that is a deadlock; with a positive timeout every
            // client of the cycle times out, however long its timeout is.
            !has_wait_cycle(model, state)
        }),
        Property::<LockModel>::always("no livelock", |model, state| {
            // A contest among waiting clients with no crash, expiry, cleanup, force release or
            // store fault never ends with every client failed, unless a deadline passed during
            // it: with a positive lock_timeout, contenders can all fail for want of time (a
            // deadline shorter than the contest is the caller's choice), never because the
            // protocol went round in circles.
            let waiting_clients = model.config.clients.iter().all(|spec| spec.timeout.waits());
            let failed = |outcome: Outcome| outcome != Outcome::Done;
            let all_failed = model
                .clients()
                .all(|c| matches!(state.clients[c].phase, Phase::Finished(o) if failed(o)));
            let a_deadline_passed = model
                .clients()
                .any(|c| state.clients[c].phase == Phase::Finished(Outcome::TimedOut));
            !(waiting_clients && !state.disturbed && all_failed && !a_deadline_passed)
        }),
        Property::<LockModel>::always("bounded retries", |model, state| {
            // An acquisition starts over (after a back-off, a lost create, a failed removal of
            // a stale lock) at most as often as its retry budget allows: no loop spins.
            model
                .clients()
                .all(|c| state.clients[c].restarts <= model.spec(c).retries)
        }),
        Property::<LockModel>::sometimes("contested lock won", |model, state| {
            model.clients().any(|c| {
                let me = &state.clients[c];
                me.contended && matches!(me.phase, Phase::Holding(_))
            })
        }),
    ];
    // Witnesses of expiry and fencing, in worlds where time passes (a lease can run out).
    if model.config.ticks >= model.config.lease_ticks {
        properties.push(Property::<LockModel>::sometimes(
            "expired lock taken over",
            |_, state| state.took_over,
        ));
        properties.push(Property::<LockModel>::sometimes(
            "stale write rejected",
            |_, state| state.stale_write_rejected,
        ));
    }
    // One witness per mode the world has: every client can acquire in every mode.
    let has = |wanted: fn(Mode) -> bool| model.modes.iter().any(|m| wanted(*m));
    if has(|m| matches!(m, Mode::Point(_))) {
        properties.push(Property::<LockModel>::sometimes(
            "point acquired",
            |model, state| holds_mode(model, state, |m| matches!(m, Mode::Point(_))),
        ));
    }
    if has(|m| matches!(m, Mode::Subtree(_))) {
        properties.push(Property::<LockModel>::sometimes(
            "subtree acquired",
            |model, state| holds_mode(model, state, |m| matches!(m, Mode::Subtree(_))),
        ));
    }
    if has(|m| matches!(m, Mode::Mv(..))) {
        properties.push(Property::<LockModel>::sometimes(
            "mv acquired",
            |model, state| holds_mode(model, state, |m| matches!(m, Mode::Mv(..))),
        ));
    }
    properties
}

fn holds_mode(model: &LockModel, state: &LockState, wanted: fn(Mode) -> bool) -> bool {
    model.clients().any(|c| {
        let me = &state.clients[c];
        matches!(me.phase, Phase::Holding(_)) && wanted(model.modes[me.mode as usize])
    })
}

/// Whether the newest entry of `path` is one its owner still uses: it holds that lock, or the
/// entry belongs to the acquisition it is running. An entry of a crashed owner, of one that
/// finished, or of an acquisition it abandoned is not in use.
fn in_use(model: &LockModel, state: &LockState, path: u8) -> bool {
    let (owner, token) = match state.slots[path as usize].head {
        Head::Held { owner, token, .. } => (owner, Some(token)),
        Head::Empty { owner } => (owner, None),
        Head::Free | Head::Released { .. } | Head::Withdrawn { .. } => return true,
    };
    let Some(me) = state.clients.get(owner as usize) else {
        return false; // an owner of an earlier boot: nobody uses it
    };
    let matches = |lock: u8, held_token: u8| {
        model.plans[me.mode as usize][lock as usize].path == path
            && token.is_none_or(|t| t == held_token)
    };
    let holding = me
        .held
        .iter()
        .enumerate()
        .any(|(lock, held)| held.is_some_and(|h| matches(lock as u8, h.token)));
    // The seed's token is in the file from its write on; a fixed entry once it landed.
    let in_flight = model.variant().is_seed() || me.landed;
    let acquiring = match me.phase {
        Phase::Acquiring { lock, .. } => in_flight && matches(lock, me.ticket),
        _ => false,
    };
    (holding || acquiring) && !me.is_crashed()
}

/// Whether recovery, or the expiry of the entry's lease, frees `path`: the model's own cleanup
/// steps applied to a copy of the state in which the lease has long passed.
fn freed_by_cleanup(model: &LockModel, state: &LockState, path: u8) -> bool {
    let mut later = state.clone();
    later.now = later
        .now
        .saturating_add(model.config.lease_ticks + skew_max(model) + 1);
    let free = |state: &LockState| {
        matches!(
            state.slots[path as usize].head,
            Head::Free | Head::Released { .. } | Head::Withdrawn { .. }
        )
    };
    match model.variant() {
        // The seed has no cleaner: the next acquirer that meets the file removes it if it reads
        // as stale, and overwrites it if it reads as no lock.
        Variant::Seed => match later.slots[path as usize].head {
            Head::Held { owner, tick, .. } => model.expired(&later, None, owner, tick),
            Head::Empty { .. } => true,
            _ => true,
        },
        Variant::Fixed(_) => {
            later.reaps_left = later.reaps_left.max(1);
            let mut actions = Vec::new();
            model.actions(&later, &mut actions);
            actions
                .into_iter()
                .filter(|a| matches!(a, LockAction::ReapExpired(p) | LockAction::Recover(p) if *p == path))
                .any(|a| model.next_state(&later, a).is_some_and(|next| free(&next)))
        }
    }
}

fn skew_max(model: &LockModel) -> u8 {
    model
        .config
        .clients
        .iter()
        .map(|c| c.skew_ticks)
        .max()
        .unwrap_or(0)
}

/// The client whose entry blocks `client`, if `client` waits and its wait is not over.
fn blocker(model: &LockModel, state: &LockState, client: usize) -> Option<usize> {
    let me = &state.clients[client];
    let Phase::Acquiring {
        lock,
        step: Step::Wait { check, recheck },
    } = me.phase
    else {
        return None;
    };
    if model
        .next_state(state, LockAction::Step(client as u8))
        .is_some()
    {
        return None; // its wait is over: it can go on
    }
    let plan = model.plan(state, client, lock);
    let path = if recheck {
        plan.re[check as usize].path
    } else {
        plan.pre[check as usize].path
    };
    match state.slots[path as usize].head {
        Head::Held { owner, .. } | Head::Empty { owner }
            if owner as usize != client && owner != super::GONE =>
        {
            Some(owner as usize)
        }
        _ => None,
    }
}

fn has_wait_cycle(model: &LockModel, state: &LockState) -> bool {
    let count = model.config.clients.len();
    model.clients().any(|start| {
        let mut at = start;
        for _ in 0..count {
            match blocker(model, state, at) {
                Some(next) if next == start => return true,
                Some(next) => at = next,
                None => return false,
            }
        }
        false
    })
}
