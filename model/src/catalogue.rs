//! The catalogue runner: one named regression per seed bug, per flaw the checker found in an
//! earlier lockstep protocol, and per mutant of the fixed protocols. Each entry gives the smallest
//! world that shows its bug (like etcd's robustness `Regression` scenarios), the property it
//! breaks, and, where one world holds several bugs, a signature that asks for the shortest
//! violation *of this bug*. Tests run every entry and assert the checker still finds it;
//! `lockstep bugs` prints the counterexamples. The entries live with their protocols
//! (`<protocol>/catalogue.rs`); this module knows none.

use std::time::{Duration, Instant};

use serde::Serialize;
use stateright::Expectation;

use crate::check::{check, Budget, CheckOptions, Protocol, Search, ShortestSearch, Signature};
use crate::trace::Trace;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EntryKind {
    /// A race in the protocol as its origin published it.
    SeedBug,
    /// A flaw the checker found in an earlier version of lockstep's own protocol, kept as a
    /// mutant so that the fix stays tested.
    Regression,
    /// A realistic single-point defect planted in the fixed protocol, so that a property is
    /// shown not to pass vacuously.
    Mutant,
}

impl EntryKind {
    pub fn text(self) -> &'static str {
        match self {
            EntryKind::SeedBug => "seed bug",
            EntryKind::Regression => "regression",
            EntryKind::Mutant => "mutant",
        }
    }
}

/// What the entry's protocol is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Basis {
    /// Code that shipped: the model does what the published code does.
    ShippedCode,
    /// A design that was written down but never built: the model implements the text.
    Proposal,
    /// lockstep's own protocol (an earlier version, or the fixed one with a planted defect).
    Lockstep,
}

/// A world a catalogue entry runs: the entry's model and, as a control, the same world with the
/// protocol's fixed variant.
pub trait Scenario: Send + Sync {
    fn variant(&self) -> &'static str;
    /// Runs the entry's model (`control`: the fixed protocol in the same world).
    fn run(&self, property: &str, control: bool, budget: Duration) -> Finding;
    /// Serves stateright's Explorer on the entry's world at `address`; returns only if the
    /// server stops.
    fn serve(&self, address: std::net::SocketAddr);
    /// The Explorer's path (`#/steps/…`) of a behaviour given as the model's own indices
    /// ([`Finding::explorer_steps`]), as `serve` serves the model.
    fn explorer_steps(&self, steps: &[usize]) -> Vec<usize>;
}

/// A scenario over one protocol's model.
pub struct World<M: Protocol>
where
    M::State: std::hash::Hash + Clone + PartialEq + std::fmt::Debug + Send + Sync + 'static,
    M::Action: Clone + std::fmt::Debug + PartialEq + Send + Sync + 'static,
{
    pub model: M,
    pub control: M,
    pub signature: Option<Signature<M>>,
}

impl<M: Protocol> Scenario for World<M>
where
    M::State: std::hash::Hash + Clone + PartialEq + std::fmt::Debug + Send + Sync + 'static,
    M::Action: Clone + std::fmt::Debug + PartialEq + Send + Sync + 'static,
{
    fn variant(&self) -> &'static str {
        self.model.variant_name()
    }

    fn run(&self, property: &str, control: bool, budget: Duration) -> Finding {
        let model = if control { &self.control } else { &self.model };
        run_model(model, property, self.signature, budget)
    }

    fn serve(&self, address: std::net::SocketAddr) {
        crate::explore::serve(self.model.clone(), address);
    }

    fn explorer_steps(&self, steps: &[usize]) -> Vec<usize> {
        crate::explore::explorer_steps(&self.model, steps)
    }
}

/// A behaviour as the Explorer's path of indices (see [`Finding::explorer_steps`]); `None` if a
/// state or action is not where the model lists it (a path that is not the model's).
pub fn explorer_indices<M>(model: &M, path: &[(M::State, Option<M::Action>)]) -> Option<Vec<usize>>
where
    M: Protocol,
    M::State: std::hash::Hash + Clone + PartialEq + std::fmt::Debug + Send + Sync + 'static,
    M::Action: Clone + std::fmt::Debug + PartialEq + Send + Sync + 'static,
{
    let (first, _) = path.first()?;
    let mut indices = vec![model.init_states().iter().position(|s| s == first)?];
    for (state, action) in path {
        let Some(action) = action else { break };
        let mut actions = Vec::new();
        model.actions(state, &mut actions);
        indices.push(actions.iter().position(|a| a == action)?);
    }
    Some(indices)
}

/// One catalogued bug.
pub struct Entry {
    pub id: &'static str,
    pub protocol: &'static str,
    pub kind: EntryKind,
    pub basis: Basis,
    pub title: &'static str,
    /// Where the bug comes from, by public name (a PR, an issue, a spec section).
    pub source: &'static str,
    pub property: &'static str,
    /// What the world must allow for the bug to show (e.g. "a lock_timeout that never expires").
    pub needs: Option<&'static str>,
    pub scenario: Box<dyn Scenario>,
}

