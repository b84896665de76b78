//! The catalogue: one named regression per seed bug, and one mutant per property of the fixed
//! protocol. Each entry gives the smallest world that shows the bug (like etcd's robustness
//! `Regression` scenarios), the property it breaks, and, where one world holds several bugs, a
//! filter that asks for the shortest violation *of this bug*. A test runs every entry and asserts
//! that the checker still finds it; `lockstep bugs` prints the counterexamples.

use std::time::{Duration, Instant};

use serde::Serialize;
use stateright::Expectation;

use crate::check::{check, shortest_path, CheckOptions, Protocol, Search, Signature};
use crate::lock::{
    ClientSpec, Head, Hold, LockAction, LockConfig, LockModel, LockState, Mode, Mutation, Phase, Step, Timeout, Variant,
};
use crate::merge::{MergeConfig, MergeModel, MergeMutation, MergeVariant};
use crate::redo::{CStep, RedoAction, RedoConfig, RedoModel, RedoMutation, RedoVariant, RStep};
use crate::trace::Trace;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EntryKind {
    /// A race in the protocol as its origin published it.
    SeedBug,
    /// A defect planted in the fixed protocol, so that a property is shown not to pass vacuously.
    Mutant,
}

/// One catalogued bug.
pub struct Entry {
    pub id: &'static str,
    pub protocol: &'static str,
    pub kind: EntryKind,
    pub title: &'static str,
    /// Where the bug comes from (research note, issue, PR).
    pub source: &'static str,
    pub property: &'static str,
    scenario: Scenario,
}

enum Scenario {
    Lock { config: LockConfig, signature: Option<Signature<LockModel>> },
    Merge { config: MergeConfig },
    Redo { config: RedoConfig, signature: Option<Signature<RedoModel>> },
}

/// What running one entry found.
#[derive(Clone, Debug, Serialize)]
pub struct BugRun {
    pub id: &'static str,
    pub protocol: &'static str,
    pub kind: EntryKind,
    pub title: &'static str,
    pub source: &'static str,
    pub variant: &'static str,
    pub property: &'static str,
    /// `always`: a counterexample was found. `sometimes`: the exhaustive search found no witness.
    pub reproduced: bool,
    /// The search covered every reachable state (so "not reproduced" means "impossible within
    /// the entry's bounds", not "out of budget").
    pub exhaustive: bool,
    /// Steps in the shortest counterexample (0 for a missing `sometimes` witness).
    pub trace_len: usize,
    pub counterexample: Option<Trace>,
    /// For a `sometimes` entry: states explored to show that no witness exists.
    pub unique_states: Option<usize>,
    pub seconds: f64,
}

impl Entry {
    pub fn variant(&self) -> &'static str {
        match &self.scenario {
            Scenario::Lock { config, .. } => config.variant.name(),
            Scenario::Merge { config } => config.variant.name(),
            Scenario::Redo { config, .. } => config.variant.name(),
        }
    }

    /// Runs the entry: a shortest counterexample for an `always` property, an exhaustive search
    /// for a `sometimes` one. `budget` bounds the run.
    pub fn run(&self, budget: Duration) -> BugRun {
        self.run_variant(false, budget)
    }

    /// Runs the entry's world with its protocol's fixed variant (a control: the fixed protocol
    /// must keep the property the entry breaks, in the same world).
    pub fn run_fixed(&self, budget: Duration) -> BugRun {
        self.run_variant(true, budget)
    }

    fn run_variant(&self, fixed: bool, budget: Duration) -> BugRun {
        let started = Instant::now();
        let (found, unique_states, variant) = match &self.scenario {
            Scenario::Lock { config, signature } => {
                let mut config = config.clone();
                if fixed {
                    config.variant = Variant::Fixed(None);
                }
                let name = config.variant.name();
                let model = LockModel::new(config).expect("catalogue configs are valid");
                let (found, states) = run_model(&model, self.property, *signature, budget);
                (found, states, name)
            }
            Scenario::Merge { config } => {
                let mut config = config.clone();
                if fixed {
                    config.variant = MergeVariant::Fixed(None);
                }
                let name = config.variant.name();
                let model = MergeModel::new(config).expect("catalogue configs are valid");
                let (found, states) = run_model(&model, self.property, None, budget);
                (found, states, name)
            }
            Scenario::Redo { config, signature } => {
                let mut config = config.clone();
                if fixed {
                    config.variant = RedoVariant::Fixed(None);
                }
                let name = config.variant.name();
                let model = RedoModel::new(config).expect("catalogue configs are valid");
                let (found, states) = run_model(&model, self.property, *signature, budget);
                (found, states, name)
            }
        };
        let (reproduced, exhaustive, counterexample) = found;
        BugRun {
            id: self.id,
            protocol: self.protocol,
            kind: self.kind,
            title: self.title,
            source: self.source,
            variant,
            property: self.property,
            reproduced,
            exhaustive,
            trace_len: counterexample.as_ref().map_or(0, Trace::len),
            counterexample,
            unique_states,
            seconds: started.elapsed().as_secs_f64(),
        }
    }
}

