//! Reports: a judged run rendered for people and for other tools. Every function here is pure (a
//! report in, text out); the binary decides where the text goes.
//!
//! - [`html`]: the self-contained page of one run: verdict in words, expectation, reproduce
//!   command, metrics and coverage, the distinct-states chart, the space-time diagram, the
//!   differing states side by side, the violations.
//! - [`exports`]: the trace as Chrome trace event JSON (Perfetto, chrome://tracing) and as a
//!   ShiViz log with vector clocks.
//! - [`index`]: `index.html`, linking every run, with the convergence matrix.
//! - [`states`], [`charts`] and [`stepper`]: the parts of a run's page: states side by side, the
//!   pictures, and the counterexample stepper.

pub mod charts;
pub mod exports;
pub mod html;
pub mod index;
pub mod states;
pub mod stepper;

use converge_checker::RunReport;
use converge_netsim::{Topology, Verdict};
use serde::Serialize;

/// Why a run's report is partial, in words, when the run itself was cut short (Ctrl-C): "interrupted
/// by the user at virtual time T ms". A report can also be partial for a reason the report does not
/// know (shrinking was interrupted); the caller passes that note on.
pub fn interrupted_note(report: &RunReport) -> Option<String> {
    (report.end == converge_netsim::End::Interrupted).then(|| {
        format!(
            "interrupted by the user at virtual time {:.1} ms of {:.1} ms",
            report.end_ms,
            (report.scenario_spec.duration.us + report.scenario_spec.settle.us) as f64 / 1e3
        )
    })
}

/// A run's report as the JSON document written to `<stem>.json`: `run_id`, `partial`, and, when
/// partial, `partial_note` saying what is missing, then every field of the [`RunReport`]. The run
/// id comes first so that a tool (or `converge` itself, before it writes over a report) can read
/// it from the head of the file. docs/robustness.md describes the fields.
#[derive(Serialize)]
pub struct ReportDocument<'a> {
    pub run_id: &'a str,
    pub partial: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partial_note: Option<&'a str>,
    #[serde(flatten)]
    pub report: &'a RunReport,
}

impl<'a> ReportDocument<'a> {
    pub fn new(report: &'a RunReport, run_id: &'a str, partial_note: Option<&'a str>) -> Self {
        ReportDocument {
            run_id,
            partial: partial_note.is_some(),
            partial_note,
            report,
        }
    }
}

/// The file stem every file of one run shares: `<scenario>-seed<N>`.
pub fn run_file_stem(scenario: &str, seed: u64) -> String {
    format!("{}-seed{seed}", file_safe(scenario))
}

/// A name made safe for a file name: letters, digits, `-`, `_` and `.` kept, the rest `-`.
pub fn file_safe(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    if safe.is_empty() || safe.starts_with('.') {
        format!("run{safe}")
    } else {
        safe
    }
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The verdict as a short phrase: "converges", "diverges", ...
pub fn verdict_phrase(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Converges => "converges",
        Verdict::IntentViolated => "intent violated",
        Verdict::NotConverged => "not converged",
        Verdict::Stalled => "stalled",
        Verdict::SyncLoop => "sync loop",
        Verdict::Diverges => "diverges",
        Verdict::Panicked => "panicked",
        Verdict::BoundReached => "bound reached",
    }
}

/// An oracle's name in words: "strong convergence", "eventual convergence", "intent".
pub fn oracle_name(oracle: converge_checker::Oracle) -> &'static str {
    match oracle {
        converge_checker::Oracle::StrongConvergence => "strong convergence",
        converge_checker::Oracle::EventualConvergence => "eventual convergence",
        converge_checker::Oracle::Intent => "intent",
        converge_checker::Oracle::NoPanic => "no panic",
        converge_checker::Oracle::Liveness => "liveness",
    }
}

/// How many different states the live replicas hold at the end.
pub fn distinct_live_states(report: &RunReport) -> usize {
    let live: Vec<converge_checker::oracles::ReplicaSnapshot> = report
        .replicas
        .iter()
        .filter(|r| r.status == converge_netsim::Status::Up)
        .map(|r| r.snapshot.clone())
        .collect();
    states::group_by_view(&live).len()
}

/// An intent violation in words: causally later writes that lost, or, when none did, a converged
/// state that is not what the specification says of the updates held (a tie broken the wrong
/// way, an increment lost to a stale read, an insert put where its writer did not ask).
fn intent_in_words(report: &RunReport) -> String {
    let intent: Vec<&converge_checker::Violation> = report
        .violations
        .iter()
        .filter(|v| v.oracle == converge_checker::Oracle::Intent)
        .collect();
    if let Some(lost) = intent.iter().find(|v| v.states.is_empty()) {
        return format!("Converged, but {}.", lost.detail.trim_end_matches('.'));
    }
    let detail = intent
        .first()
        .map_or("", |v| v.detail.trim_end_matches('.'));
    let by_stamps = intent
        .first()
        .is_some_and(|v| converge_checker::oracles::reference_by_stamps(v));
    let why = if by_stamps {
        "concurrent writes with equal stamps (ties) were settled differently from the \
         specification"
    } else {
        "the replicas agree on a state that the updates they hold do not give"
    };
    format!(
        "Converged, but not to the specification: {detail}. No causally later write lost; {why}."
    )
}

