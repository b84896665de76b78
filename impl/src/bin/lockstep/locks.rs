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

#[derive(Args)]
pub struct RootArg {
    /// The data root; lock state lives in ROOT/.lockstep.
    #[arg(long)]
    pub root: std::path::PathBuf,
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
    /// point: POINT on each PATH; subtree: SUBTREE on each; mv: SUBTREE on source and destination parent.
    #[arg(long, value_enum)]
    pub mode: ModeArg,
    /// lock_timeout in seconds (0: fail at once if busy) or `forever`.
    #[arg(long, default_value = "0")]
    pub timeout: String,
    /// Lease in seconds (renewed every third of it while COMMAND runs).
    #[arg(long, default_value_t = 300.0)]
    pub lease: f64,
    /// Paths in the lock namespace, e.g. /resources/a.
    #[arg(required = true)]
    pub paths: Vec<String>,
    /// The command to run, after `--`.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Args)]
pub struct ForceReleaseArgs {
    #[command(flatten)]
    pub root: RootArg,
    pub path: String,
    /// Release only if the lock holds this token.
    #[arg(long)]
    pub token: Option<u64>,
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

use lockstep::lock::{self, LockError, LockManager, LockMode, LockOptions, LockPath, Operation};
use lockstep::store::{FsStore, StoreError};

use crate::cli::{EXIT_BUSY, EXIT_STORAGE, EXIT_USAGE};

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
