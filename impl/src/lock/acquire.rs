//! Acquiring one lock: specs/lock.md §4, step by step. The numbered comments are the spec's.

use std::time::{Duration, Instant};

use super::entry::{Entry, LockKind, ReleasedBy};
use super::journal::{self, Newest};
use super::manager::{Job, Shared};
use super::path::LockPath;
use super::LockError;

/// Attempts (a full pass of steps 1-4) before giving up on a path that keeps changing.
const ATTEMPTS_MAX: u32 = 10_000;

/// When waiting has to stop.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Deadline {
    /// `lock_timeout = 0`: never wait.
    Now,
    Until(Instant),
    Never,
}

impl Deadline {
    pub fn from_timeout(timeout: Option<Duration>) -> Deadline {
        match timeout {
            Some(d) if d.is_zero() => Deadline::Now,
            Some(d) => Deadline::Until(Instant::now() + d),
            None => Deadline::Never,
        }
    }

    fn passed(self) -> bool {
        match self {
            Deadline::Now => true,
            Deadline::Until(at) => Instant::now() >= at,
            Deadline::Never => false,
        }
    }
}

/// A path's newest entry as one acquirer sees it.
#[derive(Clone, Debug)]
enum Seen {
    /// Empty journal or `withdraw`.
    Free,
    /// `release`: free, but its ticket may have fenced a write (rule c).
    Released { ticket: u64, kind: LockKind },
    /// Held by this very handle.
    Mine,
    /// Held by someone else; `expired` as judged on our own clock (or its owner is dead).
    Held { owner: String, ticket: u64, kind: LockKind, index: u64, expired: bool },
}

impl Seen {
    /// Whether this lock conflicts with ours, given the check's scope (descendants: any lock;
    /// ancestors: SUBTREE only).
    fn conflicts(&self, any_kind: bool) -> bool {
        match self {
            Seen::Held { kind, .. } | Seen::Released { kind, .. } => any_kind || *kind == LockKind::Subtree,
            Seen::Free | Seen::Mine => false,
        }
    }
}

fn see(shared: &Shared, me: &str, path: &LockPath, newest: Option<&Newest>) -> Seen {
    let Some(newest) = newest else { return Seen::Free };
    match &newest.entry {
        Entry::Withdraw { .. } => Seen::Free,
        Entry::Release { ticket, kind, .. } => Seen::Released { ticket: *ticket, kind: *kind },
        Entry::Acquire { owner, .. } | Entry::Renew { owner, .. } if owner == me => Seen::Mine,
        Entry::Acquire { owner, ticket, kind, lease_ms, .. } | Entry::Renew { owner, ticket, kind, lease_ms, .. } => {
            let expired = shared.judge_expired(path, newest.index, owner, *lease_ms);
            Seen::Held { owner: owner.clone(), ticket: *ticket, kind: *kind, index: newest.index, expired }
        }
    }
}

/// A granted lock.
#[derive(Clone, Debug)]
pub(crate) struct Granted {
    pub index: u64,
    pub token: u64,
    /// Taken just before the create: the holder's lease can only end earlier than an observer's.
    pub lease_started: Instant,
}

/// Our entry from just before its create until the grant or its withdrawal. If the acquisition
/// is dropped (cancelled) in that window, the manager's background task withdraws it, if it
/// exists and is ours.
struct InFlight<'a> {
    shared: &'a Shared,
    entry: Option<(LockPath, u64, u64, String)>,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some((path, index, ticket, owner)) = self.entry.take() {
            self.shared.send(Job::Withdraw { path, index, ticket, owner });
        }
    }
}

/// Appends `withdraw` after entry `index` of `path` if that entry is our `acquire` with `ticket`
/// and still the newest. Anything else means it never landed or was superseded: then there is
/// nothing of ours to withdraw, and appending would free someone else's lock.
pub(crate) async fn withdraw_if_ours(shared: &Shared, me: &str, path: &LockPath, index: u64, ticket: u64) -> Result<(), LockError> {
    let Some(newest) = journal::newest(&*shared.store, path).await? else { return Ok(()) };
    let ours = matches!(&newest.entry, Entry::Acquire { owner, ticket: t, .. } if owner == me && *t == ticket);
    if newest.index == index && ours {
        journal::append(&*shared.store, path, index + 1, &Entry::Withdraw { ticket, written_at_ms: wall_ms() }).await?;
    }
    Ok(())
}

