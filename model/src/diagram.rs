//! Counterexamples as pictures: a [`Trace`] drawn as a sequence diagram, either as one
//! self-contained SVG file or as Mermaid text to paste into an issue.
//!
//! The drawing has one lane per actor, one for the protected resource if a step writes to it,
//! and one for the store on the right. A step that touches the store is an arrow from the actor's lane to the
//! store's, labelled with the step's text, which names each key and what the operation found or
//! did. A failed operation's arrow is red and ends in a cross; an ambiguous one (it landed, the
//! caller saw an error) is dashed. A crash is a cross on its lane, a step that touches no storage
//! a dot, and time passing or a lease expiring a band across every lane. The step at which the
//! property breaks is highlighted, and the drawing ends with the property's name and the closing
//! line. This module knows no protocol: each protocol classifies its own steps
//! (`TraceStep::kind`).
//!
//! The SVG marks its parts for tools and tests: every lane head is `class="lane"` with a
//! `data-actor`, every arrow `class="arrow"` with a `data-step`, and the highlighted step
//! `class="breaking"`.

use std::fmt::Write as _;

use crate::trace::{StepKind, Trace, TraceStep};

/// The name of the store's lane.
pub const STORE_LANE: &str = "store";
/// The name of the protected resource's lane (only where a step writes to it).
pub const RESOURCE_LANE: &str = "resource";

/// What a drawing says above and below the trace.
#[derive(Clone, Copy, Debug)]
pub struct Caption<'a> {
    /// A short name: a catalogue id, or `protocol/variant in world W`.
    pub title: &'a str,
    /// One line on what the drawing shows (a catalogue entry's title).
    pub subtitle: &'a str,
    /// The property the trace breaks.
    pub property: &'a str,
}

/// The lanes of a drawing: every actor that acts in the trace, then the store. Numbered actors
/// (`c0`, `c1`, `m0`) come first, in their numbers' order; the others (`operator`, `recovery`)
/// follow in the order of their first step. Time passing and the store's own notices (a lost
/// lease) are drawn across the lanes and get none of their own.
pub fn lanes(trace: &Trace) -> Vec<String> {
    let mut lanes: Vec<String> = Vec::new();
    for step in &trace.steps {
        if has_lane(step) && !lanes.contains(&step.actor) {
            lanes.push(step.actor.clone());
        }
    }
    // A stable sort: unnumbered actors keep their order of appearance.
    lanes.sort_by_key(|lane| numbered(lane).map_or((1, String::new(), 0), |(p, n)| (0, p, n)));
    if trace.steps.iter().any(|s| s.kind == StepKind::Resource) {
        lanes.push(RESOURCE_LANE.into());
    }
    lanes.push(STORE_LANE.into());
    lanes
}

