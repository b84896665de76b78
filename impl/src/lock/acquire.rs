//! Acquiring one lock: specs/lock.md §4, step by step. The numbered comments are the spec's.
//! The model of these steps is `lockstep_model::lock::fixed`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::commit;
use super::entry::{Entry, LockKind, Marks, ReleasedBy};
use super::journal::{self, Newest};
use super::path::LockPath;
use super::shared::{Job, Shared};
use super::LockError;
use crate::store::{Commit, Created, StoreError};

/// One-commit acquisitions refused in a row (each followed by one read of what it expects)
/// before the acquisition goes step by step: a refusal means something changed since the
/// read, which under churn can go on.
const COMMITS_REFUSED_MAX: u32 = 2;

/// Passes of steps 1-4 after which an acquisition stops even with retries left: a guard against
/// a journal that keeps changing under a store that misbehaves (each restart spends a retry, so
/// a sane budget ends the loop long before this).
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

/// The retry budget of one operation: every back-off (rules b and c), every create that lost
/// its index (except one lost right after a free head: contention, see `acquire_one`), and every
/// wait-die restart spends one (property "bounded retries").
#[derive(Debug)]
pub(crate) struct Retries {
    pub left: u32,
    pub spent: u32,
}

impl Retries {
    pub fn new(max: u32) -> Retries {
        Retries {
            left: max,
            spent: 0,
        }
    }

    /// Spends a retry, or fails when none is left.
    fn spend(&mut self, path: &LockPath) -> Result<(), LockError> {
        if self.left == 0 {
            return Err(LockError::RetriesExhausted {
                path: path.clone(),
                retries: self.spent,
            });
        }
        self.left -= 1;
        self.spent += 1;
        Ok(())
    }
}

/// A path's newest entry as one acquirer sees it.
#[derive(Clone, Debug)]
struct Seen {
    /// Held by someone else: (owner, ticket, kind, index, expired as judged on our own clock or
    /// because its owner is proven dead).
    holder: Option<(String, u64, LockKind, u64, bool)>,
    /// The marks after the newest entry (what an entry appended now would inherit).
    marks: Marks,
}

async fn see(shared: &Shared, me: &str, path: &LockPath, newest: Option<&Newest>) -> Seen {
    let Some(newest) = newest else {
        return Seen {
            holder: None,
            marks: Marks::default(),
        };
    };
    let marks = newest.entry.marks_after();
    let holder = match &newest.entry {
        Entry::Acquire {
            owner,
            ticket,
            kind,
            lease_ms,
            ..
        }
        | Entry::Renew {
            owner,
            ticket,
            kind,
            lease_ms,
            ..
        } if owner != me => {
            let expired = shared
                .is_expired(path, newest.index, owner, *lease_ms)
                .await;
            Some((owner.clone(), *ticket, *kind, newest.index, expired))
        }
        _ => None,
    };
    Seen { holder, marks }
}

/// Whether a lock of `kind` found by a check conflicts with ours (descendants and the own path:
/// any lock; ancestors: SUBTREE only).
fn conflicts(kind: LockKind, any_kind: bool) -> bool {
    any_kind || kind == LockKind::Subtree
}

/// A granted lock.
#[derive(Clone, Debug)]
pub(crate) struct Granted {
    pub index: u64,
    pub token: u64,
    /// Taken just before the create: the holder's lease can only end earlier than an observer's.
    pub lease_started: Instant,
    /// The marks our `acquire` carried (a withdraw of this grant carries them again).
    pub marks: Marks,
}

/// How an acquisition of one lock ended, short of an error.
pub(crate) enum Acquired {
    Granted(Granted),
    /// Wait-die: the operation holds a lock younger than a live contender here. It must release
    /// (withdraw) what it holds and start over, or the two may wait for each other until a lease
    /// runs out (specs/lock.md §4).
    BackOff,
}

