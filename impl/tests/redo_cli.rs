//! The redo log's commands run as subprocesses, as a newcomer would from a fresh clone:
//! `session add|commit|show`, `queue work`, `recover` replaying a dead committer's phase 2 (and
//! leaving a live one's alone, in another PID namespace too), `gc` keeping what recovery needs,
//! and bad input (names, files, corrupt entries, symlinks) refused with a clear error and no
//! change.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const SESSION: &str = "chat";

fn lockstep(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(args)
        .output()
        .expect("run lockstep")
}

/// Runs and requires `code`; returns stdout.
fn ok(args: &[&str], code: i32) -> String {
    let output = lockstep(args);
    assert_eq!(
        output.status.code(),
        Some(code),
        "{args:?}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn json(args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&ok(args, 0)).unwrap()
}

fn stderr_of(args: &[&str], code: i32) -> String {
    let output = lockstep(args);
    assert_eq!(output.status.code(), Some(code), "{args:?}: {output:?}");
    String::from_utf8(output.stderr).unwrap()
}

fn add(root: &str, text: &str) -> String {
    let doc = json(&[
        "session",
        "add",
        "--root",
        root,
        SESSION,
        "--message",
        text,
        "--json",
    ]);
    doc["id"].as_str().unwrap().to_owned()
}

fn show(root: &str) -> serde_json::Value {
    json(&["session", "show", "--root", root, SESSION, "--json"])
}

#[test]
fn add_commit_work_and_show_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let a = add(root, "the user prefers tea");
    let b = add(root, "no sugar");
    let before = show(root);
    for key in ["messages", "archives", "memories", "pending", "queue"] {
        assert!(
            before.get(key).is_some(),
            "`session show --json` has no {key}: {before}"
        );
    }
    assert_eq!(before["messages"].as_array().unwrap().len(), 2);

    let committed = json(&["session", "commit", "--root", root, SESSION, "--json"]);
    assert_eq!(committed["archive"], 0, "{committed}");
    assert_eq!(committed["messages"], serde_json::json!([a, b]));
    let memories = committed["memories"].as_array().unwrap();
    assert_eq!(memories.len(), 2, "{committed}");

    let after = show(root);
    assert_eq!(
        after["messages"],
        serde_json::json!([]),
        "archived messages are deleted"
    );
    assert_eq!(after["archives"][0]["done"], true, "{after}");
    assert_eq!(after["pending"], serde_json::json!([]));
    let visible: Vec<&str> = after["memories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        visible,
        memories
            .iter()
            .map(|m| m.as_str().unwrap())
            .collect::<Vec<_>>()
    );
    assert!(after["memories"][0]["text"]
        .as_str()
        .unwrap()
        .contains("tea"));
    assert_eq!(after["queue"][0]["state"], "pending", "{after}");

    let worked = json(&["queue", "work", "--root", root, "--once", "--json"]);
    assert_eq!(worked["processed"], serde_json::json!(["chat/0"]));
    let done = show(root);
    assert_eq!(done["queue"], serde_json::json!([]));
    assert_eq!(done["effects"], serde_json::json!({"0": 1}));

    // Nothing left: exit 0, archive null; a second worker pass does nothing.
    let empty = json(&["session", "commit", "--root", root, SESSION, "--json"]);
    assert_eq!(empty["archive"], serde_json::Value::Null);
    let idle = json(&["queue", "work", "--root", root, "--once", "--json"]);
    assert_eq!(idle["processed"], serde_json::json!([]));
    // The human forms say what happened.
    add(root, "third");
    let text = ok(&["session", "commit", "--root", root, SESSION], 0);
    assert!(text.contains("as archive 1"), "{text}");
    let text = ok(&["session", "show", "--root", root, SESSION], 0);
    assert!(
        text.contains("archive 1: 1 message(s)") && text.contains("done"),
        "{text}"
    );
}

