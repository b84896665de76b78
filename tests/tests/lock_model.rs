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