/// Our entry from just before its create until the grant or its withdrawal. If the acquisition
/// is dropped (cancelled) or fails with its outcome unknown in that window, the manager's
/// background task withdraws it, if it exists and is ours, after the create has finished.
struct InFlight<'a> {
    shared: &'a Shared,
    entry: Option<(LockPath, u64, String)>,
    /// The create of our entry, running as its own task so that cancelling the acquisition
    /// cannot cancel it halfway (a blocking file-system create would run on regardless).
    create: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some((path, ticket, owner)) = self.entry.take() {
            self.shared.send(Job::Withdraw {
                path,
                ticket,
                owner,
                create: self.create.take(),
            });
        }
    }
}

/// Creates `entry` at `index` of `path` in a task of its own (just the create: what must not be
/// cut short); the outcome comes back on a oneshot channel, and the task's handle tells a
/// withdraw when the create is over. (The reads after it are not in the task: a withdraw of a
/// cancelled acquisition waits for the task, and must not wait for a slow read too; tested by
/// `a_cancelled_acquisition_leaves_no_lock`.)
fn spawn_create(
    shared: &Shared,
    path: &LockPath,
    index: u64,
    entry: &Entry,
) -> (
    tokio::task::JoinHandle<()>,
    tokio::sync::oneshot::Receiver<Result<Created, StoreError>>,
) {
    let (send, receive) = tokio::sync::oneshot::channel();
    let (store, key, bytes, persist) = (
        Arc::clone(&shared.store),
        path.entry_key(index),
        entry.encode(),
        entry.persist(),
    );
    let task = tokio::spawn(async move {
        let _ = send.send(store.create_persisting(&key, &bytes, persist).await);
    });
    (task, receive)
}

