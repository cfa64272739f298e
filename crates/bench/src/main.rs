//! `converge-bench`: runs every measurement, prints the table on stdout, progress on stderr, and
//! writes `reports/bench.json` atomically.
//!
//! Usage: `cargo run --release -p converge-bench [-- --quick] [-- --out PATH]`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use converge_bench::alloc::CountingAllocator;
use converge_bench::measure::{
    load_average_1_min, long_scenario, measure_event_scaling, measure_model_checker,
    measure_protocol_seam, measure_replica_scaling, measure_simulator, measure_sweep,
    peak_bytes_exponent_longest_runs, replica_scenario, Plan, Progress,
};
use converge_bench::reference::{reference_scenario, simulate, simulate_judged};
use converge_bench::report::{
    render_table, write_atomic, BenchReport, Scaling, Target, BENCH_KIND, BENCH_SCHEMA_VERSION,
};
use converge_bench::turmoil_grid::{run_turmoil, TurmoilWorkload};
use converge_checker::model::{unique_states_with_and_without_symmetry, CheckConfig, Symmetry};
use converge_crdt::LwwGrid;
use converge_netsim::{SimDuration, UpdateRecord};

/// Peak memory in the scaling series is read from this allocator's counters.
#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

const USAGE: &str = "usage: converge-bench [--quick] [--out PATH]
       converge-bench --profile-reference SECONDS [--engine judged|alone|turmoil] [--virtual-s V]
                      [--replicas N] [--seeds N]
       converge-bench --profile-model-checker THREADS

Measures simulator events per second (against a bare loop and turmoil), sweep seeds per second on
1 and 2 threads, model-checker states per second and symmetry reduction, and growth with replicas
and events. Prints a table and writes PATH (default: reports/bench.json in the workspace).

  --quick     a smaller run, under a minute
  --out PATH  where to write the JSON report

  --profile-reference SECONDS
              only run seeds of the reference scenario, one after another, for SECONDS, so that
              `perf record` sees nothing else. --engine judged (the default) runs them with every
              oracle on, alone with no observer, turmoil on turmoil; --virtual-s V makes each
              run last V virtual seconds instead of 60; --replicas N runs the replica-scaling
              scenario with N replicas instead (each writes once per virtual second for 5 s);
              --seeds N stops after N seeds (seeds 0..N), so that two instruction counts of
              different builds cover the same runs

  --profile-model-checker THREADS
              only explore the model checker's benchmark configuration once, without symmetry,
              on THREADS threads, and print its unique states per second";

/// The value after `flag`, parsed; `what` names it in the error when it is missing.
fn value<T>(args: &mut impl Iterator<Item = String>, flag: &str, what: &str) -> Result<T>
where
    T: std::str::FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    let text = args
        .next()
        .with_context(|| format!("{flag} needs {what}"))?;
    text.parse().with_context(|| format!("{flag} {text:?}"))
}

/// What `--profile-reference` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Engine {
    Judged,
    Alone,
    Turmoil,
}

struct Options {
    quick: bool,
    out: PathBuf,
    profile_reference_s: Option<f64>,
    engine: Engine,
    virtual_s: Option<u64>,
    replicas: Option<u32>,
    /// With `--profile-reference`: stop after this many seeds, whatever the time.
    seeds_max: Option<u64>,
    /// With `--profile-model-checker`: the checker threads.
    profile_model_checker_threads: Option<u32>,
}

/// The workspace root, found from this crate's manifest so that the binary works from any
/// directory.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from("."))
}

