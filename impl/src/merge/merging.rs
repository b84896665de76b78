//! The merge (specs/merge.md §3), one storage operation at a time:
//!
//! 1. **lock**: the newest entry of the child's merge-lock journal decides; `lock` is created at
//!    the index after it. Its index `t` fences this merger from now on.
//! 2. **what to merge**: the newest TAIL/BASE version `v` (TAIL `T`, BASE `B`), and the child's
//!    end `C` (the cut). Commits written after the cut wait for the next merge.
//! 3. **the merge commit**: if the parent has a merge commit keyed `(child, T)` already (a
//!    crashed or force-released merger's), it is the merge: roll it forward. Otherwise check for
//!    conflicts against the parent's entries from `B` to its end `k`, and create the merge commit
//!    at exactly `k`; if another append took `k`, check again from the new end. The parent
//!    journal orders merges of different children, so only the child is locked.
//! 4. **TAIL/BASE**: create version `v+1` with TAIL at the end of that first merge commit (not at
//!    our own cut) and BASE just after it. If `v+1` exists, someone moved it already.
//! 5. **unlock**: create `unlock` at `t+1`, right after our own `lock`. If `t+1` is taken by
//!    anything but our own earlier attempt, we were force-released: we did not complete.
//!
//! A create whose answer is lost (an error; it may have landed) is handled per step: a `lock` is
//! read back; the parent append is retried through step 3's scan, which finds it if it landed;
//! the TAIL/BASE move and `unlock` are retried at the same key.

use std::time::{Duration, Instant};

use super::entry::{encode, wall_ms, CommitEntry, Intent, LockEntry, TailBase, UnlockedBy};
use super::journal::BranchName;
use super::read::{changes_of, expand, LogEntry};
use super::{Lake, MergeError, MergeOptions, FORMAT_VERSION};
use crate::lock::owner::process_part;
use crate::mutants::{active, Mutant};
use crate::store::{Created, Store};

/// How a merge ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MergeOutcome {
    /// This merger appended the merge commit.
    Merged,
    /// A merge commit for this TAIL was in the parent already (a crashed or force-released
    /// merger's): this merger moved TAIL/BASE past it.
    RolledForward,
    /// TAIL was at the child's end.
    NothingToMerge,
}

/// What a completed merge did.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Merged {
    pub child: BranchName,
    pub parent: BranchName,
    pub outcome: MergeOutcome,
    /// The merge lock's index (this merger's fencing token).
    pub lock: u64,
    /// The child commits merged, `from..to`.
    pub from: u64,
    pub to: u64,
    /// The parent entry of the merge commit (`None` when there was nothing to merge).
    pub parent_index: Option<u64>,
    /// Whether this merger's TAIL/BASE create landed (false: a fenced zombie moved it first, to
    /// the same place).
    pub moved_tail: bool,
    /// The lock was released by someone else (force release) after this merge's TAIL/BASE move
    /// landed: the merge is complete, and its `unlock` was not needed.
    pub released_by_other: bool,
    pub waited_ms: u64,
}

pub async fn merge(
    lake: &Lake,
    child: &BranchName,
    options: &MergeOptions,
) -> Result<Merged, MergeError> {
    let parent = lake
        .meta(child)
        .await?
        .ok_or_else(|| MergeError::NotAChild(child.to_string()))?;
    // The parent a child names must exist: a merge never writes to a branch nobody created.
    lake.meta(&parent).await.map_err(|error| match error {
        MergeError::NoSuchBranch(name) => MergeError::Corrupt {
            key: child.meta_key().to_string(),
            reason: format!("names parent {name}, which does not exist"),
        },
        other => other,
    })?;
    let started = Instant::now();
    let owner = lake.owner();
    let t = lock(lake, child, &owner, options, started).await?;
    let waited_ms = started.elapsed().as_millis() as u64;
    let result = merge_locked(lake, child, &parent, t, options).await;
    let unlocked = unlock(lake, child, t, options).await;
    match (result, unlocked) {
        (Ok(mut merged), Ok(())) => {
            merged.waited_ms = waited_ms;
            Ok(merged)
        }
        // A conflict aborted before any write: report it whatever the unlock found.
        (Err(error @ MergeError::Conflict { .. }), _) => Err(error),
        // Our TAIL/BASE move landed before the lock was released under us: the merge is
        // complete (only our `unlock` was not needed any more). Say so; do not call it fenced.
        (Ok(mut merged), Err(MergeError::LockLost { .. })) if merged.moved_tail => {
            merged.waited_ms = waited_ms;
            merged.released_by_other = true;
            Ok(merged)
        }
        (Ok(_), Err(error)) => Err(error),
        (Err(error), _) => Err(error),
    }
}