/// ((reproduced, exhaustive, counterexample), states explored for a `sometimes` property).
type Found = ((bool, bool, Option<Trace>), Option<usize>);

fn run_model<M>(model: &M, property: &str, signature: Option<Signature<M>>, budget: Duration) -> Found
where
    M: Protocol,
    M::State: std::hash::Hash + Clone + PartialEq + std::fmt::Debug + Send + Sync + 'static,
    M::Action: Clone + std::fmt::Debug + PartialEq + Send + Sync + 'static,
{
    let expectation = model
        .properties()
        .into_iter()
        .find(|p| p.name == property)
        .unwrap_or_else(|| panic!("catalogue names an unknown property {property:?}"))
        .expectation;
    match expectation {
        Expectation::Always => match shortest_path(model, property, signature, Some(budget)) {
            Search::Found(path) => ((true, true, Some(model.trace(&path))), None),
            Search::Absent => ((false, true, None), None),
            Search::OutOfBudget => ((false, false, None), None),
        },
        _ => {
            let options = CheckOptions { timeout: Some(budget), ..CheckOptions::default() };
            let report = check(model, &options);
            let missing = report.property(property).is_some_and(|p| p.holds == Some(false));
            ((missing, report.complete, None), Some(report.unique_states))
        }
    }
}

// ----------------------------------------------------------------------------------------------
// Worlds. Paths are indices into the tree: in ["/", "/a", "/a/b", "/c"], `/a` is 1.

const ROOT: u8 = 0;
const A: u8 = 1;

fn client(mode: Mode, timeout: Timeout) -> ClientSpec {
    ClientSpec { timeout, retries: 0, renewals: 0, skew_ticks: 0, mode: Some(mode) }
}

/// A quiet world: no crash, no time, no cleaner, no operator; the entry adds what it needs.
fn world(variant: Variant, tree: &[&str], clients: Vec<ClientSpec>) -> LockConfig {
    LockConfig {
        variant,
        tree: tree.iter().map(|s| s.to_string()).collect(),
        clients,
        crashes: 0,
        ticks: 0,
        lease_ticks: 1,
        reaps: 0,
        force_releases: 0,
        ..LockConfig::new(variant)
    }
}

fn two_points_on_a(variant: Variant) -> LockConfig {
    let point = client(Mode::Point(A), Timeout::Zero);
    world(variant, &["/", "/a"], vec![point, point])
}

/// The phase of the client taking a `Step` action, if the action is one.
fn stepping(state: &LockState, action: &LockAction) -> Option<Phase> {
    match action {
        LockAction::Step(c) => Some(state.clients[*c as usize].phase),
        _ => None,
    }
}

/// An acquirer's blind `rm` of a lock it judged stale, where `what` holds for the lock it removes.
fn rm_stale_of(model: &LockModel, state: &LockState, action: &LockAction, what: fn(&LockModel, &LockState, Head) -> bool) -> bool {
    match stepping(state, action) {
        Some(Phase::Acquiring { step: Step::RmStale(path), .. }) => what(model, state, state.slots[path as usize].head),
        _ => false,
    }
}

