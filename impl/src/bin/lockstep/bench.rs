//! `lockstep bench`: each case beside the floor measured in the same run.

use clap::Args;

use crate::cli::{EXIT_OK, EXIT_STORAGE};

#[derive(Args)]
pub struct BenchArgs {
    /// Which protocol's cases: `lock` (the path locks, the default), `merge` or `redo`.
    #[arg(value_parser = ["lock", "merge", "redo"], default_value = "lock")]
    protocol: String,
    /// Directory whose disk is measured: the benchmark works in a fresh temporary directory
    /// inside it and removes it afterwards. The system's temporary directory by default.
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
    /// Fewer iterations and a 10,000-file tree instead of 100,000.
    #[arg(long)]
    quick: bool,
    /// `{"dir":…,"measurements":[{"name","iterations","median_us","p90_us","ratio_to_floor","floor_us","baseline","ratio_to_baseline"}]}`.
    #[arg(long)]
    json: bool,
    /// Measure on this store instead of a local directory: `etcd:URL[,URL…]` runs the etcd
    /// cases (the floor, etcd's own Lock+Unlock, a point acquire+release, a merge of 100
    /// commits, a redo commit) under a prefix of their own, deleted afterwards; `fs:DIR` is
    /// `--dir DIR`.
    #[arg(long, value_name = "SPEC", conflicts_with = "dir")]
    store: Option<String>,
}

pub fn bench(args: &BenchArgs) -> Result<u8, String> {
    let mut dir = args.dir.clone();
    match args
        .store
        .as_deref()
        .map(lockstep::store::StoreSpec::parse)
        .transpose()?
    {
        None => {}
        Some(lockstep::store::StoreSpec::Fs { root }) => dir = Some(root),
        Some(lockstep::store::StoreSpec::Mem) => {
            return Err(
                "bench measures a store's durability: use --dir, fs:DIR or etcd:URL, not mem"
                    .into(),
            )
        }
        Some(lockstep::store::StoreSpec::Etcd {
            endpoints, prefix, ..
        }) => return bench_etcd(args, &endpoints, prefix),
    }
    let parent = dir.unwrap_or_else(std::env::temp_dir);
    if !parent.is_dir() {
        return Err(format!("--dir {} is not a directory", parent.display()));
    }
    let scratch = tempfile::Builder::new()
        .prefix("lockstep-bench-")
        .tempdir_in(&parent)
        .map_err(|e| {
            format!(
                "cannot create a scratch directory in {}: {e}",
                parent.display()
            )
        })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let work = async {
        if args.protocol == "merge" {
            lockstep::bench::merge::run_all(scratch.path(), args.quick).await
        } else if args.protocol == "redo" {
            lockstep::bench::redo::run_all(scratch.path(), args.quick).await
        } else {
            lockstep::bench::run_all(scratch.path(), args.quick).await
        }
    };
    let results = match runtime.block_on(work) {
        Ok(results) => results,
        Err(error) => {
            eprintln!("lockstep: benchmark failed: {error}");
            return Ok(EXIT_STORAGE);
        }
    };
    print(args, serde_json::json!(parent), &results);
    drop(scratch);
    Ok(EXIT_OK)
}

/// `bench --store etcd:…`.
#[cfg(feature = "etcd")]
fn bench_etcd(
    args: &BenchArgs,
    endpoints: &[String],
    prefix: Option<String>,
) -> Result<u8, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let base = prefix.unwrap_or_else(|| "lockstep/".into());
    let namespace = format!("{base}bench-{:x}/", rand::random::<u64>());
    let results = runtime.block_on(async {
        let results = lockstep::bench::etcd::run_all(endpoints, &namespace, args.quick).await;
        lockstep::bench::etcd::clean(endpoints, &namespace).await;
        results
    });
    match results {
        Ok(results) => {
            print(args, serde_json::json!(endpoints.join(",")), &results);
            Ok(EXIT_OK)
        }
        Err(error) => {
            eprintln!("lockstep: benchmark failed: {error}");
            Ok(EXIT_STORAGE)
        }
    }
}

#[cfg(not(feature = "etcd"))]
fn bench_etcd(_: &BenchArgs, _: &[String], _: Option<String>) -> Result<u8, String> {
    Err("this lockstep was built without etcd support: build it with `--features etcd`".into())
}

fn print(args: &BenchArgs, place: serde_json::Value, results: &[lockstep::bench::Measurement]) {
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "dir": place, "measurements": results })
        );
    } else {
        println!(
            "{:<72} {:>10} {:>10} {:>10} {:>8} {:>11}",
            "case", "median µs", "p90 µs", "floor µs", "× floor", "× small"
        );
        for m in results {
            let scaled = m
                .ratio_to_baseline
                .map_or(String::new(), |r| format!("{r:.2}"));
            println!(
                "{:<72} {:>10.1} {:>10.1} {:>10.1} {:>8.2} {:>11}",
                m.name, m.median_us, m.p90_us, m.floor_us, m.ratio_to_floor, scaled
            );
        }
        println!("(floor µs: the floor median the case is divided by; for the path-lock cases on FsStore, floor creates timed between the case's own samples, or right after the contended case)");
        println!("(× small: the median beside its baseline case in this run: the same case at its small size, or, for the merge bench's writer beside a load (merges, a disk neighbour), its total time over that of its rounds alone run between them, or, for recovery, the same number of floor creates one after another, or, on etcd, etcd's own Lock+Unlock)");
    }
}
