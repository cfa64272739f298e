//! The command line as clap sees it, and its one conversion into validated configurations: every
//! raw argument is checked here (files parsed, ranges and shards validated), so that the commands
//! never see a string they have to interpret.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use converge::netsim::Scenario;
use converge::scenario_file;
use converge::sweep::{seed_count, SeedRange, Shard, SWEEP_SEEDS_MAX};

/// Worker threads a sweep may ask for: more threads than this buy nothing on any machine, and
/// asking the system for a million fails.
pub const JOBS_MAX: usize = 1_024;

/// Exit statuses, shown under every command's help.
pub const EXIT_STATUS_HELP: &str = "Exit status: 0 every run met its expectation, 1 some did not, \
2 bad input or usage, 130 interrupted by Ctrl-C (the reports written then say they are partial).";

/// Deterministic simulation and verification of CRDT convergence.
///
/// Without a command, runs every scenario in ./scenarios with seed 0, writes reports/ and prints a
/// summary table. Exit status: 0 every run met its expectation, 1 some did not, 2 bad input or usage
/// (nothing was run), 3 the runs ended (their verdict is printed) but their reports could not all be
/// written, 130 interrupted by Ctrl-C (partial reports written).
#[derive(Debug, Parser)]
#[command(name = "converge", version, about, long_about, after_help = EXIT_STATUS_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run scenario files with one seed, judge them, write reports.
    #[command(after_help = EXIT_STATUS_HELP)]
    Run(RunArgs),
    /// Run every scenario of a directory (default ./scenarios) with seed 0: what `converge` alone does.
    #[command(after_help = EXIT_STATUS_HELP)]
    Suite(SuiteArgs),
    /// Run one scenario over many seeds in parallel; shrink the first failing seeds.
    #[command(after_help = EXIT_STATUS_HELP)]
    Sweep(SweepArgs),
    /// Join the shard results of a sharded sweep into one sweep report.
    #[command(after_help = EXIT_STATUS_HELP)]
    Merge(MergeArgs),
    /// Exhaustively model-check a small configuration.
    #[command(after_help = EXIT_STATUS_HELP)]
    Check(CheckArgs),
    /// Rerun a report (or a scenario file and seed) and say whether it reproduced.
    #[command(after_help = EXIT_STATUS_HELP)]
    Replay(ReplayArgs),
    /// Shrink a failing run to a minimal scenario.
    #[command(after_help = EXIT_STATUS_HELP)]
    Shrink(ShrinkArgs),
}

