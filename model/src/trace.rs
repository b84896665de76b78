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
    /// What kind of event the step is, for drawings (`crate::diagram`): a storage operation, a
    /// fault, a crash, time passing.
    pub kind: StepKind,
}

/// What kind of event a step is. Each protocol classifies its own actions; a drawing shows a
/// storage operation as an arrow from the actor to the store, and the rest as marks.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum StepKind {
    /// The actor reads or writes the store (one or more operations; the text names each key and
    /// what it found or did).
    Storage,
    /// A storage operation fails: no effect, and the actor gets an error.
    Failed,
    /// The actor writes to the resource the locks protect (a guarded write), not to the store
    /// that holds the locks.
    Resource,
    /// A storage operation lands, but the actor gets an error (an ambiguous outcome).
    Ambiguous,
    /// The actor's process dies.
    Crash,
    /// Time passes, or a lease expires: nobody acts.
    Time,
    /// The store ends an actor's lease by itself, proving a running process dead.
    LeaseLost,
    /// The actor acts without touching the store (it decides, gives up, checks its own clock).
    Local,
}

impl StepKind {
    /// Whether the step is drawn as an arrow to the store.
    pub fn touches_store(self) -> bool {
        matches!(
            self,
            StepKind::Storage | StepKind::Failed | StepKind::Ambiguous
        )
    }

    /// Whether the step is drawn as an arrow: to the store, or to the protected resource.
    pub fn is_arrow(self) -> bool {
        self.touches_store() || self == StepKind::Resource
    }
}

/// A behaviour from an initial state, as printed in counterexamples.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, Default)]
pub struct Trace {
    /// The setup: what each client is about to do.
    pub setup: Vec<String>,
    pub steps: Vec<TraceStep>,
    /// What the behaviour's last state breaks, in words (`c0 and c1 both hold P /a`).
    pub conclusion: Option<String>,
    /// How often the acting actor changes from one step to the next.
    pub switches: usize,
    /// The switches before the steps were regrouped (`check::regroup`), where that lowered them.
    pub switches_before_regrouping: Option<usize>,
    /// Whether `switches` is proven the fewest of every reordering of the steps that keeps each
    /// actor's steps in order and ends in the same state (`regroup`'s exact search completed).
    pub switches_fewest: bool,
}

/// How often the actor changes from one step to the next.
pub fn switches<'a>(actors: impl IntoIterator<Item = &'a str>) -> usize {
    let actors: Vec<&str> = actors.into_iter().collect();
    actors.windows(2).filter(|pair| pair[0] != pair[1]).count()
}

impl Trace {
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// `N switches between actors`, and how many there were before regrouping, if more.
    pub fn switches_text(&self) -> String {
        let plural = if self.switches == 1 { "" } else { "es" };
        let fewest = if self.switches_fewest {
            ", the fewest of any reordering"
        } else {
            ""
        };
        match self.switches_before_regrouping {
            Some(before) => format!(
                "{} switch{plural} between actors{fewest} ({before} before regrouping)",
                self.switches
            ),
            None => format!("{} switch{plural} between actors{fewest}", self.switches),
        }
    }
}

impl Trace {
    /// A behaviour's trace: `describe(before, action, after)` gives each step's actor and text,
    /// `name(action)` its stable form, `kind(before, action, after)` what kind of event it is.
    pub fn from_path<S, A: Copy>(
        setup: Vec<String>,
        path: &[(S, Option<A>)],
        describe: impl Fn(&S, A, &S) -> (String, String),
        name: impl Fn(A) -> String,
        kind: impl Fn(&S, A, &S) -> StepKind,
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
                    kind: kind(&pair[0].0, action, &pair[1].0),
                }
            })
            .collect::<Vec<TraceStep>>();
        Trace {
            setup,
            switches: switches(steps.iter().map(|s| s.actor.as_str())),
            steps,
            conclusion: None,
            switches_before_regrouping: None,
            switches_fewest: false,
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
