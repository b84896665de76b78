//! Which protocol the model runs: OpenViking's as published (`seed`), lockstep's (`fixed`), or
//! `fixed` with one deliberate defect (a mutant) so that no property passes vacuously.

use serde::Serialize;

/// One planted defect in the fixed protocol: a realistic single-point deviation, each aimed at
/// a property (the catalogue in `catalogue.rs` says which).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mutation {
    /// No re-check after our entry exists: a SUBTREE and a POINT below it both win.
    SkipRecheck,
    /// The re-check compares only the newest entry's own ticket, not the high-water marks it
    /// carries: lockstep's own protocol before the three-client finding (specs/lock.md §4).
    NoHighWater,
    /// The re-check ignores tickets of released or expired overlapping locks (rule c).
    NoTicketCheck,
    /// The resource accepts any token: a zombie's late write lands.
    ResourceIgnoresTokens,
    /// Release appends at the journal's current end instead of right after its own entry.
    BlindRelease,
    /// Create the entry empty, then write it (O_EXCL + write): a crash between leaves a
    /// zero-byte entry no one can attribute or expire (OpenViking #4545).
    CreateThenWrite,
    /// Expiry judged from the writer's wall clock against the reader's (clock skew matters).
    WallclockExpiry,
    /// Locks of one operation taken in caller order, not sorted (AB/BA).
    UnsortedLocks,
    /// The older contender also withdraws when it meets a younger one (every contender rolls
    /// back and retries, as OpenViking's Rust rewrite #3602 does).
    BothWithdraw,
    /// Expired locks are never taken over.
    NoTakeover,
    /// A waiter resumes only when the journal it waits on is empty, a literal port of "wait
    /// until the lock file is gone"; journals never become empty.
    WaitForEmpty,
    /// An expired entry on another path is passed without releasing it in storage first:
    /// lockstep's own first draft (specs/lock.md §5, "reap before ignoring").
    IgnoreExpired,
    /// A read error reads as an empty journal (the seed's fail-open `_read_token`).
    FailOpenRead,
    /// After a create error the acquirer withdraws at the next index without checking that
    /// the entry there is its own.
    BlindWithdraw,
    /// A create that found the index taken starts over without spending a retry (and without a
    /// deadline check): the loop behind `lockstep lock --timeout 0` claiming 10,000 tickets.
    UncountedRestart,
    /// A SUBTREE's scan of the journals below its path lists the path's own journal too (a
    /// prefix listing of `locks/<p>/`), and takes its own entry for a contender.
    DescendantScanIncludesSelf,
    /// A POINT lock re-reads its own journal after the create, as the seed's verify step does,
    /// but judges the entry there by the ticket rule alone, so its own entry looks like a rival.
    PointVerifyByTicket,
    /// The holder makes its guarded write without checking its lease first.
    NoLeaseCheck,
    /// A multi-lock operation that holds a lock waits for an older contender instead of backing
    /// off: lockstep's own protocol before the wait-cycle finding (specs/lock.md §4).
    NoWaitDie,
    /// Locks an operation took but never used (it failed or backed off before the caller had
    /// them) are released rather than withdrawn, raising the high-water marks.
    ReleaseUnused,
}

