//! `lockstep`: check the protocol models, reproduce the bug catalogue, explore a model.
//!
//! Exit codes (machines read them):
//! 0 everything holds / every catalogued bug reproduced; 1 a property failed; 2 bad usage;
//! 3 the search was cut short (timeout or state limit), so nothing is proven;
//! 4 a catalogued bug was not reproduced; 74 a storage error; 75 the lock is busy (try again).
//! `lockstep lock … -- COMMAND` exits with COMMAND's own code.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use lockstep_model::bugs::{self, BugRun, EntryKind};
use lockstep_model::check::{check, CheckOptions, Report};
use lockstep_model::lock::{LockConfig, LockModel, ModeSet, Timeout, Variant};
use lockstep_model::merge::{MergeConfig, MergeModel, MergeVariant};
use lockstep_model::redo::{RedoConfig, RedoModel, RedoVariant};

const EXIT_PROPERTY_FAILED: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_INCOMPLETE: u8 = 3;
const EXIT_BUG_NOT_REPRODUCED: u8 = 4;
const EXIT_STORAGE: u8 = 74;
const EXIT_BUSY: u8 = 75;

#[derive(Parser)]
#[command(
    name = "lockstep",
    version,
    about = "Model checker and reference implementation of three storage-coordination protocols",
    long_about = "lockstep checks stateright models of three protocols that real systems shipped with races \
(OpenViking's path locks and redo log, the Zed lake's merge lock): the protocol as published (`seed`, \
its bugs found as counterexamples), lockstep's fixed protocol (`fixed`, proven within stated bounds), \
and one mutant of `fixed` per property.\n\nExit codes: 0 all properties hold (or all bugs reproduced); \
1 a property failed; 2 bad usage; 3 search incomplete (timeout or state limit); 4 a catalogued bug was \
not reproduced; 74 storage error; 75 lock busy. `lock -- COMMAND` passes COMMAND's exit code through."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a protocol's model exhaustively and report every property.
    ///
    /// Depth-first search with symmetry reduction over interchangeable clients; each failed
    /// `always` property is then re-searched breadth-first for its shortest counterexample.
    /// Progress goes to stderr, results to stdout.
    Check(CheckArgs),
    /// Reproduce every catalogued bug: seed races and the mutants of the fixed protocol.
    Bugs(BugsArgs),
    /// Serve stateright's Explorer web UI for one model on 127.0.0.1.
    Explore(ExploreArgs),
    /// List the variants (seed, fixed, mutants) of each protocol.
    Variants,
    /// List every held path lock under a root: path, type, owner, token, age, state.
    ///
    /// States: active (renewed within its lease), hanging (held over an hour), stale (not renewed
    /// within its lease, or its owner on this host is dead). Ages come from the writers' wall
    /// clocks and are for people; no decision uses them.
    Locks(LocksArgs),
    /// Run COMMAND while holding path locks; its exit code is passed through.
    ///
    /// The locks' fencing token is exported as LOCKSTEP_TOKEN (the largest of the operation's
    /// tokens), each lock's as LOCKSTEP_TOKENS (`/a=17,/c=18`), the owner as LOCKSTEP_OWNER. The
    /// leases are renewed while COMMAND runs and released when it ends. SIGINT and SIGTERM are
    /// forwarded to COMMAND.
    Lock(LockArgs),
    /// Release the lock on PATH whatever its holder is doing (it becomes a zombie; fencing stops it).
    ForceRelease(ForceReleaseArgs),
    /// Release the locks of processes of this host that are no longer running.
    Recover(RecoverArgs),
    /// Measure the lock implementation, each case beside the floor measured in the same run
    /// (one durable create-if-absent on the same disk).
    Bench(BenchArgs),
    /// Export the model's behaviours as JSON test vectors for ports (specs/vectors/README.md).
    Vectors(VectorsArgs),
    /// Test kit (hidden): the worker of the process-kill tests, run under `lockstep lock`.
    #[command(name = "__worker", hide = true)]
    Worker(WorkerArgs),
}

#[derive(Args)]
struct VectorsArgs {
    /// `export`.
    #[arg(value_parser = ["export"])]
    action: String,
    /// Only `lock` has vectors so far.
    #[arg(value_parser = ["lock"])]
    protocol: String,
    /// Directory to write `<protocol>.json` into.
    #[arg(long)]
    out: std::path::PathBuf,
    /// Behaviours in the seeded sample.
    #[arg(long, default_value_t = 300)]
    count: usize,
    /// Operations per behaviour, at most.
    #[arg(long, default_value_t = 8)]
    depth: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Args)]
