//! Test vectors: behaviours of the fixed path-lock model at the level of whole operations, with
//! the abstract state expected after each, for ports of the protocol to replay
//! (`lockstep vectors export lock`; format in specs/vectors/README.md).
//!
//! An operation runs one client of the model to a resting point: `acquire` until it holds or
//! fails, `finish` (guarded write and release) until it is done. A crash is placed after the
//! operation's `n`-th storage effect (create), which any port can reproduce with a store wrapper
//! that fails every call after `n` creates.

use serde::{Deserialize, Serialize};

use crate::vectors::SplitMix;
use stateright::Model;

use super::{
    ClientSpec, Head, Hold, Kind, LockAction, LockConfig, LockModel, LockState, Mode, Outcome,
    Phase, Step, Timeout, Variant,
};

pub const FORMAT: &str = "lockstep-vectors/4";
pub const TREE: [&str; 4] = ["/", "/a", "/a/b", "/c"];

/// One operation of a vector.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum VectorOp {
    Acquire {
        client: usize,
        crash_after_creates: Option<u8>,
    },
    Finish {
        client: usize,
        crash_after_creates: Option<u8>,
    },
    ForceRelease {
        path: String,
    },
    Recover,
    /// A holder renews each lock it holds, in lock order (no crash during it). Outcome
    /// `renewed`, or `lost` where a lock was superseded (force-released): then no entry is
    /// appended on its path.
    Renew {
        client: usize,
    },
    /// Time passes by one lease, while a client waits: every entry written before the tick has
    /// run out (for whoever watched it: see `tick_is_portable`), and the waiter runs on until it
    /// holds, fails or waits again. Its outcome is the waiter's.
    Tick,
}

/// The newest entry of a path's journal. `acquire` stands for a hold: an `acquire` entry, or
/// a `renew` of the same grant (which `len` tells apart).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum NewestEntry {
    Acquire {
        client: u8,
        kind: String,
        ticket: u8,
    },
    Release {
        kind: String,
        ticket: u8,
    },
    Withdraw {
        ticket: u8,
    },
}

/// The high-water marks the newest entry carries (specs/lock.md §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalMarks {
    pub subtree: u8,
    pub any: u8,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalState {
    pub path: String,
    /// Newest index + 1.
    pub len: u8,
    pub newest: NewestEntry,
    pub marks: JournalMarks,
}

