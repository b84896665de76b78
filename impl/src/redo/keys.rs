//! Session names and the keys of the redo log (specs/redo.md §3). Every key of a session is
//! below `sessions/<s>/` or `memories/<s>/`; session names never contain `/`, so no session's
//! keys are below another's.

use super::RedoError;
use crate::store::{Key, Store, StoreError};

/// Longest session name, in bytes.
pub const SESSION_NAME_MAX: usize = 128;
/// Digits of an archive index in its key: keys sort in index order.
pub const INDEX_DIGITS: usize = 20;

/// A validated session name: 1 to 128 bytes of `[A-Za-z0-9._-]`, not `.` or `..`, not starting
/// with `-`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct SessionName(String);

impl SessionName {
    pub fn new(name: &str) -> Result<SessionName, RedoError> {
        let invalid = |reason: &str| RedoError::InvalidSession {
            name: name.chars().take(140).collect(),
            reason: reason.to_owned(),
        };
        if name.is_empty() || name.len() > SESSION_NAME_MAX {
            return Err(invalid("must be 1 to 128 bytes"));
        }
        if name == "." || name == ".." {
            return Err(invalid("'.' and '..' are not session names"));
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
        Ok(SessionName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path the session lock (a POINT path lock) is taken on.
    pub fn lock_path(&self) -> String {
        format!("/sessions/{}", self.0)
    }

    pub fn messages_prefix(&self) -> String {
        format!("sessions/{}/messages/", self.0)
    }

    pub fn message(&self, id: &str) -> Key {
        key(format!("{}{id}", self.messages_prefix()))
    }

    pub fn archives_prefix(&self) -> String {
        format!("sessions/{}/archives/", self.0)
    }

    pub fn archive(&self, k: u64) -> Key {
        key(format!("{}{k:0INDEX_DIGITS$}", self.archives_prefix()))
    }

    pub fn done_prefix(&self) -> String {
        format!("sessions/{}/done/", self.0)
    }

    /// `done` of archive `k`: its phase 2 finished. (Not below the archive's own key: on a file
    /// system an entry cannot also be a directory.)
    pub fn done(&self, k: u64) -> Key {
        key(format!("{}{k:0INDEX_DIGITS$}", self.done_prefix()))
    }

    pub fn memories_prefix(&self, k: u64) -> String {
        format!("memories/{}/{k:0INDEX_DIGITS$}/", self.0)
    }

    /// Memory `n` of extraction `x` of archive `k`.
    pub fn memory(&self, k: u64, x: &str, n: usize) -> Key {
        key(format!("{}{x}/{n}", self.memories_prefix(k)))
    }

    /// The manifest of archive `k`: which extraction's memories readers see.
    pub fn manifest(&self, k: u64) -> Key {
        key(format!("{}manifest", self.memories_prefix(k)))
    }

    /// The queue row of archive `k`'s semantic item (one per archive: insert-if-absent).
    pub fn row(&self, k: u64) -> Key {
        key(format!("{ROWS}{}/{k:0INDEX_DIGITS$}", self.0))
    }

    /// The claim journal of the row of archive `k` inserted with `nonce`.
    pub fn claims_prefix(&self, k: u64, nonce: &str) -> String {
        format!("{CLAIMS}{}/{k:0INDEX_DIGITS$}/{nonce}/", self.0)
    }

    pub fn claim(&self, k: u64, nonce: &str, n: u64) -> Key {
        key(format!(
            "{}{n:0INDEX_DIGITS$}",
            self.claims_prefix(k, nonce)
        ))
    }

    /// The semantic effect of archive `k`'s item at its target, keyed by the item.
    pub fn effect(&self, k: u64) -> Key {
        if crate::mutants::active(crate::mutants::Mutant::RedoEffectKeyedByIndex) {
            return key(format!("{EFFECTS}shared/{k:0INDEX_DIGITS$}"));
        }
        key(format!("{EFFECTS}{}/{k:0INDEX_DIGITS$}", self.0))
    }
}

impl std::fmt::Display for SessionName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub const SESSIONS: &str = "sessions/";
pub const ROWS: &str = "queue/semantic/rows/";
pub const CLAIMS: &str = "queue/semantic/claims/";
pub const EFFECTS: &str = "effects/semantic/";

/// Parses the index at the end of an archive, done or claim key.
pub fn index_of(key: &Key, prefix: &str) -> Option<u64> {
    let rest = key.as_str().strip_prefix(prefix)?;
    if rest.len() != INDEX_DIGITS || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    rest.parse().ok()
}

/// The end of a journal of entries `<prefix><index>` claimed in order with create-if-absent:
/// the first index missing from the listing (indices `0..end` exist).
pub async fn journal_end(store: &dyn Store, prefix: &str) -> Result<u64, StoreError> {
    let listed = store.list(prefix).await?;
    let mut end = 0;
    for index in listed.iter().filter_map(|key| index_of(key, prefix)) {
        if index != end {
            break;
        }
        end += 1;
    }
    Ok(end)
}

/// The session a key under `sessions/`, `queue/…/rows/` or `effects/…` belongs to.
pub fn session_of(key: &Key, prefix: &str) -> Option<SessionName> {
    let rest = key.as_str().strip_prefix(prefix)?;
    SessionName::new(rest.split('/').next()?).ok()
}

fn key(s: String) -> Key {
    // Session names are validated and every other component is ours: always a valid key.
    Key::new(s).expect("redo keys are valid")
}
