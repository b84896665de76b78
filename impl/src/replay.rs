//! Replay files: one failing case of a cross-test, kept so that it can be rerun.
//!
//! When a case of a cross-test fails, its harness writes one replay file (JSON, below) under
//! `target/lockstep-replays/` (or `$LOCKSTEP_REPLAY_DIR`) and prints its path. The file holds
//! whatever makes that case rerun: the proptest case of a conformance harness with the model path
//! the implementation followed, the seed and every scheduling choice of a shuttle execution, or
//! the seed and the driver's plan of a process-kill run, plus the steps the failing run took and
//! its failure. `lockstep replay FILE` reruns it: the case runs in
//! the cargo test the file names (the harness and the implementation are compiled there, with the
//! features the file lists), which reads the file from `$LOCKSTEP_REPLAY`, compares each step with
//! the file's, stops at the first that differs, and writes its [`Outcome`] to
//! `$LOCKSTEP_REPLAY_OUTCOME`.
//!
//! Users of shuttle, loom and proptest keep asking for one such file per failure (shuttle #85,
//! loom #271, proptest #653): each tool persists its own piece (a regression seed, a schedule, a
//! checkpoint), and none says where a rerun stopped following the original.
//!
//! This module is the format, its checks, and the step comparison every harness uses; it knows no
//! harness's case (each harness reads its own, refusing unknown fields). It checks only that a
//! file names one of the three protocols and a mutant this build has.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The `format` field of every replay file.
pub const FORMAT: &str = "lockstep-replay";
/// The only version this build reads.
pub const VERSION: u32 = 1;
/// The replay file a harness's replay test reruns, set by `lockstep replay`.
pub const ENV_FILE: &str = "LOCKSTEP_REPLAY";
/// Where a replay test writes its [`Outcome`] (JSON), set by `lockstep replay`.
pub const ENV_OUTCOME: &str = "LOCKSTEP_REPLAY_OUTCOME";
/// Where failing cases write their replay files (default `target/lockstep-replays`).
pub const ENV_DIR: &str = "LOCKSTEP_REPLAY_DIR";

/// Which kind of harness a case belongs to: what its `case` holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HarnessKind {
    /// A proptest harness: a lockstep conformance harness (`case` the proptest input with the
    /// store, `steps` the model path the implementation followed) or the gated interleavings
    /// (`case` the clients' operations and the driver's choices, `steps` the creates let
    /// through, in order).
    Conformance,
    /// A shuttle test: `case` is `{"scenario", "seed"}` (the seed of the execution's random
    /// values), `steps` every scheduling choice (`task 3`, `random`).
    Shuttle,
    /// Real processes SIGKILLed by a seeded driver: `case` is `{"scenario", "seed", "rounds"}`,
    /// `steps` the driver's actions (commands, spawns, kills, signals, sleeps, recoveries).
    Processes,
}

/// The cargo test that reruns a case: `cargo test -p PACKAGE --features F --test TARGET --
/// TEST --exact`, in `target_dir` if one is named (a build with other features keeps its own).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestTarget {
    pub package: String,
    pub target: String,
    pub test: String,
    #[serde(default)]
    pub features: Vec<String>,
    /// Relative to the workspace root, e.g. `target/shuttle`.
    #[serde(default)]
    pub target_dir: Option<String>,
}

/// One failing case.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayFile {
    pub format: String,
    pub version: u32,
    pub harness: HarnessKind,
    /// `lock`, `merge` or `redo`.
    pub protocol: String,
    /// The test that failed, as people name it (`lock_conformance: memory`).
    pub origin: String,
    pub rerun: TestTarget,
    /// The planted bug switched on when the case failed (`lockstep::mutants::Mutant::name`).
    #[serde(default)]
    pub mutant: Option<String>,
    /// What makes the case run again; its shape is the harness's.
    pub case: serde_json::Value,
    /// The steps of the failing run, in order, as the harness names them.
    pub steps: Vec<String>,
    /// The failure, as the harness reported it.
    pub failure: String,
}