/// What running a model for one property found.
#[derive(Clone, Debug)]
pub struct Finding {
    /// `always`: a counterexample was found. `sometimes`: the exhaustive search found no witness.
    pub reproduced: bool,
    /// The search covered every reachable state (so "not reproduced" means "impossible within
    /// the entry's bounds", not "out of budget").
    pub exhaustive: bool,
    pub counterexample: Option<Trace>,
    /// The counterexample as the Explorer's path: the index of its initial state among the
    /// model's, then of each action among those enabled where it was taken (`lockstep explore
    /// --bug` opens it; `None` where there is no counterexample, or the path is not the model's).
    pub explorer_steps: Option<Vec<usize>>,
    /// For a `sometimes` property: the states explored to decide it.
    pub unique_states: Option<usize>,
    pub max_depth: Option<usize>,
}

/// What running one entry found.
#[derive(Clone, Debug, Serialize)]
pub struct BugRun {
    pub id: &'static str,
    pub protocol: &'static str,
    pub kind: EntryKind,
    pub basis: Basis,
    pub title: &'static str,
    pub source: &'static str,
    pub needs: Option<&'static str>,
    pub variant: &'static str,
    pub property: &'static str,
    pub reproduced: bool,
    pub exhaustive: bool,
    /// Steps in the shortest counterexample (`None` for a `sometimes` property that is never
    /// reached: then `unique_states` pins the search that shows it).
    pub trace_len: Option<usize>,
    pub counterexample: Option<Trace>,
    /// [`Finding::explorer_steps`] (not in the JSON of `lockstep bugs`).
    #[serde(skip)]
    pub explorer_steps: Option<Vec<usize>>,
    pub unique_states: Option<usize>,
    pub max_depth: Option<usize>,
    pub seconds: f64,
}

impl Entry {
    pub fn variant(&self) -> &'static str {
        self.scenario.variant()
    }

    /// Runs the entry: a shortest counterexample for an `always` property, an exhaustive search
    /// for a `sometimes` one. `budget` bounds the run.
    pub fn run(&self, budget: Duration) -> BugRun {
        self.run_world(false, budget)
    }

    /// Runs the entry's world with its protocol's fixed variant (a control: the fixed protocol
    /// must keep the property the entry breaks, in the same world).
    pub fn run_fixed(&self, budget: Duration) -> BugRun {
        self.run_world(true, budget)
    }

    fn run_world(&self, control: bool, budget: Duration) -> BugRun {
        let started = Instant::now();
        let found = self.scenario.run(self.property, control, budget);
        BugRun {
            id: self.id,
            protocol: self.protocol,
            kind: self.kind,
            basis: self.basis,
            title: self.title,
            source: self.source,
            needs: self.needs,
            variant: if control { "fixed" } else { self.variant() },
            property: self.property,
            reproduced: found.reproduced,
            exhaustive: found.exhaustive,
            trace_len: found.counterexample.as_ref().map(Trace::len),
            counterexample: found.counterexample,
            explorer_steps: found.explorer_steps,
            unique_states: found.unique_states,
            max_depth: found.max_depth,
            seconds: started.elapsed().as_secs_f64(),
        }
    }
}

/// Runs `model` for one property: the shortest counterexample of an `always` property (with
/// `signature`, if given), or an exhaustive search for a `sometimes` one.
pub fn run_model<M>(
    model: &M,
    property: &str,
    signature: Option<Signature<M>>,
    budget: Duration,
) -> Finding
where
    M: Protocol,
    M::State: std::hash::Hash + Clone + PartialEq + std::fmt::Debug + Send + Sync + 'static,
    M::Action: Clone + std::fmt::Debug + PartialEq + Send + Sync + 'static,
{
    let expectation = model
        .properties()
        .into_iter()
        .find(|p| p.name == property)
        .unwrap_or_else(|| panic!("catalogue names an unknown property {property:?}"))
        .expectation;
    let nothing = Finding {
        reproduced: false,
        exhaustive: false,
        counterexample: None,
        explorer_steps: None,
        unique_states: None,
        max_depth: None,
    };
    match expectation {
        Expectation::Always => {
            let search = ShortestSearch {
                progress: None,
                budget: Budget::until(Instant::now() + budget),
            };
            match search.run(model, property, signature) {
                Search::Found(path) => {
                    // The path the trace tells (regrouped so that each actor's steps sit
                    // together), as the Explorer's indices too: one search serves both.
                    let regrouped = crate::check::regroup(model, &path, Some(property), signature);
                    Finding {
                        reproduced: true,
                        exhaustive: true,
                        counterexample: Some(crate::check::trace_of_regrouped(
                            model, property, &regrouped,
                        )),
                        explorer_steps: explorer_indices(model, &regrouped.path),
                        ..nothing
                    }
                }
                Search::Absent => Finding {
                    exhaustive: true,
                    ..nothing
                },
                Search::OutOfBudget(_) => nothing,
            }
        }
        _ => {
            let options = CheckOptions {
                timeout: Some(budget),
                ..CheckOptions::default()
            };
            let report = check(model, &options);
            let missing = report
                .property(property)
                .is_some_and(|p| p.holds == Some(false));
            Finding {
                reproduced: missing,
                exhaustive: report.complete,
                counterexample: None,
                explorer_steps: None,
                unique_states: Some(report.unique_states),
                max_depth: Some(report.max_depth),
            }
        }
    }
}
