//! Which redo-log protocol the model runs: OpenViking's session commit at PR 431 (`seed`),
//! lockstep's (`fixed`), or `fixed` with one planted defect.

crate::variants! {
    protocol: "redo",
    /// One planted defect in the fixed redo protocol.
    pub enum RedoMutation {
        /// Phase 1 runs without the session lock.
        NoSessionLock = "no-session-lock": "phase 1 without the session lock",
        /// The archive index is taken from memory, not claimed with create-if-absent.
        IndexFromMemory = "index-from-memory": "the archive index from memory, written by overwrite",
        /// Clearing the messages drops every live message, not only the archived ones.
        ClearAll = "clear-all": "clearing drops every live message",
        /// The redo record is written after the messages are cleared.
        MarkerAfterClear = "marker-after-clear": "the redo record written after the clear",
        /// Memory ids are minted per extraction, not keyed by the archive.
        FreshMemoryIds = "fresh-memory-ids": "memory ids minted per extraction",
        /// The worker applies an item's effect without its key (a re-delivery applies it again).
        EffectNotKeyed = "effect-not-keyed": "the semantic effect applied without its key",
        /// The worker acks an item before applying its effect (a crash between loses it).
        AckBeforeApply = "ack-before-apply": "the worker acks before applying",
        /// Recovery never marks a replayed commit done.
        KeepMarker = "keep-marker": "recovery never marks a replayed commit done",
        /// Recovery drops redo records without replaying them.
        NoReplay = "no-replay": "recovery drops redo records without replaying them",
    }
    pub enum RedoVariant {
        /// OpenViking PR 431's session.commit and redo recovery.
        Seed = "seed",
    }
}

impl RedoVariant {
    /// Whether the variant does what the seed does in respect of `mutation`.
    pub fn like_seed(self, mutation: RedoMutation) -> bool {
        self == RedoVariant::Seed || self == RedoVariant::Fixed(Some(mutation))
    }
}
