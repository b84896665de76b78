//! The local file-system backend, lockstep's embedded default.
//!
//! Layout under the store's root directory:
//! - `data/<key>`: one file per entry, the key's components as directories;
//! - `tmp/`: entries being written, invisible to readers;
//! - `owners/<owner>`: one file per registered owner (a process run), on which that process
//!   holds an exclusive `flock` for its whole life. The kernel drops the lock when the process
//!   dies, whatever PID namespace or user it ran in, so a non-blocking `flock` of the file that
//!   succeeds is a proof of death; one that would block is a proof of life;
//! - `quarantine/`: what an operator moved out of `data/` with `lockstep repair`.
//!
//! Create-if-absent publishes a whole, durable entry or nothing:
//! 1. write the bytes to a new file in `tmp/` (`O_CREAT|O_EXCL`);
//! 2. `fsync` it, so the bytes are on disk before any name points at them;
//! 3. `link()` it to `data/<key>`: `link` never replaces an existing name, so of concurrent creators
//!    exactly one succeeds and the others get `EEXIST`; the entry appears whole, at once;
//! 4. unlink the temporary name;
//! 5. `fsync` the entry's directory, so the new name survives a crash of the machine.
//!
//! A crash after any step leaves the key absent (steps 1-2) or whole (steps 3-5); a leftover file
//! in `tmp/` is harmless and is removed when a store is opened and it is older than an hour.
//!
//! What this backend demands of its environment, checked where it can be (specs/lock.md §10):
//! - **No symlinks inside the store.** Every name below the root is opened relative to its
//!   directory's descriptor with `O_NOFOLLOW`, one component at a time, so a symlink (planted or
//!   left by a backup tool) is never followed: reads and creates through it fail with
//!   [`StoreError::Foreign`], and `list` reports it as a key so that the lock layer fails closed
//!   on the paths it could hide.
//! - **Hard links**, within one file system (`tmp/` and `data/` on the same device): probed when
//!   the store is opened, refused with a message naming the requirement.
//! - **A local file system.** NFS and SMB are refused at open: a `link` retried by the NFS client
//!   after a lost reply reports `EEXIST` for a create that landed, and `flock` there is emulated
//!   with byte-range locks a server reboot may drop. (After `EEXIST` this backend still checks
//!   whether the name is our own file, so a replayed `link` is not misread as a lost race.)
//! - **Durable directories.** A name is durable once the directory holding it is synced; every
//!   directory on an entry's path is synced into its parent the first time this process uses it,
//!   whoever created it (a process that crashed before its own sync included).

use std::collections::HashSet;
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::{
    owner_file_name, Created, Key, Liveness, OwnerRegistration, Persist, Read as StoreRead,
    ReadOutcome, Store, StoreError, Version,
};
use crate::sync::{Arc, AtomicU64, Ordering};

/// Whether creates and deletes are synced to disk before they return.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// `fsync` the entry and its directory (the default): a returned create survives power loss.
    Durable,
    /// No `fsync`: atomic and exclusive, but a machine crash may lose recent entries. For tests
    /// and benchmarks that want to see what durability costs.
    Volatile,
}

/// A step of [`FsStore::create`] after which a test can make the call stop, as a crash would.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreateStep {
    /// The entry's directories exist but were not synced into their parents.
    DirsMade,
    TempCreated,
    TempWritten,
    TempSynced,
    Linked,
    TempUnlinked,
}

impl CreateStep {
    pub const ALL: [CreateStep; 6] = [
        CreateStep::DirsMade,
        CreateStep::TempCreated,
        CreateStep::TempWritten,
        CreateStep::TempSynced,
        CreateStep::Linked,
        CreateStep::TempUnlinked,
    ];
}

/// A store in a directory. Cheap to clone; clones share the directory.
#[derive(Clone, Debug)]
pub struct FsStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    /// `data/`, `tmp/` and `owners/`, opened once without following symlinks: every name below
    /// them is resolved from these descriptors.
    data: OwnedFd,
    tmp: OwnedFd,
    owners: OwnedFd,
    durability: Durability,
    /// Makes temporary names unique within the process (the pid makes them unique across).
    temp_counter: AtomicU64,
    /// Directories below `data/` (as key prefixes) already synced into their parents by this
    /// store. Bounded: cleared when full, which only costs a few repeated syncs.
    synced: Mutex<HashSet<String>>,
    /// `flock` on `users.lock`, held for this store's life: shared by every process that uses
    /// the store, exclusive for the offline collector ([`FsStore::open_exclusive`]).
    _users: OwnedFd,
    /// Test hooks (never set outside tests).
    hooks: Hooks,
}

#[derive(Debug, Default)]
struct Hooks {
    /// Stop `create` after this step, leaving the disk as a crash would.
    crash_after: Option<CreateStep>,
    /// Issue every `link` twice, as an NFS client replaying a request whose reply was lost.
    replay_links: bool,
    /// Record every directory synced (as a path relative to the root).
    sync_log: Option<Mutex<Vec<String>>>,
    /// Track what a power loss could still take away ([`FsStore::tracking_power_loss`]).
    unsynced: Option<Mutex<Unsynced>>,
}

/// What a power loss could take away from a [`FsStore::tracking_power_loss`] store: entries
/// (paths relative to `data/`) whose name is in no synced directory yet, and entries whose bytes
/// were never synced.
#[derive(Debug, Default)]
struct Unsynced {
    names: Vec<String>,
    bytes: Vec<String>,
    /// Entries deleted lazily, with their bytes: a power loss may bring them back.
    deleted: Vec<(String, Vec<u8>)>,
}

const TEMP_AGE_MAX: Duration = Duration::from_secs(3600);
const SYNCED_MAX: usize = 65_536;

/// `statfs` magic numbers of network file systems this backend refuses (linux/magic.h).
const REFUSED_FILE_SYSTEMS: [(u64, &str); 4] = [
    (0x6969, "NFS"),
    (0x517B, "SMB"),
    (0xFF53_4D42, "CIFS"),
    (0xFE53_4D42, "SMB2"),
];

/// Opening a directory below the root: never through a symlink, never inherited by children.
const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// What a name below the root turned out to be, when it is not what the store expects there.
fn foreign(key: impl std::fmt::Display, what: &'static str) -> StoreError {
    StoreError::Foreign {
        key: key.to_string(),
        what,
    }
}

fn describe_type(file_type: FileType) -> &'static str {
    match file_type {
        FileType::Symlink => "a symbolic link",
        FileType::Directory => "a directory",
        FileType::RegularFile => "a regular file",
        FileType::Fifo => "a named pipe",
        FileType::Socket => "a socket",
        FileType::CharacterDevice | FileType::BlockDevice => "a device",
        FileType::Unknown => "of an unknown type",
    }
}

