//! The local file-system backend, lockstep's embedded default.
//!
//! Layout under the store's root directory:
//! - `data/<key>`: one file per entry, the key's components as directories;
//! - `tmp/`: entries being written, invisible to readers;
//! - `owners/<owner>`: one file per registered owner (a process run), on which that process
//!   holds an exclusive `flock` for its whole life. The kernel drops the lock when the process
//!   dies, whatever PID namespace or user it ran in, so a non-blocking `flock` of the file that
//!   succeeds is a proof of death; one that would block is a proof of life.
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

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::{owner_file_name, Created, Key, Liveness, OwnerRegistration, Store, StoreError, Version};
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
    TempCreated,
    TempWritten,
    TempSynced,
    Linked,
    TempUnlinked,
}

impl CreateStep {
    pub const ALL: [CreateStep; 5] =
        [CreateStep::TempCreated, CreateStep::TempWritten, CreateStep::TempSynced, CreateStep::Linked, CreateStep::TempUnlinked];
}

/// A store in a directory. Cheap to clone; clones share the directory.
#[derive(Clone, Debug)]
pub struct FsStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    durability: Durability,
    /// Makes temporary names unique within the process (the pid makes them unique across).
    temp_counter: AtomicU64,
    /// Test hook: stop `create` after this step, leaving the disk as a crash would.
    crash_after: Option<CreateStep>,
}

const TEMP_AGE_MAX: Duration = Duration::from_secs(3600);

impl FsStore {
    /// Opens (creating if needed) a durable store rooted at `root`.
    pub fn open(root: impl AsRef<Path>) -> Result<FsStore, StoreError> {
        FsStore::open_with(root, Durability::Durable)
    }

    pub fn open_with(root: impl AsRef<Path>, durability: Durability) -> Result<FsStore, StoreError> {
        let root = root.as_ref().to_path_buf();
        for dir in [root.join("data"), root.join("tmp"), root.join("owners")] {
            fs::create_dir_all(&dir).map_err(|e| StoreError::io(dir.display(), e))?;
        }
        let store = FsStore { inner: Arc::new(Inner { root, durability, temp_counter: AtomicU64::new(0), crash_after: None }) };
        store.remove_old_temporaries();
        Ok(store)
    }

    /// A store on the same directory whose creates stop after `step`, as if the process crashed.
    #[doc(hidden)]
    pub fn crashing_after(&self, step: CreateStep) -> FsStore {
        let inner = &self.inner;
        FsStore {
            inner: Arc::new(Inner {
                root: inner.root.clone(),
                durability: inner.durability,
                temp_counter: AtomicU64::new(1 << 40),
                crash_after: Some(step),
            }),
        }
    }

    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    fn data(&self) -> PathBuf {
        self.inner.root.join("data")
    }

    fn path_of(&self, key: &Key) -> PathBuf {
        let mut path = self.data();
        path.extend(key.components());
        path
    }

    fn durable(&self) -> bool {
        self.inner.durability == Durability::Durable
    }

