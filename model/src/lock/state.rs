//! The dynamic state of the path-lock model: what is stored (one slot per path), what the
//! guarded resource has accepted, and what each client is doing.

use super::world::{Kind, CLIENTS_MAX, LOCKS_PER_MODE_MAX, PATHS_MAX};

/// What a reader of a path's lock finds.
///
/// Seed: the content of the lock file `{dir}/.path.ovlock`. Fixed: the newest entry of the path's
/// lock journal (older entries never influence a decision, so the model keeps only the newest).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Head {
    /// No lock file (seed) or an empty journal (fixed).
    #[default]
    Free,
    /// A zero-byte lock: a torn write (seed) or a create whose write never came (fixed mutant
    /// `create-then-write`). No reader can tell who made it; the model remembers for the checks.
    Empty { owner: u8 },
    /// A lock: seed token `{owner}:{ts}:{P|S}`; fixed entry `acquire` or `renew`.
    /// `token` is the seed's timestamp or the fixed protocol's ticket. `tick` is the true time
    /// at which it was written (the lease runs from there).
    Held {
        owner: u8,
        kind: Kind,
        token: u8,
        tick: u8,
    },
    /// Fixed: a `release` entry (by the holder, recovery, the reaper or an operator).
    Released { kind: Kind, token: u8 },
    /// Fixed: a `withdraw` entry: an acquisition that backed off before it was granted.
    Withdrawn { token: u8 },
}

/// High-water marks of a path's journal: the largest ticket of a SUBTREE lock, and of a lock of
/// any kind, that may have been granted on the path. Every fixed entry carries the marks it
/// inherits from the entry before it, so the newest entry alone tells a re-check about every
/// earlier grant, even one hidden behind a later, non-conflicting entry or a `withdraw`
/// (specs/lock.md §4, rule c).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Marks {
    pub subtree: u8,
    pub any: u8,
}

impl Marks {
    /// These marks raised by a lock of `kind` with `ticket` that may have been granted.
    pub fn with(self, kind: Kind, ticket: u8) -> Marks {
        Marks {
            subtree: if kind == Kind::Subtree {
                self.subtree.max(ticket)
            } else {
                self.subtree
            },
            any: self.any.max(ticket),
        }
    }

    /// The mark a check of this path compares with: any kind (own path, descendants) or only
    /// SUBTREE locks (ancestors).
    pub fn of(self, any_kind: bool) -> u8 {
        if any_kind {
            self.any
        } else {
            self.subtree
        }
    }
}

/// The owner of entries written before a power loss: a process of an earlier boot, dead.
pub const GONE: u8 = CLIENTS_MAX as u8;

/// What a journal looked like when its directory was last synced (its newest entry then).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Synced {
    pub len: u8,
    pub head: Head,
    pub prior: Marks,
}

/// One path's lock storage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Slot {
    /// Fixed: number of entries in the journal, so the next create is at index `len`.
    pub len: u8,
    pub head: Head,
    /// Fixed: the marks the newest entry carries (inherited from the entry before it).
    pub prior: Marks,
    /// Fixed, while a power loss may still come: the journal as of its last synced entry. A
    /// holder's own entries are not synced (specs/lock.md §12), so a power loss may take every
    /// entry after it away. Default (and untracked) once no power loss is left.
    pub synced: Synced,
    /// Fixed, while a power loss may still come: the newest `acquire` or `renew` appended since
    /// the last sync. A power loss may keep it and lose what came after it (its release).
    pub unsynced_grant: Option<Head>,
}

impl Slot {
    /// The marks after the newest entry: its inherited marks, raised by its own ticket if it is
    /// a lock that may have been granted (`acquire`, `renew`, `release`). A `withdraw` proves its
    /// acquisition was never granted and carries that acquisition's inherited marks unchanged.
    pub fn marks(&self) -> Marks {
        match self.head {
            Head::Held { kind, token, .. } | Head::Released { kind, token } => {
                self.prior.with(kind, token)
            }
            Head::Free | Head::Empty { .. } | Head::Withdrawn { .. } => self.prior,
        }
    }

    /// Appends `head` right after the newest entry: the new entry inherits the marks after it.
    pub fn append(&mut self, head: Head) {
        self.prior = self.marks();
        self.len += 1;
        self.head = head;
    }

