//! The redo-log model's verdicts: the fixed protocol is proven in its default world (state count
//! and depth pinned), the seed fails, and every property is broken by some catalogue entry.

use std::time::Duration;

use lockstep_model::check::{check, CheckOptions, Found, ShortestSearch};
use lockstep_model::redo::{presets, RedoConfig, RedoModel, RedoVariant};
use stateright::Model;

fn options() -> CheckOptions {
    CheckOptions {
        timeout: Some(Duration::from_secs(600)),
        ..CheckOptions::default()
    }
}

#[test]
fn fixed_is_proven_in_every_default_world() {
    for preset in presets().into_iter().filter(|p| p.default) {
        let report = check(&RedoModel::new(preset.config).unwrap(), &options());
        assert!(report.proven(), "{}: {report:#?}", preset.name);
        let pinned = match preset.name {
            "two-committers" => (3_223_081, 55),
            "no-session-lock" => (903_423, 49),
            "lease-loss" => (882_189, 56),
            "worker-lease-loss" => (2_857_658, 55),
            other => panic!("no figures pinned for {other}"),
        };
        assert_eq!(
            (report.unique_states, report.max_depth),
            pinned,
            "{}",
            preset.name
        );
    }
}

#[test]
fn seed_fails_at_small_bounds() {
    let config = RedoConfig {
        committers: 2,
        messages: 2,
        crashes: 1,
        restarts: 1,
        ..RedoConfig::new(RedoVariant::Seed)
    };
    let report = check(&RedoModel::new(config).unwrap(), &options());
    for name in [
        "no message lost",
        "no memory lost",
        "memories from one extraction",
        "effect applied once",
        "recovery idempotent",
    ] {
        assert_eq!(
            report.property(name).unwrap().holds,
            Some(false),
            "the seed should break {name}"
        );
    }
}

/// `lockstep check redo --variant seed` at the default bounds: the shortest-counterexample
/// phase used to grow past 19 GB. It now stays within a memory budget, and every failure gets
/// a counterexample labelled with how it was found.
#[test]
fn seed_at_the_default_bounds_finishes_in_bounded_memory() {
    let budget = lockstep_model::check::resident_bytes().unwrap() + (1 << 30);
    let model = RedoModel::new(RedoConfig::new(RedoVariant::Seed)).unwrap();
    let report = check(
        &model,
        &CheckOptions {
            max_memory_bytes: Some(budget),
            ..options()
        },
    );
    assert!(report.failed());
    for property in report
        .properties
        .iter()
        .filter(|p| p.holds == Some(false) && p.kind == "always")
    {
        assert!(
            property.counterexample.is_some(),
            "{} has no counterexample",
            property.name
        );
        assert!(matches!(
            property.found_by,
            Some(Found::Shortest | Found::DepthFirst)
        ));
    }
    assert!(
        report.memory_bytes.unwrap() < budget + (256 << 20),
        "memory {:?} beyond the budget",
        report.memory_bytes
    );
    let _ = ShortestSearch {
        progress: None,
        budget: Default::default(),
    };
}

#[test]
fn every_property_has_a_breaking_entry() {
    let model = RedoModel::new(RedoConfig::new(RedoVariant::Fixed(None))).unwrap();
    let broken: Vec<&str> = lockstep_model::entries(Some("redo"))
        .iter()
        .map(|e| e.property)
        .collect();
    for property in model.properties() {
        assert!(
            broken.contains(&property.name),
            "no entry breaks redo \"{}\"",
            property.name
        );
    }
}
