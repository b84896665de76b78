//! Real processes: adders (`lockstep session add`), committers (`lockstep session commit`),
//! workers (`lockstep queue work --once`) and recovery (`lockstep recover`) on one FsStore root.
//! A driver SIGKILLs committers, workers and adders at random moments. In every round one
//! committer is stopped after its first N creates (test builds: it hangs there, N cycling over
//! every window of the protocol: the session lock, the archive, each memory, the manifest, the
//! queue row, `done`) and killed there; `lockstep recover` runs after each round.
//!
//! A checker then proves from the store alone (`redo::inspect`):
//! - no message added with exit 0 was lost (it is stored or in an archive);
//! - no message is in two archives;
//! - every manifest names memories that exist;
//! - no archive has two effects;
//! - at the end (every process gone, recovery and a worker run to completion, a last commit):
//!   every archive is done, has its memories and exactly one effect, the queue is empty, and
//!   every message added is in exactly one archive.
//!
//! Rounds scale with `LOCKSTEP_SOAK=1`; `LOCKSTEP_SEED` replays a run's schedule (the seed is
//! printed). Built only with the `mutants` feature (the README's test command has it through the
//! workspace): the windows need its test-only fault, and the checker is shown to catch a planted
//! bug.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rand::{Rng, SeedableRng};

use lockstep::redo;

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

const SESSION: &str = "chat";

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

#[derive(Debug, Default)]
struct Tally {
    added: usize,
    adders_killed: usize,
    commits_ok: usize,
    commits_busy: usize,
    committers_killed: usize,
    stopped_in_a_window: usize,
    workers_killed: usize,
    items_processed: usize,
    replayed: usize,
    claims_freed: usize,
    /// Processes that ended with a storage error (exit 74) while their etcd member was down:
    /// their outcome is unknown to them (an ambiguous operation).
    storage_errors: usize,
}

struct Root {
    _dir: tempfile::TempDir,
    /// How each process names the store, taken in turn: `--root DIR`, or `--store etcd:…`
    /// naming one member each.
    stores: Vec<Vec<String>>,
    spawns: std::cell::Cell<usize>,
    mutant: Option<&'static str>,
    /// Ids of messages whose `session add` exited 0.
    added: BTreeSet<String>,
    /// Waited before each recovery: on etcd a killed process is proven dead only once its owner
    /// lease has run out.
    before_recovery: std::time::Duration,
    /// Store members may be down: a storage error (exit 74) is an expected outcome.
    members_may_fail: bool,
    /// The driver's actions (processes spawned and killed, sleeps): a replay file's steps.
    plan: std::rc::Rc<process_replay::Plan>,
}

impl Root {
    fn new(mutant: Option<&'static str>) -> Root {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_str().unwrap().to_owned();
        Root {
            _dir: dir,
            stores: vec![vec!["--root".into(), root]],
            spawns: std::cell::Cell::new(0),
            mutant,
            added: BTreeSet::new(),
            before_recovery: std::time::Duration::ZERO,
            members_may_fail: false,
            plan: Default::default(),
        }
    }

    /// A root on etcd: process `n` talks to `endpoints[n % len]`, owner leases of 2 s.
    #[cfg(feature = "etcd")]
    fn on_etcd(endpoints: &[String]) -> Root {
        let prefix = etcd_server::fresh_prefix();
        let mut root = Root::new(None);
        root.stores = endpoints
            .iter()
            .map(|e| {
                vec![
                    "--store".into(),
                    format!("etcd:{e}?prefix={prefix}&lease-ttl=2"),
                ]
            })
            .collect();
        root.before_recovery = std::time::Duration::from_millis(2_500);
        root
    }

