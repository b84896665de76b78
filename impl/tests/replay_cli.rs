//! `lockstep replay` as a subprocess: what it prints and how it exits for a committed replay file
//! (`--dry-run`: the rerun itself builds a test target, which `.ci/run` does after the tests),
//! and the errors a file that cannot be used gets. The reruns of the committed files are the
//! `replay`/`replay_file` tests of each harness.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn replay(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .arg("replay")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run lockstep")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Each committed file of each harness kind is read, and the command that reruns it names its
/// test target, its features and (for shuttle) its target directory.
#[test]
fn a_dry_run_names_the_test_that_reruns_each_committed_case() {
    let root = workspace();
    let cases = [
        (
            "lock-conformance-blind-release",
            "conformance",
            "-p lockstep-tests",
            "--test lock_conformance -- replay --exact",
        ),
        (
            "merge-conformance-blind-unlock",
            "conformance",
            "-p lockstep-tests",
            "--test merge_conformance -- replay --exact",
        ),
        (
            "lock-interleavings-skip-recheck",
            "conformance",
            "-p lockstep-tests",
            "--test lock_interleavings -- replay --exact",
        ),
        (
            "redo-conformance-effect-not-keyed",
            "conformance",
            "-p lockstep-tests",
            "--test redo_conformance -- replay --exact",
        ),
        (
            "lock-shuttle-skip-recheck",
            "shuttle",
            "--features shuttle,mutants",
            "--test shuttle -- replay_file --exact",
        ),
        (
            "merge-shuttle-blind-unlock",
            "shuttle",
            "--features shuttle,mutants",
            "--test merge_shuttle -- replay_file --exact",
        ),
        (
            "redo-shuttle-no-exclusion",
            "shuttle",
            "--features shuttle,mutants",
            "--test redo_shuttle -- replay_file --exact",
        ),
        (
            "lock-processes-skip-recheck",
            "processes",
            "-p lockstep",
            "--test lock_processes -- replay_file --exact",
        ),
        (
            "merge-processes-tail-to-own-cut",
            "processes",
            "-p lockstep",
            "--test merge_processes -- replay_file --exact",
        ),
        (
            "redo-processes-no-exclusion",
            "processes",
            "-p lockstep",
            "--test redo_processes -- replay_file --exact",
        ),
    ];
    for (name, harness, package, target) in cases {
        let file = root.join("tests/replays").join(format!("{name}.json"));
        let output = replay(&[file.to_str().unwrap(), "--dry-run", "--json"], &root);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{name}: {}",
            text(&output.stderr)
        );
        let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(doc["harness"], harness, "{doc}");
        assert!(
            doc["mutant"].is_string(),
            "{name}: a committed case names its mutant: {doc}"
        );
        assert!(doc["steps"].as_u64().unwrap() > 0, "{doc}");
        assert_eq!(
            doc["outcome"],
            serde_json::Value::Null,
            "a dry run runs nothing: {doc}"
        );
        let command = doc["command"].as_str().unwrap();
        assert!(
            command.contains(package) && command.contains(target),
            "{name}: {command}"
        );
        assert_eq!(
            command.contains("CARGO_TARGET_DIR="),
            harness == "shuttle",
            "{name}: only the shuttle builds have a target directory of their own: {command}"
        );
        // For people: the case, and the command with the file in LOCKSTEP_REPLAY.
        let output = replay(&[file.to_str().unwrap(), "--dry-run"], &root);
        let out = text(&output.stdout);
        assert!(out.contains(&format!("{harness} case of")), "{out}");
        assert!(out.contains("LOCKSTEP_REPLAY="), "{out}");
    }
}

#[test]
fn files_that_cannot_be_used_get_an_error_that_says_why() {
    let root = workspace();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let committed =
        std::fs::read_to_string(root.join("tests/replays/lock-conformance-blind-release.json"))
            .unwrap();
    let cases = [
        (write("garbage.json", "not json"), "not JSON"),
        (
            write("other.json", r#"{"format":"something-else","version":1}"#),
            "\"format\"",
        ),
        (
            write(
                "newer.json",
                &committed.replace("\"version\": 1", "\"version\": 2"),
            ),
            "version 2",
        ),
        (
            write(
                "protocol.json",
                &committed.replace("\"protocol\": \"lock\"", "\"protocol\": \"paxos\""),
            ),
            "unknown protocol",
        ),
        (
            write(
                "mutant.json",
                &committed.replace(
                    "\"mutant\": \"blind-release\"",
                    "\"mutant\": \"no-such-bug\"",
                ),
            ),
            "unknown mutant",
        ),
        (
            write(
                "field.json",
                &committed.replace("\"failure\":", "\"failed\":"),
            ),
            "failed",
        ),
        (dir.path().join("missing.json"), "cannot read"),
    ];
    for (path, says) in cases {
        let output = replay(&[path.to_str().unwrap()], &root);
        let stderr = text(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{}: {stderr}",
            path.display()
        );
        assert!(stderr.contains(says), "{}: {stderr}", path.display());
        assert!(
            output.stdout.is_empty(),
            "nothing ran: {}",
            text(&output.stdout)
        );
    }
    // A good file outside a lockstep workspace: replay needs the source tree, and says so.
    let file = root.join("tests/replays/lock-conformance-blind-release.json");
    let output = replay(&[file.to_str().unwrap(), "--dry-run"], dir.path());
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("--manifest-path"),
        "{}",
        text(&output.stderr)
    );
    // … and with --manifest-path it works from anywhere.
    let manifest = root.join("Cargo.toml");
    let output = replay(
        &[
            file.to_str().unwrap(),
            "--dry-run",
            "--manifest-path",
            manifest.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
}
