//! Checking a counterexample's drawings against its trace, independently of how
//! `lockstep_model::diagram` lays them out: the SVG must parse as XML and have one lane per actor
//! (plus the store), one arrow per storage step in step order, the breaking step highlighted and
//! the closing line written out; the Mermaid text must have one message per storage step.

use lockstep_model::diagram::{self, Caption};
use lockstep_model::trace::{StepKind, Trace};

/// The actors a drawing must give a lane: whoever acts, except time and the store's notices;
/// then the store.
fn expected_lanes(trace: &Trace) -> Vec<String> {
    let mut lanes: Vec<String> = Vec::new();
    for step in &trace.steps {
        let lane = !matches!(step.kind, StepKind::Time | StepKind::LeaseLost);
        if lane && step.actor != "store" && step.actor != "resource" && !lanes.contains(&step.actor)
        {
            lanes.push(step.actor.clone());
        }
    }
    // Numbered actors first, by number; the others in the order they first act.
    lanes.sort_by_key(|lane| {
        let digits = lane.find(|c: char| c.is_ascii_digit()).unwrap_or(0);
        match (
            lane[..digits].chars().all(|c| c.is_ascii_alphabetic()),
            lane[digits..].parse::<u64>(),
        ) {
            (true, Ok(n)) if digits > 0 => (0, lane[..digits].to_string(), n),
            _ => (1, String::new(), 0),
        }
    });
    if trace.steps.iter().any(|s| s.kind == StepKind::Resource) {
        lanes.push("resource".into());
    }
    lanes.push("store".into());
    lanes
}

fn has_class(node: &roxmltree::Node, class: &str) -> bool {
    node.attribute("class")
        .is_some_and(|c| c.split_whitespace().any(|word| word == class))
}

/// Parses `svg` and checks it against `trace`; `what` names the drawing in failures.
pub fn assert_svg(what: &str, trace: &Trace, svg: &str) {
    let document = roxmltree::Document::parse(svg)
        .unwrap_or_else(|e| panic!("{what}: the SVG does not parse as XML: {e}"));
    let root = document.root_element();
    assert_eq!(
        root.tag_name().name(),
        "svg",
        "{what}: the root is not <svg>"
    );
    let lanes: Vec<String> = root
        .descendants()
        .filter(|n| n.tag_name().name() == "g" && has_class(n, "lane"))
        .map(|n| n.attribute("data-actor").unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        lanes,
        expected_lanes(trace),
        "{what}: the lanes are not one per actor"
    );
    let lifelines = root
        .descendants()
        .filter(|n| n.tag_name().name() == "line" && has_class(n, "lifeline"))
        .count();
    assert_eq!(
        lifelines,
        lanes.len(),
        "{what}: a lane without its lifeline"
    );
    let arrows: Vec<usize> = root
        .descendants()
        .filter(|n| n.tag_name().name() == "line" && has_class(n, "arrow"))
        .map(|n| {
            n.attribute("data-step")
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("{what}: an arrow without its step"))
        })
        .collect();
    let storage: Vec<usize> = trace
        .steps
        .iter()
        .filter(|s| s.kind.is_arrow())
        .map(|s| s.n)
        .collect();
    assert!(
        !storage.is_empty(),
        "{what}: a counterexample without a storage step"
    );
    assert_eq!(
        arrows, storage,
        "{what}: not one arrow per storage step, in order"
    );
    let breaking: Vec<&str> = root
        .descendants()
        .filter(|n| has_class(n, "breaking"))
        .filter_map(|n| n.attribute("data-step"))
        .collect();
    let last = trace
        .steps
        .last()
        .expect("a counterexample has steps")
        .n
        .to_string();
    assert_eq!(
        breaking,
        [last.as_str()],
        "{what}: the breaking step is not highlighted"
    );
    let conclusion: Vec<&str> = root
        .descendants()
        .filter(|n| has_class(n, "conclusion"))
        .filter_map(|n| n.text())
        .collect();
    let expected = format!(
        "⇒ {}",
        trace
            .conclusion
            .as_deref()
            .expect("a counterexample says what it breaks")
    );
    assert_eq!(
        conclusion.join(" "),
        expected,
        "{what}: the closing line is missing"
    );
}

