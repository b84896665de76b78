//! One client's view of a shared store, with a script for its next create: pause before it
//! (until the test resumes the client), crash before it (this and every later call fail, as a
//! dead process's would), or let it land and lose its answer (the caller sees an error: an
//! ambiguous outcome). Every create that lands is recorded, with whether its answer was lost,
//! for the conformance harness to replay through the model. Knows no protocol.

use std::sync::{Arc, Mutex};

use lockstep::store::{Created, Key, Liveness, OwnerRegistration, Store, StoreError, Version};

/// What happens at a client's `n`-th create from now (0: the next one). Serialised in replay
/// files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Script {
    /// Wait before it until [`Scripted::resume`].
    PauseBefore(u32),
    /// Crash before it: it and every later operation fail.
    CrashBefore(u32),
    /// The first create from the `n`-th on that lands: its caller gets an error.
    LoseAnswer(u32),
    /// As `LoseAnswer`, and every later call fails: the connection dropped for good right after
    /// the write landed.
    LoseAnswerAndCrash(u32),
    /// Crash before the `n`-th delete from now (deletes are counted apart from creates): it and
    /// every later operation fail.
    CrashBeforeDelete(u32),
    /// The `create`-th create from now fails without landing, and then lands late: just before
    /// this client's `after`-th operation after it (a timed-out write the server applies later).
    LandLate { create: u32, after: u32 },
}

/// A create that landed (or, in [`Scripted::drain_all`], a delete that returned).
#[derive(Clone, Debug)]
pub struct Landed {
    pub key: Key,
    pub bytes: Vec<u8>,
    /// Its caller saw an error.
    pub answer_lost: bool,
    /// A delete, not a create (its `bytes` are empty).
    pub deleted: bool,
}

#[derive(Default)]
struct State {
    script: Option<(u32, Script)>,
    creates: u32,
    deletes: u32,
    crashed: bool,
    paused: bool,
    landed: Vec<Landed>,
    /// Scripts that fired.
    fired: Vec<Script>,
    /// A create to land late: its key, bytes, and the operations left before it lands.
    late: Option<(Key, Vec<u8>, u32)>,
}

#[derive(Clone)]
pub struct Scripted {
    inner: Arc<dyn Store>,
    state: Arc<Mutex<State>>,
    resumed: Arc<tokio::sync::Notify>,
}

impl Scripted {
    pub fn new(inner: Arc<dyn Store>) -> Scripted {
        Scripted {
            inner,
            state: Arc::default(),
            resumed: Arc::default(),
        }
    }

    /// Arms `script` (replacing any armed one), counting creates from now.
    pub fn arm(&self, script: Script) {
        let mut state = self.state.lock().unwrap();
        state.creates = 0;
        state.deletes = 0;
        state.script = Some((0, script));
    }

    pub fn disarm(&self) {
        self.state.lock().unwrap().script = None;
    }

    /// Whether a create is waiting at a pause now.
    pub fn paused(&self) -> bool {
        self.state.lock().unwrap().paused
    }

    pub fn resume(&self) {
        self.state.lock().unwrap().paused = false;
        self.resumed.notify_waiters();
    }

    pub fn crashed(&self) -> bool {
        self.state.lock().unwrap().crashed
    }

    /// The creates that landed since the last call, in order (deletes are dropped).
    pub fn drain(&self) -> Vec<Landed> {
        let mut all = self.drain_all();
        all.retain(|l| !l.deleted);
        all
    }

    /// The creates that landed and the deletes that returned since the last call, in order.
    pub fn drain_all(&self) -> Vec<Landed> {
        std::mem::take(&mut self.state.lock().unwrap().landed)
    }

    pub fn fired(&self) -> Vec<Script> {
        self.state.lock().unwrap().fired.clone()
    }

    fn alive(&self) -> Result<(), StoreError> {
        if self.state.lock().unwrap().crashed {
            return Err(StoreError::Injected("the process crashed".into()));
        }
        Ok(())
    }

