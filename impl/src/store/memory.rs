//! The in-memory backend: a map behind one mutex. The synchronous core ([`MemCore`]) is what the
//! loom tests check; [`MemStore`] is its async face.

use std::collections::BTreeMap;

use super::{
    Commit, Created, Expect, Key, Liveness, OwnerRegistration, Store, StoreError, Version,
};
use crate::sync::{lock, Arc, Mutex};

/// The shared state of a [`MemStore`]: every entry and the next version number, and the owners
/// registered in this process (alive while their registration lives).
#[derive(Debug, Default)]
pub struct MemCore {
    entries: Mutex<Entries>,
    owners: std::sync::Mutex<std::collections::HashMap<String, std::sync::Weak<()>>>,
}

/// A registration in a [`MemStore`]: the owner is alive while this lives.
#[derive(Debug)]
struct MemRegistration(#[allow(dead_code)] std::sync::Arc<()>);

impl OwnerRegistration for MemRegistration {}

#[derive(Debug, Default)]
struct Entries {
    map: BTreeMap<String, (Vec<u8>, Version)>,
    /// Versions are never reused, even after a delete.
    next_version: u64,
}

impl MemCore {
    pub fn get(&self, key: &Key) -> Option<(Vec<u8>, Version)> {
        lock(&self.entries).map.get(key.as_str()).cloned()
    }

    /// Check and insert under one lock acquisition: that is the whole atomicity argument.
    pub fn create(&self, key: &Key, bytes: &[u8]) -> Created {
        if crate::mutants::active(crate::mutants::Mutant::MemCheckThenInsert) {
            // Planted bug: the check and the insert are two critical sections.
            if lock(&self.entries).map.contains_key(key.as_str()) {
                return Created::AlreadyExists;
            }
            let mut entries = lock(&self.entries);
            entries.next_version += 1;
            let version = Version(entries.next_version);
            entries
                .map
                .insert(key.as_str().to_owned(), (bytes.to_vec(), version));
            return Created::Created(version);
        }
        let mut entries = lock(&self.entries);
        if entries.map.contains_key(key.as_str()) {
            return Created::AlreadyExists;
        }
        entries.next_version += 1;
        let version = Version(entries.next_version);
        entries
            .map
            .insert(key.as_str().to_owned(), (bytes.to_vec(), version));
        Created::Created(version)
    }

    /// [`Store::commit_if`] under one lock acquisition: every check, then every write.
    pub fn commit_if(
        &self,
        expect: &[Expect],
        creates: &[(Key, Vec<u8>)],
        deletes: &[Key],
    ) -> Commit {
        let mut entries = lock(&self.entries);
        let holds = |expect: &Expect| match expect {
            Expect::Is(key, version) => {
                entries.map.get(key.as_str()).map(|(_, v)| v) == Some(version)
            }
            Expect::NoneBetween(from, to) => {
                from > to
                    || entries
                        .map
                        .range(from.as_str().to_owned()..=to.as_str().to_owned())
                        .next()
                        .is_none()
            }
        };
        if !expect.iter().all(holds)
            || creates
                .iter()
                .any(|(key, _)| entries.map.contains_key(key.as_str()))
        {
            return Commit::Refused;
        }
        entries.next_version += 1;
        let version = Version(entries.next_version);
        for (key, bytes) in creates {
            entries
                .map
                .insert(key.as_str().to_owned(), (bytes.clone(), version));
        }
        for key in deletes {
            entries.map.remove(key.as_str());
        }
        Commit::Committed(version)
    }

    pub fn list(&self, prefix: &str) -> Vec<Key> {
        let entries = lock(&self.entries);
        entries
            .map
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| Key::new(k.clone()).expect("stored keys were validated"))
            .collect()
    }

    pub fn delete(&self, key: &Key) {
        lock(&self.entries).map.remove(key.as_str());
    }

    fn register_owner(&self, owner: &str) -> Result<Box<dyn OwnerRegistration>, StoreError> {
        let mut owners = self.owners.lock().unwrap_or_else(|e| e.into_inner());
        if owners.get(owner).is_some_and(|w| w.strong_count() > 0) {
            return Err(StoreError::Unavailable(format!(
                "owner {owner} is registered already"
            )));
        }
        let alive = std::sync::Arc::new(());
        owners.insert(owner.to_owned(), std::sync::Arc::downgrade(&alive));
        Ok(Box::new(MemRegistration(alive)))
    }

    fn owner_liveness(&self, owner: &str) -> Liveness {
        match self
            .owners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(owner)
        {
            Some(weak) if weak.strong_count() > 0 => Liveness::Alive,
            Some(_) => Liveness::Dead,
            None => Liveness::Unknown,
        }
    }

    pub fn len(&self) -> usize {
        lock(&self.entries).map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An in-process store. Clones share the same entries.
#[derive(Clone, Debug, Default)]
pub struct MemStore {
    core: Arc<MemCore>,
    /// Whether it offers [`Store::commit_if`] (off by default, so that the harnesses that
    /// replay recorded schedules on it see the step-by-step protocol they recorded).
    commits: bool,
}

impl MemStore {
    pub fn new() -> MemStore {
        MemStore::default()
    }

    /// A MemStore that offers [`Store::commit_if`], as EtcdStore does: the tests of the path
    /// locks' one-commit acquisition run on it without an etcd.
    pub fn with_commits() -> MemStore {
        MemStore {
            commits: true,
            ..MemStore::default()
        }
    }

    pub fn core(&self) -> &MemCore {
        &self.core
    }
}

#[async_trait::async_trait]
impl Store for MemStore {
    async fn get(&self, key: &Key) -> Result<Option<(Vec<u8>, Version)>, StoreError> {
        Ok(self.core.get(key))
    }

    async fn create(&self, key: &Key, bytes: &[u8]) -> Result<Created, StoreError> {
        Ok(self.core.create(key, bytes))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<Key>, StoreError> {
        Ok(self.core.list(prefix))
    }

    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        self.core.delete(key);
        Ok(())
    }

    async fn commit_if(
        &self,
        expect: &[Expect],
        creates: &[(Key, Vec<u8>)],
        deletes: &[Key],
    ) -> Result<Commit, StoreError> {
        if !self.commits {
            return Ok(Commit::NotOffered);
        }
        Ok(self.core.commit_if(expect, creates, deletes))
    }

    fn offers_commits(&self) -> bool {
        self.commits
    }

    fn describe(&self) -> String {
        "memory".into()
    }

    async fn register_owner(
        &self,
        owner: &str,
    ) -> Result<Option<Box<dyn OwnerRegistration>>, StoreError> {
        self.core.register_owner(owner).map(Some)
    }

    async fn owner_liveness(&self, owner: &str) -> Result<Liveness, StoreError> {
        Ok(self.core.owner_liveness(owner))
    }
}
