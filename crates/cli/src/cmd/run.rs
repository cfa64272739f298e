//! `converge run`, the suite (no arguments), `converge replay` and `converge shrink`.

use std::path::Path;

use anyhow::{bail, Context, Result};
use converge::checker::judge::judge_builtin_until;
use converge::checker::{
    check_builtin_determinism, judge_builtin, shrink_builtin, RunReport, Shrunk, SCHEMA_VERSION,
};
use converge::netsim::{Scenario, Verdict};
use converge::report::{interrupted_note, verdict_phrase};
use converge::run_id::run_id_of_run;
use converge::sweep::RunSummary;
use serde_json::{json, Value};

use super::args::{shell_quote, Output, ReplayArgs, RunConfig, ScenarioInput, ShrinkArgs};
use super::files::{read_report_file, run_stem, write_index, write_run_files};
use super::terminal::clean;
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

/// The work of a failing run above which `converge run` leaves shrinking to `converge shrink`:
/// a sixth of what a scenario file may ask of one run. Shrinking runs the failure again several
/// times besides its candidates (to keep every record, for the minimal run's report, for its
/// scripted form), so a failure at the work cap would take several minutes to shrink; below this
/// share, the run, its shrinking and its reports stay within the minute docs/robustness.md
/// promises.
const SHRINK_WORK_MAX: u64 = converge::netsim::validation::RUN_WORK_MAX / 6;

/// Why a failing run is not shrunk by `converge run`, when it is too large to.
fn too_large_to_shrink(scenario: &Scenario, report: &RunReport) -> Option<String> {
    let work = report.events.saturating_mul(scenario.event_work_max());
    (work > SHRINK_WORK_MAX).then(|| {
        format!(
            "not shrunk: the run's {} events of up to {} units of work each exceed a sixth of \
             RUN_WORK_MAX ({SHRINK_WORK_MAX}); `converge shrink` on this report shrinks it",
            report.events,
            scenario.event_work_max()
        )
    })
}

