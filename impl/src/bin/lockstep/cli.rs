//! The command line: the commands, their exit codes, and the dispatch to each command group.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Every property holds (or every catalogued bug reproduced).
pub const EXIT_OK: u8 = 0;
pub const EXIT_PROPERTY_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
/// A search was cut short (time, state or memory limit): nothing is proven.
pub const EXIT_INCOMPLETE: u8 = 3;
pub const EXIT_BUG_NOT_REPRODUCED: u8 = 4;
pub const EXIT_STORAGE: u8 = 74;
pub const EXIT_BUSY: u8 = 75;
/// `merge`: a conflict aborted the merge; nothing changed.
pub const EXIT_CONFLICT: u8 = 76;
/// `lock -- COMMAND`: a lease was lost while COMMAND ran (expired, force-released, taken over),
/// and COMMAND's process group was stopped.
pub const EXIT_LEASE_LOST: u8 = 77;
/// `lock -- COMMAND`: COMMAND could not be started (as a shell says).
pub const EXIT_CANNOT_RUN: u8 = 127;

const ABOUT_LONG: &str = "lockstep checks stateright models of three protocols that real systems shipped with races \
(OpenViking's path locks and redo log, the Zed lake's merge lock): the protocol as published (`seed`, \
its bugs found as counterexamples), lockstep's fixed protocol (`fixed`, proven within stated bounds), \
and one mutant of `fixed` per property. It also runs lockstep's path locks over a data root.\n\n\
Exit codes: 0 all properties hold (or all bugs reproduced); 1 a property failed; 2 bad usage; \
3 search incomplete (time, state or memory limit: nothing proven); 4 a catalogued bug was not \
reproduced; 74 storage error; 75 lock busy; 76 merge conflict (aborted, nothing changed); 77 a lease \
was lost while COMMAND ran (COMMAND was stopped), or a merge's lock was released under it; 127 COMMAND could not be started. Otherwise `lock -- COMMAND` passes COMMAND's exit \
code through.";

