//! The benchmark report: one JSON document (`reports/bench.json`) and the table printed next to it,
//! both made from the same [`BenchReport`] value, so that the human output and the stable JSON can
//! never disagree.
//!
//! The headline fields sit at the top level (`sim_events_per_sec`, `vs_skeleton`,
//! `alone_vs_skeleton`, `vs_turmoil`, `sweep_seeds_per_sec`, `sweep_speedup_2_threads`,
//! `mc_unique_states_per_sec`, `symmetry_reduction`, `protocol_seam`, `scaling`); `targets` says which targets each run met; the sections below them hold what each
//! number was computed from.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::fit::PowerFit;

/// Bumped whenever a field changes meaning or disappears.
pub const BENCH_SCHEMA_VERSION: u32 = 1;

/// The `kind` field, so that a reader can tell this document from a run report.
pub const BENCH_KIND: &str = "converge-bench";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    pub kind: String,
    pub schema_version: u32,
    /// `full` or `quick`.
    pub mode: String,
    /// Logical cores the operating system reported.
    pub cores: usize,
    /// Wall time of the whole benchmark run.
    pub wall_s: f64,
    /// The machine's 1-minute load average when the run started and ended: above 0.5 or so,
    /// something else was running and absolute numbers are low.
    pub load_average_start: Option<f64>,
    pub load_average_end: Option<f64>,

    /// Simulator events per second on one core, reference scenario, every oracle on.
    pub sim_events_per_sec: f64,
    /// Judged simulator speed over the skeleton simulator's (the practical ceiling: what any
    /// simulator of the workload must do).
    pub vs_skeleton: f64,
    /// The simulator alone (no observer) over the skeleton.
    pub alone_vs_skeleton: f64,
    /// Simulator speed over bare-loop speed for the same merges: no simulator comes near it
    /// (see the skeleton), so it is reported, not targeted.
    pub vs_bare_loop: f64,
    /// Turmoil's wall time over the simulator's for the same simulated workload.
    pub vs_turmoil: f64,
    /// Seeds per second of a sweep on all cores (2 worker threads).
    pub sweep_seeds_per_sec: f64,
    /// Seeds per second on 2 threads over seeds per second on 1.
    pub sweep_speedup_2_threads: f64,
    /// States per second of an exhaustive model check, revisits included (stateright's count,
    /// less the revisits a checker thread keeps back: `CheckReport::states`).
    pub mc_states_per_sec: f64,
    /// Unique states per second of the same check: the headline.
    pub mc_unique_states_per_sec: f64,
    /// Unique states without symmetry reduction over unique states with it.
    pub symmetry_reduction: f64,
    pub scaling: Scaling,
    /// A user's protocol against the built-in one, same workload, same decisions.
    pub protocol_seam: ProtocolSeamNumbers,

    pub targets: Vec<Target>,

    pub simulator: SimulatorNumbers,
    pub sweep: SweepNumbers,
    pub model_checker: ModelCheckerNumbers,
}

/// One target and whether this run met it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub metric: String,
    /// `>=` or `<=`.
    pub comparison: String,
    pub target: f64,
    pub measured: f64,
    pub met: bool,
}

impl Target {
    pub fn at_least(metric: &str, target: f64, measured: f64) -> Target {
        Target {
            metric: metric.to_string(),
            comparison: ">=".to_string(),
            target,
            measured,
            met: measured >= target,
        }
    }

