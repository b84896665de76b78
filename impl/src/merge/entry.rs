//! The JSON entries of a lake's journals (specs/merge.md §2). Every entry carries the format
//! version `"v":1`; an entry that does not decode, or has another version, is an error naming
//! its key, never a free lock or an empty journal.

use serde::{Deserialize, Serialize};

use super::MergeError;

/// The entry format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// `branches/<name>/meta`: written once, by `create_branch`, with create-if-absent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BranchMeta {
    pub v: u32,
    /// The branch this one merges into (`None` for a root branch such as `main`).
    pub parent: Option<String>,
    pub created_at_ms: u64,
}

/// One data object a commit adds: its name and bytes. Objects are immutable; a name is added
/// once and may later be deleted (the data model of a Zed/SuperDB lake's data objects).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Object {
    pub name: String,
    /// The bytes as text when they are UTF-8, else `data_hex`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_hex: Option<String>,
}

impl Object {
    pub fn new(name: impl Into<String>, bytes: &[u8]) -> Object {
        let name = name.into();
        match std::str::from_utf8(bytes) {
            Ok(text) => Object {
                name,
                data: Some(text.to_owned()),
                data_hex: None,
            },
            Err(_) => Object {
                name,
                data: None,
                data_hex: Some(bytes.iter().map(|b| format!("{b:02x}")).collect()),
            },
        }
    }

    pub fn bytes(&self) -> Vec<u8> {
        if let Some(text) = &self.data {
            return text.as_bytes().to_vec();
        }
        let hex = self.data_hex.as_deref().unwrap_or("");
        (0..hex.len() / 2)
            .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
            .collect()
    }
}

/// An entry of a branch's commit journal `branches/<name>/commits/~<k>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum CommitEntry {
    /// A writer's commit: objects added and deleted. `id` is drawn by the writer, so that after
    /// a create whose answer was lost it can tell its own entry from another writer's.
    Commit {
        v: u32,
        id: String,
        #[serde(default)]
        add: Vec<Object>,
        #[serde(default)]
        delete: Vec<String>,
        written_at_ms: u64,
    },
    /// A merge of `child`'s commits `from..to` (to exclusive), by the holder of the child's merge
    /// lock with index `lock`. Readers count only the first merge commit per `(child, from)`.
    Merge {
        v: u32,
        child: String,
        from: u64,
        to: u64,
        lock: u64,
        written_at_ms: u64,
    },
}

/// `branches/<child>/tailbase/~<v>`: the child's commits below `tail` are in the parent, merged
/// by the parent's entry `base - 1` (`base`: the parent position the child is synced to). The
/// newest version is current; it moves only by creating the next version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TailBase {
    pub v: u32,
    pub tail: u64,
    pub base: u64,
    /// The merge lock index of the mover (`None` for the version written at branch creation).
    pub lock: Option<u64>,
}

/// Who freed a merge lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnlockedBy {
    Holder,
    /// `recover`: the holder's death was proven by the store.
    Recovery,
    /// `force-release`: an operator; the holder, if alive, is a zombie from now on.
    Operator,
}

/// What a merge lock's holder set out to do (shown by `merge-locks`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    /// The TAIL the holder read before locking (a hint: it re-reads TAIL under the lock).
    pub from: u64,
}

/// An entry of a child's merge-lock journal `branches/<child>/mergelock/~<n>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum LockEntry {
    Lock {
        v: u32,
        holder: String,
        intent: Intent,
        written_at_ms: u64,
    },
    Unlock {
        v: u32,
        /// The index of the `lock` this frees (always the index right before this entry).
        of: u64,
        by: UnlockedBy,
        written_at_ms: u64,
    },
}

impl LockEntry {
    pub fn holder(&self) -> Option<&str> {
        match self {
            LockEntry::Lock { holder, .. } => Some(holder),
            LockEntry::Unlock { .. } => None,
        }
    }
}

pub use crate::json::{encode, wall_ms};

/// Decodes the entry at `key`, refusing a malformed entry or another format version.
pub fn decode<T: for<'de> Deserialize<'de>>(key: &str, bytes: &[u8]) -> Result<T, MergeError> {
    crate::json::decode(bytes, FORMAT_VERSION).map_err(|reason| MergeError::Corrupt {
        key: key.to_owned(),
        reason,
    })
}
