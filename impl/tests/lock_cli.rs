//! The operator's commands run as subprocesses: `lock -- COMMAND`, `locks`, `force-release`,
//! `recover`, and their errors.

use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn lockstep(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(args)
        .output()
        .expect("run lockstep")
}

fn root() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn locks_json(root: &str) -> serde_json::Value {
    let output = lockstep(&["locks", "--root", root, "--json"]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Waits until `locks` shows `path` held; returns its entry.
fn wait_held(root: &str, path: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let doc = locks_json(root);
        if let Some(lock) = doc["locks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["path"] == path)
        {
            return lock.clone();
        }
        assert!(Instant::now() < deadline, "{path} never became locked");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A `lockstep lock … -- sleep 30` in its own process group, so a test can kill all of it.
fn hold_in_background(root: &str, mode: &str, path: &str) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args([
            "lock", "--root", root, "--mode", mode, path, "--", "sleep", "30",
        ])
        .stdout(Stdio::null())
        // Read by the tests that expect a message; otherwise kept out of the test output.
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap()
}

fn kill_group(child: &mut std::process::Child, signal: &str) {
    let _ = Command::new("kill")
        .args([signal, "--", &format!("-{}", child.id())])
        .status();
    let _ = child.wait();
}

#[test]
fn lock_runs_the_command_with_its_token_and_passes_the_exit_code() {
    let dir = root();
    let root = dir.path().to_str().unwrap();
    // mv SRC DST locks SRC and DST's parent, as `Operation::mv` does.
    let output = lockstep(&[
        "lock",
        "--root",
        root,
        "--mode",
        "mv",
        "/src",
        "/dst/moved",
        "--",
        "sh",
        "-c",
        "echo \"[$LOCKSTEP_TOKEN]\" $LOCKSTEP_TOKENS; exit 7",
    ]);
    assert_eq!(output.status.code(), Some(7));
    let text = String::from_utf8_lossy(&output.stdout);
    let fields: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(fields.len(), 2, "{text}");
    // Two locks, two tokens that are not comparable: no single LOCKSTEP_TOKEN.
    assert_eq!(fields[0], "[]", "{text}");
    assert!(
        fields[1].contains("/dst=") && fields[1].contains("/src="),
        "{text}"
    );
    assert!(
        locks_json(root)["locks"].as_array().unwrap().is_empty(),
        "released after the command"
    );
    let single = lockstep(&[
        "lock",
        "--root",
        root,
        "--mode",
        "point",
        "/one",
        "--",
        "sh",
        "-c",
        "echo $LOCKSTEP_TOKEN $LOCKSTEP_TOKENS",
    ]);
    let text = String::from_utf8_lossy(&single.stdout);
    let fields: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(fields.len(), 2, "{text}");
    assert_eq!(
        fields[1],
        format!("/one={}", fields[0]),
        "one lock: LOCKSTEP_TOKEN is its token: {text}"
    );
}

#[test]
fn a_second_locker_is_refused_with_exit_75_naming_the_holder() {
    let dir = root();
    let root = dir.path().to_str().unwrap();
    let mut holder = hold_in_background(root, "subtree", "/a");
    let held = wait_held(root, "/a");
    assert_eq!(held["kind"], "subtree");
    assert_eq!(held["state"], "active");
    let refused = lockstep(&[
        "lock", "--root", root, "--mode", "point", "/a/b", "--", "true",
    ]);
    assert_eq!(refused.status.code(), Some(75));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("/a is locked by") && stderr.contains(held["owner"].as_str().unwrap()),
        "{stderr}"
    );
    let waited = lockstep(&[
        "lock",
        "--root",
        root,
        "--timeout",
        "0.3",
        "--mode",
        "point",
        "/a/b",
        "--",
        "true",
    ]);
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
    let wrong = lockstep(&[
        "force-release",
        "--root",
        root,
        "/a",
        "--token",
        &(token + 1).to_string(),
    ]);
    assert_eq!(wrong.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("token mismatch"));
    let right = lockstep(&[
        "force-release",
        "--root",
        root,
        "/a",
        "--token",
        &token.to_string(),
        "--json",
    ]);
    assert_eq!(right.status.code(), Some(0));
    let doc: serde_json::Value = serde_json::from_slice(&right.stdout).unwrap();
    assert_eq!(doc["released"]["ticket"], token);
    assert!(locks_json(root)["locks"].as_array().unwrap().is_empty());
    // The holder learns it lost the lock: it stops COMMAND and says so (exit 77).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while holder.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if holder.try_wait().unwrap().is_none() {
        kill_group(&mut holder, "-TERM");
    }
    let mut stderr = String::new();
    std::io::Read::read_to_string(holder.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("was lost"), "{stderr}");
    assert_eq!(holder.wait().unwrap().code(), Some(77), "{stderr}");
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
    let again = lockstep(&[
        "lock", "--root", root, "--mode", "point", "/k/x", "--", "true",
    ]);
    assert_eq!(again.status.code(), Some(0));
}

#[test]
fn bad_input_is_refused_clearly() {
    let dir = root();
    let root = dir.path().to_str().unwrap();
    let missing = lockstep(&["locks", "--root", "/nonexistent/dir"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not a directory"));
    let escape = lockstep(&[
        "lock",
        "--root",
        root,
        "--mode",
        "point",
        "/a/../../etc",
        "--",
        "true",
    ]);
    assert_eq!(escape.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&escape.stderr).contains("may not escape the root"));
    let mv = lockstep(&["lock", "--root", root, "--mode", "mv", "/a", "--", "true"]);
    assert_eq!(mv.status.code(), Some(2));
    let timeout = lockstep(&[
        "lock",
        "--root",
        root,
        "--timeout",
        "soon",
        "--mode",
        "point",
        "/a",
        "--",
        "true",
    ]);
    assert_eq!(timeout.status.code(), Some(2));
    // A path whose escaped store key would pass the store's limit: refused as a path (exit 2),
    // not discovered at the store (it exited 74).
    let tildes = "/~".repeat(350);
    let long = lockstep(&[
        "lock", "--root", root, "--mode", "point", &tildes, "--", "true",
    ]);
    assert_eq!(
        long.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&long.stderr)
    );
    assert!(String::from_utf8_lossy(&long.stderr).contains("too long for a store key"));
    // Commands that only read or release create no store.
    for args in [vec!["locks"], vec!["recover"], vec!["force-release", "/a"]] {
        let fresh = tempfile::tempdir().unwrap();
        let fresh_root = fresh.path().to_str().unwrap();
        let mut argv = vec![args[0], "--root", fresh_root];
        argv.extend(&args[1..]);
        let output = lockstep(&argv);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            !fresh.path().join(".lockstep").exists(),
            "{args:?} created ROOT/.lockstep"
        );
    }
}