/// What the re-check decided.
enum Verdict {
    Granted,
    /// Rules b and c: withdraw and try again with a new ticket.
    Retry,
    Fail(LockError),
}

pub(crate) async fn acquire_one(
    shared: &Shared,
    me: &str,
    path: &LockPath,
    kind: LockKind,
    deadline: Deadline,
) -> Result<Granted, LockError> {
    let store = &*shared.store;
    let mut retries = 0;
    let mut in_flight = InFlight { shared, entry: None };
    for _ in 0..ATTEMPTS_MAX {
        // 1. Pre-check: our own path, then the paths whose locks conflict with ours.
        let head = journal::newest(store, path).await?;
        let next = head.as_ref().map_or(0, |n| n.index + 1);
        if let Seen::Held { expired: false, .. } = see(shared, me, path, head.as_ref()) {
            wait_until_changed(shared, me, path, true, deadline).await?;
            continue;
        }
        if !pre_check_others(shared, me, path, kind, deadline).await? {
            continue;
        }
        // 2. A ticket larger than every ticket claimed before.
        let ticket = journal::claim_ticket(store, me, 1_000).await?;
        // 3. Our entry, right after the newest entry we read (superseding it if it expired).
        let lease_started = Instant::now();
        let entry = Entry::Acquire {
            owner: me.to_owned(),
            kind,
            ticket,
            lease_ms: shared.options.lease.as_millis() as u64,
            written_at_ms: wall_ms(),
        };
        in_flight.entry = Some((path.clone(), next, ticket, me.to_owned()));
        let outcome = async {
            if !journal::append(store, path, next, &entry).await? {
                return Ok(None);
            }
            // 4. Re-check every conflicting path against our ticket.
            recheck(shared, me, path, kind, ticket, deadline).await.map(Some)
        }
        .await;
        let verdict = match outcome {
            Ok(None) => {
                // Someone appended first (or superseded us at once): nothing of ours is held.
                in_flight.entry = None;
                continue;
            }
            Ok(Some(Verdict::Granted)) => {
                in_flight.entry = None;
                return Ok(Granted { index: next, token: ticket, lease_started });
            }
            Ok(Some(verdict)) => verdict,
            Err(error) => {
                // The store failed after (maybe) creating our entry: take it back now if we can,
                // or leave it to the background task (and, failing that, to expiry).
                if withdraw_if_ours(shared, me, path, next, ticket).await.is_ok() {
                    in_flight.entry = None;
                }
                return Err(error);
            }
        };
        withdraw_if_ours(shared, me, path, next, ticket).await?;
        in_flight.entry = None;
        match verdict {
            Verdict::Fail(error) => return Err(error),
            Verdict::Retry if retries < shared.options.retries_max => retries += 1,
            Verdict::Retry => return Err(LockError::RetriesExhausted { path: path.clone(), retries }),
            Verdict::Granted => unreachable!(),
        }
    }
    Err(LockError::Contended { what: format!("the lock on {path}"), attempts: ATTEMPTS_MAX })
}

/// The paths a lock must check: ancestors (their SUBTREE locks conflict) and, for SUBTREE, the
/// journals below (any lock conflicts). Read now, so journals created meanwhile are included.
async fn conflicting(shared: &Shared, path: &LockPath, kind: LockKind) -> Result<Vec<(LockPath, bool, Option<Newest>)>, LockError> {
    let store = &*shared.store;
    let mut out = Vec::new();
    for ancestor in path.ancestors() {
        let newest = journal::newest(store, &ancestor).await?;
        out.push((ancestor, false, newest));
    }
    if kind == LockKind::Subtree {
        for (below, newest) in journal::newest_below(store, path).await? {
            out.push((below, true, Some(newest)));
        }
    }
    Ok(out)
}

/// Step 1 for the other paths. `Ok(false)`: something changed, start the attempt again.
async fn pre_check_others(shared: &Shared, me: &str, path: &LockPath, kind: LockKind, deadline: Deadline) -> Result<bool, LockError> {
    for (other, any_kind, newest) in conflicting(shared, path, kind).await? {
        let seen = see(shared, me, &other, newest.as_ref());
        if !seen.conflicts(any_kind) {
            continue;
        }
        match seen {
            Seen::Held { expired: false, .. } => {
                wait_until_changed(shared, me, &other, any_kind, deadline).await?;
                return Ok(false);
            }
            Seen::Held { index, ticket, kind, expired: true, .. } => {
                reap(shared, &other, index, ticket, kind).await?;
                return Ok(false);
            }
            _ => {}
        }
    }
    Ok(true)
}

