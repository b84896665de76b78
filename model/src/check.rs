//! Running the checker: an exhaustive depth-first search with symmetry reduction for the verdict,
//! and a breadth-first search for the shortest counterexample of each failed `always` property.
//!
//! Why our own breadth-first search: stateright 0.31 records the *last* violating state it meets,
//! its visitor cannot stop a search, and a catalogued bug sometimes needs its counterexample
//! filtered ("the shortest violation that goes through a torn refresh"). The search below uses
//! the same `Model` (`init_states`, `actions`, `next_state`); it keeps a 64-bit fingerprint and a
//! parent link per state and full states only for the frontier, and rebuilds the path by
//! replaying action indices, so the first violation it meets is a shortest one and its memory is
//! a few dozen bytes per state.
//!
//! Every phase honours the same [`Budget`] (time and memory) and prints progress to stderr.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use stateright::{Checker, Expectation, Model};

pub use crate::regroup::{regroup, Regrouped};
use crate::trace::Trace;

/// Why a budget cut a search short.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cut {
    Time,
    Memory,
}

/// The time and memory limits of a search, carried inside a model. stateright 0.31's
/// single-threaded depth-first search only consults its own `timeout` when its local stack runs
/// empty, which on a large space is never, so the limits are enforced through
/// `Model::within_boundary`: past a limit no new state is admitted, the search drains, and the
/// report says it was cut short and why.
#[derive(Clone, Debug, Default)]
pub struct Budget {
    deadline: Option<Instant>,
    memory_max_bytes: Option<u64>,
    calls: Arc<AtomicU64>,
    /// 0: not cut; 1: time; 2: memory.
    cut: Arc<AtomicU8>,
}

/// How often (in admitted states) the resident memory is read from /proc.
const MEMORY_SAMPLE_EVERY: u64 = 1 << 14;
/// How often (in admitted states) the clock is read.
const CLOCK_SAMPLE_EVERY: u64 = 1 << 8;

impl Budget {
    pub fn new(deadline: Option<Instant>, memory_max_bytes: Option<u64>) -> Budget {
        Budget {
            deadline,
            memory_max_bytes,
            ..Budget::default()
        }
    }

    pub fn until(deadline: Instant) -> Budget {
        Budget::new(Some(deadline), None)
    }

    /// Whether a new state may still be explored (call from `within_boundary`). The clock is
    /// read every [`CLOCK_SAMPLE_EVERY`] calls and the memory every [`MEMORY_SAMPLE_EVERY`].
    pub fn allows(&self) -> bool {
        if self.cut.load(Ordering::Relaxed) != 0 {
            return false;
        }
        if self.deadline.is_none() && self.memory_max_bytes.is_none() {
            return true;
        }
        let calls = self.calls.fetch_add(1, Ordering::Relaxed);
        if calls % CLOCK_SAMPLE_EVERY == 0 && self.deadline.is_some_and(|d| Instant::now() >= d) {
            self.cut.store(1, Ordering::Relaxed);
            return false;
        }
        if let Some(max) = self.memory_max_bytes {
            if calls % MEMORY_SAMPLE_EVERY == 0 && resident_bytes().is_some_and(|rss| rss >= max) {
                self.cut.store(2, Ordering::Relaxed);
                return false;
            }
        }
        true
    }

    /// Whether (and why) a limit cut the search short.
    pub fn was_cut(&self) -> Option<Cut> {
        match self.cut.load(Ordering::Relaxed) {
            0 => None,
            1 => Some(Cut::Time),
            _ => Some(Cut::Memory),
        }
    }

    /// The same limits with a fresh cut flag (for the next phase of a check).
    pub fn renewed(&self) -> Budget {
        Budget::new(self.deadline, self.memory_max_bytes)
    }
}

/// The resident set size of this process (Linux), if it can be read.
pub fn resident_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// A safe default memory budget: half of the memory available now (Linux), or 4 GiB.
pub fn default_memory_budget() -> u64 {
    let available = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        });
    available.map_or(4 << 30, |bytes| bytes / 2)
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
    /// What the last state of a counterexample of `property` breaks, in words.
    fn conclusion(
        &self,
        property: &str,
        path: &[(Self::State, Option<Self::Action>)],
    ) -> Option<String>;
    /// The model with `budget` as its limits (its `within_boundary` must honour it).
    fn with_budget(&self, budget: Budget) -> Self;
}

