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
//! A failure panics with a message that names the seed, the violated oracle, the evidence (the
//! differing views, and which updates each replica lacks), the minimal counterexample (a scenario
//! file, shrunk by delta debugging, ready to be saved as a regression test) and one command that
//! replays it. Environment variables change the seeds without touching code:
//! `CONVERGE_SEED=1234` pins one seed, `CONVERGE_SEEDS=0..100000` widens (or narrows) the range.
//!
//! Two questions can be asked of the seeds. [`Verify::assert_converges`] asks whether every seed
//! converges, whatever the scenario's `[expect]` table says: a counterexample file saved from a
//! failure keeps failing it while the bug is there. [`Verify::assert_expectation`] asks whether
//! every seed meets the scenario's `[expect]`, as `converge run` judges a file: how a test pins a
//! bug that is known and meant to stay visible.

use std::fmt;
use std::ops::Range;
use std::path::Path;

use converge_checker::clone_check::SHALLOW_CLONE;
use converge_checker::{
    check_clone, check_determinism, judge_with, shrink_with, Nondeterminism, RunReport,
    ShallowClone, Shrunk,
};
use converge_crdt::{OpCrdt, ReplicaId, StampedSpec, StateCrdt};

use crate::report::{oracle_name, verdict_phrase};
pub use converge_netsim::Incarnations;
use converge_netsim::{
    Coverage, End, Expect, IntentDraw, Protocol, Replicas, Runner, Scenario, ScenarioError,
    ScenarioProtocol, Specified, UserProtocol, Verdict,
};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{RngAlgorithm, TestRng, TestRunner};

mod evidence;

/// Pins one seed.
pub const SEED_VARIABLE: &str = "CONVERGE_SEED";
/// Replaces the seed range, as `A..B`.
pub const SEEDS_VARIABLE: &str = "CONVERGE_SEEDS";

/// Failing seeds a failure names; the others are counted.
pub const FAILING_SEEDS_NAMED_MAX: usize = 10;

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
    /// The CRDT's `Clone` shares state instead of copying it, which every verdict would rest on.
    #[error(transparent)]
    ShallowClone(#[from] ShallowClone),
}

/// What a seed is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Check {
    /// The run converges ([`Verify::run`], [`Verify::assert_converges`]), whatever the
    /// scenario's `[expect]` says.
    Convergence,
    /// The run meets the scenario's `[expect]` table, verdict and bounds
    /// ([`Verify::run_expectation`], [`Verify::assert_expectation`]), as `converge run` judges it.
    Expectation,
}

/// A run that failed the check.
#[derive(Debug)]
pub struct Failure {
    /// The first failing seed: the one shown, shrunk and reproduced.
    pub seed: u64,
    pub report: RunReport,
    /// The minimal counterexample, when shrinking found one. Its scenario's `[expect]` is the
    /// check's (convergence, for [`Check::Convergence`]), so that saved as a file it fails the
    /// same check while the bug is present; [`Shrunk::verdict`] is the verdict it ends with.
    pub shrunk: Option<Shrunk>,
    /// One command that replays the failing seed.
    pub reproduce: String,
    /// Whether the protocol was the scenario's built-in one (a scenario file alone then
    /// reproduces the run); a user's protocol needs the user's code.
    pub builtin_protocol: bool,
    /// What the seeds were checked against.
    pub check: Check,
    /// The CRDT type the replicas ran, by its Rust name.
    pub crdt_type: &'static str,
    /// Every failing seed with its verdict, in seed order: only the first, unless
    /// [`Verify::all_failures`] ran the whole range.
    pub failing_seeds: Vec<(u64, Verdict)>,
    /// Whether every seed of the range ran ([`Verify::all_failures`]), so that `failing_seeds`
    /// holds them all.
    pub ran_every_seed: bool,
    /// What the seeds that ran covered, the failing ones included.
    pub summary: Summary,
}

impl Failure {
    /// What the check expected of each seed.
    fn expected(&self) -> Verdict {
        match self.check {
            Check::Convergence => Verdict::Converges,
            Check::Expectation => self.report.expected,
        }
    }

