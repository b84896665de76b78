//! Replay files for the process-kill tests (`lockstep::replay` has the format).
//!
//! A driver's actions (commands run, processes spawned, killed and signalled, sleeps,
//! recoveries) follow from its seed alone: they are the steps of a replay file, kept in a
//! [`Plan`]. A rerun follows the same plan, each action compared with the file's before it is
//! taken; it stops at the first that differs, or where the file's plan ends. What the processes
//! did in between is timing, which no rerun replays: a rerun that follows the whole plan without
//! the failure is tried again, up to 3 times, before it is called not reproduced.

use std::cell::RefCell;
use std::rc::Rc;

use lockstep::replay::{self, Divergence, HarnessKind, Outcome, ReplayFile, TestTarget};

/// The driver's actions so far, and a replay file's to compare them with.
#[derive(Default)]
pub struct Plan {
    taken: RefCell<Vec<String>>,
    expected: Option<Vec<String>>,
}

impl Plan {
    /// A plan that follows a replay file's steps.
    pub fn following(expected: Vec<String>) -> Plan {
        Plan {
            taken: RefCell::new(Vec::new()),
            expected: Some(expected),
        }
    }

    /// Takes the driver's next action `step`: where the file's step differs, or the file has
    /// ended, the run stops here (a `Divergence` panic, which [`play`] catches).
    pub fn step(&self, step: String) {
        let mut taken = self.taken.borrow_mut();
        taken.push(step);
        if let Some(expected) = &self.expected {
            // Only the new step: the ones before it were compared when they were taken.
            let at = taken.len() - 1;
            let divergence = replay::diverges_at(expected, at, &taken[at]).or_else(|| {
                // Past the file's plan, which ended at its failure: this try did not fail there.
                (taken.len() > expected.len()).then(|| Divergence {
                    step: taken.len(),
                    expected: None,
                    actual: taken.last().cloned(),
                })
            });
            if let Some(divergence) = divergence {
                taken.pop();
                drop(taken);
                std::panic::panic_any(divergence);
            }
        }
    }

    /// Sleeps `ms` milliseconds, a step of the plan (its length comes from the seed).
    pub fn sleep_ms(&self, ms: u64) {
        self.step(format!("sleep {ms} ms"));
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }

    pub fn steps(&self) -> Vec<String> {
        self.taken.borrow().clone()
    }
}

/// Runs a driver, `Err` its failure (a checker's verdict, or a panic's message), and where it
/// left a replay file's plan.
pub fn play<T>(
    driver: impl FnOnce() -> Result<T, String>,
) -> (Result<T, String>, Option<Divergence>) {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(driver)) {
        Ok(result) => (result, None),
        Err(payload) => match payload.downcast::<Divergence>() {
            Ok(divergence) => (Err("diverged".into()), Some(*divergence)),
            Err(payload) => (
                Err(payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "(a panic without a message)".into())),
                None,
            ),
        },
    }
}

/// Writes the replay file of a failed run of `scenario` in test target `target` and returns the
/// line naming it.
#[allow(clippy::too_many_arguments)]
pub fn record(
    protocol: &str,
    target: &str,
    scenario: &str,
    seed: u64,
    rounds: usize,
    mutant: Option<&str>,
    plan: &Plan,
    failure: &str,
) -> String {
    // The scenarios run on a local store: the planted bugs need `mutants`, nothing needs etcd.
    let features = vec!["mutants".to_string()];
    let mut file = ReplayFile::new(
        HarnessKind::Processes,
        protocol,
        &format!("{target} {scenario}"),
        TestTarget {
            package: "lockstep".into(),
            target: target.into(),
            test: "replay_file".into(),
            features,
            target_dir: None,
        },
        serde_json::to_value(Case {
            scenario: scenario.into(),
            seed,
            rounds,
        })
        .expect("a case serialises"),
    );
    file.mutant = mutant.map(String::from);
    file.steps = plan.steps();
    file.failure = failure.into();
    replay::persist(&file, env!("CARGO_MANIFEST_DIR"))
}

/// A process case as a replay file keeps it.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Which of the target's driver scenarios ran.
    pub scenario: String,
    /// The seed the driver drew its plan from.
    pub seed: u64,
    pub rounds: usize,
}

/// The outcome of rerunning `file`: `run(case, plan)` plays the case following `plan` and
/// returns its failure, if any. Failures are compared by property (their messages name process
/// ids and times).
pub fn rerun(
    file: &ReplayFile,
    run: impl Fn(&Case, Option<&'static str>, Rc<Plan>) -> Result<(), String>,
) -> Outcome {
    let case: Case = serde_json::from_value(file.case.clone())
        .unwrap_or_else(|e| panic!("the case of {}: {e}", file.origin));
    let mutant: Option<&'static str> = file.mutant.clone().map(|m| &*m.leak());
    let mut outcome = Outcome::Passed;
    for _ in 0..3 {
        let plan = Rc::new(Plan::following(file.steps.clone()));
        let (result, divergence) = play(|| run(&case, mutant, Rc::clone(&plan)));
        outcome = match divergence {
            // The run went on past the file's plan: it did not fail where the file did.
            Some(d) if d.expected.is_none() => Outcome::of(file, &plan.steps(), None),
            Some(divergence) => return Outcome::Diverged { divergence },
            None => Outcome::of_by(
                file,
                &plan.steps(),
                result.err().as_deref(),
                replay::same_property,
            ),
        };
        // Another try where this one did not meet the file's failure (timing).
        if !matches!(outcome, Outcome::Passed | Outcome::FailedOtherwise { .. }) {
            break;
        }
    }
    outcome
}

/// The replay test of a process-kill target: reruns the file `lockstep replay` names, or else
/// the committed one (`committed_name` under tests/replays/, a case of a planted bug, which needs
/// the `mutants` feature to switch on in the processes). The edited step is the 4th, so that a
/// rerun of the edited file stops early.
pub fn replay_test(
    target: &str,
    committed_name: &str,
    perturb: impl Fn(&mut ReplayFile),
    run: impl Fn(&Case, Option<&'static str>, Rc<Plan>) -> Result<(), String>,
) {
    if !cfg!(feature = "mutants") && replay::testing::requested(target).is_none() {
        eprintln!("SKIPPED: the committed case needs the `mutants` feature");
        return;
    }
    let committed = replay::testing::committed(env!("CARGO_MANIFEST_DIR"), committed_name);
    replay::testing::replay_test(target, committed, |_| 3, perturb, |file| rerun(file, &run));
}

/// Whether a run with a planted bug, expected to fail, should write its replay file: only when
/// asked (`$LOCKSTEP_REPLAY_DIR` set), so that green runs leave none.
pub fn asked() -> bool {
    std::env::var_os(replay::ENV_DIR).is_some()
}
