//! Verify your own CRDT from `cargo test`.
//!
//! ```no_run
//! use converge::verify::Verify;
//! use converge::crdt::{LwwGrid, LwwGridConfig};
//! use converge::netsim::Scenario;
//!
//! let scenario = Scenario { replicas: 4, ..Scenario::default() };
//! Verify::new(scenario, |_replica| LwwGrid::new(LwwGridConfig::default()))
//!     .seeds(0..200)
//!     .assert_converges();
//! ```
//!
//! Your own sync protocol runs the same way, over the scenario's topology and faults
//! (`docs/verify-your-protocol.md`):
//!
//! ```no_run
//! # use converge::verify::Verify;
//! # use converge::crdt::{LwwGrid, LwwGridConfig};
//! # use converge::netsim::{protocols::StateBroadcast, Scenario};
//! # let scenario = Scenario::default();
//! Verify::new(scenario, |_replica| LwwGrid::new(LwwGridConfig::default()))
//!     .protocol(StateBroadcast) // or your own `impl Protocol<C>`
//!     .assert_converges();
//! ```
//!
//! A failure panics with a message that names the seed, the violated oracle, the minimal
//! counterexample (a scenario file, shrunk by delta debugging) and one command that replays it.
//! Environment variables change the seeds without touching code: `CONVERGE_SEED=1234` pins one
//! seed, `CONVERGE_SEEDS=0..100000` widens (or narrows) the range.

use std::fmt;
use std::ops::Range;
use std::path::Path;

use converge_checker::{
    check_determinism, judge_with, shrink_with, Nondeterminism, RunReport, Shrunk,
};
use converge_crdt::{OpCrdt, ReplicaId};

use crate::report::{oracle_name, verdict_phrase};
use converge_netsim::{
    End, Protocol, Runner, Scenario, ScenarioError, ScenarioProtocol, UserProtocol, Verdict,
};

/// Pins one seed.
pub const SEED_VARIABLE: &str = "CONVERGE_SEED";
/// Replaces the seed range, as `A..B`.
pub const SEEDS_VARIABLE: &str = "CONVERGE_SEEDS";

/// Why verification could not run at all (as opposed to a run that failed).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("invalid scenario: {0}")]
    Scenario(#[from] ScenarioError),
    #[error("{variable}={value:?} is not {expected}")]
    Environment {
        variable: &'static str,
        value: String,
        expected: &'static str,
    },
}

/// A run that did not meet the scenario's expectation.
#[derive(Debug)]
pub struct Failure {
    pub seed: u64,
    pub report: RunReport,
    /// The minimal counterexample, when shrinking found one.
    pub shrunk: Option<Shrunk>,
    /// One command that replays the failing seed.
    pub reproduce: String,
    /// Whether the protocol was the scenario's built-in one (a scenario file alone then
    /// reproduces the run); a user's protocol needs the user's code.
    pub builtin_protocol: bool,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let report = &self.report;
        writeln!(
            f,
            "scenario {:?} seed {}: expected {}, got {}",
            report.scenario,
            self.seed,
            verdict_phrase(report.expected),
            verdict_phrase(report.verdict)
        )?;
        if self.builtin_protocol {
            writeln!(f, "protocol: {}", report.protocol)?;
        } else {
            writeln!(
                f,
                "protocol: {} (your code: a scenario's [protocol] table gives only its topology and options)",
                report.protocol
            )?;
        }
        if let End::BoundReached { bound } = &report.end {
            writeln!(
                f,
                "the run stopped at bound {bound} (see docs/robustness.md): nothing is concluded"
            )?;
        }
        if let Some(violation) = report.violations.first() {
            writeln!(
                f,
                "violated oracle: {}: {}",
                oracle_name(violation.oracle),
                violation.detail
            )?;
        }
        if let Some(shrunk) = &self.shrunk {
            writeln!(f, "minimal counterexample ({}):", shrunk.sizes())?;
            match toml::to_string(&shrunk.scenario) {
                Ok(text) => writeln!(f, "{text}")?,
                Err(error) => writeln!(f, "(could not render the scenario: {error})")?,
            }
        }
        write!(f, "reproduce: {}", self.reproduce)
    }
}

impl std::error::Error for Failure {}

/// What a passing verification covered.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub seeds: u64,
    /// Runs that exercised at least one conflicting write.
    pub runs_with_conflicts: u64,
    pub events: u64,
    /// Every seed's trace hash (16 hex digits), in seed order: the same as `converge sweep` and
    /// `converge run` give for the same scenario and CRDT.
    pub trace_hashes: Vec<(u64, String)>,
}

/// A builder: a scenario, a CRDT factory and a seed range. Defaults: seeds `0..100`, and the
/// scenario's own `[expect]` (convergence when it has none).
pub struct Verify<C: OpCrdt> {
    scenario: Scenario,
    protocol: Box<dyn Runner<C>>,
    make: Box<dyn Fn(ReplicaId) -> C>,
    seeds: Range<u64>,
    shrink_failures: bool,
}

impl<C: OpCrdt> Verify<C> {
    /// Verifies `make`'s CRDT under `scenario` (its `[crdt]` table is ignored: `make` builds every
    /// replica).
    pub fn new(scenario: Scenario, make: impl Fn(ReplicaId) -> C + 'static) -> Self {
        Verify {
            scenario,
            protocol: Box::new(ScenarioProtocol),
            make: Box::new(make),
            seeds: 0..100,
            shrink_failures: true,
        }
    }

