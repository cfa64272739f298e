//! The HTML page of one run: one self-contained file (inline CSS, inline SVG, no script, no font,
//! nothing fetched), so that it opens offline and can be attached to an issue.
//!
//! Sections, each with a stable id that tests and links rely on: `verdict`, `reproduce`, `metrics`,
//! `coverage`, `timeline`, `spacetime`, `states`, `violations`, `shrunk` (when shrinking ran),
//! `faults`, `exports`, `scenario`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use converge_checker::oracles::ReplicaSnapshot;
use converge_checker::{RunReport, Shrunk};
use converge_netsim::{EventKind, TraceEvent, Verdict};
use serde_json::Value;

use super::exports::describe;
use super::{escape, node_count, node_name, verdict_in_words, verdict_phrase};

/// Trace events drawn in the space-time diagram.
pub const SPACETIME_EVENTS_MAX: usize = 200;

/// What the page of one run shows besides the report itself.
pub struct RunPage<'a> {
    pub report: &'a RunReport,
    /// The minimal counterexample, when the run was shrunk: the diagram draws it instead.
    pub shrunk: Option<&'a Shrunk>,
    /// File names of the run's trace exports and minimal scenario, as `(label, href)`.
    pub links: Vec<(String, String)>,
    /// The index page, for the link back.
    pub index_href: Option<String>,
    /// The run's id ([`crate::run_id`]), shown under the title.
    pub run_id: Option<String>,
    /// Why the report is partial (the run or its shrinking was interrupted), shown at the top.
    pub partial: Option<String>,
}

