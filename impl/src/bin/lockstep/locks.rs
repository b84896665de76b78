//! The operator's commands over a data root (lock state in ROOT/.lockstep): `locks`, `lock`,
//! `force-release`, `recover`, and the hidden worker of the process-kill tests.

use clap::{Args, ValueEnum};

#[derive(Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub root: RootArg,
    /// Shared log file (appended to with single O_APPEND writes).
    #[arg(long)]
    pub log: std::path::PathBuf,
    /// Milliseconds between entering and the fenced write (the window for kills and pauses).
    #[arg(long, default_value_t = 30)]
    pub hold_ms: u64,
}

/// Where the protocols' state lives: `--root DIR` or `--store SPEC`.
#[derive(Args)]
pub struct RootArg {
    /// The data root; the state lives in ROOT/.lockstep (short for `--store fs:ROOT`).
    #[arg(long, required_unless_present = "store", conflicts_with = "store")]
    pub root: Option<std::path::PathBuf>,
    /// The store: `fs:DIR` (as `--root DIR`), `etcd:http://HOST:PORT[,URL…][?prefix=P][&lease-ttl=SECS]`
    /// (an etcd cluster; a build with the `etcd` feature; the owner lease's TTL is how soon a dead
    /// process is proven dead, 10 s by default), or `mem` (this process only).
    #[arg(long, value_name = "SPEC")]
    pub store: Option<String>,
}

impl RootArg {
    pub fn spec(&self) -> Result<StoreSpec, Failure> {
        match (&self.root, &self.store) {
            (Some(root), _) => Ok(StoreSpec::Fs { root: root.clone() }),
            (None, Some(spec)) => StoreSpec::parse(spec).map_err(|e| Failure(EXIT_USAGE, e)),
            (None, None) => unreachable!("clap requires --root or --store"),
        }
    }

    /// How messages name the store (`--root DIR` or `--store SPEC`).
    pub fn describe(&self) -> String {
        match (&self.root, &self.store) {
            (Some(root), _) => format!("--root {}", root.display()),
            (None, Some(spec)) => format!("--store {spec}"),
            (None, None) => String::new(),
        }
    }

    /// The local data root, for the commands that act on the files of a local store.
    pub fn local_root(&self, command: &str) -> Result<std::path::PathBuf, Failure> {
        match self.spec()? {
            StoreSpec::Fs { root } => Ok(root),
            other => Err(Failure(
                EXIT_USAGE,
                format!("`lockstep {command}` acts on a local store's files (--root DIR), not on {other}"),
            )),
        }
    }
}

