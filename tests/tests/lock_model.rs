//! The path-lock model's verdicts.
//!
//! Goal: the fixed protocol is proven (complete search, every property holds) in every default
//! world of `lockstep check` and in the worlds just outside them where earlier protocols failed
//! (three clients; a positive lock_timeout; lock_timeout 0); state counts and depths are pinned
//! (a changed count is a changed spec, and shows in review); every property is broken by some
//! catalogue entry; and the checker's budgets stop a search cleanly.

use std::time::{Duration, Instant};

use lockstep_model::catalogue::EntryKind;
use lockstep_model::check::{
    check, resident_bytes, Budget, CheckOptions, Cut, Report, Search, ShortestSearch, StopReason,
};
use lockstep_model::lock::{presets, ClientSpec, LockConfig, LockModel, ModeSet, Timeout, Variant};
use stateright::Model;

fn options() -> CheckOptions {
    CheckOptions {
        timeout: Some(Duration::from_secs(900)),
        ..CheckOptions::default()
    }
}

fn assert_proven(report: &Report) {
    assert!(
        report.complete,
        "the search must be exhaustive: {:?}",
        report.stop_reason
    );
    for property in &report.properties {
        assert_eq!(
            property.holds,
            Some(true),
            "{} fails: {}",
            property.name,
            property
                .counterexample
                .as_ref()
                .map(|t| t.to_string())
                .unwrap_or_default()
        );
    }
}

fn preset(name: &str) -> LockConfig {
    presets()
        .into_iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no preset {name}"))
        .config
}

fn proven(config: LockConfig) -> Report {
    let report = check(&LockModel::new(config).unwrap(), &options());
    assert_proven(&report);
    report
}

fn tree(paths: &[&str]) -> Vec<String> {
    paths.iter().map(|s| s.to_string()).collect()
}

fn with_timeout(config: LockConfig, timeout: Timeout) -> LockConfig {
    let clients = config
        .clients
        .iter()
        .map(|c| ClientSpec { timeout, ..*c })
        .collect();
    LockConfig { clients, ..config }
}

/// The default worlds of `lockstep check lock` (README's table), each proven with its count.
#[test]
fn default_world_two_clients_is_proven() {
    let report = proven(preset("two-clients"));
    assert_eq!((report.unique_states, report.max_depth), (9_842_550, 66));
}

#[test]
fn default_world_three_clients_is_proven() {
    let report = proven(preset("three-clients"));
    assert_eq!((report.unique_states, report.max_depth), (57_791_663, 89));
}

#[test]
fn default_world_three_clients_crash_is_proven() {
    let report = proven(preset("three-clients-crash"));
    assert_eq!((report.unique_states, report.max_depth), (5_073_746, 65));
}

#[test]
fn default_world_faults_is_proven() {
    let report = proven(preset("faults"));
    assert_eq!((report.unique_states, report.max_depth), (8_141_497, 54));
}

#[test]
fn default_world_bounded_is_proven() {
    let report = proven(preset("bounded"));
    assert_eq!((report.unique_states, report.max_depth), (20_112_630, 57));
}

/// A lease lost while its client runs on (etcd's owner leases: specs/backends.md): the store
/// proves the client dead, recovery and acquirers act on it, and fencing stops the zombie.
#[test]
fn default_world_lease_loss_is_proven() {
    let report = proven(preset("lease-loss"));
    assert_eq!((report.unique_states, report.max_depth), (2_863_880, 54));
}

/// A power loss (specs/lock.md §12): every running client restarts, and entries written since
/// their journal was last synced may be lost.
#[test]
fn default_world_power_loss_is_proven() {
    let report = proven(preset("power-loss"));
    assert_eq!((report.unique_states, report.max_depth), (18_727_173, 79));
}

/// The lease-loss world exercises what it claims: a client whose lease was lost runs on, and its
/// later write is rejected by fencing (found by a breadth-first search of the world).
#[test]
fn a_lost_lease_leads_to_a_rejected_zombie_write() {
    use lockstep_model::lock::LockAction;
    use stateright::Model;
    let model = preset("lease-loss").into_model().unwrap();
    let mut queue: std::collections::VecDeque<_> = model.init_states().into();
    let mut seen = std::collections::HashSet::new();
    while let Some(state) = queue.pop_front() {
        assert!(seen.len() < 1_000_000, "not found within a million states");
        let mut actions = Vec::new();
        model.actions(&state, &mut actions);
        for action in actions {
            let Some(next) = model.next_state(&state, action) else {
                continue;
            };
            if let LockAction::Step(c) = action {
                let me = &next.clients[c as usize];
                if me.lease_lost && !state.stale_write_rejected && next.stale_write_rejected {
                    return;
                }
            }
            if seen.insert(next.clone()) {
                queue.push_back(next);
            }
        }
    }
    panic!("no zombie write after a lost lease was rejected");
}