fn errno_io(e: Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(e.raw_os_error())
}

impl FsStore {
    /// Opens (creating if needed) a durable store rooted at `root`.
    pub fn open(root: impl AsRef<Path>) -> Result<FsStore, StoreError> {
        FsStore::open_with(root, Durability::Durable)
    }

    pub fn open_with(
        root: impl AsRef<Path>,
        durability: Durability,
    ) -> Result<FsStore, StoreError> {
        FsStore::open_hooked(root.as_ref(), durability, Hooks::default(), Users::Shared)
    }

    /// Opens the store only if no other process has it open, and keeps every other process out
    /// while this one lives: what the offline collector (`lockstep gc`) needs, because only then
    /// can no process hold a stale view of a journal it deletes. `StoreError::Unavailable` if the
    /// store is in use.
    pub fn open_exclusive(root: impl AsRef<Path>) -> Result<FsStore, StoreError> {
        FsStore::open_hooked(
            root.as_ref(),
            Durability::Durable,
            Hooks::default(),
            Users::Exclusive,
        )
    }

    fn open_hooked(
        root: &Path,
        durability: Durability,
        hooks: Hooks,
        users: Users,
    ) -> Result<FsStore, StoreError> {
        let root = root.to_path_buf();
        let at_root = |e| StoreError::io(root.display(), e);
        std::fs::create_dir_all(&root).map_err(at_root)?;
        // The root itself may be reached through symlinks (the user named it); nothing below it.
        let root_fd = rustix::fs::open(
            &root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| at_root(errno_io(e)))?;
        refuse_network_file_system(&root, &root_fd)?;
        let sub = |name: &'static str| -> Result<OwnedFd, StoreError> {
            let (fd, _) = open_or_make_dir(&root_fd, name).map_err(|e| match e {
                DirError::Foreign(what) => foreign(root.join(name).display(), what),
                DirError::Io(e) => StoreError::io(root.join(name).display(), e),
            })?;
            refuse_network_file_system(&root.join(name), &fd)?;
            Ok(fd)
        };
        let (data, tmp, owners) = (sub("data")?, sub("tmp")?, sub("owners")?);
        if durability == Durability::Durable {
            // The names `data`, `tmp`, `owners` live in the root, and the root's own name in its
            // parent (`.lockstep` in the user's directory): sync both, or a power loss after our
            // first create could take the whole store with it. Every time, not only when this
            // call made them: whoever made them may have crashed before syncing.
            rustix::fs::fsync(&root_fd).map_err(|e| at_root(errno_io(e)))?;
            if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_path(parent).map_err(|e| StoreError::io(parent.display(), e))?;
            }
        }
        probe_hard_links(&root, &tmp, &data)?;
        let users = lock_users(&root, &root_fd, users)?;
        let store = FsStore {
            inner: Arc::new(Inner {
                root,
                data,
                tmp,
                owners,
                _users: users,
                durability,
                temp_counter: AtomicU64::new(0),
                synced: Mutex::new(HashSet::new()),
                hooks,
            }),
        };
        store.remove_old_temporaries();
        Ok(store)
    }

    /// A store on the same directory whose creates stop after `step`, as if the process crashed.
    #[doc(hidden)]
    pub fn crashing_after(&self, step: CreateStep) -> FsStore {
        let hooks = Hooks {
            crash_after: Some(step),
            ..Hooks::default()
        };
        let store = FsStore::open_hooked(
            &self.inner.root,
            self.inner.durability,
            hooks,
            Users::Shared,
        )
        .expect("the store opened before");
        store.inner.temp_counter.store(1 << 40, Ordering::Relaxed);
        store
    }

    /// A store on the same directory as this one, with test hooks.
    fn reopened_with(&self, hooks: Hooks) -> FsStore {
        FsStore::open_hooked(
            &self.inner.root,
            self.inner.durability,
            hooks,
            Users::Shared,
        )
        .expect("the store opened before")
    }

    /// A store on the same directory whose every `link` is sent twice, the way an NFS client
    /// replays a request whose reply was lost: the second gets `EEXIST` for our own entry.
    #[doc(hidden)]
    pub fn replaying_links(&self) -> FsStore {
        self.reopened_with(Hooks {
            replay_links: true,
            ..Hooks::default()
        })
    }

    /// A store on the same directory that records every directory it syncs.
    #[doc(hidden)]
    pub fn recording_syncs(&self) -> FsStore {
        self.reopened_with(Hooks {
            sync_log: Some(Mutex::new(Vec::new())),
            ..Hooks::default()
        })
    }

    /// A store on the same directory that tracks which of its creates a power loss could still
    /// undo, for [`FsStore::lose_power`]: the crash-step tests of every `fsync` the path locks
    /// leave out (specs/lock.md §12). Only its own creates are tracked.
    #[doc(hidden)]
    pub fn tracking_power_loss(&self) -> FsStore {
        self.reopened_with(Hooks {
            unsynced: Some(Mutex::new(Unsynced::default())),
            ..Hooks::default()
        })
    }

    /// Leaves the disk as a power loss could, for a [`FsStore::tracking_power_loss`] store: every
    /// entry whose name was never synced is removed (unless `keep` says the crash happened to
    /// keep it), and every surviving entry whose bytes were never synced is left empty, as a file
    /// system that wrote the name but not the data does; an entry deleted lazily since its
    /// directory was last synced comes back if `keep` names it. Returns the keys removed and
    /// the keys emptied.
    #[doc(hidden)]
    pub fn lose_power(&self, keep: impl Fn(&str) -> bool) -> (Vec<String>, Vec<String>) {
        let Some(unsynced) = &self.inner.hooks.unsynced else {
            panic!("lose_power needs a store made by tracking_power_loss");
        };
        let unsynced = std::mem::take(&mut *unsynced.lock().unwrap_or_else(|e| e.into_inner()));
        let data = self.inner.root.join("data");
        let (mut removed, mut emptied) = (Vec::new(), Vec::new());
        for key in &unsynced.names {
            if !keep(key) && std::fs::remove_file(data.join(key)).is_ok() {
                removed.push(key.clone());
            }
        }
        for (key, bytes) in &unsynced.deleted {
            if keep(key) && !data.join(key).exists() {
                std::fs::write(data.join(key), bytes).expect("a deleted entry restored");
            }
        }
        for key in &unsynced.bytes {
            if !removed.contains(key) && std::fs::write(data.join(key), b"").is_ok() {
                emptied.push(key.clone());
            }
        }
        (removed, emptied)
    }

    /// Notes a create (`synced_bytes`: its bytes were synced) for [`FsStore::lose_power`].
    fn note_created(&self, key: &Key, synced_bytes: bool) {
        if let Some(unsynced) = &self.inner.hooks.unsynced {
            let mut unsynced = unsynced.lock().unwrap_or_else(|e| e.into_inner());
            unsynced.names.push(key.to_string());
            if !synced_bytes {
                unsynced.bytes.push(key.to_string());
            }
        }
    }

    /// Notes that directory `relative` (`data/…`) was synced: the names in it are durable now.
    fn note_dir_synced(&self, relative: &str) {
        if let Some(unsynced) = &self.inner.hooks.unsynced {
            let dir = relative.strip_prefix("data").unwrap_or(relative);
            let dir = dir.strip_prefix('/').unwrap_or(dir);
            let mut unsynced = unsynced.lock().unwrap_or_else(|e| e.into_inner());
            let elsewhere =
                |key: &str| key.rsplit_once('/').map_or("", |(parent, _)| parent) != dir;
            unsynced.names.retain(|key| elsewhere(key));
            unsynced.deleted.retain(|(key, _)| elsewhere(key));
        }
    }

    /// The directories synced so far by a [`FsStore::recording_syncs`] store, relative to the
    /// root (`data`, `data/locks`, …).
    #[doc(hidden)]
    pub fn synced_directories(&self) -> Vec<String> {
        self.inner
            .hooks
            .sync_log
            .as_ref()
            .map(|log| log.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .unwrap_or_default()
    }

    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    fn durable(&self) -> bool {
        self.inner.durability == Durability::Durable
    }

    fn crash(&self, step: CreateStep) -> bool {
        self.inner.hooks.crash_after == Some(step)
    }

    fn remove_old_temporaries(&self) {
        let Ok(dir) = rustix::fs::Dir::read_from(&self.inner.tmp) else {
            return;
        };
        for entry in dir.flatten() {
            let name = entry.file_name();
            if name.to_bytes().starts_with(b".") {
                continue;
            }
            let old = rustix::fs::statat(&self.inner.tmp, name, AtFlags::SYMLINK_NOFOLLOW)
                .ok()
                .and_then(|stat| {
                    SystemTime::UNIX_EPOCH
                        .checked_add(Duration::from_secs(stat.st_mtime.max(0) as u64))
                })
                .and_then(|modified| SystemTime::now().duration_since(modified).ok())
                .is_some_and(|age| age > TEMP_AGE_MAX);
            if old {
                let _ = rustix::fs::unlinkat(&self.inner.tmp, name, AtFlags::empty());
            }
        }
    }

    /// Syncs directory `fd` (named `relative` in messages and in the test log).
    fn sync_dir(&self, fd: impl AsFd, relative: &str) -> Result<(), std::io::Error> {
        if let Some(log) = &self.inner.hooks.sync_log {
            log.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(relative.to_owned());
        }
        rustix::fs::fsync(fd).map_err(errno_io)?;
        self.note_dir_synced(relative);
        Ok(())
    }

    /// Opens the directory holding `key`'s entry, one component at a time from `data/`, never
    /// through a symlink. With `make`, missing directories are created, and every directory on
    /// the way is synced into its parent the first time this store uses it (whoever made it: a
    /// process that crashed between its `mkdir` and its sync left it unsynced). `Ok(None)`
    /// without `make`: a directory on the way is missing (or is an entry), so the key is absent.
    fn entry_dir(&self, key: &Key, make: bool) -> Result<Option<OwnedFd>, StoreError> {
        let components: Vec<&str> = key.components().collect();
        let (_, dirs) = components.split_last().expect("keys have a component");
        // The chain of directories from `data/` down, with each one's name relative to the root.
        let mut chain = vec![(
            rustix::io::dup(&self.inner.data).map_err(|e| StoreError::io(key, errno_io(e)))?,
            "data".to_owned(),
        )];
        for component in dirs {
            let (parent, parent_name) = chain.last().expect("data/ is first");
            let name = format!("{parent_name}/{component}");
            let child = if make {
                match open_or_make_dir(parent, component) {
                    Ok((child, _)) => child,
                    Err(DirError::Foreign(what)) => {
                        return Err(foreign(&name["data/".len()..], what))
                    }
                    Err(DirError::Io(e)) => return Err(StoreError::io(key, e)),
                }
            } else {
                match rustix::fs::openat(parent, *component, DIR_FLAGS, Mode::empty()) {
                    Ok(child) => child,
                    Err(Errno::NOENT) => return Ok(None),
                    Err(Errno::LOOP | Errno::NOTDIR) => match type_at(parent, *component) {
                        // A file where a directory would be: no key below it can exist.
                        Ok(FileType::RegularFile) => return Ok(None),
                        Ok(other) => {
                            return Err(foreign(&name["data/".len()..], describe_type(other)))
                        }
                        Err(e) => return Err(StoreError::io(key, e)),
                    },
                    Err(e) => return Err(StoreError::io(&name["data/".len()..], errno_io(e))),
                }
            };
            chain.push((child, name));
        }
        if make {
            if self.crash(CreateStep::DirsMade) {
                return Err(StoreError::Injected(format!(
                    "crash before syncing the directories of {key}"
                )));
            }
            if self.durable() {
                for pair in chain.windows(2) {
                    let ((parent, parent_name), (_, name)) = (&pair[0], &pair[1]);
                    if !self.is_synced(name) {
                        // The child's name lives in its parent: syncing the parent makes it durable.
                        self.sync_dir(parent, parent_name)
                            .map_err(|e| StoreError::io(key, e))?;
                        self.mark_synced(name);
                    }
                }
            }
        }
        Ok(chain.pop().map(|(fd, _)| fd))
    }

    fn is_synced(&self, prefix: &str) -> bool {
        self.inner
            .synced
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(prefix)
    }

    fn mark_synced(&self, prefix: &str) {
        let mut synced = self.inner.synced.lock().unwrap_or_else(|e| e.into_inner());
        if synced.len() >= SYNCED_MAX {
            synced.clear();
        }
        synced.insert(prefix.to_owned());
    }

    fn leaf(key: &Key) -> &str {
        key.as_str()
            .rsplit('/')
            .next()
            .expect("keys have a component")
    }

    /// The blocking body of `create`.
    pub fn create_blocking(&self, key: &Key, bytes: &[u8]) -> Result<Created, StoreError> {
        self.create_persisting_blocking(key, bytes, Persist::Durable)
    }

    /// The blocking body of `create_persisting`: step 2 (the entry's `fsync`) is skipped for
    /// [`Persist::NameOnly`], step 5 (the directory's) for [`Persist::MayVanish`].
    pub fn create_persisting_blocking(
        &self,
        key: &Key,
        bytes: &[u8],
        persist: Persist,
    ) -> Result<Created, StoreError> {
        let sync_bytes = self.durable() && persist != Persist::NameOnly;
        let sync_name = self.durable() && persist != Persist::MayVanish;
        let io = |e| StoreError::io(key, e);
        let dir = self.entry_dir(key, true)?.expect("made");
        let leaf = Self::leaf(key);
        if bytes.is_empty() {
            return self.create_empty(key, &dir, leaf, sync_bytes, sync_name);
        }
        let counter = self.inner.temp_counter.fetch_add(1, Ordering::Relaxed);
        // pid + random + counter: unique across processes, restarts and pid reuse.
        let temp = format!(
            "{}-{:016x}-{counter}.tmp",
            std::process::id(),
            rand::random::<u64>()
        );
        let tmp = &self.inner.tmp;
        let result = (|| -> Result<Option<Created>, StoreError> {
            let flags =
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let fd = rustix::fs::openat(tmp, temp.as_str(), flags, Mode::from_raw_mode(0o644))
                .map_err(|e| io(errno_io(e)))?;
            let mut file = File::from(fd);
            if self.crash(CreateStep::TempCreated) {
                return Ok(None);
            }
            file.write_all(bytes).map_err(io)?;
            if self.crash(CreateStep::TempWritten) {
                return Ok(None);
            }
            if sync_bytes {
                file.sync_all().map_err(io)?;
            }
            if self.crash(CreateStep::TempSynced) {
                return Ok(None);
            }
            let ours = rustix::fs::fstat(&file).map_err(|e| io(errno_io(e)))?;
            let mut linked = self.link(temp.as_str(), &dir, leaf, key)?;
            if !linked {
                // `EEXIST` may be our own link landing twice (an NFS client's replay after a lost
                // reply): then the name is our file, and the create succeeded.
                linked = rustix::fs::statat(&dir, leaf, AtFlags::SYMLINK_NOFOLLOW)
                    .is_ok_and(|there| there.st_dev == ours.st_dev && there.st_ino == ours.st_ino);
            }
            if linked && self.crash(CreateStep::Linked) {
                return Ok(None);
            }
            rustix::fs::unlinkat(tmp, temp.as_str(), AtFlags::empty())
                .map_err(|e| io(errno_io(e)))?;
            if linked && self.crash(CreateStep::TempUnlinked) {
                return Ok(None);
            }
            if !linked {
                return Ok(Some(Created::AlreadyExists));
            }
            self.note_created(key, sync_bytes);
            if sync_name {
                let parent = synced_dir_name(key);
                // The name exists now: even ENOSPC here is not "nothing was created".
                self.sync_dir(&dir, &parent)
                    .map_err(|e| landed_io(key, e))?;
            }
            // From the open file, not the name: by now a collector may already have removed the
            // entry (it was superseded), and that must not turn our create into an error.
            Ok(Some(Created::Created(Version(ours.st_ino))))
        })();
        match result {
            Ok(Some(created)) => Ok(created),
            Ok(None) => Err(StoreError::Injected(format!(
                "crash during create of {key}"
            ))),
            Err(e) => {
                // Leave nothing half-made behind: the temporary name is the only trace.
                let _ = rustix::fs::unlinkat(tmp, temp.as_str(), AtFlags::empty());
                Err(e)
            }
        }
    }

    /// An empty entry (a ticket) has no bytes a reader could see torn, so it needs no temporary
    /// file: `O_EXCL` at its own name makes it whole at once, and saves the temporary's create,
    /// link and unlink. It also owns no data block, so deleting it frees none: on a disk mounted
    /// with `discard` and no journal (as the machine `lockstep bench` was measured on), freeing
    /// a block costs a synchronous discard, about 100 µs per deleted entry.
    fn create_empty(
        &self,
        key: &Key,
        dir: &OwnedFd,
        leaf: &str,
        sync_bytes: bool,
        sync_name: bool,
    ) -> Result<Created, StoreError> {
        let io = |e| StoreError::io(key, e);
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = match rustix::fs::openat(dir, leaf, flags, Mode::from_raw_mode(0o644)) {
            Ok(fd) => fd,
            // Anything at the name, a symlink or a directory too: the key is taken.
            Err(Errno::EXIST) => return Ok(Created::AlreadyExists),
            Err(e) => return Err(io(errno_io(e))),
        };
        if self.crash(CreateStep::Linked) {
            return Err(StoreError::Injected(format!(
                "crash during create of {key}"
            )));
        }
        // The name exists from here on: no error below may read "nothing was created" (Full).
        let ours = rustix::fs::fstat(&fd).map_err(|e| landed_io(key, errno_io(e)))?;
        if sync_bytes {
            rustix::fs::fsync(&fd).map_err(|e| landed_io(key, errno_io(e)))?;
        }
        self.note_created(key, true);
        if sync_name {
            let parent = synced_dir_name(key);
            self.sync_dir(dir, &parent).map_err(|e| landed_io(key, e))?;
        }
        Ok(Created::Created(Version(ours.st_ino)))
    }

    /// `link(tmp/temp, dir/leaf)`: `true` if it made the name, `false` on `EEXIST`.
    fn link(&self, temp: &str, dir: &OwnedFd, leaf: &str, key: &Key) -> Result<bool, StoreError> {
        let once = || rustix::fs::linkat(&self.inner.tmp, temp, dir, leaf, AtFlags::empty());
        if self.inner.hooks.replay_links {
            let _ = once();
        }
        match once() {
            Ok(()) => Ok(true),
            Err(Errno::EXIST) => Ok(false),
            Err(e) => Err(StoreError::io(key, errno_io(e))),
        }
    }

    pub fn get_blocking(&self, key: &Key) -> Result<Option<(Vec<u8>, Version)>, StoreError> {
        let Some(dir) = self.entry_dir(key, false)? else {
            return Ok(None);
        };
        // O_NONBLOCK: a named pipe planted at the key must not hang the reader.
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let fd = match rustix::fs::openat(&dir, Self::leaf(key), flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(Errno::LOOP) => return Err(foreign(key, "a symbolic link")),
            Err(e) => return Err(StoreError::io(key, errno_io(e))),
        };
        let stat = rustix::fs::fstat(&fd).map_err(|e| StoreError::io(key, errno_io(e)))?;
        let file_type = FileType::from_raw_mode(stat.st_mode);
        if file_type != FileType::RegularFile {
            return Err(foreign(key, describe_type(file_type)));
        }
        let mut bytes = Vec::new();
        File::from(fd)
            .read_to_end(&mut bytes)
            .map_err(|e| StoreError::io(key, e))?;
        Ok(Some((bytes, Version(stat.st_ino))))
    }

    /// Every key with `prefix`. Names below `data/` that are not entries (a symlink, a socket, a
    /// directory that cannot be read) are listed too, as keys: `get` then says what they are, and
    /// the protocol above decides what they guard. A symlink is never followed.
    pub fn list_blocking(&self, prefix: &str) -> Result<Vec<Key>, StoreError> {
        // Walk the deepest directory that contains every key with this prefix.
        let dir_part = prefix.rfind('/').map_or("", |cut| &prefix[..cut]);
        let start = if dir_part.is_empty() {
            rustix::io::dup(&self.inner.data).map_err(|e| StoreError::io("data", errno_io(e)))?
        } else {
            // The directory as if it held an entry `x`.
            let probe = Key::new(format!("{dir_part}/x"))?;
            match self.entry_dir(&probe, false)? {
                Some(fd) => fd,
                None => return Ok(Vec::new()),
            }
        };
        let mut keys = Vec::new();
        let mut stack = vec![(start, dir_part.to_owned())];
        while let Some((fd, relative)) = stack.pop() {
            let dir = rustix::fs::Dir::read_from(&fd)
                .map_err(|e| StoreError::io(format!("data/{relative}"), errno_io(e)))?;
            for entry in dir {
                let entry =
                    entry.map_err(|e| StoreError::io(format!("data/{relative}"), errno_io(e)))?;
                let name = entry.file_name();
                if name == c"." || name == c".." {
                    continue;
                }
                // Names that are not UTF-8 cannot be keys (nothing lockstep writes has one).
                let Ok(text) = name.to_str() else { continue };
                let key_text = if relative.is_empty() {
                    text.to_owned()
                } else {
                    format!("{relative}/{text}")
                };
                let file_type = match entry.file_type() {
                    FileType::Unknown => {
                        type_at(&fd, text).map_err(|e| StoreError::io(&key_text, e))?
                    }
                    known => known,
                };
                if file_type == FileType::Directory {
                    // Descend only where a key with the prefix can be: the directory's keys all
                    // start with `key_text/`, so one of the two must be a prefix of the other.
                    // (The journal of `/`, `locks/~…`, must not walk every journal below.)
                    let below = format!("{key_text}/");
                    if !(below.starts_with(prefix) || prefix.starts_with(&below)) {
                        continue;
                    }
                    match rustix::fs::openat(&fd, name, DIR_FLAGS, Mode::empty()) {
                        Ok(child) => stack.push((child, key_text)),
                        // Unreadable (or replaced meanwhile): listed, so that `get` reports it.
                        Err(Errno::NOENT) => {}
                        Err(_) if key_text.starts_with(prefix) => keys.push(Key::new(key_text)?),
                        Err(e) => return Err(StoreError::io(&key_text, errno_io(e))),
                    }
                    continue;
                }
                if key_text.starts_with(prefix) {
                    keys.push(Key::new(key_text)?);
                }
            }
        }
        keys.sort();
        Ok(keys)
    }

    /// The blocking body of one [`StoreRead`] of `read_many`: the plain list and get, in order.
    fn read_blocking(&self, read: &StoreRead) -> Result<ReadOutcome, StoreError> {
        match read {
            StoreRead::Get(key) => Ok(ReadOutcome {
                keys: Vec::new(),
                last: Some((key.clone(), self.get_blocking(key)?)),
            }),
            StoreRead::List(prefix) => Ok(ReadOutcome {
                keys: self.list_blocking(prefix)?,
                last: None,
            }),
            StoreRead::ListThenGetLast { prefix, pick } => {
                let keys = self.list_blocking(prefix)?;
                let picks = |k: &&Key| pick(prefix, k.as_str());
                let picked = if crate::mutants::active(crate::mutants::Mutant::ReadManyPicksFirst) {
                    keys.iter().find(picks)
                } else {
                    keys.iter().rev().find(picks)
                };
                let last = match picked {
                    Some(key) => Some((key.clone(), self.get_blocking(key)?)),
                    None => None,
                };
                Ok(ReadOutcome { keys, last })
            }
        }
    }

    pub fn delete_blocking(&self, key: &Key) -> Result<(), StoreError> {
        self.delete_syncing(key, self.durable())
    }

    /// Removes `key`'s entry, and syncs its directory if `sync` (a lazy delete does not: a
    /// machine crash may bring the entry back).
    fn delete_syncing(&self, key: &Key, sync: bool) -> Result<(), StoreError> {
        let Some(dir) = self.entry_dir(key, false)? else {
            return Ok(());
        };
        let leaf = Self::leaf(key);
        match type_at(&dir, leaf) {
            Ok(FileType::RegularFile) => {}
            Ok(other) => return Err(foreign(key, describe_type(other))),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(StoreError::io(key, e)),
        }
        if let (Some(unsynced), false) = (&self.inner.hooks.unsynced, sync) {
            if let Ok(Some((bytes, _))) = self.get_blocking(key) {
                let mut unsynced = unsynced.lock().unwrap_or_else(|e| e.into_inner());
                unsynced.deleted.push((key.to_string(), bytes));
            }
        }
        match rustix::fs::unlinkat(&dir, leaf, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(e) => return Err(StoreError::io(key, errno_io(e))),
        }
        if sync {
            let parent = synced_dir_name(key);
            self.sync_dir(&dir, &parent)
                .map_err(|e| StoreError::io(key, e))?;
        }
        Ok(())
    }

    /// Moves whatever is at `key` (an entry, a symlink, a directory) out of `data/` into
    /// `quarantine/`, without following it, and returns where it went (relative to the root).
    /// For an operator's `lockstep repair` only: the protocol never calls it.
    pub fn quarantine(&self, key: &Key) -> Result<String, StoreError> {
        let Some(dir) = self.entry_dir(key, false)? else {
            return Err(StoreError::io(
                key,
                std::io::Error::from(ErrorKind::NotFound),
            ));
        };
        let root = rustix::fs::open(
            &self.inner.root,
            DIR_FLAGS.difference(OFlags::NOFOLLOW),
            Mode::empty(),
        )
        .map_err(|e| StoreError::io(self.inner.root.display(), errno_io(e)))?;
        let (quarantine, _) = open_or_make_dir(&root, "quarantine").map_err(|e| match e {
            DirError::Foreign(what) => foreign("quarantine", what),
            DirError::Io(e) => StoreError::io("quarantine", e),
        })?;
        let millis = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let name = format!("{millis}-{}", owner_file_name(key.as_str()));
        rustix::fs::renameat(&dir, Self::leaf(key), &quarantine, name.as_str())
            .map_err(|e| StoreError::io(key, errno_io(e)))?;
        if self.durable() {
            self.sync_dir(&quarantine, "quarantine")
                .map_err(|e| StoreError::io(key, e))?;
            self.sync_dir(&dir, key.as_str())
                .map_err(|e| StoreError::io(key, e))?;
        }
        Ok(format!("quarantine/{name}"))
    }

    /// Offline clean-up for the collector (a store from [`FsStore::open_exclusive`] only):
    /// removes every empty directory below `data/` and every file in `tmp/`, and the owner files
    /// of owners not in `keep` (owners whose locks are still held need theirs: it proves their
    /// death to recovery). Returns (directories, temporaries, owner files) removed.
    pub fn sweep_offline(
        &self,
        keep: &HashSet<String>,
    ) -> Result<(usize, usize, usize), StoreError> {
        let mut dirs = 0;
        fn sweep(dir: &OwnedFd, relative: &str, removed: &mut usize) -> Result<bool, StoreError> {
            let mut empty = true;
            let listing = rustix::fs::Dir::read_from(dir)
                .map_err(|e| StoreError::io(relative, errno_io(e)))?;
            for entry in listing {
                let entry = entry.map_err(|e| StoreError::io(relative, errno_io(e)))?;
                let name = entry.file_name().to_owned();
                if name.as_bytes() == b"." || name.as_bytes() == b".." {
                    continue;
                }
                let file_type = match entry.file_type() {
                    FileType::Unknown => {
                        type_at(dir, name.as_c_str()).map_err(|e| StoreError::io(relative, e))?
                    }
                    known => known,
                };
                if file_type != FileType::Directory {
                    empty = false;
                    continue;
                }
                let child_name = format!("{relative}/{}", name.to_string_lossy());
                let child = rustix::fs::openat(dir, name.as_c_str(), DIR_FLAGS, Mode::empty())
                    .map_err(|e| StoreError::io(&child_name, errno_io(e)))?;
                if sweep(&child, &child_name, removed)?
                    && rustix::fs::unlinkat(dir, name.as_c_str(), AtFlags::REMOVEDIR).is_ok()
                {
                    *removed += 1;
                } else {
                    empty = false;
                }
            }
            Ok(empty)
        }
        sweep(&self.inner.data, "data", &mut dirs)?;
        let clear = |dir: &OwnedFd,
                     relative: &str,
                     keep: &dyn Fn(&str) -> bool|
         -> Result<usize, StoreError> {
            let mut removed = 0;
            for entry in rustix::fs::Dir::read_from(dir)
                .map_err(|e| StoreError::io(relative, errno_io(e)))?
            {
                let entry = entry.map_err(|e| StoreError::io(relative, errno_io(e)))?;
                let name = entry.file_name();
                if name.to_bytes().starts_with(b".") || keep(&name.to_string_lossy()) {
                    continue;
                }
                if rustix::fs::unlinkat(dir, name, AtFlags::empty()).is_ok() {
                    removed += 1;
                }
            }
            Ok(removed)
        };
        let temporaries = clear(&self.inner.tmp, "tmp", &|_| false)?;
        let kept: HashSet<String> = keep.iter().map(|owner| owner_file_name(owner)).collect();
        let owner_files = clear(&self.inner.owners, "owners", &|name| kept.contains(name))?;
        if self.durable() {
            for (fd, name) in [
                (&self.inner.data, "data"),
                (&self.inner.tmp, "tmp"),
                (&self.inner.owners, "owners"),
            ] {
                self.sync_dir(fd, name)
                    .map_err(|e| StoreError::io(name, e))?;
            }
        }
        Ok((dirs, temporaries, owner_files))
    }

    /// Registers `owner`: a file in `owners/`, locked (`flock`, exclusive) before it gets its
    /// name, so no checker can ever see it unlocked while its owner lives.
    pub fn register_owner_blocking(
        &self,
        owner: &str,
    ) -> Result<Box<dyn OwnerRegistration>, StoreError> {
        let name = owner_file_name(owner);
        let io = |e| StoreError::io(format!("owners/{name}"), e);
        let counter = self.inner.temp_counter.fetch_add(1, Ordering::Relaxed);
        let temp = format!(
            "{}-{:016x}-{counter}.owner",
            std::process::id(),
            rand::random::<u64>()
        );
        // CLOEXEC like every descriptor here: a child inheriting it by accident would keep us
        // "alive" after our death. (`lockstep lock` clears the flag for COMMAND, on purpose.)
        let flags =
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(
            &self.inner.tmp,
            temp.as_str(),
            flags,
            Mode::from_raw_mode(0o644),
        )
        .map_err(|e| io(errno_io(e)))?;
        let mut file = File::from(fd);
        rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
            .map_err(|e| io(errno_io(e)))?;
        file.write_all(format!("{owner}\n").as_bytes())
            .map_err(io)?;
        // `link` never replaces: an owner registers once.
        let linked = rustix::fs::linkat(
            &self.inner.tmp,
            temp.as_str(),
            &self.inner.owners,
            name.as_str(),
            AtFlags::empty(),
        );
        let _ = rustix::fs::unlinkat(&self.inner.tmp, temp.as_str(), AtFlags::empty());
        linked.map_err(|e| io(errno_io(e)))?;
        if self.durable() {
            self.sync_dir(&self.inner.owners, "owners").map_err(io)?;
        }
        let owners = rustix::io::dup(&self.inner.owners).map_err(|e| io(errno_io(e)))?;
        Ok(Box::new(FsRegistration {
            file,
            owners,
            name,
            keep_file: false,
        }))
    }

    /// Proof of an owner's life or death from its registration's `flock`.
    pub fn owner_liveness_blocking(&self, owner: &str) -> Result<Liveness, StoreError> {
        let name = owner_file_name(owner);
        let fd = match rustix::fs::openat(
            &self.inner.owners,
            name.as_str(),
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            // Never registered here (an older build, another store), or it ended cleanly and
            // removed its file: nothing is proven.
            Err(_) => return Ok(Liveness::Unknown),
        };
        match rustix::fs::flock(&fd, rustix::fs::FlockOperation::NonBlockingLockShared) {
            // Nobody holds it: its owner is gone. Our shared lock goes with `fd`.
            Ok(()) => Ok(Liveness::Dead),
            Err(Errno::WOULDBLOCK) => Ok(Liveness::Alive),
            Err(_) => Ok(Liveness::Unknown),
        }
    }

    /// The change hint of `prefix`'s directory (see `super::inotify`); `None` if the directory
    /// does not exist yet or cannot be watched.
    fn watch_blocking(&self, prefix: &str) -> Option<Box<dyn super::ChangeHint>> {
        // A key in the prefix's directory, to find that directory as `entry_dir` does.
        let probe = match prefix.rsplit_once('/') {
            Some((dir, _)) => format!("{dir}/x"),
            None => "x".to_owned(),
        };
        let dir = self.entry_dir(&Key::new(probe).ok()?, false).ok()??;
        let hint = super::inotify::DirHint::new(&dir)?;
        Some(Box::new(hint))
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(FsStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || work(store))
            .await
            .map_err(|e| StoreError::Unavailable(format!("file-system worker failed: {e}")))?
    }
}

