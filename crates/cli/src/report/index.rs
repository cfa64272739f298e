//! `index.html`: every run in a reports directory, a summary chart (verdicts and time to converge
//! per scenario), and the convergence matrix (CRDT and clock x protocol, one entry per fault mix):
//! each entry coloured by the verdicts its seeds ended with, and marked met or unmet apart from
//! the colour, since a scenario may expect divergence. Minimal counterexamples (shrunk runs) are
//! listed apart: they are not seeds of a scenario.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use converge_netsim::Verdict;

use super::charts::human_ms;
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
    /// Whether the sweep as a whole met its expectation (a bug expected on some seeds, say).
    pub expectation_met: bool,
    /// Verdict (kebab-case) to number of seeds.
    pub verdicts: BTreeMap<String, u64>,
    /// The median virtual time at which its converging seeds converged.
    pub converged_median_ms: Option<f64>,
    /// Why the sweep is partial ("interrupted by the user after N of M seeds"), if it is.
    pub partial: Option<String>,
}

/// The runs of one matrix entry or one scenario: how many ended with each verdict, whether the
/// expectation was met, and when they converged.
#[derive(Default)]
struct Tally {
    verdicts: BTreeMap<Verdict, u64>,
    runs: u64,
    /// Runs (or sweeps) that met their expectation, and those that were judged.
    met: u64,
    judged: u64,
    converged_ms: Vec<f64>,
    first_failure: Option<String>,
}

impl Tally {
    fn add_run(&mut self, run: &IndexRun) {
        *self.verdicts.entry(run.verdict).or_default() += 1;
        self.runs += 1;
        self.judged += 1;
        self.met += u64::from(run.met_expectation);
        self.converged_ms.extend(run.converged_at_ms);
        if !run.met_expectation && self.first_failure.is_none() {
            self.first_failure = Some(run.href.clone());
        }
    }

    fn add_sweep(&mut self, sweep: &IndexSweep) {
        for (name, count) in &sweep.verdicts {
            if let Ok(verdict) =
                serde_json::from_value::<Verdict>(serde_json::Value::from(name.as_str()))
            {
                *self.verdicts.entry(verdict).or_default() += count;
            }
        }
        self.runs += sweep.runs;
        self.judged += 1;
        self.converged_ms.extend(sweep.converged_median_ms);
        self.met += u64::from(sweep.expectation_met);
        if !sweep.expectation_met && self.first_failure.is_none() {
            self.first_failure = Some(sweep.href.clone());
        }
    }

    /// The verdict most runs ended with (the worse one on a tie): the entry's colour.
    fn main_verdict(&self) -> Verdict {
        self.verdicts
            .iter()
            .max_by_key(|(verdict, count)| (**count, **verdict))
            .map_or(Verdict::Converges, |(verdict, _)| *verdict)
    }

    fn all_met(&self) -> bool {
        self.met == self.judged
    }

    fn median_converged_ms(&self) -> Option<f64> {
        let mut times = self.converged_ms.clone();
        times.sort_by(f64::total_cmp);
        times.get(times.len() / 2).copied()
    }

