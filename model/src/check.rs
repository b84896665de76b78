//! Running the checker: an exhaustive depth-first search with symmetry reduction for the verdict,
//! and a breadth-first search for the shortest counterexample of each failed `always` property.
//!
//! Why our own breadth-first search: stateright 0.31 records the *last* violating state it meets
//! (research/verification-crates.md §1), its visitor cannot stop a search, and a catalogued bug
//! sometimes needs its counterexample filtered ("the shortest violation that goes through a torn
//! refresh"). The search below uses the same `Model` (`init_states`, `actions`, `next_state`) and
//! keeps a parent pointer per state, so the first violation it dequeues is a shortest one.

use std::collections::{HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use stateright::{Checker, Expectation, Model};

use crate::trace::Trace;

/// A time limit carried inside a model. stateright 0.31's single-threaded depth-first search
/// only consults its own `timeout` when its local stack runs empty, which on a large space is
/// never, so the limit is enforced through `Model::within_boundary` instead: past the deadline
/// no new state is admitted, the search drains, and the report says it was cut short.
#[derive(Clone, Debug, Default)]
pub struct Budget {
    deadline: Option<Instant>,
    cut: Arc<std::sync::atomic::AtomicBool>,
}

impl Budget {
    pub fn until(deadline: Instant) -> Budget {
        Budget { deadline: Some(deadline), cut: Arc::default() }
    }

    /// Whether a new state may still be explored (call from `within_boundary`).
    pub fn allows(&self) -> bool {
        match self.deadline {
            Some(deadline) if Instant::now() >= deadline => {
                self.cut.store(true, std::sync::atomic::Ordering::Relaxed);
                false
            }
            _ => true,
        }
    }

    /// Whether the deadline cut the search short.
    pub fn was_cut(&self) -> bool {
        self.cut.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// A protocol model the runner can check and print.
pub trait Protocol: Model + Clone + Send + Sync + 'static
where
    Self::State: Hash + Clone + PartialEq + std::fmt::Debug + Send + Sync + 'static,
    Self::Action: Clone + std::fmt::Debug + PartialEq + Send + Sync + 'static,
{
    /// `lock`, `merge` or `redo`.
    fn protocol(&self) -> &'static str;
    fn variant_name(&self) -> &'static str;
    /// The bounds of this check, as reported in `--json`.
    fn bounds(&self) -> serde_json::Value;
    /// A canonicalising function when clients are interchangeable.
    fn symmetry(&self) -> Option<fn(&Self::State) -> Self::State>;
    /// A behaviour as numbered, readable steps.
    fn trace(&self, path: &[(Self::State, Option<Self::Action>)]) -> Trace;
    /// The model with `budget` as its time limit (its `within_boundary` must honour it).
    fn with_budget(&self, budget: Budget) -> Self;
}

/// How to run a check.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    pub threads: usize,
    /// Stop (and report the search incomplete) after this long.
    pub timeout: Option<Duration>,
    /// Stop (and report the search incomplete) after generating this many states.
    pub max_states: Option<usize>,
    /// Print a progress line to stderr every second.
    pub progress: bool,
    /// Do not canonicalise states even where the model allows it (to cross-check symmetry).
    pub no_symmetry: bool,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions { threads: 1, timeout: None, max_states: None, progress: false, no_symmetry: false }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct PropertyReport {
    pub name: &'static str,
    /// `always` or `sometimes`.
    pub kind: &'static str,
    /// `Some(true)`/`Some(false)` when decided; `None` (JSON `null`) when the search stopped
    /// before deciding it (a search cut short proves no `always` and refutes no `sometimes`).
    pub holds: Option<bool>,
    /// For a failed `always`: a shortest behaviour that breaks it. For a `sometimes` that holds:
    /// `null` (the witness is not printed). For a failed `sometimes`: `null` (nothing reaches it).
    pub counterexample: Option<Trace>,
}

/// Why the search stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopReason {
    /// Every reachable state was visited: the verdicts are exhaustive within the bounds.
    Exhausted,
    /// Every property was decided early (some failed); the rest was not explored.
    AllDecided,
    Timeout,
    StateLimit,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub protocol: &'static str,
    pub variant: &'static str,
    pub bounds: serde_json::Value,
    /// States generated (with repeats).
    pub states: usize,
    pub unique_states: usize,
    pub max_depth: usize,
    /// Whether every reachable state was explored.
    pub complete: bool,
    pub stop_reason: StopReason,
    pub symmetry: bool,
    pub seconds: f64,
    pub properties: Vec<PropertyReport>,
}

impl Report {
    /// Every property holds and the search was complete.
    pub fn proven(&self) -> bool {
        self.complete && self.properties.iter().all(|p| p.holds == Some(true))
    }

    /// Some property was decided false (a counterexample, or no witness in a complete search).
    pub fn failed(&self) -> bool {
        self.properties.iter().any(|p| p.holds == Some(false))
    }

    pub fn property(&self, name: &str) -> Option<&PropertyReport> {
        self.properties.iter().find(|p| p.name == name)
    }
}

fn kind_name(expectation: &Expectation) -> &'static str {
    match expectation {
        Expectation::Always => "always",
        Expectation::Sometimes => "sometimes",
        Expectation::Eventually => "eventually",
    }
}

/// Checks every property of `model` exhaustively (within its bounds and the options' limits).
pub fn check<M>(model: &M, options: &CheckOptions) -> Report
where
    M: Protocol,
    M::State: Hash + Clone + PartialEq + std::fmt::Debug + Send + Sync + 'static,
    M::Action: Clone + std::fmt::Debug + PartialEq + Send + Sync + 'static,
{
    let started = Instant::now();
    let properties = model.properties();
    let symmetry = if options.no_symmetry { None } else { model.symmetry() };
    let budget = options.timeout.map_or_else(Budget::default, |t| Budget::until(started + t));
    let mut builder = model.with_budget(budget.clone()).checker().threads(options.threads.max(1));
    if let Some(representative) = symmetry {
        builder = builder.symmetry_fn(representative);
    }
    if let Some(count) = options.max_states {
        builder = builder.target_state_count(count);
    }
    let checker = builder.spawn_dfs();
    let label = format!("{}/{}", model.protocol(), model.variant_name());
    while !checker.is_done() {
        std::thread::sleep(Duration::from_millis(200));
        if options.progress && started.elapsed().as_millis() % 1000 < 200 {
            progress_line(&label, checker.state_count(), checker.unique_state_count(), checker.max_depth(), started);
        }
    }
    let checker = checker.join();
    let elapsed = started.elapsed();
    let discoveries = checker.discoveries();
    let states = checker.state_count();
    let stop_reason = if budget.was_cut() {
        StopReason::Timeout
    } else if options.max_states.is_some_and(|n| states >= n) {
        StopReason::StateLimit
    } else if discoveries.len() == properties.len() {
        StopReason::AllDecided
    } else {
        StopReason::Exhausted
    };
    if options.progress {
        progress_line(&label, states, checker.unique_state_count(), checker.max_depth(), started);
    }
    let failed_always: Vec<&'static str> = properties
        .iter()
        .filter(|p| p.expectation == Expectation::Always && discoveries.contains_key(p.name))
        .map(|p| p.name)
        .collect();
    let budget = options.timeout.map(|t| t.saturating_sub(elapsed).max(Duration::from_secs(10)));
    let mut shortest = HashMap::new();
    for name in failed_always {
        let found = shortest_violation(model, name, None, budget);
        // The depth-first search found a violation; fall back to its path if the breadth-first
        // search ran out of time.
        let trace = match found {
            Some(trace) => trace,
            None => model.trace(&discoveries[name].clone().into_vec()),
        };
        shortest.insert(name, trace);
    }
    let reports = properties
        .iter()
        .map(|p| {
            let discovered = discoveries.contains_key(p.name);
            let complete = stop_reason == StopReason::Exhausted;
            let holds = match p.expectation {
                Expectation::Always | Expectation::Eventually if discovered => Some(false),
                Expectation::Sometimes if discovered => Some(true),
                _ if complete => Some(p.expectation == Expectation::Always),
                _ => None,
            };
            PropertyReport { name: p.name, kind: kind_name(&p.expectation), holds, counterexample: shortest.remove(p.name) }
        })
        .collect();
    Report {
        protocol: model.protocol(),
        variant: model.variant_name(),
        bounds: model.bounds(),
        states,
        unique_states: checker.unique_state_count(),
        max_depth: checker.max_depth(),
        complete: stop_reason == StopReason::Exhausted,
        stop_reason,
        symmetry: symmetry.is_some(),
        seconds: elapsed.as_secs_f64(),
        properties: reports,
    }
}

fn progress_line(label: &str, states: usize, unique: usize, depth: usize, started: Instant) {
    let seconds = started.elapsed().as_secs_f64().max(0.001);
    eprintln!(
        "{label}: {states} states, {unique} unique, depth {depth}, {:.0} states/s, {:.0} s",
        states as f64 / seconds,
        seconds
    );
}

/// What marks a counterexample as a catalogued bug's own: a step that must occur in it, and
/// whether it must be the last step (the one that breaks the property).
pub struct Signature<M: Model> {
    pub step: fn(&M, &M::State, &M::Action) -> bool,
    pub at_end: bool,
}

impl<M: Model> Clone for Signature<M> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M: Model> Copy for Signature<M> {}

/// The shortest behaviour whose last step breaks the `always` property `name` (and that carries
/// `signature`, if given), by breadth-first search without symmetry. `None` if no such behaviour
/// exists within the bounds, or if `budget` ran out.
pub fn shortest_violation<M>(model: &M, name: &str, signature: Option<Signature<M>>, budget: Option<Duration>) -> Option<Trace>
where
    M: Protocol,
    M::State: Hash + Clone + PartialEq + std::fmt::Debug + Send + Sync + 'static,
    M::Action: Clone + std::fmt::Debug + PartialEq + Send + Sync + 'static,
{
    match shortest_path(model, name, signature, budget) {
        Search::Found(path) => Some(model.trace(&path)),
        Search::Absent | Search::OutOfBudget => None,
    }
}

/// The result of a breadth-first search for a counterexample.
#[derive(Debug)]
pub enum Search<S, A> {
    Found(Vec<(S, Option<A>)>),
    /// Every reachable state was searched: there is no such counterexample within the bounds.
    Absent,
    OutOfBudget,
}

/// Like [`shortest_violation`], but returns the raw behaviour.
///
/// A signature that may occur anywhere is tracked as one bit per search node ("seen on the way
/// here"), and states are deduplicated together with that bit, so a state first reached without
/// the signature is searched again when reached with it.
pub fn shortest_path<M>(
    model: &M,
    name: &str,
    signature: Option<Signature<M>>,
    budget: Option<Duration>,
) -> Search<M::State, M::Action>
where
    M: Protocol,
    M::State: Hash + Clone + PartialEq + std::fmt::Debug + Send + Sync + 'static,
    M::Action: Clone + std::fmt::Debug + PartialEq + Send + Sync + 'static,
{
    let property = model
        .properties()
        .into_iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("the model has no property {name:?}"));
    assert!(property.expectation == Expectation::Always, "only an `always` property has a counterexample path");
    let holds = |state: &M::State| (property.condition)(model, state);
    let started = Instant::now();
    // Every node: its state, whether the signature occurred on the way, and its parent link.
    let mut nodes: Vec<Node<M::State, M::Action>> = Vec::new();
    let mut seen: std::collections::HashSet<u64> = std::collections::HashSet::new();
    let mut queue = VecDeque::new();
    for state in model.init_states() {
        if seen.insert(hash_of(&(&state, false))) {
            nodes.push(Node { state: Arc::new(state), signed: false, parent: None });
            queue.push_back(nodes.len() - 1);
        }
    }
    let mut actions = Vec::new();
    while let Some(index) = queue.pop_front() {
        if budget.is_some_and(|b| started.elapsed() > b) {
            return Search::OutOfBudget;
        }
        let state = Arc::clone(&nodes[index].state);
        if !holds(&state) {
            // Only behaviours whose last step broke the property are candidates; a state that
            // already violates it is not searched further (its successors add nothing new).
            continue;
        }
        actions.clear();
        model.actions(&state, &mut actions);
        for action in actions.drain(..) {
            let Some(next) = model.next_state(&state, action.clone()) else { continue };
            if !model.within_boundary(&next) {
                continue;
            }
            let marked = signature.is_some_and(|sig| (sig.step)(model, &state, &action));
            let signed = nodes[index].signed || marked;
            if !holds(&next) {
                let wanted = match signature {
                    None => true,
                    Some(sig) if sig.at_end => marked,
                    Some(_) => signed,
                };
                if wanted {
                    nodes.push(Node { state: Arc::new(next), signed, parent: Some((index, action)) });
                    return Search::Found(rebuild(&nodes, nodes.len() - 1));
                }
                continue;
            }
            let key = if signature.is_some_and(|sig| !sig.at_end) { signed } else { false };
            if !seen.insert(hash_of(&(&next, key))) {
                continue;
            }
            nodes.push(Node { state: Arc::new(next), signed, parent: Some((index, action)) });
            queue.push_back(nodes.len() - 1);
        }
    }
    Search::Absent
}

struct Node<S, A> {
    state: Arc<S>,
    signed: bool,
    parent: Option<(usize, A)>,
}

fn hash_of<T: Hash>(value: &T) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

fn rebuild<S: Clone, A: Clone>(nodes: &[Node<S, A>], last: usize) -> Vec<(S, Option<A>)> {
    let mut reversed = vec![((*nodes[last].state).clone(), None)];
    let mut cursor = last;
    while let Some((parent, action)) = &nodes[cursor].parent {
        reversed.push(((*nodes[*parent].state).clone(), Some(action.clone())));
        cursor = *parent;
    }
    reversed.reverse();
    reversed
}
