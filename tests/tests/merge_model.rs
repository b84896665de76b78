//! The merge-lock model's verdicts: the fixed protocol is proven in its default world (state
//! count and depth pinned), the seeds fail there, and every property is broken by some
//! catalogue entry (none passes vacuously).

use std::time::Duration;

use lockstep_model::check::{check, CheckOptions};
use lockstep_model::merge::{presets, MergeConfig, MergeModel, MergeVariant};
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
        let report = check(&MergeModel::new(preset.config).unwrap(), &options());
        assert!(report.proven(), "{}: {report:#?}", preset.name);
        let pinned = match preset.name {
            "three-mergers" => (2_450_814, 34),
            "ambiguous" => (2_735_205, 37),
            "two-children" => (1_469_940, 35),
            other => panic!("no pinned count for default world {other}"),
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
fn seeds_fail_in_the_default_world() {
    for (variant, broken) in [
        (
            MergeVariant::Seed,
            &[
                "exactly once",
                "consistent pointers",
                "crash recovery",
                "zombie cannot complete",
            ][..],
        ),
        (
            MergeVariant::SeedLockFree,
            &["one merger", "exactly once", "consistent pointers"][..],
        ),
        (MergeVariant::SeedBlindPut, &["one merger"][..]),
        (MergeVariant::SeedVacate, &["crash recovery"][..]),
    ] {
        let report = check(
            &MergeModel::new(MergeConfig::new(variant)).unwrap(),
            &options(),
        );
        for name in broken {
            assert_eq!(
                report.property(name).unwrap().holds,
                Some(false),
                "{} should break {name}",
                variant.name()
            );
        }
    }
}

#[test]
fn every_property_has_a_breaking_entry() {
    let model = MergeModel::new(MergeConfig::new(MergeVariant::Fixed(None))).unwrap();
    let broken: Vec<&str> = lockstep_model::entries(Some("merge"))
        .iter()
        .map(|e| e.property)
        .collect();
    for property in model.properties() {
        assert!(
            broken.contains(&property.name),
            "no entry breaks merge \"{}\"",
            property.name
        );
    }
}
