//! The etcd backend (feature `etcd`): the store trait on a real distributed engine, for
//! protocols whose clients span machines (specs/backends.md, "etcd").
//!
//! - **create-if-absent** is one transaction: `if create_revision(key) == 0 then put`.
//!   etcd orders every transaction through Raft, so of concurrent creators exactly one sees the
//!   compare succeed; the entry's create revision is its [`Version`].
//! - **get** and **list** are linearizable reads (etcd's default; never `serializable`), so a
//!   list sees every create and delete that completed before it started. A listing is paged
//!   (`list_page` keys at a time, 1,000 by default), each page read at the revision of the first, so one listing
//!   is one consistent snapshot however many keys it has.
//! - **delete** is a plain delete (garbage collection only).
//! - **Ambiguous outcomes are real here**: a transaction whose response is lost (a timeout, a
//!   dropped connection, a leader change) may have committed. Such an error is returned as
//!   [`StoreError::Unavailable`]; the protocols treat every error of a create as "it may have
//!   landed" and read back (specs/*.md, "ambiguous outcomes").
//! - **Owner liveness** is a lease. Registering an owner grants a lease (`lease_ttl`), puts
//!   `owners/alive/<owner>` bound to it and `owners/registered/<owner>` without it in one
//!   transaction (a failed registration is undone: never a record without its lease), and keeps
//!   the lease alive from a background task. A lease found gone is reported to the process
//!   ([`OwnerRegistration::lost`]): its lock manager then refuses new locks. The owner is `Alive` while the first key exists, `Dead`
//!   once it is gone but the second exists (the lease expired or was revoked: the etcd cluster's
//!   proof that the owner stopped renewing), `Unknown` if it never registered. A lease can end
//!   while its owner still runs (a stalled process or network, or a stalled leader revoking every
//!   lease: etcd #15247); the protocols are checked with exactly that (the models' force releases
//!   and zombies; specs/backends.md), never with "dead means not running". A leader change gives
//!   a lease its full TTL again (etcd #9888, #17132): death is proven later, never earlier.
//!
//! Every key lives under the store's namespace (`--store etcd:URL…?prefix=P`, default
//! `lockstep/`): entries at `P data/<key>`, owners at `P owners/…`.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, ConnectOptions, GetOptions, PutOptions, Txn, TxnOp};

use super::{
    Created, Key, Liveness, OwnerRegistration, Read, ReadOutcome, Store, StoreError, Version,
};

/// The largest entry: etcd's default request limit (`--max-request-bytes`, 1.5 MiB) less room for
/// the key and the transaction's framing. A cluster configured lower refuses larger entries with
/// [`StoreError::TooLarge`].
pub const ENTRY_BYTES_MAX: usize = 1_500_000;

/// How an [`EtcdStore`] connects and keeps owners alive.
#[derive(Clone, Debug)]
pub struct EtcdOptions {
    /// Every key lives under this prefix (several stores can share one cluster).
    pub prefix: String,
    /// Per-request deadline: a request that does not answer in time is an error (its outcome
    /// unknown, for a write).
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// The TTL of an owner's lease: how long after its process stops renewing the cluster
    /// proves it dead. etcd raises a TTL below its minimum (a few seconds at default settings)
    /// to that minimum.
    pub lease_ttl: Duration,
    /// Keys per page of a listing (every page read at the first page's revision).
    pub list_page: i64,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        EtcdOptions {
            prefix: "lockstep/".into(),
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            lease_ttl: Duration::from_secs(10),
            list_page: 1_000,
        }
    }
}

/// The store on an etcd cluster.
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    endpoints: Vec<String>,
    options: Arc<EtcdOptions>,
    /// The server compares key ranges in a Txn (etcd 3.3 or later): `commit_if` is offered.
    /// An older server ignores a compare's range end and would check one key, so no commits.
    commits: bool,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EtcdStore({})", self.describe())
    }
}

fn unavailable(what: &str, error: etcd_client::Error) -> StoreError {
    StoreError::Unavailable(format!("etcd {what}: {error}"))
}