    fn spawn(&self, args: &[&str], fault: Option<&str>) -> Child {
        self.plan.step(format!(
            "spawn {}{}",
            args.join(" "),
            fault.map_or(String::new(), |f| format!(" with LOCKSTEP_FAULT={f}"))
        ));
        let n = self.spawns.get();
        self.spawns.set(n + 1);
        let mut command = lockstep();
        command
            .args(args)
            .args(&self.stores[n % self.stores.len()])
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

    /// Runs a command that must succeed, through each store in turn until one answers (an etcd
    /// member may be down); its JSON output.
    fn run_json(&self, args: &[&str]) -> serde_json::Value {
        let mut codes = Vec::new();
        for _ in 0..self.stores.len() {
            let output = self.spawn(args, None).wait_with_output().unwrap();
            if output.status.success() {
                return serde_json::from_slice(&output.stdout).unwrap();
            }
            codes.push(output.status.code());
        }
        panic!("{args:?} failed through every store: {codes:?}");
    }

    fn adder(&self, text: &str) -> Child {
        self.spawn(
            &["session", "add", SESSION, "--message", text, "--json"],
            None,
        )
    }

    fn committer(&self, fault: Option<&str>) -> Child {
        self.spawn(
            &["session", "commit", SESSION, "--timeout", "1", "--json"],
            fault,
        )
    }

    fn worker(&self) -> Child {
        self.spawn(&["queue", "work", "--once", "--json"], None)
    }

    fn recover(&self, tally: &mut Tally) {
        std::thread::sleep(self.before_recovery);
        let doc = self.run_json(&["recover", "--json"]);
        tally.replayed += doc["redo"]["replayed"].as_array().unwrap().len();
        tally.claims_freed += doc["redo"]["claims_freed"].as_array().unwrap().len();
    }
}

fn output(child: &mut Child) -> (std::process::ExitStatus, String) {
    use std::io::Read;
    let mut stdout = String::new();
    if let Some(mut pipe) = child.stdout.take() {
        let _ = pipe.read_to_string(&mut stdout);
    }
    (child.wait().unwrap(), stdout)
}

/// One round: 3 adders, 2 committers (one stopped after `window` creates and killed there, the
/// other killed at random), a worker killed at random; then recovery.
fn round(root: &mut Root, round: usize, rng: &mut rand::rngs::StdRng, tally: &mut Tally) {
    let mut adders: Vec<(Child, bool)> = (0..3)
        .map(|a| (root.adder(&format!("r{round}a{a}")), rng.random_bool(0.2)))
        .collect();
    root.plan.sleep_ms(rng.random_range(0..6));
    for (a, (child, kill)) in adders.iter_mut().enumerate() {
        if *kill {
            root.plan.step(format!("kill adder r{round}a{a}"));
            let _ = child.kill();
        }
    }
    for (mut child, kill) in adders {
        let (status, out) = output(&mut child);
        match status.code() {
            Some(0) => {
                let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
                root.added.insert(doc["id"].as_str().unwrap().to_owned());
                tally.added += 1;
            }
            None if kill => tally.adders_killed += 1,
            Some(74) if root.members_may_fail => tally.storage_errors += 1,
            other => panic!("an adder exited {other:?}"),
        }
    }
    // The stopped committer hangs after `window` creates: windows 1..=8 cover the session
    // lock's creates, the archive, the memories, the manifest, the row and `done`.
    let window = 1 + round % 8;
    let mut stopped = root.committer(Some(&format!("hang-after-creates:{window}")));
    // It reaches its window before the other committer starts (were the other first, it could
    // archive everything, and the stopped one end before its window). Bounded wait; `false`: it
    // ended first (fewer creates than the window), and is not counted.
    let hung = hang::wait_for_hang(&mut stopped, Duration::from_secs(30));
    root.plan.sleep_ms(rng.random_range(0..30));
    let mut committer = root.committer(None);
    let kill_committer = rng.random_bool(0.4);
    let mut worker = root.worker();
    let kill_worker = rng.random_bool(0.4);
    root.plan.sleep_ms(rng.random_range(0..25));
    if kill_committer {
        root.plan
            .step(format!("kill the committer of round {round}"));
        let _ = committer.kill();
    }
    if kill_worker {
        root.plan.step(format!("kill the worker of round {round}"));
        let _ = worker.kill();
    }
    // Killed in its window.
    root.plan
        .step(format!("kill the stopped committer of round {round}"));
    let _ = stopped.kill();
    let (status, _) = output(&mut stopped);
    if hung && status.code().is_none() {
        tally.stopped_in_a_window += 1;
    }
    let (status, _) = output(&mut committer);
    match status.code() {
        Some(0) => tally.commits_ok += 1,
        Some(75) => tally.commits_busy += 1,
        None if kill_committer => tally.committers_killed += 1,
        Some(74) if root.members_may_fail => tally.storage_errors += 1,
        other => panic!("a committer exited {other:?}"),
    }
    let (status, out) = output(&mut worker);
    match status.code() {
        Some(0) => {
            let doc: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
            tally.items_processed += doc["processed"].as_array().unwrap().len();
        }
        None if kill_worker => tally.workers_killed += 1,
        Some(74) if root.members_may_fail => tally.storage_errors += 1,
        other => panic!("a worker exited {other:?}"),
    }
    root.recover(tally);
}

/// The checker, from the store alone. `at_rest`: every process is gone and recovery and a
/// worker ran to completion.
fn check(root: &Root, at_rest: bool) -> Result<String, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Through the first store that answers (an etcd member may be down).
    let opened = stores::open_first(&root.stores, &rt);
    let Some(store) = opened? else {
        return Ok("no store yet".into());
    };
    let view = rt
        .block_on(redo::inspect(&*store))
        .map_err(|e| e.to_string())?;
    let Some(view) = view.session(SESSION) else {
        return Ok("no session yet".into());
    };
    let stored: BTreeSet<&str> = view.messages.iter().map(|m| m.id.as_str()).collect();
    let mut in_archives: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for a in &view.archives {
        for id in &a.messages {
            in_archives.entry(id).or_default().push(a.index);
        }
    }
    for id in &root.added {
        if !stored.contains(id.as_str()) && !in_archives.contains_key(id.as_str()) {
            return Err(format!(
                "no message lost: message {id} was added, and is neither stored nor archived: lost"
            ));
        }
    }
    if let Some((id, ks)) = in_archives.iter().find(|(_, ks)| ks.len() > 1) {
        return Err(format!(
            "no duplicate archive: message {id} is in archives {ks:?}: archived twice"
        ));
    }
    if !view.memories_missing.is_empty() {
        return Err(format!(
            "memories before manifest: manifests name missing memories {:?}",
            view.memories_missing
        ));
    }
    if let Some((k, n)) = view.effects.iter().find(|(_, n)| **n > 1) {
        return Err(format!(
            "effect applied once: archive {k} has {n} effects: applied twice"
        ));
    }
    if at_rest {
        if !view.pending.is_empty() {
            return Err(format!(
                "nothing pending at rest: archives {:?} are pending at rest",
                view.pending
            ));
        }
        if !view.queue.is_empty() {
            return Err(format!(
                "queue drained at rest: the queue holds {:?} at rest",
                view.queue
            ));
        }
        for a in &view.archives {
            if view.effects.get(&a.index) != Some(&1) {
                return Err(format!(
                    "delivered at least once: archive {} has no effect at rest",
                    a.index
                ));
            }
            if !view.memories.iter().any(|m| m.archive == a.index) {
                return Err(format!(
                    "memories written at rest: archive {} has no memories at rest",
                    a.index
                ));
            }
        }
        if let Some(id) = root
            .added
            .iter()
            .find(|id| !in_archives.contains_key(id.as_str()))
        {
            return Err(format!(
                "no message lost: message {id} is in no archive after a last commit"
            ));
        }
    }
    Ok(format!(
        "{} archives, {} memories visible ({} unnamed), {} effects",
        view.archives.len(),
        view.memories.len(),
        view.memories_unnamed,
        view.effects.len()
    ))
}

