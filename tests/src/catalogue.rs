//! Running catalogue entries in tests: every entry is still found, its counterexample length (or,
//! for a `sometimes` property, the size of the search that shows no witness) is pinned, and the
//! fixed protocol keeps the property in the very world that shows the bug.

use std::time::Duration;

/// What an entry's run must show.
pub enum Expect {
    /// A counterexample of exactly this many steps, with a closing line.
    Steps(usize),
    /// No witness, in an exhaustive search of exactly this many states.
    Unreached { unique_states: usize },
}

/// Runs entry `id` and its fixed-protocol control, and checks `expect`.
pub fn assert_entry(id: &str, expect: Expect) {
    let entry = lockstep_model::catalogue()
        .into_iter()
        .find(|e| e.id == id)
        .unwrap_or_else(|| panic!("no entry {id}"));
    let run = entry.run(Duration::from_secs(180));
    assert!(run.reproduced, "{id} was not reproduced");
    match expect {
        Expect::Steps(len) => {
            let trace = run
                .counterexample
                .as_ref()
                .expect("an always property has a counterexample");
            assert_eq!(
                trace.len(),
                len,
                "{id}: counterexample length changed:\n{trace}"
            );
            assert!(
                trace.conclusion.is_some(),
                "{id}: the trace must end with what it breaks:\n{trace}"
            );
            // The regrouping's complete search finished: the switches are the fewest of any
            // reordering (`lockstep bugs` says so; the README claims it for every entry).
            assert!(
                trace.switches_fewest,
                "{id}: the regrouping fell back to the local search:\n{trace}"
            );
            // Every counterexample is drawn (`lockstep bugs --svg`), and the drawing must show it.
            crate::diagram::assert_drawings(id, entry.title, entry.property, trace);
        }
        Expect::Unreached { unique_states } => {
            assert!(
                run.exhaustive,
                "{id}: the search for a witness was cut short"
            );
            assert_eq!(
                run.unique_states,
                Some(unique_states),
                "{id}: the search's size changed"
            );
        }
    }
    let control = entry.run_fixed(Duration::from_secs(180));
    assert!(
        control.exhaustive && !control.reproduced,
        "{id}: the fixed protocol breaks \"{}\" in the same world",
        entry.property
    );
}

/// One test per catalogue entry of `$protocol`, and a test that no entry of the protocol is left
/// without one.
#[macro_export]
macro_rules! catalogue_tests {
    ($protocol:literal { $($name:ident: $id:literal => $expect:expr;)* }) => {
        $(
            #[test]
            fn $name() {
                #[allow(unused_imports)]
                use $crate::catalogue::Expect::*;
                $crate::catalogue::assert_entry($id, $expect);
            }
        )*

        /// Every catalogue entry of the protocol has a test above.
        #[test]
        fn every_entry_has_a_test() {
            let tested = [$($id),*];
            for entry in lockstep_model::entries(Some($protocol)) {
                assert!(tested.contains(&entry.id), "catalogue entry {} has no test", entry.id);
            }
        }
    };
}
