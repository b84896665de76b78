//! The refinement map: a read-only view of a store as the path-lock model's abstract state
//! (`lockstep_model::lock`). The cross-tests compare it with the model's state after every step.
//!
//! Per path of the model's tree: the journal's length (newest index + 1), its newest entry as a
//! model `Head`, and the high-water marks that entry carries; and the newest ticket claimed. The model's time (`tick`) has no concrete
//! counterpart and is set to 0 on both sides by the caller.

use lockstep_model::lock::{Head, Kind, Marks, Slot, Tree, PATHS_MAX};

use super::entry::{Entry, LockKind};
use super::journal;
use super::path::LockPath;
use super::LockError;
use crate::store::Store;

/// The abstract state of the lock journals and the ticket journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Abstract {
    pub slots: [Slot; PATHS_MAX],
    pub tickets: u64,
}

fn kind(kind: LockKind) -> Kind {
    match kind {
        LockKind::Point => Kind::Point,
        LockKind::Subtree => Kind::Subtree,
    }
}

/// Reads `store` as the model sees it. `client_of` maps an owner id to the model client that
/// wrote it (`None`: an owner the model does not know, which is an error).
pub async fn inspect(
    store: &dyn Store,
    tree: &Tree,
    client_of: impl Fn(&str) -> Option<u8>,
) -> Result<Abstract, LockError> {
    let mut slots = [Slot::default(); PATHS_MAX];
    for (index, name) in tree.names.iter().enumerate() {
        let path = LockPath::new(name)?;
        let Some(newest) = journal::newest(store, &path).await? else {
            continue;
        };
        let small = |n: u64| {
            u8::try_from(n).map_err(|_| {
                LockError::InvalidRequest(format!("{n} is beyond the model's counters"))
            })
        };
        let marks = newest.entry.marks();
        let prior = Marks {
            subtree: small(marks.subtree)?,
            any: small(marks.any)?,
        };
        let head = match newest.entry {
            Entry::Acquire {
                owner,
                kind: k,
                ticket,
                ..
            }
            | Entry::Renew {
                owner,
                kind: k,
                ticket,
                ..
            } => {
                let owner = client_of(&owner)
                    .ok_or_else(|| LockError::InvalidRequest(format!("unknown owner {owner}")))?;
                Head::Held {
                    owner,
                    kind: kind(k),
                    token: small(ticket)?,
                    tick: 0,
                }
            }
            Entry::Release {
                kind: k, ticket, ..
            } => Head::Released {
                kind: kind(k),
                token: small(ticket)?,
            },
            Entry::Withdraw { ticket, .. } => Head::Withdrawn {
                token: small(ticket)?,
            },
        };
        slots[index] = Slot {
            len: small(newest.index + 1)?,
            head,
            prior,
            // What a power loss could take is not in the store to inspect (the refinement
            // harness runs worlds without power losses, where the model leaves these default).
            ..Slot::default()
        };
    }
    let tickets = journal::indices(store, "tickets/")
        .await?
        .last()
        .copied()
        .unwrap_or(0);
    Ok(Abstract { slots, tickets })
}