/// A commit of a session whose lock another process holds exits 75 and changes nothing.
#[test]
fn a_commit_of_a_locked_session_is_busy() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    add(root, "hello");
    let mut holder = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args([
            "lock",
            "--root",
            root,
            "--mode",
            "point",
            "/sessions/chat",
            "--",
            "sleep",
            "30",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let locks = json(&["locks", "--root", root, "--json"]);
        if locks["locks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["path"] == "/sessions/chat")
        {
            break;
        }
        assert!(Instant::now() < deadline, "the session never became locked");
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = lockstep(&["session", "commit", "--root", root, SESSION, "--json"]);
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", holder.id())])
        .status();
    let _ = holder.wait();
    assert_eq!(output.status.code(), Some(75), "{output:?}");
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(doc["error"]["kind"], "busy", "{doc}");
    assert_eq!(doc["error"]["code"], 75);
    let view = show(root);
    assert_eq!(
        view["archives"],
        serde_json::json!([]),
        "nothing changed: {view}"
    );
    assert_eq!(view["messages"].as_array().unwrap().len(), 1);
}

#[test]
fn bad_input_is_refused_clearly_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    for name in ["../x", "a/b", "", "-rf", ".."] {
        let err = stderr_of(
            &[
                "session",
                "add",
                "--root",
                root,
                "--message",
                "m",
                "--",
                name,
            ],
            2,
        );
        assert!(err.contains("invalid session name"), "{name:?}: {err}");
    }
    let err = stderr_of(&["session", "add", "--root", root, SESSION], 2);
    assert!(
        err.contains("--message") || err.contains("required"),
        "{err}"
    );
    let err = stderr_of(
        &[
            "session",
            "add",
            "--root",
            root,
            SESSION,
            "--file",
            "/nonexistent/m.txt",
        ],
        2,
    );
    assert!(err.contains("cannot read /nonexistent/m.txt"), "{err}");
    let big = dir.path().join("big.txt");
    std::fs::write(&big, vec![b'a'; (1 << 20) + 1]).unwrap();
    let err = stderr_of(
        &[
            "session",
            "add",
            "--root",
            root,
            SESSION,
            "--file",
            big.to_str().unwrap(),
        ],
        2,
    );
    assert!(err.contains("at most 1048576 bytes"), "{err}");
    let err = stderr_of(
        &["session", "commit", "--root", "/nonexistent-root", SESSION],
        2,
    );
    assert!(err.contains("is not a directory"), "{err}");
    // Nothing was written for any of them.
    assert_eq!(show(root)["messages"], serde_json::json!([]));
}

/// An entry this build cannot read (malformed, or of another format version) stops a commit
/// with exit 74 naming it, and nothing is changed; a symlink planted in the store is never
/// followed.
#[test]
fn corrupt_entries_and_symlinks_stop_a_commit_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    add(root, "kept");
    ok(&["session", "commit", "--root", root, SESSION], 0);
    add(root, "waiting");
    let archives = dir.path().join(".lockstep/data/sessions/chat/archives");
    assert!(archives.is_dir(), "the store layout changed: {archives:?}");
    let archive0 = archives.join(format!("{:020}", 0));
    let good = std::fs::read(&archive0).unwrap();
    for (what, bytes) in [
        ("malformed", b"{not json".to_vec()),
        (
            "another version",
            br#"{"v":9,"messages":[],"owner":"x","written_at_ms":0}"#.to_vec(),
        ),
    ] {
        std::fs::remove_file(&archive0).unwrap();
        std::fs::write(&archive0, &bytes).unwrap();
        let before = show_raw(root);
        let err = stderr_of(&["session", "commit", "--root", root, SESSION], 74);
        assert!(
            err.contains("cannot read sessions/chat/archives/"),
            "{what}: {err}"
        );
        assert_eq!(
            show_raw(root),
            before,
            "{what}: the commit changed something"
        );
    }
    // A symlink where an archive would be: refused, not followed.
    std::fs::remove_file(&archive0).unwrap();
    let outside = dir.path().join("outside.json");
    std::fs::write(&outside, &good).unwrap();
    std::os::unix::fs::symlink(&outside, &archive0).unwrap();
    let err = stderr_of(&["session", "commit", "--root", root, SESSION], 74);
    assert!(
        err.contains("symlink") || err.contains("not an entry lockstep wrote"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&outside).unwrap(),
        good,
        "the symlink's target was touched"
    );
}

