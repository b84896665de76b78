//! Counterexamples as people read them: one numbered line per step, naming the actor, the
//! storage operation and what it found or did.

use serde::Serialize;

use crate::lock::{Head, Hold, LockAction, LockModel, LockState, Phase, Step};

/// One step of a behaviour.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct TraceStep {
    /// 1-based position in the behaviour.
    pub n: usize,
    /// Who acted: `c0`, `c1`, … for clients, `cleaner`, `operator`, `recovery`, `clock`.
    pub actor: String,
    /// The storage operation and its result.
    pub text: String,
    /// The model action, for replay tools (`Debug` form).
    pub action: String,
}

/// A behaviour from an initial state, as printed in counterexamples.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, Default)]
pub struct Trace {
    /// The setup: what each client is about to do.
    pub setup: Vec<String>,
    pub steps: Vec<TraceStep>,
}

impl Trace {
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

impl Trace {
    /// A behaviour's trace: `describe(before, action, after)` gives each step's actor and text.
    pub fn from_path<S, A: Copy + std::fmt::Debug>(
        setup: Vec<String>,
        path: &[(S, Option<A>)],
        describe: impl Fn(&S, A, &S) -> (String, String),
    ) -> Trace {
        let steps = path
            .windows(2)
            .enumerate()
            .map(|(n, pair)| {
                let action = pair[0].1.expect("every step but the last has an action");
                let (actor, text) = describe(&pair[0].0, action, &pair[1].0);
                TraceStep { n: n + 1, actor, text, action: format!("{action:?}") }
            })
            .collect();
        Trace { setup, steps }
    }
}

impl std::fmt::Display for Trace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for line in &self.setup {
            writeln!(f, "      {line}")?;
        }
        for step in &self.steps {
            writeln!(f, "  {:>3}. {:<9} {}", step.n, step.actor, step.text)?;
        }
        Ok(())
    }
}