    /// The minimal counterexample as the text of a scenario file, to save next to the tests
    /// (`tests/counterexample.toml`) and replay with [`Verify::from_file`]. Its comments say which
    /// type and protocol it needs; it has no `[crdt]` table, since the replicas are built by the
    /// closure given to [`Verify::new`] and not by a type named in a file. `None` when the failure
    /// was not shrunk.
    pub fn counterexample_file(&self) -> Option<String> {
        let shrunk = self.shrunk.as_ref()?;
        let mut text = format!(
            "# The minimal counterexample of scenario {:?} seed {}, found by converge's Verify:\n\
             # a run that ends \"{}\" ({}).\n\
             # Its replicas are {} values built by the closure given to Verify:\n\
             # no table of this file names a CRDT, and the converge binary, which builds replicas\n\
             # only from a [crdt] table, cannot replay it.\n",
            self.report.scenario,
            self.seed,
            verdict_name(shrunk.verdict),
            shrunk.sizes(),
            self.crdt_type,
        );
        if !self.builtin_protocol {
            text.push_str(&format!(
                "# Its protocol is your {:?}: give it to Verify::protocol again (the [protocol]\n\
                 # table gives only the topology and the options it reads).\n",
                self.report.protocol
            ));
        }
        let check = match self.check {
            Check::Convergence => "assert_converges",
            Check::Expectation => "assert_expectation",
        };
        text.push_str(&format!(
            "# Replay it from cargo test (it fails while the bug is present):\n\
             #   Verify::from_file(\"<this file>\", <the same closure>)?.seeds(0..1).{check}()\n"
        ));
        match toml::to_string(&shrunk.scenario) {
            Ok(file) => text.push_str(&without_table(&file, "crdt")),
            Err(error) => text.push_str(&format!("# (could not render the scenario: {error})\n")),
        }
        Some(text)
    }
}

/// `file` (TOML as the serializer writes it) without its `[name]` table.
fn without_table(file: &str, name: &str) -> String {
    let header = format!("[{name}]");
    let mut kept = String::with_capacity(file.len());
    let mut skipping = false;
    for line in file.lines() {
        if line.starts_with('[') {
            skipping = line.trim() == header;
        }
        if !skipping {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    kept
}

/// A verdict as scenario files spell it: `not-converged`.
fn verdict_name(verdict: Verdict) -> String {
    serde_json::to_value(verdict)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let report = &self.report;
        writeln!(
            f,
            "scenario {:?} seed {}: expected {}, got {}",
            report.scenario,
            self.seed,
            verdict_phrase(self.expected()),
            verdict_phrase(report.verdict)
        )?;
        match self.check {
            Check::Convergence if report.expected != Verdict::Converges => writeln!(
                f,
                "(assert_converges asks for convergence; the scenario's [expect] says {}, which \
                 assert_expectation checks)",
                verdict_phrase(report.expected)
            )?,
            Check::Expectation if report.verdict == report.expected => writeln!(
                f,
                "expectation: {}",
                report
                    .expectation_notes
                    .get(1..)
                    .unwrap_or_default()
                    .join("; ")
            )?,
            _ => {}
        }
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
        write_violation(f, "", report)?;
        if self.ran_every_seed {
            let named: Vec<String> = self
                .failing_seeds
                .iter()
                .take(FAILING_SEEDS_NAMED_MAX)
                .map(|(seed, _)| seed.to_string())
                .collect();
            let more = self
                .failing_seeds
                .len()
                .saturating_sub(FAILING_SEEDS_NAMED_MAX);
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            writeln!(
                f,
                "failing seeds: {} of {} ({}{more})",
                self.failing_seeds.len(),
                self.summary.seeds,
                named.join(", ")
            )?;
            writeln!(f, "coverage: {}", self.summary)?;
        }
        if let Some(shrunk) = &self.shrunk {
            writeln!(f, "minimal counterexample ({}):", shrunk.sizes())?;
            write_violation(f, "  ", &shrunk.report)?;
            if let Some(file) = self.counterexample_file() {
                writeln!(f, "{file}")?;
            }
        }
        write!(f, "reproduce: {}", self.reproduce)
    }
}

/// The run's first violation with its evidence, each line after `indent`; a stall or a sync loop
/// is named first, since the first violation is then the eventual-convergence one that says
/// what each replica lacks.
fn write_violation(f: &mut fmt::Formatter<'_>, indent: &str, report: &RunReport) -> fmt::Result {
    let liveness = report
        .violations
        .iter()
        .find(|v| v.oracle == converge_checker::Oracle::Liveness);
    if let Some(liveness) = liveness.filter(|l| Some(*l) != report.violations.first()) {
        writeln!(f, "{indent}liveness: {}", liveness.detail)?;
    }
    if let Some(violation) = report.violations.first() {
        writeln!(
            f,
            "{indent}violated oracle: {}: {}",
            oracle_name(violation.oracle),
            violation.detail
        )?;
        write_evidence(f, &format!("{indent}evidence"), violation)?;
    }
    Ok(())
}

/// `heading (when):` and the violation's states, if it names any.
fn write_evidence(
    f: &mut fmt::Formatter<'_>,
    heading: &str,
    violation: &converge_checker::Violation,
) -> fmt::Result {
    let lines = evidence::lines(violation);
    if lines.is_empty() {
        return Ok(());
    }
    let when = match violation.event_index {
        Some(event) => format!(
            "after event {event}, at {:.3} ms",
            violation.at_us as f64 / 1e3
        ),
        None => format!(
            "at the end of the run, {:.3} ms",
            violation.at_us as f64 / 1e3
        ),
    };
    writeln!(f, "{heading} ({when}):")?;
    // The evidence lines are indented by two spaces; under an indented heading, by two more.
    let indent = &heading[..heading.len() - heading.trim_start().len()];
    for line in lines.lines() {
        writeln!(f, "{indent}{line}")?;
    }
    Ok(())
}

impl std::error::Error for Failure {}

/// What the seeds that ran covered.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub seeds: u64,
    /// Runs that exercised at least one conflicting write.
    pub runs_with_conflicts: u64,
    pub events: u64,
    /// The coverage counts summed over the runs: concurrent writes to one key, writes on both
    /// sides of a partition, duplicate and reordered deliveries, late joins, crashes, restarts
    /// and retransmissions. A count of zero says the seeds never exercised it.
    pub coverage: Coverage,
    /// Late joiners and restarted replicas that ended holding every required update, summed.
    pub late_joins_caught_up: u64,
    /// Every seed's trace hash (16 hex digits), in seed order: the same as `converge sweep` and
    /// `converge run` give for the same scenario and CRDT.
    pub trace_hashes: Vec<(u64, String)>,
    /// The oracles that did not run on some seed, each with why, once
    /// ([`RunReport::oracles_not_run`]).
    pub oracles_not_run: Vec<String>,
}

