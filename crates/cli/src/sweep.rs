//! Sweeps: one scenario over many seeds, on worker threads, and the merging of sharded sweeps.
//!
//! Workers pull seed positions from one atomic counter, so a slow seed never holds up the others;
//! results are put back in seed order before anything is printed or written, which makes a sweep's
//! output a function of its seeds alone, identical for any `--jobs`. A shard `K/N` owns the seeds
//! with `seed % N == K - 1` (striding rather than contiguous blocks, so that every shard gets a fair
//! share of slow and fast regions of the seed space); the merge of all `N` shard results equals
//! the sweep of the whole range.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use converge_checker::{judge_builtin, RunReport, Violation};
use converge_netsim::{Scenario, ScenarioError, Verdict};
use serde::{Deserialize, Serialize};

/// The `kind` field of a sweep result document, so that `converge merge` can recognise one.
pub const SWEEP_KIND: &str = "converge-sweep";

/// Bumped whenever a field of [`SweepResult`] changes meaning or disappears.
pub const SWEEP_SCHEMA_VERSION: u32 = 1;

/// Message counters of one run (a copy of the simulator's, readable back from JSON).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageCounts {
    pub sent: u64,
    pub delivered: u64,
    pub dropped: u64,
    pub duplicated: u64,
    pub bytes_sent: u64,
}

/// The fields `--json` shows for every run, and what a sweep keeps per seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub scenario: String,
    pub seed: u64,
    pub verdict: Verdict,
    pub expected: Verdict,
    pub met_expectation: bool,
    pub trace_hash: String,
    pub converged_at_ms: Option<f64>,
    pub events: u64,
    pub updates: u64,
    pub messages: MessageCounts,
    /// Concurrent writes to one key the run exercised; zero makes a clean verdict vacuous.
    pub conflicts: u64,
    pub vacuous: bool,
    pub violations: Vec<Violation>,
    /// One command that reproduces this run.
    pub reproduce: String,
}

impl RunSummary {
    pub fn of(report: &RunReport) -> RunSummary {
        let messages = report.messages;
        RunSummary {
            scenario: report.scenario.clone(),
            seed: report.seed,
            verdict: report.verdict,
            expected: report.expected,
            met_expectation: report.met_expectation,
            trace_hash: report.trace_hash.clone(),
            converged_at_ms: report.converged_at_ms,
            events: report.events,
            updates: report.updates,
            messages: MessageCounts {
                sent: messages.sent,
                delivered: messages.delivered,
                dropped: messages.dropped,
                duplicated: messages.duplicated,
                bytes_sent: messages.bytes_sent,
            },
            conflicts: report.coverage.coverage.concurrent_writes_same_key,
            vacuous: report.coverage.vacuous,
            violations: report.violations.clone(),
            reproduce: report.reproduce.clone(),
        }
    }
}

/// A shard `K/N`: the seeds with `seed % N == K - 1`. `K` counts from 1, as CI matrices and
/// Kubernetes indexed jobs (plus one) do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    /// Parses `K/N` with `1 <= K <= N`.
    pub fn parse(text: &str) -> Option<Shard> {
        let (index, count) = text.trim().split_once('/')?;
        let shard = Shard {
            index: index.trim().parse().ok()?,
            count: count.trim().parse().ok()?,
        };
        (shard.count >= 1 && (1..=shard.count).contains(&shard.index)).then_some(shard)
    }

    pub fn owns(&self, seed: u64) -> bool {
        seed % self.count == self.index - 1
    }
}

/// A seed range `start..end`, end exclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedRange {
    pub start: u64,
    pub end: u64,
}

impl SeedRange {
    pub fn as_range(&self) -> Range<u64> {
        self.start..self.end
    }
}

/// How many runs ended with each verdict, and how many met the expectation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictCounts {
    pub runs: u64,
    pub met_expectation: u64,
    pub failed_expectation: u64,
    pub vacuous: u64,
    /// Verdict (kebab-case) to number of runs.
    pub verdicts: BTreeMap<String, u64>,
}

impl VerdictCounts {
    pub fn of(runs: &[RunSummary]) -> VerdictCounts {
        let mut counts = VerdictCounts::default();
        for run in runs {
            counts.runs += 1;
            if run.met_expectation {
                counts.met_expectation += 1;
            } else {
                counts.failed_expectation += 1;
            }
            if run.vacuous {
                counts.vacuous += 1;
            }
            *counts
                .verdicts
                .entry(verdict_name(run.verdict))
                .or_default() += 1;
        }
        counts
    }
}