fn parse_options(workspace: &Path) -> Result<Option<Options>> {
    let mut options = Options {
        quick: false,
        out: workspace.join("reports/bench.json"),
        profile_reference_s: None,
        engine: Engine::Judged,
        virtual_s: None,
        replicas: None,
        seeds_max: None,
        profile_model_checker_threads: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => options.quick = true,
            "--out" => {
                options.out = PathBuf::from(args.next().context("--out needs a path")?);
            }
            "--profile-reference" => {
                options.profile_reference_s =
                    Some(value(&mut args, "--profile-reference", "seconds")?)
            }
            "--engine" => {
                options.engine = match args.next().as_deref() {
                    Some("judged") => Engine::Judged,
                    Some("alone") => Engine::Alone,
                    Some("turmoil") => Engine::Turmoil,
                    other => bail!("--engine takes judged, alone or turmoil, not {other:?}"),
                };
            }
            "--virtual-s" => options.virtual_s = Some(value(&mut args, "--virtual-s", "seconds")?),
            "--replicas" => options.replicas = Some(value(&mut args, "--replicas", "a count")?),
            "--seeds" => options.seeds_max = Some(value(&mut args, "--seeds", "a count")?),
            "--profile-model-checker" => {
                options.profile_model_checker_threads = Some(value(
                    &mut args,
                    "--profile-model-checker",
                    "a thread count",
                )?)
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            // Cargo passes `--bench` when the binary is run as a bench target.
            "--bench" => {}
            other => bail!("unknown argument {other:?}\n\n{USAGE}"),
        }
    }
    Ok(Some(options))
}

/// Runs reference seeds back to back for `seconds`, so that a profiler sees nothing else.
fn profile_reference(options: &Options, seconds: f64) -> Result<()> {
    let engine = options.engine;
    let scenario = match (options.replicas, options.virtual_s) {
        (Some(replicas), _) => replica_scenario(replicas, 5, 1.0),
        (None, Some(virtual_s)) => long_scenario(SimDuration::from_secs(virtual_s)),
        (None, None) => reference_scenario(),
    };
    let workload = TurmoilWorkload::of(&scenario).map_err(anyhow::Error::msg)?;
    let started = Instant::now();
    let mut events = 0u64;
    let mut seed = 0u64;
    let seeds_max = options.seeds_max.unwrap_or(u64::MAX);
    while started.elapsed().as_secs_f64() < seconds && seed < seeds_max {
        events += match engine {
            Engine::Judged => simulate_judged(&scenario, seed)?.report.events,
            Engine::Alone => simulate(&scenario, seed)?.events,
            Engine::Turmoil => run_turmoil(&workload, seed)
                .map_err(anyhow::Error::msg)?
                .counts
                .events(),
        };
        seed += 1;
    }
    let wall_s = started.elapsed().as_secs_f64();
    eprintln!(
        "{seed} seeds of {} ({engine:?}): {events} events in {wall_s:.1} s, {:.2} M events/s",
        scenario.name,
        events as f64 / wall_s / 1e6
    );
    Ok(())
}

/// Explores the benchmark's model-checker configuration once, so that a profiler sees nothing else.
fn profile_model_checker(workspace: &Path, threads: u32) -> Result<()> {
    let config = CheckConfig {
        threads,
        symmetry: Symmetry::Off,
        ..Plan::full(workspace).mc
    };
    let space = unique_states_with_and_without_symmetry(&config).map_err(anyhow::Error::msg)?;
    let elapsed_s = space.elapsed_ms_without_symmetry.max(1) as f64 / 1e3;
    eprintln!(
        "{} unique states ({} evaluated) in {elapsed_s:.2} s on {threads} thread(s): {:.3} M unique \
         states/s (complete: {})",
        space.without_symmetry,
        space.states_without_symmetry,
        space.without_symmetry as f64 / elapsed_s / 1e6,
        space.complete
    );
    Ok(())
}

