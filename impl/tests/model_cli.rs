//! The `lockstep check` / `bugs` / `explore` / `vectors` / `bench` command line, run as a
//! subprocess: exit codes, JSON fields and error messages are a contract that scripts and CI rely
//! on, and bad usage gets a clear error and exit 2, never a panic.

use std::process::{Command, Output};

fn lockstep(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(args)
        .output()
        .expect("run lockstep")
}

fn json_lines(output: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Bad usage: exit 2, a message naming the problem, and no panic.
fn assert_usage_error(args: &[&str], expected: &str) {
    let output = lockstep(args);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{args:?}: {text}");
    assert!(
        text.contains(expected),
        "{args:?}: expected {expected:?} in: {text}"
    );
    assert!(!text.contains("panicked"), "{args:?} panicked: {text}");
}

#[test]
fn check_fixed_small_world_is_proven_and_reports_json() {
    let output = lockstep(&["check", "lock", "--tree", "/,/a,/a/b", "--json", "--quiet"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let reports = json_lines(&output);
    assert_eq!(reports.len(), 1);
    let report = &reports[0];
    for field in [
        "protocol",
        "variant",
        "world",
        "bounds",
        "states",
        "unique_states",
        "max_depth",
        "complete",
        "stop_reason",
        "seconds",
        "properties",
    ] {
        assert!(report.get(field).is_some(), "missing field {field}");
    }
    assert_eq!(report["protocol"], "lock");
    assert_eq!(report["variant"], "fixed");
    assert_eq!(report["world"], "custom");
    assert_eq!(report["complete"], true);
    for property in report["properties"].as_array().unwrap() {
        assert_eq!(property["holds"], true, "{property}");
        assert!(property["kind"] == "always" || property["kind"] == "sometimes");
    }
}

/// The redo model's own bounds as flags: two sessions sharing the queue and recovery, no
/// session lock, expiries, faults; and openviking 0.2.11's variant failing the property its
/// lock file breaks.
#[test]
fn check_redo_bounds_and_variants_from_the_command_line() {
    let output = lockstep(&[
        "check",
        "redo",
        "--sessions",
        "2",
        "--committers",
        "2",
        "--messages",
        "2",
        "--crashes",
        "1",
        "--restarts",
        "1",
        "--expiries",
        "1",
        "--faults",
        "1",
        "--json",
        "--quiet",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let report = &json_lines(&output)[0];
    assert_eq!(report["bounds"]["sessions"], 2);
    assert_eq!(report["complete"], true);
    let output = lockstep(&[
        "check",
        "redo",
        "--no-session-lock",
        "--committers",
        "2",
        "--messages",
        "1",
        "--crashes",
        "1",
        "--restarts",
        "1",
        "--json",
        "--quiet",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(json_lines(&output)[0]["bounds"]["session_lock"], false);
    let output = lockstep(&[
        "check",
        "redo",
        "--variant",
        "seed-0.2.11",
        "--committers",
        "2",
        "--messages",
        "1",
        "--crashes",
        "1",
        "--restarts",
        "0",
        "--expiries",
        "0",
        "--faults",
        "0",
        "--json",
        "--quiet",
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let report = &json_lines(&output)[0];
    let property = report["properties"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "no wait for a dead holder")
        .expect("the property is reported");
    assert_eq!(property["holds"], false, "{property}");
    assert_usage_error(
        &["check", "redo", "--sessions", "3"],
        "sessions must be between 1 and 2",
    );
    assert_usage_error(
        &["check", "redo", "--variant", "seed", "--sessions", "2"],
        "two sessions: fixed variants only",
    );
}

#[test]
fn check_seed_exits_1_with_a_numbered_counterexample_and_no_debug_names() {
    let output = lockstep(&[
        "check",
        "lock",
        "--variant",
        "seed",
        "--tree",
        "/,/a",
        "--json",
        "--quiet",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let report = &json_lines(&output)[0];
    let exclusion = report["properties"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "mutual exclusion")
        .unwrap();
    assert_eq!(exclusion["holds"], false);
    assert_eq!(exclusion["found_by"], "shortest");
    let steps = exclusion["counterexample"]["steps"].as_array().unwrap();
    assert!(!steps.is_empty());
    assert_eq!(steps[0]["n"], 1);
    assert!(
        steps[0]["action"].as_str().unwrap().starts_with("step c"),
        "{}",
        steps[0]
    );
    assert!(
        exclusion["counterexample"]["conclusion"]
            .as_str()
            .unwrap()
            .contains("both")
            || exclusion["counterexample"]["conclusion"]
                .as_str()
                .unwrap()
                .contains("conflict")
    );

    let human = lockstep(&[
        "check",
        "lock",
        "--variant",
        "seed",
        "--tree",
        "/,/a",
        "--quiet",
    ]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains("FAILS") && text.contains("shortest counterexample") && text.contains("⇒"),
        "{text}"
    );
    // A seed run that found failures says so; it does not claim "nothing is proven" by a limit.
    assert!(!text.contains("INCOMPLETE"), "{text}");
    for debug_name in ["SeedBug", "(Alive)", "Step(0)", "Finished(", "Some("] {
        assert!(
            !text.contains(debug_name),
            "debug name {debug_name} in: {text}"
        );
    }
}

#[test]
fn a_state_limit_is_reported_incomplete_with_exit_3() {
    let output = lockstep(&[
        "check",
        "lock",
        "--preset",
        "two-clients",
        "--max-states",
        "2000",
        "--json",
        "--quiet",
    ]);
    assert_eq!(output.status.code(), Some(3));
    let report = &json_lines(&output)[0];
    assert_eq!(report["complete"], false);
    assert_eq!(report["stop_reason"], "state-limit");
    // Nothing is claimed either way for properties the search did not decide.
    let undecided = report["properties"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["holds"].is_null())
        .count();
    assert!(undecided > 0);
}

/// `--max-seconds` stops even a search far too large to finish (stateright's own timeout does
/// not stop its single-threaded depth-first search; lockstep enforces it through the model).
#[test]
fn a_time_limit_stops_a_huge_search_and_is_reported_incomplete() {
    let output = lockstep(&[
        "check",
        "lock",
        "--preset",
        "three-clients-wide",
        "--max-seconds",
        "2",
        "--json",
        "--quiet",
    ]);
    assert_eq!(output.status.code(), Some(3));
    let report = &json_lines(&output)[0];
    assert_eq!(report["stop_reason"], "timeout");
    assert_eq!(report["complete"], false);
}

/// `--max-memory` stops a search cleanly, with a partial report and exit 3.
#[test]
fn a_memory_limit_stops_a_search_with_exit_3() {
    let output = lockstep(&[
        "check",
        "lock",
        "--preset",
        "three-clients-wide",
        "--max-memory",
        "40",
        "--json",
        "--quiet",
    ]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let report = &json_lines(&output)[0];
    assert_eq!(report["stop_reason"], "memory-limit");
    assert_eq!(report["complete"], false);
}

/// Progress reaches stderr in every phase (the search, and the search for a shortest
/// counterexample).
#[test]
fn progress_is_printed_on_stderr() {
    let output = lockstep(&[
        "check",
        "redo",
        "--variant",
        "seed",
        "--json",
        "--shortest-seconds",
        "5",
        // The seed's space at its default bounds is far larger than this test needs (the
        // search would run until the memory budget, half the machine's memory): a few seconds
        // of search print progress and find the seed's failures.
        "--max-states",
        "3000000",
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(text.contains("[search]"), "{text}");
}

#[test]
fn bad_usage_gets_a_clear_error_and_exit_2() {
    assert_usage_error(
        &["check", "lock", "--variant", "bogus"],
        "is not a variant of lock",
    );
    assert_usage_error(&["check", "lock", "--tree", "/,/a/b"], "parent \"/a\"");
    assert_usage_error(&["check", "lock", "--clients", "9"], "9");
    assert_usage_error(
        &["check", "lock", "--timeout", "sometimes"],
        "expected zero, bounded, forever",
    );
    // issue 8 §4, each case as tried:
    assert_usage_error(
        &["check", "all", "--variant", "skip-recheck"],
        "`lockstep check lock --variant skip-recheck`",
    );
    assert_usage_error(
        &["check", "merge", "--clients", "3"],
        "--clients is a bound of the lock model, not of merge",
    );
    assert_usage_error(&["check", "merge", "--clients", "5"], "not in 1..=4");
    assert_usage_error(
        &["check", "lock", "--mergers", "50"],
        "--mergers is a bound of the merge model, not of lock",
    );
    assert_usage_error(&["check", "all", "--clients", "3"], "name it");
    assert_usage_error(&["check", "lock", "--threads", "0"], "0");
    assert_usage_error(&["check", "lock", "--max-states", "0"], "0");
    assert_usage_error(
        &["check", "lock", "--preset", "huge"],
        "is not a preset of lock",
    );
    assert_usage_error(&["explore", "all"], "invalid value 'all'");
    assert_usage_error(
        &[
            "vectors",
            "export",
            "lock",
            "--out",
            "/tmp/lockstep-never-written",
            "--depth",
            "0",
        ],
        "0",
    );
    assert_usage_error(
        &[
            "vectors",
            "export",
            "lock",
            "--out",
            "/tmp/lockstep-never-written",
            "--count",
            "0",
        ],
        "0",
    );
    assert!(
        !std::path::Path::new("/tmp/lockstep-never-written").exists(),
        "a refused export wrote nothing"
    );
    assert_usage_error(
        &["bugs", "--only", "no-such-entry"],
        "no catalogue entry matches",
    );
}

#[test]
fn explore_on_a_port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    assert_usage_error(
        &["explore", "lock", "--port", &port],
        "cannot listen on 127.0.0.1",
    );
}

#[test]
fn bench_refuses_a_bad_directory_and_cleans_up_after_itself() {
    let file = tempfile::NamedTempFile::new().unwrap();
    assert_usage_error(
        &["bench", "--quick", "--dir", file.path().to_str().unwrap()],
        "is not a directory",
    );
    let unwritable = tempfile::tempdir().unwrap();
    let mut permissions = std::fs::metadata(unwritable.path()).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o500);
    std::fs::set_permissions(unwritable.path(), permissions).unwrap();
    // Root can write anywhere; the check is only meaningful for other users.
    if !rustix::process::geteuid().is_root() {
        assert_usage_error(
            &[
                "bench",
                "--quick",
                "--dir",
                unwritable.path().to_str().unwrap(),
            ],
            "cannot create a scratch directory",
        );
    }
}

#[test]
fn bugs_reproduces_every_lock_entry() {
    let output = lockstep(&["bugs", "lock", "--json"]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let bugs = doc["bugs"].as_array().unwrap();
    assert!(bugs.len() >= 30);
    for bug in bugs {
        for field in [
            "id",
            "protocol",
            "kind",
            "basis",
            "variant",
            "property",
            "reproduced",
            "trace_len",
            "source",
        ] {
            assert!(bug.get(field).is_some(), "missing {field} in {bug}");
        }
        assert_eq!(bug["reproduced"], true, "{}", bug["id"]);
        assert!(
            !bug["source"].as_str().unwrap().contains("shared/"),
            "sources are public names: {}",
            bug["source"]
        );
        assert!(
            !bug["source"].as_str().unwrap().contains("research/"),
            "sources are public names: {}",
            bug["source"]
        );
    }
    assert!(bugs.iter().any(|b| b["id"] == "lock/same-path-double-grant"
        && b["trace_len"] == 6
        && b["kind"] == "seed-bug"));
    assert!(bugs
        .iter()
        .any(|b| b["kind"] == "regression" && b["basis"] == "lockstep"));
}

#[test]
fn help_explains_exit_codes_and_variants_and_presets_are_listed() {
    let help = lockstep(&["--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("Exit codes"));
    let variants = lockstep(&["variants"]);
    let text = String::from_utf8_lossy(&variants.stdout);
    assert!(text.contains("seed") && text.contains("fixed") && text.contains("blind-release"));
    let presets = lockstep(&["presets"]);
    let text = String::from_utf8_lossy(&presets.stdout);
    assert!(
        text.contains("three-clients") && text.contains("default") && text.contains("opt-in"),
        "{text}"
    );
}

/// A reader that goes away (`lockstep bugs | head -1`) ends lockstep by SIGPIPE, as any Unix
/// tool, not by a panic (exit 101) on the failed write.
#[test]
fn a_closed_pipe_ends_quietly() {
    use std::io::BufRead;
    use std::os::unix::process::ExitStatusExt;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(["bugs", "merge"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    let stdout = child.stdout.take().unwrap();
    std::io::BufReader::new(stdout)
        .read_line(&mut first)
        .unwrap();
    // The pipe is closed here (the reader dropped); lockstep writes more and gets SIGPIPE.
    let output = child.wait_with_output().unwrap();
    assert!(!first.is_empty());
    assert_eq!(
        output.status.signal(),
        Some(13),
        "{:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A tool the tests drive (a renderer, a browser), if it runs here. `.ci/run` installs each and
/// sets `required` (an environment variable), so that CI cannot skip the test that needs it.
fn tool(program: &'static str, required: &str, package: &str) -> Option<&'static str> {
    let found = Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found && std::env::var_os(required).is_some() {
        panic!("{required} is set, but {program} cannot be run");
    }
    if !found {
        eprintln!("SKIPPED what needs {program}: it is not installed (Debian: {package})");
    }
    found.then_some(program)
}

/// `rsvg-convert`, the renderer the drawings are tried with.
fn renderer() -> Option<&'static str> {
    tool("rsvg-convert", "LOCKSTEP_REQUIRE_RENDERER", "librsvg2-bin")
}

/// `lockstep bugs --svg DIR --mermaid DIR` draws a catalogue entry of each protocol: the SVG
/// parses as XML with one lane per actor and an arrow per storage step, a real renderer draws
/// it, and the Mermaid file is a sequence diagram with the same messages.
#[test]
fn bugs_draws_sequence_diagrams_that_a_renderer_accepts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let svg_dir = dir.join("svg");
    let mmd_dir = dir.join("mmd");
    for id in [
        "lock/same-path-double-grant",
        "merge/crash-before-tail-move-merges-twice",
        "redo/replay-writes-memories-twice",
    ] {
        let (protocol, name) = id.split_once('/').unwrap();
        let output = lockstep(&[
            "bugs",
            protocol,
            "--only",
            name,
            "--json",
            "--svg",
            svg_dir.to_str().unwrap(),
            "--mermaid",
            mmd_dir.to_str().unwrap(),
        ]);
        assert_eq!(output.status.code(), Some(0), "{id}: {}", stderr(&output));
        let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let bug = doc["bugs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["id"] == id)
            .unwrap_or_else(|| panic!("{id} not run"));
        let steps = bug["counterexample"]["steps"].as_array().unwrap();
        let storage: Vec<u64> = steps
            .iter()
            .filter(|s| {
                ["storage", "failed", "ambiguous", "resource"]
                    .contains(&s["kind"].as_str().unwrap())
            })
            .map(|s| s["n"].as_u64().unwrap())
            .collect();
        let stem = id.replace('/', "-");
        let svg_path = svg_dir.join(format!("{stem}.svg"));
        assert!(stderr(&output).contains(&format!("wrote {}", svg_path.display())));
        let svg = std::fs::read_to_string(&svg_path).unwrap();
        let document =
            roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{id}: not XML: {e}"));
        let arrows: Vec<u64> = document
            .descendants()
            .filter(|n| n.tag_name().name() == "line")
            .filter(|n| {
                n.attribute("class")
                    .is_some_and(|c| c.split(' ').any(|w| w == "arrow"))
            })
            .map(|n| n.attribute("data-step").unwrap().parse().unwrap())
            .collect();
        assert_eq!(arrows, storage, "{id}: one arrow per storage step");
        let lanes: Vec<&str> = document
            .descendants()
            .filter(|n| {
                n.attribute("class")
                    .is_some_and(|c| c.split(' ').any(|w| w == "lane"))
            })
            .filter_map(|n| n.attribute("data-actor"))
            .collect();
        assert_eq!(lanes.last(), Some(&"store"), "{id}: {lanes:?}");
        for step in steps {
            let kind = step["kind"].as_str().unwrap();
            if !["time", "lease-lost"].contains(&kind) {
                let actor = step["actor"].as_str().unwrap();
                assert!(
                    lanes.contains(&actor),
                    "{id}: no lane for {actor}: {lanes:?}"
                );
            }
        }
        let mermaid = std::fs::read_to_string(mmd_dir.join(format!("{stem}.mmd"))).unwrap();
        assert!(mermaid.contains("sequenceDiagram"), "{id}: {mermaid}");
        if let Some(renderer) = renderer() {
            let png = dir.join(format!("{stem}.png"));
            let rendered = Command::new(renderer)
                .arg("--output")
                .arg(&png)
                .arg(&svg_path)
                .output()
                .expect("run rsvg-convert");
            assert!(
                rendered.status.success(),
                "{id}: rsvg-convert refused the drawing: {}",
                String::from_utf8_lossy(&rendered.stderr)
            );
            let bytes = std::fs::read(&png).unwrap();
            assert!(
                bytes.starts_with(b"\x89PNG"),
                "{id}: rsvg-convert wrote no PNG"
            );
        }
    }
}

/// A diagram directory that cannot be made is a clear error before any search runs.
#[test]
fn an_unwritable_diagram_directory_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let file = dir.join("file");
    std::fs::write(&file, b"x").unwrap();
    let inside = file.join("svg");
    assert_usage_error(
        &["bugs", "lock", "--svg", inside.to_str().unwrap()],
        "cannot create the diagram directory",
    );
}

/// `check --svg` draws every failed property's counterexample, named after its world.
#[test]
fn check_draws_the_counterexamples_of_failed_properties() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let output = lockstep(&[
        "check",
        "lock",
        "--variant",
        "seed",
        "--tree",
        "/,/a",
        "--quiet",
        "--svg",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let drawn: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        drawn
            .iter()
            .any(|name| name.starts_with("lock-seed-") && name.ends_with("-mutual-exclusion.svg")),
        "{drawn:?}"
    );
    for name in &drawn {
        let svg = std::fs::read_to_string(dir.join(name)).unwrap();
        roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{name}: not XML: {e}"));
    }
}

/// The drawings kept in specs/diagrams/ (the README shows one) are what the code draws today.
#[test]
fn the_committed_diagrams_are_current() {
    let committed = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs/diagrams");
    let tmp = tempfile::tempdir().unwrap();
    let mut names: Vec<String> = std::fs::read_dir(&committed)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".svg"))
        .collect();
    names.sort();
    assert!(names.len() >= 3, "one drawing per protocol: {names:?}");
    for name in &names {
        let stem = name.trim_end_matches(".svg");
        let (protocol, id) = stem.split_once('-').unwrap();
        let output = lockstep(&[
            "bugs",
            protocol,
            "--only",
            id,
            "--svg",
            tmp.path().to_str().unwrap(),
        ]);
        assert_eq!(output.status.code(), Some(0), "{name}: {}", stderr(&output));
        let drawn = std::fs::read_to_string(tmp.path().join(name)).unwrap();
        let kept = std::fs::read_to_string(committed.join(name)).unwrap();
        assert!(
            drawn == kept,
            "specs/diagrams/{name} is out of date: redraw it with \
             `lockstep bugs {protocol} --only {id} --svg specs/diagrams`"
        );
    }
}

/// `lockstep report` writes one page that parses as XHTML: a row per default world checked, a
/// drawing (that exists and parses) per counterexample, a row per planted implementation bug, and
/// the rows of the benchmark run it is given.
#[test]
fn report_writes_one_page_with_worlds_catalogue_mutants_and_benchmarks() {
    let tmp = tempfile::tempdir().unwrap();
    let bench = tmp.path().join("bench.json");
    std::fs::write(
        &bench,
        r#"{"dir":"x","measurements":[
            {"name":"floor: durable create-if-absent (FsStore)","iterations":10,"median_us":500.0,"p90_us":600.0,"ratio_to_floor":1.0,"baseline":null,"ratio_to_baseline":null},
            {"name":"merge of 1 child commit","iterations":10,"median_us":2000.0,"p90_us":2500.0,"ratio_to_floor":4.0,"baseline":"floor","ratio_to_baseline":4.0}]}"#,
    )
    .unwrap();
    let out = tmp.path().join("report");
    let output = lockstep(&[
        "report",
        "merge",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
        "--bench-json",
        bench.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let index = out.join("index.html");
    assert!(String::from_utf8_lossy(&output.stdout)
        .contains(&format!("report written to {}", index.display())));
    let html = std::fs::read_to_string(&index).unwrap();
    let page = roxmltree::Document::parse_with_options(
        &html,
        roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("the report is not well-formed: {e}"));
    let tables: Vec<roxmltree::Node> = page
        .descendants()
        .filter(|n| n.has_tag_name("table"))
        .collect();
    assert_eq!(tables.len(), 4, "worlds, catalogue, mutants, benchmarks");
    let rows =
        |table: &roxmltree::Node| table.children().filter(|n| n.has_tag_name("tr")).count() - 1;
    let worlds = json_lines(&lockstep(&["check", "merge", "--json", "--quiet"]));
    assert_eq!(rows(&tables[0]), worlds.len(), "a row per default world");
    let bugs: serde_json::Value =
        serde_json::from_slice(&lockstep(&["bugs", "merge", "--json"]).stdout).unwrap();
    let bugs = bugs["bugs"].as_array().unwrap();
    assert_eq!(rows(&tables[1]), bugs.len(), "a row per catalogue entry");
    let images: Vec<&str> = page
        .descendants()
        .filter(|n| n.has_tag_name("img"))
        .filter_map(|n| n.attribute("src"))
        .collect();
    let drawn = bugs
        .iter()
        .filter(|b| !b["counterexample"].is_null())
        .count();
    assert_eq!(images.len(), drawn, "a drawing per counterexample");
    for src in images {
        let svg = std::fs::read_to_string(out.join(src)).unwrap_or_else(|e| panic!("{src}: {e}"));
        roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{src}: not XML: {e}"));
    }
    let merge_mutants = lockstep::mutants::Mutant::ALL
        .iter()
        .filter(|m| m.name().starts_with("merge-"))
        .count();
    assert_eq!(
        rows(&tables[2]),
        merge_mutants,
        "a row per planted bug of the merge lock"
    );
    assert!(
        !html.contains(">nothing<"),
        "a planted bug that no test catches"
    );
    assert_eq!(rows(&tables[3]), 2, "the benchmark run's rows");
    assert!(html.contains("merge of 1 child commit") && html.contains("4.00 × floor"));
}

/// A bad benchmark file is a clear error before any search runs, and nothing is written.
#[test]
fn report_refuses_a_bad_benchmark_file() {
    let tmp = tempfile::tempdir().unwrap();
    let bench = tmp.path().join("bench.json");
    std::fs::write(&bench, "{\"not\": \"a bench run\"}").unwrap();
    let out = tmp.path().join("report");
    assert_usage_error(
        &[
            "report",
            "merge",
            "--out",
            out.to_str().unwrap(),
            "--bench-json",
            bench.to_str().unwrap(),
        ],
        "is not the output of `lockstep bench --json`",
    );
    assert!(
        !out.exists(),
        "the report directory was made before the input was checked"
    );
}

/// The Explorer (`lockstep explore`) names each action and step as the traces do, not with Rust
/// debug names, and draws the path so far beside each state (stateright's `as_svg`), for every
/// protocol: asked over HTTP on 127.0.0.1 as its web page asks.
#[test]
fn the_explorer_names_steps_and_draws_the_path_so_far() {
    for protocol in ["lock", "merge", "redo"] {
        let explorer = Explorer::start(&[protocol]);
        // A world with several initial states is served behind one `start`, whose choices are
        // named by what each actor is about to do; the model's initial states are one step in.
        let first = explorer.json("/.states/0");
        let behind_start = first[0]["action"]
            .as_str()
            .is_some_and(|a| a.starts_with("start: "));
        let (inits, path) = if behind_start {
            let choices = first.as_array().unwrap();
            let names: std::collections::HashSet<&str> = choices
                .iter()
                .map(|c| c["action"].as_str().unwrap())
                .collect();
            assert_eq!(
                names.len(),
                choices.len(),
                "{protocol}: choices named alike"
            );
            assert!(
                names.iter().all(|n| n.starts_with("start: c0: ")),
                "{protocol}: {names:?}"
            );
            assert_eq!(explorer.json("/.states").as_array().unwrap().len(), 1);
            (first.clone(), "/.states/0/0")
        } else {
            (explorer.json("/.states"), "/.states/0")
        };
        let views = explorer.json(path);
        let views = views.as_array().unwrap();
        assert!(
            !views.is_empty(),
            "{protocol}: no step from the first initial state"
        );
        for view in views {
            let action = view["action"].as_str().unwrap();
            assert!(!action.contains('('), "{protocol}: a debug name {action:?}");
            if let Some(outcome) = view["outcome"].as_str() {
                assert!(
                    outcome.contains(": "),
                    "{protocol}: {outcome:?} names no actor"
                );
                let svg = view["svg"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{protocol}: no drawing"));
                let drawing = roxmltree::Document::parse(svg).unwrap();
                let actor = outcome.split(": ").next().unwrap();
                let lanes: Vec<&str> = drawing
                    .descendants()
                    .filter_map(|n| n.attribute("data-actor"))
                    .collect();
                assert!(
                    lanes.contains(&actor) || ["clock", "lease", "store"].contains(&actor),
                    "{protocol}: the drawing has no lane for {actor}: {lanes:?}"
                );
            }
        }
        // Each state, the initial ones too, is shown as a table of labelled rows.
        let label = match protocol {
            "lock" => "journal /",
            "merge" => "TAIL/BASE",
            _ => "messages",
        };
        for view in inits
            .as_array()
            .unwrap()
            .iter()
            .take(3)
            .chain(views.first())
        {
            let svg = view["svg"]
                .as_str()
                .unwrap_or_else(|| panic!("{protocol}: no state table: {view}"));
            let drawing = roxmltree::Document::parse(svg).unwrap();
            let labels: Vec<&str> = drawing
                .descendants()
                .filter(|n| n.attribute("class") == Some("key"))
                .filter_map(|n| n.text())
                .collect();
            assert!(
                labels.contains(&label) && (labels.contains(&"c0") || labels.contains(&"m0")),
                "{protocol}: the state table lacks {label:?} or its first actor: {labels:?}"
            );
        }
    }
}

/// A drawing that cannot be written (its name is taken by a directory) is reported and the run
/// goes on: the result is still printed, and the exit code is 74.
#[test]
fn a_drawing_that_cannot_be_written_loses_no_result() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("lock-same-path-double-grant.svg")).unwrap();
    let output = lockstep(&[
        "bugs",
        "lock",
        "--only",
        "same-path-double-grant",
        "--svg",
        tmp.path().to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(74), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("cannot write"),
        "{}",
        stderr(&output)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("1 of 1 catalogued bugs reproduced"));
}

/// `report` tries the page's place before any search: a directory named index.html fails at once.
#[test]
fn report_fails_at_once_where_its_page_cannot_be_written() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("index.html")).unwrap();
    assert_usage_error(
        &["report", "merge", "--out", tmp.path().to_str().unwrap()],
        "cannot write",
    );
}

/// Debian's chromium, run headless.
fn browser() -> Option<&'static str> {
    tool("chromium", "LOCKSTEP_REQUIRE_BROWSER", "chromium")
}

/// `lockstep explore` on a free port of 127.0.0.1, stopped when dropped.
struct Explorer {
    child: std::process::Child,
    port: u16,
    /// What the Explorer wrote on stderr (its URL line).
    log: tempfile::NamedTempFile,
}

impl Explorer {
    /// Starts the Explorer with `args` and waits (bounded, so that a broken start fails rather
    /// than hangs; not a timing) until it answers.
    fn start(args: &[&str]) -> Explorer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_lockstep"))
            .arg("explore")
            .args(args)
            .args(["--port", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("start the Explorer");
        let explorer = Explorer { child, port, log };
        for _ in 0..300 {
            if explorer.request("GET", "/.status").is_some() {
                return explorer;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("the Explorer ({args:?}) never answered");
    }

    /// One HTTP request, as the Explorer's page makes it; the body of the answer.
    fn request(&self, method: &str, path: &str) -> Option<String> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        write!(
            stream,
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        Some(response.split_once("\r\n\r\n")?.1.to_string())
    }

    /// What the Explorer has written on stderr so far.
    fn stderr(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap()
    }

    fn json(&self, path: &str) -> serde_json::Value {
        let body = self
            .request("GET", path)
            .unwrap_or_else(|| panic!("no answer to {path}"));
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}"))
    }
}

impl Drop for Explorer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Opens entry `id` in the Explorer and walks its URL's path; whether it was behind `start`.
fn opens_at_its_counterexample(id: &str) -> bool {
    let output = lockstep(&["bugs", "lock", "--only", id, "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let bugs: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let steps = bugs["bugs"][0]["counterexample"]["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("no counterexample for {id}: {bugs}"))
        .clone();
    let explorer = Explorer::start(&["lock", "--bug", id]);
    let log = explorer.stderr();
    let url = log
        .lines()
        .find(|l| l.starts_with(&format!("Explorer for {id}")))
        .unwrap_or_else(|| panic!("no URL line: {log}"));
    let path = url
        .split("#/steps/")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no counterexample path in {url}"));
    let indices: Vec<usize> = path.split('/').map(|i| i.parse().unwrap()).collect();
    // A world with several initial states starts at the Explorer's one `start`: the path's
    // first step is then the choice of the counterexample's initial state, named by its setup.
    let choices = explorer.json("/.states/0");
    let behind_start = choices[0]["action"]
        .as_str()
        .is_some_and(|a| a.starts_with("start: "));
    let (prefix, indices) = if behind_start {
        assert_eq!(indices.len(), steps.len() + 2, "{url}");
        let setup: Vec<&str> = bugs["bugs"][0]["counterexample"]["setup"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap())
            .collect();
        assert_eq!(
            choices[indices[1]]["action"].as_str(),
            Some(format!("start: {}", setup.join("; ")).as_str()),
            "{url}"
        );
        (vec![0], indices[1..].to_vec())
    } else {
        assert_eq!(indices.len(), steps.len() + 1, "{url}");
        (Vec::new(), indices)
    };
    for (n, step) in steps.iter().enumerate() {
        let here: Vec<String> = prefix
            .iter()
            .chain(&indices[..=n])
            .map(|i| i.to_string())
            .collect();
        let views = explorer.json(&format!("/.states/{}", here.join("/")));
        let taken = &views[indices[n + 1]];
        let expected = format!(
            "{}: {}",
            step["actor"].as_str().unwrap(),
            step["text"].as_str().unwrap()
        );
        assert_eq!(
            taken["outcome"].as_str(),
            Some(expected.as_str()),
            "step {} of {url}",
            n + 1
        );
    }
    behind_start
}

/// `explore lock --bug ID` serves the entry's world and prints the URL of its counterexample.
/// Walked step by step through the Explorer's own API, as the page walks it, the URL's path
/// takes exactly the steps `lockstep bugs` prints for the entry, each worded the same.
#[test]
fn explore_opens_a_catalogue_entry_at_its_counterexample() {
    // (Every catalogue world has one initial state today: the branch behind `start` is taken by
    // `explore` on a default world, below and in the browser test.)
    for id in [
        "lock/mutant-hint-only-deadlock",
        "lock/same-path-double-grant",
    ] {
        assert!(!opens_at_its_counterexample(id), "{id}");
    }
    let id = "lock/mutant-hint-only-deadlock";
    // Bad input: an unknown id is refused with the list, before anything listens; so are
    // bounds, which the entry's own world does not take.
    assert_usage_error(
        &[
            "explore",
            "lock",
            "--bug",
            "lock/no-such-bug",
            "--port",
            "1",
        ],
        "lock/same-path-double-grant",
    );
    assert_usage_error(
        &[
            "explore",
            "lock",
            "--bug",
            id,
            "--clients",
            "3",
            "--port",
            "1",
        ],
        "do not apply",
    );
}

/// The Explorer in a real browser: `lockstep explore` on 127.0.0.1 with the seed, its checker run
/// to completion, then headless chromium opened at the discovered counterexample of "mutual
/// exclusion". The page, as the browser renders it, shows the violated property, the actions by
/// name, the steps as the traces word them and the drawing of the path; a screenshot is taken.
#[test]
fn the_explorer_shows_a_counterexample_in_a_real_browser() {
    let Some(browser) = browser() else { return };
    let explorer = Explorer::start(&["lock", "--variant", "seed", "--tree", "/,/a"]);
    let port = explorer.port;
    // The Explorer checks on demand: ask it to run on, and wait (bounded) for the discovery.
    explorer
        .request("POST", "/.runtocompletion")
        .expect("run the Explorer's checker to completion");
    let mut path = None;
    let mut status = serde_json::Value::Null;
    for _ in 0..1200 {
        status = explorer.json("/.status");
        path = status["properties"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p[1] == "mutual exclusion")
            .and_then(|p| p[2].as_str())
            .map(str::to_string);
        if path.is_some() || status["done"] == true {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let path =
        path.unwrap_or_else(|| panic!("the seed's mutual exclusion was not broken: {status}"));
    let url = format!("http://127.0.0.1:{port}/#/steps/{path}");
    let tmp = tempfile::tempdir().unwrap();
    let shot = tmp.path().join("explorer.png");
    let run = |extra: &[&str]| {
        let output = Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
            ])
            .args(["--virtual-time-budget=30000", "--window-size=1400,1800"])
            .arg(format!(
                "--user-data-dir={}",
                tmp.path().join("profile").display()
            ))
            .args(extra)
            .arg(&url)
            .output()
            .expect("run chromium");
        assert!(
            output.status.success(),
            "chromium failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    // The page fetches each step's view from the Explorer after it loads; on a loaded machine
    // a dump can come before the last fetch is answered. Up to eight dumps are taken until the
    // drawing of the path and a worded step are on the page (a bound, not a timing), and the
    // checks run on the last. A worded step of the seed names a lock file (`read
    // /a/.path.ovlock`, or `/.path.ovlock` where the path found locks `/`).
    let worded = |dom: &str| dom.contains("read /") && dom.contains(".path.ovlock");
    let mut dom = String::new();
    for _ in 0..8 {
        dom = run(&["--dump-dom", "--timeout=20000"]);
        if dom.contains("class=\"arrow") && worded(&dom) {
            break;
        }
    }
    let seen = format!(
        "{url}: {} bytes of DOM, arrows {}, worded step {}",
        dom.len(),
        dom.contains("class=\"arrow"),
        worded(&dom)
    );
    assert!(
        dom.contains("mutual exclusion"),
        "the page does not name the violated property ({seen})"
    );
    assert!(
        dom.contains("step c0") || dom.contains("step c1"),
        "no action named as in the traces"
    );
    // One `start`, and the initial state chosen named by what each client is about to do.
    assert!(
        dom.contains("start: c0: "),
        "the choice of the initial state is not named ({seen})"
    );
    // (The page's own template says `selectedStep()`; a debug action name would be `Step(0)`.)
    assert!(
        !(0..10).any(|c| dom.contains(&format!("Step({c})"))),
        "a Rust debug name on the page"
    );
    assert!(worded(&dom), "no step worded as in the traces ({seen})");
    assert!(
        dom.contains("class=\"arrow"),
        "no drawing of the path on the page ({seen})"
    );
    run(&[&format!("--screenshot={}", shot.display())]);
    let png = std::fs::read(&shot).expect("chromium wrote no screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "an empty screenshot"
    );
}
