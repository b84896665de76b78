//! Branch names, the keys of a lake, and journals: entries `<prefix>~<index>` claimed with
//! create-if-absent. A journal's end is found by listing its prefix, or by reading upward from an
//! index known to be below it until the first absent one; never from a HEAD pointer (a pointer
//! updated after each append lags behind it: seed bug `merge/head-lag-wedges-lock`).
//!
//! Why reading upward gives the same answer as a listing: lake journals are append-only (never
//! rewritten, never garbage-collected) and have no gaps (every append is a create at the end).
//! So when index `m` reads absent, nothing at or above `m` exists at that instant, and every
//! entry below it that was read earlier is still there, unchanged: the entries read are the
//! journal as a listing at that instant would show it. A merger reads upward from TAIL, BASE, or
//! the end it saw last, so its work follows what is new, not the journal's length: a listing
//! costs as much as every entry ever appended, and on a local disk it holds the directory's lock
//! that the writers' appends need (issue 11's writer throughput while merges run).

use std::collections::HashMap;
use std::sync::Mutex;

use serde::de::DeserializeOwned;

use super::entry::decode;
use super::MergeError;
use crate::store::{Key, Store};

/// Digits of a journal index in its key (the path locks' width).
pub const INDEX_DIGITS: usize = 20;
/// Longest branch name, in bytes.
pub const BRANCH_NAME_MAX: usize = 128;

/// A validated branch name: 1 to 128 bytes of `[A-Za-z0-9._-]`, not `.` or `..`, not starting
/// with `-`. Names never contain `/`, so no branch's keys are below another's.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct BranchName(String);

