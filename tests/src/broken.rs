//! Deliberately broken backends: the conformance suite must fail on each, or it proves nothing.

use std::collections::BTreeMap;
use std::sync::Mutex;

use lockstep::store::{Created, Key, Store, StoreError, Version};

/// Create-if-absent done as "check, then write": two creators can both see the key absent and
/// both "win" (s3s-fs 0.14 behaves like this; research/anchors.md).
#[derive(Default)]
pub struct CheckThenWrite {
    map: Mutex<BTreeMap<String, Vec<u8>>>,
}

/// A store that makes an entry visible in two halves: a reader can see a torn entry.
#[derive(Default)]
pub struct TornWrites {
    map: Mutex<BTreeMap<String, Vec<u8>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap()
}

#[async_trait::async_trait]
impl Store for CheckThenWrite {
    async fn get(&self, key: &Key) -> Result<Option<(Vec<u8>, Version)>, StoreError> {
        Ok(lock(&self.map).get(key.as_str()).map(|b| (b.clone(), Version(1))))
    }
    async fn create(&self, key: &Key, bytes: &[u8]) -> Result<Created, StoreError> {
        let exists = lock(&self.map).contains_key(key.as_str());
        tokio::task::yield_now().await; // the window between the check and the write
        if exists {
            return Ok(Created::AlreadyExists);
        }
        lock(&self.map).insert(key.as_str().to_owned(), bytes.to_vec());
        Ok(Created::Created(Version(1)))
    }
    async fn list(&self, prefix: &str) -> Result<Vec<Key>, StoreError> {
        Ok(lock(&self.map).keys().filter(|k| k.starts_with(prefix)).map(|k| Key::new(k.clone()).unwrap()).collect())
    }
    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        lock(&self.map).remove(key.as_str());
        Ok(())
    }
    fn describe(&self) -> String {
        "broken:check-then-write".into()
    }
}

#[async_trait::async_trait]
impl Store for TornWrites {
    async fn get(&self, key: &Key) -> Result<Option<(Vec<u8>, Version)>, StoreError> {
        Ok(lock(&self.map).get(key.as_str()).map(|b| (b.clone(), Version(1))))
    }
    async fn create(&self, key: &Key, bytes: &[u8]) -> Result<Created, StoreError> {
        {
            let mut map = lock(&self.map);
            if map.contains_key(key.as_str()) {
                return Ok(Created::AlreadyExists);
            }
            map.insert(key.as_str().to_owned(), bytes[..bytes.len() / 2].to_vec());
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        lock(&self.map).insert(key.as_str().to_owned(), bytes.to_vec());
        Ok(Created::Created(Version(1)))
    }
    async fn list(&self, prefix: &str) -> Result<Vec<Key>, StoreError> {
        Ok(lock(&self.map).keys().filter(|k| k.starts_with(prefix)).map(|k| Key::new(k.clone()).unwrap()).collect())
    }
    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        lock(&self.map).remove(key.as_str());
        Ok(())
    }
    fn describe(&self) -> String {
        "broken:torn-writes".into()
    }
}
