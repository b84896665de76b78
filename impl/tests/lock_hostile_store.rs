//! The file store where people really run it: symlinks inside it, foreign objects and corrupt
//! entries in its journals, file systems without the contract. Each test is the environment of
//! one review finding (issue 9), run with the `lockstep` binary.
//!
//! What must hold: nothing is ever written outside the root; whatever cannot be read guards the
//! paths it could be a lock of (fail closed) and nothing else; `locks` reports it; only an
//! operator's `repair` frees it.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Output};

fn lockstep(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(args)
        .output()
        .expect("run lockstep")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn locks_json(root: &str) -> serde_json::Value {
    let output = lockstep(&["locks", "--root", root, "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    serde_json::from_slice(&output.stdout).unwrap()
}

fn lock(root: &str, mode: &str, path: &str) -> Output {
    lockstep(&[
        "lock",
        "--root",
        root,
        "--mode",
        mode,
        "--timeout",
        "0",
        path,
        "--",
        "true",
    ])
}

fn journal(root: &Path, name: &str) -> std::path::PathBuf {
    root.join(".lockstep/data/locks").join(name)
}

/// `data/locks/s -> /elsewhere`. The old store followed it: a P `/s/q` was written outside the
/// root, `locks` saw nothing, and a S `/` was granted beside it. Now nothing goes through it.
#[test]
fn a_symlink_in_the_store_is_never_followed() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    assert_eq!(lock(root, "point", "/x").status.code(), Some(0));
    symlink(elsewhere.path(), journal(dir.path(), "s")).unwrap();

    let through = lock(root, "point", "/s/q");
    assert_eq!(through.status.code(), Some(74), "{}", stderr(&through));
    assert!(
        stderr(&through).contains("locks/s is a symbolic link"),
        "{}",
        stderr(&through)
    );
    assert_eq!(
        std::fs::read_dir(elsewhere.path()).unwrap().count(),
        0,
        "nothing written outside the root"
    );
    // What the link could hide is guarded: a SUBTREE over it fails closed...
    let over = lock(root, "subtree", "/");
    assert_eq!(over.status.code(), Some(74), "{}", stderr(&over));
    // ...and paths it cannot cover are untouched.
    assert_eq!(lock(root, "point", "/x").status.code(), Some(0));
    let doc = locks_json(root);
    let corrupt = doc["corrupt"].as_array().unwrap();
    assert_eq!(corrupt.len(), 1, "{doc}");
    assert_eq!(corrupt[0]["key"], "locks/s");
    assert!(corrupt[0]["reason"]
        .as_str()
        .unwrap()
        .contains("symbolic link"));

    // An operator moves it to quarantine; the link itself, not its target.
    let repaired = lockstep(&["repair", "--root", root, "locks/s", "--json"]);
    assert_eq!(repaired.status.code(), Some(0), "{}", stderr(&repaired));
    let doc: serde_json::Value = serde_json::from_slice(&repaired.stdout).unwrap();
    assert_eq!(doc["repaired"]["action"], "quarantined");
    assert!(elsewhere.path().exists());
    assert_eq!(lock(root, "subtree", "/").status.code(), Some(0));
    assert_eq!(lock(root, "point", "/s/q").status.code(), Some(0));
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);
}

/// The store's own directories may not be symlinks either.
#[test]
fn a_symlinked_data_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let store = dir.path().join(".lockstep");
    std::fs::create_dir_all(&store).unwrap();
    symlink(elsewhere.path(), store.join("data")).unwrap();
    let output = lock(dir.path().to_str().unwrap(), "point", "/a");
    assert_eq!(output.status.code(), Some(74), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("symbolic link"),
        "{}",
        stderr(&output)
    );
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);
}