/// The expected abstract state after an operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expected {
    /// `granted`, `busy`, `done`, `fenced`, `crashed`, `released` (force release or recovery).
    pub outcome: String,
    /// Non-empty journals, in tree order.
    pub journals: Vec<JournalState>,
    /// The newest ticket claimed.
    pub tickets: u8,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientMode {
    pub mode: String,
    pub paths: Vec<String>,
    /// `lock_timeout` none (wait as long as it takes) instead of 0.
    pub waits: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vector {
    pub id: String,
    pub clients: Vec<ClientMode>,
    pub steps: Vec<(VectorOp, Expected)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VectorFile {
    pub format: String,
    pub protocol: String,
    pub generated_by: String,
    /// Which behaviours the file holds: a seeded sample (not every behaviour).
    pub coverage: String,
    pub tree: Vec<String>,
    pub settings: String,
    pub vectors: Vec<Vector>,
}

/// Renewals each client may make in a vector (each lock renewed counts one).
pub const RENEWALS: u8 = 4;

/// The model every vector runs: fixed protocol, one tick of time (a lease), `lock_timeout = 0`
/// except for the `waiter` (none: it waits as long as it takes), no retries.
pub fn model_for(modes: &[u8], waiter: Option<usize>) -> LockModel {
    let mut config = LockConfig::new(Variant::Fixed(None));
    config.tree = TREE.iter().map(|s| s.to_string()).collect();
    config.ticks = 1;
    config.lease_ticks = 1;
    config.reaps = 0;
    config.crashes = modes.len() as u8;
    config.force_releases = 8;
    let all = LockModel::new(config.clone()).expect("valid").modes;
    config.clients = modes
        .iter()
        .enumerate()
        .map(|(c, m)| ClientSpec {
            timeout: if waiter == Some(c) {
                Timeout::Forever
            } else {
                Timeout::Zero
            },
            retries: 0,
            renewals: RENEWALS,
            skew_ticks: 0,
            mode: Some(all[*m as usize]),
        })
        .collect();
    LockModel::new(config).expect("valid")
}

fn enabled(model: &LockModel, state: &LockState, action: LockAction) -> Option<LockState> {
    let mut actions = Vec::new();
    model.actions(state, &mut actions);
    actions
        .contains(&action)
        .then(|| model.next_state(state, action))
        .flatten()
}

fn wrote(before: &LockState, after: &LockState) -> bool {
    before.slots != after.slots || before.tickets != after.tickets
}

/// Runs client `c` until `rest` holds, crashing it after `crash_after` storage effects, at its
/// next call to the lock's store. A holder's lease check and its guarded write to the resource
/// make no such call, so a `finish` crashes at its release's first call at the earliest
/// (`holder_calls_store` false); an `acquire` that holds crashes in its garbage-collecting
/// reads. Returns the final state and whether it crashed; `None` if the client cannot run.
fn run_client(
    model: &LockModel,
    mut state: LockState,
    c: usize,
    crash_after: Option<u8>,
    holder_calls_store: bool,
    rest: fn(Phase) -> bool,
) -> Option<(LockState, bool)> {
    let mut effects = 0u8;
    for _ in 0..256 {
        let phase = state.clients[c].phase;
        let calls_store = match phase {
            Phase::Finished(_) => false,
            Phase::Holding(_) => holder_calls_store,
            _ => true,
        };
        if crash_after == Some(effects) && calls_store {
            let crashed = enabled(model, &state, LockAction::Crash(c as u8))?;
            return Some((crashed, true));
        }
        if rest(state.clients[c].phase) {
            return Some((state, false));
        }
        let Some(next) = enabled(model, &state, LockAction::Step(c as u8)) else {
            // A waiter whose journal has not changed takes no step: it rests, waiting.
            return waiting(state.clients[c].phase).then_some((state, false));
        };
        if wrote(&state, &next) {
            effects += 1;
        }
        state = next;
    }
    None
}

/// Whether a client is waiting for a journal to change.
pub fn waiting(phase: Phase) -> bool {
    matches!(
        phase,
        Phase::Acquiring {
            step: Step::Wait { .. },
            ..
        }
    )
}

/// The outcome of an acquisition run to its resting point.
fn acquire_outcome(crashed: bool, phase: Phase) -> &'static str {
    match (crashed, phase) {
        (true, _) => "crashed",
        (false, Phase::Holding(_)) => "granted",
        (false, Phase::Finished(Outcome::Busy)) => "busy",
        // A waiter holding a lock younger than a live contender's backed off (wait-die), and
        // had no retry left.
        (false, Phase::Finished(Outcome::Exhausted)) => "exhausted",
        (false, phase) if waiting(phase) => "waiting",
        (false, other) => panic!("acquire ended in {other:?}"),
    }
}

/// Applies one operation; `None` if it does not apply in `state`.
pub fn apply(model: &LockModel, state: &LockState, op: &VectorOp) -> Option<(LockState, String)> {
    match op {
        VectorOp::Acquire {
            client,
            crash_after_creates,
        } => {
            let ready = matches!(
                state.clients[*client].phase,
                Phase::Acquiring {
                    lock: 0,
                    step: Step::CheckSame
                }
            );
            if !ready {
                return None;
            }
            let (next, crashed) = run_client(
                model,
                state.clone(),
                *client,
                *crash_after_creates,
                true,
                |p| matches!(p, Phase::Holding(_) | Phase::Finished(_)),
            )?;
            let outcome = acquire_outcome(crashed, next.clients[*client].phase);
            Some((next, outcome.into()))
        }
        VectorOp::Finish {
            client,
            crash_after_creates,
        } => {
            if state.clients[*client].phase != Phase::Holding(Hold::Ready) {
                return None;
            }
            let (next, crashed) = run_client(
                model,
                state.clone(),
                *client,
                *crash_after_creates,
                false,
                |p| matches!(p, Phase::Finished(_)),
            )?;
            let outcome = match (crashed, next.clients[*client].phase) {
                (true, _) => "crashed",
                (false, Phase::Finished(Outcome::Done)) => "done",
                (false, Phase::Finished(Outcome::Fenced)) => "fenced",
                // The holder's own clock says a lease ran out (a tick passed since it was
                // written): no write, only the release.
                (false, Phase::Finished(Outcome::LeaseLost)) => "lease-lost",
                (false, other) => panic!("finish ended in {other:?}"),
            };
            Some((next, outcome.into()))
        }
        VectorOp::ForceRelease { path } => {
            let p = TREE.iter().position(|n| n == path)? as u8;
            let next = enabled(model, state, LockAction::ForceRelease(p))?;
            Some((next, "released".into()))
        }
        VectorOp::Recover => {
            let mut next = state.clone();
            let mut any = false;
            for p in 0..TREE.len() as u8 {
                if let Some(after) = enabled(model, &next, LockAction::Recover(p)) {
                    next = after;
                    any = true;
                }
            }
            any.then_some((next, "released".into()))
        }
        VectorOp::Renew { client } => {
            let c = *client;
            let me = &state.clients[c];
            if me.phase != Phase::Holding(Hold::Ready) {
                return None;
            }
            let held: Vec<u8> = (0..model.lock_count(state, c))
                .filter(|l| me.held[*l as usize].is_some())
                .collect();
            if me.renewals_left < held.len() as u8 {
                return None;
            }
            let mut next = state.clone();
            let mut lost = false;
            for lock in held {
                let before = next.slots.clone();
                next = enabled(model, &next, LockAction::Renew(c as u8, lock))?;
                // A renewal that appended nothing found its lock superseded.
                lost |= next.slots == before;
            }
            Some((next, if lost { "lost" } else { "renewed" }.into()))
        }
        VectorOp::Tick => {
            let waiter = model.clients().find(|c| waiting(state.clients[*c].phase))?;
            let ticked = enabled(model, state, LockAction::Tick)?;
            let (next, _) = run_client(model, ticked, waiter, None, true, |p| {
                matches!(p, Phase::Holding(_) | Phase::Finished(_))
            })?;
            let outcome = acquire_outcome(false, next.clients[waiter].phase);
            Some((next, outcome.into()))
        }
    }
}

/// Whether a tick while `waiter` waits means the same to every implementation of the protocol.
/// The model lets a lease run out in true time: an entry written before the tick is expired
/// after it for everyone. An implementation can only judge that on its own clock, by watching
/// the entry unchanged for a lease (lockstep's rule, specs/lock.md §5), so it agrees only for
/// entries its judge watched since before the tick. The waiter watches the journal it waits on;
/// what else it judges after the tick it reads only then. So a tick is in a vector only where
/// every entry held by a live owner other than the waiter is on that journal (entries of dead
/// owners are expired at once for both), and after the tick no client starts an acquisition
/// (it would judge entries it never watched).
fn tick_is_portable(model: &LockModel, state: &LockState, waiter: usize) -> bool {
    let Some(watched) = super::fixed::waited_on(model, state, waiter) else {
        return false;
    };
    state
        .slots
        .iter()
        .enumerate()
        .all(|(path, slot)| match slot.head {
            Head::Held { owner, .. } => {
                owner as usize == waiter || state.owner_dead(owner) || path == watched as usize
            }
            _ => true,
        })
}

fn kind_name(kind: Kind) -> String {
    match kind {
        Kind::Point => "point".into(),
        Kind::Subtree => "subtree".into(),
    }
}

/// The abstract state a port compares with after an operation.
pub fn expected(state: &LockState, outcome: String) -> Expected {
    let mut journals = Vec::new();
    for (p, name) in TREE.iter().enumerate() {
        let slot = state.slots[p];
        let newest = match slot.head {
            Head::Free => continue,
            Head::Held {
                owner, kind, token, ..
            } => NewestEntry::Acquire {
                client: owner,
                kind: kind_name(kind),
                ticket: token,
            },
            Head::Released { kind, token } => NewestEntry::Release {
                kind: kind_name(kind),
                ticket: token,
            },
            Head::Withdrawn { token } => NewestEntry::Withdraw { ticket: token },
            Head::Empty { .. } => unreachable!("the fixed protocol writes whole entries"),
        };
        let marks = JournalMarks {
            subtree: slot.prior.subtree,
            any: slot.prior.any,
        };
        journals.push(JournalState {
            path: name.to_string(),
            len: slot.len,
            newest,
            marks,
        });
    }
    Expected {
        outcome,
        journals,
        tickets: state.tickets,
    }
}

fn client_mode(mode: Mode, waits: bool) -> ClientMode {
    let name = |p: u8| TREE[p as usize].to_string();
    match mode {
        Mode::Point(p) => ClientMode {
            mode: "point".into(),
            paths: vec![name(p)],
            waits,
        },
        Mode::Subtree(p) => ClientMode {
            mode: "subtree".into(),
            paths: vec![name(p)],
            waits,
        },
        Mode::Mv(s, t) => ClientMode {
            mode: "mv".into(),
            paths: vec![name(s), name(t)],
            waits,
        },
    }
}

/// The locks `client` holds, each with whether it is superseded (its path's journal goes on
/// past the client's own newest entry).
fn held_locks<'a>(
    model: &'a LockModel,
    state: &'a LockState,
    client: usize,
) -> impl Iterator<Item = (u8, bool)> + 'a {
    (0..model.lock_count(state, client)).filter_map(move |lock| {
        let held = state.clients[client].held[lock as usize]?;
        let path = model.plan(state, client, lock).path as usize;
        Some((lock, state.slots[path].len != held.index + 1))
    })
}