/// Why a replay file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a replay file: {reason}")]
    Malformed { path: PathBuf, reason: String },
    #[error("{path} is a replay file of version {found}; this build reads version {VERSION} only")]
    UnknownVersion { path: PathBuf, found: u64 },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ReplayFile {
    pub fn new(
        harness: HarnessKind,
        protocol: &str,
        origin: &str,
        rerun: TestTarget,
        case: serde_json::Value,
    ) -> ReplayFile {
        ReplayFile {
            format: FORMAT.into(),
            version: VERSION,
            harness,
            protocol: protocol.into(),
            origin: origin.into(),
            rerun,
            mutant: None,
            case,
            steps: Vec::new(),
            failure: String::new(),
        }
    }

    /// Reads and checks a replay file: its format and version first, so that a file of another
    /// tool or a newer lockstep gets an error that says so, not a serde message about a field.
    pub fn read(path: &Path) -> Result<ReplayFile, ReplayError> {
        let text = std::fs::read_to_string(path).map_err(|source| ReplayError::Read {
            path: path.into(),
            source,
        })?;
        let malformed = |reason: String| ReplayError::Malformed {
            path: path.into(),
            reason,
        };
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| malformed(format!("not JSON ({e})")))?;
        if value.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
            return Err(malformed(format!("its \"format\" is not \"{FORMAT}\"")));
        }
        match value.get("version").and_then(|v| v.as_u64()) {
            Some(v) if v == VERSION as u64 => {}
            Some(found) => {
                return Err(ReplayError::UnknownVersion {
                    path: path.into(),
                    found,
                })
            }
            None => return Err(malformed("it has no numeric \"version\"".into())),
        }
        let file: ReplayFile =
            serde_json::from_value(value).map_err(|e| malformed(e.to_string()))?;
        if !["lock", "merge", "redo"].contains(&file.protocol.as_str()) {
            return Err(malformed(format!(
                "unknown protocol \"{}\" (lock, merge or redo)",
                file.protocol
            )));
        }
        if let Some(name) = &file.mutant {
            if crate::mutants::Mutant::from_name(name).is_none() {
                return Err(malformed(format!("unknown mutant \"{name}\"")));
            }
        }
        Ok(file)
    }

    /// Writes the file into `dir` (created if missing) under a name made of its origin and the
    /// time, and returns its path. Written to a temporary name and renamed, so that a reader
    /// never sees half a file.
    pub fn write_into(&self, dir: &Path) -> Result<PathBuf, ReplayError> {
        let write = |path: &Path, source| ReplayError::Write {
            path: path.into(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(|e| write(dir, e))?;
        let slug: String = self
            .origin
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let path = dir.join(format!("{slug}-{stamp}-{}.json", std::process::id()));
        let temporary = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self).expect("a replay file serialises");
        std::fs::write(&temporary, text + "\n").map_err(|e| write(&temporary, e))?;
        std::fs::rename(&temporary, &path).map_err(|e| write(&path, e))?;
        Ok(path)
    }

    /// The replay file `$LOCKSTEP_REPLAY` names, if set.
    pub fn from_env() -> Option<Result<ReplayFile, ReplayError>> {
        let path = std::env::var_os(ENV_FILE)?;
        Some(ReplayFile::read(Path::new(&path)))
    }
}

/// Where failing cases write their replay files: `$LOCKSTEP_REPLAY_DIR`, or
/// `target/lockstep-replays` of the workspace `manifest_dir` (a crate's `CARGO_MANIFEST_DIR`)
/// belongs to.
pub fn default_dir(manifest_dir: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os(ENV_DIR) {
        return PathBuf::from(dir);
    }
    Path::new(manifest_dir)
        .parent()
        .unwrap_or(Path::new(manifest_dir))
        .join("target")
        .join("lockstep-replays")
}