struct WorkerArgs {
    #[command(flatten)]
    root: RootArg,
    /// Shared log file (appended to with single O_APPEND writes).
    #[arg(long)]
    log: std::path::PathBuf,
    /// Milliseconds between entering and the fenced write (the window for kills and pauses).
    #[arg(long, default_value_t = 30)]
    hold_ms: u64,
}

#[derive(Args)]
struct BenchArgs {
    /// Directory to benchmark in (its disk is the one measured); a temporary one by default.
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
    /// Fewer iterations and a 10,000-file tree instead of 100,000.
    #[arg(long)]
    quick: bool,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct RootArg {
    /// The data root; lock state lives in ROOT/.lockstep.
    #[arg(long)]
    root: std::path::PathBuf,
}

#[derive(Args)]
struct LocksArgs {
    #[command(flatten)]
    root: RootArg,
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ModeArg {
    Point,
    Subtree,
    Mv,
}

#[derive(Args)]
struct LockArgs {
    #[command(flatten)]
    root: RootArg,
    /// point: POINT on each PATH; subtree: SUBTREE on each; mv: SUBTREE on source and destination parent.
    #[arg(long, value_enum)]
    mode: ModeArg,
    /// lock_timeout in seconds (0: fail at once if busy) or `forever`.
    #[arg(long, default_value = "0")]
    timeout: String,
    /// Lease in seconds (renewed every third of it while COMMAND runs).
    #[arg(long, default_value_t = 300.0)]
    lease: f64,
    /// Paths in the lock namespace, e.g. /resources/a.
    #[arg(required = true)]
    paths: Vec<String>,
    /// The command to run, after `--`.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

#[derive(Args)]
struct ForceReleaseArgs {
    #[command(flatten)]
    root: RootArg,
    path: String,
    /// Release only if the lock holds this token.
    #[arg(long)]
    token: Option<u64>,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct RecoverArgs {
    #[command(flatten)]
    root: RootArg,
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ProtocolArg {
    Lock,
    Merge,
    Redo,
    All,
}

#[derive(Args)]
struct CheckArgs {
    /// Which protocol to check; all of them by default.
    #[arg(value_enum, default_value = "all")]
    protocol: ProtocolArg,
    /// Variant: `fixed` (default), `seed`, or a mutant name (see `lockstep variants`).
    #[arg(long, default_value = "fixed")]
    variant: String,
    #[command(flatten)]
    bounds: LockBounds,
    /// Checker threads (1 is usually fastest on 2 cores).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Stop after this many seconds; the result is then reported incomplete (exit 3).
    #[arg(long)]
    max_seconds: Option<u64>,
    /// Stop after generating this many states; the result is then reported incomplete (exit 3).
    #[arg(long)]
    max_states: Option<usize>,
    /// Explore without symmetry reduction (slower; for cross-checking the reduction).
    #[arg(long)]
    no_symmetry: bool,
    /// One JSON object per protocol, one per line, on stdout.
    #[arg(long)]
    json: bool,
    /// No progress lines on stderr.
    #[arg(long, short)]
    quiet: bool,
}

/// Bounds of the path-lock model. Defaults are the proven bounds in README.md.
#[derive(Args, Clone)]
struct LockBounds {
    /// Number of clients (each picks a mode nondeterministically).
    #[arg(long, default_value_t = 2)]
    clients: usize,
    /// Crashes allowed per behaviour (lock default 1; merge and redo default 2).
    #[arg(long)]
    crashes: Option<u8>,
    /// Time runs from tick 0 to this tick.
    #[arg(long, default_value_t = 1)]
    ticks: u8,
    /// A lock's lease, in ticks.
    #[arg(long, default_value_t = 1)]
    lease: u8,
    /// Stale-lock cleanups per behaviour.
    #[arg(long, default_value_t = 1)]
    reaps: u8,
    /// Operator force releases per behaviour (lock default 1; merge default 2).
    #[arg(long)]
    force_releases: Option<u8>,
    /// Back-offs each client may make before failing.
    #[arg(long, default_value_t = 1)]
    retries: u8,
    /// Lease renewals (seed: refreshes) per client.
    #[arg(long, default_value_t = 1)]
    renewals: u8,
    /// lock_timeout: zero (fail fast), bounded (give up when time runs out), forever.
    #[arg(long, default_value = "forever")]
    timeout: String,
    /// Modes the clients choose from: a comma list of point, subtree, mv.
    #[arg(long, default_value = "point,subtree,mv")]
    modes: String,
    /// The path tree, a comma list starting with `/`.
    #[arg(long, default_value = "/,/a,/a/b,/c")]
    tree: String,
    /// merge: concurrent mergers of the child branch.
    #[arg(long, default_value_t = 3)]
    mergers: u8,
    /// merge: child commits written while merges run (live ingest).
    #[arg(long, default_value_t = 2)]
    child_writes: u8,
    /// redo: committers of one session.
    #[arg(long, default_value_t = 3)]
    committers: u8,
    /// redo: messages the user adds.
    #[arg(long, default_value_t = 3)]
    messages: u8,
    /// redo: restarts (each runs recovery and the queue's stale-claim recovery).
    #[arg(long, default_value_t = 2)]
    restarts: u8,
}

impl LockBounds {
    fn redo_config(&self, variant: RedoVariant) -> RedoConfig {
        let defaults = RedoConfig::new(variant);
        RedoConfig {
            committers: self.committers,
            messages: self.messages,
            restarts: self.restarts,
            crashes: self.crashes.unwrap_or(defaults.crashes),
            ..defaults
        }
    }

    fn merge_config(&self, variant: MergeVariant) -> MergeConfig {
        let defaults = MergeConfig::new(variant);
        MergeConfig {
            mergers: self.mergers,
            child_writes: self.child_writes,
            crashes: self.crashes.unwrap_or(defaults.crashes),
            force_releases: self.force_releases.unwrap_or(defaults.force_releases),
            ..defaults
        }
    }
}

impl LockBounds {
    fn config(&self, variant: Variant) -> Result<LockConfig, String> {
        let mut config = LockConfig::new(variant).with_clients(self.clients);
        let timeout = Timeout::parse(&self.timeout)?;
        for spec in &mut config.clients {
            spec.timeout = timeout;
            spec.retries = self.retries;
            spec.renewals = self.renewals;
        }
        config.crashes = self.crashes.unwrap_or(config.crashes);
        config.ticks = self.ticks;
        config.lease_ticks = self.lease;
        config.reaps = self.reaps;
        config.force_releases = self.force_releases.unwrap_or(config.force_releases);
        config.modes = ModeSet::parse(&self.modes)?;
        config.tree = self.tree.split(',').map(|s| s.trim().to_string()).collect();
        Ok(config)
    }
}

#[derive(Args)]
struct BugsArgs {
    /// Which protocol's bugs; all by default.
    #[arg(value_enum, default_value = "all")]
    protocol: ProtocolArg,
    /// Only the seed bugs, not the mutants of the fixed protocol.
    #[arg(long)]
    seed_only: bool,
    /// Seconds allowed per catalogued bug.
    #[arg(long, default_value_t = 60)]
    budget_seconds: u64,
    /// `{"bugs":[…]}` on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ExploreArgs {
    #[arg(value_enum)]
    protocol: ProtocolArg,
    #[arg(long, default_value = "fixed")]
    variant: String,
    #[command(flatten)]
    bounds: LockBounds,
    /// Port on 127.0.0.1.
    #[arg(long, default_value_t = 3000)]
    port: u16,
}

pub fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("LOCKSTEP_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check(args) => run_check(&args),
        Command::Bugs(args) => run_bugs(&args),
        Command::Explore(args) => run_explore(&args),
        Command::Variants => {
            println!("lock: {}", Variant::names().join(", "));
            println!("merge: {}", MergeVariant::names().join(", "));
            println!("redo: {}", RedoVariant::names().join(", "));
            Ok(0)
        }
        Command::Locks(args) => ops::run(ops::locks(args)),
        Command::Lock(args) => ops::run(ops::lock(args)),
        Command::ForceRelease(args) => ops::run(ops::force_release(args)),
        Command::Recover(args) => ops::run(ops::recover(args)),
        Command::Bench(args) => ops::run(ops::bench(args)),
        Command::Worker(args) => ops::run(ops::worker(args)),
        Command::Vectors(args) => {
            let file = lockstep_model::vectors::generate(args.count, args.depth, args.seed);
            let path = args.out.join(format!("{}.json", args.protocol));
            let text = serde_json::to_string_pretty(&file).expect("vectors serialise") + "\n";
            match std::fs::create_dir_all(&args.out).and_then(|()| std::fs::write(&path, text)) {
                Ok(()) => {
                    println!("wrote {} vectors to {}", file.vectors.len(), path.display());
                    Ok(0)
                }
                Err(e) => Err(format!("cannot write {}: {e}", path.display())),
            }
        }
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            eprintln!("lockstep: {message}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// The protocols a `PROTOCOL` argument names, refusing those not built yet.
fn protocols(arg: ProtocolArg) -> Result<Vec<&'static str>, String> {
    match arg {
        ProtocolArg::All => Ok(vec!["lock", "merge", "redo"]),
        ProtocolArg::Lock => Ok(vec!["lock"]),
        ProtocolArg::Merge => Ok(vec!["merge"]),
        ProtocolArg::Redo => Ok(vec!["redo"]),
    }
}

/// The variant flag applies to every protocol checked; `--variant fixed` is the default.
fn variant_for(name: &str, protocol: &str, explicit: bool) -> Result<String, String> {
    if explicit || name == "fixed" {
        Ok(name.to_owned())
    } else {
        Err(format!("--variant {name} is not a variant of {protocol}"))
    }
}

fn run_check(args: &CheckArgs) -> Result<u8, String> {
    let options = CheckOptions {
        threads: args.threads,
        timeout: args.max_seconds.map(Duration::from_secs),
        max_states: args.max_states,
        progress: !args.quiet,
        no_symmetry: args.no_symmetry,
    };
    let mut code = 0;
    for protocol in protocols(args.protocol)? {
        let explicit = args.protocol != ProtocolArg::All;
        let report = match protocol {
            "lock" => {
                let variant = Variant::parse(&variant_for(&args.variant, protocol, explicit)?)?;
                let model = LockModel::new(args.bounds.config(variant)?)?;
                check(&model, &options)
            }
            "merge" => {
                let variant = MergeVariant::parse(&variant_for(&args.variant, protocol, explicit)?)?;
                let model = MergeModel::new(args.bounds.merge_config(variant))?;
                check(&model, &options)
            }
            "redo" => {
                let variant = RedoVariant::parse(&variant_for(&args.variant, protocol, explicit)?)?;
                let model = RedoModel::new(args.bounds.redo_config(variant))?;
                check(&model, &options)
            }
            other => unreachable!("unknown protocol {other}"),
        };
        if args.json {
            println!("{}", serde_json::to_string(&report).expect("report serialises"));
        } else {
            print_report(&report);
        }
        code = code.max(if report.failed() {
            EXIT_PROPERTY_FAILED
        } else if !report.complete {
            EXIT_INCOMPLETE
        } else {
            0
        });
    }
    Ok(code)
}

fn print_report(report: &Report) {
    println!("{}/{}  bounds: {}", report.protocol, report.variant, report.bounds);
    let completeness = if report.complete {
        "complete: every reachable state explored".to_string()
    } else {
        format!("INCOMPLETE ({:?}): nothing is proven", report.stop_reason)
    };
    println!(
        "  {} states generated, {} unique, max depth {}, {:.1} s, symmetry {}; {}",
        report.states,
        report.unique_states,
        report.max_depth,
        report.seconds,
        if report.symmetry { "on" } else { "off" },
        completeness
    );
    for property in &report.properties {
        let verdict = match (property.holds, property.kind) {
            (None, _) => "unknown (search incomplete)",
            (Some(true), "sometimes") => "witnessed",
            (Some(true), _) => "holds",
            (Some(false), "sometimes") => "NEVER REACHED",
            (Some(false), _) => "FAILS",
        };
        println!("  {:<10} {:<28} {}", property.kind, property.name, verdict);
        if let Some(trace) = &property.counterexample {
            println!("    shortest counterexample, {} steps:", trace.len());
            print!("{trace}");
        }
    }
}

fn run_bugs(args: &BugsArgs) -> Result<u8, String> {
    let names = protocols(args.protocol)?;
    let budget = Duration::from_secs(args.budget_seconds);
    let mut runs: Vec<BugRun> = Vec::new();
    for entry in bugs::catalogue() {
        if !names.contains(&entry.protocol) || (args.seed_only && entry.kind != EntryKind::SeedBug) {
            continue;
        }
        let run = entry.run(budget);
        if !args.json {
            print_bug(&run);
        }
        runs.push(run);
    }
    let all = runs.iter().all(|r| r.reproduced);
    if args.json {
        let bugs: Vec<_> = runs
            .iter()
            .map(|r| {
                serde_json::json!({
                    "id": r.id, "protocol": r.protocol, "kind": r.kind, "variant": r.variant,
                    "property": r.property, "title": r.title, "source": r.source,
                    "reproduced": r.reproduced, "trace_len": r.trace_len,
                    "counterexample": r.counterexample, "seconds": r.seconds,
                })
            })
            .collect();
        println!("{}", serde_json::json!({ "bugs": bugs }));
    } else {
        let reproduced = runs.iter().filter(|r| r.reproduced).count();
        println!("{reproduced} of {} catalogued bugs reproduced", runs.len());
    }
    Ok(if all { 0 } else { EXIT_BUG_NOT_REPRODUCED })
}

fn print_bug(run: &BugRun) {
    let status = if run.reproduced { "reproduced" } else { "NOT REPRODUCED" };
    println!("{}  [{} {:?}, property \"{}\"]  {status}", run.id, run.variant, run.kind, run.property);
    println!("  {}", run.title);
    println!("  source: {}", run.source);
    match (&run.counterexample, run.unique_states) {
        (Some(trace), _) => {
            println!("  shortest counterexample, {} steps:", trace.len());
            print!("{trace}");
        }
        (None, Some(states)) if run.reproduced => {
            println!("  never reached in any of {states} states (exhaustive)");
        }
        _ => {}
    }
    println!();
}

fn run_explore(args: &ExploreArgs) -> Result<u8, String> {
    use stateright::Model;
    let address = ("127.0.0.1", args.port);
    match protocols(args.protocol)?.as_slice() {
        ["lock"] => {
            let variant = Variant::parse(&args.variant)?;
            let model = LockModel::new(args.bounds.config(variant)?)?;
            eprintln!("Explorer for lock/{} on http://127.0.0.1:{} (Ctrl-C to stop)", variant.name(), args.port);
            model.checker().serve(address);
        }
        ["merge"] => {
            let variant = MergeVariant::parse(&args.variant)?;
            let model = MergeModel::new(args.bounds.merge_config(variant))?;
            eprintln!("Explorer for merge/{} on http://127.0.0.1:{} (Ctrl-C to stop)", variant.name(), args.port);
            model.checker().serve(address);
        }
        ["redo"] => {
            let variant = RedoVariant::parse(&args.variant)?;
            let model = RedoModel::new(args.bounds.redo_config(variant))?;
            eprintln!("Explorer for redo/{} on http://127.0.0.1:{} (Ctrl-C to stop)", variant.name(), args.port);
            model.checker().serve(address);
        }
        _ => return Err("explore takes one protocol".into()),
    }
    Ok(0)
}

/// The operator's commands over a lock root.
mod ops {
    use std::time::Duration;

    use lockstep::lock::{self, LockError, LockManager, LockMode, LockOptions, LockPath, Operation};
    use lockstep::store::{FsStore, StoreError};

    use super::{WorkerArgs, BenchArgs, ForceReleaseArgs, LockArgs, LocksArgs, ModeArg, RecoverArgs, RootArg, EXIT_BUSY, EXIT_STORAGE, EXIT_USAGE};

    /// The process-kill tests' worker: logs `enter`, waits, writes to the fenced log of each
    /// locked path with the lock's token, logs the outcome, logs `exit`. Times are
    /// CLOCK_MONOTONIC nanoseconds, comparable between processes of one host.
    pub async fn worker(args: WorkerArgs) -> Result<u8, Failure> {
        use std::io::Write;
        let store = open(&args.root)?;
        let log_line = |line: String| -> Result<(), Failure> {
            let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&args.log).map_err(|e| Failure(EXIT_STORAGE, e.to_string()))?;
            file.write_all(format!("{line}\n").as_bytes()).map_err(|e| Failure(EXIT_STORAGE, e.to_string()))
        };
        let now = || {
            let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
            t.tv_sec as u128 * 1_000_000_000 + t.tv_nsec as u128
        };
        let group = rustix::process::getpgrp().as_raw_nonzero();
        let tokens = std::env::var("LOCKSTEP_TOKENS").map_err(|_| Failure(EXIT_USAGE, "run me under `lockstep lock`".into()))?;
        let kinds = std::env::var("LOCKSTEP_KINDS").unwrap_or_default();
        log_line(format!("enter {} {group} {tokens} {kinds}", now()))?;
        tokio::time::sleep(Duration::from_millis(args.hold_ms)).await;
        let log = lock::FencedLog::new(store);
        for pair in tokens.split(',') {
            let (path, token) = pair.rsplit_once('=').ok_or_else(|| Failure(EXIT_USAGE, format!("bad LOCKSTEP_TOKENS {tokens}")))?;
            let token: u64 = token.parse().map_err(|_| Failure(EXIT_USAGE, format!("bad token in {tokens}")))?;
            let path = LockPath::new(path).map_err(LockError::from)?;
            let outcome = match log.append(&path, token, &format!("written by {group}")).await? {
                Ok(_) => "accepted",
                Err(_) => "rejected",
            };
            log_line(format!("write {} {group} {token} {path} {outcome}", now()))?;
        }
        log_line(format!("exit {} {group}", now()))?;
        Ok(0)
    }

    pub async fn bench(args: BenchArgs) -> Result<u8, Failure> {
        let temporary = tempfile::tempdir().map_err(|e| Failure(EXIT_STORAGE, e.to_string()))?;
        let dir = args.dir.clone().unwrap_or_else(|| temporary.path().to_path_buf());
        let results = lockstep::bench::run_all(&dir, args.quick).await;
        if args.json {
            println!("{}", serde_json::json!({ "dir": dir, "measurements": results }));
        } else {
            println!("{:<72} {:>10} {:>10} {:>8}", "case", "median µs", "p90 µs", "× floor");
            for m in &results {
                println!("{:<72} {:>10.1} {:>10.1} {:>8.2}", m.name, m.median_us, m.p90_us, m.ratio_to_floor);
            }
        }
        Ok(0)
    }

    /// An error with the exit code it maps to.
    pub struct Failure(u8, String);

    impl From<LockError> for Failure {
        fn from(error: LockError) -> Failure {
            let code = match &error {
                LockError::Busy { .. } | LockError::RetriesExhausted { .. } | LockError::Contended { .. } => EXIT_BUSY,
                LockError::InvalidPath(_) | LockError::InvalidRequest(_) | LockError::TokenMismatch { .. } => EXIT_USAGE,
                _ => EXIT_STORAGE,
            };
            Failure(code, error.to_string())
        }
    }

    impl From<StoreError> for Failure {
        fn from(error: StoreError) -> Failure {
            Failure(EXIT_STORAGE, error.to_string())
        }
    }

    pub fn run(work: impl std::future::Future<Output = Result<u8, Failure>>) -> Result<u8, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().map_err(|e| e.to_string())?;
        match runtime.block_on(work) {
            Ok(code) => Ok(code),
            Err(Failure(code, message)) => {
                eprintln!("lockstep: {message}");
                Ok(code)
            }
        }
    }

    fn open(root: &RootArg) -> Result<FsStore, Failure> {
        if !root.root.is_dir() {
            return Err(Failure(EXIT_USAGE, format!("--root {} is not a directory", root.root.display())));
        }
        Ok(FsStore::open(root.root.join(".lockstep"))?)
    }

    pub async fn locks(args: LocksArgs) -> Result<u8, Failure> {
        let store = open(&args.root)?;
        let locks = lock::observe(&store).await?;
        if args.json {
            println!("{}", serde_json::json!({ "locks": locks }));
            return Ok(0);
        }
        if locks.is_empty() {
            println!("no locks held");
        }
        for info in &locks {
            println!(
                "{:<30} {:<7} token {:<6} {:<8} held {:>7.1} s, renewed {:>6.1} s ago (lease {:.0} s)  owner {} ({:?})",
                info.path,
                format!("{:?}", info.kind).to_lowercase(),
                info.token,
                format!("{:?}", info.state).to_lowercase(),
                info.held_s,
                info.since_renewal_s,
                info.lease_s,
                info.owner,
                info.owner_liveness
            );
        }
        Ok(0)
    }

    fn parse_timeout(text: &str) -> Result<Option<Duration>, Failure> {
        if text == "forever" {
            return Ok(None);
        }
        text.parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| Some(Duration::from_secs_f64(s)))
            .ok_or_else(|| Failure(EXIT_USAGE, format!("--timeout {text:?}: expected seconds (0 = fail fast) or `forever`")))
    }

