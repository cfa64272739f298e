//! `converge sweep` and `converge merge`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use converge::checker::judge::judge_builtin_until;
use converge::netsim::{End, Verdict};
use converge::report::verdict_phrase;
use converge::sweep::{
    check_seeds_share, merge as merge_results, run_seeds_until, seeds_of, surprises, RunSummary,
    ShrunkSeed, SweepResult, SWEEP_KIND,
};
use serde_json::Value;

use super::args::{shell_quote, MergeArgs, Output, SweepConfig};
use super::files::{name_stem, read_report_file, write_index, write_run_files, write_sweep_result};
use super::progress::Progress;
use super::run::{print_failure, shrink_unless_interrupted};
use super::terminal::clean;
use super::{interrupt, Status};

/// Failing seeds listed with their reproduce command in the text output.
const FAILING_SEEDS_SHOWN_MAX: usize = 10;

pub fn sweep(config: &SweepConfig) -> Result<Status> {
    let input = &config.input;
    check_seeds_share(&input.scenario).map_err(|e| anyhow::anyhow!("{}: {e}", input.path_shown))?;
    let seeds = seeds_of(config.seeds, config.shard);
    if seeds.is_empty() {
        bail!(
            "--seeds {}..{} holds no seed of this shard",
            config.seeds.start,
            config.seeds.end
        );
    }
    let shard_label = config
        .shard
        .map_or(String::new(), |s| format!(" shard {}/{}", s.index, s.count));
    eprintln!(
        "sweep {} seeds {}..{}{shard_label}: {} runs on {} workers",
        clean(&input.path_shown),
        config.seeds.start,
        config.seeds.end,
        seeds.len(),
        config.jobs.min(seeds.len())
    );
    let mut progress = Progress::new(&input.scenario.name);
    let summaries: Vec<RunSummary> = run_seeds_until(
        &input.scenario,
        &seeds,
        config.jobs,
        &|seed| input.reproduce(seed),
        &|report| RunSummary::of(&report),
        &mut |done, total| progress.update(done, total),
        interrupt::flag(),
    )
    .map_err(|e| anyhow::anyhow!("{}: invalid scenario: {e}", input.path_shown))?;
    progress.finish();
    let elapsed_s = progress.elapsed().as_secs_f64();

    // The first failing seeds get full reports, and a shrunk counterexample where there is one. They
    // are rerun here: runs are deterministic, and keeping every report of a large sweep would cost
    // far more memory than rerunning a few.
    let mut result = SweepResult::new(
        &input.path_shown,
        &input.scenario,
        config.seeds,
        config.shard,
        summaries,
    );
    result.partial = interrupt::requested();
    let mut not_written: Option<anyhow::Error> = None;
    for seed in seeds_to_report(&result, config.shrink_max) {
        if interrupt::requested() {
            result.partial = true;
            break;
        }
        let mut report = judge_builtin_until(&input.scenario, seed, Some(interrupt::flag()))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if report.end == End::Interrupted {
            result.partial = true;
            break;
        }
        report.reproduce = input.reproduce(seed);
        let (shrunk, partial_note) =
            if matches!(report.verdict, Verdict::Converges | Verdict::BoundReached) {
                (None, None)
            } else {
                match shrink_unless_interrupted(&input.scenario, seed)
                    .with_context(|| format!("seed {seed}"))?
                {
                    Ok(shrunk) => (shrunk, None),
                    Err(note) => (None, Some(note)),
                }
            };
        result.partial |= partial_note.is_some();
        let files =
            match write_run_files(&config.output.dir, &report, shrunk.as_ref(), partial_note) {
                Ok(files) => files,
                Err(error) => {
                    not_written = Some(error);
                    break;
                }
            };
        if let (Some(shrunk), Some(path)) = (&shrunk, &files.minimal_scenario) {
            let shown = path.display().to_string();
            result.shrunk.push(ShrunkSeed {
                seed,
                verdict: shrunk.verdict,
                original: serde_json::to_value(shrunk.original)?,
                minimal: serde_json::to_value(shrunk.minimal)?,
                scripted: shrunk.scripted,
                reproduce: format!("converge run {} --seed {seed}", shell_quote(&shown)),
                scenario_file: Some(shown),
            });
        }
    }

    let mut name = format!(
        "{}-sweep-{}-{}",
        name_stem(&input.scenario.name),
        config.seeds.start,
        config.seeds.end
    );
    if let Some(shard) = config.shard {
        name.push_str(&format!("-shard{}of{}", shard.index, shard.count));
    }
    // The result is printed before it is written: a full disk must not hide it.
    let path = config.output.dir.join(format!("{name}.json"));
    print_result(
        &result,
        &config.output,
        Some(elapsed_s),
        &path,
        &config.output.dir.join("index.html"),
    )?;
    written_after_runs(not_written.map_or_else(
        || {
            write_sweep_result(&config.output.dir, &name, &result)?;
            write_index(&config.output.dir, None).map(drop)
        },
        Err,
    ))?;
    // A shard covers part of the range by design; only its own seeds decide its status. Under
    // an expectation of a bug, a shard none of whose seeds showed it has not failed: whether some
    // seed of the sweep did is for `converge merge` to judge.
    let bug_expected = result.scenario_spec.expect.verdict != Verdict::Converges;
    Ok(if result.partial {
        Status::Interrupted
    } else if result.expectation.met {
        Status::AllMet
    } else if config.shard.is_some() && bug_expected && !result.runs.iter().any(surprises) {
        eprintln!(
            "no seed of this shard showed the expected {}; the sweep's expectation is judged when \
             the shards are merged (converge merge)",
            verdict_phrase(result.scenario_spec.expect.verdict)
        );
        Status::AllMet
    } else {
        Status::SomeFailed
    })
}

