//! A fenced resource built on the same primitive: an append-only log per resource whose appends
//! carry a fencing token and are rejected when the token is older than one already accepted.
//!
//! This is how a storage system uses lockstep's tokens: the check and the write are one
//! create-if-absent of the log's next entry, so a zombie holder whose lock was taken over cannot
//! land a write after the new holder's (specs/lock.md §6).
//!
//! ```no_run
//! # async fn demo(guard: &lockstep::lock::Guard, store: lockstep::store::FsStore) -> Result<(), lockstep::lock::LockError> {
//! use lockstep::lock::{FencedLog, LockPath};
//! let log = FencedLog::new(store);
//! let resource = LockPath::new("/resources/a")?;
//! guard.check()?;                       // our lease is live ...
//! match log.append(&resource, guard.token(), "new content").await? {
//!     Ok(index) => println!("written at {index}"),
//!     Err(fenced) => println!("rejected: {fenced}"), // ... but a newer holder got there first
//! }
//! # Ok(()) }
//! ```

use serde::{Deserialize, Serialize};

use super::entry::FORMAT_VERSION;
use super::journal::indices;
use super::path::{LockPath, INDEX_DIGITS};
use super::LockError;
use crate::store::{Created, Key, Store};

/// A write rejected because a newer token was already accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("write to {resource} with token {token} rejected: token {accepted} was already accepted")]
pub struct Fenced {
    pub resource: String,
    pub token: u64,
    pub accepted: u64,
}

#[derive(Serialize, Deserialize)]
struct Record {
    v: u32,
    token: u64,
    payload: String,
}

/// Append-only logs, one per resource, that accept only non-decreasing tokens.
pub struct FencedLog<S: Store> {
    store: S,
}

impl<S: Store> FencedLog<S> {
    pub fn new(store: S) -> FencedLog<S> {
        FencedLog { store }
    }

    fn prefix(resource: &LockPath) -> String {
        // The same escaping as lock journals, under `fence/`.
        let journal = resource.journal_prefix();
        format!("fence/{}", journal.strip_prefix("locks/").expect("lock journal prefix"))
    }

    fn key(resource: &LockPath, index: u64) -> Key {
        Key::new(format!("{}{index:0width$}", Self::prefix(resource), width = INDEX_DIGITS)).expect("valid key")
    }

    /// Appends `payload` with `token`: `Ok(Ok(index))` if accepted, `Ok(Err(Fenced))` if a larger
    /// token was accepted before.
    pub async fn append(&self, resource: &LockPath, token: u64, payload: &str) -> Result<Result<u64, Fenced>, LockError> {
        let bytes = serde_json::to_vec(&Record { v: FORMAT_VERSION, token, payload: payload.to_owned() }).expect("serialises");
        for _ in 0..1_000 {
            let present = indices(&self.store, &Self::prefix(resource)).await?;
            let next = present.last().map_or(0, |i| i + 1);
            if let Some(&last) = present.last() {
                let (accepted, _) = self.read(resource, last).await?;
                if token < accepted && !crate::mutants::active(crate::mutants::Mutant::FenceIgnoresTokens) {
                    return Ok(Err(Fenced { resource: resource.to_string(), token, accepted }));
                }
            }
            if let Created::Created(_) = self.store.create(&Self::key(resource, next), &bytes).await? {
                return Ok(Ok(next));
            }
        }
        Err(LockError::Contended { what: format!("the fenced log of {resource}"), attempts: 1_000 })
    }

    /// Whether a write with `token` would be accepted now (read-only).
    pub async fn would_accept(&self, resource: &LockPath, token: u64) -> Result<bool, LockError> {
        let present = indices(&self.store, &Self::prefix(resource)).await?;
        let Some(&last) = present.last() else { return Ok(true) };
        let (accepted, _) = self.read(resource, last).await?;
        Ok(token >= accepted || crate::mutants::active(crate::mutants::Mutant::FenceIgnoresTokens))
    }

    async fn read(&self, resource: &LockPath, index: u64) -> Result<(u64, String), LockError> {
        let key = Self::key(resource, index);
        let Some((bytes, _)) = self.store.get(&key).await? else {
            return Err(LockError::Unsettled { path: resource.clone() });
        };
        let record: Record = serde_json::from_slice(&bytes)
            .map_err(|e| LockError::Corrupt { key: key.to_string(), reason: e.to_string() })?;
        if record.v != FORMAT_VERSION {
            return Err(LockError::Corrupt { key: key.to_string(), reason: format!("format version {}", record.v) });
        }
        Ok((record.token, record.payload))
    }

    /// Every accepted record: (index, token, payload), in order.
    pub async fn records(&self, resource: &LockPath) -> Result<Vec<(u64, u64, String)>, LockError> {
        let mut out = Vec::new();
        for index in indices(&self.store, &Self::prefix(resource)).await? {
            let (token, payload) = self.read(resource, index).await?;
            out.push((index, token, payload));
        }
        Ok(out)
    }
}
