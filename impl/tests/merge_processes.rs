//! Real processes: writer processes (`lockstep branch commit`) append to a child while merger
//! processes (`lockstep merge`) merge it into its parent, on one FsStore root. A driver SIGKILLs
//! mergers and writers at random moments, and runs `lockstep recover` after each round. In some
//! rounds a merger is stopped right after its parent append (test builds: it hangs after two
//! creates) and killed there, the crash window a roll-forward must close.
//!
//! A checker then proves from the store alone:
//! - every child commit below TAIL is in the parent, and after a final merge every child commit
//!   is: nothing was lost;
//! - no child commit is in the parent twice, counting every merge commit (not only the first per
//!   TAIL, as readers do): nothing was applied twice;
//! - TAIL never moved back, across every TAIL/BASE version.
//!
//! Rounds scale with `LOCKSTEP_SOAK=1`; `LOCKSTEP_SEED` replays a run's schedule (the seed is
//! printed). Built only with the `mutants` feature (the README's test command has it through the
//! workspace): the roll-forward window needs its test-only fault, and the checker is shown to
//! catch a planted bug.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rand::{Rng, SeedableRng};

use lockstep::merge::{self, BranchName, CommitEntry, TailBase};

/// Opening the store the processes name, for the checker.
/// Replay files of failing runs.
#[path = "support/process_replay.rs"]
mod process_replay;

#[path = "support/stores.rs"]
mod stores;

/// Waiting for a stopped process to reach its window.
#[path = "support/hang.rs"]
mod hang;

/// Real etcd members (shared with lockstep-tests: tests/src/etcd_server.rs).
#[cfg(feature = "etcd")]
#[path = "../../tests/src/etcd_server.rs"]
#[allow(dead_code)]
mod etcd_server;

fn lockstep() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lockstep"))
}

