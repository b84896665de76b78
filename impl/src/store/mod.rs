//! The one storage primitive every protocol rests on (DESIGN §2, specs/backends.md):
//!
//! ```text
//! get(key)           -> Option<(bytes, version)>
//! create(key, bytes) -> Created(version) | AlreadyExists    atomic create-if-absent, whole or nothing
//! list(prefix)       -> keys, sorted                         consistent after a completed create/delete
//! delete(key)        -> ()                                   garbage collection only
//! ```
//!
//! Porting lockstep to a backend means implementing [`Store`] and passing the conformance suite
//! in `tests/` (`lockstep_tests::conformance`). Nothing in the trait assumes a file system.

pub mod contract;
#[cfg(feature = "etcd")]
mod etcd;
mod faulty;
mod fs;
mod inotify;
mod key;
mod memory;
mod spec;

use std::fmt;

#[cfg(feature = "etcd")]
pub use etcd::{EtcdOptions, EtcdStore};
pub use faulty::{Fault, FaultyStore, Operation as FaultyOperation, HANG_NOTICE};

#[cfg(all(feature = "etcd", feature = "shuttle"))]
compile_error!("the `etcd` and `shuttle` features exclude each other: shuttle replaces tokio's runtime, which etcd-client needs");
pub use fs::{CreateStep, Durability, FsStore};
pub use key::{InvalidKey, Key, COMPONENT_BYTES_MAX, KEY_BYTES_MAX};
pub use memory::{MemCore, MemStore};
pub use spec::{StoreSpec, FS_STATE_DIR};

/// An opaque version of a stored entry (a file's inode, a memory counter, an etcd revision).
/// Entries are immutable, so a version only tells two entries with one key apart over time
/// (after a delete and a new create).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version(pub u64);

/// The outcome of a create-if-absent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Created {
    /// This call created the entry; it is durable and visible to every reader.
    Created(Version),
    /// An entry with this key existed already; nothing was written.
    AlreadyExists,
}

impl Created {
    pub fn is_created(self) -> bool {
        matches!(self, Created::Created(_))
    }
}

/// What a create promises about a crash of the whole machine (power loss, a kernel panic), as
/// opposed to a crash of its process, which never tears or loses a returned create. Backends
/// that cannot make an entry visible before it is durable (memory, etcd) treat every level as
/// [`Persist::Durable`]; FsStore saves one `fsync` for each weaker level (specs/lock.md §12,
/// "Where the time of a cycle goes", proves in the model where each is safe).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Persist {
    /// The name and the bytes survive a machine crash once the create returns (the default).
    Durable,
    /// The name survives a machine crash once the create returns; the bytes may not (they may be
    /// empty or torn afterwards). Only for entries whose bytes no reader decodes: tickets.
    NameOnly,
    /// A machine crash may take the name away again; if the name survives, its bytes are whole.
    /// Only for entries whose loss in a machine crash is harmless to the protocol: the path
    /// locks' own entries, whose writers all die with the machine.
    MayVanish,
}

/// One read of [`Store::read_many`]. Each is what the plain calls would do, no more.
#[derive(Clone, Debug)]
pub enum Read {
    /// [`Store::get`] of the key (found in [`ReadOutcome::last`], with no keys listed).
    Get(Key),
    /// [`Store::list`] of the prefix.
    List(String),
    /// [`Store::list`] of the prefix, then [`Store::get`] of the last listed key that `pick`
    /// accepts (given the prefix and the key), if any: a journal's newest entry.
    ListThenGetLast {
        prefix: String,
        pick: fn(&str, &str) -> bool,
    },
}

/// What one [`Read`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadOutcome {
    /// Every key with the prefix, in byte order.
    pub keys: Vec<Key>,
    /// For [`Read::ListThenGetLast`]: the key picked and what the get found there (`None`: it
    /// was deleted between the list and the get). For [`Read::Get`]: the key and what is there.
    pub last: Option<(Key, Option<(Vec<u8>, Version)>)>,
}

impl Read {
    /// The plain calls, one after the other: [`Store::read_many`]'s meaning, and its default.
    pub async fn run_on<S: Store + ?Sized>(&self, store: &S) -> Result<ReadOutcome, StoreError> {
        match self {
            Read::Get(key) => Ok(ReadOutcome {
                keys: Vec::new(),
                last: Some((key.clone(), store.get(key).await?)),
            }),
            Read::List(prefix) => Ok(ReadOutcome {
                keys: store.list(prefix).await?,
                last: None,
            }),
            Read::ListThenGetLast { prefix, pick } => {
                let keys = store.list(prefix).await?;
                let last = match keys.iter().rev().find(|k| pick(prefix, k.as_str())) {
                    Some(key) => Some((key.clone(), store.get(key).await?)),
                    None => None,
                };
                Ok(ReadOutcome { keys, last })
            }
        }
    }
}

