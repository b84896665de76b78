//! Least-interleaved counterexamples: a behaviour's steps reordered so that each actor's steps
//! sit together, with the fewest switches between actors.
//!
//! A shortest counterexample from a breadth-first search interleaves its actors in whatever order
//! the search met them. People read a race more easily when each actor's steps sit together
//! (TLC's users have asked for this for years, tlaplus #1084). [`regroup`] searches every
//! reordering of the behaviour's steps that
//! - keeps each actor's own steps in their order (an actor's program order is what the reader
//!   follows; the actor of a step is the one its trace names),
//! - is a behaviour of the model: every step enabled where it is taken, every state within the
//!   model's boundary,
//! - ends in the same state (so the property breaks exactly as before, with the same length),
//! - with a property named, passes through no state that breaks it before the end, and
//! - with a catalogue entry's signature, still carries the signature's step,
//!
//! and returns one with the fewest switches. The search is a 0-1 breadth-first search (a switch
//! costs 1, staying with the same actor 0) over (each actor's progress, the model state, the last
//! actor), so the first complete reordering it settles has the fewest switches of them all. The
//! space is small for the traces the checker prints (a few actors of a dozen steps each); past
//! [`NODES_MAX`] search nodes it stops, and the adjacent-swap local search of the older version
//! serves instead, reported as not proven fewest.

use std::collections::{HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};

use stateright::{Expectation, Model};

use crate::check::{Protocol, Signature};

/// Search nodes the exact search may create before it gives up for the local search.
pub const NODES_MAX: usize = 400_000;

/// A behaviour after regrouping.
#[derive(Clone, Debug)]
pub struct Regrouped<S, A> {
    pub path: Vec<(S, Option<A>)>,
    /// The switches between actors of the behaviour as given.
    pub before: usize,
    /// The switches of `path`.
    pub after: usize,
    /// Whether `after` is proven the fewest of every reordering described above (the exact
    /// search completed); `false` when the local search served.
    pub fewest: bool,
}

/// Regroups `path` (see the module's documentation).
pub fn regroup<M>(
    model: &M,
    path: &[(M::State, Option<M::Action>)],
    property: Option<&str>,
    signature: Option<Signature<M>>,
) -> Regrouped<M::State, M::Action>
where
    M: Protocol,
    M::State: Hash + Clone + PartialEq + std::fmt::Debug + Send + Sync + 'static,
    M::Action: Clone + std::fmt::Debug + PartialEq + Send + Sync + 'static,
{
    let actors: Vec<String> = model
        .trace(path)
        .steps
        .into_iter()
        .map(|s| s.actor)
        .collect();
    let before = crate::trace::switches(actors.iter().map(String::as_str));
    let states: Vec<M::State> = path.iter().map(|(s, _)| s.clone()).collect();
    let actions: Vec<M::Action> = path.iter().filter_map(|(_, a)| a.clone()).collect();
    let unchanged = Regrouped {
        path: path.to_vec(),
        before,
        after: before,
        fewest: false,
    };
    if actions.len() + 1 != states.len() || actors.len() != actions.len() {
        return unchanged;
    }
    // The property guards the states between only if the behaviour as given keeps it there
    // (a depth-first counterexample may break it earlier: then no reordering is worse).
    let condition = property
        .and_then(|name| {
            model
                .properties()
                .into_iter()
                .find(|p| p.name == name && p.expectation == Expectation::Always)
                .map(|p| p.condition)
        })
        .filter(|holds| {
            let between = &states[1..states.len().saturating_sub(1)];
            between.iter().all(|state| holds(model, state))
        });
    let problem = Problem {
        model,
        states: &states,
        actions: &actions,
        actors: &actors,
        condition,
        signature,
    };
    if let Some(order) = problem.fewest_switches() {
        let path = problem.replay(&order);
        let after = switches_of(&actors, &order);
        return Regrouped {
            path,
            before,
            after,
            fewest: true,
        };
    }
    let (path, after) = local::regroup(model, &states, &actions, actors, condition, signature);
    Regrouped {
        path,
        before,
        after,
        fewest: false,
    }
}

fn switches_of(actors: &[String], order: &[usize]) -> usize {
    crate::trace::switches(order.iter().map(|&j| actors[j].as_str()))
}

type Condition<M> = fn(&M, &<M as Model>::State) -> bool;

struct Problem<'a, M: Model> {
    model: &'a M,
    states: &'a [M::State],
    actions: &'a [M::Action],
    actors: &'a [String],
    condition: Option<Condition<M>>,
    signature: Option<Signature<M>>,
}

