//! Redo-log steps as people read them, and the closing line of each counterexample.

use super::{
    CStep, Marker, RStep, RedoAction, RedoModel, RedoState, RedoVariant, WStep, ARCHIVES_MAX,
};

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

pub fn describe(
    model: &RedoModel,
    last: &RedoState,
    action: RedoAction,
    next: &RedoState,
) -> (String, String) {
    let seed = model.variant() == RedoVariant::Seed;
    match action {
        RedoAction::AddMessage => ("user".into(), format!("add message m{}", last.added)),
        RedoAction::CrashCommitter(c) => (format!("c{c}"), "CRASHES".into()),
        RedoAction::CrashRecovery => ("recovery".into(), "CRASHES".into()),
        RedoAction::CrashWorker => (
            "worker".into(),
            "CRASHES (its row stays `processing`)".into(),
        ),
        RedoAction::Restart => (
            "restart".into(),
            "queue RecoverStale: processing rows back to pending; recovery starts".into(),
        ),
        RedoAction::Worker => {
            let text = match last.worker {
                WStep::Idle => "dequeue a semantic item".into(),
                WStep::Apply(i) => format!("apply the semantic effect of archive {i}"),
                WStep::Ack(i) => format!("ack item of archive {i}"),
            };
            ("worker".into(), text)
        }
        RedoAction::Recovery => {
            let text = match last.recovery {
                RStep::Replay { index, .. } if last.markers[index as usize] == Marker::Torn => {
                    format!("read marker of archive {index} → unreadable ({{}}): delete it without replay")
                }
                RStep::Replay { index, stage: 0 } if !seed => {
                    format!("replay archive {index}: clear its messages from the live list")
                }
                RStep::Replay { index, stage: 0 } => format!("replay archive {index}: read marker"),
                RStep::Replay { index, stage: 1 } => {
                    format!("replay archive {index}: extract and write memories")
                }
                RStep::Replay { index, stage: 2 } => {
                    format!("replay archive {index}: enqueue semantic work")
                }
                RStep::Replay { index, .. } => format!(
                    "replay archive {index}: {}",
                    if seed {
                        "delete the marker"
                    } else {
                        "create done"
                    }
                ),
                RStep::Idle => "nothing".into(),
            };
            ("recovery".into(), text)
        }
        RedoAction::Commit(c) => {
            let me = last.committers[c as usize];
            let text = match me.step {
                CStep::Load => format!(
                    "load session: {} archives, next index {}",
                    RedoModel::archive_count(last),
                    next.committers[c as usize].index
                ),
                CStep::ReadMessages => format!("read messages → {}", ids(last.live)),
                CStep::WriteArchive if seed => format!(
                    "write archive {} = {} (overwrite)",
                    me.index,
                    ids(me.snapshot)
                ),
                CStep::WriteArchive => {
                    let ok = next.archives[me.index as usize] != last.archives[me.index as usize];
                    format!(
                        "create archive {} = {} (the redo record) → {}",
                        me.index,
                        ids(me.snapshot),
                        if ok { "ok" } else { "already exists" }
                    )
                }
                CStep::ClearMessages if seed => {
                    "write messages.jsonl = [] (drops everything live)".into()
                }
                CStep::ClearMessages => format!(
                    "remove archived messages {} from the live list",
                    ids(me.snapshot)
                ),
                CStep::WriteMarker => format!("write redo marker for archive {}", me.index),
                CStep::WriteMemories => {
                    format!("extract and write memories of archive {}", me.index)
                }
                CStep::Enqueue => format!("enqueue semantic work for archive {}", me.index),
                CStep::FinishMarker if seed => {
                    format!("delete the redo marker of archive {}", me.index)
                }
                CStep::FinishMarker => format!("create done for archive {}", me.index),
                CStep::Lock => "take the session lock (POINT on the session directory) → ok".into(),
                CStep::Unlock => "release the session lock".into(),
                CStep::Done | CStep::Crashed => "nothing".into(),
            };
            (format!("c{c}"), text)
        }
    }
}

/// The stable, readable form of an action.
pub fn action_name(action: RedoAction) -> String {
    match action {
        RedoAction::AddMessage => "add-message".into(),
        RedoAction::Commit(c) => format!("step c{c}"),
        RedoAction::CrashCommitter(c) => format!("crash c{c}"),
        RedoAction::Restart => "restart".into(),
        RedoAction::Recovery => "recovery".into(),
        RedoAction::CrashRecovery => "crash recovery".into(),
        RedoAction::Worker => "worker".into(),
        RedoAction::CrashWorker => "crash worker".into(),
    }
}

/// The closing line of a counterexample of `property`.
pub fn conclusion(
    _model: &RedoModel,
    property: &str,
    path: &[(RedoState, Option<RedoAction>)],
) -> Option<String> {
    let (state, _) = path.last()?;
    let archives = |pick: &dyn Fn(usize) -> bool| -> String {
        (0..ARCHIVES_MAX)
            .filter(|i| pick(*i))
            .map(|i| format!("archive {i}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let text = match property {
        "no message lost" => {
            let lost: Vec<String> = (0..state.added)
                .filter(|m| {
                    state.live & (1 << m) == 0
                        && !state.archives.iter().flatten().any(|a| a & (1 << m) != 0)
                })
                .map(|m| format!("m{m}"))
                .collect();
            format!(
                "message {} is neither live nor in any archive: lost",
                lost.join(", ")
            )
        }
        "no duplicate archive" => {
            "a message is archived twice, or stays live after its archive settled".into()
        }
        "no memory lost" => format!(
            "{} has no memories and nothing will replay it",
            archives(&|i| state.archives[i].is_some() && state.memories[i] == 0)
        ),
        "no duplicate memories" => format!(
            "{} has its memories twice",
            archives(&|i| state.memories[i] > 1)
        ),
        "effect applied once" => format!(
            "the semantic effect of {} was applied twice",
            archives(&|i| state.applied[i] > 1)
        ),
        "delivered at least once" => {
            "a commit's semantic work was never applied, and nothing is left to deliver it".into()
        }
        "recovery idempotent" => {
            "a replay wrote memories a second time for a commit that had them".into()
        }
        "every marker deleted" => format!(
            "the redo record of {} stays pending for good",
            archives(&|i| matches!(state.markers[i], Marker::Pending { .. } | Marker::Torn))
        ),
        _ => return None,
    };
    let _ = (CStep::Done, RStep::Idle, WStep::Idle, RedoVariant::Seed);
    Some(text)
}
