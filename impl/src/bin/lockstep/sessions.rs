//! The redo log's commands over a data root (state in ROOT/.lockstep, beside the path locks and
//! the lake): `session add|commit|show`, `queue work`, and the redo side of `recover` and `gc`.

use std::time::Duration;

use clap::{Args, Subcommand};

use lockstep::redo::{self, RedoError, RedoOptions, SessionName, Sessions};
use lockstep::store::Store;

use crate::cli::{EXIT_BUSY, EXIT_STORAGE, EXIT_USAGE};
use crate::locks::{open, open_existing, Failure, RootArg};

#[derive(Subcommand)]
pub enum SessionCommand {
    /// Add one message to SESSION (created on its first message). Prints the message's id.
    Add(AddArgs),
    /// Commit SESSION (specs/redo.md): archive its live messages (phase 1), then write their
    /// memories and enqueue their semantic item (phase 2, which recovery replays after a crash).
    ///
    /// Exit 0 committed (or nothing to commit); 75 another commit of SESSION holds the session
    /// lock; 74 storage error (if the archive was written, its phase 2 is pending and `lockstep
    /// recover` finishes it once this process has ended); 2 bad usage.
    Commit(CommitArgs),
    /// Show SESSION: live messages, archives (with their committer's liveness and `done`), the
    /// memories readers see, pending redo records, queue rows and effects.
    Show(ShowArgs),
}

#[derive(Subcommand)]
pub enum QueueCommand {
    /// Run a semantic-queue worker: claim pending rows, apply each item's effect (one create
    /// keyed by the item), ack. Claims of workers proven dead are taken over. Without --once it
    /// first runs recovery (as `lockstep recover` does for the redo log), then polls until
    /// interrupted (SIGINT).
    Work(WorkArgs),
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("content").required(true).args(["message", "file"])))]
pub struct AddArgs {
    #[command(flatten)]
    pub root: RootArg,
    /// 1 to 128 bytes of letters, digits, '.', '_' and '-', not starting with '-'.
    pub session: String,
    /// The message's text.
    #[arg(long)]
    pub message: Option<String>,
    /// The message's text, from a file (UTF-8, at most 1 MiB).
    #[arg(long)]
    pub file: Option<std::path::PathBuf>,
    /// Print `{"session","id"}`.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct CommitArgs {
    #[command(flatten)]
    pub root: RootArg,
    pub session: String,
    /// Seconds to wait for the session lock if another commit holds it (0: exit 75 at once), or
    /// `forever`.
    #[arg(long, default_value = "0")]
    pub timeout: String,
    /// Print `{"session","archive","messages","memories"}` (`archive` null: nothing to commit);
    /// a failure as `{"error":{"code","kind","message"}}` (kinds busy, pending, storage, usage).
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub root: RootArg,
    pub session: String,
    /// Print one object with the keys `messages`, `archives`, `memories`, `pending`, `queue`
    /// (and `effects`, `memories_missing`, `memories_unnamed`, `unrecognised`).
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct WorkArgs {
    #[command(flatten)]
    pub root: RootArg,
    /// One pass over the queue, then exit.
    #[arg(long)]
    pub once: bool,
    /// Milliseconds between passes (without --once).
    #[arg(long, default_value = "200")]
    pub poll_ms: u64,
    /// Print each pass as `{"processed":[…],"claimed_elsewhere":N}` (one line per pass).
    #[arg(long)]
    pub json: bool,
}

fn failure(error: RedoError) -> Failure {
    Failure::new(failure_code(&error), error.to_string())
}

fn failure_code(error: &RedoError) -> u8 {
    match error {
        RedoError::Busy { .. } | RedoError::RecoveryBusy { .. } => EXIT_BUSY,
        RedoError::InvalidSession { .. } | RedoError::InvalidMessage(_) => EXIT_USAGE,
        RedoError::Lock(_)
        | RedoError::Corrupt { .. }
        | RedoError::Extraction { .. }
        | RedoError::Phase2 { .. }
        | RedoError::CreateRefused { .. }
        | RedoError::TooLarge(_)
        | RedoError::Store(_) => EXIT_STORAGE,
    }
}

fn failure_kind(error: &RedoError) -> &'static str {
    match error {
        RedoError::Busy { .. } | RedoError::RecoveryBusy { .. } => "busy",
        RedoError::Extraction { .. } | RedoError::Phase2 { .. } => "pending",
        RedoError::InvalidSession { .. } | RedoError::InvalidMessage(_) => "usage",
        _ => "storage",
    }
}