    /// Reads the scenario from a TOML (or `.json`) file.
    pub fn from_file(
        path: impl AsRef<Path>,
        make: impl Fn(ReplicaId) -> C + 'static,
    ) -> Result<Self, VerifyError> {
        let path = path.as_ref();
        let scenario = crate::scenario_file::load(path).map_err(|e| VerifyError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Ok(Self::new(scenario, make))
    }

    /// Runs `protocol`, your own sync protocol, instead of the scenario's built-in one; the
    /// scenario's `[protocol]` table still gives the topology and the options it reads.
    pub fn protocol<P: Protocol<C> + 'static>(mut self, protocol: P) -> Self {
        self.protocol = Box::new(UserProtocol(protocol));
        self
    }

    /// The seeds to run, unless the environment says otherwise.
    pub fn seeds(mut self, seeds: Range<u64>) -> Self {
        self.seeds = seeds;
        self
    }

    /// Skips shrinking a failure (faster failing tests, bigger counterexamples).
    pub fn without_shrinking(mut self) -> Self {
        self.shrink_failures = false;
        self
    }

    /// The seeds after the environment variables are applied.
    pub fn effective_seeds(&self) -> Result<Range<u64>, VerifyError> {
        seeds_from_environment(self.seeds.clone())
    }

    /// Judges one seed, whatever the seed range says: the report `run` would look at.
    pub fn judge_seed(&self, seed: u64) -> Result<RunReport, VerifyError> {
        self.scenario.validate()?;
        Ok(judge_with(&self.scenario, seed, &*self.protocol, &*self.make, None)?.report)
    }

    /// Runs every seed; the first run that misses the expectation is the error.
    pub fn run(&self) -> Result<Result<Summary, Box<Failure>>, VerifyError> {
        self.scenario.validate()?;
        let mut summary = Summary::default();
        for seed in self.effective_seeds()? {
            let judged = judge_with(&self.scenario, seed, &*self.protocol, &*self.make, None)?;
            let report = judged.report;
            summary.seeds += 1;
            summary.events += report.events;
            summary.trace_hashes.push((seed, report.trace_hash.clone()));
            if report.coverage.coverage.concurrent_writes_same_key > 0 {
                summary.runs_with_conflicts += 1;
            }
            let expected = self.scenario.expect.verdict;
            if report.verdict != expected {
                let shrunk = if self.shrink_failures && expected == Verdict::Converges {
                    shrink_with(&self.scenario, seed, &*self.protocol, &*self.make)?
                } else {
                    None
                };
                return Ok(Err(Box::new(Failure {
                    seed,
                    reproduce: reproduce_command(seed),
                    builtin_protocol: self.protocol.is_builtin(),
                    report,
                    shrunk,
                })));
            }
        }
        Ok(Ok(summary))
    }

    /// Runs every seed twice and compares the two runs' decisions (trace hashes) and states,
    /// event by event: a type or protocol that depends on anything but its inputs (hash-map
    /// iteration order, a clock, a global counter) is caught. Returns the seeds checked, or the
    /// first that was not deterministic.
    pub fn determinism(&self) -> Result<Result<u64, Nondeterminism>, VerifyError> {
        self.scenario.validate()?;
        let mut checked = 0;
        for seed in self.effective_seeds()? {
            if let Some(found) =
                check_determinism(&self.scenario, seed, &*self.protocol, &*self.make)?
            {
                return Ok(Err(found));
            }
            checked += 1;
        }
        Ok(Ok(checked))
    }

    /// [`Verify::determinism`], panicking with the seed and what differed.
    #[track_caller]
    pub fn assert_deterministic(&self) -> u64 {
        match self.determinism() {
            Ok(Ok(seeds)) => seeds,
            Ok(Err(found)) => panic!("{found}\nreproduce: {}", reproduce_command(found.seed)),
            Err(error) => panic!("converge could not run: {error}"),
        }
    }

    /// Runs every seed and panics with the failure's full story if one misses the expectation.
    #[track_caller]
    pub fn assert_converges(&self) -> Summary {
        match self.run() {
            Ok(Ok(summary)) => summary,
            Ok(Err(failure)) => panic!("{failure}"),
            Err(error) => panic!("converge could not run: {error}"),
        }
    }
}

/// The command that reruns the current test with one seed pinned. libtest names each test's thread
/// after the test, which gives the filter; cargo tells the test process its package, which the
/// command names so that it also works from the root of a workspace.
fn reproduce_command(seed: u64) -> String {
    let test = std::thread::current()
        .name()
        .filter(|n| *n != "main")
        .map(str::to_string);
    let package = std::env::var("CARGO_PKG_NAME")
        .map(|name| format!(" -p {name}"))
        .unwrap_or_default();
    match test {
        Some(name) => format!("{SEED_VARIABLE}={seed} cargo test{package} {name} -- --exact"),
        None => format!("{SEED_VARIABLE}={seed} cargo test{package}"),
    }
}

fn seeds_from_environment(default: Range<u64>) -> Result<Range<u64>, VerifyError> {
    if let Ok(value) = std::env::var(SEED_VARIABLE) {
        let seed: u64 = value.trim().parse().map_err(|_| VerifyError::Environment {
            variable: SEED_VARIABLE,
            value: value.clone(),
            expected: "a seed (a whole number)",
        })?;
        return Ok(seed..seed + 1);
    }
    if let Ok(value) = std::env::var(SEEDS_VARIABLE) {
        return parse_seed_range(&value).ok_or(VerifyError::Environment {
            variable: SEEDS_VARIABLE,
            value,
            expected: "a seed range A..B with A < B",
        });
    }
    Ok(default)
}

/// Parses `A..B` (end exclusive).
pub fn parse_seed_range(text: &str) -> Option<Range<u64>> {
    let (start, end) = text.trim().split_once("..")?;
    let (start, end): (u64, u64) = (start.trim().parse().ok()?, end.trim().parse().ok()?);
    (start < end).then_some(start..end)
}
