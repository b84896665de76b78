//! Redo-log steps as people read them, and the closing line of each counterexample.

use super::{
    Actor, CStep, Marker, P2Stage, RStep, RedoAction, RedoModel, RedoState, WStep, ARCHIVES_MAX, P2,
};
use crate::trace::StepKind;

fn ids(mask: u8) -> String {
    let list: Vec<String> = (0..8)
        .filter(|m| mask & (1 << m) != 0)
        .map(|m| format!("m{m}"))
        .collect();
    if list.is_empty() {
        "nothing".into()
    } else {
        list.join(",")
    }
}

/// A state as labelled rows, for the Explorer's state view: the stored messages, each archive
/// with its phase-2 records, the session locks, each committer, recovery and the worker.
pub fn state_rows(model: &RedoModel, state: &RedoState) -> Vec<(String, String)> {
    let mut rows = vec![(
        "messages".to_owned(),
        format!("{} added; stored: {}", state.added, ids(state.stored)),
    )];
    for (k, archive) in state.archives.iter().enumerate() {
        let Some(archive) = archive else { continue };
        let mut parts = vec![format!("{} by c{}", ids(archive.messages), archive.owner)];
        if model.variant().is_seed() {
            parts.push(format!("marker {:?}", state.markers[k]));
        } else if state.done & (1 << k) != 0 {
            parts.push("done".into());
        }
        let memories = state.memories[k].iter().flatten().count();
        if memories > 0 {
            parts.push(format!("{memories} memory key(s)"));
        }
        if let Some(extraction) = state.manifest[k] {
            parts.push(format!("manifest names extraction {extraction}"));
        }
        if state.queued[k] + state.processing[k] > 0 {
            parts.push(format!(
                "queue: {} pending, {} being processed",
                state.queued[k], state.processing[k]
            ));
        }
        if state.effects[k] > 0 {
            parts.push(format!("effect applied {}×", state.effects[k]));
        }
        rows.push((format!("archive ~{k}"), parts.join("; ")));
    }
    for (s, holder) in state
        .locks
        .iter()
        .enumerate()
        .take(model.config.sessions as usize)
    {
        rows.push((
            format!("session lock {s}"),
            holder.map_or("free".to_owned(), |c| format!("held by c{c}")),
        ));
    }
    for c in 0..model.config.committers as usize {
        let me = &state.committers[c];
        let lost = if state.lease_lost & (1 << c) != 0 {
            "; its lease is lost"
        } else {
            ""
        };
        rows.push((
            format!("c{c}"),
            format!(
                "next: {:?}; archive index {}; read {}{lost}",
                me.step,
                me.index,
                ids(me.snapshot)
            ),
        ));
    }
    rows.push(("recovery".to_owned(), format!("{:?}", state.recovery)));
    for w in model.workers() {
        let lost = if state.worker_lease_lost & (1 << w) != 0 {
            "; its lease is lost"
        } else {
            ""
        };
        rows.push((
            model.worker_name(w as u8),
            format!("{:?}{lost}", state.workers[w]),
        ));
    }
    rows
}

