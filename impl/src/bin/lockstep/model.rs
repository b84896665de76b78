//! The model checker's commands: `check`, `bugs`, `explore`, `variants`, `presets`, `vectors`.

use std::time::Duration;

use clap::{Args, ValueEnum};
use lockstep_model::catalogue::{BugRun, EntryKind};
use lockstep_model::check::{
    check as run_checker, default_memory_budget, CheckOptions, Found, Report, StopReason,
};
use lockstep_model::explore;
use lockstep_model::lock::{self, LockConfig, LockModel, ModeSet, Timeout, Variant};
use lockstep_model::merge::{self, MergeConfig, MergeModel, MergeVariant};
use lockstep_model::preset::{self, Preset};
use lockstep_model::redo::{self, RedoConfig, RedoModel, RedoVariant};

use crate::cli::{
    EXIT_BUG_NOT_REPRODUCED, EXIT_INCOMPLETE, EXIT_OK, EXIT_PROPERTY_FAILED, EXIT_STORAGE,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProtocolArg {
    Lock,
    Merge,
    Redo,
    All,
}

impl ProtocolArg {
    pub fn names(self) -> Vec<&'static str> {
        match self {
            ProtocolArg::All => vec!["lock", "merge", "redo"],
            ProtocolArg::Lock => vec!["lock"],
            ProtocolArg::Merge => vec!["merge"],
            ProtocolArg::Redo => vec!["redo"],
        }
    }
}

/// One protocol: the Explorer serves one model at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OneProtocol {
    Lock,
    Merge,
    Redo,
}

/// The bounds of the models. Each applies to some protocols only; naming one for a protocol it
/// does not apply to is an error, not silently ignored. Unset bounds come from the preset.
#[derive(Args, Clone, Default)]
pub struct Bounds {
    /// lock: number of clients (each picks a mode nondeterministically).
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=4))]
    clients: Option<u8>,
    /// lock: the path tree, a comma list starting with `/` (at most 6 paths).
    #[arg(long)]
    tree: Option<String>,
    /// lock: modes the clients choose from, a comma list of point, subtree, mv.
    #[arg(long)]
    modes: Option<String>,
    /// lock: lock_timeout: zero (fail fast), bounded (give up when time runs out), forever.
    #[arg(long)]
    timeout: Option<String>,
    /// lock: time runs from tick 0 to this tick.
    #[arg(long)]
    ticks: Option<u8>,
    /// lock: a lock's lease, in ticks.
    #[arg(long)]
    lease: Option<u8>,
    /// lock: stale-lock cleanups per behaviour.
    #[arg(long)]
    reaps: Option<u8>,
    /// lock, merge: operator force releases per behaviour.
    #[arg(long)]
    force_releases: Option<u8>,
    /// lock: back-offs each client may make before failing.
    #[arg(long)]
    retries: Option<u8>,
    /// lock: lease renewals (seed: refreshes) per client.
    #[arg(long)]
    renewals: Option<u8>,
    /// lock: store faults per behaviour (a failed operation, or a create that lands while its
    /// caller gets an error). merge, redo: ambiguous outcomes (a write that lands while its
    /// caller gets an error; in the redo seed, a replay's failed enqueue).
    #[arg(long)]
    faults: Option<u8>,
    /// lock, merge, redo: crashes per behaviour.
    #[arg(long)]
    crashes: Option<u8>,
    /// lock: runs of the offline collector (`lockstep gc`), each when no client is mid-operation.
    #[arg(long)]
    collections: Option<u8>,
    /// lock, redo: lost leases: the store proves a client (a committer) dead while it still runs
    /// (etcd: a lease that expired in a stall or partition, or one a stalled leader revoked,
    /// #15247).
    #[arg(long)]
    lease_losses: Option<u8>,
    /// lock: power losses (machine crashes). Every running client dies and starts its
    /// operation again as a new process; entries written since their journal was last synced
    /// may be lost (specs/lock.md §12).
    #[arg(long)]
    power_losses: Option<u8>,
    /// merge: concurrent mergers of the child branch.
    #[arg(long)]
    mergers: Option<u8>,
    /// merge: child commits present at the start.
    #[arg(long)]
    child_commits: Option<u8>,
    /// merge: child commits written while merges run (live ingest).
    #[arg(long)]
    child_writes: Option<u8>,
    /// merge: retries of a failed `lock` create before a merger gives up.
    #[arg(long)]
    lock_retries: Option<u8>,
    /// merge: merges of a second child into the same parent (0 to 2; with any, the two children
    /// conflict over a parent object both delete).
    #[arg(long)]
    sibling_merges: Option<u8>,
    /// redo: committers (of one session, or spread over `--sessions`).
    #[arg(long)]
    committers: Option<u8>,
    /// redo: messages the user adds.
    #[arg(long)]
    messages: Option<u8>,
    /// redo: restarts (each runs recovery, the queue's stale-claim recovery, and the path locks'
    /// recovery of dead holders).
    #[arg(long)]
    restarts: Option<u8>,
    /// redo: lease expiries of the session lock while its holder may still run (a zombie).
    #[arg(long)]
    expiries: Option<u8>,
    /// redo: committers take no session lock at all (safety must not rest on it).
    #[arg(long)]
    no_session_lock: bool,
    /// redo: sessions sharing one queue, worker and recovery (1 or 2; with 2, committer c
    /// commits session c % 2 and message m goes to session m % 2).
    #[arg(long)]
    sessions: Option<u8>,
    /// redo: semantic-queue workers (1 or 2; worker 0 runs in the process a restart restarts,
    /// worker 1 is a process of its own).
    #[arg(long)]
    workers: Option<u8>,
    /// redo: lost worker leases: the store proves a worker dead while it still holds a claim, so
    /// another worker claims the row over it while it runs on.
    #[arg(long)]
    worker_lease_losses: Option<u8>,
}

