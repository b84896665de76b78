//! Planted bugs for the cross-tests: each harness must be shown to catch one (a harness that
//! cannot fail proves nothing). Compiled only with the test-only `mutants` feature; without it
//! [`active`] is a constant `false` and the optimiser removes every mutant branch.
//!
//! Which tests catch each one is listed in [`CATCHERS`], and checked in
//! tests/tests/mutant_catchers.rs.
//!
//! A test switches one mutant on for its process with [`activate`]; a child process started by a
//! test reads `LOCKSTEP_MUTANT=<name>` at start (only in builds with the feature).

/// One planted bug.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Mutant {
    /// MemStore's create checks and inserts under two separate lock acquisitions (loom).
    MemCheckThenInsert = 1,
    /// A renewal may start after a release was claimed (loom).
    RenewDuringRelease = 2,
    /// Acquisition skips the re-check of step 4 (shuttle, process kills, gated interleavings; the
    /// refinement harness runs each `lock()` to completion and cannot reach it).
    SkipRecheck = 3,
    /// Release appends after the journal's newest entry, not after its own (refinement proptest,
    /// vectors).
    BlindRelease = 4,
    /// The fenced log accepts any token (process kills, shuttle).
    FenceIgnoresTokens = 5,
    /// The re-check reads only the newest entry's own ticket, not its high-water marks (the old
    /// protocol; model mutant `no-high-water`). Caught by the model's counterexample replayed one
    /// storage operation at a time (tests/tests/lock_interleavings.rs).
    NoHighWater = 6,
    /// An operation holding a lock waits for an older contender instead of backing off (model
    /// mutant `no-wait-die`). Gated interleavings: a wait cycle.
    NoWaitDie = 7,
    /// Locks of a failed or backed-off operation are released, not withdrawn (model mutant
    /// `release-unused`). Refinement proptest: a release where the model withdraws.
    ReleaseUnused = 8,
    /// The withdraw of a cancelled acquisition reads the journal without waiting for the create
    /// still in flight (shuttle).
    WithdrawBeforeCreateEnds = 9,
    /// `Guard::release` runs in the caller's future: dropping it abandons the release (shuttle).
    ReleaseInCaller = 10,
    /// A merger moves TAIL to its own cut, not to the end of the first merge commit for its
    /// TAIL (model mutant `tail-to-own-cut`).
    MergeTailToOwnCut = 11,
    /// A merger's `unlock` goes after the newest entry, not right after its own `lock` (model
    /// mutant `blind-unlock`): a force-released zombie frees its successor's lock.
    MergeBlindUnlock = 12,
    /// A `lock` create that returned an error is taken as not landed (model mutant
    /// `no-lock-read-back`): the lock is left held by a live merger that went away.
    MergeNoLockReadBack = 13,
    /// A merge skips the conflict check: a child's delete of an object the parent changed
    /// since BASE is merged.
    MergeSkipConflictCheck = 14,
    /// A merger that gives up while it may hold a lock ends its owner registration cleanly:
    /// its liveness is then unknown and recovery never frees the lock.
    MergeCleanEndAfterGivingUp = 15,
    /// A writer whose create at the journal's end finds the index taken takes it for its own
    /// earlier attempt without reading the entry's id (loom: two writers get one index).
    MergeCommitTrustsAlreadyExists = 16,
    /// A merger that finds its own `lock` newest (a create it saw fail landed late) waits for it
    /// as for anybody's: it waits on itself, and leaves an orphan lock.
    MergeOwnLockIsBusy = 17,
    /// Phase 1 archives every stored message, also those already in an archive whose delete is
    /// pending (model mutant `no-exclusion`): a message is archived twice.
    RedoNoExclusion = 18,
    /// Phase 1 deletes every stored message, not only those it archived (model mutant
    /// `clear-all`; the seed's blind overwrite): a message added meanwhile is lost.
    RedoClearAll = 19,
    /// An archive create that finds its key taken is taken as another commit's, even when it is
    /// our own create whose answer was lost (model mutant `archive-exists-is-theirs`).
    RedoArchiveExistsIsTheirs = 20,
    /// Phase 2 does not read the manifest first (model mutant `skip-manifest-check`): a replay
    /// of an archive whose memories exist extracts and writes them again.
    RedoSkipManifestCheck = 21,
    /// The worker's effect is written under a fresh key per delivery, not keyed by the item
    /// (model mutant `effect-not-keyed`): a re-delivery applies it twice.
    RedoEffectNotKeyed = 22,
    /// The worker acks before applying (model mutant `ack-before-apply`): a crash in between
    /// loses the effect.
    RedoAckBeforeApply = 23,
    /// Phase 2 creates `done` before it enqueues: a crash in between leaves memories whose
    /// semantic item is never delivered.
    RedoDoneBeforeEnqueue = 24,
    /// The semantic effect is keyed by the archive index alone, not by its session: two
    /// sessions' archives `k` share one effect key (the model's `item-keyed-by-index`).
    RedoEffectKeyedByIndex = 25,
    /// A waiter sleeps its whole poll interval although the store gave it a wake-up hint (the
    /// hint made, never waited on): a release wakes nobody, and the lock sits free until the
    /// next poll.
    WaitIgnoresHint = 26,
    /// A path lock's own entries (`acquire`, `release`, …) are linked before their bytes are
    /// synced: after a power loss a surviving entry may be empty, and its journal reads as
    /// corrupt for good (the model's `entry-bytes-not-synced`).
    EntryBytesNotSynced = 27,
    /// A ticket's name is not synced either: a power loss may take back tickets whose tokens
    /// were handed out, and later tokens are no longer larger (the model's `ticket-not-synced`).
    TicketNotSynced = 28,
    /// A ticket claim skips its stray check: a claimer whose listing of `tickets/` is older than
    /// the collection of old tickets re-creates one of them and is handed a token below tokens
    /// already handed out.
    TicketStrayUnchecked = 29,
    /// FsStore's batched read gets the *first* listed key its pick accepts, not the last: a
    /// journal's oldest entry read as its newest (impl/tests/store_batch.rs).
    ReadManyPicksFirst = 30,
    /// A renewal appends after the journal's newest entry, not right after its own: a renewal
    /// after a force release brings the lock back to life (vectors).
    BlindRenew = 31,
    /// A release of several locks reports the first error, a lost lock's, over a store error
    /// that left another lock unreleased: the caller never learns the release failed (vectors).
    LostHidesStoreError = 32,
    /// An acquirer passes a lock whose lease ran out, on another path, without releasing it in
    /// storage first (the model's `ignore-expired`; a dead owner's lock is still released): its
    /// holder, still running, can renew it back to life (vectors, after a tick).
    PassExpiredUnreleased = 33,
    /// A guard's lease check looks only at what renewals found, not at the clock: a holder
    /// paused past its lease writes with it (the model's `no-lease-check`; vectors, after a tick).
    GuardIgnoresClock = 34,
    /// A one-commit acquisition expects only its own journal and the tickets to be unchanged,
    /// not its ancestors': it is granted beside a SUBTREE lock taken above since it last looked.
    CommitSkipsAncestors = 35,
    /// A one-commit acquisition expects its remembered head and the index after it, not the
    /// whole journal above: entries collected above the head hide a newer holder.
    CommitSkipsOwnTail = 36,
    /// A waiter's ticket, claimed before it slept, is used after the wait without comparing it
    /// with the marks after its journal's newest entry: a client granted meanwhile with a larger
    /// ticket wrote with it, and the waiter's smaller token is rejected (the model's
    /// `kept-ticket-unchecked`).
    KeptTicketUnchecked = 37,
    /// A waiter compares its kept ticket with the mark of its own kind on its own path
    /// (`marks.subtree` for a SUBTREE waiter), not with `marks.any`: a POINT lock granted there
    /// during the wait with a larger ticket is missed.
    KeptTicketOwnKindMark = 38,
    /// Merge recovery stops with an error when the stuck lock it listed has been freed and
    /// taken again before its release reads the journal (a token mismatch), instead of taking
    /// it as already freed: a race with any merger makes `recover` fail.
    MergeRecoverRaceIsError = 39,
    /// A waiter whose deadline has already passed still claims a ticket before its wait, which
    /// then ends at once: every such attempt burns a ticket it can never use.
    ClaimPastDeadline = 40,
    /// A waiter takes the blocking entry from its wait's own first read, not as the caller read
    /// it: a withdraw and a new grant between the two go unseen, and an operation that holds a
    /// younger lock waits for an older one instead of backing off (wait-die skipped).
    WaitReferenceOwnRead = 41,
    /// A release's garbage window reaches one entry too far: the two entries below the release
    /// and the release itself are deleted (an off-by-one in the range), so the journal's newest
    /// entry goes away with the marks it carried. (On a store with commits the release and its
    /// deletes are one commit, which would then create and delete one key; the catching test
    /// runs step by step, on a MemStore without commits.)
    CollectDeletesNewest = 42,
}

