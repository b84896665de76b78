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
    /// `{"dir":…,"measurements":[{"name","iterations","median_us","p90_us","ratio_to_floor","baseline","ratio_to_baseline"}]}`.
    #[arg(long)]
    json: bool,
}

pub fn bench(args: &BenchArgs) -> Result<u8, String> {
    let parent = args.dir.clone().unwrap_or_else(std::env::temp_dir);
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
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "dir": parent, "measurements": results })
        );
    } else {
        println!(
            "{:<72} {:>10} {:>10} {:>8} {:>11}",
            "case", "median µs", "p90 µs", "× floor", "× small"
        );
        for m in &results {
            let scaled = m
                .ratio_to_baseline
                .map_or(String::new(), |r| format!("{r:.2}"));
            println!(
                "{:<72} {:>10.1} {:>10.1} {:>8.2} {:>11}",
                m.name, m.median_us, m.p90_us, m.ratio_to_floor, scaled
            );
        }
        println!("(× small: the median beside its baseline case in this run: the same case at its small size, or, for a case with merges running, the same without them, or, for recovery, the same number of floor creates one after another)");
    }
    drop(scratch);
    Ok(EXIT_OK)
}
