//! The `lockstep` binary: the model checker's command line and the operator's commands
//! (`lockstep --help`). The command line lives in `lockstep/cli.rs`; it is left out of builds with
//! `--cfg loom` and with the `shuttle` feature (their tokio has no process support), which only
//! the loom and shuttle tests use.

#[cfg(not(any(loom, feature = "shuttle")))]
#[path = "lockstep/cli.rs"]
mod cli;

#[cfg(not(any(loom, feature = "shuttle")))]
fn main() -> std::process::ExitCode {
    cli::main()
}

#[cfg(any(loom, feature = "shuttle"))]
fn main() {
    eprintln!("the lockstep binary is not built under --cfg loom or the shuttle feature");
}