/// Step 1: returns the index of our `lock`.
async fn lock(
    lake: &Lake,
    child: &BranchName,
    owner: &str,
    options: &MergeOptions,
    started: Instant,
) -> Result<u64, MergeError> {
    let store = lake.store();
    let journal = child.mergelock();
    let mut errors = 0;
    let outcome = async {
        loop {
            let newest = journal
                .newest_from_hint::<LockEntry>(store, lake.ends())
                .await?;
            if let Some((index, LockEntry::Lock { holder, .. })) = &newest {
                if holder == owner && !active(Mutant::MergeOwnLockIsBusy) {
                    // Our own `lock`: a create whose error we saw landed after all (late, as a
                    // timed-out write can). Owner ids are fresh per merge, so it is ours to hold.
                    return Ok(*index);
                }
                let waited = started.elapsed();
                if options.timeout.is_some_and(|limit| waited >= limit) {
                    let liveness = store.owner_liveness(process_part(holder)).await;
                    return Err(MergeError::Busy {
                        branch: child.clone(),
                        holder: holder.clone(),
                        index: *index,
                        waited: (!options.timeout.is_some_and(|l| l.is_zero())).then_some(waited),
                        holder_dead: matches!(liveness, Ok(crate::store::Liveness::Dead)),
                    });
                }
                tokio::time::sleep(options.poll).await;
                continue;
            }
            let next = newest.map_or(0, |(index, _)| index + 1);
            let from = match child
                .tailbase()
                .newest_from_hint::<TailBase>(store, lake.ends())
                .await?
            {
                Some((_, tb)) => tb.tail,
                None => 0,
            };
            let entry = LockEntry::Lock {
                v: FORMAT_VERSION,
                holder: owner.to_owned(),
                intent: Intent { from },
                written_at_ms: wall_ms(),
            };
            match store.create(&journal.key(next), &encode(&entry)).await {
                Ok(Created::Created(_)) => {
                    lake.ends().set(&journal, next + 1);
                    return Ok(next);
                }
                Ok(Created::AlreadyExists) => {
                    // Another merger took it (read again), unless nothing readable is there: a
                    // store that refuses a create it cannot show breaks the contract, and waiting
                    // would spin forever.
                    if journal.get::<LockEntry>(store, next).await?.is_none() {
                        return Err(MergeError::CreateRefused {
                            key: journal.key(next).to_string(),
                        });
                    }
                }
                Err(error) => {
                    errors += 1;
                    if active(Mutant::MergeNoLockReadBack) {
                        // Planted: takes the error as "not landed" and gives up.
                        return Err(error.into());
                    }
                    if errors <= options.io_retries {
                        // It may have landed (or may land late). The loop's first read decides: our
                        // own `lock` newest is ours to hold; anyone else's, we wait behind.
                        continue;
                    }
                    return Err(error.into());
                }
            }
        }
    }
    .await;
    if outcome.is_err() && errors > 0 {
        // Giving up (or failing to read) after a create of ours errored: it may have landed, or
        // may land late. Make sure our death is provable, so that `recover` frees it.
        lake.mark_may_hold();
    }
    outcome
}