    fn verdict_counts(&self) -> String {
        self.verdicts
            .iter()
            .map(|(verdict, count)| format!("{} {count}", verdict_phrase(*verdict)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The CSS class and the colour of a verdict.
fn verdict_class(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Converges => "v-converges",
        Verdict::IntentViolated => "v-intent",
        Verdict::NotConverged => "v-not-converged",
        Verdict::Stalled => "v-stalled",
        Verdict::SyncLoop => "v-sync-loop",
        Verdict::Diverges => "v-diverges",
        Verdict::Panicked => "v-panicked",
        Verdict::BoundReached => "v-bound",
    }
}

fn verdict_colour(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Converges => "#2da44e",
        Verdict::IntentViolated => "#d4a72c",
        Verdict::NotConverged => "#8250df",
        Verdict::Stalled => "#1b7c83",
        Verdict::SyncLoop => "#bc4c00",
        Verdict::Diverges => "#cf222e",
        Verdict::Panicked => "#953800",
        Verdict::BoundReached => "#8c959f",
    }
}

const VERDICTS: [Verdict; 8] = [
    Verdict::Converges,
    Verdict::IntentViolated,
    Verdict::NotConverged,
    Verdict::Stalled,
    Verdict::SyncLoop,
    Verdict::Diverges,
    Verdict::Panicked,
    Verdict::BoundReached,
];

fn met_badge(met: bool) -> &'static str {
    if met {
        "<span class=\"badge met\">&#10003; met</span>"
    } else {
        "<span class=\"badge unmet\">&#10007; unmet</span>"
    }
}

fn legend(html: &mut String) {
    html.push_str("<p class=\"legend\">");
    for verdict in VERDICTS {
        let _ = write!(
            html,
            "<span><i style=\"background:{}\"></i>{}</span>",
            verdict_colour(verdict),
            verdict_phrase(verdict)
        );
    }
    html.push_str(
        "<span>&#10003; met / &#10007; unmet: whether the runs showed what the scenario expects (a scenario may \
         expect a bug)</span></p>",
    );
}

/// Runs that are seeds of a scenario, and minimal counterexamples (shrunk runs), apart.
fn split_shrunk(runs: &[IndexRun]) -> (Vec<&IndexRun>, Vec<&IndexRun>) {
    runs.iter()
        .partition(|run| !run.href.ends_with("-minimal.toml"))
}

/// One bar per scenario: the share of its seeds with each verdict, and the median time to converge.
fn summary_chart(html: &mut String, seeds: &[&IndexRun], sweeps: &[IndexSweep]) {
    let mut by_scenario: BTreeMap<&str, Tally> = BTreeMap::new();
    for run in seeds {
        by_scenario.entry(&run.scenario).or_default().add_run(run);
    }
    for sweep in sweeps {
        by_scenario
            .entry(&sweep.scenario)
            .or_default()
            .add_sweep(sweep);
    }
    if by_scenario.is_empty() {
        return;
    }
    let slowest = by_scenario
        .values()
        .filter_map(Tally::median_converged_ms)
        .fold(1.0, f64::max);
    // Sized to the page's narrowest readable width (760 px), so that the text is not scaled down.
    let (row, label_width, bar_width, time_left) = (22.0, 200.0, 250.0, 490.0);
    let height = 30.0 + row * by_scenario.len() as f64;
    let _ = write!(
        html,
        "<section id=\"summary-chart\"><h2>Verdicts and time to converge, per scenario</h2>\
         <svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 760 {height}\" role=\"img\" \
         aria-label=\"verdicts and time to converge per scenario\">\
         <text class=\"axis-title\" x=\"{label_width}\" y=\"14\">share of seeds by verdict</text>\
         <text class=\"axis-title\" x=\"{time_left}\" y=\"14\">median time to converge (virtual)</text>"
    );
    for (i, (scenario, tally)) in by_scenario.iter().enumerate() {
        let y = 24.0 + row * i as f64;
        let _ = write!(
            html,
            "<text x=\"{:.0}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            label_width - 8.0,
            y + 12.0,
            escape(scenario)
        );
        let mut x = label_width;
        for (verdict, count) in &tally.verdicts {
            let width = bar_width * *count as f64 / tally.runs.max(1) as f64;
            let _ = write!(
                html,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{width:.1}\" height=\"15\" fill=\"{}\"><title>{}: {count} of {}</title></rect>",
                verdict_colour(*verdict),
                verdict_phrase(*verdict),
                tally.runs
            );
            x += width;
        }
        let _ = write!(
            html,
            "<text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            label_width + bar_width + 6.0,
            y + 12.0,
            if tally.all_met() {
                "\u{2713}"
            } else {
                "\u{2717}"
            }
        );
        if let Some(ms) = tally.median_converged_ms() {
            let width = 190.0 * ms / slowest;
            let _ = write!(
                html,
                "<rect x=\"{time_left}\" y=\"{:.1}\" width=\"{width:.1}\" height=\"11\" fill=\"#54aeff\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                y + 2.0,
                time_left + width + 6.0,
                y + 12.0,
                human_ms(ms)
            );
        } else {
            let _ = write!(
                html,
                "<text x=\"{time_left}\" y=\"{:.1}\" fill=\"#57606a\">no seed converged</text>",
                y + 12.0
            );
        }
    }
    html.push_str("</svg></section>\n");
}

fn matrix(html: &mut String, seeds: &[&IndexRun], sweeps: &[IndexSweep]) {
    // crdt and clock -> protocol -> faults -> tally
    let mut cells: BTreeMap<&str, BTreeMap<&str, BTreeMap<&str, Tally>>> = BTreeMap::new();
    for run in seeds {
        let (crdt, protocol, faults) = &run.labels;
        cells
            .entry(crdt)
            .or_default()
            .entry(protocol)
            .or_default()
            .entry(faults)
            .or_default()
            .add_run(run);
    }
    for sweep in sweeps {
        let (crdt, protocol, faults) = &sweep.labels;
        cells
            .entry(crdt)
            .or_default()
            .entry(protocol)
            .or_default()
            .entry(faults)
            .or_default()
            .add_sweep(sweep);
    }
    let mut protocols: Vec<&str> = cells.values().flat_map(|row| row.keys().copied()).collect();
    protocols.sort_unstable();
    protocols.dedup();
    let _ = write!(
        html,
        "<section id=\"matrix\"{}>",
        if protocols.len() > MATRIX_COLUMNS_MAX {
            " class=\"as-list\""
        } else {
            ""
        }
    );
    html.push_str(
        "<h2>Convergence matrix</h2><p class=\"muted\">Rows: CRDT, tie-break and clock; \
         columns: protocol and topology; in each cell, one entry per fault mix, coloured by the verdict most of its \
         seeds ended with, with the count of each verdict.</p>",
    );
    legend(html);
    html.push_str("<div class=\"scroll\"><table><tr><th>CRDT</th>");
    for protocol in &protocols {
        let _ = write!(html, "<th>{}</th>", escape(protocol));
    }
    html.push_str("</tr>");
    for (crdt, row) in &cells {
        let _ = write!(html, "<tr><th>{}</th>", escape(crdt));
        for protocol in &protocols {
            // The protocol again on the cell: a narrow screen shows the matrix as a list.
            let _ = write!(html, "<td data-protocol=\"{}\">", escape(protocol));
            for (faults, tally) in row.get(protocol).into_iter().flatten() {
                let _ = write!(
                    html,
                    "<div class=\"cell {}\"><b>{}</b> {}<br>{}",
                    verdict_class(tally.main_verdict()),
                    escape(faults),
                    met_badge(tally.all_met()),
                    escape(&tally.verdict_counts())
                );
                if let Some(href) = &tally.first_failure {
                    let _ = write!(html, " — <a href=\"{}\">unmet run</a>", escape(href));
                }
                html.push_str("</div>");
            }
            html.push_str("</td>");
        }
        html.push_str("</tr>");
    }
    html.push_str("</table></div></section>\n");
}

const STYLE: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;max-width:1200px;padding:1em 1.2em;color:#1b1f24}
h1{font-size:1.5em}h2{font-size:1.15em;border-bottom:1px solid #d0d7de;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.4em 0}td,th{border:1px solid #d0d7de;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f6f8fa}.num{text-align:right;font-variant-numeric:tabular-nums}code{font-size:12px;overflow-wrap:anywhere}
.scroll{overflow-x:auto;max-width:100%}
.met{color:#1a7f37;font-weight:600}.unmet{color:#cf222e;font-weight:600}.muted{color:#57606a}
.badge{font-size:12px;padding:0 .35em;border-radius:3px;background:#fff;white-space:nowrap}
.partial{background:#fff8c5;border:1px solid #d4a72c;border-radius:6px;padding:0 1em;margin:.6em 0}
.cell{margin:.15em 0;padding:.2em .45em;border-radius:3px;border-left:5px solid}
#matrix table{font-size:12.5px}#matrix td,#matrix th{padding:.25em .4em}#matrix tr>th:first-child{min-width:11em}#matrix td{min-width:8em}
.v-converges{background:#dafbe1;border-color:#2da44e}.v-intent{background:#fff8c5;border-color:#d4a72c}
.v-not-converged{background:#fbefff;border-color:#8250df}.v-stalled{background:#e6f6f7;border-color:#1b7c83}.v-sync-loop{background:#fff1e5;border-color:#bc4c00}.v-diverges{background:#ffebe9;border-color:#cf222e}
.v-panicked{background:#fff1e5;border-color:#953800}.v-bound{background:#f6f8fa;border-color:#8c959f}
.legend span{margin-right:1.1em;display:inline-block}.legend i{display:inline-block;width:.9em;height:.9em;margin-right:.3em;vertical-align:-1px;border-radius:2px}
svg{max-width:100%;height:auto;border:1px solid #d0d7de;border-radius:4px}svg text{font:12px system-ui,sans-serif}
svg .axis-title{font-weight:600;fill:#57606a}
#summary-chart svg{max-width:800px}
";

/// The matrix as a list of cards, one block per CRDT row: for a matrix too wide for the screen
/// (`M` is the selector it applies to).
const MATRIX_AS_LIST: &str = "
M table,M tbody,M tr,M td,M th{display:block;border:none;min-width:0}M tr:first-child{display:none}
M tr{display:flex;flex-wrap:wrap;gap:.2em .6em;border-top:1px solid #d0d7de;padding:.4em 0}
M tr>th:first-child{flex:1 1 100%;background:none;padding-left:0}M td{flex:0 1 17em;padding:0}M td:empty{display:none}
M td::before{content:attr(data-protocol);font-weight:600;color:#57606a;display:block}
";

/// Protocol columns the matrix shows as a table on a wide screen; more make it a list of cards.
const MATRIX_COLUMNS_MAX: usize = 6;

/// Renders the index of `runs` and `sweeps`. `partial` says why the command that wrote it stopped
/// early ("interrupted by the user after 3 of 18 scenarios"), if it did.
pub fn render(runs: &[IndexRun], sweeps: &[IndexSweep], partial: Option<&str>) -> String {
    let mut html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>converge reports</title>\
         <style>{STYLE}{}@media (max-width:900px){{{}}}</style></head><body>\n<h1>converge reports</h1>\n",
        MATRIX_AS_LIST.replace('M', ".as-list"),
        MATRIX_AS_LIST.replace('M', "#matrix")
    );
    partial_notes(&mut html, runs, sweeps, partial);
    let (seeds, shrunk) = split_shrunk(runs);
    let met = seeds.iter().filter(|r| r.met_expectation).count();
    let sweeps_met = sweeps.iter().filter(|s| s.expectation_met).count();
    let _ = writeln!(
        html,
        "<p id=\"summary\">{} runs, {met} met their expectation{}{}.</p>",
        seeds.len(),
        if sweeps.is_empty() {
            String::new()
        } else {
            format!("; {} sweeps, {sweeps_met} met theirs", sweeps.len())
        },
        if met == seeds.len() && sweeps_met == sweeps.len() {
            ""
        } else {
            " (the others are marked unmet)"
        }
    );
    summary_chart(&mut html, &seeds, sweeps);
    matrix(&mut html, &seeds, sweeps);
    runs_table(&mut html, "runs", "Runs", &seeds);
    if !shrunk.is_empty() {
        runs_table(
            &mut html,
            "minimal-runs",
            "Minimal counterexamples (shrunk runs, not seeds of a scenario)",
            &shrunk,
        );
    }
    sweeps_table(&mut html, sweeps);
    html.push_str("</body></html>\n");
    html
}

/// Every partial report named at the top, so that nobody mistakes it for a whole one.
fn partial_notes(
    html: &mut String,
    runs: &[IndexRun],
    sweeps: &[IndexSweep],
    partial: Option<&str>,
) {
    let mut lines: Vec<String> = partial.map(str::to_string).into_iter().collect();
    for run in runs {
        if let Some(note) = &run.partial {
            lines.push(format!("{} seed {}: {note}", run.scenario, run.seed));
        }
    }
    for sweep in sweeps {
        if let Some(note) = &sweep.partial {
            lines.push(format!(
                "sweep of {} seeds {}: {note}",
                sweep.scenario, sweep.seeds
            ));
        }
    }
    if lines.is_empty() {
        return;
    }
    html.push_str("<div id=\"partial\" class=\"partial\">");
    for line in &lines {
        let _ = write!(html, "<p><b>Partial:</b> {}</p>", escape(line));
    }
    html.push_str("</div>\n");
}

fn runs_table(html: &mut String, id: &str, title: &str, runs: &[&IndexRun]) {
    let _ = write!(
        html,
        "<section id=\"{id}\"><h2>{}</h2><div class=\"scroll\"><table><tr><th>scenario</th><th>seed</th><th>verdict</th>\
         <th>expected</th><th>met?</th><th>converged at</th><th>trace hash</th></tr>",
        escape(title)
    );
    for run in runs {
        let _ = write!(
            html,
            "<tr><td><a href=\"{}\">{}</a></td><td class=\"num\">{}</td><td class=\"{}\">{}{}</td><td>{}</td><td>{}</td>\
             <td class=\"num\">{}</td><td><code>{}</code></td></tr>",
            escape(&run.href),
            escape(&run.scenario),
            run.seed,
            verdict_class(run.verdict),
            verdict_phrase(run.verdict),
            match (run.vacuous && run.verdict == Verdict::Converges, run.partial.is_some()) {
                (_, true) => " (partial)",
                (true, false) => " (vacuous)",
                (false, false) => "",
            },
            verdict_phrase(run.expected),
            met_badge(run.met_expectation),
            run.converged_at_ms.map_or("—".to_string(), human_ms),
            escape(&run.trace_hash)
        );
    }
    html.push_str("</table></div></section>\n");
}

fn sweeps_table(html: &mut String, sweeps: &[IndexSweep]) {
    if sweeps.is_empty() {
        return;
    }
    html.push_str(
        "<section id=\"sweeps\"><h2>Sweeps</h2><div class=\"scroll\"><table><tr><th>scenario</th><th>seeds</th>\
         <th>verdicts</th><th>met?</th><th>seeds that surprised</th></tr>",
    );
    for sweep in sweeps {
        let mut tally = Tally::default();
        tally.add_sweep(sweep);
        let _ = write!(
            html,
            "<tr><td><a href=\"{}\">{}</a></td><td>{}{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td></tr>",
            escape(&sweep.href),
            escape(&sweep.scenario),
            escape(&sweep.seeds),
            match (sweep.complete, sweep.partial.is_some()) {
                (_, true) => " (partial)",
                (false, false) => " (incomplete shards)",
                (true, false) => "",
            },
            verdict_class(tally.main_verdict()),
            escape(&tally.verdict_counts()),
            met_badge(sweep.expectation_met),
            sweep.failing_seeds.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
        );
    }
    html.push_str("</table></div></section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(scenario: &str, seed: u64, verdict: Verdict, expected: Verdict, href: &str) -> IndexRun {
        IndexRun {
            scenario: scenario.into(),
            seed,
            verdict,
            expected,
            met_expectation: verdict == expected,
            vacuous: false,
            converged_at_ms: (verdict == Verdict::Converges).then_some(1_500.0),
            trace_hash: "00".into(),
            href: href.into(),
            labels: (
                "lww-grid peer-id, lamport clock".into(),
                "state-broadcast / mesh".into(),
                "none".into(),
            ),
            partial: None,
        }
    }

    #[test]
    fn cells_are_coloured_by_verdict_and_marked_met_apart() {
        let runs = vec![
            run(
                "a",
                0,
                Verdict::Converges,
                Verdict::Diverges,
                "a-seed0.html",
            ),
            run(
                "a",
                1,
                Verdict::Converges,
                Verdict::Diverges,
                "a-seed1.html",
            ),
            run(
                "a-minimal",
                1,
                Verdict::Diverges,
                Verdict::Diverges,
                "a-seed1-minimal.toml",
            ),
        ];
        let html = render(&runs, &[], None);
        let matrix = &html[html.find("id=\"matrix\"").unwrap()..html.find("id=\"runs\"").unwrap()];
        // Converged everywhere, yet unmet: green for the verdict, the unmet mark apart.
        assert!(
            matrix.contains(
                "<div class=\"cell v-converges\"><b>none</b> <span class=\"badge unmet\">"
            ),
            "{matrix}"
        );
        assert!(
            matrix.contains("converges 2 — "),
            "the shrunk run is not a seed: {matrix}"
        );
        assert!(!matrix.contains("diverges 1"), "{matrix}");
        assert!(html.contains("id=\"minimal-runs\""));
        assert!(html.contains("2 runs, 0 met their expectation"));
        assert!(html.contains("id=\"summary-chart\""));
    }

    #[test]
    fn a_sweep_counts_its_verdicts_and_its_time_to_converge() {
        let sweep = IndexSweep {
            scenario: "b".into(),
            seeds: "0..40".into(),
            runs: 40,
            converged: 26,
            met_expectation: 14,
            complete: true,
            href: "b-sweep-0-40.json".into(),
            labels: (
                "lww-grid random, per-key-counter clock".into(),
                "state-broadcast / mesh".into(),
                "none".into(),
            ),
            failing_seeds: Vec::new(),
            expectation_met: true,
            verdicts: BTreeMap::from([("converges".to_string(), 26), ("diverges".to_string(), 14)]),
            converged_median_ms: Some(2_000.0),
            partial: None,
        };
        let html = render(&[], &[sweep], None);
        assert!(html.contains("converges 26, diverges 14"), "{html}");
        assert!(
            html.contains(">2.00 s</text>"),
            "the sweep's median time to converge: {html}"
        );
        assert!(
            html.contains("0 runs, 0 met their expectation; 1 sweeps, 1 met theirs."),
            "{html}"
        );
        let sweeps = &html[html.find("id=\"sweeps\"").unwrap()..];
        assert!(
            sweeps.contains("&#10003; met"),
            "met as a whole, though 26 seeds converged: {sweeps}"
        );
    }
}
