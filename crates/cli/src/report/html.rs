//! The HTML page of one run: one self-contained file (inline CSS, inline SVG, one inline script for
//! the stepper, no font, nothing fetched), so that it opens offline and can be attached to an issue.
//!
//! Sections, each with a stable id that tests and links rely on: `verdict`, `reproduce`, `metrics`,
//! `coverage`, `states` (the final states), `violation-states` (at the first violation),
//! `timeline`, `spacetime`, `stepper`, `violations`, `shrunk` (when shrinking ran), `faults`,
//! `exports`, `scenario`.

use std::fmt::Write as _;

use converge_checker::oracles::ReplicaSnapshot;
use converge_checker::{RunReport, Shrunk};
use converge_netsim::{Status, Verdict};

use super::charts::{faults_section, human_ms, spacetime_section, timeline_section};
use super::states::{group_by_view, render_groups};
use super::stepper::{stepper_section, steps_of};
use super::{escape, oracle_name, verdict_in_words, verdict_phrase};

/// What the page of one run shows besides the report itself.
pub struct RunPage<'a> {
    pub report: &'a RunReport,
    /// The minimal counterexample, when the run was shrunk: the diagram and the stepper show it.
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
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;max-width:1100px;padding:1em 1.2em;color:#1b1f24}
h1{font-size:1.5em;margin:.2em 0;overflow-wrap:anywhere}h2{font-size:1.15em;border-bottom:1px solid #d0d7de;padding-bottom:.2em;margin-top:1.6em}
h3{font-size:1em;margin:.4em 0}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
pre{background:#f6f8fa;padding:.7em;overflow:auto;border-radius:4px;white-space:pre-wrap;overflow-wrap:anywhere}
table{border-collapse:collapse;margin:.4em 0}td,th{border:1px solid #d0d7de;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f6f8fa}.num{text-align:right;font-variant-numeric:tabular-nums}
.scroll{overflow-x:auto;max-width:100%}
.verdict{font-size:1.15em;padding:.7em 1em;border-radius:6px;margin:.6em 0}
.good{background:#dafbe1;border:1px solid #4ac26b}.bad{background:#ffebe9;border:1px solid #ff8182}.warn{background:#fff8c5;border:1px solid #d4a72c}
.met{color:#1a7f37;font-weight:600}.unmet{color:#cf222e;font-weight:600}.cap{color:#9a6700}
.grid td{min-width:2.2em;height:2.1em;text-align:center;font-variant-numeric:tabular-nums}
.diff,.diff td{background:#ffcecb;font-weight:700}.states{display:flex;flex-wrap:wrap;gap:1.5em}
.muted{color:#57606a}svg{background:#fff;border:1px solid #d0d7de;border-radius:4px;max-width:100%;height:auto}
svg text{font:11px system-ui,sans-serif}svg .axis-title{font-weight:600;fill:#57606a}
.legend span{margin-right:1.2em;white-space:nowrap}details.window{margin:.4em 0}details.window summary{cursor:pointer;color:#0969da}
.controls{display:flex;flex-wrap:wrap;gap:.4em;align-items:center;margin:.5em 0}.controls input{flex:1 1 200px}
#stepper tr.changed td{background:#ddf4ff}#stepper pre.state{margin:0;padding:.2em .4em;background:none}
.oracle{padding:.3em .6em;border-radius:4px}
.kv th{width:16em}
.align{margin:.1em 0 .7em}.align td{min-width:1.3em;text-align:center;padding:.1em .3em;font-variant-numeric:tabular-nums}
.align th{font-weight:400;white-space:nowrap;text-align:left}.align tr:first-child td,.align tr:first-child th{border:none;background:none;padding-top:0;padding-bottom:0}
.align td.mark{color:#cf222e}.align td.gap{background:#fff8c5;color:#9a6700;border:1px dashed #d4a72c}.align td.pad{background:#f6f8fa;color:#8c959f}
.align td.count{border:none;color:#57606a;text-align:left}
";

/// Renders the page.
pub fn render(page: &RunPage<'_>) -> String {
    let report = page.report;
    let mut html = String::new();
    head(&mut html, page);
    verdict_section(&mut html, report);
    reproduce_section(&mut html, report);
    states_section(&mut html, report);
    violation_states_section(&mut html, report);
    metrics_section(&mut html, report);
    coverage_section(&mut html, report);
    timeline_section(&mut html, report);
    let (diagram_report, caption) = diagram_subject(page);
    spacetime_section(&mut html, diagram_report, &diagram_report.trace, &caption);
    let replayed = match page.shrunk {
        Some(shrunk) => steps_of(&shrunk.report, &shrunk.scenario, shrunk.seed, caption),
        None => steps_of(report, &report.scenario_spec, report.seed, caption),
    };
    if let Some(steps) = replayed {
        stepper_section(&mut html, &steps);
    }
    violations_section(&mut html, report);
    if let Some(shrunk) = page.shrunk {
        shrunk_section(&mut html, shrunk);
    }
    faults_section(&mut html, report);
    exports_section(&mut html, page);
    scenario_section(&mut html, report);
    html.push_str("</body></html>\n");
    html
}

fn head(html: &mut String, page: &RunPage<'_>) {
    let report = page.report;
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
}

/// The run the diagram and the stepper show: the minimal counterexample when there is one.
fn diagram_subject<'a>(page: &RunPage<'a>) -> (&'a RunReport, String) {
    match page.shrunk {
        Some(shrunk) => (
            &shrunk.report,
            format!("the minimal counterexample ({})", shrunk.sizes()),
        ),
        None => (page.report, "the run".to_string()),
    }
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
    // Only a clean verdict needs the warning: a failure is evidence whatever the run exercised.
    if report.coverage.vacuous && report.verdict == Verdict::Converges {
        html.push_str(
            "<p class=\"verdict warn\" id=\"vacuous\"><b>Vacuous run:</b> it exercised no concurrent write to \
             one key, so this clean verdict is not evidence.</p>\n",
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

/// When the replicas came to agree, in words that fit the verdict.
fn agreement_words(report: &RunReport) -> String {
    match (report.converged_at_ms, report.agreed_at_ms, report.verdict) {
        (Some(at), _, _) => human_ms(at),
        (None, Some(at), Verdict::Diverges) => {
            format!("diverged, then healed: all agree since {}", human_ms(at))
        }
        (None, Some(at), _) => format!("all agree since {}", human_ms(at)),
        (None, None, _) => "never".to_string(),
    }
}

fn metrics_section(html: &mut String, report: &RunReport) {
    html.push_str("<section id=\"metrics\"><h2>Metrics</h2><table class=\"kv\">");
    row(html, "events", report.events);
    row(html, "updates (writes)", report.updates);
    row(html, "virtual time simulated", human_ms(report.end_ms));
    row(html, "settle period from", human_ms(report.settle_start_ms));
    row(html, "converged at", agreement_words(report));
    let m = &report.messages;
    row(html, "messages sent", m.sent);
    row(html, "messages delivered", m.delivered);
    row(html, "messages dropped", m.dropped);
    row(html, "messages duplicated", m.duplicated);
    row(html, "bytes sent", m.bytes_sent);
    let drawn = if report.scenario_spec.swarm.is_some() {
        " (drawn by swarm mode)"
    } else {
        ""
    };
    row(
        html,
        &format!("drop probability{drawn}"),
        format!("{:.3}", report.network_drop),
    );
    row(
        html,
        &format!("duplicate probability{drawn}"),
        format!("{:.3}", report.network_duplicate),
    );
    row(
        html,
        "strong-convergence violations",
        report.strong_violations_total,
    );
    html.push_str("</table></section>\n");
}

fn coverage_section(html: &mut String, report: &RunReport) {
    let c = &report.coverage.coverage;
    html.push_str(
        "<section id=\"coverage\"><h2>Coverage (what the run exercised)</h2><table class=\"kv\">",
    );
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
    row(html, "connection drops", c.connection_drops);
    html.push_str("</table>");
    if report.coverage.vacuous {
        html.push_str("<p class=\"muted\">No conflicting writes were exercised.</p>");
    }
    html.push_str("</section>\n");
}

/// The final states of the live replicas, grouped by equal state, differences highlighted.
fn states_section(html: &mut String, report: &RunReport) {
    let live: Vec<ReplicaSnapshot> = report
        .replicas
        .iter()
        .filter(|r| r.status == Status::Up)
        .map(|r| r.snapshot.clone())
        .collect();
    let groups = group_by_view(&live);
    let summary = match groups.len() {
        0 => "No replica is live at the end.".to_string(),
        1 => format!("All {} live replicas hold the same state.", live.len()),
        n => format!("The {} live replicas hold {n} different states; the cells, keys or list elements that differ are highlighted.", live.len()),
    };
    let _ = write!(
        html,
        "<section id=\"states\"><h2>Final states</h2><p id=\"states-summary\">{}</p>",
        escape(&summary)
    );
    let not_live: Vec<String> = report
        .replicas
        .iter()
        .filter(|r| r.status != Status::Up)
        .map(|r| format!("replica {} ({})", r.snapshot.replica, status_word(r.status)))
        .collect();
    if !not_live.is_empty() {
        let _ = write!(
            html,
            "<p class=\"muted\">Not live, so not judged: {}.</p>",
            escape(&not_live.join(", "))
        );
    }
    render_groups(html, &groups);
    html.push_str("</section>\n");
}

fn status_word(status: Status) -> &'static str {
    match status {
        Status::Waiting => "never joined",
        Status::Up => "up",
        Status::Crashed => "crashed",
        Status::Left => "left",
    }
}

/// The states the first violation names, after the final states.
fn violation_states_section(html: &mut String, report: &RunReport) {
    let Some(violation) = report.violations.iter().find(|v| v.states.len() >= 2) else {
        return;
    };
    let groups = group_by_view(&violation.states);
    let _ = write!(
        html,
        "<section id=\"violation-states\"><h2>At the first violation</h2><p>{} at {}: {}.</p>",
        escape(oracle_name(violation.oracle)),
        human_ms(violation.at_us as f64 / 1e3),
        escape(violation.detail.trim_end_matches('.'))
    );
    render_groups(html, &groups);
    html.push_str("</section>\n");
}

fn violations_section(html: &mut String, report: &RunReport) {
    html.push_str("<section id=\"violations\"><h2>Violations</h2>");
    if report.violations.is_empty() {
        html.push_str("<p>None: every oracle held.</p>");
    } else {
        html.push_str("<div class=\"scroll\"><table><tr><th>oracle</th><th>at</th><th>event</th><th>replicas</th><th>detail</th></tr>");
        for violation in &report.violations {
            let _ = write!(
                html,
                "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
                oracle_name(violation.oracle),
                human_ms(violation.at_us as f64 / 1e3),
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
        html.push_str("</table></div>");
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
    html.push_str("</ul><p class=\"muted\">Open the Chrome trace in <code>ui.perfetto.dev</code> or chrome://tracing; \
         the ShiViz log in the ShiViz web app (upload the file as is).");
    if page.report.trace_truncated {
        let _ = write!(
            html,
            " <span class=\"cap\">Both hold the first {} of the run's {} events (<code>bounds.report-events-max</code>), \
             and say so inside.</span>",
            page.report.trace.len(),
            page.report.events
        );
    }
    html.push_str("</p></section>\n");
}

/// The scenario as run, with what swarm mode drew written above the keys it overrides.
fn scenario_section(html: &mut String, report: &RunReport) {
    let mut spec =
        toml::to_string(&report.scenario_spec).unwrap_or_else(|e| format!("(cannot render: {e})"));
    if report.scenario_spec.swarm.is_some() {
        spec = format!(
            "# swarm mode drew, for this seed: drop = {:.3}, duplicate = {:.3}, and the faults listed above\n{spec}",
            report.network_drop, report.network_duplicate
        );
    }
    let _ = writeln!(
        html,
        "<h2 id=\"scenario\">Scenario as run</h2><pre>{}</pre>",
        escape(&spec)
    );
}

#[cfg(test)]
mod tests {
    use converge_checker::judge::{FinalReplica, NonVacuity};
    use converge_checker::oracles::{Oracle, ReplicaSnapshot, Violation};
    use converge_netsim::{
        Coverage, End, EventKind, MessageStats, NodeId, Scenario, Status, TraceEvent,
    };
    use serde_json::json;
    use serde_json::Value;

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
                lacking: 0,
                lacks: Vec::new(),
            },
            ReplicaSnapshot {
                replica: 1,
                delivered: 2,
                view: json!({"0": 5, "1": 8}),
                lacking: 0,
                lacks: Vec::new(),
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
            expectation_notes: vec!["verdict \"diverges\", as expected".into()],
            trace_hash: "00000000000000ab".into(),
            events: 6,
            end: End::Completed,
            end_ms: 10.0,
            converged_at_ms: None,
            agreed_at_ms: None,
            settle_start_ms: 8.0,
            network_drop: 0.0,
            network_duplicate: 0.0,
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
            oracles_not_run: Vec::new(),
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
            html.contains("<tr class=\"diff\"><td>1</td><td>7</td><td>8</td></tr>"),
            "key 1 differs"
        );
        assert!(
            html.contains("<tr><td>0</td><td>5</td><td>5</td></tr>"),
            "key 0 agrees"
        );
        assert!(html.contains("The 2 live replicas hold 2 different states"));
        assert!(
            html.find("id=\"states\"") < html.find("id=\"violation-states\""),
            "final states first, the first violation second"
        );
        assert!(
            !html.contains("Diverges") && !html.contains("StrongConvergence"),
            "no debug names"
        );
        assert!(!html.contains("id=\"vacuous\""));
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

    #[test]
    fn exports_say_when_they_stop_short() {
        let mut report = diverged_report();
        let whole: Value =
            serde_json::from_str(&super::super::exports::chrome_trace(&report)).unwrap();
        assert_eq!(whole["otherData"]["truncation"], Value::Null);
        report.trace_truncated = true;
        report.events = 9_000;
        let chrome: Value =
            serde_json::from_str(&super::super::exports::chrome_trace(&report)).unwrap();
        let note = "trace truncated: the first 6 of the run's 9000 events are exported (bounds.report-events-max)";
        assert_eq!(chrome["otherData"]["truncation"], note);
        assert_eq!(chrome["otherData"]["events_exported"], 6);
        let markers: Vec<&Value> = chrome["traceEvents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["cat"] == "truncated")
            .collect();
        assert_eq!(markers.len(), 1);
        assert_eq!(markers[0]["name"], note);
        let shiviz = super::super::exports::shiviz_log(&report);
        let last_event = shiviz.lines().rev().nth(1).unwrap();
        assert_eq!(last_event, note, "{shiviz}");
        assert!(
            shiviz.ends_with("r1 {\"r0\":2,\"r1\":5}\n"),
            "one tick after r1's drop: {shiviz}"
        );
        let page = render(&RunPage {
            report: &report,
            shrunk: None,
            links: Vec::new(),
            index_href: None,
            run_id: None,
            partial: None,
        });
        assert!(page.contains("Both hold the first 6 of the run's 9000 events"));
    }

    #[test]
    fn a_healed_divergence_is_named_as_such() {
        let mut report = diverged_report();
        report.agreed_at_ms = Some(9.5);
        let words = verdict_in_words(&report);
        assert!(
            words.starts_with("Diverged, then healed: replicas 0 and 1"),
            "{words}"
        );
        assert!(
            words.contains("hold the same state again, since 10 ms"),
            "{words}"
        );
        let html = render(&RunPage {
            report: &report,
            shrunk: None,
            links: Vec::new(),
            index_href: None,
            run_id: None,
            partial: None,
        });
        assert!(html.contains("diverged, then healed: all agree since 10 ms"));
        assert!(!html.contains(">never<"));
    }

    #[test]
    fn ties_are_called_ties_and_lost_writes_are_causally_later_ones() {
        let mut report = diverged_report();
        report.verdict = Verdict::IntentViolated;
        report.violations = vec![Violation {
            oracle: Oracle::Intent,
            event_index: None,
            at_us: 10_000,
            replicas: vec![0],
            detail: "replica 0 differs from the sequential specification (all 2 updates applied in stamp order)".into(),
            states: report.replicas.iter().map(|r| r.snapshot.clone()).collect(),
        }];
        let tie = verdict_in_words(&report);
        assert!(tie.contains("equal stamps (ties)"), "{tie}");
        assert!(!tie.contains("lost to"), "{tie}");
        // A specification over the updates held (a counter's total, a list's positions) is not
        // about ties.
        let mut specified = report.clone();
        specified.violations[0].detail = "replica 0 differs from the specification over the 3 \
            updates it holds (in causal order, concurrent ones by stamp)"
            .into();
        let other = verdict_in_words(&specified);
        assert!(!other.contains("ties"), "{other}");
        assert!(other.contains("do not give"), "{other}");
        // A built-in grid's or dictionary's specification goes by stamps: a tie again.
        specified.violations[0].detail = "replica 0 differs from the specification (all 2 \
            updates, the greatest stamp winning on each key)"
            .into();
        let folded = verdict_in_words(&specified);
        assert!(folded.contains("equal stamps (ties)"), "{folded}");
        report.violations.insert(
            0,
            Violation {
                oracle: Oracle::Intent,
                event_index: None,
                at_us: 3_000,
                replicas: vec![1],
                detail:
                    "1 causally later writes lost to earlier ones; the first: replica 1 wrote key 1"
                        .into(),
                states: Vec::new(),
            },
        );
        let lost = verdict_in_words(&report);
        assert!(
            lost.starts_with("Converged, but 1 causally later writes lost to earlier ones"),
            "{lost}"
        );
    }
}
