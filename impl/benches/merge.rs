//! `cargo bench --bench merge`: criterion over the same merge workloads as `lockstep bench
//! merge`. The floor (a raw durable create-if-absent on the same disk) is its own benchmark, so
//! every case can be read beside it; `lockstep bench merge` prints the ratios directly.

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use lockstep::bench::{self, merge};
use lockstep::store::{FsStore, Store};

/// Runs a workload that returns per-operation samples and reports their mean to criterion.
fn per_op(
    c: &mut Criterion,
    name: &str,
    work: impl Fn(usize) -> Result<Vec<Duration>, bench::BenchError>,
) {
    c.bench_function(name, |b| {
        b.iter_custom(|iterations| {
            let samples = work(iterations as usize).expect("the benchmark workload runs");
            samples.iter().sum::<Duration>() * (iterations as u32) / (samples.len().max(1) as u32)
        })
    });
}

fn merges(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fresh = || dir.path().join(format!("s{}", rand::random::<u64>()));
    per_op(c, "floor: durable create-if-absent (FsStore)", |n| {
        let store: Arc<dyn Store> = Arc::new(FsStore::open(fresh()).unwrap());
        rt.block_on(bench::floor_create(store, n.max(10)))
    });
    per_op(c, "merge of 1 child commit (FsStore)", |n| {
        rt.block_on(merge::merge_of(&fresh(), 1, n.max(5)))
    });
    per_op(c, "merge of 100 child commits (FsStore)", |n| {
        rt.block_on(merge::merge_of(&fresh(), 100, n.clamp(2, 20)))
    });
    // Each sample is a round of 20 commits beside a merger merging back to back; criterion
    // reports the mean time per commit. `lockstep bench merge` alternates such rounds with
    // rounds of the writer alone, which is what its ratio needs.
    per_op(
        c,
        "child commit, a merger merging in a loop (FsStore)",
        |n| {
            let mut rounds = rt.block_on(merge::writer_rounds(
                &fresh(),
                &[merge::Load::MergeLoop],
                n.max(2),
                20,
            ))?;
            Ok(rounds.remove(0))
        },
    );
    per_op(
        c,
        "4 mergers of one branch, time to the first merge (FsStore)",
        |n| rt.block_on(merge::first_of_four(&fresh(), n.clamp(2, 20))),
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(5));
    targets = merges
}
criterion_main!(benches);