/// A verdict as written in files: `converges`, `not-converged`, ...
pub fn verdict_name(verdict: Verdict) -> String {
    serde_json::to_value(verdict)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{verdict:?}"))
}

/// A shrunk failing seed, as a sweep reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShrunkSeed {
    pub seed: u64,
    pub verdict: Verdict,
    /// Replicas, writes, faults and messages of the original run and of the minimal one.
    pub original: serde_json::Value,
    pub minimal: serde_json::Value,
    pub scripted: bool,
    /// Where the minimal scenario was written, relative to the working directory.
    pub scenario_file: Option<String>,
    pub reproduce: String,
}

/// What a sweep (or one shard of it, or a merge of shards) found. Everything in it depends on the
/// scenario and the seeds alone: timing is printed, never stored here.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepResult {
    pub kind: String,
    pub schema_version: u32,
    pub scenario: String,
    /// The scenario file as given on the command line.
    pub scenario_file: String,
    pub scenario_spec: Scenario,
    pub seeds: SeedRange,
    /// Shard count; 1 for an unsharded sweep.
    pub shard_count: u64,
    /// The shards (1-based) this result covers, ascending.
    pub shards: Vec<u64>,
    /// Whether every shard of the range is present.
    pub complete: bool,
    pub counts: VerdictCounts,
    /// Every run, in seed order.
    pub runs: Vec<RunSummary>,
    pub shrunk: Vec<ShrunkSeed>,
    /// Whether this result is the output of `converge merge` (which never merges it again).
    #[serde(default)]
    pub merged: bool,
}

impl SweepResult {
    pub fn new(
        scenario_file: &str,
        scenario: &Scenario,
        seeds: SeedRange,
        shard: Option<Shard>,
        runs: Vec<RunSummary>,
    ) -> SweepResult {
        let (shard_count, shards) = match shard {
            Some(shard) => (shard.count, vec![shard.index]),
            None => (1, vec![1]),
        };
        SweepResult {
            kind: SWEEP_KIND.to_string(),
            schema_version: SWEEP_SCHEMA_VERSION,
            scenario: scenario.name.clone(),
            scenario_file: scenario_file.to_string(),
            scenario_spec: scenario.clone(),
            seeds,
            shard_count,
            complete: shards.len() as u64 == shard_count,
            shards,
            counts: VerdictCounts::of(&runs),
            runs,
            shrunk: Vec::new(),
            merged: false,
        }
    }
}

impl SweepResult {
    /// The shards of the split this result lacks.
    pub fn missing_shards(&self) -> Vec<u64> {
        (1..=self.shard_count)
            .filter(|k| !self.shards.contains(k))
            .collect()
    }
}

/// The seeds of `range` that `shard` owns (all of them without a shard).
pub fn seeds_of(range: SeedRange, shard: Option<Shard>) -> Vec<u64> {
    range
        .as_range()
        .filter(|seed| shard.is_none_or(|s| s.owns(*seed)))
        .collect()
}