impl Bounds {
    /// The flags given, with the protocols each applies to.
    fn given(&self) -> Vec<(&'static str, &'static [&'static str])> {
        const LOCK: &[&str] = &["lock"];
        const MERGE: &[&str] = &["merge"];
        const REDO: &[&str] = &["redo"];
        const LOCK_MERGE: &[&str] = &["lock", "merge"];
        const ALL: &[&str] = &["lock", "merge", "redo"];
        let flags: [(&str, bool, &[&str]); 28] = [
            ("--clients", self.clients.is_some(), LOCK),
            ("--tree", self.tree.is_some(), LOCK),
            ("--modes", self.modes.is_some(), LOCK),
            ("--timeout", self.timeout.is_some(), LOCK),
            ("--ticks", self.ticks.is_some(), LOCK),
            ("--lease", self.lease.is_some(), LOCK),
            ("--reaps", self.reaps.is_some(), LOCK),
            (
                "--force-releases",
                self.force_releases.is_some(),
                LOCK_MERGE,
            ),
            ("--retries", self.retries.is_some(), LOCK),
            ("--renewals", self.renewals.is_some(), LOCK),
            ("--faults", self.faults.is_some(), ALL),
            ("--crashes", self.crashes.is_some(), ALL),
            ("--collections", self.collections.is_some(), LOCK),
            ("--power-losses", self.power_losses.is_some(), LOCK),
            (
                "--lease-losses",
                self.lease_losses.is_some(),
                &["lock", "redo"],
            ),
            ("--mergers", self.mergers.is_some(), MERGE),
            ("--child-commits", self.child_commits.is_some(), MERGE),
            ("--child-writes", self.child_writes.is_some(), MERGE),
            ("--lock-retries", self.lock_retries.is_some(), MERGE),
            ("--sibling-merges", self.sibling_merges.is_some(), MERGE),
            ("--committers", self.committers.is_some(), REDO),
            ("--messages", self.messages.is_some(), REDO),
            ("--restarts", self.restarts.is_some(), REDO),
            ("--expiries", self.expiries.is_some(), REDO),
            ("--no-session-lock", self.no_session_lock, REDO),
            ("--sessions", self.sessions.is_some(), REDO),
            ("--workers", self.workers.is_some(), REDO),
            (
                "--worker-lease-losses",
                self.worker_lease_losses.is_some(),
                REDO,
            ),
        ];
        flags
            .into_iter()
            .filter(|(_, set, _)| *set)
            .map(|(name, _, applies)| (name, applies))
            .collect()
    }

    fn any(&self) -> bool {
        !self.given().is_empty()
    }

    /// Refuses flags that do not apply to `protocol`.
    fn check_applies(&self, protocol: &str) -> Result<(), String> {
        for (flag, applies) in self.given() {
            if !applies.contains(&protocol) {
                return Err(format!(
                    "{flag} is a bound of the {} model, not of {protocol}",
                    applies.join(" and ")
                ));
            }
        }
        Ok(())
    }

    fn lock(&self, mut config: LockConfig) -> Result<LockConfig, String> {
        if let Some(count) = self.clients {
            config = config.with_clients(count as usize);
        }
        let timeout = self.timeout.as_deref().map(Timeout::parse).transpose()?;
        for spec in &mut config.clients {
            spec.timeout = timeout.unwrap_or(spec.timeout);
            spec.retries = self.retries.unwrap_or(spec.retries);
            spec.renewals = self.renewals.unwrap_or(spec.renewals);
        }
        config.crashes = self.crashes.unwrap_or(config.crashes);
        config.ticks = self.ticks.unwrap_or(config.ticks);
        config.lease_ticks = self.lease.unwrap_or(config.lease_ticks);
        config.reaps = self.reaps.unwrap_or(config.reaps);
        config.force_releases = self.force_releases.unwrap_or(config.force_releases);
        config.faults = self.faults.unwrap_or(config.faults);
        config.collections = self.collections.unwrap_or(config.collections);
        config.lease_losses = self.lease_losses.unwrap_or(config.lease_losses);
        config.power_losses = self.power_losses.unwrap_or(config.power_losses);
        if let Some(modes) = &self.modes {
            config.modes = ModeSet::parse(modes)?;
        }
        if let Some(tree) = &self.tree {
            config.tree = tree.split(',').map(|s| s.trim().to_string()).collect();
        }
        Ok(config)
    }

    fn merge(&self, config: MergeConfig) -> MergeConfig {
        MergeConfig {
            mergers: self.mergers.unwrap_or(config.mergers),
            child_commits: self.child_commits.unwrap_or(config.child_commits),
            child_writes: self.child_writes.unwrap_or(config.child_writes),
            lock_retries: self.lock_retries.unwrap_or(config.lock_retries),
            sibling_merges: self.sibling_merges.unwrap_or(config.sibling_merges),
            crashes: self.crashes.unwrap_or(config.crashes),
            force_releases: self.force_releases.unwrap_or(config.force_releases),
            ambiguous: self.faults.unwrap_or(config.ambiguous),
            ..config
        }
    }

    fn redo(&self, config: RedoConfig) -> RedoConfig {
        RedoConfig {
            committers: self.committers.unwrap_or(config.committers),
            messages: self.messages.unwrap_or(config.messages),
            restarts: self.restarts.unwrap_or(config.restarts),
            crashes: self.crashes.unwrap_or(config.crashes),
            expiries: self.expiries.unwrap_or(config.expiries),
            faults: self.faults.unwrap_or(config.faults),
            session_lock: config.session_lock && !self.no_session_lock,
            sessions: self.sessions.unwrap_or(config.sessions),
            lease_losses: self.lease_losses.unwrap_or(config.lease_losses),
            workers: self.workers.unwrap_or(config.workers),
            worker_lease_losses: self
                .worker_lease_losses
                .unwrap_or(config.worker_lease_losses),
            ..config
        }
    }
}

#[derive(Args)]
pub struct CheckArgs {
    /// Which protocol to check; all of them by default.
    #[arg(value_enum, default_value = "all")]
    protocol: ProtocolArg,
    /// Variant: `fixed` (default), `seed`, or a mutant name (see `lockstep variants`). With
    /// `all`, only a variant every protocol has (`fixed`, `seed`).
    #[arg(long)]
    variant: Option<String>,
    /// A named world (see `lockstep presets`); bounds given as flags override it. Without a
    /// preset and without bounds, every default world of the protocol is checked.
    #[arg(long)]
    preset: Option<String>,
    #[command(flatten)]
    bounds: Bounds,
    /// Checker threads per search (1 is usually fastest: stateright's threads share one
    /// visited set).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    threads: u16,
    /// Worlds checked at once (each search on its own core). Default: the number of cores.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: Option<u16>,
    /// Stop each search after this many seconds; it is then reported incomplete (exit 3).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    max_seconds: Option<u64>,
    /// Stop each search after generating this many states; it is then reported incomplete.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    max_states: Option<u64>,
    /// Stop a search when the process's resident memory reaches this many MiB; it is then
    /// reported incomplete. Default: half of the memory available at start.
    #[arg(long, value_parser = clap::value_parser!(u64).range(16..))]
    max_memory: Option<u64>,
    /// Seconds for the breadth-first search for shortest counterexamples of failed properties;
    /// past it, the depth-first search's counterexample is reported, labelled as such.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    shortest_seconds: u64,
    /// Explore without symmetry reduction (slower; for cross-checking the reduction).
    #[arg(long)]
    no_symmetry: bool,
    /// One JSON object per protocol and world, one per line, on stdout.
    #[arg(long)]
    json: bool,
    /// No progress lines on stderr.
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    diagrams: DiagramArgs,
}

/// `--svg DIR` and `--mermaid DIR`: every counterexample drawn as a sequence diagram.
#[derive(Args, Clone, Debug, Default)]
pub struct DiagramArgs {
    /// Draw each counterexample as a self-contained SVG sequence diagram in DIR (created if
    /// missing), one file per counterexample: a lane per actor and one for the store, an arrow
    /// per storage operation, crashes and faults marked, the breaking step highlighted.
    #[arg(long, value_name = "DIR")]
    svg: Option<std::path::PathBuf>,
    /// Write each counterexample as a Mermaid `sequenceDiagram` (a `.mmd` file) in DIR, for
    /// pasting into an issue.
    #[arg(long, value_name = "DIR")]
    mermaid: Option<std::path::PathBuf>,
}

impl DiagramArgs {
    /// Creates the directories before any search runs, so that a bad path fails at once.
    fn prepare(&self) -> Result<(), String> {
        for dir in [&self.svg, &self.mermaid].into_iter().flatten() {
            std::fs::create_dir_all(dir).map_err(|e| {
                format!("cannot create the diagram directory {}: {e}", dir.display())
            })?;
        }
        Ok(())
    }