/// A directory at a journal's next index: every create there is refused, and nothing can be
/// read there. The old loop took `AlreadyExists` as a lost race forever (`--timeout 0` ran 78 s
/// and claimed 10,000 tickets). Now it is a clear error at once, and `repair` supersedes it.
#[test]
fn a_foreign_object_at_the_next_index_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    assert_eq!(lock(root, "point", "/p").status.code(), Some(0));
    let p = journal(dir.path(), "p");
    let newest: u64 = std::fs::read_dir(&p)
        .unwrap()
        .map(|e| {
            e.unwrap().file_name().to_str().unwrap()[1..]
                .parse::<u64>()
                .unwrap()
        })
        .max()
        .unwrap();
    let next = format!("~{:020}", newest + 1);
    std::fs::create_dir(p.join(&next)).unwrap();

    let tickets_before = std::fs::read_dir(dir.path().join(".lockstep/data/tickets"))
        .unwrap()
        .count();
    let refused = lock(root, "point", "/p");
    assert_eq!(refused.status.code(), Some(74), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains(&format!("locks/p/{next} is a directory")),
        "{}",
        stderr(&refused)
    );
    let tickets_after = std::fs::read_dir(dir.path().join(".lockstep/data/tickets"))
        .unwrap()
        .count();
    assert!(
        tickets_after <= tickets_before + 1,
        "one attempt, one ticket: {tickets_before} -> {tickets_after}"
    );

    let key = format!("locks/p/{next}");
    let repaired = lockstep(&["repair", "--root", root, &key, "--json"]);
    assert_eq!(repaired.status.code(), Some(0), "{}", stderr(&repaired));
    let doc: serde_json::Value = serde_json::from_slice(&repaired.stdout).unwrap();
    assert_eq!(doc["repaired"]["action"], "superseded", "{doc}");
    assert_eq!(lock(root, "point", "/p").status.code(), Some(0));
}

/// Every kind of bad entry on `/z` guards `/z` (and what covers it) and nothing else. Before, one
/// such entry made `lock /x`, `locks` and `force-release` all exit 74.
#[test]
fn a_corrupt_entry_guards_its_own_path_only() {
    let cases: [(&str, &[u8], &str); 4] = [
        ("zero bytes", b"", "zero bytes"),
        ("invalid JSON", b"{not json", "not JSON"),
        (
            "unknown version",
            br#"{"v":7,"op":"acquire"}"#,
            "format version 7",
        ),
        (
            "unknown op",
            br#"{"v":2,"op":"borrow","ticket":1}"#,
            "borrow",
        ),
    ];
    for (name, bytes, reason) in cases {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_str().unwrap();
        assert_eq!(lock(root, "point", "/z").status.code(), Some(0), "{name}");
        let z = journal(dir.path(), "z");
        let newest = std::fs::read_dir(&z)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .max()
            .unwrap();
        let key = format!("locks/z/{newest}");
        std::fs::write(z.join(&newest), bytes).unwrap();

        // Unrelated paths go on.
        assert_eq!(lock(root, "point", "/x").status.code(), Some(0), "{name}");
        assert_eq!(lock(root, "subtree", "/y").status.code(), Some(0), "{name}");
        // The bad entry's own path, and a SUBTREE covering it, fail closed, naming the key.
        for (mode, path) in [("point", "/z"), ("subtree", "/")] {
            let refused = lock(root, mode, path);
            assert_eq!(
                refused.status.code(),
                Some(74),
                "{name} {mode} {path}: {}",
                stderr(&refused)
            );
            assert!(
                stderr(&refused).contains(&key),
                "{name}: {}",
                stderr(&refused)
            );
        }
        let force = lockstep(&["force-release", "--root", root, "/z"]);
        assert_eq!(
            force.status.code(),
            Some(74),
            "{name}: force-release cannot know what it would free"
        );
        // `locks` reports it and the rest.
        let doc = locks_json(root);
        let corrupt = doc["corrupt"].as_array().unwrap();
        assert_eq!(corrupt.len(), 1, "{name}: {doc}");
        assert_eq!(corrupt[0]["key"], key.as_str());
        assert!(
            corrupt[0]["reason"].as_str().unwrap().contains(reason),
            "{name}: {doc}"
        );
        // Nothing frees it on its own: recovery skips it.
        let recovered = lockstep(&["recover", "--root", root]);
        assert_eq!(
            recovered.status.code(),
            Some(0),
            "{name}: {}",
            stderr(&recovered)
        );
        assert_eq!(lock(root, "point", "/z").status.code(), Some(74), "{name}");
        // The operator supersedes it; the bad bytes stay where they were, unread.
        let repaired = lockstep(&["repair", "--root", root, &key]);
        assert_eq!(
            repaired.status.code(),
            Some(0),
            "{name}: {}",
            stderr(&repaired)
        );
        assert_eq!(std::fs::read(z.join(&newest)).unwrap(), bytes, "{name}");
        assert_eq!(lock(root, "point", "/z").status.code(), Some(0), "{name}");
        assert!(
            locks_json(root)["corrupt"].as_array().unwrap().is_empty(),
            "{name}"
        );
    }
}