impl Summary {
    /// Adds one judged run.
    fn add(&mut self, report: &RunReport) {
        self.seeds += 1;
        for not_run in &report.oracles_not_run {
            if !self.oracles_not_run.contains(not_run) {
                self.oracles_not_run.push(not_run.clone());
            }
        }
        self.events += report.events;
        self.trace_hashes
            .push((report.seed, report.trace_hash.clone()));
        let covered = &report.coverage.coverage;
        if covered.concurrent_writes_same_key > 0 {
            self.runs_with_conflicts += 1;
        }
        self.late_joins_caught_up += report.coverage.late_joins_caught_up;
        // Destructured, so that a new count cannot be left out of the sum.
        let Coverage {
            concurrent_writes_same_key,
            writes_both_sides_of_partition,
            duplicate_deliveries,
            reordered_deliveries,
            late_joins,
            crashes,
            restarts,
            retransmissions,
            connection_drops,
        } = *covered;
        let sum = &mut self.coverage;
        sum.concurrent_writes_same_key += concurrent_writes_same_key;
        sum.writes_both_sides_of_partition += writes_both_sides_of_partition;
        sum.duplicate_deliveries += duplicate_deliveries;
        sum.reordered_deliveries += reordered_deliveries;
        sum.late_joins += late_joins;
        sum.crashes += crashes;
        sum.restarts += restarts;
        sum.retransmissions += retransmissions;
        sum.connection_drops += connection_drops;
    }
}

/// One line: `50 seeds, 61,845 events; 50 runs with concurrent writes to one key (...); ...`.
impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.coverage;
        write!(
            f,
            "{} seeds, {} events; {} runs with concurrent writes to one key ({} such writes); \
             {} duplicate deliveries, {} reordered deliveries, {} retransmissions; \
             {} writes on both sides of a partition; {} late joins and restarts caught up of {} \
             late joins and {} restarts; {} crashes; {} connection drops",
            thousands(self.seeds),
            thousands(self.events),
            thousands(self.runs_with_conflicts),
            thousands(c.concurrent_writes_same_key),
            thousands(c.duplicate_deliveries),
            thousands(c.reordered_deliveries),
            thousands(c.retransmissions),
            thousands(c.writes_both_sides_of_partition),
            thousands(self.late_joins_caught_up),
            thousands(c.late_joins),
            thousands(c.restarts),
            thousands(c.crashes),
            thousands(c.connection_drops),
        )?;
        for not_run in &self.oracles_not_run {
            write!(f, "; not run: {not_run}")?;
        }
        Ok(())
    }
}

