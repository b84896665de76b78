//! Path locks with clients interleaved *inside* their acquisitions (the gate of
//! `lockstep_tests::gate`): every create of every client waits until the driver lets it through,
//! in an order proptest chooses, so one client's create can land between another's read and its
//! create, as in the model's counterexamples. The refinement harness (lock_conformance.rs) runs
//! each `lock()` to completion and cannot reach these races.
//!
//! Two or three clients, each with a LockManager over the same MemStore and an operation of one
//! or two locks, take their locks twice, waiting as long as it takes (logical time: tokio's
//! paused clock). Checked, as the model's properties:
//! - mutual exclusion: no two clients hold conflicting locks at once;
//! - live holder never fenced: a holder's write with each of its tokens (to `FencedLog`, through
//!   the gate too) is accepted;
//! - no wait cycle: the clients finish; no grant or release for 2 minutes of logical time while
//!   some have not is a wait cycle.
//!
//! The acquisition mutants that need an interleaving are caught here by name, each with a clean
//! control over the very same cases: `skip-recheck` and `no-wait-die` by random interleavings of
//! creates; `no-high-water`, `kept-ticket-unchecked` and `kept-ticket-own-kind-mark` by the
//! model's counterexamples replayed one storage operation at a time (reads gated too), which
//! random interleavings of creates cannot reach. `wait-reference-own-read` by one fixed schedule
//! (`a_grant_between_the_read_and_the_wait_goes_through_wait_die`) that pauses a client at one
//! create (`lockstep_tests::scripted`) rather than at the gate, with a real-time `lock_timeout`.
//! Cases: `PROPTEST_CASES` (default 256).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use lockstep::lock::{FencedLog, LockKind, LockManager, LockOptions, LockPath, Operation};
use lockstep::mutants::{activate, Mutant};
use lockstep::store::{MemStore, Store};
use lockstep_tests::gate::{drive, Gate};
use lockstep_tests::replay;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

/// The operations a client may run: (path, 'S' or 'P') locks. The two-lock ones are `mv`s in
/// both directions, as in the model's wait-cycle counterexamples.
const OPERATIONS: [&[(&str, char)]; 8] = [
    &[("/", 'S')],
    &[("/a", 'S')],
    &[("/a", 'P')],
    &[("/a/b", 'P')],
    &[("/c", 'S')],
    &[("/a", 'S'), ("/c", 'S')],
    &[("/c", 'S'), ("/a/b", 'S')],
    &[("/a/b", 'S'), ("/c", 'P')],
];

fn conflicts(a: (&str, char), b: (&str, char)) -> bool {
    let below = |ancestor: &str, path: &str| {
        (ancestor == "/" && path != "/") || path.starts_with(&format!("{ancestor}/"))
    };
    a.0 == b.0 || (a.1 == 'S' && below(a.0, b.0)) || (b.1 == 'S' && below(b.0, a.0))
}

fn operation(locks: &[(&str, char)]) -> Operation {
    Operation::from_locks(
        locks
            .iter()
            .map(|(p, k)| {
                let kind = if *k == 'S' {
                    LockKind::Subtree
                } else {
                    LockKind::Point
                };
                (LockPath::new(p).unwrap(), kind)
            })
            .collect(),
    )
}

/// What every case exercised, summed (the test asserts minimums).
static CONTESTED: AtomicUsize = AtomicUsize::new(0);
static GRANTS: AtomicUsize = AtomicUsize::new(0);
static GAVE_UP: AtomicUsize = AtomicUsize::new(0);

/// One case: the clients' operations and the driver's choices at the gate.
fn run_case(operations: &[u8], choices: &[u8]) -> Result<(), String> {
    run_world(operations, Gate::new(), &[], choices)
}

