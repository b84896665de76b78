//! `lockstep probe`: the storage contract of specs/backends.md run against a live store, with a
//! verdict per clause, so that an operator can tell whether a backend (a file system, an etcd
//! cluster, a port's own store) gives the protocols what they rest on before trusting it.
//!
//! Everything the probe writes lives under `probe/<random>/` and is deleted at the end.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::store::{contract, Created, Key, Store, StoreError, Version};

/// The verdict of one clause.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Pass,
    Fail,
    /// The clause cannot be checked on this store (durability of an in-memory store).
    NotApplicable,
    /// The clause could not be checked: the store returned an error while it ran (a dead
    /// server, a full disk). Not a verdict on the contract; `lockstep probe` exits 74.
    Error,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct ClauseReport {
    pub clause: &'static str,
    pub verdict: Verdict,
    pub detail: String,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct ProbeReport {
    pub store: String,
    pub clauses: Vec<ClauseReport>,
    /// No clause failed, and none was cut short by a store error.
    pub passed: bool,
    pub seconds: f64,
}

/// How the probe reaches the store: more than one handle (a second connection, a second open
/// of a directory), and whether what was written survives a fresh open.
#[async_trait::async_trait]
pub trait Opener: Send + Sync {
    /// A new handle on the same store.
    async fn open(&self) -> Result<Arc<dyn Store>, StoreError>;
    /// Whether a fresh handle must find what earlier ones wrote (not so for a store that lives
    /// in one process's memory).
    fn durable(&self) -> bool;
    fn describe(&self) -> String;
}

/// One store handle, shared (an in-memory store, or a store under test).
pub struct SameStore(pub Arc<dyn Store>);

#[async_trait::async_trait]
impl Opener for SameStore {
    async fn open(&self) -> Result<Arc<dyn Store>, StoreError> {
        Ok(Arc::clone(&self.0))
    }
    fn durable(&self) -> bool {
        false
    }
    fn describe(&self) -> String {
        self.0.describe()
    }
}

/// Writers of the contention clause, and its rounds (one fresh key each).
pub const RACE_WRITERS: usize = 16;
pub const RACE_ROUNDS: usize = 50;

/// Runs every clause; a store that cannot be opened at all is an error.
pub async fn probe(opener: &dyn Opener) -> Result<ProbeReport, StoreError> {
    let started = Instant::now();
    // Both handles note the store's errors, so that a clause that fails while the store failed
    // is reported as not checked, not as a broken contract.
    let errors = Arc::new(Mutex::new(None));
    let first: Arc<dyn Store> = Arc::new(NoteErrors {
        inner: opener.open().await?,
        first_error: Arc::clone(&errors),
    });
    let second: Arc<dyn Store> = Arc::new(NoteErrors {
        inner: opener.open().await?,
        first_error: Arc::clone(&errors),
    });
    let base = format!("probe/{:016x}/", rand::random::<u64>());
    let mut clauses = Vec::new();
    let judge = |outcome: Result<String, String>| -> (Verdict, String) {
        let failed_store = errors.lock().unwrap_or_else(|e| e.into_inner()).take();
        match (outcome, failed_store) {
            (Ok(detail), _) => (Verdict::Pass, detail),
            (Err(detail), Some(error)) => (
                Verdict::Error,
                format!("not checked: the store failed while this clause ran ({error}); {detail}"),
            ),
            (Err(detail), None) => (Verdict::Fail, detail),
        }
    };
    let mut clause = |name: &'static str, outcome: Result<String, String>| {
        let (verdict, detail) = judge(outcome);
        clauses.push(ClauseReport {
            clause: name,
            verdict,
            detail,
        });
    };
    fn ok(detail: &'static str) -> impl Fn(()) -> String {
        move |()| detail.to_owned()
    }
    clause(
        "basic semantics",
        contract::basic_semantics(&*first, &base).await.map(ok(
            "create, get, list by prefix and delete, one call at a time",
        )),
    );
    clause(
        "exactly one winner under contention",
        contract::create_race(Arc::clone(&first), &base, RACE_WRITERS, RACE_ROUNDS)
            .await
            .map(ok(
                "16 writers raced for each of 50 keys: one winner each, its bytes stored",
            )),
    );
    clause("whole-or-nothing reads", whole_reads(&first, &base).await);
    clause(
        "read-after-create",
        read_after_create(&*first, &*second, &base).await,
    );
    clause(
        "list consistency",
        list_consistency(&*first, &*second, &base).await,
    );
    // Commits are optional: a store without them is served by the step-by-step protocols.
    let commits = match contract::commits_are_all_or_nothing(&*first, &base).await {
        Ok(false) => (
            Verdict::NotApplicable,
            "the store offers no commits of several operations at one instant (Store::commit_if): the path locks take their step-by-step path (safe, more round trips)".to_owned(),
        ),
        Ok(true) => judge(
            contract::commit_race(Arc::clone(&first), &base, RACE_WRITERS, RACE_ROUNDS)
                .await
                .map(|_| {
                    "all or nothing, each expectation honoured, no version reused; 16 writers raced to commit under each of 50 prefixes: one commit each".to_owned()
                }),
        ),
        Err(error) => judge(Err(error)),
    };
    clauses.push(ClauseReport {
        clause: "commits",
        verdict: commits.0,
        detail: commits.1,
    });
    let durability = if opener.durable() {
        judge(durability(&*first, opener, &base).await)
    } else {
        (
            Verdict::NotApplicable,
            "the store lives in one process's memory".to_owned(),
        )
    };
    clauses.push(ClauseReport {
        clause: "durability",
        verdict: durability.0,
        detail: durability.1,
    });
    let liveness = match owner_liveness(&*first, &*second).await {
        Ok(None) => (
            Verdict::NotApplicable,
            "the store proves no owner's death: every owner is unknown, and only expiry frees a crashed owner's locks (safe, slower)".to_owned(),
        ),
        outcome => judge(outcome.map(|detail| detail.expect("matched above"))),
    };
    clauses.push(ClauseReport {
        clause: "owner liveness",
        verdict: liveness.0,
        detail: liveness.1,
    });
    let (verdict, detail) = judge(ambiguous_outcomes(&*first, &*second, &base).await);
    clauses.push(ClauseReport {
        clause: "ambiguous outcomes",
        verdict,
        detail,
    });
    // Garbage: everything under the probe's prefix.
    if let Ok(keys) = first.list(&base).await {
        for key in keys {
            let _ = first.delete(&key).await;
        }
    }
    let passed = clauses
        .iter()
        .all(|c| !matches!(c.verdict, Verdict::Fail | Verdict::Error));
    Ok(ProbeReport {
        store: opener.describe(),
        clauses,
        passed,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// A store that notes the first error it returns into `first_error` (shared by the probe's
/// handles; the probe takes it after each clause).
struct NoteErrors {
    inner: Arc<dyn Store>,
    first_error: Arc<Mutex<Option<String>>>,
}

impl NoteErrors {
    fn note<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(error) = &result {
            let mut first = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
            first.get_or_insert_with(|| error.to_string());
        }
        result
    }
}

#[async_trait::async_trait]
impl Store for NoteErrors {
    async fn get(&self, key: &Key) -> Result<Option<(Vec<u8>, Version)>, StoreError> {
        self.note(self.inner.get(key).await)
    }
    async fn create(&self, key: &Key, bytes: &[u8]) -> Result<Created, StoreError> {
        self.note(self.inner.create(key, bytes).await)
    }
    async fn list(&self, prefix: &str) -> Result<Vec<Key>, StoreError> {
        self.note(self.inner.list(prefix).await)
    }
    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        self.note(self.inner.delete(key).await)
    }
    async fn commit_if(
        &self,
        expect: &[crate::store::Expect],
        creates: &[(Key, Vec<u8>)],
        deletes: &[Key],
    ) -> Result<crate::store::Commit, StoreError> {
        self.note(self.inner.commit_if(expect, creates, deletes).await)
    }
    fn offers_commits(&self) -> bool {
        self.inner.offers_commits()
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn entry_bytes_max(&self) -> Option<usize> {
        self.inner.entry_bytes_max()
    }
    async fn watch(&self, prefix: &str) -> Option<Box<dyn crate::store::ChangeHint>> {
        self.inner.watch(prefix).await
    }
    async fn register_owner(
        &self,
        owner: &str,
    ) -> Result<Option<Box<dyn crate::store::OwnerRegistration>>, StoreError> {
        self.note(self.inner.register_owner(owner).await)
    }
    async fn owner_liveness(&self, owner: &str) -> Result<crate::store::Liveness, StoreError> {
        self.note(self.inner.owner_liveness(owner).await)
    }
}

/// Readers never see part of an entry. On a fast store the readers may not overlap the writer
/// at all, which tests nothing: then the check runs again, up to three times, before it fails.
async fn whole_reads(store: &Arc<dyn Store>, base: &str) -> Result<String, String> {
    let mut outcome = Err(String::new());
    for attempt in 0..3 {
        outcome = contract::readers_never_see_torn_entries(
            Arc::clone(store),
            &format!("{base}whole{attempt}/"),
            20,
            256 << 10,
        )
        .await;
        match &outcome {
            Err(e) if e.contains("nothing was tested") => continue,
            _ => break,
        }
    }
    outcome.map(|()| {
        "3 readers polled 20 entries of 256 KiB while they were created: each absent or whole"
            .into()
    })
}

fn key(text: String) -> Key {
    Key::new(text).expect("probe keys are valid")
}

/// A create that returned is visible to another handle (another connection, another open of
/// the directory) at once: its get and its listing.
async fn read_after_create(
    first: &dyn Store,
    second: &dyn Store,
    base: &str,
) -> Result<String, String> {
    for i in 0..50 {
        let k = key(format!("{base}rac/{i:03}"));
        let bytes = format!("entry {i}").into_bytes();
        let _ = first.create(&k, &bytes).await.map_err(|e| e.to_string())?;
        match second.get(&k).await.map_err(|e| e.to_string())? {
            Some((read, _)) if read == bytes => {}
            other => {
                return Err(format!(
                    "{k}: created through one handle, another read {:?}",
                    other.map(|(b, _)| String::from_utf8_lossy(&b).into_owned())
                ))
            }
        }
        let listed = second
            .list(&format!("{base}rac/"))
            .await
            .map_err(|e| e.to_string())?;
        if !listed.contains(&k) {
            return Err(format!(
                "{k}: created through one handle, missing from another's listing"
            ));
        }
    }
    Ok("50 creates, each read and listed through a second handle right after it returned".into())
}

/// Listings are consistent with completed creates and deletes, whoever made them, and in
/// byte order.
async fn list_consistency(
    first: &dyn Store,
    second: &dyn Store,
    base: &str,
) -> Result<String, String> {
    contract::list_after_create(first, base, 30).await?;
    let prefix = format!("{base}listed/");
    let listed = second.list(&prefix).await.map_err(|e| e.to_string())?;
    if listed.len() != 30 {
        return Err(format!("a second handle lists {} of 30 keys", listed.len()));
    }
    let mut sorted = listed.clone();
    sorted.sort();
    if sorted != listed {
        return Err("a listing is not in byte order".into());
    }
    for k in listed.iter().step_by(2) {
        first.delete(k).await.map_err(|e| e.to_string())?;
        if second
            .list(&prefix)
            .await
            .map_err(|e| e.to_string())?
            .contains(k)
        {
            return Err(format!(
                "{k}: deleted through one handle, still listed by another"
            ));
        }
    }
    Ok("30 creates listed at once, in byte order; deletes unlisted at once, across handles".into())
}

/// What a create wrote is found by a handle opened after it.
async fn durability(first: &dyn Store, opener: &dyn Opener, base: &str) -> Result<String, String> {
    let k = key(format!("{base}durable"));
    let _ = first.create(&k, b"kept").await.map_err(|e| e.to_string())?;
    let fresh = opener.open().await.map_err(|e| e.to_string())?;
    match fresh.get(&k).await.map_err(|e| e.to_string())? {
        Some((bytes, _)) if bytes == b"kept" => Ok(
            "an entry read back through a handle opened after its create (power loss itself is not checked here)".into(),
        ),
        other => Err(format!("a fresh handle read {other:?} for an entry created before it opened")),
    }
}

/// An owner is never proven dead while its registration lives, nor when it never registered;
/// once its registration ends as a crash ends it, another handle sees it dead. `Ok(None)`: the
/// store proves no deaths at all.
async fn owner_liveness(first: &dyn Store, second: &dyn Store) -> Result<Option<String>, String> {
    use crate::store::Liveness;
    let owner = format!("probe-{:016x}", rand::random::<u64>());
    let never = format!("probe-never-{:016x}", rand::random::<u64>());
    let Some(registration) = first
        .register_owner(&owner)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    let seen = second
        .owner_liveness(&owner)
        .await
        .map_err(|e| e.to_string())?;
    if seen != Liveness::Alive {
        return Err(format!(
            "a registered, running owner reads {seen:?} through another handle"
        ));
    }
    let unknown = second
        .owner_liveness(&never)
        .await
        .map_err(|e| e.to_string())?;
    if unknown == Liveness::Dead {
        return Err("an owner that never registered reads Dead: a death without proof".into());
    }
    registration.end_as_crash();
    let seen = second
        .owner_liveness(&owner)
        .await
        .map_err(|e| e.to_string())?;
    if seen != Liveness::Dead {
        return Err(format!(
            "an owner whose registration ended as a crash reads {seen:?}"
        ));
    }
    Ok(Some(
        "a running owner reads alive, one never registered not dead, one ended as a crash dead, through another handle".into(),
    ))
}

/// A caller that lost a create's answer can learn the truth. Twenty creates are cut short once
/// under way (their futures dropped after 1 to 10 polls, or after 1 to 10 ms, as a cancelled
/// task or a timeout does), so that the caller does not know whether they landed; some land after the cut (FsStore's
/// blocking create runs on, an etcd request may commit). The caller then does what the
/// protocols do: retries the same create through another handle, and reads back. The retry must
/// answer (`AlreadyExists` where the cut create landed first, `Created` where it had not), the
/// read-back must return exactly the caller's bytes, and the entry must not change afterwards
/// (the cut create, landing late, must not create it a second time).
async fn ambiguous_outcomes(
    first: &dyn Store,
    second: &dyn Store,
    base: &str,
) -> Result<String, String> {
    let (mut cut, mut landed_first) = (0, 0);
    for i in 0..20u64 {
        let k = key(format!("{base}ambiguous/{i:03}"));
        let ours = format!("intent {:016x}", rand::random::<u64>()).into_bytes();
        let create = first.create(&k, &ours);
        let answer = if i < 10 {
            cut_after_polls(create, i + 1).await
        } else {
            let after = std::time::Duration::from_millis(i - 9);
            tokio::time::timeout(after, create).await.ok()
        };
        let was_cut = match answer {
            None => true,
            Some(answer) => {
                if !answer.map_err(|e| e.to_string())?.is_created() {
                    return Err(format!("{k}: a fresh key was not created"));
                }
                false
            }
        };
        // The answer is lost (or was never given): retry as the protocols do.
        let retried = second.create(&k, &ours).await.map_err(|e| e.to_string())?;
        if was_cut {
            cut += 1;
            if retried == Created::AlreadyExists {
                landed_first += 1;
            }
        }
        let version = match first.get(&k).await.map_err(|e| e.to_string())? {
            Some((read, version)) if read == ours => version,
            Some(_) => {
                return Err(format!(
                    "{k}: after a create cut short and its retry, the read-back returns other bytes than the caller's"
                ))
            }
            None => return Err(format!("{k}: absent after its retry answered {retried:?}")),
        };
        // Give a cut create still running time to land, then look again.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        match first.get(&k).await.map_err(|e| e.to_string())? {
            Some((read, again)) if read == ours && again == version => {}
            _ => {
                return Err(format!(
                "{k}: the entry changed after the retry: a create cut short landed a second time"
            ))
            }
        }
    }
    Ok(format!(
        "20 creates, {cut} cut short under way: {landed_first} of them found landed by their retry (AlreadyExists), {} created by it; every read-back returned the caller's bytes, unchanged afterwards",
        cut - landed_first
    ))
}

/// Polls `future` up to `polls` times, yielding to the runtime between polls, and drops it
/// if it has not finished by then: a create cut short once under way (`None`).
async fn cut_after_polls<F: std::future::Future>(future: F, polls: u64) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut polled = 0;
    std::future::poll_fn(|cx| match future.as_mut().poll(cx) {
        std::task::Poll::Ready(output) => std::task::Poll::Ready(Some(output)),
        std::task::Poll::Pending if polled + 1 >= polls => std::task::Poll::Ready(None),
        std::task::Poll::Pending => {
            polled += 1;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await
}

/// The opener of a store named by a spec: a new handle per call (a new connection, a new open
/// of the directory), except `mem`, which is one store in this process.
pub fn opener(spec: crate::store::StoreSpec) -> Box<dyn Opener> {
    match spec {
        crate::store::StoreSpec::Mem => {
            Box::new(SameStore(Arc::new(crate::store::MemStore::new())))
        }
        other => Box::new(SpecOpener(other)),
    }
}

struct SpecOpener(crate::store::StoreSpec);

#[async_trait::async_trait]
impl Opener for SpecOpener {
    async fn open(&self) -> Result<Arc<dyn Store>, StoreError> {
        Ok(self.0.open(true).await?.expect("created when missing"))
    }
    fn durable(&self) -> bool {
        true
    }
    fn describe(&self) -> String {
        self.0.to_string()
    }
}