/// One phase-2 step of archive `index`.
fn phase2(
    model: &RedoModel,
    last: &RedoState,
    next_p2: Option<P2>,
    index: u8,
    p2: P2,
    by_recovery: bool,
) -> String {
    let seed = model.variant().is_seed();
    let i = index as usize;
    let name = model.archive_name(index);
    match p2.stage {
        P2Stage::ReadManifest => match last.manifest[i] {
            Some(e) => format!("read manifest of archive {name} → extraction x{e}: memories done"),
            None => format!("read manifest of archive {name} → none"),
        },
        P2Stage::Extract => format!(
            "extract memories of archive {name} (LLM) → extraction x{}",
            next_p2.map_or(p2.extraction, |p| p.extraction)
        ),
        P2Stage::WriteMemory(n) => {
            let key = if model.has(super::RedoMutation::KeyedMemories) {
                format!("memories/{name}/{n}")
            } else if seed {
                format!("a fresh memory id (x{}, #{n})", p2.extraction)
            } else {
                format!("memories/{name}/x{}/{n}", p2.extraction)
            };
            let slot = if model.has(super::RedoMutation::KeyedMemories) {
                n as usize
            } else {
                p2.extraction as usize * super::MEMORIES + n as usize
            };
            match last.memories[i][slot] {
                Some(e) => format!("create memory {key} → already exists (x{e})"),
                None => format!("create memory {key}"),
            }
        }
        P2Stage::CreateManifest => format!(
            "create manifest of archive {name} = x{}{}",
            p2.extraction,
            match last.manifest[i] {
                Some(e) => format!(" → already exists (x{e})"),
                None => String::new(),
            }
        ),
        P2Stage::Enqueue if !seed && model.row_at(last, model.item_key(i)) => format!(
            "enqueue semantic item of archive {name} → a row is stored under its key already"
        ),
        P2Stage::Enqueue => format!("enqueue semantic item of archive {name}"),
        P2Stage::Finish if seed => "delete the redo marker (mark_done)".to_string(),
        P2Stage::Finish if by_recovery && model.has(super::RedoMutation::KeepMarker) => {
            "finish without creating done".to_string()
        }
        P2Stage::Finish => {
            let (s, k) = model.slot_session(i);
            format!("create {}archives/~{k}/done", model.session_name(s))
        }
    }
}

