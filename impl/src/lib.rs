//! lockstep: the real implementation of the protocols that `lockstep-model` checks.
//!
//! This crate also carries the `lockstep` binary (`src/bin/lockstep.rs`): the model checker's
//! command line (`check`, `bugs`, `explore`) and the operator's commands (`locks`, `lock`,
//! `force-release`, `recover`).

pub mod bench;
pub mod json;
pub mod lock;
pub mod merge;
pub mod mutants;
pub mod probe;
pub mod redo;
pub mod replay;
pub mod store;
pub mod sync;

pub use lockstep_model as model;
