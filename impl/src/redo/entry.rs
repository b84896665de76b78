//! The JSON entries of the redo log. Every entry carries its format version `v`; an entry of
//! another version, or one that is not what its key says, is refused (nothing is guessed).

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::RedoError;

pub const FORMAT_VERSION: u32 = 1;

/// A message the user added (`sessions/<s>/messages/<id>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageEntry {
    pub v: u32,
    pub text: String,
    pub added_at_ms: u64,
}

/// One archived message: its id (the key it had) and its text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub id: String,
    pub text: String,
}

/// Archive `k` (`sessions/<s>/archives/<k>`), and the redo record of its phase 2: it exists
/// before any of its messages is deleted, and phase 2 is pending until `done/<k>` exists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveEntry {
    pub v: u32,
    pub messages: Vec<Message>,
    /// The committer's owner id (fresh per commit): recovery replays the archive only once the
    /// store proves this owner dead.
    pub owner: String,
    pub written_at_ms: u64,
}

/// Phase 2 of an archive finished (`sessions/<s>/done/<k>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoneEntry {
    pub v: u32,
    /// `commit` or `recovery`.
    pub by: String,
    pub written_at_ms: u64,
}

/// One memory (`memories/<s>/<k>/<x>/<n>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryEntry {
    pub v: u32,
    pub text: String,
}

/// The manifest of archive `k` (`memories/<s>/<k>/manifest`): readers see exactly the memories
/// of this extraction that it names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    pub v: u32,
    pub extraction: String,
    /// How many memories the extraction wrote: `0..count`.
    pub count: usize,
}

/// A queue row: the semantic item of one archive. `nonce` tells one insertion of the row from
/// a later one (after an ack) apart; its claims are below it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowEntry {
    pub v: u32,
    pub nonce: String,
    pub enqueued_at_ms: u64,
}

/// An entry of a row's claim journal: a worker claimed it, or recovery freed the claim of a
/// worker the store proves dead.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ClaimEntry {
    Claim {
        v: u32,
        worker: String,
        written_at_ms: u64,
    },
    Free {
        v: u32,
        of: String,
        written_at_ms: u64,
    },
}

/// The semantic effect of one archive's item (`effects/semantic/<s>/<k>`), created once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EffectEntry {
    pub v: u32,
    pub extraction: String,
    pub memories: Vec<String>,
    pub worker: String,
    pub written_at_ms: u64,
}

pub use crate::json::{encode, fresh_id, wall_ms};

/// Decodes the entry at `key`, refusing a malformed entry or another format version.
pub fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, RedoError> {
    crate::json::decode(bytes, FORMAT_VERSION).map_err(|reason| RedoError::Corrupt {
        key: key.to_owned(),
        reason,
    })
}

/// Reads and decodes `key`: `None` if absent.
pub async fn read<T: DeserializeOwned>(
    store: &dyn crate::store::Store,
    key: &crate::store::Key,
) -> Result<Option<T>, RedoError> {
    match store.get(key).await? {
        None => Ok(None),
        Some((bytes, _)) => decode(key.as_str(), &bytes).map(Some),
    }
}