pub fn describe(
    model: &RedoModel,
    last: &RedoState,
    action: RedoAction,
    next: &RedoState,
) -> (String, String) {
    let seed = model.variant().is_seed();
    match action {
        RedoAction::AddMessage => ("user".into(), format!("add message m{}", last.added)),
        RedoAction::CrashCommitter(c) => (format!("c{c}"), "CRASHES".into()),
        RedoAction::CrashTearingMarker(c) => (
            format!("c{c}"),
            "CRASHES while writing the redo marker: it is left zero bytes".into(),
        ),
        RedoAction::CrashRecovery => ("recovery".into(), "CRASHES".into()),
        RedoAction::CrashWorker(w) => (
            model.worker_name(w),
            if seed {
                "CRASHES (a dequeued row stays `processing` until a restart)".into()
            } else {
                "CRASHES (its claim stays until a worker claims over it: the store proves it dead)".into()
            },
        ),
        RedoAction::Restart => (
            "restart".into(),
            if seed {
                "the process restarts (its worker is gone); queue RecoverStale: processing rows back to pending; recovery starts".into()
            } else {
                "the process restarts (its worker is gone); queue RecoverStale; the path locks' recovery frees a dead holder's lock; recovery starts".into()
            },
        ),
        RedoAction::Expire(s) => (
            "lease".into(),
            format!(
                "the {}lock of c{} EXPIRES (it may still be running)",
                model.session_name(s as usize),
                last.locks[s as usize].unwrap_or(0)
            ),
        ),
        RedoAction::LoseLease(c) => (
            "store".into(),
            format!("c{c}'s lease is LOST while it runs (a stall or a partition; etcd #15247): the store proves it dead from now on"),
        ),
        RedoAction::FailEnqueue => {
            let name = match last.recovery {
                RStep::Replay { index, .. } => model.archive_name(index),
                RStep::Idle => "none".into(),
            };
            (
                "recovery".into(),
                format!("replay archive {name}: enqueue FAILS; the replay raises, its marker stays for the next restart"),
            )
        }
        RedoAction::Ambiguous(actor) => {
            let (who, text) = describe(model, last, plain(actor), next);
            (who, format!("{text}: LANDS, but the caller sees an error"))
        }
        RedoAction::LoseWorkerLease(w) => (
            "store".into(),
            format!("{}'s lease is LOST while it runs (a stall or a partition; etcd #15247): the store proves it dead from now on", model.worker_name(w)),
        ),
        RedoAction::Worker(w) => {
            let text = match last.workers[w as usize] {
                WStep::Idle => {
                    let i = model.next_item(last, w as usize).unwrap_or(0);
                    let name = model.archive_name(i as u8);
                    let claimer = last.claimer[i];
                    if seed {
                        format!("dequeue the item of archive {name} (row → processing)")
                    } else if last.queued[i] > 0 {
                        format!("claim the row of archive {name}")
                    } else if claimer == w {
                        format!("claim the row of archive {name} → already claimed, by itself (its claim's answer was lost)")
                    } else if claimer == super::NO_CLAIM {
                        format!("claim the row of archive {name} over a crashed worker's claim")
                    } else {
                        format!(
                            "claim the row of archive {name} over {}'s claim (the store proves it dead)",
                            model.worker_name(claimer)
                        )
                    }
                }
                WStep::Apply(i) if seed || model.has(super::RedoMutation::EffectNotKeyed) => {
                    let name = model.archive_name(i);
                    format!("apply the semantic effect of archive {name} (an append)")
                }
                WStep::Apply(i) => format!(
                    "create effect semantic/{} (keyed by the item)",
                    model.archive_name(model.item_key(i as usize) as u8)
                ),
                WStep::Ack(i) => format!("ack the item of archive {} (delete the row)", model.archive_name(i)),
            };
            (model.worker_name(w), text)
        }
        RedoAction::Recovery => {
            let text = match last.recovery {
                RStep::Replay { index, .. }
                    if seed && last.markers[index as usize] == Marker::Torn =>
                {
                    let name = model.archive_name(index);
                    format!("read marker of archive {name} → unreadable ({{}}): delete it without replay")
                }
                RStep::Replay { index, .. } if model.has(super::RedoMutation::NoReplay) => {
                    let name = model.archive_name(index);
                    format!("mark archive {name} done without replaying it")
                }
                RStep::Replay { index, p2 } => {
                    let name = model.archive_name(index);
                    let next_p2 = match next.recovery {
                        RStep::Replay { index: j, p2 } if j == index => Some(p2),
                        _ => None,
                    };
                    format!(
                        "replay archive {name}: {}",
                        phase2(model, last, next_p2, index, p2, true)
                    )
                }
                RStep::Idle => "nothing".into(),
            };
            ("recovery".into(), text)
        }
        RedoAction::Commit(c) => {
            let me = last.committers[c as usize];
            let after = next.committers[c as usize];
            let text = match me.step {
                CStep::Load => format!(
                    "load session: {} archives, next index {} (in memory)",
                    RedoModel::archive_count(last),
                    after.index
                ),
                CStep::Lock => match model.lock_of(last, c as usize) {
                    Some(h) if h != c => format!(
                        "take the session lock (POINT on the session directory) → c{h}'s, who is dead: taken over"
                    ),
                    _ => "take the session lock (POINT on the session directory) → ok".into(),
                },
                CStep::ListArchives => format!(
                    "list {}archives → next index {}",
                    model.session_name(model.session_of(c as usize)),
                    model.slot_session(after.index as usize).1
                ),
                CStep::ReadMessages if seed => format!("read messages → {}", ids(after.snapshot)),
                CStep::ReadMessages if model.has(super::RedoMutation::NoExclusion) => {
                    format!("read stored messages → {}", ids(after.snapshot))
                }
                CStep::ReadMessages => {
                    format!("read messages not in any archive → {}", ids(after.snapshot))
                }
                CStep::WriteArchive if seed || model.has(super::RedoMutation::IndexFromMemory) => {
                    format!(
                        "write archive {} = {} (overwrite)",
                        model.archive_name(me.index),
                        ids(me.snapshot)
                    )
                }
                CStep::WriteArchive => format!(
                    "create {}archives/~{} = {} (the redo record) → {}",
                    model.session_name(model.session_of(c as usize)),
                    model.slot_session(me.index as usize).1,
                    ids(me.snapshot),
                    match last.archives[me.index as usize] {
                        None => "ok".to_string(),
                        Some(a) if after.step == CStep::ClearMessages => {
                            format!("already exists, and it is ours (c{})", a.owner)
                        }
                        Some(a) => format!("already exists (c{}'s)", a.owner),
                    }
                ),
                CStep::ClearMessages if seed => {
                    "write messages.jsonl = [] (drops everything stored)".into()
                }
                CStep::ClearMessages => {
                    format!("delete message {}", ids(last.stored & !next.stored))
                }
                CStep::WriteMarker => format!("write redo marker for archive {}", model.archive_name(me.index)),
                CStep::Unlock if model.lock_of(last, c as usize) == Some(c) => "release the session lock".into(),
                CStep::Unlock => "release the session lock → not ours any more (no-op)".into(),
                CStep::Phase2(p2) => {
                    let next_p2 = match after.step {
                        CStep::Phase2(p) => Some(p),
                        _ => None,
                    };
                    phase2(model, last, next_p2, me.index, p2, false)
                }
                CStep::Done | CStep::Crashed => "nothing".into(),
            };
            (format!("c{c}"), text)
        }
    }
}