/// `lockstep check` runs at least one three-client world of the path locks.
#[test]
fn the_default_check_includes_three_clients() {
    assert!(presets()
        .iter()
        .any(|p| p.default && p.config.clients.len() == 3));
}

/// The world in which our previous protocol fenced a granted holder (issue 8 §1.1):
/// `lockstep check lock --clients 3 --tree /,/a --modes point,subtree --crashes 0
/// --force-releases 0 --reaps 0 --ticks 0 --renewals 0`.
fn three_client_finding_world() -> LockConfig {
    LockConfig {
        tree: tree(&["/", "/a"]),
        modes: ModeSet {
            point: true,
            subtree: true,
            mv: false,
        },
        crashes: 0,
        force_releases: 0,
        reaps: 0,
        ticks: 0,
        ..LockConfig::new(Variant::Fixed(None)).with_clients(3)
    }
    .with_renewals(0)
}

#[test]
fn the_three_client_finding_holds_now() {
    let report = proven(three_client_finding_world());
    assert_eq!((report.unique_states, report.max_depth), (240_412, 50));
}

#[test]
fn the_three_client_finding_fails_the_old_protocol() {
    let config = LockConfig {
        variant: Variant::Fixed(Some(lockstep_model::lock::Mutation::NoHighWater)),
        ..three_client_finding_world()
    };
    let report = check(&LockModel::new(config).unwrap(), &options());
    let property = report.property("live holder never fenced").unwrap();
    assert_eq!(property.holds, Some(false));
    assert_eq!(property.counterexample.as_ref().unwrap().len(), 18);
}

/// The world in which a positive lock_timeout livelocked (issue 8 §1.2):
/// `lockstep check lock --tree /,/a,/c --timeout bounded` (the `bounded` preset).
#[test]
fn the_bounded_timeout_finding_holds_now() {
    let config = with_timeout(
        LockConfig {
            tree: tree(&["/", "/a", "/c"]),
            ..LockConfig::new(Variant::Fixed(None))
        },
        Timeout::Bounded,
    );
    let report = proven(config);
    assert_eq!(report.unique_states, 20_112_630);
}

/// lock_timeout 0 in the same world: fail fast, and everything else holds.
#[test]
fn a_zero_timeout_world_is_proven() {
    let config = with_timeout(
        LockConfig {
            tree: tree(&["/", "/a", "/c"]),
            ..LockConfig::new(Variant::Fixed(None))
        },
        Timeout::Zero,
    );
    let report = proven(config);
    assert_eq!((report.unique_states, report.max_depth), (9_686_699, 50));
}

/// Symmetry reduction merges states; it must not change any verdict.
#[test]
fn symmetry_reduction_changes_no_verdict() {
    let config = LockConfig {
        tree: tree(&["/", "/a", "/a/b"]),
        ..LockConfig::new(Variant::Fixed(None))
    };
    let model = LockModel::new(config).unwrap();
    let reduced = check(&model, &CheckOptions::default());
    let full = check(
        &model,
        &CheckOptions {
            no_symmetry: true,
            ..CheckOptions::default()
        },
    );
    assert!(full.unique_states > reduced.unique_states);
    let verdicts = |r: &Report| {
        r.properties
            .iter()
            .map(|p| (p.name, p.holds))
            .collect::<Vec<_>>()
    };
    assert!(full.proven() && reduced.proven());
    assert_eq!(verdicts(&reduced), verdicts(&full));
    assert_eq!(
        (reduced.unique_states, full.unique_states),
        (1_764_784, 2_092_859)
    );
}

/// The seed fails in the default world too (not only in the catalogue's small worlds).
#[test]
fn seed_fails_in_the_default_world() {
    let model = LockModel::new(LockConfig::new(Variant::Seed)).unwrap();
    let report = check(
        &model,
        &CheckOptions {
            timeout: Some(Duration::from_secs(300)),
            ..CheckOptions::default()
        },
    );
    for name in ["mutual exclusion", "fencing", "aba safety"] {
        let property = report.property(name).unwrap();
        assert_eq!(property.holds, Some(false), "seed should break {name}");
        assert!(property
            .counterexample
            .as_ref()
            .is_some_and(|t| !t.is_empty() && t.conclusion.is_some()));
    }
}

/// Every property of the model is broken by at least one catalogue entry: none passes vacuously.
#[test]
fn every_property_has_a_breaking_entry() {
    let model = LockModel::new(LockConfig::new(Variant::Fixed(None))).unwrap();
    let entries = lockstep_model::entries(Some("lock"));
    let broken: Vec<&str> = entries.iter().map(|e| e.property).collect();
    for property in model.properties() {
        assert!(
            broken.contains(&property.name),
            "no seed bug or mutant breaks \"{}\"",
            property.name
        );
    }
    for kind in [EntryKind::SeedBug, EntryKind::Regression, EntryKind::Mutant] {
        assert!(
            entries.iter().any(|e| e.kind == kind),
            "no lock entry of kind {kind:?}"
        );
    }
}