/// A counterexample of `property` as people read it, with its closing line. Its steps are first
/// regrouped (see [`regroup`]) so that each actor's steps sit together where they commute.
pub fn counterexample<M>(model: &M, property: &str, path: &[(M::State, Option<M::Action>)]) -> Trace
where
    M: Protocol,
    M::State: Hash + Clone + PartialEq + std::fmt::Debug + Send + Sync + 'static,
    M::Action: Clone + std::fmt::Debug + PartialEq + Send + Sync + 'static,
{
    counterexample_of(model, property, path, None)
}

/// [`counterexample`] of a catalogued bug: the regrouping keeps `signature`'s step in the trace
/// (at its end, if the signature says so).
pub fn counterexample_of<M>(
    model: &M,
    property: &str,
    path: &[(M::State, Option<M::Action>)],
    signature: Option<Signature<M>>,
) -> Trace
where
    M: Protocol,
    M::State: Hash + Clone + PartialEq + std::fmt::Debug + Send + Sync + 'static,
    M::Action: Clone + std::fmt::Debug + PartialEq + Send + Sync + 'static,
{
    let regrouped = regroup(model, path, Some(property), signature);
    trace_of_regrouped(model, property, &regrouped)
}

/// The trace of a behaviour [`regroup`] returned, as [`counterexample_of`] tells it.
pub fn trace_of_regrouped<M>(
    model: &M,
    property: &str,
    regrouped: &Regrouped<M::State, M::Action>,
) -> Trace
where
    M: Protocol,
    M::State: Hash + Clone + PartialEq + std::fmt::Debug + Send + Sync + 'static,
    M::Action: Clone + std::fmt::Debug + PartialEq + Send + Sync + 'static,
{
    let mut trace = model.trace(&regrouped.path);
    trace.conclusion = model.conclusion(property, &regrouped.path);
    if regrouped.before > trace.switches {
        trace.switches_before_regrouping = Some(regrouped.before);
    }
    trace.switches_fewest = regrouped.fewest;
    trace
}

/// How to run a check.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    pub threads: usize,
    /// Stop (and report the search incomplete) after this long.
    pub timeout: Option<Duration>,
    /// Stop (and report the search incomplete) after generating this many states.
    pub max_states: Option<usize>,
    /// Stop (and report the search incomplete) when the process's resident memory reaches this.
    pub max_memory_bytes: Option<u64>,
    /// Print a progress line to stderr every second.
    pub progress: bool,
    /// Do not canonicalise states even where the model allows it (to cross-check symmetry).
    pub no_symmetry: bool,
    /// What progress lines call this search (default: `protocol/variant`).
    pub label: Option<String>,
    /// A limit of its own for the search for shortest counterexamples (past it, the depth-first
    /// search's counterexample is reported, labelled as such).
    pub shortest_timeout: Option<Duration>,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            threads: 1,
            timeout: None,
            max_states: None,
            max_memory_bytes: None,
            progress: false,
            no_symmetry: false,
            label: None,
            shortest_timeout: None,
        }
    }
}

/// How a counterexample was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Found {
    /// By a breadth-first search that reached it: no shorter one exists within the bounds.
    Shortest,
    /// By the depth-first search; the breadth-first search for a shortest one ran out of its
    /// budget, so a shorter one may exist.
    DepthFirst,
}

#[derive(Clone, Debug, Serialize)]
pub struct PropertyReport {
    pub name: &'static str,
    /// `always` or `sometimes`.
    pub kind: &'static str,
    /// `Some(true)`/`Some(false)` when decided; `None` (JSON `null`) when the search stopped
    /// before deciding it (a search cut short proves no `always` and refutes no `sometimes`).
    pub holds: Option<bool>,
    /// For a failed `always`: a behaviour that breaks it. For a `sometimes` that holds: `null`
    /// (the witness is not printed). For a failed `sometimes`: `null` (nothing reaches it).
    pub counterexample: Option<Trace>,
    /// How the counterexample was found (`shortest` only from a breadth-first search).
    pub found_by: Option<Found>,
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
    MemoryLimit,
}

