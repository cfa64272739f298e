//! Writing reports: every file is written to a temporary file in the same directory and renamed
//! into place, so that a reader (a browser, a CI artifact upload, a concurrent shard) never sees a
//! half-written file.
//!
//! Every report carries its run id ([`converge::run_id`]). Before a report is written where another
//! one lies, the old one's id is read from the head of the file: the same run is simply written
//! again (rerunning is idempotent), but a different run's report, with every file that goes with
//! it, is first moved to `<out>/previous/<its run id>/` and stderr says so. A partial report never
//! replaces a whole one of the same run either.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use converge::checker::judge::matrix_labels;
use converge::checker::{RunReport, Shrunk};
use converge::netsim::{Scenario, Verdict};
use converge::report::index::{IndexRun, IndexSweep};
use converge::report::{exports, file_safe, html, index, run_file_stem, ReportDocument};
use converge::run_id::run_id_of_run;
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

/// The directory, under a reports directory, where reports of other runs are moved to before
/// they would be written over.
pub const PREVIOUS_DIR: &str = "previous";

/// Bytes read from the head of an existing report to find its run id: the id is the first field of
/// a run report and the third of a sweep result.
const RUN_ID_HEAD_BYTES: u64 = 64 * 1024;

/// Report files read back (by the index, `replay`, `shrink` and `merge`) are refused above this
/// size: a run report is under a megabyte and a sweep of a million seeds about half a gigabyte.
pub const REPORT_FILE_BYTES_MAX: u64 = 1024 * 1024 * 1024;

/// Reads a report file, refusing one larger than [`REPORT_FILE_BYTES_MAX`] before reading it.
pub fn read_report_file(path: &Path) -> Result<String> {
    let shown = path.display();
    let mut text = String::new();
    std::fs::File::open(path)
        .with_context(|| format!("{shown}: cannot read"))?
        .take(REPORT_FILE_BYTES_MAX + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("{shown}: cannot read as UTF-8 text"))?;
    if text.len() as u64 > REPORT_FILE_BYTES_MAX {
        bail!(
            "{shown}: larger than {} MiB (REPORT_FILE_BYTES_MAX); not a report converge wrote",
            REPORT_FILE_BYTES_MAX / (1024 * 1024)
        );
    }
    Ok(text)
}

/// What the head of an existing report says about it: its run id (if it has one) and whether it is
/// partial.
fn existing_report(path: &Path) -> Option<(Option<String>, bool)> {
    let mut head = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(RUN_ID_HEAD_BYTES)
        .read_to_end(&mut head)
        .ok()?;
    let head = String::from_utf8_lossy(&head);
    let run_id = head.find("\"run_id\": \"").and_then(|start| {
        let rest = &head[start + "\"run_id\": \"".len()..];
        let id = &rest[..rest.find('"')?];
        (!id.is_empty() && id.chars().all(|c| c.is_ascii_hexdigit())).then(|| id.to_string())
    });
    let partial = head.contains("\"partial\": true");
    Some((run_id, partial))
}

/// Before the report at `report_path` (and the other files of its set) is written for run
/// `run_id`: if an existing report there belongs to another run, or is a whole report that a
/// partial one would replace, moves the existing files of the set to
/// `<dir>/previous/<old run id>/` and says so on stderr.
pub fn keep_previous_run(
    dir: &Path,
    report_path: &Path,
    set: &[PathBuf],
    run_id: &str,
    partial: bool,
) -> Result<()> {
    let Some((old_id, old_partial)) = existing_report(report_path) else {
        return Ok(());
    };
    if old_id.as_deref() == Some(run_id) && (!partial || old_partial) {
        return Ok(());
    }
    let label = match &old_id {
        Some(id) if id == run_id => format!("{id}-whole"),
        Some(id) => id.clone(),
        None => "without-run-id".to_string(),
    };
    let previous = dir.join(PREVIOUS_DIR);
    let mut target = previous.join(file_safe(&label));
    let mut attempt = 1;
    while target.exists() {
        attempt += 1;
        target = previous.join(format!("{}-{attempt}", file_safe(&label)));
    }
    std::fs::create_dir_all(&target)
        .with_context(|| format!("{}: cannot create the directory", target.display()))?;
    for file in set.iter().filter(|f| f.exists()) {
        let name = file.file_name().unwrap_or_default();
        std::fs::rename(file, target.join(name))
            .with_context(|| format!("{}: cannot move to {}", file.display(), target.display()))?;
    }
    let why = match &old_id {
        Some(id) if id == run_id => {
            "a whole report of this run, which a partial one would replace".to_string()
        }
        Some(id) => format!("the report of another run ({id})"),
        None => "a report without a run id".to_string(),
    };
    eprintln!(
        "note: {} held {why}; it is kept in {}",
        report_path.display(),
        target.display()
    );
    Ok(())
}

