//! The one-commit acquisition and release (specs/lock.md §12, "One commit on etcd").
//!
//! On a store that commits several operations at one instant ([`Store::commit_if`]: etcd's
//! Txn), an uncontended POINT acquisition takes steps 1-5 of specs/lock.md §4 in one commit,
//! and a release takes its create and its garbage deletes in one. A warm cycle then makes two
//! round trips, as etcd's own Lock and Unlock do, instead of seven.
//!
//! **Why it is the same protocol.** The commit expects every journal the pre-check would read
//! (our path and its ancestors) to hold, still, the newest entry this manager last saw there,
//! with nothing after it, and no ticket at or above the one it claims. If all of that holds at
//! the instant the commit lands, then a pre-check read at that instant would have found those
//! very entries; a claim would have been handed that ticket; our create would have landed at
//! that index; and a re-check read would have found the same entries again (nothing lands
//! between the operations of one commit). Those are the step-by-step protocol's own steps,
//! taken one right after the other with no other step between them: one of the schedules the
//! model checks. The decisions (is the head free, does an ancestor hold a SUBTREE lock, are the
//! marks below our ticket) are taken on remembered entries only where an `Expect::Is` pins
//! them: entries are immutable, and a backend that offers commits never gives two entries of
//! one key the same version. If any expectation fails, nothing is written, and the acquisition
//! takes the step-by-step path, which reads afresh.
//!
//! **A commit whose answer is lost** is a create of unknown outcome, as the model has it: the
//! acquisition reads its entry back, and if it landed (the ticket landed with it, in the same
//! instant) the re-check runs as after any create.
//!
//! A refused commit reads what it expects (its journals and the newest ticket) in one call and
//! tries again, at most twice, while the path stays free (`acquire::commit_at_once`).
//!
//! What it does not cover, left to the step-by-step path: SUBTREE locks (the journals below
//! would have to be expected too), a head or ancestor that is held, and a journal this manager
//! has not read since it started.

use std::collections::HashMap;
use std::sync::Arc;

use super::entry::{Entry, LockKind, Marks};
use super::journal::{self, Newest};
use super::path::{LockPath, INDEX_DIGITS};
use super::shared::Shared;
use crate::store::{Commit, Expect, Key, StoreError};

/// Journals remembered at most: past this, the memory is cleared and refilled by later reads
/// (bounded memory for a manager that touches many paths).
const HEADS_MAX: usize = 4_096;

/// Each journal's newest entry as this manager last read or wrote it (`None`: empty).
#[derive(Debug)]
pub(crate) struct Heads {
    map: HashMap<LockPath, Option<Newest>>,
    /// The store offers no commits: nothing is remembered.
    off: bool,
}

impl Heads {
    /// Nothing remembered yet; switched off for good on a store that offers no commits.
    pub fn new(commits: bool) -> Heads {
        Heads {
            map: HashMap::new(),
            off: !commits,
        }
    }

    pub fn remember(&mut self, path: &LockPath, newest: Option<&Newest>) {
        if self.off {
            return;
        }
        if self.map.len() >= HEADS_MAX && !self.map.contains_key(path) {
            self.map.clear();
        }
        self.map.insert(path.clone(), newest.cloned());
    }

    pub fn forget(&mut self, path: &LockPath) {
        self.map.remove(path);
    }
}

/// The key above every entry of `path`'s journal (20 nines; no entry of a journal below sorts
/// between, since their keys continue the prefix with `~~` or a component, never a digit).
fn journal_end(path: &LockPath) -> Key {
    Key::new(format!(
        "{}{}",
        path.journal_prefix(),
        "9".repeat(INDEX_DIGITS)
    ))
    .expect("an entry key's length")
}

/// "The newest entry of `path` is still `head`, and nothing follows it." Both halves matter: the
/// entries just above `head` may have been collected while a newer one stands, so `head` being
/// there and the next index being free say nothing about what is newest.
fn expect_head(path: &LockPath, head: Option<&Newest>, expect: &mut Vec<Expect>, own: bool) {
    let next = match head {
        Some(head) => {
            expect.push(Expect::Is(path.entry_key(head.index), head.version));
            head.index + 1
        }
        None => 0,
    };
    if own && crate::mutants::active(crate::mutants::Mutant::CommitSkipsOwnTail) {
        // Planted: only the create's own key is expected free above our remembered head.
        return;
    }
    expect.push(Expect::NoneBetween(path.entry_key(next), journal_end(path)));
}

/// An acquisition ready to commit.
pub(crate) struct Prepared {
    pub index: u64,
    pub ticket: u64,
    pub marks: Marks,
    expect: Vec<Expect>,
    creates: Vec<(Key, Vec<u8>)>,
    deletes: Vec<Key>,
}