fn main() -> Result<()> {
    let workspace = workspace();
    let Some(options) = parse_options(&workspace)? else {
        return Ok(());
    };
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; numbers mean little without --release");
    }
    if let Some(seconds) = options.profile_reference_s {
        return profile_reference(&options, seconds);
    }
    if let Some(threads) = options.profile_model_checker_threads {
        return profile_model_checker(&workspace, threads);
    }
    let plan = if options.quick {
        Plan::quick(&workspace)
    } else {
        Plan::full(&workspace)
    };
    let progress = Progress::new();
    let load_average_start = load_average_1_min();
    progress.line(&format!(
        "converge-bench, {} run; report to {}; load average {}",
        plan.mode,
        options.out.display(),
        load_average_start.map_or("unknown".to_string(), |l| format!("{l:.2}"))
    ));
    if load_average_start.is_some_and(|l| l > 0.5) {
        progress.line("the machine is busy: absolute numbers will be low and ratios noisy");
    }

    let simulator = measure_simulator(&plan, &progress)?;
    let protocol_seam = measure_protocol_seam(&plan, &progress)?;
    let sweep = measure_sweep(&plan, &workspace, &progress)?;
    let model_checker = measure_model_checker(&plan, &progress)?;
    let replicas = measure_replica_scaling(&plan, &progress)?;
    let events = measure_event_scaling(&plan, &progress)?;

    let vs_bare_loop = simulator.bare_loop_wall_ms / simulator.judged_wall_ms;
    let vs_skeleton = simulator.judged_events_per_sec / simulator.skeleton.events_per_sec;
    let alone_vs_skeleton =
        simulator.simulator_only_events_per_sec / simulator.skeleton.events_per_sec;
    let mc_unique_states_per_sec = model_checker.unique_states_without_symmetry as f64
        / (model_checker.elapsed_ms_without_symmetry.max(1) as f64 / 1e3);
    let vs_turmoil = simulator.turmoil.wall_ms / simulator.turmoil.converge_wall_ms;
    let sweep_speedup = sweep.seeds_per_sec_2_threads / sweep.seeds_per_sec_1_thread;
    let symmetry_reduction = model_checker.unique_states_without_symmetry as f64
        / model_checker.unique_states_with_symmetry.max(1) as f64;
    let memory_exponent = peak_bytes_exponent_longest_runs(&events);
    let targets = vec![
        Target::at_least("sim_events_per_sec", 5e6, simulator.judged_events_per_sec),
        Target::at_least("vs_turmoil", 20.0, vs_turmoil),
        Target::at_least("sweep_speedup_2_threads", 1.8, sweep_speedup),
        Target::at_least(
            "mc_unique_states_per_sec (2 threads)",
            1e6,
            mc_unique_states_per_sec,
        ),
        Target::at_least("symmetry_reduction (3 replicas)", 4.0, symmetry_reduction),
        // Bounded memory: ten times the events may cost at most 10^0.2 = 1.6 times the memory.
        Target::at_most(
            "peak memory exponent, longest runs",
            0.2,
            memory_exponent.unwrap_or(f64::INFINITY),
        ),
    ];
    let report = BenchReport {
        kind: BENCH_KIND.to_string(),
        schema_version: BENCH_SCHEMA_VERSION,
        mode: plan.mode.to_string(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        wall_s: progress.elapsed().as_secs_f64(),
        load_average_start,
        load_average_end: load_average_1_min(),
        sim_events_per_sec: simulator.judged_events_per_sec,
        vs_skeleton,
        alone_vs_skeleton,
        vs_bare_loop,
        vs_turmoil,
        sweep_seeds_per_sec: sweep.seeds_per_sec_2_threads,
        sweep_speedup_2_threads: sweep_speedup,
        mc_states_per_sec: model_checker.states_per_sec,
        mc_unique_states_per_sec,
        symmetry_reduction,
        protocol_seam,
        scaling: Scaling {
            replicas,
            events,
            peak_bytes_exponent_longest_runs: memory_exponent,
            update_record_bytes: std::mem::size_of::<UpdateRecord<LwwGrid>>() as u64,
        },
        targets,
        simulator,
        sweep,
        model_checker,
    };
    println!("{}", render_table(&report));
    let json = serde_json::to_string_pretty(&report)? + "\n";
    write_atomic(&options.out, &json)
        .with_context(|| format!("writing {}", options.out.display()))?;
    progress.line(&format!("wrote {}", options.out.display()));
    Ok(())
}
