//! A fenced resource built on the same primitive: an append-only log per path whose appends
//! carry a fencing token and are rejected when the token is older than one already accepted on
//! an overlapping path (specs/lock.md §6).
//!
//! A write under a lock touches the lock's scope: its path, and for a SUBTREE lock everything
//! below it. The model's resource accepts a write only if its token is at least every token
//! accepted on any path of that scope, and it decides that atomically. Here each check and write
//! is one create-if-absent of a log's next entry, and a write appends, root first, a record to
//! the log of every ancestor of its path and then its own:
//!
//! - at an ancestor, a `touch` record, accepted if the token is at least the largest SUBTREE
//!   write there (only a SUBTREE write at an ancestor covers this path);
//! - at its own path, the write itself: a POINT write is accepted if its token is at least every
//!   write at the path; a SUBTREE write, if it is at least every record there, the touches of the
//!   writes below it included (its scope covers them).
//!
//! Every record carries the running maxima of its log (like the lock journals' high-water
//! marks), so each check reads one record. Two overlapping writes share the log of the
//! shallower one's path, so whichever appends there second sees the other's token: a zombie
//! holder whose lock was taken over cannot land a write after the new holder's, and writes under
//! non-conflicting locks (POINT `/a` and POINT `/c`) never compare their tokens.
//!
//! ```no_run
//! # async fn demo(guard: &lockstep::lock::Guard, store: lockstep::store::FsStore) -> Result<(), lockstep::lock::LockError> {
//! use lockstep::lock::{FencedLog, LockPath};
//! let log = FencedLog::new(store);
//! let resource = LockPath::new("/resources/a")?;
//! let (path, kind, token) = guard.tokens()[0].clone();
//! guard.check()?;                       // our lease is live ...
//! match log.append_as(&path, kind, token, "new content").await? {
//!     Ok(index) => println!("written at {index}"),
//!     Err(fenced) => println!("rejected: {fenced}"), // ... but a newer holder got there first
//! }
//! # let _ = resource;
//! # Ok(()) }
//! ```

use serde::{Deserialize, Serialize};

use super::entry::{LockKind, FORMAT_VERSION};
use super::journal::indices;
use super::path::{LockPath, INDEX_DIGITS};
use super::LockError;
use crate::store::{Created, Key, Store};

/// A write rejected because a newer token was already accepted on an overlapping path.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("write to {resource} with token {token} rejected: token {accepted} was already accepted at {at}")]
pub struct Fenced {
    pub resource: String,
    pub token: u64,
    pub accepted: u64,
    /// The path whose log holds the newer token.
    pub at: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Record {
    v: u32,
    token: u64,
    kind: LockKind,
    /// A record that a write below this path passed through (no payload of its own).
    touch: bool,
    payload: String,
    /// The log's maxima up to and including this record.
    marks: FenceMarks,
}

/// The largest tokens a log holds: of a SUBTREE write at its path, of any write at its path, and
/// of any record (the touches of writes below included).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
struct FenceMarks {
    subtree: u64,
    own: u64,
    any: u64,
}

/// Append-only logs, one per path, that accept only tokens that are not stale for the path.
pub struct FencedLog<S: Store> {
    store: S,
}

/// The newest token in a log with `marks` that a record of ours must not be older than: at an
/// ancestor (`touch`) only SUBTREE writes cover us; at our own path, a POINT write is covered by
/// every write there, a SUBTREE write also by the touches of the writes below.
fn covering(marks: FenceMarks, touch: bool, kind: LockKind) -> u64 {
    match (touch, kind) {
        (true, _) => marks.subtree,
        (false, LockKind::Point) => marks.own,
        (false, LockKind::Subtree) => marks.any,
    }
}

impl<S: Store> FencedLog<S> {
    pub fn new(store: S) -> FencedLog<S> {
        FencedLog { store }
    }

    fn prefix(resource: &LockPath) -> String {
        // The same escaping as lock journals, under `fence/`.
        let journal = resource.journal_prefix();
        format!(
            "fence/{}",
            journal.strip_prefix("locks/").expect("lock journal prefix")
        )
    }

    fn key(resource: &LockPath, index: u64) -> Key {
        Key::new(format!(
            "{}{index:0width$}",
            Self::prefix(resource),
            width = INDEX_DIGITS
        ))
        .expect("valid key")
    }

    /// A write under a POINT lock on `resource`.
    pub async fn append(
        &self,
        resource: &LockPath,
        token: u64,
        payload: &str,
    ) -> Result<Result<u64, Fenced>, LockError> {
        self.append_as(resource, LockKind::Point, token, payload)
            .await
    }