async fn recheck(shared: &Shared, me: &str, path: &LockPath, kind: LockKind, mine: u64, deadline: Deadline) -> Result<Verdict, LockError> {
    if crate::mutants::active(crate::mutants::Mutant::SkipRecheck) {
        return Ok(Verdict::Granted);
    }
    for (other, any_kind, mut newest) in conflicting(shared, path, kind).await? {
        loop {
            let seen = see(shared, me, &other, newest.as_ref());
            if !seen.conflicts(any_kind) {
                break;
            }
            match seen {
                // a. A younger contender: it will see our older ticket and withdraw, or it holds
                //    the lock and will release it. Wait for its entry to change.
                Seen::Held { ticket, expired: false, .. } if ticket > mine => {
                    if let Err(error) = wait_until_changed(shared, me, &other, any_kind, deadline).await {
                        return Ok(Verdict::Fail(error));
                    }
                }
                // b. An older contender wins.
                Seen::Held { expired: false, .. } => return Ok(Verdict::Retry),
                // c. A lock that may have written with a larger token: ours would be stale.
                Seen::Held { ticket, expired: true, .. } | Seen::Released { ticket, .. } if ticket > mine => {
                    return Ok(Verdict::Retry)
                }
                // d. An expired, older lock: release it in storage before passing it, so its
                //    holder cannot renew it back to life.
                Seen::Held { index, ticket, kind, expired: true, .. } => {
                    reap(shared, &other, index, ticket, kind).await?;
                }
                Seen::Released { .. } => break,
                Seen::Free | Seen::Mine => unreachable!("does not conflict"),
            }
            newest = journal::newest(&*shared.store, &other).await?;
        }
    }
    Ok(Verdict::Granted)
}

/// Releases an expired entry in storage: create `release` right after it. If anything else
/// was appended first, the create fails and nothing changes.
pub(crate) async fn reap(shared: &Shared, path: &LockPath, index: u64, ticket: u64, kind: LockKind) -> Result<bool, LockError> {
    let release = Entry::Release { kind, ticket, by: ReleasedBy::Acquirer, written_at_ms: wall_ms() };
    let landed = journal::append(&*shared.store, path, index + 1, &release).await?;
    if landed {
        tracing::info!(%path, ticket, "released an expired lock before passing it");
    }
    Ok(landed)
}

/// Waits until `path`'s newest entry no longer blocks us (it changed, or it expired), polling
/// with growing back-off. Fails with `Busy` at the deadline (at once for `lock_timeout = 0`).
async fn wait_until_changed(shared: &Shared, me: &str, path: &LockPath, any_kind: bool, deadline: Deadline) -> Result<(), LockError> {
    let started = Instant::now();
    let first = journal::newest(&*shared.store, path).await?;
    let blocker = |seen: &Seen| match seen {
        Seen::Held { owner, ticket, index, expired: false, .. } if seen.conflicts(any_kind) => Some((owner.clone(), *ticket, *index)),
        _ => None,
    };
    let Some((owner, ticket, index)) = blocker(&see(shared, me, path, first.as_ref())) else {
        return Ok(());
    };
    let mut pause = shared.options.poll_min;
    loop {
        if deadline.passed() {
            let waited = if matches!(deadline, Deadline::Now) { None } else { Some(started.elapsed()) };
            return Err(LockError::Busy { path: path.clone(), holder: owner, token: ticket, waited });
        }
        let jitter = 0.8 + 0.4 * rand::random::<f64>();
        let mut sleep = pause.mul_f64(jitter);
        if let Deadline::Until(at) = deadline {
            sleep = sleep.min(at.saturating_duration_since(Instant::now()));
        }
        tokio::time::sleep(sleep).await;
        pause = (pause.mul_f64(1.5)).min(shared.options.poll_max);
        let now = journal::newest(&*shared.store, path).await?;
        match blocker(&see(shared, me, path, now.as_ref())) {
            Some((_, _, now_index)) if now_index == index => continue,
            _ => return Ok(()),
        }
    }
}

pub(crate) fn wall_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