/// `repair` touches only what is bad.
#[test]
fn repair_refuses_what_is_not_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    assert_eq!(lock(root, "point", "/a").status.code(), Some(0));
    let a = journal(dir.path(), "a");
    let newest = std::fs::read_dir(&a)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .max()
        .unwrap();
    for (key, expect) in [
        (format!("locks/a/{newest}"), "readable entry"),
        (
            "locks/a/~00000000000000000099".to_owned(),
            "nothing is stored",
        ),
        (
            "tickets/00000000000000000001".to_owned(),
            "not in the lock namespace",
        ),
        ("locks/../x".to_owned(), "invalid key"),
    ] {
        let output = lockstep(&["repair", "--root", root, &key]);
        assert_eq!(output.status.code(), Some(2), "{key}: {}", stderr(&output));
        assert!(
            stderr(&output).contains(expect),
            "{key}: {}",
            stderr(&output)
        );
    }
}

/// Whether this process may make mount namespaces (root, as in CI); see lock_cli.rs.
fn mount_namespaces_available() -> bool {
    match Command::new("unshare").args(["--mount", "true"]).status() {
        Ok(status) if status.success() => true,
        _ if std::env::var("LOCKSTEP_SKIP_NAMESPACES").is_ok_and(|v| v == "1") => {
            eprintln!("SKIPPED: `unshare --mount` is not available here (LOCKSTEP_SKIP_NAMESPACES=1)");
            false
        }
        other => panic!("`unshare --mount` fails here ({other:?}); run as root, or set LOCKSTEP_SKIP_NAMESPACES=1 to skip"),
    }
}

/// `data/` on another file system than `tmp/`: `link()` between them fails (EXDEV), so no create
/// could ever succeed. The old store discovered that at every `lock` ("I/O error on tickets/…",
/// exit 74); now opening the store refuses, naming the requirement. (A mount namespace keeps the
/// tmpfs private to the test.)
#[test]
fn a_store_without_hard_links_is_refused_at_open() {
    if !mount_namespaces_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let data = dir.path().join(".lockstep/data");
    std::fs::create_dir_all(&data).unwrap();
    let script = format!(
        "mount -t tmpfs tmpfs '{}' && exec \"$0\" lock --root '{root}' --mode point /a -- true",
        data.display()
    );
    let output = Command::new("unshare")
        .args([
            "--mount",
            "sh",
            "-c",
            &script,
            env!("CARGO_BIN_EXE_lockstep"),
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(74), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("needs hard links")
            && stderr(&output).contains("different file systems"),
        "{}",
        stderr(&output)
    );
}

/// Runs `lockstep` as user `nobody` (root can read any directory, so an unreadable journal can
/// only be shown to another user). `None` where this process cannot switch users.
fn lockstep_as_nobody(args: &[&str]) -> Option<Output> {
    let probe = Command::new("setpriv")
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "true",
        ])
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        if std::env::var("LOCKSTEP_SKIP_NAMESPACES").is_ok_and(|v| v == "1") {
            eprintln!("SKIPPED: cannot run as another user here (LOCKSTEP_SKIP_NAMESPACES=1)");
            return None;
        }
        panic!("`setpriv --reuid 65534` fails here; run as root, or set LOCKSTEP_SKIP_NAMESPACES=1 to skip");
    }
    let mut argv = vec![
        "--reuid",
        "65534",
        "--regid",
        "65534",
        "--clear-groups",
        env!("CARGO_BIN_EXE_lockstep"),
    ];
    argv.extend(args);
    Some(Command::new("setpriv").args(argv).output().unwrap())
}