/// The clients run `operations` over `gate`: first `script` (each step runs a client up to and
/// including its next create with that key prefix), then the driver's `choices`.
fn run_world(
    operations: &[u8],
    gate: Arc<Gate>,
    script: &[(usize, &str)],
    choices: &[u8],
) -> Result<(), String> {
    paused_runtime().block_on(async {
        let shared: Arc<dyn Store> = Arc::new(MemStore::new());
        let holders: Arc<Mutex<Vec<(usize, &'static [(&'static str, char)])>>> = Arc::default();
        let violations: Arc<Mutex<Vec<String>>> = Arc::default();
        let done = Arc::new(AtomicUsize::new(0));
        let progress = Arc::new(AtomicUsize::new(0));
        for (client, &op) in operations.iter().enumerate() {
            let locks = OPERATIONS[op as usize];
            let store = gate.store(Arc::clone(&shared), client);
            let (holders, violations, done, progress) =
                (Arc::clone(&holders), Arc::clone(&violations), Arc::clone(&done), Arc::clone(&progress));
            tokio::spawn(async move {
                let options = LockOptions { timeout: None, cleanup_every: None, ..LockOptions::default() };
                let log = FencedLog::new(store.clone());
                let manager = LockManager::start(store, options).await.unwrap();
                for _round in 0..2 {
                    let guard = match manager.lock(operation(locks)).await {
                        Ok(guard) => guard,
                        Err(lockstep::lock::LockError::RetriesExhausted { .. }) => {
                            GAVE_UP.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        Err(other) => {
                            violations.lock().unwrap().push(format!("c{client}: {other}"));
                            break;
                        }
                    };
                    GRANTS.fetch_add(1, Ordering::Relaxed);
                    progress.fetch_add(1, Ordering::SeqCst);
                    {
                        let mut held = holders.lock().unwrap();
                        for (other, theirs) in held.iter() {
                            if locks.iter().any(|a| theirs.iter().any(|b| conflicts(*a, *b))) {
                                violations.lock().unwrap().push(format!(
                                    "mutual exclusion: c{client} {locks:?} and c{other} {theirs:?} hold at once"
                                ));
                            }
                        }
                        held.push((client, locks));
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    for (path, kind, token) in guard.tokens() {
                        match log.append_as(&path, kind, token, "guarded write").await {
                            Ok(Ok(_)) => {}
                            Ok(Err(fenced)) if guard.check().is_ok() => violations.lock().unwrap().push(format!(
                                "live holder never fenced: c{client}'s write with a live lease was rejected: {fenced}"
                            )),
                            Ok(Err(_)) => {}
                            Err(error) => violations.lock().unwrap().push(format!("c{client}: write: {error}")),
                        }
                    }
                    holders.lock().unwrap().retain(|(c, _)| *c != client);
                    let _ = guard.release().await;
                    progress.fetch_add(1, Ordering::SeqCst);
                }
                manager.shutdown().await;
                done.fetch_add(1, Ordering::SeqCst);
            });
        }
        for (client, prefix) in script {
            gate.advance(*client, prefix).await.map_err(|e| format!("the script no longer fits: {e}"))?;
        }
        let clients = operations.len();
        let outcome = drive(
            &gate,
            choices,
            Duration::from_secs(120),
            || done.load(Ordering::SeqCst) == clients || !violations.lock().unwrap().is_empty(),
            || progress.load(Ordering::SeqCst),
        )
        .await;
        CONTESTED.fetch_add(gate.contested(), Ordering::Relaxed);
        if let Some(violation) = violations.lock().unwrap().first() {
            return Err(violation.clone());
        }
        outcome
    })
}

/// A runtime on tokio's paused clock: logical time, which runs ahead whenever every task waits.
fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}

/// Random operations for two or three clients, or the given ones; the driver's choices.
fn case_strategy(world: Option<&'static [u8]>) -> BoxedStrategy<(Vec<u8>, Vec<u8>)> {
    let operations = match world {
        Some(fixed) => Just(fixed.to_vec()).boxed(),
        None => prop::collection::vec(0u8..OPERATIONS.len() as u8, 2..=3).boxed(),
    };
    (operations, prop::collection::vec(any::<u8>(), 0..48)).boxed()
}

/// The mutant switch is process-wide: tests of this binary take turns.
fn exclusive(mutant: Option<Mutant>) -> MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    activate(mutant);
    for counter in [&CONTESTED, &GRANTS, &GAVE_UP] {
        counter.store(0, Ordering::Relaxed);
    }
    guard
}