/// The store the redo commands use. Test builds (the `mutants` feature) can stop it
/// mid-protocol with `LOCKSTEP_FAULT=hang-after-creates:N`: the command holds what its first N
/// creates made and waits to be killed (the process tests' crashed committer or worker).
fn hostile(store: std::sync::Arc<dyn Store>) -> std::sync::Arc<dyn Store> {
    #[cfg(feature = "mutants")]
    if let Some(n) = std::env::var("LOCKSTEP_FAULT")
        .ok()
        .and_then(|v| v.strip_prefix("hang-after-creates:")?.parse::<u64>().ok())
    {
        // It waits for its test to kill it: if the test goes away first (a replay that
        // diverged unwinds past its kill), it dies with the thread that started it.
        let _ =
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
        let faulty = lockstep::store::FaultyStore::new(store);
        faulty.hang_after_creates(n);
        faulty.announce_hang();
        return std::sync::Arc::new(faulty);
    }
    std::sync::Arc::new(store)
}

async fn sessions(store: impl Store, timeout: Option<Duration>) -> Result<Sessions, Failure> {
    Sessions::open(
        store,
        RedoOptions {
            lock_timeout: timeout,
            ..RedoOptions::default()
        },
    )
    .await
    .map_err(failure)
}

pub async fn session(command: SessionCommand) -> Result<u8, Failure> {
    match command {
        SessionCommand::Add(args) => {
            SessionName::new(&args.session).map_err(failure)?;
            let text = match (&args.message, &args.file) {
                (Some(text), _) => text.clone(),
                (None, Some(file)) => std::fs::read_to_string(file).map_err(|e| {
                    Failure::new(
                        EXIT_USAGE,
                        format!("cannot read {} as UTF-8 text: {e}", file.display()),
                    )
                })?,
                (None, None) => unreachable!("clap requires one"),
            };
            let sessions = sessions(hostile(open(&args.root).await?), Some(Duration::ZERO)).await?;
            let id = sessions.add(&args.session, &text).await.map_err(failure)?;
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({ "session": args.session, "id": id })
                );
            } else {
                println!("added message {id} to {}", args.session);
            }
            sessions.shutdown().await;
            Ok(0)
        }
        SessionCommand::Commit(args) => {
            SessionName::new(&args.session).map_err(failure)?;
            let timeout = crate::locks::parse_timeout(&args.timeout)?;
            let sessions = sessions(hostile(open(&args.root).await?), timeout).await?;
            let result = sessions.commit(&args.session).await;
            sessions.shutdown().await;
            match result {
                Ok(committed) => {
                    if args.json {
                        println!("{}", serde_json::to_string(&committed).expect("serialises"));
                    } else if let Some(k) = committed.archive {
                        println!(
                            "committed {} message(s) of {} as archive {k}; {} memorie(s)",
                            committed.messages.len(),
                            committed.session,
                            committed.memories.len()
                        );
                        for memory in &committed.memories {
                            println!("  {memory}");
                        }
                    } else {
                        println!("nothing to commit in {}", committed.session);
                    }
                    Ok(0)
                }
                Err(error) if args.json => {
                    let code = failure_code(&error);
                    println!(
                        "{}",
                        serde_json::json!({ "error": { "code": code, "kind": failure_kind(&error), "message": error.to_string() } })
                    );
                    Err(failure(error))
                }
                Err(error) => Err(failure(error)),
            }
        }
        SessionCommand::Show(args) => {
            let name = SessionName::new(&args.session).map_err(failure)?;
            let view = match open_existing(&args.root).await? {
                Some(store) => redo::inspect_session(&*store, &name)
                    .await
                    .map_err(failure)?,
                None => redo::inspect_session(&lockstep::store::MemStore::new(), &name)
                    .await
                    .map_err(failure)?,
            };
            if args.json {
                println!("{}", serde_json::to_string(&view).expect("serialises"));
                return Ok(0);
            }
            let live = view.messages.iter().filter(|m| !m.archived).count();
            println!("session {}: {live} live message(s)", view.session);
            for m in view.messages.iter().filter(|m| !m.archived) {
                println!(
                    "  {}: {}",
                    m.id,
                    m.text.chars().take(100).collect::<String>()
                );
            }
            for a in &view.archives {
                println!(
                    "archive {}: {} message(s), committer {} ({:?}), {}",
                    a.index,
                    a.messages.len(),
                    a.owner,
                    a.owner_liveness,
                    if a.done { "done" } else { "phase 2 pending" }
                );
            }
            println!("{} memorie(s) visible", view.memories.len());
            for m in &view.memories {
                println!(
                    "  archive {}: {}",
                    m.archive,
                    m.text.chars().take(100).collect::<String>()
                );
            }
            if view.memories_unnamed > 0 {
                println!(
                    "{} memorie(s) of extractions no manifest names (invisible garbage)",
                    view.memories_unnamed
                );
            }
            for key in &view.memories_missing {
                println!("MISSING memory named by a manifest: {key}");
            }
            for row in &view.queue {
                println!("queue row of archive {}: {}", row.archive, row.state);
            }
            for (k, n) in &view.effects {
                println!("archive {k}: {n} effect(s) applied");
            }
            for key in &view.unrecognised {
                println!("unrecognised key (left alone): {key}");
            }
            Ok(0)
        }
    }
}