/// `c12` → (`c`, 12): a name that is letters followed by a number.
pub fn numbered(name: &str) -> Option<(String, u64)> {
    let digits = name.find(|c: char| c.is_ascii_digit())?;
    let (prefix, number) = name.split_at(digits);
    if prefix.is_empty() || !prefix.chars().all(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    Some((prefix.to_string(), number.parse().ok()?))
}

fn has_lane(step: &TraceStep) -> bool {
    !matches!(step.kind, StepKind::Time | StepKind::LeaseLost)
        && step.actor != STORE_LANE
        && step.actor != RESOURCE_LANE
}

/// The step at which the property breaks: the last one, when the trace says what it breaks.
fn breaking(trace: &Trace) -> Option<usize> {
    trace
        .conclusion
        .as_ref()
        .and_then(|_| trace.steps.last())
        .map(|s| s.n)
}

// Layout, in pixels. Text is 12 px monospace, about 7.2 px a character in the usual fonts.
const MARGIN: f64 = 20.0;
const NUMBER_COLUMN: f64 = 44.0;
const LANE_GAP: f64 = 150.0;
const CHAR_WIDTH: f64 = 7.3;
const LINE: f64 = 15.0;
const WRAP: usize = 76;

/// Splits `text` into lines of at most `width` characters, at spaces where it can.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let mut word: Vec<char> = word.chars().collect();
        // A word longer than a line is cut.
        while word.len() > width {
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            lines.push(word.drain(..width).collect());
        }
        let word: String = word.into_iter().collect();
        let needed = line.chars().count() + usize::from(!line.is_empty()) + word.chars().count();
        if needed > width && !line.is_empty() {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&word);
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

/// A drawing's file name stem for a counterexample named `id` (a catalogue id such as
/// `lock/zombie-write` or a property name): ASCII letters, digits, `-` and `_` kept, anything
/// else `-`. `bugs --svg`, `check --svg` and the report name their files by it, so links agree.
pub fn file_stem(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// `text` made safe inside XML or HTML text and attribute values (the drawings and the report
/// share this one rule).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

fn text_width(text: &str) -> f64 {
    text.chars().count() as f64 * CHAR_WIDTH
}

/// Draws `trace` as a self-contained SVG sequence diagram.
pub fn svg(trace: &Trace, caption: Caption<'_>) -> String {
    let lanes = lanes(trace);
    let lane_x = |actor: &str| -> f64 {
        let i = lanes.iter().position(|l| l == actor).unwrap_or(0);
        MARGIN + NUMBER_COLUMN + LANE_GAP / 2.0 + i as f64 * LANE_GAP
    };
    let store_x = lane_x(STORE_LANE);
    let first_x = lane_x(&lanes[0]);
    let breaking = breaking(trace);

    // The body is drawn first, so that the width is known when the header is written.
    let mut body = String::new();
    let mut right = store_x + LANE_GAP / 2.0;
    let note =
        |right: &mut f64, body: &mut String, x: f64, y: f64, lines: &[String], class: &str| {
            for (i, line) in lines.iter().enumerate() {
                let _ = writeln!(
                    body,
                    r#"<text class="label {class}" x="{x:.1}" y="{:.1}">{}</text>"#,
                    y + i as f64 * LINE,
                    escape(line)
                );
                *right = right.max(x + text_width(line));
            }
        };

    // The header: title, subtitle, property and the setup lines.
    let mut header_lines: Vec<(String, &str)> = vec![
        (caption.title.to_string(), "title"),
        (caption.subtitle.to_string(), "subtitle"),
    ];
    if !caption.property.is_empty() {
        header_lines.push((format!("property: {}", caption.property), "subtitle"));
    }
    for line in &trace.setup {
        header_lines.push((line.clone(), "setup"));
    }
    let mut y = MARGIN + 14.0;
    let mut header = String::new();
    for (line, class) in &header_lines {
        if line.is_empty() {
            continue;
        }
        // Long lines (a world's bounds) are wrapped to the width the steps use.
        for piece in wrap(line, WRAP + 30) {
            let _ = writeln!(
                header,
                r#"<text class="{class}" x="{MARGIN:.1}" y="{y:.1}">{}</text>"#,
                escape(&piece)
            );
            let scale = if *class == "title" { 1.25 } else { 1.0 };
            right = right.max(MARGIN + text_width(&piece) * scale);
            y += if *class == "title" { 22.0 } else { LINE + 2.0 };
        }
    }

    // Lane heads.
    let heads_top = y + 6.0;
    let heads_bottom = heads_top + 24.0;
    for lane in &lanes {
        let x = lane_x(lane);
        let width = (text_width(lane) + 20.0).max(60.0);
        let class = match lane.as_str() {
            STORE_LANE => "lane store",
            RESOURCE_LANE => "lane resource",
            _ => "lane",
        };
        let _ = writeln!(
            body,
            r#"<g class="{class}" data-actor="{a}"><rect x="{:.1}" y="{heads_top:.1}" width="{width:.1}" height="24" rx="4"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{a}</text></g>"#,
            x - width / 2.0,
            heads_top + 16.0,
            a = escape(lane)
        );
    }

    // One row per step.
    let mut y = heads_bottom + 20.0;
    for step in &trace.steps {
        let top = y - 12.0;
        let text = if step.kind == StepKind::Time || step.kind == StepKind::LeaseLost {
            format!("{}: {}", step.actor, step.text)
        } else {
            step.text.clone()
        };
        let lines = wrap(&text, WRAP);
        let height = lines.len() as f64 * LINE + 12.0;
        if Some(step.n) == breaking {
            let _ = writeln!(
                body,
                r#"<rect class="breaking" data-step="{}" x="{:.1}" y="{:.1}" width="WIDTH" height="{:.1}"/>"#,
                step.n,
                MARGIN / 2.0,
                top - 2.0,
                height + 6.0
            );
        }
        let _ = writeln!(
            body,
            r#"<text class="number" x="{MARGIN:.1}" y="{y:.1}">{}.</text>"#,
            step.n
        );
        let x = if has_lane(step) {
            lane_x(&step.actor)
        } else {
            first_x
        };
        let mark_y = y + (lines.len() as f64 - 1.0) * LINE + 8.0;
        match step.kind {
            StepKind::Storage | StepKind::Failed | StepKind::Ambiguous | StepKind::Resource => {
                let class = match step.kind {
                    StepKind::Storage => "arrow",
                    StepKind::Failed => "arrow failed",
                    StepKind::Resource => "arrow resource",
                    _ => "arrow ambiguous",
                };
                note(&mut right, &mut body, x + 8.0, y, &lines, "");
                let target = if step.kind == StepKind::Resource {
                    lane_x(RESOURCE_LANE)
                } else {
                    store_x
                };
                let end = if step.kind == StepKind::Failed {
                    target - 12.0
                } else {
                    target - 2.0
                };
                let head = if step.kind == StepKind::Failed {
                    ""
                } else {
                    r#" marker-end="url(#head)""#
                };
                let _ = writeln!(
                    body,
                    r#"<line class="{class}" data-step="{}" x1="{x:.1}" y1="{mark_y:.1}" x2="{end:.1}" y2="{mark_y:.1}"{head}/>"#,
                    step.n
                );
                if step.kind == StepKind::Failed {
                    cross(&mut body, target - 6.0, mark_y, "fault");
                }
            }
            StepKind::Crash => {
                cross(&mut body, x, y - 4.0, "crash");
                note(&mut right, &mut body, x + 12.0, y, &lines, "crash");
            }
            StepKind::Local => {
                let _ = writeln!(
                    body,
                    r#"<circle class="local" cx="{x:.1}" cy="{:.1}" r="4"/>"#,
                    y - 4.0
                );
                note(&mut right, &mut body, x + 10.0, y, &lines, "local");
            }
            StepKind::Time | StepKind::LeaseLost => {
                let class = if step.kind == StepKind::Time {
                    "band time"
                } else {
                    "band lease"
                };
                let _ = writeln!(
                    body,
                    r#"<line class="{class}" data-step="{}" x1="{:.1}" y1="{mark_y:.1}" x2="{:.1}" y2="{mark_y:.1}"/>"#,
                    step.n,
                    first_x - LANE_GAP / 3.0,
                    store_x + LANE_GAP / 3.0
                );
                note(
                    &mut right,
                    &mut body,
                    first_x + 8.0,
                    y,
                    &lines,
                    "band-label",
                );
            }
        }
        y += height + 8.0;
    }
    let lifelines_end = y - 6.0;

    // The closing lines: what the last state breaks, and which property.
    let mut closing = Vec::new();
    if let Some(conclusion) = &trace.conclusion {
        closing.push((format!("⇒ {conclusion}"), "conclusion"));
    }
    if let Some(n) = breaking {
        closing.push((
            format!("property \"{}\" broken at step {n}", caption.property),
            "subtitle",
        ));
    }
    let mut y = lifelines_end + 22.0;
    for (line, class) in &closing {
        for piece in wrap(line, WRAP + 30) {
            let _ = writeln!(
                body,
                r#"<text class="{class}" x="{MARGIN:.1}" y="{y:.1}">{}</text>"#,
                escape(&piece)
            );
            right = right.max(MARGIN + text_width(&piece));
            y += LINE + 2.0;
        }
    }
    let height = y + MARGIN;
    let width = (right + MARGIN).ceil();

    let mut lifelines = String::new();
    for lane in &lanes {
        let x = lane_x(lane);
        let _ = writeln!(
            lifelines,
            r#"<line class="lifeline" data-actor="{}" x1="{x:.1}" y1="{heads_bottom:.1}" x2="{x:.1}" y2="{lifelines_end:.1}"/>"#,
            escape(lane)
        );
    }

    let mut out = String::new();
    let _ = writeln!(
        out,
        r##"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" font-size="12">
<title>{}</title>
<style>
.title {{ font-size: 15px; font-weight: bold; }}
.subtitle {{ fill: #333; }}
.setup {{ fill: #555; }}
.lane rect {{ fill: #eef3fb; stroke: #4a6fa5; }}
.lane.store rect {{ fill: #f3efe6; stroke: #8a6d3b; }}
.lifeline {{ stroke: #9aa5b1; stroke-dasharray: 4 4; }}
.label {{ paint-order: stroke; stroke: #fff; stroke-width: 3px; stroke-linejoin: round; }}
.number {{ fill: #777; }}
.arrow {{ stroke: #222; stroke-width: 1.4; }}
.arrow.failed {{ stroke: #c0392b; stroke-dasharray: 2 3; }}
.arrow.ambiguous {{ stroke: #d35400; stroke-dasharray: 7 4; }}
.arrow.resource {{ stroke: #1e7b34; }}
.lane.resource rect {{ fill: #e9f5ec; stroke: #1e7b34; }}
.cross line {{ stroke: #c0392b; stroke-width: 2.5; }}
.crash {{ fill: #c0392b; font-weight: bold; }}
.local {{ fill: #555; }}
.label.local {{ fill: #555; font-style: italic; }}
.band {{ stroke: #7d5ba6; stroke-width: 1; stroke-dasharray: 10 3 2 3; }}
.band.lease {{ stroke: #b03a8c; }}
.band-label {{ fill: #5b3f82; }}
.breaking {{ fill: #fdecea; stroke: #e6b0aa; }}
.conclusion {{ fill: #c0392b; font-weight: bold; }}
</style>
<defs><marker id="head" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#222"/></marker></defs>
<rect x="0" y="0" width="{width:.0}" height="{height:.0}" fill="#fff"/>"##,
        escape(caption.title)
    );
    out.push_str(&header);
    // The highlight is drawn under everything else on its row.
    let body = body.replace(
        "width=\"WIDTH\"",
        &format!("width=\"{:.1}\"", width - MARGIN),
    );
    let (highlight, rest): (Vec<&str>, Vec<&str>) = body
        .lines()
        .partition(|l| l.starts_with("<rect class=\"breaking\""));
    for line in highlight {
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(&lifelines);
    for line in rest {
        out.push_str(line);
        out.push('\n');
    }
    out.push_str("</svg>\n");
    out
}

fn cross(out: &mut String, x: f64, y: f64, class: &str) {
    let r = 5.0;
    let _ = writeln!(
        out,
        r#"<g class="cross {class}"><line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}"/><line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}"/></g>"#,
        x - r,
        y - r,
        x + r,
        y + r,
        x - r,
        y + r,
        x + r,
        y - r
    );
}

/// The drawing stateright's Explorer shows beside a state (`Model::as_svg`): the state as a
/// table of labelled rows (`state`, each protocol's own: its clients, journals, tickets and the
/// resource), then the path from the initial state so far, once it has a step.
pub fn explorer_svg(trace: &Trace, protocol: &str, state: &[(String, String)]) -> Option<String> {
    let table = table_svg(&format!("{protocol}: this state"), state);
    if trace.is_empty() {
        return Some(table);
    }
    let title = format!("{protocol}: the path so far");
    let path = svg(
        trace,
        Caption {
            title: &title,
            subtitle: "",
            property: "",
        },
    );
    // One SVG: both drawings nested in it, one under the other.
    let ((table_width, table_height), (path_width, path_height)) = (size(&table), size(&path));
    let (width, height) = (table_width.max(path_width), table_height + path_height);
    let nested = |drawing: &str, y: f64| {
        let start = drawing.find("<svg ").expect("a drawing starts with <svg");
        format!(
            "<svg x=\"0\" y=\"{y:.0}\" {}",
            &drawing[start + "<svg ".len()..]
        )
    };
    Some(format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\">\n{}{}</svg>\n",
        nested(&table, 0.0),
        nested(&path, table_height)
    ))
}

/// The `width` and `height` a drawing of this module declares on its `<svg>` element.
fn size(drawing: &str) -> (f64, f64) {
    let attribute = |name: &str| {
        let at = drawing
            .find(&format!(" {name}=\""))
            .expect("a drawing declares its size")
            + name.len()
            + 3;
        let end = drawing[at..].find('"').expect("a closed attribute") + at;
        drawing[at..end].parse::<f64>().expect("a number")
    };
    (attribute("width"), attribute("height"))
}

/// A state as a self-contained SVG table: `title`, then one row per (label, value), the value
/// wrapped at the drawings' line width.
pub fn table_svg(title: &str, rows: &[(String, String)]) -> String {
    let label_width = rows
        .iter()
        .map(|(label, _)| text_width(label))
        .fold(0.0, f64::max);
    let value_x = MARGIN + label_width + 2.0 * CHAR_WIDTH;
    let mut body = String::new();
    let mut y = MARGIN + LINE;
    let mut right = MARGIN + text_width(title);
    let _ = writeln!(
        body,
        r#"<text class="title" x="{MARGIN:.1}" y="{y:.1}">{}</text>"#,
        escape(title)
    );
    y += LINE * 1.5;
    for (n, (label, value)) in rows.iter().enumerate() {
        let lines = wrap(value, WRAP);
        let top = y - LINE + 3.0;
        let _ = writeln!(
            body,
            r#"<rect class="row{}" x="{:.1}" y="{top:.1}" width="WIDTH" height="{:.1}"/>"#,
            if n % 2 == 0 { " even" } else { "" },
            MARGIN - 4.0,
            lines.len() as f64 * LINE + 2.0
        );
        let _ = writeln!(
            body,
            r#"<text class="key" x="{MARGIN:.1}" y="{y:.1}">{}</text>"#,
            escape(label)
        );
        for line in &lines {
            let _ = writeln!(
                body,
                r#"<text class="value" x="{value_x:.1}" y="{y:.1}">{}</text>"#,
                escape(line)
            );
            right = right.max(value_x + text_width(line));
            y += LINE;
        }
    }
    let (width, height) = (right + MARGIN, y + MARGIN - LINE / 2.0);
    let body = body.replace(
        "width=\"WIDTH\"",
        &format!("width=\"{:.1}\"", width - 2.0 * MARGIN + 8.0),
    );
    format!(
        r##"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" font-size="12">
<title>{}</title>
<style>
.title {{ font-size: 15px; font-weight: bold; }}
.key {{ fill: #4a6fa5; font-weight: bold; }}
.row {{ fill: #fff; }}
.row.even {{ fill: #f4f6fa; }}
</style>
<rect x="0" y="0" width="{width:.0}" height="{height:.0}" fill="#fff"/>
{body}</svg>
"##,
        escape(title)
    )
}

/// Mermaid's message text: `;` and `#` end or start its entity codes, `<` and `>` could be read
/// as HTML, so each becomes an entity code.
fn mermaid_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            ';' => out.push_str("#59;"),
            '#' => out.push_str("#35;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Mermaid participant ids: letters, digits and `_` only; the lane's name is its alias.
fn mermaid_id(lane: &str) -> String {
    let id: String = lane
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("p_{id}")
}

/// Draws `trace` as a Mermaid `sequenceDiagram`, for pasting into an issue.
pub fn mermaid(trace: &Trace, caption: Caption<'_>) -> String {
    let lanes = lanes(trace);
    let first = mermaid_id(&lanes[0]);
    let store = mermaid_id(STORE_LANE);
    let across = if first == store {
        store.clone()
    } else {
        format!("{first},{store}")
    };
    let breaking = breaking(trace);
    let mut out = String::new();
    let _ = writeln!(out, "%% {}: {}", caption.title, caption.subtitle);
    let _ = writeln!(out, "%% property: {}", caption.property);
    let _ = writeln!(out, "sequenceDiagram");
    for lane in &lanes {
        let _ = writeln!(
            out,
            "    participant {} as {}",
            mermaid_id(lane),
            mermaid_text(lane)
        );
    }
    for line in &trace.setup {
        let _ = writeln!(out, "    Note over {across}: {}", mermaid_text(line));
    }
    for step in &trace.steps {
        let last = Some(step.n) == breaking;
        if last {
            let _ = writeln!(out, "    rect rgb(253, 236, 234)");
        }
        let text = mermaid_text(&format!("{}. {}", step.n, step.text));
        let actor = mermaid_id(&step.actor);
        match step.kind {
            StepKind::Storage => {
                let _ = writeln!(out, "    {actor}->>{store}: {text}");
            }
            StepKind::Resource => {
                let resource = mermaid_id(RESOURCE_LANE);
                let _ = writeln!(out, "    {actor}->>{resource}: {text}");
            }
            StepKind::Failed => {
                let _ = writeln!(out, "    {actor}-x{store}: {text}");
            }
            StepKind::Ambiguous => {
                let _ = writeln!(out, "    {actor}--){store}: {text}");
            }
            StepKind::Crash | StepKind::Local => {
                let _ = writeln!(out, "    Note over {actor}: {text}");
            }
            StepKind::Time | StepKind::LeaseLost => {
                let text = mermaid_text(&format!("{}. {}: {}", step.n, step.actor, step.text));
                let _ = writeln!(out, "    Note over {across}: {text}");
            }
        }
        if last {
            let _ = writeln!(out, "    end");
        }
    }
    if let Some(conclusion) = &trace.conclusion {
        let _ = writeln!(
            out,
            "    Note over {across}: ⇒ {} (property \"{}\")",
            mermaid_text(conclusion),
            mermaid_text(caption.property)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(n: usize, actor: &str, text: &str, kind: StepKind) -> TraceStep {
        TraceStep {
            n,
            actor: actor.into(),
            text: text.into(),
            action: String::new(),
            kind,
        }
    }

    fn trace() -> Trace {
        Trace {
            setup: vec!["c0: point → P /a".into()],
            steps: vec![
                step(1, "c1", "read a → nothing", StepKind::Storage),
                step(
                    2,
                    "c0",
                    "create a#0 = <acquire> & go → ok",
                    StepKind::Storage,
                ),
                step(3, "clock", "time advances", StepKind::Time),
                step(4, "c1", "CRASHES", StepKind::Crash),
                step(5, "c0", "create a#1 → error", StepKind::Failed),
            ],
            conclusion: Some("c0 and c1 both hold P /a".into()),
            switches: 4,
            switches_before_regrouping: None,
            switches_fewest: false,
        }
    }

    #[test]
    fn numbered_lanes_first_then_the_others_then_the_store() {
        assert_eq!(lanes(&trace()), ["c0", "c1", "store"]);
        let mut t = trace();
        t.steps
            .insert(0, step(0, "operator", "force release", StepKind::Storage));
        t.steps.push(step(6, "m10", "x", StepKind::Storage));
        t.steps.push(step(7, "m9", "x", StepKind::Storage));
        assert_eq!(lanes(&t), ["c0", "c1", "m9", "m10", "operator", "store"]);
    }

    #[test]
    fn wrapping_keeps_every_word_and_respects_the_width() {
        let text = "a verylongwordthatdoesnotfit and some more words here";
        let lines = wrap(text, 10);
        assert!(lines.iter().all(|l| l.chars().count() <= 10), "{lines:?}");
        assert_eq!(lines.join("").replace(' ', ""), text.replace(' ', ""));
        assert_eq!(wrap("", 10), [""]);
    }

    #[test]
    fn svg_escapes_text_and_counts_arrows() {
        let svg = svg(
            &trace(),
            Caption {
                title: "t",
                subtitle: "s",
                property: "p",
            },
        );
        assert!(svg.contains("&lt;acquire&gt; &amp; go"));
        assert_eq!(svg.matches("<line class=\"arrow").count(), 3);
        assert_eq!(svg.matches("<g class=\"lane").count(), 3);
        assert_eq!(
            svg.matches("<rect class=\"breaking\" data-step=\"5\"")
                .count(),
            1
        );
    }

    #[test]
    fn mermaid_escapes_its_separators() {
        let text = mermaid(
            &trace(),
            Caption {
                title: "t",
                subtitle: "s",
                property: "p",
            },
        );
        assert!(
            text.contains("create a#35;0 = #lt;acquire#gt; & go → ok"),
            "{text}"
        );
        assert!(
            text.contains("p_c0-xp_store: 5. create a#35;1 → error"),
            "{text}"
        );
        assert!(!text.lines().any(|l| l.contains(';')
            && !l.contains("#59;")
            && !l.contains("#35;")
            && !l.contains("#lt;")
            && !l.contains("#gt;")));
    }
}
