//! The merge-lock and redo-log models' verdicts: the fixed protocols are proven at the default
//! bounds of `lockstep check` (state counts pinned), the seeds fail there too, and every property
//! is broken by some catalogue entry (none passes vacuously).

use std::time::Duration;

use lockstep_model::bugs;
use lockstep_model::check::{check, CheckOptions, Report};
use lockstep_model::merge::{MergeConfig, MergeModel, MergeVariant};
use lockstep_model::redo::{RedoConfig, RedoModel, RedoVariant};
use stateright::Model;

fn options() -> CheckOptions {
    CheckOptions { timeout: Some(Duration::from_secs(600)), ..CheckOptions::default() }
}

fn assert_proven(report: &Report) {
    assert!(report.complete, "the search must be exhaustive: {:?}", report.stop_reason);
    for property in &report.properties {
        assert_eq!(property.holds, Some(true), "{} fails: {:?}", property.name, property.counterexample);
    }
}

#[test]
fn merge_fixed_is_proven_at_the_default_bounds() {
    let model = MergeModel::new(MergeConfig::new(MergeVariant::Fixed(None))).unwrap();
    let report = check(&model, &options());
    assert_proven(&report);
    assert_eq!(report.unique_states, 3_697_086);
}

#[test]
fn redo_fixed_is_proven_at_the_default_bounds() {
    let model = RedoModel::new(RedoConfig::new(RedoVariant::Fixed(None))).unwrap();
    let report = check(&model, &options());
    assert_proven(&report);
    assert_eq!(report.unique_states, 2_730_384);
}

#[test]
fn merge_seeds_fail_at_the_default_bounds() {
    for (variant, broken) in [
        (MergeVariant::Seed, &["exactly once", "consistent pointers", "crash recovery", "zombie cannot complete"][..]),
        (MergeVariant::SeedLockFree, &["one merger", "exactly once", "consistent pointers"][..]),
        (MergeVariant::SeedBlindPut, &["one merger"][..]),
    ] {
        let model = MergeModel::new(MergeConfig::new(variant)).unwrap();
        let report = check(&model, &options());
        for name in broken {
            assert_eq!(report.property(name).unwrap().holds, Some(false), "{} should break {name}", variant.name());
        }
    }
}

#[test]
fn redo_seed_fails_at_small_bounds() {
    let config = RedoConfig { committers: 2, messages: 2, crashes: 1, restarts: 1, ..RedoConfig::new(RedoVariant::Seed) };
    let report = check(&RedoModel::new(config).unwrap(), &options());
    for name in ["no message lost", "no memory lost", "no duplicate memories", "effect applied once", "recovery idempotent"] {
        assert_eq!(report.property(name).unwrap().holds, Some(false), "the seed should break {name}");
    }
}

#[test]
fn every_merge_and_redo_property_has_a_breaking_entry() {
    let merge = MergeModel::new(MergeConfig::new(MergeVariant::Fixed(None))).unwrap();
    let redo = RedoModel::new(RedoConfig::new(RedoVariant::Fixed(None))).unwrap();
    let names = |protocol| bugs::entries(Some(protocol)).iter().map(|e| e.property).collect::<Vec<_>>();
    for property in merge.properties() {
        assert!(names("merge").contains(&property.name), "no entry breaks merge \"{}\"", property.name);
    }
    for property in redo.properties() {
        assert!(names("redo").contains(&property.name), "no entry breaks redo \"{}\"", property.name);
    }
}