#[derive(Args)]
pub struct LocksArgs {
    #[command(flatten)]
    pub root: RootArg,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct LockArgs {
    #[command(flatten)]
    pub root: RootArg,
    /// point: POINT on each PATH; subtree: SUBTREE on each; mv SRC DST: SUBTREE on SRC and on
    /// DST's parent (DST need not exist), as `Operation::mv` in the Rust API.
    #[arg(long, value_enum)]
    pub mode: ModeArg,
    /// lock_timeout in seconds (0: fail at once if busy) or `forever`.
    #[arg(long, default_value = "0")]
    pub timeout: String,
    /// Lease in seconds (renewed every third of it while COMMAND runs).
    #[arg(long, default_value_t = 300.0)]
    pub lease: f64,
    /// Seconds the store may take beyond --timeout before lockstep gives up (exit 74): a hung
    /// disk or a dead server ends the call instead of blocking it forever.
    #[arg(long, default_value_t = 30.0)]
    pub io_timeout: f64,
    /// Seconds between SIGTERM and SIGKILL when a lost lock stops COMMAND.
    #[arg(long, default_value_t = 10.0)]
    pub grace: f64,
    /// Paths in the lock namespace, e.g. /resources/a.
    #[arg(required = true)]
    pub paths: Vec<String>,
    /// The command to run, after `--`.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["path", "merge"])))]
pub struct ForceReleaseArgs {
    #[command(flatten)]
    pub root: RootArg,
    /// The locked path, e.g. /resources/a.
    pub path: Option<String>,
    /// Release the merge lock of child branch BRANCH instead of a path lock.
    #[arg(long, value_name = "BRANCH")]
    pub merge: Option<String>,
    /// Release only if the lock holds this token (for --merge: the merge lock's index).
    #[arg(long)]
    pub token: Option<u64>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct RepairArgs {
    #[command(flatten)]
    pub root: RootArg,
    /// The store key `lockstep locks` reported as corrupt (e.g. locks/z/~00000000000000000003).
    pub key: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct GcArgs {
    #[command(flatten)]
    pub root: RootArg,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct RecoverArgs {
    #[command(flatten)]
    pub root: RootArg,
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ModeArg {
    Point,
    Subtree,
    Mv,
}

use std::time::Duration;

use lockstep::lock::{
    self, Guard, LockError, LockManager, LockMode, LockOptions, LockPath, Operation,
};
use lockstep::store::{FsStore, Store, StoreError, StoreSpec};

use crate::cli::{EXIT_BUSY, EXIT_CANNOT_RUN, EXIT_LEASE_LOST, EXIT_STORAGE, EXIT_USAGE};

/// The process-kill tests' worker: logs `enter`, waits, writes to the fenced log of each
/// locked path with the lock's token, logs the outcome, logs `exit`. Times are
/// CLOCK_MONOTONIC nanoseconds, comparable between processes of one host.
pub async fn worker(args: WorkerArgs) -> Result<u8, Failure> {
    use std::io::Write;
    let store = open(&args.root).await?;
    let log_line = |line: String| -> Result<(), Failure> {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&args.log)
            .map_err(|e| Failure(EXIT_STORAGE, e.to_string()))?;
        file.write_all(format!("{line}\n").as_bytes())
            .map_err(|e| Failure(EXIT_STORAGE, e.to_string()))
    };
    let now = || {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        t.tv_sec as u128 * 1_000_000_000 + t.tv_nsec as u128
    };
    // Identified by its `lockstep lock` (its parent), which the test driver spawned and kills;
    // its own pid, for signals to it (it runs in its own process group).
    let group = rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get());
    let pid = rustix::process::getpid().as_raw_nonzero();
    let tokens = std::env::var("LOCKSTEP_TOKENS")
        .map_err(|_| Failure(EXIT_USAGE, "run me under `lockstep lock`".into()))?;
    let kinds = std::env::var("LOCKSTEP_KINDS").unwrap_or_default();
    log_line(format!("enter {} {group} {tokens} {kinds} {pid}", now()))?;
    tokio::time::sleep(Duration::from_millis(args.hold_ms)).await;
    let log = lock::FencedLog::new(store);
    for pair in tokens.split(',') {
        let (path, token) = pair
            .rsplit_once('=')
            .ok_or_else(|| Failure(EXIT_USAGE, format!("bad LOCKSTEP_TOKENS {tokens}")))?;
        let token: u64 = token
            .parse()
            .map_err(|_| Failure(EXIT_USAGE, format!("bad token in {tokens}")))?;
        let path = LockPath::new(path).map_err(LockError::from)?;
        let outcome = match log
            .append(&path, token, &format!("written by {group}"))
            .await?
        {
            Ok(_) => "accepted",
            Err(_) => "rejected",
        };
        log_line(format!("write {} {group} {token} {path} {outcome}", now()))?;
    }
    log_line(format!("exit {} {group}", now()))?;
    Ok(0)
}

/// An error with the exit code it maps to.
pub struct Failure(u8, String);

impl Failure {
    pub fn new(code: u8, message: String) -> Failure {
        Failure(code, message)
    }
}

impl From<LockError> for Failure {
    fn from(error: LockError) -> Failure {
        let code = match &error {
            LockError::Busy { .. }
            | LockError::RetriesExhausted { .. }
            | LockError::Contended { .. } => EXIT_BUSY,
            LockError::InvalidPath(_)
            | LockError::InvalidRequest(_)
            | LockError::TokenMismatch { .. } => EXIT_USAGE,
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let result = runtime.block_on(work);
    // A store call stuck in the kernel (a hung disk) must not keep the process alive after we
    // gave up on it: do not wait for blocking workers at exit.
    runtime.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(code) => Ok(code),
        Err(Failure(code, message)) => {
            eprintln!("lockstep: {message}");
            Ok(code)
        }
    }
}

/// The store, created if it is a local one that does not exist yet.
pub async fn open(root: &RootArg) -> Result<std::sync::Arc<dyn Store>, Failure> {
    let spec = root.spec()?;
    check_root(&spec)?;
    Ok(spec.open(true).await?.expect("created"))
}

/// The store if there is one: commands that only read (or only release) must not create
/// ROOT/.lockstep.
pub async fn open_existing(root: &RootArg) -> Result<Option<std::sync::Arc<dyn Store>>, Failure> {
    let spec = root.spec()?;
    check_root(&spec)?;
    Ok(spec.open(false).await?)
}

/// A local root that is not a directory is a usage error (exit 2), not a storage error; so is
/// `mem` for a command whose state would vanish with its process (only `probe` takes it).
pub fn check_root(spec: &StoreSpec) -> Result<(), Failure> {
    match spec {
        StoreSpec::Mem => Err(Failure(
            EXIT_USAGE,
            "--store mem lives in this process only: it is for `lockstep probe`; name a store that outlives the command (fs:DIR, etcd:URL)".into(),
        )),
        StoreSpec::Fs { root } if !root.is_dir() => Err(Failure(
            EXIT_USAGE,
            format!("--root {} is not a directory", root.display()),
        )),
        _ => Ok(()),
    }
}

pub async fn locks(args: LocksArgs) -> Result<u8, Failure> {
    let observation = match open_existing(&args.root).await? {
        Some(store) => lock::observe_all(&store).await?,
        None => lock::Observation {
            locks: Vec::new(),
            corrupt: Vec::new(),
        },
    };
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "locks": observation.locks, "corrupt": observation.corrupt })
        );
        return Ok(0);
    }
    if observation.locks.is_empty() {
        println!("no locks held");
    }
    for info in &observation.locks {
        println!(
            "{:<30} {:<7} token {:<6} {:<8} held {:>7.1} s, renewed {:>6.1} s ago (lease {:.0} s)  owner {} ({})",
            info.path,
            format!("{:?}", info.kind).to_lowercase(),
            info.token,
            format!("{:?}", info.state).to_lowercase(),
            info.held_s,
            info.since_renewal_s,
            info.lease_s,
            info.owner,
            match info.owner_liveness {
                lock::owner::Liveness::Alive => "alive",
                lock::owner::Liveness::Dead => "dead",
                lock::owner::Liveness::Unknown => "liveness unknown",
            }
        );
    }
    for corrupt in &observation.corrupt {
        // Corrupt entries guard their paths (acquisitions there fail) until an operator acts.
        println!("corrupt {}: {}", corrupt.key, corrupt.reason);
        println!("        (locks it covers stay unavailable; `lockstep repair {} {}` supersedes or quarantines it)", args.root.describe(), corrupt.key);
    }
    Ok(0)
}

/// `repair KEY`: a bad journal entry is superseded by an operator release (never deleted); a name
/// that is not a journal entry at all (a symlink, a stray file or directory) is moved to the
/// store's quarantine. Only what `locks` reports as corrupt is touched.
pub async fn repair(args: RepairArgs) -> Result<u8, Failure> {
    let key = lockstep::store::Key::new(args.key.as_str())
        .map_err(|e| Failure(EXIT_USAGE, e.to_string()))?;
    let root = args.root.local_root("repair")?;
    if open_existing(&args.root).await?.is_none() {
        return Err(Failure(
            EXIT_USAGE,
            format!("there is no lock store under {}", root.display()),
        ));
    }
    let store = FsStore::open(root.join(lockstep::store::FS_STATE_DIR))?;
    if LockPath::parse_entry_key(key.as_str()).is_some() {
        let repaired = lock::repair(&store, &key).await?;
        if args.json {
            println!("{}", serde_json::json!({ "repaired": repaired }));
        } else {
            match &repaired {
                lock::Repaired::Superseded { path, index, mark } => {
                    println!("superseded {key}: released {path} at index {index} (high-water marks {mark}); the bad entry stays, unread")
                }
                lock::Repaired::NotNewest { path, newest } => println!(
                    "{key} is not the newest entry of {path} (that is {newest}): nothing to do"
                ),
            }
        }
        return Ok(0);
    }
    if !key.as_str().starts_with("locks/") {
        return Err(Failure(
            EXIT_USAGE,
            format!("{key} is not in the lock namespace (locks/…)"),
        ));
    }
    // Not an entry: quarantine it, but only if it is really something foreign.
    let what = match lockstep::store::Store::get(&store, &key).await {
        Err(StoreError::Foreign { what, .. }) => what.to_owned(),
        Err(StoreError::Io { source, .. }) => format!("unreadable ({source})"),
        Ok(Some(_)) => "a file that is not a lock journal entry".to_owned(),
        Ok(None) => {
            return Err(Failure(
                EXIT_USAGE,
                format!("nothing foreign is stored at {key}"),
            ))
        }
        Err(other) => return Err(other.into()),
    };
    let moved = store.quarantine(&key)?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "repaired": { "action": "quarantined", "key": key.as_str(), "what": what, "moved_to": moved } })
        );
    } else {
        println!(
            "moved {key} ({what}) to {}",
            store.root().join(&moved).display()
        );
    }
    Ok(0)
}