/// A node of the exact search: which steps each actor has taken, the state they reach, the
/// actor of the last step, and whether the signature's step was taken.
struct Node<S> {
    progress: Vec<u8>,
    state: S,
    last: Option<usize>,
    carried: bool,
    /// (parent node, the step taken from it).
    parent: Option<(usize, usize)>,
    switches: usize,
}

impl<M> Problem<'_, M>
where
    M: Model,
    M::State: Hash + Clone + PartialEq,
    M::Action: Clone + PartialEq,
{
    /// The steps (positions in the behaviour as given) in an order with the fewest switches, or
    /// `None` if the search grew past `NODES_MAX` (or found nothing, which the given order rules
    /// out unless the model's boundary moved).
    fn fewest_switches(&self) -> Option<Vec<usize>> {
        // Each actor's steps, in their order.
        let mut names: Vec<&str> = Vec::new();
        let mut lanes: Vec<Vec<usize>> = Vec::new();
        for (j, actor) in self.actors.iter().enumerate() {
            match names.iter().position(|n| *n == actor.as_str()) {
                Some(k) => lanes[k].push(j),
                None => {
                    names.push(actor);
                    lanes.push(vec![j]);
                }
            }
        }
        if lanes.iter().any(|lane| lane.len() > u8::MAX as usize) {
            return None;
        }
        let total = self.actions.len();
        let goal = self.states.last()?;
        let mut nodes: Vec<Node<M::State>> = vec![Node {
            progress: vec![0; lanes.len()],
            state: self.states[0].clone(),
            last: None,
            carried: false,
            parent: None,
            switches: 0,
        }];
        // Settled or queued keys, with the fewest switches seen.
        let mut best: HashMap<(Vec<u8>, u64, Option<usize>, bool), usize> = HashMap::new();
        let mut queue: VecDeque<usize> = VecDeque::from([0]);
        let mut enabled = Vec::new();
        while let Some(at) = queue.pop_front() {
            let node = &nodes[at];
            let key = (
                node.progress.clone(),
                fingerprint(&node.state),
                node.last,
                node.carried,
            );
            if best.get(&key).is_some_and(|seen| *seen < node.switches) {
                continue; // a cheaper way here was settled already
            }
            let taken: usize = node.progress.iter().map(|p| *p as usize).sum();
            if taken == total {
                if node.state == *goal && (self.signature.is_none() || node.carried) {
                    return Some(self.order(&nodes, at));
                }
                continue;
            }
            enabled.clear();
            self.model.actions(&node.state, &mut enabled);
            for (k, lane) in lanes.iter().enumerate() {
                let node = &nodes[at];
                let Some(&j) = lane.get(node.progress[k] as usize) else {
                    continue;
                };
                let action = &self.actions[j];
                if !enabled.contains(action) {
                    continue;
                }
                let Some(next) = self.model.next_state(&node.state, action.clone()) else {
                    continue;
                };
                if !self.model.within_boundary(&next) {
                    continue;
                }
                let last_step = taken + 1 == total;
                if !last_step
                    && self
                        .condition
                        .is_some_and(|holds| !holds(self.model, &next))
                {
                    continue;
                }
                let carries = self
                    .signature
                    .is_some_and(|s| (s.step)(self.model, &node.state, action));
                let carried = match self.signature {
                    Some(s) if s.at_end => last_step && carries,
                    _ => node.carried || carries,
                };
                let cost = usize::from(node.last.is_some_and(|l| l != k));
                let switches = node.switches + cost;
                let mut progress = node.progress.clone();
                progress[k] += 1;
                let key = (progress.clone(), fingerprint(&next), Some(k), carried);
                if best.get(&key).is_some_and(|seen| *seen <= switches) {
                    continue;
                }
                best.insert(key, switches);
                if nodes.len() >= NODES_MAX {
                    return None;
                }
                nodes.push(Node {
                    progress,
                    state: next,
                    last: Some(k),
                    carried,
                    parent: Some((at, j)),
                    switches,
                });
                let index = nodes.len() - 1;
                if cost == 0 {
                    queue.push_front(index);
                } else {
                    queue.push_back(index);
                }
            }
        }
        None
    }

    /// The steps that lead to node `at`, in order.
    fn order(&self, nodes: &[Node<M::State>], mut at: usize) -> Vec<usize> {
        let mut order = Vec::new();
        while let Some((parent, j)) = nodes[at].parent {
            order.push(j);
            at = parent;
        }
        order.reverse();
        order
    }

    /// The behaviour that takes the steps in `order` from the first state.
    fn replay(&self, order: &[usize]) -> Vec<(M::State, Option<M::Action>)> {
        let mut path = Vec::with_capacity(order.len() + 1);
        let mut state = self.states[0].clone();
        for &j in order {
            let action = self.actions[j].clone();
            let next = self
                .model
                .next_state(&state, action.clone())
                .expect("the search took this step");
            path.push((state, Some(action)));
            state = next;
        }
        path.push((state, None));
        path
    }
}

