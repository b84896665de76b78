//! The path-lock catalogue: every seed bug, regression and mutant is still found, with its
//! counterexample length pinned (or, for a `sometimes` property, the size of the search that
//! shows no witness), and the fixed protocol keeps the property in the very world that shows it.

lockstep_tests::catalogue_tests!("lock" {
    seed_same_path_double_grant: "lock/same-path-double-grant" => Steps(6);
    seed_stale_delete_removes_refreshed_lock: "lock/stale-delete-removes-refreshed-lock" => Steps(8);
    seed_release_after_steal: "lock/release-after-steal-deletes-new-owner" => Steps(9);
    seed_refresh_resurrects: "lock/refresh-resurrects-stolen-lock" => Steps(9);
    seed_zombie_write_accepted: "lock/zombie-write-accepted" => Steps(9);
    seed_zero_byte_lock_reads_unlocked: "lock/zero-byte-lock-reads-unlocked" => Steps(8);
    seed_root_subtree_never_seen: "lock/root-subtree-never-seen" => Steps(8);
    seed_clock_skew_steals_live_lock: "lock/clock-skew-steals-live-lock" => Steps(8);
    seed_mv_opposite_order_deadlock: "lock/mv-opposite-order-deadlock" => Steps(8);
    seed_mv_opposite_order_both_time_out: "lock/mv-opposite-order-both-time-out" => Steps(8);
    seed_fail_open_read_double_grant: "lock/fail-open-read-double-grant" => Steps(6);
    seed_unremovable_stale_lock_spins: "lock/unremovable-stale-lock-spins" => Steps(7);
    regression_later_entry_hides_grant: "lock/old-fixed-later-entry-hides-grant" => Steps(18);
    regression_withdraw_hides_release: "lock/old-fixed-withdraw-hides-release" => Steps(21);
    regression_mv_waits_for_older_contender: "lock/old-fixed-mv-waits-for-older-contender" => Steps(14);
    regression_backoff_release_livelock: "lock/old-fixed-backoff-release-livelock" => Steps(21);
    regression_expired_entry_renewed: "lock/old-fixed-expired-entry-renewed" => Steps(16);
    mutant_skip_recheck: "lock/mutant-skip-recheck" => Steps(10);
    mutant_wallclock_expiry: "lock/mutant-wallclock-expiry" => Steps(10);
    mutant_fail_open_read: "lock/mutant-fail-open-read" => Steps(14);
    mutant_resource_ignores_tokens: "lock/mutant-resource-ignores-tokens" => Steps(15);
    mutant_resource_ignores_tokens_witness: "lock/mutant-resource-ignores-tokens-witness" => Unreached { unique_states: 841 };
    mutant_no_ticket_check: "lock/mutant-no-ticket-check" => Steps(19);
    mutant_blind_release: "lock/mutant-blind-release" => Steps(13);
    mutant_blind_withdraw: "lock/mutant-blind-withdraw" => Steps(10);
    mutant_create_then_write: "lock/mutant-create-then-write" => Steps(5);
    mutant_entry_bytes_not_synced: "lock/mutant-entry-bytes-not-synced" => Steps(5);
    mutant_ticket_not_synced: "lock/mutant-ticket-not-synced" => Steps(18);
    mutant_wait_for_empty_deadlock: "lock/mutant-wait-for-empty-deadlock" => Steps(10);
    mutant_hint_only_deadlock: "lock/mutant-hint-only-deadlock" => Steps(11);
    mutant_kept_ticket_unchecked: "lock/mutant-kept-ticket-unchecked" => Steps(25);
    mutant_both_withdraw: "lock/mutant-both-withdraw" => Steps(30);
    mutant_uncounted_restart: "lock/mutant-uncounted-restart" => Steps(12);
    mutant_gc_while_active: "lock/mutant-gc-while-active" => Steps(12);
    mutant_gc_resets_tickets: "lock/mutant-gc-resets-tickets" => Steps(18);
    mutant_wait_for_empty: "lock/mutant-wait-for-empty" => Unreached { unique_states: 99 };
    mutant_no_takeover: "lock/mutant-no-takeover" => Unreached { unique_states: 1048 };
    mutant_point_verify_by_ticket: "lock/mutant-point-verify-by-ticket" => Unreached { unique_states: 8896 };
    mutant_descendant_scan_includes_self_subtree: "lock/mutant-descendant-scan-includes-self-subtree" => Unreached { unique_states: 4762 };
    mutant_descendant_scan_includes_self_mv: "lock/mutant-descendant-scan-includes-self-mv" => Unreached { unique_states: 4762 };
});

/// A mutant the checker cannot tell from the fixed protocol, asserted so the claim stays true:
/// the guarded write's lease check is an optimisation, and fencing is what makes a late write
/// safe. Without the check a holder whose lease ran out still writes, and the resource accepts
/// that write only if no newer holder wrote first (`fencing`, `live holder never fenced` hold).
#[test]
fn the_lease_check_is_not_needed_for_safety() {
    use lockstep_model::check::{check, CheckOptions};
    use lockstep_model::lock::{LockConfig, LockModel, Mutation, Variant};
    let config = LockConfig {
        tree: ["/", "/a", "/c"].map(String::from).to_vec(),
        ..LockConfig::new(Variant::Fixed(Some(Mutation::NoLeaseCheck)))
    };
    let report = check(&LockModel::new(config).unwrap(), &CheckOptions::default());
    assert!(
        report.proven(),
        "the lease check became load-bearing: {report:#?}"
    );
}
