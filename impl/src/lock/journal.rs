//! Journals: sequences of entries `<prefix><index>` claimed with create-if-absent. The newest
//! entry (the largest index) is the journal's state.
//!
//! Garbage collection deletes entries below the newest. That opens one hole the protocol must
//! close: a slow writer that read index `n` long ago could re-create a collected `n+1`. Readers
//! never see such a stray (they read the largest index), so only its writer can be misled: an
//! `acquire` or `renew` that "succeeded" that way would make it believe it holds the lock. So an
//! append of those two checks afterwards that its entry is the newest, and counts as lost if a
//! larger index exists. That is sound because an entry is collected only while a newer one exists
//! (and the newest is never collected); and it is never too strict, because anything appended
//! after a live `acquire`/`renew` supersedes it. A `release` or `withdraw` is not checked: the next
//! acquirer appending right after it is the normal case, and a stray one changes nothing.

use super::entry::{Entry, Malformed};
use super::path::{LockPath, INDEX_DIGITS};
use super::LockError;
use crate::store::{Created, Key, Persist, Read, ReadOutcome, Store, StoreError, Version};

/// The newest entry of a lock journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Newest {
    pub index: u64,
    pub entry: Entry,
    /// The store's version of the entry: what a one-commit acquisition expects to find there
    /// still (`Expect::Is`).
    pub version: Version,
}

