//! The path-lock catalogue: OpenViking's published races (seed bugs), the flaws the checker found
//! in lockstep's own earlier protocols (regressions), and one realistic defect per property of the
//! fixed protocol (mutants). Each entry is the smallest world that shows its bug.
//!
//! Paths are indices into the entry's tree: in `["/", "/a", "/a/b", "/c"]`, `/a` is 1.

use crate::catalogue::{Basis, Entry, EntryKind, World};
use crate::check::Signature;

use super::{
    ClientSpec, Head, Hold, LockAction, LockConfig, LockModel, LockState, Mode, ModeSet, Mutation,
    Phase, Step, Timeout, Variant,
};

const ROOT: u8 = 0;
const A: u8 = 1;

/// The published code the seed entries are held to.
const PR_431: &str = "OpenViking PR 431, path_lock.py (unchanged in openviking 0.2.11 on PyPI)";

fn client(mode: Mode, timeout: Timeout) -> ClientSpec {
    ClientSpec {
        timeout,
        retries: 0,
        renewals: 0,
        skew_ticks: 0,
        mode: Some(mode),
    }
}

/// A quiet world: no crash, no time, no cleaner, no operator, no fault; the entry adds what it
/// needs.
/// Three clients, each POINT on `/` or `/a`, and one run of the offline collector.
fn gc_world(variant: Variant) -> LockConfig {
    let any_point = ClientSpec {
        mode: None,
        ..client(Mode::Point(A), Timeout::Forever)
    };
    LockConfig {
        modes: ModeSet {
            point: true,
            subtree: false,
            mv: false,
        },
        collections: 1,
        ..world(variant, &["/", "/a"], vec![any_point; 3])
    }
    .with_renewals(0)
}

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
        faults: 0,
        ..LockConfig::new(variant)
    }
}

