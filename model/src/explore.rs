//! The Explorer's view of a model with many initial states: one initial state, `start`, whose
//! actions choose among the model's initial states, each named by what its actors are about to
//! do (`c0: point → P /a; c1: subtree → S /`).
//!
//! Why: a world whose clients each pick a mode at the start has one initial state per choice
//! (the lock model's default world has 78), and stateright's Explorer names initial states only
//! `Init 0` … `Init 77`: its page labels what the server sends, and the server sends no action for
//! an initial state. Wrapping the model gives the Explorer one initial state and 78 *actions*,
//! which it shows by name. The wrapper knows no protocol: the names are the first lines of the
//! protocol's own traces (their setup).
//!
//! The wrapper changes nothing the checker decides: every property is the model's, evaluated on
//! the model's state (at `start`, an `always` property holds and a `sometimes` one is not yet
//! witnessed), and every behaviour is the model's behind one extra step.

use std::hash::Hash;

use stateright::{Expectation, Model, Path, Property};

use crate::check::Protocol;

/// A state of the labelled model: before the choice, or one of the model's states.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Labelled<S> {
    Start,
    At(S),
}

/// An action of the labelled model: choose initial state `i`, or take one of the model's actions.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Choice<A> {
    Start(usize),
    Step(A),
}

/// The model `M` behind one initial state (see the module's documentation).
pub struct WithStart<M: Model> {
    pub inner: M,
    /// Each property of `inner`: whether it is an `always` property, and its condition (read
    /// once: a verdict is asked for every state the Explorer's checker visits).
    verdicts: Vec<(bool, fn(&M, &M::State) -> bool)>,
}

impl<M: Model + Clone> Clone for WithStart<M> {
    fn clone(&self) -> Self {
        WithStart {
            inner: self.inner.clone(),
            verdicts: self.verdicts.clone(),
        }
    }
}

impl<M: Model> WithStart<M> {
    /// `None` if the model has more properties than the wrapper has conditions for.
    pub fn new(inner: M) -> Option<WithStart<M>> {
        let verdicts: Vec<_> = inner
            .properties()
            .iter()
            .map(|p| (p.expectation == Expectation::Always, p.condition))
            .collect();
        (verdicts.len() <= PROPERTIES_MAX).then_some(WithStart { inner, verdicts })
    }
}

/// Whether the Explorer should see `model` through [`WithStart`]: it has several initial states
/// (and no more properties than the wrapper takes).
pub fn wants_start<M: Model>(model: &M) -> bool {
    model.init_states().len() > 1 && model.properties().len() <= PROPERTIES_MAX
}

/// The Explorer's path (`#/steps/…`) of a behaviour given as the model's own indices (initial
/// state, then actions): behind `start` when the model is served through [`WithStart`].
pub fn explorer_steps<M: Model>(model: &M, steps: &[usize]) -> Vec<usize> {
    if wants_start(model) {
        std::iter::once(0).chain(steps.iter().copied()).collect()
    } else {
        steps.to_vec()
    }
}

/// Serves `model` in stateright's Explorer on `address` until the server stops: through
/// [`WithStart`] when it has several initial states.
pub fn serve<M>(model: M, address: std::net::SocketAddr)
where
    M: Protocol,
    M::State: Hash + Clone + PartialEq + std::fmt::Debug + Send + Sync + 'static,
    M::Action: Clone + std::fmt::Debug + PartialEq + Send + Sync + 'static,
{
    // `serve` answers requests until the server stops.
    if wants_start(&model) {
        if let Some(wrapped) = WithStart::new(model.clone()) {
            let _ = wrapped.checker().serve(address);
            return;
        }
    }
    let _ = model.checker().serve(address);
}

impl<M> WithStart<M>
where
    M: Protocol,
    M::State: Hash + Clone + PartialEq + std::fmt::Debug + Send + Sync + 'static,
    M::Action: Clone + std::fmt::Debug + PartialEq + Send + Sync + 'static,
{
    /// What initial state `i` sets up, from the protocol's own trace of it.
    fn label(&self, i: usize) -> String {
        match self.inner.init_states().get(i) {
            Some(state) => {
                let setup = self.inner.trace(&[(state.clone(), None)]).setup;
                if setup.is_empty() {
                    format!("start {i}")
                } else {
                    setup.join("; ")
                }
            }
            None => format!("start {i}"),
        }
    }

    /// Property `i`'s verdict on a state of the labelled model.
    fn holds(&self, i: usize, state: &Labelled<M::State>) -> bool {
        let (always, condition) = self.verdicts[i];
        match state {
            // Nothing has happened: no invariant is broken, nothing is witnessed yet.
            Labelled::Start => always,
            Labelled::At(state) => condition(&self.inner, state),
        }
    }
}