/// `text` with its first letter in upper case, to start a sentence.
fn capitalized(text: &str) -> String {
    let mut letters = text.chars();
    letters.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(letters).collect()
    })
}

/// The verdict of a run in one or two sentences, naming the evidence.
pub fn verdict_in_words(report: &RunReport) -> String {
    let first_of = |oracle: converge_checker::Oracle| {
        report
            .violations
            .iter()
            .find(|v| v.oracle == oracle)
            .map(|v| v.detail.clone())
            .unwrap_or_default()
    };
    let live = report
        .replicas
        .iter()
        .filter(|r| r.status == converge_netsim::Status::Up)
        .count();
    match report.verdict {
        Verdict::Converges => match report.converged_at_ms {
            Some(at_ms) => format!(
                "Converged: all {live} live replicas hold the same state and all {} updates, since {}.",
                report.updates,
                charts::human_ms(at_ms)
            ),
            None => format!("Converged: all {live} live replicas hold the same state and all {} updates.", report.updates),
        },
        Verdict::IntentViolated => intent_in_words(report),
        Verdict::NotConverged => format!(
            "Not converged: {}.",
            first_of(converge_checker::Oracle::EventualConvergence).trim_end_matches('.')
        ),
        Verdict::Stalled | Verdict::SyncLoop => {
            let lacks = first_of(converge_checker::Oracle::EventualConvergence);
            let liveness = first_of(converge_checker::Oracle::Liveness);
            let words = capitalized(liveness.trim_end_matches('.'));
            if lacks.is_empty() {
                format!("{words}. The replicas agree, but the protocol never goes quiet.")
            } else {
                format!("{words}. {}.", capitalized(lacks.trim_end_matches('.')))
            }
        }
        Verdict::Diverges => {
            let first = report
                .violations
                .iter()
                .find(|v| v.oracle == converge_checker::Oracle::StrongConvergence);
            let when = first.map_or(String::new(), |v| {
                format!(" at {}", charts::human_ms(v.at_us as f64 / 1e3))
            });
            let evidence = format!(
                "{}{when} ({} strong-convergence violations in all)",
                first_of(converge_checker::Oracle::StrongConvergence).trim_end_matches('.'),
                report.strong_violations_total
            );
            match report.agreed_at_ms {
                Some(at_ms) => format!(
                    "Diverged, then healed: {evidence}. By the end all {live} live replicas hold the same state again, \
                     since {}.",
                    charts::human_ms(at_ms)
                ),
                None => format!(
                    "Diverged: {evidence}. At the end the {live} live replicas hold {} different states.",
                    distinct_live_states(report)
                ),
            }
        }
        Verdict::Panicked => format!(
            "Panicked: {}.",
            first_of(converge_checker::Oracle::NoPanic).trim_end_matches('.')
        ),
        Verdict::BoundReached => match &report.end {
            converge_netsim::End::BoundReached { bound } => {
                format!("Bound reached: the run hit {bound} before it ended; nothing is concluded.")
            }
            converge_netsim::End::Interrupted => format!(
                "Interrupted by the user at virtual time {:.1} ms, before the run ended; nothing is concluded.",
                report.end_ms
            ),
            converge_netsim::End::Completed | converge_netsim::End::Panicked { .. } => {
                "Bound reached; nothing is concluded.".to_string()
            }
        },
    }
}

/// The name of node `node` in diagrams and exports: `r0`, `r1`, ..., and `server` for the relay.
pub fn node_name(report: &RunReport, node: u32) -> String {
    let replicas = report.scenario_spec.replicas;
    if node >= replicas
        && report.scenario_spec.protocol.topology == Topology::Relay
        && node == replicas
    {
        "server".to_string()
    } else {
        format!("r{node}")
    }
}

/// How many nodes the run's trace may name: the replicas, plus the relay server.
pub fn node_count(report: &RunReport) -> u32 {
    let spec = &report.scenario_spec;
    let from_spec = spec.replicas + u32::from(spec.protocol.topology == Topology::Relay);
    let from_trace = report
        .trace
        .iter()
        .filter_map(|event| exports::nodes_of(&event.kind).into_iter().max())
        .max()
        .map_or(0, |n| n + 1);
    from_spec.max(from_trace)
}
