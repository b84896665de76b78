//! `lockstep probe`: the storage contract against a live store, a verdict per clause.

use clap::Args;

use crate::cli::{EXIT_OK, EXIT_PROPERTY_FAILED, EXIT_STORAGE};
use crate::locks::{Failure, RootArg};

#[derive(Args)]
pub struct ProbeArgs {
    #[command(flatten)]
    pub root: RootArg,
    /// `{"store","clauses":[{"clause","verdict","detail"}…],"passed","seconds"}` on stdout.
    #[arg(long)]
    pub json: bool,
}

pub async fn probe(args: ProbeArgs) -> Result<u8, Failure> {
    let spec = args.root.spec()?;
    if !matches!(spec, lockstep::store::StoreSpec::Mem) {
        crate::locks::check_root(&spec)?;
    }
    let opener = lockstep::probe::opener(spec);
    let report = lockstep::probe::probe(&*opener).await?;
    if args.json {
        println!("{}", serde_json::to_string(&report).expect("serialises"));
    } else {
        println!("probe of {} ({:.1} s)", report.store, report.seconds);
        for clause in &report.clauses {
            let verdict = match clause.verdict {
                lockstep::probe::Verdict::Pass => "pass",
                lockstep::probe::Verdict::Fail => "FAIL",
                lockstep::probe::Verdict::NotApplicable => "n/a",
                lockstep::probe::Verdict::Error => "ERR",
            };
            println!("  {verdict:<4} {:<36} {}", clause.clause, clause.detail);
        }
        println!(
            "{}",
            if report.passed {
                "the store meets the contract the protocols rest on (specs/backends.md)"
            } else if failed(&report) {
                "the store does NOT meet the contract: the protocols' proofs do not hold on it"
            } else {
                "the store failed during the probe (ERR): the contract was not checked in full"
            }
        );
    }
    // A broken clause outranks a store that failed: it is a finding about the store.
    Ok(if report.passed {
        EXIT_OK
    } else if failed(&report) {
        EXIT_PROPERTY_FAILED
    } else {
        EXIT_STORAGE
    })
}

fn failed(report: &lockstep::probe::ProbeReport) -> bool {
    report
        .clauses
        .iter()
        .any(|c| c.verdict == lockstep::probe::Verdict::Fail)
}