impl Mutant {
    pub const ALL: [Mutant; 42] = [
        Mutant::MemCheckThenInsert,
        Mutant::RenewDuringRelease,
        Mutant::SkipRecheck,
        Mutant::BlindRelease,
        Mutant::FenceIgnoresTokens,
        Mutant::NoHighWater,
        Mutant::NoWaitDie,
        Mutant::ReleaseUnused,
        Mutant::WithdrawBeforeCreateEnds,
        Mutant::ReleaseInCaller,
        Mutant::MergeTailToOwnCut,
        Mutant::MergeBlindUnlock,
        Mutant::MergeNoLockReadBack,
        Mutant::MergeSkipConflictCheck,
        Mutant::MergeCleanEndAfterGivingUp,
        Mutant::MergeCommitTrustsAlreadyExists,
        Mutant::MergeOwnLockIsBusy,
        Mutant::RedoNoExclusion,
        Mutant::RedoClearAll,
        Mutant::RedoArchiveExistsIsTheirs,
        Mutant::RedoSkipManifestCheck,
        Mutant::RedoEffectNotKeyed,
        Mutant::RedoAckBeforeApply,
        Mutant::RedoDoneBeforeEnqueue,
        Mutant::RedoEffectKeyedByIndex,
        Mutant::WaitIgnoresHint,
        Mutant::EntryBytesNotSynced,
        Mutant::TicketNotSynced,
        Mutant::TicketStrayUnchecked,
        Mutant::ReadManyPicksFirst,
        Mutant::BlindRenew,
        Mutant::LostHidesStoreError,
        Mutant::PassExpiredUnreleased,
        Mutant::GuardIgnoresClock,
        Mutant::CommitSkipsAncestors,
        Mutant::CommitSkipsOwnTail,
        Mutant::KeptTicketUnchecked,
        Mutant::KeptTicketOwnKindMark,
        Mutant::MergeRecoverRaceIsError,
        Mutant::ClaimPastDeadline,
        Mutant::WaitReferenceOwnRead,
        Mutant::CollectDeletesNewest,
    ];