const STYLE: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;max-width:1100px;padding:1em 2em;color:#1b1f24}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.15em;border-bottom:1px solid #d0d7de;padding-bottom:.2em;margin-top:1.6em}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
pre{background:#f6f8fa;padding:.7em;overflow:auto;border-radius:4px}
table{border-collapse:collapse;margin:.4em 0}td,th{border:1px solid #d0d7de;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f6f8fa}.num{text-align:right;font-variant-numeric:tabular-nums}
.verdict{font-size:1.15em;padding:.7em 1em;border-radius:6px;margin:.6em 0}
.good{background:#dafbe1;border:1px solid #4ac26b}.bad{background:#ffebe9;border:1px solid #ff8182}.warn{background:#fff8c5;border:1px solid #d4a72c}
.met{color:#1a7f37;font-weight:600}.unmet{color:#cf222e;font-weight:600}
.grid td{width:2.6em;height:2.1em;text-align:center;font-variant-numeric:tabular-nums}
.diff{background:#ffcecb;font-weight:700}.states{display:flex;flex-wrap:wrap;gap:1.5em}
.muted{color:#57606a}svg{background:#fff;border:1px solid #d0d7de;border-radius:4px}
svg text{font:11px system-ui,sans-serif}
";

/// Renders the page.
pub fn render(page: &RunPage<'_>) -> String {
    let report = page.report;
    let mut html = String::new();
    let title = format!(
        "{} seed {}: {}",
        report.scenario,
        report.seed,
        verdict_phrase(report.verdict)
    );
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n",
        escape(&title)
    );
    if let Some(index) = &page.index_href {
        let _ = writeln!(
            html,
            "<p class=\"muted\"><a href=\"{}\">&larr; all runs</a></p>",
            escape(index)
        );
    }
    let _ = writeln!(
        html,
        "<h1>{}</h1>",
        escape(&format!("{} — seed {}", report.scenario, report.seed))
    );
    if let Some(run_id) = &page.run_id {
        let _ = writeln!(
            html,
            "<p class=\"muted\" id=\"run-id\">run id <code>{}</code></p>",
            escape(run_id)
        );
    }
    if let Some(note) = &page.partial {
        let _ = writeln!(
            html,
            "<p class=\"verdict warn\" id=\"partial\"><b>Partial:</b> {}. What follows covers only \
             what ran before that.</p>",
            escape(note)
        );
    }
    if !report.description.is_empty() {
        let _ = writeln!(html, "<p>{}</p>", escape(&report.description));
    }
    verdict_section(&mut html, report);
    reproduce_section(&mut html, report);
    metrics_section(&mut html, report);
    coverage_section(&mut html, report);
    timeline_section(&mut html, report);
    spacetime_section(&mut html, page);
    states_section(&mut html, report);
    violations_section(&mut html, report);
    if let Some(shrunk) = page.shrunk {
        shrunk_section(&mut html, shrunk);
    }
    faults_section(&mut html, report);
    exports_section(&mut html, page);
    let spec =
        toml::to_string(&report.scenario_spec).unwrap_or_else(|e| format!("(cannot render: {e})"));
    let _ = writeln!(
        html,
        "<h2 id=\"scenario\">Scenario as run</h2><pre>{}</pre>",
        escape(&spec)
    );
    html.push_str("</body></html>\n");
    html
}

fn verdict_section(html: &mut String, report: &RunReport) {
    let class = match (report.verdict, report.met_expectation) {
        (_, false) => "bad",
        (Verdict::Converges, true) => "good",
        (_, true) => "warn",
    };
    let _ = writeln!(
        html,
        "<section id=\"verdict\"><h2>Verdict</h2><div class=\"verdict {class}\">{}</div>",
        escape(&verdict_in_words(report))
    );
    let (met_class, met_words) = if report.met_expectation {
        ("met", "Expectation met")
    } else {
        ("unmet", "Expectation NOT met")
    };
    let _ = writeln!(
        html,
        "<p><span class=\"{met_class}\">{met_words}</span>: expected <b>{}</b>, got <b>{}</b>.</p>",
        verdict_phrase(report.expected),
        verdict_phrase(report.verdict)
    );
    if report.expectation_notes.len() > 1 || !report.met_expectation {
        html.push_str("<ul>");
        for note in &report.expectation_notes {
            let _ = write!(html, "<li>{}</li>", escape(note));
        }
        html.push_str("</ul>\n");
    }
    if report.coverage.vacuous {
        html.push_str(
            "<p class=\"verdict warn\"><b>Vacuous run:</b> it exercised no concurrent write to one key, \
             so a clean verdict on it is not evidence.</p>\n",
        );
    }
    html.push_str("</section>\n");
}

fn reproduce_section(html: &mut String, report: &RunReport) {
    let _ = writeln!(
        html,
        "<section id=\"reproduce\"><h2>Reproduce</h2><pre><code>{}</code></pre>\
         <p class=\"muted\">Trace hash <code>{}</code>: the same scenario and seed give the same hash on any machine.</p></section>",
        escape(&report.reproduce),
        escape(&report.trace_hash)
    );
}

fn row(html: &mut String, name: &str, value: impl std::fmt::Display) {
    let _ = write!(
        html,
        "<tr><th>{}</th><td class=\"num\">{}</td></tr>",
        escape(name),
        escape(&value.to_string())
    );
}

fn metrics_section(html: &mut String, report: &RunReport) {
    html.push_str("<section id=\"metrics\"><h2>Metrics</h2><table>");
    row(html, "events", report.events);
    row(html, "updates (writes)", report.updates);
    row(
        html,
        "virtual time simulated",
        format!("{:.1} ms", report.end_ms),
    );
    row(
        html,
        "converged at",
        report
            .converged_at_ms
            .map_or("never".to_string(), |at| format!("{at:.1} ms")),
    );
    let m = &report.messages;
    row(html, "messages sent", m.sent);
    row(html, "messages delivered", m.delivered);
    row(html, "messages dropped", m.dropped);
    row(html, "messages duplicated", m.duplicated);
    row(html, "bytes sent", m.bytes_sent);
    row(
        html,
        "strong-convergence violations",
        report.strong_violations_total,
    );
    html.push_str("</table></section>\n");
}

fn coverage_section(html: &mut String, report: &RunReport) {
    let c = &report.coverage.coverage;
    html.push_str("<section id=\"coverage\"><h2>Coverage (what the run exercised)</h2><table>");
    row(
        html,
        "concurrent writes to one key",
        c.concurrent_writes_same_key,
    );
    row(
        html,
        "writes on both sides of a partition",
        c.writes_both_sides_of_partition,
    );
    row(html, "duplicate deliveries", c.duplicate_deliveries);
    row(html, "reordered deliveries", c.reordered_deliveries);
    row(html, "late joins", c.late_joins);
    row(
        html,
        "late joins caught up",
        report.coverage.late_joins_caught_up,
    );
    row(html, "crashes", c.crashes);
    row(html, "restarts", c.restarts);
    row(html, "retransmissions", c.retransmissions);
    html.push_str("</table>");
    if report.coverage.vacuous {
        html.push_str("<p class=\"unmet\">Vacuous: no conflicting writes were exercised.</p>");
    }
    html.push_str("</section>\n");
}

/// The distinct-states chart: a step line of how many different states the live replicas hold.
fn timeline_section(html: &mut String, report: &RunReport) {
    html.push_str("<section id=\"timeline\"><h2>Distinct replica states over virtual time</h2>\n");
    let (width, height, left, bottom, top, right) = (900.0, 220.0, 48.0, 30.0, 12.0, 16.0);
    let end_ms = report
        .end_ms
        .max(report.timeline.last().map_or(0.0, |p| p.0))
        .max(1.0);
    let max_states = report
        .timeline
        .iter()
        .map(|p| p.1)
        .max()
        .unwrap_or(1)
        .max(1);
    let x = |ms: f64| left + (ms / end_ms) * (width - left - right);
    let y = |n: u32| top + (1.0 - f64::from(n) / f64::from(max_states)) * (height - top - bottom);
    let _ = write!(
        html,
        "<svg id=\"timeline-chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"distinct states over time\">"
    );
    // Axes and gridlines.
    for n in 0..=max_states {
        let _ = write!(
            html,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#eaeef2\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{n}</text>",
            width - right,
            left - 6.0,
            y(n) + 4.0,
            y = y(n)
        );
    }
    for tick in 0..=5 {
        let ms = end_ms * f64::from(tick) / 5.0;
        let _ = write!(
            html,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"{}\">{}</text>",
            x(ms),
            height - 10.0,
            if tick == 5 { "end" } else { "middle" },
            format_ms(ms)
        );
    }
    if let Some(at_ms) = report.converged_at_ms {
        let _ = write!(
            html,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{top}\" y2=\"{}\" stroke=\"#1a7f37\" stroke-dasharray=\"4 3\"/>\
             <text x=\"{:.1}\" y=\"{}\" fill=\"#1a7f37\">converged</text>",
            height - bottom,
            x(at_ms) + 4.0,
            top + 10.0,
            x = x(at_ms)
        );
    }
    let mut path = String::new();
    let mut last: Option<u32> = None;
    for &(ms, n) in &report.timeline {
        match last {
            None => {
                let _ = write!(path, "M{:.1},{:.1}", x(ms), y(n));
            }
            Some(_) => {
                let _ = write!(path, " H{:.1} V{:.1}", x(ms), y(n));
            }
        }
        last = Some(n);
    }
    if last.is_some() {
        let _ = write!(path, " H{:.1}", x(end_ms));
        let _ = write!(
            html,
            "<path d=\"{path}\" fill=\"none\" stroke=\"#0969da\" stroke-width=\"2\"/>"
        );
    }
    html.push_str("</svg>");
    let _ = writeln!(
        html,
        "<p class=\"muted\">One line: how many different states the live replicas hold (1 = agreement). \
         {} change points{}.</p></section>",
        report.timeline.len(),
        if report.timeline.is_empty() { "; nothing changed" } else { "" }
    );
}

fn format_ms(ms: f64) -> String {
    if ms >= 10_000.0 {
        format!("{:.0} s", ms / 1e3)
    } else if ms >= 1_000.0 {
        format!("{:.1} s", ms / 1e3)
    } else {
        format!("{ms:.0} ms")
    }
}

/// The space-time (Lamport) diagram: one vertical line per node, time flowing down (one row per
/// event, so that causality stays readable whatever the latencies), messages as arrows from send
/// to delivery, lost messages as arrows ending in an x, writes as dots.
fn spacetime_section(html: &mut String, page: &RunPage<'_>) {
    let (report, trace, caption) = match page.shrunk {
        Some(shrunk) => (
            &shrunk.report,
            &shrunk.report.trace,
            format!(
                "the minimal counterexample ({} replicas, {} writes, {} messages; shrunk from {} replicas, {} writes, {} messages)",
                shrunk.minimal.replicas,
                shrunk.minimal.writes,
                shrunk.minimal.messages,
                shrunk.original.replicas,
                shrunk.original.writes,
                shrunk.original.messages
            ),
        ),
        None => (page.report, &page.report.trace, "the run".to_string()),
    };
    let drawn: Vec<&TraceEvent> = trace
        .iter()
        .filter(|e| {
            !matches!(
                e.kind,
                EventKind::Timer { .. } | EventKind::Duplicate { .. }
            )
        })
        .take(SPACETIME_EVENTS_MAX)
        .collect();
    let _ = writeln!(
        html,
        "<section id=\"spacetime\"><h2>Space-time diagram</h2><p class=\"muted\">Of {}: the first {} events \
         (of {}{}). Time flows down; arrows are messages, <span style=\"color:#cf222e\">red arrows ending in x</span> \
         were lost, dots are writes.</p>",
        escape(&caption),
        drawn.len(),
        report.events,
        if report.trace_truncated { ", trace truncated" } else { "" }
    );
    let nodes = node_count(report).max(1);
    let lane_width = 110.0;
    let row_height = 14.0;
    let top = 36.0;
    let width = 40.0 + lane_width * f64::from(nodes);
    let height = top + row_height * (drawn.len() as f64 + 1.0) + 10.0;
    let lane_x = |node: u32| 40.0 + lane_width * f64::from(node) + lane_width / 2.0 - 20.0;
    let row_y = |row: usize| top + row_height * (row as f64 + 0.5);
    let _ = write!(
        html,
        "<svg id=\"spacetime-diagram\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height:.0}\" \
         viewBox=\"0 0 {width} {height:.0}\" role=\"img\" aria-label=\"space-time diagram\">\
         <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" \
         orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#57606a\"/></marker></defs>"
    );
    for node in 0..nodes {
        let x = lane_x(node);
        let _ = write!(
            html,
            "<text x=\"{x:.1}\" y=\"18\" text-anchor=\"middle\" font-weight=\"bold\">{}</text>\
             <line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{}\" y2=\"{:.1}\" stroke=\"#8c959f\"/>",
            escape(&node_name(report, node)),
            top - 8.0,
            height - 6.0
        );
    }
    let mut sends: BTreeMap<u64, (u32, usize)> = BTreeMap::new();
    for (row, event) in drawn.iter().enumerate() {
        let y = row_y(row);
        let title = escape(&format!(
            "#{} at {:.3} ms: {}",
            event.index,
            event.at_us as f64 / 1e3,
            describe(report, event)
        ));
        match event.kind {
            EventKind::Write { replica, key, .. } => {
                let _ = write!(
                    html,
                    "<circle cx=\"{:.1}\" cy=\"{y:.1}\" r=\"4.5\" fill=\"#0969da\"><title>{title}</title></circle>\
                     <text x=\"{:.1}\" y=\"{:.1}\" fill=\"#0969da\">w{key}</text>",
                    lane_x(replica),
                    lane_x(replica) + 7.0,
                    y + 4.0
                );
            }
            EventKind::Send { from, message, .. } => {
                sends.insert(message, (from, row));
                let _ = write!(
                    html,
                    "<circle cx=\"{:.1}\" cy=\"{y:.1}\" r=\"2\" fill=\"#57606a\"><title>{title}</title></circle>",
                    lane_x(from)
                );
            }
            EventKind::Deliver {
                from,
                to,
                message,
                changed,
            } => {
                let (sender, start_y) = sends
                    .get(&message)
                    .map_or((from, top), |&(sender, send_row)| (sender, row_y(send_row)));
                let colour = if changed { "#1a7f37" } else { "#8c959f" };
                let _ = write!(
                    html,
                    "<line x1=\"{:.1}\" y1=\"{start_y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{colour}\" \
                     marker-end=\"url(#arrow)\"><title>{title}</title></line>",
                    lane_x(sender),
                    lane_x(to)
                );
            }
            EventKind::Drop {
                from, to, message, ..
            } => {
                let (sender, start_y) = sends
                    .get(&message)
                    .map_or((from, top), |&(sender, send_row)| (sender, row_y(send_row)));
                let (x1, x2) = (lane_x(sender), lane_x(to));
                let end_x = x1 + (x2 - x1) * 0.6;
                let _ = write!(
                    html,
                    "<g class=\"drop\"><title>{title}</title><line x1=\"{x1:.1}\" y1=\"{start_y:.1}\" x2=\"{end_x:.1}\" \
                     y2=\"{y:.1}\" stroke=\"#cf222e\" stroke-dasharray=\"3 2\"/>\
                     <path d=\"M{:.1},{:.1} L{:.1},{:.1} M{:.1},{:.1} L{:.1},{:.1}\" stroke=\"#cf222e\" stroke-width=\"2\"/></g>",
                    end_x - 4.0,
                    y - 4.0,
                    end_x + 4.0,
                    y + 4.0,
                    end_x - 4.0,
                    y + 4.0,
                    end_x + 4.0,
                    y - 4.0
                );
            }
            EventKind::Crash { replica }
            | EventKind::Restart { replica }
            | EventKind::Join { replica }
            | EventKind::Leave { replica } => {
                let (label, colour) = match event.kind {
                    EventKind::Crash { .. } => ("crash", "#cf222e"),
                    EventKind::Restart { .. } => ("restart", "#1a7f37"),
                    EventKind::Join { .. } => ("join", "#1a7f37"),
                    _ => ("leave", "#57606a"),
                };
                let x = lane_x(replica);
                let _ = write!(
                    html,
                    "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"9\" height=\"9\" fill=\"{colour}\"><title>{title}</title></rect>\
                     <text x=\"{:.1}\" y=\"{:.1}\" fill=\"{colour}\">{label}</text>",
                    x - 4.5,
                    y - 4.5,
                    x + 8.0,
                    y + 4.0
                );
            }
            EventKind::FaultStart { .. } | EventKind::FaultEnd { .. } | EventKind::SettleStart => {
                let _ = write!(
                    html,
                    "<line x1=\"30\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#bf8700\" stroke-dasharray=\"2 4\">\
                     <title>{title}</title></line><text x=\"2\" y=\"{:.1}\" fill=\"#9a6700\">{}</text>",
                    width - 10.0,
                    y + 4.0,
                    match event.kind {
                        EventKind::FaultStart { fault } => format!("f{fault}+"),
                        EventKind::FaultEnd { fault } => format!("f{fault}-"),
                        _ => "settle".to_string(),
                    }
                );
            }
            EventKind::Timer { .. } | EventKind::Duplicate { .. } => {}
        }
    }
    html.push_str("</svg></section>\n");
}

/// The states to compare: the first violation's, else every final replica.
fn states_to_compare(report: &RunReport) -> (String, Vec<ReplicaSnapshot>) {
    if let Some(violation) = report.violations.iter().find(|v| v.states.len() >= 2) {
        return (violation.detail.clone(), violation.states.clone());
    }
    (
        "final states of every replica".to_string(),
        report.replicas.iter().map(|r| r.snapshot.clone()).collect(),
    )
}

fn replica_label(snapshot: &ReplicaSnapshot) -> String {
    if snapshot.replica == u32::MAX {
        "sequential specification".to_string()
    } else {
        format!(
            "replica {} ({} updates delivered)",
            snapshot.replica, snapshot.delivered
        )
    }
}

/// The differing states side by side: a grid as a table of cells, a dictionary as key/value rows,
/// anything else as JSON; cells and keys that differ between the states are highlighted.
fn states_section(html: &mut String, report: &RunReport) {
    let (caption, states) = states_to_compare(report);
    let _ = writeln!(
        html,
        "<section id=\"states\"><h2>States side by side</h2><p>{}</p><div class=\"states\">",
        escape(&caption)
    );
    let views: Vec<&Value> = states.iter().map(|s| &s.view).collect();
    for snapshot in &states {
        let _ = write!(html, "<div><h3>{}</h3>", escape(&replica_label(snapshot)));
        render_view(html, &snapshot.view, &views);
        html.push_str("</div>");
    }
    html.push_str("</div></section>\n");
}

fn cell_text(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "·".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn render_view(html: &mut String, view: &Value, all: &[&Value]) {
    let grid = |v: &Value| -> Option<(u64, u64, Vec<Value>)> {
        Some((
            v.get("rows")?.as_u64()?,
            v.get("cols")?.as_u64()?,
            v.get("cells")?.as_array()?.clone(),
        ))
    };
    if let Some((rows, cols, cells)) = grid(view) {
        html.push_str("<table class=\"grid\">");
        for r in 0..rows {
            html.push_str("<tr>");
            for c in 0..cols {
                let index = (r * cols + c) as usize;
                let differs = all.iter().any(|other| {
                    grid(other).is_some_and(|(_, _, theirs)| theirs.get(index) != cells.get(index))
                });
                let _ = write!(
                    html,
                    "<td{}>{}</td>",
                    if differs { " class=\"diff\"" } else { "" },
                    escape(&cell_text(cells.get(index)))
                );
            }
            html.push_str("</tr>");
        }
        html.push_str("</table>");
    } else if let Some(map) = view.as_object() {
        let mut keys: Vec<&String> = all
            .iter()
            .filter_map(|v| v.as_object())
            .flat_map(|m| m.keys())
            .collect();
        keys.sort_by_key(|k| (k.parse::<u64>().unwrap_or(u64::MAX), (*k).clone()));
        keys.dedup();
        html.push_str("<table class=\"dict\"><tr><th>key</th><th>value</th></tr>");
        for key in keys {
            let mine = map.get(key);
            let differs = all.iter().any(|other| other.get(key) != mine);
            let _ = write!(
                html,
                "<tr{}><td>{}</td><td>{}</td></tr>",
                if differs { " class=\"diff\"" } else { "" },
                escape(key),
                escape(&mine.map_or("(absent)".to_string(), |v| cell_text(Some(v))))
            );
        }
        html.push_str("</table>");
    } else {
        let differs = all.iter().any(|other| *other != view);
        let _ = write!(
            html,
            "<pre{}>{}</pre>",
            if differs { " class=\"diff\"" } else { "" },
            escape(&serde_json::to_string_pretty(view).unwrap_or_default())
        );
    }
}

fn violations_section(html: &mut String, report: &RunReport) {
    html.push_str("<section id=\"violations\"><h2>Violations</h2>");
    if report.violations.is_empty() {
        html.push_str("<p>None: every oracle held.</p>");
    } else {
        html.push_str("<table><tr><th>oracle</th><th>at</th><th>event</th><th>replicas</th><th>detail</th></tr>");
        for violation in &report.violations {
            let oracle = serde_json::to_value(violation.oracle)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let _ = write!(
                html,
                "<tr><td>{}</td><td class=\"num\">{:.3} ms</td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
                escape(&oracle),
                violation.at_us as f64 / 1e3,
                violation.event_index.map_or("end".to_string(), |i| format!("#{i}")),
                escape(
                    &violation
                        .replicas
                        .iter()
                        .map(|r| if *r == u32::MAX { "spec".to_string() } else { r.to_string() })
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                escape(&violation.detail)
            );
        }
        html.push_str("</table>");
    }
    html.push_str("</section>\n");
}

fn shrunk_section(html: &mut String, shrunk: &Shrunk) {
    let _ = write!(
        html,
        "<section id=\"shrunk\"><h2>Minimal counterexample</h2><p>Delta debugging ({} runs) shrank the failure \
         (verdict <b>{}</b>) to a {} scenario.</p><table><tr><th></th><th>replicas</th><th>writes</th><th>faults</th>\
         <th>messages</th><th>events</th></tr>",
        shrunk.runs,
        verdict_phrase(shrunk.verdict),
        if shrunk.scripted { "scripted (every message fate written down)" } else { "seeded" }
    );
    for (label, size) in [("original", &shrunk.original), ("minimal", &shrunk.minimal)] {
        let _ = write!(
            html,
            "<tr><th>{label}</th><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            size.replicas, size.writes, size.faults, size.messages, size.events
        );
    }
    let spec = toml::to_string(&shrunk.scenario).unwrap_or_default();
    let _ = writeln!(html, "</table><pre>{}</pre></section>", escape(&spec));
}

fn faults_section(html: &mut String, report: &RunReport) {
    html.push_str("<section id=\"faults\"><h2>Faults in force</h2>");
    if report.faults.is_empty() {
        html.push_str("<p>None scheduled.</p>");
    } else {
        html.push_str("<ol start=\"0\">");
        for fault in &report.faults {
            let _ = write!(
                html,
                "<li><code>{}</code></li>",
                escape(&serde_json::to_string(fault).unwrap_or_default())
            );
        }
        html.push_str("</ol>");
    }
    html.push_str("</section>\n");
}

fn exports_section(html: &mut String, page: &RunPage<'_>) {
    html.push_str("<section id=\"exports\"><h2>Files</h2><ul>");
    for (label, href) in &page.links {
        let _ = write!(
            html,
            "<li><a href=\"{}\">{}</a></li>",
            escape(href),
            escape(label)
        );
    }
    html.push_str(
        "</ul><p class=\"muted\">Open the Chrome trace in <code>ui.perfetto.dev</code> or chrome://tracing; \
         the ShiViz log in the ShiViz web app (upload the file as is).</p></section>\n",
    );
}

#[cfg(test)]
mod tests {
    use converge_checker::judge::{FinalReplica, NonVacuity};
    use converge_checker::oracles::{Oracle, ReplicaSnapshot, Violation};
    use converge_netsim::{Coverage, End, MessageStats, NodeId, Scenario, Status, TraceEvent};
    use serde_json::json;

    use super::*;

    fn event(index: u64, kind: EventKind) -> TraceEvent {
        TraceEvent {
            index,
            at_us: index * 1_000,
            kind,
        }
    }

    fn send(index: u64, from: NodeId, to: NodeId, message: u64) -> TraceEvent {
        event(
            index,
            EventKind::Send {
                from,
                to,
                message,
                bytes: 10,
            },
        )
    }

    /// Two dictionary replicas that delivered the same updates but disagree on key 1.
    fn diverged_report() -> RunReport {
        let states = vec![
            ReplicaSnapshot {
                replica: 0,
                delivered: 2,
                view: json!({"0": 5, "1": 7}),
            },
            ReplicaSnapshot {
                replica: 1,
                delivered: 2,
                view: json!({"0": 5, "1": 8}),
            },
        ];
        RunReport {
            schema_version: 1,
            scenario: "dict".into(),
            description: "a <test>".into(),
            protocol: "state-broadcast".into(),
            seed: 4,
            verdict: Verdict::Diverges,
            expected: Verdict::Diverges,
            met_expectation: true,
            expectation_notes: vec!["verdict Diverges as expected".into()],
            trace_hash: "00000000000000ab".into(),
            events: 6,
            end: End::Completed,
            end_ms: 10.0,
            converged_at_ms: None,
            updates: 2,
            messages: MessageStats {
                sent: 2,
                delivered: 1,
                dropped: 1,
                ..MessageStats::default()
            },
            coverage: NonVacuity {
                coverage: Coverage {
                    concurrent_writes_same_key: 1,
                    ..Coverage::default()
                },
                late_joins_caught_up: 0,
                vacuous: false,
            },
            violations: vec![Violation {
                oracle: Oracle::StrongConvergence,
                event_index: Some(4),
                at_us: 4_000,
                replicas: vec![0, 1],
                detail: "replicas 0 and 1 delivered the same 2 updates but hold different states"
                    .into(),
                states: states.clone(),
            }],
            strong_violations_total: 1,
            replicas: states
                .into_iter()
                .map(|snapshot| FinalReplica {
                    status: Status::Up,
                    snapshot,
                })
                .collect(),
            timeline: vec![(1.0, 1), (2.0, 2)],
            trace: vec![
                event(
                    0,
                    EventKind::Write {
                        replica: 0,
                        update: Default::default(),
                        key: 1,
                    },
                ),
                send(1, 0, 1, 0),
                event(
                    2,
                    EventKind::Write {
                        replica: 1,
                        update: Default::default(),
                        key: 1,
                    },
                ),
                send(3, 1, 0, 1),
                event(
                    4,
                    EventKind::Deliver {
                        from: 0,
                        to: 1,
                        message: 0,
                        changed: false,
                    },
                ),
                event(
                    5,
                    EventKind::Drop {
                        from: 1,
                        to: 0,
                        message: 1,
                        cause: converge_netsim::DropCause::Network,
                    },
                ),
            ],
            trace_truncated: false,
            faults: Vec::new(),
            reproduce: "converge run dict.toml --seed 4".into(),
            scenario_spec: Scenario {
                replicas: 2,
                ..Scenario::default()
            },
        }
    }

    #[test]
    fn a_diverged_dictionary_is_drawn_with_its_difference() {
        let report = diverged_report();
        let html = render(&RunPage {
            report: &report,
            shrunk: None,
            links: Vec::new(),
            index_href: None,
            run_id: None,
            partial: None,
        });
        assert!(html.contains(
            "Diverged: replicas 0 and 1 delivered the same 2 updates but hold different states"
        ));
        assert!(html.contains("a &lt;test&gt;"), "text is escaped");
        assert!(
            html.contains("<tr class=\"diff\"><td>1</td><td>7</td></tr>"),
            "key 1 differs"
        );
        assert!(
            html.contains("<tr><td>0</td><td>5</td></tr>"),
            "key 0 agrees"
        );
        assert_eq!(
            html.matches("marker-end=\"url(#arrow)\"").count(),
            1,
            "one delivered message"
        );
        assert_eq!(
            html.matches("class=\"drop\"").count(),
            1,
            "one lost message"
        );
        assert_eq!(
            html.matches("<circle cx").count(),
            4,
            "two writes and two sends"
        );
    }

    #[test]
    fn exports_pair_sends_with_deliveries() {
        let report = diverged_report();
        let chrome: Value =
            serde_json::from_str(&super::super::exports::chrome_trace(&report)).unwrap();
        let events = chrome["traceEvents"].as_array().unwrap();
        let flow = |phase: &str| events.iter().filter(|e| e["ph"] == phase).count();
        assert_eq!((flow("s"), flow("f")), (1, 1));
        let shiviz = super::super::exports::shiviz_log(&report);
        // r1 delivers r0's message 0, sent at r0's second event: r1 learns r0:2.
        assert!(
            shiviz.contains("r1 delivers message 0 from r0 @ 4000 us\nr1 {\"r0\":2,\"r1\":3}"),
            "{shiviz}"
        );
    }
}