/// Runs `cases` cases (from a fixed seed if `seeded`, so that a mutant's run and its control see
/// the same cases), in `world` or in random ones.
fn run(cases: u32, seeded: bool, world: Option<&'static [u8]>) -> Result<(), String> {
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = if seeded {
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha))
    } else {
        TestRunner::new(config)
    };
    runner
        .run(&case_strategy(world), |(operations, choices)| {
            run_case(&operations, &choices).map_err(TestCaseError::fail)
        })
        .map_err(|error| {
            // A planted bug's expected failure is written only when asked.
            let saved = match &error {
                proptest::test_runner::TestError::Fail(_, (operations, choices))
                    if lockstep::mutants::switched_on().is_none() || replay::asked() =>
                {
                    record(operations, choices)
                }
                _ => String::new(),
            };
            format!("{error}\n{saved}")
        })
}

// ---------------------------------------------------------------------------------------------
// Replay files (lockstep::replay): a failing case is written to one, with the creates the gate
// let through in order as its steps; `lockstep replay FILE` reruns it through `replay` below.

/// Runs a case; what the gate let through, in order, follows `expected` if given.
fn run_recorded(operations: &[u8], choices: &[u8], expected: Option<&[String]>) -> replay::Run {
    let gate = Gate::new();
    if let Some(expected) = expected {
        gate.follow(expected.to_vec());
    }
    let result = run_world(operations, Arc::clone(&gate), &[], choices);
    replay::Run {
        steps: gate.opened(),
        failure: result.err().filter(|_| gate.divergence().is_none()),
        divergence: gate.divergence(),
    }
}

/// A case as a replay file keeps it.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    operations: Vec<u8>,
    choices: Vec<u8>,
}

/// Writes the replay file of a failing case (rerun once to record its steps).
fn record(operations: &[u8], choices: &[u8]) -> String {
    let test = match lockstep::mutants::switched_on() {
        None => "random cases".to_string(),
        Some(mutant) => format!("caught {}", mutant.name()),
    };
    let run = replay::caught(|| Ok(run_recorded(operations, choices, None)));
    let case = Case {
        operations: operations.to_vec(),
        choices: choices.to_vec(),
    };
    let case = serde_json::to_value(case).expect("a case serialises");
    replay::record_conformance("lock", "lock_interleavings", &test, "memory", case, run)
}

/// Reruns a replay file of this harness: the one `lockstep replay` names in `$LOCKSTEP_REPLAY`,
/// or else the committed one, a case of the skip-recheck mutant (see `replay::replay_test`).
#[test]
fn replay() {
    replay::replay_test(
        "lock_interleavings",
        "lock-interleavings-skip-recheck.json",
        // Another input: the clients' operations in the other order.
        |file| {
            file.case["operations"]
                .as_array_mut()
                .expect("operations")
                .reverse();
        },
        |file| {
            replay::rerun_case(file, exclusive, |case: &Case, steps| {
                run_recorded(&case.operations, &case.choices, Some(steps))
            })
        },
    );
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256)
}

#[test]
fn interleaved_acquisitions_keep_exclusion_and_finish() {
    let _one = exclusive(None);
    run(cases(), false, None).unwrap_or_else(|e| panic!("{e}"));
    let (contested, grants, gave_up) = (
        CONTESTED.load(Ordering::Relaxed),
        GRANTS.load(Ordering::Relaxed),
        GAVE_UP.load(Ordering::Relaxed),
    );
    eprintln!("{} cases: {grants} grants, {gave_up} gave up after their retries, {contested} choices among 2+ waiting creates", cases());
    assert!(
        contested >= cases() as usize,
        "the gate rarely had a choice: {contested}"
    );
    assert!(grants >= cases() as usize * 3, "{grants} grants");
}