    pub fn at_most(metric: &str, target: f64, measured: f64) -> Target {
        Target {
            metric: metric.to_string(),
            comparison: "<=".to_string(),
            target,
            measured,
            met: measured <= target,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimulatorNumbers {
    pub scenario: String,
    pub seeds: u64,
    /// Trace events of all judged runs.
    pub events: u64,
    pub writes: u64,
    pub merges: u64,
    /// All runs through the checker's judge, every oracle on.
    pub judged_wall_ms: f64,
    pub judged_events_per_sec: f64,
    /// The same runs with no observer: the simulator alone.
    pub simulator_only_wall_ms: f64,
    pub simulator_only_events_per_sec: f64,
    /// The bare loop over the same writes and merges.
    pub bare_loop_wall_ms: f64,
    /// Simulator-only speed over bare-loop speed.
    pub simulator_only_vs_bare_loop: f64,
    /// The skeleton simulator (`reference::skeleton_loop`: queue, random draws, snapshots and
    /// merges, nothing else) over the same seeds.
    pub skeleton: SkeletonNumbers,
    pub turmoil: TurmoilNumbers,
    /// What `vs_turmoil` compares, in a sentence.
    pub vs_turmoil_compares: String,
}

/// What simulating the reference workload costs at the least: the bare loop's ratio to the
/// skeleton bounds what any discrete-event simulator of it could reach.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SkeletonNumbers {
    pub events: u64,
    pub writes: u64,
    pub merges: u64,
    pub wall_ms: f64,
    pub events_per_sec: f64,
    /// The bare loop over the skeleton's own writes and merges.
    pub bare_loop_wall_ms: f64,
    /// Bare-loop wall time over skeleton wall time.
    pub vs_bare_loop: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TurmoilNumbers {
    pub version: String,
    pub seeds: u64,
    /// Events counted with the simulator's definition (write, send, delivery, drop, timer).
    pub events: u64,
    pub writes: u64,
    pub merges: u64,
    /// Turmoil steps (1 ms ticks) run.
    pub steps: u64,
    pub wall_ms: f64,
    pub events_per_sec: f64,
    /// The judged simulator's wall time over the same number of seeds.
    pub converge_wall_ms: f64,
    pub converge_events: u64,
}

/// What the protocol seam costs a user's protocol (see `measure::measure_protocol_seam`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProtocolSeamNumbers {
    pub scenario: String,
    pub seeds: u64,
    /// Events of each side's runs (the same on both).
    pub events: u64,
    pub builtin_wall_ms: f64,
    pub builtin_events_per_sec: f64,
    pub user_wall_ms: f64,
    pub user_events_per_sec: f64,
    /// The user protocol's speed over the built-in one's.
    pub user_vs_builtin: f64,
    /// Always true in a written report: different traces fail the run first.
    pub identical_traces: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepNumbers {
    pub scenario_file: String,
    pub seeds: u64,
    pub wall_ms_1_thread: f64,
    pub wall_ms_2_threads: f64,
    pub seeds_per_sec_1_thread: f64,
    pub seeds_per_sec_2_threads: f64,
    /// Always true in a written report: a mismatch fails the run before anything is written.
    pub identical_results: bool,
    /// Seeds whose verdict met the scenario's expectation.
    pub met_expectation: u64,
    /// CPU time over wall time of the kept runs: how many cores the sweep actually got. Below 2
    /// on 2 threads, something else was using the machine (or the workers waited).
    pub cores_busy_1_thread: Option<f64>,
    pub cores_busy_2_threads: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelCheckerNumbers {
    /// The configuration explored, in words.
    pub config: String,
    pub threads: u32,
    /// The complete exploration without symmetry: states evaluated (revisits included, as
    /// `CheckReport::states` counts them), unique states, wall time, and their quotient.
    pub states_without_symmetry: u64,
    pub unique_states_without_symmetry: u64,
    pub elapsed_ms_without_symmetry: u64,
    pub states_per_sec: f64,
    /// The same with symmetry reduction.
    pub states_with_symmetry: u64,
    pub unique_states_with_symmetry: u64,
    pub elapsed_ms_with_symmetry: u64,
    pub states_per_sec_with_symmetry: f64,
    pub symmetry_applied: bool,
    /// False if either run hit a bound (the counts are then lower bounds).
    pub complete: bool,
    /// CPU time of both explorations together, where the system tells it: on a machine shared
    /// with other work, wall time says less than this.
    #[serde(default)]
    pub cpu_ms: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scaling {
    pub replicas: ScalingSeries,
    pub events: ScalingSeries,
    /// The growth exponent of peak memory between the two longest runs of the events series:
    /// near 0 if memory is bounded, near 1 if it grows in proportion to events.
    pub peak_bytes_exponent_longest_runs: Option<f64>,
    /// `size_of::<UpdateRecord<LwwGrid>>()`: whole-state protocols keep the first
    /// `bounds.update_records_kept_max` records (op-based ones keep one per write).
    pub update_record_bytes: u64,
}

/// One series of runs of growing size, with the fitted growth exponents.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScalingSeries {
    /// What grows (`replicas` or `events`) and what stays fixed, in words.
    pub description: String,
    pub points: Vec<ScalingPoint>,
    /// Wall time against the growing quantity (simulator alone).
    pub wall_fit: Option<PowerFit>,
    /// Wall time with every oracle on, where measured.
    pub judged_wall_fit: Option<PowerFit>,
    /// Events against the growing quantity.
    pub events_fit: Option<PowerFit>,
    /// Peak heap bytes against the growing quantity.
    pub peak_bytes_fit: Option<PowerFit>,
    /// The exponent the protocol's message complexity predicts, and why.
    pub expected_exponent: f64,
    pub expected_because: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScalingPoint {
    pub replicas: u32,
    pub duration_s: f64,
    pub events: u64,
    pub writes: u64,
    pub messages_sent: u64,
    /// The simulator alone (no observer).
    pub wall_ms: f64,
    pub events_per_sec: f64,
    /// Peak heap bytes of the run above what was allocated before it.
    pub peak_bytes: u64,
    pub peak_bytes_per_event: f64,
    pub peak_bytes_per_write: f64,
    /// The same run with every oracle on; `None` where it was not measured (see `judged_note`).
    pub judged_wall_ms: Option<f64>,
    pub judged_peak_bytes: Option<u64>,
    pub judged_note: Option<String>,
}

/// Writes `contents` to `path` atomically: a temporary file beside it, then a rename, so that a
/// reader never sees half a report.
pub fn write_atomic(path: &Path, contents: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bench.json".to_string());
    let temporary = path.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
    {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(contents.as_bytes())?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, path)
}

fn millions(x: f64) -> String {
    format!("{:.2} M", x / 1e6)
}

fn mebibytes(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn exponent(fit: &Option<PowerFit>) -> String {
    fit.map_or("-".to_string(), |f| format!("{:.2}", f.exponent))
}

/// The human-readable table.
pub fn render_table(report: &BenchReport) -> String {
    let mut out = String::new();
    let s = &report.simulator;
    let t = &s.turmoil;
    let w = &report.sweep;
    let m = &report.model_checker;
    let load = |l: Option<f64>| l.map_or("-".to_string(), |l| format!("{l:.2}"));
    let _ = writeln!(
        out,
        "converge benchmarks ({} run, {} cores, {:.0} s; load average {} at the start, {} at the \
         end)",
        report.mode,
        report.cores,
        report.wall_s,
        load(report.load_average_start),
        load(report.load_average_end)
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "{:<34} {:>16}  from", "metric", "measured");
    let rows: Vec<(&str, String, String)> = vec![
        (
            "sim_events_per_sec",
            millions(report.sim_events_per_sec),
            format!(
                "{} events in {} seeds of the reference scenario, judged, {:.0} ms",
                s.events, s.seeds, s.judged_wall_ms
            ),
        ),
        (
            "  simulator alone, events/s",
            millions(s.simulator_only_events_per_sec),
            format!("same runs, no observer, {:.0} ms", s.simulator_only_wall_ms),
        ),
        (
            "vs_skeleton",
            format!("{:.3}", report.vs_skeleton),
            format!(
                "judged over the skeleton simulator's {}/s; alone_vs_skeleton {:.3}",
                millions(s.skeleton.events_per_sec),
                report.alone_vs_skeleton
            ),
        ),
        (
            "  vs_bare_loop (no target)",
            format!("{:.3}", report.vs_bare_loop),
            format!(
                "bare loop {:.0} ms for the same {} writes and {} merges (simulator alone: {:.3})",
                s.bare_loop_wall_ms, s.writes, s.merges, s.simulator_only_vs_bare_loop
            ),
        ),
        (
            "  skeleton simulator vs bare loop",
            format!("{:.3}", s.skeleton.vs_bare_loop),
            format!(
                "the least a simulator does (queue, random draws, snapshots, merges): {:.0} ms, \
                 {} events, {}/s; bare loop {:.0} ms for its {} writes and {} merges",
                s.skeleton.wall_ms,
                s.skeleton.events,
                millions(s.skeleton.events_per_sec),
                s.skeleton.bare_loop_wall_ms,
                s.skeleton.writes,
                s.skeleton.merges
            ),
        ),
        (
            "vs_turmoil",
            format!("{:.1}", report.vs_turmoil),
            format!(
                "turmoil {} {:.0} ms vs converge {:.0} ms for {} seed(s) of 60 s simulated",
                t.version, t.wall_ms, t.converge_wall_ms, t.seeds
            ),
        ),
        (
            "  turmoil events/s",
            millions(t.events_per_sec),
            format!("{} events (converge: {})", t.events, t.converge_events),
        ),
        (
            "sweep_seeds_per_sec",
            format!("{:.0}", report.sweep_seeds_per_sec),
            format!(
                "{} seeds of {} on 2 threads in {:.0} ms",
                w.seeds, w.scenario_file, w.wall_ms_2_threads
            ),
        ),
        (
            "sweep_speedup_2_threads",
            format!("{:.2}", report.sweep_speedup_2_threads),
            format!(
                "1 thread {:.0} seeds/s; cores busy {} / {}; per-seed hashes and verdicts \
                 identical: {}",
                w.seeds_per_sec_1_thread,
                load(w.cores_busy_1_thread),
                load(w.cores_busy_2_threads),
                w.identical_results
            ),
        ),
        (
            "mc_unique_states_per_sec",
            millions(report.mc_unique_states_per_sec),
            format!(
                "{} unique states ({} evaluated, {}/s) in {} ms on {} threads, complete \
                 exploration, no symmetry",
                m.unique_states_without_symmetry,
                m.states_without_symmetry,
                millions(report.mc_states_per_sec),
                m.elapsed_ms_without_symmetry,
                m.threads
            ),
        ),
        (
            "symmetry_reduction",
            format!("{:.2}", report.symmetry_reduction),
            format!(
                "{} unique states without, {} with (complete: {}); {}",
                m.unique_states_without_symmetry,
                m.unique_states_with_symmetry,
                m.complete,
                m.config
            ),
        ),
        (
            "protocol_seam",
            format!("{:.3}", report.protocol_seam.user_vs_builtin),
            format!(
                "a user's relay over the built-in one, same {} events ({}): {}/s against {}/s; \
                 identical traces: {}",
                report.protocol_seam.events,
                report.protocol_seam.scenario,
                millions(report.protocol_seam.user_events_per_sec),
                millions(report.protocol_seam.builtin_events_per_sec),
                report.protocol_seam.identical_traces
            ),
        ),
    ];
    for (metric, measured, from) in rows {
        let _ = writeln!(out, "{metric:<34} {measured:>16}  {from}");
    }
    if w.cores_busy_2_threads.is_some_and(|busy| busy < 1.8) {
        let _ = writeln!(
            out,
            "warning: the 2-thread sweep kept only {} cores busy: something else used the \
             machine, so its speedup says little about the sweep",
            load(w.cores_busy_2_threads)
        );
    }
    for series in [&report.scaling.replicas, &report.scaling.events] {
        let _ = writeln!(out);
        let _ = writeln!(out, "scaling: {}", series.description);
        let _ = writeln!(
            out,
            "{:>8} {:>10} {:>12} {:>10} {:>10} {:>11} {:>9} {:>9} {:>12} {:>11}",
            "replicas",
            "virtual s",
            "events",
            "wall ms",
            "M ev/s",
            "peak",
            "B/event",
            "B/write",
            "judged ms",
            "judged peak"
        );
        for p in &series.points {
            let _ = writeln!(
                out,
                "{:>8} {:>10.1} {:>12} {:>10.1} {:>10.2} {:>11} {:>9.1} {:>9.1} {:>12} {:>11}",
                p.replicas,
                p.duration_s,
                p.events,
                p.wall_ms,
                p.events_per_sec / 1e6,
                mebibytes(p.peak_bytes),
                p.peak_bytes_per_event,
                p.peak_bytes_per_write,
                p.judged_wall_ms
                    .map_or("-".to_string(), |ms| format!("{ms:.1}")),
                p.judged_peak_bytes.map_or("-".to_string(), mebibytes),
            );
        }
        let _ = writeln!(
            out,
            "fitted exponents: wall {} (judged {}), events {}, peak memory {}; expected {:.1}: {}",
            exponent(&series.wall_fit),
            exponent(&series.judged_wall_fit),
            exponent(&series.events_fit),
            exponent(&series.peak_bytes_fit),
            series.expected_exponent,
            series.expected_because
        );
        for note in series.points.iter().filter_map(|p| p.judged_note.as_ref()) {
            let _ = writeln!(out, "note: {note}");
        }
    }
    let _ = writeln!(
        out,
        "memory: peak grows with exponent {} between the two longest runs (0 = bounded, 1 = \
         linear in events); whole-state runs keep at most {} update records of {} bytes",
        report
            .scaling
            .peak_bytes_exponent_longest_runs
            .map_or("-".to_string(), |e| format!("{e:.2}")),
        converge_netsim::Bounds::default().update_records_kept_max,
        report.scaling.update_record_bytes
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<34} {:>16} {:>16}  met",
        "target", "wanted", "measured"
    );
    for target in &report.targets {
        let _ = writeln!(
            out,
            "{:<34} {:>16} {:>16}  {}",
            target.metric,
            format!("{} {}", target.comparison, compact(target.target)),
            compact(target.measured),
            if target.met { "yes" } else { "NO" }
        );
    }
    out
}

/// A number short enough for the targets table.
fn compact(x: f64) -> String {
    if x.abs() >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fit::fit_power_law;

    fn point(replicas: u32, events: u64, wall_ms: f64) -> ScalingPoint {
        ScalingPoint {
            replicas,
            duration_s: 60.0,
            events,
            writes: events / 10,
            messages_sent: events / 2,
            wall_ms,
            events_per_sec: events as f64 / wall_ms * 1e3,
            peak_bytes: 1 << 20,
            peak_bytes_per_event: (1 << 20) as f64 / events as f64,
            peak_bytes_per_write: (1 << 20) as f64 / (events / 10) as f64,
            judged_wall_ms: (replicas < 1000).then_some(wall_ms * 4.0),
            judged_peak_bytes: (replicas < 1000).then_some(1 << 21),
            judged_note: (replicas >= 1000).then(|| "not judged".to_string()),
        }
    }

    fn series(description: &str) -> ScalingSeries {
        let points = vec![
            point(10, 1_000, 1.0),
            point(100, 100_000, 100.0),
            point(1000, 10_000_000, 10_000.0),
        ];
        let fit = fit_power_law(&[(10.0, 1.0), (100.0, 100.0), (1000.0, 10_000.0)]);
        ScalingSeries {
            description: description.to_string(),
            points,
            wall_fit: fit,
            judged_wall_fit: fit,
            events_fit: fit,
            peak_bytes_fit: None,
            expected_exponent: 2.0,
            expected_because: "broadcast to every peer".to_string(),
        }
    }

    fn sample() -> BenchReport {
        let simulator = SimulatorNumbers {
            scenario: "reference".to_string(),
            seeds: 2,
            events: 60_000,
            writes: 6_000,
            merges: 24_000,
            judged_wall_ms: 20.0,
            judged_events_per_sec: 3e6,
            simulator_only_wall_ms: 10.0,
            simulator_only_events_per_sec: 6e6,
            bare_loop_wall_ms: 1.0,
            simulator_only_vs_bare_loop: 0.1,
            skeleton: SkeletonNumbers {
                events: 60_000,
                writes: 6_000,
                merges: 24_000,
                wall_ms: 4.0,
                events_per_sec: 15e6,
                bare_loop_wall_ms: 1.0,
                vs_bare_loop: 0.25,
            },
            turmoil: TurmoilNumbers {
                version: "0.7.2".to_string(),
                seeds: 1,
                events: 30_000,
                writes: 3_000,
                merges: 12_000,
                steps: 60_000,
                wall_ms: 400.0,
                events_per_sec: 75_000.0,
                converge_wall_ms: 10.0,
                converge_events: 30_000,
            },
            vs_turmoil_compares: "wall time per run".to_string(),
        };
        BenchReport {
            kind: BENCH_KIND.to_string(),
            schema_version: BENCH_SCHEMA_VERSION,
            mode: "quick".to_string(),
            cores: 2,
            wall_s: 30.0,
            load_average_start: Some(0.1),
            load_average_end: None,
            sim_events_per_sec: 3e6,
            vs_skeleton: 0.3,
            alone_vs_skeleton: 0.5,
            vs_bare_loop: 0.05,
            vs_turmoil: 40.0,
            sweep_seeds_per_sec: 1000.0,
            sweep_speedup_2_threads: 1.9,
            mc_states_per_sec: 5e5,
            mc_unique_states_per_sec: 3e5,
            symmetry_reduction: 6.0,
            protocol_seam: ProtocolSeamNumbers {
                scenario: "relay".to_string(),
                seeds: 5,
                events: 30_000,
                builtin_wall_ms: 10.0,
                builtin_events_per_sec: 3e6,
                user_wall_ms: 11.0,
                user_events_per_sec: 2.7e6,
                user_vs_builtin: 0.91,
                identical_traces: true,
            },
            scaling: Scaling {
                replicas: series("replicas grow"),
                events: series("events grow"),
                peak_bytes_exponent_longest_runs: Some(0.05),
                update_record_bytes: 96,
            },
            targets: vec![
                Target::at_least("sim_events_per_sec", 5e6, 3e6),
                Target::at_least("vs_turmoil", 20.0, 40.0),
            ],
            simulator,
            sweep: SweepNumbers {
                scenario_file: "scenarios/20-stress-swarm.toml".to_string(),
                seeds: 100,
                wall_ms_1_thread: 200.0,
                wall_ms_2_threads: 105.0,
                seeds_per_sec_1_thread: 500.0,
                seeds_per_sec_2_threads: 952.0,
                identical_results: true,
                met_expectation: 100,
                cores_busy_1_thread: Some(1.0),
                cores_busy_2_threads: Some(1.9),
            },
            model_checker: ModelCheckerNumbers {
                config: "grid".to_string(),
                threads: 2,
                states_without_symmetry: 1_000,
                unique_states_without_symmetry: 600,
                elapsed_ms_without_symmetry: 2,
                states_per_sec: 5e5,
                states_with_symmetry: 200,
                unique_states_with_symmetry: 100,
                elapsed_ms_with_symmetry: 1,
                states_per_sec_with_symmetry: 2e5,
                symmetry_applied: true,
                complete: true,
                cpu_ms: Some(6),
            },
        }
    }

    #[test]
    fn the_json_has_the_headline_fields_at_the_top_and_reads_back() {
        let report = sample();
        let json = serde_json::to_value(&report).expect("serializes");
        for field in [
            "kind",
            "schema_version",
            "mode",
            "sim_events_per_sec",
            "vs_skeleton",
            "alone_vs_skeleton",
            "vs_bare_loop",
            "vs_turmoil",
            "sweep_seeds_per_sec",
            "sweep_speedup_2_threads",
            "mc_states_per_sec",
            "mc_unique_states_per_sec",
            "symmetry_reduction",
            "protocol_seam",
            "scaling",
            "targets",
        ] {
            assert!(json.get(field).is_some(), "missing {field}");
        }
        assert_eq!(json["kind"], BENCH_KIND);
        assert!(json["scaling"]["replicas"]["points"].is_array());
        assert!(json["scaling"]["events"]["wall_fit"]["exponent"].is_number());
        assert_eq!(json["targets"][0]["met"], false);
        assert_eq!(json["targets"][1]["met"], true);
        let back: BenchReport = serde_json::from_value(json).expect("reads back");
        assert_eq!(back, report);
    }

    #[test]
    fn the_table_names_every_metric_and_every_target() {
        let table = render_table(&sample());
        for metric in [
            "sim_events_per_sec",
            "vs_skeleton",
            "alone_vs_skeleton",
            "vs_bare_loop",
            "vs_turmoil",
            "sweep_seeds_per_sec",
            "sweep_speedup_2_threads",
            "mc_unique_states_per_sec",
            "symmetry_reduction",
            "protocol_seam",
            "scaling: replicas grow",
            "scaling: events grow",
            "note: not judged",
            "memory: peak grows with exponent 0.05",
        ] {
            assert!(table.contains(metric), "{metric} missing from\n{table}");
        }
        assert!(table.contains("NO") && table.contains("yes"), "{table}");
    }

    #[test]
    fn a_report_is_written_whole_or_not_at_all() {
        let directory = std::env::temp_dir().join(format!("converge-bench-{}", std::process::id()));
        let path = directory.join("nested/bench.json");
        write_atomic(&path, "{\"a\": 1}\n").expect("writes");
        assert_eq!(
            std::fs::read_to_string(&path).expect("reads"),
            "{\"a\": 1}\n"
        );
        write_atomic(&path, "{\"a\": 2}\n").expect("replaces");
        assert_eq!(
            std::fs::read_to_string(&path).expect("reads"),
            "{\"a\": 2}\n"
        );
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().expect("parent"))
            .expect("lists")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        std::fs::remove_dir_all(&directory).expect("cleans up");
    }
}