/// A failure to write reports after the runs ended, said as such (exit status 3).
fn written_after_runs(written: Result<()>) -> Result<()> {
    written.context(
        "the runs ended and their result is printed above, but the reports could not all be written",
    )
}

/// The seeds that get full reports (and a shrunk counterexample): first the surprises, then, for a
/// scenario expected to show a bug, the first seeds that show it, as evidence.
fn seeds_to_report(result: &SweepResult, count: usize) -> Vec<u64> {
    let expected = result.scenario_spec.expect.verdict;
    let evidence = result
        .runs
        .iter()
        .filter(|r| expected != Verdict::Converges && r.verdict == expected);
    let mut seeds: Vec<u64> = result
        .runs
        .iter()
        .filter(|r| surprises(r))
        .map(|r| r.seed)
        .collect();
    seeds.extend(evidence.map(|r| r.seed));
    seeds.truncate(count);
    seeds
}

/// A merge passes when it covers every shard, every shard ran all its seeds, and the seeds
/// together met the expectation.
fn status_of(result: &SweepResult) -> Status {
    if result.expectation.met && result.complete && !result.partial {
        Status::AllMet
    } else {
        Status::SomeFailed
    }
}

/// Prints a sweep result: the document itself with `--json` (no timing in it, so that it is the
/// same for any `--jobs`), a summary otherwise.
fn print_result(
    result: &SweepResult,
    output: &Output,
    elapsed_s: Option<f64>,
    path: &Path,
    index: &Path,
) -> Result<()> {
    let failing: Vec<&RunSummary> = result.runs.iter().filter(|r| surprises(r)).collect();
    if output.json {
        say!("{}", super::terminal::json(result)?);
        if let Some(note) = result.partial_note() {
            eprintln!("Partial: {note}.");
        }
        for run in failing.iter().take(FAILING_SEEDS_SHOWN_MAX) {
            print_failure(run, true);
        }
        if let Some(elapsed_s) = elapsed_s {
            eprintln!("{}", rate_line(result.counts.runs, elapsed_s));
        }
        return Ok(());
    }
    let counts = &result.counts;
    say!("{}", clean(&summary_line(result)));
    if let Some(elapsed_s) = elapsed_s {
        say!("{}", rate_line(counts.runs, elapsed_s));
    }
    if let Some(note) = result.partial_note() {
        say!("Partial: {note}.");
    }
    if result.merged && !result.complete {
        say!(
            "incomplete: shards {} of {} are missing",
            joined(&result.missing_shards()),
            result.shard_count
        );
    }
    if result.merged && result.seeds_missing > 0 {
        say!(
            "incomplete: {} of the {} seeds of {}..{} have no run",
            result.seeds_missing,
            converge::sweep::seed_count(result.seeds, None),
            result.seeds.start,
            result.seeds.end
        );
    }
    for run in failing.iter().take(FAILING_SEEDS_SHOWN_MAX) {
        print_failure(run, false);
    }
    if failing.len() > FAILING_SEEDS_SHOWN_MAX {
        say!(
            "... and {} more surprising seeds (see {})",
            failing.len() - FAILING_SEEDS_SHOWN_MAX,
            clean(&path.display().to_string())
        );
    }
    for shrunk in &result.shrunk {
        say!(
            "seed {} shrunk to {} ({}): reproduce with {}",
            shrunk.seed,
            clean(shrunk.scenario_file.as_deref().unwrap_or("?")),
            shrunk.minimal,
            clean(&shrunk.reproduce)
        );
    }
    say!(
        "result: {}\nindex: {}",
        clean(&path.display().to_string()),
        clean(&index.display().to_string())
    );
    Ok(())
}