/// A memory budget stops the depth-first search cleanly: the report says so and claims nothing.
#[test]
fn a_memory_budget_stops_the_search_cleanly() {
    let budget = resident_bytes().expect("Linux /proc") + (24 << 20);
    let model = LockModel::new(preset("three-clients-wide")).unwrap();
    let started = Instant::now();
    let report = check(
        &model,
        &CheckOptions {
            max_memory_bytes: Some(budget),
            timeout: Some(Duration::from_secs(600)),
            ..CheckOptions::default()
        },
    );
    assert_eq!(
        report.stop_reason,
        StopReason::MemoryLimit,
        "stopped after {:?}",
        started.elapsed()
    );
    assert!(!report.complete);
    assert!(
        report
            .properties
            .iter()
            .all(|p| p.holds != Some(true) || p.kind == "sometimes"),
        "nothing is proven by a cut search"
    );
}

/// The same budget stops the breadth-first search for a shortest counterexample.
#[test]
fn a_memory_budget_stops_the_shortest_counterexample_search() {
    let budget = resident_bytes().expect("Linux /proc") + (8 << 20);
    // A property that holds, so the search must cover the whole space to end on its own.
    let model = LockModel::new(preset("two-clients")).unwrap();
    let search = ShortestSearch {
        progress: None,
        budget: Budget::new(None, Some(budget)),
    };
    match search.run(&model, "mutual exclusion", None) {
        Search::OutOfBudget(Cut::Memory) => {}
        other => panic!("expected the memory budget to stop the search, got {other:?}"),
    }
}

/// Regrouping a shortest counterexample (`check::regroup`, which every printed and drawn
/// counterexample goes through) leaves a behaviour of the model: it starts in an initial state,
/// every step is enabled where it is taken and reaches the next state, the property holds until
/// the last state and fails there, and the length is unchanged. It never adds switches between
/// actors, and in the seed's default world it removes some.
#[test]
fn regrouped_counterexamples_are_behaviours_of_the_model() {
    use lockstep_model::check::{regroup, Protocol};
    use lockstep_model::trace::switches;
    let model = LockModel::new(LockConfig::new(Variant::Seed)).unwrap();
    let mut improved = 0;
    for name in ["mutual exclusion", "aba safety", "fencing"] {
        let search = ShortestSearch {
            progress: None,
            budget: Budget::until(Instant::now() + Duration::from_secs(300)),
        };
        let Search::Found(path) = search.run(&model, name, None) else {
            panic!("the seed breaks {name}");
        };
        // Without the property guard: a shortest counterexample needs none.
        let regrouped = regroup(&model, &path, None, None);
        assert!(
            regrouped.fewest,
            "{name}: the exact search did not complete"
        );
        let (regrouped, before) = (regrouped.path, regrouped.before);
        assert_eq!(regrouped.len(), path.len(), "{name}: the length changed");
        assert_eq!(
            regrouped.last().unwrap().0,
            path.last().unwrap().0,
            "{name}: another end"
        );
        assert!(
            model.init_states().contains(&regrouped[0].0),
            "{name}: not an initial state"
        );
        let property = model
            .properties()
            .into_iter()
            .find(|p| p.name == name)
            .unwrap();
        for (i, pair) in regrouped.windows(2).enumerate() {
            let action = pair[0]
                .1
                .clone()
                .expect("every step but the last has an action");
            let mut enabled = Vec::new();
            model.actions(&pair[0].0, &mut enabled);
            assert!(
                enabled.contains(&action),
                "{name}: step {} is not enabled",
                i + 1
            );
            assert_eq!(
                model.next_state(&pair[0].0, action).as_ref(),
                Some(&pair[1].0),
                "{name}: step {}",
                i + 1
            );
            assert!(
                (property.condition)(&model, &pair[0].0),
                "{name}: broken before the end, at state {i}"
            );
        }
        assert!(
            !(property.condition)(&model, &regrouped.last().unwrap().0),
            "{name}: not broken at the end"
        );
        let actors = |p: &[(_, _)]| -> usize {
            let trace = model.trace(p);
            switches(trace.steps.iter().map(|s| s.actor.as_str()))
        };
        assert_eq!(actors(&path), before, "{name}: the switches before");
        let after = actors(&regrouped);
        assert!(
            after <= before,
            "{name}: regrouping added switches ({before} → {after})"
        );
        if after < before {
            improved += 1;
        }
    }
    assert!(
        improved > 0,
        "regrouping changed none of the seed's counterexamples"
    );
}