/// `1714422` as `1,714,422`.
fn thousands(count: u64) -> String {
    let digits = count.to_string();
    let mut text = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            text.push(',');
        }
        text.push(digit);
    }
    text
}

/// The replicas' factory and, where [`Verify::intents`] gave one, the generator of their intents.
struct UserReplicas<C: OpCrdt> {
    make: Box<dyn Replicas<C>>,
    intents: Option<DrawIntent<C>>,
    spec: Option<Spec<C>>,
}

type DrawIntent<C> = Box<dyn Fn(&C, &IntentDraw) -> Option<<C as OpCrdt>::Intent>>;

type Spec<C> = Box<dyn Fn(&[Specified<'_, <C as OpCrdt>::Intent>]) -> <C as StateCrdt>::View>;

impl<C: OpCrdt> Replicas<C> for UserReplicas<C> {
    fn make(&self, replica: ReplicaId, incarnation: u32) -> C {
        self.make.make(replica, incarnation)
    }

    fn draws_intents(&self) -> bool {
        self.intents.is_some() || self.make.draws_intents()
    }

    fn draw_intent(&self, state: &C, draw: &IntentDraw) -> Option<C::Intent> {
        match &self.intents {
            Some(intents) => intents(state, draw),
            None => self.make.draw_intent(state, draw),
        }
    }

    fn specifies(&self) -> bool {
        self.spec.is_some() || self.make.specifies()
    }

    fn expected_view(&self, updates: &[Specified<'_, C::Intent>]) -> Option<C::View> {
        match &self.spec {
            Some(spec) => Some(spec(updates)),
            None => self.make.expected_view(updates),
        }
    }

    fn stamped_spec(&self) -> Option<Box<dyn StampedSpec<C>>> {
        self.make.stamped_spec()
    }
}

/// The value `strategy` draws from `draw`'s seed, after `draw`'s simplification steps: a value
/// tree is built from a generator seeded with the draw's seed, then simplified (`true`) or
/// complicated (`false`) step by step, as proptest's own shrinking walks it. `None` when the
/// strategy rejects every value it tried.
fn draw_from<S: Strategy>(strategy: &S, draw: &IntentDraw) -> Option<S::Value> {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&draw.seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed);
    let mut runner = TestRunner::new_with_rng(draw_config(), rng);
    let mut tree = strategy.new_tree(&mut runner).ok()?;
    for &simplify in draw.simplified {
        if simplify {
            tree.simplify();
        } else {
            tree.complicate();
        }
    }
    Some(tree.current())
}

/// The proptest configuration of every draw, with the limits that can change a drawn value
/// written out: proptest's defaults read `PROPTEST_*` environment variables, and a draw must
/// not depend on the environment.
fn draw_config() -> proptest::test_runner::Config {
    proptest::test_runner::Config {
        max_local_rejects: 65_536,
        max_global_rejects: 1_024,
        max_flat_map_regens: 1_000_000,
        ..proptest::test_runner::Config::default()
    }
}

/// What to do after a failing seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OnFailure {
    Stop,
    CountAll,
}

/// A builder: a scenario, a CRDT factory and a seed range. Defaults: seeds `0..100`, the
/// scenario's built-in protocol, the first failure shrunk, and a stop at the first failing seed.
pub struct Verify<C: OpCrdt> {
    scenario: Scenario,
    protocol: Box<dyn Runner<C>>,
    replicas: UserReplicas<C>,
    seeds: Range<u64>,
    shrink_failures: bool,
    on_failure: OnFailure,
}

impl<C: OpCrdt> Verify<C> {
    /// Verifies `make`'s CRDT under `scenario` (its `[crdt]` table is ignored: `make` builds every
    /// replica). `make` is a closure of the replica id, `|replica| MyCrdt::new(replica)`, or
    /// [`Incarnations`]`(|replica, incarnation| ...)` for a type that must know how many times
    /// its node restarted: after a volatile restart (state lost), a type that names its updates
    /// by (replica, counter) would otherwise hand out names its lost state already used, and
    /// two different updates would share one name.
    pub fn new(scenario: Scenario, make: impl Replicas<C> + 'static) -> Self {
        Verify {
            scenario,
            protocol: Box::new(ScenarioProtocol),
            replicas: UserReplicas {
                make: Box::new(make),
                intents: None,
                spec: None,
            },
            seeds: 0..100,
            shrink_failures: true,
            on_failure: OnFailure::Stop,
        }
    }

    /// Reads the scenario from a TOML (or `.json`) file.
    pub fn from_file(
        path: impl AsRef<Path>,
        make: impl Replicas<C> + 'static,
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

    /// Draws the writes from `strategy`, a proptest strategy of the type's own intents, instead
    /// of the scenario's key/value workload (at the times and replicas the workload schedules).
    /// `strategy` is given the writing replica's state, so that an intent can depend on it: an
    /// insert at a position that exists. Every draw is deterministic (a seed of the run's
    /// workload stream), and shrinking simplifies each remaining intent through the strategy's
    /// own shrinking, in the state the replica is in when the shrunk run writes it.
    ///
    /// ```no_run
    /// # use converge::verify::Verify;
    /// # use converge::netsim::Scenario;
    /// # use converge::crdt::{LwwGrid, LwwGridConfig, Intent};
    /// use converge::proptest::prelude::*;
    /// Verify::new(Scenario::default(), |_| LwwGrid::new(LwwGridConfig::default()))
    ///     .intents(|_grid: &LwwGrid| (0..4u32, 1..10u64).prop_map(|(key, value)| Intent::Put { key, value }))
    ///     .assert_converges();
    /// ```
    pub fn intents<S>(mut self, strategy: impl Fn(&C) -> S + 'static) -> Self
    where
        S: Strategy<Value = C::Intent>,
    {
        self.replicas.intents = Some(Box::new(move |state, draw| {
            draw_from(&strategy(state), draw)
        }));
        self
    }

    /// Checks every live replica at the end of each run against `spec`, a sequential
    /// specification over intents: the view a replica holding exactly the given updates must
    /// show, computed from their intents alone (never from the type's ops, so that a bug in
    /// `prepare` cannot hide in it). The updates come in the causal order the run fixed, and
    /// concurrent ones in stamp order: a counter sums them, a map keeps the last write per key,
    /// a set adds and removes in order. A view that differs is verdict `intent-violated`, with
    /// the replica's view and the specification's side by side.
    ///
    /// Without one, a type with intents of its own is checked by the other oracles only, and
    /// [`Summary::oracles_not_run`] says so; a type with key/value intents is checked against
    /// its own ops applied in stamp order to a fresh replica.
    ///
    /// ```no_run
    /// # use converge::verify::Verify;
    /// # use converge::netsim::{Scenario, Specified};
    /// # use converge::crdt::{LwwGrid, LwwGridConfig, Intent, GridView};
    /// # fn grid_of(updates: &[Specified<'_, Intent>]) -> GridView { unimplemented!() }
    /// Verify::new(Scenario::default(), |_| LwwGrid::new(LwwGridConfig::default()))
    ///     .spec(|updates: &[Specified<'_, Intent>]| grid_of(updates))
    ///     .assert_converges();
    /// ```
    pub fn spec(mut self, spec: impl Fn(&[Specified<'_, C::Intent>]) -> C::View + 'static) -> Self {
        self.replicas.spec = Some(Box::new(spec));
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

    /// Runs every seed of the range even after one fails, and counts every failing seed
    /// ([`Failure::failing_seeds`]): how often a bug shows, rather than whether. The first
    /// failing seed is still the one shown, shrunk and reproduced.
    pub fn all_failures(mut self) -> Self {
        self.on_failure = OnFailure::CountAll;
        self
    }

    /// The seeds after the environment variables are applied.
    pub fn effective_seeds(&self) -> Result<Range<u64>, VerifyError> {
        seeds_from_environment(self.seeds.clone())
    }

    /// What every verification checks before its first run: the scenario is valid, and the
    /// CRDT's `Clone` copies (a fresh state's copy takes a write without its original moving).
    fn preflight(&self) -> Result<(), VerifyError> {
        self.scenario.validate()?;
        check_clone(&self.replicas)?;
        Ok(())
    }

    /// Judges one seed, whatever the seed range says: the report `run` would look at.
    pub fn judge_seed(&self, seed: u64) -> Result<RunReport, VerifyError> {
        self.preflight()?;
        Ok(judge_with(&self.scenario, seed, &*self.protocol, &self.replicas, None)?.report)
    }

    /// Runs the seeds and checks that each converges, whatever the scenario's `[expect]` says;
    /// the first run that does not is the error.
    pub fn run(&self) -> Result<Result<Summary, Box<Failure>>, VerifyError> {
        self.run_checking(Check::Convergence)
    }

    /// Runs the seeds and checks that each meets the scenario's `[expect]` (its verdict and
    /// bounds, as `converge run` judges one run); the first run that does not is the error.
    pub fn run_expectation(&self) -> Result<Result<Summary, Box<Failure>>, VerifyError> {
        self.run_checking(Check::Expectation)
    }

    fn run_checking(&self, check: Check) -> Result<Result<Summary, Box<Failure>>, VerifyError> {
        self.preflight()?;
        let expectation = match check {
            Check::Convergence => Expect::default(),
            Check::Expectation => self.scenario.expect.clone(),
        };
        let mut summary = Summary::default();
        let mut first: Option<Box<Failure>> = None;
        let mut failing_seeds = Vec::new();
        for seed in self.effective_seeds()? {
            let report =
                judge_with(&self.scenario, seed, &*self.protocol, &self.replicas, None)?.report;
            summary.add(&report);
            let passed = match check {
                Check::Convergence => report.verdict == Verdict::Converges,
                Check::Expectation => report.met_expectation,
            };
            if passed {
                continue;
            }
            failing_seeds.push((seed, report.verdict));
            if first.is_none() {
                first = Some(self.failure(check, &expectation, seed, report)?);
            }
            if self.on_failure == OnFailure::Stop {
                break;
            }
        }
        Ok(match first {
            None => Ok(summary),
            Some(mut failure) => {
                failure.failing_seeds = failing_seeds;
                failure.ran_every_seed = self.on_failure == OnFailure::CountAll;
                failure.summary = summary;
                Err(failure)
            }
        })
    }

    /// The failure of `seed`, shrunk when the check expected convergence.
    fn failure(
        &self,
        check: Check,
        expectation: &Expect,
        seed: u64,
        report: RunReport,
    ) -> Result<Box<Failure>, VerifyError> {
        // A shallow copy found during the run (debug builds) is not a bug shrinking can narrow
        // down: every run fails at its first probe.
        let shallow =
            matches!(&report.end, End::Panicked { message, .. } if message.contains(SHALLOW_CLONE));
        let shrunk = if self.shrink_failures
            && expectation.verdict == Verdict::Converges
            && !shallow
        {
            shrink_with(&self.scenario, seed, &*self.protocol, &self.replicas)?.map(|mut shrunk| {
                // The shrunk file pins what the check asked, not the bug's verdict: saved as a
                // regression test, it keeps failing that check while the bug is present.
                shrunk.scenario.expect = expectation.clone();
                shrunk
            })
        } else {
            None
        };
        Ok(Box::new(Failure {
            seed,
            reproduce: reproduce_command(seed),
            builtin_protocol: self.protocol.is_builtin(),
            check,
            crdt_type: std::any::type_name::<C>(),
            failing_seeds: Vec::new(),
            ran_every_seed: false,
            summary: Summary::default(),
            report,
            shrunk,
        }))
    }

    /// Runs every seed twice and compares the two runs' decisions (trace hashes) and states,
    /// event by event: a type or protocol that depends on anything but its inputs (hash-map
    /// iteration order, a clock, a global counter) is caught. Returns the seeds checked, or the
    /// first that was not deterministic.
    pub fn determinism(&self) -> Result<Result<u64, Nondeterminism>, VerifyError> {
        self.preflight()?;
        let mut checked = 0;
        for seed in self.effective_seeds()? {
            if let Some(found) =
                check_determinism(&self.scenario, seed, &*self.protocol, &self.replicas)?
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

    /// Runs the seeds and panics with the failure's full story unless every one converges,
    /// whatever the scenario's `[expect]` says ([`Verify::run`]).
    #[track_caller]
    pub fn assert_converges(&self) -> Summary {
        Self::unwrap(self.run())
    }

    /// Runs the seeds and panics with the failure's full story unless every one meets the
    /// scenario's `[expect]` ([`Verify::run_expectation`]): a test that pins a known bug.
    #[track_caller]
    pub fn assert_expectation(&self) -> Summary {
        Self::unwrap(self.run_expectation())
    }

    #[track_caller]
    fn unwrap(ran: Result<Result<Summary, Box<Failure>>, VerifyError>) -> Summary {
        match ran {
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
