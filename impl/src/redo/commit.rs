//! Phase 1 of a commit (specs/redo.md §4): under the session lock (an optimisation only), list
//! the archives, take the live messages that are in no archive yet, claim archive `k` with
//! create-if-absent (the archive is the redo record), delete the archived messages, release the
//! lock; then phase 2.
//!
//! Safety does not rest on the lock, which is a lease a paused commit can outlive: two commits
//! that read the same messages race for the same index `k`, and the create-if-absent lets one
//! win. The loser lists again, and now excludes what the winner archived.

use std::collections::BTreeSet;

use super::entry::{self, ArchiveEntry, Message, MessageEntry};
use super::keys::{self, SessionName};
use super::{phase2, RedoError, Sessions};
use crate::lock::{LockError, LockMode, Operation};
use crate::mutants::{active, Mutant};
use crate::store::Created;

/// What a commit did.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Committed {
    pub session: SessionName,
    /// The archive written, or `None` if there was nothing to commit.
    pub archive: Option<u64>,
    /// The ids of the archived messages.
    pub messages: Vec<String>,
    /// The keys of the memories readers see for the archive.
    pub memories: Vec<String>,
}

/// The archives of a session, read: their count (the next index) and every message id in one.
pub(crate) struct Archives {
    pub next: u64,
    pub archived: BTreeSet<String>,
    pub entries: Vec<ArchiveEntry>,
}

pub(crate) async fn list_archives(
    sessions: &Sessions,
    session: &SessionName,
) -> Result<Archives, RedoError> {
    // Archives are claimed in order, so 0..next exist; the next index is the first gap.
    let next = keys::journal_end(sessions.store(), &session.archives_prefix()).await?;
    let mut archived = BTreeSet::new();
    let mut entries = Vec::new();
    for k in 0..next {
        let key = session.archive(k);
        let Some(archive) = sessions.read::<ArchiveEntry>(&key).await? else {
            // Archives are never deleted: a listed one that is gone breaks the store's contract.
            return Err(RedoError::Corrupt {
                key: key.to_string(),
                reason: "listed, but gone when read (archives are never deleted)".into(),
            });
        };
        archived.extend(archive.messages.iter().map(|m| m.id.clone()));
        entries.push(archive);
    }
    Ok(Archives {
        next,
        archived,
        entries,
    })
}

/// The live messages of a session: stored and in no archive.
pub(crate) async fn live_messages(
    sessions: &Sessions,
    session: &SessionName,
    archived: &BTreeSet<String>,
) -> Result<Vec<Message>, RedoError> {
    let prefix = session.messages_prefix();
    let mut live = Vec::new();
    for key in sessions.store.list(&prefix).await? {
        let Some(id) = key.as_str().strip_prefix(&prefix) else {
            continue;
        };
        if archived.contains(id) && !active(Mutant::RedoNoExclusion) {
            continue; // archived, its delete not (yet) done
        }
        // Gone since the listing: another commit archived and deleted it.
        if let Some(message) = sessions.read::<MessageEntry>(&key).await? {
            live.push(Message {
                id: id.to_owned(),
                text: message.text,
            });
        }
    }
    Ok(live)
}

/// Phase 1 under the session lock: the archive written and its messages deleted, or `None` if
/// nothing was live.
pub(crate) async fn phase1(
    sessions: &Sessions,
    session: &SessionName,
) -> Result<Option<(u64, Vec<Message>)>, RedoError> {
    let guard = if sessions.options.session_lock {
        let operation =
            Operation::new(LockMode::Point, &[&session.lock_path()]).map_err(RedoError::Lock)?;
        match sessions.locks()?.lock(operation).await {
            Ok(guard) => Some(guard),
            Err(LockError::Busy { holder, waited, .. }) => {
                return Err(RedoError::Busy {
                    session: session.clone(),
                    holder,
                    waited,
                })
            }
            Err(error) => return Err(RedoError::Lock(error)),
        }
    } else {
        None
    };
    // The archive's owner: fresh per commit, proven dead with this process.
    let owner = match &guard {
        Some(guard) => guard.owner().to_owned(),
        None => sessions.new_owner(),
    };
    let phase1 = archive(sessions, session, &owner).await;
    if let Some(guard) = guard {
        // Fenced: releases only our own lease (it may have expired and moved on). If the
        // release fails, the lock is freed by our death (this process then ends as a crash),
        // not only by the lease's expiry.
        if let Err(error) = guard.release().await {
            tracing::warn!(%session, %error, "releasing the session lock failed; it is freed when this process ends");
            sessions.give_up();
        }
    }
    phase1
}