    /// Writes the drawings of one counterexample, named `name` (made safe as a file name). A
    /// write that fails is reported on stderr and the run goes on; returns whether one failed
    /// (the command then exits 74).
    fn write(
        &self,
        name: &str,
        trace: &lockstep_model::trace::Trace,
        caption: lockstep_model::diagram::Caption<'_>,
    ) -> bool {
        let stem = lockstep_model::diagram::file_stem(name);
        let drawings = [
            (
                &self.svg,
                "svg",
                lockstep_model::diagram::svg as fn(_, _) -> String,
            ),
            (&self.mermaid, "mmd", lockstep_model::diagram::mermaid),
        ];
        let mut failed = false;
        for (dir, extension, draw) in drawings {
            let Some(dir) = dir else { continue };
            let path = dir.join(format!("{stem}.{extension}"));
            match std::fs::write(&path, draw(trace, caption)) {
                Ok(()) => eprintln!("wrote {}", path.display()),
                Err(e) => {
                    eprintln!("lockstep: cannot write {}: {e}", path.display());
                    failed = true;
                }
            }
        }
        failed
    }
}

/// One world to check.
#[derive(Clone)]
enum WorldConfig {
    Lock(LockConfig),
    Merge(MergeConfig),
    Redo(RedoConfig),
}

/// The worlds a `check` or `explore` names: the preset, the flags over the first default world,
/// or (with neither) every default world.
fn worlds(
    protocol: &str,
    variant: &str,
    preset_name: Option<&str>,
    bounds: &Bounds,
) -> Result<Vec<(&'static str, WorldConfig)>, String> {
    bounds.check_applies(protocol)?;
    fn pick<C: Clone>(
        presets: Vec<Preset<C>>,
        protocol: &str,
        name: Option<&str>,
        any_bounds: bool,
    ) -> Result<Vec<Preset<C>>, String> {
        match name {
            Some(name) => Ok(vec![preset::find(&presets, protocol, name)?]),
            None if any_bounds => Ok(presets.into_iter().take(1).collect()),
            None => Ok(presets.into_iter().filter(|p| p.default).collect()),
        }
    }
    let label = |name: &'static str| if bounds.any() { "custom" } else { name };
    match protocol {
        "lock" => {
            let variant = Variant::parse(variant)?;
            pick(lock::presets(), protocol, preset_name, bounds.any())?
                .into_iter()
                .map(|p| {
                    Ok((
                        label(p.name),
                        WorldConfig::Lock(bounds.lock(LockConfig {
                            variant,
                            ..p.config
                        })?),
                    ))
                })
                .collect()
        }
        "merge" => {
            let variant = MergeVariant::parse(variant)?;
            Ok(pick(merge::presets(), protocol, preset_name, bounds.any())?
                .into_iter()
                .map(|p| {
                    (
                        label(p.name),
                        WorldConfig::Merge(bounds.merge(MergeConfig {
                            variant,
                            ..p.config
                        })),
                    )
                })
                .collect())
        }
        "redo" => {
            let variant = RedoVariant::parse(variant)?;
            Ok(pick(redo::presets(), protocol, preset_name, bounds.any())?
                .into_iter()
                .map(|p| {
                    (
                        label(p.name),
                        WorldConfig::Redo(bounds.redo(RedoConfig {
                            variant,
                            ..p.config
                        })),
                    )
                })
                .collect())
        }
        other => unreachable!("unknown protocol {other}"),
    }
}

/// The variant for `protocol`; with `all`, the name must be a variant of every protocol.
fn variant_for(arg: ProtocolArg, variant: Option<&str>) -> Result<String, String> {
    let name = variant.unwrap_or("fixed");
    if arg == ProtocolArg::All && !(name == "fixed" || name == "seed") {
        let owners: Vec<&str> = [
            ("lock", Variant::names()),
            ("merge", MergeVariant::names()),
            ("redo", RedoVariant::names()),
        ]
        .into_iter()
        .filter(|(_, names)| names.contains(&name))
        .map(|(p, _)| p)
        .collect();
        return Err(match owners.as_slice() {
            [] => format!("--variant {name:?} is not a variant of any protocol (see `lockstep variants`)"),
            owners => format!(
                "--variant {name} is a variant of {} only; name the protocol: `lockstep check {} --variant {name}`",
                owners.join(", "),
                owners[0]
            ),
        });
    }
    Ok(name.to_owned())
}

pub fn check(args: &CheckArgs) -> Result<u8, String> {
    if args.protocol == ProtocolArg::All && (args.bounds.any() || args.preset.is_some()) {
        return Err("bounds and --preset belong to one protocol's model: name it (`lockstep check lock --clients 3`)".into());
    }
    let variant = variant_for(args.protocol, args.variant.as_deref())?;
    let options = CheckOptions {
        threads: args.threads as usize,
        timeout: args.max_seconds.map(Duration::from_secs),
        max_states: args.max_states.map(|n| n as usize),
        max_memory_bytes: Some(
            args.max_memory
                .map_or_else(default_memory_budget, |mib| mib << 20),
        ),
        progress: !args.quiet,
        no_symmetry: args.no_symmetry,
        label: None,
        shortest_timeout: Some(Duration::from_secs(args.shortest_seconds)),
    };
    // Build every world first, so that bad usage fails before any search runs.
    let mut all = Vec::new();
    for protocol in args.protocol.names() {
        for (name, world) in worlds(protocol, &variant, args.preset.as_deref(), &args.bounds)? {
            all.push((name, world));
        }
    }
    // Validate every world's model before any search runs.
    for (_, world) in &all {
        match world {
            WorldConfig::Lock(config) => drop(LockModel::new(config.clone())?),
            WorldConfig::Merge(config) => drop(MergeModel::new(config.clone())?),
            WorldConfig::Redo(config) => drop(RedoModel::new(config.clone())?),
        }
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let jobs = args
        .jobs
        .map_or(cores, usize::from)
        .clamp(1, all.len().max(1));
    args.diagrams.prepare()?;
    let reports = check_in_parallel(all, &options, jobs);
    let mut code = EXIT_OK;
    let mut drawing_failed = false;
    for (name, report) in reports {
        if args.json {
            let mut value = serde_json::to_value(&report).expect("reports serialise");
            value["world"] = name.into();
            println!("{value}");
        } else {
            print_report(name, &report);
        }
        // Drawn after the result is printed, so that a failed write loses no result.
        for property in &report.properties {
            if let Some(trace) = &property.counterexample {
                let title = format!("{}/{} in world {name}", report.protocol, report.variant);
                drawing_failed |= args.diagrams.write(
                    &format!(
                        "{}-{}-{name}-{}",
                        report.protocol, report.variant, property.name
                    ),
                    trace,
                    lockstep_model::diagram::Caption {
                        title: &title,
                        subtitle: &format!("bounds: {}", report.bounds),
                        property: &property.name,
                    },
                );
            }
        }
        code = code.max(exit_code(&report));
    }
    if drawing_failed {
        code = code.max(EXIT_STORAGE);
    }
    Ok(code)
}

/// The exit code of one world's check: 1 a property failed, 3 the search was cut short.
pub fn exit_code(report: &Report) -> u8 {
    if report.failed() {
        EXIT_PROPERTY_FAILED
    } else if !report.complete {
        EXIT_INCOMPLETE
    } else {
        EXIT_OK
    }
}

/// Checks every default world of each protocol of `protocol` in `variant`, as `lockstep check`
/// without bounds does (one world per core at a time), for `lockstep report`.
pub fn check_worlds(
    protocol: ProtocolArg,
    variant: &str,
    options: &CheckOptions,
) -> Result<Vec<(&'static str, Report)>, String> {
    let variant = variant_for(protocol, Some(variant))?;
    let mut all = Vec::new();
    for name in protocol.names() {
        all.extend(worlds(name, &variant, None, &Bounds::default())?);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let jobs = cores.clamp(1, all.len().max(1));
    Ok(check_in_parallel(all, options, jobs))
}

/// Checks the worlds on `jobs` threads, each taking the next world when it is done (every
/// search is single-threaded, so two worlds use two cores), and returns the reports in the
/// worlds' order.
fn check_in_parallel(
    worlds: Vec<(&'static str, WorldConfig)>,
    options: &CheckOptions,
    jobs: usize,
) -> Vec<(&'static str, Report)> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<(&'static str, Report)>>> =
        Mutex::new((0..worlds.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::SeqCst);
                let Some((name, world)) = worlds.get(index) else {
                    break;
                };
                let protocol = match world {
                    WorldConfig::Lock(_) => "lock",
                    WorldConfig::Merge(_) => "merge",
                    WorldConfig::Redo(_) => "redo",
                };
                let options = &CheckOptions {
                    label: Some(format!("{protocol}/{name}")),
                    ..options.clone()
                };
                let report = match world {
                    WorldConfig::Lock(config) => {
                        run_checker(&LockModel::new(config.clone()).expect("validated"), options)
                    }
                    WorldConfig::Merge(config) => run_checker(
                        &MergeModel::new(config.clone()).expect("validated"),
                        options,
                    ),
                    WorldConfig::Redo(config) => {
                        run_checker(&RedoModel::new(config.clone()).expect("validated"), options)
                    }
                };
                results.lock().expect("no panic while holding it")[index] = Some((*name, report));
            });
        }
    });
    results
        .into_inner()
        .expect("the workers are done")
        .into_iter()
        .map(|r| r.expect("every world was checked"))
        .collect()
}