/// An I/O error after a create's name was made: never [`StoreError::Full`] (which promises that
/// nothing was created), even for ENOSPC, so that the caller reads back.
fn landed_io(key: &Key, source: std::io::Error) -> StoreError {
    StoreError::Io {
        key: key.to_string(),
        source,
    }
}

/// Why a directory below the root could not be opened.
enum DirError {
    /// Something other than a directory has the name.
    Foreign(&'static str),
    Io(std::io::Error),
}

/// The name `sync_dir` knows the directory holding `key` by (`data` or `data/DIR`): the directory
/// whose `fsync` makes a new or removed name at `key` durable.
fn synced_dir_name(key: &Key) -> String {
    key.as_str()
        .rsplit_once('/')
        .map_or("data".to_owned(), |(dir, _)| format!("data/{dir}"))
}

/// Opens directory `name` in `parent` without following a symlink, creating it if missing:
/// the descriptor, and whether this call created it.
fn open_or_make_dir(parent: &impl AsFd, name: &str) -> Result<(OwnedFd, bool), DirError> {
    let mut created = false;
    for _ in 0..2 {
        match rustix::fs::openat(parent, name, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => return Ok((fd, created)),
            Err(Errno::NOENT) => {
                match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o755)) {
                    Ok(()) => created = true,
                    Err(Errno::EXIST) => {}
                    Err(e) => return Err(DirError::Io(errno_io(e))),
                }
            }
            Err(Errno::LOOP | Errno::NOTDIR) => {
                return Err(match type_at(parent, name) {
                    Ok(file_type) => DirError::Foreign(describe_type(file_type)),
                    Err(e) => DirError::Io(e),
                })
            }
            Err(e) => return Err(DirError::Io(errno_io(e))),
        }
    }
    Err(DirError::Io(std::io::Error::other(format!(
        "directory {name} vanished while it was being made"
    ))))
}

