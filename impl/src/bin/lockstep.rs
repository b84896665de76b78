//! The `lockstep` binary: the model checker's command line and the operator's commands
//! (`lockstep --help`). The command line lives in `lockstep/cli.rs`; it is left out of builds with
//! `--cfg loom` (tokio has no process or signal support there), which only the loom tests use.

#[cfg(not(loom))]
#[path = "lockstep/cli.rs"]
mod cli;

#[cfg(not(loom))]
fn main() -> std::process::ExitCode {
    cli::main()
}

#[cfg(loom)]
fn main() {
    eprintln!("the lockstep binary is not built under --cfg loom");
}