/// The store `lock` uses. Test builds (the `mutants` feature) can make it stop answering with
/// `LOCKSTEP_FAULT=hang`, to show that `--io-timeout` bounds an acquisition on a hung store.
fn hostile(store: std::sync::Arc<dyn Store>) -> std::sync::Arc<dyn lockstep::store::Store> {
    #[cfg(feature = "mutants")]
    if std::env::var("LOCKSTEP_FAULT").is_ok_and(|v| v == "hang") {
        let faulty = lockstep::store::FaultyStore::new(store);
        faulty.fail_in(0, lockstep::store::Fault::Hang);
        return std::sync::Arc::new(faulty);
    }
    std::sync::Arc::new(store)
}

/// A duration flag's value, or a usage error naming the flag (negative, NaN, or too large for a
/// duration: never a panic).
fn seconds(flag: &str, value: f64) -> Result<Duration, Failure> {
    Duration::try_from_secs_f64(value).map_err(|_| {
        Failure(
            EXIT_USAGE,
            format!("{flag} {value}: expected a number of seconds, 0 or more"),
        )
    })
}

pub fn parse_timeout(text: &str) -> Result<Option<Duration>, Failure> {
    if text == "forever" {
        return Ok(None);
    }
    text.parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .map(Some)
        .ok_or_else(|| {
            Failure(
                EXIT_USAGE,
                format!("--timeout {text:?}: expected seconds (0 = fail fast) or `forever`"),
            )
        })
}

