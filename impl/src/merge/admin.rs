//! The operator's side of the merge lock: the meta-query (`merge-locks`), force release, and
//! recovery of locks whose holder the store proves dead. All three read the newest entry of a
//! child's merge-lock journal, and free a lock only by creating `unlock` right after it.

use super::entry::{decode, encode, wall_ms, BranchMeta, LockEntry, TailBase, UnlockedBy};
use super::journal::{branch_names, BranchName};
use super::{MergeError, FORMAT_VERSION};
use crate::lock::owner::process_part;
use crate::mutants::{active, Mutant};
use crate::store::{Created, Liveness, Store, StoreError};

/// A branch's merge lock, as the meta-query reports it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MergeLockState {
    /// Never locked, or the newest entry is an `unlock`.
    Free,
    /// Held by a holder that is alive or not proven dead.
    Held,
    /// Held by a holder the store proves dead: `recover` frees it.
    Stuck,
    /// The branch's metadata, TAIL/BASE or newest merge-lock entry cannot be read (`reason`):
    /// nothing about it is guessed, and the other branches are reported as usual.
    Corrupt,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MergeLockInfo {
    pub branch: BranchName,
    pub state: MergeLockState,
    /// The newest entry's index (the lock's index while held: its holder's fencing token).
    pub index: Option<u64>,
    pub holder: Option<String>,
    pub holder_liveness: Option<Liveness>,
    /// The TAIL the holder read before locking.
    pub intent_from: Option<u64>,
    /// Milliseconds since the newest entry was written, by the writer's wall clock (for people).
    pub age_ms: Option<u64>,
    /// The child's TAIL and BASE now.
    pub tail: Option<u64>,
    pub base: Option<u64>,
    /// Why the branch is `corrupt`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Every child branch's merge lock (root branches have none). A branch whose entries cannot be
/// read is reported `corrupt` with the reason, and the others as usual; only an error of the
/// store as a whole fails the query.
pub async fn merge_locks(store: &dyn Store) -> Result<Vec<MergeLockInfo>, MergeError> {
    let mut out = Vec::new();
    for branch in branch_names(store).await? {
        match lock_info(store, &branch).await {
            Ok(Some(info)) => out.push(info),
            Ok(None) => {} // a root branch
            Err(
                error @ (MergeError::Corrupt { .. }
                | MergeError::Store(StoreError::Foreign { .. })
                | MergeError::Store(StoreError::Io { .. })),
            ) => out.push(MergeLockInfo {
                branch,
                state: MergeLockState::Corrupt,
                index: None,
                holder: None,
                holder_liveness: None,
                intent_from: None,
                age_ms: None,
                tail: None,
                base: None,
                reason: Some(error.to_string()),
            }),
            Err(error) => return Err(error),
        }
    }
    Ok(out)
}

/// One branch's merge lock; `None` for a root branch.
async fn lock_info(
    store: &dyn Store,
    branch: &BranchName,
) -> Result<Option<MergeLockInfo>, MergeError> {
    let key = branch.meta_key();
    let Some((bytes, _)) = store.get(&key).await? else {
        return Ok(None); // deleted between the listing and now: nothing to report
    };
    let meta: BranchMeta = decode(key.as_str(), &bytes)?;
    if meta.parent.is_none() {
        return Ok(None);
    }
    let Some((_, tailbase)) = branch.tailbase().newest::<TailBase>(store).await? else {
        return Err(MergeError::Corrupt {
            key: branch.tailbase().key(0).to_string(),
            reason: "a child branch without a TAIL/BASE object".into(),
        });
    };
    let mut info = MergeLockInfo {
        branch: branch.clone(),
        state: MergeLockState::Free,
        index: None,
        holder: None,
        holder_liveness: None,
        intent_from: None,
        age_ms: None,
        tail: Some(tailbase.tail),
        base: Some(tailbase.base),
        reason: None,
    };
    if let Some((index, entry)) = branch.mergelock().newest::<LockEntry>(store).await? {
        info.index = Some(index);
        let written = match &entry {
            LockEntry::Lock { written_at_ms, .. } | LockEntry::Unlock { written_at_ms, .. } => {
                *written_at_ms
            }
        };
        info.age_ms = Some(wall_ms().saturating_sub(written));
        if let LockEntry::Lock { holder, intent, .. } = entry {
            let liveness = store.owner_liveness(process_part(&holder)).await?;
            info.state = if liveness == Liveness::Dead {
                MergeLockState::Stuck
            } else {
                MergeLockState::Held
            };
            info.holder = Some(holder);
            info.holder_liveness = Some(liveness);
            info.intent_from = Some(intent.from);
        }
    }
    Ok(Some(info))
}

/// A lock freed by `force_release` or `recover`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Released {
    pub branch: BranchName,
    /// The freed lock's index.
    pub index: u64,
    pub holder: String,
    pub by: UnlockedBy,
}

