//! Stopping a process exactly inside its protocol: a process started with
//! `LOCKSTEP_FAULT=hang-after-creates:N` (test builds) writes `lockstep::store::HANG_NOTICE` to
//! stderr when its store stops answering. The harness waits for that line, not for a guessed
//! number of milliseconds, and kills the process there.

use std::io::{BufRead, BufReader};
use std::process::Child;
use std::sync::mpsc;
use std::time::Duration;

/// Whether `child` (spawned with a piped stderr) announced its hang within `limit`. `false`: it
/// ended first (its protocol made fewer creates than the window, e.g. nothing to merge) or
/// never got there in time. The child is left running either way; the caller kills it.
pub fn wait_for_hang(child: &mut Child, limit: Duration) -> bool {
    let Some(stderr) = child.stderr.take() else {
        panic!("the stopped process needs a piped stderr");
    };
    let (tx, rx) = mpsc::channel();
    // A thread reads, so that the wait has a limit even if the child neither hangs nor ends.
    std::thread::spawn(move || {
        let hung = BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .any(|line| line == lockstep::store::HANG_NOTICE);
        let _ = tx.send(hung);
    });
    rx.recv_timeout(limit).unwrap_or(false)
}