pub async fn lock(args: LockArgs) -> Result<u8, Failure> {
    let store = open(&args.root).await?;
    if !(args.lease.is_finite() && args.lease >= 0.3) {
        return Err(Failure(
            EXIT_USAGE,
            "--lease must be at least 0.3 seconds".into(),
        ));
    }
    if !(args.grace.is_finite() && args.grace >= 0.0) {
        return Err(Failure(
            EXIT_USAGE,
            "--grace must be a number of seconds".into(),
        ));
    }
    let options = LockOptions {
        timeout: parse_timeout(&args.timeout)?,
        cleanup_every: None,
        ..LockOptions::with_lease(seconds("--lease", args.lease)?)
    };
    let mode = match args.mode {
        ModeArg::Point => LockMode::Point,
        ModeArg::Subtree => LockMode::Subtree,
        ModeArg::Mv => LockMode::Mv,
    };
    let operation = match (mode, args.paths.as_slice()) {
        // `mv SRC DST`, as the Rust API's `Operation::mv`: SUBTREE on SRC and on DST's parent.
        (LockMode::Mv, [source, destination]) => Operation::mv(source, destination, true)?,
        (LockMode::Mv, _) => {
            return Err(Failure(
                EXIT_USAGE,
                "--mode mv takes two paths: SRC DST".into(),
            ))
        }
        _ => Operation::new(
            mode,
            &args.paths.iter().map(String::as_str).collect::<Vec<_>>(),
        )?,
    };
    if !(args.io_timeout.is_finite() && args.io_timeout > 0.0) {
        return Err(Failure(
            EXIT_USAGE,
            "--io-timeout must be a positive number of seconds".into(),
        ));
    }
    // The whole acquisition, waiting and I/O, ends by --timeout + --io-timeout. A cancelled
    // acquisition leaves its entry to the background withdraw and, failing that, to its lease.
    let io_timeout = seconds("--io-timeout", args.io_timeout)?;
    let bound = options
        .timeout
        .map_or(Duration::MAX, |t| t.saturating_add(io_timeout));
    let manager = LockManager::start(hostile(store), options).await?;
    let guard = match tokio::time::timeout(bound, manager.lock(operation)).await {
        Ok(result) => result?,
        Err(_) => {
            return Err(Failure(
                EXIT_STORAGE,
                format!(
                    "the store did not answer within --timeout + --io-timeout ({:.1} s)",
                    bound.as_secs_f64()
                ),
            ));
        }
    };
    let outcome = run_holding(&guard, &args, manager.registration_fd()).await;
    let released = guard.release().await;
    manager.shutdown().await;
    match (outcome, released) {
        // Already reported as a lost lease.
        (Ok(EXIT_LEASE_LOST), _) => Ok(EXIT_LEASE_LOST),
        // COMMAND ended before we noticed, but the lock was gone by the time we released it: it
        // may have been lost while COMMAND ran, so COMMAND's success cannot be vouched for.
        (Ok(code), Err(error @ LockError::LeaseLost { .. })) => {
            eprintln!("lockstep: {error}: COMMAND (exit {code}) may have run without the lock (exit {EXIT_LEASE_LOST})");
            Ok(EXIT_LEASE_LOST)
        }
        (outcome, Err(error)) => {
            eprintln!("lockstep: warning: release: {error}");
            outcome
        }
        (outcome, Ok(())) => outcome,
    }
}

