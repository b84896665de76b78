//! Which protocol the model runs: OpenViking's as published (`seed`), lockstep's (`fixed`), or
//! `fixed` with one deliberate defect (a mutant) so that no property passes vacuously.

use serde::Serialize;

/// One planted defect in the fixed protocol, each aimed at one property.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mutation {
    /// No re-check after our entry exists: a SUBTREE and a POINT below it both win.
    SkipRecheck,
    /// The re-check ignores tickets of possibly-granted overlapping locks (rule c).
    NoTicketCheck,
    /// The resource accepts any token: a zombie's late write lands.
    ResourceIgnoresTokens,
    /// Release appends at the journal's current end instead of right after our own entry.
    BlindRelease,
    /// Create the entry empty, then write it (O_EXCL + write): a crash between leaves a
    /// zero-byte entry no one can attribute or expire (OpenViking #4545).
    CreateThenWrite,
    /// Expiry judged from the writer's wall clock against the reader's (clock skew matters).
    WallclockExpiry,
    /// Locks of one operation taken in caller order, not sorted (AB/BA).
    UnsortedLocks,
    /// The re-check also reads our own path and takes our entry for a conflict.
    SelfConflict,
    /// Expired locks are never taken over.
    NoTakeover,
}

impl Mutation {
    pub const ALL: [Mutation; 9] = [
        Mutation::SkipRecheck,
        Mutation::NoTicketCheck,
        Mutation::ResourceIgnoresTokens,
        Mutation::BlindRelease,
        Mutation::CreateThenWrite,
        Mutation::WallclockExpiry,
        Mutation::UnsortedLocks,
        Mutation::SelfConflict,
        Mutation::NoTakeover,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Mutation::SkipRecheck => "skip-recheck",
            Mutation::NoTicketCheck => "no-ticket-check",
            Mutation::ResourceIgnoresTokens => "resource-ignores-tokens",
            Mutation::BlindRelease => "blind-release",
            Mutation::CreateThenWrite => "create-then-write",
            Mutation::WallclockExpiry => "wallclock-expiry",
            Mutation::UnsortedLocks => "unsorted-locks",
            Mutation::SelfConflict => "self-conflict",
            Mutation::NoTakeover => "no-takeover",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Mutation::SkipRecheck => "no re-check after the entry is created",
            Mutation::NoTicketCheck => "re-check ignores higher tickets of released or expired overlapping locks",
            Mutation::ResourceIgnoresTokens => "the guarded resource accepts any token",
            Mutation::BlindRelease => "release appends at the journal end, not after its own entry",
            Mutation::CreateThenWrite => "entries are created empty and written afterwards",
            Mutation::WallclockExpiry => "expiry compares the writer's wall clock with the reader's",
            Mutation::UnsortedLocks => "multi-path locks are taken in caller order",
            Mutation::SelfConflict => "the re-check counts the client's own entry as a conflict",
            Mutation::NoTakeover => "expired locks are never taken over",
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
