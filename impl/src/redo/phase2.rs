//! Phase 2 of one archive, as a commit runs it and as recovery replays it (one code path, as in
//! the model's `phase2.rs`): if the manifest exists, the memories are done; else extract, create
//! each memory under this run's own extraction id, and create the manifest naming the run (the
//! first run to create it wins; readers see only its memories). Then enqueue the archive's
//! semantic item (insert-if-absent) and create `done`.

use super::entry::{self, DoneEntry, ManifestEntry, MemoryEntry, Message, RowEntry};
use super::keys::SessionName;
use super::{RedoError, Sessions};
use crate::mutants::{active, Mutant};
use crate::store::{Created, Key, StoreError};

/// Runs phase 2 of archive `index`; returns the keys of the memories readers see.
pub(crate) async fn run(
    sessions: &Sessions,
    session: &SessionName,
    index: u64,
    messages: &[Message],
    by: &str,
) -> Result<Vec<String>, RedoError> {
    let stopped = |source: StoreError| RedoError::Phase2 {
        session: session.clone(),
        index,
        source,
    };
    let manifest_key = session.manifest(index);
    let mut manifest = if active(Mutant::RedoSkipManifestCheck) {
        None
    } else {
        sessions.read::<ManifestEntry>(&manifest_key).await?
    };
    if manifest.is_none() {
        let extraction = entry::fresh_id();
        let memories = sessions
            .extractor
            .extract(messages)
            .await
            .map_err(|source| RedoError::Extraction {
                session: session.clone(),
                index,
                source,
            })?;
        for (n, text) in memories.iter().enumerate() {
            let bytes = entry::encode(&MemoryEntry {
                v: entry::FORMAT_VERSION,
                text: text.clone(),
            });
            // Under this run's fresh extraction id: `AlreadyExists` is our own lost answer.
            let _ = sessions
                .create_retrying(&session.memory(index, &extraction, n), &bytes)
                .await
                .map_err(stopped)?;
        }
        let ours = ManifestEntry {
            v: entry::FORMAT_VERSION,
            extraction,
            count: memories.len(),
        };
        manifest = Some(
            match sessions
                .create_retrying(&manifest_key, &entry::encode(&ours))
                .await
                .map_err(stopped)?
            {
                Created::Created(_) => ours,
                // Another run's manifest won (or our own lost answer): its memories count.
                Created::AlreadyExists => sessions
                    .read::<ManifestEntry>(&manifest_key)
                    .await?
                    .ok_or_else(|| RedoError::CreateRefused {
                        key: manifest_key.to_string(),
                    })?,
            },
        );
    }
    let manifest = manifest.expect("read or written above");
    let memories = (0..manifest.count)
        .map(|n| session.memory(index, &manifest.extraction, n).to_string())
        .collect();
    if active(Mutant::RedoDoneBeforeEnqueue) {
        finish(sessions, session, index, by)
            .await
            .map_err(stopped)?;
        enqueue(sessions, &session.row(index))
            .await
            .map_err(stopped)?;
    } else {
        enqueue(sessions, &session.row(index))
            .await
            .map_err(stopped)?;
        finish(sessions, session, index, by)
            .await
            .map_err(stopped)?;
    }
    Ok(memories)
}

/// Inserts the archive's queue row if there is none (pending or being processed). A row acked
/// already is inserted again: its effect is keyed, so the second delivery changes nothing.
async fn enqueue(sessions: &Sessions, row: &Key) -> Result<(), StoreError> {
    let bytes = entry::encode(&RowEntry {
        v: entry::FORMAT_VERSION,
        nonce: entry::fresh_id(),
        enqueued_at_ms: entry::wall_ms(),
    });
    let _ = sessions.create_retrying(row, &bytes).await?;
    Ok(())
}

async fn finish(
    sessions: &Sessions,
    session: &SessionName,
    index: u64,
    by: &str,
) -> Result<(), StoreError> {
    let bytes = entry::encode(&DoneEntry {
        v: entry::FORMAT_VERSION,
        by: by.to_owned(),
        written_at_ms: entry::wall_ms(),
    });
    let _ = sessions
        .create_retrying(&session.done(index), &bytes)
        .await?;
    Ok(())
}