    /// A write under a lock of `kind` on `resource` (a SUBTREE write covers everything below):
    /// `Ok(Ok(index))` if accepted, `Ok(Err(Fenced))` if a newer token was accepted on an
    /// overlapping path first. A rejected write may have left `touch` records on ancestors; they
    /// carry no payload and fence nothing that its lock did not already cover.
    pub async fn append_as(
        &self,
        resource: &LockPath,
        kind: LockKind,
        token: u64,
        payload: &str,
    ) -> Result<Result<u64, Fenced>, LockError> {
        // Root first: two overlapping writes meet at the shallower one's path in the same order.
        let mut chain = resource.ancestors();
        chain.reverse();
        for ancestor in &chain {
            if let Err(fenced) = self
                .append_one(ancestor, resource, kind, token, true, "")
                .await?
            {
                return Ok(Err(fenced));
            }
        }
        self.append_one(resource, resource, kind, token, false, payload)
            .await
    }

    /// One checked append to `log` for a write at `resource`.
    async fn append_one(
        &self,
        log: &LockPath,
        resource: &LockPath,
        kind: LockKind,
        token: u64,
        touch: bool,
        payload: &str,
    ) -> Result<Result<u64, Fenced>, LockError> {
        let ignore = crate::mutants::active(crate::mutants::Mutant::FenceIgnoresTokens);
        for _ in 0..1_000 {
            let last = self.last(log).await?;
            let (next, marks) = last
                .as_ref()
                .map_or((0, FenceMarks::default()), |(i, r)| (i + 1, r.marks));
            let newest = covering(marks, touch, kind);
            if token < newest && !ignore {
                return Ok(Err(Fenced {
                    resource: resource.to_string(),
                    token,
                    accepted: newest,
                    at: log.to_string(),
                }));
            }
            let raised = FenceMarks {
                subtree: if !touch && kind == LockKind::Subtree {
                    marks.subtree.max(token)
                } else {
                    marks.subtree
                },
                own: if touch {
                    marks.own
                } else {
                    marks.own.max(token)
                },
                any: marks.any.max(token),
            };
            let record = Record {
                v: FORMAT_VERSION,
                token,
                kind,
                touch,
                payload: payload.to_owned(),
                marks: raised,
            };
            let bytes = serde_json::to_vec(&record).expect("records serialise");
            if let Created::Created(_) = self.store.create(&Self::key(log, next), &bytes).await? {
                return Ok(Ok(next));
            }
        }
        Err(LockError::Contended {
            what: format!("the fenced log of {log}"),
            attempts: 1_000,
        })
    }

    /// Whether a write under a lock of `kind` on `resource` with `token` would be accepted now
    /// (read-only).
    pub async fn would_accept(
        &self,
        resource: &LockPath,
        kind: LockKind,
        token: u64,
    ) -> Result<bool, LockError> {
        if crate::mutants::active(crate::mutants::Mutant::FenceIgnoresTokens) {
            return Ok(true);
        }
        for ancestor in resource.ancestors() {
            if self
                .last(&ancestor)
                .await?
                .is_some_and(|(_, r)| token < covering(r.marks, true, kind))
            {
                return Ok(false);
            }
        }
        Ok(!self
            .last(resource)
            .await?
            .is_some_and(|(_, r)| token < covering(r.marks, false, kind)))
    }

    async fn last(&self, log: &LockPath) -> Result<Option<(u64, Record)>, LockError> {
        let Some(&index) = indices(&self.store, &Self::prefix(log)).await?.last() else {
            return Ok(None);
        };
        Ok(Some((index, self.read(log, index).await?)))
    }

    async fn read(&self, log: &LockPath, index: u64) -> Result<Record, LockError> {
        let key = Self::key(log, index);
        let Some((bytes, _)) = self.store.get(&key).await? else {
            return Err(LockError::Unsettled { path: log.clone() });
        };
        let record: Record = serde_json::from_slice(&bytes).map_err(|e| LockError::Corrupt {
            key: key.to_string(),
            reason: e.to_string(),
        })?;
        if record.v != FORMAT_VERSION {
            return Err(LockError::Corrupt {
                key: key.to_string(),
                reason: format!("format version {}", record.v),
            });
        }
        Ok(record)
    }

    /// Every accepted write at `resource` (touches left out): (index, token, payload), in order.
    pub async fn records(&self, resource: &LockPath) -> Result<Vec<(u64, u64, String)>, LockError> {
        let mut out = Vec::new();
        for index in indices(&self.store, &Self::prefix(resource)).await? {
            let record = self.read(resource, index).await?;
            if !record.touch {
                out.push((index, record.token, record.payload));
            }
        }
        Ok(out)
    }
}