/// Frees `branch`'s merge lock whatever its holder is doing (only if the lock's index is
/// `token`, when given). A live holder becomes a zombie: its TAIL/BASE move of an old version
/// fails, a late merge commit of its TAIL is ignored by readers, and its `unlock` finds its index
/// taken. `Ok(None)` if the lock is free.
pub async fn force_release(
    store: &dyn Store,
    branch: &BranchName,
    token: Option<u64>,
) -> Result<Option<Released>, MergeError> {
    let key = branch.meta_key();
    let Some((bytes, _)) = store.get(&key).await? else {
        return Err(MergeError::NoSuchBranch(branch.to_string()));
    };
    let meta: BranchMeta = decode(key.as_str(), &bytes)?;
    if meta.parent.is_none() {
        return Err(MergeError::NotAChild(branch.to_string()));
    }
    release(store, branch, token, UnlockedBy::Operator).await
}

/// Frees every merge lock whose holder the store proves dead. The crashed merge itself is
/// rolled forward by the next merge (its merge commit, if it landed, is the first for its TAIL).
/// A lock listed as stuck that is freed before recovery releases it is left alone, also when a
/// new lock was taken since: recovery races with live mergers and is not an error then.
pub async fn recover(store: &dyn Store) -> Result<Vec<Released>, MergeError> {
    let mut released = Vec::new();
    for info in merge_locks(store).await? {
        if info.state != MergeLockState::Stuck {
            continue;
        }
        if let Some(freed) = release(store, &info.branch, info.index, UnlockedBy::Recovery).await? {
            released.push(freed);
        }
    }
    Ok(released)
}

async fn release(
    store: &dyn Store,
    branch: &BranchName,
    token: Option<u64>,
    by: UnlockedBy,
) -> Result<Option<Released>, MergeError> {
    let journal = branch.mergelock();
    let Some((index, LockEntry::Lock { holder, .. })) = journal.newest::<LockEntry>(store).await?
    else {
        return Ok(None);
    };
    if token.is_some_and(|t| t != index) {
        // Recovery listed lock `t` as stuck, but the journal moved on before this read: lock
        // `t` was freed (its holder's unlock, or another recovery) and the newest lock is a new
        // one, whose holder recovery has not judged. Lock `t` is no longer held: nothing to do.
        // An operator's token names the lock they meant to free; another lock is an error.
        if by == UnlockedBy::Recovery && !active(Mutant::MergeRecoverRaceIsError) {
            return Ok(None);
        }
        return Err(MergeError::TokenMismatch {
            branch: branch.clone(),
            expected: token.unwrap_or(0),
            actual: index,
        });
    }
    if by == UnlockedBy::Recovery
        && store.owner_liveness(process_part(&holder)).await? != Liveness::Dead
    {
        return Ok(None);
    }
    let entry = LockEntry::Unlock {
        v: FORMAT_VERSION,
        of: index,
        by,
        written_at_ms: wall_ms(),
    };
    match store
        .create(&journal.key(index + 1), &encode(&entry))
        .await?
    {
        Created::Created(_) => Ok(Some(Released {
            branch: branch.clone(),
            index,
            holder,
            by,
        })),
        // Its holder unlocked it, or someone else released it, in the meantime.
        Created::AlreadyExists => Ok(None),
    }
}
