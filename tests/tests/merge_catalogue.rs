//! The merge-lock catalogue: every seed bug and mutant is still found, with its counterexample
//! length pinned, and the fixed protocol keeps the property in the very world that shows it.

lockstep_tests::catalogue_tests!("merge" {
    seed_lockfree_double_merge: "merge/lockfree-double-merge" => Steps(8);
    seed_write_lost_behind_tail: "merge/write-lost-behind-tail" => Steps(8);
    seed_head_lag_wedges_lock: "merge/head-lag-wedges-lock" => Steps(3);
    seed_crash_before_tail_move_merges_twice: "merge/crash-before-tail-move-merges-twice" => Steps(14);
    seed_zombie_unlock_frees_new_holder: "merge/zombie-unlock-frees-new-holder" => Steps(12);
    seed_blind_put_lock_excludes_nothing: "merge/blind-put-lock-excludes-nothing" => Steps(4);
    seed_vacate_tail_lock_stuck_forever: "merge/vacate-tail-lock-stuck-forever" => Steps(2);
    mutant_lock_blind_put: "merge/mutant-lock-blind-put" => Steps(4);
    mutant_append_without_scan: "merge/mutant-append-without-scan" => Steps(11);
    mutant_tail_to_own_cut: "merge/mutant-tail-to-own-cut" => Steps(14);
    mutant_no_recovery: "merge/mutant-no-recovery" => Steps(3);
    mutant_blind_unlock: "merge/mutant-blind-unlock" => Steps(11);
    mutant_blind_tail_move: "merge/mutant-blind-tail-move" => Steps(24);
    mutant_no_lock_read_back: "merge/mutant-no-lock-read-back" => Steps(3);
    mutant_skip_conflict_check: "merge/mutant-skip-conflict-check" => Steps(6);
    mutant_check_before_append: "merge/mutant-check-before-append" => Steps(6);
    mutant_lock_never_free: "merge/mutant-lock-never-free" => Unreached { unique_states: 6180 };
});