impl EtcdStore {
    /// Connects to the cluster at `endpoints` (`http://host:port`, any member).
    pub async fn connect(
        endpoints: &[String],
        options: EtcdOptions,
    ) -> Result<EtcdStore, StoreError> {
        if endpoints.is_empty() {
            return Err(StoreError::Unsupported("etcd: no endpoint given".into()));
        }
        if options.prefix.is_empty() || options.prefix.contains('\0') {
            return Err(StoreError::Unsupported(format!(
                "etcd: the prefix {:?} must be non-empty and contain no NUL",
                options.prefix
            )));
        }
        let connect = ConnectOptions::new()
            .with_timeout(options.request_timeout)
            .with_connect_timeout(options.connect_timeout)
            .with_keep_alive(Duration::from_secs(2), options.request_timeout)
            // Refuse answers from a member that has lost its leader rather than wait forever.
            .with_require_leader(true);
        let client = tokio::time::timeout(
            options.connect_timeout + options.request_timeout,
            Client::connect(endpoints, Some(connect)),
        )
        .await
        .map_err(|_| {
            StoreError::Unavailable(format!("etcd at {}: no answer", endpoints.join(",")))
        })?
        .map_err(|e| unavailable(&format!("at {}", endpoints.join(",")), e))?;
        let mut store = EtcdStore {
            client,
            endpoints: endpoints.to_vec(),
            options: Arc::new(options),
            commits: false,
        };
        // One read now, so that a dead cluster is reported at open, not at the first operation.
        let mut kv = store.client.kv_client();
        kv.get(
            store.data_key(""),
            Some(GetOptions::new().with_count_only()),
        )
        .await
        .map_err(|e| StoreError::Unavailable(format!("etcd at {}: {e}", endpoints.join(","))))?;
        // Commits need range compares (etcd 3.3). A server that does not say its version (no
        // permission for Status) gets no commits: the step-by-step protocols are as correct.
        let version = store.client.maintenance_client().status().await.ok();
        let version = version.as_ref().map(|status| status.version().to_owned());
        store.commits = version.as_deref().and_then(major_minor) >= Some((3, 3));
        if !store.commits {
            tracing::info!(
                ?version,
                "etcd: no commits (they need range compares, etcd 3.3 or later)"
            );
        }
        Ok(store)
    }

    fn data_key(&self, key: &str) -> Vec<u8> {
        format!("{}data/{key}", self.options.prefix).into_bytes()
    }

    fn alive_key(&self, owner: &str) -> Vec<u8> {
        format!("{}owners/alive/{owner}", self.options.prefix).into_bytes()
    }

    fn registered_key(&self, owner: &str) -> Vec<u8> {
        format!("{}owners/registered/{owner}", self.options.prefix).into_bytes()
    }

    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    pub fn options(&self) -> &EtcdOptions {
        &self.options
    }
}

/// Whether etcd refused a request for its size (the server's limit, or the client's own
/// message-size limit for gRPC): nothing was written.
fn too_large(status: &tonic::Status) -> bool {
    let message = status.message();
    matches!(
        status.code(),
        tonic::Code::InvalidArgument | tonic::Code::ResourceExhausted | tonic::Code::OutOfRange
    ) && (message.contains("too large") || message.contains("larger than max"))
}

/// A change hint on etcd: a watch's event stream. A response is a change (or a progress
/// notice, which only wakes the waiter early); a stream that ends or fails gives no more hints,
/// and its waiter sleeps its pauses out, polling as without hints.
struct EtcdHint {
    stream: etcd_client::WatchStream,
    ended: bool,
}

#[async_trait::async_trait]
impl super::ChangeHint for EtcdHint {
    async fn changed(&mut self, limit: Duration) {
        let started = tokio::time::Instant::now();
        if !self.ended {
            match tokio::time::timeout(limit, self.stream.message()).await {
                Ok(Ok(Some(_))) | Err(_) => return,
                Ok(_) => self.ended = true,
            }
        }
        tokio::time::sleep(limit.saturating_sub(started.elapsed())).await;
    }
}

/// The smallest key after every key that starts with `prefix` (etcd's range end for a prefix).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0] // every key
}

