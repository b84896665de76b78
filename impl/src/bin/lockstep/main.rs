//! `lockstep`: check the protocol models, reproduce the bug catalogue, explore a model, and
//! operate path locks over a data root.
//!
//! One module per command group: `model` (check, bugs, explore, variants, presets, vectors),
//! `report` (the HTML report), `replay` (a failing cross-test's replay file),
//! `locks` (locks, lock, force-release, recover, and the process tests' worker), `lake` (branch,
//! merge, merge-locks), `sessions` (session, queue), `probe`, `bench`.
//!
//! The binary is left out of builds with `--cfg loom` and with the `shuttle` feature (their
//! tokio has no process support); only the loom and shuttle tests use those builds.

#[cfg(not(any(loom, feature = "shuttle")))]
mod bench;
#[cfg(not(any(loom, feature = "shuttle")))]
mod cli;
#[cfg(not(any(loom, feature = "shuttle")))]
mod lake;
#[cfg(not(any(loom, feature = "shuttle")))]
mod locks;
#[cfg(not(any(loom, feature = "shuttle")))]
mod model;
#[cfg(not(any(loom, feature = "shuttle")))]
mod probe;
#[cfg(not(any(loom, feature = "shuttle")))]
mod replay;
#[cfg(not(any(loom, feature = "shuttle")))]
mod report;
#[cfg(not(any(loom, feature = "shuttle")))]
mod sessions;

#[cfg(not(any(loom, feature = "shuttle")))]
fn main() -> std::process::ExitCode {
    cli::main()
}

#[cfg(any(loom, feature = "shuttle"))]
fn main() {
    eprintln!("the lockstep binary is not built under --cfg loom or the shuttle feature");
}
