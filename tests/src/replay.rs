//! The harness side of replay files (`lockstep::replay`, which has the format): running a case's
//! operations while comparing each step with a file's, and the entry point of a harness's replay
//! test. Knows no protocol: a harness passes its operations, how to apply one, and how to name
//! the steps taken so far.

use std::fmt::Display;

pub use lockstep::replay::testing::{finish, requested};
pub use lockstep::replay::{
    diverges, persist, Divergence, HarnessKind, Outcome, ReplayFile, TestTarget,
};

/// What a run of a case did.
pub struct Run {
    /// The steps taken, as the harness names them.
    pub steps: Vec<String>,
    /// The failure it stopped at, if any.
    pub failure: Option<String>,
    /// Where it stopped following the file, if it was given one.
    pub divergence: Option<Divergence>,
}

/// The message of a panic's payload.
pub fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(a panic without a message)".into())
}

/// `f`'s result, with a panic as its failure (proptest counts a panicking case as failed; a
/// rerun must record it, not unwind past the recording).
pub fn caught<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|payload| Err(format!("panicked: {}", panic_message(payload))))
}

/// Applies `ops` to `harness` one at a time. After each, the steps taken so far are compared
/// with `expected` (a replay file's), and the run stops at the first step that differs, or at
/// the first failure (a panic included).
pub fn run_ops<H, Op, E: Display>(
    expected: Option<&[String]>,
    harness: &mut H,
    ops: &[Op],
    mut apply: impl FnMut(&mut H, &Op) -> Result<(), E>,
    steps: impl Fn(&H) -> Vec<String>,
) -> Run {
    for op in ops {
        let result = caught(|| apply(harness, op).map_err(|e| e.to_string()));
        let taken = steps(harness);
        if let Some(divergence) = expected.and_then(|e| diverges(e, &taken)) {
            return Run {
                steps: taken,
                failure: None,
                divergence: Some(divergence),
            };
        }
        if let Err(failure) = result {
            return Run {
                steps: taken,
                failure: Some(failure),
                divergence: None,
            };
        }
    }
    Run {
        steps: steps(harness),
        failure: None,
        divergence: None,
    }
}

/// The outcome of rerunning `file` with `run`; a panic outside the operations (setting up, or
/// the final checks) counts as the run's failure, with no steps known.
pub fn rerun_outcome(file: &ReplayFile, run: impl FnOnce() -> Run) -> Outcome {
    match caught(|| Ok(run())) {
        Ok(run) => run.outcome(file),
        Err(failure) => Outcome::of(file, &[], Some(&failure)),
    }
}

/// Reruns `file`'s case: reads it as a `C`, switches the file's mutant on (through `exclusive`,
/// which a harness uses to take turns on the process-wide switch) for the run only, and returns
/// the outcome of `run(case, the file's steps)`.
pub fn rerun_case<C: serde::de::DeserializeOwned, G>(
    file: &ReplayFile,
    exclusive: impl FnOnce(Option<lockstep::mutants::Mutant>) -> G,
    run: impl FnOnce(&C, &[String]) -> Run,
) -> Outcome {
    let case: C = serde_json::from_value(file.case.clone())
        .unwrap_or_else(|e| panic!("the case of {}: {e}", file.origin));
    let mutant = file
        .mutant
        .as_deref()
        .and_then(lockstep::mutants::Mutant::from_name);
    let _turn = exclusive(mutant);
    let outcome = rerun_outcome(file, || run(&case, &file.steps));
    lockstep::mutants::activate(None);
    outcome
}

impl Run {
    /// The outcome of this run against `file`.
    pub fn outcome(&self, file: &ReplayFile) -> Outcome {
        match &self.divergence {
            Some(divergence) => Outcome::Diverged {
                divergence: divergence.clone(),
            },
            None => Outcome::of(file, &self.steps, self.failure.as_deref()),
        }
    }
}

/// Whether a test that expects its failure (a planted bug's) should write its replay file:
/// only when asked, with `$LOCKSTEP_REPLAY_DIR` (as for the committed cases), so that green runs
/// leave no files.
pub fn asked() -> bool {
    std::env::var_os(lockstep::replay::ENV_DIR).is_some()
}

/// Writes the replay file of a failing conformance case of test `test` in `target` (a test
/// target of this package, whose `replay` test reruns it) and returns the line naming it. `run`
/// is the case rerun once to record its steps (`Err`: that rerun panicked outside an operation);
/// the mutant switched on is recorded with it.
pub fn record_conformance(
    protocol: &str,
    target: &str,
    test: &str,
    store: &str,
    case: serde_json::Value,
    run: Result<Run, String>,
) -> String {
    let run = run.unwrap_or_else(|failure| Run {
        steps: Vec::new(),
        failure: Some(failure),
        divergence: None,
    });
    let mutant = lockstep::mutants::switched_on();
    let mut file = ReplayFile::new(
        HarnessKind::Conformance,
        protocol,
        &format!("{target} {test}"),
        TestTarget {
            package: "lockstep-tests".into(),
            target: target.into(),
            test: "replay".into(),
            // Only a case on etcd needs the feature (and protoc to build it).
            features: if store == "etcd" {
                vec!["etcd".into()]
            } else {
                vec![]
            },
            target_dir: None,
        },
        case,
    );
    file.mutant = mutant.map(|m| m.name().to_string());
    file.steps = run.steps;
    file.failure = run
        .failure
        .unwrap_or_else(|| "(the case did not fail again when rerun to record it)".into());
    persist(&file, env!("CARGO_MANIFEST_DIR"))
}

/// The committed replay file `name` under `tests/replays/`.
pub fn committed(name: &str) -> ReplayFile {
    lockstep::replay::testing::committed(env!("CARGO_MANIFEST_DIR"), name)
}

/// See `lockstep::replay::testing::replay_test`: the edited step is the middle one.
pub fn replay_test(
    target: &str,
    committed_name: &str,
    perturb: impl Fn(&mut ReplayFile),
    rerun: impl Fn(&ReplayFile) -> Outcome,
) {
    lockstep::replay::testing::replay_test(
        target,
        committed(committed_name),
        |file| file.steps.len() / 2,
        perturb,
        rerun,
    )
}

/// The store a case ran on, by the name its test gives it: `memory`, `fs` (in a temporary
/// directory, kept as long as the second value) or `etcd` (the shared test cluster).
pub fn store_named(
    name: &str,
) -> (
    std::sync::Arc<dyn lockstep::store::Store>,
    Option<tempfile::TempDir>,
) {
    use std::sync::Arc;
    match name {
        "fs" => {
            let dir = tempfile::tempdir().unwrap();
            (
                Arc::new(lockstep::store::FsStore::open(dir.path()).unwrap()),
                Some(dir),
            )
        }
        #[cfg(feature = "etcd")]
        "etcd" => {
            let cluster = crate::etcd_server::shared_or_skip()
                .expect("the case ran on etcd, and no etcd is here");
            (Arc::new(cluster.store_blocking()), None)
        }
        "memory" => (Arc::new(lockstep::store::MemStore::new()), None),
        other => panic!(
            "the case ran on store {other:?}: this build knows memory, fs{}",
            if cfg!(feature = "etcd") {
                " and etcd"
            } else {
                " (etcd needs the `etcd` feature)"
            }
        ),
    }
}