/// One condition of [`Store::commit_if`], checked at the instant the commit lands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// `key` holds the very entry a read returned with this version. Sound only because a
    /// backend that offers commits never gives two entries of one key the same version, even
    /// across a delete (etcd: the entry's create revision; MemStore: a counter).
    Is(Key, Version),
    /// No key `k` with `from <= k <= to` (byte order) exists.
    NoneBetween(Key, Key),
}

/// The outcome of [`Store::commit_if`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Commit {
    /// Every expectation held and every create was absent: all creates landed at one instant
    /// (with this version each), and the deletes with them.
    Committed(Version),
    /// An expectation failed or a create's key existed: nothing was written.
    Refused,
    /// This store cannot commit several operations at one instant: nothing was tried, and the
    /// caller takes its step-by-step path.
    NotOffered,
}

/// What can go wrong in a store. `AlreadyExists` is not an error: see [`Created`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    InvalidKey(#[from] InvalidKey),
    /// No space left; nothing was created.
    #[error("storage full while creating {key}: nothing was created")]
    Full { key: String },
    /// The backend refuses an entry this large (etcd: its request limit); nothing was created.
    #[error("the store refuses {key} ({bytes} bytes): {reason}; nothing was created")]
    TooLarge {
        key: String,
        bytes: usize,
        reason: String,
    },
    /// The backend cannot be reached (a dead server, an unmounted disk).
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("I/O error on {key}: {source}")]
    Io {
        key: String,
        #[source]
        source: std::io::Error,
    },
    /// Something sits at the key that the store did not write and will not follow or overwrite
    /// (a symlink, a directory, a named pipe). Whatever it guards stays guarded until an operator
    /// moves it away (`lockstep repair KEY` moves it to the store's quarantine).
    #[error("{key} is {what} inside the store, not an entry lockstep wrote (lockstep never follows symlinks or writes over foreign files in its store); move it away, e.g. with `lockstep repair`")]
    Foreign { key: String, what: &'static str },
    /// The backend's environment lacks something the protocol needs (hard links, a local file
    /// system): refused before anything is written.
    #[error("unsupported store: {0}")]
    Unsupported(String),
    /// A fault injected by a test wrapper.
    #[error("injected fault: {0}")]
    Injected(String),
}

impl StoreError {
    pub fn io(key: impl fmt::Display, source: std::io::Error) -> StoreError {
        // ENOSPC / EDQUOT: a full store is its own, clearly reported condition.
        match source.raw_os_error() {
            Some(28) | Some(122) => StoreError::Full {
                key: key.to_string(),
            },
            _ => StoreError::Io {
                key: key.to_string(),
                source,
            },
        }
    }
}

/// What a store can prove about an owner (a process run that holds locks). Recovery releases a
/// lock early only on proof of its owner's death; anything not proven dead is freed by expiry
/// alone (specs/lock.md §10).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Liveness {
    /// Proven alive: it holds its registration now.
    Alive,
    /// Proven dead: its registration is held by nobody (the kernel dropped its file lock at its
    /// death, or it ended its registration).
    Dead,
    /// No proof either way (never registered here, another host, a backend without proofs).
    Unknown,
}

/// An owner's registration: while it lives, the store answers `Alive` for its owner; once it is
/// dropped, or its process dies, `Dead`.
pub trait OwnerRegistration: Send + Sync + fmt::Debug {
    /// A file descriptor whose open file keeps the registration alive, if there is one: a child
    /// process that inherits it keeps its owner alive until the child dies too (`lockstep lock`
    /// passes it to COMMAND, so that a COMMAND outliving lockstep for a moment is not judged
    /// dead with it).
    fn inheritable_fd(&self) -> Option<i32> {
        None
    }

    /// Ends the registration as a crash of its process would (for crash-injection harnesses):
    /// the owner is provably dead afterwards. Dropping a registration instead is a clean end,
    /// after which a backend may forget the owner (then it is `Unknown`, and expiry decides).
    fn end_as_crash(self: Box<Self>) {}

    /// Whether the store has ended this registration behind the process's back (etcd: its
    /// lease expired in a stall or was revoked): the store proves the owner dead while it runs.
    /// Its lock manager then refuses new locks; what it holds may already be taken over.
    fn lost(&self) -> bool {
        false
    }
}

/// A wake-up hint that entries under a prefix may have changed ([`Store::watch`]). Only an
/// optimisation: it may fire for no change (spurious), late, or never (lost). Its user re-reads
/// the store after every wake, and still wakes on its own after the limit it passes, so a store
/// that gives no hints is exactly as correct, only slower to hand a lock over (specs/lock.md
/// §4, "Waiting").
#[async_trait::async_trait]
pub trait ChangeHint: Send {
    /// Returns once a change under the watched prefix may have happened since the hint was made
    /// (or since the previous call returned), or after `limit`, whichever is first.
    async fn changed(&mut self, limit: std::time::Duration);
}