    /// Counts one operation of this client, and lands a late create whose time has come.
    async fn tick(&self) {
        let due = {
            let mut state = self.state.lock().unwrap();
            match state.late.as_mut() {
                Some((_, _, left)) if *left > 1 => {
                    *left -= 1;
                    None
                }
                Some(_) => state.late.take(),
                None => None,
            }
        };
        if let Some((key, bytes, _)) = due {
            if let Ok(created) = self.inner.create(&key, &bytes).await {
                if created.is_created() {
                    self.state.lock().unwrap().landed.push(Landed {
                        key,
                        bytes,
                        answer_lost: true,
                        deleted: false,
                    });
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl Store for Scripted {
    async fn get(&self, key: &Key) -> Result<Option<(Vec<u8>, Version)>, StoreError> {
        self.alive()?;
        self.tick().await;
        self.inner.get(key).await
    }

    async fn create(&self, key: &Key, bytes: &[u8]) -> Result<Created, StoreError> {
        self.tick().await;
        let lose = {
            let mut state = self.state.lock().unwrap();
            if state.crashed {
                return Err(StoreError::Injected("the process crashed".into()));
            }
            let n = state.creates;
            state.creates += 1;
            match state.script {
                Some((_, Script::PauseBefore(at))) if at == n => {
                    state.script = None;
                    state.paused = true;
                    state.fired.push(Script::PauseBefore(at));
                    false
                }
                Some((_, Script::CrashBefore(at))) if at == n => {
                    state.script = None;
                    state.crashed = true;
                    state.fired.push(Script::CrashBefore(at));
                    return Err(StoreError::Injected("the process crashed".into()));
                }
                Some((_, Script::LoseAnswer(at))) | Some((_, Script::LoseAnswerAndCrash(at))) => {
                    at <= n
                }
                Some((_, Script::LandLate { create, after })) if create == n => {
                    state.script = None;
                    state.late = Some((key.clone(), bytes.to_vec(), after.max(1)));
                    state.fired.push(Script::LandLate { create, after });
                    return Err(StoreError::Unavailable(
                        "injected: the create timed out (it will land later)".into(),
                    ));
                }
                _ => false,
            }
        };
        loop {
            // Registered before the check, so a `resume` between the two is not missed.
            let resumed = self.resumed.notified();
            if !self.state.lock().unwrap().paused {
                break;
            }
            resumed.await;
        }
        self.alive()?;
        let created = self.inner.create(key, bytes).await?;
        if created.is_created() {
            let mut state = self.state.lock().unwrap();
            state.landed.push(Landed {
                key: key.clone(),
                bytes: bytes.to_vec(),
                answer_lost: lose,
                deleted: false,
            });
            if lose {
                let fired = state
                    .script
                    .take()
                    .map(|(_, s)| s)
                    .unwrap_or(Script::LoseAnswer(0));
                if matches!(fired, Script::LoseAnswerAndCrash(_)) {
                    state.crashed = true;
                }
                state.fired.push(fired);
                return Err(StoreError::Unavailable(
                    "injected: the create landed but its answer was lost".into(),
                ));
            }
        }
        Ok(created)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<Key>, StoreError> {
        self.alive()?;
        self.tick().await;
        self.inner.list(prefix).await
    }

    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        self.alive()?;
        {
            let mut state = self.state.lock().unwrap();
            let n = state.deletes;
            state.deletes += 1;
            if let Some((_, Script::CrashBeforeDelete(at))) = state.script {
                if at == n {
                    state.script = None;
                    state.crashed = true;
                    state.fired.push(Script::CrashBeforeDelete(at));
                    return Err(StoreError::Injected("the process crashed".into()));
                }
            }
        }
        self.tick().await;
        self.inner.delete(key).await?;
        self.state.lock().unwrap().landed.push(Landed {
            key: key.clone(),
            bytes: Vec::new(),
            answer_lost: false,
            deleted: true,
        });
        Ok(())
    }

    fn describe(&self) -> String {
        format!("scripted:{}", self.inner.describe())
    }

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