/// Steps 2 to 4, under lock `t`.
async fn merge_locked(
    lake: &Lake,
    child: &BranchName,
    parent: &BranchName,
    t: u64,
    options: &MergeOptions,
) -> Result<Merged, MergeError> {
    let store = lake.store();
    let (version, tailbase) = child
        .tailbase()
        .newest_from_hint::<TailBase>(store, lake.ends())
        .await?
        .ok_or_else(|| MergeError::Corrupt {
            key: child.tailbase().key(0).to_string(),
            reason: "the child has no TAIL/BASE object".into(),
        })?;
    // The cut (the child's end, or TAIL + `max_commits` if that comes first), and every commit
    // to merge read on the way: each must be readable, so a malformed or foreign entry is an
    // error naming its key now, not a surprise for every reader of the parent later.
    let (cut, _) = child
        .commits()
        .end_and_read_from::<CommitEntry>(
            store,
            tailbase.tail,
            tailbase.tail.saturating_add(options.max_commits.max(1)),
            lake.ends(),
        )
        .await?;
    if tailbase.tail > cut {
        return Err(MergeError::Corrupt {
            key: child.tailbase().key(version).to_string(),
            reason: format!("TAIL {} is past the child's end {cut}", tailbase.tail),
        });
    }
    let mut merged = Merged {
        child: child.clone(),
        parent: parent.clone(),
        outcome: MergeOutcome::NothingToMerge,
        lock: t,
        from: tailbase.tail,
        to: tailbase.tail,
        parent_index: None,
        moved_tail: false,
        released_by_other: false,
        waited_ms: 0,
    };
    if cut <= tailbase.tail {
        return Ok(merged);
    }
    // Step 3: find the first merge commit for (child, TAIL), or append it.
    let mut errors = 0;
    let (first_index, first_to) = loop {
        // The parent's entries from BASE on: a merge commit of our TAIL can only be there (it
        // was appended after TAIL reached T, which was after the entry BASE follows).
        let (end, entries) = parent
            .commits()
            .end_and_read_from::<CommitEntry>(store, tailbase.base, u64::MAX, lake.ends())
            .await?;
        if end < tailbase.base {
            // An append at BASE would leave a gap below it.
            return Err(MergeError::Corrupt {
                key: child.tailbase().key(version).to_string(),
                reason: format!(
                    "BASE {} is past the end {end} of the parent {parent}'s journal",
                    tailbase.base
                ),
            });
        }
        let first = entries.iter().find_map(|(index, entry)| match entry {
            CommitEntry::Merge {
                child: c,
                from,
                to,
                lock,
                ..
            } if c == child.as_str() && *from == tailbase.tail => Some((*index, *to, *lock)),
            _ => None,
        });
        if let Some((index, to, lock)) = first {
            // Ours if it names our lock (an append whose answer was lost), else a crashed or
            // fenced merger's, rolled forward.
            merged.outcome = if lock == t {
                MergeOutcome::Merged
            } else {
                MergeOutcome::RolledForward
            };
            break (index, to);
        }
        check_conflicts(store, child, parent, &tailbase, cut, &entries).await?;
        let entry = CommitEntry::Merge {
            v: FORMAT_VERSION,
            child: child.as_str().to_owned(),
            from: tailbase.tail,
            to: cut,
            lock: t,
            written_at_ms: wall_ms(),
        };
        match store
            .create(&parent.commits().key(end), &encode(&entry))
            .await
        {
            Ok(Created::Created(_)) => {
                merged.outcome = MergeOutcome::Merged;
                break (end, cut);
            }
            Ok(Created::AlreadyExists) => {
                // Another append took `end`: check again, unless nothing readable is there.
                if parent
                    .commits()
                    .get::<CommitEntry>(store, end)
                    .await?
                    .is_none()
                {
                    return Err(MergeError::CreateRefused {
                        key: parent.commits().key(end).to_string(),
                    });
                }
            }
            Err(error) => {
                // It may have landed: the next scan finds it if it did (it is then the first
                // commit for this TAIL, and counted once).
                errors += 1;
                if errors > options.io_retries {
                    return Err(error.into());
                }
            }
        }
    };
    merged.to = first_to;
    merged.parent_index = Some(first_index);
    // Step 4: TAIL/BASE version v+1, compare-and-swap by create-if-absent.
    let target = if active(Mutant::MergeTailToOwnCut) {
        cut // planted: our own cut, not the end of the first merge commit for this TAIL
    } else {
        first_to
    };
    let next = TailBase {
        v: FORMAT_VERSION,
        tail: target,
        base: first_index + 1,
        lock: Some(t),
    };
    let key = child.tailbase().key(version + 1);
    let mut errors = 0;
    loop {
        match store.create(&key, &encode(&next)).await {
            Ok(Created::Created(_)) => {
                lake.ends().set(&child.tailbase(), version + 2);
                merged.moved_tail = true;
                break;
            }
            Ok(Created::AlreadyExists) => {
                // Moved already: by our own earlier attempt whose answer was lost, or by a
                // fenced zombie of this same TAIL (to the same place).
                let found = child.tailbase().get::<TailBase>(store, version + 1).await?;
                merged.moved_tail = found.is_some_and(|f| f.lock == Some(t));
                break;
            }
            Err(error) => {
                errors += 1;
                if errors > options.io_retries {
                    return Err(error.into());
                }
            }
        }
    }
    Ok(merged)
}

