//! lockstep-model: stateright models of three storage-coordination protocols, each in the
//! variant its origin published (races included) and lockstep's fixed variant, plus the
//! catalogue of bugs the checker must find. No I/O: the models are pure functions of their state.

pub mod bugs;
pub mod check;
pub mod lock;
pub mod merge;
pub mod redo;
pub mod trace;
pub mod vectors;
