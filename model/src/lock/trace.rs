//! Path-lock steps as people read them: each line names the actor, the storage key, the entry
//! and what the operation found or did; and the closing line of each property's counterexample.

use super::{Head, Hold, LockAction, LockModel, LockState, Phase, Step};
use crate::trace::StepKind;

/// What a reader finds in a lock slot.
pub fn head_text(model: &LockModel, head: Head) -> String {
    let seed = model.variant().is_seed();
    match head {
        Head::Free if seed => "no lock file".into(),
        Head::Free => "empty journal".into(),
        Head::Empty { .. } if seed => "a zero-byte lock file".into(),
        Head::Empty { .. } => "a zero-byte entry".into(),
        Head::Held {
            owner,
            kind,
            token,
            tick,
        } if seed => {
            format!(
                "c{owner}'s token {}:ts{token} (written at t{tick})",
                kind.letter()
            )
        }
        Head::Held {
            owner,
            kind,
            token,
            tick,
        } if owner == super::GONE => {
            format!(
                "a dead boot's acquire {} ticket {token} (at t{tick})",
                kind.letter()
            )
        }
        Head::Held {
            owner,
            kind,
            token,
            tick,
        } => {
            format!(
                "c{owner}'s acquire {} ticket {token} (at t{tick})",
                kind.letter()
            )
        }
        Head::Released { token, .. } => format!("release of ticket {token}"),
        Head::Withdrawn { token } => format!("withdraw of ticket {token}"),
    }
}

fn key(model: &LockModel, path: u8, index: Option<u8>) -> String {
    let name = model.tree.name(path);
    match index {
        None => {
            let dir = if name == "/" { "" } else { name };
            format!("{dir}/.path.ovlock")
        }
        Some(index) => format!("locks{name}#{index}"),
    }
}

pub fn outcome_text(outcome: super::Outcome) -> &'static str {
    use super::Outcome;
    match outcome {
        Outcome::Done => "done",
        Outcome::Busy => "busy",
        Outcome::TimedOut => "timed out",
        Outcome::Exhausted => "retries exhausted",
        Outcome::LeaseLost => "lease lost",
        Outcome::Fenced => "fenced",
        Outcome::Error => "storage error",
    }
}

fn phase_text(phase: Phase) -> String {
    match phase {
        Phase::Acquiring {
            step: Step::Wait { .. },
            ..
        } => "waits".into(),
        Phase::Acquiring { .. } => "continues".into(),
        Phase::Holding(Hold::Ready) => "HOLDS its locks".into(),
        Phase::Holding(_) => "holds".into(),
        Phase::Releasing { outcome } => format!("releases ({})", outcome_text(outcome)),
        Phase::BackingOff => "backs off: releases what it holds, then starts over".into(),
        Phase::Finished(outcome) => format!("finishes: {}", outcome_text(outcome)),
        Phase::Crashed => "crashed".into(),
        Phase::Idle => "idle".into(),
    }
}

