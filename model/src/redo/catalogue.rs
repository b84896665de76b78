//! The redo-log catalogue: the races of OpenViking PR 431's session commit and of openviking
//! 0.2.11's (seed bugs: the code as published), one
//! regression of our own first draft, and one planted defect per property of lockstep's fixed
//! protocol (mutants).

use crate::catalogue::{Basis, Entry, EntryKind, World};
use crate::check::Signature;

use super::{
    CStep, Marker, P2Stage, RStep, RedoAction, RedoConfig, RedoModel, RedoMutation, RedoVariant,
};

const SESSION_PY: &str = "OpenViking PR 431, session.py commit_async and redo_log.py";
const SESSION_0211_PY: &str = "openviking 0.2.11 (PyPI), session/session.py commit_async";
const RECOVERY_PY: &str = "OpenViking PR 431, lock_manager.py redo recovery (_redo_session_memory)";

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

/// Committer `c`'s step (the state is the one before it).
fn committer_at(state: &super::RedoState, action: &RedoAction) -> Option<super::Committer> {
    match action {
        RedoAction::Commit(c) => Some(state.committers[*c as usize]),
        _ => None,
    }
}

pub fn entries() -> Vec<Entry> {
    let small = |variant: RedoVariant| RedoConfig {
        committers: 2,
        messages: 2,
        crashes: 1,
        restarts: 1,
        expiries: 0,
        faults: 0,
        ..RedoConfig::new(variant)
    };
    let mutant = |m: RedoMutation| RedoConfig::new(RedoVariant::Fixed(Some(m)));
    let seed = RedoVariant::Seed;
    let (bug, planted, regression) = (EntryKind::SeedBug, EntryKind::Mutant, EntryKind::Regression);
    vec![
        entry("redo/crash-before-marker-loses-phase2", bug,
            "a crash after messages.jsonl is emptied and before the redo marker is written loses phase 2 for good: the messages are gone from the session, their archive has no memories, and nothing replays it",
            SESSION_PY, "no memory lost", small(seed), None),
        entry("redo/same-archive-index-overwrite", bug,
            "two Session objects take the same archive index from memory (compression_index), and the second writes archive_NNN over the first's, losing what only the first held",
            SESSION_PY, "no message lost", RedoConfig { crashes: 0, restarts: 0, ..small(seed) },
            Some(Signature {
                step: |_, state, action| {
                    // The losing step is an overwrite of another committer's archive.
                    committer_at(state, action).is_some_and(|me| {
                        me.step == CStep::WriteArchive
                            && state.archives[me.index as usize].is_some_and(|a| {
                                Some(a.owner) != match action { RedoAction::Commit(c) => Some(*c), _ => None }
                            })
                    })
                },
                at_end: true,
            })),
        entry("redo/clear-drops-new-message", bug,
            "a message added between a commit's read and its clear is dropped: messages.jsonl is overwritten empty",
            SESSION_PY, "no message lost", RedoConfig { committers: 1, crashes: 0, restarts: 0, ..small(seed) },
            Some(Signature {
                step: |_, state, action| {
                    committer_at(state, action).is_some_and(|me| {
                        me.step == CStep::ClearMessages && state.stored & !me.snapshot != 0
                    })
                },
                at_end: true,
            })),
        entry("redo/replay-writes-memories-twice", bug,
            "a replay re-extracts memories of a commit whose memories were written: new memory ids, duplicates (OpenViking PR #1508)",
            SESSION_PY, "recovery idempotent", small(seed), None),
        entry("redo/replay-of-commit-in-flight", bug,
            "a process that starts replays a commit still in flight in another process: both write its memories",
            "OpenViking PR 431 redo_log.py (markers carry no owner)", "memories from one extraction", small(seed),
            Some(Signature {
                step: |model, state, action| {
                    // Recovery writes memories of an archive whose committer is still alive.
                    let RedoAction::Recovery = action else { return false };
                    let RStep::Replay { index, p2 } = state.recovery else { return false };
                    matches!(p2.stage, P2Stage::WriteMemory(_)) && model.in_flight(state, index)
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
            "OpenViking PR 431 lock_manager.py _redo_session_memory (always enqueues)", "effect applied once", small(seed),
            Some(Signature {
                step: |_, state, action| {
                    // The path holds a replay's enqueue.
                    matches!(action, RedoAction::Recovery)
                        && matches!(state.recovery, RStep::Replay { p2, .. } if p2.stage == P2Stage::Enqueue)
                },
                at_end: false,
            })),
        entry("redo/reload-before-clear-archives-twice", bug,
            "a second Session loads the session after the first wrote its archive and before it emptied messages.jsonl: it archives the same messages again",
            SESSION_PY, "no duplicate archive", RedoConfig { crashes: 0, restarts: 0, ..small(seed) }, None),
        entry("redo/failed-enqueue-re-extracts", bug,
            "a replay whose enqueue fails keeps its marker and is replayed at every restart, each time extracting and writing a new set of memories: the memories grow with every restart",
            RECOVERY_PY, "memories from one extraction",
            RedoConfig { committers: 1, messages: 1, crashes: 1, restarts: 2, faults: 1, ..small(seed) },
            Some(Signature {
                step: |_, state, action| {
                    // A replay writes memories of an archive whose earlier replay failed.
                    let RedoAction::Recovery = action else { return false };
                    let RStep::Replay { index, p2 } = state.recovery else { return false };
                    matches!(p2.stage, P2Stage::WriteMemory(_)) && state.ever_failed & (1 << index) != 0
                },
                at_end: true,
            })),
        entry("redo/lock-held-by-dead-committer-blocks-commits", bug,
            "openviking 0.2.11: a committer crashes holding the session lock; its lock file stays until lock_expire (300 s), so every later commit of the session fails with the lock busy",
            SESSION_0211_PY, "no wait for a dead holder",
            RedoConfig { crashes: 1, restarts: 1, expiries: 0, ..small(RedoVariant::Seed0211) }, None),
        entry("redo/clear-before-archive-loses-messages", bug,
            "openviking 0.2.11: messages.jsonl is written empty under the lock and the archive only after its release; a crash in between loses the messages outright",
            SESSION_0211_PY, "no message lost",
            RedoConfig { committers: 1, expiries: 0, ..small(RedoVariant::Seed0211) },
            Some(Signature {
                step: |_, state, action| {
                    // The loss is a crash of a committer that cleared and has not archived.
                    let RedoAction::CrashCommitter(c) = action else { return false };
                    let me = state.committers[*c as usize];
                    matches!(me.step, CStep::Unlock | CStep::WriteArchive) && me.snapshot != 0
                },
                at_end: true,
            })),
        entry("redo/regression-release-before-clear", regression,
            "our first draft: phase 1 trusted the session lock, and a dead committer's lock was freed before its clear was finished (the next acquisition takes over a holder the store proves dead), so a second committer archived the same messages",
            "lockstep's first redo draft (found by the checker)", "no duplicate archive",
            RedoConfig { expiries: 0, faults: 0, ..mutant(RedoMutation::NoExclusion) }, None),
        entry("redo/mutant-no-exclusion", planted,
            "phase 1 trusts the session lock: a holder pauses past its lease after creating its archive, a second committer takes the lock and archives the same messages",
            "mutant of specs/redo.md (exclusion of archived messages)", "no duplicate archive",
            RedoConfig { crashes: 0, restarts: 0, faults: 0, ..mutant(RedoMutation::NoExclusion) }, None),
        entry("redo/mutant-index-from-memory", planted, "the archive written by overwrite at the index listed before (no create-if-absent): a committer whose lease expired overwrites a newer archive", "mutant of specs/redo.md (archive claim)", "no message lost", mutant(RedoMutation::IndexFromMemory), None),
        entry("redo/mutant-clear-all", planted, "clearing deletes every stored message, not only the archived ones", "mutant of specs/redo.md (clear)", "no message lost", mutant(RedoMutation::ClearAll), None),
        entry("redo/mutant-archive-exists-is-theirs", planted, "an archive create lands while its committer sees an error; its retry finds it there, takes it for someone else's, and excludes its own messages: nobody finishes that archive", "mutant of specs/redo.md (ambiguous archive create)", "no memory lost", mutant(RedoMutation::ArchiveExistsIsTheirs), None),
        entry("redo/mutant-no-manifest", planted, "no manifest: a replay after a crash writes a second extraction's memories beside the first's", "mutant of specs/redo.md (manifest)", "memories from one extraction", mutant(RedoMutation::NoManifest), None),
        entry("redo/mutant-keyed-memories", planted, "memories keyed by (archive, n) with no manifest: a crash partway, and a replay with a different extraction fills the gap: a mix", "mutant of specs/redo.md (manifest)", "memories from one extraction", mutant(RedoMutation::KeyedMemories), None),
        entry("redo/mutant-manifest-first", planted, "the manifest created before its memories: readers see a manifest naming memories that do not exist", "mutant of specs/redo.md (manifest last)", "memories whole", mutant(RedoMutation::ManifestFirst), None),
        entry("redo/mutant-skip-manifest-check", planted, "phase 2 does not read the manifest first: a replay of a finished extraction extracts and writes again", "mutant of specs/redo.md (recovery)", "recovery idempotent", mutant(RedoMutation::SkipManifestCheck), None),
        entry("redo/mutant-effect-not-keyed", planted, "the semantic effect applied without its key: a re-delivery applies it twice", "mutant of specs/redo.md (keyed effects)", "effect applied once", RedoConfig { faults: 0, ..mutant(RedoMutation::EffectNotKeyed) }, None),
        entry("redo/mutant-effect-not-keyed-zombie-worker", planted,
            "the semantic effect applied without its key, and no crash at all: a worker's lease is lost after it applied an item's effect, a second worker claims the row over it (the store proves the first dead) and applies the effect again",
            "mutant of specs/redo.md (keyed effects; etcd owner leases, #15247)", "effect applied once",
            RedoConfig { committers: 1, messages: 1, crashes: 0, restarts: 0, expiries: 0, faults: 0, workers: 2, worker_lease_losses: 1, ..mutant(RedoMutation::EffectNotKeyed) },
            Some(Signature {
                step: |_, state, action| {
                    // The second application is by a live worker that claimed over a zombie's
                    // claim (not the zombie applying after it).
                    let RedoAction::Worker(w) = action else { return false };
                    let live = state.worker_lease_lost & (1 << *w) == 0;
                    matches!(state.workers[*w as usize], super::WStep::Apply(i)
                        if state.effects[i as usize] > 0 && live && state.worker_lease_lost != 0)
                },
                at_end: true,
            })),
        entry("redo/mutant-ack-before-apply", planted, "the worker acks before applying: a crash between loses the item", "mutant of specs/redo.md (ack after apply)", "delivered at least once", mutant(RedoMutation::AckBeforeApply), None),
        entry("redo/mutant-keep-marker", planted, "recovery never creates done for a replayed commit", "mutant of specs/redo.md (recovery)", "every redo record finished", mutant(RedoMutation::KeepMarker), None),
        entry("redo/mutant-wait-for-dead-holder", planted, "the session lock of a crashed holder is waited for until its lease expires (a lock file with no liveness)", "mutant of specs/redo.md (the session lock is a path lock with kernel-proven liveness)", "no wait for a dead holder", RedoConfig { expiries: 0, faults: 0, ..mutant(RedoMutation::WaitForDeadHolder) }, None),
        entry("redo/mutant-item-keyed-by-index", planted, "two sessions share the queue, and a queue row and its effect are keyed by the archive index alone: the second session's archive 0 finds the first's row or effect under its key, and its own semantic work is never applied", "mutant of specs/redo.md (items keyed by session and archive)", "delivered at least once", RedoConfig { sessions: 2, crashes: 0, restarts: 0, expiries: 0, faults: 0, session_lock: false, ..mutant(RedoMutation::ItemKeyedByIndex) }, None),
        entry("redo/mutant-no-replay", planted, "recovery drops redo records without replaying them", "mutant of specs/redo.md (recovery)", "a crashed commit is replayed", mutant(RedoMutation::NoReplay), None),
    ]
}