fn print_report(world: &str, report: &Report) {
    println!(
        "{}/{} in world {world}  bounds: {}",
        report.protocol, report.variant, report.bounds
    );
    let failed = report
        .properties
        .iter()
        .filter(|p| p.holds == Some(false))
        .count();
    let verdict = match report.stop_reason {
        StopReason::Exhausted => "complete: every reachable state explored".to_string(),
        StopReason::AllDecided => {
            format!("stopped early: every property was decided ({failed} failed); the rest of the space was not explored")
        }
        reason if failed > 0 => format!(
            "stopped early ({}): {failed} property failures found; nothing else is decided",
            reason.text()
        ),
        reason => format!("INCOMPLETE ({}): nothing is proven", reason.text()),
    };
    let memory = report
        .memory_bytes
        .map_or(String::new(), |b| format!(", {} MB", b >> 20));
    println!(
        "  {} states generated, {} unique, max depth {}, {:.1} s{memory}, symmetry {}; {verdict}",
        report.states,
        report.unique_states,
        report.max_depth,
        report.seconds,
        if report.symmetry { "on" } else { "off" },
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
            match property.found_by {
                Some(Found::Shortest) => println!(
                    "    shortest counterexample (breadth-first search), {} steps, {}:",
                    trace.len(),
                    trace.switches_text()
                ),
                _ => println!(
                    "    a counterexample, {} steps, {}, found by the depth-first search (the breadth-first search for a shortest one ran out of its budget; a shorter one may exist):",
                    trace.len(),
                    trace.switches_text()
                ),
            }
            print!("{trace}");
        }
    }
}

