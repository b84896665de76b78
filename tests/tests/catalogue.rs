//! The bug catalogue of all three protocols: every seed bug and every mutant is still found,
//! with its counterexample length pinned (a changed length is a changed spec, and shows in
//! review), and the fixed protocol keeps the very property each entry breaks, in the very world
//! that shows it.

use std::time::Duration;

use lockstep_model::bugs::{self, EntryKind};

/// Runs one catalogue entry and checks that it is found with a counterexample of `len` steps
/// (0 for a `sometimes` property that is never reached), and that the fixed protocol, in the
/// same world, keeps the property.
fn assert_entry(id: &str, len: usize) {
    let entry = bugs::catalogue().into_iter().find(|e| e.id == id).unwrap_or_else(|| panic!("no entry {id}"));
    let run = entry.run(Duration::from_secs(120));
    assert!(run.reproduced, "{id} was not reproduced");
    assert_eq!(run.trace_len, len, "{id}: counterexample length changed:\n{}", run.counterexample.map(|t| t.to_string()).unwrap_or_default());
    let control = entry.run_fixed(Duration::from_secs(120));
    assert!(control.exhaustive && !control.reproduced, "{id}: the fixed protocol breaks \"{}\" in the same world", entry.property);
}

macro_rules! catalogue_tests {
    ($($name:ident: $id:literal, $len:literal;)*) => {
        $(
            #[test]
            fn $name() {
                assert_entry($id, $len);
            }
        )*

        /// Every catalogue entry has a test above.
        #[test]
        fn every_entry_has_a_test() {
            let tested = [$($id),*];
            for entry in bugs::catalogue() {
                assert!(tested.contains(&entry.id), "catalogue entry {} has no test", entry.id);
            }
        }
    };
}

catalogue_tests! {
    seed_same_path_double_grant: "lock/same-path-double-grant", 6;
    seed_stale_delete_removes_refreshed_lock: "lock/stale-delete-removes-refreshed-lock", 8;
    seed_release_after_steal: "lock/release-after-steal-deletes-new-owner", 9;
    seed_refresh_resurrects: "lock/refresh-resurrects-stolen-lock", 9;
    seed_zombie_write_accepted: "lock/zombie-write-accepted", 9;
    seed_zero_byte_lock_reads_unlocked: "lock/zero-byte-lock-reads-unlocked", 10;
    seed_root_subtree_never_seen: "lock/root-subtree-never-seen", 8;
    seed_clock_skew_steals_live_lock: "lock/clock-skew-steals-live-lock", 8;
    seed_mv_opposite_order_deadlock: "lock/mv-opposite-order-deadlock", 8;
    seed_mv_opposite_order_both_time_out: "lock/mv-opposite-order-both-time-out", 13;
    mutant_skip_recheck: "lock/mutant-skip-recheck", 10;
    mutant_wallclock_expiry: "lock/mutant-wallclock-expiry", 10;
    mutant_resource_ignores_tokens: "lock/mutant-resource-ignores-tokens", 15;
    mutant_no_ticket_check: "lock/mutant-no-ticket-check", 19;
    mutant_blind_release: "lock/mutant-blind-release", 13;
    mutant_create_then_write: "lock/mutant-create-then-write", 5;
    mutant_unsorted_locks_deadlock: "lock/mutant-unsorted-locks-deadlock", 12;
    mutant_unsorted_locks_livelock: "lock/mutant-unsorted-locks-livelock", 17;
    mutant_self_conflict_point: "lock/mutant-self-conflict-point", 0;
    mutant_self_conflict_subtree: "lock/mutant-self-conflict-subtree", 0;
    mutant_self_conflict_mv: "lock/mutant-self-conflict-mv", 0;
    mutant_self_conflict_contest: "lock/mutant-self-conflict-contest", 0;
    mutant_no_takeover: "lock/mutant-no-takeover", 0;
    merge_seed_lockfree_double_merge: "merge/lockfree-double-merge", 8;
    merge_seed_write_lost_behind_tail: "merge/write-lost-behind-tail", 8;
    merge_seed_head_lag_wedges_lock: "merge/head-lag-wedges-lock", 3;
    merge_seed_crash_before_tail_move_merges_twice: "merge/crash-before-tail-move-merges-twice", 14;
    merge_seed_zombie_unlock_frees_new_holder: "merge/zombie-unlock-frees-new-holder", 12;
    merge_seed_blind_put_lock_excludes_nothing: "merge/blind-put-lock-excludes-nothing", 4;
    merge_mutant_lock_blind_put: "merge/mutant-lock-blind-put", 4;
    merge_mutant_no_dedupe: "merge/mutant-no-dedupe", 11;
    merge_mutant_tail_to_own_cut: "merge/mutant-tail-to-own-cut", 14;
    merge_mutant_no_recovery: "merge/mutant-no-recovery", 3;
    merge_mutant_blind_unlock: "merge/mutant-blind-unlock", 11;
    merge_mutant_lock_never_free: "merge/mutant-lock-never-free", 0;
    redo_seed_crash_before_marker_loses_phase2: "redo/crash-before-marker-loses-phase2", 5;
    redo_seed_same_archive_index_overwrite: "redo/same-archive-index-overwrite", 6;
    redo_seed_replay_writes_memories_twice: "redo/replay-writes-memories-twice", 10;
    redo_seed_replay_of_commit_in_flight: "redo/replay-of-commit-in-flight", 10;
    redo_seed_unreadable_marker_dropped: "redo/unreadable-marker-dropped", 8;
    redo_seed_replay_enqueues_twice: "redo/replay-enqueues-twice", 13;
    redo_mutant_no_session_lock: "redo/mutant-no-session-lock", 7;
    redo_mutant_index_from_memory: "redo/mutant-index-from-memory", 12;
    redo_mutant_clear_all: "redo/mutant-clear-all", 7;
    redo_mutant_marker_after_clear: "redo/mutant-marker-after-clear", 6;
    redo_mutant_fresh_memory_ids: "redo/mutant-fresh-memory-ids", 12;
    redo_mutant_fresh_memory_ids_replay: "redo/mutant-fresh-memory-ids-replay", 12;
    redo_mutant_effect_not_keyed: "redo/mutant-effect-not-keyed", 15;
    redo_mutant_ack_before_apply: "redo/mutant-ack-before-apply", 18;
    redo_mutant_keep_marker: "redo/mutant-keep-marker", 23;
    redo_mutant_no_replay: "redo/mutant-no-replay", 0;
}


/// Each protocol has seed bugs and mutants in the catalogue.
#[test]
fn every_protocol_has_seed_bugs_and_mutants() {
    for protocol in ["lock", "merge", "redo"] {
        let entries = bugs::entries(Some(protocol));
        assert!(entries.iter().any(|e| e.kind == EntryKind::SeedBug), "{protocol}: no seed bug");
        assert!(entries.iter().any(|e| e.kind == EntryKind::Mutant), "{protocol}: no mutant");
    }
}
