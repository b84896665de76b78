//! The ticket journal under a claimer whose listing is stale. Old tickets are collected once one
//! `TICKETS_KEPT` (64) above them was claimed; a claimer that listed `tickets/` before that, and
//! creates only now, re-creates a collected ticket, and the create succeeds. Its stray check (the
//! newest ticket, listed after the create, is far above ours) must send it above the newest:
//! every token handed out is larger than every token handed out before the claim began
//! (specs/lock.md §12). A manager that starts its claim above the newest ticket its previous
//! claim saw, without listing, is in the same position when others claimed meanwhile.

use std::sync::Mutex;

use lockstep::lock::journal::{claim_ticket, collect_tickets};
use lockstep::store::{Created, Key, MemStore, Persist, Store, StoreError, Version};

/// A MemStore whose next listing of `tickets/` is the one it was given: what a claimer that
/// listed long ago, and was then paused, would have seen.
struct StaleTickets {
    inner: MemStore,
    stale: Mutex<Option<Vec<Key>>>,
}

#[async_trait::async_trait]
impl Store for StaleTickets {
    async fn get(&self, key: &Key) -> Result<Option<(Vec<u8>, Version)>, StoreError> {
        self.inner.get(key).await
    }
    async fn create(&self, key: &Key, bytes: &[u8]) -> Result<Created, StoreError> {
        self.inner.create(key, bytes).await
    }
    async fn create_persisting(
        &self,
        key: &Key,
        bytes: &[u8],
        persist: Persist,
    ) -> Result<Created, StoreError> {
        self.inner.create_persisting(key, bytes, persist).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<Key>, StoreError> {
        if prefix == "tickets/" {
            if let Some(stale) = self.stale.lock().unwrap().take() {
                return Ok(stale);
            }
        }
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        self.inner.delete(key).await
    }
    fn describe(&self) -> String {
        "stale-tickets".into()
    }
}

/// 100 tickets claimed (and the old ones collected, as acquisitions do), then one claim that
/// starts from the listing an early claimer saw (tickets `1..=seen`): the ticket it is handed,
/// and the newest before.
async fn claim_from_a_stale_listing(seen: u64, hinted: bool) -> (u64, u64) {
    let store = StaleTickets {
        inner: MemStore::new(),
        stale: Mutex::new(None),
    };
    let mut newest = 0;
    for _ in 0..100 {
        let claimed = claim_ticket(&store, 10, None).await.unwrap();
        collect_tickets(&store, &claimed).await.unwrap();
        newest = claimed.ticket;
    }
    assert!(
        store
            .inner
            .get(&Key::new("tickets/00000000000000000001").unwrap())
            .await
            .unwrap()
            .is_none(),
        "the oldest tickets were collected"
    );
    let stale = (1..=seen)
        .map(|t| Key::new(format!("tickets/{t:020}")).unwrap())
        .collect();
    // Or, alike, a manager whose previous claim saw ticket `seen` as the newest: it tries the
    // one above without listing.
    let after = if hinted {
        Some(seen)
    } else {
        *store.stale.lock().unwrap() = Some(stale);
        None
    };
    let late = claim_ticket(&store, 10, after).await.unwrap();
    (newest, late.ticket)
}

/// The planted bug is switched on for the whole process: the two tests take turns.
static SERIAL: Mutex<()> = Mutex::new(());

fn check() -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // Seen nothing: it re-creates the collected ticket 1. Seen up to 36, the newest ticket 64
    // below the last claim: it tries 37, which the collector must still keep.
    // The same from a manager's own last claim, as old.
    for hinted in [false, true] {
        for seen in [0, 36] {
            let (newest, late) = runtime.block_on(claim_from_a_stale_listing(seen, hinted));
            if late <= newest {
                let from = if hinted { "last claim" } else { "listing" };
                return Err(format!(
                    "a claim from a {from} of tickets 1..={seen} was handed ticket {late}, not above {newest}"
                ));
            }
        }
    }
    Ok(())
}

#[test]
fn a_claim_from_a_stale_listing_is_handed_a_ticket_above_every_earlier_one() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    check().unwrap();
}

#[cfg(feature = "mutants")]
#[test]
fn the_stale_listing_test_catches_a_claim_without_its_stray_check() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    lockstep::mutants::activate(Some(lockstep::mutants::Mutant::TicketStrayUnchecked));
    let outcome = check();
    lockstep::mutants::activate(None);
    let error = outcome.expect_err("a claim without its stray check went unnoticed");
    assert!(error.contains("handed ticket 1,"), "{error}");
}