#[derive(Args)]
pub struct BugsArgs {
    /// Which protocol's bugs; all by default.
    #[arg(value_enum, default_value = "all")]
    protocol: ProtocolArg,
    /// Only the seed bugs, not the regressions and mutants.
    #[arg(long)]
    seed_only: bool,
    /// Only the entries whose id contains this text.
    #[arg(long)]
    only: Option<String>,
    /// Seconds allowed per catalogued bug.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    budget_seconds: u64,
    /// `{"bugs":[…]}` on stdout.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    diagrams: DiagramArgs,
}

pub fn bugs(args: &BugsArgs) -> Result<u8, String> {
    let names = args.protocol.names();
    let budget = Duration::from_secs(args.budget_seconds);
    let entries: Vec<_> = lockstep_model::catalogue()
        .into_iter()
        .filter(|e| names.contains(&e.protocol))
        .filter(|e| !args.seed_only || e.kind == EntryKind::SeedBug)
        .filter(|e| args.only.as_deref().is_none_or(|text| e.id.contains(text)))
        .collect();
    if entries.is_empty() {
        return Err("no catalogue entry matches".into());
    }
    args.diagrams.prepare()?;
    let mut drawing_failed = false;
    let mut runs: Vec<BugRun> = Vec::new();
    for (n, entry) in entries.iter().enumerate() {
        eprintln!("[{}/{}] {}", n + 1, entries.len(), entry.id);
        let run = entry.run(budget);
        if !args.json {
            print_bug(&run);
        }
        // Drawn after the result is printed, so that a failed write loses no result.
        if let Some(trace) = &run.counterexample {
            drawing_failed |= args.diagrams.write(
                run.id,
                trace,
                lockstep_model::diagram::Caption {
                    title: run.id,
                    subtitle: run.title,
                    property: run.property,
                },
            );
        }
        runs.push(run);
    }
    let all = runs.iter().all(|r| r.reproduced);
    if args.json {
        println!("{}", serde_json::json!({ "bugs": runs }));
    } else {
        let reproduced = runs.iter().filter(|r| r.reproduced).count();
        println!("{reproduced} of {} catalogued bugs reproduced", runs.len());
    }
    Ok(if drawing_failed {
        EXIT_STORAGE
    } else if all {
        EXIT_OK
    } else {
        EXIT_BUG_NOT_REPRODUCED
    })
}