#[derive(Parser)]
#[command(name = "lockstep", version, about = "Model checker and reference implementation of three storage-coordination protocols", long_about = ABOUT_LONG)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check protocol models exhaustively and report every property.
    ///
    /// Without bounds, every protocol is checked in each of its default worlds (`lockstep
    /// presets` lists them). Depth-first search with symmetry reduction over interchangeable
    /// clients; each failed `always` property is then searched breadth-first for a shortest
    /// counterexample. Progress goes to stderr, results to stdout.
    Check(crate::model::CheckArgs),
    /// Reproduce the bug catalogue: seed races, regressions of earlier lockstep protocols, and
    /// the mutants of the fixed protocols.
    Bugs(crate::model::BugsArgs),
    /// Write one HTML page (plus its SVG drawings) with what the checker proved in each default
    /// world, the bug catalogue with every counterexample drawn, the planted implementation bugs
    /// and the tests that catch each, and the ratios of a `lockstep bench --json` run if given.
    ///
    /// Exit codes as `check` and `bugs`: 1 a property failed, 3 a search was cut short, 4 a
    /// catalogued bug was not reproduced.
    Report(crate::report::ReportArgs),
    /// Rerun the failing case of a cross-test from the replay file it wrote, and stop at the
    /// first step where the rerun diverges from the file.
    ///
    /// A failing case of a conformance harness (the proptest case, and the model path it
    /// followed), of the gated interleavings (the case, and the creates let through in order), of
    /// a shuttle test (every scheduling choice) or of a process-kill test (the seed, and the
    /// driver's plan of spawns, kills and sleeps) writes one replay file under
    /// target/lockstep-replays/ and names it in its failure. The case reruns in the cargo test the
    /// file names, with the mutant it ran with, so this needs cargo and a lockstep source tree. A
    /// process run's timing is not replayed: its rerun follows the same plan, and is tried up to 3
    /// times. Exit 0 the case passes now; 1 reproduced (the same steps, the same failure); 4 not
    /// reproduced (diverged from the file, or another failure); 74 the test could not be built or
    /// run; 2 a file that cannot be used.
    Replay(crate::replay::ReplayArgs),
    /// Serve stateright's Explorer web UI for one model on 127.0.0.1.
    Explore(crate::model::ExploreArgs),
    /// List the variants (seeds, fixed, mutants) of each protocol.
    Variants,
    /// List the named worlds (presets) of each protocol, and which `lockstep check` runs.
    Presets,
    /// Export the model's behaviours as JSON test vectors for ports (specs/vectors/README.md).
    Vectors(crate::model::VectorsArgs),
    /// List every held path lock under a root: path, type, owner, token, age, state.
    ///
    /// States: active (renewed within its lease), hanging (held over an hour), stale (not renewed
    /// within its lease, or its owner on this host is dead). Ages come from the writers' wall
    /// clocks and are for people; no decision uses them.
    Locks(crate::locks::LocksArgs),
    /// Run COMMAND while holding path locks; its exit code is passed through.
    ///
    /// Each lock's fencing token is exported in LOCKSTEP_TOKENS (`/a=17,/c=18`): a write fences
    /// with the token of the lock that covers it. LOCKSTEP_TOKEN is set only for an operation of
    /// one lock (tokens of different locks are not comparable). LOCKSTEP_OWNER is the owner id.
    /// The leases are renewed while COMMAND runs and released when it ends. COMMAND runs in its
    /// own process group and dies with lockstep (a parent-death signal); if a lease is lost while
    /// it runs, its group gets SIGTERM, then SIGKILL after --grace, and lockstep exits 77. SIGINT
    /// and SIGTERM are forwarded to COMMAND's group. A COMMAND that cannot start exits 127.
    Lock(crate::locks::LockArgs),
    /// Branches of a lake (state in ROOT/.lockstep): create, commit, log.
    #[command(subcommand)]
    Branch(crate::lake::BranchCommand),
    /// Merge a child branch into its parent under the child's merge lock (specs/merge.md).
    ///
    /// Writers may keep committing to the child: commits after the merge's cut wait for the next
    /// merge. Exit 0 merged (or nothing to merge, or a crashed merge rolled forward); 75 the merge
    /// lock is busy; 76 conflict (a child commit deletes an object the parent changed since the
    /// child's BASE; aborted, nothing changed); 77 the lock was force-released while the merge
    /// ran (this merger is fenced); 74 storage error or an entry that cannot be read; 2 bad usage.
    Merge(crate::lake::MergeArgs),
    /// Sessions of the redo log (state in ROOT/.lockstep): add messages, commit, show.
    #[command(subcommand)]
    Session(crate::sessions::SessionCommand),
    /// The semantic queue the redo log's commits enqueue to.
    #[command(subcommand)]
    Queue(crate::sessions::QueueCommand),
    /// The merge-lock meta-query: per child branch, the lock's state, holder, index, intent,
    /// age, and whether the holder is alive, unknown or dead (a dead holder's lock is stuck until
    /// `recover`).
    MergeLocks(crate::lake::MergeLocksArgs),
    /// Release the lock on PATH (or with --merge BRANCH, a branch's merge lock) whatever its
    /// holder is doing (it becomes a zombie; fencing stops it).
    ForceRelease(crate::locks::ForceReleaseArgs),
    /// Recover everything whose owner the store proves dead (its registration's file lock is
    /// free): release stuck path locks and merge locks, replay the phase 2 of redo records
    /// (archives without `done`), and free stale queue claims. Owners not proven dead are left
    /// alone (their locks expire; their commits are theirs to finish).
    Recover(crate::locks::RecoverArgs),
    /// Supersede or quarantine an entry `locks` reports as corrupt (only when asked: lockstep never
    /// treats a corrupt entry as free on its own).
    ///
    /// A journal entry that cannot be read (malformed, an unknown version, a directory or symlink
    /// at its key) is superseded by an operator release whose high-water marks are the newest
    /// ticket, so fencing still stops whoever it belonged to; it is never deleted. A name that is
    /// not a journal entry (a symlinked directory, a stray file) is moved to ROOT/.lockstep/quarantine.
    Repair(crate::locks::RepairArgs),
    /// Delete released lock journals, empty directories, leftover temporaries and the owner files
    /// nobody needs, while no other process uses the store (exit 75 if one does).
    ///
    /// A journal can be emptied only when nobody holds a view of it: an append based on an old
    /// view would land at its old index past newer entries and set the journal's high-water marks
    /// back. So `gc` takes the store's users lock exclusively (every process using the store holds
    /// it shared) and keeps others out while it runs. Held locks, their owners' files and corrupt
    /// entries are kept. Tokens stay monotonic: the ticket journal is kept.
    Gc(crate::locks::GcArgs),
    /// Measure the implementation (`bench` or `bench lock`: the path locks; `bench merge`: the
    /// merge lock), each case beside the floor measured in the same run (one durable
    /// create-if-absent on the same disk).
    Bench(crate::bench::BenchArgs),
    /// Run the storage contract the protocols rest on against a live store (specs/backends.md),
    /// with a verdict per clause: basic semantics, exactly one winner under contention,
    /// whole-or-nothing reads, read-after-create across handles, list consistency, durability
    /// (where it can be checked), and ambiguous outcomes (a retried create is recognised). Exit
    /// 0 every clause holds; 1 one fails; 74 the store cannot be reached, or it returned an error
    /// while a clause ran (that clause is ERR: not checked, not failed).
    ///
    /// It writes only below `probe/<random>/` and deletes what it wrote.
    Probe(crate::probe::ProbeArgs),
    /// Test kit (hidden): the worker of the process-kill tests, run under `lockstep lock`.
    #[command(name = "__worker", hide = true)]
    Worker(crate::locks::WorkerArgs),
}

