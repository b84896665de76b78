//! The store a process harness's processes name on their command lines (`--root DIR` or `--store
//! SPEC`), opened for its checker.

use std::sync::Arc;

use lockstep::store::{Store, StoreSpec};

/// The spec of one process's store arguments (`["--root", DIR]` or `["--store", SPEC]`).
pub fn spec_of(args: &[String]) -> StoreSpec {
    match args[0].as_str() {
        "--root" => StoreSpec::Fs {
            root: args[1].clone().into(),
        },
        _ => StoreSpec::parse(&args[1]).expect("the harness names valid stores"),
    }
}

/// The first of `stores` that opens (an etcd member may be down), on `rt`, which must outlive
/// the store (an etcd client's tasks run on the runtime that opened it). `Ok(None)`: a local
/// store that does not exist yet.
pub fn open_first(
    stores: &[Vec<String>],
    rt: &tokio::runtime::Runtime,
) -> Result<Option<Arc<dyn Store>>, String> {
    let mut last = String::from("no store named");
    for args in stores {
        match rt.block_on(spec_of(args).open(false)) {
            Ok(opened) => return Ok(opened),
            Err(error) => last = error.to_string(),
        }
    }
    Err(last)
}
