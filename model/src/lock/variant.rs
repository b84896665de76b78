//! Which path-lock protocol the model runs: OpenViking's as published (`seed`), lockstep's
//! (`fixed`), or `fixed` with one planted defect (a mutant): a realistic single-point deviation,
//! each aimed at a property (`catalogue.rs` says which).

crate::variants! {
    protocol: "lock",
    /// One planted defect in the fixed protocol.
    pub enum Mutation {
        /// No re-check after our entry exists: a SUBTREE and a POINT below it both win.
        SkipRecheck = "skip-recheck": "no re-check after the entry is created",
        /// The re-check compares only the newest entry's own ticket, not the high-water marks it
        /// carries: lockstep's own protocol before the three-client finding (specs/lock.md §4).
        NoHighWater = "no-high-water": "re-check reads only the newest entry's own ticket, not its high-water marks (the old fixed protocol)",
        /// The re-check ignores tickets of released or expired overlapping locks (rule c).
        NoTicketCheck = "no-ticket-check": "re-check ignores higher tickets of released or expired overlapping locks",
        /// The offline collector runs while clients are in the middle of an operation (it does
        /// not take the store's users lock exclusively).
        GcWhileActive = "gc-while-active": "the collector deletes released journals while clients are mid-operation",
        /// The offline collector deletes the ticket journal too.
        GcResetsTickets = "gc-resets-tickets": "the collector deletes the ticket journal with the released journals",
        /// The resource accepts any token: a zombie's late write lands.
        ResourceIgnoresTokens = "resource-ignores-tokens": "the guarded resource accepts any token",
        /// Release appends at the journal's current end instead of right after its own entry.
        BlindRelease = "blind-release": "release appends at the journal end, not after its own entry",
        /// Create the entry empty, then write it (O_EXCL + write): a crash between leaves a
        /// zero-byte entry no one can attribute or expire (OpenViking #4545).
        CreateThenWrite = "create-then-write": "entries are created empty and written afterwards",
        /// Expiry judged from the writer's wall clock against the reader's (clock skew matters).
        WallclockExpiry = "wallclock-expiry": "expiry compares the writer's wall clock with the reader's",
        /// Locks of one operation taken in caller order, not sorted (AB/BA).
        UnsortedLocks = "unsorted-locks": "multi-path locks are taken in caller order",
        /// The older contender also withdraws when it meets a younger one (every contender rolls
        /// back and retries, as OpenViking's Rust rewrite #3602 does).
        BothWithdraw = "both-withdraw": "the older contender withdraws too when it meets a younger one",
        /// Expired locks are never taken over.
        NoTakeover = "no-takeover": "expired locks are never taken over",
        /// A waiter resumes only when the journal it waits on is empty, a literal port of "wait
        /// until the lock file is gone"; journals never become empty.
        WaitForEmpty = "wait-for-empty": "a waiter resumes only when the journal it waits on is empty",
        /// An expired entry on another path is passed without releasing it in storage first:
        /// lockstep's own first draft (specs/lock.md §5, "reap before ignoring").
        IgnoreExpired = "ignore-expired": "an expired entry on another path is passed without releasing it in storage",
        /// A read error reads as an empty journal (the seed's fail-open `_read_token`).
        FailOpenRead = "fail-open-read": "a read error reads as an empty journal",
        /// After a create error the acquirer withdraws at the next index without checking that
        /// the entry there is its own.
        BlindWithdraw = "blind-withdraw": "after a create error, withdraw at the next index without checking the entry is ours",
        /// A create that found the index taken starts over without spending a retry (and without a
        /// deadline check): the loop behind `lockstep lock --timeout 0` claiming 10,000 tickets.
        UncountedRestart = "uncounted-restart": "a lost create starts over without spending a retry",
        /// A SUBTREE's scan of the journals below its path lists the path's own journal too (a
        /// prefix listing of `locks/<p>/`), and takes its own entry for a contender.
        DescendantScanIncludesSelf = "descendant-scan-includes-self": "a SUBTREE's scan below its path includes the path's own journal",
        /// A POINT lock re-reads its own journal after the create, as the seed's verify step does,
        /// but judges the entry there by the ticket rule alone, so its own entry looks like a rival.
        PointVerifyByTicket = "point-verify-by-ticket": "POINT re-reads its own journal and judges its own entry by the ticket rule",
        /// The holder makes its guarded write without checking its lease first.
        NoLeaseCheck = "no-lease-check": "the holder writes without checking its lease",
        /// A multi-lock operation that holds a lock waits for an older contender instead of backing
        /// off: lockstep's own protocol before the wait-cycle finding (specs/lock.md §4).
        NoWaitDie = "no-wait-die": "an operation holding a lock waits for an older contender (the old fixed protocol)",
        /// A waiter re-reads only when a wake-up hint (an inotify event on the journal it waits
        /// on) says the journal changed: the hint trusted as a message that always arrives, with
        /// no poll to fall back on. A lost hint leaves it asleep for good (specs/lock.md §4,
        /// "Waiting, and the wake-up hint").
        HintOnly = "hint-only": "a waiter re-reads only when a wake-up hint arrives, and never polls",
        /// The path locks' own entries are linked before their bytes are synced (FsStore with the
        /// `fsync` of the entry left out too): after a power loss an entry's name may survive
        /// with no bytes, a zero-byte entry that no one can attribute, expire or release.
        EntryBytesNotSynced = "entry-bytes-not-synced": "a lock entry's name may survive a power loss without its bytes",
        /// A ticket's name is not synced either: a power loss may take back tickets whose tokens
        /// were handed out, and the next boot's tokens start below them.
        TicketNotSynced = "ticket-not-synced": "a power loss may take back claimed tickets",
        /// A waiter's kept ticket (claimed before it slept) is used by its next create without
        /// comparing it with the marks after its own journal's newest entry: a client granted
        /// meanwhile with a larger ticket may have written, and the waiter's smaller token is then
        /// rejected although its lock is live.
        KeptTicketUnchecked = "kept-ticket-unchecked": "a waiter's ticket claimed before it slept is used unchecked after the wait",
        /// Locks an operation took but never used (it failed or backed off before the caller had
        /// them) are released rather than withdrawn, raising the high-water marks.
        ReleaseUnused = "release-unused": "locks taken but never used are released, not withdrawn",
    }
    pub enum Variant {
        /// OpenViking PR 431 as its code does it (openviking 0.2.11 on PyPI).
        Seed = "seed",
    }
}
