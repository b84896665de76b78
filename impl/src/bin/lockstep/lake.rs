//! The lake's commands over a data root (state in ROOT/.lockstep, beside the path locks):
//! `branch create|commit|log`, `merge`, `merge-locks`, and the merge side of `force-release`
//! and `recover`.

use std::time::Duration;

use clap::{Args, Subcommand};

use lockstep::merge::{self, BranchName, Lake, MergeError, MergeOptions, MergeOutcome, Object};
use lockstep::store::Store;

use crate::cli::{EXIT_BUSY, EXIT_CONFLICT, EXIT_LEASE_LOST, EXIT_STORAGE, EXIT_USAGE};
use crate::locks::{open, open_existing, Failure, RootArg};

#[derive(Subcommand)]
pub enum BranchCommand {
    /// Create branch NAME (a root branch, or a child of --from PARENT whose BASE is the
    /// parent's end now).
    Create(BranchCreateArgs),
    /// Append one commit to branch NAME: an object with the given bytes, and/or deletes.
    Commit(BranchCommitArgs),
    /// Show a branch's journal: each entry with its index; merge commits with whether readers
    /// count them (the first per child and TAIL); for a child, its TAIL/BASE.
    Log(BranchLogArgs),
}

#[derive(Args)]
pub struct BranchCreateArgs {
    #[command(flatten)]
    pub root: RootArg,
    /// 1 to 128 bytes of letters, digits, '.', '_' and '-', not starting with '-'.
    pub name: String,
    /// The parent this branch merges into.
    #[arg(long = "from")]
    pub parent: Option<String>,
}