fn two_points_on_a(variant: Variant, timeout: Timeout) -> LockConfig {
    let point = client(Mode::Point(A), timeout);
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
fn rm_stale_of(
    model: &LockModel,
    state: &LockState,
    action: &LockAction,
    what: fn(&LockModel, &LockState, Head) -> bool,
) -> bool {
    match stepping(state, action) {
        Some(Phase::Acquiring {
            step: Step::RmStale(path),
            ..
        }) => what(model, state, state.slots[path as usize].head),
        _ => false,
    }
}

struct Spec {
    id: &'static str,
    kind: EntryKind,
    basis: Basis,
    title: &'static str,
    source: &'static str,
    property: &'static str,
    needs: Option<&'static str>,
    config: LockConfig,
    signature: Option<Signature<LockModel>>,
}

impl Spec {
    fn entry(self) -> Entry {
        let mut control = self.config.clone();
        control.variant = Variant::Fixed(None);
        let model = LockModel::new(self.config).expect("catalogue worlds are valid");
        let control = LockModel::new(control).expect("catalogue worlds are valid");
        Entry {
            id: self.id,
            protocol: "lock",
            kind: self.kind,
            basis: self.basis,
            title: self.title,
            source: self.source,
            property: self.property,
            needs: self.needs,
            scenario: Box::new(World {
                model,
                control,
                signature: self.signature,
            }),
        }
    }
}

pub fn entries() -> Vec<Entry> {
    let mut specs = seed_bugs();
    specs.extend(regressions());
    specs.extend(mutants());
    specs.into_iter().map(Spec::entry).collect()
}

fn seed_bug(
    id: &'static str,
    title: &'static str,
    property: &'static str,
    config: LockConfig,
) -> Spec {
    Spec {
        id,
        kind: EntryKind::SeedBug,
        basis: Basis::ShippedCode,
        title,
        source: PR_431,
        property,
        needs: None,
        config,
        signature: None,
    }
}

fn seed_bugs() -> Vec<Spec> {
    let seed = Variant::Seed;
    let refreshing = |timeout| ClientSpec {
        renewals: 1,
        ..client(Mode::Point(A), timeout)
    };
    vec![
        seed_bug(
            "lock/same-path-double-grant",
            "two POINT acquirers of one path both succeed: the re-check skips the own path and the write is a blind overwrite",
            "mutual exclusion",
            two_points_on_a(seed, Timeout::Zero),
        ),
        Spec {
            signature: Some(Signature {
                step: |model, state, action| {
                    rm_stale_of(model, state, action, |model, state, head| matches!(head, Head::Held { tick, .. } if model.live(state, tick)))
                },
                at_end: true,
            }),
            ..seed_bug(
                "lock/stale-delete-removes-refreshed-lock",
                "an acquirer judges a lock stale from one read and deletes it blindly: it removes the lock its owner refreshed in between",
                "aba safety",
                LockConfig {
                    ticks: 1,
                    clients: vec![refreshing(Timeout::Zero), client(Mode::Point(A), Timeout::Zero)],
                    ..two_points_on_a(seed, Timeout::Zero)
                },
            )
        },
        Spec {
            signature: Some(Signature {
                step: |_, state, action| matches!(stepping(state, action), Some(Phase::Releasing { .. })),
                at_end: true,
            }),
            ..seed_bug(
                "lock/release-after-steal-deletes-new-owner",
                "release is an unconditional rm: after a stale steal, the old holder's release deletes the new owner's lock",
                "aba safety",
                LockConfig { ticks: 1, ..two_points_on_a(seed, Timeout::Zero) },
            )
        },
        Spec {
            signature: Some(Signature {
                step: |_, state, action| matches!(stepping(state, action), Some(Phase::Holding(Hold::Refreshing(_)))),
                at_end: true,
            }),
            ..seed_bug(
                "lock/refresh-resurrects-stolen-lock",
                "refresh reads, then overwrites: a lock stolen in between is overwritten back to the old holder",
                "aba safety",
                LockConfig {
                    ticks: 1,
                    clients: vec![refreshing(Timeout::Zero), client(Mode::Point(A), Timeout::Zero)],
                    ..two_points_on_a(seed, Timeout::Zero)
                },
            )
        },
        seed_bug(
            "lock/zombie-write-accepted",
            "a holder paused past expiry writes after its lock was taken over, and nothing rejects its older token",
            "fencing",
            LockConfig { ticks: 1, ..two_points_on_a(seed, Timeout::Zero) },
        ),
        Spec {
            source: "OpenViking PR 431 path_lock.py (_read_token returns None for an empty file); OpenViking #4545",
            signature: Some(Signature {
                step: |_, state, action| {
                    // An acquirer reads the zero-byte file as "no lock".
                    let LockAction::Step(c) = action else { return false };
                    let me = &state.clients[*c as usize];
                    matches!(me.phase, Phase::Acquiring { step: Step::CheckSame, .. })
                        && state.slots.iter().any(|slot| matches!(slot.head, Head::Empty { .. }))
                },
                at_end: false,
            }),
            ..seed_bug(
                "lock/zero-byte-lock-reads-unlocked",
                "a storage crash tears the holder's refresh and leaves a zero-byte lock file, which the next acquirer reads as no lock and overwrites while the holder still holds",
                "mutual exclusion",
                LockConfig {
                    crashes: 1,
                    clients: vec![refreshing(Timeout::Zero), client(Mode::Point(A), Timeout::Zero)],
                    ..two_points_on_a(seed, Timeout::Zero)
                },
            )
        },
        Spec {
            needs: Some("a root that can be locked: on OpenViking's AGFS `/` is a mount table, writing /.path.ovlock fails, and the seed refuses the lock"),
            ..seed_bug(
                "lock/root-subtree-never-seen",
                "the ancestor walk stops below `/`, so a POINT acquirer never sees a SUBTREE lock on the root",
                "mutual exclusion",
                world(seed, &["/", "/a"], vec![client(Mode::Subtree(ROOT), Timeout::Zero), client(Mode::Point(A), Timeout::Zero)]),
            )
        },
        Spec {
            signature: Some(Signature {
                step: |model, state, action| {
                    rm_stale_of(model, state, action, |model, state, head| matches!(head, Head::Held { tick, .. } if model.live(state, tick)))
                },
                at_end: false,
            }),
            ..seed_bug(
                "lock/clock-skew-steals-live-lock",
                "staleness compares the writer's wall-clock timestamp with the reader's clock: a reader whose clock runs ahead deletes a live lock",
                "mutual exclusion",
                LockConfig {
                    clients: vec![client(Mode::Point(A), Timeout::Zero), ClientSpec { skew_ticks: 1, ..client(Mode::Point(A), Timeout::Zero) }],
                    ..two_points_on_a(seed, Timeout::Zero)
                },
            )
        },
        Spec {
            needs: Some("a lock_timeout that never expires: PR 431 accepted float('inf'); None came with OpenViking #1151"),
            ..seed_bug(
                "lock/mv-opposite-order-deadlock",
                "mv takes its two SUBTREE locks in caller order: two opposite moves each hold one and wait for the other forever",
                "no deadlock",
                world(seed, &["/", "/a", "/c"], vec![client(Mode::Mv(1, 2), Timeout::Forever), client(Mode::Mv(2, 1), Timeout::Forever)]),
            )
        },
        Spec {
            needs: Some("a positive lock_timeout"),
            ..seed_bug(
                "lock/mv-opposite-order-both-time-out",
                "with a positive lock_timeout the same two moves wait for each other in a cycle until both time out, however long the timeout",
                "no wait cycle",
                LockConfig {
                    ticks: 1,
                    lease_ticks: 2,
                    ..world(seed, &["/", "/a", "/c"], vec![client(Mode::Mv(1, 2), Timeout::Bounded), client(Mode::Mv(2, 1), Timeout::Bounded)])
                },
            )
        },
        Spec {
            source: "OpenViking PR 431 path_lock.py (_read_token: `except Exception: return None`)",
            signature: Some(Signature { step: |_, _, action| matches!(action, LockAction::Fail(_)), at_end: false }),
            needs: Some("a transient read error (one store fault)"),
            ..seed_bug(
                "lock/fail-open-read-double-grant",
                "a transient read error on a held lock reads as no lock, so a second acquirer overwrites it and both hold",
                "mutual exclusion",
                LockConfig { faults: 1, ..two_points_on_a(seed, Timeout::Zero) },
            )
        },
        Spec {
            source: "OpenViking PR 431 path_lock.py (a failed _remove_lock_file is ignored; the loop `continue`s)",
            needs: Some("a stale lock this acquirer cannot remove (another user's file, a read-only directory)"),
            ..seed_bug(
                "lock/unremovable-stale-lock-spins",
                "a stale lock that cannot be removed makes a lock_timeout=0 acquisition spin: the stale branch retries at once, with no sleep and no deadline check",
                "bounded retries",
                LockConfig {
                    ticks: 1,
                    stale_unremovable: true,
                    // A budget of one retry: the spin shows as two failed removals.
                    clients: vec![ClientSpec { retries: 1, ..client(Mode::Point(A), Timeout::Zero) }; 2],
                    ..two_points_on_a(seed, Timeout::Zero)
                },
            )
        },
    ]
}

fn regression(
    id: &'static str,
    mutation: Mutation,
    title: &'static str,
    source: &'static str,
    property: &'static str,
    config: LockConfig,
) -> Spec {
    Spec {
        id,
        kind: EntryKind::Regression,
        basis: Basis::Lockstep,
        title,
        source,
        property,
        needs: None,
        config: LockConfig {
            variant: Variant::Fixed(Some(mutation)),
            ..config
        },
        signature: None,
    }
}

fn regressions() -> Vec<Spec> {
    let any = |timeout| ClientSpec {
        mode: None,
        ..client(Mode::Point(0), timeout)
    };
    let three_any = |variant| LockConfig {
        modes: ModeSet {
            point: true,
            subtree: true,
            mv: false,
        },
        ..world(variant, &["/", "/a"], vec![any(Timeout::Forever); 3])
    };
    let mv_against_root = |timeout| {
        vec![
            client(Mode::Subtree(ROOT), timeout),
            ClientSpec {
                retries: 1,
                ..client(Mode::Mv(1, 2), timeout)
            },
        ]
    };
    let old = Variant::Fixed(Some(Mutation::NoHighWater));
    vec![
        regression(
            "lock/old-fixed-later-entry-hides-grant",
            Mutation::NoHighWater,
            "our protocol before high-water marks: a re-check read only the newest entry, a non-conflicting POINT hid a released SUBTREE grant with a larger ticket, and the live holder's write was rejected",
            "found by `lockstep check lock --clients 3`; specs/lock.md §4 rule c",
            "live holder never fenced",
            three_any(old),
        ),
        Spec {
            signature: Some(Signature {
                step: |model, state, action| {
                    // A re-check reads a `withdraw` as the newest entry of the path.
                    let LockAction::Step(c) = action else { return false };
                    let me = &state.clients[*c as usize];
                    let Phase::Acquiring { lock, step: Step::Recheck(j) } = me.phase else { return false };
                    let path = model.plan(state, *c as usize, lock).re[j as usize].path;
                    matches!(state.slots[path as usize].head, Head::Withdrawn { .. })
                },
                at_end: false,
            }),
            ..regression(
                "lock/old-fixed-withdraw-hides-release",
                Mutation::NoHighWater,
                "the same flaw through a withdraw: a contender's withdraw hid an earlier release with a larger ticket, and the live holder's write was rejected",
                "found by `lockstep check lock --clients 3`; specs/lock.md §4 rule c",
                "live holder never fenced",
                three_any(old),
            )
        },
        regression(
            "lock/old-fixed-mv-waits-for-older-contender",
            Mutation::NoWaitDie,
            "our protocol before wait-die: an mv holding its first lock waited for an older SUBTREE contender that was waiting (rule a) for that very lock; only a lease expiry ended it",
            "found by the `no wait cycle` property; specs/lock.md §4 wait-die",
            "no wait cycle",
            world(Variant::Fixed(None), &["/", "/a", "/c"], mv_against_root(Timeout::Forever)),
        ),
        regression(
            "lock/old-fixed-backoff-release-livelock",
            Mutation::ReleaseUnused,
            "our protocol before unused locks were withdrawn: a backed-off mv released its unused first lock, the release raised the high-water mark above the older contender's ticket, and both gave up",
            "found by `lockstep check lock --tree /,/a,/c --timeout bounded`; specs/lock.md §4",
            "no livelock",
            world(Variant::Fixed(None), &["/", "/a", "/c"], mv_against_root(Timeout::Forever)),
        ),
        regression(
            "lock/old-fixed-expired-entry-renewed",
            Mutation::IgnoreExpired,
            "our first draft passed an expired entry on another path without releasing it in storage: its paused holder renewed it back to life, and both held",
            "found by `lockstep check lock` in the first draft; specs/lock.md §5, reap before ignoring",
            "mutual exclusion",
            LockConfig {
                ticks: 1,
                clients: vec![ClientSpec { renewals: 1, ..client(Mode::Subtree(A), Timeout::Forever) }, client(Mode::Point(2), Timeout::Forever)],
                ..world(Variant::Fixed(None), &["/", "/a", "/a/b"], vec![])
            },
        ),
    ]
}

fn mutant(
    id: &'static str,
    mutation: Mutation,
    title: &'static str,
    property: &'static str,
    config: LockConfig,
) -> Spec {
    Spec {
        id,
        kind: EntryKind::Mutant,
        basis: Basis::Lockstep,
        title,
        source: "mutant of specs/lock.md",
        property,
        needs: None,
        config: LockConfig {
            variant: Variant::Fixed(Some(mutation)),
            ..config
        },
        signature: None,
    }
}

fn mutants() -> Vec<Spec> {
    let fixed = Variant::Fixed(None);
    let point_a = client(Mode::Point(A), Timeout::Forever);
    let two_points = world(fixed, &["/", "/a"], vec![point_a, point_a]);
    let every_mode = LockConfig {
        modes: ModeSet::ALL,
        ..world(
            fixed,
            &["/", "/a", "/c"],
            vec![
                ClientSpec {
                    mode: None,
                    ..point_a
                };
                2
            ],
        )
    };
    let subtree_over_point = world(
        fixed,
        &["/", "/a", "/a/b"],
        vec![
            client(Mode::Subtree(A), Timeout::Forever),
            client(Mode::Point(2), Timeout::Forever),
        ],
    );
    vec![
        mutant("lock/mutant-skip-recheck", Mutation::SkipRecheck, "without the re-check, a SUBTREE on /a and a POINT on /a/b are both granted", "mutual exclusion", subtree_over_point.clone()),
        mutant(
            "lock/mutant-wallclock-expiry",
            Mutation::WallclockExpiry,
            "expiry judged by comparing wall clocks: a reader whose clock runs ahead takes over a live lock",
            "mutual exclusion",
            LockConfig { clients: vec![point_a, ClientSpec { skew_ticks: 1, ..point_a }], ..two_points.clone() },
        ),
        mutant(
            "lock/mutant-fail-open-read",
            Mutation::FailOpenRead,
            "a read error taken for an empty journal: a second acquirer creates over a live lock and both hold",
            "mutual exclusion",
            LockConfig { faults: 1, ..subtree_over_point.clone() },
        ),
        mutant(
            "lock/mutant-resource-ignores-tokens",
            Mutation::ResourceIgnoresTokens,
            "a resource that ignores fencing tokens accepts a zombie's late write",
            "fencing",
            LockConfig { ticks: 1, ..two_points.clone() },
        ),
        mutant(
            "lock/mutant-resource-ignores-tokens-witness",
            Mutation::ResourceIgnoresTokens,
            "the same resource never rejects anything: fencing is never seen to work",
            "stale write rejected",
            LockConfig { ticks: 1, ..two_points.clone() },
        ),
        mutant(
            "lock/mutant-no-ticket-check",
            Mutation::NoTicketCheck,
            "without re-check rule c, an older ticket is granted after a newer one wrote, and the live holder's write is rejected",
            "live holder never fenced",
            subtree_over_point.clone(),
        ),
        mutant(
            "lock/mutant-blind-release",
            Mutation::BlindRelease,
            "a release appended at the journal's end (not right after its own entry) frees the next owner's lock",
            "aba safety",
            LockConfig { ticks: 1, ..two_points.clone() },
        ),
        mutant(
            "lock/mutant-blind-withdraw",
            Mutation::BlindWithdraw,
            "after a create error the acquirer withdraws at the next index unchecked: its create had not landed, and its withdraw frees the other client's lock",
            "aba safety",
            LockConfig { faults: 1, ..two_points.clone() },
        ),
        mutant(
            "lock/mutant-create-then-write",
            Mutation::CreateThenWrite,
            "an entry created empty and written afterwards: a crash between leaves a zero-byte entry nothing can release (OpenViking #4545)",
            "no stuck lock",
            LockConfig { crashes: 1, ..world(fixed, &["/", "/a"], vec![point_a]) },
        ),
        mutant(
            "lock/mutant-entry-bytes-not-synced",
            Mutation::EntryBytesNotSynced,
            "a lock entry linked before its bytes are synced: the power fails, the entry's name survives without its bytes, and the zero-byte entry can be neither attributed, expired nor released",
            "no stuck lock",
            LockConfig { power_losses: 1, crashes: 0, ..world(fixed, &["/", "/a"], vec![point_a]) },
        ),
        mutant(
            "lock/mutant-ticket-not-synced",
            Mutation::TicketNotSynced,
            "a ticket whose name is not synced: the power fails after a write with token 2, the tickets and the unsynced journal are lost, and the restarted client's token 1 is rejected although its lock is live",
            "live holder never fenced",
            LockConfig { power_losses: 1, crashes: 0, ..two_points.clone() },
        ),
        mutant(
            "lock/mutant-wait-for-empty-deadlock",
            Mutation::WaitForEmpty,
            "the same waiter waits forever: nothing can happen any more, and it never finishes",
            "no deadlock",
            two_points.clone(),
        ),
        mutant(
            "lock/mutant-hint-only-deadlock",
            Mutation::HintOnly,
            "a waiter trusts the wake-up hint and never polls: the hint of the holder's release is lost, and the waiter sleeps forever on a free lock",
            "no deadlock",
            two_points.clone(),
        ),
        mutant(
            "lock/mutant-kept-ticket-unchecked",
            Mutation::KeptTicketUnchecked,
            "a waiter claims its ticket before it sleeps and uses it unchecked after the wait: another client was granted meanwhile with a larger ticket and wrote with it, so the waiter's smaller token is rejected although its lock is live",
            "live holder never fenced",
            world(fixed, &["/", "/a"], vec![point_a; 3]),
        ),
        mutant(
            "lock/mutant-both-withdraw",
            Mutation::BothWithdraw,
            "both contenders withdraw when they meet (every contender rolls back, as OpenViking #3602 does): with bounded retries neither ever wins",
            "no livelock",
            LockConfig {
                clients: vec![ClientSpec { retries: 1, ..client(Mode::Subtree(A), Timeout::Forever) }, ClientSpec { retries: 1, ..client(Mode::Point(2), Timeout::Forever) }],
                ..subtree_over_point.clone()
            },
        ),
        mutant(
            "lock/mutant-uncounted-restart",
            Mutation::UncountedRestart,
            "a create that lost the race starts over without spending a retry, even where it meant to supersede an expired lock and lost to that holder's release (the loop behind 10,000 tickets claimed by one lockstep lock --timeout 0)",
            "bounded retries",
            LockConfig {
                ticks: 1,
                ..world(fixed, &["/", "/a"], vec![client(Mode::Point(A), Timeout::Zero), client(Mode::Point(A), Timeout::Zero)])
            },
        ),
        mutant(
            "lock/mutant-gc-while-active",
            Mutation::GcWhileActive,
            "the offline collector runs while a client is between its ticket and its entry: it deletes a release that carried a newer ticket, the client is granted with its older one, and its write is rejected",
            "live holder never fenced",
            gc_world(Variant::Fixed(Some(Mutation::GcWhileActive))),
        ),
        mutant(
            "lock/mutant-gc-resets-tickets",
            Mutation::GcResetsTickets,
            "the offline collector deletes the ticket journal too: the next grant's token restarts below the one the resource accepted, and a live holder's write is rejected",
            "live holder never fenced",
            gc_world(Variant::Fixed(Some(Mutation::GcResetsTickets))),
        ),
        mutant(
            "lock/mutant-wait-for-empty",
            Mutation::WaitForEmpty,
            "a waiter resumes only when the journal it waits on is empty, which never happens: no contested lock is ever won",
            "contested lock won",
            two_points.clone(),
        ),
        mutant(
            "lock/mutant-no-takeover",
            Mutation::NoTakeover,
            "expired locks are never taken over: a crashed holder's lock blocks until recovery",
            "expired lock taken over",
            LockConfig { ticks: 1, crashes: 1, ..two_points.clone() },
        ),
        mutant(
            "lock/mutant-point-verify-by-ticket",
            Mutation::PointVerifyByTicket,
            "POINT re-reads its own journal and judges its own entry by the ticket rule: it always backs off, and no POINT lock is ever granted",
            "point acquired",
            every_mode.clone(),
        ),
        mutant(
            "lock/mutant-descendant-scan-includes-self-subtree",
            Mutation::DescendantScanIncludesSelf,
            "a SUBTREE's scan below its path lists its own journal and takes its own entry for a rival: no SUBTREE lock is ever granted",
            "subtree acquired",
            every_mode.clone(),
        ),
        mutant(
            "lock/mutant-descendant-scan-includes-self-mv",
            Mutation::DescendantScanIncludesSelf,
            "the same scan in mv's SUBTREE locks: no mv is ever granted",
            "mv acquired",
            every_mode,
        ),
    ]
}