impl StopReason {
    pub fn text(self) -> &'static str {
        match self {
            StopReason::Exhausted => "every reachable state explored",
            StopReason::AllDecided => "every property decided before the search ended",
            StopReason::Timeout => "time limit reached",
            StopReason::StateLimit => "state limit reached",
            StopReason::MemoryLimit => "memory limit reached",
        }
    }
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
    /// The largest resident memory seen (bytes), if it could be read.
    pub memory_bytes: Option<u64>,
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
    let symmetry = if options.no_symmetry {
        None
    } else {
        model.symmetry()
    };
    let budget = Budget::new(
        options.timeout.map(|t| started + t),
        options.max_memory_bytes,
    );
    let mut builder = model
        .with_budget(budget.clone())
        .checker()
        .threads(options.threads.max(1));
    if let Some(representative) = symmetry {
        builder = builder.symmetry_fn(representative);
    }
    if let Some(count) = options.max_states {
        builder = builder.target_state_count(count);
    }
    let checker = builder.spawn_dfs();
    let label = options
        .label
        .clone()
        .unwrap_or_else(|| format!("{}/{}", model.protocol(), model.variant_name()));
    let mut memory_seen = resident_bytes();
    let mut last_line = Instant::now();
    while !checker.is_done() {
        std::thread::sleep(Duration::from_millis(100));
        memory_seen = memory_seen.max(resident_bytes());
        if options.progress && last_line.elapsed() >= Duration::from_secs(1) {
            last_line = Instant::now();
            let line = Progress {
                label: &label,
                phase: "search",
                states: checker.state_count(),
                unique: checker.unique_state_count(),
                depth: checker.max_depth(),
                started,
            };
            line.print();
        }
    }
    let checker = checker.join();
    let elapsed = started.elapsed();
    let discoveries = checker.discoveries();
    let states = checker.state_count();
    let stop_reason = match budget.was_cut() {
        Some(Cut::Time) => StopReason::Timeout,
        Some(Cut::Memory) => StopReason::MemoryLimit,
        None if options.max_states.is_some_and(|n| states >= n) => StopReason::StateLimit,
        None if discoveries.len() == properties.len() => StopReason::AllDecided,
        None => StopReason::Exhausted,
    };
    if options.progress {
        let line = Progress {
            label: &label,
            phase: "search",
            states,
            unique: checker.unique_state_count(),
            depth: checker.max_depth(),
            started,
        };
        line.print();
    }
    let failed_always: Vec<&'static str> = properties
        .iter()
        .filter(|p| p.expectation == Expectation::Always && discoveries.contains_key(p.name))
        .map(|p| p.name)
        .collect();
    let mut counterexamples = HashMap::new();
    if !failed_always.is_empty() {
        // One breadth-first search for every failed property. It gets the rest of the time limit
        // (at least 10 s), or `shortest_timeout`, and the same memory limit.
        let time_left = options.timeout.map(|t| {
            t.saturating_sub(started.elapsed())
                .max(Duration::from_secs(10))
        });
        let limit = match (time_left, options.shortest_timeout) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let phase_budget = Budget::new(limit.map(|t| Instant::now() + t), options.max_memory_bytes);
        let search = ShortestSearch {
            progress: options
                .progress
                .then(|| format!("{label}: shortest counterexamples")),
            budget: phase_budget,
        };
        let found = search.run_many(model, &failed_always);
        for (name, result) in failed_always.iter().zip(found) {
            let found = match result {
                Search::Found(path) => (counterexample(model, name, &path), Found::Shortest),
                // The depth-first search found a violation; report its path, labelled as such.
                Search::Absent | Search::OutOfBudget(_) => (
                    counterexample(model, name, &discoveries[name].clone().into_vec()),
                    Found::DepthFirst,
                ),
            };
            counterexamples.insert(*name, found);
        }
        memory_seen = memory_seen.max(resident_bytes());
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
            let found = counterexamples.remove(p.name);
            PropertyReport {
                name: p.name,
                kind: kind_name(&p.expectation),
                holds,
                found_by: found.as_ref().map(|(_, by)| *by),
                counterexample: found.map(|(trace, _)| trace),
            }
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
        memory_bytes: memory_seen,
        properties: reports,
    }
}

/// One progress line on stderr.
struct Progress<'a> {
    label: &'a str,
    phase: &'a str,
    states: usize,
    unique: usize,
    depth: usize,
    started: Instant,
}

impl Progress<'_> {
    fn print(&self) {
        let seconds = self.started.elapsed().as_secs_f64().max(0.001);
        let memory = resident_bytes().map_or(String::new(), |b| format!(", {} MB", b >> 20));
        eprintln!(
            "{} [{}]: {} states, {} unique, depth {}, {:.0} states/s, {:.0} s{memory}",
            self.label,
            self.phase,
            self.states,
            self.unique,
            self.depth,
            self.states as f64 / seconds,
            seconds
        );
    }
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

