//! `--store SPEC` and `lockstep probe` as subprocesses: the probe's verdicts and exit codes on
//! every store, and the protocols' commands end to end on etcd (feature `etcd`).

use std::process::{Command, Output};

/// Real etcd members (shared with lockstep-tests: tests/src/etcd_server.rs).
#[cfg(feature = "etcd")]
#[path = "../../tests/src/etcd_server.rs"]
#[allow(dead_code)]
mod etcd_server;

fn lockstep(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(args)
        .output()
        .expect("run lockstep")
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn verdicts(doc: &serde_json::Value) -> Vec<(String, String)> {
    doc["clauses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["clause"].as_str().unwrap().to_owned(),
                c["verdict"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn probe_passes_on_mem_and_a_local_root_and_says_what_it_checked() {
    let output = lockstep(&["probe", "--store", "mem", "--json"]);
    assert_eq!(output.status.code(), Some(0));
    let doc = json(&output);
    assert_eq!(doc["passed"], true);
    let clauses = verdicts(&doc);
    assert_eq!(clauses.len(), 9, "{clauses:?}");
    assert!(clauses.contains(&("durability".into(), "not-applicable".into())));
    assert!(clauses.contains(&("commits".into(), "not-applicable".into())));
    let dir = tempfile::tempdir().unwrap();
    let output = lockstep(&["probe", "--root", dir.path().to_str().unwrap(), "--json"]);
    assert_eq!(output.status.code(), Some(0));
    let doc = json(&output);
    assert!(
        verdicts(&doc)
            .iter()
            .all(|(c, v)| v == "pass" || (c == "commits" && v == "not-applicable")),
        "{doc}"
    );
    let text = lockstep(&["probe", "--store", "mem"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("exactly one winner under contention"),
        "{text}"
    );
    assert!(text.contains("meets the contract"), "{text}");
}

#[test]
fn bad_store_specs_are_usage_errors() {
    for (spec, expected) in [
        ("s3:bucket", "is not a store"),
        ("etcd:localhost:2379", "not an etcd client URL"),
        ("etcd:http://h:1?lease-ttl=0", "lease-ttl"),
        ("fs:", "needs a directory"),
    ] {
        let output = lockstep(&["probe", "--store", spec]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{spec}: {stderr}");
        assert!(stderr.contains(expected), "{spec}: {stderr}");
    }
    let output = lockstep(&["locks", "--root", "/x", "--store", "mem"]);
    assert_eq!(
        output.status.code(),
        Some(2),
        "--root and --store exclude each other"
    );
    let output = lockstep(&["session", "add", "--store", "mem", "s", "--message", "m"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("this process only"), "{stderr}");
    let output = lockstep(&["gc", "--store", "mem"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("local store"), "{stderr}");
}

/// Nothing listens at the address: exit 74, the endpoint named.
#[cfg(feature = "etcd")]
#[test]
fn a_dead_etcd_is_a_storage_error_naming_it() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let spec = format!("etcd:http://127.0.0.1:{port}");
    for args in [
        vec!["probe", "--store", &spec],
        vec!["locks", "--store", &spec],
        vec!["session", "commit", "--store", &spec, "s"],
    ] {
        let output = lockstep(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(74), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!("127.0.0.1:{port}")),
            "{args:?}: {stderr}"
        );
    }
}

/// Every protocol's commands end to end on etcd, and the probe and a quick benchmark there.
#[cfg(feature = "etcd")]
#[test]
fn the_commands_run_on_etcd() {
    let Some(cluster) = etcd_server::shared_or_skip() else {
        return;
    };
    let spec = format!(
        "etcd:{}?prefix={}",
        cluster.endpoints().join(","),
        etcd_server::fresh_prefix()
    );
    let ok = |args: &[&str]| -> serde_json::Value {
        let output = lockstep(args);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        json(&output)
    };
    let probe = ok(&["probe", "--store", &spec, "--json"]);
    assert!(verdicts(&probe).iter().all(|(_, v)| v == "pass"), "{probe}");
    ok(&[
        "session",
        "add",
        "--store",
        &spec,
        "chat",
        "--message",
        "tea",
        "--json",
    ]);
    let committed = ok(&["session", "commit", "--store", &spec, "chat", "--json"]);
    assert_eq!(committed["archive"], 0);
    ok(&["queue", "work", "--store", &spec, "--once", "--json"]);
    let shown = ok(&["session", "show", "--store", &spec, "chat", "--json"]);
    assert_eq!(shown["effects"]["0"], 1, "{shown}");
    let output = lockstep(&["branch", "create", "--store", &spec, "main"]);
    assert!(output.status.success());
    let output = lockstep(&[
        "branch", "create", "--store", &spec, "live", "--from", "main",
    ]);
    assert!(output.status.success());
    let output = lockstep(&[
        "branch",
        "commit",
        "--store",
        &spec,
        "live",
        "--message",
        "hi",
    ]);
    assert!(output.status.success());
    let merged = ok(&["merge", "--store", &spec, "live", "--json"]);
    assert_eq!(merged["outcome"], "merged");
    let output = lockstep(&[
        "lock", "--store", &spec, "--mode", "point", "/a", "--", "true",
    ]);
    assert_eq!(output.status.code(), Some(0));
    let locks = ok(&["locks", "--store", &spec, "--json"]);
    assert_eq!(locks["locks"], serde_json::json!([]));
    let recovered = ok(&["recover", "--store", &spec, "--json"]);
    assert_eq!(recovered["released"], serde_json::json!([]));
    let bench = ok(&["bench", "--store", &spec, "--quick", "--json"]);
    let names: Vec<&str> = bench["measurements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert!(names.iter().any(|n| n.contains("v3lock")), "{names:?}");
    assert!(
        names.iter().any(|n| n.contains("point acquire+release")),
        "{names:?}"
    );
}