/// `mutant`'s run over `cases` seeded cases (in `world`, or random ones) fails naming
/// `property`; the same cases pass without it.
fn assert_caught(mutant: Mutant, property: &str, world: Option<&'static [u8]>, cases: u32) {
    let found = {
        let _one = exclusive(Some(mutant));
        let found = run(cases, true, world);
        activate(None);
        found
    };
    let error = found.expect_err(&format!(
        "{}: no case of {cases} found the planted bug",
        mutant.name()
    ));
    eprintln!(
        "{}: {}",
        mutant.name(),
        error.lines().take(3).collect::<Vec<_>>().join(" / ")
    );
    assert!(
        error.contains(property),
        "{}: failed, but not on {property}: {error}",
        mutant.name()
    );
    let _one = exclusive(None);
    run(cases, true, world).unwrap_or_else(|e| {
        panic!(
            "{}: the control without the mutant failed: {e}",
            mutant.name()
        )
    });
}

#[test]
fn interleavings_catch_a_skipped_recheck() {
    assert_caught(Mutant::SkipRecheck, "mutual exclusion", None, 512);
}

#[test]
fn interleavings_catch_waiting_without_wait_die() {
    assert_caught(Mutant::NoWaitDie, "no wait cycle", None, 512);
}

/// The model's counterexample `lock/old-fixed-withdraw-hides-release` (21 steps, found with
/// three clients), replayed against the implementation one storage operation at a time, reads
/// included (random interleavings of creates alone cannot put both re-checks after both entry
/// creates). c2 (SUBTREE /) takes ticket 1; c0 (POINT /a) takes ticket 2, holds, writes with it
/// and releases; c1 (POINT /a) takes ticket 3 and appends its entry over c0's release; c2
/// appends its entry; c1's re-check sees c2's older entry and withdraws, and the withdraw now
/// hides c0's release. A re-check that reads only the newest entry grants c2 with ticket 1,
/// and the fenced log rejects its write (c0 wrote with 2) while its lease is live. With the
/// high-water marks c2 sees ticket 2 in the withdraw's marks and retries.
const WITHDRAW_HIDES_RELEASE: &[(usize, &str)] = &[
    (2, "tickets/"),
    (2, "list tickets/"),
    (0, "tickets/"),
    (0, "list tickets/"),
    (0, "locks/a/~"),
    (0, "fence/~"),
    (0, "fence/a/~"),
    (0, "locks/a/~"),
    (1, "tickets/"),
    (1, "list tickets/"),
    (1, "locks/a/~"),
    (2, "locks/~"),
    (1, "locks/a/~"),
];

#[test]
fn the_model_counterexample_replayed_catches_a_recheck_without_high_water_marks() {
    assert_replay_fences(
        Mutant::NoHighWater,
        &[2, 2, 0],
        WITHDRAW_HIDES_RELEASE,
        "c2",
    );
}

/// Replays `script` (a model counterexample) with `mutant` planted: `holder`'s live write must be
/// rejected; the same schedule without the mutant must pass.
fn assert_replay_fences(mutant: Mutant, world: &[u8], script: &[(usize, &str)], holder: &str) {
    let caught = {
        let _one = exclusive(Some(mutant));
        let result = run_world(world, Gate::every_operation(), script, &[]);
        activate(None);
        result
    };
    let Err(error) = caught else {
        panic!(
            "{}: the replayed counterexample did not fence a live holder",
            mutant.name()
        )
    };
    assert!(
        error.contains("live holder never fenced") && error.contains(holder),
        "{error}"
    );
    let _one = exclusive(None);
    run_world(world, Gate::every_operation(), script, &[])
        .unwrap_or_else(|e| panic!("the same schedule without the mutant: {e}"));
}

/// The model's counterexample for `kept-ticket-unchecked` (catalogue entry
/// `lock/mutant-kept-ticket-unchecked`), three POINT `/a` clients, replayed one storage operation
/// at a time: c0 takes ticket 1, holds and writes with it; c1 finds it held and claims ticket 2
/// before it sleeps; c0 releases; c2 takes ticket 3, writes with it and releases; c1 wakes. A
/// waiter that uses its kept ticket unchecked is granted with 2, and the fenced log (which took
/// 3) rejects its live write. The protocol finds ticket 2 at or below the marks after the
/// newest entry (3), claims a new one, and its write is accepted.
const KEPT_TICKET_WENT_STALE: &[(usize, &str)] = &[
    (0, "tickets/"),
    (0, "list tickets/"),
    (0, "locks/a/~"),
    (0, "fence/~"),
    (0, "fence/a/~"),
    (1, "tickets/"),
    (1, "list tickets/"),
    (0, "locks/a/~"),
    (2, "tickets/"),
    (2, "list tickets/"),
    (2, "locks/a/~"),
    (2, "fence/~"),
    (2, "fence/a/~"),
    (2, "locks/a/~"),
    (1, "locks/a/~"),
];

