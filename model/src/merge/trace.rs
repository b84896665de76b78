//! Merge-lock steps as people read them, and the closing line of each counterexample.

use super::{LockEntry, MStep, MergeAction, MergeModel, MergeState, MergeVariant};
use crate::trace::StepKind;

pub fn describe(
    model: &MergeModel,
    last: &MergeState,
    action: MergeAction,
    next: &MergeState,
) -> (String, String) {
    let seed = model.prototype();
    let vacate = model.variant() == MergeVariant::SeedVacate;
    match action {
        MergeAction::Sibling => {
            let k = model.config.sibling_merges - last.sibling_left;
            let from = last.sibling_tail;
            let what = if from == 0 { ", which deletes X" } else { "" };
            let text = if last.parent == next.parent {
                format!("child B writes commit {k} and merges its commits {from}..{}{what}: X was changed since B's BASE {}: conflict, aborted, nothing written", k + 1, last.sibling_base)
            } else {
                let at = (0..next.parent.len())
                    .find(|i| last.parent[*i].is_none() && next.parent[*i].is_some())
                    .unwrap_or(0);
                format!("child B writes commit {k} and merges its commits {from}..{}{what}: appended to the parent at {at}", k + 1)
            };
            ("B".into(), text)
        }
        MergeAction::Write => (
            "writer".into(),
            format!("append child commit {} (live ingest)", last.child_len),
        ),
        MergeAction::Crash(m) => (format!("m{m}"), "CRASHES".into()),
        MergeAction::Ambiguous(m) => {
            let (who, text) = describe(model, last, MergeAction::Step(m), next);
            (
                who,
                format!("{text}, but the response is lost: m{m} sees an error"),
            )
        }
        MergeAction::Recover => (
            "recovery".into(),
            format!(
                "release the crashed holder's lock: create lock#{} = unlock",
                last.lock_len
            ),
        ),
        MergeAction::ForceRelease => (
            "operator".into(),
            format!(
                "force release: create lock#{} = unlock (the holder is not told)",
                last.lock_len
            ),
        ),
        MergeAction::Step(m) => {
            let me = last.mergers[m as usize];
            let after = next.mergers[m as usize];
            let text = match me.step {
                MStep::ReadLock if vacate => format!(
                    "put TAIL.lock if not exists → {}",
                    if after.step == MStep::Done {
                        "exists: the command fails"
                    } else {
                        "ok: holds the lock"
                    }
                ),
                MStep::DeleteLock => "delete TAIL.lock".into(),
                MStep::ReadBackLock => format!(
                    "read back lock#{} → {}",
                    me.seen,
                    if after.step == MStep::ReadTail {
                        "our lock: holds the merge lock".to_string()
                    } else {
                        format!("taken as not ours ({})", entry_text(last.lock_newest))
                    }
                ),
                MStep::ReadLock if seed => format!(
                    "read HEAD → {} (it shows {}; the journal has {} entries)",
                    last.head,
                    entry_text(last.head_entry),
                    last.lock_len
                ),
                MStep::ReadLock => format!(
                    "probe lock journal → {} entries, newest {}",
                    last.lock_len,
                    entry_text(last.lock_newest)
                ),
                MStep::CreateLock => {
                    let ok = after.step != MStep::ReadLock && after.step != MStep::Done;
                    let verb = if model.variant() == MergeVariant::SeedBlindPut {
                        "put"
                    } else {
                        "create"
                    };
                    format!(
                        "{verb} lock#{} = lock → {}",
                        me.seen,
                        if after.step == MStep::ReadBackLock {
                            "ok (it landed)"
                        } else if ok {
                            "ok: holds the merge lock"
                        } else {
                            "already exists"
                        }
                    )
                }
                MStep::WriteHead | MStep::WriteHeadAfterUnlock => {
                    format!("write HEAD = {}", next.head)
                }
                MStep::ReadTail => format!(
                    "read TAIL/BASE → tail {} (version {})",
                    last.tail, last.tail_version
                ),
                MStep::ReadChild => format!("read child HEAD → cut at {}", last.child_len),
                MStep::AppendParent if last.parent == next.parent => format!(
                    "scan the parent: a merge commit from {} is there already; append nothing",
                    me.tail
                ),
                MStep::AppendParent
                    if seed || model.variant().has(super::MergeMutation::AppendWithoutScan) =>
                {
                    format!(
                        "append merge commit (child {}..{}) to the parent",
                        me.tail, me.cut
                    )
                }
                MStep::AppendParent if after.aborted && !me.aborted => format!(
                    "scan the parent: commits {}..{} delete X, which the parent changed since BASE {}: conflict, abort (nothing written)",
                    me.tail, me.cut, me.base
                ),
                MStep::AppendParent => format!(
                    "scan the parent: no merge commit from {}; append one (child {}..{}{}) at its end",
                    me.tail,
                    me.tail,
                    me.cut,
                    if model.deletes_x(me.tail, me.cut) { ", deletes X" } else { "" }
                ),
                MStep::ReadParent => format!(
                    "read parent: the first commit from {} ends at {}",
                    me.tail, after.target
                ),
                MStep::MoveTail => {
                    if seed {
                        format!(
                            "put TAIL/BASE: tail {} → {} (the child's end now)",
                            last.tail, next.tail
                        )
                    } else if next.tail_version != last.tail_version {
                        format!(
                            "move TAIL/BASE version {} → {}: tail {} → {}",
                            last.tail_version, next.tail_version, last.tail, next.tail
                        )
                    } else {
                        "move TAIL/BASE → version changed, not moved".into()
                    }
                }
                MStep::CreateUnlock => {
                    let ok = next.lock_len > last.lock_len;
                    format!(
                        "create lock#{} = unlock → {}",
                        if seed { last.head } else { me.lock_index + 1 },
                        if ok { "ok" } else { "already exists" }
                    )
                }
                MStep::Done | MStep::Crashed => "nothing".into(),
            };
            (format!("m{m}"), text)
        }
    }
}