/// Runs COMMAND while `guard` holds: checks the lease just before it starts, and stops it (its
/// whole process group: SIGTERM, then SIGKILL after the grace) as soon as a lease is lost.
async fn run_holding(
    guard: &Guard,
    args: &LockArgs,
    registration_fd: Option<i32>,
) -> Result<u8, Failure> {
    use std::os::unix::process::ExitStatusExt;
    let tokens: Vec<String> = guard
        .tokens()
        .iter()
        .map(|(p, _, t)| format!("{p}={t}"))
        .collect();
    let mut command = tokio::process::Command::new(&args.command[0]);
    command
        .args(&args.command[1..])
        .env("LOCKSTEP_TOKENS", tokens.join(","))
        .env("LOCKSTEP_OWNER", guard.owner())
        .env(
            "LOCKSTEP_KINDS",
            guard
                .tokens()
                .iter()
                .map(|(p, k, _)| format!("{p}={}", k.letter()))
                .collect::<Vec<_>>()
                .join(","),
        )
        // Its own process group, so that a lost lock stops all of it; and it dies with us: a
        // COMMAND outliving its lockstep would run on after the lock is freed.
        .process_group(0);
    // Tokens of different locks are not comparable: one token only for one lock.
    match guard.single_token() {
        Some(token) => command.env("LOCKSTEP_TOKEN", token.to_string()),
        None => command.env_remove("LOCKSTEP_TOKEN"),
    };
    let parent = rustix::process::getpid();
    // SAFETY: the closure runs in the child between fork and exec and only makes system calls
    // (prctl, getppid, fcntl) and, if the parent is already gone, exits; the descriptor it
    // borrows is the registration's, open for as long as the manager lives.
    unsafe {
        command.pre_exec(move || {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
            if rustix::process::getppid() != Some(parent) {
                std::process::exit(EXIT_LEASE_LOST as i32);
            }
            // COMMAND keeps our owner registration (its file lock) open: until it has died too,
            // nobody can prove our owner dead and recover its locks early.
            if let Some(fd) = registration_fd {
                let fd = std::os::fd::BorrowedFd::borrow_raw(fd);
                rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty())?;
            }
            Ok(())
        });
    }
    // The lease must be live when COMMAND starts, not only when the lock was granted.
    guard.check()?;
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(error) => {
            eprintln!("lockstep: cannot run {:?}: {error}", args.command[0]);
            return Ok(EXIT_CANNOT_RUN);
        }
    };
    let grace = seconds("--grace", args.grace)?;
    let status = supervise(guard, &mut child, grace)
        .await
        .map_err(|e| Failure(EXIT_STORAGE, e.to_string()))?;
    match status {
        Supervised::Exited(status) => Ok(match (status.code(), status.signal()) {
            (Some(code), _) => code.clamp(0, 255) as u8,
            (None, Some(signal)) => (128 + signal).clamp(0, 255) as u8,
            _ => 1,
        }),
        Supervised::LeaseLost(error) => {
            eprintln!("lockstep: {error}: COMMAND was stopped (exit {EXIT_LEASE_LOST})");
            Ok(EXIT_LEASE_LOST)
        }
    }
}