    /// The mutant of a name [`Mutant::name`] gives.
    pub fn from_name(name: &str) -> Option<Mutant> {
        Mutant::ALL.iter().copied().find(|m| m.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Mutant::MemCheckThenInsert => "mem-check-then-insert",
            Mutant::RenewDuringRelease => "renew-during-release",
            Mutant::SkipRecheck => "skip-recheck",
            Mutant::BlindRelease => "blind-release",
            Mutant::FenceIgnoresTokens => "fence-ignores-tokens",
            Mutant::NoHighWater => "no-high-water",
            Mutant::NoWaitDie => "no-wait-die",
            Mutant::ReleaseUnused => "release-unused",
            Mutant::WithdrawBeforeCreateEnds => "withdraw-before-create-ends",
            Mutant::ReleaseInCaller => "release-in-caller",
            Mutant::MergeTailToOwnCut => "merge-tail-to-own-cut",
            Mutant::MergeBlindUnlock => "merge-blind-unlock",
            Mutant::MergeNoLockReadBack => "merge-no-lock-read-back",
            Mutant::MergeSkipConflictCheck => "merge-skip-conflict-check",
            Mutant::MergeCleanEndAfterGivingUp => "merge-clean-end-after-giving-up",
            Mutant::MergeCommitTrustsAlreadyExists => "merge-commit-trusts-already-exists",
            Mutant::MergeOwnLockIsBusy => "merge-own-lock-is-busy",
            Mutant::RedoNoExclusion => "redo-no-exclusion",
            Mutant::RedoClearAll => "redo-clear-all",
            Mutant::RedoArchiveExistsIsTheirs => "redo-archive-exists-is-theirs",
            Mutant::RedoSkipManifestCheck => "redo-skip-manifest-check",
            Mutant::RedoEffectNotKeyed => "redo-effect-not-keyed",
            Mutant::RedoAckBeforeApply => "redo-ack-before-apply",
            Mutant::RedoDoneBeforeEnqueue => "redo-done-before-enqueue",
            Mutant::RedoEffectKeyedByIndex => "redo-effect-keyed-by-index",
            Mutant::WaitIgnoresHint => "wait-ignores-hint",
            Mutant::EntryBytesNotSynced => "entry-bytes-not-synced",
            Mutant::TicketNotSynced => "ticket-not-synced",
            Mutant::TicketStrayUnchecked => "ticket-stray-unchecked",
            Mutant::ReadManyPicksFirst => "read-many-picks-first",
            Mutant::BlindRenew => "blind-renew",
            Mutant::LostHidesStoreError => "lost-hides-store-error",
            Mutant::PassExpiredUnreleased => "pass-expired-unreleased",
            Mutant::GuardIgnoresClock => "guard-ignores-clock",
            Mutant::CommitSkipsAncestors => "commit-skips-ancestors",
            Mutant::CommitSkipsOwnTail => "commit-skips-own-tail",
            Mutant::KeptTicketUnchecked => "kept-ticket-unchecked",
            Mutant::KeptTicketOwnKindMark => "kept-ticket-own-kind-mark",
            Mutant::MergeRecoverRaceIsError => "merge-recover-race-is-error",
            Mutant::ClaimPastDeadline => "claim-past-deadline",
            Mutant::WaitReferenceOwnRead => "wait-reference-own-read",
            Mutant::CollectDeletesNewest => "collect-deletes-newest",
        }
    }
}

