//! `lockstep replay FILE`: reruns the failing case of a cross-test that a replay file holds
//! (`lockstep::replay` has the format).
//!
//! The case runs in the cargo test the file names, because that is where its harness and the
//! implementation are compiled, with the features it needs (the shuttle harnesses need a build of
//! their own). So `replay` needs cargo and a lockstep source tree: the current directory's, or
//! `--manifest-path`. The test reads the file from `$LOCKSTEP_REPLAY`, stops at the first step
//! where the run diverges from it, and writes what it found to `$LOCKSTEP_REPLAY_OUTCOME`.

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Args;
use lockstep::replay::{Outcome, ReplayFile, ENV_FILE, ENV_OUTCOME};

use crate::cli::{EXIT_BUG_NOT_REPRODUCED, EXIT_OK, EXIT_PROPERTY_FAILED, EXIT_STORAGE};

#[derive(Args)]
pub struct ReplayArgs {
    /// The replay file a failing cross-test wrote (its failure message names it; failing cases
    /// write them to target/lockstep-replays/, or $LOCKSTEP_REPLAY_DIR).
    pub file: PathBuf,
    /// The workspace's Cargo.toml (default: the one cargo finds from the current directory).
    #[arg(long, value_name = "PATH")]
    pub manifest_path: Option<PathBuf>,
    /// The cargo profile to build the test with (the README's test command uses `verify`, so
    /// its build is reused).
    #[arg(long, default_value = "verify")]
    pub profile: String,
    /// Print the case and the command that reruns it, and run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// `{"file","harness","protocol","origin","mutant","steps","command","outcome"}` on stdout;
    /// `outcome` is `{"outcome":"reproduced"|"diverged"|"failed-otherwise"|"passed",…}`, or
    /// null with --dry-run.
    #[arg(long)]
    pub json: bool,
}

/// Exit codes: 0 the case passes now; 1 reproduced (the same steps and the same failure); 4 not
/// reproduced (the run diverged from the file, or failed otherwise); 74 the test could not be
/// built or run; 2 a file that cannot be used.
pub fn replay(args: &ReplayArgs) -> Result<u8, String> {
    let path = std::path::absolute(&args.file)
        .map_err(|e| format!("cannot resolve {}: {e}", args.file.display()))?;
    let file = match ReplayFile::read(&path) {
        Ok(file) => file,
        Err(e) => return fail(args.json, crate::cli::EXIT_USAGE, e.to_string()),
    };
    let root = match workspace_root(args.manifest_path.as_deref()) {
        Ok(root) => root,
        Err((code, message)) => return fail(args.json, code, message),
    };
    let (mut command, shown) = rerun_command(&file, &root, &args.profile);
    if !args.json {
        println!(
            "{} case of {} ({}), {} steps{}; it failed with: {}",
            serde_json::to_value(file.harness)
                .expect("serialises")
                .as_str()
                .unwrap_or("?"),
            file.origin,
            file.protocol,
            file.steps.len(),
            file.mutant
                .as_deref()
                .map_or(String::new(), |m| format!(", mutant {m} switched on")),
            lockstep::replay::first_line(&file.failure)
        );
        println!("rerun: {ENV_FILE}={} {shown}", path.display());
    }
    let outcome = if args.dry_run {
        None
    } else {
        match run(&mut command, &path) {
            Ok(outcome) => Some(outcome),
            Err(message) => return fail(args.json, EXIT_STORAGE, message),
        }
    };
    if args.json {
        let value = serde_json::json!({
            "file": path,
            "harness": file.harness,
            "protocol": file.protocol,
            "origin": file.origin,
            "mutant": file.mutant,
            "steps": file.steps.len(),
            "command": shown,
            "outcome": outcome,
        });
        println!("{value}");
    }
    let Some(outcome) = outcome else {
        return Ok(EXIT_OK);
    };
    if !args.json {
        let line = match &outcome {
            Outcome::Reproduced { failure, at_step } => {
                let n = file.steps.len();
                let when = match at_step.cmp(&n) {
                    std::cmp::Ordering::Equal => format!("every one of the {n} steps as in the file"),
                    std::cmp::Ordering::Less => format!(
                        "after {at_step} of the file's {n} steps, each as in the file (earlier than the file)"
                    ),
                    std::cmp::Ordering::Greater => format!(
                        "after the file's {n} steps, each as in the file, and {} more",
                        at_step - n
                    ),
                };
                format!(
                    "REPRODUCED: {when}, and the same failure: {}",
                    lockstep::replay::first_line(failure)
                )
            }
            Outcome::Diverged { divergence } => format!("NOT REPRODUCED: {divergence}"),
            Outcome::FailedOtherwise { failure, at_step } => format!(
                "NOT REPRODUCED: each of the first {at_step} steps as in the file, but another failure: {}",
                lockstep::replay::first_line(failure)
            ),
            Outcome::Passed => {
                "PASSES NOW: every step of the file as in the file, and no failure".into()
            }
        };
        println!("{line}");
    }
    Ok(match outcome {
        Outcome::Passed => EXIT_OK,
        Outcome::Reproduced { .. } => EXIT_PROPERTY_FAILED,
        Outcome::Diverged { .. } | Outcome::FailedOtherwise { .. } => EXIT_BUG_NOT_REPRODUCED,
    })
}

