//! Real processes (DESIGN §5): `lockstep lock` processes contend on one FsStore root for
//! overlapping POINT and SUBTREE locks and run a worker that logs when it holds them and writes
//! fenced records. A driver SIGKILLs them at random and runs `lockstep recover`, or pauses one
//! past its lease (SIGSTOP) to make a zombie. A checker then proves from the log that no two
//! conflicting holders overlapped and that no stale token was accepted.
//!
//! Rounds scale with `LOCKSTEP_SOAK=1`; `LOCKSTEP_SEED` replays a run (the seed is printed).
//! With the `mutants` feature, each check is shown to catch a planted bug.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

fn now_ns() -> u128 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u128 * 1_000_000_000 + t.tv_nsec as u128
}

struct Run {
    _dir: tempfile::TempDir,
    root: String,
    log: PathBuf,
    /// Kills: (time after the holder is confirmed dead, process group).
    kills: Vec<(u128, i32)>,
    mutant: Option<&'static str>,
}

struct Worker {
    child: Child,
}

impl Run {
    fn new(mutant: Option<&'static str>) -> Run {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_str().unwrap().to_owned();
        let log = dir.path().join("holders.log");
        Run {
            _dir: dir,
            root,
            log,
            kills: Vec::new(),
            mutant,
        }
    }

