//! Deliberately broken backends: the conformance suite must fail on each, or it proves nothing.

use std::collections::BTreeMap;
use std::sync::Mutex;

use lockstep::store::{Created, Key, Store, StoreError, Version};

/// Create-if-absent done as "check, then write": two creators can both see the key absent and
/// both "win" (s3s-fs 0.14 behaves like this; research/anchors.md).
#[derive(Default)]
pub struct CheckThenWrite {
    map: Map,
}

/// A store that makes an entry visible in two halves: a reader can see a torn entry.
#[derive(Default)]
pub struct TornWrites {
    map: Map,
}

/// The map both broken stores keep; only their `create` differs.
#[derive(Default)]
struct Map(Mutex<BTreeMap<String, Vec<u8>>>);

impl Map {
    fn entries(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<u8>>> {
        self.0.lock().unwrap()
    }

    fn get(&self, key: &Key) -> Option<(Vec<u8>, Version)> {
        self.entries().get(key.as_str()).map(|b| (b.clone(), Version(1)))
    }

    fn list(&self, prefix: &str) -> Vec<Key> {
        self.entries().keys().filter(|k| k.starts_with(prefix)).map(|k| Key::new(k.clone()).unwrap()).collect()
    }

    fn delete(&self, key: &Key) {
        self.entries().remove(key.as_str());
    }
}

#[async_trait::async_trait]
impl Store for CheckThenWrite {
    async fn get(&self, key: &Key) -> Result<Option<(Vec<u8>, Version)>, StoreError> {
        Ok(self.map.get(key))
    }
    async fn create(&self, key: &Key, bytes: &[u8]) -> Result<Created, StoreError> {
        let exists = self.map.entries().contains_key(key.as_str());
        tokio::task::yield_now().await; // the window between the check and the write
        if exists {
            return Ok(Created::AlreadyExists);
        }
        self.map.entries().insert(key.as_str().to_owned(), bytes.to_vec());
        Ok(Created::Created(Version(1)))
    }
    async fn list(&self, prefix: &str) -> Result<Vec<Key>, StoreError> {
        Ok(self.map.list(prefix))
    }
    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        self.map.delete(key);
        Ok(())
    }
    fn describe(&self) -> String {
        "broken:check-then-write".into()
    }
}

#[async_trait::async_trait]
impl Store for TornWrites {
    async fn get(&self, key: &Key) -> Result<Option<(Vec<u8>, Version)>, StoreError> {
        Ok(self.map.get(key))
    }
    async fn create(&self, key: &Key, bytes: &[u8]) -> Result<Created, StoreError> {
        {
            let mut map = self.map.entries();
            if map.contains_key(key.as_str()) {
                return Ok(Created::AlreadyExists);
            }
            map.insert(key.as_str().to_owned(), bytes[..bytes.len() / 2].to_vec());
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        self.map.entries().insert(key.as_str().to_owned(), bytes.to_vec());
        Ok(Created::Created(Version(1)))
    }
    async fn list(&self, prefix: &str) -> Result<Vec<Key>, StoreError> {
        Ok(self.map.list(prefix))
    }
    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        self.map.delete(key);
        Ok(())
    }
    fn describe(&self) -> String {
        "broken:torn-writes".into()
    }
}
