//! Recovery (specs/redo.md §4): replay phase 2 of every archive without `done` whose committer
//! the store proves dead, and free the queue claims of workers the store proves dead.
//!
//! Only provably dead committers are replayed (never a guess from hostname or pid): a commit
//! still in its phase 2 elsewhere is left to finish. One recovery runs at a time, under a path
//! lock of its own: the model has one recovery actor, and two concurrent replays of one archive
//! would each write an extraction's memories (one of them invisible garbage).

use std::collections::BTreeSet;

use super::commit::list_archives;
use super::entry::{self, ClaimEntry, RowEntry};
use super::keys::{self, SessionName};
use super::{phase2, queue, session_names, RedoError, Sessions};
use crate::lock::owner::process_part;
use crate::lock::{LockError, LockMode, Operation};
use crate::store::Liveness;

/// The path lock recovery runs under.
pub const RECOVERY_LOCK: &str = "/lockstep-redo/recovery";

/// One archive whose phase 2 recovery replayed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RecoveredRedo {
    pub session: SessionName,
    pub archive: u64,
    /// The committer proven dead.
    pub owner: String,
    pub memories: Vec<String>,
}

/// What a recovery did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RedoRecovery {
    pub replayed: Vec<RecoveredRedo>,
    /// Archives without `done` whose committer is alive or not provably dead: left alone.
    pub left_to_their_committer: Vec<String>,
    /// Queue claims of workers proven dead, freed: `session/k`.
    pub claims_freed: Vec<String>,
}

pub(crate) async fn recover(sessions: &Sessions) -> Result<RedoRecovery, RedoError> {
    let operation = Operation::new(LockMode::Point, &[RECOVERY_LOCK]).map_err(RedoError::Lock)?;
    let guard = match sessions.locks()?.lock(operation).await {
        Ok(guard) => guard,
        Err(LockError::Busy { holder, .. }) => return Err(RedoError::RecoveryBusy { holder }),
        Err(error) => return Err(RedoError::Lock(error)),
    };
    let result = recover_locked(sessions).await;
    if let Err(error) = guard.release().await {
        tracing::warn!(%error, "releasing the recovery lock failed; it is freed when this process ends");
        sessions.give_up();
    }
    result
}

async fn recover_locked(sessions: &Sessions) -> Result<RedoRecovery, RedoError> {
    let mut recovery = RedoRecovery::default();
    let store = sessions.store();
    // First the queue, as a restart's stale-claim recovery comes first in the model: rows
    // claimed by workers proven dead go back to pending.
    for row_key in store.list(keys::ROWS).await? {
        let Some((session, k)) = queue::parse_row(&row_key) else {
            continue;
        };
        let Some(row) = sessions.read::<RowEntry>(&row_key).await? else {
            continue;
        };
        let (next, newest) = queue::claims(store, &session, k, &row.nonce).await?;
        let Some(ClaimEntry::Claim { worker, .. }) = &newest else {
            continue;
        };
        if store.owner_liveness(process_part(worker)).await? != Liveness::Dead {
            continue;
        }
        let free = ClaimEntry::Free {
            v: entry::FORMAT_VERSION,
            of: worker.clone(),
            written_at_ms: entry::wall_ms(),
        };
        // `AlreadyExists`: a worker claimed over it meanwhile (or our lost answer): either way
        // the stale claim is no longer the newest.
        if sessions
            .create_retrying(&session.claim(k, &row.nonce, next), &entry::encode(&free))
            .await?
            .is_created()
        {
            recovery.claims_freed.push(format!("{session}/{k}"));
        }
    }
    // Every archive to replay, found first; then the replays, `replays_at_once` at a time
    // (archives share no keys, so their replays are independent, and a disk completes
    // concurrent durable creates faster than one after another: the file system groups their
    // journal commits).
    let mut todo = Vec::new();
    for session in session_names(store).await? {
        let archives = list_archives(sessions, &session).await?;
        let done_prefix = session.done_prefix();
        let done: BTreeSet<u64> = store
            .list(&done_prefix)
            .await?
            .iter()
            .filter_map(|k| keys::index_of(k, &done_prefix))
            .collect();
        for (k, archive) in archives.entries.into_iter().enumerate() {
            let k = k as u64;
            if done.contains(&k) {
                continue;
            }
            let abandoned = crate::sync::lock(&sessions.abandoned).contains(&(session.clone(), k));
            let dead = abandoned
                || store.owner_liveness(process_part(&archive.owner)).await? == Liveness::Dead;
            if !dead {
                recovery
                    .left_to_their_committer
                    .push(format!("{session}/{k}"));
                continue;
            }
            todo.push((session.clone(), k, archive));
        }
    }
    let replays = todo.into_iter().map(|(session, k, archive)| async move {
        let memories = phase2::run(sessions, &session, k, &archive.messages, "recovery").await?;
        crate::sync::lock(&sessions.abandoned).remove(&(session.clone(), k));
        Ok::<_, RedoError>(RecoveredRedo {
            session,
            archive: k,
            owner: archive.owner,
            memories,
        })
    });
    for replayed in at_most(sessions.options.replays_at_once, replays.collect()).await {
        recovery.replayed.push(replayed?);
    }
    recovery
        .replayed
        .sort_by(|a, b| (&a.session, a.archive).cmp(&(&b.session, b.archive)));
    Ok(recovery)
}

/// Runs `futures`, at most `limit` at once, in this task (no spawning: they borrow the handle).
/// Results come in the order the futures finish.
async fn at_most<F: std::future::Future>(limit: usize, futures: Vec<F>) -> Vec<F::Output> {
    let mut waiting: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).rev().collect();
    let mut running: Vec<std::pin::Pin<Box<F>>> = Vec::new();
    let mut out = Vec::with_capacity(waiting.len());
    std::future::poll_fn(|cx| loop {
        while running.len() < limit.max(1) {
            match waiting.pop() {
                Some(future) => running.push(future),
                None => break,
            }
        }
        let before = out.len();
        let mut i = 0;
        while i < running.len() {
            match running[i].as_mut().poll(cx) {
                std::task::Poll::Ready(output) => {
                    out.push(output);
                    drop(running.swap_remove(i));
                }
                std::task::Poll::Pending => i += 1,
            }
        }
        if running.is_empty() && waiting.is_empty() {
            return std::task::Poll::Ready(());
        }
        if out.len() == before {
            // Nothing finished: every running future has registered its waker.
            return std::task::Poll::Pending;
        }
        // Some finished: start the next ones (and poll them, so they register their wakers).
    })
    .await;
    out
}