    fn spawn(
        &self,
        mode: &str,
        paths: &[&str],
        timeout: &str,
        lease: &str,
        hold_ms: u64,
    ) -> Worker {
        let mut command = Command::new(env!("CARGO_BIN_EXE_lockstep"));
        command
            .args([
                "lock",
                "--root",
                &self.root,
                "--mode",
                mode,
                "--timeout",
                timeout,
                "--lease",
                lease,
            ])
            .args(paths)
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_lockstep"))
            .args(["__worker", "--root", &self.root, "--log"])
            .arg(&self.log)
            .args(["--hold-ms", &hold_ms.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        if let Some(name) = self.mutant {
            command.env("LOCKSTEP_MUTANT", name);
        }
        Worker {
            child: command.spawn().unwrap(),
        }
    }

    /// Signals the worker's `lockstep lock` and its COMMAND (which runs in a group of its own).
    fn signal(&self, worker: &Worker, signal: &str) {
        let _ = Command::new("kill")
            .args([signal, "--", &format!("-{}", worker.child.id())])
            .status();
        if let Some(pid) = self.command_pid(worker) {
            let _ = Command::new("kill")
                .args([signal, "--", &format!("-{pid}")])
                .status();
        }
    }

    /// The pid of the worker's COMMAND, once it logged `enter`.
    fn command_pid(&self, worker: &Worker) -> Option<u32> {
        let group = worker.child.id().to_string();
        self.lines().iter().find_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f[0] == "enter" && f[2] == group)
                .then(|| f[5].parse().ok())
                .flatten()
        })
    }

    fn kill(&mut self, mut worker: Worker) {
        self.signal(&worker, "-KILL");
        let _ = worker.child.wait();
        self.kills.push((now_ns(), worker.child.id() as i32));
    }

    fn recover(&self) {
        let status = Command::new(env!("CARGO_BIN_EXE_lockstep"))
            .args(["recover", "--root", &self.root])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    fn wait_for(&self, what: &str, group: u32) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self
            .lines()
            .iter()
            .any(|l| l.starts_with(what) && l.split(' ').nth(2) == Some(&group.to_string()))
        {
            assert!(
                Instant::now() < deadline,
                "worker {group} never logged {what}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Waits for the worker's `lockstep lock` to end; its exit code.
fn finish(worker: Worker) -> Option<i32> {
    let mut child = worker.child;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        assert!(Instant::now() < deadline, "a worker hung");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// One holder's time with its locks: `(start, end, group, locks [(path, kind)])`.
type Interval = (u128, u128, i32, Vec<(String, char)>);

fn conflicts(a: &(String, char), b: &(String, char)) -> bool {
    let below = |ancestor: &str, path: &str| {
        ancestor == "/" && path != "/" || path.starts_with(&format!("{ancestor}/"))
    };
    a.0 == b.0 || (a.1 == 'S' && below(&a.0, &b.0)) || (b.1 == 'S' && below(&b.0, &a.0))
}

/// The checker: intervals of conflicting holders never overlap (unless a holder was deliberately
/// paused past its lease: `exclusion = false`), and each fenced log accepted non-decreasing
/// tokens (so no stale token after a newer one).
fn check(run: &Run, fenced_resources: &[&str], exclusion: bool) -> Result<String, String> {
    let lines = run.lines();
    let mut intervals: Vec<Interval> = Vec::new();
    for line in &lines {
        let fields: Vec<&str> = line.split(' ').collect();
        if fields[0] != "enter" {
            continue;
        }
        let (start, group): (u128, i32) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
        let kinds: Vec<(String, char)> = fields[4]
            .split(',')
            .map(|pair| {
                pair.rsplit_once('=')
                    .map(|(p, k)| (p.to_owned(), k.chars().next().unwrap()))
                    .unwrap()
            })
            .collect();
        let exit = lines.iter().find_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f[0] == "exit" && f[2].parse::<i32>().ok() == Some(group))
                .then(|| f[1].parse::<u128>().unwrap())
        });
        let killed = run.kills.iter().find(|(_, g)| *g == group).map(|(t, _)| *t);
        let end = exit.into_iter().chain(killed).min().unwrap_or(u128::MAX);
        intervals.push((start, end, group, kinds));
    }
    for (i, a) in intervals.iter().enumerate() {
        for b in &intervals[i + 1..] {
            let overlap = a.0 < b.1 && b.0 < a.1;
            let clash = a.3.iter().any(|la| b.3.iter().any(|lb| conflicts(la, lb)));
            if exclusion && overlap && clash {
                return Err(format!(
                    "holders {} {:?} and {} {:?} overlapped",
                    a.2, a.3, b.2, b.3
                ));
            }
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = lockstep::store::FsStore::open(Path::new(&run.root).join(".lockstep")).unwrap();
    let log = lockstep::lock::FencedLog::new(store);
    for resource in fenced_resources {
        let path = lockstep::lock::LockPath::new(resource).unwrap();
        let records = rt.block_on(log.records(&path)).unwrap();
        for pair in records.windows(2) {
            if pair[1].1 < pair[0].1 {
                return Err(format!(
                    "{resource}: token {} accepted after token {}",
                    pair[1].1, pair[0].1
                ));
            }
        }
    }
    Ok(format!(
        "{} holders, {} kills, no overlap, tokens non-decreasing",
        intervals.len(),
        run.kills.len()
    ))
}

const MODES: [(&str, &[&str]); 5] = [
    ("subtree", &["/a"]),
    ("point", &["/a/b"]),
    ("point", &["/a"]),
    ("subtree", &["/a/b"]),
    ("mv", &["/a/b", "/c/moved"]),
];
const RESOURCES: [&str; 3] = ["/a", "/a/b", "/c"];

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

/// Contending workers, some SIGKILLed at random moments, recovery after each round.
fn contend_and_kill(run: &mut Run, rounds: usize, rng: &mut rand::rngs::StdRng) {
    for _ in 0..rounds {
        let mut workers: Vec<Worker> = (0..4)
            .map(|_| {
                let (mode, paths) = MODES[rng.random_range(0..MODES.len())];
                run.spawn(mode, paths, "3", "300", rng.random_range(5..40))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(rng.random_range(0..120)));
        for _ in 0..rng.random_range(0..3) {
            if workers.is_empty() {
                break;
            }
            let victim = workers.swap_remove(rng.random_range(0..workers.len()));
            run.kill(victim);
        }
        for worker in workers {
            finish(worker);
        }
        run.recover();
    }
}

/// A holder paused past its lease (SIGSTOP) loses the lock to a waiter; resumed, its write
/// carries an older token than the waiter's.
///
/// Its COMMAND resumes first and writes (as an application would after a long pause); its
/// `lockstep lock` resumes after that, finds the lease lost, and exits 77.
fn zombie(run: &mut Run) {
    let lease = "0.6";
    let z = run.spawn("point", &["/z"], "0", lease, 400);
    run.wait_for("enter", z.child.id());
    run.signal(&z, "-STOP");
    let w = run.spawn("point", &["/z"], "10", lease, 0);
    finish(w);
    let command = run
        .command_pid(&z)
        .expect("the zombie's COMMAND logged enter");
    let _ = Command::new("kill")
        .args(["-CONT", "--", &format!("-{command}")])
        .status();
    run.wait_for("exit", z.child.id());
    run.signal(&z, "-CONT");
    let status = finish(z);
    assert_eq!(
        status,
        Some(77),
        "the zombie's lockstep lock reports its lost lease"
    );
}

#[test]
fn killed_holders_never_overlap_and_tokens_never_go_back() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed());
    let mut run = Run::new(None);
    contend_and_kill(&mut run, rounds(12), &mut rng);
    let summary = check(&run, &RESOURCES, true).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{summary}");
    assert!(
        !run.kills.is_empty() || rounds(12) < 3,
        "the driver killed nobody"
    );
    let left = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(["locks", "--root", &run.root, "--json"])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&left.stdout).unwrap();
    assert_eq!(
        doc["locks"],
        serde_json::json!([]),
        "every lock released after recovery"
    );
}

#[test]
fn a_paused_zombie_write_is_rejected() {
    let mut run = Run::new(None);
    zombie(&mut run);
    let lines = run.lines();
    let writes: Vec<&String> = lines.iter().filter(|l| l.starts_with("write")).collect();
    assert_eq!(writes.len(), 2, "{lines:?}");
    assert!(
        writes[0].ends_with("accepted") && writes[1].ends_with("rejected"),
        "the zombie writes last and is rejected: {writes:?}"
    );
    // The zombie overlaps the new holder by construction; fencing is what must hold.
    check(&run, &["/z"], false).unwrap();
}

/// With acquisition's re-check skipped, SUBTREE on /a and POINT on /a/b overlap; the checker
/// must see it.
#[cfg(feature = "mutants")]
#[test]
fn the_checker_catches_a_skipped_recheck() {
    let run = Run::new(Some("skip-recheck"));
    for _ in 0..30 {
        let workers: Vec<Worker> = [("subtree", &["/a"][..]), ("point", &["/a/b"][..])]
            .iter()
            .map(|(m, p)| run.spawn(m, p, "0", "300", 150))
            .collect();
        for worker in workers {
            finish(worker);
        }
        if check(&run, &[], true).is_err() {
            return;
        }
    }
    panic!("30 rounds of racing SUBTREE /a and POINT /a/b under skip-recheck and no overlap seen");
}

/// With a fenced log that ignores tokens, the zombie's late write is accepted; the checker must
/// see the token go back.
#[cfg(feature = "mutants")]
#[test]
fn the_checker_catches_a_fence_that_ignores_tokens() {
    let mut run = Run::new(Some("fence-ignores-tokens"));
    zombie(&mut run);
    let error = check(&run, &["/z"], false).expect_err("a stale token was accepted");
    assert!(error.contains("accepted after"), "{error}");
}