/// `3.4.23` → (3, 4).
fn major_minor(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Operations per Txn of a batched read or delete: etcd refuses a Txn of more than
/// `--max-txn-ops` operations (128 by default), so larger batches take several round trips.
const TXN_OPS: usize = 64;

impl EtcdStore {
    /// Sends a create's Txn. An error here may follow a commit whose answer was lost: the
    /// caller must read back. Only a refusal the server gives before its log holds the write is
    /// certain to have changed nothing: an entry over its request limit.
    async fn create_txn(
        &self,
        key: &Key,
        bytes: usize,
        txn: Txn,
    ) -> Result<etcd_client::TxnResponse, StoreError> {
        let mut kv = self.client.kv_client();
        kv.txn(txn).await.map_err(|e| match &e {
            etcd_client::Error::GRpcStatus(status) if too_large(status) => StoreError::TooLarge {
                key: key.to_string(),
                bytes,
                reason: format!(
                    "etcd: {} (its request limit, --max-request-bytes, is 1.5 MiB by default)",
                    status.message()
                ),
            },
            _ => unavailable(&format!("create {key} (it may have landed)"), e),
        })
    }

    /// One range per read: a list is keys only; a list-then-get takes the values too (a
    /// journal is short); each at most a page long.
    fn read_ops(&self, reads: &[Read]) -> Vec<TxnOp> {
        let page = self.options.list_page.max(1);
        reads
            .iter()
            .map(|read| {
                let (prefix, values) = match read {
                    Read::Get(key) => return TxnOp::get(self.data_key(key.as_str()), None),
                    Read::List(prefix) => (prefix, false),
                    Read::ListThenGetLast { prefix, .. } => (prefix, true),
                };
                let full = self.data_key(prefix);
                let mut options = GetOptions::new()
                    .with_range(prefix_end(&full))
                    .with_limit(page);
                if !values {
                    options = options.with_keys_only();
                }
                TxnOp::get(full, Some(options))
            })
            .collect()
    }

    /// What each read's range found. A range longer than a page is read again with the plain
    /// calls.
    async fn read_outcomes(
        &self,
        reads: &[Read],
        answers: Vec<etcd_client::TxnOpResponse>,
    ) -> Result<Vec<ReadOutcome>, StoreError> {
        if answers.len() != reads.len() {
            return Err(StoreError::Unavailable(format!(
                "etcd: a read transaction answered {} ranges for {} reads",
                answers.len(),
                reads.len()
            )));
        }
        let strip = self.data_key("").len();
        let mut out = Vec::with_capacity(reads.len());
        for (read, answer) in reads.iter().zip(answers) {
            let etcd_client::TxnOpResponse::Get(range) = answer else {
                return Err(StoreError::Unavailable(
                    "etcd: a read transaction answered with something other than ranges".into(),
                ));
            };
            if range.more() {
                out.push(read.run_on(self).await?);
                continue;
            }
            let mut found = Vec::with_capacity(range.kvs().len());
            for entry in range.kvs() {
                let name = std::str::from_utf8(&entry.key()[strip..]).map_err(|_| {
                    StoreError::Unsupported("etcd: a key in a read is not UTF-8".into())
                })?;
                found.push((Key::new(name)?, entry));
            }
            let value = |entry: &etcd_client::KeyValue| {
                (
                    entry.value().to_vec(),
                    Version(entry.create_revision() as u64),
                )
            };
            let last = match read {
                Read::Get(key) => Some((key.clone(), range.kvs().first().map(value))),
                Read::List(_) => None,
                Read::ListThenGetLast { prefix, pick } => found
                    .iter()
                    .rev()
                    .find(|(key, _)| pick(prefix, key.as_str()))
                    .map(|(key, entry)| (key.clone(), Some(value(entry)))),
            };
            let keys = match read {
                Read::Get(_) => Vec::new(),
                _ => found.into_iter().map(|(key, _)| key).collect(),
            };
            out.push(ReadOutcome { keys, last });
        }
        Ok(out)
    }
}

#[async_trait::async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &Key) -> Result<Option<(Vec<u8>, Version)>, StoreError> {
        let mut kv = self.client.kv_client();
        let response = kv
            .get(self.data_key(key.as_str()), None)
            .await
            .map_err(|e| unavailable(&format!("get {key}"), e))?;
        Ok(response.kvs().first().map(|entry| {
            (
                entry.value().to_vec(),
                Version(entry.create_revision() as u64),
            )
        }))
    }

    async fn create(&self, key: &Key, bytes: &[u8]) -> Result<Created, StoreError> {
        let name = self.data_key(key.as_str());
        let txn = Txn::new()
            .when([Compare::create_revision(name.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(name, bytes.to_vec(), None)]);
        let response = self.create_txn(key, bytes.len(), txn).await?;
        if !response.succeeded() {
            return Ok(Created::AlreadyExists);
        }
        let revision = response.header().map_or(0, |h| h.revision());
        Ok(Created::Created(Version(revision as u64)))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<Key>, StoreError> {
        let full = self.data_key(prefix);
        let strip = self.data_key("").len();
        let end = prefix_end(&full);
        let mut kv = self.client.kv_client();
        let mut keys = Vec::new();
        let mut from = full;
        let mut revision = 0;
        // Bounded: every page but the last is full, and a page moves `from` past its last key.
        for _ in 0..u32::MAX {
            let mut options = GetOptions::new()
                .with_range(end.clone())
                .with_keys_only()
                .with_limit(self.options.list_page.max(1));
            if revision != 0 {
                options = options.with_revision(revision);
            }
            let response = kv
                .get(from.clone(), Some(options))
                .await
                .map_err(|e| unavailable(&format!("list {prefix}"), e))?;
            if revision == 0 {
                revision = response.header().map_or(0, |h| h.revision());
            }
            for entry in response.kvs() {
                let name = std::str::from_utf8(&entry.key()[strip..]).map_err(|_| {
                    StoreError::Unsupported(format!("etcd: a key under {prefix} is not UTF-8"))
                })?;
                keys.push(Key::new(name)?);
            }
            let Some(last) = response.kvs().last() else {
                break;
            };
            if !response.more() {
                break;
            }
            from = last.key().to_vec();
            from.push(0); // the next key after the last one
        }
        Ok(keys)
    }

    /// One Txn of ranges, one per read, all at one revision: one round trip instead of one per
    /// list and get. Stronger than the plain calls one after another (nothing lands between
    /// them), which every caller accepts. A range longer than a page falls back to the plain
    /// calls for that read.
    async fn read_many(&self, reads: &[Read]) -> Result<Vec<ReadOutcome>, StoreError> {
        let mut out = Vec::with_capacity(reads.len());
        for chunk in reads.chunks(TXN_OPS) {
            let mut kv = self.client.kv_client();
            let response = kv
                .txn(Txn::new().and_then(self.read_ops(chunk)))
                .await
                .map_err(|e| unavailable(&format!("read {} journals", chunk.len()), e))?;
            out.extend(self.read_outcomes(chunk, response.op_responses()).await?);
        }
        Ok(out)
    }

    /// The create's Txn with the reads after its put: one round trip, and the reads see the
    /// store as the create left it.
    async fn create_then_read(
        &self,
        key: &Key,
        bytes: &[u8],
        persist: super::Persist,
        reads: &[Read],
    ) -> Result<(Created, Vec<ReadOutcome>), StoreError> {
        if reads.len() >= TXN_OPS {
            // Too many for the create's Txn: the plain calls.
            return match self.create_persisting(key, bytes, persist).await? {
                Created::AlreadyExists => Ok((Created::AlreadyExists, Vec::new())),
                created => Ok((created, self.read_many(reads).await?)),
            };
        }
        let name = self.data_key(key.as_str());
        let mut ops = vec![TxnOp::put(name.clone(), bytes.to_vec(), None)];
        ops.extend(self.read_ops(reads));
        let txn = Txn::new()
            .when([Compare::create_revision(name, CompareOp::Equal, 0)])
            .and_then(ops);
        let response = self.create_txn(key, bytes.len(), txn).await?;
        if !response.succeeded() {
            return Ok((Created::AlreadyExists, Vec::new()));
        }
        let revision = response.header().map_or(0, |h| h.revision());
        let mut answers = response.op_responses();
        if answers.is_empty() {
            return Err(StoreError::Unavailable(
                "etcd: a create transaction answered no put (it landed)".into(),
            ));
        }
        answers.remove(0);
        let found = self.read_outcomes(reads, answers).await?;
        Ok((Created::Created(Version(revision as u64)), found))
    }

    /// One Txn: every expectation and every create's absence as its compares, the puts and
    /// deletes as its operations. A commit too large for one Txn is not offered (the caller
    /// takes its step-by-step path), never split: split, it would not be one instant.
    async fn commit_if(
        &self,
        expect: &[super::Expect],
        creates: &[(Key, Vec<u8>)],
        deletes: &[Key],
    ) -> Result<super::Commit, StoreError> {
        let Some((first, _)) = creates.first() else {
            return Ok(super::Commit::NotOffered);
        };
        if !self.commits {
            return Ok(super::Commit::NotOffered);
        }
        if expect.len() + creates.len() > TXN_OPS || creates.len() + deletes.len() > TXN_OPS {
            return Ok(super::Commit::NotOffered);
        }
        let mut compares: Vec<Compare> = expect
            .iter()
            .map(|expect| match expect {
                // Created at that revision and never written since (an entry lockstep wrote is
                // never overwritten; one overwritten out of band is not the entry remembered).
                super::Expect::Is(key, version) => Compare::mod_revision(
                    self.data_key(key.as_str()),
                    CompareOp::Equal,
                    version.0 as i64,
                ),
                super::Expect::NoneBetween(from, to) => {
                    // etcd compares every key of [from, end); none at all compares as 0.
                    let mut end = self.data_key(to.as_str());
                    end.push(0);
                    Compare::create_revision(self.data_key(from.as_str()), CompareOp::Equal, 0)
                        .with_range(end)
                }
            })
            .collect();
        let mut ops = Vec::with_capacity(creates.len() + deletes.len());
        let mut bytes = 0;
        for (key, value) in creates {
            let name = self.data_key(key.as_str());
            compares.push(Compare::create_revision(name.clone(), CompareOp::Equal, 0));
            ops.push(TxnOp::put(name, value.clone(), None));
            bytes += value.len();
        }
        for key in deletes {
            ops.push(TxnOp::delete(self.data_key(key.as_str()), None));
        }
        let txn = Txn::new().when(compares).and_then(ops);
        let response = self.create_txn(first, bytes, txn).await?;
        if !response.succeeded() {
            return Ok(super::Commit::Refused);
        }
        // Without a header the commit landed at a revision we do not know: an outcome the
        // caller must read back, not a version to remember.
        let Some(header) = response.header() else {
            return Err(StoreError::Unavailable(
                "etcd: a commit answered without a revision (it landed)".into(),
            ));
        };
        Ok(super::Commit::Committed(Version(header.revision() as u64)))
    }

    fn offers_commits(&self) -> bool {
        self.commits
    }

    /// Garbage in Txns of deletes: one round trip per [`TXN_OPS`] keys.
    async fn delete_lazily_many(&self, keys: &[Key]) -> Result<(), StoreError> {
        for chunk in keys.chunks(TXN_OPS) {
            let ops: Vec<TxnOp> = chunk
                .iter()
                .map(|key| TxnOp::delete(self.data_key(key.as_str()), None))
                .collect();
            let mut kv = self.client.kv_client();
            kv.txn(Txn::new().and_then(ops))
                .await
                .map_err(|e| unavailable(&format!("delete {} keys", chunk.len()), e))?;
        }
        Ok(())
    }

    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        let mut kv = self.client.kv_client();
        kv.delete(self.data_key(key.as_str()), None)
            .await
            .map_err(|e| unavailable(&format!("delete {key}"), e))?;
        Ok(())
    }

    fn describe(&self) -> String {
        format!(
            "etcd:{}?prefix={}",
            self.endpoints.join(","),
            self.options.prefix
        )
    }

    fn entry_bytes_max(&self) -> Option<usize> {
        Some(ENTRY_BYTES_MAX)
    }

    /// An etcd watch on the prefix, in place once etcd confirms it (`created`), so that the
    /// caller's read after it misses no change. Any trouble (no answer, a refused watch) gives no
    /// hint: the caller polls.
    async fn watch(&self, prefix: &str) -> Option<Box<dyn super::ChangeHint>> {
        let limit = self.options.request_timeout;
        let mut client = self.client.watch_client();
        let options = etcd_client::WatchOptions::new().with_prefix();
        let mut stream =
            tokio::time::timeout(limit, client.watch(self.data_key(prefix), Some(options)))
                .await
                .ok()?
                .ok()?;
        let first = tokio::time::timeout(limit, stream.message())
            .await
            .ok()?
            .ok()??;
        first.created().then(|| {
            Box::new(EtcdHint {
                stream,
                ended: false,
            }) as Box<dyn super::ChangeHint>
        })
    }

    async fn register_owner(
        &self,
        owner: &str,
    ) -> Result<Option<Box<dyn OwnerRegistration>>, StoreError> {
        let ttl = self.options.lease_ttl.as_secs().max(1) as i64;
        let mut lease = self.client.lease_client();
        let granted = lease
            .grant(ttl, None)
            .await
            .map_err(|e| unavailable("lease grant", e))?;
        let id = granted.id();
        let mut kv = self.client.kv_client();
        // Both keys in one transaction: `registered` is the proof that the owner existed once
        // `alive` is gone (an owner never seen is `Unknown`, not `Dead`), so it must never exist
        // without its lease-bound `alive`.
        let both = Txn::new().and_then([
            TxnOp::put(self.registered_key(owner), id.to_string(), None),
            TxnOp::put(
                self.alive_key(owner),
                id.to_string(),
                Some(PutOptions::new().with_lease(id)),
            ),
        ]);
        if let Err(error) = kv.txn(both).await {
            // It may have landed: undo it, so that a process running unregistered is never
            // proven dead. (If the undo fails too, the lease's expiry leaves a record without
            // `alive`: "dead" for an owner that wrote nothing under its id, which is harmless.)
            let undo = async {
                let _ = kv.delete(self.registered_key(owner), None).await;
                let _ = lease.revoke(id).await;
            };
            let _ = tokio::time::timeout(self.options.request_timeout, undo).await;
            return Err(unavailable("register owner", error));
        }
        let lost = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let keeper = tokio::spawn(keep_alive(
            self.client.clone(),
            id,
            ttl,
            self.options.request_timeout,
            Arc::clone(&lost),
        ));
        Ok(Some(Box::new(EtcdRegistration {
            endpoints: self.endpoints.clone(),
            options: Arc::clone(&self.options),
            lease: id,
            registered: self.registered_key(owner),
            alive: self.alive_key(owner),
            keeper,
            lost,
            ended: std::sync::atomic::AtomicBool::new(false),
        })))
    }

    async fn owner_liveness(&self, owner: &str) -> Result<Liveness, StoreError> {
        // Both keys read in one transaction: one revision, one answer.
        let count = || Some(GetOptions::new().with_count_only());
        let read = Txn::new().and_then([
            TxnOp::get(self.alive_key(owner), count()),
            TxnOp::get(self.registered_key(owner), count()),
        ]);
        let mut kv = self.client.kv_client();
        let response = kv
            .txn(read)
            .await
            .map_err(|e| unavailable("owner liveness", e))?;
        let counts: Vec<i64> = response
            .op_responses()
            .into_iter()
            .map(|r| match r {
                etcd_client::TxnOpResponse::Get(get) => get.count(),
                _ => 0,
            })
            .collect();
        Ok(match counts.as_slice() {
            [alive, _] if *alive > 0 => Liveness::Alive,
            [_, registered] if *registered > 0 => Liveness::Dead,
            _ => Liveness::Unknown,
        })
    }
}