/// One line for one step of the path-lock model.
pub fn describe(
    model: &LockModel,
    last: &LockState,
    action: LockAction,
    next: &LockState,
) -> (String, String) {
    let seed = model.variant().is_seed();
    match action {
        LockAction::Tick => ("clock".into(), format!("time advances to t{}", next.now)),
        LockAction::Crash(c) => (format!("c{c}"), "CRASHES (its stored locks stay)".into()),
        LockAction::GiveUp(c) => (format!("c{c}"), "deadline passes: gives up waiting".into()),
        LockAction::TornRefresh(c) => (
            format!("c{c}"),
            "storage crashes mid-overwrite: the lock file is left with zero bytes; the refresh error is only logged".into(),
        ),
        LockAction::Renew(c, lock) => {
            let plan = model.plan(last, c as usize, lock);
            let slot = last.slots[plan.path as usize];
            let text = if seed {
                format!("refresh: read {} → {}", key(model, plan.path, None), head_text(model, slot.head))
            } else {
                let ok = next.slots[plan.path as usize].len > slot.len;
                format!("renew: create {} → {}", key(model, plan.path, Some(slot.len)), if ok { "ok" } else { "already exists (lock lost)" })
            };
            (format!("c{c}"), text)
        }
        LockAction::RenewAmbiguous(c, lock) => {
            let plan = model.plan(last, c as usize, lock);
            let slot = last.slots[plan.path as usize];
            let ok = next.slots[plan.path as usize].len > slot.len;
            (
                format!("c{c}"),
                format!(
                    "renew: create {} → {}, but the reply is lost (error; the read-back fails too: it keeps its old lease)",
                    key(model, plan.path, Some(slot.len)),
                    if ok { "landed" } else { "already exists" }
                ),
            )
        }
        LockAction::Fail(c) | LockAction::Ambiguous(c) => {
            let landed = matches!(action, LockAction::Ambiguous(_));
            (format!("c{c}"), describe_fault(model, last, c as usize, next, landed))
        }
        LockAction::ReapExpired(path) | LockAction::ForceRelease(path) | LockAction::Recover(path) => {
            let slot = last.slots[path as usize];
            let actor = match action {
                LockAction::ReapExpired(_) => "cleaner",
                LockAction::ForceRelease(_) => "operator",
                _ => "recovery",
            };
            (
                actor.into(),
                format!("read {} → {}; create {} = release → ok", key(model, path, Some(slot.len.saturating_sub(1))), head_text(model, slot.head), key(model, path, Some(slot.len))),
            )
        }
        LockAction::LoseLease(c) => (
            "store".into(),
            format!("c{c}'s lease is LOST while it runs (a stall or a partition; etcd #15247): the store proves it dead from now on"),
        ),
        LockAction::LoseHint(c) => {
            let path = super::fixed::waited_on(model, last, c as usize).map_or("?", |p| model.tree.name(p));
            (
                format!("c{c}"),
                format!("the wake-up hint of {path}'s change is lost (the watch limit reached, a dropped notification); c{c} has no poll to fall back on"),
            )
        }
        LockAction::Step(c) => (format!("c{c}"), describe_client_step(model, last, c as usize, next)),
        LockAction::PowerLoss(_) => {
            let journals: Vec<String> = (0..model.tree.len())
                .filter(|p| last.slots[*p].len > 0)
                .map(|p| {
                    let (was, is) = (last.slots[p], next.slots[p]);
                    let fate = if is.head == was.head || matches!((was.head, is.head), (Head::Held { .. }, Head::Held { .. }) | (Head::Empty { .. }, Head::Empty { .. })) && is.len == was.len {
                        "kept"
                    } else if matches!(is.head, Head::Empty { .. }) {
                        "its newest entry's bytes lost (a zero-byte entry)"
                    } else if is.len == was.len {
                        "the entries after the last grant lost"
                    } else {
                        "every entry since the last sync lost"
                    };
                    format!("{} {fate} → {}", model.tree.name(p as u8), head_text(model, is.head))
                })
                .collect();
            let tickets = if next.tickets < last.tickets { "; the ticket journal lost (tickets restart at 1)" } else { "" };
            (
                "machine".into(),
                format!(
                    "POWER LOSS: the machine CRASHES; every running client dies and starts over as a new process; {}{tickets}",
                    if journals.is_empty() { "no journal written yet".to_owned() } else { journals.join("; ") }
                ),
            )
        }
        LockAction::Collect => {
            let gone: Vec<&str> = (0..model.tree.len())
                .filter(|p| last.slots[*p].len > 0 && next.slots[*p].len == 0)
                .map(|p| model.tree.name(p as u8))
                .collect();
            (
                "collector".into(),
                format!(
                    "offline gc: delete the released journals of {}{}",
                    gone.join(", "),
                    if next.tickets < last.tickets { " and the ticket journal" } else { "" }
                ),
            )
        }
    }
}

/// What kind of event a step is, for drawings: a client's step touches the store unless it only
/// checks its own lease or has nothing left to do.
pub fn step_kind(
    model: &LockModel,
    last: &LockState,
    action: LockAction,
    next: &LockState,
) -> StepKind {
    match action {
        LockAction::Tick => StepKind::Time,
        LockAction::Crash(_) => StepKind::Crash,
        LockAction::GiveUp(_) => StepKind::Local,
        LockAction::Fail(_) => StepKind::Failed,
        // The overwrite is cut short: the write half-lands and the client is told it failed.
        LockAction::TornRefresh(_) | LockAction::Ambiguous(_) => StepKind::Ambiguous,
        LockAction::RenewAmbiguous(c, lock) => {
            let path = model.plan(last, c as usize, lock).path as usize;
            if next.slots[path] != last.slots[path] {
                StepKind::Ambiguous
            } else {
                StepKind::Failed
            }
        }
        LockAction::Renew(..)
        | LockAction::ReapExpired(_)
        | LockAction::ForceRelease(_)
        | LockAction::Recover(_)
        | LockAction::Collect => StepKind::Storage,
        LockAction::LoseLease(_) => StepKind::LeaseLost,
        LockAction::LoseHint(_) => StepKind::Local,
        LockAction::PowerLoss(_) => StepKind::Crash,
        LockAction::Step(c) => match last.clients[c as usize].phase {
            // The seed's guarded write goes straight to the resource; the fixed client checks
            // its own lease first, then writes to the resource.
            Phase::Holding(Hold::Ready) if model.variant().is_seed() => StepKind::Resource,
            Phase::Holding(Hold::Ready) => StepKind::Local,
            Phase::Holding(Hold::LeaseChecked) => StepKind::Resource,
            Phase::Acquiring {
                step: Step::RmStale(_),
                ..
            } if model.config.stale_unremovable => StepKind::Failed,
            Phase::Idle | Phase::Finished(_) | Phase::Crashed => StepKind::Local,
            _ => StepKind::Storage,
        },
    }
}