fn lock_entries() -> Vec<Entry> {
    let seed = Variant::Seed;
    let mut entries = vec![
        Entry {
            id: "lock/same-path-double-grant",
            protocol: "lock",
            kind: EntryKind::SeedBug,
            title: "two POINT acquirers of one path both succeed: the re-check skips the own path and the write is a blind overwrite",
            source: "research/openviking.md §3 hazard 1 (path_lock.py acquire steps 4-6)",
            property: "mutual exclusion",
            scenario: Scenario::Lock { config: two_points_on_a(seed), signature: None },
        },
        Entry {
            id: "lock/stale-delete-removes-refreshed-lock",
            protocol: "lock",
            kind: EntryKind::SeedBug,
            title: "stale-lock cleanup decides from one read, then deletes blindly: it removes a lock its owner refreshed in between",
            source: "research/openviking.md §3 hazard 2 (_remove_lock_file; Rust issue #4943)",
            property: "aba safety",
            scenario: Scenario::Lock {
                config: LockConfig {
                    ticks: 1,
                    reaps: 1,
                    ..world(seed, &["/", "/a"], vec![ClientSpec { renewals: 1, ..client(Mode::Point(A), Timeout::Zero) }])
                },
                signature: None,
            },
        },
        Entry {
            id: "lock/release-after-steal-deletes-new-owner",
            protocol: "lock",
            kind: EntryKind::SeedBug,
            title: "release is an unconditional rm: after a stale steal, the old holder's release deletes the new owner's lock",
            source: "research/openviking.md §3 hazard 3 (release; #1171 added a still-racy check)",
            property: "aba safety",
            scenario: Scenario::Lock {
                config: LockConfig { ticks: 1, ..two_points_on_a(seed) },
                signature: Some(Signature {
                    step: |_, state, action| matches!(stepping(state, action), Some(Phase::Releasing { .. })),
                    at_end: true,
                }),
            },
        },
        Entry {
            id: "lock/refresh-resurrects-stolen-lock",
            protocol: "lock",
            kind: EntryKind::SeedBug,
            title: "refresh reads, then overwrites: a lock stolen in between is overwritten back to the old holder",
            source: "research/openviking.md §3 hazard 4 (refresh)",
            property: "aba safety",
            scenario: Scenario::Lock {
                config: LockConfig {
                    ticks: 1,
                    clients: vec![ClientSpec { renewals: 1, ..client(Mode::Point(A), Timeout::Zero) }, client(Mode::Point(A), Timeout::Zero)],
                    ..two_points_on_a(seed)
                },
                signature: Some(Signature {
                    step: |_, state, action| matches!(stepping(state, action), Some(Phase::Holding(Hold::Refreshing(_)))),
                    at_end: true,
                }),
            },
        },
        Entry {
            id: "lock/zombie-write-accepted",
            protocol: "lock",
            kind: EntryKind::SeedBug,
            title: "a holder paused past expiry writes after its lock was taken over, and nothing rejects its older token",
            source: "research/openviking.md §1 (no storage write checks the token) and §3 hazard 5",
            property: "fencing",
            scenario: Scenario::Lock { config: LockConfig { ticks: 1, ..two_points_on_a(seed) }, signature: None },
        },
        Entry {
            id: "lock/zero-byte-lock-reads-unlocked",
            protocol: "lock",
            kind: EntryKind::SeedBug,
            title: "a crash in the middle of a lock write leaves a zero-byte file, which reads as no lock while its holder still holds",
            source: "research/openviking.md §3 (a torn write leaves an empty file); OpenViking #4545",
            property: "mutual exclusion",
            scenario: Scenario::Lock {
                config: LockConfig {
                    crashes: 1,
                    clients: vec![ClientSpec { renewals: 1, ..client(Mode::Point(A), Timeout::Zero) }, client(Mode::Point(A), Timeout::Zero)],
                    ..two_points_on_a(seed)
                },
                signature: Some(Signature {
                    step: |model, state, action| rm_stale_of(model, state, action, |_, _, head| matches!(head, Head::Empty { .. })),
                    at_end: false,
                }),
            },
        },
        Entry {
            id: "lock/root-subtree-never-seen",
            protocol: "lock",
            kind: EntryKind::SeedBug,
            title: "the ancestor walk stops below `/`, so a POINT acquirer never sees a SUBTREE lock on the root",
            source: "research/openviking.md §1 conflict rules (`/` itself is never checked)",
            property: "mutual exclusion",
            scenario: Scenario::Lock {
                config: world(seed, &["/", "/a"], vec![client(Mode::Subtree(ROOT), Timeout::Zero), client(Mode::Point(A), Timeout::Zero)]),
                signature: None,
            },
        },
        Entry {
            id: "lock/clock-skew-steals-live-lock",
            protocol: "lock",
            kind: EntryKind::SeedBug,
            title: "staleness compares the writer's wall-clock timestamp with the reader's clock: a reader whose clock runs ahead deletes a live lock",
            source: "research/openviking.md §3 hazard 6 (clocks)",
            property: "mutual exclusion",
            scenario: Scenario::Lock {
                config: LockConfig {
                    clients: vec![client(Mode::Point(A), Timeout::Zero), ClientSpec { skew_ticks: 1, ..client(Mode::Point(A), Timeout::Zero) }],
                    ..two_points_on_a(seed)
                },
                signature: Some(Signature {
                    step: |model, state, action| {
                        rm_stale_of(model, state, action, |model, state, head| matches!(head, Head::Held { tick, .. } if model.live(state, tick)))
                    },
                    at_end: false,
                }),
            },
        },
        Entry {
            id: "lock/mv-opposite-order-deadlock",
            protocol: "lock",
            kind: EntryKind::SeedBug,
            title: "mv takes its two SUBTREE locks in caller order: two opposite moves each hold one and wait for the other forever",
            source: "research/openviking.md §3 hazard 9 (ordering); `lock_timeout=None` from #1151",
            property: "no deadlock",
            scenario: Scenario::Lock {
                config: world(seed, &["/", "/a", "/c"], vec![client(Mode::Mv(1, 2), Timeout::Forever), client(Mode::Mv(2, 1), Timeout::Forever)]),
                signature: None,
            },
        },
        Entry {
            id: "lock/mv-opposite-order-both-time-out",
            protocol: "lock",
            kind: EntryKind::SeedBug,
            title: "with a positive lock_timeout the same two moves both time out, and neither runs",
            source: "research/openviking.md §3 hazard 9 (AB/BA contention bounded only by the timeout)",
            property: "no livelock",
            scenario: Scenario::Lock {
                config: LockConfig {
                    ticks: 1,
                    lease_ticks: 2,
                    ..world(seed, &["/", "/a", "/c"], vec![client(Mode::Mv(1, 2), Timeout::Bounded), client(Mode::Mv(2, 1), Timeout::Bounded)])
                },
                signature: None,
            },
        },
    ];
    entries.extend(lock_mutants());
    entries
}

