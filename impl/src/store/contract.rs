//! The storage contract every backend must meet (specs/backends.md), as plain async functions
//! over a [`Store`], each checking one clause. Every backend's tests call the same list
//! (`tests/tests/store_conformance.rs`, `etcd_store.rs`), `lockstep probe` runs it against a live
//! store, and an out-of-tree backend can call it too. Each function returns `Err(description)`
//! rather than panicking, so a test can also assert that a broken backend *fails* it. Every key
//! lives under `base` (a prefix ending in `/`), so that a run can share a store with others.

use std::sync::Arc;

use super::{Commit, Created, Expect, Key, Read, Store};

pub type Outcome = Result<(), String>;

fn key(text: &str) -> Key {
    Key::new(text).expect("contract keys are valid")
}

/// Create, get, list and delete behave as the trait says, one call at a time.
pub async fn basic_semantics(store: &dyn Store, base: &str) -> Outcome {
    let a = key(&format!("{base}basic/a"));
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
        .create(&key(&format!("{base}basic/b/c")), b"")
        .await
        .map_err(|e| e.to_string())?;
    let _ = store
        .create(&key(&format!("{base}basicx")), b"x")
        .await
        .map_err(|e| e.to_string())?;
    let listed: Vec<String> = store
        .list(&format!("{base}basic/"))
        .await
        .map_err(|e| e.to_string())?
        .iter()
        .map(|k| k.to_string())
        .collect();
    if listed != [format!("{base}basic/a"), format!("{base}basic/b/c")] {
        return Err(format!("list by prefix returned {listed:?}"));
    }
    let empty = store
        .get(&key(&format!("{base}basic/b/c")))
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
pub async fn create_race(
    store: Arc<dyn Store>,
    base: &str,
    writers: usize,
    rounds: usize,
) -> Outcome {
    for round in 0..rounds {
        let k = key(&format!("{base}race/{round:04}"));
        // A start gate rather than tokio's Barrier, which the shuttle build's tokio lacks: every
        // task is spawned before any may create, and the gate opens for all of them at once.
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let mut tasks = Vec::new();
        for writer in 0..writers {
            let (store, k, gate) = (Arc::clone(&store), k.clone(), Arc::clone(&gate));
            tasks.push(tokio::spawn(async move {
                // The gate is never closed, so the acquire cannot fail; held to the task's end.
                let _open = gate.acquire().await;
                let bytes = format!("writer {writer}").into_bytes();
                store
                    .create(&k, &bytes)
                    .await
                    .map(|c| (writer, c.is_created()))
            }));
        }
        gate.add_permits(writers);
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
pub async fn list_after_create(store: &dyn Store, base: &str, count: usize) -> Outcome {
    for i in 0..count {
        let k = key(&format!("{base}listed/{i:05}"));
        let _ = store.create(&k, b"x").await.map_err(|e| e.to_string())?;
        let listed = store
            .list(&format!("{base}listed/"))
            .await
            .map_err(|e| e.to_string())?;
        if !listed.contains(&k) {
            return Err(format!("{k} missing from list right after its create"));
        }
    }
    Ok(())
}

/// [`Store::read_many`] finds what the plain calls find: each list in byte order, and for a
/// list-then-get the bytes of the *last* listed key its pick accepts (a key it does not accept
/// sorting after it, an empty prefix, and a second read in the same call). A create with reads
/// after it ([`Store::create_then_read`]) lists its own entry, and makes no reads when the key
/// was taken.
pub async fn batched_reads_match_plain_calls(store: &dyn Store, base: &str) -> Outcome {
    fn digits(prefix: &str, key: &str) -> bool {
        key.strip_prefix(prefix)
            .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
    }
    let journal = format!("{base}batch/j/~");
    for (name, bytes) in [
        ("0001", "one"),
        ("0002", "two"),
        ("0003", "three"),
        ("x", "not an entry"),
    ] {
        let _ = store
            .create(&key(&format!("{journal}{name}")), bytes.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
    }
    let empty = format!("{base}batch/none/~");
    let reads = [
        Read::ListThenGetLast {
            prefix: journal.clone(),
            pick: digits,
        },
        Read::List(journal.clone()),
        Read::ListThenGetLast {
            prefix: empty.clone(),
            pick: digits,
        },
        Read::Get(key(&format!("{journal}0002"))),
        Read::Get(key(&format!("{empty}0001"))),
    ];
    let found = store.read_many(&reads).await.map_err(|e| e.to_string())?;
    if found.len() != reads.len() {
        return Err(format!(
            "{} reads gave {} outcomes",
            reads.len(),
            found.len()
        ));
    }
    let listed = store.list(&journal).await.map_err(|e| e.to_string())?;
    if found[0].keys != listed || found[1].keys != listed {
        return Err(format!(
            "batched lists gave {:?} and {:?}, a plain list {listed:?}",
            found[0].keys, found[1].keys
        ));
    }
    match &found[0].last {
        Some((picked, Some((bytes, _))))
            if picked.as_str() == format!("{journal}0003") && bytes == b"three" => {}
        other => {
            return Err(format!(
                "the newest of {journal} read as {other:?}, not {journal}0003 = \"three\""
            ))
        }
    }
    if found[1].last.is_some() {
        return Err("a plain list in a batch came back with a get".into());
    }
    if !found[2].keys.is_empty() || found[2].last.is_some() {
        return Err(format!("an empty prefix read as {:?}", found[2]));
    }
    match &found[3].last {
        Some((got, Some((bytes, _))))
            if got.as_str() == format!("{journal}0002") && bytes == b"two" => {}
        other => return Err(format!("a batched get of {journal}0002 read {other:?}")),
    }
    if !matches!(&found[4].last, Some((_, None))) || !found[3].keys.is_empty() {
        return Err(format!(
            "a batched get of an absent key read {:?}, or a get listed keys",
            found[4]
        ));
    }
    // A batch longer than a backend's limit on one request (etcd: 128 operations per Txn).
    let many = vec![Read::List(journal.clone()); 150];
    let found = store.read_many(&many).await.map_err(|e| e.to_string())?;
    if found.len() != many.len() || found.iter().any(|f| f.keys != listed) {
        return Err(format!(
            "a batch of {} listings gave {} outcomes, not all the plain listing",
            many.len(),
            found.len()
        ));
    }
    let fourth = key(&format!("{journal}0004"));
    let listing = [Read::List(journal.clone())];
    let (created, after) = store
        .create_then_read(&fourth, b"four", super::Persist::Durable, &listing)
        .await
        .map_err(|e| e.to_string())?;
    if !created.is_created() || after.len() != 1 || !after[0].keys.contains(&fourth) {
        return Err(format!(
            "a create with a listing after it gave {created:?} and {after:?}, without its own key"
        ));
    }
    let (again, after) = store
        .create_then_read(&fourth, b"again", super::Persist::Durable, &listing)
        .await
        .map_err(|e| e.to_string())?;
    if again != Created::AlreadyExists || !after.is_empty() {
        return Err(format!(
            "a second create of {fourth} with reads gave {again:?} and {after:?}"
        ));
    }
    Ok(())
}

/// While large entries are created, concurrent readers see each key absent or whole, never a
/// prefix of it. The readers must have seen entries whole while the writer was still writing
/// (else they never overlapped it, and nothing was tested).
pub async fn readers_never_see_torn_entries(
    store: Arc<dyn Store>,
    base: &str,
    entries: usize,
    bytes: usize,
) -> Outcome {
    let payload: Vec<u8> = (0..bytes).map(|i| (i % 251) as u8).collect();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..3 {
        let (store, payload, done) = (Arc::clone(&store), payload.clone(), Arc::clone(&done));
        let base = base.to_owned();
        readers.push(tokio::spawn(async move {
            let mut observed_whole = 0usize;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                for i in 0..entries {
                    match store.get(&key(&format!("{base}torn/{i:04}"))).await {
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
            .create(&key(&format!("{base}torn/{i:04}")), &payload)
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

/// [`Store::commit_if`], if the store offers it: all or nothing, each expectation honoured, and
/// versions never reused for a key (an `Expect::Is` would otherwise pin a different entry).
/// `Ok(false)`: the store offers no commits (and a commit it refused to try wrote nothing).
pub async fn commits_are_all_or_nothing(store: &dyn Store, base: &str) -> Result<bool, String> {
    let err = |e: super::StoreError| e.to_string();
    let at = |name: &str| key(&format!("{base}commit/{name}"));
    let present = |k: Key| async move { store.get(&k).await.map(|got| got.map(|(_, v)| v)) };
    let first = store
        .commit_if(
            &[],
            &[(at("a"), b"a".to_vec()), (at("b"), b"b".to_vec())],
            &[],
        )
        .await
        .map_err(err)?;
    if store.offers_commits() == (first == Commit::NotOffered) {
        return Err(format!(
            "offers_commits() says {}, and a commit answered {first:?}",
            store.offers_commits()
        ));
    }
    let version = match first {
        Commit::NotOffered => {
            if present(at("a")).await.map_err(err)?.is_some() {
                return Err("a commit the store did not offer wrote an entry".into());
            }
            return Ok(false);
        }
        Commit::Refused => return Err("a commit of two fresh keys was refused".into()),
        Commit::Committed(version) => version,
    };
    for name in ["a", "b"] {
        if present(at(name)).await.map_err(err)? != Some(version) {
            return Err(format!(
                "{name} of a commit is not there with the commit's version"
            ));
        }
    }
    // An expectation that holds, and one that does not.
    let holds = store
        .commit_if(
            &[Expect::Is(at("a"), version)],
            &[(at("c"), b"c".to_vec())],
            &[],
        )
        .await
        .map_err(err)?;
    if !matches!(holds, Commit::Committed(_)) {
        return Err(format!(
            "a commit whose expectation held answered {holds:?}"
        ));
    }
    let stale = super::Version(version.0.wrapping_add(1_000_000));
    let fails = store
        .commit_if(
            &[Expect::Is(at("a"), stale)],
            &[(at("d"), b"d".to_vec())],
            &[],
        )
        .await
        .map_err(err)?;
    if fails != Commit::Refused || present(at("d")).await.map_err(err)?.is_some() {
        return Err(format!(
            "a commit expecting a version a key does not have answered {fails:?}, or wrote"
        ));
    }
    // A create whose key exists refuses the whole commit: the other create and the delete too.
    let clash = store
        .commit_if(
            &[],
            &[(at("e"), b"e".to_vec()), (at("a"), b"again".to_vec())],
            &[at("b")],
        )
        .await
        .map_err(err)?;
    if clash != Commit::Refused
        || present(at("e")).await.map_err(err)?.is_some()
        || present(at("b")).await.map_err(err)?.is_none()
    {
        return Err(format!(
            "a commit creating an existing key answered {clash:?}, or wrote part of itself"
        ));
    }
    // "No key between": keys just outside the range do not count, one inside does.
    for name in ["r4", "r7x", "r8"] {
        let _ = store.create(&at(name), b"").await.map_err(err)?;
    }
    let clear = store
        .commit_if(
            &[Expect::NoneBetween(at("r5"), at("r7"))],
            &[(at("f"), Vec::new())],
            &[at("c")],
        )
        .await
        .map_err(err)?;
    if !matches!(clear, Commit::Committed(_)) || present(at("c")).await.map_err(err)?.is_some() {
        return Err(format!(
            "a commit expecting no key between r5 and r7, beside r4, r7x and r8, answered {clear:?}, or left its delete undone"
        ));
    }
    // The range includes both its ends: a key at `from`, or at `to`, is inside.
    for (name, from, to) in [("r5", "r5", "r6"), ("r7", "r6", "r7"), ("r6", "r5", "r7")] {
        let _ = store.create(&at(name), b"").await.map_err(err)?;
        let inside = store
            .commit_if(
                &[Expect::NoneBetween(at(from), at(to))],
                &[(at("g"), Vec::new())],
                &[],
            )
            .await
            .map_err(err)?;
        if inside != Commit::Refused {
            return Err(format!(
                "a commit expecting no key between {from} and {to}, with {name} there, answered {inside:?}"
            ));
        }
        store.delete(&at(name)).await.map_err(err)?;
    }
    // A key deleted and created again has a new version.
    store.delete(&at("a")).await.map_err(err)?;
    let _ = store.create(&at("a"), b"a2").await.map_err(err)?;
    if present(at("a")).await.map_err(err)? == Some(version) {
        return Err("a key created again after a delete has its old version".into());
    }
    Ok(true)
}

/// `writers` tasks race, `rounds` times, to commit each a key of its own under a fresh prefix,
/// each expecting no key under that prefix: exactly one commits each round. `Ok(false)`: the
/// store offers no commits.
pub async fn commit_race(
    store: Arc<dyn Store>,
    base: &str,
    writers: usize,
    rounds: usize,
) -> Result<bool, String> {
    for round in 0..rounds {
        // The writers' keys are `000`, `001`, …: all between `0` and `9`.
        let from = key(&format!("{base}commit-race/{round:04}/0"));
        let to = key(&format!("{base}commit-race/{round:04}/9"));
        let tasks: Vec<_> = (0..writers)
            .map(|writer| {
                let store = Arc::clone(&store);
                let (from, to) = (from.clone(), to.clone());
                let mine = key(&format!("{base}commit-race/{round:04}/{writer:03}"));
                tokio::spawn(async move {
                    store
                        .commit_if(&[Expect::NoneBetween(from, to)], &[(mine, Vec::new())], &[])
                        .await
                })
            })
            .collect();
        let mut won = 0;
        for task in tasks {
            match task
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?
            {
                Commit::NotOffered => return Ok(false),
                Commit::Committed(_) => won += 1,
                Commit::Refused => {}
            }
        }
        if won != 1 {
            return Err(format!(
                "round {round}: {won} writers committed, expected exactly 1"
            ));
        }
    }
    Ok(true)
}