/// The commit that acquires `path` for `me` at once, if what this manager remembers allows it:
/// every journal it would read is remembered, our head holds nothing, no ancestor holds a
/// SUBTREE lock, and no mark reaches the ticket we would claim.
pub(crate) fn prepare(
    shared: &Shared,
    me: &str,
    path: &LockPath,
    kind: LockKind,
    lease_ms: u64,
    written_at_ms: u64,
) -> Option<Prepared> {
    if !shared.commits || kind != LockKind::Point || crate::sync::lock(&shared.heads).off {
        return None;
    }
    let newest_ticket = *crate::sync::lock(&shared.newest_ticket);
    if newest_ticket == 0 {
        return None;
    }
    let ticket = newest_ticket + 1;
    let heads = crate::sync::lock(&shared.heads);
    let own = heads.map.get(path)?.as_ref();
    if own.is_some_and(|head| head.entry.holder().is_some()) {
        return None;
    }
    let marks = own.map_or(Marks::default(), |head| head.entry.marks_after());
    if marks.of(true) >= ticket {
        return None;
    }
    let mut expect = Vec::new();
    expect_head(path, own, &mut expect, true);
    for ancestor in path.ancestors() {
        let head = heads.map.get(&ancestor)?.as_ref();
        if let Some(head) = head {
            let subtree_held = head
                .entry
                .holder()
                .is_some_and(|(_, _, kind, _)| kind == LockKind::Subtree);
            if subtree_held || head.entry.marks_after().of(false) >= ticket {
                return None;
            }
        }
        if !crate::mutants::active(crate::mutants::Mutant::CommitSkipsAncestors) {
            expect_head(&ancestor, head, &mut expect, false);
        }
    }
    let index = own.map_or(0, |head| head.index + 1);
    drop(heads);
    // No ticket at or above ours: ours is larger than every ticket claimed before the commit.
    expect.push(Expect::NoneBetween(
        journal::ticket_key(ticket),
        journal::ticket_key_max(),
    ));
    let entry = Entry::Acquire {
        owner: me.to_owned(),
        kind,
        ticket,
        lease_ms,
        written_at_ms,
        marks,
    };
    let creates = vec![
        (journal::ticket_key(ticket), Vec::new()),
        (path.entry_key(index), entry.encode()),
    ];
    Some(Prepared {
        index,
        ticket,
        marks,
        expect,
        creates,
        deletes: journal::tickets_collected_at(ticket),
    })
}

/// Sends the commit in a task of its own (a cancelled acquisition must not cut it short; its
/// withdraw waits for the task), as `acquire::spawn_create` does for a create.
pub(crate) fn spawn(
    shared: &Shared,
    prepared: &Prepared,
) -> (
    tokio::task::JoinHandle<()>,
    tokio::sync::oneshot::Receiver<Result<Commit, StoreError>>,
) {
    let (send, receive) = tokio::sync::oneshot::channel();
    let store = Arc::clone(&shared.store);
    let (expect, creates, deletes) = (
        prepared.expect.clone(),
        prepared.creates.clone(),
        prepared.deletes.clone(),
    );
    let task = tokio::spawn(async move {
        let _ = send.send(store.commit_if(&expect, &creates, &deletes).await);
    });
    (task, receive)
}

/// What a commit's outcome teaches this manager: a refused commit means what it remembered of
/// `path` (or an ancestor, or the tickets) is old. A commit not offered (one too large for the
/// store: a very deep path on etcd) teaches nothing: that one goes step by step, the next may
/// commit.
pub(crate) fn learn(shared: &Shared, path: &LockPath, outcome: &Result<Commit, StoreError>) {
    match outcome {
        Ok(Commit::Refused) | Err(_) => crate::sync::lock(&shared.heads).forget(path),
        Ok(Commit::NotOffered | Commit::Committed(_)) => {}
    }
}

/// A holder's `release` at index `at` of `path` in one commit with the garbage below it (the two
/// entries [`journal::collect_after_own`] deletes; a sweep, when one is due, runs after it).
/// `None`: this store offers no commits (the caller appends step by step); `Some(false)`: the
/// index is taken, as when a create answers "already exists". Remembers the release as the
/// journal's newest entry, for the next one-commit acquisition.
pub(crate) async fn release_at_once(
    shared: &Shared,
    path: &LockPath,
    at: u64,
    release: &Entry,
) -> Result<Option<bool>, super::LockError> {
    if !shared.commits || crate::sync::lock(&shared.heads).off {
        return Ok(None);
    }
    let garbage = journal::garbage_after_own(path, at);
    let creates = [(path.entry_key(at), release.encode())];
    let outcome = shared
        .store
        .commit_if(&[], &creates, garbage.as_deref().unwrap_or_default())
        .await;
    learn(shared, path, &outcome);
    match outcome? {
        Commit::NotOffered => Ok(None),
        Commit::Refused => Ok(Some(false)),
        Commit::Committed(version) => {
            let newest = Newest {
                index: at,
                entry: release.clone(),
                version,
            };
            crate::sync::lock(&shared.heads).remember(path, Some(&newest));
            if garbage.is_none() {
                let _ = journal::collect_below(&*shared.store, path, at).await;
            }
            Ok(Some(true))
        }
    }
}