/// What a reader finds in a lock slot.
pub fn head_text(model: &LockModel, head: Head) -> String {
    let seed = model.variant().is_seed();
    match head {
        Head::Free if seed => "no lock file".into(),
        Head::Free => "empty journal".into(),
        Head::Empty { .. } if seed => "a zero-byte lock file".into(),
        Head::Empty { .. } => "a zero-byte entry".into(),
        Head::Held { owner, kind, token, tick } if seed => {
            format!("c{owner}'s token {}:ts{token} (written at t{tick})", kind.letter())
        }
        Head::Held { owner, kind, token, tick } => {
            format!("c{owner}'s acquire {} ticket {token} (at t{tick})", kind.letter())
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

pub fn outcome_text(outcome: crate::lock::Outcome) -> &'static str {
    use crate::lock::Outcome;
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
        Phase::Acquiring { step: Step::Wait { .. }, .. } => "waits".into(),
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
pub fn describe_lock(model: &LockModel, last: &LockState, action: LockAction, next: &LockState) -> (String, String) {
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
        LockAction::Step(c) => (format!("c{c}"), describe_client_step(model, last, c as usize, next)),
    }
}

/// A store fault on a client's next operation, and what the client makes of it.
fn describe_fault(model: &LockModel, last: &LockState, client: usize, next: &LockState, landed: bool) -> String {
    let op = match model.next_op(last, client) {
        Some(crate::lock::StoreOp::Read) => "read",
        Some(crate::lock::StoreOp::Create) => "create",
        Some(crate::lock::StoreOp::Write) => "write",
        Some(crate::lock::StoreOp::Remove) => "rm",
        None => "operation",
    };
    let what = if landed {
        format!("STORE FAULT: its {op} lands, but the reply is lost (error)")
    } else {
        format!("STORE FAULT: its {op} fails (error, no effect)")
    };
    format!("{what}; {}", phase_text(next.clients[client].phase))
}

fn describe_client_step(model: &LockModel, last: &LockState, client: usize, next: &LockState) -> String {
    let seed = model.variant().is_seed();
    let me = &last.clients[client];
    let after = phase_text(next.clients[client].phase);
    match me.phase {
        Phase::Acquiring { lock, step } => {
            let plan = model.plan(last, client, lock);
            let what = format!("[{} {}]", plan.kind.letter(), model.tree.name(plan.path));
            let read = |path: u8| {
                let slot = last.slots[path as usize];
                let index = if seed { None } else { Some(slot.len.saturating_sub(1)) };
                format!("read {} → {}", key(model, path, index), head_text(model, slot.head))
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
                Step::Create | Step::WriteEntry => {
                    let slot = last.slots[plan.path as usize];
                    let ok = next.slots[plan.path as usize] != slot;
                    let index = if step == Step::Create { me.seen_len } else { me.seen_len };
                    let entry = if step == Step::Create && model.variant().has(crate::lock::Mutation::CreateThenWrite) {
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
            let tokens: Vec<String> = me.held.iter().flatten().map(|h| format!("ts{}", h.token)).collect();
            format!("guarded write with token {} → accepted (nothing checks tokens); {after}", tokens.join("+"))
        }
        Phase::Holding(Hold::Ready) => {
            let ok = matches!(next.clients[client].phase, Phase::Holding(Hold::LeaseChecked));
            format!("check own lease → {}", if ok { "live" } else { "expired" })
        }
        Phase::Holding(Hold::LeaseChecked) => {
            let tokens: Vec<String> = me.held.iter().flatten().map(|h| h.token.to_string()).collect();
            let accepted = next.accepted != last.accepted || !matches!(next.clients[client].phase, Phase::Releasing { outcome: crate::lock::Outcome::Fenced } | Phase::Finished(crate::lock::Outcome::Fenced));
            format!("guarded write with token {} → {}", tokens.join("+"), if accepted { "accepted" } else { "REJECTED (stale token)" })
        }
        Phase::Holding(Hold::Refreshing(lock)) => {
            let path = model.plan(last, client, lock).path;
            format!("refresh: overwrite {} with a new timestamp (replaces {})", key(model, path, None), head_text(model, last.slots[path as usize].head))
        }
        Phase::Releasing { .. } | Phase::BackingOff => {
            let lock = me.held.iter().rposition(Option::is_some).unwrap_or(0);
            let path = model.plan(last, client, lock as u8).path;
            let slot = last.slots[path as usize];
            if seed {
                format!("release: rm {} (removes {}); {after}", key(model, path, None), head_text(model, slot.head))
            } else {
                let ok = next.slots[path as usize] != slot;
                let index = me.held[lock].map_or(0, |h| h.index + 1);
                format!("release: create {} = release → {}; {after}", key(model, path, Some(index)), if ok { "ok" } else { "already exists (nothing to release)" })
            }
        }
        Phase::Idle | Phase::Finished(_) | Phase::Crashed => "nothing".into(),
    }
}

/// The setup lines of a trace: what each client does.
pub fn lock_setup(model: &LockModel, init: &LockState) -> Vec<String> {
    (0..model.config.clients.len())
        .map(|c| {
            let me = &init.clients[c];
            let spec = model.spec(c);
            let locks: Vec<String> = model.plans[me.mode as usize]
                .iter()
                .map(|p| format!("{} {}", p.kind.letter(), model.tree.name(p.path)))
                .collect();
            let mode = match model.modes[me.mode as usize] {
                crate::lock::Mode::Point(_) => "point",
                crate::lock::Mode::Subtree(_) => "subtree",
                crate::lock::Mode::Mv(..) => "mv",
            };
            let timeout = match spec.timeout {
                crate::lock::Timeout::Zero => "lock_timeout=0",
                crate::lock::Timeout::Bounded => "waits until time runs out",
                crate::lock::Timeout::Forever => "waits forever",
            };
            let skew = if spec.skew_ticks > 0 { format!(", clock +{} ticks", spec.skew_ticks) } else { String::new() };
            format!("c{c}: {mode} → {} ({timeout}{skew})", locks.join(", "))
        })
        .collect()
}
