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

use converge_checker::judge::judge_builtin_until;
use converge_checker::{RunReport, Violation};
use converge_netsim::{End, Scenario, ScenarioError, Verdict};
use serde::{Deserialize, Serialize};

use crate::run_id::{run_id_of_merge, run_id_of_run, run_id_of_sweep, run_ids_of_runs};

/// The `kind` field of a sweep result document, so that `converge merge` can recognise one.
pub const SWEEP_KIND: &str = "converge-sweep";

/// Bumped whenever a field of [`SweepResult`] changes meaning or disappears.
pub const SWEEP_SCHEMA_VERSION: u32 = 2;

/// Seeds one sweep (or one shard) may run: a million. Every seed's summary stays in memory and in
/// the result file (about half a kilobyte each); a larger range is split with `--shard K/N`.
pub const SWEEP_SEEDS_MAX: u64 = 1_000_000;

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
    /// The run's id ([`crate::run_id`]): the same for this scenario and seed on every machine.
    #[serde(default)]
    pub run_id: String,
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
            run_id: run_id_of_run(&report.scenario_spec, report.seed),
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

/// Whether a sweep as a whole met its scenario's `[expect]` block. A scenario expected to converge
/// must converge on every seed. One expected to show a bug (diverge, not converge, lose writes)
/// meets it when some seed shows it, or at least `expect.seeds-share-min` of the seeds: such bugs
/// need a tie, a loss or an unlucky order, which many seeds do not draw.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepExpectation {
    pub met: bool,
    /// Seeds whose verdict is the expected one.
    pub seeds_expected_verdict: u64,
    /// The share of seeds required to show the expected verdict; `None`: every seed (a
    /// converging expectation) or at least one (any other).
    pub seeds_share_min: Option<f64>,
    /// The judgement in one sentence.
    pub note: String,
}

impl SweepExpectation {
    pub fn of(scenario: &Scenario, runs: &[RunSummary]) -> SweepExpectation {
        let expected = scenario.expect.verdict;
        let total = runs.len() as u64;
        let matching = runs.iter().filter(|r| r.verdict.meets(expected)).count() as u64;
        let share_min = scenario.expect.seeds_share_min;
        let phrase = verdict_name(expected).replace('-', " ");
        let (met, note) = if expected == Verdict::Converges {
            let met = runs.iter().all(|r| r.met_expectation);
            let failed = runs.iter().filter(|r| !r.met_expectation).count();
            let note = if met {
                format!("every one of {total} seeds converged as expected")
            } else {
                format!("{failed} of {total} seeds did not meet the expectation to converge")
            };
            (met, note)
        } else if let Some(share) = share_min {
            let needed = (share * total as f64).ceil() as u64;
            let met = total > 0 && matching >= needed.max(1);
            (
                met,
                format!(
                    "{matching} of {total} seeds ended {phrase}; at least {:.0}% ({needed}) were required",
                    share * 100.0
                ),
            )
        } else {
            (
                matching > 0,
                format!("{matching} of {total} seeds ended {phrase}; at least one was required"),
            )
        };
        SweepExpectation {
            met,
            seeds_expected_verdict: matching,
            seeds_share_min: share_min,
            note,
        }
    }
}

/// Whether one seed's result is a surprise worth a line of its own: a scenario expected to
/// converge that did not, or any verdict that is neither the expected one nor convergence (a
/// scenario expected to diverge that hit a bound, say). Seeds that converged where a bug was
/// expected are the common case, counted but not listed.
pub fn surprises(run: &RunSummary) -> bool {
    if run.expected == Verdict::Converges {
        !run.met_expectation
    } else {
        !run.verdict.meets(run.expected) && run.verdict != Verdict::Converges
    }
}