/// A commit adds one object (--message or --file, named by --object) and/or deletes objects
/// (--delete, repeatable): at least one of the three.
#[derive(Args)]
#[command(group(clap::ArgGroup::new("content").required(true).multiple(true).args(["message", "file", "delete"])))]
pub struct BranchCommitArgs {
    #[command(flatten)]
    pub root: RootArg,
    pub name: String,
    /// The new object's bytes, as text.
    #[arg(long, conflicts_with = "file", group = "bytes")]
    pub message: Option<String>,
    /// The new object's bytes, from a file.
    #[arg(long, group = "bytes")]
    pub file: Option<std::path::PathBuf>,
    /// The new object's name (default: `o-<commit id>`); needs --message or --file.
    #[arg(long, requires = "bytes")]
    pub object: Option<String>,
    /// Delete an object (repeatable). A merge of a child whose commit deletes an object that
    /// the parent changed since the child's BASE is a conflict (exit 76).
    #[arg(long)]
    pub delete: Vec<String>,
    /// Print `{"branch","index","id"}` on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct BranchLogArgs {
    #[command(flatten)]
    pub root: RootArg,
    pub name: String,
    /// Print `{"branch","entries":[{"index","entry","counted"}],"tailbase":{"version","tail","base","lock"}|null}`.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct MergeArgs {
    #[command(flatten)]
    pub root: RootArg,
    /// The child branch to merge into its parent.
    pub child: String,
    /// Seconds to wait for a busy merge lock (0: fail at once with exit 75), or `forever`. It
    /// bounds the wait for the lock only, not the merge.
    #[arg(long, default_value = "0")]
    pub timeout: String,
    /// Print the result as JSON on stdout (`Merged`: child, parent, outcome, lock, from, to,
    /// parent_index, moved_tail, released_by_other, waited_ms); a failure as
    /// `{"error":{"code","kind","message",…}}` (kinds busy, conflict, lock-lost, corrupt,
    /// storage, usage).
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct MergeLocksArgs {
    #[command(flatten)]
    pub root: RootArg,
    /// Print `{"merge_locks":[{"branch","state","index","holder","holder_liveness","intent_from","age_ms","tail","base","reason"?}]}`;
    /// `state` is free, held, stuck (the holder is proven dead) or corrupt.
    #[arg(long)]
    pub json: bool,
}

fn failure(error: MergeError) -> Failure {
    Failure::new(failure_code(&error), error.to_string())
}

fn failure_code(error: &MergeError) -> u8 {
    match error {
        MergeError::Busy { .. } => EXIT_BUSY,
        MergeError::Conflict { .. } => EXIT_CONFLICT,
        MergeError::LockLost { .. } => EXIT_LEASE_LOST,
        MergeError::InvalidBranch { .. }
        | MergeError::InvalidObject(_)
        | MergeError::NoSuchBranch(_)
        | MergeError::BranchExists(_)
        | MergeError::NotAChild(_)
        | MergeError::TokenMismatch { .. } => EXIT_USAGE,
        MergeError::Corrupt { .. }
        | MergeError::CreateRefused { .. }
        | MergeError::Store(_)
        | MergeError::RegistrationLost => EXIT_STORAGE,
    }
}

/// `{"code", "kind", "message", …fields}` of a merge failure.
fn failure_json(error: &MergeError) -> (u8, serde_json::Value) {
    let code = failure_code(error);
    let mut doc = serde_json::json!({ "code": code, "message": error.to_string() });
    let (kind, fields) = match error {
        MergeError::Busy {
            branch,
            holder,
            index,
            ..
        } => (
            "busy",
            serde_json::json!({ "branch": branch, "holder": holder, "index": index }),
        ),
        MergeError::Conflict {
            child,
            child_index,
            object,
            parent_index,
        } => (
            "conflict",
            serde_json::json!({ "child": child, "child_index": child_index, "object": object, "parent_index": parent_index }),
        ),
        MergeError::LockLost { branch, index } => (
            "lock-lost",
            serde_json::json!({ "branch": branch, "index": index }),
        ),
        MergeError::Corrupt { key, reason } => (
            "corrupt",
            serde_json::json!({ "key": key, "reason": reason }),
        ),
        MergeError::Store(_) | MergeError::CreateRefused { .. } => {
            ("storage", serde_json::json!({}))
        }
        _ => ("usage", serde_json::json!({})),
    };
    doc["kind"] = kind.into();
    if let (Some(doc), Some(fields)) = (doc.as_object_mut(), fields.as_object()) {
        doc.extend(fields.clone());
    }
    (code, doc)
}

async fn lake(root: &RootArg) -> Result<Lake, Failure> {
    Lake::open(open(root).await?).await.map_err(failure)
}

/// The store `merge` uses. Test builds (the `mutants` feature) can stop it mid-protocol with
/// `LOCKSTEP_FAULT=hang-after-creates:N`: the merge holds what its first N creates made and
/// waits to be killed (the process tests' crashed merger).
fn hostile(store: std::sync::Arc<dyn Store>) -> std::sync::Arc<dyn lockstep::store::Store> {
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

pub async fn branch(command: BranchCommand) -> Result<u8, Failure> {
    match command {
        BranchCommand::Create(args) => {
            let lake = lake(&args.root).await?;
            let branch = lake
                .create_branch(&args.name, args.parent.as_deref())
                .await
                .map_err(failure)?;
            match args.parent {
                Some(parent) => println!("created branch {} from {parent}", branch.name()),
                None => println!("created root branch {}", branch.name()),
            }
            Ok(0)
        }
        BranchCommand::Commit(args) => {
            let lake = lake(&args.root).await?;
            let branch = lake.branch(&args.name).await.map_err(failure)?;
            let bytes = match (&args.message, &args.file) {
                (Some(text), _) => Some(text.as_bytes().to_vec()),
                (None, Some(file)) => Some(std::fs::read(file).map_err(|e| {
                    Failure::new(EXIT_USAGE, format!("cannot read {}: {e}", file.display()))
                })?),
                (None, None) => None,
            };
            let id = merge::new_id();
            let add = bytes
                .map(|bytes| {
                    let name = args.object.clone().unwrap_or_else(|| format!("o-{id}"));
                    Object::new(name, &bytes)
                })
                .into_iter()
                .collect();
            let index = branch
                .commit_change(&id, add, args.delete.clone())
                .await
                .map_err(failure)?;
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({ "branch": branch.name(), "index": index, "id": id })
                );
            } else {
                println!("committed {} at index {index}", branch.name());
            }
            Ok(0)
        }
        BranchCommand::Log(args) => {
            let store = existing(&args.root).await?;
            let lake = Lake::open(store).await.map_err(failure)?;
            let branch = lake.branch(&args.name).await.map_err(failure)?;
            let log = branch.log().await.map_err(failure)?;
            let tailbase = branch.tailbase().await.map_err(failure)?;
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "branch": branch.name(),
                        "entries": log,
                        "tailbase": tailbase.map(|(version, tb)| serde_json::json!({"version": version, "tail": tb.tail, "base": tb.base, "lock": tb.lock})),
                    })
                );
                return Ok(0);
            }
            if let Some((version, tb)) = tailbase {
                println!(
                    "{}: TAIL {} BASE {} (version {version}): commits below {} are in the parent",
                    branch.name(),
                    tb.tail,
                    tb.base,
                    tb.tail
                );
            }
            for entry in &log {
                match &entry.entry {
                    merge::CommitEntry::Commit {
                        id, add, delete, ..
                    } => {
                        let names: Vec<&str> = add.iter().map(|o| o.name.as_str()).collect();
                        println!(
                            "{:>6}  commit {id}  add [{}]  delete [{}]",
                            entry.index,
                            names.join(", "),
                            delete.join(", ")
                        );
                    }
                    merge::CommitEntry::Merge {
                        child,
                        from,
                        to,
                        lock,
                        ..
                    } => println!(
                        "{:>6}  merge {child} commits {from}..{to} (lock {lock}){}",
                        entry.index,
                        if entry.counted {
                            ""
                        } else {
                            "  [ignored: repeats the first merge from this TAIL]"
                        }
                    ),
                }
            }
            Ok(0)
        }
    }
}

/// The store, which must exist already (commands that only read must not create one).
async fn existing(root: &RootArg) -> Result<std::sync::Arc<dyn Store>, Failure> {
    open_existing(root).await?.ok_or_else(|| {
        Failure::new(
            EXIT_USAGE,
            format!("no lake at {} (no .lockstep)", root.describe()),
        )
    })
}