/// What kind of event a step is, for drawings.
pub fn step_kind(
    _model: &MergeModel,
    last: &MergeState,
    action: MergeAction,
    _next: &MergeState,
) -> StepKind {
    match action {
        MergeAction::Crash(_) => StepKind::Crash,
        MergeAction::Ambiguous(_) => StepKind::Ambiguous,
        MergeAction::Step(m) => match last.mergers[m as usize].step {
            MStep::Done | MStep::Crashed => StepKind::Local,
            _ => StepKind::Storage,
        },
        MergeAction::Sibling
        | MergeAction::Write
        | MergeAction::Recover
        | MergeAction::ForceRelease => StepKind::Storage,
    }
}

fn entry_text(entry: LockEntry) -> String {
    match entry {
        LockEntry::None => "nothing".into(),
        LockEntry::Lock { holder } => format!("lock by m{holder}"),
        LockEntry::Unlock => "unlock".into(),
    }
}

/// A state as labelled rows, for the Explorer's state view: the child's journal, the lock
/// journal, TAIL and BASE, the parent's merge commits, each merger and the second child.
pub fn state_rows(model: &MergeModel, state: &MergeState) -> Vec<(String, String)> {
    let mut rows = vec![
        (
            "child A".to_owned(),
            format!(
                "{} commit(s); {} more to write",
                state.child_len, state.writes_left
            ),
        ),
        (
            "lock journal".to_owned(),
            format!(
                "{} entr{}; newest {}",
                state.lock_len,
                if state.lock_len == 1 { "y" } else { "ies" },
                entry_text(state.lock_newest)
            ),
        ),
        (
            "TAIL/BASE".to_owned(),
            format!(
                "TAIL {} (version {}), BASE {}",
                state.tail, state.tail_version, state.base
            ),
        ),
    ];
    if model.variant().is_seed() {
        rows.push((
            "HEAD".to_owned(),
            format!(
                "{} (points at {})",
                state.head,
                entry_text(state.head_entry)
            ),
        ));
    }
    let commits: Vec<String> = state
        .parent
        .iter()
        .flatten()
        .map(|c| {
            let who = if c.sibling {
                "B".to_owned()
            } else {
                format!("m{}", c.by)
            };
            let x = if c.deletes_x { ", deletes X" } else { "" };
            format!("{}..{} by {who}{x}", c.from, c.to)
        })
        .collect();
    rows.push((
        "parent".to_owned(),
        if commits.is_empty() {
            "no merge commit".to_owned()
        } else {
            commits.join("; ")
        },
    ));
    for m in 0..model.config.mergers as usize {
        let me = &state.mergers[m];
        let mut parts = vec![format!("next: {:?}", me.step)];
        if me.lock_index > 0 || me.step != MStep::ReadLock {
            parts.push(format!("read TAIL {}, cut {}", me.tail, me.cut));
        }
        for (flag, text) in [
            (me.revoked, "force-released (a zombie)"),
            (me.merged, "moved TAIL"),
            (me.aborted, "aborted on a conflict"),
        ] {
            if flag {
                parts.push(text.to_owned());
            }
        }
        rows.push((format!("m{m}"), parts.join("; ")));
    }
    if model.config.sibling_merges > 0 {
        rows.push((
            "child B".to_owned(),
            format!(
                "TAIL {}, BASE {}, {} merge(s) left",
                state.sibling_tail, state.sibling_base, state.sibling_left
            ),
        ));
    }
    rows
}

