//! `lockstep report`: one self-contained HTML page, plus the SVG drawings it shows, with what the
//! checker proved in each default world, the bug catalogue with every counterexample drawn, the
//! planted implementation bugs and the tests that catch each, and the ratios of a
//! `lockstep bench --json` run if one is given. CI writes it under `target/` on every run.
//!
//! The page is written as well-formed XHTML (every tag closed, every text escaped), so that a
//! test can parse it as XML.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use lockstep_model::catalogue::{Basis, BugRun};
use lockstep_model::check::{default_memory_budget, CheckOptions, Report};
use lockstep_model::diagram::{self, escape, file_stem, Caption};

use crate::cli::{EXIT_BUG_NOT_REPRODUCED, EXIT_OK, EXIT_STORAGE};
use crate::model::{check_worlds, exit_code, ProtocolArg};

#[derive(Args)]
pub struct ReportArgs {
    /// Which protocols; all by default.
    #[arg(value_enum, default_value = "all")]
    protocol: ProtocolArg,
    /// The directory to write `index.html` and `diagrams/` into (created if missing; files of
    /// the same names are replaced).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// The output of `lockstep bench --json` (or of `bench merge`/`bench redo`), whose
    /// measurements and ratios the page shows.
    #[arg(long, value_name = "FILE")]
    bench_json: Option<PathBuf>,
    /// Seconds allowed per catalogued bug.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    budget_seconds: u64,
    /// Stop each model search after this many seconds; it is then reported incomplete.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    max_seconds: Option<u64>,
    /// No progress lines on stderr.
    #[arg(long, short)]
    quiet: bool,
}

/// One benchmark measurement, as `lockstep bench --json` writes it.
#[derive(serde::Deserialize)]
struct Measurement {
    name: String,
    median_us: f64,
    p90_us: f64,
    ratio_to_floor: f64,
    #[serde(default)]
    baseline: Option<String>,
    #[serde(default)]
    ratio_to_baseline: Option<f64>,
}

#[derive(serde::Deserialize)]
struct Bench {
    measurements: Vec<Measurement>,
}

fn read_bench(path: &Path) -> Result<Bench, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| {
        format!(
            "{} is not the output of `lockstep bench --json` ({e})",
            path.display()
        )
    })
}