pub(crate) async fn commit(
    sessions: &Sessions,
    session: &SessionName,
) -> Result<Committed, RedoError> {
    let phase1 = phase1(sessions, session).await;
    let Some((index, messages)) = phase1? else {
        return Ok(Committed {
            session: session.clone(),
            archive: None,
            messages: Vec::new(),
            memories: Vec::new(),
        });
    };
    let memories = match phase2::run(sessions, session, index, &messages, "commit").await {
        Ok(memories) => memories,
        Err(error) => {
            // This commit ends here: only this process knows its archive's committer is gone.
            crate::sync::lock(&sessions.abandoned).insert((session.clone(), index));
            return Err(match error {
                RedoError::Store(source) => RedoError::Phase2 {
                    session: session.clone(),
                    index,
                    source,
                },
                other => other,
            });
        }
    };
    Ok(Committed {
        session: session.clone(),
        archive: Some(index),
        messages: messages.into_iter().map(|m| m.id).collect(),
        memories,
    })
}

/// Phase 1 up to the lock's release: the archive written and its messages deleted, or `None`
/// if nothing was live.
async fn archive(
    sessions: &Sessions,
    session: &SessionName,
    owner: &str,
) -> Result<Option<(u64, Vec<Message>)>, RedoError> {
    let (index, messages) = loop {
        let archives = list_archives(sessions, session).await?;
        let mut messages = live_messages(sessions, session, &archives.archived).await?;
        if messages.is_empty() {
            return Ok(None);
        }
        fit_entry_limit(sessions, owner, &mut messages);
        let k = archives.next;
        let archive = ArchiveEntry {
            v: entry::FORMAT_VERSION,
            messages: messages.clone(),
            owner: owner.to_owned(),
            written_at_ms: entry::wall_ms(),
        };
        let key = session.archive(k);
        match sessions
            .create_retrying(&key, &entry::encode(&archive))
            .await
        {
            Ok(Created::Created(_)) => break (k, messages),
            Ok(Created::AlreadyExists) => {
                // Ours, if a create we saw fail landed (the owner is fresh per commit);
                // anyone else's: list again, and exclude what it archived.
                let Some(found) = sessions.read::<ArchiveEntry>(&key).await? else {
                    return Err(RedoError::CreateRefused {
                        key: key.to_string(),
                    });
                };
                if found.owner == owner
                    && found.messages == messages
                    && !active(Mutant::RedoArchiveExistsIsTheirs)
                {
                    break (k, messages);
                }
            }
            Err(error @ crate::store::StoreError::TooLarge { .. }) => {
                // Refused before anything was written: nothing is pending, nothing lost.
                return Err(RedoError::TooLarge(error));
            }
            Err(error) => {
                // The archive may have landed: it is then ours, and pending. Only this process
                // knows its committer has given up.
                crate::sync::lock(&sessions.abandoned).insert((session.clone(), k));
                return Err(RedoError::Phase2 {
                    session: session.clone(),
                    index: k,
                    source: error,
                });
            }
        }
    };
    // Delete what we archived, one by one (garbage collection: readers exclude archived ids,
    // so a delete that fails loses nothing and is only logged).
    let targets: Vec<String> = if active(Mutant::RedoClearAll) {
        let prefix = session.messages_prefix();
        sessions
            .store
            .list(&prefix)
            .await?
            .iter()
            .filter_map(|k| k.as_str().strip_prefix(&prefix).map(str::to_owned))
            .collect()
    } else {
        messages.iter().map(|m| m.id.clone()).collect()
    };
    for id in targets {
        if let Err(error) = sessions.delete_retrying(&session.message(&id)).await {
            tracing::warn!(%session, %id, %error, "deleting an archived message failed; it stays excluded");
        }
    }
    Ok(Some((index, messages)))
}

/// Keeps the oldest `messages` whose archive fits the store's entry limit (at least one: a single
/// message is at most [`super::MESSAGE_BYTES_MAX`]); the rest stay live for the next commit.
/// Which messages an archive holds is the committer's choice: exclusion and the archive's
/// create-if-absent make any choice safe.
fn fit_entry_limit(sessions: &Sessions, owner: &str, messages: &mut Vec<Message>) {
    let Some(limit) = sessions.store().entry_bytes_max() else {
        return;
    };
    let archive = |messages: Vec<Message>| ArchiveEntry {
        v: entry::FORMAT_VERSION,
        messages,
        owner: owner.to_owned(),
        written_at_ms: entry::wall_ms(),
    };
    let mut keep = messages.len();
    while keep > 1 && entry::encode(&archive(messages[..keep].to_vec())).len() > limit {
        keep -= 1;
    }
    messages.truncate(keep);
}