fn lock_mutants() -> Vec<Entry> {
    let fixed = |m: Mutation| Variant::Fixed(Some(m));
    let point_a = client(Mode::Point(A), Timeout::Forever);
    let two_points = |v: Variant| world(v, &["/", "/a"], vec![point_a, point_a]);
    let every_mode = |v: Variant| LockConfig {
        modes: crate::lock::ModeSet::ALL,
        ..world(v, &["/", "/a", "/c"], vec![ClientSpec { mode: None, ..point_a }; 2])
    };
    let self_conflict = |property: &'static str, id: &'static str| Entry {
        id,
        protocol: "lock",
        kind: EntryKind::Mutant,
        title: "the re-check counts the client's own entry as a conflict, so nothing is ever granted",
        source: "mutant of specs/lock.md step 4",
        property,
        scenario: Scenario::Lock { config: every_mode(fixed(Mutation::DescendantScanIncludesSelf)), signature: None },
    };
    vec![
        Entry {
            id: "lock/mutant-skip-recheck",
            protocol: "lock",
            kind: EntryKind::Mutant,
            title: "without the re-check, a SUBTREE on /a and a POINT on /a/b are both granted",
            source: "mutant of specs/lock.md step 4",
            property: "mutual exclusion",
            scenario: Scenario::Lock {
                config: world(fixed(Mutation::SkipRecheck), &["/", "/a", "/a/b"], vec![client(Mode::Subtree(A), Timeout::Forever), client(Mode::Point(2), Timeout::Forever)]),
                signature: None,
            },
        },
        Entry {
            id: "lock/mutant-wallclock-expiry",
            protocol: "lock",
            kind: EntryKind::Mutant,
            title: "expiry judged by comparing wall clocks: a reader whose clock runs ahead takes over a live lock",
            source: "mutant of specs/lock.md (expiry on the observer's own clock)",
            property: "mutual exclusion",
            scenario: Scenario::Lock {
                config: LockConfig {
                    clients: vec![point_a, ClientSpec { skew_ticks: 1, ..point_a }],
                    ..two_points(fixed(Mutation::WallclockExpiry))
                },
                signature: None,
            },
        },
        Entry {
            id: "lock/mutant-resource-ignores-tokens",
            protocol: "lock",
            kind: EntryKind::Mutant,
            title: "a resource that ignores fencing tokens accepts a zombie's late write",
            source: "mutant of specs/lock.md (fenced resource)",
            property: "fencing",
            scenario: Scenario::Lock { config: LockConfig { ticks: 1, ..two_points(fixed(Mutation::ResourceIgnoresTokens)) }, signature: None },
        },
        Entry {
            id: "lock/mutant-no-ticket-check",
            protocol: "lock",
            kind: EntryKind::Mutant,
            title: "without re-check rule c, an older ticket is granted after a newer one wrote, and the live holder's write is rejected",
            source: "mutant of specs/lock.md step 4c",
            property: "live holder never fenced",
            scenario: Scenario::Lock {
                config: world(fixed(Mutation::NoTicketCheck), &["/", "/a", "/a/b"], vec![client(Mode::Subtree(A), Timeout::Forever), client(Mode::Point(2), Timeout::Forever)]),
                signature: None,
            },
        },
        Entry {
            id: "lock/mutant-blind-release",
            protocol: "lock",
            kind: EntryKind::Mutant,
            title: "a release appended at the journal's end (not right after its own entry) frees the next owner's lock",
            source: "mutant of specs/lock.md (release)",
            property: "aba safety",
            scenario: Scenario::Lock { config: LockConfig { ticks: 1, ..two_points(fixed(Mutation::BlindRelease)) }, signature: None },
        },
        Entry {
            id: "lock/mutant-create-then-write",
            protocol: "lock",
            kind: EntryKind::Mutant,
            title: "an entry created empty and written afterwards: a crash between leaves a zero-byte entry nothing can release (OpenViking #4545)",
            source: "mutant of specs/backends.md (create-if-absent must publish whole entries)",
            property: "no stuck lock",
            scenario: Scenario::Lock {
                config: LockConfig { crashes: 1, ..world(fixed(Mutation::CreateThenWrite), &["/", "/a"], vec![point_a]) },
                signature: None,
            },
        },
        Entry {
            id: "lock/mutant-unsorted-locks-deadlock",
            protocol: "lock",
            kind: EntryKind::Mutant,
            title: "multi-path locks taken in caller order: two opposite moves wait for each other forever",
            source: "mutant of specs/lock.md (locks of one operation in path order)",
            property: "no deadlock",
            scenario: Scenario::Lock {
                config: world(fixed(Mutation::UnsortedLocks), &["/", "/a", "/c"], vec![client(Mode::Mv(1, 2), Timeout::Forever), client(Mode::Mv(2, 1), Timeout::Forever)]),
                signature: None,
            },
        },
        Entry {
            id: "lock/mutant-unsorted-locks-livelock",
            protocol: "lock",
            kind: EntryKind::Mutant,
            title: "the same two moves with a positive timeout: both time out",
            source: "mutant of specs/lock.md (locks of one operation in path order)",
            property: "no livelock",
            scenario: Scenario::Lock {
                config: LockConfig {
                    ticks: 1,
                    lease_ticks: 2,
                    ..world(fixed(Mutation::UnsortedLocks), &["/", "/a", "/c"], vec![client(Mode::Mv(1, 2), Timeout::Bounded), client(Mode::Mv(2, 1), Timeout::Bounded)])
                },
                signature: None,
            },
        },
        self_conflict("point acquired", "lock/mutant-self-conflict-point"),
        self_conflict("subtree acquired", "lock/mutant-self-conflict-subtree"),
        self_conflict("mv acquired", "lock/mutant-self-conflict-mv"),
        self_conflict("contested lock won", "lock/mutant-self-conflict-contest"),
        Entry {
            id: "lock/mutant-no-takeover",
            protocol: "lock",
            kind: EntryKind::Mutant,
            title: "expired locks are never taken over: a crashed holder's lock blocks until recovery",
            source: "mutant of specs/lock.md step 3 (takeover of an expired entry)",
            property: "expired lock taken over",
            scenario: Scenario::Lock { config: LockConfig { ticks: 1, crashes: 1, ..two_points(fixed(Mutation::NoTakeover)) }, signature: None },
        },
    ]
}

