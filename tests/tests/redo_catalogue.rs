//! The redo-log catalogue: every seed bug and mutant is still found, with its counterexample
//! length pinned, and the fixed protocol keeps the property in the very world that shows it.

lockstep_tests::catalogue_tests!("redo" {
    seed_crash_before_marker_loses_phase2: "redo/crash-before-marker-loses-phase2" => Steps(6);
    seed_same_archive_index_overwrite: "redo/same-archive-index-overwrite" => Steps(9);
    seed_clear_drops_new_message: "redo/clear-drops-new-message" => Steps(6);
    seed_replay_writes_memories_twice: "redo/replay-writes-memories-twice" => Steps(11);
    seed_replay_of_commit_in_flight: "redo/replay-of-commit-in-flight" => Steps(11);
    seed_unreadable_marker_dropped: "redo/unreadable-marker-dropped" => Steps(8);
    seed_replay_enqueues_twice: "redo/replay-enqueues-twice" => Steps(19);
    seed_reload_before_clear_archives_twice: "redo/reload-before-clear-archives-twice" => Steps(7);
    seed_failed_enqueue_re_extracts: "redo/failed-enqueue-re-extracts" => Steps(14);
    seed_lock_held_by_dead_committer_blocks_commits: "redo/lock-held-by-dead-committer-blocks-commits" => Steps(5);
    seed_clear_before_archive_loses_messages: "redo/clear-before-archive-loses-messages" => Steps(6);
    regression_release_before_clear: "redo/regression-release-before-clear" => Steps(10);
    mutant_no_exclusion: "redo/mutant-no-exclusion" => Steps(10);
    mutant_index_from_memory: "redo/mutant-index-from-memory" => Steps(12);
    mutant_clear_all: "redo/mutant-clear-all" => Steps(8);
    mutant_archive_exists_is_theirs: "redo/mutant-archive-exists-is-theirs" => Steps(6);
    mutant_no_manifest: "redo/mutant-no-manifest" => Steps(13);
    mutant_keyed_memories: "redo/mutant-keyed-memories" => Steps(14);
    mutant_manifest_first: "redo/mutant-manifest-first" => Steps(10);
    mutant_skip_manifest_check: "redo/mutant-skip-manifest-check" => Steps(15);
    mutant_effect_not_keyed: "redo/mutant-effect-not-keyed" => Steps(18);
    mutant_effect_not_keyed_zombie_worker: "redo/mutant-effect-not-keyed-zombie-worker" => Steps(18);
    mutant_ack_before_apply: "redo/mutant-ack-before-apply" => Steps(20);
    mutant_keep_marker: "redo/mutant-keep-marker" => Steps(22);
    mutant_wait_for_dead_holder: "redo/mutant-wait-for-dead-holder" => Steps(2);
    mutant_item_keyed_by_index: "redo/mutant-item-keyed-by-index" => Steps(27);
    mutant_no_replay: "redo/mutant-no-replay" => Unreached { unique_states: 92_264 };
});