    /// A durable append happened (a release by recovery, the cleaner or an operator syncs the
    /// journal's directory): every entry so far survives a power loss.
    pub fn sync(&mut self) {
        self.synced = Synced {
            len: self.len,
            head: self.head,
            prior: self.prior,
        };
        self.unsynced_grant = None;
    }

    /// A holder appended its own entry (`acquire`, `renew`, `withdraw`, `release`), which is not
    /// synced. With `bytes_unsynced` (mutant `entry-bytes-not-synced`) its name is synced but
    /// its bytes are not: a power loss leaves a zero-byte entry by `writer`.
    pub fn note_holder_entry(&mut self, bytes_unsynced: bool, writer: u8) {
        if bytes_unsynced {
            self.synced = Synced {
                len: self.len,
                head: Head::Empty { owner: writer },
                prior: self.prior,
            };
            self.unsynced_grant = None;
        } else if matches!(self.head, Head::Held { .. }) {
            self.unsynced_grant = Some(self.head);
        }
    }

    /// The journals a power loss may leave: `0` everything kept, `1` everything since the last
    /// sync lost, `2` the newest unsynced grant kept and what came after it lost.
    pub fn after_power_loss(&self, choice: u8) -> Option<Slot> {
        let kept = match choice {
            0 => Slot {
                len: self.len,
                head: self.head,
                prior: self.prior,
                ..Slot::default()
            },
            1 if self.synced.head != self.head || self.synced.len != self.len => Slot {
                len: self.synced.len,
                head: self.synced.head,
                prior: self.synced.prior,
                ..Slot::default()
            },
            2 => match self.unsynced_grant {
                Some(grant) if grant != self.head => Slot {
                    len: self.len,
                    head: grant,
                    prior: self.synced.prior,
                    ..Slot::default()
                },
                _ => return None,
            },
            _ => return None,
        };
        Some(kept)
    }

    /// Appends a `withdraw` of the acquisition whose entry (its `acquire`, or a `renew` of it)
    /// is the newest: it inherits what that entry inherited.
    pub fn append_withdraw(&mut self, token: u8) {
        debug_assert!(
            matches!(self.head, Head::Held { token: t, .. } if t == token),
            "withdraw follows its own acquire"
        );
        self.len += 1;
        self.head = Head::Withdrawn { token };
    }
}

/// Why a client stopped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// Acquired, wrote, released.
    #[default]
    Done,
    /// `lock_timeout = 0` and a live conflict.
    Busy,
    /// Waited until time ran out.
    TimedOut,
    /// Backed off more often than its retry budget allows.
    Exhausted,
    /// Found its lease expired before the guarded write.
    LeaseLost,
    /// The resource rejected its write (a newer token was already accepted).
    Fenced,
    /// A storage operation failed (or its outcome stayed unknown): the acquisition fails closed.
    Error,
}

impl Outcome {
    /// Whether the operation's locks reached their caller (who may have written with their
    /// tokens) before it stopped. Locks that never did are withdrawn, not released, so their
    /// tickets do not raise the journals' high-water marks.
    pub fn after_grant(self) -> bool {
        matches!(self, Outcome::Done | Outcome::LeaseLost | Outcome::Fenced)
    }
}

/// One step of an acquisition. Seed and fixed use different subsets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    /// Read the own path's lock.
    CheckSame,
    /// Read the `n`-th other path of the pre-check (ancestors, then descendants for SUBTREE).
    Check(u8),
    /// Fixed: claim the next ticket of the global ticket journal.
    ClaimTicket,
    /// Fixed: check `check` of the pre-check found a live conflict and the client will wait:
    /// it claims its ticket now, before it sleeps, and keeps it (`Client::kept`). The create
    /// after its wait uses it while it is above the marks of every path the pre-check read
    /// clear (its own journal's newest entry, and each other path's), so a hand-off waits for
    /// one durable create (the `acquire`), not two (specs/lock.md §4).
    ClaimToWait { check: u8 },
    /// Fixed: create-if-absent of our `acquire` entry at the journal length we read.
    Create,
    /// Fixed mutant `create-then-write`: fill the entry we created empty.
    WriteEntry,
    /// Seed: blind overwrite of the lock file with our token.
    Write,
    /// Re-read the `n`-th other path after our lock exists (the TOCTOU re-check).
    Recheck(u8),
    /// Seed: re-read our own lock file.
    Verify,
    /// Blocked on a live conflict found by check `n` (pre-check, or re-check when `recheck`).
    Wait { check: u8, recheck: bool },
    /// Fixed: check `n` found an expired conflicting entry on another path; release it in storage
    /// (create-if-absent right after it) before reading that path again. Ignoring it instead would
    /// let its holder renew it back to life (the checker found this in our first draft).
    Reap { check: u8, recheck: bool },
    /// Seed: delete a lock judged stale (a blind `rm`).
    RmStale(u8),
    /// Seed: delete our own lock file after losing the tie-break (`retry`: try again after).
    RmOwn { retry: bool },
    /// Fixed: append `withdraw` after our entry, then retry or stop with `outcome`.
    Withdraw { retry: bool, outcome: Outcome },
    /// Fixed: our create failed with an error whose outcome is unknown; read the key back to
    /// learn whether our entry landed (it names our owner id and ticket).
    ReadBack,
}