/// Parses the index of `key` if it is an entry of the journal with `prefix` (and not of a
/// journal below it).
fn index_of(prefix: &str, key: &str) -> Option<u64> {
    let digits = key.strip_prefix(prefix)?;
    (digits.len() == INDEX_DIGITS && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// The indices present in the journal with `prefix`, ascending.
pub async fn indices(store: &dyn Store, prefix: &str) -> Result<Vec<u64>, LockError> {
    Ok(indices_in(prefix, &store.list(prefix).await?))
}

/// The indices among `keys` (a listing of `prefix`) that are entries of its journal, ascending.
fn indices_in(prefix: &str, keys: &[Key]) -> Vec<u64> {
    let mut indices: Vec<u64> = keys
        .iter()
        .filter_map(|k| index_of(prefix, k.as_str()))
        .collect();
    indices.sort_unstable();
    indices
}

/// Whether `key` is an entry of the journal with `prefix` (the pick of [`newest_read`]).
fn is_entry_of(prefix: &str, key: &str) -> bool {
    index_of(prefix, key).is_some()
}

/// The read of `path`'s newest entry, for [`Store::read_many`]: a list, then a get of the last
/// entry listed (entry names have a fixed width, so byte order is index order).
fn newest_read(path: &LockPath) -> Read {
    Read::ListThenGetLast {
        prefix: path.journal_prefix(),
        pick: is_entry_of,
    }
}

/// The newest entry a [`newest_read`] found, or `None` if a collector deleted the entry it
/// listed before its get (then read again).
fn newest_found(path: &LockPath, found: ReadOutcome) -> Result<Option<Option<Newest>>, LockError> {
    let Some((key, got)) = found.last else {
        return Ok(Some(None));
    };
    let Some((bytes, version)) = got else {
        return Ok(None);
    };
    let index = index_of(&path.journal_prefix(), key.as_str()).expect("picked as an entry");
    let entry = Entry::decode(key.as_str(), &bytes)?;
    Ok(Some(Some(Newest {
        index,
        entry,
        version,
    })))
}

/// The newest entry of a path's journal, or `None` for an empty journal.
pub async fn newest(store: &dyn Store, path: &LockPath) -> Result<Option<Newest>, LockError> {
    // A collector may delete an entry between our list and our get; then list again. It never
    // deletes the newest entry, so this settles after a few rounds at most.
    for _ in 0..8 {
        let found = store.read_many(&[newest_read(path)]).await?;
        let found = found.into_iter().next().expect("one outcome per read");
        if let Some(newest) = newest_found(path, found)? {
            return Ok(newest);
        }
    }
    Err(LockError::Unsettled { path: path.clone() })
}

/// The newest entry of each of `paths`, read one journal after the other as [`newest`] does, in
/// one store call (FsStore: one blocking-thread hop instead of two per journal). A journal whose
/// listed entry was collected before its get is read again on its own.
pub async fn newest_many(
    store: &dyn Store,
    paths: &[LockPath],
) -> Result<Vec<Option<Newest>>, LockError> {
    let reads: Vec<Read> = paths.iter().map(newest_read).collect();
    let found = store.read_many(&reads).await?;
    settle(store, paths, found).await
}

/// [`newest_many`] and the newest ticket, in one store call: what a refused one-commit
/// acquisition reads before it tries again (`commit`).
pub async fn newest_many_and_newest_ticket(
    store: &dyn Store,
    paths: &[LockPath],
) -> Result<(Vec<Option<Newest>>, u64), LockError> {
    let mut reads: Vec<Read> = paths.iter().map(newest_read).collect();
    reads.push(Read::List(TICKETS.to_owned()));
    let mut found = store.read_many(&reads).await?;
    answered_all(found.len(), reads.len())?;
    let tickets = found.pop().expect("answered all");
    let newest_ticket = indices_in(TICKETS, &tickets.keys)
        .last()
        .copied()
        .unwrap_or(0);
    Ok((settle(store, paths, found).await?, newest_ticket))
}

/// A batch of reads that the store answered only in part fails: a journal left unread could
/// hold a conflicting lock, so nothing is concluded from the rest.
fn answered_all(answered: usize, asked: usize) -> Result<(), LockError> {
    if answered == asked {
        return Ok(());
    }
    Err(LockError::Store(StoreError::Unavailable(format!(
        "the store answered {answered} of {asked} reads in a batch"
    ))))
}

/// [`newest_found`] of each outcome, reading again where an entry vanished.
async fn settle(
    store: &dyn Store,
    paths: &[LockPath],
    found: Vec<ReadOutcome>,
) -> Result<Vec<Option<Newest>>, LockError> {
    // Fail closed: a journal left unread could hold a conflicting lock.
    answered_all(found.len(), paths.len())?;
    let mut out = Vec::with_capacity(paths.len());
    for (path, found) in paths.iter().zip(found) {
        out.push(match newest_found(path, found)? {
            Some(newest) => newest,
            None => newest(store, path).await?,
        });
    }
    Ok(out)
}

/// Whether `index` is the newest entry of `path`'s journal: the check after an `acquire`
/// create (see the module comment).
pub async fn is_newest(store: &dyn Store, path: &LockPath, index: u64) -> Result<bool, LockError> {
    Ok(indices(store, &path.journal_prefix())
        .await?
        .last()
        .copied()
        == Some(index))
}

/// A name in the lock namespace that cannot be read as a journal's newest entry: a malformed or
/// unknown entry, a symlink or directory where an entry belongs, a stray file. It guards what
/// its journal would have guarded: acquisitions that must read it fail closed; scans of the
/// whole store (the cleaner, recovery, `locks`) report it and go on.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Corrupt {
    pub key: String,
    pub reason: String,
}

/// What a scan of every journal below a path found.
#[derive(Debug, Default)]
pub struct Scan {
    /// The newest entry of each readable journal, in path order.
    pub journals: Vec<(LockPath, Newest)>,
    pub corrupt: Vec<Corrupt>,
}

/// Whether `error` is about one entry (report it, go on) rather than the store as a whole.
fn about_one_entry(error: &LockError) -> Option<String> {
    match error {
        LockError::Corrupt { reason, .. } => Some(reason.clone()),
        LockError::Store(e @ (StoreError::Foreign { .. } | StoreError::Io { .. })) => {
            Some(e.to_string())
        }
        _ => None,
    }
}

/// The newest entry of every journal strictly below `path` (one `list`), and what could not be
/// read. Errors of the store as a whole (unavailable, full) still fail the scan.
pub async fn scan_below(store: &dyn Store, path: &LockPath) -> Result<Scan, LockError> {
    let keys = store.list(&path.subtree_prefix()).await?;
    let mut scan = Scan::default();
    let mut newest: Vec<(LockPath, u64)> = Vec::new();
    for key in &keys {
        let Some((entry_path, index)) = LockPath::parse_entry_key(key.as_str()) else {
            // Nothing lockstep writes: ask the store what it is.
            let reason = match store.get(key).await {
                Ok(Some(_)) => "a file that is not a lock journal entry".to_owned(),
                Ok(None) => continue,
                Err(error @ (StoreError::Foreign { .. } | StoreError::Io { .. })) => {
                    error.to_string()
                }
                Err(error) => return Err(error.into()),
            };
            scan.corrupt.push(Corrupt {
                key: key.to_string(),
                reason,
            });
            continue;
        };
        if entry_path == *path {
            continue;
        }
        match newest.last_mut() {
            Some((last, top)) if *last == entry_path => *top = (*top).max(index),
            _ => newest.push((entry_path, index)),
        }
    }
    // Path order ("/a" before "/a/b"), the order the model checks them in; key order differs
    // ("locks/a/b/…" sorts before "locks/a/~…").
    newest.sort();
    // The listing already names each journal's newest entry; read just those, all in one store
    // call (one hop on FsStore, not one per journal). If that call fails on one entry (a
    // foreign file, an I/O error), read them one by one, so that the entry that cannot be read
    // is reported as itself; any other failure fails the scan, as the first failed get did.
    let reads: Vec<Read> = newest
        .iter()
        .map(|(entry_path, index)| Read::Get(entry_path.entry_key(*index)))
        .collect();
    let mut batched: Option<Vec<Option<(Vec<u8>, Version)>>> = match store.read_many(&reads).await {
        Ok(found) => {
            answered_all(found.len(), reads.len())?;
            Some(
                found
                    .into_iter()
                    .map(|found| found.last.and_then(|(_, got)| got))
                    .collect(),
            )
        }
        Err(StoreError::Foreign { .. } | StoreError::Io { .. }) => None,
        Err(error) => return Err(error.into()),
    };
    for (n, (entry_path, index)) in newest.into_iter().enumerate() {
        // Fall back to a fresh listing if a collector removed the entry in between.
        let key = entry_path.entry_key(index);
        let got = match batched.as_mut() {
            Some(found) => Ok(found[n].take()),
            None => store.get(&key).await,
        };
        let found = async {
            match got? {
                Some((bytes, version)) => Ok(Some(Newest {
                    index,
                    entry: Entry::decode(key.as_str(), &bytes)?,
                    version,
                })),
                None => self::newest(store, &entry_path).await,
            }
        };
        match found.await {
            Ok(Some(found)) => scan.journals.push((entry_path, found)),
            Ok(None) => {}
            Err(error) => match about_one_entry(&error) {
                Some(reason) => scan.corrupt.push(Corrupt {
                    key: key.to_string(),
                    reason,
                }),
                None => return Err(error),
            },
        }
    }
    Ok(scan)
}

/// The newest entry of every journal strictly below `path`, in path order. Anything below that
/// cannot be read fails the call: it may be a lock that conflicts (fail closed).
pub async fn newest_below(
    store: &dyn Store,
    path: &LockPath,
) -> Result<Vec<(LockPath, Newest)>, LockError> {
    let scan = scan_below(store, path).await?;
    if let Some(corrupt) = scan.corrupt.into_iter().next() {
        return Err(LockError::Corrupt {
            key: corrupt.key,
            reason: corrupt.reason,
        });
    }
    Ok(scan.journals)
}

/// Whether a create refused with `AlreadyExists` had something readable at its key: a store
/// that refuses a create and shows nothing there breaks create-if-absent, and retrying the same
/// key would spin. A foreign object at the key (a directory, a symlink) is its own error.
pub async fn check_refused(store: &dyn Store, key: &Key) -> Result<bool, LockError> {
    Ok(store.get(key).await?.is_some())
}

/// Appends `entry` at `index` of `path`'s journal: `true` if it landed (and, for an `acquire` or
/// `renew`, is the newest; see the module comment).
pub async fn append(
    store: &dyn Store,
    path: &LockPath,
    index: u64,
    entry: &Entry,
) -> Result<bool, LockError> {
    let key = path.entry_key(index);
    if entry.holder().is_none() {
        let created = store
            .create_persisting(&key, &entry.encode(), entry.persist())
            .await?;
        return Ok(created.is_created());
    }
    // An `acquire` or `renew` is ours only if it is the newest: listed in the same store call.
    let prefix = path.journal_prefix();
    let (created, listed) = store
        .create_then_read(
            &key,
            &entry.encode(),
            entry.persist(),
            &[Read::List(prefix.clone())],
        )
        .await?;
    Ok(match created {
        Created::AlreadyExists => false,
        Created::Created(_) => {
            let listed = listed.into_iter().next().expect("one outcome per read");
            indices_in(&prefix, &listed.keys).last().copied() == Some(index)
        }
    })
}

/// A release or withdraw sweeps its whole journal (one `list`) when a multiple of this falls in
/// the window it collects; otherwise it deletes only the entries it knows, without listing
/// ([`collect_after_own`]).
pub const SWEEP_EVERY: u64 = 16;

/// Collects what our `release` or `withdraw` that landed at `at`, right after our own `acquire`
/// or `renew` at `at - 1`, leaves behind: that entry and the one before it (what our `acquire`
/// superseded, or what our last renewal already collected), lazily and in one store call. Both
/// lie below `at`, which exists, so neither is the newest. No `list`: a cycle pays one hop for
/// its garbage, not a listing and a hop per entry (specs/lock.md §12).
///
/// What no release or withdraw follows (a crashed holder's entries, released by recovery or a
/// reaper) is left to a sweep: when a multiple of [`SWEEP_EVERY`] falls in `at - 2 ..= at`, the
/// whole journal below `at` is listed and deleted. Consecutive holders' windows overlap, so a
/// journal in use is swept about every `SWEEP_EVERY` indices (tested:
/// `impl/tests/lock_garbage.rs`), whatever mix of releases and withdraws it sees.
pub async fn collect_after_own(
    store: &dyn Store,
    path: &LockPath,
    at: u64,
) -> Result<(), LockError> {
    match garbage_after_own(path, at) {
        None => collect_below(store, path, at).await.map(|_| ()),
        Some(known) => Ok(store.delete_lazily_many(&known).await?),
    }
}

/// The two entries [`collect_after_own`] deletes without a listing, or `None` when its window
/// holds a multiple of [`SWEEP_EVERY`] and the whole journal below `at` is to be swept.
pub fn garbage_after_own(path: &LockPath, at: u64) -> Option<Vec<Key>> {
    let window = if crate::mutants::active(crate::mutants::Mutant::CollectDeletesNewest) {
        at.saturating_sub(2)..at + 1 // Planted: the release at `at` too.
    } else {
        at.saturating_sub(2)..at
    };
    if (window.start..=at).any(|i| i.is_multiple_of(SWEEP_EVERY)) {
        return None;
    }
    Some(window.map(|i| path.entry_key(i)).collect())
}

/// Deletes entries of `path`'s journal below `index` (best effort; never the newest), lazily.
pub async fn collect_below(
    store: &dyn Store,
    path: &LockPath,
    index: u64,
) -> Result<usize, LockError> {
    collect_below_as(store, path, index, true).await
}

/// [`collect_below`], durably unless `lazily`: the offline collector deletes durably, because it
/// also removes the registrations of the owners it finds gone (an old entry brought back by a
/// power loss would then name an owner nobody can prove dead).
pub async fn collect_below_as(
    store: &dyn Store,
    path: &LockPath,
    index: u64,
    lazily: bool,
) -> Result<usize, LockError> {
    let present = indices(store, &path.journal_prefix()).await?;
    let newest = present.last().copied().unwrap_or(0);
    let old: Vec<Key> = present
        .into_iter()
        .filter(|i| *i < index && *i < newest)
        .map(|i| path.entry_key(i))
        .collect();
    if lazily {
        // Lazily: an old entry a machine crash brings back sits below a newer one, or is the
        // dead holder's lock that the crash's lost release would have left anyway.
        store.delete_lazily_many(&old).await?;
    } else {
        for key in &old {
            store.delete(key).await?;
        }
    }
    Ok(old.len())
}

const TICKETS: &str = "tickets/";

pub(crate) fn ticket_key(ticket: u64) -> Key {
    Key::new(format!("{TICKETS}{ticket:0width$}", width = INDEX_DIGITS)).expect("valid key")
}

/// The key above every ticket (20 nines).
pub(crate) fn ticket_key_max() -> Key {
    Key::new(format!("{TICKETS}{}", "9".repeat(INDEX_DIGITS))).expect("valid key")
}

/// The old tickets a commit that claims `ticket` deletes with it: on every `TICKETS_BATCH`-th
/// ticket, the batch that is now `TICKETS_KEPT` behind it (the collector's rule, by arithmetic,
/// without a listing: a ticket already gone is deleted again, harmlessly).
pub(crate) fn tickets_collected_at(ticket: u64) -> Vec<Key> {
    if !ticket.is_multiple_of(TICKETS_BATCH) || ticket <= TICKETS_KEPT {
        return Vec::new();
    }
    let top = ticket - TICKETS_KEPT;
    (top.saturating_sub(TICKETS_BATCH - 1).max(1)..=top)
        .map(ticket_key)
        .collect()
}

/// A claimed ticket, and the old tickets the claim's last listing saw that may now be collected.
#[derive(Debug)]
pub struct Claimed {
    pub ticket: u64,
    /// Tickets at least `TICKETS_KEPT` below `ticket`: the collector may remove them.
    pub old: Vec<u64>,
    /// The newest ticket the claim's last listing showed (at least `ticket`): where the
    /// caller's next claim may start without listing first.
    pub newest_seen: u64,
}

/// Claims the next ticket of the global ticket journal: a number larger than every ticket claimed
/// before this call started.
///
/// `after`: the newest ticket the caller saw in its previous claim, if any. The claim then tries
/// the ticket above it at once, without listing the journal first (a process claiming alone
/// saves one listing per claim; specs/lock.md §12). A stale `after` is what a claimer paused
/// since its listing has, and the stray check below handles both alike: a ticket still present
/// answers "already exists", one collected long ago is found far below the newest. That there is
/// no third case (a ticket above `after + 1` claimed while `after + 1` never was) rests on how
/// every claim picks its number: one above a ticket it saw exist (a listing's newest, its own
/// last ticket or listing's newest, a ticket that answered "already exists"), or 1. So ticket
/// `k` is created only after ticket `k - 1` existed.
pub async fn claim_ticket(
    store: &dyn Store,
    attempts_max: u32,
    after: Option<u64>,
) -> Result<Claimed, LockError> {
    // Empty: no reader decodes a ticket, only its name counts, and an empty entry is cheaper
    // to create and to delete (FsStore: no temporary file, no data block to free).
    let entry: &[u8] = &[];
    let after_ticket = [Read::List(TICKETS.to_owned())];
    let mut next = match after {
        Some(after) => after + 1,
        None => indices(store, TICKETS).await?.last().copied().unwrap_or(0) + 1,
    };
    let mut refused = 0;
    for _ in 0..attempts_max {
        // The name must survive a machine crash (tickets after it must stay larger than every
        // token handed out before it), its bytes need not: no reader decodes a ticket.
        let persist = if crate::mutants::active(crate::mutants::Mutant::TicketNotSynced) {
            Persist::MayVanish
        } else {
            Persist::NameOnly
        };
        match store
            .create_then_read(&ticket_key(next), entry, persist, &after_ticket)
            .await?
        {
            (Created::AlreadyExists, _) => {
                // Someone else's ticket: take the next. Nothing readable there twice in a row
                // means the store refuses every create, which no number of attempts fixes.
                if !check_refused(store, &ticket_key(next)).await? {
                    refused += 1;
                    if refused == 2 {
                        return Err(LockError::CreateRefused {
                            key: ticket_key(next).to_string(),
                        });
                    }
                } else {
                    refused = 0;
                }
                // Someone else's ticket: go to the front again. Stepping by one instead starved a
                // claimer behind a busy journal (it never caught up with claimers that listed:
                // 1,000 attempts lost in a row with 8 contending tasks).
                let newest = indices(store, TICKETS).await?.last().copied().unwrap_or(0);
                next = (next + 1).max(newest + 1);
            }
            (Created::Created(_), listed) => {
                // A stray? A claimer that read the journal long ago can re-create a ticket the
                // collector removed, below tickets already handed out (see the module comment).
                // The collector removes a ticket only once one `TICKETS_KEPT` above it was
                // claimed, so a newest ticket less than that far above ours proves ours never
                // existed before: it is larger than every ticket claimed before this call. (The
                // check used to demand that ours be the newest; under contention someone almost
                // always claimed a larger one during our create's `fsync`, and claimers burnt
                // ticket after ticket: 1,000 in a row with 8 tasks on one disk.)
                // (The listing is made right after the create, in the same store call.)
                let listed = listed.into_iter().next().expect("one outcome per read");
                let present = indices_in(TICKETS, &listed.keys);
                let newest = present.last().copied().unwrap_or(0);
                let unchecked =
                    crate::mutants::active(crate::mutants::Mutant::TicketStrayUnchecked);
                if newest < next + TICKETS_KEPT || unchecked {
                    let old = present
                        .iter()
                        .copied()
                        .take_while(|t| t + TICKETS_KEPT <= next)
                        .collect();
                    return Ok(Claimed {
                        ticket: next,
                        old,
                        newest_seen: newest.max(next),
                    });
                }
                next = newest + 1;
            }
        }
    }
    Err(LockError::Contended {
        what: "the ticket journal".into(),
        attempts: attempts_max,
    })
}

/// Collects the old tickets a claim saw, once there are at least `TICKETS_BATCH` of them, in one
/// lazy store call: the journal stays between `TICKETS_KEPT` and `TICKETS_KEPT + TICKETS_BATCH`
/// long, and a claim pays one hop for collection in `TICKETS_BATCH`, not one in every claim. A
/// ticket is removed only once one `TICKETS_KEPT` above it was claimed (`Claimed::old`), which
/// the stray check of [`claim_ticket`] relies on. Lazily: a ticket a machine crash brings back
/// lies below the newest, and claims only look at the newest.
pub async fn collect_tickets(store: &dyn Store, claimed: &Claimed) -> Result<(), LockError> {
    if claimed.old.len() as u64 >= TICKETS_BATCH {
        let keys: Vec<Key> = claimed.old.iter().map(|t| ticket_key(*t)).collect();
        store.delete_lazily_many(&keys).await?;
    }
    Ok(())
}

/// Tickets kept behind the newest.
const TICKETS_KEPT: u64 = 64;

/// Old tickets collected together.
const TICKETS_BATCH: u64 = 16;

/// A malformed entry read from a journal is an error the caller reports with its key.
impl From<Malformed> for LockError {
    fn from(malformed: Malformed) -> Self {
        LockError::Corrupt {
            key: malformed.key,
            reason: malformed.reason,
        }
    }
}
