//! Counterexamples as people read them: one numbered line per step, naming the actor, the
//! storage operation and what it found or did, and a closing line that says what the last step
//! broke. Each protocol describes its own steps (`<protocol>/trace.rs`); this module knows none.

use serde::Serialize;

/// One step of a behaviour.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct TraceStep {
    /// 1-based position in the behaviour.
    pub n: usize,
    /// Who acted: `c0`, `c1`, … for clients, `cleaner`, `operator`, `recovery`, `clock`.
    pub actor: String,
    /// The storage operation and its result.
    pub text: String,
    /// The model action in a stable, readable form (`step c0`, `crash c1`, `tick`), for tools.
    pub action: String,
}

/// A behaviour from an initial state, as printed in counterexamples.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, Default)]
pub struct Trace {
    /// The setup: what each client is about to do.
    pub setup: Vec<String>,
    pub steps: Vec<TraceStep>,
    /// What the behaviour's last state breaks, in words (`c0 and c1 both hold P /a`).
    pub conclusion: Option<String>,
}

impl Trace {
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

impl Trace {
    /// A behaviour's trace: `describe(before, action, after)` gives each step's actor and text,
    /// `name(action)` its stable form.
    pub fn from_path<S, A: Copy>(
        setup: Vec<String>,
        path: &[(S, Option<A>)],
        describe: impl Fn(&S, A, &S) -> (String, String),
        name: impl Fn(A) -> String,
    ) -> Trace {
        let steps = path
            .windows(2)
            .enumerate()
            .map(|(n, pair)| {
                let action = pair[0].1.expect("every step but the last has an action");
                let (actor, text) = describe(&pair[0].0, action, &pair[1].0);
                TraceStep {
                    n: n + 1,
                    actor,
                    text,
                    action: name(action),
                }
            })
            .collect();
        Trace {
            setup,
            steps,
            conclusion: None,
        }
    }
}

impl std::fmt::Display for Trace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for line in &self.setup {
            writeln!(f, "      {line}")?;
        }
        for step in &self.steps {
            writeln!(f, "  {:>3}. {:<9} {}", step.n, step.actor, step.text)?;
        }
        if let Some(conclusion) = &self.conclusion {
            writeln!(f, "       ⇒ {conclusion}")?;
        }
        Ok(())
    }
}