/// The stable, readable form of an action.
pub fn action_name(action: MergeAction) -> String {
    match action {
        MergeAction::Step(m) => format!("step m{m}"),
        MergeAction::Write => "write".into(),
        MergeAction::Crash(m) => format!("crash m{m}"),
        MergeAction::Ambiguous(m) => format!("ambiguous m{m}"),
        MergeAction::Recover => "recover".into(),
        MergeAction::ForceRelease => "force-release".into(),
        MergeAction::Sibling => "sibling".into(),
    }
}

/// The closing line of a counterexample of `property`.
pub fn conclusion(
    model: &MergeModel,
    property: &str,
    path: &[(MergeState, Option<MergeAction>)],
) -> Option<String> {
    let (state, _) = path.last()?;
    let text = match property {
        "one merger" => "two live, unrevoked mergers hold the child's merge lock".to_string(),
        "exactly once" => {
            let coverage = model.coverage(state);
            let twice: Vec<String> = (0..state.child_len)
                .filter(|i| coverage[*i as usize] > 1)
                .map(|i| format!("child commit {i}"))
                .collect();
            format!("{} counted twice in the parent", twice.join(", "))
        }
        "consistent pointers" if state.tail_regressed => "TAIL moved backwards".to_string(),
        "consistent pointers" => {
            let coverage = model.coverage(state);
            let lost: Vec<String> = (0..state.tail)
                .filter(|i| coverage[*i as usize] == 0)
                .map(|i| format!("child commit {i}"))
                .collect();
            format!(
                "{} behind TAIL but not in the parent: lost",
                lost.join(", ")
            )
        }
        "crash recovery" if model.variant() == MergeVariant::SeedVacate => {
            "TAIL.lock stays forever: its holder crashed, nothing records who it was, and no recovery deletes it".to_string()
        }
        "crash recovery" => "the crashed holder's lock is not freed by recovery".to_string(),
        "no orphan lock" => "the newest `lock` belongs to a merger that went on without it: nobody will free it".to_string(),
        "zombie cannot complete" => {
            "a force-released merger completed over a newer holder".to_string()
        }
        "conflicts abort" => {
            "X is deleted by two merge commits: the second merge should have aborted".to_string()
        }
        _ => return None,
    };
    Some(text)
}
