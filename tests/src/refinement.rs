//! The model side of a conformance harness, for any protocol model: it keeps the model's state
//! and behaviour, takes only actions the model enables (trace validation), replays the
//! implementation's storage effects through one actor's steps, and renders the behaviour as the
//! checker renders counterexamples. A protocol's harness supplies what is specific to it: how to
//! drive the implementation, how to describe a model step's effect and an implementation's create
//! in the same words, and its refinement map (`inspect`).

use lockstep::store::Key;
use lockstep_model::check::Protocol;

/// What the implementation created, as the cursor replays it.
pub struct Create<'a> {
    pub key: &'a Key,
    /// The create described in the model's words, or `None` outside the protocol.
    pub described: Option<String>,
    /// A re-creation of an index garbage collection removed: invisible to readers.
    pub stray: bool,
}

pub struct ModelCursor<M: Protocol>
where
    M::State: std::hash::Hash + Clone + PartialEq + std::fmt::Debug + Send + Sync + 'static,
    M::Action: Copy + std::fmt::Debug + PartialEq + Send + Sync + 'static,
{
    pub model: M,
    pub state: M::State,
    /// The behaviour so far.
    pub path: Vec<(M::State, Option<M::Action>)>,
    /// Describes the storage effect of a step, `None` for a step that only reads.
    effect: fn(&M::State, &M::State) -> Option<String>,
}

impl<M: Protocol> ModelCursor<M>
where
    M::State: std::hash::Hash + Clone + PartialEq + std::fmt::Debug + Send + Sync + 'static,
    M::Action: Copy + std::fmt::Debug + PartialEq + Send + Sync + 'static,
{
    pub fn new(model: M, effect: fn(&M::State, &M::State) -> Option<String>) -> Self {
        let state = model
            .init_states()
            .into_iter()
            .next()
            .expect("an initial state");
        ModelCursor {
            path: vec![(state.clone(), None)],
            model,
            state,
            effect,
        }
    }

    /// The behaviour so far, numbered like a counterexample.
    pub fn behaviour(&self) -> String {
        format!(
            "model behaviour so far:\n{}",
            self.model.trace(&self.as_checked())
        )
    }

    /// The path as the checker keeps one: each state with the action taken from it.
    fn as_checked(&self) -> Vec<(M::State, Option<M::Action>)> {
        let mut steps = self.path.clone();
        for i in 0..steps.len().saturating_sub(1) {
            steps[i].1 = steps[i + 1].1;
        }
        if let Some(last) = steps.last_mut() {
            last.1 = None;
        }
        steps
    }

    /// The steps taken so far, each as `actor: text` of the model's trace: what a replay file
    /// keeps as the model path, and compares step by step when it is rerun.
    pub fn steps(&self) -> Vec<String> {
        self.model
            .trace(&self.as_checked())
            .steps
            .iter()
            .map(|s| format!("{}: {}", s.actor, s.text))
            .collect()
    }

    /// Takes `action` if the model enables it in the current state (trace validation: the model
    /// must allow what the implementation did). Returns the step's storage effect, or `None` for a
    /// read; `Err` if the action is not enabled.
    pub fn act(&mut self, action: M::Action) -> Result<Option<String>, ()> {
        let mut enabled = Vec::new();
        self.model.actions(&self.state, &mut enabled);
        if !enabled.contains(&action) {
            return Err(());
        }
        let Some(next) = self.model.next_state(&self.state, action) else {
            return Err(());
        };
        let effect = (self.effect)(&self.state, &next);
        self.state = next.clone();
        self.path.push((next, Some(action)));
        Ok(effect)
    }

    /// Replays the implementation's creates through the steps of one actor (`step`): each must be
    /// that actor's next storage effect, reads in between taken as the model takes them.
    pub fn replay<'a>(
        &mut self,
        step: M::Action,
        creates: impl IntoIterator<Item = Create<'a>>,
    ) -> Result<(), String> {
        for create in creates {
            let Some(expected) = create.described else {
                continue;
            };
            if create.stray {
                continue;
            }
            let mut matched = false;
            for _ in 0..256 {
                let before = self.state.clone();
                match self.act(step) {
                    Err(()) => {
                        return Err(format!("the implementation created {} ({expected}) but the model cannot take {step:?}\n{}", create.key, self.behaviour()))
                    }
                    Ok(None) if before == self.state => {
                        return Err(format!("the implementation created {} ({expected}) but {step:?} is stuck\n{}", create.key, self.behaviour()))
                    }
                    Ok(None) => continue,
                    Ok(Some(effect)) if effect == expected => {
                        matched = true;
                        break;
                    }
                    Ok(Some(effect)) => {
                        return Err(format!("the implementation wrote {expected}, the model wrote {effect}\n{}", self.behaviour()))
                    }
                }
            }
            if !matched {
                return Err(format!(
                    "no model step writes {expected}\n{}",
                    self.behaviour()
                ));
            }
        }
        Ok(())
    }

    /// Takes `step` until `done` holds, checking the model writes nothing the implementation did
    /// not.
    pub fn settle(
        &mut self,
        step: M::Action,
        done: impl Fn(&M::State) -> bool,
    ) -> Result<(), String> {
        for _ in 0..256 {
            if done(&self.state) {
                return Ok(());
            }
            let before = self.state.clone();
            match self.act(step) {
                Ok(Some(effect)) => {
                    return Err(format!(
                        "the model writes {effect} that the implementation did not\n{}",
                        self.behaviour()
                    ))
                }
                Ok(None) if before != self.state => {}
                _ => {
                    return Err(format!(
                        "{step:?} is stuck before settling\n{}",
                        self.behaviour()
                    ))
                }
            }
        }
        Err(format!("{step:?} did not settle\n{}", self.behaviour()))
    }

    /// Every `always` property of the model holds in the current state.
    pub fn check_properties(&self) -> Result<(), String> {
        for property in self.model.properties() {
            if property.expectation == stateright::Expectation::Always
                && !(property.condition)(&self.model, &self.state)
            {
                return Err(format!(
                    "model property \"{}\" broken\n{}",
                    property.name,
                    self.behaviour()
                ));
            }
        }
        Ok(())
    }
}
