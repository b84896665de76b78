//! What readers of a branch see. A merge commit is keyed by `(child, from)`, and readers count
//! only the **first** merge commit per key: a second one (a retry after a crash, a zombie's late
//! append) is ignored. That rule is what makes every child commit count exactly once in the
//! parent (specs/merge.md §3); [`applied`] is its reference implementation.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;

use super::entry::CommitEntry;
use super::journal::BranchName;
use super::MergeError;
use crate::store::Store;

/// Merges nested deeper than this are refused as corrupt (a merge entry naming its own
/// ancestor would otherwise recurse forever).
const NESTING_MAX: usize = 64;

/// One entry of a branch's journal as readers see it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LogEntry {
    pub index: u64,
    pub entry: CommitEntry,
    /// Whether readers apply it: every plain commit, and the first merge commit per
    /// `(child, from)`.
    pub counted: bool,
}

/// A branch's journal with each entry's `counted` flag.
pub async fn log(store: &dyn Store, branch: &BranchName) -> Result<Vec<LogEntry>, MergeError> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (index, entry) in branch.commits().read_from::<CommitEntry>(store, 0).await? {
        let counted = match &entry {
            CommitEntry::Commit { .. } => true,
            CommitEntry::Merge {
                child, from, to, ..
            } => {
                let child_name = BranchName::new(child).map_err(|_| MergeError::Corrupt {
                    key: branch.commits().key(index).to_string(),
                    reason: format!("names {child:?}, which is not a branch name"),
                })?;
                if from >= to {
                    return Err(MergeError::Corrupt {
                        key: branch.commits().key(index).to_string(),
                        reason: format!("merges an empty range {from}..{to}"),
                    });
                }
                seen.insert((child_name, *from))
            }
        };
        out.push(LogEntry {
            index,
            entry,
            counted,
        });
    }
    Ok(out)
}

/// A plain commit as a reader of some branch applies it: where it was written, and what it does.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    /// The branch the commit was written to, and its index there.
    pub branch: BranchName,
    pub index: u64,
    pub add: Vec<String>,
    pub delete: Vec<String>,
}

/// Every plain commit a reader of `branch` applies, in order, with merges expanded (a merge of
/// a child that itself merged a grandchild expands to the grandchild's commits).
pub async fn applied(store: &dyn Store, branch: &BranchName) -> Result<Vec<Change>, MergeError> {
    expand(store, branch.clone(), 0, u64::MAX, None, 0).await
}

/// The plain commits applied by `branch`'s entries `from..to`, merges of `skip` left out. Reads
/// only those entries (a merge costs what it merges, not the journal's length), and the whole
/// journal only when the range holds merge entries, whose `counted` depends on earlier ones.
pub(crate) fn expand<'a>(
    store: &'a dyn Store,
    branch: BranchName,
    from: u64,
    to: u64,
    skip: Option<&'a BranchName>,
    depth: usize,
) -> Pin<Box<dyn Future<Output = Result<Vec<Change>, MergeError>> + Send + 'a>> {
    Box::pin(async move {
        if depth > NESTING_MAX {
            return Err(MergeError::Corrupt {
                key: branch.commits().key(from).to_string(),
                reason: format!("merges nest deeper than {NESTING_MAX}: a cycle of merge entries"),
            });
        }
        let range = branch
            .commits()
            .read_range::<CommitEntry>(store, from, to)
            .await?;
        let entries = if range
            .iter()
            .any(|(_, e)| matches!(e, CommitEntry::Merge { .. }))
        {
            log(store, &branch)
                .await?
                .into_iter()
                .filter(|e| e.index >= from && e.index < to)
                .collect()
        } else {
            range
                .into_iter()
                .map(|(index, entry)| LogEntry {
                    index,
                    entry,
                    counted: true,
                })
                .collect::<Vec<_>>()
        };
        let mut out = Vec::new();
        for entry in entries {
            if !entry.counted {
                continue;
            }
            out.extend(changes_of(store, &branch, entry, skip, depth).await?);
        }
        Ok(out)
    })
}

/// The plain commits one counted entry applies.
pub(crate) async fn changes_of(
    store: &dyn Store,
    branch: &BranchName,
    entry: LogEntry,
    skip: Option<&BranchName>,
    depth: usize,
) -> Result<Vec<Change>, MergeError> {
    match entry.entry {
        CommitEntry::Commit { add, delete, .. } => Ok(vec![Change {
            branch: branch.clone(),
            index: entry.index,
            add: add.into_iter().map(|o| o.name).collect(),
            delete,
        }]),
        CommitEntry::Merge {
            child, from, to, ..
        } => {
            let child = BranchName::new(&child)?;
            if skip == Some(&child) {
                return Ok(Vec::new());
            }
            expand(store, child, from, to, None, depth + 1).await
        }
    }
}