#[cfg(feature = "mutants")]
static ACTIVE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Whether `mutant` is switched on in this process.
#[cfg(feature = "mutants")]
pub fn active(mutant: Mutant) -> bool {
    use std::sync::atomic::Ordering;
    static FROM_ENV: std::sync::Once = std::sync::Once::new();
    FROM_ENV.call_once(|| {
        if let Ok(name) = std::env::var("LOCKSTEP_MUTANT") {
            if let Some(m) = Mutant::ALL.iter().find(|m| m.name() == name) {
                ACTIVE.store(*m as u8, Ordering::SeqCst);
            }
        }
    });
    ACTIVE.load(Ordering::SeqCst) == mutant as u8
}

#[cfg(not(feature = "mutants"))]
#[inline(always)]
pub fn active(_mutant: Mutant) -> bool {
    false
}

/// The mutant switched on in this process, if any.
pub fn switched_on() -> Option<Mutant> {
    Mutant::ALL.iter().copied().find(|m| active(*m))
}

/// Switches `mutant` on (or every mutant off, with `None`) for this process.
#[cfg(feature = "mutants")]
pub fn activate(mutant: Option<Mutant>) {
    let _ = active(Mutant::SkipRecheck); // read the environment first, so this call wins
    ACTIVE.store(
        mutant.map_or(0, |m| m as u8),
        std::sync::atomic::Ordering::SeqCst,
    );
}

