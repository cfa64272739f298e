//! `converge run`, the suite (no arguments), `converge replay` and `converge shrink`.

use std::path::Path;

use anyhow::{bail, Context, Result};
use converge::checker::judge::judge_builtin_until;
use converge::checker::{judge_builtin, shrink_builtin, RunReport, Shrunk};
use converge::netsim::{Scenario, Verdict};
use converge::report::{interrupted_note, verdict_phrase};
use converge::sweep::RunSummary;
use serde_json::{json, Value};

use super::args::{shell_quote, Output, ReplayArgs, RunConfig, ScenarioInput, ShrinkArgs};
use super::files::{read_report_file, write_index, write_run_files};
use super::{interrupt, Status};

/// The note of a report whose run finished but whose shrinking the user interrupted.
pub const SHRINK_INTERRUPTED_NOTE: &str =
    "interrupted by the user while shrinking; the minimal counterexample is missing";

/// Shrinks a failing run on a thread of its own, so that Ctrl-C need not wait for it: `Ok(None)`
/// when there was nothing to shrink, `Err(note)` when the user interrupted.
pub fn shrink_unless_interrupted(
    scenario: &Scenario,
    seed: u64,
) -> Result<std::result::Result<Option<Shrunk>, &'static str>> {
    let scenario = scenario.clone();
    match interrupt::unless_interrupted(move || shrink_builtin(&scenario, seed)) {
        Some(shrunk) => Ok(Ok(
            shrunk.map_err(|e| anyhow::anyhow!("shrinking failed: {e}"))?
        )),
        None => Ok(Err(SHRINK_INTERRUPTED_NOTE)),
    }
}

/// Whether a run is worth shrinking: it failed some oracle (a converging run has nothing to
/// shrink, and a run that hit a bound concluded nothing).
fn shrinkable(report: &RunReport) -> bool {
    !matches!(report.verdict, Verdict::Converges | Verdict::BoundReached)
}

/// Runs every scenario with the configured seed, writes reports and the index, prints the results.
/// Runs every scenario with the configured seed, writes reports and the index, prints the results.
/// Ctrl-C stops it within a fraction of a second: the run in progress gets a partial report, the
/// scenarios not started get none, and the status is [`Status::Interrupted`].
pub fn run(config: &RunConfig, table: bool) -> Result<Status> {
    let mut summaries: Vec<RunSummary> = Vec::new();
    let mut html_paths: Vec<String> = Vec::new();
    let mut partial_notes: Vec<String> = Vec::new();
    for input in &config.inputs {
        if interrupt::requested() {
            break;
        }
        let mut report = judge_builtin_until(&input.scenario, config.seed, Some(interrupt::flag()))
            .map_err(|e| anyhow::anyhow!("{}: invalid scenario: {e}", input.path_shown))?;
        report.reproduce = input.reproduce(config.seed);
        let mut partial_note = interrupted_note(&report);
        let shrunk = if config.shrink && shrinkable(&report) {
            match shrink_unless_interrupted(&input.scenario, config.seed)
                .map_err(|e| anyhow::anyhow!("{}: {e}", input.path_shown))?
            {
                Ok(shrunk) => shrunk,
                Err(note) => {
                    partial_note = Some(note.to_string());
                    None
                }
            }
        } else {
            None
        };
        let files = write_run_files(
            &config.output.dir,
            &report,
            shrunk.as_ref(),
            partial_note.as_deref(),
        )?;
        html_paths.push(files.html.display().to_string());
        let summary = RunSummary::of(&report);
        if let Some(note) = &partial_note {
            eprintln!(
                "{} seed {}: partial report ({note}): {}",
                summary.scenario,
                summary.seed,
                files.html.display()
            );
            partial_notes.push(format!(
                "{} seed {}: {note}",
                summary.scenario, summary.seed
            ));
            break;
        }
        if !config.output.json && !table {
            print_run_line(&summary, &files.html.display().to_string());
        }
        if !summary.met_expectation {
            print_failure(&summary, config.output.json);
        }
        summaries.push(summary);
    }
    let interrupted = interrupt::requested();
    let suite_note = interrupted.then(|| {
        format!(
            "interrupted by the user after {} of {} scenarios",
            summaries.len(),
            config.inputs.len()
        )
    });
    let index = write_index(&config.output.dir, suite_note.as_deref())?;
    let all_met = summaries.iter().all(|s| s.met_expectation);
    if config.output.json {
        let document = json!({
            "runs": summaries,
            "all_met": all_met && !interrupted,
            "partial": interrupted,
            "partial_note": suite_note,
            "reports": html_paths,
            "index": index.display().to_string(),
        });
        say!("{}", serde_json::to_string_pretty(&document)?);
    } else {
        if table {
            print_table(&summaries);
        }
        let met = summaries.iter().filter(|s| s.met_expectation).count();
        say!(
            "\n{met} of {} runs met their expectation. Reports: {}",
            summaries.len(),
            index.display()
        );
        if let Some(note) = &suite_note {
            say!("Partial: {note}.");
        }
    }
    Ok(if interrupted {
        Status::Interrupted
    } else if all_met {
        Status::AllMet
    } else {
        Status::SomeFailed
    })
}