/// A store fault on a client's next operation, and what the client makes of it.
fn describe_fault(
    model: &LockModel,
    last: &LockState,
    client: usize,
    next: &LockState,
    landed: bool,
) -> String {
    let op = match model.next_op(last, client) {
        Some(super::StoreOp::Read) => "read",
        Some(super::StoreOp::Create) => "create",
        Some(super::StoreOp::Write) => "write",
        Some(super::StoreOp::Remove) => "rm",
        None => "operation",
    };
    let what = if landed {
        format!("STORE FAULT: its {op} lands, but the reply is lost (error)")
    } else {
        format!("STORE FAULT: its {op} fails (error, no effect)")
    };
    let reaction = match (model.variant().is_seed(), op) {
        (true, "read") => "_read_token returns None: read as no lock",
        (true, "write") => "_create_lock_file raised: return False",
        (true, "rm") => "_remove_lock_file returns False, which nobody checks",
        (false, "read") if model.variant().has(super::Mutation::FailOpenRead) => {
            "read as an empty journal"
        }
        (false, "read") => "the acquisition fails closed",
        (false, "create")
            if !matches!(
                last.clients[client].phase,
                Phase::Releasing { .. } | Phase::BackingOff
            ) =>
        {
            "the outcome is unknown: read the key back"
        }
        _ => "",
    };
    let reaction = if reaction.is_empty() {
        String::new()
    } else {
        format!(" ({reaction})")
    };
    format!(
        "{what}{reaction}; {}",
        phase_text(next.clients[client].phase)
    )
}