/// Runs every scenario with the configured seed, writes reports and the index, prints the results.
/// Runs every scenario with the configured seed, writes reports and the index, prints the results.
/// Ctrl-C stops it within a fraction of a second: the run in progress gets a partial report, the
/// scenarios not started get none, and the status is [`Status::Interrupted`].
pub fn run(config: &RunConfig, table: bool) -> Result<Status> {
    let mut summaries: Vec<RunSummary> = Vec::new();
    let mut html_paths: Vec<String> = Vec::new();
    let mut partial_notes: Vec<String> = Vec::new();
    let mut not_written: Option<anyhow::Error> = None;
    for input in &config.inputs {
        if interrupt::requested() {
            break;
        }
        let mut report = judge_builtin_until(&input.scenario, config.seed, Some(interrupt::flag()))
            .map_err(|e| anyhow::anyhow!("{}: invalid scenario: {e}", input.path_shown))?;
        report.reproduce = input.reproduce(config.seed);
        if config.check_determinism {
            let found = check_builtin_determinism(&input.scenario, config.seed)
                .map_err(|e| anyhow::anyhow!("{}: invalid scenario: {e}", input.path_shown))?;
            if let Some(found) = found {
                report.met_expectation = false;
                report.expectation_notes.push(found.to_string());
            }
        }
        let mut partial_note = interrupted_note(&report);
        let too_large = shrinkable(&report)
            .then(|| too_large_to_shrink(&input.scenario, &report))
            .flatten();
        if let Some(note) = &too_large {
            report.expectation_notes.push(note.clone());
        }
        let shrunk = if config.shrink && shrinkable(&report) && too_large.is_none() {
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
        let summary = RunSummary::of(&report);
        // The verdict is printed before any file is written: a full disk must not hide it.
        let html = config
            .output
            .dir
            .join(format!("{}.html", run_stem(&report.scenario, report.seed)))
            .display()
            .to_string();
        if partial_note.is_none() {
            if !config.output.json && !table {
                print_run_line(&summary, &html);
            }
            if !summary.met_expectation {
                print_failure(&summary, config.output.json);
            }
        }
        // After a write failed, the remaining scenarios still run and print their verdicts; their
        // reports are not attempted (the disk that failed is full, or the directory read-only).
        if not_written.is_none() {
            match write_run_files(
                &config.output.dir,
                &report,
                shrunk.as_ref(),
                partial_note.as_deref(),
            ) {
                Ok(_) => html_paths.push(html.clone()),
                Err(error) => not_written = Some(error),
            }
        }
        if let Some(note) = &partial_note {
            eprintln!(
                "{} seed {}: partial report ({note}): {}",
                clean(&summary.scenario),
                summary.seed,
                clean(&html)
            );
            partial_notes.push(format!(
                "{} seed {}: {note}",
                summary.scenario, summary.seed
            ));
            break;
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
    let index = match &not_written {
        Some(_) => None,
        None => match write_index(&config.output.dir, suite_note.as_deref()) {
            Ok(index) => Some(index.display().to_string()),
            Err(error) => {
                not_written = Some(error);
                None
            }
        },
    };
    let all_met = summaries.iter().all(|s| s.met_expectation);
    if config.output.json {
        let document = json!({
            "runs": summaries,
            "all_met": all_met && !interrupted,
            "partial": interrupted,
            "partial_note": suite_note,
            "reports": html_paths,
            "index": index,
            "reports_not_written": not_written.as_ref().map(|e| format!("{e:#}")),
        });
        say!("{}", super::terminal::json(&document)?);
    } else {
        if table {
            print_table(&summaries);
        }
        let met = summaries.iter().filter(|s| s.met_expectation).count();
        say!(
            "\n{met} of {} runs met their expectation. Reports: {}",
            summaries.len(),
            clean(
                index
                    .as_deref()
                    .unwrap_or("not written (see the error below)")
            )
        );
        if let Some(note) = &suite_note {
            say!("Partial: {note}.");
        }
    }
    if let Some(error) = not_written {
        return Err(error.context(format!(
            "the runs ended ({} of {} met their expectation, as printed above), but their reports \
             could not all be written",
            summaries.iter().filter(|s| s.met_expectation).count(),
            summaries.len()
        )));
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
        "{} seed {}: {} (expected {}) {}  trace {}  report {}",
        clean(&summary.scenario),
        summary.seed,
        verdict_phrase(summary.verdict),
        verdict_phrase(summary.expected),
        if summary.met_expectation {
            "ok"
        } else {
            "FAILED"
        },
        clean(&summary.trace_hash),
        clean(html)
    );
}

/// Every failing run names its seed and the one command that reproduces it (on stderr with
/// `--json`, so that stdout stays one JSON document).
pub fn print_failure(summary: &RunSummary, to_stderr: bool) {
    let mut text = format!(
        "FAILED {} seed {}: expected {}, got {}",
        clean(&summary.scenario),
        summary.seed,
        verdict_phrase(summary.expected),
        verdict_phrase(summary.verdict)
    );
    if let Some(violation) = summary.violations.first() {
        text.push_str(&format!("\n  {}", clean(&violation.detail)));
    }
    text.push_str(&format!("\n  reproduce: {}", clean(&summary.reproduce)));
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
                clean(&s.scenario).into_owned(),
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
                clean(&s.trace_hash).into_owned(),
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
    /// What the report recorded, when the input was a whole report.
    recorded: Option<Recorded>,
    reproduce: String,
    /// Why the report's own figures are not compared (a partial report), when they are not.
    partial_note: Option<String>,
}

/// What a report says its run gave.
struct Recorded {
    trace_hash: String,
    verdict: Verdict,
    /// The other figures a rerun must give too: events, updates, messages sent.
    figures: [(&'static str, Option<u64>); 3],
}

/// Characters of a trace hash as converge writes it: 16 hex digits.
const TRACE_HASH_CHARS: usize = 16;

/// Reads a report (or falls back to a scenario file and `seed`) and checks the report before it is
/// used: it must be a run report of the schema version this converge reads; its run id must be
/// the id of its scenario and seed (an edited scenario, seed or run id, or a report of another
/// version, fails this); its scenario name must be the one in its scenario; its trace hash must be
/// one converge writes. A partial report (a run cut short) is used for its scenario and seed only,
/// and the caller says so.
fn rerun_of(input: &Path, seed: u64) -> Result<Rerun> {
    let shown = clean(&input.display().to_string()).into_owned();
    let is_json = input.extension().and_then(|e| e.to_str()) == Some("json");
    if is_json {
        let text = read_report_file(input)?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{shown}: not JSON (a truncated report?): {e}"))?;
        if value.get("kind").and_then(Value::as_str) == Some(converge::sweep::SWEEP_KIND) {
            bail!(
                "{shown}: a sweep result, not a run report; replay or shrink one of its seeds \
                 (`converge run FILE --seed N` writes its report) or give the scenario file with \
                 --seed"
            );
        }
        if let Some(spec) = value.get("scenario_spec") {
            return rerun_of_report(&shown, &value, spec);
        }
    }
    let loaded = ScenarioInput::load(input)?;
    Ok(Rerun {
        reproduce: loaded.reproduce(seed),
        scenario: loaded.scenario,
        seed,
        recorded: None,
        partial_note: None,
    })
}

fn rerun_of_report(shown: &str, value: &Value, spec: &Value) -> Result<Rerun> {
    let refuse = |key: &str, problem: String| -> anyhow::Error {
        anyhow::anyhow!(
            "{shown}: key `{key}`: {problem}; the report was edited or is not one this converge \
             ({}) wrote, so it is not used (rerun from the scenario file with --seed instead)",
            converge::run_id::CONVERGE_VERSION
        )
    };
    match value.get("schema_version").and_then(Value::as_u64) {
        Some(version) if version == u64::from(SCHEMA_VERSION) => {}
        Some(version) => {
            return Err(refuse(
                "schema_version",
                format!("expected {SCHEMA_VERSION}, found {version}"),
            ))
        }
        None => {
            return Err(refuse(
                "schema_version",
                format!("expected {SCHEMA_VERSION}, found none"),
            ))
        }
    }
    let scenario: Scenario = serde_json::from_value(spec.clone())
        .map_err(|e| anyhow::anyhow!("{shown}: key `scenario_spec`: {e}"))?;
    scenario
        .validate()
        .map_err(|e| anyhow::anyhow!("{shown}: key `scenario_spec`: invalid scenario: {e}"))?;
    let seed = value
        .get("seed")
        .and_then(Value::as_u64)
        .with_context(|| format!("{shown}: key `seed`: expected a whole number"))?;
    let expected_id = run_id_of_run(&scenario, seed);
    match value.get("run_id").and_then(Value::as_str) {
        Some(id) if id == expected_id => {}
        found => {
            return Err(refuse(
                "run_id",
                format!(
                    "expected {expected_id}, the id of its scenario_spec and seed {seed}, found {}",
                    found.map_or("none".to_string(), |id| format!("{:?}", clean(id)))
                ),
            ))
        }
    }
    let name = value.get("scenario").and_then(Value::as_str);
    if name != Some(scenario.name.as_str()) {
        return Err(refuse(
            "scenario",
            format!(
                "expected {:?}, the name in its scenario_spec, found {}",
                scenario.name,
                name.map_or("none".to_string(), |n| format!("{:?}", clean(n)))
            ),
        ));
    }
    let trace_hash = value
        .get("trace_hash")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if trace_hash.len() != TRACE_HASH_CHARS || !trace_hash.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(refuse(
            "trace_hash",
            format!(
                "expected {TRACE_HASH_CHARS} hex digits, found {:?}",
                clean(trace_hash)
            ),
        ));
    }
    let verdict: Verdict = value
        .get("verdict")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .ok_or_else(|| refuse("verdict", "expected a verdict".to_string()))?;
    let reproduce = value.get("reproduce").and_then(Value::as_str).map_or_else(
        || format!("converge replay {}", shell_quote(shown)),
        str::to_string,
    );
    let partial = value.get("partial").and_then(Value::as_bool) == Some(true);
    let partial_note = partial.then(|| {
        value
            .get("partial_note")
            .and_then(Value::as_str)
            .unwrap_or("partial")
            .to_string()
    });
    let figure = |pointer: &str| value.pointer(pointer).and_then(Value::as_u64);
    Ok(Rerun {
        scenario,
        seed,
        // A partial report's figures are those of a run cut short: a whole rerun cannot match.
        recorded: (!partial).then(|| Recorded {
            trace_hash: trace_hash.to_string(),
            verdict,
            figures: [
                ("events", figure("/events")),
                ("updates", figure("/updates")),
                ("messages sent", figure("/messages/sent")),
            ],
        }),
        reproduce,
        partial_note,
    })
}

/// `converge replay`: rerun and compare trace hashes.
pub fn replay(args: &ReplayArgs) -> Result<Status> {
    let rerun = rerun_of(&args.input, args.seed)?;
    if let Some(note) = &rerun.partial_note {
        eprintln!(
            "note: the report is partial ({}): its trace hash is that of a run cut short, so the \
             rerun is compared with a second run instead",
            clean(note)
        );
    }
    let first = judge_builtin(&rerun.scenario, rerun.seed)
        .map_err(|e| anyhow::anyhow!("invalid scenario: {e}"))?;
    // Without a recorded hash, determinism is what is checked: a second run must match the first.
    let (expected_hash, expected_verdict, against) = match &rerun.recorded {
        Some(recorded) => (recorded.trace_hash.clone(), recorded.verdict, "the report"),
        None => {
            let second = judge_builtin(&rerun.scenario, rerun.seed)
                .map_err(|e| anyhow::anyhow!("invalid scenario: {e}"))?;
            (second.trace_hash, second.verdict, "a second run")
        }
    };
    let reproduced = first.trace_hash == expected_hash && first.verdict == expected_verdict;
    // The report's run id matched its scenario and seed, so this is the run it describes. When
    // its hash still differs, a second run tells a report whose hash is off (the runs agree with
    // each other) from a run that is not deterministic (they do not).
    let mut explanation = None;
    if let (false, Some(recorded)) = (reproduced, &rerun.recorded) {
        let second = judge_builtin(&rerun.scenario, rerun.seed)
            .map_err(|e| anyhow::anyhow!("invalid scenario: {e}"))?;
        explanation = Some(if second.trace_hash != first.trace_hash {
            format!(
                "two reruns disagree ({} and {}): the run is not deterministic (a user type or \
                 protocol that reads a clock, a hash map's order or a global)",
                first.trace_hash, second.trace_hash
            )
        } else {
            let rerun_figures = [first.events, first.updates, first.messages.sent];
            let differing: Vec<&str> = (recorded.figures.iter().zip(rerun_figures))
                .filter(|((_, recorded), rerun)| *recorded != Some(*rerun))
                .map(|((name, _), _)| *name)
                .collect();
            if differing.is_empty() && first.verdict == recorded.verdict {
                "two reruns agree, and so do the report's verdict, events, updates and messages: \
                 the report's trace_hash was most likely edited"
                    .to_string()
            } else {
                format!(
                    "two reruns agree with each other but not with the report ({} differ too): \
                     the report was edited, or written by a build that simulates differently",
                    if differing.is_empty() {
                        "the verdict".to_string()
                    } else {
                        differing.join(", ")
                    }
                )
            }
        });
    }
    let scenario = clean(&first.scenario);
    if args.json {
        let document = json!({
            "scenario": first.scenario,
            "seed": rerun.seed,
            "reproduced": reproduced,
            "trace_hash": first.trace_hash,
            "expected_trace_hash": expected_hash,
            "verdict": first.verdict,
            "expected_verdict": expected_verdict,
            "compared_with": against,
            "partial_note": rerun.partial_note,
            "explanation": explanation,
            "reproduce": rerun.reproduce,
        });
        say!("{}", super::terminal::json(&document)?);
    } else if reproduced {
        say!(
            "reproduced: {scenario} seed {} gives trace hash {} and verdict {}, as {against} does",
            rerun.seed,
            first.trace_hash,
            verdict_phrase(first.verdict)
        );
    } else {
        say!(
            "did NOT reproduce: {scenario} seed {} gives trace hash {} and verdict {}; {against} has {} and {}",
            rerun.seed,
            first.trace_hash,
            verdict_phrase(first.verdict),
            clean(&expected_hash),
            verdict_phrase(expected_verdict)
        );
        if let Some(explanation) = &explanation {
            say!("  {explanation}");
        }
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
    if let Some(note) = &rerun.partial_note {
        eprintln!(
            "note: the report is partial ({}); its scenario and seed are shrunk from a whole rerun",
            clean(note)
        );
    }
    if let Some(recorded) = &rerun.recorded {
        if recorded.trace_hash != report.trace_hash || recorded.verdict != report.verdict {
            bail!(
                "{}: the report's trace hash {} and verdict {} are not what its scenario and seed \
                 give now ({} and {}): the report was edited, or the run is not deterministic; \
                 `converge replay` on it tells which. Nothing was shrunk",
                clean(&args.input.display().to_string()),
                recorded.trace_hash,
                verdict_phrase(recorded.verdict),
                report.trace_hash,
                verdict_phrase(report.verdict)
            );
        }
    }
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
        say!("{}", super::terminal::json(&document)?);
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