/// The files of one run.
pub struct RunFiles {
    pub html: PathBuf,
    pub minimal_scenario: Option<PathBuf>,
}

/// Writes a run's report JSON, HTML page, Chrome trace and ShiViz log, and, when it was shrunk,
/// the minimal scenario (TOML) with the minimal run's own report. `partial_note` says why the
/// report is partial, when it is (the run or its shrinking was interrupted).
pub fn write_run_files(
    dir: &Path,
    report: &RunReport,
    shrunk: Option<&Shrunk>,
    partial_note: Option<&str>,
) -> Result<RunFiles> {
    let stem = run_file_stem(&report.scenario, report.seed);
    let run_id = run_id_of_run(&report.scenario_spec, report.seed);
    let json_path = dir.join(format!("{stem}.json"));
    let html_path = dir.join(format!("{stem}.html"));
    let trace_name = format!("{stem}.trace.json");
    let shiviz_name = format!("{stem}.shiviz.log");
    let set: Vec<PathBuf> = [
        format!("{stem}.json"),
        format!("{stem}.html"),
        trace_name.clone(),
        shiviz_name.clone(),
        format!("{stem}-minimal.toml"),
        format!("{stem}-minimal.json"),
    ]
    .iter()
    .map(|name| dir.join(name))
    .collect();
    keep_previous_run(dir, &json_path, &set, &run_id, partial_note.is_some())?;
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
        let minimal_run_id = run_id_of_run(&minimal_report.scenario_spec, minimal_report.seed);
        write_atomic(
            &dir.join(format!("{minimal_stem}.json")),
            serde_json::to_string_pretty(&ReportDocument::new(
                &minimal_report,
                &minimal_run_id,
                None,
            ))?
            .as_bytes(),
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
    write_atomic(
        &json_path,
        serde_json::to_string_pretty(&ReportDocument::new(report, &run_id, partial_note))?
            .as_bytes(),
    )?;
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
        run_id: Some(run_id.clone()),
        partial: partial_note.map(str::to_string),
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

/// Writes a sweep (or merge) result as `<dir>/<name>.json`, keeping a different sweep's result
/// that lies there, and returns the path.
pub fn write_sweep_result(dir: &Path, name: &str, result: &SweepResult) -> Result<PathBuf> {
    let path = dir.join(format!("{name}.json"));
    keep_previous_run(
        dir,
        &path,
        std::slice::from_ref(&path),
        &result.run_id,
        result.partial,
    )?;
    write_atomic(&path, serde_json::to_string_pretty(result)?.as_bytes())?;
    Ok(path)
}

/// Rebuilds `index.html` from every run report and sweep result in `dir`, and returns its path.
/// `partial` says why the command writing it stopped early, if it did.
pub fn write_index(dir: &Path, partial: Option<&str>) -> Result<PathBuf> {
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
        let Ok(text) = read_report_file(&dir.join(&name)) else {
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
                        .filter(|r| converge::sweep::surprises(r))
                        .take(5)
                        .map(|r| r.seed)
                        .collect(),
                    partial: sweep.partial_note(),
                    expectation_met: sweep.expectation.met,
                    converged_median_ms: sweep.converged_median_ms(),
                    verdicts: sweep.counts.verdicts.clone(),
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
    write_atomic(&path, index::render(&runs, &sweeps, partial).as_bytes())?;
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
        partial: value
            .get("partial")
            .and_then(Value::as_bool)
            .unwrap_or(false)
            .then(|| {
                value
                    .get("partial_note")
                    .and_then(Value::as_str)
                    .unwrap_or("interrupted")
                    .to_string()
            }),
    })
}
