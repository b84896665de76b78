//! The only place the implementation imports locks and atomics from. Under `--cfg loom` they
//! are loom's, so the loom tests explore every interleaving of the code that uses them; otherwise
//! with the test-only `shuttle` feature they are shuttle's; otherwise std's. (tokio's own
//! `src/loom/mod.rs` does the same.)

#[cfg(loom)]
pub use loom::sync::atomic::{AtomicU64, Ordering};
#[cfg(loom)]
pub use loom::sync::{Arc, Mutex, MutexGuard};

#[cfg(all(feature = "shuttle", not(loom)))]
pub use shuttle::sync::atomic::{AtomicU64, Ordering};
#[cfg(all(feature = "shuttle", not(loom)))]
pub use shuttle::sync::{Arc, Mutex, MutexGuard};

#[cfg(not(any(loom, feature = "shuttle")))]
pub use std::sync::atomic::{AtomicU64, Ordering};
#[cfg(not(any(loom, feature = "shuttle")))]
pub use std::sync::{Arc, Mutex, MutexGuard};

/// Locks a mutex; a poisoned mutex means a thread panicked while holding it, which is a bug.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .expect("a thread panicked while holding a lockstep mutex")
}
