//! `index.html`: every run in a reports directory, and the convergence matrix (CRDT x protocol,
//! one entry per fault mix) with the share of seeds that converged and that met their expectation.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use converge_netsim::Verdict;

use super::{escape, verdict_phrase};

/// One run as the index lists it.
#[derive(Clone, Debug)]
pub struct IndexRun {
    pub scenario: String,
    pub seed: u64,
    pub verdict: Verdict,
    pub expected: Verdict,
    pub met_expectation: bool,
    pub vacuous: bool,
    pub converged_at_ms: Option<f64>,
    pub trace_hash: String,
    /// The run's page, relative to the index.
    pub href: String,
    /// Matrix labels from `converge_checker::judge::matrix_labels`: crdt, protocol, faults.
    pub labels: (String, String, String),
    /// Why the run's report is partial (interrupted), if it is.
    pub partial: Option<String>,
}

/// One sweep result as the index lists it.
#[derive(Clone, Debug)]
pub struct IndexSweep {
    pub scenario: String,
    pub seeds: String,
    pub runs: u64,
    pub converged: u64,
    pub met_expectation: u64,
    pub complete: bool,
    /// The sweep result JSON, relative to the index.
    pub href: String,
    pub labels: (String, String, String),
    /// Seeds that missed the expectation (the first few).
    pub failing_seeds: Vec<u64>,
    /// Why the sweep is partial ("interrupted by the user after N of M seeds"), if it is.
    pub partial: Option<String>,
}

#[derive(Default)]
struct Cell {
    runs: u64,
    converged: u64,
    met: u64,
    first_failure: Option<String>,
}