#[test]
fn the_model_counterexample_replayed_catches_a_kept_ticket_used_unchecked() {
    assert_replay_fences(
        Mutant::KeptTicketUnchecked,
        &[2, 2, 2],
        KEPT_TICKET_WENT_STALE,
        "c1",
    );
}

/// The same schedule with c1 a SUBTREE `/a` waiter: c2's POINT grant with ticket 3 raises `/a`'s
/// any-kind mark, not its SUBTREE mark, and a SUBTREE lock conflicts with it all the same. A
/// waiter that compares its kept ticket (2) with the mark of its own kind only is granted with 2
/// and its write is rejected; the protocol claims afresh.
#[test]
fn a_subtree_waiter_passed_by_a_point_grant_claims_afresh() {
    assert_replay_fences(
        Mutant::KeptTicketOwnKindMark,
        &[2, 1, 2],
        KEPT_TICKET_WENT_STALE,
        "c1",
    );
}

/// A kept ticket that a busy ancestor made stale is dropped before the create (specs/lock.md §4,
/// "A waiter's ticket"), so the waiter does not create, fail rule c, withdraw and spend a retry.
/// c0 takes POINT /a/b; c2 (POINT /a/b) and then c1 (SUBTREE /a) find it held and claim tickets 2
/// and 3 while they wait; c0 releases; c1 takes /a with ticket 3, writes and releases, so /a's
/// SUBTREE mark is 3. When c2 goes on, its ticket 2 is still above /a/b's marks (1) but not above
/// /a's: its next create must be a fresh ticket, not its `acquire`.
const ANCESTOR_GRANTED_DURING_THE_WAIT: &[(usize, &str)] = &[
    (0, "tickets/"),
    (0, "list tickets/"),
    (0, "locks/a/b/~"),
    (2, "tickets/"),
    (2, "list tickets/"),
    (1, "tickets/"),
    (1, "list tickets/"),
    (0, "locks/a/b/~"),
    (1, "locks/a/~"),
    (1, "locks/a/~"),
    (2, "tickets/"),
];