/// Property `I` of the inner model, as a plain function (stateright's properties are function
/// pointers, so each index gets its own instance).
fn condition<M, const I: usize>(model: &WithStart<M>, state: &Labelled<M::State>) -> bool
where
    M: Protocol,
    M::State: Hash + Clone + PartialEq + std::fmt::Debug + Send + Sync + 'static,
    M::Action: Clone + std::fmt::Debug + PartialEq + Send + Sync + 'static,
{
    model.holds(I, state)
}

type Condition<M> = fn(&WithStart<M>, &Labelled<<M as Model>::State>) -> bool;

/// One condition per property index, up to [`PROPERTIES_MAX`].
fn conditions<M>() -> [Condition<M>; PROPERTIES_MAX]
where
    M: Protocol,
    M::State: Hash + Clone + PartialEq + std::fmt::Debug + Send + Sync + 'static,
    M::Action: Clone + std::fmt::Debug + PartialEq + Send + Sync + 'static,
{
    [
        condition::<M, 0>,
        condition::<M, 1>,
        condition::<M, 2>,
        condition::<M, 3>,
        condition::<M, 4>,
        condition::<M, 5>,
        condition::<M, 6>,
        condition::<M, 7>,
        condition::<M, 8>,
        condition::<M, 9>,
        condition::<M, 10>,
        condition::<M, 11>,
        condition::<M, 12>,
        condition::<M, 13>,
        condition::<M, 14>,
        condition::<M, 15>,
        condition::<M, 16>,
        condition::<M, 17>,
        condition::<M, 18>,
        condition::<M, 19>,
        condition::<M, 20>,
        condition::<M, 21>,
        condition::<M, 22>,
        condition::<M, 23>,
    ]
}

/// The most properties a wrapped model may have.
pub const PROPERTIES_MAX: usize = 24;