/// Writes `file` where failing cases go and returns a line for the test's failure message, which
/// names the file and how to rerun it. A file that cannot be written is said so; the test's
/// failure stays the failure.
pub fn persist(file: &ReplayFile, manifest_dir: &str) -> String {
    match file.write_into(&default_dir(manifest_dir)) {
        Ok(path) => format!(
            "replay file: {} (rerun: lockstep replay {})",
            path.display(),
            path.display()
        ),
        Err(e) => format!("no replay file: {e}"),
    }
}

/// Where a rerun stopped following the file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Divergence {
    /// 1-based step number.
    pub step: usize,
    /// The file's step there (`None`: the file had ended).
    pub expected: Option<String>,
    /// The run's step there (`None`: the run had ended).
    pub actual: Option<String>,
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |s: &Option<String>| {
            s.clone()
                .unwrap_or_else(|| "(nothing: it had ended)".into())
        };
        write!(
            f,
            "the run diverged from the replay file at step {}: the file has {}, the run did {}",
            self.step,
            show(&self.expected),
            show(&self.actual)
        )
    }
}

/// The first step at which `actual` (the run so far) differs from `expected` (the file), where
/// both have one. A run still under way has not diverged by being shorter, nor one that goes on
/// past the file's end (a fixed bug, or a failure later than the file's): [`Outcome::of`]
/// judges those.
pub fn diverges(expected: &[String], actual: &[String]) -> Option<Divergence> {
    actual
        .iter()
        .zip(expected)
        .position(|(run, file)| run != file)
        .map(|i| Divergence {
            step: i + 1,
            expected: Some(expected[i].clone()),
            actual: Some(actual[i].clone()),
        })
}

/// Whether the run's step number `at + 1` (`actual`) differs from the file's at the same place,
/// for a run that compares each step as it takes it (the steps before were compared already).
/// Past the file's end is not a divergence here either.
pub fn diverges_at(expected: &[String], at: usize, actual: &str) -> Option<Divergence> {
    let file = expected.get(at)?;
    (file != actual).then(|| Divergence {
        step: at + 1,
        expected: Some(file.clone()),
        actual: Some(actual.to_owned()),
    })
}

/// What a rerun found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Outcome {
    /// Every step as in the file, and the same failure, after `at_step` steps (the file's
    /// length, or fewer or more where timing moves a process run's failure): the bug is still
    /// there.
    Reproduced { failure: String, at_step: usize },
    /// The run stopped following the file (a change moved its steps, or the run is not
    /// deterministic there).
    Diverged { divergence: Divergence },
    /// Every step as in the file, but it failed otherwise, after `at_step` steps.
    FailedOtherwise { failure: String, at_step: usize },
    /// Every step as in the file (and perhaps more), and no failure: the case passes now.
    Passed,
}

impl Outcome {
    /// The outcome of a finished rerun that took `actual` steps and ended with `failure`
    /// (`None`: it passed), against `file`. Failures are compared on their first line: the rest
    /// (a model behaviour, paths of temporary directories) may differ between runs.
    pub fn of(file: &ReplayFile, actual: &[String], failure: Option<&str>) -> Outcome {
        Outcome::of_by(file, actual, failure, same_failure)
    }

    /// As [`Outcome::of`], with failures compared by `same`.
    pub fn of_by(
        file: &ReplayFile,
        actual: &[String],
        failure: Option<&str>,
        same: impl Fn(&str, &str) -> bool,
    ) -> Outcome {
        if let Some(divergence) = diverges(&file.steps, actual) {
            return Outcome::Diverged { divergence };
        }
        match failure {
            Some(failure) if same(failure, &file.failure) => Outcome::Reproduced {
                failure: failure.into(),
                at_step: actual.len(),
            },
            Some(failure) => Outcome::FailedOtherwise {
                failure: failure.into(),
                at_step: actual.len(),
            },
            // It ended, without a failure, before the file's steps did.
            None if actual.len() < file.steps.len() => Outcome::Diverged {
                divergence: Divergence {
                    step: actual.len() + 1,
                    expected: Some(file.steps[actual.len()].clone()),
                    actual: None,
                },
            },
            None => Outcome::Passed,
        }
    }