fn print_run_line(summary: &RunSummary, html: &str) {
    say!(
        "{} seed {}: {} (expected {}) {}  trace {}  report {html}",
        summary.scenario,
        summary.seed,
        verdict_phrase(summary.verdict),
        verdict_phrase(summary.expected),
        if summary.met_expectation {
            "ok"
        } else {
            "FAILED"
        },
        summary.trace_hash
    );
}

/// Every failing run names its seed and the one command that reproduces it (on stderr with
/// `--json`, so that stdout stays one JSON document).
pub fn print_failure(summary: &RunSummary, to_stderr: bool) {
    let mut text = format!(
        "FAILED {} seed {}: expected {}, got {}",
        summary.scenario,
        summary.seed,
        verdict_phrase(summary.expected),
        verdict_phrase(summary.verdict)
    );
    if let Some(violation) = summary.violations.first() {
        text.push_str(&format!("\n  {}", violation.detail));
    }
    text.push_str(&format!("\n  reproduce: {}", summary.reproduce));
    if to_stderr {
        eprintln!("{text}");
    } else {
        say!("{text}");
    }
}

fn print_table(summaries: &[RunSummary]) {
    let header = [
        "scenario",
        "verdict",
        "expected",
        "met?",
        "converged at",
        "messages sent/delivered/dropped/dup",
        "trace hash",
    ];
    let rows: Vec<[String; 7]> = summaries
        .iter()
        .map(|s| {
            [
                s.scenario.clone(),
                verdict_phrase(s.verdict).to_string(),
                verdict_phrase(s.expected).to_string(),
                if s.met_expectation { "yes" } else { "NO" }.to_string(),
                s.converged_at_ms
                    .map_or("-".to_string(), |ms| format!("{ms:.1} ms")),
                format!(
                    "{}/{}/{}/{}",
                    s.messages.sent,
                    s.messages.delivered,
                    s.messages.dropped,
                    s.messages.duplicated
                ),
                s.trace_hash.clone(),
            ]
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        say!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    line(
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect(),
    );
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// A run to rerun: from a report JSON (its scenario and seed) or from a scenario file and a seed.
struct Rerun {
    scenario: Scenario,
    seed: u64,
    /// What the report recorded, when the input was a report.
    recorded: Option<(String, Verdict)>,
    reproduce: String,
}

fn rerun_of(input: &Path, seed: u64) -> Result<Rerun> {
    let shown = input.display().to_string();
    let is_json = input.extension().and_then(|e| e.to_str()) == Some("json");
    if is_json {
        let text = read_report_file(input)?;
        let value: Value =
            serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{shown}: not JSON: {e}"))?;
        if let Some(spec) = value.get("scenario_spec") {
            let scenario: Scenario = serde_json::from_value(spec.clone())
                .map_err(|e| anyhow::anyhow!("{shown}: key `scenario_spec`: {e}"))?;
            scenario.validate().map_err(|e| {
                anyhow::anyhow!("{shown}: key `scenario_spec`: invalid scenario: {e}")
            })?;
            let seed = value
                .get("seed")
                .and_then(Value::as_u64)
                .with_context(|| format!("{shown}: key `seed`: expected a whole number"))?;
            let hash = value
                .get("trace_hash")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let verdict: Verdict = value
                .get("verdict")
                .and_then(|v| serde_json::from_value(v.clone()).ok())
                .unwrap_or_default();
            let reproduce = value.get("reproduce").and_then(Value::as_str).map_or_else(
                || format!("converge replay {}", shell_quote(&shown)),
                str::to_string,
            );
            return Ok(Rerun {
                scenario,
                seed,
                recorded: Some((hash, verdict)),
                reproduce,
            });
        }
    }
    let loaded = ScenarioInput::load(input)?;
    Ok(Rerun {
        reproduce: loaded.reproduce(seed),
        scenario: loaded.scenario,
        seed,
        recorded: None,
    })
}

/// `converge replay`: rerun and compare trace hashes.
pub fn replay(args: &ReplayArgs) -> Result<Status> {
    let rerun = rerun_of(&args.input, args.seed)?;
    let first = judge_builtin(&rerun.scenario, rerun.seed)
        .map_err(|e| anyhow::anyhow!("invalid scenario: {e}"))?;
    // Without a recorded hash, determinism is what is checked: a second run must match the first.
    let (expected_hash, expected_verdict, against) = match &rerun.recorded {
        Some((hash, verdict)) => (hash.clone(), *verdict, "the report"),
        None => {
            let second = judge_builtin(&rerun.scenario, rerun.seed)
                .map_err(|e| anyhow::anyhow!("invalid scenario: {e}"))?;
            (second.trace_hash, second.verdict, "a second run")
        }
    };
    let reproduced = first.trace_hash == expected_hash && first.verdict == expected_verdict;
    if args.json {
        let document = json!({
            "scenario": first.scenario,
            "seed": rerun.seed,
            "reproduced": reproduced,
            "trace_hash": first.trace_hash,
            "expected_trace_hash": expected_hash,
            "verdict": first.verdict,
            "expected_verdict": expected_verdict,
            "reproduce": rerun.reproduce,
        });
        say!("{}", serde_json::to_string_pretty(&document)?);
    } else if reproduced {
        say!(
            "reproduced: {} seed {} gives trace hash {} and verdict {}, as {against} does",
            first.scenario,
            rerun.seed,
            first.trace_hash,
            verdict_phrase(first.verdict)
        );
    } else {
        say!(
            "did NOT reproduce: {} seed {} gives trace hash {} and verdict {}; {against} has {} and {}",
            first.scenario,
            rerun.seed,
            first.trace_hash,
            verdict_phrase(first.verdict),
            expected_hash,
            verdict_phrase(expected_verdict)
        );
    }
    Ok(if reproduced {
        Status::AllMet
    } else {
        Status::SomeFailed
    })
}

/// `converge shrink`: shrink a failing run and write its minimal scenario and reports.
pub fn shrink(args: &ShrinkArgs) -> Result<Status> {
    let output = Output::from(&args.output);
    let rerun = rerun_of(&args.input, args.seed)?;
    let mut report = judge_builtin(&rerun.scenario, rerun.seed)
        .map_err(|e| anyhow::anyhow!("invalid scenario: {e}"))?;
    report.reproduce = rerun.reproduce.clone();
    let shrunk: Option<Shrunk> = shrink_builtin(&rerun.scenario, rerun.seed)
        .map_err(|e| anyhow::anyhow!("shrinking failed: {e}"))?;
    let Some(shrunk) = shrunk else {
        if output.json {
            say!(
                "{}",
                json!({"scenario": report.scenario, "seed": rerun.seed, "verdict": report.verdict, "shrunk": null})
            );
        } else {
            say!(
                "{} seed {}: verdict {}; nothing to shrink",
                report.scenario,
                rerun.seed,
                verdict_phrase(report.verdict)
            );
        }
        return Ok(Status::AllMet);
    };
    let files = write_run_files(&output.dir, &report, Some(&shrunk), None)?;
    write_index(&output.dir, None)?;
    let minimal_path = files
        .minimal_scenario
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let reproduce = format!(
        "converge run {} --seed {}",
        shell_quote(&minimal_path),
        shrunk.seed
    );
    if output.json {
        let document = json!({
            "scenario": report.scenario,
            "seed": rerun.seed,
            "verdict": shrunk.verdict,
            "original": shrunk.original,
            "minimal": shrunk.minimal,
            "scripted": shrunk.scripted,
            "runs": shrunk.runs,
            "minimal_scenario": minimal_path,
            "report": files.html.display().to_string(),
            "reproduce": reproduce,
        });
        say!("{}", serde_json::to_string_pretty(&document)?);
    } else {
        say!(
            "{} seed {} ({}): shrunk in {} runs from {} replicas, {} writes, {} faults, {} messages \
             to {} replicas, {} writes, {} faults, {} messages{}",
            report.scenario,
            rerun.seed,
            verdict_phrase(shrunk.verdict),
            shrunk.runs,
            shrunk.original.replicas,
            shrunk.original.writes,
            shrunk.original.faults,
            shrunk.original.messages,
            shrunk.minimal.replicas,
            shrunk.minimal.writes,
            shrunk.minimal.faults,
            shrunk.minimal.messages,
            if shrunk.scripted { " (scripted)" } else { "" }
        );
        say!(
            "minimal scenario: {minimal_path}\nreport: {}\nreproduce: {reproduce}",
            files.html.display()
        );
    }
    if shrunk.verdict != report.verdict {
        bail!(
            "the shrunk run ends with verdict \"{}\", not \"{}\"",
            verdict_phrase(shrunk.verdict),
            verdict_phrase(report.verdict)
        );
    }
    Ok(Status::AllMet)
}