/// `session show` of the raw store: the whole data directory's listing and contents.
fn show_raw(root: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let base = std::path::Path::new(root).join(".lockstep/data");
    let mut stack = vec![base.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path
                .strip_prefix(&base)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            // The session lock writes a ticket and journal entries on every attempt; the redo
            // log's own keys must not change.
            if ["locks", "owners", "tickets"]
                .iter()
                .any(|p| name.starts_with(p))
            {
                continue;
            }
            if path.is_dir() && !path.is_symlink() {
                stack.push(path);
            } else {
                out.push((name, std::fs::read(&path).unwrap_or_default()));
            }
        }
    }
    out.sort();
    out
}

/// A committer stopped in its phase 2 (test builds: it hangs after N creates).
fn stopped_committer(root: &str, creates: u32, in_namespace: bool) -> Child {
    let binary = env!("CARGO_BIN_EXE_lockstep");
    let mut command = if in_namespace {
        let mut c = Command::new("unshare");
        c.args(["--pid", "--fork", "--mount-proc", binary]);
        c
    } else {
        Command::new(binary)
    };
    command
        .args(["session", "commit", "--root", root, SESSION])
        .env("LOCKSTEP_FAULT", format!("hang-after-creates:{creates}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    command.spawn().unwrap()
}

/// Waits until archive 0 exists (its committer is past phase 1).
fn wait_archived(root: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while show(root)["archives"].as_array().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the committer never archived");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn kill_group(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .status();
    let _ = child.wait();
}

/// The session lock takes a few creates, the archive one; 5 creates stops the committer inside
/// phase 2 (after the archive, before `done`).
const IN_PHASE2: u32 = 5;

fn recover_json(root: &str) -> serde_json::Value {
    json(&["recover", "--root", root, "--json"])["redo"].clone()
}

#[cfg(feature = "mutants")]
#[test]
fn recover_replays_a_dead_committers_phase2_and_leaves_a_live_one_alone() {
    for in_namespace in [false, true] {
        if in_namespace && !namespaces_available() {
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_str().unwrap();
        add(root, "remember me");
        let mut committer = stopped_committer(root, IN_PHASE2, in_namespace);
        wait_archived(root);
        std::thread::sleep(Duration::from_millis(100));
        // Alive (in this namespace or another): its phase 2 is its own to finish.
        let live = recover_json(root);
        assert_eq!(
            live["replayed"],
            serde_json::json!([]),
            "namespace {in_namespace}: {live}"
        );
        assert_eq!(
            live["left_to_their_committer"],
            serde_json::json!(["chat/0"]),
            "{live}"
        );
        assert_eq!(show(root)["archives"][0]["owner_liveness"], "alive");
        kill_group(&mut committer);
        // Dead: the kernel dropped its registration's lock, and recovery replays.
        let view = show(root);
        assert_eq!(view["archives"][0]["owner_liveness"], "dead", "{view}");
        assert_eq!(view["pending"], serde_json::json!([0]), "{view}");
        let dead = recover_json(root);
        assert_eq!(
            dead["replayed"][0]["archive"], 0,
            "namespace {in_namespace}: {dead}"
        );
        let after = show(root);
        assert_eq!(after["pending"], serde_json::json!([]), "{after}");
        assert!(!after["memories"].as_array().unwrap().is_empty(), "{after}");
        assert_eq!(after["memories_missing"], serde_json::json!([]));
        // A second recovery has nothing to do.
        let again = recover_json(root);
        assert_eq!(again["replayed"], serde_json::json!([]), "{again}");
        json(&["queue", "work", "--root", root, "--once", "--json"]);
        assert_eq!(show(root)["effects"], serde_json::json!({"0": 1}));
    }
}

/// `gc` must keep the registration file of a pending archive's dead committer: without it the
/// committer's liveness is unknown, and recovery would never replay its phase 2.
#[cfg(feature = "mutants")]
#[test]
fn gc_keeps_what_recovery_needs() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    add(root, "remember me");
    let mut committer = stopped_committer(root, IN_PHASE2, false);
    wait_archived(root);
    std::thread::sleep(Duration::from_millis(100));
    kill_group(&mut committer);
    ok(&["gc", "--root", root], 0);
    let view = show(root);
    assert_eq!(
        view["archives"][0]["owner_liveness"], "dead",
        "gc removed the proof: {view}"
    );
    assert_eq!(recover_json(root)["replayed"][0]["archive"], 0);
}

/// A worker killed after its claim: its claim is stale, recovery frees it, the next worker
/// applies the effect once.
#[cfg(feature = "mutants")]
#[test]
fn a_dead_workers_claim_is_freed_and_its_item_applied_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    add(root, "index me");
    ok(&["session", "commit", "--root", root, SESSION], 0);
    // The worker's first create is its claim; it hangs right after it.
    let mut worker = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(["queue", "work", "--root", root, "--once"])
        .env("LOCKSTEP_FAULT", "hang-after-creates:1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while show(root)["queue"][0]["state"] != "claimed" {
        assert!(
            Instant::now() < deadline,
            "the worker never claimed: {}",
            show(root)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Another worker leaves a live worker's claim alone.
    let other = json(&["queue", "work", "--root", root, "--once", "--json"]);
    assert_eq!(other["processed"], serde_json::json!([]), "{other}");
    assert_eq!(other["claimed_elsewhere"], 1);
    kill_group(&mut worker);
    assert_eq!(show(root)["queue"][0]["state"], "stale");
    let freed = recover_json(root);
    assert_eq!(
        freed["claims_freed"],
        serde_json::json!(["chat/0"]),
        "{freed}"
    );
    assert_eq!(show(root)["queue"][0]["state"], "pending");
    let worked = json(&["queue", "work", "--root", root, "--once", "--json"]);
    assert_eq!(worked["processed"], serde_json::json!(["chat/0"]));
    assert_eq!(show(root)["effects"], serde_json::json!({"0": 1}));
}

fn namespaces_available() -> bool {
    let probe = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .status();
    match probe {
        Ok(status) if status.success() => true,
        _ if std::env::var("LOCKSTEP_SKIP_NAMESPACES").is_ok_and(|v| v == "1") => {
            eprintln!("SKIPPED: `unshare --pid` is not available here (LOCKSTEP_SKIP_NAMESPACES=1)");
            false
        }
        other => panic!("`unshare --pid --fork --mount-proc` fails here ({other:?}); run as root, or set LOCKSTEP_SKIP_NAMESPACES=1 to skip"),
    }
}

#[test]
fn help_explains_the_commands() {
    let help = ok(&["session", "commit", "--help"], 0);
    assert!(help.contains("75") && help.contains("phase 2"), "{help}");
    let help = ok(&["queue", "work", "--help"], 0);
    assert!(help.contains("--once"), "{help}");
    let help = ok(&["recover", "--help"], 0);
    assert!(help.contains("redo"), "{help}");
}

/// `lockstep bench redo --quick --json`: every case, each beside the floor of the same run, and
/// recovery beside the same number of floor creates (no figure is asserted: timing is the
/// benchmark's, not the test's).
#[test]
fn bench_redo_reports_every_case_beside_its_floor() {
    let dir = tempfile::tempdir().unwrap();
    let doc = json(&[
        "bench",
        "redo",
        "--quick",
        "--json",
        "--dir",
        dir.path().to_str().unwrap(),
    ]);
    let cases: Vec<&serde_json::Value> = doc["measurements"].as_array().unwrap().iter().collect();
    let names: Vec<&str> = cases.iter().map(|c| c["name"].as_str().unwrap()).collect();
    for expected in [
        "floor: durable create-if-absent (FsStore)",
        "commit phase 1, 1 message (FsStore)",
        "commit, 1 message (FsStore)",
        "commit, 10 messages (FsStore)",
        "worker, per item (FsStore)",
        "1000 floor creates, one after another (FsStore)",
        "recovery of 1000 pending records (FsStore)",
    ] {
        assert!(names.contains(&expected), "no case {expected:?}: {names:?}");
    }
    for case in &cases {
        assert!(case["ratio_to_floor"].as_f64().unwrap() > 0.0, "{case}");
    }
    let recovery = cases
        .iter()
        .find(|c| c["name"].as_str().unwrap().starts_with("recovery"))
        .unwrap();
    assert_eq!(
        recovery["baseline"],
        "1000 floor creates, one after another (FsStore)"
    );
    // The scratch directory is gone.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