enum Supervised {
    Exited(std::process::ExitStatus),
    LeaseLost(LockError),
}

/// Waits for COMMAND, forwarding SIGINT and SIGTERM to its group, and checking every lease about
/// ten times per lease (and the journals, which show a force release before any renewal does).
async fn supervise(
    guard: &Guard,
    child: &mut tokio::process::Child,
    grace: Duration,
) -> std::io::Result<Supervised> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let every = (guard.lease() / 10).clamp(Duration::from_millis(20), Duration::from_secs(1));
    let mut ticker = tokio::time::interval(every);
    loop {
        tokio::select! {
            status = child.wait() => {
                let status = status?;
                // A lease that ran out on our own clock ran out while COMMAND ran (we may have
                // been paused and are only now looking).
                if let Err(error) = guard.check() {
                    return Ok(Supervised::LeaseLost(error));
                }
                return Ok(Supervised::Exited(status));
            }
            _ = interrupt.recv() => signal_group(child, rustix::process::Signal::INT),
            _ = terminate.recv() => signal_group(child, rustix::process::Signal::TERM),
            _ = ticker.tick() => {
                if let Err(error) = guard.verify().await {
                    stop(child, grace).await?;
                    return Ok(Supervised::LeaseLost(error));
                }
            }
        }
    }
}

/// SIGTERM to COMMAND's group, then SIGKILL if it is still running after `grace`.
async fn stop(child: &mut tokio::process::Child, grace: Duration) -> std::io::Result<()> {
    signal_group(child, rustix::process::Signal::TERM);
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        signal_group(child, rustix::process::Signal::KILL);
        child.wait().await?;
    }
    Ok(())
}

fn signal_group(child: &tokio::process::Child, signal: rustix::process::Signal) {
    let group = child
        .id()
        .and_then(|id| rustix::process::Pid::from_raw(id as i32));
    if let Some(group) = group {
        let _ = rustix::process::kill_process_group(group, signal);
    }
}

