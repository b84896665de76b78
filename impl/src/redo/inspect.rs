//! What the store holds for each session, as readers see it (`lockstep session show`), and the
//! refinement map of the cross-tests: every fact the model's properties speak of.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::entry::{
    read, ArchiveEntry, ClaimEntry, ManifestEntry, MemoryEntry, MessageEntry, RowEntry,
};
use super::keys::{self, SessionName, INDEX_DIGITS};
use super::{session_names, RedoError};
use crate::lock::owner::process_part;
use crate::store::{Liveness, Store};

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MessageView {
    pub id: String,
    pub text: String,
    /// In an archive already (its delete is pending or was lost): not live, never archived again.
    pub archived: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ArchiveView {
    pub index: u64,
    pub messages: Vec<String>,
    pub owner: String,
    pub owner_liveness: Liveness,
    pub done: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MemoryView {
    pub archive: u64,
    pub key: String,
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RowView {
    pub archive: u64,
    pub nonce: String,
    /// `pending`, `claimed` (by a worker not proven dead) or `stale` (its worker proven dead).
    pub state: &'static str,
    pub worker: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SessionView {
    pub session: SessionName,
    /// Stored messages, in id order.
    pub messages: Vec<MessageView>,
    pub archives: Vec<ArchiveView>,
    /// The memories readers see: those of each manifest's extraction.
    pub memories: Vec<MemoryView>,
    /// Per archive with a manifest: the memories it names that are missing (must be empty).
    pub memories_missing: Vec<String>,
    /// Memories of extractions no manifest names (a crashed or losing run's): invisible garbage.
    pub memories_unnamed: usize,
    /// Archives whose phase 2 has not finished.
    pub pending: Vec<u64>,
    pub queue: Vec<RowView>,
    /// Per archive, how many effects its item has at the target (at most 1).
    pub effects: BTreeMap<u64, usize>,
    /// Keys under the session this build does not recognise (never touched).
    pub unrecognised: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StoreView {
    pub sessions: Vec<SessionView>,
}

impl StoreView {
    pub fn session(&self, name: &str) -> Option<&SessionView> {
        self.sessions.iter().find(|s| s.session.as_str() == name)
    }
}

/// Reads every session of `store`.
pub async fn inspect(store: &dyn Store) -> Result<StoreView, RedoError> {
    let mut names: BTreeSet<SessionName> = session_names(store).await?.into_iter().collect();
    for prefix in [keys::ROWS, keys::EFFECTS, "memories/"] {
        for key in store.list(prefix).await? {
            if let Some(name) = keys::session_of(&key, prefix) {
                names.insert(name);
            }
        }
    }
    let mut view = StoreView::default();
    for name in names {
        view.sessions.push(inspect_session(store, &name).await?);
    }
    Ok(view)
}

/// Reads one session.
pub async fn inspect_session(
    store: &dyn Store,
    session: &SessionName,
) -> Result<SessionView, RedoError> {
    let mut unrecognised = Vec::new();
    let archives_prefix = session.archives_prefix();
    let done_prefix = session.done_prefix();
    let done: BTreeSet<u64> = store
        .list(&done_prefix)
        .await?
        .iter()
        .filter_map(|k| keys::index_of(k, &done_prefix))
        .collect();
    let mut archives = Vec::new();
    let mut archived = BTreeSet::new();
    for key in store.list(&archives_prefix).await? {
        let Some(index) = keys::index_of(&key, &archives_prefix) else {
            unrecognised.push(key.to_string());
            continue;
        };
        let Some(archive) = read::<ArchiveEntry>(store, &key).await? else {
            continue;
        };
        archived.extend(archive.messages.iter().map(|m| m.id.clone()));
        archives.push(ArchiveView {
            index,
            messages: archive.messages.iter().map(|m| m.id.clone()).collect(),
            owner_liveness: store.owner_liveness(process_part(&archive.owner)).await?,
            owner: archive.owner,
            done: done.contains(&index),
        });
    }
    let messages_prefix = session.messages_prefix();
    let mut messages = Vec::new();
    for key in store.list(&messages_prefix).await? {
        let id = key.as_str()[messages_prefix.len()..].to_owned();
        if let Some(message) = read::<MessageEntry>(store, &key).await? {
            messages.push(MessageView {
                archived: archived.contains(&id),
                id,
                text: message.text,
            });
        }
    }
    // Memories: `memories/<s>/<k>/manifest` and `memories/<s>/<k>/<x>/<n>`.
    let memories_prefix = format!("memories/{session}/");
    let mut manifests: BTreeMap<u64, ManifestEntry> = BTreeMap::new();
    let mut written: BTreeMap<(u64, String), BTreeSet<usize>> = BTreeMap::new();
    for key in store.list(&memories_prefix).await? {
        let rest: Vec<&str> = key.as_str()[memories_prefix.len()..].split('/').collect();
        let index = rest
            .first()
            .filter(|k| k.len() == INDEX_DIGITS)
            .and_then(|k| k.parse().ok());
        match (index, rest.as_slice()) {
            (Some(k), [_, "manifest"]) => {
                if let Some(manifest) = read::<ManifestEntry>(store, &key).await? {
                    manifests.insert(k, manifest);
                }
            }
            (Some(k), [_, x, n]) if n.parse::<usize>().is_ok() => {
                written
                    .entry((k, x.to_string()))
                    .or_default()
                    .insert(n.parse().expect("checked"));
            }
            _ => unrecognised.push(key.to_string()),
        }
    }
    let mut memories = Vec::new();
    let mut memories_missing = Vec::new();
    for (k, manifest) in &manifests {
        for n in 0..manifest.count {
            let key = session.memory(*k, &manifest.extraction, n);
            match read::<MemoryEntry>(store, &key).await? {
                Some(memory) => memories.push(MemoryView {
                    archive: *k,
                    key: key.to_string(),
                    text: memory.text,
                }),
                None => memories_missing.push(key.to_string()),
            }
        }
    }
    let memories_unnamed = written
        .iter()
        .filter(|((k, x), _)| manifests.get(k).is_none_or(|m| &m.extraction != x))
        .map(|(_, ns)| ns.len())
        .sum();
    let pending = archives
        .iter()
        .filter(|a| !a.done)
        .map(|a| a.index)
        .collect();
    // The queue rows of this session, with their claims.
    let rows_prefix = format!("{}{session}/", keys::ROWS);
    let mut queue = Vec::new();
    for key in store.list(&rows_prefix).await? {
        let Some(k) = keys::index_of(&key, &rows_prefix) else {
            unrecognised.push(key.to_string());
            continue;
        };
        let Some(row) = read::<RowEntry>(store, &key).await? else {
            continue;
        };
        let (_, claim) = super::queue::claims(store, session, k, &row.nonce).await?;
        let (state, worker) = match claim {
            None | Some(ClaimEntry::Free { .. }) => ("pending", None),
            Some(ClaimEntry::Claim { worker, .. }) => {
                if store.owner_liveness(process_part(&worker)).await? == Liveness::Dead {
                    ("stale", Some(worker))
                } else {
                    ("claimed", Some(worker))
                }
            }
        };
        queue.push(RowView {
            archive: k,
            nonce: row.nonce,
            state,
            worker,
        });
    }
    let effects_prefix = format!("{}{session}/", keys::EFFECTS);
    let mut effects = BTreeMap::new();
    for key in store.list(&effects_prefix).await? {
        let rest = &key.as_str()[effects_prefix.len()..];
        match rest.get(..INDEX_DIGITS).and_then(|k| k.parse::<u64>().ok()) {
            // The keyed effect is `<k>`; anything after the index is an unkeyed duplicate.
            Some(k) => *effects.entry(k).or_insert(0) += 1,
            None => unrecognised.push(key.to_string()),
        }
    }
    Ok(SessionView {
        session: session.clone(),
        messages,
        archives,
        memories,
        memories_missing,
        memories_unnamed,
        pending,
        queue,
        effects,
        unrecognised,
    })
}

/// The owners whose registration files must be kept (`lockstep gc`): committers of archives
/// still pending and workers of claims still newest. Their files prove their death to recovery.
pub async fn owners_to_keep(store: &dyn Store) -> Result<Vec<String>, RedoError> {
    let view = inspect(store).await?;
    let mut owners = Vec::new();
    for session in &view.sessions {
        for archive in session.archives.iter().filter(|a| !a.done) {
            owners.push(process_part(&archive.owner).to_owned());
        }
        for row in &session.queue {
            if let Some(worker) = &row.worker {
                owners.push(process_part(worker).to_owned());
            }
        }
    }
    Ok(owners)
}
