//! The path-lock model's verdicts.
//!
//! Goal: the fixed protocol is proven (complete search, every property holds) at the default
//! bounds; every catalogued seed bug and mutant is still found, with the counterexample length
//! pinned (a changed length is a changed spec, and shows in review); and the fixed protocol holds
//! the very property each bug breaks, in the very world that shows the bug.

use std::time::Duration;

use lockstep_model::bugs::{self, EntryKind};
use lockstep_model::check::{check, CheckOptions};
use lockstep_model::lock::{LockConfig, LockModel, Variant};

fn fixed_with_tree(tree: &[&str]) -> LockModel {
    let mut config = LockConfig::new(Variant::Fixed(None));
    config.tree = tree.iter().map(|s| s.to_string()).collect();
    LockModel::new(config).unwrap()
}

/// The exact state counts of a mid-sized world. A change here is a change of the model.
#[test]
fn fixed_state_space_is_pinned() {
    let model = fixed_with_tree(&["/", "/a", "/a/b"]);
    let report = check(&model, &CheckOptions::default());
    assert!(report.proven(), "{report:#?}");
    assert_eq!(report.unique_states, 1_303_111);
    assert_eq!(report.max_depth, 46);
}

/// Symmetry reduction merges states; it must not change any verdict.
#[test]
fn symmetry_reduction_changes_no_verdict() {
    let model = fixed_with_tree(&["/", "/a", "/a/b"]);
    let reduced = check(&model, &CheckOptions::default());
    let full = check(&model, &CheckOptions { no_symmetry: true, ..CheckOptions::default() });
    assert!(full.unique_states > reduced.unique_states);
    let verdicts = |r: &lockstep_model::check::Report| r.properties.iter().map(|p| (p.name, p.holds)).collect::<Vec<_>>();
    assert!(full.proven() && reduced.proven());
    assert_eq!(verdicts(&reduced), verdicts(&full));
    assert_eq!(full.unique_states, 1_555_137);
}

/// `lockstep check lock` at its default bounds proves the fixed protocol (README's table).
#[test]
fn fixed_is_proven_at_the_default_bounds() {
    let model = LockModel::new(LockConfig::new(Variant::Fixed(None))).unwrap();
    let report = check(&model, &CheckOptions { timeout: Some(Duration::from_secs(600)), ..CheckOptions::default() });
    assert!(report.complete, "the search must be exhaustive: {:?}", report.stop_reason);
    for property in &report.properties {
        assert_eq!(property.holds, Some(true), "{} fails: {:?}", property.name, property.counterexample);
    }
    assert_eq!(report.unique_states, 27_358_245);
}

/// The seed fails at the default bounds too (not only in the catalogue's small worlds).
#[test]
fn seed_fails_at_the_default_bounds() {
    let model = LockModel::new(LockConfig::new(Variant::Seed)).unwrap();
    let report = check(&model, &CheckOptions { timeout: Some(Duration::from_secs(300)), ..CheckOptions::default() });
    for name in ["mutual exclusion", "fencing", "aba safety"] {
        let property = report.property(name).unwrap();
        assert_eq!(property.holds, Some(false), "seed should break {name}");
        assert!(property.counterexample.as_ref().is_some_and(|t| !t.is_empty()));
    }
}

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
}

/// Every property of the model is broken by at least one catalogue entry: none passes vacuously.
#[test]
fn every_property_has_a_breaking_entry() {
    use stateright::Model;
    let model = LockModel::new(LockConfig::new(Variant::Fixed(None))).unwrap();
    let broken: Vec<&str> = bugs::entries(Some("lock")).iter().map(|e| e.property).collect();
    for property in model.properties() {
        assert!(broken.contains(&property.name), "no seed bug or mutant breaks \"{}\"", property.name);
    }
    let mutants = bugs::entries(Some("lock")).iter().filter(|e| e.kind == EntryKind::Mutant).count();
    assert!(mutants >= model.properties().len() - 3, "expected a mutant for nearly every property");
}