/// The type of `name` in `dir`, not following a symlink.
fn type_at(dir: &impl AsFd, name: impl rustix::path::Arg) -> Result<FileType, std::io::Error> {
    rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
        .map(|s| FileType::from_raw_mode(s.st_mode))
        .map_err(errno_io)
}

fn sync_path(dir: &Path) -> Result<(), std::io::Error> {
    File::open(dir)?.sync_all()
}

/// Refuses a root on a network file system (see the module comment for why).
fn refuse_network_file_system(root: &Path, root_fd: &OwnedFd) -> Result<(), StoreError> {
    let Ok(stat) = rustix::fs::fstatfs(root_fd) else {
        return Ok(());
    };
    refuse_file_system_type(root, stat.f_type as i64)
}

/// The decision of [`refuse_network_file_system`] on a `statfs` `f_type` (a signed word on some
/// ABIs, so 0xFF534D42 can arrive sign-extended: only its low 32 bits count).
fn refuse_file_system_type(root: &Path, f_type: i64) -> Result<(), StoreError> {
    let magic = f_type as u64 & 0xFFFF_FFFF;
    match REFUSED_FILE_SYSTEMS.iter().find(|(m, _)| *m == magic) {
        Some((_, name)) => Err(StoreError::Unsupported(format!(
            "{} is on {name}: lockstep's file store needs a local file system (create-if-absent by link(), and flock() \
             as the proof that an owner died, are not reliable on {name}); put the store on a local disk, or use a \
             server backend",
            root.display()
        ))),
        None => Ok(()),
    }
}