/// Whether this test process may create PID namespaces (root, as in CI). Where it may not, the
/// namespace test cannot run its environment: it fails, saying so, unless
/// `LOCKSTEP_SKIP_NAMESPACES=1` states that the machine cannot (then it is skipped, loudly).
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

/// A holder in its own PID namespace (as in every container) is alive, and nobody takes its lock.
/// The previous liveness check looked its pid up in this namespace's /proc, found nothing, and
/// called it dead: a second `lock --timeout 0` printed GRANTED while the first still held.
#[test]
fn a_live_holder_in_another_pid_namespace_keeps_its_lock() {
    if !namespaces_available() {
        return;
    }
    let dir = root();
    let root = dir.path().to_str().unwrap();
    let mut holder = Command::new("unshare")
        .args([
            "--pid",
            "--fork",
            "--mount-proc",
            env!("CARGO_BIN_EXE_lockstep"),
            "lock",
            "--root",
            root,
            "--mode",
            "point",
            "/p",
            "--",
            "sleep",
            "30",
        ])
        .stdout(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let held = wait_held(root, "/p");
    assert_eq!(
        held["owner_liveness"], "alive",
        "the store proves it alive: {held}"
    );
    let second = lockstep(&[
        "lock",
        "--root",
        root,
        "--mode",
        "point",
        "--timeout",
        "0",
        "/p",
        "--",
        "echo",
        "GRANTED",
    ]);
    assert_eq!(
        second.status.code(),
        Some(75),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(!String::from_utf8_lossy(&second.stdout).contains("GRANTED"));
    let recovered = lockstep(&["recover", "--root", root, "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&recovered.stdout).unwrap();
    assert!(
        doc["released"].as_array().unwrap().is_empty(),
        "recovery leaves a live holder alone: {doc}"
    );
    // Killed, its namespace's processes die, the kernel drops its flock, and recovery may act.
    kill_group(&mut holder, "-KILL");
    let deadline = Instant::now() + Duration::from_secs(10);
    while wait_held(root, "/p")["owner_liveness"] != "dead" {
        assert!(
            Instant::now() < deadline,
            "the killed holder was never proven dead"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let recovered = lockstep(&["recover", "--root", root, "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&recovered.stdout).unwrap();
    assert_eq!(doc["released"].as_array().unwrap().len(), 1, "{doc}");
}

/// Entries of owners the store knows nothing about (another host with the same name, an older
/// build, a process whose registration file is gone) are never judged dead: only expiry frees
/// them. The previous check called an unknown pid of this host dead at once.
#[test]
fn an_owner_the_store_cannot_prove_dead_keeps_its_lock() {
    let dir = root();
    let root = dir.path().to_str().unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .replace([':', '#', '/'], "_");
    let journal = dir.path().join(".lockstep/data/locks/q");
    std::fs::create_dir_all(&journal).unwrap();
    // Same host name, this boot id's shape, a pid that does not exist here.
    let owner = format!("{host}:0123456789ab:999999:1:abcdef#0");
    let entry = format!(
        r#"{{"v":2,"op":"acquire","owner":"{owner}","kind":"point","ticket":1,"lease_ms":300000,"written_at_ms":0,"marks":{{"subtree":0,"any":0}}}}"#
    );
    std::fs::write(journal.join("~00000000000000000000"), entry).unwrap();
    let held = wait_held(root, "/q");
    assert_eq!(held["owner_liveness"], "unknown");
    let second = lockstep(&[
        "lock",
        "--root",
        root,
        "--mode",
        "point",
        "--timeout",
        "0",
        "/q",
        "--",
        "echo",
        "GRANTED",
    ]);
    assert_eq!(
        second.status.code(),
        Some(75),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let recovered = lockstep(&["recover", "--root", root, "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&recovered.stdout).unwrap();
    assert!(doc["released"].as_array().unwrap().is_empty(), "{doc}");
}

/// `kill -9` of `lockstep lock` takes COMMAND with it (a parent-death signal), and the lock stays
/// unrecoverable until COMMAND is gone too (it holds the owner's registration open): two
/// commands never run inside one lock. Before, COMMAND ran on as an orphan and the next `lock`
/// of the path succeeded beside it.
#[test]
fn a_killed_lockstep_takes_its_command_with_it() {
    let dir = root();
    let root = dir.path().to_str().unwrap();
    let marker = dir.path().join("command.pid");
    let script = format!("echo $$ > {}; exec sleep 30", marker.display());
    let mut holder = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args([
            "lock", "--root", root, "--mode", "point", "/k", "--", "sh", "-c", &script,
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_held(root, "/k");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !marker.exists() {
        assert!(Instant::now() < deadline, "COMMAND never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(50));
    let command: i32 = std::fs::read_to_string(&marker)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    holder.kill().unwrap(); // SIGKILL: no cleanup of its own
    holder.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::path::Path::new(&format!("/proc/{command}")).exists() {
        assert!(
            Instant::now() < deadline,
            "COMMAND {command} outlived its lockstep"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let recovered = lockstep(&["recover", "--root", root, "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&recovered.stdout).unwrap();
    assert_eq!(
        doc["released"].as_array().unwrap().len(),
        1,
        "the dead holder's lock is recovered: {doc}"
    );
}

/// A force release while COMMAND runs: COMMAND's process group gets SIGTERM (then SIGKILL after
/// the grace) and `lockstep lock` exits 77. Before, COMMAND ran to its end and `lock` exited 0
/// with a warning.
#[test]
fn a_lost_lock_stops_the_command_and_exits_77() {
    let dir = root();
    let root_path = dir.path().to_str().unwrap().to_owned();
    let started = Instant::now();
    let holder = std::thread::spawn({
        let root = root_path.clone();
        move || {
            lockstep(&[
                "lock", "--root", &root, "--mode", "point", "--lease", "3", "--grace", "1", "/f",
                "--", "sleep", "30",
            ])
        }
    });
    wait_held(&root_path, "/f");
    let released = lockstep(&["force-release", "--root", &root_path, "/f"]);
    assert_eq!(released.status.code(), Some(0));
    let output = holder.join().unwrap();
    assert_eq!(
        output.status.code(),
        Some(77),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("COMMAND was stopped"));
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "COMMAND was not stopped"
    );
}

/// A COMMAND that cannot be started exits 127, as a shell says, and leaves no lock.
#[test]
fn a_command_that_cannot_start_exits_127() {
    let dir = root();
    let root = dir.path().to_str().unwrap();
    let output = lockstep(&[
        "lock",
        "--root",
        root,
        "--mode",
        "point",
        "/x",
        "--",
        "/nonexistent/command",
    ]);
    assert_eq!(
        output.status.code(),
        Some(127),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(locks_json(root)["locks"].as_array().unwrap().is_empty());
}

/// `gc` deletes released journals while nobody uses the store, keeps held locks, and tokens go on
/// increasing across it; while any process has the store open it refuses (exit 75), because a
/// process with an old view of a journal could append to it after it was emptied.
#[test]
fn gc_removes_released_journals_only_while_nobody_uses_the_store() {
    let dir = root();
    let root = dir.path().to_str().unwrap();
    let token = |path: &str| -> u64 {
        let output = lockstep(&[
            "lock",
            "--root",
            root,
            "--mode",
            "point",
            path,
            "--",
            "sh",
            "-c",
            "echo $LOCKSTEP_TOKEN",
        ]);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .unwrap()
    };
    let mut last = 0;
    for n in 0..10 {
        last = token(&format!("/r/p{n}"));
    }
    let mut holder = hold_in_background(root, "point", "/held");
    wait_held(root, "/held");
    let busy = lockstep(&["gc", "--root", root]);
    assert_eq!(
        busy.status.code(),
        Some(75),
        "{}",
        String::from_utf8_lossy(&busy.stderr)
    );
    assert!(String::from_utf8_lossy(&busy.stderr).contains("in use"));
    assert!(
        dir.path().join(".lockstep/data/locks/r/p0").exists(),
        "nothing removed while in use"
    );
    // The holder dies without releasing: gc keeps its lock (recovery or expiry frees it).
    kill_group(&mut holder, "-KILL");
    let output = lockstep(&["gc", "--root", root, "--json"]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(doc["collected"]["journals_removed"], 10, "{doc}");
    assert_eq!(doc["collected"]["held_kept"], 1, "{doc}");
    assert!(
        !dir.path().join(".lockstep/data/locks/r").exists(),
        "empty journal directories are gone"
    );
    assert_eq!(
        wait_held(root, "/held")["owner_liveness"],
        "dead",
        "the dead holder's owner file is kept: it proves its death"
    );
    assert!(
        token("/r/p0") > last,
        "tokens keep increasing across a collection"
    );
}

/// `--io-timeout` bounds an acquisition on a store that stops answering (a hung disk or server:
/// `LOCKSTEP_FAULT=hang`, test builds only): `lock` exits 74 and says so, and COMMAND never runs.
/// Without the bound it would wait forever; the harness gives up after 60 s (a hang guard, not a
/// timing assertion).
#[cfg(feature = "mutants")]
#[test]
fn io_timeout_bounds_an_acquisition_on_a_hung_store() {
    let dir = root();
    let root = dir.path().to_str().unwrap();
    let marker = dir.path().join("ran");
    let run = |fault: bool| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_lockstep"));
        command
            .args([
                "lock",
                "--root",
                root,
                "--mode",
                "point",
                "--timeout",
                "0",
                "--io-timeout",
                "0.5",
                "/a",
                "--",
                "touch",
            ])
            .arg(&marker)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if fault {
            command.env("LOCKSTEP_FAULT", "hang");
        }
        let mut child = command.spawn().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("lock did not end on a hung store: --io-timeout did not bound it");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        child.wait_with_output().unwrap()
    };
    let hung = run(true);
    assert_eq!(
        hung.status.code(),
        Some(74),
        "{}",
        String::from_utf8_lossy(&hung.stderr)
    );
    assert!(
        String::from_utf8_lossy(&hung.stderr)
            .contains("did not answer within --timeout + --io-timeout (0.5 s)"),
        "{}",
        String::from_utf8_lossy(&hung.stderr)
    );
    assert!(!marker.exists(), "COMMAND ran without the lock");
    // The control: the same command on the store answering.
    let answered = run(false);
    assert_eq!(
        answered.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&answered.stderr)
    );
    assert!(marker.exists());
}
