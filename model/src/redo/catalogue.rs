//! The redo-log catalogue: the races of OpenViking PR 431's session commit (seed bugs) and one
//! planted defect per property of lockstep's fixed protocol (mutants).

use crate::catalogue::{Basis, Entry, EntryKind, World};
use crate::check::Signature;

use super::{CStep, Marker, RStep, RedoAction, RedoConfig, RedoModel, RedoMutation, RedoVariant};

const SESSION_PY: &str =
    "OpenViking PR 431, session.py commit_async and redo_log.py (openviking 0.2.11)";

fn entry(
    id: &'static str,
    kind: EntryKind,
    title: &'static str,
    source: &'static str,
    property: &'static str,
    config: RedoConfig,
    signature: Option<Signature<RedoModel>>,
) -> Entry {
    let basis = if kind == EntryKind::SeedBug {
        Basis::ShippedCode
    } else {
        Basis::Lockstep
    };
    let control = RedoConfig {
        variant: RedoVariant::Fixed(None),
        ..config.clone()
    };
    let model = RedoModel::new(config).expect("catalogue worlds are valid");
    let control = RedoModel::new(control).expect("catalogue worlds are valid");
    Entry {
        id,
        protocol: "redo",
        kind,
        basis,
        title,
        source,
        property,
        needs: None,
        scenario: Box::new(World {
            model,
            control,
            signature,
        }),
    }
}

pub fn entries() -> Vec<Entry> {
    let small = |variant: RedoVariant| RedoConfig {
        committers: 2,
        messages: 2,
        crashes: 1,
        restarts: 1,
        ..RedoConfig::new(variant)
    };
    let mutant = |m: RedoMutation| RedoConfig::new(RedoVariant::Fixed(Some(m)));
    let seed = RedoVariant::Seed;
    let (bug, planted) = (EntryKind::SeedBug, EntryKind::Mutant);
    vec![
        entry("redo/crash-before-marker-loses-phase2", bug,
            "a crash after the messages are emptied and before the redo marker is written loses phase 2 for good: no memories, nothing to replay",
            SESSION_PY, "no memory lost", small(seed), None),
        entry("redo/same-archive-index-overwrite", bug,
            "two commits of one session take the same archive index from memory and overwrite each other's archive",
            SESSION_PY, "no message lost", RedoConfig { crashes: 0, restarts: 0, ..small(seed) }, None),
        entry("redo/replay-writes-memories-twice", bug,
            "a replay re-extracts memories of a commit whose memories were written: new memory ids, duplicates (OpenViking PR #1508)",
            SESSION_PY, "recovery idempotent", small(seed), None),
        entry("redo/replay-of-commit-in-flight", bug,
            "a process that starts replays a commit still in flight in another process: both write its memories",
            "OpenViking PR 431 redo_log.py (markers carry no owner)", "no duplicate memories", small(seed),
            Some(Signature {
                step: |_, state, action| {
                    // Recovery writes memories of an archive whose committer is still alive.
                    let RedoAction::Recovery = action else { return false };
                    let RStep::Replay { index, stage: 1 } = state.recovery else { return false };
                    state.committers.iter().any(|c| c.index == index && !matches!(c.step, CStep::Crashed | CStep::Done | CStep::Load))
                },
                at_end: false,
            })),
        entry("redo/unreadable-marker-dropped", bug,
            "a marker torn by a crash reads as {} and recovery deletes it without replay: that commit's phase 2 is lost",
            "OpenViking PR 431 redo_log.py (read returns {} on any error) and lock_manager.py recovery", "no memory lost", small(seed),
            Some(Signature {
                step: |_, state, action| {
                    matches!(action, RedoAction::Recovery)
                        && matches!(state.recovery, RStep::Replay { index, .. } if state.markers[index as usize] == Marker::Torn)
                },
                at_end: true,
            })),
        entry("redo/replay-enqueues-twice", bug,
            "every replay enqueues semantic work again, and each delivery applies its effect",
            "OpenViking PR 431 lock_manager.py _redo_session_memory (always enqueues)", "effect applied once", small(seed), None),
        entry("redo/mutant-no-session-lock", planted, "phase 1 without the session lock: two committers archive the same messages", "mutant of specs/redo.md (session lock)", "no duplicate archive", mutant(RedoMutation::NoSessionLock), None),
        entry("redo/mutant-index-from-memory", planted, "the archive index from memory, written by overwrite: a stale index overwrites an archive", "mutant of specs/redo.md (archive claim)", "no message lost", mutant(RedoMutation::IndexFromMemory), None),
        entry("redo/mutant-clear-all", planted, "clearing drops every live message, not only the archived ones", "mutant of specs/redo.md (clear)", "no message lost", mutant(RedoMutation::ClearAll), None),
        entry("redo/mutant-marker-after-clear", planted, "the redo record written after the clear: a crash between loses phase 2", "mutant of specs/redo.md (record first)", "no memory lost", mutant(RedoMutation::MarkerAfterClear), None),
        entry("redo/mutant-fresh-memory-ids", planted, "memory ids minted per extraction: a replay duplicates memories", "mutant of specs/redo.md (keyed memories)", "no duplicate memories", mutant(RedoMutation::FreshMemoryIds), None),
        entry("redo/mutant-fresh-memory-ids-replay", planted, "the same mutant seen as a non-idempotent replay", "mutant of specs/redo.md (keyed memories)", "recovery idempotent", mutant(RedoMutation::FreshMemoryIds), None),
        entry("redo/mutant-effect-not-keyed", planted, "the semantic effect applied without its key: a re-delivery applies it twice", "mutant of specs/redo.md (keyed effects)", "effect applied once", mutant(RedoMutation::EffectNotKeyed), None),
        entry("redo/mutant-ack-before-apply", planted, "the worker acks before applying: a crash between loses the item", "mutant of specs/redo.md (ack after apply)", "delivered at least once", mutant(RedoMutation::AckBeforeApply), None),
        entry("redo/mutant-keep-marker", planted, "recovery never marks a replayed commit done", "mutant of specs/redo.md (recovery)", "every marker deleted", mutant(RedoMutation::KeepMarker), None),
        entry("redo/mutant-no-replay", planted, "recovery drops redo records without replaying them", "mutant of specs/redo.md (recovery)", "a crashed commit is replayed", mutant(RedoMutation::NoReplay), None),
    ]
}