#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Directory for reports and trace exports.
    #[arg(long, value_name = "DIR", default_value = "reports")]
    pub out: PathBuf,
    /// Print one JSON document on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Scenario files (TOML, or JSON by the .json extension).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// The root seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Do not shrink failing runs for the report's counterexample diagram.
    #[arg(long)]
    pub no_shrink: bool,
    /// Run each scenario twice and compare the two runs event by event (decisions and replica
    /// states); a difference fails the run, naming the first event where they part.
    #[arg(long)]
    pub check_determinism: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct SuiteArgs {
    /// The directory of scenario files.
    #[arg(default_value = "scenarios", value_name = "DIR")]
    pub dir: PathBuf,
    /// Do not shrink failing runs for the reports' counterexample diagrams.
    #[arg(long)]
    pub no_shrink: bool,
    /// Run each scenario twice and compare the two runs event by event; a difference fails it.
    #[arg(long)]
    pub check_determinism: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct SweepArgs {
    /// The scenario file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Seeds to run, `A..B` (end exclusive).
    #[arg(long, value_name = "A..B")]
    pub seeds: String,
    /// Worker threads (default: the number of cores).
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Run only shard K of N: the seeds with seed % N == K - 1.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,
    /// How many failing seeds to shrink and write full reports for.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub shrink: usize,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Directories (or files) holding shard result JSONs.
    #[arg(required = true, value_name = "DIR")]
    pub inputs: Vec<PathBuf>,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CrdtArg {
    LwwGrid,
    LwwDict,
    Rga,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TieBreakArg {
    PeerId,
    Random,
    KeepLocal,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BiasArg {
    Add,
    Remove,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProtocolArg {
    StateBroadcast,
    OpBroadcast,
    ReliableCausal,
    AntiEntropy,
    DeltaSync,
    OpStream,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReconnectArg {
    Handshake,
    KeepPosition,
    EchoHandshake,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum NetworkArg {
    Reliable,
    Lossy,
    Duplicating,
    LossyDuplicating,
    Reordering,
    Connections,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The CRDT every replica runs.
    #[arg(long, value_enum)]
    pub crdt: CrdtArg,
    /// Grid and dictionary only: how equal stamps are broken: by peer id (correct), at random
    /// or keeping the local write (reproductions of real bugs). The list orders concurrent
    /// inserts by their ids.
    #[arg(long, value_enum, default_value = "peer-id")]
    pub tie_break: TieBreakArg,
    /// Dictionary only: which side wins at equal add and remove stamps.
    #[arg(long, value_enum, default_value = "add")]
    pub bias: BiasArg,
    /// How replicas exchange updates.
    #[arg(long, value_enum, default_value = "state-broadcast")]
    pub protocol: ProtocolArg,
    /// Replicas (2 to 4).
    #[arg(long, default_value_t = 2)]
    pub replicas: u32,
    /// Writes per replica (1 to 3).
    #[arg(long, default_value_t = 1)]
    pub writes: u32,
    /// What the network may do to a message: deliver it (reliable), lose it, duplicate it, both,
    /// or deliver messages out of order; or connections: in-order links that lose messages only
    /// when a connection drops (everything in flight on it), both ends told, then reconnect.
    #[arg(long, value_enum, default_value = "reliable")]
    pub network: NetworkArg,
    /// Lossy networks: how many messages may be dropped in all.
    #[arg(long)]
    pub drops: Option<u32>,
    /// Connections: how many times a path may drop a connection, 0 to 3 (default 1).
    #[arg(long, value_name = "N")]
    pub connection_drops: Option<u32>,
    /// Op stream only: what a node does when a dropped connection comes back: a handshake
    /// (correct), keep its position (a bug that stalls) or answer every hello with its own (a
    /// bug that loops).
    #[arg(long, value_enum, default_value = "handshake")]
    pub on_reconnect: ReconnectArg,
    /// Checker threads for the full run, 1 to 64 (default: the number of cores, at most 64).
    #[arg(long, value_name = "N")]
    pub threads: Option<u32>,
    /// Directory for the scripted scenario that replays a counterexample.
    #[arg(long, value_name = "DIR", default_value = "reports")]
    pub out: PathBuf,
    /// Print one JSON document on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// A run report JSON (it holds the scenario and the seed) or a scenario file.
    #[arg(value_name = "FILE|REPORT")]
    pub input: PathBuf,
    /// With a scenario file: the seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print one JSON document on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ShrinkArgs {
    /// A run report JSON, or a scenario file.
    #[arg(value_name = "REPORT")]
    pub input: PathBuf,
    /// With a scenario file: the seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// A scenario file, loaded and validated, with its path as the user wrote it (which reproduce
/// commands repeat, so that they work from where the user stands).
#[derive(Clone, Debug)]
pub struct ScenarioInput {
    pub path_shown: String,
    pub scenario: Scenario,
}

impl ScenarioInput {
    pub fn load(path: &Path) -> Result<ScenarioInput> {
        if path.is_dir() {
            bail!(
                "{}: is a directory, not a scenario file; to run every scenario in it: converge suite {}",
                path.display(),
                shell_quote(&path.display().to_string())
            );
        }
        let scenario = scenario_file::load(path).map_err(anyhow::Error::msg)?;
        Ok(ScenarioInput {
            path_shown: path.display().to_string(),
            scenario,
        })
    }

    /// The one command that reruns this scenario with `seed`.
    pub fn reproduce(&self, seed: u64) -> String {
        format!(
            "converge run {} --seed {seed}",
            shell_quote(&self.path_shown)
        )
    }
}

/// Quotes a path for a POSIX shell when it needs it.
pub fn shell_quote(text: &str) -> String {
    if !text.is_empty()
        && text.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '-' | '_' | '+' | ':' | ',')
        })
    {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// Where reports go and how results are printed.
#[derive(Clone, Debug)]
pub struct Output {
    pub dir: PathBuf,
    pub json: bool,
}

impl From<&OutputArgs> for Output {
    fn from(args: &OutputArgs) -> Self {
        Output {
            dir: args.out.clone(),
            json: args.json,
        }
    }
}

pub struct RunConfig {
    pub inputs: Vec<ScenarioInput>,
    pub seed: u64,
    pub shrink: bool,
    /// Each run made twice and compared (`--check-determinism`).
    pub check_determinism: bool,
    pub output: Output,
}

pub struct SweepConfig {
    pub input: ScenarioInput,
    pub seeds: SeedRange,
    pub jobs: usize,
    pub shard: Option<Shard>,
    pub shrink_max: usize,
    pub output: Output,
}

/// The scenario files of a suite directory, sorted by name: `*.toml` and `*.json`.
pub fn scenario_files_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot read the scenario directory", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.is_file()
                && matches!(
                    path.extension().and_then(|e| e.to_str()),
                    Some("toml") | Some("json")
                )
        })
        .collect();
    files.sort();
    if files.is_empty() {
        bail!(
            "{}: no scenario files (*.toml, *.json) in it",
            dir.display()
        );
    }
    Ok(files)
}

/// Loads every file; all errors are reported together, each naming its file.
pub fn load_all(paths: &[PathBuf]) -> Result<Vec<ScenarioInput>> {
    let mut inputs = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        match ScenarioInput::load(path) {
            Ok(input) => inputs.push(input),
            Err(error) => errors.push(format!("{error:#}")),
        }
    }
    if !errors.is_empty() {
        bail!("{}", errors.join("\n"));
    }
    Ok(inputs)
}

impl RunConfig {
    pub fn from_run(args: &RunArgs) -> Result<RunConfig> {
        Ok(RunConfig {
            inputs: load_all(&args.files)?,
            seed: args.seed,
            shrink: !args.no_shrink,
            check_determinism: args.check_determinism,
            output: Output::from(&args.output),
        })
    }

    pub fn from_suite(args: &SuiteArgs) -> Result<RunConfig> {
        Ok(RunConfig {
            inputs: load_all(&scenario_files_in(&args.dir)?)?,
            seed: 0,
            shrink: !args.no_shrink,
            check_determinism: args.check_determinism,
            output: Output::from(&args.output),
        })
    }
}

impl SweepConfig {
    pub fn from_args(args: &SweepArgs) -> Result<SweepConfig> {
        let range = converge::verify::parse_seed_range(&args.seeds).with_context(|| {
            format!(
                "--seeds {:?}: expected a range A..B with A < B (end exclusive)",
                args.seeds
            )
        })?;
        let shard = match &args.shard {
            None => None,
            Some(text) => Some(Shard::parse(text).with_context(|| {
                format!("--shard {text:?}: expected K/N with 1 <= K <= N, such as 2/8")
            })?),
        };
        let jobs = match args.jobs {
            Some(0) => bail!("--jobs 0: expected at least one worker"),
            Some(jobs) if jobs > JOBS_MAX => {
                bail!("--jobs {jobs}: expected at most {JOBS_MAX} workers (JOBS_MAX)")
            }
            Some(jobs) => jobs,
            None => std::thread::available_parallelism().map_or(1, usize::from),
        };
        let seeds = SeedRange {
            start: range.start,
            end: range.end,
        };
        let count = seed_count(seeds, shard);
        if count > SWEEP_SEEDS_MAX {
            bail!(
                "--seeds {}: {count} seeds{}; the cap is {SWEEP_SEEDS_MAX} per sweep \
                 (SWEEP_SEEDS_MAX): split the range with --shard K/N",
                args.seeds,
                shard.map_or(String::new(), |s| format!(
                    " in shard {}/{}",
                    s.index, s.count
                ))
            );
        }
        Ok(SweepConfig {
            input: ScenarioInput::load(&args.file)?,
            seeds,
            jobs,
            shard,
            shrink_max: args.shrink,
            output: Output::from(&args.output),
        })
    }
}