    pub async fn lock(args: LockArgs) -> Result<u8, Failure> {
        let store = open(&args.root)?;
        if !(args.lease.is_finite() && args.lease >= 0.3) {
            return Err(Failure(EXIT_USAGE, "--lease must be at least 0.3 seconds".into()));
        }
        let options = LockOptions { timeout: parse_timeout(&args.timeout)?, cleanup_every: None, ..LockOptions::with_lease(Duration::from_secs_f64(args.lease)) };
        let mode = match args.mode {
            ModeArg::Point => LockMode::Point,
            ModeArg::Subtree => LockMode::Subtree,
            ModeArg::Mv => LockMode::Mv,
        };
        let paths: Vec<&str> = args.paths.iter().map(String::as_str).collect();
        let operation = Operation::new(mode, &paths)?;
        let manager = LockManager::start(store, options).await?;
        let guard = manager.lock(operation).await?;
        let tokens: Vec<String> = guard.tokens().iter().map(|(p, _, t)| format!("{p}={t}")).collect();
        let mut child = tokio::process::Command::new(&args.command[0])
            .args(&args.command[1..])
            .env("LOCKSTEP_TOKEN", guard.token().to_string())
            .env("LOCKSTEP_TOKENS", tokens.join(","))
            .env("LOCKSTEP_OWNER", guard.owner())
            .env("LOCKSTEP_KINDS", guard.tokens().iter().map(|(p, k, _)| format!("{p}={}", k.letter())).collect::<Vec<_>>().join(","))
            .spawn()
            .map_err(|e| Failure(EXIT_USAGE, format!("cannot run {:?}: {e}", args.command[0])))?;
        let status = wait_forwarding_signals(&mut child).await.map_err(|e| Failure(EXIT_STORAGE, e.to_string()))?;
        if let Err(error) = guard.check() {
            eprintln!("lockstep: warning: {error} while the command ran");
        }
        let released = guard.release().await;
        manager.shutdown().await;
        if let Err(error) = released {
            eprintln!("lockstep: warning: release: {error}");
        }
        use std::os::unix::process::ExitStatusExt;
        Ok(match (status.code(), status.signal()) {
            (Some(code), _) => code.clamp(0, 255) as u8,
            (None, Some(signal)) => (128 + signal).clamp(0, 255) as u8,
            _ => 1,
        })
    }