/// What kind of event a step is, for drawings. Loading the session reads the committer's memory
/// only (the archive count it loaded earlier), and extraction calls the LLM, so both are drawn on
/// the actor's own lane.
pub fn step_kind(
    model: &RedoModel,
    last: &RedoState,
    action: RedoAction,
    _next: &RedoState,
) -> StepKind {
    match action {
        RedoAction::CrashCommitter(_) | RedoAction::CrashRecovery | RedoAction::CrashWorker(_) => {
            StepKind::Crash
        }
        // The marker's write half-lands (zero bytes) and its writer dies: a write whose caller
        // never learns its outcome.
        RedoAction::CrashTearingMarker(_) => StepKind::Ambiguous,
        RedoAction::Expire(_) => StepKind::Time,
        RedoAction::LoseLease(_) | RedoAction::LoseWorkerLease(_) => StepKind::LeaseLost,
        RedoAction::FailEnqueue => StepKind::Failed,
        RedoAction::Ambiguous(_) => StepKind::Ambiguous,
        // In `describe`'s order: the seed's read of a torn marker and the no-replay mutant's
        // `done` are storage steps whatever stage the replay is at.
        RedoAction::Recovery => match last.recovery {
            RStep::Idle => StepKind::Local,
            RStep::Replay { index, .. }
                if model.variant().is_seed() && last.markers[index as usize] == Marker::Torn =>
            {
                StepKind::Storage
            }
            RStep::Replay { .. } if model.has(super::RedoMutation::NoReplay) => StepKind::Storage,
            // Extraction is a call to the LLM, not to the store.
            RStep::Replay { p2, .. } if p2.stage == P2Stage::Extract => StepKind::Local,
            RStep::Replay { .. } => StepKind::Storage,
        },
        RedoAction::Commit(c) => match last.committers[c as usize].step {
            CStep::Load | CStep::Done | CStep::Crashed => StepKind::Local,
            CStep::Phase2(p2) if p2.stage == P2Stage::Extract => StepKind::Local,
            _ => StepKind::Storage,
        },
        RedoAction::AddMessage | RedoAction::Restart | RedoAction::Worker(_) => StepKind::Storage,
    }
}

fn plain(actor: Actor) -> RedoAction {
    match actor {
        Actor::Committer(c) => RedoAction::Commit(c),
        Actor::Recovery => RedoAction::Recovery,
        Actor::Worker(w) => RedoAction::Worker(w),
    }
}

