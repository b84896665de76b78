//! `cargo bench`: criterion over the same workloads as `lockstep bench`. The floor (a raw durable
//! create-if-absent on the same disk) is its own benchmark in each group, so every case can be
//! read beside it. `lockstep bench` prints the ratios directly.

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use lockstep::bench;
use lockstep::store::{FsStore, MemStore, Store};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

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

fn locks(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let fs = || -> Arc<dyn Store> {
        Arc::new(FsStore::open(dir.path().join(format!("s{}", rand_suffix()))).unwrap())
    };
    per_op(c, "floor: durable create-if-absent (FsStore)", |n| {
        rt.block_on(bench::floor_create(fs(), n.max(10)))
    });
    per_op(c, "point acquire+release (FsStore)", |n| {
        rt.block_on(bench::point_cycle(fs(), n.max(10)))
    });
    per_op(c, "point acquire+release (MemStore)", |n| {
        rt.block_on(bench::point_cycle(Arc::new(MemStore::new()), n.max(10)))
    });
    per_op(c, "subtree acquire+release, 10 files (FsStore)", |n| {
        rt.block_on(bench::subtree_over_files(
            &dir.path().join(format!("few{}", rand_suffix())),
            10,
            n.max(10),
        ))
    });
    per_op(c, "subtree acquire+release, 100000 files (FsStore)", |n| {
        rt.block_on(bench::subtree_over_files(
            &dir.path().join(format!("many{}", rand_suffix())),
            100_000,
            n.max(10),
        ))
    });
    per_op(c, "8 tasks contending on one path (FsStore)", |n| {
        rt.block_on(bench::contended(fs(), 8, (n / 8).max(2)))
    });
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(5));
    targets = locks
}
criterion_main!(benches);