/// Restores the default action of SIGPIPE (Rust ignores it), so that `lockstep … | head` ends
/// quietly when the reader goes away instead of panicking on a failed write to stdout.
fn default_sigpipe() {
    unsafe extern "C" {
        fn signal(signum: i32, handler: usize) -> usize;
    }
    const SIGPIPE: i32 = 13;
    const SIG_DFL: usize = 0;
    // SAFETY: called first thing in main, before any thread exists; SIG_DFL is always valid.
    unsafe {
        signal(SIGPIPE, SIG_DFL);
    }
}

pub fn main() -> ExitCode {
    default_sigpipe();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LOCKSTEP_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in logs and pipes.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check(args) => crate::model::check(&args),
        Command::Bugs(args) => crate::model::bugs(&args),
        Command::Report(args) => crate::report::report(&args),
        Command::Replay(args) => crate::replay::replay(&args),
        Command::Explore(args) => crate::model::explore(&args),
        Command::Variants => crate::model::variants(),
        Command::Presets => crate::model::presets(),
        Command::Vectors(args) => crate::model::vectors(&args),
        Command::Locks(args) => crate::locks::run(crate::locks::locks(args)),
        Command::Lock(args) => crate::locks::run(crate::locks::lock(args)),
        Command::Branch(command) => crate::locks::run(crate::lake::branch(command)),
        Command::Merge(args) => crate::locks::run(crate::lake::merge(args)),
        Command::Session(command) => crate::locks::run(crate::sessions::session(command)),
        Command::Queue(command) => crate::locks::run(crate::sessions::queue(command)),
        Command::MergeLocks(args) => crate::locks::run(crate::lake::merge_locks(args)),
        Command::ForceRelease(args) => crate::locks::run(crate::locks::force_release(args)),
        Command::Recover(args) => crate::locks::run(crate::locks::recover(args)),
        Command::Repair(args) => crate::locks::run(crate::locks::repair(args)),
        Command::Gc(args) => crate::locks::run(crate::locks::gc(args)),
        Command::Worker(args) => crate::locks::run(crate::locks::worker(args)),
        Command::Bench(args) => crate::bench::bench(&args),
        Command::Probe(args) => crate::locks::run(crate::probe::probe(args)),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            eprintln!("lockstep: {message}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}
