//! Every planted implementation bug (`lockstep::mutants::Mutant::ALL`) has at least one harness
//! that catches it, as the model catalogue has for model properties: a mutant no test switches on
//! proves nothing about any harness. The table names each catching test; this checks that the
//! test exists where it says, is not ignored, and switches that very mutant on.

use lockstep::mutants::Mutant;

/// (mutant, file under the workspace, test function).
const CATCHERS: &[(Mutant, &str, &str)] = &[
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
];

/// The source of `function` in `source` (from its `fn` line to the first line that closes it at
/// the same indentation), and the attribute and doc lines just above it.
fn function<'a>(source: &'a str, function: &str) -> Option<(&'a str, Vec<&'a str>)> {
    let header = source.find(&format!("fn {function}("))?;
    let line_start = source[..header].rfind('\n').map_or(0, |i| i + 1);
    let indent = &source[line_start..header];
    let indent = &indent[..indent.len() - indent.trim_start().len()];
    let end = source[header..]
        .find(&format!("\n{indent}}}\n"))
        .map_or(source.len(), |i| header + i);
    let attributes = source[..line_start]
        .lines()
        .rev()
        .take_while(|l| l.trim_start().starts_with("#[") || l.trim_start().starts_with("///"))
        .collect();
    Some((&source[header..end], attributes))
}

fn variant(mutant: Mutant) -> String {
    format!("Mutant::{mutant:?}")
}

#[test]
fn every_mutant_has_a_catching_harness() {
    for mutant in Mutant::ALL {
        assert!(
            CATCHERS.iter().any(|(m, ..)| *m == mutant),
            "no harness is listed as catching {}",
            mutant.name()
        );
    }
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    for (mutant, file, test) in CATCHERS {
        let source = std::fs::read_to_string(format!("{root}/{file}"))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let (body, attributes) =
            function(&source, test).unwrap_or_else(|| panic!("{file} has no fn {test}"));
        assert!(
            attributes.iter().any(|l| l.trim() == "#[test]"),
            "{file}: {test} is not a #[test]"
        );
        assert!(
            !attributes.iter().any(|l| l.contains("#[ignore")),
            "{file}: {test} is ignored"
        );
        assert!(
            body.contains(&variant(*mutant)) || body.contains(&format!("\"{}\"", mutant.name())),
            "{file}: {test} does not switch on {} ({})",
            mutant.name(),
            variant(*mutant)
        );
    }
}

/// The check above can fail: a mutant named by no test's body is reported.
#[test]
fn the_check_sees_a_test_that_switches_on_another_mutant() {
    let source =
        "#[test]\nfn catches() {\n    let _one = exclusive(Some(Mutant::SkipRecheck));\n}\n";
    let (body, attributes) = function(source, "catches").unwrap();
    assert_eq!(attributes, ["#[test]"]);
    assert!(body.contains(&variant(Mutant::SkipRecheck)));
    assert!(!body.contains(&variant(Mutant::NoHighWater)));
    let ignored_source = "#[test]\n#[ignore]\nfn catches() {\n}\n";
    assert!(function(ignored_source, "catches")
        .unwrap()
        .1
        .iter()
        .any(|l| l.contains("#[ignore")));
}