fn soak(root: &mut Root, rounds: usize, seed: u64) -> (Tally, Result<String, String>) {
    soak_with(root, rounds, seed, &mut |_| {})
}

/// As [`soak`], calling `between(round)` before each round (to kill and restart store members).
fn soak_with(
    root: &mut Root,
    rounds: usize,
    seed: u64,
    between: &mut dyn FnMut(usize),
) -> (Tally, Result<String, String>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut tally = Tally::default();
    for r in 0..rounds {
        between(r);
        round(root, r, &mut rng, &mut tally);
        if let Err(error) = check(root, false) {
            return (tally, Err(format!("{error} (after round {r})")));
        }
    }
    // Nobody is killed from here on: a last commit, recovery, and workers until the queue is
    // empty.
    let _ = root.run_json(&["session", "commit", SESSION, "--json"]);
    root.recover(&mut tally);
    for _ in 0..3 {
        let doc = root.run_json(&["queue", "work", "--once", "--json"]);
        tally.items_processed += doc["processed"].as_array().unwrap().len();
    }
    let verdict = check(root, true);
    (tally, verdict)
}

#[test]
fn killed_committers_workers_and_adders_lose_nothing_and_apply_nothing_twice() {
    let (seed, rounds) = (seed(), rounds(16));
    let (root, tally, verdict) = play(rounds, seed, None, Default::default());
    eprintln!("{tally:?}");
    let summary = verdict.unwrap_or_else(|e| {
        let saved = record(seed, rounds, &root, &e);
        panic!("{e}\n{tally:?}\n{saved}")
    });
    eprintln!("{summary}");
    // The run exercised what it claims: commits that completed, kills in every window,
    // recovery that replayed a dead committer's phase 2.
    assert!(tally.commits_ok > 0, "{tally:?}");
    assert!(tally.items_processed > 0, "{tally:?}");
    assert!(tally.stopped_in_a_window >= 8, "{tally:?}");
    assert!(tally.replayed >= 1, "no phase 2 was replayed: {tally:?}");
}

/// Planted: phase 1 archives messages already in an archive whose deletes a killed committer
/// never made. The checker finds a message in two archives.
#[test]
fn the_checker_catches_a_commit_without_exclusion() {
    let mutant = lockstep::mutants::Mutant::RedoNoExclusion;
    let (seed, rounds) = (seed(), rounds(16));
    let (root, tally, verdict) = play(rounds, seed, Some(mutant.name()), Default::default());
    let error = verdict.expect_err("the planted bug must be caught");
    eprintln!("caught: {error}\n{tally:?}");
    if process_replay::asked() {
        eprintln!("{}", record(seed, rounds, &root, &error));
    }
    assert!(error.contains("archived twice"), "{error}");
}

