//! Replay files for the shuttle tests (`lockstep::replay` has the format).
//!
//! A [`Recorder`] wraps the scheduler a test runs under and keeps the schedule of the execution
//! under way: the seed of its random values and each choice, `task N` (run task N next) or
//! `random` (a random value was drawn). When an execution fails, that schedule and the failure go
//! into a replay file. A rerun feeds the same choices to shuttle's `ReplayScheduler` through a
//! recorder that checks each one before it is made: where the task the file names is not runnable,
//! or the run asks for a task where the file drew a random value (or the other way round), the
//! run stops there and the replay says at which step. (shuttle's own replay panics there without
//! a step number, or with `set_allow_incomplete` stops quietly.)

use std::sync::{Arc, Mutex};

use lockstep::replay::{self, Divergence, HarnessKind, Outcome, ReplayFile, TestTarget};
use shuttle::scheduler::{ReplayScheduler, Schedule, Scheduler, Task, TaskId};

/// The execution under way, as the recorder saw it.
#[derive(Default)]
struct Taken {
    seed: u64,
    steps: Vec<String>,
    divergence: Option<Divergence>,
}

/// A scheduler that records the choices of `inner` and, on a rerun, compares them with a file's.
pub struct Recorder {
    inner: Box<dyn Scheduler + Send>,
    expected: Option<Vec<String>>,
    taken: Arc<Mutex<Taken>>,
}

impl Recorder {
    fn step(&mut self, step: String, allowed: impl Fn(&str) -> bool) -> bool {
        let mut taken = self.taken.lock().unwrap();
        if taken.divergence.is_some() {
            return false;
        }
        if let Some(expected) = &self.expected {
            let at = taken.steps.len();
            let Some(file) = expected.get(at).cloned() else {
                // Past the file's end: its schedule is done, and so is the run (a case that no
                // longer fails; the outcome judges it).
                return false;
            };
            if !allowed(&file) {
                taken.divergence = Some(Divergence {
                    step: at + 1,
                    expected: Some(file),
                    actual: Some(step),
                });
                return false;
            }
        }
        taken.steps.push(step);
        true
    }
}

impl Scheduler for Recorder {
    fn new_execution(&mut self) -> Option<Schedule> {
        let schedule = self.inner.new_execution()?;
        *self.taken.lock().unwrap() = Taken {
            seed: schedule.seed,
            ..Taken::default()
        };
        Some(schedule)
    }

    fn next_task(
        &mut self,
        runnable: &[&Task],
        current: Option<TaskId>,
        is_yielding: bool,
    ) -> Option<TaskId> {
        let ids: Vec<usize> = runnable.iter().map(|t| usize::from(t.id())).collect();
        if self.expected.is_some() {
            // Check the file's choice against what is runnable before shuttle's replay makes it.
            let shown = format!("a choice among the runnable tasks {ids:?}");
            let ok = self.step(shown, |file| {
                file.strip_prefix("task ")
                    .and_then(|n| n.parse::<usize>().ok())
                    .is_some_and(|n| ids.contains(&n))
            });
            if !ok {
                return None;
            }
            let chosen = self.inner.next_task(runnable, current, is_yielding)?;
            let mut taken = self.taken.lock().unwrap();
            let last = taken.steps.last_mut().expect("just pushed");
            *last = format!("task {}", usize::from(chosen));
            return Some(chosen);
        }
        let chosen = self.inner.next_task(runnable, current, is_yielding)?;
        self.step(format!("task {}", usize::from(chosen)), |_| true);
        Some(chosen)
    }

    fn next_u64(&mut self) -> u64 {
        if !self.step("random".into(), |file| file == "random") {
            // The run diverged at a random choice: any value will do, the run is stopped at
            // its next scheduling point.
            return 0;
        }
        self.inner.next_u64()
    }
}

/// A failed execution: its failure, seed and choices.
pub struct Failed {
    pub failure: String,
    pub seed: u64,
    pub steps: Vec<String>,
}

/// The panic message of `f`, or `None` if it returned.
pub fn panic_of(f: impl FnOnce()) -> Option<String> {
    let payload = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).err()?;
    Some(
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "(a panic without a message)".into()),
    )
}

/// Runs `scenario` under `scheduler`; the failing execution, if one fails.
pub fn run(scenario: fn(), scheduler: impl Scheduler + Send + 'static) -> Option<Failed> {
    let taken = Arc::new(Mutex::new(Taken::default()));
    let recorder = Recorder {
        inner: Box::new(scheduler),
        expected: None,
        taken: Arc::clone(&taken),
    };
    let failure = panic_of(|| {
        shuttle::Runner::new(recorder, shuttle::Config::default()).run(scenario);
    })?;
    let taken = taken.lock().unwrap_or_else(|e| e.into_inner());
    Some(Failed {
        failure,
        seed: taken.seed,
        steps: taken.steps.clone(),
    })
}

