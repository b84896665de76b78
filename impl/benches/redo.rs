//! `cargo bench --bench redo`: criterion over the same redo-log workloads as `lockstep bench
//! redo`. The floor (a raw durable create-if-absent on the same disk) is its own benchmark, so
//! every case can be read beside it; `lockstep bench redo` prints the ratios directly.

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use lockstep::bench::{self, redo};
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

fn commits(c: &mut Criterion) {
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
    per_op(c, "commit phase 1, 1 message (FsStore)", |n| {
        rt.block_on(redo::commit(&fresh(), 1, n.clamp(5, 50), true))
    });
    per_op(c, "commit, 1 message (FsStore)", |n| {
        rt.block_on(redo::commit(&fresh(), 1, n.clamp(5, 50), false))
    });
    per_op(
        c,
        "recovery of 100 pending records, per record (FsStore)",
        |_| {
            rt.block_on(redo::recovery(&fresh(), 100))
                .map(|d| vec![d / 100])
        },
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(5));
    targets = commits
}
criterion_main!(benches);