/// How a store holds `users.lock`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Users {
    Shared,
    Exclusive,
}

/// Takes the `users.lock` flock. A shared open waits a little for a collector to finish (it is
/// quick); an exclusive one does not wait at all.
fn lock_users(root: &Path, root_fd: &OwnedFd, users: Users) -> Result<OwnedFd, StoreError> {
    use rustix::fs::FlockOperation;
    let at = |e: Errno| StoreError::io(root.join("users.lock").display(), errno_io(e));
    let flags = OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd =
        rustix::fs::openat(root_fd, "users.lock", flags, Mode::from_raw_mode(0o644)).map_err(at)?;
    match users {
        Users::Exclusive => match rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(fd),
            Err(Errno::WOULDBLOCK) => Err(StoreError::Unavailable(format!(
                "{} is in use by another process (a lock manager, `lockstep lock`, …); the collector runs only when none has it open",
                root.display()
            ))),
            Err(e) => Err(at(e)),
        },
        Users::Shared => {
            for _ in 0..200 {
                match rustix::fs::flock(&fd, FlockOperation::NonBlockingLockShared) {
                    Ok(()) => return Ok(fd),
                    Err(Errno::WOULDBLOCK) => std::thread::sleep(Duration::from_millis(50)),
                    Err(e) => return Err(at(e)),
                }
            }
            Err(StoreError::Unavailable(format!("{}: `lockstep gc` has held the store for over 10 s", root.display())))
        }
    }
}