fn describe_client_step(
    model: &LockModel,
    last: &LockState,
    client: usize,
    next: &LockState,
) -> String {
    let seed = model.variant().is_seed();
    let me = &last.clients[client];
    let after = phase_text(next.clients[client].phase);
    match me.phase {
        Phase::Acquiring { lock, step } => {
            let plan = model.plan(last, client, lock);
            let what = format!("[{} {}]", plan.kind.letter(), model.tree.name(plan.path));
            let read = |path: u8| {
                let slot = last.slots[path as usize];
                let index = if seed {
                    None
                } else {
                    Some(slot.len.saturating_sub(1))
                };
                format!(
                    "read {} → {}",
                    key(model, path, index),
                    head_text(model, slot.head)
                )
            };
            let text = match step {
                Step::CheckSame => read(plan.path),
                Step::Check(j) => read(plan.pre[j as usize].path),
                Step::Wait { check, recheck } => {
                    let path = if recheck { plan.re[check as usize].path } else { plan.pre[check as usize].path };
                    format!("wait over: {}", read(path))
                }
                Step::Recheck(j) => format!("re-check: {}", read(plan.re[j as usize].path)),
                Step::Verify => format!("verify: {}", read(plan.path)),
                Step::ClaimTicket => format!("create tickets#{} → ok: ticket {}", next.tickets, next.tickets),
                Step::ClaimToWait { .. } => format!("create tickets#{} → ok: ticket {}, kept for the create after the wait", next.tickets, next.tickets),
                Step::Create | Step::WriteEntry => {
                    let slot = last.slots[plan.path as usize];
                    let ok = next.slots[plan.path as usize] != slot;
                    let index = if step == Step::Create { me.seen_len } else { me.seen_len };
                    let entry = if step == Step::Create && model.variant().has(super::Mutation::CreateThenWrite) {
                        "(empty)".to_string()
                    } else {
                        format!("acquire {} ticket {}", plan.kind.letter(), me.ticket)
                    };
                    let verb = if step == Step::Create { "create" } else { "write" };
                    format!("{verb} {} = {entry} → {}", key(model, plan.path, Some(index)), if ok { "ok" } else { "already exists" })
                }
                Step::Write => format!(
                    "write {} = {}:ts{}:{} (blind overwrite of {})",
                    key(model, plan.path, None),
                    client,
                    last.now + model.spec(client).skew_ticks,
                    plan.kind.letter(),
                    head_text(model, last.slots[plan.path as usize].head)
                ),
                Step::Reap { check, recheck } => {
                    let path = if recheck { plan.re[check as usize].path } else { plan.pre[check as usize].path };
                    let slot = last.slots[path as usize];
                    let ok = next.slots[path as usize] != slot;
                    format!("release expired {}: create {} = release → {}", head_text(model, slot.head), key(model, path, Some(slot.len)), if ok { "ok" } else { "already exists" })
                }
                Step::RmStale(path) if model.config.stale_unremovable => format!(
                    "rm {} (judged stale) → fails (permission denied); the loop starts over at once: no sleep, no deadline check",
                    key(model, path, None)
                ),
                Step::RmStale(path) => format!("rm {} (judged stale; now removes {})", key(model, path, None), head_text(model, last.slots[path as usize].head)),
                Step::RmOwn { .. } => format!("back off: rm {} (removes {})", key(model, plan.path, None), head_text(model, last.slots[plan.path as usize].head)),
                Step::Withdraw { .. } => {
                    let ok = next.slots[plan.path as usize] != last.slots[plan.path as usize];
                    format!("create {} = withdraw → {}", key(model, plan.path, Some(me.seen_len + 1)), if ok { "ok" } else { "not ours or already exists" })
                }
                Step::ReadBack => {
                    let found = if me.landed { format!("our acquire ticket {}", me.ticket) } else { "nothing".into() };
                    format!("read back {} → {found}", key(model, plan.path, Some(me.seen_len)))
                }
            };
            format!("{what} {text}; {after}")
        }
        Phase::Holding(Hold::Ready) if seed => {
            let tokens: Vec<String> = me
                .held
                .iter()
                .flatten()
                .map(|h| format!("ts{}", h.token))
                .collect();
            format!(
                "guarded write with token {} → accepted (nothing checks tokens); {after}",
                tokens.join("+")
            )
        }
        Phase::Holding(Hold::Ready) => {
            let ok = matches!(
                next.clients[client].phase,
                Phase::Holding(Hold::LeaseChecked)
            );
            format!("check own lease → {}", if ok { "live" } else { "expired" })
        }
        Phase::Holding(Hold::LeaseChecked) => {
            let tokens: Vec<String> = me
                .held
                .iter()
                .flatten()
                .map(|h| h.token.to_string())
                .collect();
            let accepted = next.accepted != last.accepted
                || !matches!(
                    next.clients[client].phase,
                    Phase::Releasing {
                        outcome: super::Outcome::Fenced
                    } | Phase::Finished(super::Outcome::Fenced)
                );
            format!(
                "guarded write with token {} → {}",
                tokens.join("+"),
                if accepted {
                    "accepted"
                } else {
                    "REJECTED (stale token)"
                }
            )
        }
        Phase::Holding(Hold::Refreshing(lock)) => {
            let path = model.plan(last, client, lock).path;
            format!(
                "refresh: overwrite {} with a new timestamp (replaces {})",
                key(model, path, None),
                head_text(model, last.slots[path as usize].head)
            )
        }
        Phase::Releasing { .. } | Phase::BackingOff => {
            let lock = me.held.iter().rposition(Option::is_some).unwrap_or(0);
            let path = model.plan(last, client, lock as u8).path;
            let slot = last.slots[path as usize];
            if seed {
                format!(
                    "release: rm {} (removes {}); {after}",
                    key(model, path, None),
                    head_text(model, slot.head)
                )
            } else {
                let ok = next.slots[path as usize] != slot;
                let index = me.held[lock].map_or(0, |h| h.index + 1);
                format!(
                    "release: create {} = release → {}; {after}",
                    key(model, path, Some(index)),
                    if ok {
                        "ok"
                    } else {
                        "already exists (nothing to release)"
                    }
                )
            }
        }
        Phase::Idle | Phase::Finished(_) | Phase::Crashed => "nothing".into(),
    }
}

