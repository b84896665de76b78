//! Deliberately broken backends: the conformance suite must fail on each, or it proves nothing.

use std::collections::BTreeMap;
use std::sync::Mutex;

use lockstep::store::{Commit, Created, Expect, Key, Store, StoreError, Version};

/// How a broken store's create-if-absent goes wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flaw {
    /// "Check, then write": two creators can both see the key absent and both "win"
    /// (the S3 mock s3s-fs 0.14 behaves like this).
    CheckThenWrite,
    /// The entry becomes visible in two halves: a reader can see a torn entry.
    TornWrites,
}

/// A map-backed store whose create has `flaw`; everything else is correct.
pub struct Broken {
    flaw: Flaw,
    map: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl Broken {
    pub fn new(flaw: Flaw) -> Broken {
        Broken {
            flaw,
            map: Mutex::default(),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<u8>>> {
        self.map.lock().unwrap()
    }
}

#[async_trait::async_trait]
impl Store for Broken {
    async fn get(&self, key: &Key) -> Result<Option<(Vec<u8>, Version)>, StoreError> {
        Ok(self
            .entries()
            .get(key.as_str())
            .map(|b| (b.clone(), Version(1))))
    }

    async fn create(&self, key: &Key, bytes: &[u8]) -> Result<Created, StoreError> {
        match self.flaw {
            Flaw::CheckThenWrite => {
                let exists = self.entries().contains_key(key.as_str());
                tokio::task::yield_now().await; // the window between the check and the write
                if exists {
                    return Ok(Created::AlreadyExists);
                }
            }
            Flaw::TornWrites => {
                {
                    let mut map = self.entries();
                    if map.contains_key(key.as_str()) {
                        return Ok(Created::AlreadyExists);
                    }
                    map.insert(key.as_str().to_owned(), bytes[..bytes.len() / 2].to_vec());
                }
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
        }
        self.entries()
            .insert(key.as_str().to_owned(), bytes.to_vec());
        Ok(Created::Created(Version(1)))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<Key>, StoreError> {
        Ok(self
            .entries()
            .keys()
            .filter(|k| k.starts_with(prefix))
            .map(|k| Key::new(k.clone()).unwrap())
            .collect())
    }

    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        self.entries().remove(key.as_str());
        Ok(())
    }

    /// With `CheckThenWrite`, commits too: the expectations are checked, then (after a yield)
    /// everything is written, and every entry has version 1. The commit clauses must fail.
    async fn commit_if(
        &self,
        expect: &[Expect],
        creates: &[(Key, Vec<u8>)],
        deletes: &[Key],
    ) -> Result<Commit, StoreError> {
        if self.flaw != Flaw::CheckThenWrite {
            return Ok(Commit::NotOffered);
        }
        let clear = {
            let map = self.entries();
            let holds = |expect: &Expect| match expect {
                Expect::Is(key, version) => {
                    map.contains_key(key.as_str()) && *version == Version(1)
                }
                Expect::NoneBetween(from, to) => {
                    from > to
                        || map
                            .range(from.as_str().to_owned()..=to.as_str().to_owned())
                            .next()
                            .is_none()
                }
            };
            expect.iter().all(holds) && creates.iter().all(|(k, _)| !map.contains_key(k.as_str()))
        };
        tokio::task::yield_now().await; // the window between the check and the write
        if !clear {
            return Ok(Commit::Refused);
        }
        let mut map = self.entries();
        for (key, bytes) in creates {
            map.insert(key.as_str().to_owned(), bytes.clone());
        }
        for key in deletes {
            map.remove(key.as_str());
        }
        Ok(Commit::Committed(Version(1)))
    }

    fn offers_commits(&self) -> bool {
        self.flaw == Flaw::CheckThenWrite
    }

    fn describe(&self) -> String {
        format!("broken:{:?}", self.flaw)
    }
}