impl BranchName {
    pub fn new(name: &str) -> Result<BranchName, MergeError> {
        let invalid = |reason: &str| MergeError::InvalidBranch {
            name: name.to_owned(),
            reason: reason.to_owned(),
        };
        if name.is_empty() || name.len() > BRANCH_NAME_MAX {
            return Err(invalid("must be 1 to 128 bytes"));
        }
        if name == "." || name == ".." {
            return Err(invalid("'.' and '..' are not branch names"));
        }
        if name.starts_with('-') {
            return Err(invalid(
                "a name may not start with '-' (it would read as an option)",
            ));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(invalid(
                "only letters, digits, '.', '_' and '-' are allowed",
            ));
        }
        Ok(BranchName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn meta_key(&self) -> Key {
        key(format!("branches/{}/meta", self.0))
    }

    pub fn commits(&self) -> Journal {
        Journal(format!("branches/{}/commits/~", self.0))
    }

    pub fn tailbase(&self) -> Journal {
        Journal(format!("branches/{}/tailbase/~", self.0))
    }

    pub fn mergelock(&self) -> Journal {
        Journal(format!("branches/{}/mergelock/~", self.0))
    }
}

impl std::fmt::Display for BranchName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn key(text: String) -> Key {
    Key::new(text).expect("branch names make valid keys")
}

/// One journal: the prefix of its entries' keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Journal(String);

impl Journal {
    pub fn key(&self, index: u64) -> Key {
        key(format!("{}{index:0width$}", self.0, width = INDEX_DIGITS))
    }

    /// The indices present, ascending. A name under the prefix that is not an index is an
    /// error: nothing but lockstep writes there, and guessing past it could skip an entry.
    pub async fn indices(&self, store: &dyn Store) -> Result<Vec<u64>, MergeError> {
        let mut indices = Vec::new();
        for found in store.list(&self.0).await? {
            let digits = &found.as_str()[self.0.len()..];
            let all_digits =
                digits.len() == INDEX_DIGITS && digits.bytes().all(|b| b.is_ascii_digit());
            match digits.parse::<u64>() {
                Ok(index) if all_digits => indices.push(index),
                _ => {
                    return Err(MergeError::Corrupt {
                        key: found.to_string(),
                        reason: "not a journal entry (the name is not a 20-digit index)".into(),
                    })
                }
            }
        }
        indices.sort_unstable();
        Ok(indices)
    }

    /// The index one past the newest entry: where the next append goes.
    pub async fn end(&self, store: &dyn Store) -> Result<u64, MergeError> {
        Ok(self.indices(store).await?.last().map_or(0, |i| i + 1))
    }

    /// The entry at `index`, or `None` if absent.
    pub async fn get<T: DeserializeOwned>(
        &self,
        store: &dyn Store,
        index: u64,
    ) -> Result<Option<T>, MergeError> {
        let key = self.key(index);
        match store.get(&key).await? {
            Some((bytes, _)) => Ok(Some(decode(key.as_str(), &bytes)?)),
            None => Ok(None),
        }
    }

    /// The newest entry and its index, or `None` for an empty journal. Lake journals are never
    /// garbage-collected, so the listed newest entry is there to read.
    pub async fn newest<T: DeserializeOwned>(
        &self,
        store: &dyn Store,
    ) -> Result<Option<(u64, T)>, MergeError> {
        let Some(&index) = self.indices(store).await?.last() else {
            return Ok(None);
        };
        match self.get(store, index).await? {
            Some(entry) => Ok(Some((index, entry))),
            None => Err(MergeError::Corrupt {
                key: self.key(index).to_string(),
                reason: "listed but absent: something deletes lake journal entries".into(),
            }),
        }
    }

    /// The journal's end (or `up_to`, if the end is past it), and every entry from `from` up to
    /// that. The first time this lake reads the journal (no end in `ends`), from one listing,
    /// which also refuses names under the prefix that are not indices; after that, upward from
    /// `from` when entry `from - 1` is there: one `get` per entry and one for the absent end.
    /// (`from` past the end, which callers report as corrupt, is read from a listing, so that the
    /// end returned is the real one.) `up_to` bounds an upward read of a journal that grows
    /// faster than it is read.
    pub(crate) async fn end_and_read_from<T: DeserializeOwned>(
        &self,
        store: &dyn Store,
        from: u64,
        up_to: u64,
        ends: &EndHints,
    ) -> Result<(u64, Vec<(u64, T)>), MergeError> {
        let upward = ends.seen(self).is_some()
            && (from == 0 || store.get(&self.key(from - 1)).await?.is_some());
        let (end, entries) = if upward {
            let mut entries = Vec::new();
            let mut index = from;
            while index < up_to {
                let Some(entry) = self.get(store, index).await? else {
                    break;
                };
                entries.push((index, entry));
                index += 1;
            }
            (index, entries)
        } else {
            let indices = self.indices(store).await?;
            let end = indices.last().map_or(0, |i| i + 1);
            (
                end.min(up_to.max(from)),
                self.read(store, indices, from, up_to).await?,
            )
        };
        ends.set(self, end);
        Ok((end, entries))
    }

    /// The newest entry and its index, like [`Journal::newest`], read upward from the end that
    /// `ends` remembers for this journal (a listing when it remembers none, or when the entry
    /// below it is gone). Remembers the new end.
    pub(crate) async fn newest_from_hint<T: DeserializeOwned>(
        &self,
        store: &dyn Store,
        ends: &EndHints,
    ) -> Result<Option<(u64, T)>, MergeError> {
        let hint = ends.seen(self).unwrap_or(0);
        let newest = match hint.checked_sub(1) {
            None => self.newest(store).await?,
            Some(below) => match store.get(&self.key(below)).await? {
                None => self.newest(store).await?,
                Some((mut bytes, _)) => {
                    // Only the newest is decoded, as `newest` does: an older entry has no say.
                    let mut index = below;
                    while let Some((next, _)) = store.get(&self.key(index + 1)).await? {
                        (index, bytes) = (index + 1, next);
                    }
                    let key = self.key(index);
                    Some((index, decode(key.as_str(), &bytes)?))
                }
            },
        };
        if let Some((index, _)) = &newest {
            ends.set(self, index.saturating_add(1));
        }
        Ok(newest)
    }

    /// Every entry from `from` on, in order.
    pub async fn read_from<T: DeserializeOwned>(
        &self,
        store: &dyn Store,
        from: u64,
    ) -> Result<Vec<(u64, T)>, MergeError> {
        self.read_range(store, from, u64::MAX).await
    }

    /// Every entry with an index in `from..to`, in order (one listing, one read per entry).
    pub async fn read_range<T: DeserializeOwned>(
        &self,
        store: &dyn Store,
        from: u64,
        to: u64,
    ) -> Result<Vec<(u64, T)>, MergeError> {
        let indices = self.indices(store).await?;
        self.read(store, indices, from, to).await
    }

    /// The entries of `indices` (listed) that lie in `from..to`.
    async fn read<T: DeserializeOwned>(
        &self,
        store: &dyn Store,
        indices: Vec<u64>,
        from: u64,
        to: u64,
    ) -> Result<Vec<(u64, T)>, MergeError> {
        let mut entries = Vec::new();
        for index in indices.into_iter().filter(|i| (from..to).contains(i)) {
            match self.get(store, index).await? {
                Some(entry) => entries.push((index, entry)),
                None => {
                    return Err(MergeError::Corrupt {
                        key: self.key(index).to_string(),
                        reason: "listed but absent: something deletes lake journal entries".into(),
                    })
                }
            }
        }
        Ok(entries)
    }
}

/// Where journals ended when this lake (a `Lake` and its clones) last looked: per journal, an
/// index known to be at or below its end (journals only grow). Where an upward read of the
/// merge-lock and TAIL/BASE journals starts; for the commit journals, only whether this lake has
/// listed them once. Never a decision. A wipe of the lake under a live handle is not supported (a
/// `Branch`'s own append hint would then create at an index past the new end, a gap); a hint
/// whose entry below is gone falls back to a listing as a defence. A std
/// mutex, not `crate::sync`'s: held for one map operation, never across an await, and with no
/// part in the protocol, so loom and shuttle need not explore it.
#[derive(Debug, Default)]
pub(crate) struct EndHints(Mutex<HashMap<String, u64>>);

impl EndHints {
    /// The end this lake last saw, if it has read the journal since it was opened.
    fn seen(&self, journal: &Journal) -> Option<u64> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&journal.0)
            .copied()
    }

    /// Any end seen is a valid hint (journals only grow), even one older than the hint it
    /// replaces; and after a lake was wiped, only an end seen since is.
    pub(crate) fn set(&self, journal: &Journal, end: u64) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(journal.0.clone(), end);
    }
}

/// The branches of a lake: every name with a `branches/<name>/meta` key (names lockstep would
/// not write are skipped).
pub async fn branch_names(store: &dyn Store) -> Result<Vec<BranchName>, MergeError> {
    Ok(store
        .list("branches/")
        .await?
        .iter()
        .filter_map(|key| {
            let name = key
                .as_str()
                .strip_prefix("branches/")?
                .strip_suffix("/meta")?;
            BranchName::new(name).ok()
        })
        .collect())
}