fn merge_entries() -> Vec<Entry> {
    let world = |variant: MergeVariant| MergeConfig { variant, ..MergeConfig::new(variant) };
    let quiet = |variant: MergeVariant| MergeConfig { mergers: 2, child_writes: 0, crashes: 0, force_releases: 0, ..MergeConfig::new(variant) };
    let entry = |id, kind, title, source, property, config| Entry { id, protocol: "merge", kind, title, source, property, scenario: Scenario::Merge { config } };
    let mutant = |m: MergeMutation| MergeVariant::Fixed(Some(m));
    vec![
        entry("merge/lockfree-double-merge", EntryKind::SeedBug,
            "without a lock (today's 2021 code), two merges of one child both apply the same commits to the parent",
            "research/zed.md §2 (Branch.Merge races; Log.Commit retries blindly)", "exactly once", quiet(MergeVariant::SeedLockFree)),
        entry("merge/write-lost-behind-tail", EntryKind::SeedBug,
            "a child commit written between the merge's cut and the TAIL move ends up behind TAIL but not in the parent: lost",
            "research/zed.md §2 (merge vs. ingest: TAIL moves to the NOP past the cut)", "consistent pointers",
            MergeConfig { child_writes: 1, ..quiet(MergeVariant::Seed) }),
        entry("merge/head-lag-wedges-lock", EntryKind::SeedBug,
            "a holder crashes between creating `lock` and updating HEAD; everyone reading HEAD sees the old `unlock`, creates at HEAD+1 fail, and recovery cannot see the lock",
            "research/zed.md §1 (HEAD is a hint; the probe is not implemented) and §3 hazard 1", "crash recovery",
            MergeConfig { crashes: 1, ..quiet(MergeVariant::Seed) }),
        entry("merge/crash-before-tail-move-merges-twice", EntryKind::SeedBug,
            "a crash between the parent append and the TAIL/BASE move: recovery frees the lock and the next merge applies the same commits again",
            "research/zed.md §3 hazard 3", "exactly once", MergeConfig { crashes: 1, ..quiet(MergeVariant::Seed) }),
        entry("merge/zombie-unlock-frees-new-holder", EntryKind::SeedBug,
            "a force-released holder that was only slow writes `unlock` at HEAD+1, after the new holder's `lock`, and frees it",
            "research/zed.md §3 hazard 4", "zombie cannot complete", MergeConfig { force_releases: 1, ..quiet(MergeVariant::Seed) }),
        entry("merge/blind-put-lock-excludes-nothing", EntryKind::SeedBug,
            "on a store without create-if-absent (S3 before conditional writes) `lock` is a blind put: two mergers both hold it",
            "research/zed.md §1 (S3 CommitAt falls back to overwrite) and §3 hazard 6", "one merger", quiet(MergeVariant::SeedBlindPut)),
        entry("merge/mutant-lock-blind-put", EntryKind::Mutant, "`lock` by blind put: two holders", "mutant of specs/merge.md (lock)", "one merger", world(mutant(MergeMutation::LockBlindPut))),
        entry("merge/mutant-no-dedupe", EntryKind::Mutant, "readers count repeated merge commits: a zombie's or a retried merge doubles commits", "mutant of specs/merge.md (merge commit key)", "exactly once", world(mutant(MergeMutation::NoDedupe))),
        entry("merge/mutant-tail-to-own-cut", EntryKind::Mutant, "TAIL moves to the merger's own cut, not the end of the first commit for its TAIL: commits go behind TAIL unmerged", "mutant of specs/merge.md (roll forward)", "consistent pointers", world(mutant(MergeMutation::TailToOwnCut))),
        entry("merge/mutant-no-recovery", EntryKind::Mutant, "recovery never releases a crashed holder's lock", "mutant of specs/merge.md (recovery)", "crash recovery", world(mutant(MergeMutation::NoRecovery))),
        entry("merge/mutant-blind-unlock", EntryKind::Mutant, "`unlock` after the newest entry, not the holder's own `lock`: a zombie frees the new holder", "mutant of specs/merge.md (unlock)", "zombie cannot complete", world(mutant(MergeMutation::BlindUnlock))),
        entry("merge/mutant-lock-never-free", EntryKind::Mutant, "a merger only locks an empty journal: the second merger never merges", "mutant of specs/merge.md (lock)", "every merger merges", world(mutant(MergeMutation::LockNeverFree))),
    ]
}