fn print_bug(run: &BugRun) {
    let status = if run.reproduced {
        "reproduced"
    } else {
        "NOT REPRODUCED"
    };
    let basis = match run.basis {
        lockstep_model::catalogue::Basis::ShippedCode => "shipped code",
        lockstep_model::catalogue::Basis::Proposal => "a proposal, never built",
        lockstep_model::catalogue::Basis::Lockstep => "lockstep",
    };
    println!(
        "{}  [{}: {}; variant {}; property \"{}\"]  {status}",
        run.id,
        run.kind.text(),
        basis,
        run.variant,
        run.property
    );
    println!("  {}", run.title);
    println!("  source: {}", run.source);
    if let Some(needs) = run.needs {
        println!("  needs: {needs}");
    }
    match (&run.counterexample, run.unique_states) {
        (Some(trace), _) => {
            println!(
                "  shortest counterexample, {} steps, {}:",
                trace.len(),
                trace.switches_text()
            );
            print!("{trace}");
        }
        (None, Some(states)) if run.reproduced => {
            println!("  never reached in any of {states} states (exhaustive)")
        }
        _ => {}
    }
    println!();
}

#[derive(Args)]
pub struct ExploreArgs {
    #[arg(value_enum)]
    protocol: OneProtocol,
    #[arg(long, default_value = "fixed")]
    variant: String,
    /// A named world (see `lockstep presets`); bounds given as flags override it.
    #[arg(long)]
    preset: Option<String>,
    #[command(flatten)]
    bounds: Bounds,
    /// Port on 127.0.0.1.
    #[arg(long, default_value_t = 3000)]
    port: u16,
    /// Open a catalogue entry instead (`lockstep bugs PROTOCOL` lists them): the Explorer serves
    /// the entry's own world and variant, and its URL goes straight to the last state of the
    /// entry's shortest counterexample, every step laid out on the page as `lockstep bugs`
    /// words it.
    #[arg(long, value_name = "ID", conflicts_with_all = ["variant", "preset"])]
    bug: Option<String>,
}