/// The same rounds over a real etcd (feature `etcd`): adders, committers, workers and recovery as
/// processes talking to the cluster, owner leases of 2 s proving the killed ones dead.
#[cfg(feature = "etcd")]
#[test]
fn on_etcd_killed_committers_workers_and_adders_lose_nothing_and_apply_nothing_twice() {
    let Some(cluster) = etcd_server::shared_or_skip() else {
        return;
    };
    let mut root = Root::on_etcd(&cluster.endpoints());
    let (tally, verdict) = soak(&mut root, rounds(8), seed());
    eprintln!("etcd: {tally:?}");
    let summary = verdict.unwrap_or_else(|e| panic!("{e}\n{tally:?}"));
    eprintln!("{summary}");
    assert!(tally.commits_ok > 0, "{tally:?}");
    assert!(tally.items_processed > 0, "{tally:?}");
    assert!(tally.stopped_in_a_window >= 4, "{tally:?}");
    assert!(tally.replayed >= 1, "no phase 2 was replayed: {tally:?}");
}

/// Three etcd members on loopback, each adder, committer, worker and recovery talking to one of
/// them; a follower is killed and restarted, and later the leader. No message lost or archived
/// twice, no effect twice, and at rest every archive done: checked from the store; the run
/// reports its operations and the ambiguous ones.
#[cfg(feature = "etcd")]
#[test]
fn three_etcd_members_with_one_killed_and_the_leader_killed() {
    let Some(mut cluster) = etcd_server::start_or_skip(3) else {
        return;
    };
    let mut root = Root::on_etcd(&cluster.endpoints());
    root.members_may_fail = true;
    let mut events = Vec::new();
    let (tally, verdict) = soak_with(&mut root, rounds(9), seed(), &mut |round| {
        events.extend(cluster.chaos(round))
    });
    let summary = verdict.unwrap_or_else(|e| panic!("{e}\n{tally:?}"));
    let operations = tally.added
        + tally.adders_killed
        + tally.commits_ok
        + tally.commits_busy
        + tally.committers_killed
        + tally.stopped_in_a_window
        + tally.items_processed
        + tally.workers_killed
        + tally.storage_errors;
    eprintln!(
        "three members: {operations} operations, {} ambiguous (a storage error while a member was down or the leader changed); {tally:?}; {summary}; {events:?}",
        tally.storage_errors
    );
    assert_eq!(events.len(), 4, "two kills and two restarts: {events:?}");
    assert!(tally.commits_ok + tally.replayed > 0, "{tally:?}");
}

// ---------------------------------------------------------------------------------------------
// Replay files (lockstep::replay, support/process_replay.rs): a failing soak writes one, with its
// seed, its rounds and the driver's plan; `lockstep replay FILE` reruns it through `replay_file`.

/// Soaks `rounds` rounds drawn from `seed` on a fresh local root with `mutant` switched on in
/// every process, with `plan` (a replay file's to follow, or a fresh one).
fn play(
    rounds: usize,
    seed: u64,
    mutant: Option<&'static str>,
    plan: std::rc::Rc<process_replay::Plan>,
) -> (Root, Tally, Result<String, String>) {
    let mut root = Root::new(mutant);
    root.plan = plan;
    let mut tally = Tally::default();
    let (verdict, divergence) = process_replay::play(|| {
        let (t, verdict) = soak(&mut root, rounds, seed);
        tally = t;
        verdict
    });
    if let Some(divergence) = divergence {
        // Only a rerun follows a file; it reads the divergence from the plan's own panic.
        std::panic::panic_any(divergence);
    }
    (root, tally, verdict)
}

/// Writes the replay file of a failed soak and returns the line naming it.
fn record(seed: u64, rounds: usize, root: &Root, failure: &str) -> String {
    process_replay::record(
        "redo",
        "redo_processes",
        "soak",
        seed,
        rounds,
        root.mutant,
        &root.plan,
        failure,
    )
}

/// Reruns a replay file of this target: the one `lockstep replay` names in `$LOCKSTEP_REPLAY`,
/// or else the committed one, a soak of the no-exclusion mutant.
#[test]
fn replay_file() {
    process_replay::replay_test(
        "redo_processes",
        "redo-processes-no-exclusion.json",
        // Another input: another seed, so another plan.
        |file| file.case["seed"] = (file.case["seed"].as_u64().unwrap() ^ 0x5eed).into(),
        |case, mutant, plan| {
            assert_eq!(
                case.scenario, "soak",
                "redo_processes has one scenario, soak"
            );
            play(case.rounds, case.seed, mutant, plan).2.map(|_| ())
        },
    );
}
