//! The JSON entries of lock journals and of the ticket journal (specs/lock.md §3). Entries are
//! checked on encode and again on decode; anything unexpected is an error naming the key.

use serde::{Deserialize, Serialize};

/// The entry format this build writes and reads. Version 1 (before high-water marks) is refused:
/// its entries cannot tell a re-check about earlier grants (specs/lock.md §4).
pub const FORMAT_VERSION: u32 = 2;

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

/// The high-water marks an entry carries: the largest ticket of a SUBTREE lock, and of a lock of
/// any kind, that may have been granted on the path before this entry (specs/lock.md §4, rule
/// c). Each entry inherits them from the entry before it, so a re-check that reads only the
/// newest entry still sees every earlier grant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Marks {
    pub subtree: u64,
    pub any: u64,
}

impl Marks {
    /// These marks raised by a lock of `kind` with `ticket` that may have been granted.
    pub fn with(self, kind: LockKind, ticket: u64) -> Marks {
        Marks {
            subtree: if kind == LockKind::Subtree {
                self.subtree.max(ticket)
            } else {
                self.subtree
            },
            any: self.any.max(ticket),
        }
    }

    /// The mark a check compares with: any kind (descendants) or SUBTREE only (ancestors).
    pub fn of(self, any_kind: bool) -> u64 {
        if any_kind {
            self.any
        } else {
            self.subtree
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
        /// The marks after the entry this one follows.
        marks: Marks,
    },
    Renew {
        owner: String,
        kind: LockKind,
        ticket: u64,
        lease_ms: u64,
        /// When the lock was first acquired (wall clock, for people).
        held_since_ms: u64,
        written_at_ms: u64,
        marks: Marks,
    },
    Release {
        kind: LockKind,
        ticket: u64,
        by: ReleasedBy,
        written_at_ms: u64,
        marks: Marks,
    },
    /// An acquisition that was never used: it backed off before its grant, or its operation
    /// failed before the caller had the lock. It carries the marks its `acquire` carried, so its
    /// ticket raises no mark.
    Withdraw {
        ticket: u64,
        written_at_ms: u64,
        marks: Marks,
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
    /// What a create of this entry must survive (specs/lock.md §12). A machine crash kills every
    /// owner on the machine (FsStore serves one host), so losing an entry that only its own,
    /// now dead, writer relied on is harmless: a lost `acquire` or `renew` frees the lock (its
    /// ticket stays durable in the ticket journal, so later tokens stay larger), a lost
    /// `release` or `withdraw` leaves the dead owner's lock to recovery or expiry. Its bytes must
    /// still be whole if the name survives, or the journal would read as corrupt and fail closed.
    /// What others write on a holder's behalf (recovery, the cleaner, an operator, a reaper)
    /// stays durable: it was reported done to someone who lives on.
    pub fn persist(&self) -> crate::store::Persist {
        if crate::mutants::active(crate::mutants::Mutant::EntryBytesNotSynced) {
            // Planted bug: the entry's bytes are never synced before its name is.
            return crate::store::Persist::NameOnly;
        }
        match self {
            Entry::Acquire { .. }
            | Entry::Renew { .. }
            | Entry::Withdraw { .. }
            | Entry::Release {
                by: ReleasedBy::Holder,
                ..
            } => crate::store::Persist::MayVanish,
            Entry::Release { .. } => crate::store::Persist::Durable,
        }
    }

    /// The lock's holder and ticket while the lock is held (`acquire`/`renew`).
    pub fn holder(&self) -> Option<(&str, u64, LockKind, u64)> {
        match self {
            Entry::Acquire {
                owner,
                ticket,
                kind,
                lease_ms,
                ..
            }
            | Entry::Renew {
                owner,
                ticket,
                kind,
                lease_ms,
                ..
            } => Some((owner, *ticket, *kind, *lease_ms)),
            _ => None,
        }
    }

    pub fn ticket(&self) -> u64 {
        match self {
            Entry::Acquire { ticket, .. }
            | Entry::Renew { ticket, .. }
            | Entry::Release { ticket, .. }
            | Entry::Withdraw { ticket, .. } => *ticket,
        }
    }

    /// The marks this entry carries (inherited from the entry before it).
    pub fn marks(&self) -> Marks {
        match self {
            Entry::Acquire { marks, .. }
            | Entry::Renew { marks, .. }
            | Entry::Release { marks, .. }
            | Entry::Withdraw { marks, .. } => *marks,
        }
    }

    /// The marks an entry appended after this one inherits: this entry's, raised by its own
    /// ticket if it is a lock that may have been granted (`acquire`, `renew`, `release`). A
    /// `renew` carries the marks of its `acquire` (it is the same grant).
    pub fn marks_after(&self) -> Marks {
        match self {
            Entry::Acquire {
                kind,
                ticket,
                marks,
                ..
            }
            | Entry::Renew {
                kind,
                ticket,
                marks,
                ..
            }
            | Entry::Release {
                kind,
                ticket,
                marks,
                ..
            } => marks.with(*kind, *ticket),
            Entry::Withdraw { marks, .. } => *marks,
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
            assert!(
                !owner.is_empty(),
                "an entry that holds a lock names its owner"
            );
            assert!(lease_ms > 0, "a held lock has a lease");
        }
        serde_json::to_vec(&Envelope {
            v: FORMAT_VERSION,
            entry: self,
        })
        .expect("entries serialise")
    }

    pub fn decode(key: &str, bytes: &[u8]) -> Result<Entry, Malformed> {
        let malformed = |reason: String| Malformed {
            key: key.to_owned(),
            reason,
        };
        if bytes.is_empty() {
            return Err(malformed("zero bytes (a torn write?)".into()));
        }
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| malformed(format!("not JSON: {e}")))?;
        match value.get("v").and_then(|v| v.as_u64()) {
            Some(v) if v == u64::from(FORMAT_VERSION) => {}
            Some(1) => {
                return Err(malformed(format!(
                    "format version 1, written by a lockstep before high-water marks; this build reads version {FORMAT_VERSION} only (let its locks expire and remove the old journals)"
                )))
            }
            Some(v) => return Err(malformed(format!("format version {v}; this build reads version {FORMAT_VERSION}"))),
            None => return Err(malformed("no format version field \"v\"".into())),
        }
        let envelope: Envelope<Entry> = serde_json::from_value(value)
            .map_err(|e| malformed(format!("unexpected content: {e}")))?;
        let entry = envelope.entry;
        if entry.ticket() == 0 {
            return Err(malformed("ticket 0 (tickets start at 1)".into()));
        }
        let marks = entry.marks();
        if marks.subtree > marks.any {
            return Err(malformed(format!(
                "marks subtree {} above any {} (every SUBTREE grant is a grant)",
                marks.subtree, marks.any
            )));
        }
        if let Some((owner, _, _, lease_ms)) = entry.holder() {
            if owner.is_empty() || lease_ms == 0 {
                return Err(malformed("a held lock without owner or lease".into()));
            }
        }
        Ok(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_with_their_version() {
        let marks = Marks { subtree: 3, any: 5 };
        let entry = Entry::Acquire {
            owner: "h:1:2:3#1".into(),
            kind: LockKind::Subtree,
            ticket: 7,
            lease_ms: 1000,
            written_at_ms: 5,
            marks,
        };
        let bytes = entry.encode();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.contains("\"v\":2") && text.contains("\"op\":\"acquire\""),
            "{text}"
        );
        assert!(
            text.contains("\"marks\":{\"subtree\":3,\"any\":5}"),
            "{text}"
        );
        assert_eq!(Entry::decode("k", &bytes).unwrap(), entry);
    }

    #[test]
    fn malformed_entries_name_the_key_and_the_problem() {
        let cases: [(&[u8], &str); 8] = [
            (b"", "zero bytes"),
            (b"{not json", "not JSON"),
            (br#"{"op":"withdraw","ticket":1,"written_at_ms":0}"#, "no format version"),
            (br#"{"v":9,"op":"withdraw","ticket":1,"written_at_ms":0}"#, "format version 9"),
            (br#"{"v":1,"op":"withdraw","ticket":1,"written_at_ms":0}"#, "before high-water marks"),
            (br#"{"v":2,"op":"steal","ticket":1}"#, "unexpected content"),
            (br#"{"v":2,"op":"withdraw","ticket":1,"written_at_ms":0}"#, "unexpected content"),
            (br#"{"v":2,"op":"withdraw","ticket":0,"written_at_ms":0,"marks":{"subtree":0,"any":0}}"#, "ticket 0"),
        ];
        for (bytes, expected) in cases {
            let error = Entry::decode("locks/a/~00000000000000000001", bytes).unwrap_err();
            let message = error.to_string();
            assert!(
                message.contains("locks/a/~00000000000000000001") && message.contains(expected),
                "{message}"
            );
        }
    }
}