/// A key-value store with atomic create-if-absent. Implementations must be safe to call from many
/// tasks and threads at once, and (for persistent backends) from many processes.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// The entry's bytes and version, or `None` if absent.
    async fn get(&self, key: &Key) -> Result<Option<(Vec<u8>, Version)>, StoreError>;

    /// Creates `key` with `bytes` if no entry has that key. Of concurrent creators of one key
    /// exactly one gets `Created`. A reader never observes a partially written entry, and a crash
    /// at any point leaves the key absent or whole.
    async fn create(&self, key: &Key, bytes: &[u8]) -> Result<Created, StoreError>;

    /// [`Store::create`] with the promise about a machine crash that `persist` names; a backend
    /// may always keep a stronger one (the default makes every create durable).
    async fn create_persisting(
        &self,
        key: &Key,
        bytes: &[u8],
        persist: Persist,
    ) -> Result<Created, StoreError> {
        let _ = persist;
        self.create(key, bytes).await
    }

    /// Every key that starts with `prefix` (a plain string prefix), in byte order.
    async fn list(&self, prefix: &str) -> Result<Vec<Key>, StoreError>;

    /// Removes `key` if present. Protocols use it only to garbage-collect entries no reader needs.
    async fn delete(&self, key: &Key) -> Result<(), StoreError>;

    /// [`Store::delete`] of garbage whose return is harmless: a machine crash may bring the entry
    /// back (FsStore then skips the directory `fsync`). The default deletes durably.
    async fn delete_lazily(&self, key: &Key) -> Result<(), StoreError> {
        self.delete(key).await
    }

    /// [`Store::delete_lazily`] of each of `keys`, in order, stopping at the first error. One
    /// call, so that a backend can do it in one round trip (FsStore: one blocking-thread hop for
    /// the lot, instead of one per key). The default deletes them one by one.
    async fn delete_lazily_many(&self, keys: &[Key]) -> Result<(), StoreError> {
        for key in keys {
            self.delete_lazily(key).await?;
        }
        Ok(())
    }

    /// Each of `reads` in order, as the plain calls would do them, stopping at the first error.
    /// Each list and get is its own atomic read, exactly as when called one by one: this is
    /// one call so that a backend can save the round trips (FsStore: one blocking-thread hop for
    /// the lot, where each call costs one; specs/lock.md §12). Wrappers that inject faults or
    /// record steps keep the default, and see every read.
    async fn read_many(&self, reads: &[Read]) -> Result<Vec<ReadOutcome>, StoreError> {
        let mut out = Vec::with_capacity(reads.len());
        for read in reads {
            out.push(read.run_on(self).await?);
        }
        Ok(out)
    }

    /// [`Store::create_persisting`], then, only if it created the entry, [`Store::read_many`]
    /// of `reads`: what a protocol reads right after its own create (is my entry the newest?),
    /// in one call. An error may come from the create or from a read after it landed, so the
    /// caller treats it as a create whose outcome is unknown. The default makes the plain
    /// calls; FsStore makes them on one blocking-thread hop, etcd in one Txn (its reads then see
    /// the store as the create left it, which the plain calls may also see).
    async fn create_then_read(
        &self,
        key: &Key,
        bytes: &[u8],
        persist: Persist,
        reads: &[Read],
    ) -> Result<(Created, Vec<ReadOutcome>), StoreError> {
        match self.create_persisting(key, bytes, persist).await? {
            Created::AlreadyExists => Ok((Created::AlreadyExists, Vec::new())),
            created => Ok((created, self.read_many(reads).await?)),
        }
    }

    /// Checks every expectation, then creates every one of `creates` (each if absent, with
    /// [`Persist::Durable`]) and deletes every one of `deletes`, all at one instant, or writes
    /// nothing: a transaction. It lets a protocol take at one instant a run of steps it would
    /// otherwise take one by one, with nothing between them, which is one of the schedules the
    /// step-by-step protocol already allows (specs/lock.md §12, "One commit on etcd"). An error
    /// may follow a commit that landed, as for a create.
    ///
    /// The default offers nothing ([`Commit::NotOffered`]): FsStore cannot create two files at
    /// one instant, and the wrappers that inject faults or record steps see the step-by-step
    /// path. EtcdStore commits in one Txn; MemStore only when made with
    /// [`MemStore::with_commits`].
    async fn commit_if(
        &self,
        expect: &[Expect],
        creates: &[(Key, Vec<u8>)],
        deletes: &[Key],
    ) -> Result<Commit, StoreError> {
        let _ = (expect, creates, deletes);
        Ok(Commit::NotOffered)
    }

    /// Whether [`Store::commit_if`] is offered: a protocol asks once, and on a store without
    /// commits keeps nothing for them and never tries one (so its steps, and a harness's
    /// schedule of them, are exactly the step-by-step protocol's). Must agree with `commit_if`.
    fn offers_commits(&self) -> bool {
        false
    }

    /// A short description for messages (`fs:/var/lib/x/.lockstep`, `memory`).
    fn describe(&self) -> String;

    /// The largest entry this store takes, in bytes, if it has a limit (etcd: its request
    /// limit, less room for the key). Protocols that gather many items into one entry (a redo
    /// archive) stay below it.
    fn entry_bytes_max(&self) -> Option<usize> {
        None
    }

    /// A change hint for the keys under `prefix`, a journal's prefix (`locks/a/~`: the entries of
    /// one journal; FsStore watches that one directory, not deeper). The caller
    /// makes it *before* it reads those keys, so that a change after its read wakes it. `None`:
    /// this store gives no hints (or cannot watch this prefix now), and its waiters poll.
    async fn watch(&self, prefix: &str) -> Option<Box<dyn ChangeHint>> {
        let _ = prefix;
        None
    }

    /// Registers `owner` (the process part of owner ids) so that its death can be proven later.
    /// `Ok(None)`: this backend proves nothing, and every owner is `Unknown` to it.
    async fn register_owner(
        &self,
        owner: &str,
    ) -> Result<Option<Box<dyn OwnerRegistration>>, StoreError> {
        let _ = owner;
        Ok(None)
    }

    /// What this store can prove about `owner`. Never `Dead` without proof.
    async fn owner_liveness(&self, owner: &str) -> Result<Liveness, StoreError> {
        let _ = owner;
        Ok(Liveness::Unknown)
    }
}

