//! A store wrapper that records every successful create: the implementation's effects, which the
//! conformance harness replays through the model (trace validation).

use std::sync::{Arc, Mutex};

use lockstep::store::{Created, Key, Liveness, OwnerRegistration, Store, StoreError, Version};

#[derive(Clone)]
pub struct Recording<S> {
    inner: S,
    creates: Arc<Mutex<Vec<(Key, Vec<u8>)>>>,
}

impl<S: Store> Recording<S> {
    pub fn new(inner: S) -> Recording<S> {
        Recording {
            inner,
            creates: Arc::default(),
        }
    }

    /// The creates recorded since the last call, in order.
    pub fn drain(&self) -> Vec<(Key, Vec<u8>)> {
        std::mem::take(&mut *self.creates.lock().unwrap())
    }
}

#[async_trait::async_trait]
impl<S: Store> Store for Recording<S> {
    async fn get(&self, key: &Key) -> Result<Option<(Vec<u8>, Version)>, StoreError> {
        self.inner.get(key).await
    }
    async fn create(&self, key: &Key, bytes: &[u8]) -> Result<Created, StoreError> {
        let created = self.inner.create(key, bytes).await?;
        if created.is_created() {
            self.creates
                .lock()
                .unwrap()
                .push((key.clone(), bytes.to_vec()));
        }
        Ok(created)
    }
    async fn list(&self, prefix: &str) -> Result<Vec<Key>, StoreError> {
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        self.inner.delete(key).await
    }
    fn describe(&self) -> String {
        format!("recording:{}", self.inner.describe())
    }

    // Registrations and proofs of life pass through: they are not storage operations a fault
    // plan counts.
    async fn register_owner(
        &self,
        owner: &str,
    ) -> Result<Option<Box<dyn OwnerRegistration>>, StoreError> {
        self.inner.register_owner(owner).await
    }

    async fn owner_liveness(&self, owner: &str) -> Result<Liveness, StoreError> {
        self.inner.owner_liveness(owner).await
    }
}