/// The setup lines of a trace: what each client does.
pub fn setup(model: &LockModel, init: &LockState) -> Vec<String> {
    (0..model.config.clients.len())
        .map(|c| {
            let me = &init.clients[c];
            let spec = model.spec(c);
            let locks: Vec<String> = model.plans[me.mode as usize]
                .iter()
                .map(|p| format!("{} {}", p.kind.letter(), model.tree.name(p.path)))
                .collect();
            // An mv names its direction: both directions take the same locks (in path order),
            // and only the direction tells the two apart.
            let mode = match model.modes[me.mode as usize] {
                super::Mode::Point(_) => "point".to_string(),
                super::Mode::Subtree(_) => "subtree".to_string(),
                super::Mode::Mv(source, target) => format!(
                    "mv from {} to {}",
                    model.tree.name(source),
                    model.tree.name(target)
                ),
            };
            let timeout = match spec.timeout {
                super::Timeout::Zero => "lock_timeout=0",
                super::Timeout::Bounded => "waits until time runs out",
                super::Timeout::Forever => "waits forever",
            };
            let skew = if spec.skew_ticks > 0 {
                format!(", clock +{} ticks", spec.skew_ticks)
            } else {
                String::new()
            };
            format!("c{c}: {mode} → {} ({timeout}{skew})", locks.join(", "))
        })
        .collect()
}

/// A state as labelled rows, for the Explorer's state view: each client (what it is to do, where
/// it is, its ticket and live locks), each journal (length and newest entry), the ticket journal,
/// the resource and the time.
pub fn state_rows(model: &LockModel, state: &LockState) -> Vec<(String, String)> {
    let mut rows = Vec::new();
    for (c, plan) in setup(model, state).into_iter().enumerate() {
        let me = &state.clients[c];
        let mut parts = vec![phase_text(me.phase)];
        if me.ticket > 0 {
            let label = if model.variant().is_seed() {
                "token"
            } else {
                "ticket"
            };
            parts.push(format!("{label} {}", me.ticket));
        }
        let held = lock_names(model, state, c);
        if !held.is_empty() {
            parts.push(format!("holds {}", held.join(", ")));
        }
        if me.lease_lost {
            parts.push("its lease is lost: the store proves it dead".into());
        }
        if model.variant().has(super::Mutation::HintOnly) {
            if let Some(path) = super::fixed::waited_on(model, state, c) {
                let len = state.slots[path as usize].len;
                parts.push(if len == me.wait_len {
                    "no change since its read: no hint".into()
                } else if me.hint_lost_at == Some(len) {
                    "the hint of the change was lost".into()
                } else {
                    "a wake-up hint is pending".into()
                });
            }
        }
        let plan = plan
            .split_once(": ")
            .map_or(plan.as_str(), |(_, p)| p)
            .to_owned();
        rows.push((format!("c{c}"), format!("{plan}; {}", parts.join("; "))));
    }
    for path in 0..model.tree.len() as u8 {
        let slot = state.slots[path as usize];
        let value = if slot.len == 0 {
            "no entry".to_owned()
        } else {
            format!(
                "{} entr{}; newest {}",
                slot.len,
                if slot.len == 1 { "y" } else { "ies" },
                head_text(model, slot.head)
            )
        };
        rows.push((format!("journal {}", model.tree.name(path)), value));
    }
    if !model.variant().is_seed() {
        rows.push(("tickets".into(), format!("{} claimed", state.tickets)));
    }
    let accepted: Vec<String> = (0..model.tree.len() as u8)
        .filter(|p| state.accepted[*p as usize] > 0)
        .map(|p| {
            format!(
                "{}: token {}",
                model.tree.name(p),
                state.accepted[p as usize]
            )
        })
        .collect();
    rows.push((
        "resource".into(),
        if accepted.is_empty() {
            "no write accepted yet".into()
        } else {
            format!("newest accepted: {}", accepted.join(", "))
        },
    ));
    rows.push(("time".into(), format!("tick {}", state.now)));
    rows
}

/// The stable, readable form of an action (the `action` field of a trace step).
pub fn action_name(model: &LockModel, action: LockAction) -> String {
    match action {
        LockAction::Step(c) => format!("step c{c}"),
        LockAction::Fail(c) => format!("fail c{c}"),
        LockAction::Ambiguous(c) => format!("ambiguous c{c}"),
        LockAction::GiveUp(c) => format!("give-up c{c}"),
        LockAction::Crash(c) => format!("crash c{c}"),
        LockAction::TornRefresh(c) => format!("torn-refresh c{c}"),
        LockAction::Renew(c, lock) => format!("renew c{c} lock {lock}"),
        LockAction::RenewAmbiguous(c, lock) => format!("renew-ambiguous c{c} lock {lock}"),
        LockAction::Tick => "tick".into(),
        LockAction::ReapExpired(path) => format!("cleaner {}", model.tree.name(path)),
        LockAction::ForceRelease(path) => format!("force-release {}", model.tree.name(path)),
        LockAction::Recover(path) => format!("recover {}", model.tree.name(path)),
        LockAction::LoseLease(c) => format!("lose lease c{c}"),
        LockAction::Collect => "collect".into(),
        LockAction::LoseHint(c) => format!("lose-hint c{c}"),
        LockAction::PowerLoss(choice) => format!("power-loss {choice:#x}"),
    }
}

