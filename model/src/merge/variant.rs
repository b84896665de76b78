//! Which merge-lock protocol the model runs: the seeds (the proposal of brimdata/zed #2971 on
//! the 2021 prototype, the 2021 code without a lock, the proposal on a store without
//! create-if-absent), lockstep's `fixed` protocol, or `fixed` with one planted defect.

crate::variants! {
    protocol: "merge",
    /// One planted defect in the fixed merge protocol.
    pub enum MergeMutation {
        /// `lock` written by blind put instead of create-if-absent.
        LockBlindPut = "lock-blind-put": "`lock` is a blind put",
        /// The merge commit is appended without looking for an earlier one of the same TAIL.
        AppendWithoutScan = "append-without-scan": "the merge commit is appended without looking for one of its TAIL",
        /// TAIL moves to the merger's own cut, not to the end of the first commit for that TAIL.
        TailToOwnCut = "tail-to-own-cut": "TAIL moves to the merger's own cut",
        /// Recovery never releases a crashed holder's lock.
        NoRecovery = "no-recovery": "recovery never releases a crashed holder's lock",
        /// `unlock` is appended after whatever entry is newest, not after the holder's own `lock`.
        BlindUnlock = "blind-unlock": "`unlock` after the newest entry, not the holder's own `lock`",
        /// A merger only locks an empty lock journal.
        LockNeverFree = "lock-never-free": "a merger only locks an empty journal",
        /// After a `lock` create that returned an error, the merger takes it as not landed.
        NoLockReadBack = "no-lock-read-back": "a `lock` create that returned an error is taken as not landed",
        /// The conflict check is skipped: a delete the parent changed since BASE is merged.
        SkipConflictCheck = "skip-conflict-check": "merges skip the conflict check",
        /// The conflict verdict is taken when the cut is read, not against the entries the
        /// append is created after.
        CheckBeforeAppend = "check-before-append": "the conflict check is taken before the scan the append follows",
        /// TAIL/BASE is moved by a blind write, not a compare-and-swap on its version.
        BlindTailMove = "blind-tail-move": "TAIL/BASE moved by a blind write, not compare-and-swap",
    }
    pub enum MergeVariant {
        /// The proposal of brimdata/zed #2971 as written, on the 2021 prototype (HEAD pointer).
        Seed = "seed",
        /// The 2021 code: merge without any lock.
        SeedLockFree = "seed-lockfree",
        /// The proposal on S3 before conditional writes: `lock` is a blind put.
        SeedBlindPut = "seed-blind-put",
        /// The lock SuperDB ships today (brimdata/super #6706, `super db vacate`): `TAIL.lock`
        /// put-if-not-exists around the TAIL move and deleted afterwards; no owner, no lease, no
        /// recovery. Here it guards lockstep's merge steps.
        SeedVacate = "seed-vacate",
    }
}