    /// Writes the outcome where `lockstep replay` reads it (if it asked) and returns it as a
    /// line for people.
    pub fn report(&self) -> String {
        if let Some(path) = std::env::var_os(ENV_OUTCOME) {
            let text = serde_json::to_string(self).expect("an outcome serialises");
            if let Err(e) = std::fs::write(&path, text) {
                eprintln!("cannot write the replay outcome to {path:?}: {e}");
            }
        }
        match self {
            Outcome::Reproduced { failure, at_step } => {
                format!("reproduced at step {at_step}: {}", first_line(failure))
            }
            Outcome::Diverged { divergence } => divergence.to_string(),
            Outcome::FailedOtherwise { failure, at_step } => format!(
                "each of the first {at_step} steps as in the file, but another failure: {}",
                first_line(failure)
            ),
            Outcome::Passed => "every step as in the file, and the case passes now".into(),
        }
    }
}

/// The first line of a failure message.
pub fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("").trim()
}

/// Whether two failures break the same property: the text before the first `: ` of their first
/// lines (`mutual exclusion: task 1 … and task 0 … hold at once`). For harnesses whose messages
/// carry ids the run draws from the clock, which no scheduler replays.
pub fn same_property(a: &str, b: &str) -> bool {
    let property = |text: &str| {
        first_line(text)
            .split(": ")
            .next()
            .unwrap_or("")
            .to_string()
    };
    property(a) == property(b)
}

/// Whether two failures are the same: their first lines, without source locations
/// (`at tests/tests/x.rs:712`), which move whenever the harness is edited.
pub fn same_failure(a: &str, b: &str) -> bool {
    fn without_locations(line: &str) -> Vec<&str> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let is_location = |w: &str| {
            w.split_once(".rs:").is_some_and(|(_, rest)| {
                rest.split(':')
                    .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            })
        };
        let mut kept = Vec::new();
        for (i, word) in words.iter().enumerate() {
            if is_location(word)
                || (*word == "at" && words.get(i + 1).is_some_and(|w| is_location(w)))
            {
                continue;
            }
            kept.push(*word);
        }
        kept
    }
    without_locations(first_line(a)) == without_locations(first_line(b))
}

/// For harnesses: the replay test every harness target has. These panic, as tests do.
pub mod testing {
    use super::{Outcome, ReplayFile, ENV_FILE};

    /// The replay file `lockstep replay` asked this test to rerun, if any. It must be one of
    /// `target`'s (a file of another test target is an error that names both).
    pub fn requested(target: &str) -> Option<ReplayFile> {
        let file = ReplayFile::from_env()?.unwrap_or_else(|e| panic!("{e}"));
        if file.rerun.target != target {
            // `cargo test` of several targets with the variable set: the file is another's.
            eprintln!(
                "{ENV_FILE} names a replay file of test target {}: {target} reruns its own",
                file.rerun.target
            );
            return None;
        }
        Some(file)
    }

    /// Reports a rerun requested through `$LOCKSTEP_REPLAY`: writes the outcome for `lockstep
    /// replay`, prints it, and fails the test unless the case passes now (a reproduced bug
    /// fails, as the original did).
    pub fn finish(outcome: Outcome) {
        let line = outcome.report();
        eprintln!("lockstep replay: {line}");
        assert_eq!(outcome, Outcome::Passed, "{line}");
    }