/// The result of a breadth-first search for a counterexample.
#[derive(Debug)]
pub enum Search<S, A> {
    /// A shortest behaviour whose last step breaks the property.
    Found(Vec<(S, Option<A>)>),
    /// Every reachable state was searched: there is no such counterexample within the bounds.
    Absent,
    /// A limit stopped the search first.
    OutOfBudget(Cut),
}

/// The breadth-first search for a shortest counterexample, with its limits and progress.
pub struct ShortestSearch {
    /// A label for progress lines on stderr, or `None` for silence.
    pub progress: Option<String>,
    pub budget: Budget,
}

/// One searched state: its parent's index and the index of the action that led here (in the
/// order `Model::actions` lists them), or `None` for an initial state (then `action` is its
/// index among the initial states).
struct Node {
    parent: Option<u32>,
    action: u32,
}

impl ShortestSearch {
    /// A shortest behaviour whose last step breaks the `always` property `name` and that carries
    /// `signature` (if given), searched without symmetry.
    ///
    /// A signature that may occur anywhere is tracked as one bit per search node ("seen on the
    /// way here"), and states are deduplicated together with that bit, so a state first reached
    /// without the signature is searched again when reached with it.
    pub fn run<M>(
        &self,
        model: &M,
        name: &str,
        signature: Option<Signature<M>>,
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
        assert!(
            property.expectation == Expectation::Always,
            "only an `always` property has a counterexample path"
        );
        let model = model.with_budget(self.budget.clone());
        let holds = |state: &M::State| (property.condition)(&model, state);
        let started = Instant::now();
        let mut last_line = Instant::now();
        let mut nodes: Vec<Node> = Vec::new();
        let mut seen: std::collections::HashSet<u64> = std::collections::HashSet::new();
        // The frontier: (node index, whether the signature occurred on the way, state).
        let mut frontier: Vec<(u32, bool, M::State)> = Vec::new();
        let inits = model.init_states();
        for (index, state) in inits.iter().enumerate() {
            if seen.insert(hash_of(&(state, false))) {
                nodes.push(Node {
                    parent: None,
                    action: index as u32,
                });
                frontier.push(((nodes.len() - 1) as u32, false, state.clone()));
            }
        }
        let mut depth = 0;
        let mut actions = Vec::new();
        while !frontier.is_empty() {
            let mut next_frontier = Vec::new();
            for (index, signed, state) in frontier.drain(..) {
                if !model.within_boundary(&state) {
                    return Search::OutOfBudget(self.budget.was_cut().unwrap_or(Cut::Time));
                }
                if let Some(label) = &self.progress {
                    if last_line.elapsed() >= Duration::from_secs(1) {
                        last_line = Instant::now();
                        let line = Progress {
                            label,
                            phase: "breadth-first",
                            states: nodes.len(),
                            unique: seen.len(),
                            depth,
                            started,
                        };
                        line.print();
                    }
                }
                if !holds(&state) {
                    // Only behaviours whose last step broke the property are candidates.
                    continue;
                }
                actions.clear();
                model.actions(&state, &mut actions);
                for (position, action) in actions.iter().enumerate() {
                    let Some(next) = model.next_state(&state, action.clone()) else {
                        continue;
                    };
                    let marked = signature.is_some_and(|sig| (sig.step)(&model, &state, action));
                    let next_signed = signed || marked;
                    if !holds(&next) {
                        let wanted = match signature {
                            None => true,
                            Some(sig) if sig.at_end => marked,
                            Some(_) => next_signed,
                        };
                        if wanted {
                            nodes.push(Node {
                                parent: Some(index),
                                action: position as u32,
                            });
                            return Search::Found(rebuild(&model, &inits, &nodes, nodes.len() - 1));
                        }
                        continue;
                    }
                    let key = if signature.is_some_and(|sig| !sig.at_end) {
                        next_signed
                    } else {
                        false
                    };
                    if !seen.insert(hash_of(&(&next, key))) {
                        continue;
                    }
                    nodes.push(Node {
                        parent: Some(index),
                        action: position as u32,
                    });
                    next_frontier.push(((nodes.len() - 1) as u32, next_signed, next));
                }
            }
            frontier = next_frontier;
            depth += 1;
        }
        Search::Absent
    }
}