/// Which tests catch each planted bug: (mutant, file under the workspace, test function). Checked
/// by tests/tests/mutant_catchers.rs (each test exists, is not ignored, and switches that very
/// mutant on); `lockstep report` shows it.
pub const CATCHERS: &[(Mutant, &str, &str)] = &[
    (
        Mutant::MemCheckThenInsert,
        "impl/tests/loom.rs",
        "mem_create_mutant_check_then_insert_is_caught",
    ),
    (
        Mutant::RenewDuringRelease,
        "impl/tests/loom.rs",
        "renewal_after_release_mutant_is_caught",
    ),
    (
        Mutant::SkipRecheck,
        "impl/tests/shuttle.rs",
        "random_schedules_catch_a_skipped_recheck",
    ),
    (
        Mutant::SkipRecheck,
        "impl/tests/shuttle.rs",
        "skip_recheck_schedule_replays",
    ),
    (
        Mutant::SkipRecheck,
        "impl/tests/lock_processes.rs",
        "the_checker_catches_a_skipped_recheck",
    ),
    (
        Mutant::SkipRecheck,
        "tests/tests/lock_interleavings.rs",
        "interleavings_catch_a_skipped_recheck",
    ),
    (
        Mutant::BlindRelease,
        "tests/tests/lock_conformance.rs",
        "the_harness_catches_a_blind_release",
    ),
    (
        Mutant::BlindRenew,
        "tests/tests/lock_vectors.rs",
        "the_replay_catches_a_blind_renew",
    ),
    (
        Mutant::LostHidesStoreError,
        "tests/tests/lock_vectors.rs",
        "the_replay_catches_a_lost_lock_hiding_a_failed_release",
    ),
    (
        Mutant::PassExpiredUnreleased,
        "tests/tests/lock_vectors.rs",
        "the_replay_catches_an_expired_lock_passed_unreleased",
    ),
    (
        Mutant::GuardIgnoresClock,
        "tests/tests/lock_vectors.rs",
        "the_replay_catches_a_guard_that_ignores_its_clock",
    ),
    (
        Mutant::SkipRecheck,
        "tests/tests/lock_commit.rs",
        "mixed_contention_catches_a_skipped_recheck",
    ),
    (
        Mutant::CommitSkipsAncestors,
        "tests/tests/lock_commit.rs",
        "the_commit_tests_catch_a_commit_that_skips_its_ancestors",
    ),
    (
        Mutant::WithdrawBeforeCreateEnds,
        "tests/tests/lock_commit.rs",
        "the_commit_tests_catch_a_withdraw_that_does_not_wait_for_the_commit",
    ),
    (
        Mutant::CommitSkipsOwnTail,
        "tests/tests/lock_commit.rs",
        "the_commit_tests_catch_a_commit_blind_to_a_collected_tail",
    ),
    (
        Mutant::BlindRelease,
        "tests/tests/lock_conformance.rs",
        "blind_release_after_force_release_is_caught_directly",
    ),
    (
        Mutant::BlindRelease,
        "tests/tests/lock_vectors.rs",
        "the_replay_catches_a_blind_release",
    ),
    (
        Mutant::FenceIgnoresTokens,
        "impl/tests/lock_processes.rs",
        "the_checker_catches_a_fence_that_ignores_tokens",
    ),
    (
        Mutant::FenceIgnoresTokens,
        "impl/tests/shuttle.rs",
        "random_schedules_catch_a_fence_that_ignores_tokens",
    ),
    (
        Mutant::NoHighWater,
        "tests/tests/lock_interleavings.rs",
        "the_model_counterexample_replayed_catches_a_recheck_without_high_water_marks",
    ),
    (
        Mutant::KeptTicketUnchecked,
        "tests/tests/lock_interleavings.rs",
        "the_model_counterexample_replayed_catches_a_kept_ticket_used_unchecked",
    ),
    (
        Mutant::KeptTicketOwnKindMark,
        "tests/tests/lock_interleavings.rs",
        "a_subtree_waiter_passed_by_a_point_grant_claims_afresh",
    ),
    (
        Mutant::NoWaitDie,
        "tests/tests/lock_interleavings.rs",
        "interleavings_catch_waiting_without_wait_die",
    ),
    (
        Mutant::ReleaseUnused,
        "tests/tests/lock_conformance.rs",
        "the_harness_catches_a_release_of_unused_locks",
    ),
    (
        Mutant::WithdrawBeforeCreateEnds,
        "impl/tests/shuttle.rs",
        "the_cancellation_tests_catch_their_mutants",
    ),
    (
        Mutant::ReleaseInCaller,
        "impl/tests/shuttle.rs",
        "the_cancellation_tests_catch_their_mutants",
    ),
    (
        Mutant::MergeTailToOwnCut,
        "tests/tests/merge_conformance.rs",
        "the_harness_catches_tail_moved_to_own_cut",
    ),
    (
        Mutant::MergeTailToOwnCut,
        "impl/tests/merge_processes.rs",
        "the_checker_catches_tail_moved_to_own_cut",
    ),
    (
        Mutant::MergeTailToOwnCut,
        "tests/tests/merge_vectors.rs",
        "the_replay_catches_tail_moved_to_own_cut",
    ),
    (
        Mutant::MergeBlindUnlock,
        "tests/tests/merge_conformance.rs",
        "the_harness_catches_a_blind_unlock",
    ),
    (
        Mutant::MergeBlindUnlock,
        "tests/tests/merge_impl.rs",
        "a_blind_unlock_lets_the_zombie_free_the_new_holder",
    ),
    (
        Mutant::MergeBlindUnlock,
        "impl/tests/merge_shuttle.rs",
        "random_schedules_catch_a_blind_unlock",
    ),
    (
        Mutant::MergeBlindUnlock,
        "impl/tests/merge_shuttle.rs",
        "blind_unlock_schedule_replays",
    ),
    (
        Mutant::MergeTailToOwnCut,
        "impl/tests/merge_shuttle.rs",
        "random_schedules_catch_tail_moved_to_own_cut",
    ),
    (
        Mutant::ClaimPastDeadline,
        "impl/tests/lock_hand_off.rs",
        "the_deadline_test_catches_a_claim_past_the_deadline",
    ),
    (
        Mutant::CollectDeletesNewest,
        "impl/tests/lock_garbage.rs",
        "a_journal_in_use_keeps_a_bounded_number_of_entries",
    ),
    (
        Mutant::WaitReferenceOwnRead,
        "tests/tests/lock_interleavings.rs",
        "a_grant_between_the_read_and_the_wait_goes_through_wait_die",
    ),
    (
        Mutant::MergeRecoverRaceIsError,
        "impl/tests/merge_shuttle.rs",
        "recover_race_schedule_replays",
    ),
    (
        Mutant::MergeNoLockReadBack,
        "tests/tests/merge_conformance.rs",
        "the_harness_catches_a_lock_taken_as_not_landed",
    ),
    (
        Mutant::MergeCleanEndAfterGivingUp,
        "tests/tests/merge_impl.rs",
        "a_clean_end_after_giving_up_is_caught",
    ),
    (
        Mutant::MergeCommitTrustsAlreadyExists,
        "impl/tests/loom.rs",
        "merge_commit_trusting_already_exists_is_caught",
    ),
    (
        Mutant::MergeOwnLockIsBusy,
        "tests/tests/merge_impl.rs",
        "waiting_on_our_own_late_lock_is_caught",
    ),
    (
        Mutant::MergeSkipConflictCheck,
        "tests/tests/merge_impl.rs",
        "a_merge_without_the_conflict_check_is_caught",
    ),
    (
        Mutant::RedoNoExclusion,
        "tests/tests/redo_conformance.rs",
        "catches_no_exclusion",
    ),
    (
        Mutant::RedoNoExclusion,
        "impl/tests/redo_processes.rs",
        "the_checker_catches_a_commit_without_exclusion",
    ),
    (
        Mutant::RedoNoExclusion,
        "impl/tests/loom.rs",
        "redo_commit_without_exclusion_is_caught",
    ),
    (
        Mutant::RedoNoExclusion,
        "impl/tests/redo_shuttle.rs",
        "random_schedules_catch_a_commit_without_exclusion",
    ),
    (
        Mutant::RedoClearAll,
        "impl/tests/redo_shuttle.rs",
        "random_schedules_catch_a_clear_of_every_message",
    ),
    (
        Mutant::RedoClearAll,
        "tests/tests/redo_conformance.rs",
        "catches_clear_all",
    ),
    (
        Mutant::RedoArchiveExistsIsTheirs,
        "tests/tests/redo_conformance.rs",
        "catches_archive_exists_is_theirs",
    ),
    (
        Mutant::RedoSkipManifestCheck,
        "tests/tests/redo_conformance.rs",
        "catches_skip_manifest_check",
    ),
    (
        Mutant::RedoEffectNotKeyed,
        "tests/tests/redo_conformance.rs",
        "catches_effect_not_keyed",
    ),
    (
        Mutant::RedoEffectNotKeyed,
        "tests/tests/redo_impl.rs",
        "a_zombie_worker_catches_an_effect_not_keyed",
    ),
    (
        Mutant::RedoAckBeforeApply,
        "tests/tests/redo_conformance.rs",
        "catches_ack_before_apply",
    ),
    (
        Mutant::RedoDoneBeforeEnqueue,
        "tests/tests/redo_vectors.rs",
        "the_replay_catches_done_before_enqueue",
    ),
    (
        Mutant::RedoDoneBeforeEnqueue,
        "tests/tests/redo_conformance.rs",
        "catches_done_before_enqueue",
    ),
    (
        Mutant::RedoEffectKeyedByIndex,
        "tests/tests/redo_impl.rs",
        "an_effect_keyed_by_index_alone_is_caught",
    ),
    (
        Mutant::WaitIgnoresHint,
        "impl/tests/lock_hand_off.rs",
        "the_hand_off_test_catches_a_waiter_that_ignores_the_hint",
    ),
    (
        Mutant::EntryBytesNotSynced,
        "impl/tests/lock_power_loss.rs",
        "the_power_loss_test_catches_entries_whose_bytes_are_not_synced",
    ),
    (
        Mutant::TicketNotSynced,
        "impl/tests/lock_power_loss.rs",
        "the_power_loss_test_catches_tickets_whose_names_are_not_synced",
    ),
    (
        Mutant::TicketStrayUnchecked,
        "impl/tests/lock_tickets.rs",
        "the_stale_listing_test_catches_a_claim_without_its_stray_check",
    ),
    (
        Mutant::ReadManyPicksFirst,
        "impl/tests/store_batch.rs",
        "the_batch_test_catches_a_read_that_picks_the_first_key",
    ),
];