/// A journal directory its user cannot read guards its own path; `lock` of unrelated paths goes
/// on and `locks` lists it as corrupt (before, every `lock`, `locks` and `force-release` exited 74).
#[test]
fn an_unreadable_journal_guards_its_own_path_only() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    assert_eq!(lock(root, "point", "/z").status.code(), Some(0));
    assert_eq!(
        Command::new("chown")
            .args(["-R", "65534:65534", root])
            .status()
            .unwrap()
            .code(),
        Some(0)
    );
    let z = journal(dir.path(), "z");
    std::fs::set_permissions(&z, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    let Some(unrelated) = lockstep_as_nobody(&[
        "lock",
        "--root",
        root,
        "--mode",
        "point",
        "--timeout",
        "0",
        "/x",
        "--",
        "true",
    ]) else {
        return;
    };
    assert_eq!(unrelated.status.code(), Some(0), "{}", stderr(&unrelated));
    let own = lockstep_as_nobody(&[
        "lock",
        "--root",
        root,
        "--mode",
        "point",
        "--timeout",
        "0",
        "/z",
        "--",
        "true",
    ])
    .unwrap();
    assert_eq!(own.status.code(), Some(74), "{}", stderr(&own));
    assert!(
        stderr(&own).contains("Permission denied"),
        "{}",
        stderr(&own)
    );
    let listed = lockstep_as_nobody(&["locks", "--root", root, "--json"]).unwrap();
    assert_eq!(listed.status.code(), Some(0), "{}", stderr(&listed));
    let doc: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let corrupt = doc["corrupt"].as_array().unwrap();
    assert_eq!(corrupt.len(), 1, "{doc}");
    assert_eq!(corrupt[0]["key"], "locks/z");
    std::fs::set_permissions(&z, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

/// A symlink planted among the tickets, at the number the next claim would take. Tickets are
/// empty entries that FsStore creates with `O_EXCL` at their own name (no temporary file), a
/// path of its own. From the CLI: the claim's listing shows the link's name as a taken number,
/// so the claim takes the one above it; nothing is read or written through the link, and the
/// link stays for `locks` and `repair`. On the store itself (a link planted after a claimer's
/// listing, so the create meets it): the create answers "already exists" without following it,
/// and a read of it is an error naming it, so a claim stops there instead of counting it a
/// ticket.
#[test]
fn a_symlink_at_the_next_ticket_is_never_followed() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    assert_eq!(lock(root, "point", "/x").status.code(), Some(0));
    let tickets = dir.path().join(".lockstep/data/tickets");
    let newest = std::fs::read_dir(&tickets)
        .unwrap()
        .filter_map(|e| {
            e.unwrap()
                .file_name()
                .into_string()
                .unwrap()
                .parse::<u64>()
                .ok()
        })
        .max()
        .expect("a ticket");
    let victim = elsewhere.path().join("victim");
    std::fs::write(&victim, b"keep").unwrap();
    let next = tickets.join(format!("{:020}", newest + 1));
    symlink(&victim, &next).unwrap();

    let granted = lock(root, "point", "/y");
    assert_eq!(granted.status.code(), Some(0), "{}", stderr(&granted));
    assert_eq!(
        std::fs::read(&victim).unwrap(),
        b"keep",
        "written through the link"
    );
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 1);
    assert!(std::fs::symlink_metadata(&next)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(
        std::fs::read_dir(&tickets)
            .unwrap()
            .filter_map(|e| e
                .unwrap()
                .file_name()
                .into_string()
                .unwrap()
                .parse::<u64>()
                .ok())
            .any(|t| t > newest + 1),
        "the claim took a number above the link's"
    );

    // The store itself, at the link: no create through it, no read of it.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use lockstep::store::{Created, FsStore, Key, Persist, Store, StoreError};
        let store = FsStore::open(dir.path().join(".lockstep")).unwrap();
        let key = Key::new(format!("tickets/{:020}", newest + 1)).unwrap();
        let created = store
            .create_persisting(&key, &[], Persist::NameOnly)
            .await
            .unwrap();
        assert!(matches!(created, Created::AlreadyExists), "{created:?}");
        match store.get(&key).await {
            Err(StoreError::Foreign { key: named, what }) => {
                assert_eq!(named, key.to_string());
                assert!(what.contains("symbolic link"), "{what}");
            }
            other => panic!("a read of the link: {other:?}"),
        }
    });
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 1);
}