/// `expect.seeds-share-min` checked where only a sweep reads it: a share must lie in (0, 1].
pub fn check_seeds_share(scenario: &Scenario) -> Result<(), String> {
    match scenario.expect.seeds_share_min {
        Some(share) if !(share > 0.0 && share <= 1.0) => Err(format!(
            "key `expect.seeds-share-min`: expected a share of seeds above 0 and at most 1, found {share}"
        )),
        _ => Ok(()),
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
    /// The sweep's id ([`crate::run_id`]): version, scenario content, seed range and shard.
    #[serde(default)]
    pub run_id: String,
    /// Whether the sweep was interrupted (Ctrl-C) before it ran every seed or shrank every failing
    /// seed it meant to: `runs` then holds the seeds that finished, and counts cover only them.
    #[serde(default)]
    pub partial: bool,
    /// The seeds the sweep meant to run (this shard's, or the shards' merged).
    #[serde(default)]
    pub seeds_planned: u64,
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
    /// Whether the sweep as a whole met the scenario's expectation.
    pub expectation: SweepExpectation,
    /// Every run, in seed order.
    pub runs: Vec<RunSummary>,
    pub shrunk: Vec<ShrunkSeed>,
    /// Whether this result is the output of `converge merge` (which never merges it again).
    #[serde(default)]
    pub merged: bool,
    /// In a merge: the seeds of the whole range that no run covers, those of missing shards and
    /// those a partial shard did not reach (zero for a merge that is complete and whole). Zero in
    /// a shard's own result.
    #[serde(default)]
    pub seeds_missing: u64,
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
            run_id: run_id_of_sweep(scenario, seeds, shard),
            partial: false,
            seeds_planned: seed_count(seeds, shard),
            scenario: scenario.name.clone(),
            scenario_file: scenario_file.to_string(),
            scenario_spec: scenario.clone(),
            seeds,
            shard_count,
            complete: shards.len() as u64 == shard_count,
            shards,
            counts: VerdictCounts::of(&runs),
            expectation: SweepExpectation::of(scenario, &runs),
            runs,
            shrunk: Vec::new(),
            merged: false,
            seeds_missing: 0,
        }
    }
}

impl SweepResult {
    /// The median virtual time at which the seeds that converged did so.
    pub fn converged_median_ms(&self) -> Option<f64> {
        let mut times: Vec<f64> = self.runs.iter().filter_map(|r| r.converged_at_ms).collect();
        times.sort_by(f64::total_cmp);
        times.get(times.len() / 2).copied()
    }

    /// What a partial result covers, in words: "interrupted by the user after N of M seeds".
    pub fn partial_note(&self) -> Option<String> {
        self.partial.then(|| {
            if self.counts.runs < self.seeds_planned {
                format!(
                    "interrupted by the user after {} of {} seeds",
                    self.counts.runs, self.seeds_planned
                )
            } else {
                format!(
                    "interrupted by the user after all {} seeds, while shrinking failing seeds",
                    self.seeds_planned
                )
            }
        })
    }

    /// The shards of the split this result lacks.
    pub fn missing_shards(&self) -> Vec<u64> {
        (1..=self.shard_count)
            .filter(|k| !self.shards.contains(k))
            .collect()
    }
}

/// The first seed of `range` that `shard` owns, if any: computed, not searched, so that a shard of
/// a huge range costs nothing to find.
fn first_seed(range: SeedRange, shard: Option<Shard>) -> Option<u64> {
    let first = match shard {
        None => range.start,
        Some(shard) => {
            // In 128 bits, so that a shard count near the top of u64 cannot overflow.
            let count = u128::from(shard.count);
            let wanted = u128::from(shard.index - 1);
            let have = u128::from(range.start) % count;
            let ahead = ((wanted + count - have) % count) as u64;
            range.start.checked_add(ahead)?
        }
    };
    (first < range.end).then_some(first)
}

/// How many seeds of `range` `shard` owns, without listing them.
pub fn seed_count(range: SeedRange, shard: Option<Shard>) -> u64 {
    let step = shard.map_or(1, |s| s.count);
    first_seed(range, shard).map_or(0, |first| (range.end - 1 - first) / step + 1)
}

/// The seeds of `range` that `shard` owns (all of them without a shard). Callers check
/// [`seed_count`] against [`SWEEP_SEEDS_MAX`] first: this allocates one word per seed.
pub fn seeds_of(range: SeedRange, shard: Option<Shard>) -> Vec<u64> {
    let step = shard.map_or(1, |s| s.count);
    let Some(first) = first_seed(range, shard) else {
        return Vec::new();
    };
    let count = (range.end - 1 - first) / step + 1;
    (0..count).map(|i| first + i * step).collect()
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
    let never = AtomicBool::new(false);
    run_seeds_until(scenario, seeds, jobs, reproduce, keep, progress, &never)
}