    async fn wait_forwarding_signals(child: &mut tokio::process::Child) -> std::io::Result<std::process::ExitStatus> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        loop {
            tokio::select! {
                status = child.wait() => return status,
                _ = interrupt.recv() => forward(child, rustix::process::Signal::INT),
                _ = terminate.recv() => forward(child, rustix::process::Signal::TERM),
            }
        }
    }

    fn forward(child: &tokio::process::Child, signal: rustix::process::Signal) {
        let pid = child.id().and_then(|id| rustix::process::Pid::from_raw(id as i32));
        if let Some(pid) = pid {
            let _ = rustix::process::kill_process(pid, signal);
        }
    }

    pub async fn force_release(args: ForceReleaseArgs) -> Result<u8, Failure> {
        let store = open(&args.root)?;
        let path = LockPath::new(&args.path).map_err(LockError::from)?;
        let released = lock::force_release(&store, &path, args.token).await?;
        if args.json {
            println!("{}", serde_json::json!({ "released": released }));
        } else {
            match &released {
                Some(r) => println!("released {} (token {}, owner {})", r.path, r.ticket, r.owner),
                None => println!("{} is not locked", path),
            }
        }
        Ok(0)
    }

    pub async fn recover(args: RecoverArgs) -> Result<u8, Failure> {
        let store = open(&args.root)?;
        let here = lock::owner::ProcessId::current();
        let released = lock::recover(&store, &here).await?;
        if args.json {
            println!("{}", serde_json::json!({ "released": released }));
        } else {
            println!("released {} lock(s) of dead processes of this host", released.len());
            for r in &released {
                println!("  {} (token {}, owner {})", r.path, r.ticket, r.owner);
            }
        }
        Ok(0)
    }
}