fn fingerprint<S: Hash>(state: &S) -> u64 {
    let mut hasher = DefaultHasher::new();
    state.hash(&mut hasher);
    hasher.finish()
}

/// The local search that serves when the exact one grows too large: adjacent steps of different
/// actors are swapped when they commute (each is enabled where the other was, the state between
/// is within the boundary and keeps the property, both orders reach the same state), the swap
/// lowers the switches, and the signature's step is kept, until no such swap is left. The result
/// has no more switches than the input, not necessarily the fewest.
mod local {
    use super::{Condition, Signature};
    use stateright::Model;

    pub fn regroup<M>(
        model: &M,
        states: &[M::State],
        actions: &[M::Action],
        mut actors: Vec<String>,
        condition: Option<Condition<M>>,
        signature: Option<Signature<M>>,
    ) -> (Vec<(M::State, Option<M::Action>)>, usize)
    where
        M: Model,
        M::State: Clone + PartialEq,
        M::Action: Clone + PartialEq,
    {
        let mut states = states.to_vec();
        let mut actions = actions.to_vec();
        let enabled = |state: &M::State, action: &M::Action| {
            let mut enabled = Vec::new();
            model.actions(state, &mut enabled);
            enabled.contains(action)
        };
        // The switches a swap of steps i and i+1 can change: those between i-1 and i+2.
        let window = |actors: &[String], i: usize| {
            let from = i.saturating_sub(1);
            let to = (i + 3).min(actors.len());
            crate::trace::switches(actors[from..to].iter().map(String::as_str))
        };
        loop {
            let mut swapped_any = false;
            for i in 0..actions.len().saturating_sub(1) {
                if actors[i] == actors[i + 1] {
                    continue;
                }
                let now = window(&actors, i);
                actors.swap(i, i + 1);
                let after = window(&actors, i);
                actors.swap(i, i + 1);
                if after >= now {
                    continue;
                }
                let (first, second) = (&actions[i], &actions[i + 1]);
                if !enabled(&states[i], second) {
                    continue;
                }
                let Some(between) = model.next_state(&states[i], second.clone()) else {
                    continue;
                };
                if !model.within_boundary(&between) || !enabled(&between, first) {
                    continue;
                }
                if condition.is_some_and(|holds| !holds(model, &between)) {
                    continue;
                }
                if model.next_state(&between, first.clone()).as_ref() != Some(&states[i + 2]) {
                    continue;
                }
                let old = std::mem::replace(&mut states[i + 1], between);
                actions.swap(i, i + 1);
                if let Some(signature) = signature {
                    let carries = |j: usize| (signature.step)(model, &states[j], &actions[j]);
                    let kept = if signature.at_end {
                        carries(actions.len() - 1)
                    } else {
                        (0..actions.len()).any(carries)
                    };
                    if !kept {
                        states[i + 1] = old;
                        actions.swap(i, i + 1);
                        continue;
                    }
                }
                actors.swap(i, i + 1);
                swapped_any = true;
            }
            // Every swap lowers the switches, so this ends.
            if !swapped_any {
                break;
            }
        }
        let after = crate::trace::switches(actors.iter().map(String::as_str));
        let mut actions = actions.into_iter().map(Some);
        let path = states
            .into_iter()
            .map(|state| (state, actions.next().flatten()))
            .collect();
        (path, after)
    }
}

#[cfg(test)]
mod tests {
    //! The exact search against brute force, on a toy of three counters small enough to list
    //! every reordering.
    use super::*;
    use crate::check::Budget;
    use crate::trace::{StepKind, Trace};
    use stateright::Property;

    /// Actors `a`, `b`, `c` each raise their counter up to 2. Raising `b` is enabled only once
    /// `a` is at least as high (so not every reordering is a behaviour), and "never bad" breaks
    /// where `c` leads `a` by 2.
    #[derive(Clone)]
    struct Three;

    type S = [u8; 3];

    fn bad(s: &S) -> bool {
        s[2] >= s[0] + 2
    }

