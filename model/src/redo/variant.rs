//! Which redo-log protocol the model runs: OpenViking's session commit at PR 431 (`seed`),
//! lockstep's (`fixed`), or `fixed` with one planted defect. Each defect is one realistic change
//! to one step, and each breaks a property (the catalogue shows which).

crate::variants! {
    protocol: "redo",
    /// One planted defect in the fixed redo protocol.
    pub enum RedoMutation {
        /// Phase 1 takes the live messages as they are stored, trusting the session lock to keep
        /// a second committer out until they are cleared (our first draft).
        NoExclusion = "no-exclusion": "phase 1 relies on the session lock instead of excluding archived messages",
        /// The archive index is taken from memory at the first listing, and written by overwrite.
        IndexFromMemory = "index-from-memory": "the archive index from memory, written by overwrite",
        /// Clearing deletes every stored message, not only the archived ones.
        ClearAll = "clear-all": "clearing deletes every stored message",
        /// An archive create that answers "already exists" is taken as someone else's, even when
        /// it is our own create that landed while we saw an error.
        ArchiveExistsIsTheirs = "archive-exists-is-theirs": "an archive that already exists is never recognised as our own",
        /// No manifest: readers take every memory under the archive, and every extraction writes
        /// under fresh keys.
        NoManifest = "no-manifest": "no manifest; readers list every memory of the archive",
        /// No manifest, memories keyed by (archive, n) with create-if-absent: a replay with a
        /// different extraction fills the gaps a crash left (the earlier spec's design).
        KeyedMemories = "keyed-memories": "memories keyed by (archive, n), no manifest",
        /// The manifest is created before the memories it names.
        ManifestFirst = "manifest-first": "the manifest created before its memories",
        /// Phase 2 does not read the manifest first, so a replay extracts and writes again.
        SkipManifestCheck = "skip-manifest-check": "phase 2 never reads the manifest first",
        /// The worker applies an item's effect without its key (a re-delivery applies it again).
        EffectNotKeyed = "effect-not-keyed": "the semantic effect applied without its key",
        /// The worker acks an item before applying its effect (a crash between loses it).
        AckBeforeApply = "ack-before-apply": "the worker acks before applying",
        /// Recovery never creates `done` for a replayed commit.
        KeepMarker = "keep-marker": "recovery never marks a replayed commit done",
        /// Recovery marks redo records done without replaying them.
        NoReplay = "no-replay": "recovery drops redo records without replaying them",
        /// The session lock of a holder the store proves dead is waited for until its lease
        /// runs out, as a lock file with no liveness is (openviking 0.2.11's 300 s).
        WaitForDeadHolder = "wait-for-dead-holder": "the session lock of a dead holder is waited for until its lease expires",
        /// Queue rows and effects keyed by the archive index alone, as if one session used the
        /// queue: two sessions' archives `k` share a key (the `two-sessions` world).
        ItemKeyedByIndex = "item-keyed-by-index": "queue rows and effects keyed by the archive index, not the session",
    }
    pub enum RedoVariant {
        /// OpenViking PR 431's session.commit and redo recovery.
        Seed = "seed",
        /// openviking 0.2.11 (PyPI): phase 1 under the session's POINT path lock (a lock file
        /// that only its 300 s `lock_expire` frees), the messages cleared before the archive is
        /// written, the lock released in between; phase 2 and recovery as PR 431's.
        Seed0211 = "seed-0.2.11",
    }
}

impl RedoVariant {
    /// Whether the variant does what the seed does in respect of `mutation`.
    pub fn like_seed(self, mutation: RedoMutation) -> bool {
        self == RedoVariant::Seed || self == RedoVariant::Fixed(Some(mutation))
    }
}