pub fn explore(args: &ExploreArgs) -> Result<u8, String> {
    let protocol = match args.protocol {
        OneProtocol::Lock => "lock",
        OneProtocol::Merge => "merge",
        OneProtocol::Redo => "redo",
    };
    if let Some(id) = &args.bug {
        return explore_bug(protocol, id, args);
    }
    let mut worlds = worlds(
        protocol,
        &args.variant,
        args.preset.as_deref(),
        &args.bounds,
    )?;
    let (name, world) = worlds.swap_remove(0);
    // The Explorer panics when it cannot bind: find out first, and say so.
    let address = ("127.0.0.1", args.port);
    std::net::TcpListener::bind(address)
        .map_err(|e| format!("cannot listen on 127.0.0.1:{}: {e}", args.port))?;
    eprintln!(
        "Explorer for {protocol}/{} in world {name} on http://127.0.0.1:{} (Ctrl-C to stop)",
        args.variant, args.port
    );
    // A world with several initial states is served behind one `start` whose choices are named.
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], args.port));
    match world {
        WorldConfig::Lock(config) => explore::serve(LockModel::new(config)?, address),
        WorldConfig::Merge(config) => explore::serve(MergeModel::new(config)?, address),
        WorldConfig::Redo(config) => explore::serve(RedoModel::new(config)?, address),
    }
    Ok(EXIT_OK)
}