/// Step 3's conflict check: a child commit in `tail..cut` that deletes an object the parent
/// touched (added or deleted) in its entries from BASE to its end (`entries`), other than by this
/// child's merges. The check is against exactly those entries, and the merge commit is then
/// created at exactly the index after them, so nothing can slip in between. (A repeated merge
/// commit among them is counted too: that can only make the check stricter.)
async fn check_conflicts(
    store: &dyn Store,
    child: &BranchName,
    parent: &BranchName,
    tailbase: &TailBase,
    cut: u64,
    entries: &[(u64, CommitEntry)],
) -> Result<(), MergeError> {
    if active(Mutant::MergeSkipConflictCheck) {
        return Ok(());
    }
    // The parent's side first: usually only this child's merges are there since BASE, and then
    // nothing can conflict and the child's commits need not be read at all.
    let mut touched: Vec<(String, u64)> = Vec::new();
    for (index, entry) in entries {
        let entry = LogEntry {
            index: *index,
            entry: entry.clone(),
            counted: true,
        };
        for change in changes_of(store, parent, entry, Some(child), 0).await? {
            for name in change.add.into_iter().chain(change.delete) {
                touched.push((name, *index));
            }
        }
    }
    if touched.is_empty() {
        return Ok(());
    }
    let deletes = expand(store, child.clone(), tailbase.tail, cut, None, 0).await?;
    for change in &deletes {
        for object in &change.delete {
            if let Some((_, parent_index)) = touched.iter().find(|(n, _)| n == object) {
                return Err(MergeError::Conflict {
                    child: change.branch.clone(),
                    child_index: change.index,
                    object: object.clone(),
                    parent_index: *parent_index,
                });
            }
        }
    }
    Ok(())
}

/// Step 5: `unlock` right after our own `lock`.
async fn unlock(
    lake: &Lake,
    child: &BranchName,
    t: u64,
    options: &MergeOptions,
) -> Result<(), MergeError> {
    let store = lake.store();
    let journal = child.mergelock();
    let entry = LockEntry::Unlock {
        v: FORMAT_VERSION,
        of: t,
        by: UnlockedBy::Holder,
        written_at_ms: wall_ms(),
    };
    let index = if active(Mutant::MergeBlindUnlock) {
        journal.end(store).await? // planted: after whatever is newest
    } else {
        t + 1
    };
    let mut errors = 0;
    loop {
        match store.create(&journal.key(index), &encode(&entry)).await {
            Ok(Created::Created(_)) => {
                lake.ends().set(&journal, index + 1);
                return Ok(());
            }
            Ok(Created::AlreadyExists) => {
                return match journal.get::<LockEntry>(store, index).await? {
                    // Our own earlier attempt, whose answer was lost.
                    Some(LockEntry::Unlock {
                        of,
                        by: UnlockedBy::Holder,
                        ..
                    }) if of == t => Ok(()),
                    Some(_) => Err(MergeError::LockLost {
                        branch: child.clone(),
                        index: t,
                    }),
                    None => Err(MergeError::CreateRefused {
                        key: journal.key(index).to_string(),
                    }),
                };
            }
            Err(error) => {
                errors += 1;
                if errors > options.io_retries {
                    lake.mark_may_hold();
                    return Err(error.into());
                }
                tokio::time::sleep(Duration::from_millis(5 * errors as u64)).await;
            }
        }
    }
}