    fn remove_old_temporaries(&self) {
        let Ok(entries) = fs::read_dir(self.inner.root.join("tmp")) else { return };
        for entry in entries.flatten() {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .is_some_and(|age| age > TEMP_AGE_MAX);
            if old {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    /// Ensures the entry's parent directory exists; directories it creates are synced into their
    /// own parents, so the entry's path survives a crash too.
    fn make_parent(&self, path: &Path) -> Result<(), std::io::Error> {
        let parent = path.parent().expect("entry paths have a parent");
        if parent.is_dir() {
            return Ok(());
        }
        let mut missing = Vec::new();
        let mut cursor = parent;
        while !cursor.is_dir() {
            missing.push(cursor.to_path_buf());
            cursor = cursor.parent().expect("the data directory exists");
        }
        for dir in missing.iter().rev() {
            match fs::create_dir(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            if self.durable() {
                sync_dir(dir.parent().expect("has a parent"))?;
            }
        }
        Ok(())
    }

    /// The blocking body of `create`.
    pub fn create_blocking(&self, key: &Key, bytes: &[u8]) -> Result<Created, StoreError> {
        let path = self.path_of(key);
        let io = |e| StoreError::io(key, e);
        self.make_parent(&path).map_err(io)?;
        let counter = self.inner.temp_counter.fetch_add(1, Ordering::Relaxed);
        // pid + random + counter: unique across processes, restarts and pid reuse.
        let temp = self.inner.root.join("tmp").join(format!("{}-{:016x}-{counter}.tmp", std::process::id(), rand::random::<u64>()));
        let crash = |step| self.inner.crash_after == Some(step);
        let result = (|| {
            let mut file = OpenOptions::new().write(true).create_new(true).open(&temp)?;
            if crash(CreateStep::TempCreated) {
                return Ok(None);
            }
            file.write_all(bytes)?;
            if crash(CreateStep::TempWritten) {
                return Ok(None);
            }
            if self.durable() {
                file.sync_all()?;
            }
            if crash(CreateStep::TempSynced) {
                return Ok(None);
            }
            let linked = match fs::hard_link(&temp, &path) {
                Ok(()) => true,
                Err(e) if e.kind() == ErrorKind::AlreadyExists => false,
                Err(e) => return Err(e),
            };
            if linked && crash(CreateStep::Linked) {
                return Ok(None);
            }
            fs::remove_file(&temp)?;
            if linked && crash(CreateStep::TempUnlinked) {
                return Ok(None);
            }
            if !linked {
                return Ok(Some(Created::AlreadyExists));
            }
            if self.durable() {
                sync_dir(path.parent().expect("has a parent"))?;
            }
            // From the open file, not the path: by now a collector may already have removed
            // the entry (it was superseded), and that must not turn our create into an error.
            let inode = file.metadata()?.ino();
            Ok(Some(Created::Created(Version(inode))))
        })();
        match result {
            Ok(Some(created)) => Ok(created),
            Ok(None) => Err(StoreError::Injected(format!("crash during create of {key}"))),
            Err(e) => {
                // Leave nothing half-made behind: the temporary name is the only trace.
                let _ = fs::remove_file(&temp);
                Err(io(e))
            }
        }
    }

    pub fn get_blocking(&self, key: &Key) -> Result<Option<(Vec<u8>, Version)>, StoreError> {
        let path = self.path_of(key);
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => return Ok(None),
            Err(e) => return Err(StoreError::io(key, e)),
        };
        let inode = file.metadata().map_err(|e| StoreError::io(key, e))?.ino();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut bytes).map_err(|e| StoreError::io(key, e))?;
        Ok(Some((bytes, Version(inode))))
    }

    pub fn list_blocking(&self, prefix: &str) -> Result<Vec<Key>, StoreError> {
        // Walk the deepest directory that contains every key with this prefix.
        let dir_part = prefix.rfind('/').map_or("", |cut| &prefix[..cut]);
        let mut start = self.data();
        if !dir_part.is_empty() {
            let dir_key = Key::new(dir_part)?;
            start.extend(dir_key.components());
        }
        let mut keys = Vec::new();
        let mut stack = vec![start];
        while let Some(dir) = stack.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => continue,
                Err(e) => return Err(StoreError::io(dir.display(), e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| StoreError::io(dir.display(), e))?;
                let path = entry.path();
                let kind = entry.file_type().map_err(|e| StoreError::io(path.display(), e))?;
                let relative = path.strip_prefix(self.data()).expect("walked below data/");
                let Some(text) = relative.to_str() else { continue };
                if kind.is_dir() {
                    // Descend only where a key with the prefix can be: the directory's keys all
                    // start with `text/`, so one of the two must be a prefix of the other. (The
                    // journal of `/`, `locks/~…`, must not walk every journal below `locks/`.)
                    let below = format!("{text}/");
                    if below.starts_with(prefix) || prefix.starts_with(&below) {
                        stack.push(path);
                    }
                    continue;
                }
                if text.starts_with(prefix) {
                    keys.push(Key::new(text)?);
                }
            }
        }
        keys.sort();
        Ok(keys)
    }

    pub fn delete_blocking(&self, key: &Key) -> Result<(), StoreError> {
        let path = self.path_of(key);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => return Ok(()),
            Err(e) => return Err(StoreError::io(key, e)),
        }
        if self.durable() {
            sync_dir(path.parent().expect("has a parent")).map_err(|e| StoreError::io(key, e))?;
        }
        Ok(())
    }