    impl Model for Three {
        type State = S;
        type Action = usize;
        fn init_states(&self) -> Vec<S> {
            vec![[0; 3]]
        }
        fn actions(&self, s: &S, actions: &mut Vec<usize>) {
            for k in 0..3 {
                if s[k] < 2 && (k != 1 || s[0] > s[1]) {
                    actions.push(k);
                }
            }
        }
        fn next_state(&self, s: &S, k: usize) -> Option<S> {
            let mut next = *s;
            next[k] += 1;
            Some(next)
        }
        fn properties(&self) -> Vec<Property<Self>> {
            vec![Property::always("never bad", |_, s| !bad(s))]
        }
    }

    impl Protocol for Three {
        fn protocol(&self) -> &'static str {
            "toy"
        }
        fn variant_name(&self) -> &'static str {
            "three"
        }
        fn bounds(&self) -> serde_json::Value {
            serde_json::Value::Null
        }
        fn symmetry(&self) -> Option<fn(&S) -> S> {
            None
        }
        fn trace(&self, path: &[(S, Option<usize>)]) -> Trace {
            Trace::from_path(
                Vec::new(),
                path,
                |_, k, _| (["a", "b", "c"][k].to_string(), "raise".into()),
                |k| k.to_string(),
                |_, _, _| StepKind::Local,
            )
        }
        fn conclusion(&self, _: &str, _: &[(S, Option<usize>)]) -> Option<String> {
            None
        }
        fn with_budget(&self, _: Budget) -> Self {
            Three
        }
    }

    /// Every behaviour that raises each counter to 2, as action sequences.
    fn behaviours(model: &Three, s: S, so_far: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        if s == [2; 3] {
            out.push(so_far.clone());
            return;
        }
        let mut actions = Vec::new();
        model.actions(&s, &mut actions);
        for k in actions {
            so_far.push(k);
            behaviours(model, model.next_state(&s, k).unwrap(), so_far, out);
            so_far.pop();
        }
    }

    fn path_of(actions: &[usize]) -> Vec<(S, Option<usize>)> {
        let mut s = [0; 3];
        let mut path = Vec::new();
        for &k in actions {
            path.push((s, Some(k)));
            s[k] += 1;
        }
        path.push((s, None));
        path
    }

    fn switches(actions: &[usize]) -> usize {
        actions.windows(2).filter(|w| w[0] != w[1]).count()
    }

    /// From every behaviour, with and without the property's guard, the search returns a
    /// behaviour of the model with the same end and the fewest switches that brute force finds
    /// among all behaviours allowed (the guard: no bad state before the end).
    #[test]
    fn the_search_finds_the_fewest_switches_brute_force_finds() {
        let model = Three;
        let mut all = Vec::new();
        behaviours(&model, [0; 3], &mut Vec::new(), &mut all);
        assert!(all.len() > 20, "a toy with choices: {}", all.len());
        let guarded = |actions: &Vec<usize>| {
            let path = path_of(actions);
            path[1..path.len() - 1].iter().all(|(s, _)| !bad(s))
        };
        for property in [None, Some("never bad")] {
            for given in &all {
                if property.is_some() && !guarded(given) {
                    continue;
                }
                let fewest = all
                    .iter()
                    .filter(|b| property.is_none() || guarded(b))
                    .map(|b| switches(b))
                    .min()
                    .unwrap();
                let regrouped = regroup(&model, &path_of(given), property, None);
                assert!(regrouped.fewest);
                assert_eq!(regrouped.after, fewest, "from {given:?} ({property:?})");
                let actions: Vec<usize> = regrouped.path.iter().filter_map(|(_, a)| *a).collect();
                assert_eq!(path_of(&actions), regrouped.path, "a behaviour of the toy");
                assert_eq!(switches(&actions), fewest);
            }
        }
    }

    /// The local search is not exact: on some behaviour of the toy it stops above the fewest,
    /// which is why the exact search comes first.
    #[test]
    fn the_local_search_alone_is_not_always_fewest() {
        let model = Three;
        let mut all = Vec::new();
        behaviours(&model, [0; 3], &mut Vec::new(), &mut all);
        let fewest = all.iter().map(|b| switches(b)).min().unwrap();
        let worse = all.iter().any(|given| {
            let path = path_of(given);
            let states: Vec<S> = path.iter().map(|(s, _)| *s).collect();
            let actors: Vec<String> = given
                .iter()
                .map(|k| ["a", "b", "c"][*k].to_string())
                .collect();
            let (_, after) = local::regroup(&model, &states, given, actors, None, None);
            after > fewest
        });
        assert!(
            worse,
            "the local search found the fewest from every behaviour"
        );
    }
}
