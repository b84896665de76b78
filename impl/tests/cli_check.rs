//! The `lockstep check` / `bugs` / `variants` command line, run as a subprocess: exit codes,
//! JSON fields and error messages are a contract that scripts and CI rely on.

use std::process::{Command, Output};

fn lockstep(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lockstep")).args(args).output().expect("run lockstep")
}

fn json_lines(output: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect()
}

#[test]
fn check_fixed_small_world_is_proven_and_reports_json() {
    let output = lockstep(&["check", "lock", "--tree", "/,/a,/a/b", "--json", "--quiet"]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let reports = json_lines(&output);
    assert_eq!(reports.len(), 1);
    let report = &reports[0];
    for field in ["protocol", "variant", "bounds", "states", "unique_states", "max_depth", "complete", "seconds", "properties"] {
        assert!(report.get(field).is_some(), "missing field {field}");
    }
    assert_eq!(report["protocol"], "lock");
    assert_eq!(report["variant"], "fixed");
    assert_eq!(report["complete"], true);
    for property in report["properties"].as_array().unwrap() {
        assert_eq!(property["holds"], true, "{property}");
        assert!(property["kind"] == "always" || property["kind"] == "sometimes");
    }
}

#[test]
fn check_seed_exits_1_with_a_numbered_counterexample() {
    let output = lockstep(&["check", "lock", "--variant", "seed", "--tree", "/,/a", "--json", "--quiet"]);
    assert_eq!(output.status.code(), Some(1));
    let report = &json_lines(&output)[0];
    let exclusion = report["properties"].as_array().unwrap().iter().find(|p| p["name"] == "mutual exclusion").unwrap();
    assert_eq!(exclusion["holds"], false);
    let steps = exclusion["counterexample"]["steps"].as_array().unwrap();
    assert!(!steps.is_empty());
    assert_eq!(steps[0]["n"], 1);

    let human = lockstep(&["check", "lock", "--variant", "seed", "--tree", "/,/a", "--quiet"]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains("FAILS") && text.contains("shortest counterexample"), "{text}");
}

#[test]
fn a_state_limit_is_reported_incomplete_with_exit_3() {
    let output = lockstep(&["check", "lock", "--max-states", "2000", "--json", "--quiet"]);
    assert_eq!(output.status.code(), Some(3));
    let report = &json_lines(&output)[0];
    assert_eq!(report["complete"], false);
    assert_eq!(report["stop_reason"], "state-limit");
    // Nothing is claimed either way for properties the search did not decide.
    let undecided = report["properties"].as_array().unwrap().iter().filter(|p| p["holds"].is_null()).count();
    assert!(undecided > 0);
}

/// `--max-seconds` stops even a search far too large to finish (stateright's own timeout does
/// not stop its single-threaded depth-first search; lockstep enforces it through the model).
#[test]
fn a_time_limit_stops_a_huge_search_and_is_reported_incomplete() {
    let started = std::time::Instant::now();
    let output = lockstep(&["check", "lock", "--clients", "3", "--max-seconds", "2", "--json", "--quiet"]);
    assert_eq!(output.status.code(), Some(3));
    let report = &json_lines(&output)[0];
    assert_eq!(report["stop_reason"], "timeout");
    assert_eq!(report["complete"], false);
    assert!(started.elapsed() < std::time::Duration::from_secs(60), "took {:?}", started.elapsed());
}

#[test]
fn bad_input_gets_a_clear_error_and_exit_2() {
    let output = lockstep(&["check", "lock", "--variant", "bogus"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown lock variant") && stderr.contains("skip-recheck"), "{stderr}");

    let output = lockstep(&["check", "lock", "--tree", "/,/a/b"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("parent \"/a\""));

    let output = lockstep(&["check", "lock", "--clients", "9"]);
    assert_eq!(output.status.code(), Some(2));

    let output = lockstep(&["check", "lock", "--timeout", "sometimes"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("expected zero, bounded, forever"));
}

#[test]
fn bugs_reproduces_every_lock_entry() {
    let output = lockstep(&["bugs", "lock", "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stdout));
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let bugs = doc["bugs"].as_array().unwrap();
    assert!(bugs.len() >= 20);
    for bug in bugs {
        for field in ["id", "protocol", "variant", "property", "reproduced", "trace_len"] {
            assert!(bug.get(field).is_some(), "missing {field} in {bug}");
        }
        assert_eq!(bug["reproduced"], true, "{}", bug["id"]);
    }
    assert!(bugs.iter().any(|b| b["id"] == "lock/same-path-double-grant" && b["trace_len"] == 6));
}

#[test]
fn help_explains_exit_codes_and_variants_are_listed() {
    let help = lockstep(&["--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("Exit codes"));
    let variants = lockstep(&["variants"]);
    let text = String::from_utf8_lossy(&variants.stdout);
    assert!(text.contains("seed") && text.contains("fixed") && text.contains("blind-release"));
}