/// One line: the expectation met or not, why, and how many seeds ended with each verdict.
fn summary_line(result: &SweepResult) -> String {
    let counts = &result.counts;
    let verdicts: Vec<String> = counts
        .verdicts
        .iter()
        .map(|(v, n)| format!("{n} {}", v.replace('-', " ")))
        .collect();
    let shards = if result.shard_count > 1 {
        format!(
            ", shards {} of {}",
            joined(&result.shards),
            result.shard_count
        )
    } else {
        String::new()
    };
    format!(
        "{}: {} seeds {}..{}{shards}, expected {}: {} ({}); verdicts: {}{}",
        result.scenario,
        counts.runs,
        result.seeds.start,
        result.seeds.end,
        verdict_phrase(result.scenario_spec.expect.verdict),
        if result.expectation.met {
            "met"
        } else {
            "NOT met"
        },
        result.expectation.note,
        verdicts.join(", "),
        if counts.vacuous > 0 {
            format!("; {} vacuous runs", counts.vacuous)
        } else {
            String::new()
        }
    )
}

fn joined(numbers: &[u64]) -> String {
    numbers
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn rate_line(runs: u64, elapsed_s: f64) -> String {
    format!(
        "{runs} seeds in {elapsed_s:.2} s: {:.1} seeds/s",
        if elapsed_s > 0.0 {
            runs as f64 / elapsed_s
        } else {
            0.0
        }
    )
}

/// Sweep result files named by `inputs`: each directory's `*.json` files (sorted), or files
/// given directly. Files that are not sweep results, and earlier merges, are skipped.
fn sweep_files(inputs: &[PathBuf]) -> Result<Vec<(String, SweepResult)>> {
    let mut paths: Vec<PathBuf> = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(input)
                .with_context(|| format!("{}: cannot list", input.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("json"))
                .collect();
            found.sort();
            paths.extend(found);
        } else if input.is_file() {
            paths.push(input.clone());
        } else {
            bail!("{}: no such file or directory", input.display());
        }
    }
    let mut results = Vec::new();
    for path in paths {
        let shown = path.display().to_string();
        let text = read_report_file(&path)?;
        let value = match serde_json::from_str::<Value>(&text) {
            Ok(value) => value,
            // A file that says it is a sweep result (or is named like one) but does not parse is
            // a shard cut short (a full disk, a copy interrupted): merging without it would
            // report success on seeds that never ran.
            Err(error) if looks_like_sweep_result(&path, &text) => {
                bail!("{shown}: a sweep result that is not whole JSON (truncated?): {error}")
            }
            Err(_) => continue,
        };
        if value.get("kind").and_then(Value::as_str) != Some(SWEEP_KIND) {
            continue;
        }
        let result: SweepResult = serde_json::from_value(value)
            .map_err(|e| anyhow::anyhow!("{shown}: not a sweep result this version reads: {e}"))?;
        if !result.merged {
            results.push((shown, result));
        }
    }
    if results.is_empty() {
        bail!("no shard results (sweep result JSON files) found in the given paths");
    }
    Ok(results)
}

/// Whether a file that does not parse was meant to be a sweep result: its name is one `converge
/// sweep` gives, or its head holds the sweep kind (the first field a sweep result writes).
fn looks_like_sweep_result(path: &Path, text: &str) -> bool {
    let named = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.contains("-sweep-"));
    let head: String = text.chars().take(256).collect();
    named || head.contains(SWEEP_KIND)
}

pub fn merge(args: &MergeArgs) -> Result<Status> {
    let output = Output::from(&args.output);
    let parts = sweep_files(&args.inputs)?;
    let merged = merge_results(parts).map_err(anyhow::Error::msg)?;
    let name = format!(
        "{}-sweep-{}-{}-merged",
        name_stem(&merged.scenario),
        merged.seeds.start,
        merged.seeds.end
    );
    let path = output.dir.join(format!("{name}.json"));
    print_result(
        &merged,
        &output,
        None,
        &path,
        &output.dir.join("index.html"),
    )?;
    written_after_runs(
        write_sweep_result(&output.dir, &name, &merged)
            .and_then(|_| write_index(&output.dir, None).map(drop)),
    )?;
    Ok(status_of(&merged))
}
