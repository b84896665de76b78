//! The merge-lock catalogue: the races of the 2021 code and of the brimdata/zed #2971 proposal
//! (seed bugs), and one planted defect per property of lockstep's fixed protocol (mutants).

use crate::catalogue::{Basis, Entry, EntryKind, World};

use super::{
    ambiguous_world, two_children_world, MergeConfig, MergeModel, MergeMutation, MergeVariant,
};

fn entry(
    id: &'static str,
    kind: EntryKind,
    basis: Basis,
    title: &'static str,
    source: &'static str,
    property: &'static str,
    config: MergeConfig,
) -> Entry {
    let control = MergeConfig {
        variant: MergeVariant::Fixed(None),
        ..config.clone()
    };
    let model = MergeModel::new(config).expect("catalogue worlds are valid");
    let control = MergeModel::new(control).expect("catalogue worlds are valid");
    Entry {
        id,
        protocol: "merge",
        kind,
        basis,
        title,
        source,
        property,
        needs: None,
        scenario: Box::new(World {
            model,
            control,
            signature: None,
        }),
    }
}

pub fn entries() -> Vec<Entry> {
    let world = MergeConfig::new;
    let quiet = |variant: MergeVariant| MergeConfig {
        mergers: 2,
        child_writes: 0,
        crashes: 0,
        force_releases: 0,
        ..MergeConfig::new(variant)
    };
    let mutant = |m: MergeMutation| MergeVariant::Fixed(Some(m));
    let seed = EntryKind::SeedBug;
    let planted = EntryKind::Mutant;
    let (shipped, proposal, lockstep) = (Basis::ShippedCode, Basis::Proposal, Basis::Lockstep);
    vec![
        entry("merge/lockfree-double-merge", seed, shipped,
            "without a lock (the 2021 code), two merges of one child both apply the same commits to the parent",
            "brimdata/zed 2021 Branch.Merge (PR #2976); Log.Commit retries blindly", "exactly once", quiet(MergeVariant::SeedLockFree)),
        entry("merge/write-lost-behind-tail", seed, shipped,
            "a child commit written between the merge's cut and the TAIL move ends up behind TAIL but not in the parent: lost",
            "brimdata/zed 2021 Branch.Merge: TAIL moves to the NOP past the cut", "consistent pointers",
            MergeConfig { child_writes: 1, ..quiet(MergeVariant::Seed) }),
        entry("merge/head-lag-wedges-lock", seed, proposal,
            "a holder crashes between creating `lock` and updating HEAD; everyone reading HEAD sees the old `unlock`, creates at HEAD+1 fail, and recovery cannot see the lock",
            "brimdata/zed #2971 on the journal whose HEAD probe is not implemented (ReadHead XXX)", "crash recovery",
            MergeConfig { crashes: 1, ..quiet(MergeVariant::Seed) }),
        entry("merge/crash-before-tail-move-merges-twice", seed, proposal,
            "a crash between the parent append and the TAIL/BASE move: recovery frees the lock and the next merge applies the same commits again",
            "brimdata/zed #2971 (recovery releases stuck locks)", "exactly once", MergeConfig { crashes: 1, ..quiet(MergeVariant::Seed) }),
        entry("merge/zombie-unlock-frees-new-holder", seed, proposal,
            "a force-released holder that was only slow writes `unlock` at HEAD+1, after the new holder's `lock`, and frees it",
            "brimdata/zed #2971 (a command to force-release a lock)", "zombie cannot complete", MergeConfig { force_releases: 1, ..quiet(MergeVariant::Seed) }),
        entry("merge/blind-put-lock-excludes-nothing", seed, proposal,
            "on a store without create-if-absent (S3 before conditional writes) `lock` is a blind put: two mergers both hold it",
            "brimdata/zed #2971 on S3, where CommitAt falls back to a blind overwrite (#2686)", "one merger", quiet(MergeVariant::SeedBlindPut)),
        entry("merge/vacate-tail-lock-stuck-forever", seed, shipped,
            "a crash between `TAIL.lock`'s put and its delete leaves it forever: it names no owner, has no lease, and no recovery deletes it; every later put fails",
            "brimdata/super #6706 (2026-03): Store.MoveTail does PutIfNotExists(TAIL.lock) and defer deleteTailLockFile (db/journal/store.go)",
            "crash recovery", MergeConfig { crashes: 1, ..quiet(MergeVariant::SeedVacate) }),
        entry("merge/mutant-lock-blind-put", planted, lockstep, "`lock` by blind put: two holders", "mutant of specs/merge.md (lock)", "one merger", world(mutant(MergeMutation::LockBlindPut))),
        entry("merge/mutant-append-without-scan", planted, lockstep, "the merge commit is appended without looking for one of its TAIL: a crashed merge's commits are merged again", "mutant of specs/merge.md (roll forward)", "exactly once", world(mutant(MergeMutation::AppendWithoutScan))),
        entry("merge/mutant-tail-to-own-cut", planted, lockstep, "TAIL moves to the merger's own cut, not the end of the first commit for its TAIL: commits go behind TAIL unmerged", "mutant of specs/merge.md (roll forward)", "consistent pointers", world(mutant(MergeMutation::TailToOwnCut))),
        entry("merge/mutant-no-recovery", planted, lockstep, "recovery never releases a crashed holder's lock", "mutant of specs/merge.md (recovery)", "crash recovery", world(mutant(MergeMutation::NoRecovery))),
        entry("merge/mutant-blind-unlock", planted, lockstep, "`unlock` after the newest entry, not the holder's own `lock`: a zombie frees the new holder", "mutant of specs/merge.md (unlock)", "zombie cannot complete", world(mutant(MergeMutation::BlindUnlock))),
        entry("merge/mutant-blind-tail-move", planted, lockstep, "TAIL/BASE moved by a blind write: a force-released zombie's late move puts TAIL back behind the new holder's", "mutant of specs/merge.md (TAIL/BASE compare-and-swap)", "consistent pointers", world(mutant(MergeMutation::BlindTailMove))),
        entry("merge/mutant-no-lock-read-back", planted, lockstep, "a `lock` create whose response was lost is taken as not landed: the merger goes on without its lock, and nobody frees it", "mutant of specs/merge.md (ambiguous outcomes)", "no orphan lock", ambiguous_world(mutant(MergeMutation::NoLockReadBack))),
        entry("merge/mutant-skip-conflict-check", planted, lockstep, "merges skip the conflict check: both children's deletes of X are merged", "mutant of specs/merge.md (conflicts)", "conflicts abort", two_children_world(mutant(MergeMutation::SkipConflictCheck))),
        entry("merge/mutant-check-before-append", planted, lockstep, "the conflict check is taken when the cut is read, not against the entries the append follows: the other child's delete slips in between", "mutant of specs/merge.md (conflicts; why only the child is locked)", "conflicts abort", two_children_world(mutant(MergeMutation::CheckBeforeAppend))),
        entry("merge/mutant-lock-never-free", planted, lockstep, "a merger only locks an empty journal: the second merger never merges", "mutant of specs/merge.md (lock)", "every merger merges", world(mutant(MergeMutation::LockNeverFree))),
    ]
}