const STYLE: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;max-width:1200px;padding:1em 2em;color:#1b1f24}
h1{font-size:1.5em}h2{font-size:1.15em;border-bottom:1px solid #d0d7de;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.4em 0}td,th{border:1px solid #d0d7de;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f6f8fa}.num{text-align:right;font-variant-numeric:tabular-nums}code{font-size:12.5px}
.met{color:#1a7f37;font-weight:600}.unmet{color:#cf222e;font-weight:600}.muted{color:#57606a}
.partial{background:#fff8c5;border:1px solid #d4a72c;border-radius:6px;padding:0 1em;margin:.6em 0}
.cell{margin:.15em 0;padding:.15em .4em;border-radius:3px}.all{background:#dafbe1}.some{background:#fff8c5}.none{background:#ffebe9}
";

/// Renders the index of `runs` and `sweeps`. `partial` says why the command that wrote it stopped
/// early ("interrupted by the user after 3 of 18 scenarios"), if it did.
pub fn render(runs: &[IndexRun], sweeps: &[IndexSweep], partial: Option<&str>) -> String {
    let mut html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>converge reports</title>\
         <style>{STYLE}</style></head><body>\n<h1>converge reports</h1>\n"
    );
    // Every partial report is named at the top, so that nobody mistakes it for a whole one.
    let mut partial_lines: Vec<String> = partial.map(str::to_string).into_iter().collect();
    for run in runs {
        if let Some(note) = &run.partial {
            partial_lines.push(format!("{} seed {}: {note}", run.scenario, run.seed));
        }
    }
    for sweep in sweeps {
        if let Some(note) = &sweep.partial {
            partial_lines.push(format!(
                "sweep of {} seeds {}: {note}",
                sweep.scenario, sweep.seeds
            ));
        }
    }
    if !partial_lines.is_empty() {
        html.push_str("<div id=\"partial\" class=\"partial\">");
        for line in &partial_lines {
            let _ = write!(html, "<p><b>Partial:</b> {}</p>", escape(line));
        }
        html.push_str("</div>\n");
    }
    let met = runs.iter().filter(|r| r.met_expectation).count();
    let _ = writeln!(
        html,
        "<p id=\"summary\">{} runs, {met} met their expectation{}.</p>",
        runs.len(),
        if met == runs.len() {
            ""
        } else {
            " (the others are marked)"
        }
    );
    matrix(&mut html, runs, sweeps);
    html.push_str(
        "<section id=\"runs\"><h2>Runs</h2><table><tr><th>scenario</th><th>seed</th><th>verdict</th>\
         <th>expected</th><th>met?</th><th>converged at</th><th>trace hash</th></tr>",
    );
    for run in runs {
        let _ = write!(
            html,
            "<tr><td><a href=\"{}\">{}</a></td><td class=\"num\">{}</td><td>{}{}</td><td>{}</td><td class=\"{}\">{}</td>\
             <td class=\"num\">{}</td><td><code>{}</code></td></tr>",
            escape(&run.href),
            escape(&run.scenario),
            run.seed,
            verdict_phrase(run.verdict),
            match (run.vacuous, run.partial.is_some()) {
                (_, true) => " (partial)",
                (true, false) => " (vacuous)",
                (false, false) => "",
            },
            verdict_phrase(run.expected),
            if run.met_expectation { "met" } else { "unmet" },
            if run.met_expectation { "yes" } else { "NO" },
            run.converged_at_ms.map_or("—".to_string(), |ms| format!("{ms:.1} ms")),
            escape(&run.trace_hash)
        );
    }
    html.push_str("</table></section>\n");
    if !sweeps.is_empty() {
        html.push_str(
            "<section id=\"sweeps\"><h2>Sweeps</h2><table><tr><th>scenario</th><th>seeds</th><th>runs</th>\
             <th>converged</th><th>met expectation</th><th>failing seeds</th></tr>",
        );
        for sweep in sweeps {
            let _ = write!(
                html,
                "<tr><td><a href=\"{}\">{}</a></td><td>{}{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
                 <td class=\"num\">{}</td><td>{}</td></tr>",
                escape(&sweep.href),
                escape(&sweep.scenario),
                escape(&sweep.seeds),
                match (sweep.complete, sweep.partial.is_some()) {
                    (_, true) => " (partial)",
                    (false, false) => " (incomplete shards)",
                    (true, false) => "",
                },
                sweep.runs,
                sweep.converged,
                sweep.met_expectation,
                sweep.failing_seeds.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
            );
        }
        html.push_str("</table></section>\n");
    }
    html.push_str("</body></html>\n");
    html
}

fn matrix(html: &mut String, runs: &[IndexRun], sweeps: &[IndexSweep]) {
    // crdt -> protocol -> faults -> cell
    let mut cells: BTreeMap<String, BTreeMap<String, BTreeMap<String, Cell>>> = BTreeMap::new();
    let mut protocols: Vec<String> = Vec::new();
    for run in runs {
        let (crdt, protocol, faults) = run.labels.clone();
        let cell = cells
            .entry(crdt)
            .or_default()
            .entry(protocol.clone())
            .or_default()
            .entry(faults)
            .or_default();
        cell.runs += 1;
        cell.converged += u64::from(run.verdict == Verdict::Converges);
        cell.met += u64::from(run.met_expectation);
        if !run.met_expectation && cell.first_failure.is_none() {
            cell.first_failure = Some(run.href.clone());
        }
        protocols.push(protocol);
    }
    for sweep in sweeps {
        let (crdt, protocol, faults) = sweep.labels.clone();
        let cell = cells
            .entry(crdt)
            .or_default()
            .entry(protocol.clone())
            .or_default()
            .entry(faults)
            .or_default();
        cell.runs += sweep.runs;
        cell.converged += sweep.converged;
        cell.met += sweep.met_expectation;
        if sweep.met_expectation < sweep.runs && cell.first_failure.is_none() {
            cell.first_failure = Some(sweep.href.clone());
        }
        protocols.push(protocol);
    }
    protocols.sort();
    protocols.dedup();
    html.push_str(
        "<section id=\"matrix\"><h2>Convergence matrix</h2><p class=\"muted\">Rows: CRDT and tie-break; columns: \
         protocol and topology; in each cell, one line per fault mix: the share of seeds that converged, and the \
         share that met their expectation (a scenario may expect divergence).</p><table><tr><th>CRDT</th>",
    );
    for protocol in &protocols {
        let _ = write!(html, "<th>{}</th>", escape(protocol));
    }
    html.push_str("</tr>");
    for (crdt, row) in &cells {
        let _ = write!(html, "<tr><th>{}</th>", escape(crdt));
        for protocol in &protocols {
            html.push_str("<td>");
            if let Some(by_fault) = row.get(protocol) {
                for (faults, cell) in by_fault {
                    let class = if cell.met == cell.runs {
                        "all"
                    } else if cell.met > 0 {
                        "some"
                    } else {
                        "none"
                    };
                    let _ = write!(
                        html,
                        "<div class=\"cell {class}\"><b>{}</b>: converged {}/{}, met {}/{}",
                        escape(faults),
                        cell.converged,
                        cell.runs,
                        cell.met,
                        cell.runs
                    );
                    if let Some(href) = &cell.first_failure {
                        let _ = write!(html, " — <a href=\"{}\">failing run</a>", escape(href));
                    }
                    html.push_str("</div>");
                }
            }
            html.push_str("</td>");
        }
        html.push_str("</tr>");
    }
    html.push_str("</table></section>\n");
}
