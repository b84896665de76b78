//! The JSON entries of lock journals and of the ticket journal (specs/lock.md §3). Entries are
//! checked on encode and again on decode; anything unexpected is an error naming the key.

use serde::{Deserialize, Serialize};

/// The entry format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// POINT (one directory) or SUBTREE (a directory and everything below).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LockKind {
    Point,
    Subtree,
}

impl LockKind {
    pub fn letter(self) -> char {
        match self {
            LockKind::Point => 'P',
            LockKind::Subtree => 'S',
        }
    }
}

/// Who wrote a `release`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReleasedBy {
    Holder,
    Cleaner,
    Operator,
    Recovery,
    /// An acquirer released an expired entry on another path before passing it (§5).
    Acquirer,
}

/// One entry of a path's lock journal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Entry {
    Acquire {
        owner: String,
        kind: LockKind,
        ticket: u64,
        lease_ms: u64,
        /// Wall clock of the writer, for people only (ages in `lockstep locks`).
        written_at_ms: u64,
    },
    Renew {
        owner: String,
        kind: LockKind,
        ticket: u64,
        lease_ms: u64,
        /// When the lock was first acquired (wall clock, for people).
        held_since_ms: u64,
        written_at_ms: u64,
    },
    Release {
        kind: LockKind,
        ticket: u64,
        by: ReleasedBy,
        written_at_ms: u64,
    },
    Withdraw {
        ticket: u64,
        written_at_ms: u64,
    },
}

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    v: u32,
    #[serde(flatten)]
    entry: T,
}

/// An entry that could not be read; the message names what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed entry {key}: {reason}")]
pub struct Malformed {
    pub key: String,
    pub reason: String,
}

impl Entry {
    /// The lock's holder and ticket while the lock is held (`acquire`/`renew`).
    pub fn holder(&self) -> Option<(&str, u64, LockKind, u64)> {
        match self {
            Entry::Acquire { owner, ticket, kind, lease_ms, .. } | Entry::Renew { owner, ticket, kind, lease_ms, .. } => {
                Some((owner, *ticket, *kind, *lease_ms))
            }
            _ => None,
        }
    }

    pub fn ticket(&self) -> u64 {
        match self {
            Entry::Acquire { ticket, .. } | Entry::Renew { ticket, .. } | Entry::Release { ticket, .. } | Entry::Withdraw { ticket, .. } => {
                *ticket
            }
        }
    }

    pub fn written_at_ms(&self) -> u64 {
        match self {
            Entry::Acquire { written_at_ms, .. }
            | Entry::Renew { written_at_ms, .. }
            | Entry::Release { written_at_ms, .. }
            | Entry::Withdraw { written_at_ms, .. } => *written_at_ms,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        debug_assert!(self.ticket() > 0, "tickets start at 1");
        if let Some((owner, _, _, lease_ms)) = self.holder() {
            assert!(!owner.is_empty(), "an entry that holds a lock names its owner");
            assert!(lease_ms > 0, "a held lock has a lease");
        }
        serde_json::to_vec(&Envelope { v: FORMAT_VERSION, entry: self }).expect("entries serialise")
    }

    pub fn decode(key: &str, bytes: &[u8]) -> Result<Entry, Malformed> {
        let malformed = |reason: String| Malformed { key: key.to_owned(), reason };
        if bytes.is_empty() {
            return Err(malformed("zero bytes (a torn write?)".into()));
        }
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| malformed(format!("not JSON: {e}")))?;
        match value.get("v").and_then(|v| v.as_u64()) {
            Some(v) if v == u64::from(FORMAT_VERSION) => {}
            Some(v) => return Err(malformed(format!("format version {v}; this build reads version {FORMAT_VERSION}"))),
            None => return Err(malformed("no format version field \"v\"".into())),
        }
        let envelope: Envelope<Entry> = serde_json::from_value(value).map_err(|e| malformed(format!("unexpected content: {e}")))?;
        let entry = envelope.entry;
        if entry.ticket() == 0 {
            return Err(malformed("ticket 0 (tickets start at 1)".into()));
        }
        if let Some((owner, _, _, lease_ms)) = entry.holder() {
            if owner.is_empty() || lease_ms == 0 {
                return Err(malformed("a held lock without owner or lease".into()));
            }
        }
        Ok(entry)
    }
}

/// The content of a ticket entry `tickets/<n>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketEntry {
    pub owner: String,
}

impl TicketEntry {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(&Envelope { v: FORMAT_VERSION, entry: self }).expect("tickets serialise")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_with_their_version() {
        let entry = Entry::Acquire { owner: "h:1:2:3#1".into(), kind: LockKind::Subtree, ticket: 7, lease_ms: 1000, written_at_ms: 5 };
        let bytes = entry.encode();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.contains("\"v\":1") && text.contains("\"op\":\"acquire\""), "{text}");
        assert_eq!(Entry::decode("k", &bytes).unwrap(), entry);
    }

    #[test]
    fn malformed_entries_name_the_key_and_the_problem() {
        let cases: [(&[u8], &str); 6] = [
            (b"", "zero bytes"),
            (b"{not json", "not JSON"),
            (br#"{"op":"withdraw","ticket":1,"written_at_ms":0}"#, "no format version"),
            (br#"{"v":9,"op":"withdraw","ticket":1,"written_at_ms":0}"#, "format version 9"),
            (br#"{"v":1,"op":"steal","ticket":1}"#, "unexpected content"),
            (br#"{"v":1,"op":"withdraw","ticket":0,"written_at_ms":0}"#, "ticket 0"),
        ];
        for (bytes, expected) in cases {
            let error = Entry::decode("locks/a/~00000000000000000001", bytes).unwrap_err();
            let message = error.to_string();
            assert!(message.contains("locks/a/~00000000000000000001") && message.contains(expected), "{message}");
        }
    }
}
