//! The redo-log catalogue: every seed bug and mutant is still found, with its counterexample
//! length pinned, and the fixed protocol keeps the property in the very world that shows it.

lockstep_tests::catalogue_tests!("redo" {
    seed_crash_before_marker_loses_phase2: "redo/crash-before-marker-loses-phase2" => Steps(5);
    seed_same_archive_index_overwrite: "redo/same-archive-index-overwrite" => Steps(6);
    seed_replay_writes_memories_twice: "redo/replay-writes-memories-twice" => Steps(10);
    seed_replay_of_commit_in_flight: "redo/replay-of-commit-in-flight" => Steps(10);
    seed_unreadable_marker_dropped: "redo/unreadable-marker-dropped" => Steps(8);
    seed_replay_enqueues_twice: "redo/replay-enqueues-twice" => Steps(13);
    mutant_no_session_lock: "redo/mutant-no-session-lock" => Steps(7);
    mutant_index_from_memory: "redo/mutant-index-from-memory" => Steps(12);
    mutant_clear_all: "redo/mutant-clear-all" => Steps(7);
    mutant_marker_after_clear: "redo/mutant-marker-after-clear" => Steps(6);
    mutant_fresh_memory_ids: "redo/mutant-fresh-memory-ids" => Steps(12);
    mutant_fresh_memory_ids_replay: "redo/mutant-fresh-memory-ids-replay" => Steps(12);
    mutant_effect_not_keyed: "redo/mutant-effect-not-keyed" => Steps(15);
    mutant_ack_before_apply: "redo/mutant-ack-before-apply" => Steps(18);
    mutant_keep_marker: "redo/mutant-keep-marker" => Steps(23);
    mutant_no_replay: "redo/mutant-no-replay" => Unreached { unique_states: 1_679_208 };
});