pub async fn merge(args: MergeArgs) -> Result<u8, Failure> {
    let timeout = match args.timeout.as_str() {
        "forever" => None,
        text => Some(
            text.parse::<f64>()
                .ok()
                .and_then(|s| Duration::try_from_secs_f64(s).ok())
                .ok_or_else(|| {
                    Failure::new(
                        EXIT_USAGE,
                        format!("--timeout {text}: expected seconds or `forever`"),
                    )
                })?,
        ),
    };
    let lake = Lake::open(hostile(existing(&args.root).await?))
        .await
        .map_err(failure)?;
    let options = MergeOptions {
        timeout,
        ..MergeOptions::default()
    };
    let merged = match lake.merge(&args.child, options).await {
        Ok(merged) => merged,
        Err(error) if args.json => {
            // Machines get the failure on stdout too, with its fields.
            let failure = failure_json(&error);
            println!("{}", serde_json::json!({ "error": failure.1 }));
            return Err(Failure::new(failure.0, error.to_string()));
        }
        Err(error) => return Err(failure(error)),
    };
    if merged.released_by_other {
        eprintln!(
            "lockstep: warning: the merge completed, and then its lock (lock {}) was released by someone else",
            merged.lock
        );
    }
    if args.json {
        println!("{}", serde_json::to_string(&merged).expect("serialises"));
        return Ok(0);
    }
    match merged.outcome {
        MergeOutcome::NothingToMerge => println!(
            "nothing to merge: {} is merged up to its end ({})",
            merged.child, merged.from
        ),
        outcome => println!(
            "{} {} commits {}..{} into {} at its entry {} (lock {}){}",
            if outcome == MergeOutcome::Merged {
                "merged"
            } else {
                "rolled forward the merge of"
            },
            merged.child,
            merged.from,
            merged.to,
            merged.parent,
            merged.parent_index.unwrap_or(0),
            merged.lock,
            if merged.moved_tail {
                ""
            } else {
                "; TAIL/BASE had been moved already"
            }
        ),
    }
    Ok(0)
}

pub async fn merge_locks(args: MergeLocksArgs) -> Result<u8, Failure> {
    let locks = match open_existing(&args.root).await? {
        Some(store) => merge::merge_locks(&*store).await.map_err(failure)?,
        None => Vec::new(),
    };
    if args.json {
        println!("{}", serde_json::json!({ "merge_locks": locks }));
        return Ok(0);
    }
    if locks.is_empty() {
        println!("no child branches");
    }
    for info in &locks {
        let state = match info.state {
            merge::MergeLockState::Free => "free".to_owned(),
            merge::MergeLockState::Corrupt => format!(
                "CORRUPT: {}",
                info.reason.as_deref().unwrap_or("unreadable")
            ),
            merge::MergeLockState::Held => format!(
                "held by {} (lock {}, holder {}, intent: merge from TAIL {}, age {:.1} s)",
                info.holder.as_deref().unwrap_or("?"),
                info.index.unwrap_or(0),
                match info.holder_liveness {
                    Some(lockstep::store::Liveness::Alive) => "alive",
                    _ => "liveness unknown",
                },
                info.intent_from.unwrap_or(0),
                info.age_ms.unwrap_or(0) as f64 / 1000.0
            ),
            merge::MergeLockState::Stuck => format!(
                "STUCK: held by {}, which is dead (lock {}); `lockstep recover` frees it",
                info.holder.as_deref().unwrap_or("?"),
                info.index.unwrap_or(0)
            ),
        };
        match (info.tail, info.base) {
            (Some(tail), Some(base)) => {
                println!("{}  TAIL {tail} BASE {base}  {state}", info.branch)
            }
            _ => println!("{}  {state}", info.branch),
        }
    }
    Ok(0)
}

/// `force-release --merge BRANCH`.
pub async fn force_release(
    root: &RootArg,
    branch: &str,
    token: Option<u64>,
    json: bool,
) -> Result<u8, Failure> {
    let branch = BranchName::new(branch).map_err(failure)?;
    let released = match open_existing(root).await? {
        Some(store) => merge::force_release(&*store, &branch, token)
            .await
            .map_err(failure)?,
        None => None,
    };
    if json {
        println!("{}", serde_json::json!({ "released": released }));
    } else {
        match &released {
            Some(r) => println!(
                "released the merge lock of {} (lock {}, holder {})",
                r.branch, r.index, r.holder
            ),
            None => println!("the merge lock of {branch} is not held"),
        }
    }
    Ok(0)
}

/// The merge locks `recover` freed.
pub async fn recover(store: &dyn Store) -> Result<Vec<merge::Released>, Failure> {
    merge::recover(store).await.map_err(failure)
}

/// The owners `gc` must keep: holders of merge locks (their files prove their death).
pub async fn holders(store: &dyn Store) -> Result<Vec<String>, Failure> {
    Ok(merge::merge_locks(store)
        .await
        .map_err(failure)?
        .into_iter()
        .filter_map(|info| info.holder)
        .map(|h| lockstep::lock::owner::process_part(&h).to_owned())
        .collect())
}
