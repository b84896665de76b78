//! The lake's commands run as subprocesses, as a newcomer would from a fresh clone: `branch
//! create|commit|log`, `merge` and its exit codes, `merge-locks`, `force-release --merge`,
//! `recover`, and `gc` keeping what recovery needs.

#[cfg(feature = "mutants")]
use std::os::unix::process::CommandExt;
#[cfg(feature = "mutants")]
use std::process::Stdio;
use std::process::{Command, Output};
#[cfg(feature = "mutants")]
use std::time::{Duration, Instant};

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

/// A lake with `main` (one commit, object `x`) and child `live` with `n` commits.
fn lake(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    ok(&["branch", "create", "--root", root, "main"], 0);
    ok(
        &[
            "branch",
            "commit",
            "--root",
            root,
            "main",
            "--message",
            "base",
            "--object",
            "x",
        ],
        0,
    );
    ok(
        &["branch", "create", "--root", root, "live", "--from", "main"],
        0,
    );
    for i in 0..n {
        ok(
            &[
                "branch",
                "commit",
                "--root",
                root,
                "live",
                "--message",
                &format!("c{i}"),
            ],
            0,
        );
    }
    dir
}

/// A `lockstep merge` that stops answering after `creates` creates (test builds only), holding
/// what it created, until the test kills it.
#[cfg(feature = "mutants")]
fn stuck_merge(root: &str, creates: u32) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(["merge", "--root", root, "live"])
        .env("LOCKSTEP_FAULT", format!("hang-after-creates:{creates}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap()
}

fn merge_lock(root: &str) -> serde_json::Value {
    json(&["merge-locks", "--root", root, "--json"])["merge_locks"][0].clone()
}

#[cfg(feature = "mutants")]
fn wait_held(root: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lock = merge_lock(root);
        if lock["state"] == "held" {
            return lock;
        }
        assert!(
            Instant::now() < deadline,
            "the merge lock never became held: {lock}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(feature = "mutants")]
/// SIGKILL: the merger dies with no chance to clean up, as in a crash.
fn kill(child: &mut std::process::Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn branches_commits_merges_and_logs() {
    let dir = lake(3);
    let root = dir.path().to_str().unwrap();
    let merged = json(&["merge", "--root", root, "live", "--json"]);
    assert_eq!(merged["outcome"], "merged");
    assert_eq!(
        (merged["from"].as_u64(), merged["to"].as_u64()),
        (Some(0), Some(3))
    );
    // The parent's log: its own commit and one merge commit, counted.
    let log = json(&["branch", "log", "--root", root, "main", "--json"]);
    let entries = log["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1]["entry"]["op"], "merge");
    assert_eq!(entries[1]["counted"], true);
    // The child's TAIL/BASE: commits below 3 are in the parent, synced after parent entry 1.
    let log = json(&["branch", "log", "--root", root, "live", "--json"]);
    assert_eq!(log["tailbase"]["tail"], 3);
    assert_eq!(log["tailbase"]["base"], 2);
    let text = ok(&["branch", "log", "--root", root, "live"], 0);
    assert!(text.contains("TAIL 3 BASE 2"), "{text}");
    // Nothing new: exit 0, said so.
    let again = ok(&["merge", "--root", root, "live"], 0);
    assert!(again.contains("nothing to merge"), "{again}");
    // Binary bytes from a file survive.
    let file = dir.path().join("blob");
    std::fs::write(&file, [0u8, 255, 7]).unwrap();
    ok(
        &[
            "branch",
            "commit",
            "--root",
            root,
            "live",
            "--file",
            file.to_str().unwrap(),
        ],
        0,
    );
    let log = json(&["branch", "log", "--root", root, "live", "--json"]);
    assert_eq!(log["entries"][3]["entry"]["add"][0]["data_hex"], "00ff07");
}

#[test]
fn a_conflict_exits_76_and_changes_nothing() {
    let dir = lake(1);
    let root = dir.path().to_str().unwrap();
    ok(
        &["branch", "commit", "--root", root, "live", "--delete", "x"],
        0,
    );
    ok(
        &["branch", "commit", "--root", root, "main", "--delete", "x"],
        0,
    );
    let before = ok(&["branch", "log", "--root", root, "main", "--json"], 0);
    let output = lockstep(&["merge", "--root", root, "live"]);
    assert_eq!(output.status.code(), Some(76));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("conflict") && stderr.contains("deletes x"),
        "{stderr}"
    );
    assert_eq!(
        ok(&["branch", "log", "--root", root, "main", "--json"], 0),
        before
    );
    assert_eq!(merge_lock(root)["state"], "free");
}

#[test]
fn bad_input_gets_a_clear_error() {
    let dir = lake(0);
    let root = dir.path().to_str().unwrap();
    for (args, needle) in [
        (vec!["merge", "--root", root, "main"], "root branch"),
        (vec!["merge", "--root", root, "ghost"], "no branch ghost"),
        (
            vec!["branch", "create", "--root", root, "../up"],
            "invalid branch name",
        ),
        (
            vec!["branch", "create", "--root", root, "main"],
            "exists already",
        ),
        (
            vec!["merge", "--root", root, "live", "--timeout", "soon"],
            "--timeout",
        ),
        (
            vec!["force-release", "--root", root, "--merge", "a/b"],
            "invalid branch name",
        ),
    ] {
        let output = lockstep(&args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    // A commit needs content; clap says which.
    let output = lockstep(&["branch", "commit", "--root", root, "live"]);
    assert_eq!(output.status.code(), Some(2));
    // Reading a lake that is not there creates nothing.
    let empty = tempfile::tempdir().unwrap();
    let empty_root = empty.path().to_str().unwrap();
    let output = lockstep(&["branch", "log", "--root", empty_root, "main"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(!empty.path().join(".lockstep").exists());
    assert_eq!(
        json(&["merge-locks", "--root", empty_root, "--json"])["merge_locks"],
        serde_json::json!([])
    );
}

/// A merger killed between its parent append and its TAIL move: `merge-locks` shows the lock
/// stuck (its holder proven dead), a second merger is refused meanwhile (75), `recover` frees it,
/// and the next merge rolls the crashed merge forward: each child commit is in the parent once.
#[cfg(feature = "mutants")] // the stuck merger needs LOCKSTEP_FAULT
#[test]
fn a_killed_merger_is_recovered_and_rolled_forward() {
    let dir = lake(2);
    let root = dir.path().to_str().unwrap();
    let mut merger = stuck_merge(root, 2); // `lock`, then the parent append
    let held = wait_held(root);
    assert_eq!(held["holder_liveness"], "alive", "{held}");
    assert_eq!(held["intent_from"], 0);
    // Wait for the parent append too, then kill.
    let deadline = Instant::now() + Duration::from_secs(10);
    while json(&["branch", "log", "--root", root, "main", "--json"])["entries"]
        .as_array()
        .unwrap()
        .len()
        < 2
    {
        assert!(Instant::now() < deadline, "the merge commit never landed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let busy = lockstep(&["merge", "--root", root, "live"]);
    assert_eq!(busy.status.code(), Some(75));
    assert!(String::from_utf8_lossy(&busy.stderr).contains("held by"));
    kill(&mut merger);
    // Busy again, and now told that the holder is dead and what frees the lock.
    let busy = lockstep(&["merge", "--root", root, "live"]);
    assert_eq!(busy.status.code(), Some(75));
    assert!(
        String::from_utf8_lossy(&busy.stderr).contains("lockstep recover"),
        "{}",
        String::from_utf8_lossy(&busy.stderr)
    );
    let stuck = merge_lock(root);
    assert_eq!(stuck["state"], "stuck", "{stuck}");
    assert_eq!(stuck["holder_liveness"], "dead");
    let text = ok(&["merge-locks", "--root", root], 0);
    assert!(text.contains("STUCK"), "{text}");
    // A commit lands while the lock is stuck: it waits for the next merge.
    ok(
        &[
            "branch",
            "commit",
            "--root",
            root,
            "live",
            "--message",
            "late",
        ],
        0,
    );
    let recovered = json(&["recover", "--root", root, "--json"]);
    assert_eq!(
        recovered["merge_locks_released"].as_array().unwrap().len(),
        1
    );
    assert_eq!(merge_lock(root)["state"], "free");
    let merged = json(&["merge", "--root", root, "live", "--json"]);
    assert_eq!(merged["outcome"], "rolled-forward", "{merged}");
    assert_eq!(
        (merged["from"].as_u64(), merged["to"].as_u64()),
        (Some(0), Some(2))
    );
    let merged = json(&["merge", "--root", root, "live", "--json"]);
    assert_eq!(merged["outcome"], "merged");
    assert_eq!(
        (merged["from"].as_u64(), merged["to"].as_u64()),
        (Some(2), Some(3))
    );
    let log = json(&["branch", "log", "--root", root, "main", "--json"]);
    let merges: Vec<(u64, u64)> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["entry"]["op"] == "merge")
        .map(|e| {
            (
                e["entry"]["from"].as_u64().unwrap(),
                e["entry"]["to"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(merges, [(0, 2), (2, 3)], "each child commit once, in order");
}

/// An operator frees a live merger's lock: a wrong token is refused (2), the right one frees it,
/// and the next merge goes through.
#[cfg(feature = "mutants")] // the stuck merger needs LOCKSTEP_FAULT
#[test]
fn force_release_frees_a_live_mergers_lock() {
    let dir = lake(1);
    let root = dir.path().to_str().unwrap();
    let mut merger = stuck_merge(root, 1);
    let held = wait_held(root);
    let index = held["index"].as_u64().unwrap();
    let wrong = (index + 7).to_string();
    let output = lockstep(&[
        "force-release",
        "--root",
        root,
        "--merge",
        "live",
        "--token",
        &wrong,
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("token mismatch"));
    let released = json(&[
        "force-release",
        "--root",
        root,
        "--merge",
        "live",
        "--token",
        &index.to_string(),
        "--json",
    ]);
    assert_eq!(released["released"]["index"], index);
    assert_eq!(merge_lock(root)["state"], "free");
    let merged = json(&["merge", "--root", root, "live", "--json"]);
    assert_eq!(merged["outcome"], "merged");
    kill(&mut merger);
    let again = ok(&["force-release", "--root", root, "--merge", "live"], 0);
    assert!(again.contains("not held"), "{again}");
}

/// `gc` keeps the owner file of a dead merge-lock holder: it is what proves the death to
/// `recover`.
#[cfg(feature = "mutants")] // the stuck merger needs LOCKSTEP_FAULT
#[test]
fn gc_keeps_what_merge_recovery_needs() {
    let dir = lake(1);
    let root = dir.path().to_str().unwrap();
    let mut merger = stuck_merge(root, 1);
    wait_held(root);
    kill(&mut merger);
    ok(&["gc", "--root", root], 0);
    let stuck = merge_lock(root);
    assert_eq!(stuck["holder_liveness"], "dead", "{stuck}");
    let recovered = json(&["recover", "--root", root, "--json"]);
    assert_eq!(
        recovered["merge_locks_released"].as_array().unwrap().len(),
        1
    );
}

/// Where the file store keeps key `key` of a root.
fn data(root: &str, key: &str) -> std::path::PathBuf {
    std::path::Path::new(root).join(".lockstep/data").join(key)
}

/// Entries nobody but lockstep should write, planted by hand: each is an error naming its key
/// (exit 74), quickly, and a corrupt branch does not stop `merge-locks` or `recover` for the
/// others.
#[test]
fn hostile_entries_are_errors_naming_their_key() {
    let cases: [(&str, fn(&str)); 5] = [
        ("branches/live/mergelock/~00000000000000000000", |root| {
            std::fs::create_dir_all(data(root, "branches/live/mergelock/~00000000000000000000"))
                .unwrap()
        }),
        ("branches/main/commits/~00000000000000000001", |root| {
            std::fs::create_dir_all(data(root, "branches/main/commits/~00000000000000000001"))
                .unwrap()
        }),
        ("branches/live/commits/~00000000000000000001", |root| {
            std::fs::write(
                data(root, "branches/live/commits/~00000000000000000001"),
                br#"{"v":2,"op":"commit","id":"x"}"#,
            )
            .unwrap()
        }),
        ("branches/live/commits/~+0000000000000000005", |root| {
            std::fs::write(
                data(root, "branches/live/commits/~+0000000000000000005"),
                b"{}",
            )
            .unwrap()
        }),
        ("branches/live/commits/~00000000000000000001", |root| {
            std::os::unix::fs::symlink(
                "/etc/passwd",
                data(root, "branches/live/commits/~00000000000000000001"),
            )
            .unwrap()
        }),
    ];
    for (key, plant) in cases {
        let dir = lake(1);
        let root = dir.path().to_str().unwrap();
        plant(root);
        let output = lockstep(&["merge", "--root", root, "live", "--timeout", "2"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(74), "{key}: {stderr}");
        assert!(stderr.contains(key), "{key}: {stderr}");
        // Nothing merged, and the lock is not left held.
        let log = json(&["branch", "log", "--root", root, "main", "--json"]);
        assert_eq!(log["entries"].as_array().unwrap().len(), 1, "{key}: {log}");
        assert_ne!(merge_lock(root)["state"], "held", "{key}");
    }
    // A corrupt branch is reported as such; the others are still queried and recovered.
    let dir = lake(1);
    let root = dir.path().to_str().unwrap();
    ok(
        &["branch", "create", "--root", root, "zzz", "--from", "main"],
        0,
    );
    std::fs::create_dir_all(data(root, "branches/zzz/mergelock")).unwrap();
    std::fs::write(
        data(root, "branches/zzz/mergelock/~00000000000000000000"),
        b"garbage",
    )
    .unwrap();
    let locks = json(&["merge-locks", "--root", root, "--json"]);
    let states: Vec<(&str, &str)> = locks["merge_locks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["branch"].as_str().unwrap(), l["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [("live", "free"), ("zzz", "corrupt")]);
    ok(&["recover", "--root", root], 0);
}

#[test]
fn usage_errors_never_write() {
    let dir = lake(0);
    let root = dir.path().to_str().unwrap();
    // An existing root branch cannot be created again as a child; nothing is written for it.
    let output = lockstep(&["branch", "create", "--root", root, "main", "--from", "live"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(!data(root, "branches/main/tailbase").exists());
    // Huge or negative durations are usage errors, not panics.
    for timeout in ["1e20", "18446744073709551616", "-1", "NaN"] {
        let output = lockstep(&[
            "merge",
            "--root",
            root,
            "live",
            &format!("--timeout={timeout}"),
        ]);
        assert_eq!(output.status.code(), Some(2), "--timeout {timeout}");
    }
    // force-release of a branch that is not a child.
    for branch in ["nope", "main"] {
        let output = lockstep(&["force-release", "--root", root, "--merge", branch]);
        assert_eq!(output.status.code(), Some(2), "{branch}");
    }
    // Names that read as options, empty object names.
    assert_eq!(
        lockstep(&["branch", "create", "--root", root, "--", "-x"])
            .status
            .code(),
        Some(2)
    );
    let output = lockstep(&["branch", "commit", "--root", root, "live", "--delete", ""]);
    assert_eq!(output.status.code(), Some(2));
    let output = lockstep(&[
        "branch", "commit", "--root", root, "live", "--delete", "a", "--object", "z",
    ]);
    assert_eq!(output.status.code(), Some(2), "--object without bytes");
}

#[test]
fn json_failures_carry_their_fields() {
    let dir = lake(1);
    let root = dir.path().to_str().unwrap();
    ok(
        &["branch", "commit", "--root", root, "live", "--delete", "x"],
        0,
    );
    ok(
        &["branch", "commit", "--root", root, "main", "--delete", "x"],
        0,
    );
    let output = lockstep(&["merge", "--root", root, "live", "--json"]);
    assert_eq!(output.status.code(), Some(76));
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(doc["error"]["kind"], "conflict");
    assert_eq!(doc["error"]["code"], 76);
    assert_eq!(doc["error"]["object"], "x");
    assert_eq!(doc["error"]["child_index"], 1);
}

/// `lockstep bench merge --quick --json`: every case, each beside the floor of the same run; the
/// writer's cases beside the writer alone, whose rounds alternate with theirs (no figure is
/// asserted: timing is the benchmark's, not the test's).
#[test]
fn bench_merge_reports_every_case_beside_its_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let doc = json(&[
        "bench",
        "merge",
        "--quick",
        "--json",
        "--dir",
        dir.path().to_str().unwrap(),
    ]);
    let cases: Vec<&serde_json::Value> = doc["measurements"].as_array().unwrap().iter().collect();
    let find = |name: &str| {
        *cases
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no case {name:?}: {cases:?}"))
    };
    for case in &cases {
        assert!(case["ratio_to_floor"].as_f64().unwrap() > 0.0, "{case}");
    }
    find("floor: durable create-if-absent (FsStore)");
    find("merge of 1 child commit (FsStore)");
    find("4 mergers of one branch, time to the first merge (FsStore)");
    for (case, baseline) in [
        (
            "merge of 100 child commits (FsStore)",
            "merge of 1 child commit (FsStore)",
        ),
        (
            "merge of 1000 child commits (FsStore)",
            "merge of 1 child commit (FsStore)",
        ),
        (
            "child commit, a merger merging in a loop (FsStore)",
            "child commit, no merges running (FsStore)",
        ),
        (
            "child commit, a merge every 50 ms (FsStore)",
            "child commit, no merges running (FsStore)",
        ),
        (
            "child commit, a disk neighbour creating in a loop (FsStore)",
            "child commit, no merges running (FsStore)",
        ),
    ] {
        let case = find(case);
        assert_eq!(case["baseline"], baseline, "{case}");
        assert!(case["ratio_to_baseline"].as_f64().unwrap() > 0.0, "{case}");
    }
    // Every case with a load ran as many rounds (3 in a quick run), each paired with a round
    // alone just before it: the writer alone ran once per case with a load.
    let rounds = |name: &str| find(name)["iterations"].as_u64().unwrap();
    let loaded = [
        "child commit, a merger merging in a loop (FsStore)",
        "child commit, a merge every 50 ms (FsStore)",
        "child commit, a disk neighbour creating in a loop (FsStore)",
    ];
    for case in loaded {
        assert_eq!(rounds(case), 3, "{case}");
    }
    assert_eq!(rounds("child commit, no merges running (FsStore)"), 9);
    // The scratch directory is gone.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
