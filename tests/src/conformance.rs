//! The backend conformance suite: plain async functions over a `Store`, each checking one
//! requirement of specs/backends.md. Every backend calls the same list (see `tests/store_*.rs`);
//! an out-of-tree backend can call it too. Each function returns `Err(description)` rather than
//! panicking, so a test can also assert that a broken backend *fails* it.

use std::sync::Arc;

use lockstep::store::{Created, Key, Store};

pub type Outcome = Result<(), String>;

fn key(text: &str) -> Key {
    Key::new(text).expect("suite keys are valid")
}

/// Create, get, list and delete behave as the trait says, one call at a time.
pub async fn basic_semantics(store: &dyn Store) -> Outcome {
    let a = key("suite/basic/a");
    if store.get(&a).await.map_err(|e| e.to_string())?.is_some() {
        return Err("a fresh key is present".into());
    }
    let first = store.create(&a, b"one").await.map_err(|e| e.to_string())?;
    if !first.is_created() {
        return Err("the first create of a key did not create it".into());
    }
    let second = store.create(&a, b"two").await.map_err(|e| e.to_string())?;
    if second != Created::AlreadyExists {
        return Err("a second create of a key did not report AlreadyExists".into());
    }
    match store.get(&a).await.map_err(|e| e.to_string())? {
        Some((bytes, _)) if bytes == b"one" => {}
        other => {
            return Err(format!(
                "get after create returned {other:?}, expected the first bytes"
            ))
        }
    }
    let _ = store
        .create(&key("suite/basic/b/c"), b"")
        .await
        .map_err(|e| e.to_string())?;
    let _ = store
        .create(&key("suite/basicx"), b"x")
        .await
        .map_err(|e| e.to_string())?;
    let listed: Vec<String> = store
        .list("suite/basic/")
        .await
        .map_err(|e| e.to_string())?
        .iter()
        .map(|k| k.to_string())
        .collect();
    if listed != ["suite/basic/a", "suite/basic/b/c"] {
        return Err(format!("list by prefix returned {listed:?}"));
    }
    let empty = store
        .get(&key("suite/basic/b/c"))
        .await
        .map_err(|e| e.to_string())?;
    if empty.map(|(b, _)| b.len()) != Some(0) {
        return Err("an empty entry did not read back as empty".into());
    }
    store.delete(&a).await.map_err(|e| e.to_string())?;
    store
        .delete(&a)
        .await
        .map_err(|e| format!("deleting an absent key failed: {e}"))?;
    if store.get(&a).await.map_err(|e| e.to_string())?.is_some() {
        return Err("a deleted key is still present".into());
    }
    Ok(())
}

/// `writers` tasks race to create the same key, `rounds` times (one fresh key per round):
/// exactly one winner each round, and the stored bytes are the winner's.
pub async fn create_race(store: Arc<dyn Store>, writers: usize, rounds: usize) -> Outcome {
    for round in 0..rounds {
        let k = key(&format!("suite/race/{round:04}"));
        let barrier = Arc::new(tokio::sync::Barrier::new(writers));
        let mut tasks = Vec::new();
        for writer in 0..writers {
            let (store, k, barrier) = (Arc::clone(&store), k.clone(), Arc::clone(&barrier));
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let bytes = format!("writer {writer}").into_bytes();
                store
                    .create(&k, &bytes)
                    .await
                    .map(|c| (writer, c.is_created()))
            }));
        }
        let mut winners = Vec::new();
        for task in tasks {
            let (writer, won) = task
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            if won {
                winners.push(writer);
            }
        }
        if winners.len() != 1 {
            return Err(format!(
                "round {round}: {} writers won the create of one key: {winners:?}",
                winners.len()
            ));
        }
        let stored = store
            .get(&k)
            .await
            .map_err(|e| e.to_string())?
            .map(|(b, _)| b);
        if stored != Some(format!("writer {}", winners[0]).into_bytes()) {
            return Err(format!(
                "round {round}: the stored bytes are not the winner's"
            ));
        }
    }
    Ok(())
}

/// A key is listed (and readable) as soon as its create has returned.
pub async fn list_after_create(store: &dyn Store, count: usize) -> Outcome {
    for i in 0..count {
        let k = key(&format!("suite/listed/{i:05}"));
        let _ = store.create(&k, b"x").await.map_err(|e| e.to_string())?;
        let listed = store
            .list("suite/listed/")
            .await
            .map_err(|e| e.to_string())?;
        if !listed.contains(&k) {
            return Err(format!("{k} missing from list right after its create"));
        }
    }
    Ok(())
}

/// While large entries are created, concurrent readers see each key absent or whole, never a
/// prefix of it. The readers must have seen entries whole while the writer was still writing
/// (else they never overlapped it, and nothing was tested).
pub async fn readers_never_see_torn_entries(
    store: Arc<dyn Store>,
    entries: usize,
    bytes: usize,
) -> Outcome {
    let payload: Vec<u8> = (0..bytes).map(|i| (i % 251) as u8).collect();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..3 {
        let (store, payload, done) = (Arc::clone(&store), payload.clone(), Arc::clone(&done));
        readers.push(tokio::spawn(async move {
            let mut observed_whole = 0usize;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                for i in 0..entries {
                    match store.get(&key(&format!("suite/torn/{i:04}"))).await {
                        Ok(None) => {}
                        Ok(Some((read, _))) if read == payload => observed_whole += 1,
                        Ok(Some((read, _))) => {
                            return Err(format!(
                                "a reader saw {} of {} bytes",
                                read.len(),
                                payload.len()
                            ))
                        }
                        Err(e) => return Err(e.to_string()),
                    }
                }
                tokio::task::yield_now().await;
            }
            Ok(observed_whole)
        }));
    }
    for i in 0..entries {
        let _ = store
            .create(&key(&format!("suite/torn/{i:04}")), &payload)
            .await
            .map_err(|e| e.to_string())?;
        // Let the readers run between creates even on a single-threaded runtime.
        tokio::task::yield_now().await;
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut whole = 0;
    for reader in readers {
        whole += reader.await.map_err(|e| e.to_string())??;
    }
    if whole == 0 {
        return Err(
            "the readers never saw an entry while the writer was writing: nothing was tested"
                .into(),
        );
    }
    Ok(())
}

/// Runs every generic check of the suite on `store` (which should be empty).
pub async fn run_all(store: Arc<dyn Store>) -> Outcome {
    basic_semantics(&*store)
        .await
        .map_err(|e| format!("basic semantics: {e}"))?;
    create_race(Arc::clone(&store), 16, 100)
        .await
        .map_err(|e| format!("create race: {e}"))?;
    list_after_create(&*store, 50)
        .await
        .map_err(|e| format!("list after create: {e}"))?;
    readers_never_see_torn_entries(Arc::clone(&store), 20, 1 << 20)
        .await
        .map_err(|e| format!("torn reads: {e}"))?;
    Ok(())
}
