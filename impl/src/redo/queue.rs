//! The semantic queue, on the store trait (so that it ports to any backend the protocols run
//! on, etcd included): one row per archive, claimed by workers in any process, delivered at
//! least once, its effect applied exactly once.
//!
//! - **Row** `queue/semantic/rows/<s>/<k>`: inserted by phase 2 with create-if-absent (one row
//!   per archive while it is pending or being processed), deleted by the ack. Each insertion has
//!   a fresh nonce.
//! - **Claims** `queue/semantic/claims/<s>/<k>/<nonce>/<n>`: a journal. A worker claims a row
//!   by creating the next claim entry; of two workers exactly one wins. A claim whose worker the
//!   store proves dead is stale: the next worker claims over it (and `recover` writes a `free`
//!   entry over it). A worker whose death cannot be proven keeps its claim (safe: nothing is
//!   applied twice; an operator sees it in `session show`).
//! - **Effect** `effects/semantic/<s>/<k>`: one create keyed by the item, so a second delivery
//!   (after a crash between the effect and the ack) finds it there and changes nothing.
//! - **Ack**: delete the row, then its claims. An ack never deletes a row re-inserted after it
//!   unless the effect it stands for already exists (effects are keyed by archive, and the
//!   manifest a row's effect is made from is created once).

use super::entry::{self, ClaimEntry, EffectEntry, ManifestEntry, RowEntry};
use super::keys::{self, SessionName};
use super::{RedoError, Sessions};
use crate::lock::owner::process_part;
use crate::mutants::{active, Mutant};
use crate::store::{Created, Key, Liveness, Store, StoreError};

/// What one pass of a worker did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Worked {
    /// Items processed (effect applied or found applied, row acked): `session/k`.
    pub processed: Vec<String>,
    /// Rows claimed by a worker not proven dead: left to it.
    pub claimed_elsewhere: usize,
}

/// A row of the queue, parsed from its key.
pub(crate) fn parse_row(key: &Key) -> Option<(SessionName, u64)> {
    let session = keys::session_of(key, keys::ROWS)?;
    let prefix = format!("{}{}/", keys::ROWS, session);
    let k = keys::index_of(key, &prefix)?;
    Some((session, k))
}

/// The claim journal of a row: the next index, and the newest entry.
pub(crate) async fn claims(
    store: &dyn Store,
    session: &SessionName,
    k: u64,
    nonce: &str,
) -> Result<(u64, Option<ClaimEntry>), RedoError> {
    let next = keys::journal_end(store, &session.claims_prefix(k, nonce)).await?;
    let newest = match next.checked_sub(1) {
        Some(n) => entry::read(store, &session.claim(k, nonce, n)).await?,
        None => None,
    };
    Ok((next, newest))
}

/// Whether a claim may be taken over: it is free, or its worker is proven dead.
pub(crate) async fn claimable(
    store: &dyn Store,
    newest: &Option<ClaimEntry>,
) -> Result<bool, RedoError> {
    Ok(match newest {
        None | Some(ClaimEntry::Free { .. }) => true,
        Some(ClaimEntry::Claim { worker, .. }) => {
            store.owner_liveness(process_part(worker)).await? == Liveness::Dead
        }
    })
}

pub(crate) async fn work(sessions: &Sessions, items: usize) -> Result<Worked, RedoError> {
    let worker = sessions.new_owner();
    let mut worked = Worked::default();
    for row_key in sessions.store.list(keys::ROWS).await? {
        if worked.processed.len() >= items {
            break;
        }
        let Some((session, k)) = parse_row(&row_key) else {
            continue; // not a row (a foreign file): `session show` reports it
        };
        let Some(row) = sessions.read::<RowEntry>(&row_key).await? else {
            continue; // acked since the listing
        };
        let (next, newest) = claims(sessions.store(), &session, k, &row.nonce).await?;
        if !claimable(sessions.store(), &newest).await? {
            worked.claimed_elsewhere += 1;
            continue;
        }
        let claim = ClaimEntry::Claim {
            v: entry::FORMAT_VERSION,
            worker: worker.clone(),
            written_at_ms: entry::wall_ms(),
        };
        let claim_key = session.claim(k, &row.nonce, next);
        let created = match sessions
            .create_retrying(&claim_key, &entry::encode(&claim))
            .await
        {
            Ok(created) => created,
            Err(error) => {
                // The claim may have landed (a lost answer): the same as giving up an item.
                sessions.give_up();
                return Err(error.into());
            }
        };
        match created {
            Created::Created(_) => {}
            Created::AlreadyExists => {
                // Ours if our create's answer was lost; else another worker won the claim.
                if sessions.read::<ClaimEntry>(&claim_key).await? != Some(claim) {
                    worked.claimed_elsewhere += 1;
                    continue;
                }
            }
        }
        let processed = async {
            if active(Mutant::RedoAckBeforeApply) {
                ack(sessions, &session, k, &row, &row_key).await?;
                apply(sessions, &session, k, &worker).await
            } else {
                apply(sessions, &session, k, &worker).await?;
                ack(sessions, &session, k, &row, &row_key).await
            }
        };
        if let Err(error) = processed.await {
            // We hold a claim we will not finish: only our death frees it, so this process
            // must end provably dead (`Sessions::end_for_recovery`).
            sessions.give_up();
            return Err(error);
        }
        worked.processed.push(format!("{session}/{k}"));
    }
    Ok(worked)
}

/// The item's effect: one create keyed by the archive, made from the archive's manifest.
async fn apply(
    sessions: &Sessions,
    session: &SessionName,
    k: u64,
    worker: &str,
) -> Result<(), RedoError> {
    let manifest_key = session.manifest(k);
    let Some(manifest) = sessions.read::<ManifestEntry>(&manifest_key).await? else {
        // Phase 2 enqueues only after the manifest exists.
        return Err(RedoError::Corrupt {
            key: session.row(k).to_string(),
            reason: format!("a queue row whose archive has no manifest ({manifest_key})"),
        });
    };
    let effect = EffectEntry {
        v: entry::FORMAT_VERSION,
        memories: (0..manifest.count)
            .map(|n| session.memory(k, &manifest.extraction, n).to_string())
            .collect(),
        extraction: manifest.extraction,
        worker: worker.to_owned(),
        written_at_ms: entry::wall_ms(),
    };
    let key = if active(Mutant::RedoEffectNotKeyed) {
        Key::new(format!("{}-{}", session.effect(k), entry::fresh_id()))
            .map_err(StoreError::from)?
    } else {
        session.effect(k)
    };
    // `AlreadyExists`: an earlier delivery applied it.
    let _ = sessions
        .create_retrying(&key, &entry::encode(&effect))
        .await?;
    Ok(())
}

async fn ack(
    sessions: &Sessions,
    session: &SessionName,
    k: u64,
    row: &RowEntry,
    row_key: &Key,
) -> Result<(), RedoError> {
    sessions.delete_retrying(row_key).await?;
    let prefix = session.claims_prefix(k, &row.nonce);
    for key in sessions.store.list(&prefix).await? {
        sessions.delete_retrying(&key).await?;
    }
    Ok(())
}