/// Renews lease `id` every third of its TTL until the task is stopped. Every renewal has a
/// deadline (`request_timeout`); one that fails or times out reconnects and is tried again at
/// once, then at each half tick, so that a stalled member does not cost the lease. Once the
/// cluster says the lease is gone (it expired in a stall or partition, or was revoked), the
/// owner is dead to the cluster for good: `lost` is set and the task ends. This process runs on
/// as a zombie; fencing keeps it from doing harm, and its lock manager refuses new locks.
async fn keep_alive(
    client: Client,
    id: i64,
    ttl: i64,
    request_timeout: Duration,
    lost: Arc<std::sync::atomic::AtomicBool>,
) {
    let every = Duration::from_millis((ttl as u64 * 1000 / 3).max(200));
    let mut lease = client.lease_client();
    let mut stream = None;
    let gone = |lost: &std::sync::atomic::AtomicBool| {
        tracing::error!(lease = id, "this process's etcd owner lease is gone: the cluster proves it dead from now on, and what it holds may be taken over; its lock manager refuses new locks");
        lost.store(true, std::sync::atomic::Ordering::SeqCst);
    };
    loop {
        let renewed = tokio::time::timeout(request_timeout, async {
            if stream.is_none() {
                match lease.keep_alive(id).await {
                    Ok(opened) => stream = Some(opened),
                    // etcd answers an unknown lease with an error: it has expired.
                    Err(etcd_client::Error::GRpcStatus(status))
                        if status.code() == tonic::Code::NotFound =>
                    {
                        return Some(0);
                    }
                    Err(_) => return None,
                }
            }
            let (keeper, responses) = stream.as_mut()?;
            keeper.keep_alive().await.ok()?;
            responses.message().await.ok().flatten().map(|r| r.ttl())
        })
        .await
        .ok()
        .flatten();
        match renewed {
            Some(ttl_left) if ttl_left <= 0 => {
                gone(&lost);
                return;
            }
            Some(_) => tokio::time::sleep(every).await,
            None => {
                // Reconnect and try again soon: the lease still has time left.
                stream = None;
                tokio::time::sleep(every / 2).await;
            }
        }
    }
}