#[test]
fn a_ticket_kept_below_an_ancestors_newer_grant_is_dropped_before_the_create() {
    let _one = exclusive(None);
    let gate = Gate::every_operation();
    run_world(
        &[3, 1, 3],
        Arc::clone(&gate),
        ANCESTOR_GRANTED_DURING_THE_WAIT,
        &[],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // c2's creates after c1's release of /a (c1's second create there): a ticket first.
    let opened = gate.opened();
    let released = opened
        .iter()
        .enumerate()
        .filter(|(_, step)| step.starts_with("c1: locks/a/~"))
        .nth(1)
        .map(|(at, _)| at)
        .expect("c1 released /a");
    let next = opened[released..]
        .iter()
        .find(|step| step.starts_with("c2: tickets/") || step.starts_with("c2: locks/"))
        .expect("c2 created something after c1's release");
    assert!(
        next.starts_with("c2: tickets/"),
        "c2 created its entry with a ticket below /a's SUBTREE mark: {next}; all: {opened:#?}"
    );
}

/// A waiter's wait starts from the blocking entry as its pre-check read it (specs/lock.md §4,
/// "When a wait ends"), so whatever lands in between goes through wait-die. W (an `mv` of POINT
/// `/a` and `/b`) holds `/a` with ticket 6 and finds `/b` held by Y with ticket 100: Y is younger,
/// so W waits, and claims its kept ticket first. During that claim Y withdraws and O, an older
/// waiter granted with its kept ticket 3, takes `/b`. W's wait must end at once and its pre-check
/// must back W off (it holds 6, above O's 3: waiting would be a younger holder waiting for an
/// older one). With a budget of no retries the back-off ends the operation: `RetriesExhausted`.
/// A wait that takes its reference from its own first read (the planted bug
/// `wait-reference-own-read`) waits for O instead, until its deadline: `Busy`.
#[test]
fn a_grant_between_the_read_and_the_wait_goes_through_wait_die() {
    use lockstep::lock::{Entry, LockError, Marks};
    use lockstep::store::Key;
    use lockstep_tests::scripted::{Script, Scripted};

    fn run() -> Result<lockstep::lock::Guard, LockError> {
        paused_runtime().block_on(async {
            let shared: Arc<dyn Store> = Arc::new(MemStore::new());
            for ticket in 1..=5u64 {
                let key = Key::new(format!("tickets/{ticket:020}")).unwrap();
                assert!(shared.create(&key, b"").await.unwrap().is_created());
            }
            let b = LockPath::new("/b").unwrap();
            let acquire = |owner: &str, ticket| Entry::Acquire {
                owner: owner.into(),
                kind: LockKind::Point,
                ticket,
                lease_ms: 3_600_000,
                written_at_ms: 0,
                marks: Marks::default(),
            };
            let put = |key: Key, entry: Entry| {
                let shared = Arc::clone(&shared);
                async move {
                    assert!(shared
                        .create(&key, &entry.encode())
                        .await
                        .unwrap()
                        .is_created())
                }
            };
            put(b.entry_key(0), acquire("y", 100)).await;
            let scripted = Scripted::new(Arc::clone(&shared));
            let options = LockOptions {
                // Real time (lock_timeout is not on the paused clock): the planted bug's wait
                // spins through its polls until then; the protocol backs off within milliseconds.
                timeout: Some(Duration::from_secs(3)),
                retries_max: 0,
                cleanup_every: None,
                ..LockOptions::default()
            };
            let manager = LockManager::start(Arc::new(scripted.clone()), options)
                .await
                .unwrap();
            // W's creates: ticket 6, its `acquire` of /a, then the ticket it keeps while waiting.
            scripted.arm(Script::PauseBefore(2));
            let w = tokio::spawn(async move {
                let result = manager.lock(operation(&[("/a", 'P'), ("/b", 'P')])).await;
                manager.shutdown().await;
                result
            });
            while !scripted.paused() {
                assert!(
                    !w.is_finished(),
                    "W ended before it claimed the ticket it keeps"
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let a = LockPath::new("/a").unwrap();
            let held_a = shared
                .get(&a.entry_key(0))
                .await
                .unwrap()
                .expect("W's acquire of /a");
            assert!(
                matches!(
                    Entry::decode("a", &held_a.0).unwrap(),
                    Entry::Acquire { ticket: 6, .. }
                ),
                "W should hold /a with ticket 6 while it claims the ticket it keeps"
            );
            let withdraw = Entry::Withdraw {
                ticket: 100,
                written_at_ms: 0,
                marks: Marks::default(),
            };
            put(b.entry_key(1), withdraw).await;
            put(b.entry_key(2), acquire("o", 3)).await;
            scripted.disarm();
            scripted.resume();
            let outcome = w.await.unwrap();
            // The create W paused at was the claim of the ticket it keeps (7), and W wrote
            // nothing to /b: it waited there, and nothing else.
            let created: Vec<String> = scripted
                .drain()
                .into_iter()
                .map(|landed| landed.key.to_string())
                .collect();
            assert!(
                created.contains(&format!("tickets/{:020}", 7)),
                "{created:?}"
            );
            assert!(
                !created.iter().any(|key| key.starts_with("locks/b/")),
                "{created:?}"
            );
            outcome
        })
    }

    let outcome = {
        let _one = exclusive(None);
        run()
    };
    assert!(
        matches!(&outcome, Err(LockError::RetriesExhausted { path, retries: 0 }) if path.as_str() == "/b"),
        "W should have backed off from O's older grant at /b: {outcome:?}"
    );
    let planted = {
        let _one = exclusive(Some(Mutant::WaitReferenceOwnRead));
        let outcome = run();
        activate(None);
        outcome
    };
    assert!(
        matches!(&planted, Err(LockError::Busy { holder, .. }) if holder.starts_with('o')),
        "with the wait's reference taken from its own read W should wait for O: {planted:?}"
    );
}