impl Mutation {
    pub const ALL: [Mutation; 20] = [
        Mutation::SkipRecheck,
        Mutation::NoHighWater,
        Mutation::NoTicketCheck,
        Mutation::ResourceIgnoresTokens,
        Mutation::BlindRelease,
        Mutation::CreateThenWrite,
        Mutation::WallclockExpiry,
        Mutation::UnsortedLocks,
        Mutation::BothWithdraw,
        Mutation::NoTakeover,
        Mutation::WaitForEmpty,
        Mutation::IgnoreExpired,
        Mutation::FailOpenRead,
        Mutation::BlindWithdraw,
        Mutation::UncountedRestart,
        Mutation::DescendantScanIncludesSelf,
        Mutation::PointVerifyByTicket,
        Mutation::NoLeaseCheck,
        Mutation::NoWaitDie,
        Mutation::ReleaseUnused,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Mutation::SkipRecheck => "skip-recheck",
            Mutation::NoHighWater => "no-high-water",
            Mutation::NoTicketCheck => "no-ticket-check",
            Mutation::ResourceIgnoresTokens => "resource-ignores-tokens",
            Mutation::BlindRelease => "blind-release",
            Mutation::CreateThenWrite => "create-then-write",
            Mutation::WallclockExpiry => "wallclock-expiry",
            Mutation::UnsortedLocks => "unsorted-locks",
            Mutation::BothWithdraw => "both-withdraw",
            Mutation::NoTakeover => "no-takeover",
            Mutation::WaitForEmpty => "wait-for-empty",
            Mutation::IgnoreExpired => "ignore-expired",
            Mutation::FailOpenRead => "fail-open-read",
            Mutation::BlindWithdraw => "blind-withdraw",
            Mutation::UncountedRestart => "uncounted-restart",
            Mutation::DescendantScanIncludesSelf => "descendant-scan-includes-self",
            Mutation::PointVerifyByTicket => "point-verify-by-ticket",
            Mutation::NoLeaseCheck => "no-lease-check",
            Mutation::NoWaitDie => "no-wait-die",
            Mutation::ReleaseUnused => "release-unused",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Mutation::SkipRecheck => "no re-check after the entry is created",
            Mutation::NoHighWater => "re-check reads only the newest entry's own ticket, not its high-water marks (the old fixed protocol)",
            Mutation::NoTicketCheck => "re-check ignores higher tickets of released or expired overlapping locks",
            Mutation::ResourceIgnoresTokens => "the guarded resource accepts any token",
            Mutation::BlindRelease => "release appends at the journal end, not after its own entry",
            Mutation::CreateThenWrite => "entries are created empty and written afterwards",
            Mutation::WallclockExpiry => "expiry compares the writer's wall clock with the reader's",
            Mutation::UnsortedLocks => "multi-path locks are taken in caller order",
            Mutation::BothWithdraw => "the older contender withdraws too when it meets a younger one",
            Mutation::NoTakeover => "expired locks are never taken over",
            Mutation::WaitForEmpty => "a waiter resumes only when the journal it waits on is empty",
            Mutation::IgnoreExpired => "an expired entry on another path is passed without releasing it in storage",
            Mutation::FailOpenRead => "a read error reads as an empty journal",
            Mutation::BlindWithdraw => "after a create error, withdraw at the next index without checking the entry is ours",
            Mutation::UncountedRestart => "a lost create starts over without spending a retry",
            Mutation::DescendantScanIncludesSelf => "a SUBTREE's scan below its path includes the path's own journal",
            Mutation::PointVerifyByTicket => "POINT re-reads its own journal and judges its own entry by the ticket rule",
            Mutation::NoLeaseCheck => "the holder writes without checking its lease",
            Mutation::NoWaitDie => "an operation holding a lock waits for an older contender (the old fixed protocol)",
            Mutation::ReleaseUnused => "locks taken but never used are released, not withdrawn",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    /// OpenViking PR 431 as its code does it.
    Seed,
    /// lockstep's protocol (specs/lock.md), optionally with one planted defect.
    Fixed(Option<Mutation>),
}

impl Variant {
    pub fn name(self) -> &'static str {
        match self {
            Variant::Seed => "seed",
            Variant::Fixed(None) => "fixed",
            Variant::Fixed(Some(mutation)) => mutation.name(),
        }
    }

    pub fn parse(name: &str) -> Result<Variant, String> {
        match name {
            "seed" => Ok(Variant::Seed),
            "fixed" => Ok(Variant::Fixed(None)),
            other => Mutation::ALL
                .iter()
                .find(|m| m.name() == other)
                .map(|m| Variant::Fixed(Some(*m)))
                .ok_or_else(|| format!("unknown lock variant {other:?}; expected one of: {}", Self::names().join(", "))),
        }
    }

    pub fn names() -> Vec<&'static str> {
        let mut names = vec!["seed", "fixed"];
        names.extend(Mutation::ALL.iter().map(|m| m.name()));
        names
    }

    pub fn all() -> Vec<Variant> {
        let mut all = vec![Variant::Seed, Variant::Fixed(None)];
        all.extend(Mutation::ALL.iter().map(|m| Variant::Fixed(Some(*m))));
        all
    }

    pub fn is_seed(self) -> bool {
        self == Variant::Seed
    }

    pub fn has(self, mutation: Mutation) -> bool {
        self == Variant::Fixed(Some(mutation))
    }
}