impl<M> Model for WithStart<M>
where
    M: Protocol,
    M::State: Hash + Clone + PartialEq + std::fmt::Debug + Send + Sync + 'static,
    M::Action: Clone + std::fmt::Debug + PartialEq + Send + Sync + 'static,
{
    type State = Labelled<M::State>;
    type Action = Choice<M::Action>;

    fn init_states(&self) -> Vec<Self::State> {
        vec![Labelled::Start]
    }

    fn actions(&self, state: &Self::State, actions: &mut Vec<Self::Action>) {
        match state {
            Labelled::Start => {
                actions.extend((0..self.inner.init_states().len()).map(Choice::Start));
            }
            Labelled::At(state) => {
                let mut inner = Vec::new();
                self.inner.actions(state, &mut inner);
                actions.extend(inner.into_iter().map(Choice::Step));
            }
        }
    }

    fn next_state(&self, state: &Self::State, action: Self::Action) -> Option<Self::State> {
        match (state, action) {
            (Labelled::Start, Choice::Start(i)) => {
                self.inner.init_states().get(i).cloned().map(Labelled::At)
            }
            (Labelled::At(state), Choice::Step(action)) => {
                self.inner.next_state(state, action).map(Labelled::At)
            }
            _ => None,
        }
    }

    fn format_action(&self, action: &Self::Action) -> String {
        match action {
            Choice::Start(i) => format!("start: {}", self.label(*i)),
            Choice::Step(action) => self.inner.format_action(action),
        }
    }

    fn format_step(&self, last: &Self::State, action: Self::Action) -> Option<String> {
        match (last, action) {
            (Labelled::Start, Choice::Start(i)) => Some(format!("start: {}", self.label(i))),
            (Labelled::At(state), Choice::Step(action)) => self.inner.format_step(state, action),
            _ => None,
        }
    }

    fn as_svg(&self, path: Path<Self::State, Self::Action>) -> Option<String> {
        // The model's own path: from the initial state chosen, its actions.
        let steps = path.into_vec();
        let mut states = steps.iter().filter_map(|(state, _)| match state {
            Labelled::At(state) => Some(state.clone()),
            Labelled::Start => None,
        });
        let first = states.next()?;
        let actions: Vec<M::Action> = steps
            .iter()
            .filter_map(|(_, action)| match action {
                Some(Choice::Step(action)) => Some(action.clone()),
                _ => None,
            })
            .collect();
        self.inner
            .as_svg(Path::from_actions(&self.inner, first, &actions)?)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        // `new` refused a model with more properties than there are conditions.
        let conditions = conditions::<M>();
        self.inner
            .properties()
            .iter()
            .enumerate()
            .map(|(i, p)| Property {
                expectation: p.expectation.clone(),
                name: p.name,
                condition: conditions[i],
            })
            .collect()
    }

    fn within_boundary(&self, state: &Self::State) -> bool {
        match state {
            Labelled::Start => true,
            Labelled::At(state) => self.inner.within_boundary(state),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::{LockConfig, LockModel, Variant};

    /// The lock model's default world behind `start`: one initial state, an action per initial
    /// state of the model named by its setup, the same properties with the same verdicts on the
    /// model's states, and the same successors.
    #[test]
    fn one_start_and_named_choices_over_the_same_model() {
        let inner = LockModel::new(LockConfig::new(Variant::Fixed(None))).unwrap();
        let inits = inner.init_states();
        assert!(inits.len() > 1, "a world with choices: {}", inits.len());
        let wrapped = WithStart::new(inner.clone()).unwrap();
        assert_eq!(wrapped.init_states(), vec![Labelled::Start]);
        let mut choices = Vec::new();
        wrapped.actions(&Labelled::Start, &mut choices);
        assert_eq!(choices.len(), inits.len());
        let names: Vec<String> = choices.iter().map(|c| wrapped.format_action(c)).collect();
        assert!(names[0].starts_with("start: c0: "), "{}", names[0]);
        assert!(names[0].contains("; c1: "), "{}", names[0]);
        let distinct: std::collections::HashSet<&String> = names.iter().collect();
        assert_eq!(distinct.len(), names.len(), "every choice named apart");
        for (i, init) in inits.iter().enumerate() {
            let at = wrapped
                .next_state(&Labelled::Start, Choice::Start(i))
                .unwrap();
            assert_eq!(at, Labelled::At(init.clone()));
            let mut ours = Vec::new();
            wrapped.actions(&at, &mut ours);
            let mut theirs = Vec::new();
            inner.actions(init, &mut theirs);
            assert_eq!(
                ours,
                theirs.into_iter().map(Choice::Step).collect::<Vec<_>>()
            );
        }
        // At `start` each property answers by its own expectation, so a wrapper that mixed up
        // the indices fails here (the model has `always` and `sometimes` properties).
        // The Explorer's path of a behaviour of the model goes through `start`; a world with one
        // initial state is served as it is.
        assert_eq!(explorer_steps(&inner, &[5, 1, 2]), vec![0, 5, 1, 2]);
        let mut one = LockConfig::new(Variant::Fixed(None));
        one.modes = crate::lock::ModeSet::parse("point").unwrap();
        one.tree = vec!["/".into()];
        let one = LockModel::new(one).unwrap();
        assert_eq!(one.init_states().len(), 1);
        assert_eq!(explorer_steps(&one, &[0, 1, 2]), vec![0, 1, 2]);
        let properties = wrapped.properties();
        assert_eq!(properties.len(), inner.properties().len());
        let kinds: std::collections::HashSet<String> = inner
            .properties()
            .iter()
            .map(|p| format!("{:?}", p.expectation))
            .collect();
        assert!(kinds.len() > 1, "{kinds:?}");
        for (p, q) in properties.iter().zip(inner.properties()) {
            assert_eq!(p.name, q.name);
            assert_eq!(
                (p.condition)(&wrapped, &Labelled::At(inits[3].clone())),
                (q.condition)(&inner, &inits[3])
            );
            assert_eq!(
                (p.condition)(&wrapped, &Labelled::Start),
                q.expectation == Expectation::Always
            );
        }
    }
}