/// [`run_seeds`], stopping once `interrupt` is raised (Ctrl-C): no further seed is started, runs
/// in progress stop within about a thousand events and are left out, and what is returned is the
/// seeds that finished, in seed order. The caller tells a partial result by the flag.
pub fn run_seeds_until<T: Send>(
    scenario: &Scenario,
    seeds: &[u64],
    jobs: usize,
    reproduce: &(dyn Fn(u64) -> String + Sync),
    keep: &(dyn Fn(RunReport) -> T + Sync),
    progress: &mut dyn FnMut(usize, usize),
    interrupt: &AtomicBool,
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
                    while !stop.load(Ordering::Relaxed) && !interrupt.load(Ordering::Relaxed) {
                        let position = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&seed) = seeds.get(position) else {
                            break;
                        };
                        match judge_builtin_until(scenario, seed, Some(interrupt)) {
                            // A run cut short by the interruption concludes nothing: it is not
                            // one of the seeds that finished.
                            Ok(report) if report.end == End::Interrupted => break,
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
        // Poll finely so that a short sweep (or an interrupted one) is not held up by the
        // progress interval.
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
    /// A shard whose own fields disagree: not what `converge sweep` wrote (edited, or written by
    /// another version).
    #[error("{file}: {problem}; it is not a shard result as converge {version} writes one (edited, or written by another version)", version = crate::run_id::CONVERGE_VERSION)]
    NotAShard { file: String, problem: String },
    /// A seed in a shard that does not belong there.
    #[error("{file}: seed {seed} {problem}")]
    Seed {
        file: String,
        seed: u64,
        problem: String,
    },
    /// A shard that is not partial but lacks some of its seeds.
    #[error("{file}: shard {shard}/{count} lacks {missing} of its {planned} seeds (the first: {first}) yet does not say it is partial")]
    MissingSeeds {
        file: String,
        shard: u64,
        count: u64,
        missing: u64,
        planned: u64,
        first: u64,
    },
}

/// Checks that one shard result is what `converge sweep` wrote for its scenario, seed range and
/// shard: its schema version, its run id, one shard of its split, its seed count, and every run a
/// distinct seed of that shard with that seed's run id, the counts those of its runs; and that a
/// shard which does not say it is partial holds every one of its seeds.
pub fn verify_shard(file: &str, part: &SweepResult) -> Result<(), MergeError> {
    let not_a_shard = |problem: String| MergeError::NotAShard {
        file: file.to_string(),
        problem,
    };
    if part.kind != SWEEP_KIND || part.schema_version != SWEEP_SCHEMA_VERSION {
        return Err(not_a_shard(format!(
            "kind {:?}, schema version {} (expected {SWEEP_KIND:?}, {SWEEP_SCHEMA_VERSION})",
            part.kind, part.schema_version
        )));
    }
    let [index] = part.shards[..] else {
        return Err(not_a_shard(format!(
            "it names shards {:?}; a shard result names exactly one",
            part.shards
        )));
    };
    let shard = Shard {
        index,
        count: part.shard_count,
    };
    if shard.count == 0 || !(1..=shard.count).contains(&index) {
        return Err(not_a_shard(format!(
            "shard {index}/{} does not exist",
            shard.count
        )));
    }
    // An unsharded sweep is shard 1/1 with the id of a sweep without --shard.
    let ids = [
        run_id_of_sweep(&part.scenario_spec, part.seeds, Some(shard)),
        run_id_of_sweep(&part.scenario_spec, part.seeds, None),
    ];
    if !ids[..1 + usize::from(shard.count == 1)].contains(&part.run_id) {
        return Err(not_a_shard(format!(
            "its run id {:?} is not the id of its scenario, seeds {}..{} and shard {index}/{} ({})",
            part.run_id, part.seeds.start, part.seeds.end, shard.count, ids[0]
        )));
    }
    let planned = seed_count(part.seeds, Some(shard));
    if part.seeds_planned != planned {
        return Err(not_a_shard(format!(
            "it plans {} seeds; shard {index}/{} of {}..{} has {planned}",
            part.seeds_planned, shard.count, part.seeds.start, part.seeds.end
        )));
    }
    if part.scenario != part.scenario_spec.name {
        return Err(not_a_shard(format!(
            "its scenario {:?} is not the name in its scenario_spec ({:?})",
            part.scenario, part.scenario_spec.name
        )));
    }
    let seed_error = |seed: u64, problem: String| MergeError::Seed {
        file: file.to_string(),
        seed,
        problem,
    };
    let mut seen: std::collections::BTreeSet<u64> = std::collections::BTreeSet::new();
    let run_id_of_seed = run_ids_of_runs(&part.scenario_spec);
    for run in &part.runs {
        let seed = run.seed;
        if !(part.seeds.start..part.seeds.end).contains(&seed) || !shard.owns(seed) {
            return Err(seed_error(
                seed,
                format!(
                    "is not a seed of shard {index}/{} of {}..{}",
                    shard.count, part.seeds.start, part.seeds.end
                ),
            ));
        }
        if !seen.insert(seed) {
            return Err(seed_error(seed, "appears twice".to_string()));
        }
        let expected = run_id_of_seed(seed);
        if run.run_id != expected {
            return Err(seed_error(
                seed,
                format!(
                    "has run id {:?}, not {expected}, the id of this scenario and seed: the run \
                     was edited or belongs to another run",
                    run.run_id
                ),
            ));
        }
    }
    if part.counts != VerdictCounts::of(&part.runs) {
        return Err(not_a_shard(
            "its counts are not those of its runs".to_string(),
        ));
    }
    let held = seen.len() as u64;
    if held < planned && !part.partial {
        let first = seeds_of(part.seeds, Some(shard))
            .into_iter()
            .find(|seed| !seen.contains(seed))
            .unwrap_or_default();
        return Err(MergeError::MissingSeeds {
            file: file.to_string(),
            shard: index,
            count: shard.count,
            missing: planned - held,
            planned,
            first,
        });
    }
    Ok(())
}

/// Joins shard results (each with the file it came from) into one sweep result. They must come from
/// the same scenario, the same seed range and shard count, and cover disjoint shards; a merge that
/// lacks some shards is allowed and says so (`complete: false`).
pub fn merge(parts: Vec<(String, SweepResult)>) -> Result<SweepResult, MergeError> {
    for (file, part) in &parts {
        verify_shard(file, part)?;
    }
    let mut parts = parts.into_iter();
    let (_, first) = parts.next().ok_or(MergeError::Empty)?;
    let spec = serde_json::to_value(&first.scenario_spec).unwrap_or_default();
    let mut merged = first;
    let (mut parts_partial, mut parts_planned) = (false, 0);
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
        parts_partial |= part.partial;
        parts_planned += part.seeds_planned;
        merged.shards.extend(part.shards);
        merged.runs.extend(part.runs);
        merged.shrunk.extend(part.shrunk);
    }
    merged.shards.sort_unstable();
    merged.partial = merged.partial || parts_partial;
    merged.seeds_planned += parts_planned;
    merged.run_id = run_id_of_merge(
        &merged.scenario_spec,
        merged.seeds,
        merged.shard_count,
        &merged.shards,
    );
    merged.runs.sort_by_key(|run| run.seed);
    merged.shrunk.sort_by_key(|shrunk| shrunk.seed);
    merged.complete = merged.shards.len() as u64 == merged.shard_count;
    merged.seeds_missing = seed_count(merged.seeds, None).saturating_sub(merged.runs.len() as u64);
    merged.merged = true;
    merged.counts = VerdictCounts::of(&merged.runs);
    merged.expectation = SweepExpectation::of(&merged.scenario_spec, &merged.runs);
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
    fn seed_counts_and_lists_agree_without_scanning_the_range() {
        for (start, end) in [(0, 0), (0, 1), (3, 40), (5, 6), (7, 7), (10, 3)] {
            let range = SeedRange { start, end };
            for shard in [
                None,
                Shard::parse("1/3"),
                Shard::parse("3/3"),
                Shard::parse("2/7"),
            ] {
                let slow: Vec<u64> = (start..end)
                    .filter(|seed| shard.is_none_or(|s| s.owns(*seed)))
                    .collect();
                assert_eq!(seeds_of(range, shard), slow, "{range:?} {shard:?}");
                assert_eq!(seed_count(range, shard), slow.len() as u64);
            }
        }
        let huge = SeedRange {
            start: 0,
            end: u64::MAX,
        };
        assert_eq!(seed_count(huge, None), u64::MAX);
        assert_eq!(
            seed_count(huge, Shard::parse("1/1000000")),
            u64::MAX / 1_000_000 + 1
        );
        let top = SeedRange {
            start: u64::MAX - 2,
            end: u64::MAX,
        };
        assert_eq!(
            seeds_of(top, Shard::parse("1/2")).len() as u64,
            seed_count(top, Shard::parse("1/2"))
        );
    }

    #[test]
    fn shard_parsing_refuses_what_is_not_k_of_n() {
        assert_eq!(Shard::parse("2/3"), Some(Shard { index: 2, count: 3 }));
        for bad in ["0/3", "4/3", "1/0", "1", "a/b", "1/3/5"] {
            assert_eq!(Shard::parse(bad), None, "{bad}");
        }
    }
}