/// Says why nothing was rerun, on stderr (and as `{"outcome":null,"error"}` with --json), and
/// exits `code`: 74 where cargo or the test could not run, 2 where no workspace was named.
fn fail(json: bool, code: u8, message: String) -> Result<u8, String> {
    eprintln!("lockstep: {message}");
    if json {
        println!(
            "{}",
            serde_json::json!({ "outcome": null, "error": message })
        );
    }
    Ok(code)
}

/// The workspace root: the directory of `manifest`, or of the workspace cargo finds here. `Err`
/// with its exit code.
fn workspace_root(manifest: Option<&Path>) -> Result<PathBuf, (u8, String)> {
    let mut locate = Command::new(cargo());
    locate.args(["locate-project", "--workspace", "--message-format", "plain"]);
    if let Some(manifest) = manifest {
        locate.arg("--manifest-path").arg(manifest);
    }
    let output = locate.output().map_err(|e| {
        (
            EXIT_STORAGE,
            format!(
                "cannot run cargo ({e}): lockstep replay reruns a case in its cargo test, so it \
                 needs cargo and a lockstep source tree"
            ),
        )
    })?;
    if !output.status.success() {
        return Err((
            crate::cli::EXIT_USAGE,
            format!(
                "no cargo workspace here ({}): run lockstep replay inside a lockstep clone, or \
                 give --manifest-path",
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        ));
    }
    let manifest = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    let root = manifest.parent().map(Path::to_path_buf).unwrap_or_default();
    if !root.join("tests").join("Cargo.toml").exists() || !root.join("impl").exists() {
        return Err((
            crate::cli::EXIT_USAGE,
            format!(
                "{} is not a lockstep workspace (no tests/Cargo.toml and impl/): give \
                 --manifest-path",
                root.display()
            ),
        ));
    }
    Ok(root)
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// The cargo command that reruns `file`, and the same as a line for people.
fn rerun_command(file: &ReplayFile, root: &Path, profile: &str) -> (Command, String) {
    let t = &file.rerun;
    let mut args: Vec<String> = vec![
        "test".into(),
        "--manifest-path".into(),
        root.join("Cargo.toml").display().to_string(),
        "--profile".into(),
        profile.into(),
        "-p".into(),
        t.package.clone(),
    ];
    if !t.features.is_empty() {
        args.push("--features".into());
        args.push(t.features.join(","));
    }
    args.extend([
        "--test".into(),
        t.target.clone(),
        "--".into(),
        t.test.clone(),
        "--exact".into(),
        "--nocapture".into(),
    ]);
    let mut command = Command::new(cargo());
    command.args(&args);
    let mut shown = String::new();
    if let Some(dir) = &t.target_dir {
        let dir = root.join(dir);
        shown.push_str(&format!("CARGO_TARGET_DIR={} ", dir.display()));
        command.env("CARGO_TARGET_DIR", dir);
    }
    shown.push_str(&format!("cargo {}", args.join(" ")));
    (command, shown)
}

/// Runs the test and reads the outcome it wrote. Its output goes to our stderr: it is the
/// harness's account of the rerun, for people.
fn run(command: &mut Command, file: &Path) -> Result<Outcome, String> {
    let outcome_dir = tempfile::tempdir().map_err(|e| format!("a temporary directory: {e}"))?;
    let outcome_path = outcome_dir.path().join("outcome.json");
    command
        .env(ENV_FILE, file)
        .env(ENV_OUTCOME, &outcome_path)
        .stdout(std::process::Stdio::from(std::io::stderr()));
    let status = command
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    match std::fs::read_to_string(&outcome_path) {
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| format!("the test wrote an outcome that cannot be read ({e}): {text}")),
        Err(_) => Err(format!(
            "the test ran no replay (cargo exited with {status}): it did not build, or its replay \
             test stopped before it could say (its output is above)"
        )),
    }
}