/// An owner's registration on etcd: its lease, renewed until the registration ends.
struct EtcdRegistration {
    endpoints: Vec<String>,
    options: Arc<EtcdOptions>,
    lease: i64,
    registered: Vec<u8>,
    alive: Vec<u8>,
    keeper: tokio::task::JoinHandle<()>,
    /// The keep-alive task found the lease gone.
    lost: Arc<std::sync::atomic::AtomicBool>,
    ended: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for EtcdRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EtcdRegistration(lease {:x})", self.lease)
    }
}

impl EtcdRegistration {
    /// Stops renewing and revokes the lease (and, for a clean end, deletes the registration
    /// record), and returns once the cluster has answered: afterwards the owner is `Dead` (or
    /// `Unknown`), as on the other backends. It runs on a thread and a connection of its own,
    /// so that it can be called from anywhere, a runtime's only worker thread included.
    fn end(&self, forget: bool) {
        if self.ended.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        self.keeper.abort();
        let (endpoints, options) = (self.endpoints.clone(), Arc::clone(&self.options));
        let (lease, registered, alive) = (self.lease, self.registered.clone(), self.alive.clone());
        let ended = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async move {
                let connect = ConnectOptions::new()
                    .with_timeout(options.request_timeout)
                    .with_connect_timeout(options.connect_timeout);
                let mut client = Client::connect(&endpoints, Some(connect)).await.ok()?;
                if forget {
                    // A clean end: both keys go at once (never a moment of "dead"), then the lease.
                    let both = Txn::new()
                        .and_then([TxnOp::delete(registered, None), TxnOp::delete(alive, None)]);
                    client.txn(both).await.ok()?;
                }
                client.lease_revoke(lease).await.ok()?;
                Some(())
            })
        })
        .join();
        if !matches!(ended, Ok(Some(()))) {
            // The cluster is unreachable: the lease expires by itself after its TTL.
            tracing::warn!(
                lease,
                "could not revoke an owner's etcd lease; it expires after its TTL"
            );
        }
    }
}

impl OwnerRegistration for EtcdRegistration {
    fn lost(&self) -> bool {
        self.lost.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// As a crash: the lease is revoked (the cluster's proof of death comes at once rather than
    /// after the TTL) and the registration record stays, so the owner is `Dead`.
    fn end_as_crash(self: Box<Self>) {
        self.end(false);
    }
}

impl Drop for EtcdRegistration {
    /// A clean end: the lease is revoked and the record deleted, so the owner is forgotten
    /// (`Unknown`), as on the other backends.
    fn drop(&mut self) {
        self.end(true);
    }
}