    /// Registers `owner`: a file in `owners/`, locked (`flock`, exclusive) before it gets its
    /// name, so no checker can ever see it unlocked while its owner lives.
    pub fn register_owner_blocking(&self, owner: &str) -> Result<Box<dyn OwnerRegistration>, StoreError> {
        let name = owner_file_name(owner);
        let io = |e| StoreError::io(format!("owners/{name}"), e);
        let counter = self.inner.temp_counter.fetch_add(1, Ordering::Relaxed);
        let temp = self.inner.root.join("tmp").join(format!("{}-{counter}.owner", std::process::id()));
        let mut file = OpenOptions::new().read(true).write(true).create_new(true).open(&temp).map_err(io)?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(|e| io(e.into()))?;
        file.write_all(format!("{owner}\n").as_bytes()).map_err(io)?;
        let target = self.inner.root.join("owners").join(&name);
        // `link` never replaces: an owner registers once.
        let linked = fs::hard_link(&temp, &target);
        let _ = fs::remove_file(&temp);
        linked.map_err(io)?;
        if self.durable() {
            sync_dir(&self.inner.root.join("owners")).map_err(io)?;
        }
        Ok(Box::new(FsRegistration { _file: file }))
    }

    /// Proof of an owner's life or death from its registration's `flock`.
    pub fn owner_liveness_blocking(&self, owner: &str) -> Result<Liveness, StoreError> {
        let path = self.inner.root.join("owners").join(owner_file_name(owner));
        let file = match OpenOptions::new().read(true).custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32).open(&path) {
            Ok(file) => file,
            // Never registered here (an older build, another store): nothing is proven.
            Err(_) => return Ok(Liveness::Unknown),
        };
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockShared) {
            // Nobody holds it: its owner is gone. Our shared lock goes with `file`.
            Ok(()) => Ok(Liveness::Dead),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(Liveness::Alive),
            Err(_) => Ok(Liveness::Unknown),
        }
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

/// An owner's registration file, locked for as long as this lives (or the process does).
#[derive(Debug)]
struct FsRegistration {
    _file: File,
}

impl OwnerRegistration for FsRegistration {
    fn inheritable_fd(&self) -> Option<i32> {
        use std::os::fd::AsRawFd;
        Some(self._file.as_raw_fd())
    }
}

fn sync_dir(dir: &Path) -> Result<(), std::io::Error> {
    File::open(dir)?.sync_all()
}

#[async_trait::async_trait]
impl Store for FsStore {
    async fn get(&self, key: &Key) -> Result<Option<(Vec<u8>, Version)>, StoreError> {
        let key = key.clone();
        self.blocking(move |s| s.get_blocking(&key)).await
    }

    async fn create(&self, key: &Key, bytes: &[u8]) -> Result<Created, StoreError> {
        let (key, bytes) = (key.clone(), bytes.to_vec());
        self.blocking(move |s| s.create_blocking(&key, &bytes)).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<Key>, StoreError> {
        let prefix = prefix.to_owned();
        self.blocking(move |s| s.list_blocking(&prefix)).await
    }

    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        let key = key.clone();
        self.blocking(move |s| s.delete_blocking(&key)).await
    }

    fn describe(&self) -> String {
        format!("fs:{}", self.inner.root.display())
    }

    async fn register_owner(&self, owner: &str) -> Result<Option<Box<dyn OwnerRegistration>>, StoreError> {
        let owner = owner.to_owned();
        self.blocking(move |s| s.register_owner_blocking(&owner).map(Some)).await
    }

    async fn owner_liveness(&self, owner: &str) -> Result<Liveness, StoreError> {
        let owner = owner.to_owned();
        self.blocking(move |s| s.owner_liveness_blocking(&owner)).await
    }
}