fn redo_entries() -> Vec<Entry> {
    let small = |variant: RedoVariant| RedoConfig { committers: 2, messages: 2, crashes: 1, restarts: 1, ..RedoConfig::new(variant) };
    let entry = |id, kind, title, source, property, config, signature| Entry {
        id,
        protocol: "redo",
        kind,
        title,
        source,
        property,
        scenario: Scenario::Redo { config, signature },
    };
    let mutant = |m: RedoMutation| RedoVariant::Fixed(Some(m));
    let seed = RedoVariant::Seed;
    vec![
        entry("redo/crash-before-marker-loses-phase2", EntryKind::SeedBug,
            "a crash after the messages are emptied and before the redo marker is written loses phase 2 for good: no memories, nothing to replay",
            "research/openviking.md §2 crash windows", "no memory lost", small(seed), None),
        entry("redo/same-archive-index-overwrite", EntryKind::SeedBug,
            "two commits of one session take the same archive index from memory and overwrite each other's archive",
            "research/openviking.md §2 crash windows (Phase 1 has no lock)", "no message lost",
            RedoConfig { crashes: 0, restarts: 0, ..small(seed) }, None),
        entry("redo/replay-writes-memories-twice", EntryKind::SeedBug,
            "a replay re-extracts memories of a commit whose memories were written: new memory ids, duplicates (PR #1508)",
            "research/openviking.md §2 idempotency assumption", "recovery idempotent", small(seed), None),
        entry("redo/replay-of-commit-in-flight", EntryKind::SeedBug,
            "a process that starts replays a commit still in flight in another process: both write its memories",
            "research/openviking.md §2 (markers carry no owner)", "no duplicate memories", small(seed),
            Some(Signature {
                step: |_, state, action| {
                    // Recovery writes memories of an archive whose committer is still alive.
                    let RedoAction::Recovery = action else { return false };
                    let RStep::Replay { index, stage: 1 } = state.recovery else { return false };
                    state.committers.iter().any(|c| c.index == index && !matches!(c.step, CStep::Crashed | CStep::Done | CStep::Load))
                },
                at_end: false,
            })),
        entry("redo/unreadable-marker-dropped", EntryKind::SeedBug,
            "a marker torn by a crash reads as {} and recovery deletes it without replay: that commit's phase 2 is lost",
            "research/openviking.md §2 recovery (an unreadable or empty marker is deleted)", "no memory lost", small(seed),
            Some(Signature {
                step: |_, state, action| {
                    matches!(action, RedoAction::Recovery)
                        && matches!(state.recovery, RStep::Replay { index, .. } if state.markers[index as usize] == crate::redo::Marker::Torn)
                },
                at_end: true,
            })),
        entry("redo/replay-enqueues-twice", EntryKind::SeedBug,
            "every replay enqueues semantic work again, and each delivery applies its effect",
            "research/openviking.md §2 recovery (always enqueues)", "effect applied once", small(seed), None),
        entry("redo/mutant-no-session-lock", EntryKind::Mutant, "phase 1 without the session lock: two committers archive the same messages", "mutant of specs/redo.md (session lock)", "no duplicate archive", RedoConfig::new(mutant(RedoMutation::NoSessionLock)), None),
        entry("redo/mutant-index-from-memory", EntryKind::Mutant, "the archive index from memory, written by overwrite: a stale index overwrites an archive", "mutant of specs/redo.md (archive claim)", "no message lost", RedoConfig::new(mutant(RedoMutation::IndexFromMemory)), None),
        entry("redo/mutant-clear-all", EntryKind::Mutant, "clearing drops every live message, not only the archived ones", "mutant of specs/redo.md (clear)", "no message lost", RedoConfig::new(mutant(RedoMutation::ClearAll)), None),
        entry("redo/mutant-marker-after-clear", EntryKind::Mutant, "the redo record written after the clear: a crash between loses phase 2", "mutant of specs/redo.md (record first)", "no memory lost", RedoConfig::new(mutant(RedoMutation::MarkerAfterClear)), None),
        entry("redo/mutant-fresh-memory-ids", EntryKind::Mutant, "memory ids minted per extraction: a replay duplicates memories", "mutant of specs/redo.md (keyed memories)", "no duplicate memories", RedoConfig::new(mutant(RedoMutation::FreshMemoryIds)), None),
        entry("redo/mutant-fresh-memory-ids-replay", EntryKind::Mutant, "the same mutant seen as a non-idempotent replay", "mutant of specs/redo.md (keyed memories)", "recovery idempotent", RedoConfig::new(mutant(RedoMutation::FreshMemoryIds)), None),
        entry("redo/mutant-effect-not-keyed", EntryKind::Mutant, "the semantic effect applied without its key: a re-delivery applies it twice", "mutant of specs/redo.md (keyed effects)", "effect applied once", RedoConfig::new(mutant(RedoMutation::EffectNotKeyed)), None),
        entry("redo/mutant-ack-before-apply", EntryKind::Mutant, "the worker acks before applying: a crash between loses the item", "mutant of specs/redo.md (ack after apply)", "delivered at least once", RedoConfig::new(mutant(RedoMutation::AckBeforeApply)), None),
        entry("redo/mutant-keep-marker", EntryKind::Mutant, "recovery never marks a replayed commit done", "mutant of specs/redo.md (recovery)", "every marker deleted", RedoConfig::new(mutant(RedoMutation::KeepMarker)), None),
        entry("redo/mutant-no-replay", EntryKind::Mutant, "recovery drops redo records without replaying them", "mutant of specs/redo.md (recovery)", "a crashed commit is replayed", RedoConfig::new(mutant(RedoMutation::NoReplay)), None),
    ]
}

/// Every catalogued entry, seed bugs first within each protocol.
pub fn catalogue() -> Vec<Entry> {
    let mut all = lock_entries();
    all.extend(merge_entries());
    all.extend(redo_entries());
    all
}

/// Entries of one protocol (`lock`, `merge`, `redo`), or all for `None`.
pub fn entries(protocol: Option<&str>) -> Vec<Entry> {
    catalogue().into_iter().filter(|e| protocol.is_none_or(|p| e.protocol == p)).collect()
}