    /// The committed replay file `name` under `tests/replays/` of the workspace whose member
    /// `manifest_dir` is (a crate's `CARGO_MANIFEST_DIR`).
    pub fn committed(manifest_dir: &str, name: &str) -> ReplayFile {
        let path = std::path::Path::new(manifest_dir)
            .join("../tests/replays")
            .join(name);
        ReplayFile::read(&path).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The replay test of a harness target. With `$LOCKSTEP_REPLAY` set, reruns that file and
    /// reports. Otherwise reruns `committed` (a case of a planted bug) and asserts: it
    /// reproduces with its mutant; without the mutant it does not; with its step
    /// `edit_at(file)` (0-based) edited, the rerun stops at that step and names what the run
    /// did there; and with its input changed by `perturb` (the steps left as they are), the
    /// rerun diverges: the file's steps catch a run that is not the file's.
    pub fn replay_test(
        target: &str,
        committed: ReplayFile,
        edit_at: impl Fn(&ReplayFile) -> usize,
        perturb: impl Fn(&mut ReplayFile),
        rerun: impl Fn(&ReplayFile) -> Outcome,
    ) {
        if let Some(file) = requested(target) {
            return finish(rerun(&file));
        }
        let file = committed;
        let name = file.origin.clone();
        assert!(
            file.mutant.is_some(),
            "{name}: a committed case names its mutant"
        );
        let with = rerun(&file);
        assert!(
            matches!(with, Outcome::Reproduced { .. }),
            "{name} with its mutant: {}",
            with.report()
        );
        let without = rerun(&ReplayFile {
            mutant: None,
            ..file.clone()
        });
        assert!(
            matches!(without, Outcome::Diverged { .. } | Outcome::Passed),
            "{name} without its mutant: {}",
            without.report()
        );
        let at = edit_at(&file);
        let mut edited = file.clone();
        edited.steps[at] = format!("{} (edited)", edited.steps[at]);
        match rerun(&edited) {
            Outcome::Diverged { divergence } => assert!(
                divergence.step == at + 1
                    && divergence.expected.as_deref() == Some(edited.steps[at].as_str())
                    && divergence.actual.is_some(),
                "{name}: the rerun of a file edited at step {} stopped elsewhere: {divergence}",
                at + 1
            ),
            other => panic!(
                "{name}: an edited step {} went unnoticed: {}",
                at + 1,
                other.report()
            ),
        }
        let mut perturbed = file.clone();
        perturb(&mut perturbed);
        assert_ne!(
            perturbed.case, file.case,
            "{name}: the perturbation changes the case"
        );
        // A step the run took that differs from the file's: not merely a shorter run.
        let outcome = rerun(&perturbed);
        assert!(
            matches!(&outcome, Outcome::Diverged { divergence } if divergence.actual.is_some()),
            "{name}: a rerun of another input than the file's was not caught at a step: {}",
            outcome.report()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    fn file(steps_: &[&str], failure: &str) -> ReplayFile {
        let mut f = ReplayFile::new(
            HarnessKind::Conformance,
            "lock",
            "t",
            TestTarget {
                package: "p".into(),
                target: "t".into(),
                test: "replay".into(),
                features: vec![],
                target_dir: None,
            },
            serde_json::json!({}),
        );
        f.steps = steps(steps_);
        f.failure = failure.into();
        f
    }

    #[test]
    fn the_first_differing_step_is_named() {
        let d = diverges(&steps(&["a", "b", "c"]), &steps(&["a", "x"])).unwrap();
        assert_eq!(
            (d.step, d.expected.as_deref(), d.actual.as_deref()),
            (2, Some("b"), Some("x"))
        );
        assert_eq!(diverges(&steps(&["a", "b"]), &steps(&["a"])), None);
        assert_eq!(diverges(&steps(&["a"]), &steps(&["a", "b"])), None);
        let d = diverges_at(&steps(&["a", "b", "c"]), 1, "x").unwrap();
        assert_eq!((d.step, d.expected.as_deref()), (2, Some("b")));
        assert_eq!(diverges_at(&steps(&["a", "b"]), 1, "b"), None);
        assert_eq!(diverges_at(&steps(&["a"]), 1, "b"), None);
    }

    #[test]
    fn outcomes() {
        let f = file(&["a", "b"], "mutual exclusion broken\nmore");
        // Ended early without a failure: diverged where the file goes on.
        match Outcome::of(&f, &steps(&["a"]), None) {
            Outcome::Diverged { divergence } => {
                assert_eq!((divergence.step, divergence.actual), (2, None))
            }
            other => panic!("{other:?}"),
        }
        // Past the file's end without a failure: the case passes now.
        assert_eq!(
            Outcome::of(&f, &steps(&["a", "b", "c"]), None),
            Outcome::Passed
        );
        // The same failure earlier (timing): reproduced, at the step it came.
        assert_eq!(
            Outcome::of(&f, &steps(&["a"]), Some("mutual exclusion broken")),
            Outcome::Reproduced {
                failure: "mutual exclusion broken".into(),
                at_step: 1
            }
        );
        let run = steps(&["a", "b"]);
        assert!(matches!(
            Outcome::of(&f, &run, Some("mutual exclusion broken\nother")),
            Outcome::Reproduced { .. }
        ));
        assert!(matches!(
            Outcome::of(&f, &run, Some("fencing")),
            Outcome::FailedOtherwise { .. }
        ));
        assert_eq!(Outcome::of(&f, &run, None), Outcome::Passed);
        let by_property = file(&["a"], "no message lost: 17-ab is in no archive");
        assert!(matches!(
            Outcome::of_by(
                &by_property,
                &steps(&["a"]),
                Some("no message lost: 18-cd is in no archive"),
                same_property
            ),
            Outcome::Reproduced { .. }
        ));
        assert!(matches!(
            Outcome::of_by(
                &by_property,
                &steps(&["a"]),
                Some("no duplicate archive: 18-cd"),
                same_property
            ),
            Outcome::FailedOtherwise { .. }
        ));
        let located = file(
            &["a"],
            "effect applied once: 2 effects at tests/tests/x.rs:712",
        );
        assert!(matches!(
            Outcome::of(
                &located,
                &steps(&["a"]),
                Some("effect applied once: 2 effects at tests/tests/x.rs:730:5")
            ),
            Outcome::Reproduced { .. }
        ));
        assert!(matches!(
            Outcome::of(
                &located,
                &steps(&["a"]),
                Some("effect applied once: 3 effects at tests/tests/x.rs:712")
            ),
            Outcome::FailedOtherwise { .. }
        ));
        assert!(matches!(
            Outcome::of(&f, &steps(&["a"]), None),
            Outcome::Diverged { .. }
        ));
        assert!(matches!(
            Outcome::of(&f, &steps(&["x"]), Some("mutual exclusion broken")),
            Outcome::Diverged { .. }
        ));
    }

    #[test]
    fn bad_files_get_errors_that_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            ReplayFile::read(&p).unwrap_err().to_string()
        };
        assert!(at("a", "{").contains("not JSON"));
        assert!(at("b", r#"{"format":"other","version":1}"#).contains("\"format\""));
        assert!(at("c", r#"{"format":"lockstep-replay","version":9}"#).contains("version 9"));
        assert!(at("d", r#"{"format":"lockstep-replay","version":1}"#).contains("missing field"));
        let mut good = file(&["a"], "x");
        good.protocol = "paxos".into();
        let p = good.write_into(dir.path()).unwrap();
        assert!(ReplayFile::read(&p)
            .unwrap_err()
            .to_string()
            .contains("unknown protocol"));
        good.protocol = "lock".into();
        good.mutant = Some("no-such-bug".into());
        let p = good.write_into(dir.path()).unwrap();
        assert!(ReplayFile::read(&p)
            .unwrap_err()
            .to_string()
            .contains("unknown mutant"));
        good.mutant = Some("blind-release".into());
        let p = good.write_into(dir.path()).unwrap();
        assert_eq!(ReplayFile::read(&p).unwrap(), good);
        assert!(ReplayFile::read(&dir.path().join("missing"))
            .unwrap_err()
            .to_string()
            .contains("cannot read"));
    }
}