impl ShortestSearch {
    /// Shortest counterexamples of several `always` properties in one breadth-first search: the
    /// first state it meets that breaks a property ends a shortest behaviour breaking it. The
    /// search stops when every property has one, the space is exhausted, or a limit is reached
    /// (then the properties still open are out of budget).
    pub fn run_many<M>(&self, model: &M, names: &[&str]) -> Vec<Search<M::State, M::Action>>
    where
        M: Protocol,
        M::State: Hash + Clone + PartialEq + std::fmt::Debug + Send + Sync + 'static,
        M::Action: Clone + std::fmt::Debug + PartialEq + Send + Sync + 'static,
    {
        let all = model.properties();
        let conditions: Vec<_> = names
            .iter()
            .map(|name| {
                let property = all
                    .iter()
                    .find(|p| p.name == *name)
                    .unwrap_or_else(|| panic!("the model has no property {name:?}"));
                assert!(
                    property.expectation == Expectation::Always,
                    "only an `always` property has a counterexample path"
                );
                property.condition
            })
            .collect();
        let model = model.with_budget(self.budget.clone());
        let mut results: Vec<Option<Search<M::State, M::Action>>> =
            names.iter().map(|_| None).collect();
        let started = Instant::now();
        let mut last_line = Instant::now();
        let mut nodes: Vec<Node> = Vec::new();
        let mut seen: std::collections::HashSet<u64> = std::collections::HashSet::new();
        let inits = model.init_states();
        let mut frontier: Vec<(u32, M::State)> = Vec::new();
        for (index, state) in inits.iter().enumerate() {
            if seen.insert(hash_of(state)) {
                nodes.push(Node {
                    parent: None,
                    action: index as u32,
                });
                let node = (nodes.len() - 1) as u32;
                for (p, condition) in conditions.iter().enumerate() {
                    if results[p].is_none() && !condition(&model, state) {
                        results[p] = Some(Search::Found(rebuild(
                            &model,
                            &inits,
                            &nodes,
                            node as usize,
                        )));
                    }
                }
                frontier.push((node, state.clone()));
            }
        }
        let mut depth = 0;
        let mut actions = Vec::new();
        while !frontier.is_empty() && results.iter().any(Option::is_none) {
            let mut next_frontier = Vec::new();
            for (index, state) in frontier.drain(..) {
                if !model.within_boundary(&state) {
                    let cut = self.budget.was_cut().unwrap_or(Cut::Time);
                    return results
                        .into_iter()
                        .map(|r| r.unwrap_or(Search::OutOfBudget(cut)))
                        .collect();
                }
                if let Some(label) = &self.progress {
                    if last_line.elapsed() >= Duration::from_secs(1) {
                        last_line = Instant::now();
                        Progress {
                            label,
                            phase: "breadth-first",
                            states: nodes.len(),
                            unique: seen.len(),
                            depth,
                            started,
                        }
                        .print();
                    }
                }
                actions.clear();
                model.actions(&state, &mut actions);
                for (position, action) in actions.iter().enumerate() {
                    let Some(next) = model.next_state(&state, action.clone()) else {
                        continue;
                    };
                    if !seen.insert(hash_of(&next)) {
                        continue;
                    }
                    nodes.push(Node {
                        parent: Some(index),
                        action: position as u32,
                    });
                    let node = nodes.len() - 1;
                    for (p, condition) in conditions.iter().enumerate() {
                        if results[p].is_none() && !condition(&model, &next) {
                            results[p] = Some(Search::Found(rebuild(&model, &inits, &nodes, node)));
                        }
                    }
                    next_frontier.push((node as u32, next));
                }
            }
            frontier = next_frontier;
            depth += 1;
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or(Search::Absent))
            .collect()
    }
}

fn hash_of<T: Hash>(value: &T) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

/// Replays the action indices from the initial state to node `last`.
fn rebuild<M: Model>(
    model: &M,
    inits: &[M::State],
    nodes: &[Node],
    last: usize,
) -> Vec<(M::State, Option<M::Action>)>
where
    M::State: Clone,
    M::Action: Clone,
{
    let mut chain = vec![last];
    while let Some(parent) = nodes[*chain.last().expect("non-empty")].parent {
        chain.push(parent as usize);
    }
    chain.reverse();
    let mut state = inits[nodes[chain[0]].action as usize].clone();
    let mut path = Vec::with_capacity(chain.len());
    let mut actions = Vec::new();
    for node in &chain[1..] {
        actions.clear();
        model.actions(&state, &mut actions);
        let action = actions[nodes[*node].action as usize].clone();
        let next = model
            .next_state(&state, action.clone())
            .expect("a recorded step replays");
        path.push((state, Some(action)));
        state = next;
    }
    path.push((state, None));
    path
}