/// What a holder does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Hold {
    /// Holding every lock of its mode.
    Ready,
    /// Seed: refresh read its own token on lock `n`, the overwrite is pending.
    Refreshing(u8),
    /// Fixed: checked its lease; the guarded write is next (a pause here makes a zombie).
    LeaseChecked,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    /// Not started (only before the first step; every client starts acquiring).
    #[default]
    Idle,
    Acquiring {
        lock: u8,
        step: Step,
    },
    Holding(Hold),
    /// Releasing the locks it holds (newest first), then finishing with `outcome`.
    Releasing {
        outcome: Outcome,
    },
    /// Fixed: releasing the locks it holds (newest first), then starting the whole operation
    /// over: a multi-lock operation met an older contender while holding a younger lock
    /// (wait-die, specs/lock.md §4).
    BackingOff,
    Finished(Outcome),
    Crashed,
}

/// A lock a client believes it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Held {
    /// The fencing token the client writes with.
    pub token: u8,
    /// Fixed: index of its newest own entry in the path's journal.
    pub index: u8,
    /// True time of its last successful write or renewal; the lease runs from here.
    pub tick: u8,
    /// An operator force-released it: the holder does not know, and is a zombie from now on.
    pub revoked: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Client {
    /// Index of the client's settings class; clients of one class are interchangeable.
    pub class: u8,
    /// Index into the model's mode list.
    pub mode: u8,
    pub phase: Phase,
    pub retries_left: u8,
    pub renewals_left: u8,
    /// Seed: timestamp of our token. Fixed: ticket of the current attempt.
    pub ticket: u8,
    /// Fixed: `ticket` was claimed by a waiter (`Step::ClaimToWait`) and no create has used it
    /// yet. Dropped when the pre-check reads a clear path whose marks reach it (`CheckSame`: the
    /// marks after our newest entry; `Check`: another path's mark of the kinds we conflict with;
    /// a grant there with a larger ticket may have written since), used by the next create, and
    /// dropped at every retry and restart.
    pub kept: bool,
    /// Fixed: the journal length read at `CheckSame`; our entry goes to this index.
    pub seen_len: u8,
    /// Fixed: the entry read at `CheckSame` was no hold at all (a release, a withdraw, an empty
    /// journal), so whatever took index `seen_len` before us is another client's `acquire`: a
    /// create lost there is contention and spends no retry. Cleared when the create is decided.
    pub seen_free: bool,
    /// True time of our lock write (seed) or journal create (fixed); the lease runs from here.
    pub wrote_at: u8,
    /// An operator force-released the entry of the acquisition in flight; the lock will be
    /// granted already revoked (the client cannot know).
    pub revoked: bool,
    /// Met a live conflict during this acquisition (witness for "contested lock won").
    pub contended: bool,
    /// Fixed: our `acquire` entry at `seen_len` exists in storage. The client itself only knows
    /// it after a create succeeded or a read-back found it; the model keeps the truth, which is
    /// what a read of that key returns (entries are immutable).
    pub landed: bool,
    /// Times this acquisition started over without a wait having ended first (a back-off, a
    /// lost create, a removed stale lock), saturating; property "bounded retries".
    pub restarts: u8,
    /// The store proves this client dead while it runs on (its lease was lost): every entry it
    /// wrote or writes is a dead owner's, and it holds nothing it could rely on.
    pub lease_lost: bool,
    /// While the client waits: the length of the journal it waits on when its wait began (mutant
    /// `hint-only`: when it last consumed a hint). The wait ends once the length differs (every
    /// change appends); a change hint is pending while it differs. 0 when not waiting.
    pub wait_len: u8,
    /// Mutant `hint-only`: the journal length at which the pending hint was lost; a later
    /// change sends a new one.
    pub hint_lost_at: Option<u8>,
    pub held: [Option<Held>; LOCKS_PER_MODE_MAX],
}