fn lock_names(model: &LockModel, state: &LockState, client: usize) -> Vec<String> {
    model
        .live_locks(state, client)
        .iter()
        .map(|(path, kind, _)| format!("{} {}", kind.letter(), model.tree.name(*path)))
        .collect()
}

/// The closing line of a counterexample of `property`: what its last state breaks, in words.
pub fn conclusion(
    model: &LockModel,
    property: &str,
    path: &[(LockState, Option<LockAction>)],
) -> Option<String> {
    let (state, _) = path.last()?;
    let last_actor = path.iter().rev().find_map(|(_, a)| match a {
        Some(
            LockAction::Step(c)
            | LockAction::Fail(c)
            | LockAction::Ambiguous(c)
            | LockAction::GiveUp(c),
        ) => Some(*c as usize),
        _ => None,
    });
    let clients = || model.clients();
    let text = match property {
        "mutual exclusion" => {
            let holders: Vec<String> = clients()
                .filter(|c| !model.live_locks(state, *c).is_empty())
                .map(|c| format!("c{c} holds {}", lock_names(model, state, c).join(" + ")))
                .collect();
            format!("{}, and these locks conflict", holders.join(" while "))
        }
        "fencing" => {
            let who = last_actor.map_or("a zombie".into(), |c| format!("c{c}"));
            format!("the resource accepted {who}'s write with a token older than one it had already accepted")
        }
        "live holder never fenced" => {
            let who = last_actor.map_or("a holder".into(), |c| format!("c{c}"));
            format!("the resource rejected {who}'s write although its lease was live and its lock not revoked")
        }
        "aba safety" => {
            let lost: Vec<String> = clients()
                .flat_map(|c| model.live_locks(state, c).into_iter().map(move |lock| (c, lock)))
                .filter(|(c, (path, _, held))| {
                    !matches!(state.slots[*path as usize].head,
                        Head::Held { owner, token, .. } if owner as usize == *c && token == held.token)
                })
                .map(|(c, (path, kind, _))| {
                    format!(
                        "c{c} still holds {} {} (live, not revoked), but storage shows {}",
                        kind.letter(),
                        model.tree.name(path),
                        head_text(model, state.slots[path as usize].head)
                    )
                })
                .collect();
            lost.join("; ")
        }
        "no stuck lock" => "a lock its owner no longer uses can never be freed: neither recovery nor expiry applies to it".into(),
        "no deadlock" => {
            let stuck: Vec<String> = clients().filter(|c| !state.clients[*c].is_finished()).map(|c| format!("c{c}")).collect();
            let verb = if stuck.len() == 1 { "finishes" } else { "finish" };
            format!("nothing can happen any more, and {} never {verb}", stuck.join(", "))
        }
        "no wait cycle" => {
            let waiting: Vec<String> = clients()
                .filter(|c| matches!(state.clients[*c].phase, Phase::Acquiring { step: Step::Wait { .. }, .. }))
                .map(|c| format!("c{c}"))
                .collect();
            format!("{} wait for each other's entries in a cycle", waiting.join(" and "))
        }
        "no livelock" => {
            let outcomes: Vec<String> = clients()
                .map(|c| match state.clients[c].phase {
                    Phase::Finished(outcome) => format!("c{c} {}", outcome_text(outcome)),
                    _ => format!("c{c} ?"),
                })
                .collect();
            format!("every client failed with no crash, expiry, cleanup or fault, and no deadline passed: {}", outcomes.join(", "))
        }
        "bounded retries" => {
            let over: Vec<String> = clients()
                .filter(|c| state.clients[*c].restarts > model.spec(*c).retries)
                .map(|c| format!("c{c} started over {} times on a budget of {}", state.clients[c].restarts, model.spec(c).retries))
                .collect();
            over.join("; ")
        }
        _ => return None,
    };
    Some(text)
}