fn seed() -> u64 {
    let seed = std::env::var("LOCKSTEP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("LOCKSTEP_SEED={seed}");
    seed
}

fn rounds(default: usize) -> usize {
    if std::env::var("LOCKSTEP_SOAK").is_ok_and(|v| v == "1") {
        default * 10
    } else {
        default
    }
}

/// What a run did, reported and asserted.
#[derive(Debug, Default)]
struct Tally {
    merges_ok: usize,
    rolled_forward: usize,
    merges_busy: usize,
    mergers_killed: usize,
    stopped_after_append: usize,
    writers_killed: usize,
    commits: usize,
    locks_recovered: usize,
    /// Processes that ended with a storage error (exit 74) while their etcd member was down:
    /// their outcome is unknown to them (an ambiguous operation).
    storage_errors: usize,
}

struct Lake {
    _dir: tempfile::TempDir,
    /// How each process names the store, taken in turn: `--root DIR`, or `--store etcd:…`
    /// naming one member each.
    stores: Vec<Vec<String>>,
    spawns: std::cell::Cell<usize>,
    mutant: Option<&'static str>,
    /// Waited before each recovery: on etcd a killed process is proven dead only once its owner
    /// lease has run out.
    before_recovery: Duration,
    /// Store members may be down: a storage error (exit 74) is an expected outcome.
    members_may_fail: bool,
    /// The driver's actions (commands run, processes spawned and killed, sleeps): a replay
    /// file's steps.
    plan: std::rc::Rc<process_replay::Plan>,
}

impl Lake {
    fn new(mutant: Option<&'static str>) -> Lake {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_str().unwrap().to_owned();
        Lake::with_stores(dir, vec![vec!["--root".into(), root]], mutant)
    }

    /// A lake on etcd: process `n` talks to `endpoints[n % len]`, owner leases of 2 s.
    #[cfg(feature = "etcd")]
    fn on_etcd(endpoints: &[String]) -> Lake {
        let prefix = etcd_server::fresh_prefix();
        let stores = endpoints
            .iter()
            .map(|e| {
                vec![
                    "--store".into(),
                    format!("etcd:{e}?prefix={prefix}&lease-ttl=2"),
                ]
            })
            .collect();
        let mut lake = Lake::with_stores(tempfile::tempdir().unwrap(), stores, None);
        lake.before_recovery = Duration::from_millis(2_500);
        lake
    }

    fn with_stores(
        dir: tempfile::TempDir,
        stores: Vec<Vec<String>>,
        mutant: Option<&'static str>,
    ) -> Lake {
        let lake = Lake {
            _dir: dir,
            stores,
            spawns: std::cell::Cell::new(0),
            mutant,
            before_recovery: Duration::ZERO,
            members_may_fail: false,
            plan: Default::default(),
        };
        lake.run_ok(&["branch", "create"], &["main"]);
        lake.run_ok(&["branch", "create"], &["live", "--from", "main"]);
        lake
    }

    fn step(&self, step: String) {
        self.plan.step(step);
    }

    fn sleep_ms(&self, ms: u64) {
        self.plan.sleep_ms(ms);
    }

    /// The store arguments of the next process.
    fn store(&self) -> Vec<String> {
        let n = self.spawns.get();
        self.spawns.set(n + 1);
        self.stores[n % self.stores.len()].clone()
    }

    /// `lockstep COMMAND <store> REST`, which must succeed (tried through each store in turn).
    fn run_ok(&self, command: &[&str], rest: &[&str]) -> String {
        self.step(format!("run {} {}", command.join(" "), rest.join(" ")));
        let mut last = String::new();
        for _ in 0..self.stores.len() {
            let output = lockstep()
                .args(command)
                .args(self.store())
                .args(rest)
                .output()
                .unwrap();
            if output.status.success() {
                return String::from_utf8(output.stdout).unwrap();
            }
            last = format!(
                "{command:?} {rest:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        panic!("{last}");
    }

    fn spawn(&self, args: &[&str], fault: Option<&str>) -> Child {
        self.step(format!(
            "spawn {}{}",
            args.join(" "),
            fault.map_or(String::new(), |f| format!(" with LOCKSTEP_FAULT={f}"))
        ));
        let mut command = lockstep();
        command
            .args(args)
            .args(self.store())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(fault) = fault {
            // The stopped process announces its hang on stderr (see support/hang.rs).
            command.env("LOCKSTEP_FAULT", fault).stderr(Stdio::piped());
        }
        if let Some(mutant) = self.mutant {
            command.env("LOCKSTEP_MUTANT", mutant);
        }
        command.spawn().unwrap()
    }

    fn merger(&self, fault: Option<&str>) -> Child {
        self.spawn(&["merge", "live", "--timeout", "1", "--json"], fault)
    }

    fn writer(&self, text: &str) -> Child {
        self.spawn(&["branch", "commit", "live", "--message", text], None)
    }

    /// The store the checker reads, on `rt`.
    fn open_store(
        &self,
        rt: &tokio::runtime::Runtime,
    ) -> std::sync::Arc<dyn lockstep::store::Store> {
        stores::open_first(&self.stores, rt)
            .expect("a store opens for the checker")
            .expect("the lake exists")
    }

    fn recover(&self, tally: &mut Tally) {
        std::thread::sleep(self.before_recovery);
        let out = self.run_ok(&["recover"], &["--json"]);
        let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
        tally.locks_recovered += doc["merge_locks_released"].as_array().unwrap().len();
    }
}

/// One round: 2 mergers and 3 writers at once; some killed after a random delay; one merger in
/// every third round stopped after its parent append and killed there.
fn round(lake: &Lake, round: usize, rng: &mut rand::rngs::StdRng, tally: &mut Tally) {
    let stop_after_append = round % 3 == 0;
    if stop_after_append {
        // A commit that surely lands first, so that the stopped merger has something to append
        // (the writers below may all be killed, or still be connecting when it reads HEAD).
        lake.run_ok(
            &["branch", "commit"],
            &["live", "--message", &format!("r{round}s")],
        );
        tally.commits += 1;
    }
    let mut mergers: Vec<(Child, bool)> = Vec::new();
    let mut writers: Vec<(Child, bool)> = Vec::new();
    for w in 0..3 {
        // Round 0's first writer is always killed (the draw is still made, so the rest of the
        // plan is the seed's): every run kills at least one process. On etcd the other kills,
        // a few milliseconds after their spawn, can all come after their process ended (CI saw
        // a run of 6 rounds with none killed).
        let kill = rng.random_bool(0.2) || (round == 0 && w == 0);
        writers.push((lake.writer(&format!("r{round}w{w}")), kill));
    }
    // Writers die within a few milliseconds of their start: before, during or after their create.
    lake.sleep_ms(rng.random_range(0..6));
    for (w, (child, kill)) in writers.iter_mut().enumerate() {
        if *kill {
            lake.step(format!("kill writer r{round}w{w}"));
            let _ = child.kill();
        }
    }
    lake.sleep_ms(5);
    // The stopped merger is not among the randomly killed: it is killed at its window below.
    // It reaches its window (it holds the lock, its parent append landed) before the other
    // merger starts: were the other first, it could merge everything, and the stopped one would
    // find nothing to append and end cleanly. `hung`: it announced the hang (bounded wait).
    let mut hung = false;
    mergers.push((
        lake.merger(stop_after_append.then_some("hang-after-creates:2")),
        false,
    ));
    if stop_after_append {
        hung = hang::wait_for_hang(&mut mergers[0].0, Duration::from_secs(30));
    }
    lake.sleep_ms(rng.random_range(0..40));
    mergers.push((lake.merger(None), rng.random_bool(0.4)));
    lake.sleep_ms(rng.random_range(0..25));
    for (m, (child, kill)) in mergers.iter_mut().enumerate() {
        if *kill {
            lake.step(format!("kill merger {m} of round {round}"));
            let _ = child.kill();
        }
    }
    for (i, (child, kill)) in mergers.iter_mut().enumerate() {
        if stop_after_append && i == 0 {
            // A step whether or not it reached its window (timing is not part of the plan).
            lake.step(format!("end the stopped merger of round {round}"));
        }
        if stop_after_append && i == 0 && hung {
            // Killed in its window, holding the lock, after its parent append. (One that ended
            // before its window is judged by its exit below.)
            let _ = child.kill();
            tally.stopped_after_append += 1;
            child.wait().unwrap();
            continue;
        }
        let output = child.wait_with_output_ref();
        match output.0.code() {
            Some(0) => {
                tally.merges_ok += 1;
                if output.1.contains("\"rolled-forward\"") {
                    tally.rolled_forward += 1;
                }
            }
            Some(75) => tally.merges_busy += 1,
            None if *kill => tally.mergers_killed += 1,
            Some(74) if lake.members_may_fail => tally.storage_errors += 1,
            other => panic!("a merger exited {other:?}"),
        }
    }
    for (child, kill) in &mut writers {
        let status = child.wait().unwrap();
        match status.code() {
            Some(0) => tally.commits += 1,
            None if *kill => tally.writers_killed += 1,
            Some(74) if lake.members_may_fail => tally.storage_errors += 1,
            other => panic!("a writer exited {other:?}"),
        }
    }
    lake.recover(tally);
}

/// `wait_with_output` for a child borrowed in a list: its status and stdout.
trait WaitOutput {
    fn wait_with_output_ref(&mut self) -> (std::process::ExitStatus, String);
}

impl WaitOutput for Child {
    fn wait_with_output_ref(&mut self) -> (std::process::ExitStatus, String) {
        use std::io::Read;
        let mut stdout = String::new();
        if let Some(mut pipe) = self.stdout.take() {
            let _ = pipe.read_to_string(&mut stdout);
        }
        (self.wait().unwrap(), stdout)
    }
}

/// The checker: from the store alone.
fn check(lake: &Lake, merged_to_end: bool) -> Result<String, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = lake.open_store(&rt);
    rt.block_on(async {
        let store = &*store;
        let (live, main) = (
            BranchName::new("live").unwrap(),
            BranchName::new("main").unwrap(),
        );
        let e = |e: merge::MergeError| e.to_string();
        let child_end = live.commits().end(store).await.map_err(e)?;
        // Every merge commit counted, duplicates too.
        let mut count = vec![0u32; child_end as usize];
        for entry in merge::log(store, &main).await.map_err(e)? {
            if let CommitEntry::Merge { from, to, .. } = entry.entry {
                for id in from..to {
                    if id >= child_end {
                        return Err(format!(
                            "no phantom merge: the parent merges child commit {id}, which does not exist"
                        ));
                    }
                    count[id as usize] += 1;
                }
            }
        }
        if let Some(id) = count.iter().position(|c| *c > 1) {
            return Err(format!(
                "exactly once: child commit {id} is in the parent {} times",
                count[id]
            ));
        }
        let versions = live
            .tailbase()
            .read_from::<TailBase>(store, 0)
            .await
            .map_err(e)?;
        for pair in versions.windows(2) {
            if pair[1].1.tail < pair[0].1.tail {
                return Err(format!(
                    "TAIL never moves back: TAIL moved back from {} to {} at version {}",
                    pair[0].1.tail, pair[1].1.tail, pair[1].0
                ));
            }
        }
        let tail = versions.last().map_or(0, |(_, tb)| tb.tail);
        if let Some(id) = (0..tail as usize).find(|id| count[*id] == 0) {
            return Err(format!(
                "no lost write: child commit {id} is below TAIL {tail} but not in the parent: lost"
            ));
        }
        if merged_to_end && tail != child_end {
            return Err(format!(
                "merged to the end: after a final merge TAIL is {tail}, the child's end {child_end}"
            ));
        }
        // Readers (first merge commit per TAIL) see the same: each child commit once.
        let applied = merge::applied(store, &main).await.map_err(e)?;
        // (A crashed merge not yet rolled forward is applied beyond TAIL: readers see 0..k with
        // k >= TAIL.)
        let seen: Vec<u64> = applied
            .iter()
            .filter(|c| c.branch == live)
            .map(|c| c.index)
            .collect();
        let contiguous = seen.iter().enumerate().all(|(i, id)| *id == i as u64);
        if !contiguous || (seen.len() as u64) < tail {
            return Err(format!(
                "readers see each commit once: readers apply child commits {seen:?}, TAIL is {tail}"
            ));
        }
        Ok(format!(
            "{child_end} child commits, {} TAIL/BASE versions, TAIL {tail}",
            versions.len()
        ))
    })
}

fn soak(lake: &Lake, rounds: usize, seed: u64) -> (Tally, Result<String, String>) {
    soak_with(lake, rounds, seed, &mut |_| {})
}

/// As [`soak`], calling `between(round)` before each round (to kill and restart store members).
fn soak_with(
    lake: &Lake,
    rounds: usize,
    seed: u64,
    between: &mut dyn FnMut(usize),
) -> (Tally, Result<String, String>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut tally = Tally::default();
    for r in 0..rounds {
        between(r);
        round(lake, r, &mut rng, &mut tally);
        if let Err(error) = check(lake, false) {
            return (tally, Err(format!("{error} (after round {r})")));
        }
    }
    // A last merge, nobody killed: every child commit must now be in the parent exactly once.
    let _ = lake.run_ok(&["merge"], &["live", "--json"]);
    let verdict = check(lake, true);
    (tally, verdict)
}

#[test]
fn killed_mergers_and_writers_lose_nothing_and_apply_nothing_twice() {
    let (seed, rounds) = (seed(), rounds(12));
    let (lake, tally, verdict) = play(rounds, seed, None, Default::default());
    eprintln!("{tally:?}");
    let summary = verdict.unwrap_or_else(|e| {
        let saved = record(seed, rounds, &lake, &e);
        panic!("{e}\n{tally:?}\n{saved}")
    });
    eprintln!("{summary}");
    // The run exercised what it claims: merges that completed, kills, the crash window after a
    // parent append, and locks recovered from dead holders.
    assert!(tally.merges_ok > 0, "{tally:?}");
    assert!(tally.commits > 0, "{tally:?}");
    assert!(tally.writers_killed + tally.mergers_killed > 0, "{tally:?}");
    assert!(tally.stopped_after_append >= 4, "{tally:?}");
    assert!(tally.locks_recovered >= 1, "{tally:?}");
    assert!(
        tally.rolled_forward >= 1,
        "no crashed merge was rolled forward: {tally:?}"
    );
}

/// Planted: TAIL moves to the merger's own cut when it rolls a crashed merge forward. Commits
/// written between the crashed merge's cut and the roll-forward go behind TAIL unmerged, and the
/// checker says so.
#[cfg(feature = "mutants")]
#[test]
fn the_checker_catches_tail_moved_to_own_cut() {
    let (seed, rounds) = (seed(), rounds(12));
    let mutant = Some(lockstep::mutants::Mutant::MergeTailToOwnCut.name());
    let (lake, tally, verdict) = play(rounds, seed, mutant, Default::default());
    let error = verdict.expect_err("the planted bug must be caught");
    eprintln!("caught: {error}\n{tally:?}");
    if process_replay::asked() {
        eprintln!("{}", record(seed, rounds, &lake, &error));
    }
    assert!(
        error.contains("not in the parent: lost") || error.contains("readers apply"),
        "{error}"
    );
}

/// The same rounds over a real etcd (feature `etcd`): writers and mergers as processes talking to
/// the cluster, owner leases of 2 s proving the killed ones dead.
#[cfg(feature = "etcd")]
#[test]
fn on_etcd_killed_mergers_and_writers_lose_nothing_and_apply_nothing_twice() {
    let Some(cluster) = etcd_server::shared_or_skip() else {
        return;
    };
    let lake = Lake::on_etcd(&cluster.endpoints());
    let (tally, verdict) = soak(&lake, rounds(6), seed());
    eprintln!("etcd: {tally:?}");
    let summary = verdict.unwrap_or_else(|e| panic!("{e}\n{tally:?}"));
    eprintln!("{summary}");
    assert!(tally.merges_ok > 0, "{tally:?}");
    assert!(tally.commits > 0, "{tally:?}");
    assert!(tally.writers_killed + tally.mergers_killed > 0, "{tally:?}");
    assert!(tally.stopped_after_append >= 2, "{tally:?}");
    assert!(tally.locks_recovered >= 1, "{tally:?}");
}

/// Three etcd members on loopback, each writer and merger talking to one of them; a follower is
/// killed and restarted, and later the leader. Nothing lost, nothing applied twice, TAIL never
/// back, checked from the store; the run reports its operations and the ambiguous ones.
#[cfg(feature = "etcd")]
#[test]
fn three_etcd_members_with_one_killed_and_the_leader_killed() {
    let Some(mut cluster) = etcd_server::start_or_skip(3) else {
        return;
    };
    let mut lake = Lake::on_etcd(&cluster.endpoints());
    lake.members_may_fail = true;
    let mut events = Vec::new();
    let (tally, verdict) = soak_with(&lake, rounds(9), seed(), &mut |round| {
        events.extend(cluster.chaos(round))
    });
    let summary = verdict.unwrap_or_else(|e| panic!("{e}\n{tally:?}"));
    let operations = tally.merges_ok
        + tally.merges_busy
        + tally.mergers_killed
        + tally.stopped_after_append
        + tally.commits
        + tally.writers_killed
        + tally.storage_errors;
    eprintln!(
        "three members: {operations} operations, {} ambiguous (a storage error while a member was down or the leader changed); {tally:?}; {summary}; {events:?}",
        tally.storage_errors
    );
    assert_eq!(events.len(), 4, "two kills and two restarts: {events:?}");
    assert!(tally.merges_ok > 0 && tally.commits > 0, "{tally:?}");
}

// ---------------------------------------------------------------------------------------------
// Replay files (lockstep::replay): a failing run writes one, with its seed, its rounds and the
// driver's plan; `lockstep replay FILE` reruns it through `replay_file` below. The processes'
// timing is not replayed: a rerun follows the same plan (checked action by action, and stopped
// where the file's plan ends), and whether the race comes again is up to the machine.

/// Soaks `rounds` rounds drawn from `seed` on a fresh local lake with `mutant` switched on in
/// every process, with `plan` (a replay file's to follow, or a fresh one).
fn play(
    rounds: usize,
    seed: u64,
    mutant: Option<&'static str>,
    plan: std::rc::Rc<process_replay::Plan>,
) -> (Lake, Tally, Result<String, String>) {
    let mut tally = Tally::default();
    let mut lake = None;
    let (verdict, divergence) = process_replay::play(|| {
        let mut fresh = Lake::new(mutant);
        // The setup's commands are steps too: the new lake's plan is carried over.
        for step in fresh.plan.steps() {
            plan.step(step);
        }
        fresh.plan = std::rc::Rc::clone(&plan);
        let lake = lake.insert(fresh);
        let (t, verdict) = soak(lake, rounds, seed);
        tally = t;
        verdict
    });
    if let Some(divergence) = divergence {
        // Only a rerun follows a file; it reads the divergence from the plan's own panic.
        std::panic::panic_any(divergence);
    }
    let lake = lake.unwrap_or_else(|| panic!("the lake's setup failed: {verdict:?}"));
    (lake, tally, verdict)
}

/// Writes the replay file of a failed soak and returns the line naming it.
fn record(seed: u64, rounds: usize, lake: &Lake, failure: &str) -> String {
    process_replay::record(
        "merge",
        "merge_processes",
        "soak",
        seed,
        rounds,
        lake.mutant,
        &lake.plan,
        failure,
    )
}

/// Reruns a replay file of this target: the one `lockstep replay` names in `$LOCKSTEP_REPLAY`,
/// or else the committed one, a soak of the tail-to-own-cut mutant.
#[test]
fn replay_file() {
    process_replay::replay_test(
        "merge_processes",
        "merge-processes-tail-to-own-cut.json",
        // Another input: another seed, so another plan.
        |file| file.case["seed"] = (file.case["seed"].as_u64().unwrap() ^ 0x5eed).into(),
        |case, mutant, plan| {
            assert_eq!(
                case.scenario, "soak",
                "merge_processes has one scenario, soak"
            );
            play(case.rounds, case.seed, mutant, plan).2.map(|_| ())
        },
    );
}