impl Client {
    pub fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Finished(_) | Phase::Crashed)
    }

    pub fn is_crashed(&self) -> bool {
        self.phase == Phase::Crashed
    }

    /// Whether the store proves this client dead: it crashed, or its lease was lost.
    pub fn is_dead_to_store(&self) -> bool {
        self.is_crashed() || self.lease_lost
    }
}

impl LockState {
    /// Whether the store proves the owner of an entry dead: a client that crashed or lost its
    /// lease, or any owner of a boot before a power loss.
    pub fn owner_dead(&self, owner: u8) -> bool {
        self.clients
            .get(owner as usize)
            .is_none_or(|client| client.is_dead_to_store())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockState {
    /// True time in ticks.
    pub now: u8,
    /// Fixed: the newest claimed ticket (the ticket journal's length).
    pub tickets: u8,
    pub crashes_left: u8,
    pub reaps_left: u8,
    pub forces_left: u8,
    pub slots: [Slot; PATHS_MAX],
    /// The guarded resource: the newest token it accepted for each path (0: none yet).
    pub accepted: [u8; PATHS_MAX],
    pub clients: [Client; CLIENTS_MAX],
    /// History: the resource once accepted a write older than one it had accepted.
    pub stale_write_accepted: bool,
    /// History: the resource rejected the write of a holder whose locks were live and unrevoked.
    pub live_write_rejected: bool,
    /// History: a crash, an expiry, a reap or a force release happened.
    pub disturbed: bool,
    /// History: some acquisition superseded an expired lock of another owner.
    pub took_over: bool,
    /// History: the resource rejected a write whose token was older than one it had accepted.
    pub stale_write_rejected: bool,
    /// Store faults (a failed or ambiguous operation) still allowed in this behaviour.
    pub faults_left: u8,
    /// Runs of the offline collector still allowed.
    pub collects_left: u8,
    /// Lost leases still allowed in this behaviour.
    pub lease_losses_left: u8,
    /// Power losses (machine crashes) still allowed in this behaviour.
    pub power_losses_left: u8,
}

crate::packed_hash!(LockState {
    now,
    tickets,
    crashes_left,
    reaps_left,
    forces_left,
    slots,
    accepted,
    clients,
    stale_write_accepted,
    live_write_rejected,
    disturbed,
    took_over,
    stale_write_rejected,
    faults_left,
    collects_left,
    lease_losses_left,
    power_losses_left,
});

/// Canonical form under permutation of interchangeable clients: sort clients by (class, local
/// state) and rename owners in storage to match. Sound for the fixed protocol because none of its
/// decisions depends on a client's identity (tickets are unique; there is no owner-id tie-break).
pub fn canonical(state: &LockState) -> LockState {
    let mut order: [usize; CLIENTS_MAX] = std::array::from_fn(|i| i);
    order.sort_by(|a, b| state.clients[*a].cmp(&state.clients[*b]));
    let mut renamed = [0u8; CLIENTS_MAX];
    for (new, old) in order.iter().enumerate() {
        renamed[*old] = new as u8;
    }
    let mut out = state.clone();
    for (new, old) in order.iter().enumerate() {
        out.clients[new] = state.clients[*old];
    }
    let rename = |head: &mut Head| match head {
        Head::Held { owner, .. } | Head::Empty { owner } if *owner != GONE => {
            *owner = renamed[*owner as usize]
        }
        _ => {}
    };
    for slot in out.slots.iter_mut() {
        rename(&mut slot.head);
        rename(&mut slot.synced.head);
        if let Some(grant) = slot.unsynced_grant.as_mut() {
            rename(grant);
        }
    }
    out
}