/// Checks the Mermaid text of `trace`: one message per storage step, one participant per lane.
pub fn assert_mermaid(what: &str, trace: &Trace, text: &str) {
    let participants = text
        .lines()
        .filter(|l| l.trim_start().starts_with("participant "))
        .count();
    assert_eq!(
        participants,
        expected_lanes(trace).len(),
        "{what}: participants"
    );
    let messages = text
        .lines()
        .map(str::trim_start)
        .filter(|l| {
            l.starts_with("p_") && (l.contains("->>") || l.contains("-x") || l.contains("--)"))
        })
        .count();
    let storage = trace.steps.iter().filter(|s| s.kind.is_arrow()).count();
    assert_eq!(
        messages, storage,
        "{what}: not one message per storage step:\n{text}"
    );
    for line in text.lines().filter(|l| !l.starts_with("%%")) {
        let bare = ["#59;", "#35;", "#lt;", "#gt;"]
            .iter()
            .fold(line.to_string(), |l, code| l.replace(code, ""));
        assert!(
            !bare.contains(';'),
            "{what}: an unescaped ';' would end a Mermaid statement: {line}"
        );
    }
}

/// Each step's kind agrees with what its text says it does (the kinds are classified apart from
/// the texts, in each protocol's `step_kind`).
pub fn assert_kinds(what: &str, trace: &Trace) {
    for step in &trace.steps {
        let (text, kind) = (&step.text, step.kind);
        let agrees = if text.contains("CRASHES") {
            matches!(kind, StepKind::Crash | StepKind::Ambiguous)
        } else if text.contains("STORE FAULT") || text.contains("FAILS") {
            matches!(kind, StepKind::Failed | StepKind::Ambiguous)
        } else if text.contains("guarded write") {
            kind == StepKind::Resource
        } else if text.contains("time advances") || text.contains("EXPIRES") {
            kind == StepKind::Time
        } else if text.contains("lease is LOST") {
            kind == StepKind::LeaseLost
        } else {
            !matches!(
                kind,
                StepKind::Crash | StepKind::Time | StepKind::LeaseLost | StepKind::Resource
            )
        };
        assert!(
            agrees,
            "{what}: step {} is drawn as {kind:?} but reads: {text}",
            step.n
        );
    }
}

/// Draws `trace` both ways and checks both drawings.
pub fn assert_drawings(id: &str, title: &str, property: &str, trace: &Trace) {
    assert_kinds(id, trace);
    let caption = Caption {
        title: id,
        subtitle: title,
        property,
    };
    assert_svg(id, trace, &diagram::svg(trace, caption));
    assert_mermaid(id, trace, &diagram::mermaid(trace, caption));
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockstep_model::trace::TraceStep;

    fn trace() -> Trace {
        let step = |n: usize, actor: &str, kind: StepKind| TraceStep {
            n,
            actor: actor.into(),
            text: format!("step {n}; of {actor}"),
            action: String::new(),
            kind,
        };
        Trace {
            setup: vec![],
            steps: vec![
                step(1, "c0", StepKind::Storage),
                step(2, "clock", StepKind::Time),
                step(3, "c1", StepKind::Ambiguous),
                step(4, "c0", StepKind::Crash),
                step(5, "operator", StepKind::Storage),
            ],
            conclusion: Some("something breaks".into()),
            switches: 4,
            switches_before_regrouping: None,
            switches_fewest: false,
        }
    }

    fn caption() -> Caption<'static> {
        Caption {
            title: "t",
            subtitle: "s",
            property: "p",
        }
    }

    fn fails(svg: &str) -> bool {
        let trace = trace();
        std::panic::catch_unwind(|| assert_svg("tampered", &trace, svg)).is_err()
    }

    /// The checks pass on a real drawing and fail on one with an arrow, a lane, the highlight or
    /// the closing line taken out: they are not vacuous.
    #[test]
    fn the_checks_catch_a_drawing_with_a_part_missing() {
        let svg = diagram::svg(&trace(), caption());
        assert_svg("drawn", &trace(), &svg);
        assert_mermaid("drawn", &trace(), &diagram::mermaid(&trace(), caption()));
        let without = |prefix: &str| -> String {
            let mut removed = false;
            svg.lines()
                .filter(|l| {
                    let drop = !removed && l.starts_with(prefix);
                    removed |= drop;
                    !drop
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        for prefix in [
            "<line class=\"arrow",
            "<g class=\"lane\"",
            "<rect class=\"breaking\"",
            "<text class=\"conclusion\"",
            "<line class=\"lifeline\"",
        ] {
            let tampered = without(prefix);
            assert_ne!(tampered, svg, "nothing starts with {prefix}");
            assert!(fails(&tampered), "a drawing without {prefix} passed");
        }
        assert!(
            fails(&svg.replace("</svg>", "")),
            "a drawing that is not XML passed"
        );
        let mermaid = diagram::mermaid(&trace(), caption()).replace("#59;", ";");
        let trace = trace();
        assert!(std::panic::catch_unwind(|| assert_mermaid("m", &trace, &mermaid)).is_err());
    }
}