pub fn report(args: &ReportArgs) -> Result<u8, String> {
    // Everything that can fail on bad input fails before the long runs.
    let bench = args.bench_json.as_deref().map(read_bench).transpose()?;
    let diagrams = args.out.join("diagrams");
    std::fs::create_dir_all(&diagrams)
        .map_err(|e| format!("cannot create {}: {e}", diagrams.display()))?;
    // The page's place is tried now, with a placeholder, not after minutes of searching.
    let index = args.out.join("index.html");
    std::fs::write(
        &index,
        "<!DOCTYPE html>\n<html><body><p>lockstep report: in progress</p></body></html>\n",
    )
    .map_err(|e| format!("cannot write {}: {e}", index.display()))?;

    let options = CheckOptions {
        timeout: args.max_seconds.map(Duration::from_secs),
        max_memory_bytes: Some(default_memory_budget()),
        progress: !args.quiet,
        ..CheckOptions::default()
    };
    let reports = check_worlds(args.protocol, "fixed", &options)?;

    let names = args.protocol.names();
    let entries: Vec<_> = lockstep_model::catalogue()
        .into_iter()
        .filter(|e| names.contains(&e.protocol))
        .collect();
    let mut runs: Vec<BugRun> = Vec::new();
    let mut drawing_failed = false;
    for (n, entry) in entries.iter().enumerate() {
        if !args.quiet {
            eprintln!("[{}/{}] {}", n + 1, entries.len(), entry.id);
        }
        let run = entry.run(Duration::from_secs(args.budget_seconds));
        if let Some(trace) = &run.counterexample {
            let path = diagrams.join(format!("{}.svg", file_stem(run.id)));
            let caption = Caption {
                title: run.id,
                subtitle: run.title,
                property: run.property,
            };
            // A drawing that cannot be written is reported, and the page is still written.
            if let Err(e) = std::fs::write(&path, diagram::svg(trace, caption)) {
                eprintln!("lockstep: cannot write {}: {e}", path.display());
                drawing_failed = true;
            }
        }
        runs.push(run);
    }

    let page = page(&reports, &runs, &names, bench.as_ref());
    std::fs::write(&index, page).map_err(|e| format!("cannot write {}: {e}", index.display()))?;
    println!("report written to {}", index.display());

    let mut code = reports
        .iter()
        .map(|(_, report)| exit_code(report))
        .max()
        .unwrap_or(EXIT_OK);
    if runs.iter().any(|r| !r.reproduced) {
        code = code.max(EXIT_BUG_NOT_REPRODUCED);
    }
    if drawing_failed {
        code = code.max(EXIT_STORAGE);
    }
    Ok(code)
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The protocol a planted implementation bug belongs to, from its name (`merge-…`, `redo-…`;
/// the rest are the path locks' and their store's).
fn mutant_protocol(name: &str) -> &'static str {
    if name.starts_with("merge-") {
        "merge"
    } else if name.starts_with("redo-") {
        "redo"
    } else {
        "lock"
    }
}

fn page(
    reports: &[(&'static str, Report)],
    runs: &[BugRun],
    protocols: &[&str],
    bench: Option<&Bench>,
) -> String {
    let mut out = String::new();
    let proven = reports.iter().all(|(_, r)| r.complete && !r.failed());
    let reproduced = runs.iter().filter(|r| r.reproduced).count();
    let _ = writeln!(
        out,
        r#"<!DOCTYPE html>
<html xmlns="http://www.w3.org/1999/xhtml" lang="en">
<head>
<meta charset="utf-8"/>
<title>lockstep report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; max-width: 80em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }}
th {{ background: #f3f5f8; }}
td.n {{ text-align: right; font-variant-numeric: tabular-nums; }}
.ok {{ color: #1e7b34; font-weight: bold; }}
.bad {{ color: #c0392b; font-weight: bold; }}
code {{ font-family: ui-monospace, monospace; }}
details {{ margin: 0.5em 0 1em 0; }}
img {{ max-width: 100%; border: 1px solid #ddd; }}
</style>
</head>
<body>
<h1>lockstep report</h1>
<p>lockstep {} · the fixed protocols {} · {reproduced} of {} catalogued bugs reproduced</p>"#,
        env!("CARGO_PKG_VERSION"),
        if proven {
            r#"<span class="ok">proven in every default world checked</span>"#
        } else {
            r#"<span class="bad">NOT proven in every default world (see below)</span>"#
        },
        runs.len()
    );

    // What the checker proved.
    let _ = writeln!(
        out,
        "<h2 id=\"proven\">What is proven, and under which bounds</h2>\n<p>Each row is one default world of <code>lockstep check</code>, the fixed variant.</p>\n<table>\n<tr><th>protocol</th><th>world</th><th>bounds</th><th>unique states</th><th>max depth</th><th>seconds</th><th>search</th><th>properties</th></tr>"
    );
    for (world, report) in reports {
        let search = if report.complete {
            r#"<span class="ok">complete</span>"#.to_string()
        } else {
            format!(
                r#"<span class="bad">INCOMPLETE ({})</span>"#,
                escape(report.stop_reason.text())
            )
        };
        let mut properties = String::new();
        for p in &report.properties {
            let verdict = match (p.holds, p.kind) {
                (None, _) => r#"<span class="bad">unknown</span>"#,
                (Some(true), "sometimes") => r#"<span class="ok">witnessed</span>"#,
                (Some(true), _) => r#"<span class="ok">holds</span>"#,
                (Some(false), "sometimes") => r#"<span class="bad">never reached</span>"#,
                (Some(false), _) => r#"<span class="bad">FAILS</span>"#,
            };
            let _ = write!(
                properties,
                "{} <i>{}</i>: {verdict}<br/>",
                escape(p.name),
                p.kind
            );
        }
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td><code>{}</code></td><td><code>{}</code></td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{:.1}</td><td>{search}</td><td>{properties}</td></tr>",
            report.protocol,
            escape(world),
            escape(&report.bounds.to_string()),
            thousands(report.unique_states),
            report.max_depth,
            report.seconds
        );
    }
    let _ = writeln!(out, "</table>");

    // The catalogue.
    let _ = writeln!(
        out,
        "<h2 id=\"catalogue\">Bug catalogue</h2>\n<p>Seed bugs (the protocol as its origin published it: shipped code or a proposal), regressions of earlier lockstep protocols, and mutants of the fixed protocols: each breaks its property in the world shown, and the fixed protocol keeps it there (the tests check both).</p>\n<table>\n<tr><th>id</th><th>kind</th><th>basis</th><th>property</th><th>result</th><th>steps</th><th>source</th></tr>"
    );
    for run in runs {
        let basis = match run.basis {
            Basis::ShippedCode => "shipped code",
            Basis::Proposal => "proposal, never built",
            Basis::Lockstep => "lockstep",
        };
        let result = if run.reproduced {
            r#"<span class="ok">reproduced</span>"#
        } else {
            r#"<span class="bad">NOT REPRODUCED</span>"#
        };
        let steps = match (&run.counterexample, run.unique_states) {
            (Some(trace), _) => format!("{} ({})", trace.len(), trace.switches_text()),
            (None, Some(states)) => format!("no witness in {} states", thousands(states)),
            _ => String::new(),
        };
        let id = match run.counterexample {
            Some(_) => format!(
                "<a href=\"#{0}\"><code>{1}</code></a>",
                file_stem(run.id),
                escape(run.id)
            ),
            None => format!("<code>{}</code>", escape(run.id)),
        };
        let _ = writeln!(
            out,
            "<tr><td>{id}</td><td>{}</td><td>{basis}</td><td>{}</td><td>{result}</td><td>{steps}</td><td>{}</td></tr>",
            run.kind.text(),
            escape(run.property),
            escape(run.source)
        );
    }
    let _ = writeln!(out, "</table>");
    for run in runs {
        if let Some(trace) = &run.counterexample {
            let stem = file_stem(run.id);
            let _ = writeln!(
                out,
                "<h3 id=\"{stem}\"><code>{}</code></h3>\n<p>{} (property “{}”)</p>\n<img src=\"diagrams/{stem}.svg\" alt=\"{}\"/>\n<details><summary>the trace as text</summary><pre>{}</pre></details>",
                escape(run.id),
                escape(run.title),
                escape(run.property),
                escape(run.title),
                escape(&trace.to_string())
            );
        }
    }

    // The planted implementation bugs.
    let _ = writeln!(
        out,
        "<h2 id=\"mutants\">Planted implementation bugs and the tests that catch them</h2>\n<p>Each is compiled in only with the test-only <code>mutants</code> feature; <code>tests/tests/mutant_catchers.rs</code> checks that every test named here exists and switches that mutant on.</p>\n<table>\n<tr><th>mutant</th><th>caught by</th></tr>"
    );
    for mutant in lockstep::mutants::Mutant::ALL
        .into_iter()
        .filter(|m| protocols.contains(&mutant_protocol(m.name())))
    {
        let catchers: Vec<String> = lockstep::mutants::CATCHERS
            .iter()
            .filter(|(m, ..)| *m == mutant)
            .map(|(_, file, test)| {
                format!(
                    "<code>{}</code> in <code>{}</code>",
                    escape(test),
                    escape(file)
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "<tr><td><code>{}</code></td><td>{}</td></tr>",
            mutant.name(),
            if catchers.is_empty() {
                r#"<span class="bad">nothing</span>"#.to_string()
            } else {
                catchers.join("<br/>")
            }
        );
    }
    let _ = writeln!(out, "</table>");

    // Benchmarks.
    let _ = writeln!(out, "<h2 id=\"bench\">Benchmarks</h2>");
    match bench {
        None => {
            let _ = writeln!(
                out,
                "<p>No benchmark run was given (<code>lockstep report --bench-json FILE</code>, with FILE from <code>lockstep bench --json</code>).</p>"
            );
        }
        Some(bench) => {
            let _ = writeln!(
                out,
                "<p>Ratios are to the floor (one durable create-if-absent) and to each case's baseline, measured in the same run.</p>\n<table>\n<tr><th>case</th><th>median µs</th><th>p90 µs</th><th>× floor</th><th>× baseline</th></tr>"
            );
            for m in &bench.measurements {
                let baseline = match (&m.baseline, m.ratio_to_baseline) {
                    (Some(name), Some(ratio)) => format!("{ratio:.2} × {}", escape(name)),
                    _ => String::new(),
                };
                let _ = writeln!(
                    out,
                    "<tr><td>{}</td><td class=\"n\">{:.0}</td><td class=\"n\">{:.0}</td><td class=\"n\">{:.2}</td><td>{baseline}</td></tr>",
                    escape(&m.name),
                    m.median_us,
                    m.p90_us,
                    m.ratio_to_floor
                );
            }
            let _ = writeln!(out, "</table>");
        }
    }
    let _ = writeln!(out, "</body>\n</html>");
    out
}