/// How often the progress callback is called while a sweep runs.
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// Runs `scenario` for every seed on `jobs` worker threads and returns what `keep` makes of each
/// report, in seed order. `keep` runs on the worker, so that a sweep of many seeds holds summaries
/// rather than whole reports (each carries up to thousands of trace events). `reproduce` gives each
/// run its reproduce command; `progress(done, total)` is called from the calling thread every
/// [`PROGRESS_INTERVAL`] and once at the end. The first run that cannot start (an invalid
/// scenario) stops the sweep.
pub fn run_seeds<T: Send>(
    scenario: &Scenario,
    seeds: &[u64],
    jobs: usize,
    reproduce: &(dyn Fn(u64) -> String + Sync),
    keep: &(dyn Fn(RunReport) -> T + Sync),
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<T>, ScenarioError> {
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let first_error: Mutex<Option<ScenarioError>> = Mutex::new(None);
    let jobs = jobs.clamp(1, seeds.len().max(1));
    let mut results: Vec<(usize, T)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..jobs)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let position = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&seed) = seeds.get(position) else {
                            break;
                        };
                        match judge_builtin(scenario, seed) {
                            Ok(mut report) => {
                                report.reproduce = reproduce(seed);
                                mine.push((position, keep(report)));
                            }
                            Err(error) => {
                                stop.store(true, Ordering::Relaxed);
                                first_error
                                    .lock()
                                    .unwrap_or_else(|e| e.into_inner())
                                    .get_or_insert(error);
                            }
                        }
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    mine
                })
            })
            .collect();
        // Poll finely so that a short sweep is not held up by the progress interval.
        let mut last_report = std::time::Instant::now();
        while !workers.iter().all(|w| w.is_finished()) {
            if last_report.elapsed() >= PROGRESS_INTERVAL {
                progress(done.load(Ordering::Relaxed), seeds.len());
                last_report = std::time::Instant::now();
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        workers
            .into_iter()
            .flat_map(|w| {
                w.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    progress(done.load(Ordering::Relaxed), seeds.len());
    if let Some(error) = first_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(error);
    }
    results.sort_by_key(|(position, _)| *position);
    Ok(results.into_iter().map(|(_, kept)| kept).collect())
}

/// Why shard results could not be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("no sweep results to merge")]
    Empty,
    #[error("{file} is a sweep of scenario {found:?}, the others of {expected:?} (or the scenario changed between shards)")]
    DifferentScenario {
        file: String,
        expected: String,
        found: String,
    },
    #[error("{file} covers seeds {found_start}..{found_end} in {found_count} shards, the others {expected_start}..{expected_end} in {expected_count}")]
    DifferentSplit {
        file: String,
        expected_start: u64,
        expected_end: u64,
        expected_count: u64,
        found_start: u64,
        found_end: u64,
        found_count: u64,
    },
    #[error("shard {shard}/{count} appears twice (again in {file})")]
    Overlap {
        shard: u64,
        count: u64,
        file: String,
    },
}

/// Joins shard results (each with the file it came from) into one sweep result. They must come from
/// the same scenario, the same seed range and shard count, and cover disjoint shards; a merge that
/// lacks some shards is allowed and says so (`complete: false`).
pub fn merge(parts: Vec<(String, SweepResult)>) -> Result<SweepResult, MergeError> {
    let mut parts = parts.into_iter();
    let (_, first) = parts.next().ok_or(MergeError::Empty)?;
    let spec = serde_json::to_value(&first.scenario_spec).unwrap_or_default();
    let mut merged = first;
    for (file, part) in parts {
        if serde_json::to_value(&part.scenario_spec).unwrap_or_default() != spec {
            return Err(MergeError::DifferentScenario {
                file,
                expected: merged.scenario.clone(),
                found: part.scenario.clone(),
            });
        }
        if part.seeds != merged.seeds || part.shard_count != merged.shard_count {
            return Err(MergeError::DifferentSplit {
                file,
                expected_start: merged.seeds.start,
                expected_end: merged.seeds.end,
                expected_count: merged.shard_count,
                found_start: part.seeds.start,
                found_end: part.seeds.end,
                found_count: part.shard_count,
            });
        }
        if let Some(shard) = part.shards.iter().find(|s| merged.shards.contains(s)) {
            return Err(MergeError::Overlap {
                shard: *shard,
                count: merged.shard_count,
                file,
            });
        }
        merged.shards.extend(part.shards);
        merged.runs.extend(part.runs);
        merged.shrunk.extend(part.shrunk);
    }
    merged.shards.sort_unstable();
    merged.runs.sort_by_key(|run| run.seed);
    merged.shrunk.sort_by_key(|shrunk| shrunk.seed);
    merged.complete = merged.shards.len() as u64 == merged.shard_count;
    merged.merged = true;
    merged.counts = VerdictCounts::of(&merged.runs);
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_the_seeds() {
        let range = SeedRange { start: 3, end: 40 };
        let mut all: Vec<u64> = (1..=4)
            .flat_map(|k| seeds_of(range, Shard::parse(&format!("{k}/4"))))
            .collect();
        all.sort_unstable();
        assert_eq!(all, seeds_of(range, None));
    }

    #[test]
    fn shard_parsing_refuses_what_is_not_k_of_n() {
        assert_eq!(Shard::parse("2/3"), Some(Shard { index: 2, count: 3 }));
        for bad in ["0/3", "4/3", "1/0", "1", "a/b", "1/3/5"] {
            assert_eq!(Shard::parse(bad), None, "{bad}");
        }
    }
}