/// A seeded sample of `count` behaviours of at most `depth` operations each.
pub fn generate(count: usize, depth: usize, seed: u64) -> VectorFile {
    let mut rng = SplitMix(seed);
    let mut vectors = Vec::new();
    while vectors.len() < count {
        let clients = 2 + rng.below(2) as usize;
        let modes: Vec<u8> = (0..clients).map(|_| rng.below(12) as u8).collect();
        // In about half the vectors one client may wait (lock_timeout none) instead of failing at
        // once; whether it does depends on what it meets.
        let waiter = (rng.below(2) == 0).then(|| rng.below(clients as u64) as usize);
        let model = model_for(&modes, waiter);
        let mut state = model
            .init_states()
            .into_iter()
            .next()
            .expect("one initial state");
        let mut steps = Vec::new();
        let mut attempts = 0;
        // Per client, the locks a renewal found superseded. A `finish` of a client all of whose
        // locks are such gets no crash: the model's release still tries its creates there,
        // while an implementation that knows the locks lost (lockstep's does) makes no storage
        // call, so a crash placed at its next storage call would not come. What happens then is
        // not the protocol's business; the vector would only test that choice. (With one lock
        // still good, the crash comes at its release, and the vector keeps it.)
        let mut known_lost: Vec<Vec<u8>> = vec![Vec::new(); clients];
        while steps.len() < depth && attempts < depth * 20 {
            attempts += 1;
            // While a client waits, only time passes (once): any other operation would race with
            // the waiter, which an implementation runs on its own as soon as its journal changes.
            if let Some(w) = model.clients().find(|c| waiting(state.clients[*c].phase)) {
                if state.now > 0 || !tick_is_portable(&model, &state, w) {
                    break;
                }
                let (next, outcome) = apply(&model, &state, &VectorOp::Tick).expect("a tick");
                steps.push((VectorOp::Tick, expected(&next, outcome)));
                state = next;
                continue;
            }
            let crash = if rng.below(4) == 0 {
                Some(rng.below(4) as u8)
            } else {
                None
            };
            let op = match rng.below(10) {
                0..=3 => VectorOp::Acquire {
                    client: rng.below(clients as u64) as usize,
                    crash_after_creates: crash,
                },
                4..=6 => VectorOp::Finish {
                    client: rng.below(clients as u64) as usize,
                    crash_after_creates: crash,
                },
                7 => VectorOp::ForceRelease {
                    path: TREE[rng.below(4) as usize].to_string(),
                },
                8 => VectorOp::Recover,
                _ => VectorOp::Renew {
                    client: rng.below(clients as u64) as usize,
                },
            };
            let op = match op {
                // After the tick no acquisition starts: it would judge entries it never watched
                // (see `tick_is_portable`).
                VectorOp::Acquire { .. } if state.now > 0 => continue,
                // The waiter's acquisition runs without a crash: the replay runs it as a task
                // of its own, beside the operations that follow.
                VectorOp::Acquire { client, .. } if Some(client) == waiter => VectorOp::Acquire {
                    client,
                    crash_after_creates: None,
                },
                VectorOp::Finish { client, .. }
                    if held_locks(&model, &state, client)
                        .all(|(lock, _)| known_lost[client].contains(&lock)) =>
                {
                    VectorOp::Finish {
                        client,
                        crash_after_creates: None,
                    }
                }
                op => op,
            };
            if let Some((next, outcome)) = apply(&model, &state, &op) {
                match &op {
                    VectorOp::Renew { client } => {
                        // Superseded: the journal's end is not right after its own entry.
                        known_lost[*client] = held_locks(&model, &next, *client)
                            .filter(|(_, superseded)| *superseded)
                            .map(|(lock, _)| lock)
                            .collect();
                    }
                    VectorOp::Finish { client, .. } => known_lost[*client].clear(),
                    _ => {}
                }
                steps.push((op, expected(&next, outcome)));
                state = next;
            }
        }
        if steps.is_empty() {
            continue;
        }
        let clients = modes
            .iter()
            .enumerate()
            .map(|(c, m)| client_mode(model.modes[*m as usize], waiter == Some(c)))
            .collect();
        vectors.push(Vector {
            id: format!("lock-{:04}", vectors.len()),
            clients,
            steps,
        });
    }
    VectorFile {
        format: FORMAT.into(),
        protocol: "lock".into(),
        generated_by: format!("lockstep vectors export lock --count {count} --depth {depth} --seed {seed}"),
        coverage: format!("a seeded sample of {count} behaviours of at most {depth} operations (seed {seed}); not every behaviour"),
        tree: TREE.iter().map(|s| s.to_string()).collect(),
        settings: format!("fixed protocol; lock_timeout 0, or none for a client that waits (at most one per vector, never crashed); no retries; up to {RENEWALS} renewals per client, none interrupted by a crash; at most one tick, while the client waits, after which no acquisition starts; a tick lets every lease written before it run out"),
        vectors,
    }
}