/// Appends `withdraw` after entry `index` of `path` if that entry is our `acquire` or `renew`
/// with `ticket` and still the newest. Anything else means it never landed or was superseded:
/// then there is nothing of ours to withdraw, and appending would free someone else's lock.
/// The withdraw carries the marks our first entry carried, so our ticket raises no mark.
pub(crate) async fn withdraw_if_ours(
    shared: &Shared,
    me: &str,
    path: &LockPath,
    ticket: u64,
    marks: Option<Marks>,
) -> Result<(), LockError> {
    let Some(newest) = journal::newest(&*shared.store, path).await? else {
        return Ok(());
    };
    let ours = matches!(&newest.entry, Entry::Acquire { owner, ticket: t, .. } | Entry::Renew { owner, ticket: t, .. } if owner == me && *t == ticket);
    if ours {
        let marks = marks.unwrap_or_else(|| newest.entry.marks());
        let withdraw = Entry::Withdraw {
            ticket,
            written_at_ms: wall_ms(),
            marks,
        };
        if journal::append(&*shared.store, path, newest.index + 1, &withdraw).await? {
            // Our entry and the one before it are garbage now, as after a release.
            let _ = journal::collect_after_own(&*shared.store, path, newest.index + 1).await;
        }
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

/// Takes one lock of an operation. `held_newest` is the largest token the operation already
/// holds (for wait-die); `retries` is the operation's budget.
pub(crate) async fn acquire_one(
    shared: &Shared,
    me: &str,
    path: &LockPath,
    kind: LockKind,
    deadline: Deadline,
    held_newest: Option<u64>,
    retries: &mut Retries,
) -> Result<Acquired, LockError> {
    let store = &*shared.store;
    let mut in_flight = InFlight {
        shared,
        entry: None,
        create: None,
    };
    // The index of the last create refused with nothing readable there (see below).
    let mut refused_at = None;
    // Our path, then its ancestors: read in that order, in one store call.
    let ancestors = path.ancestors();
    let own_then_ancestors: Vec<LockPath> = std::iter::once(path.clone())
        .chain(ancestors.iter().cloned())
        .collect();
    let mut first_pass = true;
    // The ticket a waiter claimed before it slept, not used by a create yet (the model's
    // `ClaimToWait`): the create after the wait uses it while it is still above the marks of
    // every path this pass reads clear (our journal's newest entry, and each other path in
    // `pre_check_others`), so a hand-off waits for one durable create, not two.
    let mut kept: Option<u64> = None;
    for _ in 0..ATTEMPTS_MAX {
        // 0. On a store that commits several operations at one instant, steps 1-5 in one commit
        //    when what we remember allows it (`commit`'s module comment says why that is the
        //    same protocol); otherwise, or if the commit is refused, step by step.
        if std::mem::take(&mut first_pass) && shared.commits {
            if let Some(acquired) =
                commit_at_once(shared, me, path, kind, deadline, retries, &mut in_flight).await?
            {
                return Ok(acquired);
            }
        }
        // 1. Pre-check: our own path, then the paths whose locks conflict with ours.
        let mut heads = journal::newest_many(store, &own_then_ancestors).await?;
        if shared.commits {
            let mut remembered = crate::sync::lock(&shared.heads);
            for (read, head) in own_then_ancestors.iter().zip(&heads) {
                remembered.remember(read, head.as_ref());
            }
        }
        let head = heads.remove(0);
        let above: Vec<(LockPath, Option<Newest>)> = ancestors.iter().cloned().zip(heads).collect();
        let next = head.as_ref().map_or(0, |n| n.index + 1);
        // No hold at all (a release, a withdraw, an empty journal): only another acquirer's
        // `acquire` can take index `next` before us (see the lost create below).
        let head_free = !matches!(
            head.as_ref().map(|n| &n.entry),
            Some(Entry::Acquire { .. } | Entry::Renew { .. })
        );
        let seen = see(shared, me, path, head.as_ref()).await;
        if let Some((_, ticket, _, index, false)) = seen.holder {
            if must_back_off(deadline, held_newest, ticket) {
                return Ok(Acquired::BackOff);
            }
            claim_to_wait(shared, deadline, &mut kept).await?;
            wait_until_changed(shared, me, path, true, deadline, index).await?;
            continue;
        }
        // A kept ticket at or below the marks after our journal's newest entry is stale: a lock
        // granted here with a larger ticket may have written to the resource with it.
        let own_mark = if crate::mutants::active(crate::mutants::Mutant::KeptTicketOwnKindMark) {
            // Planted: the mark of our own kind only.
            seen.marks.of(kind != LockKind::Subtree)
        } else {
            seen.marks.any
        };
        if !crate::mutants::active(crate::mutants::Mutant::KeptTicketUnchecked) {
            drop_if_stale(&mut kept, own_mark);
        }
        let others = pre_check_others(
            shared,
            me,
            path,
            kind,
            deadline,
            held_newest,
            above,
            &mut kept,
        );
        match others.await? {
            PreCheck::Clear => {}
            PreCheck::Again => continue,
            PreCheck::BackOff => return Ok(Acquired::BackOff),
        }
        // 2. A ticket larger than every ticket claimed before (or the one kept from the wait).
        let ticket = match kept.take() {
            Some(ticket) => ticket,
            None => claim(shared).await?,
        };
        // 3. Our entry, right after the newest entry we read (superseding it if it expired). It
        //    inherits the marks after that entry.
        let lease_started = shared.options.clock.now();
        let marks = seen.marks;
        let entry = Entry::Acquire {
            owner: me.to_owned(),
            kind,
            ticket,
            lease_ms: shared.options.lease.as_millis() as u64,
            written_at_ms: wall_ms(),
            marks,
        };
        in_flight.entry = Some((path.clone(), ticket, me.to_owned()));
        // A create that fails with an error may have landed: read the key back (our entry names
        // our owner id and ticket). If even that fails, the outcome stays unknown: fail, and
        // leave the entry to the background withdraw (and, failing that, to expiry).
        let (create, created) = spawn_create(shared, path, next, &entry);
        in_flight.create = Some(create);
        let created = created
            .await
            .unwrap_or_else(|_| Err(StoreError::Unavailable("the create task was lost".into())));
        in_flight.create = None;
        // A store that says nothing was created (full, or the entry too large for it) is
        // certain, not ambiguous, and no retry can fix it: fail as a failed read does.
        if let Err(error @ (StoreError::Full { .. } | StoreError::TooLarge { .. })) = created {
            in_flight.entry = None;
            return Err(LockError::Store(error));
        }
        let lost_race = matches!(created, Ok(Created::AlreadyExists));
        let landed = match created {
            Ok(Created::AlreadyExists) => Ok(false),
            // Ours only if it is the newest (see `journal`'s module comment). One read on its
            // own, not batched with the re-check's: a failure here is read back as a create of
            // unknown outcome, while a failed re-check read fails the acquisition closed (the
            // model's rule), and one batched call could not tell the two apart.
            Ok(Created::Created(_)) => journal::is_newest(store, path, next).await,
            Err(error) => Err(LockError::Store(error)),
        };
        let landed = match landed {
            Ok(landed) => landed,
            Err(LockError::Store(error)) => read_back(shared, path, next, me, ticket)
                .await
                .map_err(|_| LockError::Store(error))?,
            Err(other) => return Err(other),
        };
        if !landed {
            // Someone appended first (or superseded us at once): nothing of ours is held. Unless
            // the store refused the create with nothing readable there (a directory at the
            // index, a store breaking its contract): then no retry can succeed.
            in_flight.entry = None;
            let key = path.entry_key(next);
            if !journal::check_refused(store, &key).await? && refused_at.replace(next) == Some(next)
            {
                return Err(LockError::CreateRefused {
                    key: key.to_string(),
                });
            }
            // Lost right after an entry that was no hold: only another acquirer's `acquire` can
            // have taken the index. That is contention, not a spin: someone else got in, the next
            // pass finds it and waits (bounded by `lock_timeout`), and no retry is spent. Lost
            // after a hold we meant to supersede (expired), the index may be that holder's
            // release, and nothing would make the next pass wait: only the budget bounds how
            // often that can happen. (Model: `restart_after_lost_create`; specs/lock.md §4.)
            if !(lost_race && head_free) {
                retries.spend(path)?;
            }
            continue;
        }
        let ours = Granted {
            index: next,
            token: ticket,
            lease_started,
            marks,
        };
        if let Some(acquired) = after_landed(
            shared,
            me,
            path,
            kind,
            deadline,
            retries,
            &mut in_flight,
            ours,
        )
        .await?
        {
            return Ok(acquired);
        }
    }
    Err(LockError::Contended {
        what: format!("the lock on {path}"),
        attempts: ATTEMPTS_MAX,
    })
}

/// Steps 4 and 5, once our `acquire` landed (`ours`: what it will be granted as): the re-check,
/// then the grant, or the withdraw. `None`: start the next pass.
#[allow(clippy::too_many_arguments)]
async fn after_landed(
    shared: &Shared,
    me: &str,
    path: &LockPath,
    kind: LockKind,
    deadline: Deadline,
    retries: &mut Retries,
    in_flight: &mut InFlight<'_>,
    ours: Granted,
) -> Result<Option<Acquired>, LockError> {
    let (ticket, marks) = (ours.token, ours.marks);
    // 4. Re-check every conflicting path against our ticket.
    let verdict = match recheck(shared, me, path, kind, ticket, deadline).await {
        Ok(verdict) => verdict,
        Err(error) => {
            // The store failed after our entry landed: take it back now if we can, or leave
            // it to the background task (and, failing that, to expiry).
            if withdraw_if_ours(shared, me, path, ticket, Some(marks))
                .await
                .is_ok()
            {
                in_flight.entry = None;
            }
            return Err(error);
        }
    };
    // Our own journal changed: what a later one-commit acquisition remembered of it is old.
    if shared.commits {
        crate::sync::lock(&shared.heads).forget(path);
    }
    if let Verdict::Granted = verdict {
        in_flight.entry = None;
        return Ok(Some(Acquired::Granted(ours)));
    }
    withdraw_if_ours(shared, me, path, ticket, Some(marks)).await?;
    in_flight.entry = None;
    match verdict {
        Verdict::Fail(error) => Err(error),
        Verdict::Retry => retries.spend(path).map(|()| None),
        Verdict::Granted => unreachable!("handled above"),
    }
}

/// Step 0: the one-commit acquisition (`commit`). `None`: not taken, or refused, or it did not
/// land; the caller goes on step by step, with nothing of ours in the store.
async fn commit_at_once(
    shared: &Shared,
    me: &str,
    path: &LockPath,
    kind: LockKind,
    deadline: Deadline,
    retries: &mut Retries,
    in_flight: &mut InFlight<'_>,
) -> Result<Option<Acquired>, LockError> {
    let lease_ms = shared.options.lease.as_millis() as u64;
    let mut refused = 0;
    let (prepared, outcome, ours) = loop {
        let Some(prepared) = commit::prepare(shared, me, path, kind, lease_ms, wall_ms()) else {
            return Ok(None);
        };
        let lease_started = shared.options.clock.now();
        let ours = Granted {
            index: prepared.index,
            token: prepared.ticket,
            lease_started,
            marks: prepared.marks,
        };
        in_flight.entry = Some((path.clone(), prepared.ticket, me.to_owned()));
        let (task, outcome) = commit::spawn(shared, &prepared);
        in_flight.create = Some(task);
        let outcome = outcome
            .await
            .unwrap_or_else(|_| Err(StoreError::Unavailable("the commit task was lost".into())));
        in_flight.create = None;
        commit::learn(shared, path, &outcome);
        if !matches!(outcome, Ok(Commit::Refused)) || refused == COMMITS_REFUSED_MAX {
            break (prepared, outcome, ours);
        }
        // Refused: something we remembered is old. Most often only the newest ticket (anyone's
        // lock anywhere claims one), so read what a commit expects, in one call, and try again
        // while the path stays free; a held path goes step by step (it waits anyway).
        in_flight.entry = None;
        refused += 1;
        let own_then_ancestors: Vec<LockPath> = std::iter::once(path.clone())
            .chain(path.ancestors())
            .collect();
        let (heads, newest_ticket) =
            journal::newest_many_and_newest_ticket(&*shared.store, &own_then_ancestors).await?;
        {
            let mut remembered = crate::sync::lock(&shared.heads);
            for (read, head) in own_then_ancestors.iter().zip(&heads) {
                remembered.remember(read, head.as_ref());
            }
        }
        let mut newest = crate::sync::lock(&shared.newest_ticket);
        *newest = (*newest).max(newest_ticket);
    };
    let error = match outcome {
        Ok(Commit::Committed(_)) => {
            // Steps 1-5 at one instant: granted, with the ticket the commit claimed.
            let mut newest = crate::sync::lock(&shared.newest_ticket);
            *newest = (*newest).max(prepared.ticket);
            drop(newest);
            crate::sync::lock(&shared.heads).forget(path);
            in_flight.entry = None;
            return Ok(Some(Acquired::Granted(ours)));
        }
        Ok(Commit::Refused | Commit::NotOffered) => {
            in_flight.entry = None;
            return Ok(None);
        }
        // Certain that nothing was written, as for a create.
        Err(error @ (StoreError::Full { .. } | StoreError::TooLarge { .. })) => {
            in_flight.entry = None;
            return Err(LockError::Store(error));
        }
        Err(error) => error,
    };
    // The answer was lost: the commit may have landed. Read our entry back, as after a create
    // whose outcome is unknown; if it landed, so did its ticket, and the re-check decides.
    let landed = read_back(shared, path, prepared.index, me, prepared.ticket)
        .await
        .map_err(|_| LockError::Store(error))?;
    if !landed {
        in_flight.entry = None;
        return Ok(None);
    }
    {
        let mut newest = crate::sync::lock(&shared.newest_ticket);
        *newest = (*newest).max(prepared.ticket);
    }
    after_landed(shared, me, path, kind, deadline, retries, in_flight, ours).await
}

/// Reads back entry `index` of `path` after a create whose outcome is unknown: `true` if it is
/// our `acquire` with `ticket` and the newest, `false` if the index is free or someone else's.
async fn read_back(
    shared: &Shared,
    path: &LockPath,
    index: u64,
    me: &str,
    ticket: u64,
) -> Result<bool, LockError> {
    let key = path.entry_key(index);
    let Some((bytes, _)) = shared.store.get(&key).await? else {
        return Ok(false);
    };
    let entry = Entry::decode(key.as_str(), &bytes)?;
    let ours =
        matches!(&entry, Entry::Acquire { owner, ticket: t, .. } if owner == me && *t == ticket);
    let newest = journal::indices(&*shared.store, &path.journal_prefix())
        .await?
        .last()
        .copied();
    tracing::info!(%path, index, ours, "read back a create whose outcome was unknown");
    Ok(ours && newest == Some(index))
}

/// The paths a lock must check: ancestors (their SUBTREE locks conflict) and, for SUBTREE, the
/// journals below (any lock conflicts). Read now, so journals created meanwhile are included;
/// the ancestors' newest entries may come already read (`above`, read just before).
async fn conflicting(
    shared: &Shared,
    path: &LockPath,
    kind: LockKind,
    above: Option<Vec<(LockPath, Option<Newest>)>>,
) -> Result<Vec<(LockPath, bool, Option<Newest>)>, LockError> {
    let store = &*shared.store;
    let above = match above {
        Some(above) => above,
        None => {
            let ancestors = path.ancestors();
            let heads = journal::newest_many(store, &ancestors).await?;
            ancestors.into_iter().zip(heads).collect()
        }
    };
    let mut out: Vec<(LockPath, bool, Option<Newest>)> = above
        .into_iter()
        .map(|(ancestor, newest)| (ancestor, false, newest))
        .collect();
    if kind == LockKind::Subtree {
        for (below, newest) in journal::newest_below(store, path).await? {
            out.push((below, true, Some(newest)));
        }
    }
    Ok(out)
}

/// Claims a ticket larger than every ticket claimed before (step 2), and collects old tickets.
async fn claim(shared: &Shared) -> Result<u64, LockError> {
    let store = &*shared.store;
    let after = Some(*crate::sync::lock(&shared.newest_ticket)).filter(|t| *t > 0);
    let claimed = journal::claim_ticket(store, 1_000, after).await?;
    {
        let mut newest = crate::sync::lock(&shared.newest_ticket);
        *newest = (*newest).max(claimed.newest_seen);
    }
    // Old tickets are collected in batches, lazily (no `fsync`; specs/lock.md §12).
    let _ = journal::collect_tickets(store, &claimed).await;
    Ok(claimed.ticket)
}

/// A waiter claims its ticket before it sleeps, once per wait (not per poll), unless it kept
/// one from an earlier wait of this acquisition. `lock_timeout = 0` never waits and claims
/// nothing (`lockstep lock --timeout 0` must not burn tickets), nor does a wait whose deadline
/// has passed already.
async fn claim_to_wait(
    shared: &Shared,
    deadline: Deadline,
    kept: &mut Option<u64>,
) -> Result<(), LockError> {
    let passed =
        deadline.passed() && !crate::mutants::active(crate::mutants::Mutant::ClaimPastDeadline);
    if kept.is_none() && !matches!(deadline, Deadline::Now) && !passed {
        *kept = Some(claim(shared).await?);
    }
    Ok(())
}

/// Drops a kept ticket at or below `mark`, a clear path's mark: a lock granted there with a
/// larger ticket may have written to the resource with it, so our create would be fenced (on
/// our own path) or fail rule c and spend a retry (on another). Step 2 then claims afresh.
fn drop_if_stale(kept: &mut Option<u64>, mark: u64) {
    if kept.is_some_and(|t| t <= mark) {
        *kept = None;
    }
}

/// Wait-die: an operation that holds a lock younger than a live contender must not wait for it
/// (the contender may be waiting for that lock). `lock_timeout = 0` never waits, so it fails as
/// busy instead.
fn must_back_off(deadline: Deadline, held_newest: Option<u64>, ticket: u64) -> bool {
    let waits = !matches!(deadline, Deadline::Now);
    waits
        && held_newest.is_some_and(|held| ticket < held)
        && !crate::mutants::active(crate::mutants::Mutant::NoWaitDie)
}

/// What the pre-check of the other paths found.
enum PreCheck {
    Clear,
    /// Something changed (a wait ended, an expired entry was released): start the attempt again.
    Again,
    BackOff,
}

/// Step 1 for the other paths.
#[allow(clippy::too_many_arguments)]
async fn pre_check_others(
    shared: &Shared,
    me: &str,
    path: &LockPath,
    kind: LockKind,
    deadline: Deadline,
    held_newest: Option<u64>,
    above: Vec<(LockPath, Option<Newest>)>,
    kept: &mut Option<u64>,
) -> Result<PreCheck, LockError> {
    for (other, any_kind, newest) in conflicting(shared, path, kind, Some(above)).await? {
        let seen = see(shared, me, &other, newest.as_ref()).await;
        // A kept ticket at or below this path's marks would fail rule c after our create and
        // spend a retry: drop it while the path is clear, and claim a fresh one at step 2.
        let mut clear = || drop_if_stale(kept, seen.marks.of(any_kind));
        let Some((owner, ticket, their_kind, index, expired)) = seen.holder.clone() else {
            clear();
            continue;
        };
        if !conflicts(their_kind, any_kind) {
            clear();
            continue;
        }
        if !expired {
            if must_back_off(deadline, held_newest, ticket) {
                return Ok(PreCheck::BackOff);
            }
            claim_to_wait(shared, deadline, kept).await?;
            wait_until_changed(shared, me, &other, any_kind, deadline, index).await?;
            return Ok(PreCheck::Again);
        }
        if crate::mutants::active(crate::mutants::Mutant::PassExpiredUnreleased)
            && !shared.proven_dead(&owner).await
        {
            // Planted: a lease that ran out is passed as if it were released.
            continue;
        }
        reap(
            shared,
            &other,
            index,
            newest.as_ref().expect("a holder has an entry"),
        )
        .await?;
        return Ok(PreCheck::Again);
    }
    Ok(PreCheck::Clear)
}

async fn recheck(
    shared: &Shared,
    me: &str,
    path: &LockPath,
    kind: LockKind,
    mine: u64,
    deadline: Deadline,
) -> Result<Verdict, LockError> {
    if crate::mutants::active(crate::mutants::Mutant::SkipRecheck) {
        return Ok(Verdict::Granted);
    }
    for (other, any_kind, mut newest) in conflicting(shared, path, kind, None).await? {
        loop {
            if shared.commits {
                crate::sync::lock(&shared.heads).remember(&other, newest.as_ref());
            }
            let seen = see(shared, me, &other, newest.as_ref()).await;
            // c. A lock that may have been granted here with a larger ticket may have written
            //    with it: ours would be stale. The marks after the newest entry cover every
            //    earlier grant, including one hidden behind a later entry.
            let newer_grant = if crate::mutants::active(crate::mutants::Mutant::NoHighWater) {
                // The old protocol: only the newest entry's own ticket, if it conflicts.
                newest.as_ref().is_some_and(|n| {
                    matches!(&n.entry, Entry::Acquire { kind, ticket, .. } | Entry::Renew { kind, ticket, .. } | Entry::Release { kind, ticket, .. }
                        if conflicts(*kind, any_kind) && *ticket > mine)
                })
            } else {
                seen.marks.of(any_kind) > mine
            };
            match seen.holder {
                Some((owner, ticket, their_kind, index, expired))
                    if conflicts(their_kind, any_kind) =>
                {
                    if !expired && ticket > mine {
                        // a. A younger contender: it will see our older ticket and withdraw, or
                        //    it holds the lock and will release it. Wait for its entry to change.
                        if let Err(error) =
                            wait_until_changed(shared, me, &other, any_kind, deadline, index).await
                        {
                            return Ok(Verdict::Fail(error));
                        }
                    } else if !expired || newer_grant {
                        // b. An older contender wins; or c.
                        return Ok(Verdict::Retry);
                    } else if crate::mutants::active(crate::mutants::Mutant::PassExpiredUnreleased)
                        && !shared.proven_dead(&owner).await
                    {
                        // Planted: a lease that ran out is passed as if it were released.
                        break;
                    } else {
                        // d. An expired, older lock: release it in storage before passing it, so
                        //    its holder cannot renew it back to life.
                        reap(
                            shared,
                            &other,
                            index,
                            newest.as_ref().expect("a holder has an entry"),
                        )
                        .await?;
                    }
                }
                _ if newer_grant => return Ok(Verdict::Retry),
                _ => break,
            }
            newest = journal::newest(&*shared.store, &other).await?;
        }
    }
    Ok(Verdict::Granted)
}

/// Releases an expired entry in storage: create `release` right after it. If anything else
/// was appended first, the create fails and nothing changes.
pub(crate) async fn reap(
    shared: &Shared,
    path: &LockPath,
    index: u64,
    newest: &Newest,
) -> Result<bool, LockError> {
    let Some((_, ticket, kind, _)) = newest.entry.holder() else {
        return Ok(false);
    };
    let release = Entry::Release {
        kind,
        ticket,
        by: ReleasedBy::Acquirer,
        written_at_ms: wall_ms(),
        marks: newest.entry.marks_after(),
    };
    let landed = journal::append(&*shared.store, path, index + 1, &release).await?;
    if landed {
        tracing::info!(%path, ticket, "released an expired lock before passing it");
    }
    Ok(landed)
}

/// Waits until `path`'s newest entry no longer blocks us (it changed, or it expired), polling
/// with growing back-off. Fails with `Busy` at the deadline (at once for `lock_timeout = 0`).
///
/// Where the store gives a change hint (`Store::watch`: inotify on the journal's directory), a
/// new entry there ends the pause at once, so a release is seen within a wake-up, not a poll
/// interval. The hint is made before the first read, so a release after that read is never
/// missed by it; a lost, late or spurious hint only changes when we re-read.
///
/// `read` is the index of the blocking entry as the caller read it: a wait whose first read
/// finds another entry newest ends at once, so that whatever came in between (a withdraw and a
/// new grant, say) goes through the caller's checks again, wait-die included, as the model's
/// waiter does (it notes the journal at the caller's read: specs/lock.md §4, "When a wait ends").
async fn wait_until_changed(
    shared: &Shared,
    me: &str,
    path: &LockPath,
    any_kind: bool,
    deadline: Deadline,
    read: u64,
) -> Result<(), LockError> {
    let started = Instant::now();
    let mut hint = if matches!(deadline, Deadline::Now) {
        None
    } else {
        shared.store.watch(&path.journal_prefix()).await
    };
    let first = journal::newest(&*shared.store, path).await?;
    let blocker = |seen: &Seen| match &seen.holder {
        Some((owner, ticket, kind, index, false)) if conflicts(*kind, any_kind) => {
            Some((owner.clone(), *ticket, *index))
        }
        _ => None,
    };
    let Some((owner, ticket, index)) = blocker(&see(shared, me, path, first.as_ref()).await)
        .filter(|(_, _, index)| {
            *index == read || crate::mutants::active(crate::mutants::Mutant::WaitReferenceOwnRead)
        })
    else {
        return Ok(());
    };
    let mut pause = shared.options.poll_min;
    loop {
        if deadline.passed() {
            let waited = if matches!(deadline, Deadline::Now) {
                None
            } else {
                Some(started.elapsed())
            };
            return Err(LockError::Busy {
                path: path.clone(),
                holder: owner,
                token: ticket,
                waited,
            });
        }
        let jitter = 0.8 + 0.4 * rand::random::<f64>();
        let mut sleep = pause.mul_f64(jitter);
        if let Deadline::Until(at) = deadline {
            sleep = sleep.min(at.saturating_duration_since(Instant::now()));
        }
        match hint.as_mut() {
            Some(hint) if !crate::mutants::active(crate::mutants::Mutant::WaitIgnoresHint) => {
                hint.changed(sleep).await
            }
            _ => tokio::time::sleep(sleep).await,
        }
        pause = (pause.mul_f64(1.5)).min(shared.options.poll_max);
        let now = journal::newest(&*shared.store, path).await?;
        match blocker(&see(shared, me, path, now.as_ref()).await) {
            Some((_, _, now_index)) if now_index == index => continue,
            _ => return Ok(()),
        }
    }
}

pub(crate) fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
