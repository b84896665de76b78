//! The operator's commands run as subprocesses: `lock -- COMMAND`, `locks`, `force-release`,
//! `recover`, and their errors.

use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn lockstep(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lockstep")).args(args).output().expect("run lockstep")
}

fn root() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn locks_json(root: &str) -> serde_json::Value {
    let output = lockstep(&["locks", "--root", root, "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Waits until `locks` shows `path` held; returns its entry.
fn wait_held(root: &str, path: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let doc = locks_json(root);
        if let Some(lock) = doc["locks"].as_array().unwrap().iter().find(|l| l["path"] == path) {
            return lock.clone();
        }
        assert!(Instant::now() < deadline, "{path} never became locked");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A `lockstep lock … -- sleep 30` in its own process group, so a test can kill all of it.
fn hold_in_background(root: &str, mode: &str, path: &str) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(["lock", "--root", root, "--mode", mode, path, "--", "sleep", "30"])
        .stdout(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap()
}

fn kill_group(child: &mut std::process::Child, signal: &str) {
    let _ = Command::new("kill").args([signal, "--", &format!("-{}", child.id())]).status();
    let _ = child.wait();
}

#[test]
fn lock_runs_the_command_with_its_token_and_passes_the_exit_code() {
    let dir = root();
    let root = dir.path().to_str().unwrap();
    let output = lockstep(&["lock", "--root", root, "--mode", "mv", "/src", "/dst", "--", "sh", "-c", "echo $LOCKSTEP_TOKEN $LOCKSTEP_TOKENS; exit 7"]);
    assert_eq!(output.status.code(), Some(7));
    let text = String::from_utf8_lossy(&output.stdout);
    let fields: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(fields.len(), 2, "{text}");
    let token: u64 = fields[0].parse().unwrap();
    assert!(fields[1].contains("/dst=") && fields[1].contains("/src="), "{text}");
    assert!(fields[1].contains(&format!("={token}")), "LOCKSTEP_TOKEN is the largest token: {text}");
    assert!(locks_json(root)["locks"].as_array().unwrap().is_empty(), "released after the command");
}

#[test]
fn a_second_locker_is_refused_with_exit_75_naming_the_holder() {
    let dir = root();
    let root = dir.path().to_str().unwrap();
    let mut holder = hold_in_background(root, "subtree", "/a");
    let held = wait_held(root, "/a");
    assert_eq!(held["kind"], "subtree");
    assert_eq!(held["state"], "active");
    let refused = lockstep(&["lock", "--root", root, "--mode", "point", "/a/b", "--", "true"]);
    assert_eq!(refused.status.code(), Some(75));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("/a is locked by") && stderr.contains(held["owner"].as_str().unwrap()), "{stderr}");
    let waited = lockstep(&["lock", "--root", root, "--timeout", "0.3", "--mode", "point", "/a/b", "--", "true"]);
    assert_eq!(waited.status.code(), Some(75));
    assert!(String::from_utf8_lossy(&waited.stderr).contains("waited"));
    kill_group(&mut holder, "-TERM");
}

#[test]
fn force_release_checks_the_token() {
    let dir = root();
    let root = dir.path().to_str().unwrap();
    let mut holder = hold_in_background(root, "point", "/a");
    let held = wait_held(root, "/a");
    let token = held["token"].as_u64().unwrap();
    let wrong = lockstep(&["force-release", "--root", root, "/a", "--token", &(token + 1).to_string()]);
    assert_eq!(wrong.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("token mismatch"));
    let right = lockstep(&["force-release", "--root", root, "/a", "--token", &token.to_string(), "--json"]);
    assert_eq!(right.status.code(), Some(0));
    let doc: serde_json::Value = serde_json::from_slice(&right.stdout).unwrap();
    assert_eq!(doc["released"]["ticket"], token);
    assert!(locks_json(root)["locks"].as_array().unwrap().is_empty());
    kill_group(&mut holder, "-TERM");
}

/// A holder killed with SIGKILL leaves its lock; `recover` sees its process is gone and releases it.
#[test]
fn recover_releases_a_killed_holders_lock() {
    let dir = root();
    let root = dir.path().to_str().unwrap();
    let mut holder = hold_in_background(root, "subtree", "/k");
    wait_held(root, "/k");
    kill_group(&mut holder, "-KILL");
    let still = wait_held(root, "/k");
    assert_eq!(still["owner_liveness"], "dead");
    assert_eq!(still["state"], "stale");
    let output = lockstep(&["recover", "--root", root, "--json"]);
    assert_eq!(output.status.code(), Some(0));
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let released = doc["released"].as_array().unwrap();
    assert_eq!(released.len(), 1);
    assert_eq!(released[0]["path"], "/k");
    assert_eq!(released[0]["by"], "recovery");
    assert!(locks_json(root)["locks"].as_array().unwrap().is_empty());
    let again = lockstep(&["lock", "--root", root, "--mode", "point", "/k/x", "--", "true"]);
    assert_eq!(again.status.code(), Some(0));
}

#[test]
fn bad_input_is_refused_clearly() {
    let dir = root();
    let root = dir.path().to_str().unwrap();
    let missing = lockstep(&["locks", "--root", "/nonexistent/dir"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not a directory"));
    let escape = lockstep(&["lock", "--root", root, "--mode", "point", "/a/../../etc", "--", "true"]);
    assert_eq!(escape.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&escape.stderr).contains("may not escape the root"));
    let mv = lockstep(&["lock", "--root", root, "--mode", "mv", "/a", "--", "true"]);
    assert_eq!(mv.status.code(), Some(2));
    let timeout = lockstep(&["lock", "--root", root, "--timeout", "soon", "--mode", "point", "/a", "--", "true"]);
    assert_eq!(timeout.status.code(), Some(2));
    // A malformed entry: a clear error naming the key, nothing changed.
    let journal = dir.path().join(".lockstep/data/locks/bad");
    std::fs::create_dir_all(&journal).unwrap();
    std::fs::write(journal.join("~00000000000000000000"), b"{\"v\":7}").unwrap();
    let corrupt = lockstep(&["locks", "--root", root]);
    assert_eq!(corrupt.status.code(), Some(74));
    let stderr = String::from_utf8_lossy(&corrupt.stderr);
    assert!(stderr.contains("locks/bad/~00000000000000000000") && stderr.contains("format version 7"), "{stderr}");
}