#[cfg(test)]
mod tests {
    //! [`regroup`] on a toy of two counters, small enough to see every state.
    use super::*;
    use crate::trace::StepKind;
    use stateright::Property;

    /// Actor `a` raises `a`, actor `b` raises `b`, each up to 2; the steps always commute.
    /// "never bad" breaks in (2, 1), and also in (2, 0) and (0, 1), the states between of the
    /// two swaps that would regroup the path a, b, a.
    #[derive(Clone)]
    struct Counters;

    fn bad(state: &(u8, u8)) -> bool {
        matches!(state, (2, 1) | (2, 0) | (0, 1))
    }

    impl Model for Counters {
        type State = (u8, u8);
        type Action = char;

        fn init_states(&self) -> Vec<(u8, u8)> {
            vec![(0, 0)]
        }

        fn actions(&self, state: &(u8, u8), actions: &mut Vec<char>) {
            if state.0 < 2 {
                actions.push('a');
            }
            if state.1 < 2 {
                actions.push('b');
            }
        }

        fn next_state(&self, state: &(u8, u8), action: char) -> Option<(u8, u8)> {
            Some(match action {
                'a' => (state.0 + 1, state.1),
                _ => (state.0, state.1 + 1),
            })
        }

        fn properties(&self) -> Vec<Property<Self>> {
            vec![Property::always("never bad", |_, state| !bad(state))]
        }
    }

    impl Protocol for Counters {
        fn protocol(&self) -> &'static str {
            "toy"
        }
        fn variant_name(&self) -> &'static str {
            "counters"
        }
        fn bounds(&self) -> serde_json::Value {
            serde_json::Value::Null
        }
        fn symmetry(&self) -> Option<fn(&(u8, u8)) -> (u8, u8)> {
            None
        }
        fn trace(&self, path: &[((u8, u8), Option<char>)]) -> Trace {
            Trace::from_path(
                Vec::new(),
                path,
                |_, action, _| (action.to_string(), format!("raise {action}")),
                |action| action.to_string(),
                |_, _, _| StepKind::Local,
            )
        }
        fn conclusion(&self, _: &str, _: &[((u8, u8), Option<char>)]) -> Option<String> {
            None
        }
        fn with_budget(&self, _: Budget) -> Self {
            Counters
        }
    }

    /// The path a, b, a: it reaches (2, 1) without passing a bad state (a depth-first search
    /// could return it; the shortest counterexample is a, a).
    fn path() -> Vec<((u8, u8), Option<char>)> {
        vec![
            ((0, 0), Some('a')),
            ((1, 0), Some('b')),
            ((1, 1), Some('a')),
            ((2, 1), None),
        ]
    }

    fn actors(path: &[((u8, u8), Option<char>)]) -> String {
        path.iter().filter_map(|(_, a)| *a).collect()
    }

    #[test]
    fn regrouping_lowers_the_switches_when_nothing_forbids_it() {
        let Regrouped {
            path: regrouped,
            before,
            after,
            fewest,
        } = regroup(&Counters, &path(), None, None);
        assert_eq!((before, after, fewest), (2, 1, true));
        assert_eq!(regrouped.last(), path().last(), "the same last state");
        assert_eq!(regrouped.len(), path().len(), "the same length");
        assert!(
            ["aab", "baa"].contains(&actors(&regrouped).as_str()),
            "{regrouped:?}"
        );
    }

    /// Each swap would put a bad state between: with the property named, neither is made, and
    /// the counterexample keeps its one violation, at its end.
    #[test]
    fn regrouping_never_passes_through_a_state_that_breaks_the_property() {
        let Regrouped {
            path: regrouped,
            before,
            after,
            fewest,
        } = regroup(&Counters, &path(), Some("never bad"), None);
        assert_eq!((before, after, fewest), (2, 2, true));
        assert_eq!(actors(&regrouped), "aba", "{regrouped:?}");
        let states: Vec<_> = regrouped.iter().map(|(s, _)| *s).collect();
        assert!(states[..states.len() - 1].iter().all(|s| !bad(s)));
    }
}
