//! `lockstep::probe` (the library behind `lockstep probe`): it passes on every correct backend
//! and fails on each broken one, naming the clause the flaw breaks.

use std::sync::Arc;

use lockstep::probe::{self, ProbeReport, SameStore, Verdict};
use lockstep::store::{MemStore, StoreSpec};
use lockstep_tests::broken::{Broken, Flaw};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

fn verdict(report: &ProbeReport, clause: &str) -> Verdict {
    report
        .clauses
        .iter()
        .find(|c| c.clause == clause)
        .unwrap_or_else(|| panic!("no clause {clause}: {report:?}"))
        .verdict
}

#[test]
fn probe_passes_on_memory_and_fs() {
    let rt = rt();
    let report = rt
        .block_on(probe::probe(&SameStore(Arc::new(MemStore::new()))))
        .unwrap();
    assert!(report.passed, "{report:#?}");
    assert_eq!(verdict(&report, "durability"), Verdict::NotApplicable);
    assert_eq!(verdict(&report, "commits"), Verdict::NotApplicable);
    let report = rt
        .block_on(probe::probe(&SameStore(Arc::new(MemStore::with_commits()))))
        .unwrap();
    assert!(report.passed, "{report:#?}");
    assert_eq!(verdict(&report, "commits"), Verdict::Pass, "{report:#?}");
    let dir = tempfile::tempdir().unwrap();
    let opener = probe::opener(StoreSpec::Fs {
        root: dir.path().into(),
    });
    let report = rt.block_on(probe::probe(&*opener)).unwrap();
    assert!(report.passed, "{report:#?}");
    assert_eq!(report.clauses.len(), 9);
    // FsStore offers no commits; every other clause passes.
    assert_eq!(verdict(&report, "commits"), Verdict::NotApplicable);
    assert!(
        report
            .clauses
            .iter()
            .all(|c| c.verdict == Verdict::Pass || c.clause == "commits"),
        "{report:#?}"
    );
    // What it wrote is gone.
    let store = lockstep::store::FsStore::open(dir.path().join(".lockstep")).unwrap();
    let left = rt
        .block_on(lockstep::store::Store::list(&store, "probe/"))
        .unwrap();
    assert!(left.is_empty(), "the probe left {left:?}");
}

/// A store that fails while a clause runs (a dead server, a full disk) leaves that clause not
/// checked (`Error`), not failed: an outage is not a broken contract.
#[test]
fn a_store_error_during_a_clause_is_not_a_failed_clause() {
    let store = lockstep::store::FaultyStore::new(MemStore::new());
    // Operation 3 is inside the first clause (basic semantics).
    store.fail_in(3, lockstep::store::Fault::Unavailable);
    let report = rt()
        .block_on(probe::probe(&SameStore(Arc::new(store))))
        .unwrap();
    assert!(!report.passed, "{report:#?}");
    assert_eq!(
        verdict(&report, "basic semantics"),
        Verdict::Error,
        "{report:#?}"
    );
    assert!(
        report.clauses.iter().all(|c| c.verdict != Verdict::Fail),
        "{report:#?}"
    );
}

#[test]
fn probe_fails_check_then_write_on_its_clause() {
    let report = rt()
        .block_on(probe::probe(&SameStore(Arc::new(Broken::new(
            Flaw::CheckThenWrite,
        )))))
        .unwrap();
    assert!(!report.passed);
    assert_eq!(
        verdict(&report, "exactly one winner under contention"),
        Verdict::Fail
    );
    assert_eq!(verdict(&report, "basic semantics"), Verdict::Pass);
    // Its commits check, then write, too.
    assert_eq!(verdict(&report, "commits"), Verdict::Fail, "{report:#?}");
}

#[test]
fn probe_fails_torn_writes_on_its_clause() {
    let report = rt()
        .block_on(probe::probe(&SameStore(Arc::new(Broken::new(
            Flaw::TornWrites,
        )))))
        .unwrap();
    assert!(!report.passed);
    assert_eq!(verdict(&report, "whole-or-nothing reads"), Verdict::Fail);
    // A create cut short half-way leaves its torn half behind for good: the retry finds the key
    // taken, and the read-back is not the caller's bytes.
    assert_eq!(
        verdict(&report, "ambiguous outcomes"),
        Verdict::Fail,
        "{report:#?}"
    );
}

#[cfg(feature = "etcd")]
#[test]
fn probe_passes_on_etcd() {
    let Some(cluster) = lockstep_tests::etcd_server::shared_or_skip() else {
        return;
    };
    let opener = probe::opener(StoreSpec::Etcd {
        endpoints: cluster.endpoints(),
        prefix: Some(lockstep_tests::etcd_server::fresh_prefix()),
        lease_ttl_s: None,
    });
    let report = rt().block_on(probe::probe(&*opener)).unwrap();
    assert!(report.passed, "{report:#?}");
    assert!(
        report.clauses.iter().all(|c| c.verdict == Verdict::Pass),
        "{report:#?}"
    );
}