pub async fn force_release(args: ForceReleaseArgs) -> Result<u8, Failure> {
    if let Some(branch) = &args.merge {
        return crate::lake::force_release(&args.root, branch, args.token, args.json).await;
    }
    let path = LockPath::new(args.path.as_deref().expect("clap requires PATH or --merge"))
        .map_err(LockError::from)?;
    let released = match open_existing(&args.root).await? {
        Some(store) => lock::force_release(&*store, &path, args.token).await?,
        None => None,
    };
    if args.json {
        println!("{}", serde_json::json!({ "released": released }));
    } else {
        match &released {
            Some(r) => println!(
                "released {} (token {}, owner {})",
                r.path, r.ticket, r.owner
            ),
            None => println!("{} is not locked", path),
        }
    }
    Ok(0)
}

pub async fn recover(args: RecoverArgs) -> Result<u8, Failure> {
    let (released, merge_released, redo) = match open_existing(&args.root).await? {
        Some(store) => (
            lock::recover(&*store).await?,
            crate::lake::recover(&*store).await?,
            crate::sessions::recover(std::sync::Arc::clone(&store)).await?,
        ),
        None => (Vec::new(), Vec::new(), Default::default()),
    };
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "released": released, "merge_locks_released": merge_released, "redo": redo })
        );
    } else {
        println!(
            "released {} lock(s) whose owners are proven dead",
            released.len()
        );
        for r in &released {
            println!("  {} (token {}, owner {})", r.path, r.ticket, r.owner);
        }
        println!(
            "released {} merge lock(s) whose holders are proven dead (the next merge of each rolls its crashed merge forward)",
            merge_released.len()
        );
        for r in &merge_released {
            println!("  {} (lock {}, holder {})", r.branch, r.index, r.holder);
        }
        println!(
            "replayed phase 2 of {} redo record(s) whose committers are proven dead",
            redo.replayed.len()
        );
        for r in &redo.replayed {
            println!(
                "  {} archive {} ({} memories)",
                r.session,
                r.archive,
                r.memories.len()
            );
        }
        if !redo.left_to_their_committer.is_empty() {
            println!(
                "left {} redo record(s) to committers not proven dead: {}",
                redo.left_to_their_committer.len(),
                redo.left_to_their_committer.join(", ")
            );
        }
        println!(
            "freed {} queue claim(s) of workers proven dead",
            redo.claims_freed.len()
        );
    }
    Ok(0)
}

/// `gc`: offline collection. Runs only while no other process has the store open (FsStore's
/// users lock), and keeps them out while it runs.
pub async fn gc(args: GcArgs) -> Result<u8, Failure> {
    let root = args.root.local_root("gc")?;
    if !root.is_dir() {
        return Err(Failure(
            EXIT_USAGE,
            format!("--root {} is not a directory", root.display()),
        ));
    }
    let path = root.join(".lockstep");
    if !path.exists() {
        println!("no lock store under {}", root.display());
        return Ok(0);
    }
    let store = match FsStore::open_exclusive(&path) {
        Ok(store) => store,
        Err(error @ StoreError::Unavailable(_)) => {
            return Err(Failure(EXIT_BUSY, error.to_string()))
        }
        Err(error) => return Err(error.into()),
    };
    let mut collected = lock::collect_offline(&store).await?;
    // Merge-lock holders' owner files prove their death to `recover`: keep them too.
    collected
        .owners_kept
        .extend(crate::lake::holders(&store).await?);
    // So do the committers of pending redo records and the workers of queue claims.
    collected
        .owners_kept
        .extend(crate::sessions::holders(&store).await?);
    let (directories, temporaries, owner_files) = store.sweep_offline(&collected.owners_kept)?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "collected": collected, "directories_removed": directories, "temporaries_removed": temporaries, "owner_files_removed": owner_files })
        );
    } else {
        println!(
            "removed {} released journals ({} entries), {directories} empty directories, {temporaries} temporary files, {owner_files} owner files; kept {} held locks",
            collected.journals_removed, collected.entries_removed, collected.held_kept
        );
        for corrupt in &collected.corrupt_kept {
            println!("kept corrupt {}: {}", corrupt.key, corrupt.reason);
        }
    }
    Ok(0)
}
