//! Writing reports: every file is written to a temporary file in the same directory and renamed
//! into place, so that a reader (a browser, a CI artifact upload, a concurrent shard) never sees a
//! half-written file.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use converge::checker::judge::matrix_labels;
use converge::checker::{RunReport, Shrunk};
use converge::netsim::{Scenario, Verdict};
use converge::report::index::{IndexRun, IndexSweep};
use converge::report::{exports, html, index, run_file_stem};
use converge::sweep::{SweepResult, SWEEP_KIND};
use serde_json::Value;

use super::args::shell_quote;

/// Writes `contents` to `path` atomically (temporary file in the same directory, then rename).
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .with_context(|| format!("{}: cannot create the directory", dir.display()))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let temporary = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&temporary, contents)
        .with_context(|| format!("{}: cannot write", temporary.display()))?;
    std::fs::rename(&temporary, path)
        .with_context(|| format!("{}: cannot move into place", path.display()))?;
    Ok(())
}

/// The files of one run.
pub struct RunFiles {
    pub html: PathBuf,
    pub minimal_scenario: Option<PathBuf>,
}

/// Writes a run's report JSON, HTML page, Chrome trace and ShiViz log, and, when it was shrunk,
/// the minimal scenario (TOML) with the minimal run's own report.
pub fn write_run_files(
    dir: &Path,
    report: &RunReport,
    shrunk: Option<&Shrunk>,
) -> Result<RunFiles> {
    let stem = run_file_stem(&report.scenario, report.seed);
    let json_path = dir.join(format!("{stem}.json"));
    let html_path = dir.join(format!("{stem}.html"));
    let trace_name = format!("{stem}.trace.json");
    let shiviz_name = format!("{stem}.shiviz.log");
    let mut links = vec![
        ("report JSON".to_string(), format!("{stem}.json")),
        ("Chrome trace (Perfetto)".to_string(), trace_name.clone()),
        ("ShiViz log".to_string(), shiviz_name.clone()),
    ];
    let mut minimal_scenario = None;
    if let Some(shrunk) = shrunk {
        let minimal_stem = format!("{stem}-minimal");
        let scenario_path = dir.join(format!("{minimal_stem}.toml"));
        write_atomic(&scenario_path, scenario_toml(&shrunk.scenario)?.as_bytes())?;
        let mut minimal_report = shrunk.report.clone();
        minimal_report.reproduce = format!(
            "converge run {} --seed {}",
            shell_quote(&scenario_path.display().to_string()),
            shrunk.seed
        );
        write_atomic(
            &dir.join(format!("{minimal_stem}.json")),
            serde_json::to_string_pretty(&minimal_report)?.as_bytes(),
        )?;
        links.push((
            "minimal scenario (TOML)".to_string(),
            format!("{minimal_stem}.toml"),
        ));
        links.push((
            "minimal run report JSON".to_string(),
            format!("{minimal_stem}.json"),
        ));
        minimal_scenario = Some(scenario_path);
    }
    write_atomic(&json_path, serde_json::to_string_pretty(report)?.as_bytes())?;
    write_atomic(
        &dir.join(&trace_name),
        exports::chrome_trace(report).as_bytes(),
    )?;
    write_atomic(
        &dir.join(&shiviz_name),
        exports::shiviz_log(report).as_bytes(),
    )?;
    let page = html::RunPage {
        report,
        shrunk,
        links,
        index_href: Some("index.html".to_string()),
    };
    write_atomic(&html_path, html::render(&page).as_bytes())?;
    Ok(RunFiles {
        html: html_path,
        minimal_scenario,
    })
}

/// A scenario as a TOML file, with a header saying where it came from.
pub fn scenario_toml(scenario: &Scenario) -> Result<String> {
    let body = toml::to_string(scenario).context("cannot render the scenario as TOML")?;
    Ok(format!(
        "# {}\n{body}",
        scenario.description.replace('\n', " ")
    ))
}

/// Rebuilds `index.html` from every run report and sweep result in `dir`, and returns its path.
pub fn write_index(dir: &Path) -> Result<PathBuf> {
    let mut runs: Vec<IndexRun> = Vec::new();
    let mut sweeps: Vec<IndexSweep> = Vec::new();
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot list", dir.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| {
            name.ends_with(".json") && !name.ends_with(".trace.json") && !name.starts_with('.')
        })
        .collect();
    names.sort();
    for name in names {
        let Ok(text) = std::fs::read_to_string(dir.join(&name)) else {
            continue;
        };
        let Ok(value) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        if value.get("kind").and_then(Value::as_str) == Some(SWEEP_KIND) {
            if let Ok(sweep) = serde_json::from_value::<SweepResult>(value) {
                sweeps.push(IndexSweep {
                    scenario: sweep.scenario.clone(),
                    seeds: format!("{}..{}", sweep.seeds.start, sweep.seeds.end),
                    runs: sweep.counts.runs,
                    converged: sweep.counts.verdicts.get("converges").copied().unwrap_or(0),
                    met_expectation: sweep.counts.met_expectation,
                    complete: sweep.complete,
                    href: name.clone(),
                    labels: matrix_labels(&sweep.scenario_spec),
                    failing_seeds: sweep
                        .runs
                        .iter()
                        .filter(|r| !r.met_expectation)
                        .take(5)
                        .map(|r| r.seed)
                        .collect(),
                });
            }
            continue;
        }
        if let Some(run) = index_run(&name, &value) {
            runs.push(run);
        }
    }
    runs.sort_by(|a, b| (&a.scenario, a.seed).cmp(&(&b.scenario, b.seed)));
    let path = dir.join("index.html");
    write_atomic(&path, index::render(&runs, &sweeps).as_bytes())?;
    Ok(path)
}

fn index_run(name: &str, value: &Value) -> Option<IndexRun> {
    value.get("schema_version")?;
    let spec: Scenario = serde_json::from_value(value.get("scenario_spec")?.clone()).ok()?;
    let verdict = |key: &str| serde_json::from_value::<Verdict>(value.get(key)?.clone()).ok();
    let html_name = format!("{}.html", name.trim_end_matches(".json"));
    Some(IndexRun {
        scenario: value.get("scenario")?.as_str()?.to_string(),
        seed: value.get("seed")?.as_u64()?,
        verdict: verdict("verdict")?,
        expected: verdict("expected")?,
        met_expectation: value.get("met_expectation")?.as_bool()?,
        vacuous: value
            .pointer("/coverage/vacuous")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        converged_at_ms: value.get("converged_at_ms").and_then(Value::as_f64),
        trace_hash: value.get("trace_hash")?.as_str()?.to_string(),
        // Minimal runs have a report but no page of their own: link the scenario instead.
        href: if name.ends_with("-minimal.json") {
            format!("{}.toml", name.trim_end_matches(".json"))
        } else {
            html_name
        },
        labels: matrix_labels(&spec),
    })
}