/// `explore PROTOCOL --bug ID`: the entry's world, opened at its counterexample.
fn explore_bug(protocol: &str, id: &str, args: &ExploreArgs) -> Result<u8, String> {
    if args.bounds.any() {
        return Err(format!(
            "--bug {id} opens the entry's own world: bounds given as flags do not apply"
        ));
    }
    let entries = lockstep_model::entries(Some(protocol));
    let Some(entry) = entries.iter().find(|e| e.id == id) else {
        let ids: Vec<&str> = entries.iter().map(|e| e.id).collect();
        return Err(format!(
            "no {protocol} catalogue entry {id:?}; the entries are: {}",
            ids.join(", ")
        ));
    };
    // Port 0 means any free port: pick it here, so that the URL printed is the one served. (The
    // Explorer binds the address itself; the check only makes a taken port a clear error.)
    let address = std::net::TcpListener::bind(("127.0.0.1", args.port))
        .and_then(|listener| listener.local_addr())
        .map_err(|e| format!("cannot listen on 127.0.0.1:{}: {e}", args.port))?;
    // The same search `lockstep bugs` runs, with its budget; it also gives the Explorer's path.
    let budget = Duration::from_secs(120);
    let run = entry.run(budget);
    let fragment = match (&run.explorer_steps, &run.counterexample) {
        (Some(steps), Some(trace)) => {
            eprintln!(
                "{}: {} ({})
{trace}",
                entry.id, entry.title, entry.property
            );
            let steps = entry.scenario.explorer_steps(steps);
            let path: Vec<String> = steps.iter().map(usize::to_string).collect();
            format!("#/steps/{}", path.join("/"))
        }
        _ => {
            eprintln!(
                "{}: {} (\"{}\" has no counterexample to open: the Explorer starts at the \
                 world's initial states)",
                entry.id, entry.title, entry.property
            );
            String::new()
        }
    };
    eprintln!(
        "Explorer for {} (variant {}) on http://{address}/{fragment} (Ctrl-C to stop)",
        entry.id,
        entry.variant()
    );
    entry.scenario.serve(address);
    Ok(EXIT_OK)
}

pub fn variants() -> Result<u8, String> {
    println!("lock: {}", Variant::names().join(", "));
    println!("merge: {}", MergeVariant::names().join(", "));
    println!("redo: {}", RedoVariant::names().join(", "));
    Ok(EXIT_OK)
}

pub fn presets() -> Result<u8, String> {
    fn show<C>(protocol: &str, presets: Vec<Preset<C>>) {
        for p in presets {
            let marker = if p.default { "default" } else { "opt-in" };
            println!("{protocol:<6} {:<20} {marker:<8} {}", p.name, p.about);
        }
    }
    show("lock", lock::presets());
    show("merge", merge::presets());
    show("redo", redo::presets());
    Ok(EXIT_OK)
}

#[derive(Args)]
pub struct VectorsArgs {
    /// `export`.
    #[arg(value_parser = ["export"])]
    action: String,
    /// `lock`, `merge` or `redo`.
    #[arg(value_parser = ["lock", "merge", "redo"])]
    protocol: String,
    /// Directory to write `<protocol>.json` into.
    #[arg(long)]
    out: std::path::PathBuf,
    /// Behaviours in the seeded sample.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    count: u64,
    /// Operations per behaviour, at most.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=64))]
    depth: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

pub fn vectors(args: &VectorsArgs) -> Result<u8, String> {
    eprintln!(
        "generating {} vectors of at most {} operations (seed {})",
        args.count, args.depth, args.seed
    );
    let (count, depth) = (args.count as usize, args.depth as usize);
    let (text, written) = if args.protocol == "merge" {
        let file = lockstep::model::merge::vectors::generate(count, depth, args.seed);
        (serde_json::to_string_pretty(&file), file.vectors.len())
    } else if args.protocol == "redo" {
        let file = lockstep::model::redo::vectors::generate(count, depth, args.seed);
        (serde_json::to_string_pretty(&file), file.vectors.len())
    } else {
        let file = lock::vectors::generate(count, depth, args.seed);
        (serde_json::to_string_pretty(&file), file.vectors.len())
    };
    let text = text.expect("vectors serialise") + "\n";
    let path = args.out.join(format!("{}.json", args.protocol));
    // Write beside the target and rename, so a failed write leaves the old file whole.
    let partial = args.out.join(format!(".{}.json.partial", args.protocol));
    std::fs::create_dir_all(&args.out)
        .and_then(|()| std::fs::write(&partial, text))
        .and_then(|()| std::fs::rename(&partial, &path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    println!("wrote {written} vectors to {}", path.display());
    Ok(EXIT_OK)
}