#[async_trait::async_trait]
impl<S: Store + ?Sized> Store for std::sync::Arc<S> {
    async fn get(&self, key: &Key) -> Result<Option<(Vec<u8>, Version)>, StoreError> {
        (**self).get(key).await
    }
    async fn create(&self, key: &Key, bytes: &[u8]) -> Result<Created, StoreError> {
        (**self).create(key, bytes).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<Key>, StoreError> {
        (**self).list(prefix).await
    }
    async fn create_persisting(
        &self,
        key: &Key,
        bytes: &[u8],
        persist: Persist,
    ) -> Result<Created, StoreError> {
        (**self).create_persisting(key, bytes, persist).await
    }
    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        (**self).delete(key).await
    }
    async fn delete_lazily(&self, key: &Key) -> Result<(), StoreError> {
        (**self).delete_lazily(key).await
    }
    async fn delete_lazily_many(&self, keys: &[Key]) -> Result<(), StoreError> {
        (**self).delete_lazily_many(keys).await
    }
    async fn read_many(&self, reads: &[Read]) -> Result<Vec<ReadOutcome>, StoreError> {
        (**self).read_many(reads).await
    }
    async fn create_then_read(
        &self,
        key: &Key,
        bytes: &[u8],
        persist: Persist,
        reads: &[Read],
    ) -> Result<(Created, Vec<ReadOutcome>), StoreError> {
        (**self).create_then_read(key, bytes, persist, reads).await
    }
    async fn commit_if(
        &self,
        expect: &[Expect],
        creates: &[(Key, Vec<u8>)],
        deletes: &[Key],
    ) -> Result<Commit, StoreError> {
        (**self).commit_if(expect, creates, deletes).await
    }
    fn offers_commits(&self) -> bool {
        (**self).offers_commits()
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn entry_bytes_max(&self) -> Option<usize> {
        (**self).entry_bytes_max()
    }
    async fn watch(&self, prefix: &str) -> Option<Box<dyn ChangeHint>> {
        (**self).watch(prefix).await
    }
    async fn register_owner(
        &self,
        owner: &str,
    ) -> Result<Option<Box<dyn OwnerRegistration>>, StoreError> {
        (**self).register_owner(owner).await
    }
    async fn owner_liveness(&self, owner: &str) -> Result<Liveness, StoreError> {
        (**self).owner_liveness(owner).await
    }
}

/// The file name of an owner's registration: its process part with every byte outside
/// `[A-Za-z0-9._-]` written as `%XX`, so that no owner id can name a path.
pub fn owner_file_name(owner: &str) -> String {
    let mut name = String::with_capacity(owner.len());
    for byte in owner.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-') {
            name.push(byte as char);
        } else {
            name.push_str(&format!("%{byte:02X}"));
        }
    }
    name
}