/// A scenario and the name a replay file knows it by.
pub type Named = (&'static str, fn());

/// Writes the replay file of `failed` (a failure of `test` in test target `target`, running the
/// scenario named `scenario`, with the mutant switched on now) and returns the line that names it.
pub fn record(protocol: &str, target: &str, test: &str, scenario: &str, failed: &Failed) -> String {
    let mut file = ReplayFile::new(
        HarnessKind::Shuttle,
        protocol,
        &format!("{target} {test}"),
        TestTarget {
            package: "lockstep".into(),
            target: target.into(),
            test: "replay_file".into(),
            features: vec!["shuttle".into(), "mutants".into()],
            target_dir: Some("target/shuttle".into()),
        },
        serde_json::to_value(Case {
            scenario: scenario.into(),
            seed: failed.seed,
        })
        .expect("a case serialises"),
    );
    file.mutant = lockstep::mutants::switched_on().map(|m| m.name().to_string());
    file.steps = failed.steps.clone();
    file.failure = failed.failure.clone();
    replay::persist(&file, env!("CARGO_MANIFEST_DIR"))
}

/// Runs `scenario` under `scheduler`; on a failure, writes its replay file, prints the line that
/// names it, and returns the failure.
pub fn failure_of(
    protocol: &str,
    target: &str,
    test: &str,
    named: Named,
    scheduler: impl Scheduler + Send + 'static,
) -> Option<String> {
    failure_recorded(protocol, target, test, named, scheduler, true)
}

/// As [`failure_of`], for a run with a planted bug, which is expected to fail: its replay file
/// is written only when asked (`$LOCKSTEP_REPLAY_DIR` set), so that green runs leave none.
pub fn expected_failure_of(
    protocol: &str,
    target: &str,
    test: &str,
    named: Named,
    scheduler: impl Scheduler + Send + 'static,
) -> Option<String> {
    let asked = std::env::var_os(replay::ENV_DIR).is_some();
    failure_recorded(protocol, target, test, named, scheduler, asked)
}

fn failure_recorded(
    protocol: &str,
    target: &str,
    test: &str,
    (name, scenario): Named,
    scheduler: impl Scheduler + Send + 'static,
    write_file: bool,
) -> Option<String> {
    let failed = run(scenario, scheduler)?;
    if write_file {
        eprintln!("{}", record(protocol, target, test, name, &failed));
    }
    Some(failed.failure)
}

/// Runs `scenario` under `scheduler` and panics on a failure, naming the replay file written.
pub fn check(
    protocol: &str,
    target: &str,
    test: &str,
    named: Named,
    scheduler: impl Scheduler + Send + 'static,
) {
    if let Some(failure) = failure_of(protocol, target, test, named, scheduler) {
        panic!("{failure}");
    }
}

/// A shuttle case as a replay file keeps it.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Which of the target's scenarios ran.
    pub scenario: String,
    /// The seed of the execution's random values.
    pub seed: u64,
}

fn case_of(file: &ReplayFile) -> Case {
    serde_json::from_value(file.case.clone())
        .unwrap_or_else(|e| panic!("the case of {}: {e}", file.origin))
}

/// Reruns `file` (a shuttle replay file) through `scenario`, on a thread of its own (a failed
/// execution can leave shuttle's thread-local state behind).
pub fn rerun(scenario: fn(), file: &ReplayFile) -> Outcome {
    let mut schedule = Schedule::new(case_of(file).seed);
    // The schedule up to the first step that is not one (an edited file): the recorder stops
    // the run there, naming it.
    for step in &file.steps {
        match step.strip_prefix("task ").map(str::parse::<usize>) {
            Some(Ok(n)) => schedule.push_task(TaskId::from(n)),
            _ if step == "random" => schedule.push_random(),
            _ => break,
        }
    }
    let expected = file.steps.clone();
    let (taken, failure) = std::thread::spawn(move || {
        let mut replay = ReplayScheduler::new_from_schedule(schedule);
        replay.set_allow_incomplete();
        let taken = Arc::new(Mutex::new(Taken::default()));
        let recorder = Recorder {
            inner: Box::new(replay),
            expected: Some(expected),
            taken: Arc::clone(&taken),
        };
        let failure = panic_of(|| {
            shuttle::Runner::new(recorder, shuttle::Config::default()).run(scenario);
        });
        let taken = std::mem::take(&mut *taken.lock().unwrap_or_else(|e| e.into_inner()));
        (taken, failure)
    })
    .join()
    .expect("the rerun's thread");
    match taken.divergence {
        Some(divergence) => Outcome::Diverged { divergence },
        // Compared by property: the scenarios' messages carry ids drawn from the clock.
        None => Outcome::of_by(
            file,
            &taken.steps,
            failure.as_deref(),
            replay::same_property,
        ),
    }
}

/// The replay test of a shuttle target (`lockstep::replay::testing::replay_test`): reruns the
/// file `lockstep replay` names, or else the committed one (`committed_name` under
/// tests/replays/). Its edited step names no task the run can take: the rerun must stop there.
pub fn replay_test(
    target: &str,
    committed_name: &str,
    scenarios: &[Named],
    exclusive: fn(Option<lockstep::mutants::Mutant>) -> std::sync::MutexGuard<'static, ()>,
) {
    let rerun_with = |file: &ReplayFile| {
        let name = case_of(file).scenario;
        let scenario = scenarios
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("{target} has no scenario named {name}"))
            .1;
        let mutant = file
            .mutant
            .as_deref()
            .and_then(lockstep::mutants::Mutant::from_name);
        let _one = exclusive(mutant);
        let outcome = rerun(scenario, file);
        lockstep::mutants::activate(None);
        outcome
    };
    let committed =
        lockstep::replay::testing::committed(env!("CARGO_MANIFEST_DIR"), committed_name);
    lockstep::replay::testing::replay_test(
        target,
        committed,
        |file| {
            file.steps
                .iter()
                .position(|s| s.starts_with("task ") && s != &file.steps[0])
                .expect("a schedule with two tasks")
        },
        // Another input: the seed of the random values (the scenario draws its crashes and
        // delays from them).
        |file| file.case["seed"] = (case_of(file).seed ^ 0x5eed).into(),
        rerun_with,
    );
}
