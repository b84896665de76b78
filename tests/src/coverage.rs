//! What the cases of a harness exercised: named counters that the harness bumps as events
//! happen, printed after a run, and asserted non-zero, so that a harness that stopped reaching an
//! event (a crash window, a zombie write) fails instead of passing vacuously. Knows no protocol.

use std::sync::atomic::{AtomicUsize, Ordering};

pub struct Coverage<const N: usize> {
    counters: [(&'static str, AtomicUsize); N],
    /// Events some runs (fewer cases, a slower store) may miss: asserted only when asked.
    rare: &'static [&'static str],
}

impl<const N: usize> Coverage<N> {
    /// Counters named `names`; `skipped` (operations a case could not run) is never asserted.
    pub const fn new(names: [&'static str; N], rare: &'static [&'static str]) -> Coverage<N> {
        let mut counters = [const { ("", AtomicUsize::new(0)) }; N];
        let mut i = 0;
        while i < N {
            counters[i].0 = names[i];
            i += 1;
        }
        Coverage { counters, rare }
    }

    pub fn count(&self, name: &str) {
        let (_, counter) = self
            .counters
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no counter {name}"));
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn reset(&self) {
        for (_, counter) in &self.counters {
            counter.store(0, Ordering::Relaxed);
        }
    }

    /// Prints every count, and asserts that every counter but `skipped` is non-zero: the rare
    /// ones too if `rare_too`.
    pub fn assert_exercised(&self, test: &str, rare_too: bool) {
        let counts: Vec<(&str, usize)> = self
            .counters
            .iter()
            .map(|(name, c)| (*name, c.load(Ordering::Relaxed)))
            .collect();
        eprintln!("{test}: {counts:?}");
        for (name, n) in &counts {
            if *name != "skipped" && (rare_too || !self.rare.contains(name)) {
                assert!(*n > 0, "{test}: nothing {name}: {counts:?}");
            }
        }
    }
}