/// Checks that `tmp/` and `data/` are one file system that supports hard links: create-if-absent
/// is `link(tmp/x, data/key)`.
fn probe_hard_links(root: &Path, tmp: &OwnedFd, data: &OwnedFd) -> Result<(), StoreError> {
    let unsupported = |why: String| {
        StoreError::Unsupported(format!(
            "{}: {why}; lockstep's file store needs hard links between its tmp/ and data/ directories (create-if-absent \
             is link(), which never replaces a name); use a local file system such as ext4, xfs, btrfs or tmpfs",
            root.display()
        ))
    };
    let (tmp_stat, data_stat) = match (rustix::fs::fstat(tmp), rustix::fs::fstat(data)) {
        (Ok(t), Ok(d)) => (t, d),
        _ => return Ok(()),
    };
    if tmp_stat.st_dev != data_stat.st_dev {
        return Err(unsupported(
            "tmp/ and data/ are on different file systems".into(),
        ));
    }
    let name = format!(
        ".probe-{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    );
    let linked = format!("{name}.link");
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let at = |e: Errno| StoreError::io(root.join("tmp").display(), errno_io(e));
    drop(rustix::fs::openat(tmp, name.as_str(), flags, Mode::from_raw_mode(0o600)).map_err(at)?);
    let result = rustix::fs::linkat(tmp, name.as_str(), tmp, linked.as_str(), AtFlags::empty());
    let _ = rustix::fs::unlinkat(tmp, name.as_str(), AtFlags::empty());
    let _ = rustix::fs::unlinkat(tmp, linked.as_str(), AtFlags::empty());
    match result {
        Ok(()) => Ok(()),
        Err(e @ (Errno::PERM | Errno::OPNOTSUPP | Errno::MLINK | Errno::XDEV)) => Err(unsupported(
            format!("this file system refuses hard links ({})", errno_io(e)),
        )),
        Err(e) => Err(at(e)),
    }
}

/// An owner's registration file, locked for as long as this lives (or the process does).
#[derive(Debug)]
struct FsRegistration {
    file: File,
    owners: OwnedFd,
    name: String,
    /// Set by `end_as_crash`: leave the file, unlocked, as a dead process would.
    keep_file: bool,
}

impl OwnerRegistration for FsRegistration {
    fn inheritable_fd(&self) -> Option<i32> {
        use std::os::fd::AsRawFd;
        Some(self.file.as_raw_fd())
    }

    fn end_as_crash(mut self: Box<Self>) {
        self.keep_file = true;
    }
}

impl Drop for FsRegistration {
    /// A clean end removes the file, so `owners/` does not grow with every run. The name goes
    /// first, while we still hold the lock: a checker then finds no file ("unknown", expiry
    /// decides), never an unlocked one. (A crashed owner's file stays; it is a few bytes.)
    fn drop(&mut self) {
        if self.keep_file {
            return;
        }
        // Its lock entries written without a directory `fsync` (specs/lock.md §12) must not
        // outlive its registration: were a power loss to keep the removal of this file but undo
        // a release, the dead owner's lock would read as "unknown" and wait out its lease. One
        // `syncfs` at the end of a run orders them before the removal.
        let _ = rustix::fs::syncfs(&self.owners);
        let _ = rustix::fs::unlinkat(&self.owners, self.name.as_str(), AtFlags::empty());
    }
}

#[async_trait::async_trait]
impl Store for FsStore {
    // Every operation hops to a blocking thread, reads too: a read on a hung disk must not block
    // the caller's task, or no timeout around it (`lockstep lock --io-timeout`) could fire.
    async fn get(&self, key: &Key) -> Result<Option<(Vec<u8>, Version)>, StoreError> {
        let key = key.clone();
        self.blocking(move |s| s.get_blocking(&key)).await
    }

    async fn create(&self, key: &Key, bytes: &[u8]) -> Result<Created, StoreError> {
        let (key, bytes) = (key.clone(), bytes.to_vec());
        self.blocking(move |s| s.create_blocking(&key, &bytes))
            .await
    }

    async fn create_persisting(
        &self,
        key: &Key,
        bytes: &[u8],
        persist: Persist,
    ) -> Result<Created, StoreError> {
        let (key, bytes) = (key.clone(), bytes.to_vec());
        self.blocking(move |s| s.create_persisting_blocking(&key, &bytes, persist))
            .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<Key>, StoreError> {
        let prefix = prefix.to_owned();
        self.blocking(move |s| s.list_blocking(&prefix)).await
    }

    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        let key = key.clone();
        self.blocking(move |s| s.delete_blocking(&key)).await
    }

    async fn delete_lazily(&self, key: &Key) -> Result<(), StoreError> {
        let key = key.clone();
        self.blocking(move |s| s.delete_syncing(&key, false)).await
    }

    async fn delete_lazily_many(&self, keys: &[Key]) -> Result<(), StoreError> {
        let keys = keys.to_vec();
        self.blocking(move |s| keys.iter().try_for_each(|key| s.delete_syncing(key, false)))
            .await
    }

    async fn create_then_read(
        &self,
        key: &Key,
        bytes: &[u8],
        persist: Persist,
        reads: &[StoreRead],
    ) -> Result<(Created, Vec<ReadOutcome>), StoreError> {
        let (key, bytes, reads) = (key.clone(), bytes.to_vec(), reads.to_vec());
        self.blocking(
            move |s| match s.create_persisting_blocking(&key, &bytes, persist)? {
                Created::AlreadyExists => Ok((Created::AlreadyExists, Vec::new())),
                created => {
                    let found: Result<Vec<ReadOutcome>, StoreError> =
                        reads.iter().map(|read| s.read_blocking(read)).collect();
                    Ok((created, found?))
                }
            },
        )
        .await
    }

    async fn read_many(&self, reads: &[StoreRead]) -> Result<Vec<ReadOutcome>, StoreError> {
        let reads = reads.to_vec();
        self.blocking(move |s| reads.iter().map(|read| s.read_blocking(read)).collect())
            .await
    }

    fn describe(&self) -> String {
        format!("fs:{}", self.inner.root.display())
    }

    async fn watch(&self, prefix: &str) -> Option<Box<dyn super::ChangeHint>> {
        let prefix = prefix.to_owned();
        self.blocking(move |s| Ok(s.watch_blocking(&prefix)))
            .await
            .ok()
            .flatten()
    }

    async fn register_owner(
        &self,
        owner: &str,
    ) -> Result<Option<Box<dyn OwnerRegistration>>, StoreError> {
        let owner = owner.to_owned();
        self.blocking(move |s| s.register_owner_blocking(&owner).map(Some))
            .await
    }

    async fn owner_liveness(&self, owner: &str) -> Result<Liveness, StoreError> {
        let owner = owner.to_owned();
        self.blocking(move |s| s.owner_liveness_blocking(&owner))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NFS and the SMB family are refused by their `statfs` magic, naming the requirement;
    /// local file systems pass. (No NFS mount is available to the test suite: this checks the
    /// decision on the numbers the kernel reports, linux/magic.h.)
    #[test]
    fn network_file_systems_are_refused_by_their_magic() {
        let root = Path::new("/srv/lake");
        for (f_type, name) in [
            (0x6969_i64, "NFS"),
            (0x517B, "SMB"),
            (0xFE53_4D42, "SMB2"),
            (0xFF53_4D42u32 as i32 as i64, "CIFS"), // sign-extended
        ] {
            let error = refuse_file_system_type(root, f_type)
                .unwrap_err()
                .to_string();
            assert!(
                error.contains(name) && error.contains("needs a local file system"),
                "{f_type:#x}: {error}"
            );
        }
        for local in [
            0xEF53_i64,  /* ext2/3/4 */
            0x5846_5342, /* xfs */
            0x0102_1994, /* tmpfs */
            0x9123_683E, /* btrfs */
        ] {
            assert!(refuse_file_system_type(root, local).is_ok(), "{local:#x}");
        }
    }
}