/// The stable, readable form of an action.
pub fn action_name(action: RedoAction) -> String {
    match action {
        RedoAction::AddMessage => "add-message".into(),
        RedoAction::Commit(c) => format!("step c{c}"),
        RedoAction::CrashCommitter(c) => format!("crash c{c}"),
        RedoAction::CrashTearingMarker(c) => format!("crash c{c} tearing the marker"),
        RedoAction::Restart => "restart".into(),
        RedoAction::Recovery => "recovery".into(),
        RedoAction::CrashRecovery => "crash recovery".into(),
        // Worker 0 keeps the one-worker worlds' names.
        RedoAction::Worker(0) => "worker".into(),
        RedoAction::Worker(w) => format!("worker w{w}"),
        RedoAction::CrashWorker(0) => "crash worker".into(),
        RedoAction::CrashWorker(w) => format!("crash worker w{w}"),
        RedoAction::LoseWorkerLease(w) => format!("lose lease w{w}"),
        RedoAction::Expire(0) => "expire".into(),
        RedoAction::Expire(s) => format!("expire s{s}"),
        RedoAction::FailEnqueue => "fail enqueue".into(),
        RedoAction::LoseLease(c) => format!("lose lease c{c}"),
        RedoAction::Ambiguous(actor) => format!("ambiguous {}", action_name(plain(actor))),
    }
}

/// The closing line of a counterexample of `property`.
pub fn conclusion(
    model: &RedoModel,
    property: &str,
    path: &[(RedoState, Option<RedoAction>)],
) -> Option<String> {
    let (state, _) = path.last()?;
    let archives = |pick: &dyn Fn(usize) -> bool| -> String {
        (0..ARCHIVES_MAX)
            .filter(|i| pick(*i))
            .map(|i| format!("archive {}", model.archive_name(i as u8)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let messages = |pick: &dyn Fn(u8) -> bool| -> String {
        (0..state.added)
            .filter(|m| pick(*m))
            .map(|m| format!("m{m}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let in_archives = |m: u8| {
        state
            .archives
            .iter()
            .flatten()
            .filter(|a| a.messages & (1 << m) != 0)
            .count()
    };
    let live = model.live(state);
    let text = match property {
        "no message lost" => {
            let held = model.held_in_memory(state);
            format!(
                "message {} is neither live nor in any archive: lost",
                messages(&|m| (live | held) & (1 << m) == 0 && in_archives(m) == 0)
            )
        }
        "no duplicate archive" => format!(
            "message {} is in two archives",
            messages(&|m| in_archives(m) > 1)
        ),
        "no memory lost" => format!(
            "message {} is archived, not live, and its archive has no memories and nothing will replay it",
            messages(&|m| {
                live & (1 << m) == 0
                    && in_archives(m) > 0
                    && !(0..ARCHIVES_MAX).any(|i| {
                        state.archives[i].is_some_and(|a| a.messages & (1 << m) != 0)
                            && (!model.view(state, i).is_empty()
                                || model.in_flight(state, i as u8)
                                || model.pending(state, i))
                    })
            })
        ),
        "memories from one extraction" => format!(
            "readers see memories of {} from two extractions",
            archives(&|i| {
                let view = model.view(state, i);
                view.iter().any(|(_, e)| Some(*e) != view.first().map(|(_, e)| *e))
            })
        ),
        "memories whole" => format!(
            "the manifest of {} names memories that do not exist",
            archives(&|i| state.manifest[i].is_some())
        ),
        "effect applied once" => format!(
            "the semantic effect of {} landed twice",
            archives(&|i| state.effects[i] > 1)
        ),
        "no wait for a dead holder" => format!(
            "{} waits for the session lock of c{}, who has crashed: every commit of the session fails until the lock expires",
            model
                .committers()
                .filter(|c| model.waits_for_dead_holder(state, *c))
                .map(|c| format!("c{c}"))
                .collect::<Vec<_>>()
                .join(", "),
            model
                .committers()
                .find(|c| model.waits_for_dead_holder(state, *c))
                .and_then(|c| model.lock_of(state, c))
                .unwrap_or(0)
        ),
        "delivered at least once" => {
            "a commit's semantic work was never applied, and nothing is left to deliver it".into()
        }
        "recovery idempotent" => {
            "a replay wrote memories again for a commit whose memories readers already see".into()
        }
        "every redo record finished" => format!(
            "the redo record of {} stays open for good",
            archives(&|i| if model.variant().is_seed() {
                state.markers[i] != Marker::None
            } else {
                state.archives[i].is_some() && state.done & (1 << i) == 0
            })
        ),
        _ => return None,
    };
    Some(text)
}