pub async fn queue(command: QueueCommand) -> Result<u8, Failure> {
    let QueueCommand::Work(args) = command;
    let sessions = sessions(hostile(open(&args.root).await?), Some(Duration::ZERO)).await?;
    if !args.once {
        // A long-running worker is the manager of its store: it recovers at start (phase 2 of
        // committers proven dead, claims of workers proven dead). Busy: another recovery runs.
        match sessions.recover().await {
            Ok(recovery) if args.json => {
                println!("{}", serde_json::json!({ "recovery": recovery }))
            }
            Ok(recovery) => println!(
                "recovery at start: replayed {} redo record(s), freed {} stale claim(s)",
                recovery.replayed.len(),
                recovery.claims_freed.len()
            ),
            Err(RedoError::RecoveryBusy { holder }) => {
                eprintln!("lockstep: recovery at start skipped: another recovery runs ({holder})")
            }
            Err(error) => return Err(failure(error)),
        }
    }
    loop {
        let worked = sessions.work_once().await.map_err(failure)?;
        if args.json {
            println!("{}", serde_json::to_string(&worked).expect("serialises"));
        } else if !worked.processed.is_empty() || args.once {
            println!(
                "processed {} item(s); {} claimed by other workers",
                worked.processed.len(),
                worked.claimed_elsewhere
            );
            for item in &worked.processed {
                println!("  {item}");
            }
        }
        if args.once {
            sessions.shutdown().await;
            return Ok(0);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(args.poll_ms.max(1))) => {}
            _ = tokio::signal::ctrl_c() => {
                sessions.shutdown().await;
                return Ok(0);
            }
        }
    }
}

/// The redo side of `recover`.
pub async fn recover(store: std::sync::Arc<dyn Store>) -> Result<redo::RedoRecovery, Failure> {
    let sessions = sessions(hostile(store), Some(Duration::ZERO)).await?;
    let result = sessions.recover().await;
    sessions.shutdown().await;
    result.map_err(failure)
}

/// The owners `gc` must keep for the redo log.
pub async fn holders(store: &dyn Store) -> Result<Vec<String>, Failure> {
    redo::owners_to_keep(store).await.map_err(failure)
}
