//! lockstep: the real implementation of the protocols that `lockstep-model` checks.
//!
//! This crate also carries the `lockstep` binary (`src/bin/lockstep.rs`): the model checker's
//! command line (`check`, `bugs`, `explore`).

pub use lockstep_model as model;
