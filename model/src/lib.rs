//! lockstep-model: stateright models of three storage-coordination protocols, each in the
//! variant its origin published (races included) and lockstep's fixed variant, plus the
//! catalogue of bugs the checker must find. No I/O: the models are pure functions of their state.
//!
//! Each protocol lives in its own folder with the same files: `mod.rs` (the model: state,
//! actions, properties), `seed.rs`, `fixed.rs`, `variant.rs`, `catalogue.rs` (its bugs and
//! mutants) and `trace.rs` (its steps as people read them). The modules at the top know no
//! protocol: `check` (the checker runner), `regroup` (counterexamples with
//! the fewest switches between actors), `trace` (behaviours as numbered steps), `diagram`
//! (traces drawn as sequence diagrams), `explore` (the Explorer's one labelled start), `catalogue` (running catalogue entries), `variant`
//! (declaring variants).

pub mod catalogue;
pub mod check;
pub mod diagram;
pub mod explore;
pub mod lock;
pub mod merge;
pub mod packed;
pub mod preset;
pub mod redo;
pub mod regroup;
pub mod trace;
pub mod variant;
pub mod vectors;

/// Every catalogued entry of every protocol, seed bugs first within each protocol.
pub fn catalogue() -> Vec<catalogue::Entry> {
    let mut all = lock::catalogue::entries();
    all.extend(merge::catalogue::entries());
    all.extend(redo::catalogue::entries());
    all
}

/// The entries of one protocol (`lock`, `merge`, `redo`), or all for `None`.
pub fn entries(protocol: Option<&str>) -> Vec<catalogue::Entry> {
    catalogue()
        .into_iter()
        .filter(|e| protocol.is_none_or(|p| e.protocol == p))
        .collect()
}
